// The policy compiler on the host: what it makes of the stripe module, the same answers from
// the TypeScript and from its C (compiled natively with bpf/runtime/policy_math.h and run on
// random inputs), and errors that point at TypeScript lines. The BPF side is loaded, run and
// compared with the daemon in the VM (test/guest/policies.test.ts and the differential tests).
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compilePolicy } from '../../src/policy/compiler/emit.ts';
import { PolicyCompileError } from '../../src/policy/compiler/translate.ts';
import { definePolicy, param, type Policy } from '../../src/policy/lang/define.ts';
import { resolveParams } from '../../src/policy/lang/params.ts';
import { BUILTIN_MODULES } from '../../src/policy/builtin/index.ts';
import { Layout } from '../../src/policy/runtime/layout.ts';
import { prng } from '../../src/testing/workload.ts';
import { repoRoot } from '../../src/util/paths.ts';

const stripe = BUILTIN_MODULES.stripe;

test('stripe compiles to readable C: parameters as const volatile globals, #line at the .ts', (t) => {
  const c = compilePolicy(stripe, { repo: repoRoot() });
  t.regex(c.source, /^\/\/ SPDX-License-Identifier: GPL-2.0\n/);
  t.regex(c.source, /const volatile __s64 param_chunk = 65536;/);
  t.regex(c.source, /static __always_inline int policy_locate\(__s64 off, struct policy_segment \*seg\)/);
  t.regex(c.source, /__s64 c = policy_div\(off, param_chunk\);/);
  t.regex(c.source, /seg->backing = policy_mod\(c, policy_backings\);/);
  t.regex(c.source, new RegExp(`#line \\d+ "${stripe.sourceFile.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}"`));
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

/** Runs the translated functions natively: one line per query, one line per answer. */
function nativeRunner(policy: Policy): (ctx: Record<string, number>, queries: string[]) => string[] {
  const c = compilePolicy(policy);
  const dir = mkdtempSync(join(tmpdir(), 'policy-native-'));
  const globals = c.params.map((p) => `static volatile __s64 ${p.c};`).join('\n');
  const setters = c.params.map((p, i) => `\t${p.c} = strtoll(argv[${i + 2}], 0, 10);`).join('\n');
  writeFileSync(join(dir, 'h.c'), `#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
typedef int64_t __s64;
typedef uint64_t __u64;
typedef uint32_t __u32;
#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif
#include "policy_math.h"
struct policy_segment { __s64 backing, offset, length; };
static volatile __u32 policy_backings;
${globals}
${c.functions}
int main(int argc, char **argv)
{
	char op[16];
	long long a, b;
	struct policy_segment s;

	policy_backings = strtoul(argv[1], 0, 10);
${setters}
	while (scanf("%15s %lld %lld", op, &a, &b) == 3) {
		if (!strcmp(op, "locate")) {
			policy_locate(a, &s);
			printf("%lld %lld %lld\\n", (long long)s.backing, (long long)s.offset, (long long)s.length);
		} else if (!strcmp(op, "size")) {
			printf("%lld\\n", (long long)policy_backing_size(a, b));
		} else {
			printf("%lld\\n", (long long)policy_logical_end(a, b));
		}
	}
	return 0;
}
`);
  execFileSync('cc', ['-O2', '-Wall', '-Werror', '-I', join(repoRoot(), 'bpf', 'runtime'), '-o', join(dir, 'h'), join(dir, 'h.c')]);
  return (ctx, queries) => execFileSync(join(dir, 'h'), [String(ctx.backings), ...c.params.map((p) => String(ctx[p.name]))], { input: queries.join('\n') + '\n', encoding: 'utf8' }).trim().split('\n');
}

test('the C the compiler writes answers as the TypeScript does (stripe, random inputs, several geometries)', (t) => {
  const run = nativeRunner(stripe);
  const r = prng(18);
  for (const [chunk, backings] of [[4096, 2], [65536, 3], [12288, 4], [64 << 20, 2]] as const) {
    const ctx = { chunk, backings };
    const hooks = stripe.layout!;
    const q: string[] = [];
    const want: string[] = [];
    for (let k = 0; k < 400; k++) {
      const off = Math.floor(r() * 2 ** 40);
      const s = hooks.locate(off, ctx);
      q.push(`locate ${off} 0`);
      want.push(`${s.backing} ${s.offset} ${s.length}`);
      const size = Math.floor(r() * 2 ** 36) + 1;
      const i = Math.floor(r() * backings);
      q.push(`size ${size} ${i}`, `end ${size} ${i}`);
      want.push(String(hooks.backingSize(size, i, ctx)), String(hooks.logicalEnd(size, i, ctx)));
    }
    t.deepEqual(run(ctx, q), want, `chunk ${chunk}, ${backings} backings`);
  }
});

test('stripe geometry through the userspace runtime: pieces, sizes and their inverse', (t) => {
  const g = new Layout(stripe, { backings: 3, chunk: 4096 });
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
  t.throws(() => new Layout(bad, { backings: 2 }).pieces(0, 10), { message: /locate\(0\) gave backing 2/ });
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
  const p = definePolicy({
    name: 'mine', summary: 'a test policy', backings: { min: 2, max: 2 },
    params: { chunk: param.size({ doc: 'c', default: '4k' }), mode: param.choice({ doc: 'm', choices: ['fast', 'slow'], default: 'fast' }) },
  }, file);
  return compilePolicy({ ...p, layout: {} as never }).source;
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
  compileError(t, '      return { backing: 0, offset: Date.now(), length: 1 };', 9, /calls only Math\.floor\(a \/ b\), Math\.min and Math\.max/);
  compileError(t, '      return { backing: 0, offset: off, length: p.size };', 9, /no parameter "size" \(it has chunk, mode, backings\)/);
  compileError(t, "      if (p.mode === 'turbo') return { backing: 1, offset: off, length: 1 };\n      return { backing: 0, offset: off, length: 1 };", 9, /"turbo" is not one of mode's choices \(fast, slow\)/);
  compileError(t, '      return { backing: 0, offset: off };', 9, /returns length too/);
  compileError(t, '      for (let i = 0; i < off; i++) {}\n      return { backing: 0, offset: off, length: 1 };', 9, /verifier can see it end/);
  compileError(t, '      if (off > 4) return { backing: 0, offset: off, length: 1 };', 8, /not every path of layout\.locate returns/);
  compileError(t, "      const s = 'x';\n      return { backing: 0, offset: off, length: 1 };", 9, /a string is only compared with a choice parameter/);
  compileError(t, '      const x = 1;\n      x = 2;\n      return { backing: 0, offset: off, length: x };', 10, /"x" is const/);
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
  t.regex(c, /if \(policy_mod\(off, \(i \+ 2\)\) == 0\) \{/);
  t.regex(c, /switch \(param_mode\) \{\n#line \d+ "[^"]+"\n\tcase MODE_SLOW:/);
  t.regex(c, /seg->length = policy_max\(param_chunk, 4096\);/);
});
