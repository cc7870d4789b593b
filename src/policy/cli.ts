// `fuse-kfunc policy list|show|compile`: the policies, their generated C, their objects.
import { copyFileSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { UsageError } from '../cli/args.ts';
import { cachePaths } from '../util/paths.ts';
import { buildPolicy, generatePolicy, policyGlobals } from './build.ts';
import { CompileError } from './compile.ts';
import { POLICIES, PolicyError, makePolicy } from './spec.ts';

export const POLICY_HELP = `Usage: fuse-kfunc policy list
       fuse-kfunc policy show NAME [--backings N] [PARAMS]
       fuse-kfunc policy compile NAME [--backings N] [PARAMS] [-o FILE]

A policy is a BPF program fuse-kfunc generates (one readable .bpf.c per set of parameters)
plus the daemon that serves, the same way, what the program sends up.
  list      the policies and their parameters
  show      print the generated BPF C
  compile   generate and compile it with clang-19 against the kernel build
            ($FUSE_KFUNC_BUILD or ~/.cache/fuse-kfunc/builds/current), cached by content;
            prints the object's path (-o copies it to FILE)
--backings N is the number of backing directories it will be mounted over (default: the
policy's smallest: 1 for filter, 2 for the others).
Mount one with \`fuse-kfunc mount B1 B2 MNT --policy NAME [PARAMS]\`.

Policies:
${Object.entries(POLICIES).map(([n, p]) => `  ${n}: ${p.summary}\n${p.params.map((q) => `    --${q.name} ${q.value}  ${q.doc} (default ${q.default})`).join('\n')}`).join('\n')}`;

export function policyCmd(argv: string[]): number {
  if (argv.includes('--help') || argv.includes('-h') || argv.length === 0) {
    process.stdout.write(POLICY_HELP + '\n');
    return argv.length === 0 ? 2 : 0;
  }
  const pos: string[] = [];
  const params: Record<string, string> = {};
  let out: string | undefined;
  let backings: number | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '-o') { out = argv[++i]; if (!out) throw new UsageError('-o needs a file'); continue; }
    if (!a.startsWith('--')) { pos.push(a); continue; }
    const eq = a.indexOf('=');
    const name = eq > 0 ? a.slice(2, eq) : a.slice(2);
    const v = eq > 0 ? a.slice(eq + 1) : argv[++i];
    if (v === undefined) throw new UsageError(`--${name} needs a value`);
    if (name === 'backings') {
      backings = Number(v);
      if (!Number.isInteger(backings)) throw new UsageError(`--backings wants a whole number, got "${v}"`);
    } else params[name] = v;
  }
  const [sub, name, ...extra] = pos;
  if (sub === 'list') {
    for (const [n, p] of Object.entries(POLICIES)) process.stdout.write(`${n}\t${p.summary}\n`);
    return 0;
  }
  if (sub !== 'show' && sub !== 'compile') throw new UsageError(`unknown policy command "${sub}" (list, show, compile)`);
  if (!name) throw new UsageError(`policy ${sub} needs a policy name (${Object.keys(POLICIES).join(', ')})`);
  if (extra.length) throw new UsageError(`unexpected argument "${extra[0]}"`);
  try {
    const spec = makePolicy(name, params, backings ?? (POLICIES as Record<string, { backings: [number, number] }>)[name]?.backings[0] ?? 2);
    if (sub === 'show') {
      process.stdout.write(generatePolicy(spec));
      const sets = Object.entries(policyGlobals(spec)).map(([k, v]) => `${k} = ${v}`);
      if (sets.length) process.stdout.write(`\n/* Set before load for these parameters: ${sets.join(', ')} */\n`);
      return 0;
    }
    const build = process.env.FUSE_KFUNC_BUILD ?? join(cachePaths().builds, 'current');
    if (!existsSync(join(build, 'vmlinux.h'))) throw new UsageError(`no kernel build at ${build}: run \`fuse-kfunc kernel build\` first (or set FUSE_KFUNC_BUILD)`);
    const b = buildPolicy(spec, build);
    if (out) copyFileSync(b.object, resolve(out));
    process.stdout.write(`${out ? resolve(out) : b.object}\n`);
    process.stderr.write(`${b.cached ? 'cached' : 'compiled'}: ${b.source} (struct_ops ${b.structOps})\n`);
    const sets = Object.entries(b.globals).map(([k, v]) => `--set ${k}=${v}`).join(' ');
    if (sets) process.stderr.write(`its parameters are set at load time: mount it with --program ${out ? resolve(out) : b.object} --struct-ops ${b.structOps} ${sets}\n`);
    return 0;
  } catch (e) {
    if (e instanceof PolicyError) {
      process.stderr.write(`fuse-kfunc policy: ${e.message}\n`);
      return 1;
    }
    if (e instanceof CompileError) {
      process.stderr.write(`fuse-kfunc policy: the generated C does not compile (a bug in fuse-kfunc: please report it)\n${e.message}\n`);
      return 1;
    }
    throw e;
  }
}
