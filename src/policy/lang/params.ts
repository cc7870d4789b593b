// Parameter values of a policy module: parsed from the command line or an object, checked
// against their declarations (a bad value is one clear error naming the parameter and what
// it accepts), and turned into the context the functions see and the globals the loader
// sets in the program before load.
import { ACCESS_OPS, type AccessOp, type NameRule, type ParamDecl, type PolicyValues } from './define.ts';
import { PolicyError, parseSize } from '../spec.ts';

/** camelCase -> snake_case, for C names. */
export function snake(name: string): string {
  return name.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
}

/** `chunkSize` -> `--chunk-size`, as the command line spells it. */
export function flagName(name: string): string {
  return `--${snake(name).replace(/_/g, '-')}`;
}

/** Command-line parameters (`chunk-size`) as the module names them (`chunkSize`): flagName's inverse. */
export function paramsFromFlags(flags: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(flags).map(([k, v]) => [k.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase()), v]));
}

function sizeOf(v: number | string, what: string): number {
  return typeof v === 'number' ? v : parseSize(v, what);
}

/** Rules a rules parameter holds at most, and bytes of a pattern (bpf/runtime/policy.bpf.h). */
export const RULES_MAX = 8;
export const MATCH_MAX = 56;

/** One name rule checked: an extension or a relative directory prefix, a backing that exists. */
export function checkNameRule(r: NameRule, backings: number | undefined, what: string): void {
  const rule = `${what}: rule "${r.match}=${r.to}"`;
  if (!Number.isInteger(r.to) || r.to < 0 || (backings !== undefined && r.to >= backings)) {
    throw new PolicyError(`${rule}: backing ${r.to} does not exist${backings !== undefined ? ` (0..${backings - 1} for ${backings} directories)` : ''}`);
  }
  if (Buffer.byteLength(r.match) > MATCH_MAX) throw new PolicyError(`${rule}: a pattern has at most ${MATCH_MAX} bytes`);
  if (r.match.endsWith('/')) {
    if (r.match.startsWith('/') || r.match.split('/').slice(0, -1).some((c) => c === '' || c === '.' || c === '..')) {
      throw new PolicyError(`${rule}: a prefix is a relative directory path ending in "/", without "." or ".." (e.g. logs/ or a/b/)`);
    }
  } else if (!/^\.[^/,=]+$/.test(r.match)) {
    throw new PolicyError(`${rule}: an extension starts with "." and has no "/" (e.g. .log); a directory prefix ends with "/"`);
  }
}

/** "PATTERN=INDEX,..." (or 'none') -> rules, each checked (against `backings` when given). */
export function parseNameRules(v: string | readonly NameRule[], what: string, backings?: number): NameRule[] {
  const rules = typeof v !== 'string' ? v.map((r) => ({ match: String(r.match), to: Number(r.to) }))
    : v.trim() === '' || v.trim() === 'none' ? []
      : v.trim().split(',').map((part) => {
        const m = /^(.+)=(\d+)$/.exec(part.trim());
        if (!m) throw new PolicyError(`${what}: "${part}" is not PATTERN=INDEX (e.g. .log=1 or logs/=1)`);
        return { match: m[1]!.trim(), to: Number(m[2]) };
      });
  if (rules.length > RULES_MAX) throw new PolicyError(`${what}: ${rules.length} rules, at most ${RULES_MAX}`);
  for (const r of rules) checkNameRule(r, backings, what);
  return rules;
}

/** Rules as the C global holds them: struct policy_rule { __u32 to, len; char match[MATCH_MAX]; }[RULES_MAX]. */
export function encodeRules(rules: readonly NameRule[]): number[] {
  const b = Buffer.alloc(RULES_MAX * (8 + MATCH_MAX));
  rules.forEach((r, i) => {
    const at = i * (8 + MATCH_MAX);
    const m = Buffer.from(r.match);
    b.writeUInt32LE(r.to, at);
    b.writeUInt32LE(m.length, at + 4);
    m.copy(b, at + 8);
  });
  return [...b];
}

/** FUSE opcodes of the access operations (include/uapi/linux/fuse.h), for the C's bit masks. */
export const OPCODES: Record<AccessOp, number> = {
  getattr: 3, read: 15, write: 16, fsync: 20, getxattr: 22, listxattr: 23, flush: 25, fallocate: 43, lseek: 46,
};

/** "write,fallocate" (or 'none') -> operations, each one the declaration allows. */
export function parseOps(v: string | readonly string[], what: string, allowed: readonly string[] = ACCESS_OPS): AccessOp[] {
  const list = typeof v !== 'string' ? [...v] : v.trim() === '' || v.trim() === 'none' ? [] : v.split(',').map((x) => x.trim().toLowerCase());
  for (const op of list) {
    if (!allowed.includes(op)) throw new PolicyError(`${what}: "${op}" is not one of ${allowed.join(', ')}`);
  }
  return [...new Set(list)] as AccessOp[];
}

/** Operations as the C's bit mask: bit N for FUSE opcode N. */
export function opsMask(ops: readonly AccessOp[]): number {
  return ops.reduce((m, op) => m + 2 ** OPCODES[op], 0);
}

/** The default as the number the C global starts with (a rules parameter: how many). */
export function paramDefault(name: string, d: ParamDecl): number {
  if (d.kind === 'choice') return d.choices.indexOf(d.default);
  if (d.kind === 'rules') return parseNameRules(d.default, flagName(name)).length;
  if (d.kind === 'ops') return opsMask(parseOps(d.default, flagName(name), d.allowed));
  if (d.kind === 'string') return Buffer.byteLength(d.default);
  return d.kind === 'size' ? sizeOf(d.default, flagName(name)) : d.default;
}

/** One value checked against its declaration: a number (sizes, ints), a choice's name, rules. */
export function paramValue(name: string, d: ParamDecl, given: string | number | readonly NameRule[] | readonly string[] | undefined, backings?: number): number | string | NameRule[] | AccessOp[] {
  const what = flagName(name);
  if (d.kind === 'ops') {
    if (typeof given === 'number' || (Array.isArray(given) && given.some((x) => typeof x !== 'string'))) throw new PolicyError(`${what}: ${JSON.stringify(given)} is not a list of operations (e.g. write,fallocate)`);
    return parseOps((given ?? d.default) as string | string[], what, d.allowed);
  }
  if (d.kind === 'rules') {
    if (typeof given === 'number') throw new PolicyError(`${what}: ${given} is not PATTERN=INDEX,... (e.g. .log=1,logs/=2)`);
    if (Array.isArray(given) && given.some((x) => typeof x !== 'object')) throw new PolicyError(`${what}: a list of { match, to } rules`);
    return parseNameRules((given ?? d.default) as string | NameRule[], what, backings);
  }
  if (Array.isArray(given)) throw new PolicyError(`${what}: a list is not a ${d.kind}`);
  if (d.kind === 'string') {
    const v = String(given ?? d.default);
    if (Buffer.byteLength(v) > MATCH_MAX) throw new PolicyError(`${what}: "${v}" has more than ${MATCH_MAX} bytes`);
    if (v.includes('\0')) throw new PolicyError(`${what}: a string without NUL bytes`);
    return v;
  }
  if (given !== undefined && typeof given !== 'string' && typeof given !== 'number') throw new PolicyError(`${what}: ${String(given)} is not a ${d.kind}`);
  if (d.kind === 'choice') {
    const v = String(given ?? d.default);
    if (!d.choices.includes(v)) throw new PolicyError(`${what}: "${v}" is not one of ${d.choices.join(', ')}`);
    return v;
  }
  let v: number;
  if (d.kind === 'size') {
    v = sizeOf(given ?? d.default, what);
  } else {
    v = typeof given === 'number' ? given : given === undefined ? d.default : Number(given);
    if (!Number.isSafeInteger(v)) throw new PolicyError(`${what}: "${given}" is not a whole number`);
  }
  const show = (x: number | string | undefined) => String(x);
  const min = d.min === undefined ? undefined : d.kind === 'size' ? sizeOf(d.min, what) : d.min;
  const max = d.max === undefined ? undefined : d.kind === 'size' ? sizeOf(d.max, what) : d.max;
  if (!Number.isSafeInteger(v) || v < 0) throw new PolicyError(`${what}: "${given}" is not a ${d.kind === 'size' ? 'size' : 'whole number'} >= 0`);
  if (min !== undefined && v < min) throw new PolicyError(`${what}: ${v} is smaller than ${show(d.min)}`);
  if (max !== undefined && v > max) throw new PolicyError(`${what}: ${v} is larger than ${show(d.max)}`);
  if (d.kind === 'size' && d.multipleOf !== undefined) {
    const m = sizeOf(d.multipleOf, what);
    if (v % m !== 0) throw new PolicyError(`${what}: ${v} is not a multiple of ${show(d.multipleOf)}`);
  }
  return v;
}

export interface ResolvedParams {
  /** What the functions see as their context `p`. */
  context: PolicyValues;
  /** The program's globals to set before load (policy.bpf.h's and the param_* ones); bytes as number[]. */
  globals: Record<string, number | number[]>;
}

/**
 * The values of every parameter for a mount over `backings` directories, from what the user
 * gave (missing ones take their defaults; unknown ones are an error naming the known ones).
 */
export function resolveParams(policy: { name: string; backings: { min: number; max: number }; params: Record<string, ParamDecl> }, given: Record<string, string | number | readonly NameRule[] | readonly string[] | undefined>, backings: number, attrTimeout: number): ResolvedParams {
  for (const [k, v] of Object.entries(given)) {
    if (v !== undefined && !Object.hasOwn(policy.params, k)) {
      const known = Object.keys(policy.params).map(flagName);
      throw new PolicyError(`${policy.name} has no parameter ${flagName(k)}${known.length ? ` (it takes ${known.join(', ')})` : ' (it takes none)'}`);
    }
  }
  const { min, max } = policy.backings;
  if (!Number.isInteger(backings) || backings < min || backings > max) {
    throw new PolicyError(`${policy.name} needs ${min === max ? min : `${min}..${max}`} backing director${max === 1 ? 'y' : 'ies'}, got ${backings}`);
  }
  const context: Record<string, number | string | NameRule[] | AccessOp[]> = { backings };
  const globals: Record<string, number | number[]> = { policy_backings: backings, policy_attr_timeout: attrTimeout };
  for (const [name, d] of Object.entries(policy.params)) {
    const v = paramValue(name, d, given[name], backings);
    context[name] = v;
    const c = `param_${snake(name)}`;
    if (d.kind === 'rules') {
      globals[c] = encodeRules(v as NameRule[]);
      globals[`${c}_len`] = (v as NameRule[]).length;
    } else if (d.kind === 'ops') globals[c] = opsMask(v as AccessOp[]);
    else if (d.kind === 'string') {
      const bytes = Buffer.alloc(MATCH_MAX);
      Buffer.from(v as string).copy(bytes);
      globals[c] = [...bytes];
      globals[`${c}_len`] = Buffer.byteLength(v as string);
    }
    else globals[c] = d.kind === 'choice' ? d.choices.indexOf(v as string) : (v as number);
  }
  return { context: context as PolicyValues, globals };
}
