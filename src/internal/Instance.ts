/**
 * An instance of a `Schema.Class` built from fields the caller has already checked, with every
 * field that has a default given: what `new C(fields, true)` builds, without the constructor's
 * copy of the fields and its pass over the class's defaults. For hot paths only.
 */
export const trusted = <C extends abstract new(...args: any) => any>(
  Class: C,
  fields: ConstructorParameters<C>[0]
): InstanceType<C> => Object.assign(Object.create(Class.prototype), fields)
