// bpf/examples/tree.bpf.c through the SDK (issue 4): a program that serves a whole backing
// tree with the namespace kfuncs. Real tools run on the mount; the daemon's own counters
// must not move, and the backing tree must show what the tools did.
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { mount, type MountHandle } from '../../src/sdk/mount.ts';
import type { MountStats } from '../../src/sdk/stats.ts';
import { daemonGrowth, guestBuild, mountDirs } from './helpers.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const TREE = path.join(REPO, 'bpf/examples/tree.bpf.c');
let work = '';
let build = '';
const handles: MountHandle[] = [];

test.before(() => {
  build = guestBuild();
  work = fs.mkdtempSync('/tmp/tree-');
});

test.after.always(async () => {
  for (const h of handles) await h.close().catch(() => undefined);
});

function sh(cmd: string[], cwd?: string, input?: string): string {
  const r = spawnSync(cmd[0]!, cmd.slice(1), { cwd, encoding: 'utf8', input });
  if (r.status !== 0) throw new Error(`${cmd.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

const served = (s: MountStats, op: string) => s[op]?.kernel ?? 0;

function populate(dir: string): Buffer {
  const big = randomBytes(300_000);
  fs.mkdirSync(path.join(dir, 'src/sub/deep'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'src/a.txt'), 'alpha\n');
  fs.writeFileSync(path.join(dir, 'src/sub/b.bin'), big);
  fs.writeFileSync(path.join(dir, 'src/sub/deep/c.txt'), 'gamma\n');
  fs.symlinkSync('sub/b.bin', path.join(dir, 'src/b-link'));
  return big;
}

test.serial('tree.bpf.c: ls -lR, find, cp -r, mv, rm -rf, ln -s on the mount with no daemon round trip after mounting', async (t) => {
  const { b, mnt } = mountDirs(work, 'tools', 1);
  const big = populate(b[0]!);
  const h = await mount({ backings: b, mountpoint: mnt, program: TREE, buildDir: build, timeout: 0 });
  handles.push(h);
  t.is(h.mode, 'program');
  const before = await h.stats();

  const ls = sh(['ls', '-lR', mnt]);
  t.regex(ls, /b-link -> sub\/b\.bin/, 'ls -l shows the symlink target (READLINK)');
  t.regex(ls, /300000 .* b\.bin/, 'and sizes from the backing files');
  const found = sh(['find', mnt]).trim().split('\n').map((l) => path.relative(mnt, l)).sort();
  t.deepEqual(found, ['', 'src', 'src/a.txt', 'src/b-link', 'src/sub', 'src/sub/b.bin', 'src/sub/deep', 'src/sub/deep/c.txt']);

  sh(['cp', '-r', path.join(mnt, 'src'), path.join(mnt, 'copy')]);
  sh(['diff', '-r', path.join(mnt, 'src'), path.join(mnt, 'copy')]);
  t.true(fs.readFileSync(path.join(b[0]!, 'copy/sub/b.bin')).equals(big), 'cp -r wrote the data into the backing tree');
  t.is(fs.readlinkSync(path.join(b[0]!, 'copy/b-link')), 'sub/b.bin', 'and copied the symlink as a symlink');

  sh(['mv', path.join(mnt, 'copy'), path.join(mnt, 'moved')]);
  t.false(fs.existsSync(path.join(b[0]!, 'copy')));
  t.is(fs.readFileSync(path.join(b[0]!, 'moved/sub/deep/c.txt'), 'utf8'), 'gamma\n', 'mv renamed the directory in place');

  sh(['ln', '-s', 'moved/a.txt', path.join(mnt, 'lnk')]);
  t.is(fs.readlinkSync(path.join(b[0]!, 'lnk')), 'moved/a.txt');
  t.is(fs.readFileSync(path.join(mnt, 'lnk'), 'utf8'), 'alpha\n', 'the new link is followed through the mount');
  sh(['ln', path.join(mnt, 'src/a.txt'), path.join(mnt, 'hard')]);
  t.is(fs.statSync(path.join(b[0]!, 'hard')).ino, fs.statSync(path.join(b[0]!, 'src/a.txt')).ino, 'ln made a hard link');

  sh(['rm', '-rf', path.join(mnt, 'moved'), path.join(mnt, 'lnk'), path.join(mnt, 'hard')]);
  t.deepEqual(fs.readdirSync(b[0]!).sort(), ['src'], 'rm -rf removed everything it was given');
  t.is(fs.readFileSync(path.join(b[0]!, 'src/a.txt'), 'utf8'), 'alpha\n', 'and nothing else');

  const after = await h.stats();
  t.deepEqual(daemonGrowth(before, after), {}, 'no request reached the daemon');
  for (const op of ['LOOKUP', 'GETATTR', 'READDIR', 'READLINK', 'CREATE', 'WRITE', 'READ', 'MKDIR', 'SYMLINK', 'LINK', 'UNLINK', 'RMDIR'])
    t.true(served(after, op) > served(before, op), `${op} served by the program`);
  t.true(served(after, 'RENAME') + served(after, 'RENAME2') > 0, 'mv: RENAME served by the program');
  t.log(Object.entries(after).filter(([, s]) => s.kernel).map(([op, s]) => `${op} ${s.kernel}`).join(', '));
  await h.close();
});

test.serial('tree.bpf.c: create/unlink churn and dropped caches: every FORGET reaches the program, none the daemon', async (t) => {
  const { b, mnt } = mountDirs(work, 'churn', 1);
  const h = await mount({ backings: b, mountpoint: mnt, program: TREE, buildDir: build, timeout: 0 });
  handles.push(h);
  for (let i = 0; i < 300; i++) {
    const f = path.join(mnt, `f${i}`);
    fs.writeFileSync(f, String(i));
    fs.statSync(f);
    if (i % 2) fs.unlinkSync(f);
  }
  fs.writeFileSync('/proc/sys/vm/drop_caches', '2');
  let s = await h.stats();
  for (let i = 0; i < 50 && served(s, 'FORGET') < 150; i++) {
    await new Promise((r) => setTimeout(r, 100));
    s = await h.stats();
  }
  t.true(served(s, 'FORGET') >= 150, `FORGETs delivered to the program: ${served(s, 'FORGET')}`);
  t.is(s.FORGET?.daemon ?? 0, 0, 'none reached the daemon');
  t.is(s.BATCH_FORGET?.daemon ?? 0, 0);
  t.deepEqual(fs.readdirSync(mnt).length, 150, 'the files not unlinked are still there');
  await h.close();
});

test.serial('tree.bpf.c with passthrough (--set passthrough=1): reads, writes and mmap of open files reach neither the program nor the daemon', async (t) => {
  const { b, mnt } = mountDirs(work, 'passthrough', 1);
  // uid 1000 writes through the mount below: let it reach the mount point
  for (let d = mnt; d !== '/'; d = path.dirname(d)) fs.chmodSync(d, fs.statSync(d).mode | 0o055);
  const big = populate(b[0]!);
  const h = await mount({ backings: b, mountpoint: mnt, program: TREE, buildDir: build, timeout: 0, globals: { passthrough: 1 } });
  handles.push(h);
  const before = await h.stats();

  t.true(fs.readFileSync(path.join(mnt, 'src/sub/b.bin')).equals(big), 'read through the mount');
  const data = randomBytes(200_000);
  fs.writeFileSync(path.join(mnt, 'new.bin'), data);
  t.true(fs.readFileSync(path.join(b[0]!, 'new.bin')).equals(data), 'a file CREATEd and written through the mount is in the backing tree');
  const fd = fs.openSync(path.join(mnt, 'new.bin'), 'r+');
  fs.writeSync(fd, Buffer.from('HEAD'), 0, 4, 0);
  t.is(fs.fstatSync(fd).size, data.length);
  fs.closeSync(fd);
  t.is(fs.readFileSync(path.join(b[0]!, 'new.bin')).subarray(0, 4).toString(), 'HEAD', 'an OPENed file writes through too');
  const mapped = sh(['python3', '-c', 'import mmap,sys,hashlib;f=open(sys.argv[1],"rb");m=mmap.mmap(f.fileno(),0,prot=mmap.PROT_READ);print(hashlib.sha256(m).hexdigest())', path.join(mnt, 'src/sub/b.bin')]).trim();
  t.is(mapped, createHash('sha256').update(big).digest('hex'), 'mmap passes through');
  sh(['dd', `if=${path.join(mnt, 'src/sub/b.bin')}`, `of=${path.join(work, 'pt-copy')}`, 'bs=4096', 'iflag=direct', 'status=none']);
  t.true(fs.readFileSync(path.join(work, 'pt-copy')).subarray(0, big.length).equals(big), 'O_DIRECT reads pass through');
  sh(['cp', '-r', path.join(mnt, 'src'), path.join(mnt, 'copy')]);
  sh(['diff', '-r', path.join(mnt, 'src'), path.join(mnt, 'copy')]);

  // FUSE_HANDLE_KILLPRIV_V2 (tree programs): the kernel no longer asks for security.capability
  // before each write; the backing filesystem clears S_ISUID when another user writes.
  fs.writeFileSync(path.join(b[0]!, 'suid'), 'setuid\n');
  fs.chmodSync(path.join(b[0]!, 'suid'), 0o4777);
  const gx0 = served(await h.stats(), 'GETXATTR');
  sh(['setpriv', '--reuid=1000', '--regid=1000', '--clear-groups', 'dd', 'of=' + path.join(mnt, 'suid'), 'conv=notrunc', 'status=none'], undefined, 'written by uid 1000\n');
  t.is(fs.statSync(path.join(b[0]!, 'suid')).mode & 0o7777, 0o777, 'a write by another user cleared S_ISUID on the backing file');
  t.is(fs.readFileSync(path.join(b[0]!, 'suid'), 'utf8'), 'written by uid 1000\n');
  const gx1 = served(await h.stats(), 'GETXATTR');
  t.true(gx1 - gx0 <= 2, `the kernel asked for security.capability at most once for that write (${gx1 - gx0})`);
  sh(['dd', 'if=/dev/zero', 'of=' + path.join(mnt, 'suid'), 'bs=4096', 'count=20', 'conv=notrunc', 'status=none']);
  const gx2 = served(await h.stats(), 'GETXATTR');
  t.true(gx2 - gx1 <= 1, `20 writes through one open asked for security.capability ${gx2 - gx1} times (not once per write)`);

  const after = await h.stats();
  t.deepEqual(daemonGrowth(before, after), {}, 'no request reached the daemon');
  for (const op of ['READ', 'WRITE']) t.is(served(after, op) - served(before, op), 0, `${op}: none, the open files were passed through`);
  t.true(served(after, 'OPEN') > served(before, 'OPEN') && served(after, 'CREATE') > served(before, 'CREATE'), 'OPEN and CREATE were the program\'s');
  await h.close();
});

test.serial('a global the program does not have is a clear mount error', async (t) => {
  const { b, mnt } = mountDirs(work, 'badglobal', 1);
  const e = await t.throwsAsync(mount({ backings: b, mountpoint: mnt, program: TREE, buildDir: build, globals: { passthru: 1 } }));
  t.regex(e!.message, /no global variable "passthru"/);
});
