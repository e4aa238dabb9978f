/**
 * An instance of a `Schema.Class` built from fields the caller has already checked, with every
 * field that has a default given: what `new C(fields, true)` builds, without the constructor's
 * copy of the fields and its pass over the class's defaults. For hot paths only.
 */
export const trusted = <Fields, A>(
  Class: abstract new(fields: Fields, ...rest: ReadonlyArray<never>) => A,
  fields: Fields
): A => Object.assign(Object.create(Class.prototype) as A & object, fields)
