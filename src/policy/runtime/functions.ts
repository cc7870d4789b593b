// A policy module's functions in the daemon: the JavaScript the compiler made from the
// module's own source (types stripped), evaluated once per mount. The compiler has checked
// that they read nothing but their arguments, their locals and Math, so evaluating them here
// gives exactly the functions the module defines.
import type { LayoutHooks } from '../lang/define.ts';

type Context = Record<string, number | string> & { backings: number };

function evaluate(js: string, what: string): Record<string, unknown> {
  let o: unknown;
  try {
    o = new Function(`"use strict";\nreturn ${js};`)();
  } catch (e) {
    throw new Error(`${what}: the compiled functions do not evaluate (${(e as Error).message}): a bug in fuse-kfunc's compiler`);
  }
  if (!o || typeof o !== 'object') throw new Error(`${what}: the compiled functions are not an object`);
  return o as Record<string, unknown>;
}

export function layoutHooks(m: { name: string; family: string; js: string }): LayoutHooks<Context> {
  if (m.family !== 'layout') throw new Error(`${m.name} is a ${m.family} policy, not a layout policy`);
  const o = evaluate(m.js, m.name);
  for (const h of ['locate', 'backingSize', 'logicalEnd']) {
    if (typeof o[h] !== 'function') throw new Error(`${m.name}: no ${h} among the compiled functions`);
  }
  return o as unknown as LayoutHooks<Context>;
}
