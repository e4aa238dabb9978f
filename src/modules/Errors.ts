import * as Schema from "effect/Schema"

/** Why a call to a module, or an operation on one, did not succeed. */
export const ModuleFailure = Schema.Literal(
  /** No module of that name is loaded (it is not in the config, or its entry is invalid). */
  "not-found",
  /** The module has no function of that name (names are case-sensitive). */
  "unknown-function",
  /** The module's function threw or rejected; `traceback` is its stack. */
  "call-failed",
  /** The function's return value cannot be sent back (a function, a symbol, a cycle, ...). */
  "bad-result",
  /** The module's worker died and is being restarted; try again shortly. */
  "restarting",
  /** The worker process died while this call was running in it. */
  "worker-crashed",
  /** The module is not running: its code did not import, or it crashed too often. It restarts when its files change or on reload. */
  "failed",
  /** The module's code (or its new version, on reload) threw while importing or initialising. */
  "import-failed",
  /** The module's import (or init) did not finish within the import timeout; its worker was killed. */
  "import-timeout",
  /** The module's queue of waiting calls is full. */
  "overloaded",
  /** The module was removed from the config while the call waited. */
  "unloaded",
  /** The server is shutting down. */
  "shutting-down"
)
/** Why a call to a module, or an operation on one, did not succeed. */
export type ModuleFailure = typeof ModuleFailure.Type

/** A call to a module, or an operation on one, failed; `reason` says how, `traceback` carries the module's stack when it threw. */
export class ModuleError extends Schema.TaggedError<ModuleError>()("ModuleError", {
  module: Schema.String,
  reason: ModuleFailure,
  message: Schema.String,
  /** The module's stack trace for `call-failed` and `import-failed`; absent otherwise. */
  traceback: Schema.optional(Schema.String)
}) {}

/** The module server's config file could not be used; the modules loaded from its last good version keep running. */
export class ConfigError extends Schema.TaggedError<ConfigError>()("ConfigError", {
  path: Schema.String,
  reason: Schema.Literal("unreadable", "invalid-json", "not-an-object"),
  message: Schema.String
}) {}
