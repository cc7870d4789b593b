// The package's entry point: `import { definePolicy, mount } from 'fuse-kfunc'`. Writing a
// policy module (definePolicy, param), mounting (mount, makePolicy for the built-in
// policies), checking a module (checkPolicy) and the errors each can throw.
export { definePolicy, param, errno, ACCESS_OPS } from './policy/lang/define.ts';
export type {
  Policy, PolicyDefinition, PolicyContext, PolicyValues, Segment, ParamDecl, SizeParam, IntParam, ChoiceParam, RulesParam, OpsParam, StringParam, NameRule, AccessOp,
  LayoutHooks, ReplicaHooks, PlacementHooks, LayerHooks, TierHooks, AccessHooks, SpreadHooks,
} from './policy/lang/define.ts';
export { mount, MountError } from './sdk/mount.ts';
export type { MountOptions, MountHandle, MountMode } from './sdk/mount.ts';
export { makePolicy, PolicyError } from './policy/spec.ts';
export type { PolicySpec } from './policy/spec.ts';
export { checkPolicy, formatCheck } from './policy/check.ts';
export type { CheckReport, CheckStep } from './policy/check.ts';
export { PolicyCompileError } from './policy/compiler/translate.ts';
export type { CompileDiagnostic } from './policy/compiler/translate.ts';
