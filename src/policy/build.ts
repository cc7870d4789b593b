// Policy -> readable BPF C -> object, cached by content: the same policy against the same
// kernel build and headers compiles once. The cache lives beside the kernel builds, or in
// the temporary directory when that is read-only (the VM mounts the cache read-only).
import { createHash } from 'node:crypto';
import { accessSync, constants, existsSync, mkdirSync, readFileSync, readdirSync, realpathSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { cachePaths, repoRoot } from '../util/paths.ts';
import { compileBpf } from './compile.ts';
import { generateMirror } from './generate/mirror.ts';
import { generateFilter } from './generate/filter.ts';
import { generateTier } from './generate/tier.ts';
import { generateRoute } from './generate/route.ts';
import { generateUnion } from './generate/union.ts';
import { validatePolicy, type PolicySpec } from './spec.ts';
import { policyModule } from './builtin/index.ts';
import { compilePolicy } from './compiler/emit.ts';
import { resolveParams } from './lang/params.ts';

/**
 * The globals the loader sets before load: a policy module's parameters (the C holds their
 * defaults, so one object serves every value). None for the generated policies.
 */
export function policyGlobals(spec: PolicySpec): Record<string, number> {
  const m = policyModule(spec);
  return m ? resolveParams(m.module, m.values, spec.backings, spec.attrTimeout).globals : {};
}

/** The C of a policy (validated first): compiled from its module, or generated. */
export function generatePolicy(spec: PolicySpec): string {
  validatePolicy(spec);
  const m = policyModule(spec);
  if (m) return compilePolicy(m.module, { repo: repoRoot() }).source;
  switch (spec.policy) {
    case 'stripe': throw new Error('stripe is a policy module');
    case 'mirror': return generateMirror(spec);
    case 'filter': return generateFilter(spec);
    case 'tier': return generateTier(spec);
    case 'route': return generateRoute(spec);
    case 'union': return generateUnion(spec);
  }
}

/** The struct_ops map the generated program declares. */
export function policyStructOps(spec: PolicySpec): string {
  return `${spec.policy}_ops`;
}

export interface BuiltPolicy {
  source: string;
  object: string;
  structOps: string;
  /** false when this call compiled it. */
  cached: boolean;
  /** Set these globals before load (the policy's parameters). */
  globals: Record<string, number>;
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

/** Generates, compiles (clang-19 against `buildDir`'s vmlinux.h and libbpf) and caches. */
export function buildPolicy(spec: PolicySpec, buildDir: string): BuiltPolicy {
  const source = generatePolicy(spec);
  const repo = repoRoot();
  const globals = policyGlobals(spec);
  const h = createHash('sha256');
  h.update(source);
  h.update(basename(realpathSync(buildDir))); // the build key: kernel, config, series
  for (const inc of [join(repo, 'bpf', 'include'), join(repo, 'bpf', 'runtime')]) {
    for (const f of readdirSync(inc).sort()) h.update(f).update(readFileSync(join(inc, f)));
  }
  const dir = join(policyCacheDir(), `${spec.policy}-${h.digest('hex').slice(0, 16)}`);
  const name = `${spec.policy}.bpf`;
  const object = join(dir, `${name}.o`);
  const structOps = policyStructOps(spec);
  if (existsSync(object)) return { source: join(dir, `${name}.c`), object, structOps, cached: true, globals };
  // Compile in a private directory and rename it into place: concurrent builds of one
  // policy never see a half-written object.
  const work = `${dir}.${process.pid}.tmp`;
  mkdirSync(work, { recursive: true });
  writeFileSync(join(work, `${name}.c`), source);
  compileBpf({ source: join(work, `${name}.c`), outDir: work, buildDir, repo });
  try {
    renameSync(work, dir);
  } catch (e) {
    if (!existsSync(object)) throw e; // someone else won the race: theirs is the same
  }
  return { source: join(dir, `${name}.c`), object, structOps, cached: false, globals };
}
