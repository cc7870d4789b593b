// A policy module -> one readable BPF C file and the daemon's copy of its functions. The
// module is read, not run: its data (name, summary, backings, params) is evaluated from the
// literals in its definePolicy() call, its functions are translated to C (translate.ts) and
// transpiled to plain JavaScript for the userspace runtime, which thus runs the same source.
//
// The C file: a header saying where it came from, the policy's name for the runtime, the
// common runtime (bpf/runtime/policy.bpf.h), the parameters as const volatile globals (set
// at load time, so a new value needs no recompile), the translated decision functions, and
// last the runtime of the family that calls them (bpf/runtime/<family>.bpf.h).
import { existsSync, readFileSync } from 'node:fs';
import { dirname, relative, resolve as resolvePath } from 'node:path';
import type { ParamDecl } from '../lang/define.ts';
import { FAMILIES } from './hooks.ts';
import { PolicyCompileError, Translator, cLiteral, type ParamInfo } from './translate.ts';
import { paramDefault, paramValue, parseNameRules, parseOps, snake } from '../lang/params.ts';
import { ACCESS_OPS, RAW_OPS } from '../lang/define.ts';

/** What a policy module declares besides its functions. */
export interface PolicyData {
  name: string;
  summary: string;
  backings: { min: number; max: number };
  params: Record<string, ParamDecl>;
}

export interface CompiledPolicy {
  definition: PolicyData;
  /** The module it came from. */
  file: string;
  /** The C source. */
  source: string;
  /** The family whose runtime serves the requests. */
  family: string;
  /** The struct_ops map to attach. */
  structOps: string;
  params: ParamInfo[];
  /** The translated functions alone (the unit tests compile them natively). */
  functions: string;
  /** The family's functions as a JavaScript object expression, for the userspace runtime. */
  js: string;
  /** The string literals the functions test with. */
  literals: string[];
  /** Raw handlers: opcode name -> absolute path of its C (hashed into the build). */
  raw: Record<string, string>;
}

/** C names of a policy's parameters: param_<snake>, choices as an enum of NAME_CHOICE. */
export function paramInfos(params: Record<string, ParamDecl>): ParamInfo[] {
  return Object.entries(params).map(([name, d]) => ({
    name,
    c: `param_${snake(name)}`,
    choices: d.kind === 'choice' ? d.choices.map((v) => ({ value: v, c: `${snake(name)}_${v}`.toUpperCase().replace(/[^A-Z0-9_]/g, '_') })) : undefined,
    rules: d.kind === 'rules' || undefined,
    ops: d.kind === 'ops' ? (d.allowed ?? ACCESS_OPS) : undefined,
    string: d.kind === 'string' || undefined,
  }));
}

function paramGlobal(p: ParamInfo, d: ParamDecl): string {
  if (d.kind === 'choice') {
    const enumName = `${snake(p.name)}_choice`;
    return `/* ${d.doc} */\nenum ${enumName} { ${p.choices!.map((c) => c.c).join(', ')} };\nconst volatile __s64 ${p.c} = ${p.choices!.find((c) => c.value === d.default)!.c};`;
  }
  if (d.kind === 'rules') {
    const rules = parseNameRules(d.default, p.name);
    const init = rules.map((r) => `\t{ .to = ${r.to}, .len = ${Buffer.byteLength(r.match)}, .match = ${cLiteral(Buffer.from(r.match))} },`);
    return `/* ${d.doc} */\nconst volatile struct policy_rule ${p.c}[POLICY_RULES_MAX]${rules.length ? ` = {\n${init.join('\n')}\n}` : ''};\nconst volatile __u32 ${p.c}_len = ${rules.length};`;
  }
  if (d.kind === 'string') {
    return `/* ${d.doc} */\nconst volatile char ${p.c}[POLICY_MATCH_MAX] = ${cLiteral(Buffer.from(d.default))};\nconst volatile __u32 ${p.c}_len = ${Buffer.byteLength(d.default)};`;
  }
  if (d.kind === 'ops') {
    const ops = parseOps(d.default, p.name, d.allowed);
    return `/* ${d.doc}: bit N for FUSE opcode N${ops.length ? ` (default ${ops.join(', ')})` : ''} */\nconst volatile __u64 ${p.c} = ${paramDefault(p.name, d)}ULL;`;
  }
  return `/* ${d.doc} */\nconst volatile __s64 ${p.c} = ${paramDefault(p.name, d)};`;
}

/** The definition's data, checked; errors go to the translator's diagnostics. */
function readData(t: Translator, def: import('typescript').ObjectLiteralExpression): PolicyData | undefined {
  const field = (name: string) => {
    const p = t.property(def, name);
    if (!p || !('initializer' in p)) {
      t.error(def, `definePolicy() needs ${name}: (docs/policies.md)`);
      return undefined;
    }
    return { node: p, value: t.data(p.initializer as import('typescript').Expression, name) };
  };
  const name = field('name');
  const summary = field('summary');
  const backings = field('backings');
  const params = field('params');
  if (!name || !summary || !backings || !params) return undefined;
  if (typeof name.value !== 'string' || !/^[a-z][a-z0-9_]{0,30}$/.test(name.value)) {
    t.error(name.node, `name: "${String(name.value)}" is not a C identifier in lower case (e.g. my_policy): it names the program and its struct_ops`);
  }
  if (typeof summary.value !== 'string') t.error(summary.node, 'summary: one line of text');
  const b = backings.value as { min?: unknown; max?: unknown } | undefined;
  const intIn = (v: unknown) => Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 4;
  if (!b || !intIn(b.min) || !intIn(b.max) || (b.min as number) > (b.max as number)) {
    t.error(backings.node, 'backings: { min, max } with 1 <= min <= max <= 4 (FUSE_KFUNC_MAX_BACKINGS)');
  }
  const decls = (params.value ?? {}) as Record<string, ParamDecl>;
  for (const [k, d] of Object.entries(decls)) {
    if (!d || typeof d !== 'object') continue; // data() said what is wrong
    if (!/^[a-z][a-zA-Z0-9]*$/.test(k) || k === 'backings') {
      t.error(params.node, `params.${k}: a parameter is named in camelCase and is not "backings" (p.backings is the mount's)`);
      continue;
    }
    try {
      if (d.kind === 'choice' && (!Array.isArray(d.choices) || !d.choices.length || !d.choices.every((c) => typeof c === 'string' && /^[a-z][a-z0-9-]*$/.test(c)))) {
        throw new Error('choices: a list of lower-case names');
      }
      if (typeof d.doc !== 'string') throw new Error('doc: say what it does, for --help');
      if (d.kind === 'ops' && d.allowed !== undefined && (!Array.isArray(d.allowed) || !d.allowed.every((o) => (ACCESS_OPS as readonly string[]).includes(o)))) {
        throw new Error(`allowed: a list of ${ACCESS_OPS.join(', ')}`);
      }
      paramValue(k, d, undefined); // the default must be a value it accepts
    } catch (e) {
      t.error(params.node, `params.${k}: ${(e as Error).message}`);
    }
  }
  return { name: String(name.value), summary: String(summary.value), backings: b as PolicyData['backings'], params: decls };
}

/** The module's raw handlers: opcode name -> the C file, which must exist. */
function readRaw(t: Translator, def: import('typescript').ObjectLiteralExpression, file: string): Record<string, string> {
  const prop = t.property(def, 'raw');
  if (!prop) return {};
  const v = 'initializer' in prop ? t.data(prop.initializer as import('typescript').Expression, 'raw') : undefined;
  if (!v || typeof v !== 'object' || Array.isArray(v)) {
    t.error(prop, "raw: an object of opcode names and C files, { flush: './flush.bpf.h' }");
    return {};
  }
  const out: Record<string, string> = {};
  for (const [op, path] of Object.entries(v)) {
    if (!Object.hasOwn(RAW_OPS, op)) {
      t.error(prop, `raw: "${op}" is not an opcode a raw handler takes (${Object.keys(RAW_OPS).join(', ')})`);
      continue;
    }
    const abs = typeof path === 'string' ? resolvePath(dirname(file), path) : '';
    if (!abs || !existsSync(abs)) {
      t.error(prop, `raw.${op}: ${typeof path === 'string' ? `${abs} does not exist` : 'a path to a C file, relative to the module'}`);
      continue;
    }
    out[op] = abs;
  }
  return out;
}

/** The raw handlers' C and the switch the request hook calls first (dispatch.bpf.h). */
function rawSection(raw: Record<string, string>, shown: string): string {
  const ops = Object.keys(raw);
  if (!ops.length) return '';
  return `
/* Raw handlers: C of ${shown}'s own, run before the family's */
${ops.map((op) => `#include ${JSON.stringify(raw[op])}`).join('\n')}

#define POLICY_RAW
static __always_inline int policy_raw(struct fuse_bpf_ctx *fctx,
				      struct fuse_args *args,
				      struct policy_node *n)
{
	switch (fctx->opcode) {
${ops.map((op) => `\tcase FUSE_OP_${op.toUpperCase()}:\n\t\treturn raw_${op}(fctx, args, n);`).join('\n')}
	}
	return FUSE_BPF_UPCALL;
}
`;
}

/** Compiles the policy module in `file` (or `text`, as if it were that file). */
export function compilePolicy(file: string, opts: { repo?: string; text?: string } = {}): CompiledPolicy {
  const text = opts.text ?? readFileSync(file, 'utf8');
  const t = new Translator(file, text);
  const def = t.definition();
  const data = def ? readData(t, def) : undefined;
  if (!def || !data || t.diagnostics.length) throw new PolicyCompileError(t.diagnostics);
  const params = paramInfos(data.params);
  t.params = params;
  const families = Object.keys(FAMILIES).filter((f) => t.property(def, f));
  if (families.length !== 1) {
    t.error(def, families.length ? `a policy has one family of functions; this one has ${families.join(' and ')}` : `a policy needs its functions: ${Object.keys(FAMILIES).join(' or ')} (docs/policies.md)`);
    throw new PolicyCompileError(t.diagnostics);
  }
  const family = families[0]!;
  const fb = FAMILIES[family]!.backings;
  if (fb && (data.backings.min < fb.min || data.backings.max > fb.max)) {
    t.error(t.property(def, 'backings')!, `backings: the ${family} runtime serves ${fb.min === fb.max ? fb.min : `${fb.min}..${fb.max}`} backing director${fb.max === 1 ? 'y' : 'ies'} (${fb.why}): write { min: ${fb.min}, max: ${fb.max} }`);
    throw new PolicyCompileError(t.diagnostics);
  }
  const fns = t.functionsOf(def, family, FAMILIES[family]!.hooks);
  const bodies = fns.map((f) => t.translateFunction(f, FAMILIES[family]!.hooks[f.hook]!));
  if (t.diagnostics.length) throw new PolicyCompileError(t.diagnostics);
  const raw = readRaw(t, def, file);
  if (t.diagnostics.length) throw new PolicyCompileError(t.diagnostics);
  const shown = opts.repo ? relative(opts.repo, file) : file;
  const globals = params.map((p) => paramGlobal(p, data.params[p.name]!));
  const source = `// SPDX-License-Identifier: GPL-2.0
/*
 * ${data.name}: ${data.summary}.
 *
 * Compiled by fuse-kfunc from ${shown}; edit that file, not this one
 * (fuse-kfunc policy show ${shown} prints it).  The #line directives point
 * clang's diagnostics and the verifier's log at lines of the TypeScript.
 */
#define POLICY_NAME		"${data.name}"
#define POLICY_OPS		${data.name}_ops
#define POLICY_REQUEST		${data.name}_request

#include "policy.bpf.h"

/* Parameters, set at load time; the values here are the defaults */
${globals.join('\n\n') || '/* (none) */'}

/* The policy's decisions, translated from TypeScript */
${bodies.join('\n\n')}
${rawSection(raw, shown)}
#include "${FAMILIES[family]!.runtime}"
`;
  return { definition: data, file, source, family, structOps: `${data.name}_ops`, params, functions: bodies.join('\n\n'), js: t.javascript(t.property(def, family)!), literals: [...t.literals], raw };
}
