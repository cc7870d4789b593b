// mountFuse() serving in this very process: only async fs calls on the mount (see
// docs/fuse-server.md, "in-process clients"), an op overridden through `setup`, and
// close() unmounting without deadlocking the event loop.
import test from 'ava';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { mountFuse, protocol as P } from '../../src/fuse/index.ts';

test.before(() => {
  if (!fs.existsSync('/dev/fuse')) throw new Error('/dev/fuse is missing: this kernel/VM has no FUSE (CONFIG_FUSE_FS) or devtmpfs is not mounted');
  if (process.getuid?.() !== 0) throw new Error('fuse tests need root');
});

test('in-process mount, op override via setup, close()', async (t) => {
  const base = await fsp.mkdtemp('/tmp/fuse-inproc-');
  const backing = path.join(base, 'b');
  const mnt = path.join(base, 'm');
  await fsp.mkdir(backing);
  await fsp.mkdir(mnt);
  await fsp.writeFile(path.join(backing, 'hello'), 'world');
  const h = await mountFuse({
    backing, mountpoint: mnt, handleSignals: false,
    setup: ({ session }) => {
      session.on(P.Op.STATFS, () => P.encodeStruct(P.STATFS_OUT, { st: { blocks: 4242, bfree: 1, bavail: 1, bsize: 4096, namelen: 255, frsize: 4096 } }));
    },
  });
  try {
    t.true(h.device.fd > 2);
    t.is(await fsp.readFile(path.join(mnt, 'hello'), 'utf8'), 'world');
    await fsp.writeFile(path.join(mnt, 'new'), 'data');
    t.deepEqual((await fsp.readdir(mnt)).sort(), ['hello', 'new']);
    t.is((await fsp.statfs(mnt)).blocks, 4242, 'overridden STATFS answered');
    t.is(h.stats().STATFS, 1);
  } finally {
    await h.close();
  }
  t.is(await h.closed, 'ENODEV');
  t.false(fs.readFileSync('/proc/self/mounts', 'utf8').includes(mnt), 'unmounted');
  t.is(fs.readFileSync(path.join(backing, 'new'), 'utf8'), 'data');
  await fsp.rm(base, { recursive: true, force: true });
});
