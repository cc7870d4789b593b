// A policy module's functions in the daemon: the JavaScript the compiler made from the
// module's own source (types stripped), evaluated once per mount. The compiler has checked
// that they read nothing but their arguments, their locals and Math, so evaluating them here
// gives exactly the functions the module defines.
import { errno, type AccessHooks, type LayerHooks, type LayoutHooks, type PlacementHooks, type TierHooks, type PolicyValues as Context, type ReplicaHooks, type SpreadHooks } from '../lang/define.ts';

function evaluate(js: string, what: string): Record<string, unknown> {
  let o: unknown;
  try {
    // The one name a policy function reads besides its arguments and Math: errno.EPERM, ...
    o = new Function('errno', `"use strict";\nreturn ${js};`)(errno);
  } catch (e) {
    throw new Error(`${what}: the compiled functions do not evaluate (${(e as Error).message}): a bug in fuse-kfunc's compiler`);
  }
  if (!o || typeof o !== 'object') throw new Error(`${what}: the compiled functions are not an object`);
  return o as Record<string, unknown>;
}

function hooks(m: { name: string; family: string; js: string }, family: string, names: string[]): Record<string, unknown> {
  if (m.family !== family) throw new Error(`${m.name} is a ${m.family} policy, not a ${family} policy`);
  const o = evaluate(m.js, m.name);
  for (const h of names) {
    if (typeof o[h] !== 'function') throw new Error(`${m.name}: no ${h} among the compiled functions`);
  }
  return o;
}

export function layoutHooks(m: { name: string; family: string; js: string }): LayoutHooks<Context> {
  return hooks(m, 'layout', ['locate', 'backingSize', 'logicalEnd']) as unknown as LayoutHooks<Context>;
}

export function replicaHooks(m: { name: string; family: string; js: string }): ReplicaHooks<Context> {
  return hooks(m, 'replicas', ['readFrom']) as unknown as ReplicaHooks<Context>;
}

export function placementHooks(m: { name: string; family: string; js: string }): PlacementHooks<Context> {
  return hooks(m, 'placement', ['place']) as unknown as PlacementHooks<Context>;
}

export function layerHooks(m: { name: string; family: string; js: string }): LayerHooks<Context> {
  return hooks(m, 'layers', ['hidden']) as unknown as LayerHooks<Context>;
}

export function tierHooks(m: { name: string; family: string; js: string }): TierHooks<Context> {
  return hooks(m, 'tiers', ['promote']) as unknown as TierHooks<Context>;
}

export function accessHooks(m: { name: string; family: string; js: string }): AccessHooks<Context> {
  return hooks(m, 'access', ['before', 'after']) as unknown as AccessHooks<Context>;
}

export function spreadHooks(m: { name: string; family: string; js: string }): SpreadHooks<Context> {
  return hooks(m, 'spread', ['create']) as unknown as SpreadHooks<Context>;
}
