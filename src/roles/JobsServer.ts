import type * as Rpc from "@effect/rpc/Rpc"
import type * as RpcGroup from "@effect/rpc/RpcGroup"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import { Jobs } from "../jobs/Jobs.js"
import type { JobEvent } from "../domain/JobRecord.js"
import { JobsRpc, Subscribed } from "../protocol/JobsRpc.js"
import type * as Endpoint from "../transport/Endpoint.js"
import type { ListenFailed } from "../transport/Errors.js"
import * as Transport from "../transport/Transport.js"

/** The handlers that answer JobsRpc requests from the Jobs service in context. */
export const layerHandlers: Layer.Layer<Rpc.ToHandler<RpcGroup.Rpcs<typeof JobsRpc>>, never, Jobs> = JobsRpc.toLayer(
  Effect.gen(function*() {
    const jobs = yield* Jobs
    return {
      Submit: ({ spec }) => jobs.submit(spec),
      SubmitMany: ({ specs }) => jobs.submitMany(specs),
      Get: ({ id }) => jobs.get(id),
      Wait: ({ ids, timeoutMs }) => jobs.wait(ids, timeoutMs === undefined ? undefined : { timeout: timeoutMs }),
      Kill: ({ ids }) => jobs.kill(ids),
      Resend: ({ ids, on }) => jobs.resend(ids, { on }),
      List: ({ filter }) => jobs.list(filter),
      Attempts: ({ id }) => jobs.attempts(id),
      Events: () => jobs.events,
      // Subscribed first, once the subscription exists: the client returns from `subscribe` on it.
      Subscribe: () =>
        Stream.unwrapScoped(Effect.map(jobs.subscribe, (events) =>
          Stream.concat(Stream.succeed<Subscribed | JobEvent>(new Subscribed()), events))),
      Output: ({ channel, follow, id }) => jobs.output(id, channel, { follow }),
      Clean: ({ filter }) => jobs.clean(filter),
      Queues: () => jobs.queues
    }
  })
)

/** Serves the Jobs service in context as JobsRpc on every endpoint, each on its own transport. */
export const layer = (
  endpoints: ReadonlyArray<Endpoint.Endpoint>,
  options: Transport.ServerOptions = {}
): Layer.Layer<never, ListenFailed, Jobs> =>
  Layer.mergeAll(
    Layer.empty,
    ...endpoints.map((endpoint) => Transport.layerServer(JobsRpc, endpoint, options))
  ).pipe(Layer.provide(layerHandlers))
