// Host-side pieces of the mirror example: clang diagnostics, the demo's tables. (The map
// layouts it shares with the daemon: contract.test.ts.)
import test from 'ava';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { clangDiagnostics, compileBpf, KFUNCS_HEADER } from '../../src/policy/compile.ts';
import { opcodeTable, replicaTable, bytes } from '../../src/demo/report.ts';


test('clang diagnostics keep file:line lines only', (t) => {
  const err = `bpf/examples/x.bpf.c:12:3: error: use of undeclared identifier 'y'\n   12 |   y = 1;\n      |   ^\n1 error generated.\n`;
  t.deepEqual(clangDiagnostics(err), [`bpf/examples/x.bpf.c:12:3: error: use of undeclared identifier 'y'`]);
});

test('tables: READ and WRITE first, totals, both sides per replica', (t) => {
  const zero = { reads: 0, readBytes: 0, writes: 0, writeBytes: 0, errors: 0, cached: 0 };
  const ops = opcodeTable({
    LOOKUP: { kernel: 0, daemon: 5 }, INIT: { kernel: 0, daemon: 1 }, READ: { kernel: 9, daemon: 0 }, WRITE: { kernel: 2, daemon: 0 },
  }).split('\n');
  t.regex(ops[2]!, /^READ\s+9\s+0$/);
  t.regex(ops[3]!, /^WRITE\s+2\s+0$/);
  t.regex(ops.at(-1)!, /^total\s+11\s+6$/);
  const reps = replicaTable({ kernel: [{ ...zero, reads: 5, readBytes: 3 << 20 }, { ...zero, reads: 4 }], daemon: [zero, zero], events: {} }, ['/a', '/b']);
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
