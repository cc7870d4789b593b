// Host-side pieces of the mirror policy: map value layouts (must match
// bpf/examples/mirror.bpf.c), clang diagnostics, the demo's tables.
import test from 'ava';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeOpStats, decodeReplicaStats, encodeNode, encodeNodeKey, MAX_REPLICAS, NODE_SIZE } from '../../src/policy/mirror-layout.ts';
import { clangDiagnostics, compileBpf, KFUNCS_HEADER } from '../../src/policy/compile.ts';
import { opcodeTable, replicaTable, bytes } from '../../src/demo/report.ts';

const SRC = readFileSync(fileURLToPath(new URL('../../bpf/examples/mirror.bpf.c', import.meta.url)), 'utf8');

test('the C program and the layout agree on the replica limit', (t) => {
  t.regex(SRC, new RegExp(`#define MIRROR_MAX_REPLICAS\\s+${MAX_REPLICAS}\\b`));
  t.is(NODE_SIZE, (MAX_REPLICAS + 2) * 4 + MAX_REPLICAS * 8);
  t.regex(SRC, /struct bpf_file __kptr \*fb3;\n};/);
});

test('node entries: backing ids in replica order, then their count', (t) => {
  const v = encodeNode([7, 9]);
  t.is(v.length, NODE_SIZE);
  t.deepEqual([0, 1, 2, 3, 4, 5].map((i) => v.readUInt32LE(i * 4)), [7, 9, 0, 0, 2, 0]);
  t.is(encodeNodeKey(5).readBigUInt64LE(0), 5n);
  t.throws(() => encodeNode([]));
  t.throws(() => encodeNode([1, 2, 3, 4, 5]));
});

test('counters decode', (t) => {
  const op = Buffer.alloc(16);
  op.writeBigUInt64LE(3n, 0);
  op.writeBigUInt64LE(4n, 8);
  t.deepEqual(decodeOpStats(op), { served: 3, upcalled: 4 });
  const r = Buffer.alloc(48);
  [1n, 2n, 3n, 4n, 5n, 6n].forEach((x, i) => r.writeBigUInt64LE(x, i * 8));
  t.deepEqual(decodeReplicaStats(r), { reads: 1, readBytes: 2, writes: 3, writeBytes: 4, errors: 5, cached: 6 });
});

test('clang diagnostics keep file:line lines only', (t) => {
  const err = `bpf/examples/x.bpf.c:12:3: error: use of undeclared identifier 'y'\n   12 |   y = 1;\n      |   ^\n1 error generated.\n`;
  t.deepEqual(clangDiagnostics(err), [`bpf/examples/x.bpf.c:12:3: error: use of undeclared identifier 'y'`]);
});

test('tables: READ and WRITE first, totals, both sides per replica', (t) => {
  const zero = { reads: 0, readBytes: 0, writes: 0, writeBytes: 0, errors: 0, cached: 0 };
  const s = {
    fuse: { LOOKUP: 5, INIT: 1 }, daemon: [zero, zero], attached: true, openFiles: 0, tables: { nodes: 1, handles: 0 },
    bpf: { ops: { READ: { served: 9, upcalled: 0 }, WRITE: { served: 2, upcalled: 0 }, LOOKUP: { served: 0, upcalled: 5 } },
      replicas: [{ ...zero, reads: 5, readBytes: 3 << 20 }, { ...zero, reads: 4 }, zero, zero] },
  };
  const ops = opcodeTable(s).split('\n');
  t.regex(ops[2]!, /^READ\s+9\s+0$/);
  t.regex(ops[3]!, /^WRITE\s+2\s+0$/);
  t.regex(ops.at(-1)!, /^total\s+11\s+6$/);
  const reps = replicaTable(s, ['/a', '/b']);
  t.regex(reps, /0 \/a\s+kernel\s+5\s+3\.00 MiB/);
  t.is(bytes(1536), '1.5 KiB');
});

test('a kernel build without the kernel\'s kfunc header is a clear error, before clang runs', (t) => {
  const build = mkdtempSync(join(tmpdir(), 'fk-build-'));
  try {
    const e = t.throws(() => compileBpf({ source: '/nonexistent.bpf.c', outDir: join(build, 'out'), buildDir: build, repo: '/nonexistent' }));
    t.regex(e!.message, new RegExp(`${KFUNCS_HEADER}.*run \`fuse-kfunc kernel build\``));
    // With the header, the next problem is the next one reported (here: no vmlinux.h source)
    mkdirSync(join(build, 'libbpf', 'include'), { recursive: true });
    writeFileSync(join(build, 'libbpf', 'include', KFUNCS_HEADER), '');
    const e2 = t.throws(() => compileBpf({ source: '/nonexistent.bpf.c', outDir: join(build, 'out'), buildDir: build, repo: '/nonexistent', btf: join(build, 'no-btf') }));
    t.notRegex(e2!.message, new RegExp(KFUNCS_HEADER));
  } finally {
    rmSync(build, { recursive: true, force: true });
  }
});
