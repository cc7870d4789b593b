// Compares directory trees byte for byte: each replica against the reference.
import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';

/** path -> 'dir' | 'link:<target>' | 'file:<size>:<bytes>' for every entry below root. */
export function snapshot(root: string): Map<string, string | Buffer> {
  const out = new Map<string, string | Buffer>();
  const walk = (rel: string) => {
    for (const name of readdirSync(join(root, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const st = lstatSync(join(root, r));
      if (st.isDirectory()) {
        out.set(r, 'dir');
        walk(r);
      } else if (st.isSymbolicLink()) {
        out.set(r, `link:${readlinkSync(join(root, r))}`);
      } else {
        out.set(r, readFileSync(join(root, r)));
      }
    }
  };
  walk('');
  return out;
}

/** Differences between two trees, as human-readable lines (empty: identical). */
export function diffTrees(a: string, b: string): string[] {
  const x = snapshot(a);
  const y = snapshot(b);
  const diffs: string[] = [];
  for (const [p, v] of x) {
    const w = y.get(p);
    if (w === undefined) diffs.push(`${p}: only in ${a}`);
    else if (Buffer.isBuffer(v) && Buffer.isBuffer(w) ? !v.equals(w) : v !== w) {
      diffs.push(`${p}: differs (${describe(v)} vs ${describe(w)})`);
    }
  }
  for (const p of y.keys()) if (!x.has(p)) diffs.push(`${p}: only in ${b}`);
  return diffs;
}

const describe = (v: string | Buffer) => (Buffer.isBuffer(v) ? `${v.length} bytes` : v);
