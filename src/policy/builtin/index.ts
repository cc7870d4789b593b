// The registry of built-in policies: each is a policy module (this folder), and here is how
// its parameter values become the typed spec the SDK takes (makePolicy) and back. The
// module's declarations are the only check of a value (lang/params.ts); the compiler reads
// each module's source, which ships with the package, so neither needs to import it.
import { join } from 'node:path';
import { repoRoot } from '../../util/paths.ts';
import type { AccessOp, NameRule, PolicyValues } from '../lang/define.ts';
import type { FilterPolicy, MirrorPolicy, PolicyName, PolicySpec, RoutePolicy, StripePolicy, TierPolicy, UnionPolicy } from '../spec.ts';

type Values = Record<string, string | number | readonly NameRule[] | readonly string[]>;

interface Builtin<S extends PolicySpec> {
  file: string;
  /** The spec of a mount with these (checked) values. */
  spec(v: PolicyValues, backings: number, attrTimeout: number): S;
  /** The module's parameter values of a spec. */
  values(s: S): Values;
}

const rules = (v: PolicyValues) => (v.rules as readonly NameRule[]).map((r) => ({ kind: r.match.endsWith('/') ? 'prefix' as const : 'ext' as const, match: r.match, to: r.to }));

export const BUILTINS: { [N in PolicyName]: Builtin<Extract<PolicySpec, { policy: N }>> } = {
  stripe: {
    file: 'stripe.ts',
    spec: (v, backings, attrTimeout): StripePolicy => ({ policy: 'stripe', backings, chunk: v.chunk as number, attrTimeout }),
    values: (s) => ({ chunk: s.chunk }),
  },
  mirror: {
    file: 'mirror.ts',
    spec: (v, backings, attrTimeout): MirrorPolicy => ({ policy: 'mirror', backings, read: v.read as MirrorPolicy['read'], attrTimeout }),
    values: (s) => ({ read: s.read }),
  },
  tier: {
    file: 'tier.ts',
    spec: (v, _backings, attrTimeout): TierPolicy => ({ policy: 'tier', backings: 2, promoteMax: v.promoteMax as number, attrTimeout }),
    values: (s) => ({ promoteMax: s.promoteMax }),
  },
  route: {
    file: 'route.ts',
    spec: (v, backings, attrTimeout): RoutePolicy => ({ policy: 'route', backings, rules: rules(v), attrTimeout }),
    values: (s) => ({ rules: s.rules }),
  },
  union: {
    file: 'union.ts',
    spec: (_v, backings, attrTimeout): UnionPolicy => ({ policy: 'union', backings, attrTimeout }),
    values: () => ({}),
  },
  filter: {
    file: 'filter.ts',
    spec: (v, _backings, attrTimeout): FilterPolicy => ({ policy: 'filter', backings: 1, deny: [...(v.deny as readonly AccessOp[])] as FilterPolicy['deny'], attrTimeout }),
    values: (s) => ({ deny: s.deny }),
  },
};

export function isBuiltin(name: string): name is PolicyName {
  return Object.hasOwn(BUILTINS, name);
}

export function builtinModuleFile(name: PolicyName): string {
  return join(repoRoot(), 'src', 'policy', 'builtin', BUILTINS[name].file);
}

/** The module a built-in policy's spec is an instance of, with its parameter values. */
export function policyModule(spec: PolicySpec): { file: string; values: Values } {
  const b = BUILTINS[spec.policy] as Builtin<PolicySpec>;
  return { file: builtinModuleFile(spec.policy), values: b.values(spec) };
}
