import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as os from "node:os"
import * as path from "node:path"
import * as Functions from "../executor/Functions.js"
import * as LocalExecutor from "../executor/LocalExecutor.js"
import * as RemoteServer from "../remote/RemoteServer.js"
import { RemoteMessage } from "../remote/RemoteProtocol.js"
import * as Endpoint from "../transport/Endpoint.js"
import type { ListenFailed } from "../transport/Errors.js"
import type { MailboxError } from "../transport/Mailbox.js"
import * as NetworkMailbox from "../transport/mailbox/NetworkMailbox.js"
import type { Secret } from "../transport/Secret.js"

/** How to run the `remote` role. */
export interface RemoteRoleOptions {
  /** Where the local server reaches this remote. */
  readonly listen: Endpoint.Endpoint
  /** Jobs run in `<workdir>/jobs/<id>-<attempt>/`; the mailbox spool is `<workdir>/spool/`. Default `.troupe-remote/`. */
  readonly workdir?: string
  /** Cores available to jobs; default this machine's. */
  readonly cores?: number
  /** How long an ended attempt's folder is kept once its end is queued for the local server; default 7 days, `forever` keeps all. */
  readonly keepEndedMs?: number | "forever"
  readonly secret?: Secret
  readonly insecure?: boolean
}

/** How long ended attempts stay on a remote when no `--keep` is given: 7 days. */
export const defaultKeepEndedMs = 7 * 86_400_000

/** The folder a remote works in when no `--workdir` is given. */
export const defaultWorkdir = ".troupe-remote"

/**
 * The `remote` role: runs the jobs a local server sends it, over any transport, with the local
 * executor. It needs no database: its journal is the jobs' folders, and answers wait in its
 * spool's outbox until the local server takes them, so a local server that was down gets them
 * when it is back.
 */
export const layer = (options: RemoteRoleOptions): Layer.Layer<never, ListenFailed | MailboxError> => {
  const workdir = path.resolve(options.workdir ?? defaultWorkdir)
  const cores = options.cores ?? os.availableParallelism()
  const url = Endpoint.format(options.listen)
  return Layer.scopedDiscard(
    Effect.gen(function*() {
      const mailbox = yield* NetworkMailbox.listen(RemoteMessage, options.listen, {
        spool: path.join(workdir, "spool"),
        rescanMs: 250,
        transport: {
          ...(options.secret === undefined ? {} : { secret: options.secret }),
          ...(options.insecure === undefined ? {} : { insecure: options.insecure })
        }
      })
      yield* Effect.logInfo(`troupe remote role listening on ${url}, running jobs in ${workdir} on ${cores} cores`)
      const keep = options.keepEndedMs ?? defaultKeepEndedMs
      yield* Effect.forkScoped(RemoteServer.run(mailbox, { workdir, cores, keepEndedMs: keep === "forever" ? undefined : keep }))
      yield* Effect.addFinalizer(() => Effect.logInfo("troupe remote role stopping: running jobs are killed"))
    })
  ).pipe(
    Layer.provide(LocalExecutor.layer()),
    Layer.provide(Functions.layer()),
    Layer.provide(NodeContext.layer)
  )
}
