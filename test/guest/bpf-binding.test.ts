// The TypeScript libbpf binding against the real verifier in the patched kernel.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { BpfObjectSpec, VerifierError, BpfError } from '../../src/bpf/index.ts';
import { assertInGuest, fixture } from './helpers.ts';

test.before(() => assertInGuest());

function sumCtx(vals: number[]): Buffer {
  const b = Buffer.alloc(4 + 32 + 8 + 4);
  b.writeUInt32LE(vals.length, 0);
  vals.forEach((v, i) => b.writeUInt32LE(v, 4 + 4 * i));
  return b;
}

test('open from a file, load, run: the program computes in the kernel', (t) => {
  const spec = BpfObjectSpec.open(fixture('sum.bpf.o'));
  t.deepEqual(spec.programs, ['sum']);
  const obj = spec.load();
  try {
    const prog = obj.program('sum');
    t.true(prog.fd > 0);
    t.is(prog.section, 'syscall');
    const r = prog.testRun(sumCtx([5, 6, 7]));
    t.is(r.retval, 42);
    t.is(r.ctx!.readBigUInt64LE(40), 18n);
  } finally { obj.close(); }
});

test('open from a buffer works the same', (t) => {
  const obj = BpfObjectSpec.open(readFileSync(fixture('sum.bpf.o'))).load();
  try {
    t.is(obj.program('sum').testRun(sumCtx([1, 2])).ctx!.readBigUInt64LE(40), 3n);
  } finally { obj.close(); }
});

test('a verifier rejection names the program and carries the log lines that matter', (t) => {
  const spec = BpfObjectSpec.open(fixture('oob.bpf.o'));
  const err = t.throws(() => spec.load()) as VerifierError;
  t.true(err instanceof VerifierError);
  t.is(err.program, 'oob');
  t.is(err.code, 'EACCES');
  t.regex(err.message, /the verifier rejected program "oob"/);
  t.regex(err.message, /invalid access to map value/);
  t.regex(err.log, /invalid access to map value/);
  spec.close();
});

test('maps: update, lookup, iterate, delete with size checks', (t) => {
  const spec = BpfObjectSpec.open(fixture('sum.bpf.o'));
  t.deepEqual(spec.maps, []);
  spec.close();
  const m = BpfObjectSpec.open(fixture('counters.bpf.o')).load();
  try {
    const map = m.map('counters');
    t.is(map.keySize, 4);
    t.is(map.valueSize, 8);
    const key = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b; };
    const val = (n: bigint) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(n); return b; };
    t.is(map.lookup(key(1)), undefined);
    map.update(key(1), val(10n));
    map.update(key(2), val(20n));
    t.is(map.lookup(key(1))!.readBigUInt64LE(), 10n);
    t.deepEqual([...map.keys()].map((k) => k.readUInt32LE()).sort(), [1, 2]);
    const e = t.throws(() => map.update(key(3), val(1n), 'exist')) as BpfError;
    t.is(e.code, 'ENOENT');
    t.true(map.delete(key(1)));
    t.false(map.delete(key(1)));
    t.throws(() => map.lookup(Buffer.alloc(3)), { message: /key is 3 bytes, the map wants 4/ });
  } finally { m.close(); }
});

test('globals set before load reach the program', (t) => {
  const spec = BpfObjectSpec.open(fixture('counters.bpf.o'));
  spec.setGlobal('bias', 1000);
  t.throws(() => spec.setGlobal('nope', 1), { message: /no global variable "nope"/ });
  const obj = spec.load();
  try {
    t.is(obj.program('add_bias').testRun(Buffer.alloc(8)).retval, 1000 + 7);
  } finally { obj.close(); }
});

test('a missing object file is a clear error', (t) => {
  const e = t.throws(() => BpfObjectSpec.open('/nonexistent.bpf.o')) as BpfError;
  t.is(e.code, 'ENOENT');
  t.regex(e.message, /cannot open BPF object \/nonexistent\.bpf\.o/);
});
