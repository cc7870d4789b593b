import test from 'ava';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  decodeKernelStats, decodeKernelValue, formatPerBacking, formatStats, mergeStats, statsFileName, totals,
} from '../../src/sdk/stats.ts';
import { scanStructOps } from '../../src/sdk/elf.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));

const value = (served: number, upcalled: number) => {
  const b = Buffer.alloc(16);
  b.writeBigUInt64LE(BigInt(served), 0);
  b.writeBigUInt64LE(BigInt(upcalled), 8);
  return b;
};

test('fuse_kfunc_stats values decode; zero entries are dropped', (t) => {
  t.deepEqual(decodeKernelValue(value(3, 4)), { served: 3, upcalled: 4 });
  t.throws(() => decodeKernelValue(Buffer.alloc(8)), { message: /expected 16/ });
  const k = decodeKernelStats((op) => (op === 15 ? value(7, 1) : op === 16 ? value(2, 0) : value(0, 0)));
  t.deepEqual(k, { READ: { served: 7, upcalled: 1 }, WRITE: { served: 2, upcalled: 0 } });
});

test('merge: no program = kernel 0, program without counters = unknown', (t) => {
  const daemon = { LOOKUP: 2, READ: 1 };
  t.deepEqual(mergeStats(daemon, undefined), { LOOKUP: { kernel: 0, daemon: 2 }, READ: { kernel: 0, daemon: 1 } });
  t.deepEqual(mergeStats(daemon, null), { LOOKUP: { kernel: null, daemon: 2 }, READ: { kernel: null, daemon: 1 } });
  const m = mergeStats(daemon, { READ: { served: 5, upcalled: 1 }, WRITE: { served: 3, upcalled: 0 } });
  t.deepEqual(m, { LOOKUP: { kernel: 0, daemon: 2 }, READ: { kernel: 5, daemon: 1 }, WRITE: { kernel: 3, daemon: 0 } });
  t.deepEqual(totals(m), { kernel: 8, daemon: 3 });
  t.deepEqual(totals(mergeStats(daemon, null)), { kernel: null, daemon: 3 });
});

test('table format', (t) => {
  const s = formatStats(mergeStats({ READ: 1 }, { READ: { served: 10, upcalled: 1 } }));
  t.is(s, ['opcode  kernel  daemon', 'READ        10       1', 'total       10       1'].join('\n'));
  t.regex(formatStats(mergeStats({ READ: 1 }, null)), /READ\s+unknown\s+1/);
});

test('stats file names are reversible', (t) => {
  t.is(statsFileName('/tmp/a b/m'), '%2Ftmp%2Fa%20b%2Fm.json');
  t.is(decodeURIComponent(statsFileName('/x/y-z').replace(/\.json$/, '')), '/x/y-z');
});

test('ELF scan rejects non-BPF input', (t) => {
  t.throws(() => scanStructOps(Buffer.from('int x;\n')), { message: /not an ELF/ });
  t.throws(() => scanStructOps(readFileSync(process.execPath)), { message: /not a BPF object/ });
});

// Compiles the example against the kernel build's vmlinux.h when the build is there.
const build = process.env.FUSE_KFUNC_BUILD ?? join(process.env.HOME ?? '/root', '.cache/fuse-kfunc/builds/current');
const canCompile = existsSync(join(build, 'vmlinux.h')) && existsSync(join(build, 'libbpf/include'));
(canCompile ? test : test.skip)('ELF scan finds passthrough.bpf.c\'s struct_ops map', (t) => {
  const out = mkdtempSync(join(tmpdir(), 'sdk-elf-'));
  copyFileSync(join(build, 'vmlinux.h'), join(out, 'vmlinux.h'));
  const o = join(out, 'passthrough.bpf.o');
  execFileSync('clang-19', ['-O2', '-g', '--target=bpf', '-D__TARGET_ARCH_x86', '-Wall', '-Werror', '-I', out,
    '-I', join(build, 'libbpf/include'), '-I', join(REPO, 'bpf/include'), '-c', join(REPO, 'bpf/examples/passthrough.bpf.c'), '-o', o]);
  t.deepEqual(scanStructOps(readFileSync(o)), { maps: ['passthrough_ops'], fuseBpfOps: true });
});

test('per backing directory: one row each, program and daemon side by side, events after', (t) => {
  const z = { reads: 0, readBytes: 0, writes: 0, writeBytes: 0, errors: 0, cached: 0 };
  const out = formatPerBacking({
    kernel: [{ ...z, reads: 3, readBytes: 12288, writes: 1, writeBytes: 100 }, { ...z, reads: 7, readBytes: 3 << 20 }],
    daemon: [{ ...z }, { ...z, writes: 2, writeBytes: 10 }],
    events: { promotions: 4 },
  }, ['/srv/slow', '/srv/fast']);
  const lines = out.split('\n');
  t.is(lines.length, 4);
  t.regex(lines[0]!, /^#\s+backing\s+kernel reads\s+kernel writes\s+daemon reads\s+daemon writes$/);
  t.regex(lines[1]!, /^0\s+\/srv\/slow\s+3 \(12\.0 KiB\)\s+1 \(100 B\)\s+0 \(0 B\)\s+0 \(0 B\)$/);
  t.regex(lines[2]!, /^1\s+\/srv\/fast\s+7 \(3\.0 MiB\)\s+0 \(0 B\)\s+0 \(0 B\)\s+2 \(10 B\)$/);
  t.is(lines[3], 'promotions 4');
  t.regex(formatPerBacking({ kernel: null, daemon: [z, z], events: {} }, ['a', 'b']).split('\n')[1]!, /^0\s+a\s+-\s+-/, 'no program: no kernel column');
});
