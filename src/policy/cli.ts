// `fuse-kfunc policy list|show|compile|check|new`: the policies, their C, their objects; a
// policy module checked end to end, or a new one scaffolded.
import { copyFileSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { UsageError } from '../cli/args.ts';
import { cachePaths } from '../util/paths.ts';
import { buildPolicy, compiledModule, generatePolicy, policyGlobals, type AnyPolicy } from './build.ts';
import { CompileError } from './compile.ts';
import { PolicyError, builtinPolicies, makePolicy } from './spec.ts';
import { BUILTINS } from './builtin/index.ts';
import { PolicyCompileError } from './compiler/translate.ts';
import { isPolicyFile } from '../sdk/args.ts';
import { checkPolicy, formatCheck, kernelHasHook } from './check.ts';
import { scaffoldPolicy } from './scaffold.ts';
import { paramsFromFlags } from './lang/params.ts';
import { differentialTest, formatDiff } from './difftest.ts';
import { MountError } from '../sdk/mount.ts';
import { spawnSync } from 'node:child_process';
import { repoRoot } from '../util/paths.ts';
import { formatGlobal } from '../bpf/globals.ts';

export const policyHelp = () => `Usage: fuse-kfunc policy list
       fuse-kfunc policy show NAME|FILE [--backings N] [PARAMS]
       fuse-kfunc policy compile NAME|FILE [--backings N] [PARAMS] [-o FILE]
       fuse-kfunc policy check FILE
       fuse-kfunc policy test FILE [--backings N] [PARAMS] [--seed S] [--ops N] [--unit BYTES] [--exts .log,...]
       fuse-kfunc policy new NAME [DIR]

A policy is a BPF program plus the daemon that serves, the same way, what the program sends
up. NAME is a built-in policy; FILE a policy module, a .ts file with definePolicy() whose
functions fuse-kfunc compiles to BPF C and runs in the daemon as they are (docs/policies.md).
  list      the built-in policies and their parameters
  show      print the BPF C (a module's with #line directives at its TypeScript lines)
  compile   compile it with clang-19 against the kernel build
            ($FUSE_KFUNC_BUILD or ~/.cache/fuse-kfunc/builds/current), cached by content;
            prints the object's path (-o copies it to FILE)
  check     a module end to end: compile it, compare its C with its TypeScript on random
            inputs (natively), build the BPF object, and load it through the verifier when
            the running kernel has the hook (else says how: in the VM)
  test      the seeded differential workload: the module's program against the daemon
            alone (the same functions), both against a model, the backing directories
            compared (root, patched kernel: else it boots the VM, where FILE must be
            outside /tmp, /run and /var/tmp, the guest's own)
  new       write NAME.ts, a policy module to start from, and NAME.test.ts, its check
--backings N is the number of backing directories it will be mounted over (default: the
policy's smallest). Mount one with \`fuse-kfunc mount B1 B2 MNT --policy NAME|FILE [PARAMS]\`.

Policies:
${builtinPolicies().map((p) => `  ${p.name}: ${p.summary}\n${p.params.map((q) => `    --${q.name} ${q.value}  ${q.doc} (default ${q.default})`).join('\n')}`).join('\n')}`;

export function policyCmd(argv: string[]): number | Promise<number> {
  if (argv.includes('--help') || argv.includes('-h') || argv.length === 0) {
    process.stdout.write(policyHelp() + '\n');
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
    for (const p of builtinPolicies()) process.stdout.write(`${p.name}\t${p.summary}\n`);
    return 0;
  }
  if (!['show', 'compile', 'check', 'test', 'new'].includes(sub ?? '')) throw new UsageError(`unknown policy command "${sub}" (list, show, compile, check, test, new)`);
  if (!name) throw new UsageError(`policy ${sub} needs ${sub === 'new' ? 'a name for the new policy' : sub === 'check' ? 'a policy module (a .ts file)' : `a policy name (${Object.keys(BUILTINS).join(', ')}) or a module file`}`);
  if (extra.length > (sub === 'new' ? 1 : 0)) throw new UsageError(`unexpected argument "${extra[sub === 'new' ? 1 : 0]}"`);
  try {
    if (sub === 'new') {
      for (const f of scaffoldPolicy(name, resolve(extra[0] ?? '.'))) process.stdout.write(`wrote ${f}\n`);
      process.stdout.write(`next: fuse-kfunc policy check ${join(extra[0] ?? '.', `${name}.ts`)}\n`);
      return 0;
    }
    const file = isPolicyFile(name);
    if (sub === 'check') {
      if (!file) throw new UsageError(`policy check takes a module file (the built-in ${name} is checked by the tests)`);
      const r = checkPolicy(resolve(name));
      process.stdout.write(formatCheck(r));
      return r.ok ? 0 : 1;
    }
    if (sub === 'test') {
      if (!file) throw new UsageError(`policy test takes a module file (the built-in ${name} is tested by test/guest/policies.test.ts)`);
      return policyTest(resolve(name), params, backings, argv);
    }
    let policy: AnyPolicy;
    if (file) {
      const { 'attr-timeout': attr, ...rest } = params;
      const values = paramsFromFlags(rest);
      const module = resolve(name);
      policy = { module, params: values, backings: backings ?? compiledModule(module).definition.backings.min, attrTimeout: attr === undefined ? 1 : Number(attr) };
    } else {
      policy = makePolicy(name, params, backings ?? builtinPolicies().find((p) => p.name === name)?.backings[0] ?? 2);
    }
    if (sub === 'show') {
      process.stdout.write(generatePolicy(policy));
      const sets = Object.entries(policyGlobals(policy)).map(([k, v]) => `${k} = ${formatGlobal(v)}`);
      if (sets.length) process.stdout.write(`\n/* Set before load for these parameters: ${sets.join(', ')} */\n`);
      return 0;
    }
    const build = process.env.FUSE_KFUNC_BUILD ?? join(cachePaths().builds, 'current');
    if (!existsSync(join(build, 'vmlinux.h'))) throw new UsageError(`no kernel build at ${build}: run \`fuse-kfunc kernel build\` first (or set FUSE_KFUNC_BUILD)`);
    const b = buildPolicy(policy, build);
    if (out) copyFileSync(b.object, resolve(out));
    process.stdout.write(`${out ? resolve(out) : b.object}\n`);
    process.stderr.write(`${b.cached ? 'cached' : 'compiled'}: ${b.source} (struct_ops ${b.structOps})\n`);
    const sets = Object.entries(b.globals).map(([k, v]) => `--set ${k}=${formatGlobal(v)}`).join(' ');
    if (sets) process.stderr.write(`its parameters are set at load time: mount it with --program ${out ? resolve(out) : b.object} --struct-ops ${b.structOps} ${sets}\n`);
    return 0;
  } catch (e) {
    if (e instanceof PolicyError || e instanceof PolicyCompileError) {
      process.stderr.write(`fuse-kfunc policy: ${e.message}\n`);
      return 1;
    }
    if (e instanceof CompileError) {
      process.stderr.write(`fuse-kfunc policy: the C fuse-kfunc wrote does not compile (a bug in fuse-kfunc: please report it)\n${e.message}\n`);
      return 1;
    }
    throw e;
  }
}

async function policyTest(file: string, params: Record<string, string>, backings: number | undefined, argv: string[]): Promise<number> {
  const num = (k: string, dflt: number) => {
    const v = params[k];
    delete params[k];
    if (v === undefined) return dflt;
    if (!/^\d+$/.test(v)) throw new UsageError(`--${k} wants a whole number, got "${v}"`);
    return Number(v);
  };
  const seed = num('seed', 1);
  const ops = num('ops', 90);
  const unit = num('unit', 4096);
  const exts = params.exts === undefined ? undefined : params.exts.split(',').map((x) => x.trim()).filter(Boolean);
  delete params.exts;
  if (!kernelHasHook() || process.getuid?.() !== 0) {
    // Boot the VM and run this same command there.
    if (/^\/(tmp|run|var\/tmp)\//.test(file)) throw new UsageError(`${file} is under a directory the VM has its own of (/tmp, /run, /var/tmp): move the module elsewhere`);
    const repo = repoRoot();
    const r = spawnSync(process.execPath, [join(repo, 'bin', 'fuse-kfunc.js'), 'vm', 'run', '--', process.execPath, join(repo, 'bin', 'fuse-kfunc.js'), 'policy', ...argv], { stdio: 'inherit' });
    return r.status ?? 1;
  }
  const values = paramsFromFlags(params);
  const o = { backings: backings ?? compiledModule(file).definition.backings.min, params: values, seed, ops, unit, exts };
  try {
    const r = await differentialTest(file, o);
    process.stdout.write(formatDiff(file, o, r));
    return r.ok ? 0 : 1;
  } catch (e) {
    if (!(e instanceof MountError)) throw e;
    process.stderr.write(`fuse-kfunc policy test: ${e.message}\n`);
    return 1;
  }
}
