// Bundles the CLI and the programs it starts (the mount daemons, the stress and fuzz
// workers) into dist/, so they start fast and need no tsx: under TCG, tsx costs a daemon
// 8 s of its start. koffi stays external: it carries a native binary that cannot be bundled;
// typescript too: the policy compiler loads it on first use (src/policy/compiler/translate.ts).
// dist/bundles.json lists each bundle's inputs, so that src/util/bundles.mjs can tell a
// bundle built from the current sources from a stale one.
import { build } from 'esbuild';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BUNDLES, HASHES, MANIFEST, fileHash } from '../src/util/bundles.mjs';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const manifest = {};
await Promise.all(Object.entries(BUNDLES).map(async ([name, entry]) => {
  const r = await build({
    absWorkingDir: repo,
    entryPoints: [entry],
    outfile: `dist/${name}.js`,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    sourcemap: true,
    metafile: true,
    external: ['koffi', 'typescript'],
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
    logLevel: 'warning',
  });
  manifest[name] = Object.keys(r.metafile.inputs).filter((f) => !f.startsWith('node_modules/')).sort();
}));
// Each input's content hash too: where mtimes say nothing (a package installed from its
// tarball gets them in extraction order), src/util/bundles.mjs compares contents.
const hashes = {};
for (const rel of new Set(Object.values(manifest).flat())) hashes[rel] = fileHash(join(repo, rel));
writeFileSync(join(repo, MANIFEST), `${JSON.stringify({ ...manifest, [HASHES]: hashes }, null, 1)}\n`);
