// Declaration files for the package's entry point (dist/types/, `exports.types` in
// package.json), so that `import { definePolicy, mount } from 'fuse-kfunc'` is typed in a
// project that installs the package. Run by `npm pack` (prepack); tsc follows src/index.ts's
// imports. The sources import each other as ./x.ts; a consumer's TypeScript resolves
// declaration files through ./x.js, so the specifiers are rewritten.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(repo, 'dist', 'types');
rmSync(out, { recursive: true, force: true });
const tsc = join(repo, 'node_modules', 'typescript', 'bin', 'tsc');
const r = spawnSync(process.execPath, [tsc, '--declaration', '--emitDeclarationOnly', '--outDir', out, '--rootDir', 'src',
  '--target', 'ES2022', '--module', 'NodeNext', '--moduleResolution', 'NodeNext', '--strict', '--esModuleInterop', '--skipLibCheck',
  '--types', 'node', '--allowImportingTsExtensions', 'src/index.ts'], { cwd: repo, stdio: 'inherit' });
if (r.status !== 0) process.exit(r.status ?? 1);
const walk = (d) => readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(d, e.name)) : [join(d, e.name)]));
for (const f of walk(out).filter((f) => f.endsWith('.d.ts'))) {
  const s = readFileSync(f, 'utf8');
  const t = s.replace(/((?:from|import)\s*\(?\s*['"])(\.{1,2}\/[^'"]+)\.ts(['"])/g, '$1$2.js$3');
  if (t !== s) writeFileSync(f, t);
}
