// Policy -> readable BPF C -> object, cached by content: the same policy against the same
// kernel build and headers compiles once. The cache lives beside the kernel builds, or in
// the temporary directory when that is read-only (the VM mounts the cache read-only).
//
// A policy is a policy module (a .ts file: built-in like stripe, or the user's) with its
// parameter values; a built-in policy's spec (makePolicy) names its module. A module's
// compilation (C and the daemon's JavaScript) is cached by the module's text and the
// compiler's own sources, so a mount of a cached module does not load TypeScript.
import { createHash } from 'node:crypto';
import { accessSync, constants, existsSync, mkdirSync, readFileSync, readdirSync, realpathSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { cachePaths, repoRoot } from '../util/paths.ts';
import { compileBpf } from './compile.ts';
import { PolicyError, validatePolicy, type PolicySpec } from './spec.ts';
import { policyModule } from './builtin/index.ts';
import { compilePolicy, type CompiledPolicy } from './compiler/emit.ts';
import { resolveParams, type ResolvedParams } from './lang/params.ts';
import type { GlobalValues } from '../bpf/globals.ts';
import type { NameRule } from './lang/define.ts';

/** A policy module mounted with these parameter values over `backings` directories. */
export interface ModulePolicy {
  /** The module's file. */
  module: string;
  params: Record<string, string | number | readonly NameRule[] | readonly string[] | undefined>;
  backings: number;
  attrTimeout: number;
}

export type AnyPolicy = PolicySpec | ModulePolicy;

export function isModulePolicy(p: AnyPolicy): p is ModulePolicy {
  return 'module' in p;
}

/** The module instance a policy is (a built-in spec names its module). */
export function asModulePolicy(p: AnyPolicy): ModulePolicy {
  if (isModulePolicy(p)) return p;
  validatePolicy(p);
  const m = policyModule(p);
  return { module: m.file, params: m.values, backings: p.backings, attrTimeout: p.attrTimeout };
}

function writableDir(dir: string): boolean {
  try {
    mkdirSync(dir, { recursive: true });
    accessSync(dir, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

export function policyCacheDir(): string {
  const want = process.env.FUSE_KFUNC_POLICY_CACHE ?? cachePaths().policies;
  return writableDir(want) ? want : join(tmpdir(), 'fuse-kfunc-policies');
}

/** Writes `files` into `dir` through a private directory renamed into place. */
function publish(dir: string, write: (work: string) => void): void {
  const work = `${dir}.${process.pid}.tmp`;
  mkdirSync(work, { recursive: true });
  write(work);
  try {
    renameSync(work, dir);
  } catch (e) {
    if (!existsSync(dir)) throw e; // someone else won the race: theirs is the same
  }
}

let compilerKey: string | undefined;
/** What the compiler is: its sources and the runtime headers the C includes. */
function compilerSources(): string {
  if (compilerKey) return compilerKey;
  const h = createHash('sha256');
  const repo = repoRoot();
  for (const dir of ['src/policy/compiler', 'src/policy/lang']) {
    for (const f of readdirSync(join(repo, dir)).sort()) h.update(f).update(readFileSync(join(repo, dir, f)));
  }
  compilerKey = h.digest('hex');
  return compilerKey;
}

/** A module compiled (C and JavaScript), from the cache when its text was compiled before. */
export function compiledModule(file: string): CompiledPolicy {
  const path = resolve(file);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new PolicyError(`cannot read the policy module ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const key = createHash('sha256').update(path).update('\0').update(text).update(compilerSources()).digest('hex').slice(0, 16);
  const dir = join(policyCacheDir(), `module-${key}`);
  const cached = join(dir, 'compiled.json');
  if (existsSync(cached)) return JSON.parse(readFileSync(cached, 'utf8')) as CompiledPolicy;
  const c = compilePolicy(path, { repo: repoRoot(), text });
  publish(dir, (work) => writeFileSync(join(work, 'compiled.json'), JSON.stringify(c)));
  return c;
}

/** A module instance's parameter values, checked against its declarations. */
export function moduleParams(p: ModulePolicy): ResolvedParams & { compiled: CompiledPolicy } {
  const compiled = compiledModule(p.module);
  return { ...resolveParams(compiled.definition, p.params, p.backings, p.attrTimeout), compiled };
}

/** The globals the loader sets before load: the module's parameters (the C holds their defaults, so one object serves every value). */
export function policyGlobals(p: AnyPolicy): GlobalValues {
  return moduleParams(asModulePolicy(p)).globals;
}

/** The C of a policy (validated first), compiled from its module. */
export function generatePolicy(p: AnyPolicy): string {
  return moduleParams(asModulePolicy(p)).compiled.source;
}

export interface BuiltPolicy {
  source: string;
  object: string;
  structOps: string;
  /** false when this call compiled it. */
  cached: boolean;
  /** Set these globals before load (the policy's parameters). */
  globals: GlobalValues;
}

/** Families whose runtime can serve names in the kernel too (bpf/runtime/names.bpf.h). */
export const KERNEL_NAME_FAMILIES: readonly string[] = ['layout', 'replicas'];

export interface BuildOptions {
  /** Serve names (LOOKUP, CREATE, RENAME ...) in the kernel as well: no daemon after INIT. */
  kernelNames?: boolean;
}

/**
 * The C of a policy whose names the kernel serves: the family's runtime then ends with
 * names.bpf.h instead of dispatch.bpf.h (one define, before the runtime is included).
 */
export function withKernelNames(source: string, name: string, family: string): string {
  if (!KERNEL_NAME_FAMILIES.includes(family)) {
    throw new PolicyError(`${name}: names in the kernel are served for the ${KERNEL_NAME_FAMILIES.join(' and ')} families; ` +
      `the ${family} family's names are the daemon's yet (mount it without names: 'kernel')`);
  }
  const at = '#include "policy.bpf.h"';
  if (!source.includes(at)) throw new Error(`${name}: the compiled C does not include policy.bpf.h`);
  return source.replace(at, `/* Names are served in the kernel too (mount option names: 'kernel') */\n#define POLICY_KERNEL_NAMES\n\n${at}`);
}

/** Generates, compiles (clang-19 against `buildDir`'s vmlinux.h and libbpf) and caches. */
export function buildPolicy(p: AnyPolicy, buildDir: string, opts: BuildOptions = {}): BuiltPolicy {
  const r = moduleParams(asModulePolicy(p));
  const name = r.compiled.definition.name;
  const source = opts.kernelNames ? withKernelNames(r.compiled.source, name, r.compiled.family) : r.compiled.source;
  const globals = r.globals;
  const repo = repoRoot();
  const h = createHash('sha256');
  h.update(source);
  h.update(basename(realpathSync(buildDir))); // the build key: kernel, config, series
  for (const inc of [join(repo, 'bpf', 'include'), join(repo, 'bpf', 'runtime')]) {
    for (const f of readdirSync(inc).sort()) h.update(f).update(readFileSync(join(inc, f)));
  }
  // The module's raw handlers are C the source includes by path: their text is part of it.
  for (const f of Object.values(r.compiled.raw ?? {}).sort()) h.update(f).update(readFileSync(f));
  const dir = join(policyCacheDir(), `${name}-${h.digest('hex').slice(0, 16)}`);
  const file = `${name}.bpf`;
  const object = join(dir, `${file}.o`);
  const structOps = `${name}_ops`;
  const built = { source: join(dir, `${file}.c`), object, structOps, globals };
  if (existsSync(object)) return { ...built, cached: true };
  // Compiled in a private directory renamed into place: concurrent builds of one policy
  // never see a half-written object.
  publish(dir, (work) => {
    writeFileSync(join(work, `${file}.c`), source);
    compileBpf({ source: join(work, `${file}.c`), outDir: work, buildDir, repo });
  });
  return { ...built, cached: false };
}
