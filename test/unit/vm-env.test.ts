import test from 'ava';
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { guestBuildDir, guestEnv } from '../../src/vm/qemu.ts';

function cache(): { root: string; build: string; other: string } {
  const root = mkdtempSync(join(tmpdir(), 'fk-cache-'));
  const build = join(root, 'builds', 'abc');
  const other = join(root, 'elsewhere');
  mkdirSync(build, { recursive: true });
  mkdirSync(other);
  writeFileSync(join(build, 'bzImage'), '');
  writeFileSync(join(build, 'vmlinux.h'), '');
  writeFileSync(join(other, 'bzImage'), '');
  symlinkSync(build, join(root, 'builds', 'current'));
  return { root, build, other };
}

test('the guest uses the build the booted bzImage belongs to', (t) => {
  const c = cache();
  t.is(guestBuildDir(join(c.build, 'bzImage'), c.root), c.build);
  const env = guestEnv({ kernel: join(c.build, 'bzImage'), command: ['true'], repo: '/r' }, '/r', c.root);
  t.is(env.FUSE_KFUNC_BUILD, c.build);
  t.is(env.CACHE, c.root);
});

test('a bzImage outside any build (the unpatched base, say) gets the current build', (t) => {
  const c = cache();
  t.is(guestBuildDir(join(c.other, 'bzImage'), c.root), c.build);
});

test('no build anywhere: no FUSE_KFUNC_BUILD; an explicit one wins', (t) => {
  const root = mkdtempSync(join(tmpdir(), 'fk-empty-'));
  const o = { kernel: join(root, 'bzImage'), command: ['true'], repo: '/r' };
  t.false('FUSE_KFUNC_BUILD' in guestEnv(o, '/r', root));
  t.is(guestEnv({ ...o, env: { FUSE_KFUNC_BUILD: '/x' } }, '/r', root).FUSE_KFUNC_BUILD, '/x');
});

test('a job caches the checkout\'s share; a shell sees host edits at once', (t) => {
  const o = { kernel: '/k/bzImage', command: ['true'], repo: '/r' };
  t.is(guestEnv(o, '/r').REPO_CACHE, 'loose');
  t.false('REPO_CACHE' in guestEnv({ ...o, interactive: true }, '/r'));
  t.is(guestEnv({ ...o, interactive: true }, '/r').INTERACTIVE, '1');
});

test('the guest loads the modules of the booted kernel\'s own build, never the current build\'s', (t) => {
  const c = cache();
  mkdirSync(join(c.build, 'modules'));
  writeFileSync(join(c.build, 'modules', 'fuse.ko'), '');
  t.is(guestEnv({ kernel: join(c.build, 'bzImage'), command: ['true'], repo: '/r' }, '/r', c.root).FUSE_KFUNC_MODULES, join(c.build, 'modules'));
  // Another bzImage (an unpatched build, a bzImage given with --kernel) finds the current
  // build's vmlinux.h for its tools, but its own modules or none: the patched fuse.ko needs
  // symbols only the patched kernel has
  const other = guestEnv({ kernel: join(c.other, 'bzImage'), command: ['true'], repo: '/r' }, '/r', c.root);
  t.is(other.FUSE_KFUNC_BUILD, c.build);
  t.false('FUSE_KFUNC_MODULES' in other);
});
