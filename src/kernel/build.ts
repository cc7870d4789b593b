// Build the patched kernel and the BPF toolchain of the same tree, cached by the hash of
// (base, series, config fragment). The kernel object dir is shared between builds so an
// edit in the work tree recompiles only what changed; finished builds are copied out.
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync, readdirSync, statSync, renameSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { cpus } from 'node:os';
import { basename, join } from 'node:path';
import { KFUNCS_HEADER, vmlinuxDumpArgs } from '../policy/compile.ts';
import { capture, runLogged } from '../util/exec.ts';
import { cachePaths } from '../util/paths.ts';
import { fmtDuration } from '../util/progress.ts';
import { checkTarball, readBase } from './base.ts';
import { buildKey, readSeries } from './series.ts';
import { prepare, worktreeStatus } from './worktree.ts';
import { checkFragments, type FragmentFile } from './config.ts';

export interface Artifacts {
  key: string;
  dir: string;
  release: string;
  bzImage: string;
  vmlinux: string;
  vmlinuxH: string;
  libbpfInclude: string;   // holds bpf/*.h
  libbpfLib: string;       // holds libbpf.a and libbpf.so*
  bpftool: string;
  selftests?: string;      // dir with fuse_bpf_test, when the series has selftests
  /**
   * The kernel tree the build came from, when the build holds its selftests in kselftest's
   * layout (`kselftest/<target>`): kselftest's `make ... run_tests` runs that tree's Makefiles.
   */
  tree?: string;
  dev: boolean;            // built from unexported work-tree changes
}

export const KSELFTEST_TARGET = 'filesystems/fuse_bpf';
const SELFTEST_DIR = `tools/testing/selftests/${KSELFTEST_TARGET}`;
// LOCALVERSION set (even empty) stops setlocalversion appending "+" for a git tree.
const BUILD_ENV = { KBUILD_BUILD_USER: 'fuse-kfunc', KBUILD_BUILD_HOST: 'workbench', LOCALVERSION: '' };

export function artifactsIn(dir: string): Artifacts | undefined {
  const f = join(dir, 'build.json');
  if (!existsSync(f)) return undefined;
  const meta = JSON.parse(readFileSync(f, 'utf8'));
  const kst = join(dir, 'kselftest', KSELFTEST_TARGET);
  const kselftest = existsSync(join(kst, 'fuse_bpf_test'));
  const a: Artifacts = {
    key: meta.key, dir, release: meta.release, dev: Boolean(meta.dev),
    bzImage: join(dir, 'bzImage'), vmlinux: join(dir, 'vmlinux'), vmlinuxH: join(dir, 'vmlinux.h'),
    libbpfInclude: join(dir, 'libbpf', 'include'), libbpfLib: join(dir, 'libbpf', 'lib'),
    bpftool: join(dir, 'bpftool'),
    selftests: kselftest ? kst : existsSync(join(dir, 'selftests', 'fuse_bpf_test')) ? join(dir, 'selftests') : undefined,
    tree: kselftest ? meta.tree : undefined,
  };
  return a;
}

/** Where a build keeps its modules (fuse.ko when FUSE is one); the guest loads them at boot. */
export const MODULES_DIR = 'modules';

/**
 * Copy every module the build made into @dest (flat: the guest insmods each one), as kbuild
 * lists them in `modules.order` (`fs/fuse/fuse.o` for fs/fuse/fuse.ko).
 */
export function copyModules(obj: string, dest: string): string[] {
  const found = builtModules(obj);
  if (found.length) mkdirSync(dest, { recursive: true });
  for (const f of found) cpSync(f, join(dest, basename(f)));
  return found;
}

/** The .ko files kbuild's modules.order lists in the object dir @obj. */
export function builtModules(obj: string): string[] {
  const order = join(obj, 'modules.order');
  return existsSync(order)
    ? readFileSync(order, 'utf8').split('\n').filter(Boolean).map((m) => join(obj, m.replace(/\.o$/, '.ko')))
    : [];
}

/**
 * vmlinux.h for BPF programs: vmlinux's BTF, and with FUSE a module, fuse.ko's split BTF on
 * top of it (struct fuse_args, fuse_bpf_ops and the FUSE wire structs live there then).
 */
export function vmlinuxH(bpftool: string, vmlinux: string, modules: string): string {
  return capture(bpftool, vmlinuxDumpArgs(vmlinux, join(modules, 'fuse.ko')));
}

/**
 * `make` arguments running kselftest's own Makefiles on the build in @dir: `all` builds the
 * selftests there (O=@dir), `run_tests` runs them through kselftest's runner.
 */
export function kselftestArgs(tree: string, dir: string, target: 'all' | 'run_tests', jobs: number | string = 1): string[] {
  return ['-C', join(tree, 'tools/testing/selftests'), `O=${dir}`, `TARGETS=${KSELFTEST_TARGET}`,
    `LIBBPF_INCLUDE=${join(dir, 'libbpf/include')}`, `LIBBPF_A=${join(dir, 'libbpf/lib/libbpf.a')}`,
    `BPFTOOL=${join(dir, 'bpftool')}`, `VMLINUX_H=${join(dir, 'vmlinux.h')}`, 'CLANG=clang-19', `-j${jobs}`, target];
}

/** The most recent finished build, whatever its inputs (for `vm run`). */
export function currentArtifacts(cache?: string): Artifacts | undefined {
  return artifactsIn(join(cachePaths(cache).builds, 'current'));
}

/**
 * A kernel of the same tree with more config on top (the debug kernel): its own object,
 * tools and artifact dirs under `<cache>/<name>/` and keys `<name>-…`, so building it never
 * recompiles the normal object dir, and it is never linked as `builds/current`.
 */
export interface BuildVariant {
  name: string;
  /** Repo-relative fragments applied after kernel-patch/config.fragment, in order. */
  fragments: string[];
}

export const DEBUG_VARIANT: BuildVariant = { name: 'debug', fragments: ['kernel-patch/debug.fragment'] };

const MAIN_FRAGMENT = 'kernel-patch/config.fragment';

export interface BuildOptions {
  force?: boolean;
  cache?: string;
  jobs?: number;
  variant?: BuildVariant;
}

export function variantPaths(cache: string | undefined, v: BuildVariant | undefined): { obj: string; tools: string; builds: string } {
  const cp = cachePaths(cache);
  if (!v) return { obj: cp.obj, tools: cp.tools, builds: cp.builds };
  const root = join(cp.root, v.name);
  return { obj: join(root, 'obj'), tools: join(root, 'tools'), builds: join(root, 'builds') };
}

/**
 * The variant's key: the normal build's key (base, series, work-tree edits, main fragment)
 * plus the variant's name and its fragments' names and text.
 */
export function variantKey(baseKey: string, dev: boolean, v: BuildVariant, fragments: FragmentFile[]): string {
  const h = createHash('sha256').update(`variant ${v.name}\0key ${baseKey}\0`);
  for (const f of fragments) h.update(`${f.file}\0${f.text}\0`);
  return `${v.name}-${dev ? 'dev-' : ''}${h.digest('hex').slice(0, 16)}`;
}

function readFragments(repo: string, v: BuildVariant | undefined): FragmentFile[] {
  return [MAIN_FRAGMENT, ...(v?.fragments ?? [])].map((file) => {
    const p = join(repo, file);
    if (!existsSync(p)) throw new Error(`${file} not found (the ${v?.name ?? 'kernel'} build needs it): restore it from git`);
    return { file, text: readFileSync(p, 'utf8') };
  });
}

/** The cached build of a variant for the repo as it is now, if there is one. */
export function findVariant(repo: string, v: BuildVariant, cache?: string): Artifacts | undefined {
  const { key } = currentKey(repo, cache, v);
  return artifactsIn(join(variantPaths(cache, v).builds, key));
}

/** Inputs and key for the repo as it is now (work-tree changes included). */
export function currentKey(repo: string, cache?: string, variant?: BuildVariant): { key: string; dev: boolean } {
  const k = patchedKey(repo, cache);
  return variant ? { key: variantKey(k.key, k.dev, variant, readFragments(repo, variant).slice(1)), dev: k.dev } : k;
}

function patchedKey(repo: string, cache?: string): { key: string; dev: boolean } {
  const base = readBase(repo);
  const check = checkTarball(base);
  if (!check.found) throw new Error(check.message);
  const fragment = readFileSync(join(repo, 'kernel-patch', 'config.fragment'), 'utf8');
  const key = buildKey({ base: readFileSync(join(repo, 'kernel-patch', 'BASE'), 'utf8'), baseFound: check.found, patches: readSeries(repo), fragment });
  const st = worktreeStatus(repo, cache);
  if (!st.dirty) return { key, dev: false };
  // Unexported work: key it by the tree's content so each edit gets its own build.
  const wt = st.path;
  const diff = capture('git', ['-C', wt, 'diff', 'fuse-kfunc-base']);
  const untracked = capture('git', ['-C', wt, 'ls-files', '--others', '--exclude-standard']);
  const h = createHash('sha256').update(key).update(diff).update(untracked);
  for (const f of untracked.split('\n').filter(Boolean)) h.update(readFileSync(join(wt, f)));
  return { key: 'dev-' + h.digest('hex').slice(0, 12), dev: true };
}

/**
 * Lines `make bzImage` prints for a build from scratch of this configuration (1,650–1,730
 * measured, plain and debug): what the progress line's percentage and ETA count against.
 */
export const COLD_BZIMAGE_LINES = 1700;

/**
 * What a build from scratch costs here, said before it starts: about 20 core-minutes of
 * compiling (10 minutes on an idle 2-core machine; 25 on a busy one), plus a minute or two
 * unpacking the source into the work tree.
 */
export function coldBuildEstimate(cores: number): string {
  const min = Math.round(20 / Math.max(1, cores)) + 2;
  return `about ${min} minutes with ${cores} core${cores === 1 ? '' : 's'} (more if the machine is busy)`;
}

export async function build(repo: string, opts: BuildOptions = {}): Promise<Artifacts> {
  const cp = cachePaths(opts.cache);
  const v = opts.variant;
  const vp = variantPaths(opts.cache, v);
  const what = v ? `${v.name} build` : 'build';
  const { key, dev } = currentKey(repo, opts.cache, v);
  const out = join(vp.builds, key);
  const cached = artifactsIn(out);
  if (cached && !opts.force) {
    process.stderr.write(`kernel: reusing ${what} ${key} (${cached.release})\n`);
    if (!v) linkCurrent(vp.builds, key);
    return cached;
  }
  mkdirSync(vp.builds, { recursive: true });
  const t0 = Date.now();
  const cold = !existsSync(join(vp.obj, 'vmlinux'));
  if (cold) {
    process.stderr.write(`kernel: no earlier ${what} to build on: this one compiles everything, ${coldBuildEstimate(cpus().length)}; ` +
      'the progress lines show how far it is and an ETA. Later runs reuse it.\n');
  }
  const st = worktreeStatus(repo, opts.cache);
  if (dev) {
    process.stderr.write(`kernel: building the work tree's unexported changes (${st.unexportedCommits.length} commits, ` +
      `${st.uncommitted.length} edited files) as ${key}; export them with \`fuse-kfunc kernel export\`\n`);
  } else if (!st.exists || st.seriesChanged) {
    await prepare(repo, { cache: opts.cache });
  }
  const wt = cp.worktree;
  const log = join(cp.logs, `build-${key}.log`);
  rmSync(log, { force: true });
  const jobs = String(opts.jobs ?? Math.max(1, cpus().length + 1));
  const env = { ...process.env, ...BUILD_ENV };

  // Configure only when the fragment changed: olddefconfig touches .config and would
  // otherwise defeat the incremental build.
  const fragments = readFragments(repo, v);
  const fragHash = createHash('sha256').update(fragments.map((f) => `${f.file}\0${f.text}`).join('\0')).digest('hex');
  const obj = vp.obj;
  const stamp = join(obj, '.fuse-kfunc-fragment');
  const tag = v ? ` (${v.name})` : '';
  mkdirSync(obj, { recursive: true });
  if (!existsSync(join(obj, '.config')) || !existsSync(stamp) || readFileSync(stamp, 'utf8') !== fragHash) {
    await runLogged('make', ['-C', wt, `O=${obj}`, 'tinyconfig'], { log, env, phase: `configure${tag}: tinyconfig` });
    await runLogged(join(wt, 'scripts/kconfig/merge_config.sh'), ['-m', '-O', obj, join(obj, '.config'), ...fragments.map((f) => join(repo, f.file))],
      { log, env, cwd: wt, phase: `configure${tag}: merge ${fragments.map((f) => f.file.replace(/^kernel-patch\//, '')).join(' + ')}` });
    await runLogged('make', ['-C', wt, `O=${obj}`, 'olddefconfig'], { log, env, phase: `configure${tag}: olddefconfig` });
    const missing = checkFragments(fragments, readFileSync(join(obj, '.config'), 'utf8'));
    if (missing.length) {
      throw new Error(`the ${what}'s config lost options the fragments ask for (Kconfig dropped them: a dependency ` +
        'is missing from the fragment, or another option excludes them; add or turn off that one too):\n' +
        missing.map((m) => `  ${m}`).join('\n'));
    }
    writeFileSync(stamp, fragHash);
  }
  await runLogged('make', ['-C', wt, `O=${obj}`, `-j${jobs}`, 'bzImage'],
    { log, env, phase: `build kernel${tag} (bzImage + vmlinux)`, expectLines: cold ? COLD_BZIMAGE_LINES : undefined });
  // A module's BTF is split BTF on top of vmlinux's. When only built-in code changed, kbuild
  // does not relink the .ko but re-runs pahole and resolve_btfids on the one it has, whose
  // .BTF is already there and stays: its kfunc ids then name other functions, which lost
  // their flags in the verifier (bpf_fuse_backing_get without KF_ACQUIRE, seen at stop 19).
  // Relinking the modules is a few seconds: remove them, after vmlinux, and make them again.
  for (const ko of builtModules(obj)) rmSync(ko, { force: true });
  await runLogged('make', ['-C', wt, `O=${obj}`, `-j${jobs}`, 'modules'], { log, env, phase: `build kernel${tag} modules` });
  const warnings = readFileSync(log, 'utf8').split('\n').filter((l) => /resolve_btfids.*unresolved|warning: /.test(l));
  if (warnings.length) {
    process.stderr.write(`kernel: ${warnings.length} build warning(s), first ones:\n${warnings.slice(0, 5).map((w) => `  ${w}`).join('\n')}\n`);
  }

  const libbpfOut = join(vp.tools, 'libbpf');
  const root = join(vp.tools, 'root');
  mkdirSync(libbpfOut, { recursive: true });
  await runLogged('make', ['-C', join(wt, 'tools/lib/bpf'), `OUTPUT=${libbpfOut}/`, `DESTDIR=${root}`, 'prefix=/usr', `-j${jobs}`, 'install_headers', 'install'],
    { log, env, phase: 'build libbpf' });
  const bpftoolOut = join(vp.tools, 'bpftool');
  mkdirSync(bpftoolOut, { recursive: true });
  await runLogged('make', ['-C', join(wt, 'tools/bpf/bpftool'), `OUTPUT=${bpftoolOut}/`, `-j${jobs}`], { log, env, phase: 'build bpftool' });

  const tmp = `${out}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(join(tmp, 'libbpf'), { recursive: true });
  cpSync(join(obj, 'arch/x86/boot/bzImage'), join(tmp, 'bzImage'));
  cpSync(join(obj, 'vmlinux'), join(tmp, 'vmlinux'));
  // The config the fragments produced, to read back what a report came from.
  cpSync(join(obj, '.config'), join(tmp, 'config'));
  cpSync(join(bpftoolOut, 'bpftool'), join(tmp, 'bpftool'));
  cpSync(join(root, 'usr/include'), join(tmp, 'libbpf/include'), { recursive: true });
  // The kfunc declarations and FUSE reply inlines of this kernel, from its own selftests'
  // header: one place for them, beside libbpf's headers so that every program finds them.
  const kfuncsH = join(wt, SELFTEST_DIR, KFUNCS_HEADER);
  if (existsSync(kfuncsH)) cpSync(kfuncsH, join(tmp, 'libbpf/include', KFUNCS_HEADER));
  const libdir = existsSync(join(root, 'usr/lib64')) ? join(root, 'usr/lib64') : join(root, 'usr/lib');
  cpSync(libdir, join(tmp, 'libbpf/lib'), { recursive: true, verbatimSymlinks: true });
  copyModules(obj, join(tmp, MODULES_DIR));
  writeFileSync(join(tmp, 'vmlinux.h'), vmlinuxH(join(tmp, 'bpftool'), join(tmp, 'vmlinux'), join(tmp, MODULES_DIR)));

  if (existsSync(join(wt, SELFTEST_DIR, 'Makefile'))) {
    // As kselftest builds them (O= holds usr/include and kselftest/<target>), so that
    // `make -C tools/testing/selftests TARGETS=... run_tests` runs them in the guest.
    // `headers` into the object dir is incremental (34 s cold, ~2 s after).
    await runLogged('make', ['-C', wt, `O=${obj}`, 'headers'], { log, env, phase: 'export kernel headers for the selftests' });
    cpSync(join(obj, 'usr/include'), join(tmp, 'usr/include'), { recursive: true });
    await runLogged('make', kselftestArgs(wt, tmp, 'all', jobs), { log, env, phase: 'build kernel selftests' });
  }

  const release = readFileSync(join(obj, 'include/config/kernel.release'), 'utf8').trim();
  writeFileSync(join(tmp, 'build.json'), JSON.stringify({
    key, dev, release, tree: wt, ...(v ? { variant: v.name, fragments: fragments.map((f) => f.file) } : {}), builtAt: new Date().toISOString(), seconds: Math.round((Date.now() - t0) / 1000),
    series: readSeries(repo).map((p) => p.name), log,
  }, null, 2) + '\n');
  rmSync(out, { recursive: true, force: true });
  renameSync(tmp, out);
  if (!v) linkCurrent(vp.builds, key);
  // A variant keeps fewer: it is rebuilt on demand only, and its vmlinux is larger.
  prune(vp.builds, v ? 2 : 4);
  process.stderr.write(`kernel: built ${release} as ${key} in ${fmtDuration(Date.now() - t0)}; artifacts in ${out}\n`);
  return artifactsIn(out)!;
}

function linkCurrent(builds: string, key: string): void {
  const link = join(builds, 'current');
  rmSync(link, { force: true });
  symlinkSync(key, link);
}

/** Keep the newest few builds: each holds a vmlinux of a few hundred MB. */
function prune(builds: string, keep: number): void {
  const dirs = readdirSync(builds).filter((d) => d !== 'current' && !d.endsWith('.tmp'))
    .map((d) => ({ d, t: statSync(join(builds, d)).mtimeMs })).sort((a, b) => b.t - a.t);
  for (const { d } of dirs.slice(keep)) rmSync(join(builds, d), { recursive: true, force: true });
}
