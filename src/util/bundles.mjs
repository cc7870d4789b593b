// Which file runs a program of this checkout: its esbuild bundle in dist/ when that was built
// from the sources as they are now, otherwise the TypeScript source through tsx. Loading tsx
// and transpiling a daemon's ~40 modules takes 8 s in a TCG guest where the bundle starts in
// 2 s; a stale bundle would run code that is no longer in the tree, so staleness is checked
// (as make does: every input older than the bundle), never assumed away.
// Plain JS: bin/fuse-kfunc.js needs it before tsx is loaded.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';

/** The programs scripts/build.mjs bundles, by name: the source each one is built from. */
export const BUNDLES = {
  cli: 'src/cli/main.ts',
  'mount-serve': 'src/sdk/mount-serve.ts',
  // Not a program: the module a daemon's FUSE server thread imports (src/fuse/dev.ts).
  'thread-server': 'src/fuse/thread-server.ts',
  stress: 'src/testing/stress.ts',
  fuzz: 'src/testing/fuzz.ts',
  // Not a program: the package's entry point, `import { definePolicy, mount } from 'fuse-kfunc'`.
  index: 'src/index.ts',
};

/** The manifest scripts/build.mjs writes beside the bundles: name -> repo-relative inputs. */
export const MANIFEST = 'dist/bundles.json';
/** The manifest's key for the inputs' content hashes (not a bundle name). */
export const HASHES = '#sha256';

export function fileHash(path) {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

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
  const m = manifest(repo);
  const inputs = m?.[name];
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
    // Newer by its mtime: stale unless its content is what the bundle was built from.
    if (t > built && m[HASHES]?.[rel] !== fileHash(join(repo, rel))) return `${rel} changed after dist/${name}.js was built`;
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

/**
 * A module a worker thread imports (src/fuse/thread-server.ts), as JavaScript: node 20 does
 * not apply tsx's loader inside worker threads, so a source checkout whose bundle is stale
 * gets one built here, with the same esbuild options as scripts/build.mjs, under
 * dist/.dev/ (beside node_modules, so koffi resolves), named by the state of the sources
 * so that an edit makes a new one. Returns a file: URL.
 */
export function workerModule(repo, name) {
  if (!staleBundle(repo, name)) return pathToFileURL(join(repo, 'dist', `${name}.js`)).href;
  const hash = createHash('sha256');
  const walk = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.(ts|mjs)$/.test(e.name)) {
        const st = statSync(p);
        hash.update(`${p}\0${st.size}\0${st.mtimeMs}\n`);
      }
    }
  };
  walk(join(repo, 'src'));
  const out = join(repo, 'dist', '.dev', `${name}-${hash.digest('hex').slice(0, 16)}.mjs`);
  if (!existsSync(out)) {
    const esbuild = createRequire(import.meta.url)('esbuild');
    const tmp = `${out}.${process.pid}.tmp`;
    mkdirSync(dirname(out), { recursive: true });
    esbuild.buildSync({
      absWorkingDir: repo, entryPoints: [BUNDLES[name]], outfile: tmp, bundle: true, platform: 'node', format: 'esm',
      target: 'node20', external: ['koffi'], logLevel: 'warning',
      banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
    });
    renameSync(tmp, out); // atomic: a daemon starting meanwhile sees all of it or none
  }
  return pathToFileURL(out).href;
}
