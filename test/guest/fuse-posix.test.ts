// POSIX behaviour of the TypeScript passthrough server in three modes: every request in
// userspace, upstream FUSE passthrough, and (bpf) the SDK's mount() with
// bpf/examples/passthrough.bpf.c attached, whose READ/WRITE/GETATTR must then be served in
// the kernel, and whose detaching must hand them back to the daemon on the same mount.
// Every mode mounts through mount(), whose daemon (src/sdk/mount-serve.ts) runs in a child
// process as a FUSE daemon normally does: this process then may use synchronous fs calls on
// the mount without deadlocking against the server's event loop. Needs root and /dev/fuse (and, for bpf, the patched kernel); fails, never skips.
import test from 'ava';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as libc from '../../src/fuse/libc.ts';
import { mount, type MountHandle } from '../../src/sdk/mount.ts';
import { guestBuild } from './helpers.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));

test.before(() => {
  if (!fs.existsSync('/dev/fuse')) throw new Error('/dev/fuse is missing: this kernel/VM has no FUSE (CONFIG_FUSE_FS) or devtmpfs is not mounted');
  if (process.getuid?.() !== 0) throw new Error('fuse-posix tests need root (mount(2), FUSE_DEV_IOC_BACKING_OPEN)');
});

type Mode = 'userspace-io' | 'passthrough' | 'bpf';

interface Server {
  child: ChildProcess;
  backing: string;
  mnt: string;
  stderr: () => string;
  /** stats: requests the daemon received; kernel: requests the program served. */
  stats(): Promise<{ stats: Record<string, number>; kernel: Record<string, number>; tables: { nodes: number; handles: number } }>;
  exited: Promise<{ code: number | null; closed?: string }>;
  /** The SDK handle (bpf: detach/attach). */
  handle: MountHandle;
}

const servers: ChildProcess[] = [];
const PROGRAM = path.join(REPO, 'bpf/examples/passthrough.bpf.c');

/** The daemon every mount uses (src/sdk/mount-serve.ts, through the SDK's mount()). */
async function startServer(mode: Mode): Promise<Server> {
  const base = await fsp.mkdtemp('/tmp/fuse-posix-');
  const backing = path.join(base, 'backing');
  const mnt = path.join(base, 'mnt');
  await fsp.mkdir(backing);
  await fsp.mkdir(mnt);
  let err = '';
  const common = { backings: [backing], mountpoint: mnt, timeout: 0 };
  const h = mode === 'bpf' ? await mount({ ...common, program: PROGRAM, buildDir: guestBuild() })
    : await mount({ ...common, ...(mode === 'passthrough' ? { passthrough: true } : { userspace: true }) });
  servers.push(h.child);
  h.child.stderr!.on('data', (d) => (err += d));
  return {
    child: h.child, backing, mnt, handle: h,
    stderr: () => err,
    exited: h.closed.then(() => ({ code: h.child.exitCode, closed: h.closeReason })),
    stats: async () => {
      const st = await h.stats();
      const stats: Record<string, number> = {};
      const kernel: Record<string, number> = {};
      for (const [op, v] of Object.entries(st)) {
        if (v.daemon) stats[op] = v.daemon;
        if (v.kernel) kernel[op] = v.kernel;
      }
      return { stats, kernel, tables: await h.tables() };
    },
  };
}

const pattern = (seed: number, n: number) => {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 7) & 0xff;
  return b;
};

const errCode = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    return (e as NodeJS.ErrnoException).code;
  }
  return 'no error';
};

const dropCaches = () => fs.writeFileSync('/proc/sys/vm/drop_caches', '3');

for (const mode of ['userspace-io', 'passthrough', 'bpf'] as Mode[]) {
  const passthrough = mode === 'passthrough';
  let s: Server;
  const p = (...a: string[]) => path.join(s.mnt, ...a);

  test.serial(`${mode}: mounts and negotiates`, async (t) => {
    s = await startServer(mode);
    const m = fs.readFileSync('/proc/self/mounts', 'utf8').split('\n').find((l) => l.split(' ')[1] === s.mnt);
    t.truthy(m, 'mount visible in /proc/self/mounts');
    t.regex(m!, /fuse\.fuse-kfunc/);
    t.true(fs.statSync(s.mnt).isDirectory());
  });

  test.serial(`${mode}: create, write, read back, stat size and mode`, (t) => {
    const data = pattern(1, 300_000);
    fs.writeFileSync(p('a.bin'), data, { mode: 0o640 });
    t.deepEqual(fs.readFileSync(p('a.bin')), data);
    const st = fs.statSync(p('a.bin'));
    t.is(st.size, data.length);
    t.is(st.mode & 0o7777, 0o640);
    t.true(st.isFile());
    t.deepEqual(fs.readFileSync(path.join(s.backing, 'a.bin')), data, 'backing file has the bytes');
    // O_EXCL on an existing name, ENOENT on a missing one.
    t.is(errCode(() => fs.openSync(p('a.bin'), 'wx')), 'EEXIST');
    t.is(errCode(() => fs.readFileSync(p('missing'))), 'ENOENT');
    // Positional writes in the middle and append.
    const fd = fs.openSync(p('a.bin'), 'r+');
    fs.writeSync(fd, Buffer.from('XYZ'), 0, 3, 1000);
    fs.closeSync(fd);
    fs.appendFileSync(p('a.bin'), 'tail');
    const back = fs.readFileSync(p('a.bin'));
    t.is(back.toString('latin1', 1000, 1003), 'XYZ');
    t.is(back.toString('latin1', back.length - 4), 'tail');
    t.is(fs.statSync(p('a.bin')).size, data.length + 4);
  });

  test.serial(`${mode}: truncate, chmod, utimes, access, statfs`, (t) => {
    fs.writeFileSync(p('t.txt'), 'hello world');
    fs.truncateSync(p('t.txt'), 5);
    t.is(fs.readFileSync(p('t.txt'), 'utf8'), 'hello');
    const fd = fs.openSync(p('t.txt'), 'r+');
    fs.ftruncateSync(fd, 100_000);
    t.is(fs.fstatSync(fd).size, 100_000);
    fs.closeSync(fd);
    t.is(fs.statSync(path.join(s.backing, 't.txt')).size, 100_000);
    fs.writeFileSync(p('t.txt'), 'x'); // O_TRUNC through open
    t.is(fs.statSync(p('t.txt')).size, 1);
    fs.chmodSync(p('t.txt'), 0o600);
    t.is(fs.statSync(p('t.txt')).mode & 0o7777, 0o600);
    fs.utimesSync(p('t.txt'), 1_000_000, 2_000_000);
    t.is(fs.statSync(p('t.txt')).mtimeMs, 2_000_000_000);
    t.is(fs.statSync(path.join(s.backing, 't.txt')).atimeMs, 1_000_000_000);
    fs.accessSync(p('t.txt'), fs.constants.R_OK | fs.constants.W_OK);
    const sf = fs.statfsSync(s.mnt);
    const bf = fs.statfsSync(s.backing);
    t.is(sf.blocks, bf.blocks);
    t.is(sf.bsize, bf.bsize);
  });

  test.serial(`${mode}: rename and unlink`, (t) => {
    fs.writeFileSync(p('r1'), 'one');
    fs.renameSync(p('r1'), p('r2'));
    t.false(fs.existsSync(p('r1')));
    t.is(fs.readFileSync(p('r2'), 'utf8'), 'one');
    fs.writeFileSync(p('r3'), 'three');
    fs.renameSync(p('r2'), p('r3')); // over an existing file
    t.is(fs.readFileSync(p('r3'), 'utf8'), 'one');
    // A directory with contents moves with its children reachable.
    fs.mkdirSync(p('dA/sub'), { recursive: true });
    fs.writeFileSync(p('dA/sub/f'), 'deep');
    t.is(fs.readFileSync(p('dA/sub/f'), 'utf8'), 'deep');
    fs.renameSync(p('dA'), p('dB'));
    t.is(fs.readFileSync(p('dB/sub/f'), 'utf8'), 'deep');
    fs.writeFileSync(p('dB/sub/g'), 'new');
    t.is(fs.readFileSync(path.join(s.backing, 'dB/sub/g'), 'utf8'), 'new');
    // RENAME_NOREPLACE and RENAME_EXCHANGE go through RENAME2.
    fs.writeFileSync(p('x1'), 'X1');
    fs.writeFileSync(p('x2'), 'X2');
    t.is(errCode(() => libc.renameat2(p('x1'), p('x2'), libc.RENAME_NOREPLACE)), 'EEXIST');
    libc.renameat2(p('x1'), p('x2'), libc.RENAME_EXCHANGE);
    t.is(fs.readFileSync(p('x1'), 'utf8'), 'X2');
    t.is(fs.readFileSync(p('x2'), 'utf8'), 'X1');
    fs.unlinkSync(p('r3'));
    t.false(fs.existsSync(p('r3')));
    t.false(fs.existsSync(path.join(s.backing, 'r3')));
    t.is(errCode(() => fs.unlinkSync(p('r3'))), 'ENOENT');
    // Unlinked while open: still readable through the handle.
    fs.writeFileSync(p('open-unlinked'), 'still here');
    const fd = fs.openSync(p('open-unlinked'), 'r');
    fs.unlinkSync(p('open-unlinked'));
    const b = Buffer.alloc(10);
    t.is(fs.readSync(fd, b, 0, 10, 0), 10);
    t.is(b.toString(), 'still here');
    t.is(fs.fstatSync(fd).size, 10);
    fs.closeSync(fd);
  });

  test.serial(`${mode}: mkdir, rmdir`, (t) => {
    fs.mkdirSync(p('dir1'), { mode: 0o750 });
    t.true(fs.statSync(p('dir1')).isDirectory());
    t.is(fs.statSync(p('dir1')).mode & 0o7777, 0o750);
    fs.writeFileSync(p('dir1/f'), '');
    t.is(errCode(() => fs.rmdirSync(p('dir1'))), 'ENOTEMPTY');
    fs.unlinkSync(p('dir1/f'));
    fs.rmdirSync(p('dir1'));
    t.false(fs.existsSync(p('dir1')));
    t.is(errCode(() => fs.mkdirSync(p('dB'))), 'EEXIST');
    t.is(errCode(() => fs.rmdirSync(p('x1'))), 'ENOTDIR');
  });

  test.serial(`${mode}: readdir of 1000 entries`, (t) => {
    fs.mkdirSync(p('big'));
    const want: string[] = [];
    for (let i = 0; i < 1000; i++) {
      const name = `entry-${String(i).padStart(4, '0')}-${'n'.repeat(i % 40)}`;
      want.push(name);
      fs.writeFileSync(path.join(s.backing, 'big', name), String(i)); // created behind the mount's back
    }
    const got = fs.readdirSync(p('big'));
    t.is(got.length, 1000);
    t.deepEqual(got.sort(), want.sort());
    const typed = fs.readdirSync(p('big'), { withFileTypes: true });
    t.true(typed.every((d) => d.isFile()));
    // Entries are usable after READDIRPLUS handed out their nodeids.
    t.is(fs.readFileSync(p('big', want[777]!), 'utf8'), '777');
    // A second listing (second OPENDIR, READDIR from 0) sees a change.
    fs.unlinkSync(p('big', want[0]!));
    t.is(fs.readdirSync(p('big')).length, 999);
    // Inode numbers in dirents match stat.
    const dir = fs.opendirSync(p('big'));
    const first = dir.readSync()!;
    dir.closeSync();
    t.truthy(first);
  });

  test.serial(`${mode}: symlink, readlink, hard link, mknod`, (t) => {
    fs.writeFileSync(p('target'), 'T');
    fs.symlinkSync('target', p('sl'));
    t.is(fs.readlinkSync(p('sl')), 'target');
    t.true(fs.lstatSync(p('sl')).isSymbolicLink());
    t.is(fs.readFileSync(p('sl'), 'utf8'), 'T');
    fs.symlinkSync('/nonexistent/abs', p('dangling'));
    t.is(fs.readlinkSync(p('dangling')), '/nonexistent/abs');
    t.is(fs.readlinkSync(path.join(s.backing, 'sl')), 'target');

    fs.linkSync(p('target'), p('hard'));
    const a = fs.statSync(p('target'));
    const b = fs.statSync(p('hard'));
    t.is(a.ino, b.ino);
    t.is(b.nlink, 2);
    fs.appendFileSync(p('hard'), 'more');
    t.is(fs.readFileSync(p('target'), 'utf8'), 'Tmore');
    fs.unlinkSync(p('target'));
    t.is(fs.readFileSync(p('hard'), 'utf8'), 'Tmore');
    t.is(fs.statSync(p('hard')).nlink, 1);

    libc.mknod(p('fifo'), 0o10644, 0);
    t.true(fs.lstatSync(p('fifo')).isFIFO());
    t.true(fs.lstatSync(path.join(s.backing, 'fifo')).isFIFO());
  });

  test.serial(`${mode}: xattr set, get, list, remove`, (t) => {
    fs.writeFileSync(p('xa'), '');
    try {
      libc.lsetxattr(path.join(s.backing, 'xa'), 'user.probe', Buffer.from('1'), 0);
    } catch (e) {
      t.fail(`backing filesystem of /tmp does not support user xattrs (${(e as Error).message}); need CONFIG_TMPFS_XATTR`);
      return;
    }
    libc.lsetxattr(p('xa'), 'user.color', Buffer.from('blue'), 0);
    const len = libc.lgetxattr(p('xa'), 'user.color', null);
    t.is(len, 4);
    const buf = Buffer.alloc(len);
    libc.lgetxattr(p('xa'), 'user.color', buf);
    t.is(buf.toString(), 'blue');
    t.is(errCode(() => libc.lgetxattr(p('xa'), 'user.color', Buffer.alloc(2))), 'ERANGE');
    t.is(errCode(() => libc.lsetxattr(p('xa'), 'user.color', Buffer.from('red'), 1 /* XATTR_CREATE */)), 'EEXIST');
    const list = Buffer.alloc(libc.llistxattr(p('xa'), null));
    libc.llistxattr(p('xa'), list);
    t.deepEqual(list.toString().split('\0').filter(Boolean).sort(), ['user.color', 'user.probe']);
    libc.lremovexattr(p('xa'), 'user.color');
    t.is(errCode(() => libc.lgetxattr(p('xa'), 'user.color', null)), 'ENODATA');
    const back = Buffer.alloc(10);
    t.is(errCode(() => libc.lgetxattr(path.join(s.backing, 'xa'), 'user.color', back)), 'ENODATA');
  });

  test.serial(`${mode}: fsync, fdatasync, fallocate, SEEK_DATA/HOLE, copy_file_range`, (t) => {
    const fd = fs.openSync(p('sync'), 'w+');
    fs.writeSync(fd, 'durable');
    fs.fsyncSync(fd);
    fs.fdatasyncSync(fd);
    libc.fallocate(fd, 0, 0n, 1n << 20n);
    t.is(fs.fstatSync(fd).size, 1 << 20);
    fs.closeSync(fd);
    const dfd = fs.openSync(s.mnt, 'r');
    fs.fsyncSync(dfd); // FSYNCDIR
    fs.closeSync(dfd);

    // A file with data at 0 and at 1 MiB and a hole between (if the backing fs does holes).
    const sp = fs.openSync(p('sparse'), 'w+');
    fs.writeSync(sp, 'A', 0, 'latin1');
    fs.writeSync(sp, 'B', 1 << 20, 'latin1');
    const hole = libc.lseek(sp, 0n, libc.SEEK_HOLE);
    const data = libc.lseek(sp, 4096n, libc.SEEK_DATA);
    const bfd = fs.openSync(path.join(s.backing, 'sparse'), 'r');
    t.is(hole, libc.lseek(bfd, 0n, libc.SEEK_HOLE), 'SEEK_HOLE as on the backing file');
    t.is(data, libc.lseek(bfd, 4096n, libc.SEEK_DATA), 'SEEK_DATA as on the backing file');
    fs.closeSync(bfd);
    t.is(errCode(() => libc.lseek(sp, 10n << 20n, libc.SEEK_DATA)), 'ENXIO');
    fs.closeSync(sp);

    const src = fs.openSync(p('a.bin'), 'r');
    const dst = fs.openSync(p('copy.bin'), 'w+');
    const n = libc.copyFileRange(src, 0n, dst, 0n, 5000n, 0);
    t.is(n, 5000);
    fs.closeSync(src);
    fs.closeSync(dst);
    t.deepEqual(fs.readFileSync(p('copy.bin')), fs.readFileSync(p('a.bin')).subarray(0, 5000));
  });

  test.serial(`${mode}: concurrent reads from 4 files`, async (t) => {
    const size = 2 << 20;
    for (let i = 0; i < 4; i++) fs.writeFileSync(p(`c${i}`), pattern(10 + i, size));
    const before = await s.stats();
    dropCaches();
    const got = await Promise.all([0, 1, 2, 3].map((i) => fsp.readFile(p(`c${i}`))));
    for (let i = 0; i < 4; i++) t.true(got[i]!.equals(pattern(10 + i, size)), `file c${i}`);
    const { stats, kernel } = await s.stats();
    if (mode === 'bpf') {
      t.true((kernel.READ ?? 0) > (before.kernel.READ ?? 0), 'the program served the reads in the kernel');
      t.is(stats.READ ?? 0, before.stats.READ ?? 0, 'no READ reached the daemon');
      t.true((kernel.WRITE ?? 0) > 0, 'the program served writes');
      t.true((kernel.GETATTR ?? 0) > 0, 'the program served GETATTR of open files');
    } else if (passthrough) {
      t.is(stats.READ ?? 0, 0, 'passthrough: the kernel reads the backing file, no READ reaches us');
      t.is(stats.WRITE ?? 0, 0, 'passthrough: no WRITE reaches us');
    } else {
      t.true((stats.READ ?? 0) > (before.stats.READ ?? 0), 'reads were served by the daemon');
      t.true((stats.WRITE ?? 0) > 0);
    }
  });

  if (mode === 'bpf') {
    test.serial(`${mode}: detach hands every request to the daemon on the same mount; attach takes them back`, async (t) => {
      const dev = fs.statSync(s.mnt).dev;
      const data = pattern(42, 1 << 20);
      const before = await s.stats();
      await s.handle!.detach();
      dropCaches();
      t.deepEqual(fs.readFileSync(p('c1')), pattern(11, 2 << 20), 'detached: c1 reads back');
      fs.writeFileSync(p('detached.bin'), data);
      dropCaches();
      t.deepEqual(fs.readFileSync(p('detached.bin')), data);
      const mid = await s.stats();
      t.is(mid.kernel.READ ?? 0, before.kernel.READ ?? 0, 'detached: the program served no READ');
      t.is(mid.kernel.WRITE ?? 0, before.kernel.WRITE ?? 0, 'detached: the program served no WRITE');
      t.true((mid.stats.READ ?? 0) > (before.stats.READ ?? 0), 'detached: the daemon served READ');
      t.true((mid.stats.WRITE ?? 0) > (before.stats.WRITE ?? 0), 'detached: the daemon served WRITE');
      t.is(fs.statSync(s.mnt).dev, dev, 'still the same mount');

      await s.handle!.attach();
      dropCaches();
      t.deepEqual(fs.readFileSync(p('detached.bin')), data, 'attached again: reads back');
      const after = await s.stats();
      t.true((after.kernel.READ ?? 0) > (mid.kernel.READ ?? 0), 'attached again: the program serves READ');
      t.is(after.stats.READ ?? 0, mid.stats.READ ?? 0, 'attached again: no READ reaches the daemon');
      t.deepEqual(fs.readFileSync(path.join(s.backing, 'detached.bin')), data, 'backing file has the bytes');
      await t.throwsAsync(s.handle!.attach(), { message: /already attached|EBUSY/ }, 'attaching twice is refused');
    });
  }

  test.serial(`${mode}: counters and no leaked handles`, async (t) => {
    const { stats: daemon, kernel, tables } = await s.stats();
    // Whoever answered it: the daemon, or the program in the kernel.
    const stats: Record<string, number> = { ...daemon };
    for (const [op, n] of Object.entries(kernel)) stats[op] = (stats[op] ?? 0) + n;
    t.log(mode, 'daemon', JSON.stringify(daemon), 'kernel', JSON.stringify(kernel));
    for (const op of ['INIT', 'LOOKUP', 'GETATTR', 'SETATTR', 'CREATE', 'OPEN', 'RELEASE', 'MKDIR', 'RMDIR', 'UNLINK', 'RENAME', 'RENAME2',
      'LINK', 'SYMLINK', 'READLINK', 'MKNOD', 'OPENDIR', 'RELEASEDIR', 'FSYNC', 'FSYNCDIR', 'SETXATTR', 'GETXATTR', 'LISTXATTR',
      'REMOVEXATTR', 'FLUSH', 'STATFS', 'FALLOCATE', 'LSEEK', 'COPY_FILE_RANGE']) {
      t.true((stats[op] ?? 0) > 0, `${op} was exercised`);
    }
    t.true((stats.READDIR ?? 0) + (stats.READDIRPLUS ?? 0) > 0);
    t.is(tables.handles, 0, 'every OPEN/OPENDIR was RELEASEd');
  });

  test.serial(`${mode}: unmount by someone else stops the server`, async (t) => {
    t.true(await libc.umount2Async(s.mnt, 0), 'umount2 succeeded');
    const e = await Promise.race([s.exited, new Promise<null>((r) => setTimeout(() => r(null), 30_000))]);
    t.truthy(e, `server still running 30 s after umount:\n${s.stderr()}`);
    t.is(e!.code, 0);
    t.is(e!.closed, 'ENODEV');
    await fsp.rm(path.dirname(s.backing), { recursive: true, force: true });
  });
}

test.after.always(async () => {
  // If a test failed midway, leave no mounts in /tmp and no server keeping ava alive.
  for (const l of fs.readFileSync('/proc/self/mounts', 'utf8').split('\n')) {
    const mp = l.split(' ')[1];
    if (mp?.startsWith('/tmp/fuse-posix-')) await libc.umount2Async(mp, libc.MNT_DETACH);
  }
  for (const c of servers) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});
