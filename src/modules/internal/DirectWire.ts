/**
 * The messages of a direct route: a typed client's connection to the worker process that owns a
 * module, so that a call is one hop (client ↔ worker) instead of two (client ↔ server ↔ worker).
 *
 * The client opens a TCP connection to the module server's direct listener and passes Troupe's
 * handshake (the shared secret, Handshake.ts) there. From then on both ends send the worker
 * channel's length-prefixed msgpack messages (Wire.ts):
 *
 *   client → server  [Route, module]                       once, then it waits
 *   server → client  [Refused, reason, message]            no route (the server closes)
 *   worker → client  [Routed]                              the server handed the socket to the worker
 *   client → worker  [Call, id, fn, args]
 *   worker → client  [Ok, id, value]   [Err, id, reason, message, traceback]
 *                    [Moved, id]       the call did not run: send it through the server
 *                    [Retiring]        this worker takes no new calls (a reload or a stop): every call
 *                                      sent on the route is still answered; close it once they are
 *
 * The worker exits only once its direct routes are closed (or its grace period has passed), so a
 * route that closes with calls unanswered means the worker died while running them.
 * This module imports nothing from Effect: the worker uses it.
 */
import type { ModuleFailure } from "../Errors.js"

/** Message kinds on a direct route. */
export const Direct = { Route: 0, Refused: 1, Routed: 2, Call: 3, Ok: 4, Err: 5, Moved: 6, Retiring: 7 } as const

/** What the client sends. */
export type DirectRequest =
  | readonly [kind: typeof Direct.Route, module: string]
  | readonly [kind: typeof Direct.Call, id: number, fn: string, args: ReadonlyArray<unknown>]

/** What the server (a refusal) or the worker sends. */
export type DirectReply =
  | readonly [kind: typeof Direct.Refused, reason: ModuleFailure, message: string]
  | readonly [kind: typeof Direct.Routed]
  | readonly [kind: typeof Direct.Ok, id: number, value: unknown]
  | readonly [kind: typeof Direct.Err, id: number, reason: ModuleFailure, message: string, traceback: string]
  | readonly [kind: typeof Direct.Moved, id: number]
  | readonly [kind: typeof Direct.Retiring]

/**
 * The handover of a client's socket from the server to a worker, over Node's IPC channel:
 *
 *   server → worker  [adoptTag, clientIp, handover]   with the socket
 *   worker → server  [adoptedTag, handover]
 *   server → worker  [openTag, handover]              the worker then sends Routed
 *
 * Node closes the server's copy of a socket it sent only when the worker's acknowledgement arrives,
 * and until then that copy may still read from the connection (Node drops what it reads there).
 * Seen under load: a client's first call, sent as soon as the worker said Routed, never reached the
 * worker (traced in both processes); the server's copy is the only other reader. The worker's
 * `adopted` comes behind that acknowledgement on the same channel, so once the server has it, its
 * copy is closed; only then is the client told to send.
 */
export const adoptTag = "troupe-direct-route"

/** The worker has the socket (see `adoptTag`). */
export const adoptedTag = "troupe-direct-adopted"

/** The server's copy of the socket is closed: the route may open (see `adoptTag`). */
export const openTag = "troupe-direct-open"

/** The largest first message (the route request) the server reads before handing the socket over. */
export const maxRouteRequestBytes = 64 * 1024
