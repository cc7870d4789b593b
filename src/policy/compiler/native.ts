// The compiler checked against itself: a policy's translated C functions compiled natively
// (cc, with the same bpf/runtime/policy_math.h the BPF build uses) and run on random inputs
// beside the JavaScript the daemon runs, from the same source. A difference is a bug in the
// compiler, or a policy computing outside the subset's integers (a negative quotient, a
// value past 2^53); either way the two halves of the policy would disagree.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CompiledPolicy } from './emit.ts';
import { accessHooks, layerHooks, layoutHooks, placementHooks, replicaHooks, spreadHooks, tierHooks } from '../runtime/functions.ts';
import { ACCESS_OPS, type AccessOp, type NameRule, type PolicyValues } from '../lang/define.ts';
import { OPCODES, opsMask } from '../lang/params.ts';
import { prng } from '../../testing/workload.ts';
import { repoRoot } from '../../util/paths.ts';

type Context = PolicyValues;

export interface NativeMismatch {
  context: Context;
  call: string;
  c: string;
  ts: string;
}

export interface NativeReport {
  /** Calls compared. */
  calls: number;
  mismatches: NativeMismatch[];
}

const NUMBER_LOOP = (body: string) => `\twhile (scanf("%15s %lld %lld", op, &a, &b) == 3) {
${body}
\t}`;

/** Per family: the C loop that answers query lines, and random queries with the TypeScript's answers. */
const FAMILY_LOOPS: Record<string, string> = {
  layout: NUMBER_LOOP(`\t\tif (!strcmp(op, "locate")) {
\t\t\tpolicy_locate(a, &s);
\t\t\tprintf("%lld %lld %lld\\n", (long long)s.backing, (long long)s.offset, (long long)s.length);
\t\t} else if (!strcmp(op, "size")) {
\t\t\tprintf("%lld\\n", (long long)policy_backing_size(a, b));
\t\t} else {
\t\t\tprintf("%lld\\n", (long long)policy_logical_end(a, b));
\t\t}`),
  access: NUMBER_LOOP(`\t\t(void)s;
\t\tif (!strcmp(op, "before"))
\t\t\tprintf("%lld\\n", (long long)policy_before(a));
\t\telse
\t\t\tprintf("%lld\\n", (long long)policy_after(a, b));`),
  tiers: NUMBER_LOOP(`\t\t(void)s;
\t\tprintf("%lld\\n", (long long)policy_promote(a));`),
  replicas: NUMBER_LOOP(`\t\t(void)s;
\t\tprintf("%lld\\n", (long long)policy_read_from(a, b));`),
  placement: `\t(void)s;
\t(void)a;
\t(void)b;
\twhile (scanf("%15s %4095s", op, path) == 2)
\t\tprintf("%lld\\n", (long long)policy_place(path, strlen(path)));`,
  spread: `\t(void)s;
\t(void)b;
\twhile (scanf("%15s %4095s %lld", op, path, &a) == 3)
\t\tprintf("%lld\\n", (long long)policy_create(path, strlen(path), a));`,
  layers: `\t(void)s;
\t(void)a;
\t(void)b;
\twhile (scanf("%15s %4095s", op, path) == 2)
\t\tprintf("%lld\\n", (long long)policy_hidden(path, strlen(path)));`,
};

/** Random relative paths made of the pieces a policy's rules and literals test, and others. */
function randomPath(r: () => number, pieces: string[]): string {
  const depth = 1 + Math.floor(r() * 4);
  const parts: string[] = [];
  for (let k = 0; k < depth; k++) {
    const base = pieces[Math.floor(r() * pieces.length)]!;
    const last = k === depth - 1;
    // Pieces that end with '/' are directories: as a file name they lose it.
    parts.push(base.endsWith('/') ? base.slice(0, -1) || 'd' : last || r() < 0.5 ? base : `${base}.d`);
  }
  const p = parts.join('/').replace(/\/+/g, '/').replace(/^\//, '');
  return p || 'f';
}

function queries(family: string, js: string, name: string, ctx: Context, r: () => number, samples: number, literals: string[]): { q: string[]; want: string[] } {
  const q: string[] = [];
  const want: string[] = [];
  if (family === 'layout') {
    const h = layoutHooks({ name, family, js });
    for (let k = 0; k < samples; k++) {
      const off = Math.floor(r() * 2 ** 40);
      const s = h.locate(off, ctx);
      q.push(`locate ${off} 0`);
      want.push(`${s.backing} ${s.offset} ${s.length}`);
      const size = Math.floor(r() * 2 ** 36) + 1;
      const i = Math.floor(r() * ctx.backings);
      q.push(`size ${size} ${i}`, `end ${size} ${i}`);
      want.push(String(h.backingSize(size, i, ctx)), String(h.logicalEnd(size, i, ctx)));
    }
  } else if (family === 'placement') {
    const h = placementHooks({ name, family, js });
    const pieces = ['a', 'b.txt', 'x.log', 'x.log.gz', 'logs', 'logsx', 'd0', 'src', 'f.c', '.hidden', 'é.log', 'README'];
    for (const v of Object.values(ctx)) if (Array.isArray(v)) for (const rule of v as NameRule[]) pieces.push(rule.match, `n${rule.match}`, `${rule.match}x`);
    for (const lit of literals) pieces.push(lit, `a${lit}`, `${lit}b`);
    for (let k = 0; k < samples * 3; k++) {
      const path = randomPath(r, pieces.filter((x) => !/\s/.test(x)));
      q.push(`place ${path}`);
      want.push(String(h.place(path, ctx)));
    }
  } else if (family === 'spread') {
    const h = spreadHooks({ name, family, js });
    const pieces = ['a', 'b.txt', 'x.log', 'shared', 'logs', 'd0', 'f.c', '.hidden', 'é.log'];
    for (const v of Object.values(ctx)) {
      if (typeof v === 'string') pieces.push(v, v.replace(/\/$/, ''), `${v}x`);
      if (Array.isArray(v)) for (const rule of v as NameRule[]) if (typeof rule === 'object') pieces.push(rule.match, `n${rule.match}`);
    }
    for (const lit of literals) pieces.push(lit, `a${lit}`);
    for (let k = 0; k < samples * 3; k++) {
      const path = randomPath(r, pieces.filter((x) => x && !/\s/.test(x)));
      const turn = r() < 0.8 ? Math.floor(r() * 64) : Math.floor(r() * 2 ** 40);
      q.push(`create ${path} ${turn}`);
      want.push(String(h.create(path, turn, ctx)));
    }
  } else if (family === 'access') {
    const h = accessHooks({ name, family, js });
    const results = [0, 1, 4096, 65536, -1, -5, -13, -28, -95];
    for (let k = 0; k < samples * 3; k++) {
      const op = ACCESS_OPS[Math.floor(r() * ACCESS_OPS.length)]!;
      q.push(`before ${OPCODES[op]} 0`);
      want.push(String(Number(h.before(op, ctx))));
      const result = r() < 0.5 ? results[Math.floor(r() * results.length)]! : Math.floor(r() * (1 << 20));
      q.push(`after ${OPCODES[op]} ${result}`);
      want.push(String(Number(h.after(op, result, ctx))));
    }
  } else if (family === 'tiers') {
    const h = tierHooks({ name, family, js });
    const near = Object.values(ctx).filter((v): v is number => typeof v === 'number');
    for (let k = 0; k < samples * 3; k++) {
      const around = near[Math.floor(r() * near.length)] ?? 0;
      const size = r() < 0.5 ? Math.max(0, around + Math.floor(r() * 9) - 4) : Math.floor(r() * 2 ** 40);
      q.push(`promote ${size} 0`);
      want.push(String(Number(h.promote(size, ctx))));
    }
  } else if (family === 'layers') {
    const h = layerHooks({ name, family, js });
    const pieces = ['a', '.wh.a', '.wh..wh..opq', '.wh', 'wh.', 'x.log', 'é', ...literals.flatMap((l) => [l, `${l}x`, `x${l}`, l.slice(0, -1)])];
    for (let k = 0; k < samples * 3; k++) {
      const n = `${pieces[Math.floor(r() * pieces.length)]!}${r() < 0.3 ? pieces[Math.floor(r() * pieces.length)]! : ''}`.replace(/[\s/]/g, '') || 'n';
      q.push(`hidden ${n}`);
      want.push(String(Number(h.hidden(n, ctx))));
    }
  } else {
    const h = replicaHooks({ name, family, js });
    for (let k = 0; k < samples * 3; k++) {
      const attempt = Math.floor(r() * ctx.backings);
      const turn = Math.floor(r() * 2 ** 32);
      q.push(`read ${attempt} ${turn}`);
      want.push(String(h.readFrom(attempt, turn, ctx)));
    }
  }
  return { q, want };
}

function harness(c: CompiledPolicy): string {
  const globals = c.params.map((p) => (p.rules ? `static struct policy_rule ${p.c}[POLICY_RULES_MAX];\nstatic __u32 ${p.c}_len;`
    : p.ops ? `static volatile __u64 ${p.c};`
    : p.string ? `static char ${p.c}[POLICY_MATCH_MAX];\nstatic __u32 ${p.c}_len;`
    : `${p.choices ? `enum { ${p.choices.map((x) => x.c).join(', ')} };\n` : ''}static volatile __s64 ${p.c};`)).join('\n');
  const setters = c.params.map((p, i) => (p.rules ? `\t${p.c}_len = set_rules(${p.c}, argv[${i + 2}]);`
    : p.ops ? `\t${p.c} = strtoull(argv[${i + 2}], 0, 10);`
    : p.string ? `\t${p.c}_len = strlen(argv[${i + 2}]);\n\tmemcpy(${p.c}, argv[${i + 2}], ${p.c}_len);` : `\t${p.c} = strtoll(argv[${i + 2}], 0, 10);`)).join('\n');
  const opcodes = Object.entries(OPCODES).map(([op, n]) => `#define FUSE_OP_${op.toUpperCase()} ${n}`).join('\n');
  return `#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
typedef int64_t __s64;
typedef uint64_t __u64;
typedef uint32_t __u32;
typedef int32_t __s32;
#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif
#include "policy_math.h"
#include "policy_str.h"
struct policy_segment { __s64 backing, offset, length; };
${opcodes}
static volatile __u32 policy_backings;
${globals}
${c.functions}
/* "PATTERN=INDEX,..." (checked by the caller) into @r; returns how many */
static __attribute__((unused)) __u32 set_rules(struct policy_rule *r, char *arg)
{
	__u32 n = 0;
	char *part, *eq;

	for (part = strtok(arg, ","); part && n < POLICY_RULES_MAX; part = strtok(0, ",")) {
		eq = strrchr(part, '=');
		if (!eq || !strcmp(part, "none"))
			continue;
		*eq = 0;
		r[n].to = strtoul(eq + 1, 0, 10);
		r[n].len = strlen(part);
		memcpy(r[n].match, part, r[n].len);
		n++;
	}
	return n;
}
static char path[4096];
int main(int argc, char **argv)
{
	char op[16];
	long long a, b;
	struct policy_segment s;

	(void)argc;
	(void)path;
	policy_backings = strtoul(argv[1], 0, 10);
${setters}
${FAMILY_LOOPS[c.family]}
	return 0;
}
`;
}

/**
 * Runs `samples` random calls of every function under each context and compares the C with
 * the JavaScript. Offsets and sizes go up to 2^40 (a terabyte file).
 */
export function nativeCheck(c: CompiledPolicy, contexts: Context[], samples = 400, seed = 18): NativeReport {
  if (!FAMILY_LOOPS[c.family]) throw new Error(`no native check for the ${c.family} family yet`);
  const dir = mkdtempSync(join(tmpdir(), 'fuse-kfunc-native-'));
  try {
    writeFileSync(join(dir, 'h.c'), harness(c));
    execFileSync('cc', ['-O2', '-Wall', '-Werror', '-I', join(repoRoot(), 'bpf', 'runtime'), '-o', join(dir, 'h'), join(dir, 'h.c')], { stdio: ['ignore', 'ignore', 'pipe'] });
    const r = prng(seed);
    const report: NativeReport = { calls: 0, mismatches: [] };
    for (const ctx of contexts) {
      const { q, want } = queries(c.family, c.js, c.definition.name, ctx, r, samples, c.literals ?? []);
      const arg = (p: CompiledPolicy['params'][number]) => {
        const v = ctx[p.name];
        if (p.rules) return (v as NameRule[]).map((x) => `${x.match}=${x.to}`).join(',') || 'none';
        if (p.ops) return String(opsMask(v as AccessOp[]));
        return String(p.choices ? p.choices.findIndex((x) => x.value === v) : v);
      };
      const args = [String(ctx.backings), ...c.params.map(arg)];
      const got = execFileSync(join(dir, 'h'), args, { input: q.join('\n') + '\n', encoding: 'utf8' }).trim().split('\n');
      q.forEach((call, k) => {
        report.calls++;
        if (got[k] !== want[k]) report.mismatches.push({ context: ctx, call, c: got[k] ?? '(none)', ts: want[k]! });
      });
    }
    return report;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
