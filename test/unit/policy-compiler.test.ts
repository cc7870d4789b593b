// The policy compiler on the host: what it makes of the stripe module, the same answers from
// the TypeScript and from its C (compiled natively with bpf/runtime/policy_math.h and run on
// random inputs), and errors that point at TypeScript lines. The BPF side is loaded, run and
// compared with the daemon in the VM (test/guest/policies.test.ts and the differential tests).
import test from 'ava';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compilePolicy } from '../../src/policy/compiler/emit.ts';
import { nativeCheck } from '../../src/policy/compiler/native.ts';
import { PolicyCompileError } from '../../src/policy/compiler/translate.ts';
import { definePolicy } from '../../src/policy/lang/define.ts';
import { resolveParams } from '../../src/policy/lang/params.ts';
import stripe from '../../src/policy/builtin/stripe.ts';
import { builtinModuleFile } from '../../src/policy/builtin/index.ts';
import { layoutHooks, replicaHooks } from '../../src/policy/runtime/functions.ts';
import { Layout } from '../../src/policy/runtime/layout.ts';
import { prng } from '../../src/testing/workload.ts';
import { repoRoot } from '../../src/util/paths.ts';
import { tsLines } from '../../src/bpf/errors.ts';

const stripeFile = builtinModuleFile('stripe');

test('stripe compiles to readable C: parameters as const volatile globals, #line at the .ts', (t) => {
  const c = compilePolicy(stripeFile, { repo: repoRoot() });
  t.deepEqual(c.definition, { name: 'stripe', summary: stripe.summary, backings: stripe.backings, params: stripe.params as never }, 'read from the literals, not by running the module');
  t.regex(c.source, /^\/\/ SPDX-License-Identifier: GPL-2.0\n/);
  t.regex(c.source, /const volatile __s64 param_chunk = 65536;/);
  t.regex(c.source, /static __always_inline int policy_locate\(__s64 off, struct policy_segment \*seg\)/);
  t.regex(c.source, /__s64 c = policy_div\(off, param_chunk\);/);
  t.regex(c.source, /seg->backing = policy_mod\(c, policy_backings\);/);
  t.regex(c.source, new RegExp(`#line \\d+ "${stripeFile.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}"`));
  t.regex(c.source, /#define POLICY_OPS\t\tstripe_ops\n/);
  t.regex(c.source, /#include "layout.bpf.h"\n$/);
  t.is(c.structOps, 'stripe_ops');
  t.notRegex(c.source, /undefined|NaN|\$\{/);
});

test('parameters: defaults, sizes, bounds and unknown names, as globals for the loader', (t) => {
  const r = resolveParams(stripe, { chunk: '16k' }, 3, 1);
  t.deepEqual(r.context, { backings: 3, chunk: 16384 });
  t.deepEqual(r.globals, { policy_backings: 3, policy_attr_timeout: 1, param_chunk: 16384 });
  t.is(resolveParams(stripe, {}, 2, 0).context.chunk, 65536);
  t.throws(() => resolveParams(stripe, { chunk: '10000' }, 2, 1), { message: /--chunk: 10000 is not a multiple of 4k/ });
  t.throws(() => resolveParams(stripe, { chunk: '128m' }, 2, 1), { message: /--chunk: 134217728 is larger than 64m/ });
  t.throws(() => resolveParams(stripe, { chunk: 'big' }, 2, 1), { message: /--chunk: "big" is not a size/ });
  t.throws(() => resolveParams(stripe, { stripes: 2 }, 2, 1), { message: /stripe has no parameter --stripes \(it takes --chunk\)/ });
  t.throws(() => resolveParams(stripe, {}, 5, 1), { message: /stripe needs 2\.\.4 backing directories, got 5/ });
});

test('the C the compiler writes answers as the TypeScript does (stripe, random inputs, several geometries)', (t) => {
  const c = compilePolicy(stripeFile);
  const contexts = ([[4096, 2], [65536, 3], [12288, 4], [64 << 20, 2]] as const).map(([chunk, backings]) => ({ chunk, backings }));
  const r = nativeCheck(c, contexts);
  t.is(r.calls, 4 * 400 * 3);
  t.deepEqual(r.mismatches, []);
  // The check can fail: the same C against functions that answer differently.
  const wrong = nativeCheck({ ...c, js: c.js.replace('c % p.backings', '(c + 1) % p.backings') }, contexts.slice(0, 1), 50);
  t.true(wrong.mismatches.length > 0 && wrong.mismatches[0]!.call.startsWith('locate'));
});

test('stripe geometry through the userspace runtime: pieces, sizes and their inverse', (t) => {
  // The daemon's functions: the JavaScript compiled from the module's source.
  const hooks = layoutHooks({ name: 'stripe', family: 'layout', js: compilePolicy(stripeFile).js });
  const g = new Layout(hooks, { backings: 3, chunk: 4096 });
  t.deepEqual(g.pieces(4000, 5000).map(({ backing, offset, len, bufOff }) => ({ backing, offset, len, bufOff })), [
    { backing: 0, offset: 4000, len: 96, bufOff: 0 },
    { backing: 1, offset: 0, len: 4096, bufOff: 96 },
    { backing: 2, offset: 0, len: 808, bufOff: 4192 },
  ]);
  // Row 2 of backing 1: chunk 4 is the second row's second chunk.
  t.deepEqual(g.pieces(4 * 4096 + 1, 1).map((p) => [p.backing, p.offset, p.len]), [[1, 4096 + 1, 1]]);
  const r = prng(7);
  for (let k = 0; k < 300; k++) {
    const off = Math.floor(r() * 1e6);
    const len = 1 + Math.floor(r() * 40000);
    const ps = g.pieces(off, len);
    t.is(ps.reduce((a, p) => a + p.len, 0), len);
    ps.forEach((p, i) => t.is(p.bufOff, ps.slice(0, i).reduce((a, x) => a + x.len, 0)));
  }
  for (let L = 0; L < 5 * 4096 * 3; L += 997) {
    const sizes = [0, 1, 2].map((i) => g.backingSize(L, i));
    t.is(sizes.reduce((a, b) => a + b), L, `sum at ${L}`);
    t.is(g.logicalSize(sizes), L, `logical at ${L}`);
  }
  // A write that only reached backing 2's second row implies the file reaches there.
  t.is(g.logicalSize([0, 0, 4096 + 10]), (1 * 3 + 2) * 4096 + 10);
});

test('a segment the kernel would refuse is EIO in the userspace runtime too', (t) => {
  const bad = definePolicy({
    name: 'bad', summary: 'x', backings: { min: 2, max: 2 }, params: {},
    layout: { locate: (off) => ({ backing: 2, offset: off, length: 4096 }), backingSize: (s) => s, logicalEnd: (s) => s },
  }, '/nonexistent/bad.ts');
  t.throws(() => new Layout(bad.layout!, { backings: 2 }).pieces(0, 10), { message: /locate\(0\) gave backing 2/ });
});

/** Compiles a module given as text (written where the errors will point). */
function compileText(body: string, params = "{ chunk: param.size({ doc: 'c', default: '4k' }), mode: param.choice({ doc: 'm', choices: ['fast', 'slow'], default: 'fast' }) }"): string {
  const dir = mkdtempSync(join(tmpdir(), 'policy-text-'));
  const file = join(dir, 'my-policy.ts');
  const text = `import { definePolicy, param } from 'fuse-kfunc';
export default definePolicy({
  name: 'mine',
  summary: 'a test policy',
  backings: { min: 2, max: 2 },
  params: ${params},
  layout: {
${body}
  },
});
`;
  writeFileSync(file, text);
  return compilePolicy(file).source;
}

const okHooks = `    backingSize(size, i, p) { return size; },
    logicalEnd(size, i, p) { return size; },`;

function compileError(t: import('ava').ExecutionContext, locate: string, line: number, message: RegExp): void {
  const e = t.throws(() => compileText(`    locate(off, p) {\n${locate}\n    },\n${okHooks}`), { instanceOf: PolicyCompileError });
  t.truthy(e);
  const d = (e as PolicyCompileError).diagnostics[0]!;
  t.is(d.line, line, e!.message);
  t.true(d.file.endsWith('my-policy.ts'));
  t.regex(d.message, message);
  t.regex(e!.message, new RegExp(`my-policy\\.ts:${line}:\\d+: `));
}

test('compile errors name the TypeScript line and say what is allowed', (t) => {
  // locate's body starts on line 9 of the module.
  compileError(t, '      return { backing: 0, offset: off / 2, length: 1 };', 9, /write Math\.floor\(a \/ b\)/);
  compileError(t, '      let n = 0;\n      while (n < off) n++;\n      return { backing: 0, offset: n, length: 1 };', 10, /no while loops/);
  compileError(t, '      return { backing: 0, offset: Date.now(), length: 1 };', 9, /calls only Math\.floor\(a \/ b\), Math\.min, Math\.max/);
  compileError(t, '      return { backing: 0, offset: off, length: p.size };', 9, /no parameter "size" \(it has chunk, mode, backings\)/);
  compileError(t, "      if (p.mode === 'turbo') return { backing: 1, offset: off, length: 1 };\n      return { backing: 0, offset: off, length: 1 };", 9, /"turbo" is not one of mode's choices \(fast, slow\)/);
  compileError(t, '      return { backing: 0, offset: off };', 9, /returns length too/);
  compileError(t, '      for (let i = 0; i < off; i++) {}\n      return { backing: 0, offset: off, length: 1 };', 9, /verifier can see it end/);
  compileError(t, '      if (off > 4) return { backing: 0, offset: off, length: 1 };', 8, /not every path of layout\.locate returns/);
  compileError(t, "      const s = 'x';\n      return { backing: 0, offset: off, length: 1 };", 9, /a string is only compared: with a choice parameter/);
  compileError(t, '      const x = 1;\n      x = 2;\n      return { backing: 0, offset: off, length: x };', 10, /"x" is const/);
});

/** A placement module with `place`'s body and a rules parameter. */
function placementText(body: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'policy-place-'));
  const file = join(dir, 'my-policy.ts');
  writeFileSync(file, `import { definePolicy, param } from 'fuse-kfunc';
export default definePolicy({
  name: 'mine',
  summary: 'a test placement',
  backings: { min: 2, max: 4 },
  params: { rules: param.rules({ doc: 'rules', default: '.log=1' }) },
  placement: {
    place(path, p) {
${body}
    },
  },
});
`);
  return file;
}

test('string tests: startsWith/endsWith/=== on the path against literals and rules; anything else names the line', (t) => {
  const ok = compilePolicy(placementText(`      if (path === 'README' || path.startsWith('docs/')) return 1;
      for (const r of p.rules) {
        if (path.endsWith(r.match)) return r.to;
      }
      return path.endsWith('.\\"?') ? 1 : 0;`));
  t.regex(ok.functions, /policy_str_eq\(path, path_len, "README", 6\) \|\| policy_str_prefix\(path, path_len, "docs\/", 5\)/);
  t.regex(ok.functions, /policy_str_suffix\(path, path_len, param_rules\[r\]\.match, param_rules\[r\]\.len\)/);
  t.regex(ok.functions, /policy_str_suffix\(path, path_len, "\.\\"\\077", 3\)/, 'quotes and ? escaped (no trigraph)');
  t.regex(ok.source, /const volatile struct policy_rule param_rules\[POLICY_RULES_MAX\] = \{\n\t\{ \.to = 1, \.len = 4, \.match = "\.log" \},\n\};\nconst volatile __u32 param_rules_len = 1;/);
  const r = nativeCheck(ok, [{ backings: 2, rules: [{ match: '.log', to: 1 }] }, { backings: 4, rules: [{ match: 'a/', to: 3 }, { match: '.c', to: 2 }] }], 200);
  t.deepEqual(r.mismatches, []);
  const bad = (body: string, line: number, message: RegExp) => {
    const e = t.throws(() => compilePolicy(placementText(body)), { instanceOf: PolicyCompileError }) as PolicyCompileError;
    t.is(e.diagnostics[0]!.line, line, e.message);
    t.regex(e.diagnostics[0]!.message, message);
  };
  bad('      return path.length > 3 ? 1 : 0;', 9, /path is a string: a policy tests it with startsWith, endsWith or ===/);
  bad("      return path.includes('x') ? 1 : 0;", 9, /on strings, startsWith and endsWith/);
  bad('      return path.startsWith(path) ? 1 : 0;', 9, /compares with a string written here, a rule's pattern \(r.match\) or a string parameter/);
  bad("      return path === 3 ? 1 : 0;", 9, /a string is compared with a string/);
  bad('      return path + 1;', 9, /path is a string: test it/);
  bad('      for (const r of [1, 2]) { return r; }\n      return 0;', 9, /for-of walks a rules parameter/);
  bad('      for (const r of p.rules) { return r.from; }\n      return 0;', 9, /a rule has match \(a string\) and to \(a backing\), not "from"/);
  bad('      return p.rules;', 9, /rules is a list of rules: walk it with for \(const r of p\.rules\)/);
});

test('an operation is compared or asked about, never used as a number; errno names are checked', (t) => {
  const file = (body: string) => {
    const f = join(mkdtempSync(join(tmpdir(), 'policy-ops-')), 'my-policy.ts');
    writeFileSync(f, `import { definePolicy, errno, param } from 'fuse-kfunc';
export default definePolicy({
  name: 'mine', summary: 'ops', backings: { min: 1, max: 1 },
  params: { deny: param.ops({ doc: 'denied', default: 'write' }) },
  access: {
    before(op, p) {
${body}
    },
    after(op, result, p) { return 0; },
  },
});
`);
    return f;
  };
  const ok = compilePolicy(file("      if (op === 'fsync') return errno.EROFS;\n      return p.deny.includes(op) ? errno.EPERM : 0;"));
  t.regex(ok.functions, /if \(op == FUSE_OP_FSYNC\) \{\n\t\treturn 30 \/\* EROFS \*\/;/);
  t.regex(ok.functions, /return policy_op_in\(param_deny, op\) \? 1 \/\* EPERM \*\/ : 0;/);
  const bad = (body: string, message: RegExp) => t.throws(() => compilePolicy(file(body)), { instanceOf: PolicyCompileError, message });
  bad('      return op + 1;', /op is an operation: compare it/);
  bad("      return op === 'frobnicate' ? 1 : 0;", /an operation is one of 'read', 'write'/);
  bad('      return errno.ENOSYS;', /errno has no ENOSYS/);
  const wide = file('      return 0;');
  writeFileSync(wide, readFileSync(wide, 'utf8').replace('backings: { min: 1, max: 1 }', 'backings: { min: 1, max: 3 }'));
  t.throws(() => compilePolicy(wide), { instanceOf: PolicyCompileError, message: /backings: the access runtime serves 1 backing directory \(one backing file per FUSE file\)/ });
});

test('choices, switch and bounded loops translate to C a kernel developer reads', (t) => {
  const c = compileText(`    locate(off, p) {
      let b = 0;
      for (let i = 0; i < p.backings; i++) {
        if (off % (i + 2) === 0) b = i;
      }
      switch (p.mode) {
        case 'slow': return { backing: b, offset: off, length: Math.max(p.chunk, 4096) };
        default: return { backing: b, offset: off, length: p.chunk };
      }
    },
${okHooks}`);
  t.regex(c, /enum mode_choice \{ MODE_FAST, MODE_SLOW \};\nconst volatile __s64 param_mode = MODE_FAST;/);
  t.regex(c, /for \(__s64 i = 0; i < policy_backings; i\+\+\) \{/);
  t.regex(c, /if \(policy_mod\(off, i \+ 2\) == 0\) \{/);
  t.regex(c, /switch \(param_mode\) \{\n#line \d+ "[^"]+"\n\tcase MODE_SLOW:/);
  t.regex(c, /seg->length = policy_max\(param_chunk, 4096\);/);
});

test('bit operators have TypeScript\'s 32-bit meaning in the C too: the same answers for operands past 2^31', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'policy-bits-'));
  const file = join(dir, 'bits.ts');
  writeFileSync(file, `import { definePolicy } from 'fuse-kfunc';
export default definePolicy({
  name: 'bits', summary: 'hashes offsets with bit operators', backings: { min: 2, max: 3 }, params: {},
  layout: {
    locate(off, p) {
      let h = (off ^ (off >> 7)) & 0xffff;
      h ^= off << 5;
      h |= 1;
      const m = ~h << 3;
      return { backing: (h & 0x7fffffff) % p.backings, offset: off, length: 4096 + (m & 0xff) };
    },
    backingSize(size, i, p) { return (size >> 1) + i; },
    logicalEnd(size, i, p) { return size << 1; },
  },
});
`);
  const c = compilePolicy(file);
  t.regex(c.source, /h = policy_xor\(h, policy_shl\(off, 5\)\);/);
  t.regex(c.source, /__s64 m = policy_shl\(policy_not\(h\), 3\);/);
  const r = nativeCheck(c, [{ backings: 2 }, { backings: 3 }]);
  t.is(r.calls, 2 * 400 * 3);
  t.deepEqual(r.mismatches, []);
});

test('mirror compiles to the replicas runtime; its readFrom answers as the TypeScript does for both read modes', (t) => {
  const c = compilePolicy(builtinModuleFile('mirror'), { repo: repoRoot() });
  t.is(c.family, 'replicas');
  t.regex(c.source, /enum read_choice \{ READ_ROUND_ROBIN, READ_PRIMARY \};\nconst volatile __s64 param_read = READ_ROUND_ROBIN;/);
  t.regex(c.source, /if \(param_read == READ_PRIMARY\) \{/);
  t.regex(c.source, /return policy_mod\(turn \+ attempt, policy_backings\);/);
  t.regex(c.source, /#include "replicas.bpf.h"\n$/);
  const r = nativeCheck(c, [{ backings: 2, read: 'round-robin' }, { backings: 3, read: 'primary' }, { backings: 4, read: 'round-robin' }]);
  t.is(r.calls, 3 * 1200);
  t.deepEqual(r.mismatches, []);
  const hooks = replicaHooks({ name: 'mirror', family: 'replicas', js: c.js });
  t.deepEqual([0, 1, 2].map((a) => hooks.readFrom(a, 7, { backings: 3, read: 'round-robin' })), [1, 2, 0]);
  t.deepEqual([0, 1, 2].map((a) => hooks.readFrom(a, 7, { backings: 3, read: 'primary' })), [0, 1, 2]);
});

test('the module\'s comments are carried into the C, as kernel-style comments', (t) => {
  const c = compilePolicy(stripeFile).source;
  t.regex(c, /\/\* Chunk c holds byte off; it is on backing c % N, in that backing's row c \/ N. \*\/\n#line \d+ "[^"]+"\nstatic __always_inline int policy_locate/);
  t.regex(c, /\/\* A full row of chunks is on every backing; the rest of the file fills backings in order. \*\/\n#line/);
});

test('the TypeScript lines of a verifier log: the last three distinct ones walked', (t) => {
  const log = ['; x = 1 @ /a/m.ts:10', '1: (b7) r1 = 1', '; y @ /a/m.ts:12', '; z @ policy_math.h:4', '; w @ /a/m.ts:11', '; y @ /a/m.ts:12', '; v @ /a/m.ts:13', 'BPF program is too large'].join('\n');
  t.deepEqual(tsLines(log), ['/a/m.ts:11', '/a/m.ts:12', '/a/m.ts:13']);
  t.deepEqual(tsLines('no lines'), []);
});

test('a spread module (the docs\' example): string parameters and a creation cursor, the C answering as the TypeScript does', (t) => {
  const c = compilePolicy(join(repoRoot(), 'test/guest/fixtures/by-extension.ts'));
  t.is(c.family, 'spread');
  t.regex(c.source, /const volatile char param_shared\[POLICY_MATCH_MAX\] = "shared\/";\nconst volatile __u32 param_shared_len = 7;/);
  t.regex(c.functions, /if \(policy_str_prefix\(path, path_len, param_shared, param_shared_len\)\) \{\n\t\treturn \(policy_shl\(1, policy_backings\)\) - 1;/);
  t.regex(c.functions, /return policy_shl\(1, policy_mod\(turn, policy_backings\)\);/);
  const globals = resolveParams(c.definition, { rules: '.log=2', shared: 'd0/' }, 3, 1).globals;
  t.deepEqual((globals.param_shared as number[]).slice(0, 4), [...Buffer.from('d0/')].concat(0));
  t.is(globals.param_shared_len, 3);
  t.throws(() => resolveParams(c.definition, { shared: 'x'.repeat(57) }, 3, 1), { message: /--shared: "x+" has more than 56 bytes/ });
  const r = nativeCheck(c, [{ backings: 3, rules: [{ match: '.log', to: 1 }], shared: 'shared/' }, { backings: 4, rules: [{ match: '.c', to: 3 }], shared: 'd0/' }, { backings: 2, rules: [], shared: '' }]);
  t.true(r.calls >= 3000);
  t.deepEqual(r.mismatches, []);
});

test('raw handlers: C of the module\'s own per opcode, included and called before the family; a bad opcode or a missing file names the module', (t) => {
  const c = compilePolicy(join(repoRoot(), 'test/guest/fixtures/mirror-flush.ts'));
  t.deepEqual(Object.keys(c.raw), ['flush']);
  t.regex(c.source, /#include "[^"]*test\/guest\/fixtures\/flush\.bpf\.h"\n\n#define POLICY_RAW\n/);
  t.regex(c.source, /\tcase FUSE_OP_FLUSH:\n\t\treturn raw_flush\(fctx, args, n\);/);
  t.true(c.source.indexOf('policy_raw(') < c.source.indexOf('#include "replicas.bpf.h"'), 'before the family runtime, whose hook calls it');
  const dir = mkdtempSync(join(tmpdir(), 'policy-raw-'));
  const mod = (raw: string) => {
    const file = join(dir, `m${Math.random().toString(36).slice(2)}.ts`);
    writeFileSync(file, `import { definePolicy } from 'fuse-kfunc';
export default definePolicy({
  name: 'r', summary: 'raw', backings: { min: 2, max: 2 }, params: {},
  replicas: { readFrom(attempt, turn, p) { return attempt; } },
  raw: ${raw},
});
`);
    return file;
  };
  t.throws(() => compilePolicy(mod("{ frobnicate: './x.bpf.h' }")), { instanceOf: PolicyCompileError, message: /m\w+\.ts:5:\d+: raw: "frobnicate" is not an opcode a raw handler takes \(lookup, getattr/ });
  t.throws(() => compilePolicy(mod("{ flush: './missing.bpf.h' }")), { instanceOf: PolicyCompileError, message: /raw\.flush: \S+missing\.bpf\.h does not exist/ });
});
