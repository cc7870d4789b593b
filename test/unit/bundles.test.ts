// The CLI and the daemons run from dist/ only when the bundle was built from the sources as
// they are; a stale or missing bundle means the TypeScript source through tsx.
import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { BUNDLES, HASHES, fileHash, nodeEntry, staleBundle } from '../../src/util/bundles.mjs';

function fakeRepo(): string {
  const repo = fs.mkdtempSync(path.join(os.tmpdir(), 'bundles-'));
  fs.mkdirSync(path.join(repo, 'src/sdk'), { recursive: true });
  fs.mkdirSync(path.join(repo, 'dist'));
  fs.writeFileSync(path.join(repo, 'src/sdk/mount-serve.ts'), '');
  fs.writeFileSync(path.join(repo, 'src/sdk/stats.ts'), '');
  return repo;
}
const ago = (repo: string, rel: string, s: number) => {
  const t = new Date(Date.now() - s * 1000);
  fs.utimesSync(path.join(repo, rel), t, t);
};

test('a bundle newer than all its inputs runs; an input edited after it, a missing one or no bundle means tsx', (t) => {
  const repo = fakeRepo();
  t.regex(staleBundle(repo, 'mount-serve')!, /no mount-serve bundle in dist\/bundles\.json/);
  t.deepEqual(nodeEntry(repo, 'mount-serve'), { file: path.join(repo, 'src/sdk/mount-serve.ts'), execArgv: ['--import', 'tsx'], bundled: false });

  fs.writeFileSync(path.join(repo, 'dist/bundles.json'), JSON.stringify({ 'mount-serve': ['src/sdk/mount-serve.ts', 'src/sdk/stats.ts'] }));
  t.regex(staleBundle(repo, 'mount-serve')!, /dist\/mount-serve\.js is missing/);
  fs.writeFileSync(path.join(repo, 'dist/mount-serve.js'), '');
  ago(repo, 'src/sdk/mount-serve.ts', 60);
  ago(repo, 'src/sdk/stats.ts', 60);
  ago(repo, 'dist/mount-serve.js', 30);
  t.is(staleBundle(repo, 'mount-serve'), null);
  t.deepEqual(nodeEntry(repo, 'mount-serve'), { file: path.join(repo, 'dist/mount-serve.js'), execArgv: [], bundled: true });

  ago(repo, 'src/sdk/stats.ts', 10);
  t.is(staleBundle(repo, 'mount-serve'), 'src/sdk/stats.ts changed after dist/mount-serve.js was built');
  t.false(nodeEntry(repo, 'mount-serve').bundled);
  // Newer mtimes with the contents the bundle was built from (a package installed from its
  // tarball gets mtimes in extraction order): fresh; a changed content: stale.
  fs.writeFileSync(path.join(repo, 'dist/bundles.json'), JSON.stringify({ 'mount-serve': ['src/sdk/mount-serve.ts', 'src/sdk/stats.ts'],
    [HASHES]: { 'src/sdk/mount-serve.ts': fileHash(path.join(repo, 'src/sdk/mount-serve.ts')), 'src/sdk/stats.ts': fileHash(path.join(repo, 'src/sdk/stats.ts')) } }));
  t.is(staleBundle(repo, 'mount-serve'), null);
  fs.writeFileSync(path.join(repo, 'src/sdk/stats.ts'), 'export {};\n');
  t.is(staleBundle(repo, 'mount-serve'), 'src/sdk/stats.ts changed after dist/mount-serve.js was built');
  fs.rmSync(path.join(repo, 'src/sdk/stats.ts'));
  t.is(staleBundle(repo, 'mount-serve'), 'src/sdk/stats.ts is gone');
  t.throws(() => nodeEntry(repo, 'nope' as never), { message: /no program named nope \(known: cli, mount-serve/ });
});

test('scripts/build.mjs bundles every program with its inputs, and the bundles run', (t) => {
  const repo = path.resolve(import.meta.dirname, '../..');
  const r = spawnSync(process.execPath, ['scripts/build.mjs'], { cwd: repo, encoding: 'utf8' });
  t.is(r.status, 0, r.stderr);
  const manifest = JSON.parse(fs.readFileSync(path.join(repo, 'dist/bundles.json'), 'utf8')) as Record<string, string[]>;
  t.deepEqual(Object.keys(manifest).filter((k) => k !== HASHES).sort(), Object.keys(BUNDLES).sort());
  const hashes = manifest[HASHES] as unknown as Record<string, string>;
  t.deepEqual(Object.keys(hashes).sort(), [...new Set(Object.entries(manifest).filter(([k]) => k !== HASHES).flatMap(([, v]) => v))].sort(), 'every input hashed');
  for (const [name, src] of Object.entries(BUNDLES)) {
    t.true(manifest[name]!.includes(src), `${name} lists its entry ${src}`);
    t.true(manifest[name]!.every((f) => f.startsWith('src/')), `${name}: inputs are the checkout's sources`);
    t.is(staleBundle(repo, name as keyof typeof BUNDLES), null, `${name} is fresh right after a build`);
  }
  t.true(manifest['mount-serve']!.includes('src/fuse/session.ts'), 'the daemon bundle holds the FUSE session');
  // The bundled CLI starts without tsx.
  const v = spawnSync(process.execPath, [path.join(repo, 'dist/cli.js'), 'policy', 'list'], { encoding: 'utf8' });
  t.is(v.status, 0, v.stderr);
  t.regex(v.stdout, /^stripe\t/m);
});

test('the CLI stops quietly when its reader goes away (| head)', (t) => {
  const repo = path.resolve(import.meta.dirname, '../..');
  // `true` exits before node starts writing: the write meets a pipe with no reader (EPIPE).
  const r = spawnSync('bash', ['-c', `set -o pipefail; node ${JSON.stringify(path.join(repo, 'bin/fuse-kfunc.js'))} policy show stripe --chunk 64k | true`], { encoding: 'utf8' });
  t.notRegex(r.stderr, /EPIPE|Unhandled/);
  t.is(r.status, 0, r.stderr);
});
