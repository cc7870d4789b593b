// Policies whose names the kernel serves (issue 19, names: 'kernel', bpf/runtime/names.bpf.h):
// mirror and stripe over several backing directories, every request after INIT served by
// the program. Real tools run on the mount; the daemon's counters must not move, every
// backing directory must hold what the policy says, and the mount must look exactly like
// the same work done on the policy's userspace reference and on a plain directory.
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mount, MountError, type MountHandle, type MountOptions } from '../../src/sdk/mount.ts';
import { makePolicy } from '../../src/policy/spec.ts';
import type { MountStats } from '../../src/sdk/stats.ts';
import { daemonGrowth, guestBuild, mountDirs } from './helpers.ts';

let work = '';
let build = '';
let tarball = '';
const handles: MountHandle[] = [];

function sh(cmd: string[], cwd?: string): string {
  const r = spawnSync(cmd[0]!, cmd.slice(1), { cwd, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${cmd.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

/** A source tree: nested directories, small and large files (several stripes), links. */
function makeSource(dir: string): void {
  fs.mkdirSync(path.join(dir, 'sub/deep'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'a.txt'), 'alpha needle\n');
  fs.writeFileSync(path.join(dir, 'sub/big.bin'), randomBytes(300_001));
  fs.writeFileSync(path.join(dir, 'sub/deep/c.txt'), 'gamma\nneedle here\n');
  fs.writeFileSync(path.join(dir, 'empty'), '');
  fs.symlinkSync('sub/big.bin', path.join(dir, 'link'));
  fs.chmodSync(path.join(dir, 'a.txt'), 0o640);
}

test.before(() => {
  build = guestBuild();
  work = fs.mkdtempSync('/tmp/knames-');
  const src = path.join(work, 'tar-src');
  makeSource(src);
  for (let i = 0; i < 40; i++) fs.writeFileSync(path.join(src, 'sub', `f${i}.c`), `int f${i}(void) { return ${i}; } /* ${i % 7 ? '' : 'needle'} */\n`.repeat(i * 20 + 1));
  tarball = path.join(work, 'src.tar');
  sh(['tar', '-cf', tarball, '-C', src, '.']);
});

test.after.always(async () => {
  for (const h of handles) await h.close().catch(() => undefined);
});

const served = (s: MountStats, op: string) => s[op]?.kernel ?? 0;

/** What a tree looks like from outside: type, mode, size, contents' hash, link target. */
function snapshot(root: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    const p = path.join(root, rel);
    const st = fs.lstatSync(p);
    const mode = (st.mode & 0o7777).toString(8);
    if (st.isSymbolicLink()) out.push(`${rel} l ${fs.readlinkSync(p)}`);
    else if (st.isDirectory()) {
      out.push(`${rel}/ d ${mode} nlink=${st.nlink}`);
      for (const e of fs.readdirSync(p).sort()) walk(path.join(rel, e));
    } else out.push(`${rel} f ${mode} ${st.size} nlink=${st.nlink} ${createHash('sha256').update(fs.readFileSync(p)).digest('hex').slice(0, 16)}`);
  };
  walk('.');
  return out;
}

/** The tools' work, the same on every mount kind; returns what grep found. */
function tools(root: string): string {
  sh(['tar', '-xf', tarball, '-C', root]);
  sh(['cp', '-r', path.join(root, 'sub'), path.join(root, 'copy')]);
  sh(['diff', '-r', path.join(root, 'sub'), path.join(root, 'copy')]);
  sh(['ls', '-lR', root]);
  sh(['find', root, '-name', '*.c']);
  sh(['mv', path.join(root, 'copy'), path.join(root, 'moved')]);
  sh(['mv', path.join(root, 'a.txt'), path.join(root, 'moved/a-renamed.txt')]);
  sh(['ln', '-s', 'moved/a-renamed.txt', path.join(root, 'lnk')]);
  sh(['ln', path.join(root, 'empty'), path.join(root, 'hard')]);
  fs.truncateSync(path.join(root, 'moved/big.bin'), 100_000);
  fs.appendFileSync(path.join(root, 'moved/big.bin'), randomBytesSeeded(70_000));
  fs.chmodSync(path.join(root, 'moved/deep/c.txt'), 0o600);
  sh(['rm', '-rf', path.join(root, 'moved/deep'), path.join(root, 'sub/f3.c')]);
  fs.mkdirSync(path.join(root, 'newdir'));
  fs.rmdirSync(path.join(root, 'newdir'));
  const grep = sh(['grep', '-r', '-l', 'needle', root]).trim().split('\n').map((l) => path.relative(root, l)).sort();
  return grep.join('\n');
}

/** The same bytes on every call: the trees are compared. */
function randomBytesSeeded(n: number): Buffer {
  const b = Buffer.alloc(n);
  let x = 12345;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

const POLICIES = [
  { name: 'mirror', backings: 2, params: {} },
  { name: 'stripe', backings: 3, params: { chunk: '4k' } },
] as const;

for (const pol of POLICIES) {
  test.serial(`${pol.name} with names in the kernel: untar, cp -r, ls -lR, find, mv, ln, ln -s, truncate, rm -rf, grep -r with no daemon request after INIT, the same tree as the userspace reference and a plain directory`, async (t) => {
    const { b, mnt } = mountDirs(work, `${pol.name}-kernel`, pol.backings);
    const policy = makePolicy(pol.name, pol.params, pol.backings);
    const opts: MountOptions = { backings: b, mountpoint: mnt, policy, buildDir: build, timeout: 0 };
    const h = await mount({ ...opts, names: 'kernel' });
    handles.push(h);
    t.is(h.mode, `program+${pol.name}`);
    const before = await h.stats();
    const grepKernel = tools(mnt);
    const kernelTree = snapshot(mnt);
    const after = await h.stats();
    t.deepEqual(daemonGrowth(before, after), {}, 'no request reached the daemon');
    for (const op of ['LOOKUP', 'GETATTR', 'SETATTR', 'READDIR', 'READLINK', 'CREATE', 'WRITE', 'READ', 'MKDIR', 'SYMLINK', 'LINK', 'UNLINK', 'RMDIR', 'OPEN', 'RELEASE'])
      t.true(served(after, op) > served(before, op), `${op} served by the program`);
    t.true(served(after, 'RENAME') + served(after, 'RENAME2') > 0, 'mv: RENAME served by the program');
    t.log(Object.entries(after).filter(([, s]) => s.kernel).map(([op, s]) => `${op} ${s.kernel}`).join(', '));
    await h.close();

    // Every backing directory holds every name.
    const names = (root: string) => snapshot(root).map((l) => l.split(' ')[0]);
    for (let i = 1; i < pol.backings; i++) t.deepEqual(names(b[i]!), names(b[0]!), `backing ${i} holds the same names as backing 0`);
    if (pol.name === 'mirror') {
      for (let i = 1; i < pol.backings; i++) t.deepEqual(snapshot(b[i]!), snapshot(b[0]!), `replica ${i} is identical`);
    } else {
      // A stripe's pieces add up to the file.
      const big = fs.statSync(path.join(b[0]!, 'moved/big.bin')).size + fs.statSync(path.join(b[1]!, 'moved/big.bin')).size + fs.statSync(path.join(b[2]!, 'moved/big.bin')).size;
      t.is(big, 170_000, 'the pieces of moved/big.bin hold its 170,000 bytes');
    }

    // The same work on the policy's userspace reference and on a plain directory.
    const ref = mountDirs(work, `${pol.name}-ref`, pol.backings);
    const hr = await mount({ ...opts, backings: ref.b, mountpoint: ref.mnt, userspace: true });
    handles.push(hr);
    const grepRef = tools(ref.mnt);
    const refTree = snapshot(ref.mnt);
    await hr.close();
    const plain = path.join(work, `${pol.name}-plain`);
    fs.mkdirSync(plain);
    const grepPlain = tools(plain);
    t.deepEqual(kernelTree, refTree, 'the kernel-served mount looks like the userspace reference');
    t.deepEqual(kernelTree, snapshot(plain), 'and like a plain directory');
    t.is(grepKernel, grepRef);
    t.is(grepKernel, grepPlain);
  });
}

test.serial('names in the kernel: backing 0 decides a creation; a later backing\'s leftover name is replaced, a failure there is undone everywhere', async (t) => {
  const { b, mnt } = mountDirs(work, 'leftover', 2);
  const h = await mount({ backings: b, mountpoint: mnt, policy: makePolicy('mirror', {}, 2), buildDir: build, timeout: 0, names: 'kernel' });
  handles.push(h);
  const before = await h.stats();
  // A name only backing 1 holds (an earlier failure's leftover): invisible, then replaced.
  fs.writeFileSync(path.join(b[1]!, 'left'), 'stale bytes');
  fs.mkdirSync(path.join(b[1]!, 'leftdir'));
  t.false(fs.existsSync(path.join(mnt, 'left')), 'a name backing 0 lacks is not on the mount');
  fs.writeFileSync(path.join(mnt, 'left'), 'new');
  t.is(fs.readFileSync(path.join(b[1]!, 'left'), 'utf8'), 'new', 'the leftover was replaced');
  fs.mkdirSync(path.join(mnt, 'leftdir'));
  t.true(fs.statSync(path.join(mnt, 'leftdir')).isDirectory());
  // A leftover that is not a regular file (the kfunc opens no FIFO) is replaced too.
  spawnSync('mkfifo', [path.join(b[1]!, 'leftfifo')]);
  fs.writeFileSync(path.join(mnt, 'leftfifo'), 'data');
  t.true(fs.lstatSync(path.join(b[1]!, 'leftfifo')).isFile(), 'the FIFO in backing 1 became the file\'s replica');
  t.is(fs.readFileSync(path.join(b[1]!, 'leftfifo'), 'utf8'), 'data');
  // O_EXCL: backing 0's EEXIST is the answer, nothing else changes.
  const err = t.throws(() => fs.writeFileSync(path.join(mnt, 'left'), 'x', { flag: 'wx' }));
  t.is((err as NodeJS.ErrnoException).code, 'EEXIST');
  t.is(fs.readFileSync(path.join(b[1]!, 'left'), 'utf8'), 'new', 'the other replica was not touched');
  // A creation a later backing refuses (a non-directory in the way of MKDIR's leftover is
  // replaced, but a directory in the way of a file is not): undone in backing 0.
  fs.mkdirSync(path.join(b[1]!, 'blocked'));
  fs.writeFileSync(path.join(b[1]!, 'blocked/keep'), 'x');
  const e2 = t.throws(() => fs.writeFileSync(path.join(mnt, 'blocked'), 'data'));
  t.truthy((e2 as NodeJS.ErrnoException).code, `refused: ${(e2 as NodeJS.ErrnoException).code}`);
  t.false(fs.existsSync(path.join(b[0]!, 'blocked')), 'backing 0 does not keep the half-made file');
  t.false(fs.existsSync(path.join(mnt, 'blocked')), 'the mount shows no half-made name');
  t.deepEqual(daemonGrowth(before, await h.stats()), {}, 'nothing reached the daemon');
  await h.close();
});

test.serial('names in the kernel act as the caller: an unprivileged user of the mount gets their own files in every backing and no more than the backings allow', async (t) => {
  const { b, mnt } = mountDirs(work, 'user', 2);
  // uid 1000 reaches the mount point through the work directories
  for (let d = mnt; d !== '/'; d = path.dirname(d)) fs.chmodSync(d, fs.statSync(d).mode | 0o055);
  const h = await mount({ backings: b, mountpoint: mnt, policy: makePolicy('mirror', {}, 2), buildDir: build, timeout: 0, names: 'kernel' });
  handles.push(h);
  const before = await h.stats();
  fs.writeFileSync(path.join(mnt, 'secret'), 'root only\n', { mode: 0o600 });
  fs.mkdirSync(path.join(mnt, 'shared'));
  fs.chmodSync(path.join(mnt, 'shared'), 0o1777);
  fs.writeFileSync(path.join(mnt, 'shared/rootfile'), 'x', { mode: 0o644 });
  const as1000 = (script: string) => spawnSync('sh', ['-c', script], { cwd: mnt, uid: 1000, gid: 1000, encoding: 'utf8' });
  const read = as1000('cat secret');
  t.not(read.status, 0);
  t.regex(read.stderr, /Permission denied/, 'a file of mode 600 stays root\'s');
  const made = as1000('echo mine > shared/mine && mkdir shared/dir && ln -s mine shared/lnk');
  t.is(made.status, 0, made.stderr);
  for (const dir of b) {
    for (const f of ['shared/mine', 'shared/dir', 'shared/lnk']) {
      const st = fs.lstatSync(path.join(dir, f));
      t.deepEqual([st.uid, st.gid], [1000, 1000], `${f} in ${dir} is the user's`);
    }
  }
  const rm = as1000('rm -f shared/rootfile');
  t.regex(rm.stderr, /Operation not permitted/, 'the sticky directory protects root\'s file');
  for (const dir of b) t.true(fs.existsSync(path.join(dir, 'shared/rootfile')), `and it is still in ${dir}`);
  const chmod = as1000('chmod 666 shared/rootfile');
  t.regex(chmod.stderr, /Operation not permitted/);
  const mv = as1000('mv shared/rootfile shared/stolen');
  t.not(mv.status, 0, 'nor can it be renamed away');
  t.deepEqual(daemonGrowth(before, await h.stats()), {}, 'nothing reached the daemon');
  await h.close();
});

test.serial('names in the kernel: a policy whose family keeps names in the daemon is refused with what to do', async (t) => {
  const { b, mnt } = mountDirs(work, 'refused', 2);
  const e = await t.throwsAsync(mount({ backings: b, mountpoint: mnt, policy: makePolicy('route', {}, 2), buildDir: build, names: 'kernel' }));
  t.true(e instanceof MountError);
  t.regex(e!.message, /placement family's names are the daemon's yet.*without names: 'kernel'/);
});
