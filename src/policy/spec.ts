// Policies as data: what a user asks for (`--policy stripe --chunk 64k`, or an object from
// TypeScript), validated before any C is generated, so a bad parameter is one clear error
// rather than a clang or verifier failure.
import { checkNameRule, parseNameRules } from './lang/params.ts';

export const MAX_BACKINGS = 4;
/** The largest FUSE request (max_pages 256): bounds the generated loops. */
export const MAX_REQUEST = 1 << 20;

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

/** Operations the filter policy serves in the kernel, each through a pre- and post-filter. */
export const FILTER_OPS = ['read', 'write', 'getattr', 'fsync', 'flush', 'fallocate', 'lseek', 'getxattr', 'listxattr'] as const;
export type FilterOp = (typeof FILTER_OPS)[number];
/**
 * What --deny may refuse: operations on an open file's handle, which the daemon sees for
 * exactly the files the program serves. GETATTR and the xattr reads are not: the program
 * answers them for any open inode, also by path, which the daemon cannot tell apart.
 */
export const DENIABLE = FILTER_OPS.filter((o) => o !== 'getattr' && o !== 'getxattr' && o !== 'listxattr');

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
  /** A cold file up to this size is copied to the fast tier at its first open (0: never). */
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
  default?: string;
}

/** What `fuse-kfunc policy --help` and the docs list. */
export const POLICIES: Record<PolicyName, { summary: string; backings: [number, number]; params: ParamDoc[] }> = {
  stripe: {
    backings: [2, MAX_BACKINGS],
    summary: 'one FUSE file over N backing files in fixed-size chunks (RAID-0); READ/WRITE/GETATTR/xattr reads in the kernel',
    params: [
      { name: 'chunk', value: 'SIZE', doc: 'chunk size: a multiple of 4k, 4k..64m (k, m suffixes)', default: '64k' },
      { name: 'attr-timeout', value: 'SECONDS', doc: 'attribute cache time of kernel-served GETATTR', default: '1' },
    ],
  },
  mirror: {
    backings: [2, MAX_BACKINGS],
    summary: 'every file on N replicas: WRITE to all, READ from one with fail-over; READ/WRITE/GETATTR/xattr reads in the kernel',
    params: [
      { name: 'read', value: 'round-robin|primary', doc: 'replica a READ tries first', default: 'round-robin' },
      { name: 'attr-timeout', value: 'SECONDS', doc: 'attribute cache time of kernel-served GETATTR', default: '1' },
    ],
  },
  tier: {
    backings: [2, 2],
    summary: 'SLOW FAST: READ from the fast tier when the file is there, else from the slow one; the daemon copies cold files up at open; WRITE to both (write-through); READ/WRITE/GETATTR/xattr reads in the kernel',
    params: [
      { name: 'promote-max', value: 'SIZE', doc: 'largest cold file copied to the fast tier at its first open; 0: never', default: '64m' },
      { name: 'attr-timeout', value: 'SECONDS', doc: 'attribute cache time of kernel-served GETATTR', default: '1' },
    ],
  },
  route: {
    backings: [2, MAX_BACKINGS],
    summary: 'each file in one backing directory chosen by its name (extension or path prefix); directories in all; READ/WRITE/GETATTR/xattr reads in the kernel, counted per directory',
    params: [
      { name: 'rules', value: 'RULES', doc: 'comma list of PATTERN=INDEX: ".log=1" by extension, "logs/=2" by path prefix; first match wins, unmatched files in backing 0', default: 'none' },
      { name: 'attr-timeout', value: 'SECONDS', doc: 'attribute cache time of kernel-served GETATTR', default: '1' },
    ],
  },
  union: {
    backings: [2, MAX_BACKINGS],
    summary: 'UPPER LOWER...: a writable upper directory over read-only lowers; copy-up before writing, whiteouts hide deletions; READ/WRITE/GETATTR/xattr reads in the kernel, counted per layer',
    params: [
      { name: 'attr-timeout', value: 'SECONDS', doc: 'attribute cache time of kernel-served GETATTR', default: '1' },
    ],
  },
  filter: {
    backings: [1, 1],
    summary: 'the fuse-bpf filter design on this hook: one backing file per FUSE file, a pre- and post-filter around each of READ WRITE GETATTR FSYNC FLUSH FALLOCATE LSEEK GETXATTR LISTXATTR',
    params: [
      { name: 'deny', value: 'OPS', doc: `comma list of ${DENIABLE.join(',')} the pre-filter refuses (EPERM), or none`, default: 'none' },
      { name: 'attr-timeout', value: 'SECONDS', doc: 'attribute cache time of kernel-served GETATTR', default: '1' },
    ],
  },
};

/** "64k", "1m", "65536" -> bytes. */
export function parseSize(v: string, what: string): number {
  const m = /^(\d+)([kKmMgG]?)[iI]?[bB]?$/.exec(v.trim());
  if (!m) throw new PolicyError(`${what}: "${v}" is not a size (use bytes or a k/m/g suffix, e.g. 64k)`);
  const mult = { '': 1, k: 1 << 10, m: 1 << 20, g: 1 << 30 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'];
  return Number(m[1]) * mult;
}

export function isPolicyName(n: string): n is PolicyName {
  return Object.hasOwn(POLICIES, n);
}

/**
 * A policy from its name, parameters (strings, as on the command line, or numbers) and the
 * number of backing directories it will be mounted over. Throws PolicyError naming the
 * parameter and the fix.
 */
export function makePolicy(name: string, params: Record<string, string | number | undefined>, backings: number): PolicySpec {
  if (!isPolicyName(name)) {
    throw new PolicyError(`unknown policy "${name}": choose one of ${Object.keys(POLICIES).join(', ')} (fuse-kfunc policy --help)`);
  }
  const known = new Set(POLICIES[name].params.map((p) => p.name));
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && !known.has(k)) {
      throw new PolicyError(`${name} has no parameter "${k}" (it takes ${[...known].map((p) => `--${p}`).join(', ')})`);
    }
  }
  const [lo, hi] = POLICIES[name].backings;
  if (!Number.isInteger(backings) || backings < lo || backings > hi) {
    throw new PolicyError(`${name} needs ${lo === hi ? lo : `${lo}..${hi}`} backing director${hi === 1 ? 'y' : 'ies'}, got ${backings}`);
  }
  const size = (k: string, dflt: string) => {
    const v = params[k] ?? dflt;
    return typeof v === 'number' ? v : parseSize(v, `--${k}`);
  };
  const seconds = (k: string, dflt: number) => {
    const v = params[k] ?? dflt;
    const n = typeof v === 'number' ? v : Number(v);
    if (!Number.isInteger(n) || n < 0 || n > 3600) throw new PolicyError(`--${k}: "${v}" is not a whole number of seconds in 0..3600`);
    return n;
  };
  let spec: PolicySpec;
  if (name === 'union') {
    spec = { policy: 'union', backings, attrTimeout: seconds('attr-timeout', 1) };
  } else if (name === 'tier') {
    spec = { policy: 'tier', backings: 2, promoteMax: size('promote-max', '64m'), attrTimeout: seconds('attr-timeout', 1) };
  } else if (name === 'route') {
    spec = { policy: 'route', backings, rules: parseRules(String(params.rules ?? 'none'), backings), attrTimeout: seconds('attr-timeout', 1) };
  } else if (name === 'stripe') {
    spec = { policy: 'stripe', backings, chunk: size('chunk', '64k'), attrTimeout: seconds('attr-timeout', 1) };
  } else if (name === 'filter') {
    const v = String(params.deny ?? 'none').trim();
    const deny = v === 'none' || v === '' ? [] : v.split(',').map((x) => x.trim().toLowerCase());
    for (const d of deny) {
      if (!(DENIABLE as readonly string[]).includes(d)) throw new PolicyError(`filter --deny: "${d}" is not one of ${DENIABLE.join(', ')}`);
    }
    spec = { policy: 'filter', backings: 1, deny: [...new Set(deny)] as FilterOp[], attrTimeout: seconds('attr-timeout', 1) };
  } else {
    const read = String(params.read ?? 'round-robin');
    if (read !== 'round-robin' && read !== 'primary') throw new PolicyError(`mirror --read: "${read}" is not round-robin or primary`);
    spec = { policy: 'mirror', backings, read, attrTimeout: seconds('attr-timeout', 1) };
  }
  validatePolicy(spec);
  return spec;
}

/** ".log=1,logs/=2" -> rules, checked against the number of backing directories. */
export function parseRules(v: string, backings: number): RouteRule[] {
  return parseNameRules(v, 'route --rules', backings).map((r) => ({ kind: r.match.endsWith('/') ? 'prefix' : 'ext', ...r }));
}

export function validatePolicy(spec: PolicySpec): void {
  if (!isPolicyName(spec.policy)) throw new PolicyError(`unknown policy "${(spec as { policy: string }).policy}"`);
  const [lo, hi] = POLICIES[spec.policy].backings;
  if (!Number.isInteger(spec.backings) || spec.backings < lo || spec.backings > hi) {
    throw new PolicyError(`${spec.policy} needs ${lo}..${hi} backings, got ${spec.backings}`);
  }
  if (!Number.isInteger(spec.attrTimeout) || spec.attrTimeout < 0) throw new PolicyError(`attrTimeout must be whole seconds >= 0, got ${spec.attrTimeout}`);
  if (spec.policy === 'union') return;
  if (spec.policy === 'tier') {
    if (!Number.isInteger(spec.promoteMax) || spec.promoteMax < 0) throw new PolicyError(`tier --promote-max must be a size >= 0, got ${spec.promoteMax}`);
    return;
  }
  if (spec.policy === 'route') {
    if (!Array.isArray(spec.rules)) throw new PolicyError('route rules must be a list of { kind, match, to }');
    for (const r of spec.rules) checkNameRule(r, spec.backings, 'route rules');
    return;
  }
  if (spec.policy === 'filter') {
    for (const d of spec.deny) if (!(DENIABLE as readonly string[]).includes(d)) throw new PolicyError(`filter deny: "${d}" is not one of ${DENIABLE.join(', ')}`);
    return;
  }
  if (spec.policy === 'mirror') {
    if (spec.read !== 'round-robin' && spec.read !== 'primary') throw new PolicyError(`mirror read must be round-robin or primary, got ${spec.read}`);
    return;
  }
  const c = spec.chunk;
  if (!Number.isInteger(c) || c <= 0) throw new PolicyError(`stripe --chunk must be a positive number of bytes, got ${c}`);
  if (c % 4096 !== 0) throw new PolicyError(`stripe --chunk ${c} is not a multiple of 4096 (4k): chunks are whole pages`);
  if (c > 64 << 20) throw new PolicyError(`stripe --chunk ${c} is larger than 64m`);
}

export function formatSize(n: number): string {
  if (n % (1 << 20) === 0) return `${n >> 20} MiB`;
  if (n % 1024 === 0) return `${n >> 10} KiB`;
  return `${n} bytes`;
}

export function formatRules(rules: RouteRule[]): string {
  return rules.map((r) => `${r.match}=${r.to}`).join(',') || 'none';
}

