// Parameter values of a policy module: parsed from the command line or an object, checked
// against their declarations (a bad value is one clear error naming the parameter and what
// it accepts), and turned into the context the functions see and the globals the loader
// sets in the program before load.
import type { ParamDecl } from './define.ts';
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

/** The default as the number the C global starts with. */
export function paramDefault(name: string, d: ParamDecl): number {
  if (d.kind === 'choice') return d.choices.indexOf(d.default);
  return d.kind === 'size' ? sizeOf(d.default, flagName(name)) : d.default;
}

/** One value checked against its declaration: a number (sizes, ints) or a choice's name. */
export function paramValue(name: string, d: ParamDecl, given: string | number | undefined): number | string {
  const what = flagName(name);
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
  context: Record<string, number | string> & { backings: number };
  /** The program's globals to set before load (policy.bpf.h's and the param_* ones). */
  globals: Record<string, number>;
}

/**
 * The values of every parameter for a mount over `backings` directories, from what the user
 * gave (missing ones take their defaults; unknown ones are an error naming the known ones).
 */
export function resolveParams(policy: { name: string; backings: { min: number; max: number }; params: Record<string, ParamDecl> }, given: Record<string, string | number | undefined>, backings: number, attrTimeout: number): ResolvedParams {
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
  const context: Record<string, number | string> & { backings: number } = { backings };
  const globals: Record<string, number> = { policy_backings: backings, policy_attr_timeout: attrTimeout };
  for (const [name, d] of Object.entries(policy.params)) {
    const v = paramValue(name, d, given[name]);
    context[name] = v;
    globals[`param_${snake(name)}`] = d.kind === 'choice' ? d.choices.indexOf(v as string) : (v as number);
  }
  return { context, globals };
}
