import * as Rpc from "@effect/rpc/Rpc"
import type * as RpcGroup from "@effect/rpc/RpcGroup"
import * as RpcSchema from "@effect/rpc/RpcSchema"
import type * as Either from "effect/Either"
import type * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import type { ParseError } from "effect/ParseResult"
import { TreeFormatter } from "effect/ParseResult"
import * as Schema from "effect/Schema"

/**
 * One RPC's schemas compiled once into synchronous codecs, so that a call pays no Effect for
 * encoding or decoding. Both ends of the lean engine share it: the client encodes payloads and
 * decodes exits and chunks; the server decodes payloads and encodes exits and chunks.
 */
export interface Route {
  readonly rpc: Rpc.AnyWithProps
  readonly tag: string
  readonly isStream: boolean
  readonly makePayload: (input: unknown) => unknown
  readonly encodePayload: (payload: unknown) => Either.Either<unknown, ParseError>
  readonly decodePayload: (encoded: unknown) => Either.Either<unknown, ParseError>
  /** The success value of a unary RPC, alone: the hot path never builds an Exit. */
  readonly encodeSuccess: (value: unknown) => Either.Either<unknown, ParseError>
  readonly decodeSuccess: (encoded: unknown) => Either.Either<unknown, ParseError>
  /** Any exit, through the RPC's exit schema (failures, defects, interruptions, a stream's end). */
  readonly encodeExit: (exit: Exit.Exit<unknown, unknown>) => Either.Either<unknown, ParseError>
  readonly decodeExit: (encoded: unknown) => Either.Either<Exit.Exit<unknown, unknown>, ParseError>
  readonly encodeChunk: (values: ReadonlyArray<unknown>) => Either.Either<ReadonlyArray<unknown>, ParseError>
  readonly decodeChunk: (values: unknown) => Either.Either<ReadonlyArray<unknown>, ParseError>
}

/** The routes of a group by tag. Schemas that need services are not supported by the lean engine. */
export const routesOf = <Rpcs extends Rpc.Any>(group: RpcGroup.RpcGroup<Rpcs>): ReadonlyMap<string, Route> => {
  const routes = new Map<string, Route>()
  for (const rpc of group.requests.values()) {
    const route = routeOf(rpc as unknown as Rpc.AnyWithProps)
    routes.set(route.tag, route)
  }
  return routes
}

/** Whether the lean engine can serve a group: it does not run RPC middleware. */
export const supportsGroup = <Rpcs extends Rpc.Any>(group: RpcGroup.RpcGroup<Rpcs>): boolean => {
  for (const rpc of group.requests.values()) {
    if ((rpc as unknown as Rpc.AnyWithProps).middlewares.size > 0) return false
  }
  return true
}

/** A parse error as one readable line, for defects sent to the peer. */
export const formatParseError = (error: ParseError): string => TreeFormatter.formatErrorSync(error)

// ---------------------------------------------------------------------------------------------
// private

type AnySchema = Schema.Schema<unknown, unknown, never>

/**
 * What turns a caller's input into the payload: a struct without constructor defaults takes the
 * input as it is; otherwise the schema's `make` runs, without validation, which the encoder does.
 */
const payloadConstructor = (schema: unknown): (input: unknown) => unknown => {
  const { fields, make } = schema as {
    readonly fields?: Record<PropertyKey, unknown>
    readonly make?: (input: unknown, options?: unknown) => unknown
  }
  if (make === undefined) return (input) => input
  if (fields !== undefined && !Reflect.ownKeys(fields).some((key) => hasConstructorDefault(fields[key]))) {
    return (input) => input
  }
  return (input) => make(input, { disableValidation: true })
}

const hasConstructorDefault = (field: unknown): boolean => {
  if (!Schema.isPropertySignature(field)) return false
  const ast = field.ast
  return (ast._tag === "PropertySignatureDeclaration" ? ast.defaultValue : ast.to.defaultValue) !== undefined
}

const routeOf = (rpc: Rpc.AnyWithProps): Route => {
  const payload = rpc.payloadSchema as unknown as AnySchema
  const success = rpc.successSchema as AnySchema
  const exit = Rpc.exitSchema(rpc as unknown as Rpc.Any) as unknown as AnySchema
  const streamSchemas = RpcSchema.getStreamSchemas(rpc.successSchema.ast)
  const chunk = Schema.Array(Option.isSome(streamSchemas) ? streamSchemas.value.success as AnySchema : Schema.Any)
  const make = payloadConstructor(rpc.payloadSchema)
  return {
    rpc,
    tag: rpc._tag,
    isStream: RpcSchema.isStreamSchema(rpc.successSchema),
    makePayload: make,
    encodePayload: Schema.encodeUnknownEither(payload),
    decodePayload: Schema.decodeUnknownEither(payload),
    encodeSuccess: Schema.encodeUnknownEither(success),
    decodeSuccess: Schema.decodeUnknownEither(success),
    encodeExit: Schema.encodeUnknownEither(exit),
    decodeExit: Schema.decodeUnknownEither(exit) as Route["decodeExit"],
    encodeChunk: Schema.encodeUnknownEither(chunk),
    decodeChunk: Schema.decodeUnknownEither(chunk)
  }
}
