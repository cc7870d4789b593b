// The guest environment the other tests rely on.
import test from 'ava';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assertInGuest } from './helpers.ts';

test.before(() => assertInGuest());

test('kernel is the patched build with the project localversion', (t) => {
  const release = readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
  t.regex(release, /^6\.12\.\d+-fuse-kfunc$/);
});

test('FUSE, BPF and 9p are built in', (t) => {
  const fss = readFileSync('/proc/filesystems', 'utf8');
  for (const fs of ['fuse', 'bpf', '9p', 'tmpfs', 'tracefs']) t.regex(fss, new RegExp(`\\b${fs}\\n`), fs);
  t.notThrows(() => readFileSync('/sys/kernel/btf/vmlinux').subarray(0, 4));
});

test('mounts: root read-only, bpffs, tracefs, writable tmp', (t) => {
  const mounts = readFileSync('/proc/mounts', 'utf8');
  t.regex(mounts, /^hostroot \/ 9p ro[,\s]/m);
  t.regex(mounts, /^bpf \/sys\/fs\/bpf bpf /m);
  t.regex(mounts, /^tracefs \/sys\/kernel\/tracing tracefs /m);
  const dir = mkdtempSync(join(tmpdir(), 'w-'));
  writeFileSync(join(dir, 'f'), 'x');
  t.is(readFileSync(join(dir, 'f'), 'utf8'), 'x');
  const err = t.throws(() => writeFileSync('/usr/fuse-kfunc-should-fail', 'x')) as NodeJS.ErrnoException;
  t.is(err.code, 'EROFS');
});

test('node and the host toolchain run in the guest', (t) => {
  t.is(process.version.slice(0, 3), 'v20');
  const out = execFileSync('clang-19', ['--version'], { encoding: 'utf8' });
  t.regex(out, /clang version 19/);
});
