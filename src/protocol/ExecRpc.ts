import * as Rpc from "@effect/rpc/Rpc"
import * as RpcGroup from "@effect/rpc/RpcGroup"
import * as Schema from "effect/Schema"
import { ExecError } from "../exec/Errors.js"

/** The id of a command run by the exec server. */
export const ExecId = Schema.String.pipe(Schema.brand("ExecId"))
/** The id of a command run by the exec server. */
export type ExecId = typeof ExecId.Type

/** Which output stream of a command a chunk came from. */
export const Channel = Schema.Literal("stdout", "stderr")
/** Which output stream of a command a chunk came from. */
export type Channel = typeof Channel.Type

/** The command started: its id (for sendInput, kill, attach) and process id. First event of every exec stream. */
export class Started extends Schema.TaggedClass<Started>()("Started", {
  id: ExecId,
  pid: Schema.Number
}) {}

/** Bytes the command wrote to stdout or stderr, in the order the server read them. */
export class Output extends Schema.TaggedClass<Output>()("Output", {
  channel: Channel,
  data: Schema.Uint8ArrayFromSelf
}) {
  /** The bytes as UTF-8 text (a character split across two chunks is replaced; join the data to avoid that). */
  get text(): string {
    return new TextDecoder().decode(this.data)
  }
}

/** The command ended: its exit code, or the signal that ended it. Last event of every exec stream. */
export class Exited extends Schema.TaggedClass<Exited>()("Exited", {
  exitCode: Schema.NullOr(Schema.Number),
  signal: Schema.NullOr(Schema.String)
}) {}

/** One event of an exec or attach stream: Started, then Output chunks, then Exited. */
export const ExecEvent = Schema.Union(Started, Output, Exited)
/** One event of an exec or attach stream. */
export type ExecEvent = typeof ExecEvent.Type

/** What to run and how: argv or a shell string, cwd (confined to the root), extra environment. */
export class ExecSpec extends Schema.Class<ExecSpec>("ExecSpec")({
  /** A shell string, or an argv whose first word is the program. */
  command: Schema.Union(Schema.String, Schema.NonEmptyArray(Schema.String)),
  /** The working directory, relative to the connection's cwd; default the connection's cwd. */
  cwd: Schema.optional(Schema.String),
  /** Variables added to (or replacing) the server's environment. */
  env: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.String })),
  /** Run through `/bin/sh -c`; default true for a string command, false for an argv. */
  shell: Schema.optional(Schema.Boolean),
  /** Keep the command running when the client goes away, with its output kept for `Attach`. */
  keepRunning: Schema.optional(Schema.Boolean),
  /** Output bytes the server may send before the client grants more; default 4 MiB. */
  window: Schema.optional(Schema.Int.pipe(Schema.positive()))
}) {}

/** A command the server is running or keeping for a later attach. */
export class RunInfo extends Schema.Class<RunInfo>("RunInfo")({
  id: ExecId,
  pid: Schema.Number,
  command: Schema.String,
  cwd: Schema.String,
  startedAt: Schema.Number,
  /** False once the process has ended (a kept command whose end nobody has read yet). */
  running: Schema.Boolean,
  /** True while a client is reading its output. */
  attached: Schema.Boolean,
  keepRunning: Schema.Boolean
}) {}

/** One directory entry, or the answer to Stat. */
export class FileInfo extends Schema.Class<FileInfo>("FileInfo")({
  name: Schema.String,
  type: Schema.Literal("file", "directory", "symlink", "other"),
  size: Schema.Number,
  mtimeMs: Schema.Number
}) {}

/** The server machine, as `osInfo` reports it. */
export class OsInfo extends Schema.Class<OsInfo>("OsInfo")({
  hostname: Schema.String,
  platform: Schema.String,
  release: Schema.String,
  arch: Schema.String,
  cpus: Schema.Number,
  totalMemory: Schema.Number,
  freeMemory: Schema.Number,
  uptime: Schema.Number,
  node: Schema.String,
  pid: Schema.Number,
  root: Schema.String
}) {}

/** A slice of a file read by ReadFile, and the file's size at the time of reading. */
export class FileSlice extends Schema.Class<FileSlice>("FileSlice")({
  data: Schema.Uint8ArrayFromSelf,
  size: Schema.Number
}) {}

const id = { id: ExecId }
const path = { path: Schema.String }

/**
 * The exec service as a typed RpcGroup: the `exec` role serves it, `ExecClient` calls it. Output
 * streams are flow-controlled by credit (`Grant`), so a client that reads slowly holds at most a
 * window of output and never blocks its connection; files move in chunked calls, idempotent by
 * offset, because @effect/rpc streams only from server to client.
 */
export class ExecRpc extends RpcGroup.make(
  Rpc.make("Exec", { payload: { spec: ExecSpec }, success: ExecEvent, error: ExecError, stream: true }),
  Rpc.make("Attach", {
    payload: { ...id, window: Schema.optional(Schema.Int.pipe(Schema.positive())) },
    success: ExecEvent,
    error: ExecError,
    stream: true
  }),
  Rpc.make("Grant", { payload: { ...id, bytes: Schema.Int.pipe(Schema.positive()) } }),
  Rpc.make("SendInput", {
    payload: { ...id, data: Schema.Uint8ArrayFromSelf, eof: Schema.optional(Schema.Boolean) },
    error: ExecError
  }),
  Rpc.make("Kill", { payload: { ...id, signal: Schema.optional(Schema.String) }, success: Schema.Boolean, error: ExecError }),
  Rpc.make("Jobs", { success: Schema.Array(RunInfo) }),
  Rpc.make("IsAlive", { payload: id, success: Schema.Boolean }),
  Rpc.make("Cd", { payload: path, success: Schema.String, error: ExecError }),
  Rpc.make("Cwd", { success: Schema.String }),
  Rpc.make("Ls", { payload: { path: Schema.optional(Schema.String) }, success: Schema.Array(FileInfo), error: ExecError }),
  Rpc.make("Stat", { payload: path, success: FileInfo, error: ExecError }),
  Rpc.make("Mkdir", { payload: { ...path, parents: Schema.optional(Schema.Boolean) }, error: ExecError }),
  Rpc.make("Rm", { payload: { ...path, recursive: Schema.optional(Schema.Boolean) }, error: ExecError }),
  Rpc.make("Touch", { payload: path, error: ExecError }),
  Rpc.make("ReadFile", {
    payload: { ...path, offset: Schema.NonNegativeInt, length: Schema.Int.pipe(Schema.positive()) },
    success: FileSlice,
    error: ExecError
  }),
  Rpc.make("WriteFile", {
    payload: {
      ...path,
      data: Schema.Uint8ArrayFromSelf,
      /** Where to write; absent appends at the end. */
      offset: Schema.optional(Schema.NonNegativeInt),
      /** Empty the file first. */
      truncate: Schema.optional(Schema.Boolean)
    },
    success: Schema.Number,
    error: ExecError
  }),
  Rpc.make("TransferStatus", { payload: path, success: Schema.Number, error: ExecError }),
  Rpc.make("TransferWrite", {
    payload: { ...path, offset: Schema.NonNegativeInt, data: Schema.Uint8ArrayFromSelf },
    success: Schema.Number,
    error: ExecError
  }),
  Rpc.make("TransferFinish", {
    payload: { ...path, size: Schema.NonNegativeInt, sha256: Schema.String },
    error: ExecError
  }),
  Rpc.make("OsInfo", { success: OsInfo }),
  Rpc.make("Heartbeat", { success: Schema.Number }),
  Rpc.make("CloseServer", { error: ExecError })
) {}
