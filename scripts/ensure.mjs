// Installs what a fresh machine lacks before `npm test` / `npm run demo` (npm runs this as
// pretest/predemo): Debian packages, then node_modules. Idempotent and quiet when all is there.
// Plain JavaScript on purpose: it must run before any dependency is installed.
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BUNDLES, staleBundle } from '../src/util/bundles.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

export const PACKAGES = [
  'qemu-system-x86', 'clang-19', 'lld-19', 'llvm-19', 'linux-source-6.12', 'dwarves', 'flex', 'bison',
  'bc', 'libelf-dev', 'libssl-dev', 'zlib1g-dev', 'libcap-dev', 'pkg-config', 'build-essential', 'cpio',
  'xz-utils', 'kmod', 'rsync', 'fuse3', 'libfuse3-dev', 'fio', 'git',
  // checkpatch's SPDX check (scripts/spdxcheck.py) imports these
  'python3-ply', 'python3-git',
];

function missingPackages() {
  const r = spawnSync('dpkg-query', ['-W', '-f=${Package} ${db:Status-Abbrev}\n', ...PACKAGES], { encoding: 'utf8' });
  const installed = new Set(r.stdout.split('\n').map((l) => l.split(' ')).filter((f) => f[1] === 'ii').map((f) => f[0]));
  return PACKAGES.filter((p) => !installed.has(p));
}

function run(cmd, args) {
  process.stderr.write(`ensure: ${cmd} ${args.join(' ')}\n`);
  const r = spawnSync(cmd, args, { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  if (r.status !== 0) {
    process.stderr.write(`ensure: \`${cmd} ${args.join(' ')}\` failed (exit ${r.status})\n`);
    process.exit(1);
  }
}

const missing = missingPackages();
if (missing.length) {
  if (process.getuid?.() !== 0) {
    process.stderr.write(`ensure: missing Debian packages: ${missing.join(' ')}\n` +
      `run as root: apt-get update && apt-get install -y --no-install-recommends ${missing.join(' ')}\n`);
    process.exit(1);
  }
  process.stderr.write(`ensure: installing ${missing.length} Debian package(s): ${missing.join(' ')}\n`);
  run('apt-get', ['update', '-q']);
  run('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...missing]);
}

const stamp = join(root, 'node_modules', '.package-lock.json');
const lock = join(root, 'package-lock.json');
if (!existsSync(stamp) || statSync(lock).mtimeMs > statSync(stamp).mtimeMs) {
  run('npm', ['ci', '--no-audit', '--no-fund']);
} else {
  // The CLI and the daemons it starts run from dist/ only when built from the sources as
  // they are (src/util/bundles.mjs); rebuild after an edit rather than run them through tsx.
  const stale = Object.keys(BUNDLES).map((n) => staleBundle(root, n)).find((why) => why);
  if (stale) {
    process.stderr.write(`ensure: ${stale}\n`);
    run('node', [join(root, 'scripts', 'build.mjs')]);
  }
}
