// A FUSE mount works in the guest: a libfuse3 daemon serves a file, the kernel reads it.
import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assertInGuest, fixture } from './helpers.ts';

test.before(() => assertInGuest());

async function waitFor(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return cond();
}

test('libfuse3 daemon mounts, serves a read, unmounts', async (t) => {
  t.true(existsSync('/dev/fuse'), '/dev/fuse must exist in the guest');
  const mnt = mkdtempSync(join(tmpdir(), 'hello-'));
  const daemon = spawn(fixture('hello_fuse'), ['-f', '-s', '-o', 'default_permissions', mnt], { stdio: ['ignore', 'inherit', 'inherit'] });
  try {
    const mounted = await waitFor(() => readFileSync('/proc/mounts', 'utf8').includes(` ${mnt} fuse`), 30_000);
    t.true(mounted, 'mount appears in /proc/mounts');
    t.deepEqual(readdirSync(mnt), ['hello']);
    t.is(readFileSync(join(mnt, 'hello'), 'utf8'), 'hello from a FUSE daemon in the fuse-kfunc guest\n');
  } finally {
    spawnSync('umount', [mnt]);
    await new Promise((r) => { if (daemon.exitCode !== null) r(null); else daemon.on('exit', r); });
  }
  t.is(daemon.exitCode, 0);
  t.false(readFileSync('/proc/mounts', 'utf8').includes(` ${mnt} `));
});
