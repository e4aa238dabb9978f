import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import { NetQueueClient } from "../netqueue/Client.js"
import * as Dispatch from "../netqueue/dispatch/Dispatch.js"
import type { ServerReport } from "../netqueue/Server.js"
import type * as QueueRole from "../roles/QueueRole.js"
import type * as Endpoint from "../transport/Endpoint.js"
import * as Args from "./Args.js"
import { compact } from "./ClientCommands.js"
import * as Output from "./Output.js"
import * as Usage from "./Usage.js"

/** Where queue commands connect and the queue role listens when nothing says otherwise. */
export const defaultServer = "framed://127.0.0.1:7979"

/** The Net Queue commands by name: `enqueue`, `dequeue`, `queue-status`. */
export const commands: Readonly<Record<string, QueueCommand>> = {
  enqueue: {
    options: { timeout: { type: "string" } },
    run: (parsed) => enqueue(parsed)
  },
  dequeue: {
    options: { count: { type: "string" }, timeout: { type: "string" } },
    run: (parsed) => dequeue(parsed)
  },
  "queue-status": {
    options: { json: { type: "boolean" }, timeout: { type: "string" } },
    run: (parsed) => queueStatus(parsed)
  }
}

/** True when the arguments start the queue role (`--role=queue` or `--role queue`). */
export const isQueueRole = (argv: ReadonlyArray<string>): boolean =>
  argv[0] === "--role=queue" || (argv[0] === "--role" && argv[1] === "queue")

/** Runs a Net Queue client command and answers its exit code. */
export const run = Effect.fnUntraced(function*(name: string, argv: ReadonlyArray<string>) {
  const command = commands[name]!
  const parsed = yield* Args.parse(name, argv, { ...helpOption, server: { type: "string" }, ...command.options }, {
    positionals: true
  })
  if (Args.flag(parsed, "help")) return yield* Effect.as(Output.out(Usage.of(name)), 0)
  return yield* Effect.scoped(command.run(parsed))
})

/** Runs `--role=queue` until interrupted. */
export const runRole = Effect.fnUntraced(function*(argv: ReadonlyArray<string>) {
  const parsed = yield* Args.parse("queue-role", argv, roleOptions)
  if (Args.flag(parsed, "help")) return yield* Effect.as(Output.out(Usage.of("queue-role")), 0)
  const listen = yield* framed("queue-role", Args.string(parsed, "listen") ?? defaultServer)
  const parentUrl = Args.string(parsed, "parent")
  const policy = Args.string(parsed, "policy")
  if (policy !== undefined && !Dispatch.isName(policy)) {
    return yield* new Args.UsageError({
      command: "queue-role",
      message: `--policy: unknown policy "${policy}" (${Dispatch.names.join(", ")})`
    })
  }
  const options = compact<QueueRole.QueueRoleOptions>({
    listen,
    parent: parentUrl === undefined ? undefined : yield* framed("queue-role", parentUrl),
    policy: policy as Dispatch.PolicyName | undefined,
    window: yield* Args.integer("queue-role", parsed, "window", 1),
    capacity: yield* Args.integer("queue-role", parsed, "capacity", 1),
    pingIntervalMs: yield* Args.duration("queue-role", parsed, "ping-interval"),
    pingTimeoutMs: yield* Args.duration("queue-role", parsed, "ping-timeout"),
    configFile: Args.string(parsed, "config"),
    insecure: Args.flag(parsed, "insecure") || undefined
  })
  const QueueRoleModule = yield* Effect.promise(() => import("../roles/QueueRole.js"))
  return yield* Layer.launch(QueueRoleModule.layer(options)).pipe(
    Effect.as(0),
    Effect.catchAll((error) => Effect.as(Output.problem(error.message), error._tag === "ListenFailed" ? 2 : 1)),
    Effect.ensuring(Effect.logInfo("troupe queue role stopped"))
  )
})

/** A Net Queue client command. */
export interface QueueCommand {
  readonly options: Args.Options
  readonly run: (parsed: Args.Parsed) => Effect.Effect<number, Args.UsageError, Scope.Scope>
}

// ---------------------------------------------------------------------------------------------
// private

const helpOption: Args.Options = { help: { type: "boolean", short: "h" } }

const roleOptions: Args.Options = {
  ...helpOption,
  role: { type: "string" },
  listen: { type: "string" },
  parent: { type: "string" },
  policy: { type: "string" },
  window: { type: "string" },
  capacity: { type: "string" },
  "ping-interval": { type: "string" },
  "ping-timeout": { type: "string" },
  config: { type: "string" },
  insecure: { type: "boolean" }
}

const framed = (command: string, url: string): Effect.Effect<Endpoint.FramedEndpoint, Args.UsageError> =>
  Effect.flatMap(Args.endpoint(command, url), (endpoint) =>
    endpoint._tag === "Framed"
      ? Effect.succeed(endpoint)
      : Effect.fail(new Args.UsageError({ command, message: `${url}: Net Queue nodes speak framed://host:port only` })))

// Connects a client for the command's scope; an unreachable node is exit code 2.
const connect = (command: string, parsed: Args.Parsed, producer: boolean, window?: number) =>
  Effect.gen(function*() {
    const endpoint = yield* framed(command, Args.string(parsed, "server") ?? (process.env["TROUPE_QUEUE_SERVER"] || defaultServer))
    const client = new NetQueueClient(compact({ producer, window, configFile: "" }))
    const connected = yield* Effect.acquireRelease(
      Effect.promise(() => client.connect(endpoint.host, endpoint.port).then(() => undefined, (error: Error) => error)),
      () => Effect.promise(() => client.close(true))
    )
    return connected === undefined ? client : connected
  })

const enqueue = Effect.fnUntraced(function*(parsed: Args.Parsed) {
  if (parsed.positionals.length === 0) {
    return yield* new Args.UsageError({ command: "enqueue", message: "missing the items to enqueue" })
  }
  const timeoutMs = (yield* Args.duration("enqueue", parsed, "timeout")) ?? 5000
  const client = yield* connect("enqueue", parsed, true)
  if (!(client instanceof NetQueueClient)) return yield* Effect.as(Output.problem(client.message), 2)
  const bad = parsed.positionals.findIndex((item) => item.includes("\n"))
  if (bad !== -1) return yield* new Args.UsageError({ command: "enqueue", message: `item ${bad + 1} contains a newline` })
  client.put(parsed.positionals)
  const result = yield* Effect.promise(() => client.flush(timeoutMs).then(() => undefined, (error: Error & { _tag: string }) => error))
  if (result === undefined) return 0
  return yield* Effect.as(
    Output.problem(
      result._tag === "Empty"
        ? `the node did not take the items within ${timeoutMs} ms (it is full, or not answering)`
        : result.message
    ),
    result._tag === "Empty" ? 3 : 1
  )
})

const dequeue = Effect.fnUntraced(function*(parsed: Args.Parsed) {
  const count = (yield* Args.integer("dequeue", parsed, "count", 1)) ?? 1
  const timeoutMs = yield* Args.duration("dequeue", parsed, "timeout")
  const client = yield* connect("dequeue", parsed, false, count)
  if (!(client instanceof NetQueueClient)) return yield* Effect.as(Output.problem(client.message), 2)
  const deadline = timeoutMs === undefined ? undefined : Date.now() + timeoutMs
  for (let got = 0; got < count; got++) {
    const left = deadline === undefined ? undefined : Math.max(0, deadline - Date.now())
    const item = yield* Effect.promise(() => client.get(true, left).then((item) => item, (error: Error & { _tag: string }) => error))
    if (typeof item !== "string") {
      const timedOut = item._tag === "Empty"
      return yield* Effect.as(
        Output.problem(timedOut ? `got ${got} of ${count} items before the timeout (${timeoutMs} ms)` : item.message),
        timedOut ? 3 : 1
      )
    }
    yield* Output.line(item)
  }
  return 0
})

const queueStatus = Effect.fnUntraced(function*(parsed: Args.Parsed) {
  const client = yield* connect("queue-status", parsed, true)
  if (!(client instanceof NetQueueClient)) return yield* Effect.as(Output.problem(client.message), 2)
  const timeoutMs = (yield* Args.duration("queue-status", parsed, "timeout")) ?? 5000
  const report = yield* Effect.promise(() => client.report(timeoutMs).then((r) => r, (error: Error) => error))
  if (report instanceof Error) {
    return yield* Effect.as(Output.problem(`${report.message} (queue-status needs a Troupe queue node)`), 1)
  }
  if (Args.flag(parsed, "json")) return yield* Effect.as(Output.line(JSON.stringify(report, null, 2)), 0)
  return yield* Effect.as(Output.out(formatReport(report)), 0)
})

const formatReport = (report: ServerReport): string => {
  const parent = report.parent === undefined
    ? "none (root)"
    : `${report.parent.address} (${report.parent.connected ? "connected" : "reconnecting"})`
  const head = [
    `node      ${report.address}`,
    `parent    ${parent}`,
    `policy    ${report.policy}`,
    `held      ${report.held} of ${report.capacity}${report.full ? " (full)" : ""}`,
    `children  ${report.children.length}`
  ]
  const rows = report.children.map((c) => [
    String(c.id),
    c.address,
    c.role,
    c.troupe ? "troupe" : "plain",
    c.state,
    String(c.load),
    String(c.inFlight),
    String(c.window)
  ])
  const header = ["ID", "ADDRESS", "ROLE", "PROTOCOL", "STATE", "LOAD", "IN-FLIGHT", "WINDOW"]
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  const line = (cells: ReadonlyArray<string>) => cells.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd()
  return [...head, "", line(header), ...rows.map(line)].join("\n") + "\n"
}
