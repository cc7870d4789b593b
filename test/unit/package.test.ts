// The package as a user gets it: `npm pack`, installed from the tarball into a scratch
// project, which scaffolds a policy module with the installed CLI, typechecks code that
// imports { definePolicy, mount } from 'fuse-kfunc', and checks the module through the
// package's API (compile, C against TypeScript, BPF object when a kernel build exists).
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../../src/util/paths.ts';

test('npm pack: a scratch project installs the tarball, imports definePolicy and mount with types, and checks a policy', (t) => {
  t.timeout(600_000);
  const repo = repoRoot();
  const packs = mkdtempSync(join(tmpdir(), 'fuse-kfunc-pack-'));
  execFileSync('npm', ['pack', '--pack-destination', packs], { cwd: repo, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, npm_config_loglevel: 'error' } });
  const tarball = readdirSync(packs).find((f) => f.endsWith('.tgz'));
  t.truthy(tarball, 'npm pack wrote a tarball');
  const files = execFileSync('tar', ['tzf', join(packs, tarball!)], { encoding: 'utf8' });
  t.regex(files, /^package\/dist\/index\.js$/m);
  t.regex(files, /^package\/dist\/types\/index\.d\.ts$/m);
  t.regex(files, /^package\/src\/policy\/builtin\/stripe\.ts$/m);
  t.regex(files, /^package\/bpf\/runtime\/layout\.bpf\.h$/m);

  const app = mkdtempSync(join(tmpdir(), 'fuse-kfunc-app-'));
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', type: 'module', private: true }));
  // A TypeScript project for node has node's types (the package's API mentions them).
  const typesNode = JSON.parse(readFileSync(join(repo, 'node_modules', '@types', 'node', 'package.json'), 'utf8')).version;
  execFileSync('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', join(packs, tarball!), `@types/node@${typesNode}`], { cwd: app, stdio: ['ignore', 'ignore', 'pipe'] });
  execFileSync(join(app, 'node_modules', '.bin', 'fuse-kfunc'), ['policy', 'new', 'mine', '.'], { cwd: app, stdio: ['ignore', 'ignore', 'pipe'] });
  writeFileSync(join(app, 'main.ts'), `import { definePolicy, mount, checkPolicy, type MountOptions, type Segment } from 'fuse-kfunc';
import mine from './mine.ts';
const seg: Segment = mine.layout!.locate(70000, { head: 65536, chunk: 65536, backings: 3 });
const opts: MountOptions = { backings: ['/a', '/b', '/c'], mountpoint: '/m', policy: mine, params: { head: '128k' } };
export const uses = [definePolicy, mount, checkPolicy, seg, opts];
`);
  writeFileSync(join(app, 'tsconfig.json'), JSON.stringify({ compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, skipLibCheck: false, allowImportingTsExtensions: true, types: ['node'] }, include: ['main.ts', 'mine.ts'] }));
  const tsc = join(app, 'node_modules', 'typescript', 'bin', 'tsc');
  const typed = (() => {
    try {
      execFileSync(process.execPath, [tsc, '-p', '.'], { cwd: app, encoding: 'utf8' });
      return '';
    } catch (e) {
      return String((e as { stdout?: string }).stdout ?? e);
    }
  })();
  t.is(typed, '', 'the scratch project typechecks against the package\'s declarations');
  // A type error is reported: the declarations are really read.
  writeFileSync(join(app, 'bad.ts'), "import { mount } from 'fuse-kfunc';\nexport const x: number = mount;\n");
  const bad = (() => {
    try {
      execFileSync(process.execPath, [tsc, '--noEmit', '--module', 'NodeNext', '--moduleResolution', 'NodeNext', '--strict', '--types', 'node', 'bad.ts'], { cwd: app, encoding: 'utf8' });
      return '';
    } catch (e) {
      return String((e as { stdout?: string }).stdout ?? '');
    }
  })();
  t.regex(bad, /bad\.ts\(2,14\): error TS2322/);

  writeFileSync(join(app, 'check.mjs'), `import { checkPolicy, formatCheck, mount, definePolicy } from 'fuse-kfunc';
const r = checkPolicy(new URL('./mine.ts', import.meta.url).pathname);
process.stdout.write(formatCheck(r));
process.stdout.write(\`api: \${typeof mount} \${typeof definePolicy}\\n\`);
process.exit(r.ok ? 0 : 1);
`);
  const out = execFileSync(process.execPath, ['check.mjs'], { cwd: app, encoding: 'utf8' });
  t.regex(out, /^ok {3}compile {2}mine: a layout policy over 2\.\.4 backings/m);
  t.regex(out, /^ok {3}native {3}C and TypeScript agree on 3600 random calls/m);
  t.regex(out, /^policy check: ok/m);
  t.regex(out, /^api: function function$/m);
});
