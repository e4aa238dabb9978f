import * as Schema from "effect/Schema"

/**
 * What the module server reports about its modules, as schemas: a module's status, its events,
 * the outcome of a reload, and what applying the config did. Shared by the server, the RPC and
 * the client.
 */

/** Where a module is in its life. */
export const ModuleStatus = Schema.Literal("starting", "ready", "restarting", "failed", "stopped")
/** Where a module is in its life. */
export type ModuleStatus = typeof ModuleStatus.Type

/** What the server knows about one module, for `status` and `troupe modules`. */
export class ModuleInfo extends Schema.Class<ModuleInfo>("ModuleInfo")({
  name: Schema.String,
  status: ModuleStatus,
  file: Schema.String,
  exportName: Schema.String,
  dispatch: Schema.NullOr(Schema.String),
  /** What the export is, once loaded. */
  kind: Schema.NullOr(Schema.Literal("class", "function", "object")),
  /** The functions a call may name (empty for a dispatching module). */
  functions: Schema.Array(Schema.String),
  concurrency: Schema.Int,
  /** The active worker's process id. */
  pid: Schema.NullOr(Schema.Number),
  /** 1 for the first worker, +1 for each reload or restart. */
  generation: Schema.Int,
  /** Restarts after crashes since the module was loaded. */
  restarts: Schema.Int,
  running: Schema.Int,
  queued: Schema.Int,
  /** When the active worker became ready (ms since the epoch). */
  loadedAt: Schema.NullOr(Schema.Number),
  /** The last load error or crash, if any. */
  lastError: Schema.NullOr(Schema.String),
  /** The local files the module loaded, watched for changes. */
  files: Schema.Array(Schema.String)
}) {}

/** Something that happened to a module, for operators, logs and tests. */
export class ModuleEvent extends Schema.Class<ModuleEvent>("ModuleEvent")({
  module: Schema.String,
  kind: Schema.Literal(
    "loaded",
    "load-failed",
    "reloaded",
    "reload-failed",
    "crashed",
    "restarted",
    "escalated",
    "unloaded"
  ),
  message: Schema.String,
  generation: Schema.Int,
  pid: Schema.NullOr(Schema.Number),
  at: Schema.Number
}) {}

/** What a reload did: the new generation serving, or (with the error) why the old one still serves. */
export class ReloadOutcome extends Schema.Class<ReloadOutcome>("ReloadOutcome")({
  module: Schema.String,
  generation: Schema.Int,
  pid: Schema.NullOr(Schema.Number),
  /** How long from the start of the reload until the new code served. */
  tookMs: Schema.Number
}) {}

/** What applying a version of the config did, module by module. */
export class ConfigReport extends Schema.Class<ConfigReport>("ConfigReport")({
  /** New modules that loaded. */
  loaded: Schema.Array(Schema.String),
  /** New or changed modules whose code did not load (see their logs). */
  failed: Schema.Array(Schema.String),
  /** Modules whose entry changed and that run the new entry now. */
  reloaded: Schema.Array(Schema.String),
  /** Modules removed from the config and stopped. */
  unloaded: Schema.Array(Schema.String),
  unchanged: Schema.Array(Schema.String),
  /** Invalid entries, skipped, one line each. */
  problems: Schema.Array(Schema.String)
}) {}

