// Build the patched kernel and the BPF toolchain of the same tree, cached by the hash of
// (base, series, config fragment). The kernel object dir is shared between builds so an
// edit in the work tree recompiles only what changed; finished builds are copied out.
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync, readdirSync, statSync, renameSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { capture, runLogged } from '../util/exec.ts';
import { cachePaths } from '../util/paths.ts';
import { fmtDuration } from '../util/progress.ts';
import { checkTarball, readBase } from './base.ts';
import { buildKey, readSeries } from './series.ts';
import { prepare, worktreeStatus } from './worktree.ts';
import { checkConfig, parseFragment } from './config.ts';

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
  dev: boolean;            // built from unexported work-tree changes
}

const SELFTEST_DIR = 'tools/testing/selftests/filesystems/fuse_bpf';
// LOCALVERSION set (even empty) stops setlocalversion appending "+" for a git tree.
const BUILD_ENV = { KBUILD_BUILD_USER: 'fuse-kfunc', KBUILD_BUILD_HOST: 'workbench', LOCALVERSION: '' };

export function artifactsIn(dir: string): Artifacts | undefined {
  const f = join(dir, 'build.json');
  if (!existsSync(f)) return undefined;
  const meta = JSON.parse(readFileSync(f, 'utf8'));
  const a: Artifacts = {
    key: meta.key, dir, release: meta.release, dev: Boolean(meta.dev),
    bzImage: join(dir, 'bzImage'), vmlinux: join(dir, 'vmlinux'), vmlinuxH: join(dir, 'vmlinux.h'),
    libbpfInclude: join(dir, 'libbpf', 'include'), libbpfLib: join(dir, 'libbpf', 'lib'),
    bpftool: join(dir, 'bpftool'),
    selftests: existsSync(join(dir, 'selftests', 'fuse_bpf_test')) ? join(dir, 'selftests') : undefined,
  };
  return a;
}

/** The most recent finished build, whatever its inputs (for `vm run`). */
export function currentArtifacts(cache?: string): Artifacts | undefined {
  return artifactsIn(join(cachePaths(cache).builds, 'current'));
}

export interface BuildOptions {
  force?: boolean;
  cache?: string;
  jobs?: number;
}

/** Inputs and key for the repo as it is now (work-tree changes included). */
export function currentKey(repo: string, cache?: string): { key: string; dev: boolean } {
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

export async function build(repo: string, opts: BuildOptions = {}): Promise<Artifacts> {
  const cp = cachePaths(opts.cache);
  const { key, dev } = currentKey(repo, opts.cache);
  const out = join(cp.builds, key);
  const cached = artifactsIn(out);
  if (cached && !opts.force) {
    process.stderr.write(`kernel: reusing build ${key} (${cached.release})\n`);
    linkCurrent(cp.builds, key);
    return cached;
  }
  const t0 = Date.now();
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
  const fragmentText = readFileSync(join(repo, 'kernel-patch', 'config.fragment'), 'utf8');
  const fragHash = createHash('sha256').update(fragmentText).digest('hex');
  const stamp = join(cp.obj, '.fuse-kfunc-fragment');
  mkdirSync(cp.obj, { recursive: true });
  if (!existsSync(join(cp.obj, '.config')) || !existsSync(stamp) || readFileSync(stamp, 'utf8') !== fragHash) {
    await runLogged('make', ['-C', wt, `O=${cp.obj}`, 'tinyconfig'], { log, env, phase: 'configure: tinyconfig' });
    await runLogged(join(wt, 'scripts/kconfig/merge_config.sh'), ['-m', '-O', cp.obj, join(cp.obj, '.config'), join(repo, 'kernel-patch', 'config.fragment')],
      { log, env, cwd: wt, phase: 'configure: merge fragment' });
    await runLogged('make', ['-C', wt, `O=${cp.obj}`, 'olddefconfig'], { log, env, phase: 'configure: olddefconfig' });
    const missing = checkConfig(parseFragment(fragmentText), readFileSync(join(cp.obj, '.config'), 'utf8'));
    if (missing.length) {
      throw new Error('kernel-patch/config.fragment asks for options Kconfig did not keep ' +
        '(a dependency is missing from the fragment):\n' + missing.map((m) => `  ${m}`).join('\n'));
    }
    writeFileSync(stamp, fragHash);
  }
  await runLogged('make', ['-C', wt, `O=${cp.obj}`, `-j${jobs}`, 'bzImage'], { log, env, phase: 'build kernel (bzImage + vmlinux)' });
  const warnings = readFileSync(log, 'utf8').split('\n').filter((l) => /resolve_btfids.*unresolved|warning: /.test(l));
  if (warnings.length) {
    process.stderr.write(`kernel: ${warnings.length} build warning(s), first ones:\n${warnings.slice(0, 5).map((w) => `  ${w}`).join('\n')}\n`);
  }

  const libbpfOut = join(cp.tools, 'libbpf');
  const root = join(cp.tools, 'root');
  mkdirSync(libbpfOut, { recursive: true });
  await runLogged('make', ['-C', join(wt, 'tools/lib/bpf'), `OUTPUT=${libbpfOut}/`, `DESTDIR=${root}`, 'prefix=/usr', `-j${jobs}`, 'install_headers', 'install'],
    { log, env, phase: 'build libbpf' });
  const bpftoolOut = join(cp.tools, 'bpftool');
  mkdirSync(bpftoolOut, { recursive: true });
  await runLogged('make', ['-C', join(wt, 'tools/bpf/bpftool'), `OUTPUT=${bpftoolOut}/`, `-j${jobs}`], { log, env, phase: 'build bpftool' });

  const tmp = `${out}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(join(tmp, 'libbpf'), { recursive: true });
  cpSync(join(cp.obj, 'arch/x86/boot/bzImage'), join(tmp, 'bzImage'));
  cpSync(join(cp.obj, 'vmlinux'), join(tmp, 'vmlinux'));
  cpSync(join(bpftoolOut, 'bpftool'), join(tmp, 'bpftool'));
  cpSync(join(root, 'usr/include'), join(tmp, 'libbpf/include'), { recursive: true });
  const libdir = existsSync(join(root, 'usr/lib64')) ? join(root, 'usr/lib64') : join(root, 'usr/lib');
  cpSync(libdir, join(tmp, 'libbpf/lib'), { recursive: true, verbatimSymlinks: true });
  writeFileSync(join(tmp, 'vmlinux.h'), capture(join(tmp, 'bpftool'), ['btf', 'dump', 'file', join(tmp, 'vmlinux'), 'format', 'c']));

  if (existsSync(join(wt, SELFTEST_DIR, 'Makefile'))) {
    await runLogged('make', ['-C', join(wt, SELFTEST_DIR), `OUTPUT=${join(tmp, 'selftests')}`,
      `LIBBPF_INCLUDE=${join(tmp, 'libbpf/include')}`, `LIBBPF_A=${join(tmp, 'libbpf/lib/libbpf.a')}`,
      `BPFTOOL=${join(tmp, 'bpftool')}`, `VMLINUX_H=${join(tmp, 'vmlinux.h')}`, 'CLANG=clang-19', `-j${jobs}`],
    { log, env, phase: 'build kernel selftests' });
  }

  const release = readFileSync(join(cp.obj, 'include/config/kernel.release'), 'utf8').trim();
  writeFileSync(join(tmp, 'build.json'), JSON.stringify({
    key, dev, release, builtAt: new Date().toISOString(), seconds: Math.round((Date.now() - t0) / 1000),
    series: readSeries(repo).map((p) => p.name), log,
  }, null, 2) + '\n');
  rmSync(out, { recursive: true, force: true });
  renameSync(tmp, out);
  linkCurrent(cp.builds, key);
  prune(cp.builds, 4);
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
