/**
 * `troupe/client`: typed clients for Troupe's roles. Effect users take `JobsClient.layer(url)`
 * (a Layer of the JobsClient service); everyone else calls `connectJobs(url)` and gets Promises
 * and async iterables.
 */
export { JobsClient } from "./JobsClient.js"
export type {
  CleanFilterInput,
  JobsClientError,
  JobsClientOptions,
  ListFilterInput,
  SubmitInput
} from "./JobsClient.js"
export { connectJobs } from "./PromiseClient.js"
export type { JobsConnection } from "./PromiseClient.js"
export { ServerUnreachable } from "./Errors.js"
export {
  IncompatibleDatabase,
  InvalidSpec,
  JobNotFound,
  JobsError,
  QueueFull,
  ShuttingDown,
  StoreError,
  WaitTimeout
} from "../domain/Errors.js"
export { ConnectFailed, InvalidEndpoint } from "../transport/Errors.js"
export { SecretError } from "../transport/Secret.js"
export { JobId } from "../domain/JobId.js"
export { JobAttempt, JobEvent, JobRecord, QueueSummary } from "../domain/JobRecord.js"
export { JobSpec } from "../domain/JobSpec.js"
export { JobState, terminalStates, activeStates, badStates, isTerminal } from "../domain/JobState.js"
export type { JobSpecInput, JobSubscription } from "../jobs/Jobs.js"
export type { OutputChannel } from "../protocol/JobsRpc.js"
export {
  connect as connectExec,
  ExecConnection,
  ExecPool,
  makePool as makeExecPool
} from "./ExecClient.js"
export type {
  AddOptions,
  CallOptions,
  ConnectOptions,
  ExecClientError,
  ExecClientOptions,
  ExecOptions,
  TransferOptions,
  TransferResult
} from "./ExecClient.js"
export { ExecListener, ExecResult } from "./ExecListener.js"
export { ExecClientPool, ExecClients, PromiseExecConnection, PromiseExecListener } from "./ExecPromiseClient.js"
export { ClientError, ExecError } from "../exec/Errors.js"
export { ExecId, FileInfo, OsInfo, Output as ExecOutput, RunInfo } from "../protocol/ExecRpc.js"
// Net Queue (seed 003): the original protocol's client and server (Promise facade), tree nodes,
// the Effect API (`NetQueue.bind`, `NetQueue.connect`, `NetQueue.node`), dispatch policies, errors.
export { NetQueueClient } from "../netqueue/Client.js"
export type { ClientOptions as NetQueueClientOptions } from "../netqueue/Client.js"
export { ClientConn, NetQueueServer } from "../netqueue/Server.js"
export type { ChildReport, ServerOptions as NetQueueServerOptions, ServerReport } from "../netqueue/Server.js"
export { NetQueueNode } from "../netqueue/Node.js"
export * as NetQueue from "../netqueue/NetQueue.js"
export * as NetQueueDispatch from "../netqueue/dispatch/Dispatch.js"
export * as NetQueueErrors from "../netqueue/Errors.js"
// The module server (seed 004): the typed client (Effect and Promise), its values and errors, and the
// original line protocol's codec for programs that speak it themselves.
export { connectModules, ModulesClient } from "./ModulesClient.js"
export type { ModulesClientError, ModulesClientOptions, ModulesConnection } from "./ModulesClient.js"
export { ConfigError as ModuleConfigError, ModuleError, ModuleFailure } from "../modules/Errors.js"
export { ConfigReport, ModuleEvent, ModuleInfo, ModuleStatus, ReloadOutcome } from "../modules/ModuleInfo.js"
export { PeerAddress } from "../protocol/ModulesRpc.js"
export * as ModulesCompat from "../modules/Compat.js"
