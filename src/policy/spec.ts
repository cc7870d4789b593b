// The built-in policies as data: what a user asks for (`--policy stripe --chunk 64k`, or an
// object from TypeScript), checked against the policy's module (builtin/) before any C is
// compiled, so a bad parameter is one clear error rather than a clang or verifier failure.
import { flagName, paramsFromFlags, resolveParams } from './lang/params.ts';
import type { PolicyValues } from './lang/define.ts';
import { BUILTINS, builtinModuleFile, isBuiltin, policyModule } from './builtin/index.ts';
import { compiledModule } from './build.ts';

export interface StripePolicy {
  policy: 'stripe';
  /** Backing directories per file (2..4). */
  backings: number;
  /** Chunk size in bytes: a multiple of 4096, at least 4 KiB, at most 64 MiB. */
  chunk: number;
  /** Seconds the kernel may cache attributes the program returns (default 1). */
  attrTimeout: number;
}

export interface MirrorPolicy {
  policy: 'mirror';
  /** Replica directories (2..4), all holding the same bytes. */
  backings: number;
  /** Which replica a READ goes to first. */
  read: 'round-robin' | 'primary';
  attrTimeout: number;
}

/** Operations the filter policy may refuse (its module's `deny` parameter allows these). */
export type FilterOp = 'read' | 'write' | 'fsync' | 'flush' | 'fallocate' | 'lseek';

export interface FilterPolicy {
  policy: 'filter';
  /** One backing directory: one backing file per FUSE file, as in fuse-bpf. */
  backings: 1;
  /** Operations the pre-filter refuses with EPERM (the daemon refuses them too). */
  deny: FilterOp[];
  attrTimeout: number;
}

export interface TierPolicy {
  policy: 'tier';
  /** [0] the slow tier (holds every file: the namespace), [1] the fast tier (a cache). */
  backings: 2;
  /** A cold file up to this size is copied to the fast tier at its first open (0: empty ones only). */
  promoteMax: number;
  attrTimeout: number;
}

/** Files matching `match` live in backing directory `to`. */
export interface RouteRule {
  /** "ext": the name ends with `match` (".log"); "prefix": the path starts with it ("logs/"). */
  kind: 'ext' | 'prefix';
  match: string;
  to: number;
}

export interface RoutePolicy {
  policy: 'route';
  /** Backing directories (2..4); files no rule matches live in the first. */
  backings: number;
  /** First match wins. */
  rules: RouteRule[];
  attrTimeout: number;
}

export interface UnionPolicy {
  policy: 'union';
  /** [0] the writable upper directory, [1..] read-only lowers, highest first (2..4). */
  backings: number;
  attrTimeout: number;
}

export type PolicySpec = StripePolicy | MirrorPolicy | FilterPolicy | TierPolicy | RoutePolicy | UnionPolicy;
export type PolicyName = PolicySpec['policy'];

export class PolicyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PolicyError';
  }
}

export interface ParamDoc {
  name: string;
  value: string;
  doc: string;
  default: string;
}

/** A built-in policy as `fuse-kfunc policy --help` lists it: from its module's declarations. */
export interface PolicyInfo {
  name: PolicyName;
  summary: string;
  backings: [number, number];
  params: ParamDoc[];
}

const ATTR_TIMEOUT: ParamDoc = { name: 'attr-timeout', value: 'SECONDS', doc: 'attribute cache time of kernel-served GETATTR', default: '1' };

/** The built-in policies, from their modules (compiled once, then cached). */
export function builtinPolicies(): PolicyInfo[] {
  return (Object.keys(BUILTINS) as PolicyName[]).map((name) => {
    const d = compiledModule(builtinModuleFile(name)).definition;
    const params = Object.entries(d.params).map(([k, p]): ParamDoc => ({
      name: flagName(k).slice(2),
      value: p.kind === 'choice' ? p.choices.join('|') : { size: 'SIZE', int: 'N', rules: 'RULES', ops: 'OPS', string: 'STRING' }[p.kind],
      doc: p.doc,
      default: String(p.default),
    }));
    return { name, summary: d.summary, backings: [d.backings.min, d.backings.max], params: [...params, ATTR_TIMEOUT] };
  });
}

/** "64k", "1m", "65536" -> bytes. */
export function parseSize(v: string, what: string): number {
  const m = /^(\d+)([kKmMgG]?)[iI]?[bB]?$/.exec(v.trim());
  if (!m) throw new PolicyError(`${what}: "${v}" is not a size (use bytes or a k/m/g suffix, e.g. 64k)`);
  const mult = { '': 1, k: 1 << 10, m: 1 << 20, g: 1 << 30 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'];
  return Number(m[1]) * mult;
}

export function isPolicyName(n: string): n is PolicyName {
  return isBuiltin(n);
}

function attrTimeoutOf(v: string | number | undefined): number {
  const n = v === undefined ? 1 : typeof v === 'number' ? v : Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 3600) throw new PolicyError(`--attr-timeout: "${v}" is not a whole number of seconds in 0..3600`);
  return n;
}

/**
 * A policy from its name, parameters (strings, as on the command line, or numbers) and the
 * number of backing directories it will be mounted over: checked against its module's
 * declarations. Throws PolicyError naming the parameter and the fix.
 */
export function makePolicy(name: string, params: Record<string, string | number | undefined>, backings: number): PolicySpec {
  if (!isPolicyName(name)) {
    throw new PolicyError(`unknown policy "${name}": choose one of ${Object.keys(BUILTINS).join(', ')} (fuse-kfunc policy --help)`);
  }
  const { 'attr-timeout': attr, attrTimeout, ...rest } = params;
  const at = attrTimeoutOf(attr ?? attrTimeout);
  const r = resolveParams(compiledModule(builtinModuleFile(name)).definition, paramsFromFlags(rest as Record<string, string>), backings, at);
  return (BUILTINS[name] as { spec(v: PolicyValues, b: number, a: number): PolicySpec }).spec(r.context, backings, at);
}

/** A spec built by hand (mount({ policy: {...} })), checked as makePolicy checks its values. */
export function validatePolicy(spec: PolicySpec): void {
  if (!spec || !isPolicyName(spec.policy)) throw new PolicyError(`unknown policy "${(spec as { policy?: string })?.policy}": choose one of ${Object.keys(BUILTINS).join(', ')}`);
  if (!Number.isInteger(spec.attrTimeout) || spec.attrTimeout < 0) throw new PolicyError(`attrTimeout must be whole seconds >= 0, got ${spec.attrTimeout}`);
  const m = policyModule(spec);
  resolveParams(compiledModule(m.file).definition, m.values, spec.backings, spec.attrTimeout);
}

export function formatRules(rules: RouteRule[]): string {
  return rules.map((r) => `${r.match}=${r.to}`).join(',') || 'none';
}

