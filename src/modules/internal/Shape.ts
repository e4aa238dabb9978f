/**
 * What a module's export is, inside a worker: a class (instantiated once, with optional async
 * `init` and `dispose`), a plain function, or an object of functions (the whole namespace with
 * export `*`). It gives the functions a call may name and the help text. No Effect here: this runs
 * in the worker on every call.
 */

/** A module export made callable. */
export interface Shape {
  readonly kind: "class" | "function" | "object"
  /** The object functions are called on (`this`). */
  readonly target: Record<string, unknown> | undefined
  /** The functions a call may name, by name. */
  readonly functions: ReadonlyMap<string, (...args: Array<unknown>) => unknown>
  /** Called once when the worker stops, if the module has one. */
  readonly dispose: (() => unknown) | undefined
  /** The module's own help text, if it defines one (`help` or `_help`: a string, or a function returning one). */
  readonly ownHelp: (() => unknown) | undefined
}

/** Names never offered as callable functions: lifecycle hooks, help, and private names. */
export const hidden = (name: string): boolean =>
  name === "constructor" || name === "init" || name === "dispose" || name === "help" || name.startsWith("_")

/**
 * Finds the export in a module namespace and prepares it: a class is instantiated and its `init`
 * awaited. A TypeScript file compiled as CommonJS keeps its exports under `default`; they are
 * looked up there too. Throws with a clear message when the export is missing or not usable.
 */
export const prepare = async (namespace: Record<string, unknown>, exportName: string, file: string): Promise<Shape> => {
  const value = lookup(namespace, exportName)
  if (value === undefined || value === null) {
    const fallback = namespace["default"]
    const names = [
      ...Object.keys(namespace).filter((k) => k !== "default" || typeof fallback !== "object" || fallback === null),
      ...(typeof fallback === "object" && fallback !== null ? Object.keys(fallback) : [])
    ]
    throw new Error(`${file} has no export "${exportName}" (its exports: ${names.join(", ") || "none"})`)
  }
  const ownHelp = helpOf(namespace, value)
  if (typeof value === "function" && isClass(value)) {
    const instance = new (value as new() => Record<string, unknown>)()
    if (typeof instance.init === "function") await instance.init()
    return shapeOf("class", instance, ownHelp ?? helpOf(value, instance))
  }
  if (typeof value === "function") {
    const name = exportName === "default" || exportName === "*" ? (value.name || exportName) : exportName
    return {
      kind: "function",
      target: undefined,
      functions: new Map([[name, value as (...args: Array<unknown>) => unknown]]),
      dispose: undefined,
      ownHelp
    }
  }
  if (typeof value === "object") {
    const target = value as Record<string, unknown>
    if (typeof target.init === "function") await target.init()
    return shapeOf("object", target, ownHelp)
  }
  throw new Error(`export "${exportName}" of ${file} is a ${typeof value}: expected a class, a function or an object of functions`)
}

/** The generated help: the module's functions with their parameters, or a note on its dispatch method. */
export const generatedHelp = (
  name: string,
  shape: Pick<Shape, "kind" | "functions">,
  dispatch: string | null,
  exportName: string
): string => {
  const head = `${name}: ${shape.kind} ${exportName === "*" ? "(the module's exports)" : exportName}`
  if (dispatch !== null) {
    return `${head}\nEvery call goes through its dispatch method ${dispatch}(clientIp, fn, ...args); ` +
      `the module has no help of its own (export a "help" string or function to add one).`
  }
  const lines = Array.from(shape.functions, ([fn, f]) => `  ${signature(fn, f)}`)
  return `${head}\nCall with positional arguments.\nFunctions:\n${lines.length > 0 ? lines.join("\n") : "  (none)"}`
}

/** `name(params)` for a function, its parameter list read from its source. */
export const signature = (name: string, f: Function): string => `${name}(${parameters(f)})`

// ---------------------------------------------------------------------------------------------
// private

const lookup = (namespace: Record<string, unknown>, exportName: string): unknown => {
  if (exportName === "*") {
    // The namespace itself, or (for a CommonJS build of ESM source) the object under default.
    const own = Object.fromEntries(Object.entries(namespace).filter(([k]) => k !== "default"))
    const fallback = namespace["default"]
    return Object.keys(own).length === 0 && typeof fallback === "object" && fallback !== null ? fallback : own
  }
  if (exportName in namespace) return namespace[exportName]
  const fallback = namespace["default"]
  if (typeof fallback === "object" && fallback !== null && exportName in fallback) return Reflect.get(fallback, exportName) as unknown
  return undefined
}

const isClass = (f: Function): boolean => /^class[\s{]/.test(Function.prototype.toString.call(f))

const helpOf = (holder: object, self: unknown): (() => unknown) | undefined => {
  for (const key of ["help", "_help"]) {
    const value: unknown = Reflect.get(holder, key)
    if (typeof value === "string") return () => value
    if (typeof value === "function" && !isClass(value)) return () => (value as Function).call(self)
  }
  return undefined
}

const shapeOf = (kind: "class" | "object", target: Record<string, unknown>, ownHelp: (() => unknown) | undefined): Shape => {
  const functions = new Map<string, (...args: Array<unknown>) => unknown>()
  for (let proto: object | null = target; proto !== null && proto !== Object.prototype; proto = Object.getPrototypeOf(proto)) {
    for (const key of Object.getOwnPropertyNames(proto)) {
      if (hidden(key) || functions.has(key)) continue
      const descriptor = Object.getOwnPropertyDescriptor(proto, key)
      // An own getter is read (a CommonJS build exports through getters); a getter up the chain is a property, not a method.
      const value = descriptor?.get !== undefined && proto === target ? target[key] : descriptor?.value
      if (typeof value === "function" && !isClass(value)) functions.set(key, value)
    }
  }
  return {
    kind,
    target,
    functions,
    dispose: disposeOf(target),
    ownHelp: ownHelp ?? helpOf(target, target)
  }
}

// The module's dispose, called on the module (its `this`), if it has one.
const disposeOf = (target: Record<string, unknown>): (() => unknown) | undefined => {
  const dispose = target.dispose
  return typeof dispose === "function" ? () => dispose.call(target) : undefined
}

// The text between a function's first parenthesis and its match; an arrow with one bare parameter too.
const parameters = (f: Function): string => {
  const source = Function.prototype.toString.call(f)
  const open = source.indexOf("(")
  const arrow = source.indexOf("=>")
  if (arrow !== -1 && (open === -1 || arrow < open)) return source.slice(0, arrow).replace(/^async\s+/, "").trim()
  if (open === -1) return ""
  let depth = 0
  let quote: string | undefined
  for (let i = open; i < source.length; i++) {
    const c = source[i]!
    if (quote !== undefined) {
      if (c === "\\") i++
      else if (c === quote) quote = undefined
      continue
    }
    if (c === "\"" || c === "'" || c === "`") quote = c
    else if (c === "(" || c === "[" || c === "{") depth++
    else if (c === ")" || c === "]" || c === "}") {
      depth--
      if (depth === 0) return source.slice(open + 1, i).replace(/\s+/g, " ").trim()
    }
  }
  return ""
}
