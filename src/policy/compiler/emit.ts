// A policy module -> one readable BPF C file: a header saying where it came from, the
// policy's name for the runtime, the common runtime (bpf/runtime/policy.bpf.h), the
// parameters as const volatile globals (set at load time, so a new value needs no
// recompile), the translated decision functions, and last the runtime of the family that
// calls them (bpf/runtime/<family>.bpf.h).
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import type { ParamDecl, Policy } from '../lang/define.ts';
import { FAMILIES } from './hooks.ts';
import { PolicyCompileError, Translator, type ParamInfo } from './translate.ts';
import { paramDefault, snake } from '../lang/params.ts';

export interface CompiledPolicy {
  /** The C source. */
  source: string;
  /** The family whose runtime serves the requests. */
  family: string;
  /** The struct_ops map to attach. */
  structOps: string;
  params: ParamInfo[];
  /** The translated functions alone (the unit tests compile them natively). */
  functions: string;
}

/** C names of a policy's parameters: param_<snake>, choices as an enum of NAME_CHOICE. */
export function paramInfos(params: Record<string, ParamDecl>): ParamInfo[] {
  return Object.entries(params).map(([name, d]) => ({
    name,
    c: `param_${snake(name)}`,
    choices: d.kind === 'choice' ? d.choices.map((v) => ({ value: v, c: `${snake(name)}_${v}`.toUpperCase().replace(/[^A-Z0-9_]/g, '_') })) : undefined,
  }));
}

function paramGlobal(p: ParamInfo, d: ParamDecl): string {
  if (d.kind === 'choice') {
    const enumName = `${snake(p.name)}_choice`;
    return `/* ${d.doc} */\nenum ${enumName} { ${p.choices!.map((c) => c.c).join(', ')} };\nconst volatile __s64 ${p.c} = ${p.choices!.find((c) => c.value === d.default)!.c};`;
  }
  return `/* ${d.doc} */\nconst volatile __s64 ${p.c} = ${paramDefault(p.name, d)};`;
}

/** Compiles `policy` (its module's source is read from policy.sourceFile). */
export function compilePolicy(policy: Policy, opts: { repo?: string; text?: string } = {}): CompiledPolicy {
  const file = policy.sourceFile;
  const text = opts.text ?? readFileSync(file, 'utf8');
  if (!/^[a-z][a-z0-9_]*$/.test(policy.name)) {
    throw new PolicyCompileError([{ file, line: 1, column: 1, message: `policy name "${policy.name}" is not a C identifier in lower case (e.g. my_policy)` }]);
  }
  const params = paramInfos(policy.params);
  const t = new Translator(file, text, params);
  const def = t.definition();
  const families = Object.keys(FAMILIES).filter((f) => (policy as unknown as Record<string, unknown>)[f] !== undefined);
  if (def && families.length !== 1) {
    t.error(def, families.length ? `a policy has one family of functions; this one has ${families.join(' and ')}` : `a policy needs its functions: ${Object.keys(FAMILIES).join(' or ')} (docs/policies.md)`);
  }
  const family = families[0] ?? 'layout';
  const fns = def ? t.functionsOf(def, family, FAMILIES[family]!.hooks) : [];
  const bodies = fns.map((f) => t.translateFunction(f, FAMILIES[family]!.hooks[f.hook]!));
  if (t.diagnostics.length) throw new PolicyCompileError(t.diagnostics);
  const shown = opts.repo ? relative(opts.repo, file) : file;
  const globals = params.map((p) => paramGlobal(p, policy.params[p.name]!));
  const source = `// SPDX-License-Identifier: GPL-2.0
/*
 * ${policy.name}: ${policy.summary}.
 *
 * Compiled by fuse-kfunc from ${shown}; edit that file, not this one
 * (fuse-kfunc policy show ${shown} prints it).  The #line directives point
 * clang's diagnostics and the verifier's log at lines of the TypeScript.
 */
#define POLICY_NAME		"${policy.name}"
#define POLICY_OPS		${policy.name}_ops
#define POLICY_REQUEST		${policy.name}_request

#include "policy.bpf.h"

/* Parameters, set at load time; the values here are the defaults */
${globals.join('\n\n') || '/* (none) */'}

/* The policy's decisions, translated from TypeScript */
${bodies.join('\n\n')}

#include "${FAMILIES[family]!.runtime}"
`;
  return { source, family, structOps: `${policy.name}_ops`, params, functions: bodies.join('\n\n') };
}
