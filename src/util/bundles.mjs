// Which file runs a program of this checkout: its esbuild bundle in dist/ when that was built
// from the sources as they are now, otherwise the TypeScript source through tsx. Loading tsx
// and transpiling a daemon's ~40 modules takes 8 s in a TCG guest where the bundle starts in
// 2 s; a stale bundle would run code that is no longer in the tree, so staleness is checked
// (as make does: every input older than the bundle), never assumed away.
// Plain JS: bin/fuse-kfunc.js needs it before tsx is loaded.
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** The programs scripts/build.mjs bundles, by name: the source each one is built from. */
export const BUNDLES = {
  cli: 'src/cli/main.ts',
  'mount-serve': 'src/sdk/mount-serve.ts',
  'mirror-serve': 'src/policy/mirror-serve.ts',
  serve: 'src/fuse/serve.ts',
  // Not a program: the module a daemon's FUSE server thread imports (src/fuse/dev.ts).
  'thread-server': 'src/fuse/thread-server.ts',
  stress: 'src/testing/stress.ts',
  fuzz: 'src/testing/fuzz.ts',
};

/** The manifest scripts/build.mjs writes beside the bundles: name -> repo-relative inputs. */
export const MANIFEST = 'dist/bundles.json';

// Read at each start (a few hundred bytes), not kept: a long-lived process sees a rebuild.
function manifest(repo) {
  try {
    return JSON.parse(readFileSync(join(repo, MANIFEST), 'utf8'));
  } catch {
    return null; // no bundles: an install with --ignore-scripts, or never built
  }
}

/** Why the bundle of `name` cannot be used (missing, or a source newer than it), or null. */
export function staleBundle(repo, name) {
  const inputs = manifest(repo)?.[name];
  if (!inputs) return `no ${name} bundle in ${MANIFEST}`;
  let built;
  try {
    built = statSync(join(repo, 'dist', `${name}.js`)).mtimeMs;
  } catch {
    return `dist/${name}.js is missing`;
  }
  for (const rel of inputs) {
    let t;
    try {
      t = statSync(join(repo, rel)).mtimeMs;
    } catch {
      return `${rel} is gone`;
    }
    if (t > built) return `${rel} changed after dist/${name}.js was built`;
  }
  return null;
}

/**
 * How to start program `name` of the checkout at `repo` with node: the script and the
 * node arguments it needs (`--import tsx` for a source file).
 */
export function nodeEntry(repo, name) {
  const src = BUNDLES[name];
  if (!src) throw new Error(`no program named ${name} (known: ${Object.keys(BUNDLES).join(', ')})`);
  if (!staleBundle(repo, name)) return { file: join(repo, 'dist', `${name}.js`), execArgv: [], bundled: true };
  return { file: join(repo, src), execArgv: ['--import', 'tsx'], bundled: false };
}
