// The built-in policies written as policy modules. Each is found by the compiler through its
// source file, which ships with the package under src/policy/builtin/ (also when the CLI
// runs from its bundle, where the stack would name dist/ instead).
import { join } from 'node:path';
import type { Policy } from '../lang/define.ts';
import type { PolicySpec } from '../spec.ts';
import { repoRoot } from '../../util/paths.ts';
import stripe from './stripe.ts';

function shipped(p: Policy, file: string): Policy {
  return Object.freeze({ ...p, sourceFile: join(repoRoot(), 'src', 'policy', 'builtin', file) });
}

export const BUILTIN_MODULES = {
  stripe: shipped(stripe, 'stripe.ts'),
} satisfies Record<string, Policy>;

export type BuiltinModuleName = keyof typeof BUILTIN_MODULES;

/** The policy module a spec is an instance of, with its parameter values, if it is one. */
export function policyModule(spec: PolicySpec): { module: Policy; values: Record<string, number | string> } | undefined {
  if (spec.policy === 'stripe') return { module: BUILTIN_MODULES.stripe, values: { chunk: spec.chunk } };
  return undefined;
}
