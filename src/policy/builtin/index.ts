// The built-in policies written as policy modules, by file: the compiler reads each module's
// source (which ships with the package under src/policy/builtin/), and the daemon runs the
// functions compiled from it, so neither needs to import the module.
import { join } from 'node:path';
import { formatRules, type PolicySpec } from '../spec.ts';
import { repoRoot } from '../../util/paths.ts';

export const BUILTIN_MODULES = {
  stripe: 'stripe.ts',
  mirror: 'mirror.ts',
  route: 'route.ts',
  union: 'union.ts',
  tier: 'tier.ts',
  filter: 'filter.ts',
} as const;

export function builtinModuleFile(name: keyof typeof BUILTIN_MODULES): string {
  return join(repoRoot(), 'src', 'policy', 'builtin', BUILTIN_MODULES[name]);
}

/** The module a built-in policy's spec is an instance of, with its parameter values. */
export function policyModule(spec: PolicySpec): { file: string; values: Record<string, number | string> } {
  if (spec.policy === 'stripe') return { file: builtinModuleFile('stripe'), values: { chunk: spec.chunk } };
  if (spec.policy === 'mirror') return { file: builtinModuleFile('mirror'), values: { read: spec.read } };
  if (spec.policy === 'filter') return { file: builtinModuleFile('filter'), values: { deny: spec.deny.join(',') || 'none' } };
  if (spec.policy === 'tier') return { file: builtinModuleFile('tier'), values: { promoteMax: spec.promoteMax } };
  if (spec.policy === 'union') return { file: builtinModuleFile('union'), values: {} };
  if (spec.policy === 'route') return { file: builtinModuleFile('route'), values: { rules: formatRules(spec.rules) } };
  throw new Error(`no module for the ${(spec as { policy: string }).policy} policy`);
}
