// The unpatched base kernel with the same config, for the "overhead when unused" benchmark:
// the series' hook must cost nothing measurable on a connection without a program, and
// the only honest reference is the same tree, same config, without the series.
//
// It lives apart from the patched builds (its own source tree, object dir and artifact dir
// under $FUSE_KFUNC_CACHE/unpatched): it is never linked as `builds/current`, never pruned
// with the patched builds, and rebuilding the patched kernel never touches it.
// The source is the base tarball extracted as it is, not a checkout of the work tree's
// base tag: the work tree belongs to kernel development (prepare may re-create it, a
// developer may rewrite its history) and the tarball is the definition of the base anyway.
import { cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { capture, runLogged } from '../util/exec.ts';
import { cacheDir } from '../util/paths.ts';
import { fmtDuration } from '../util/progress.ts';
import { checkTarball, readBase } from './base.ts';
import { readSeries, RECIPE_VERSION } from './series.ts';
import { checkConfig, parseFragment } from './config.ts';
import { copyModules, MODULES_DIR } from './build.ts';

export interface UnpatchedArtifacts {
  key: string;
  dir: string;
  release: string;
  bzImage: string;
  /** `size` of vmlinux: text, data, bss (bytes), to set the series' size beside it. */
  size?: { text: number; data: number; bss: number };
}

export const unpatchedPaths = (cache = cacheDir()) => {
  const root = join(cache, 'unpatched');
  return { root, src: join(root, 'linux'), obj: join(root, 'obj'), logs: join(cache, 'logs') };
};

// A release string of its own, so a guest (and every report) can tell the kernels apart.
const LOCALVERSION = '-base';

/** Cache key: the base and the fragment only (the series is not in it, by definition). */
export function unpatchedKey(base: string, baseFound: string, fragment: string): string {
  const h = createHash('sha256').update(`unpatched recipe ${RECIPE_VERSION}\0base ${base}\0found ${baseFound}\0fragment ${fragment}\0`);
  return 'base-' + h.digest('hex').slice(0, 16);
}

/**
 * Kconfig options the series itself adds (`+config NAME` in a Kconfig hunk): the base tree
 * has no such symbol, so olddefconfig drops them there, and the fragment check must let
 * exactly those go.
 */
export function seriesOnlyOptions(patches: { name: string; content: string }[]): string[] {
  const out = new Set<string>();
  for (const p of patches) {
    let inKconfig = false;
    for (const line of p.content.split('\n')) {
      if (line.startsWith('diff --git ')) inKconfig = /\/Kconfig[\w.-]*$/.test(line);
      const m = inKconfig && /^\+\s*(?:menu)?config\s+(\w+)\s*$/.exec(line);
      if (m) out.add(`CONFIG_${m[1]}`);
    }
  }
  return [...out].sort();
}

/** checkConfig, minus the options only the series defines. */
export function checkUnpatchedConfig(fragment: string, dotConfig: string, seriesOnly: string[]): string[] {
  const wanted = parseFragment(fragment).filter((o) => !seriesOnly.includes(o.name));
  return checkConfig(wanted, dotConfig);
}

export function unpatchedArtifactsIn(dir: string): UnpatchedArtifacts | undefined {
  const f = join(dir, 'build.json');
  if (!existsSync(f)) return undefined;
  const meta = JSON.parse(readFileSync(f, 'utf8'));
  return { key: meta.key, dir, release: meta.release, bzImage: join(dir, 'bzImage'), size: meta.size };
}

export function currentUnpatchedKey(repo: string): string {
  const base = readBase(repo);
  const check = checkTarball(base);
  if (!check.found) throw new Error(check.message);
  return unpatchedKey(readFileSync(join(repo, 'kernel-patch', 'BASE'), 'utf8'), check.found,
    readFileSync(join(repo, 'kernel-patch', 'config.fragment'), 'utf8'));
}

/** The cached unpatched build for the repo's base and fragment, if there is one. */
export function findUnpatched(repo: string, cache?: string): UnpatchedArtifacts | undefined {
  return unpatchedArtifactsIn(join(unpatchedPaths(cache).root, currentUnpatchedKey(repo)));
}

export function vmlinuxSize(vmlinux: string): UnpatchedArtifacts['size'] {
  try {
    const line = capture('size', [vmlinux]).trim().split('\n')[1]!.trim().split(/\s+/).map(Number);
    return { text: line[0]!, data: line[1]!, bss: line[2]! };
  } catch { return undefined; }
}

export async function buildUnpatched(repo: string, opts: { force?: boolean; cache?: string; jobs?: number } = {}): Promise<UnpatchedArtifacts> {
  const p = unpatchedPaths(opts.cache);
  const key = currentUnpatchedKey(repo);
  const out = join(p.root, key);
  const cached = unpatchedArtifactsIn(out);
  if (cached && !opts.force) {
    process.stderr.write(`kernel: reusing the unpatched build ${key} (${cached.release})\n`);
    return cached;
  }
  const t0 = Date.now();
  const base = readBase(repo);
  const check = checkTarball(base);
  process.stderr.write(`${check.ok ? '' : 'warning: '}${check.message}\n`);
  const log = join(p.logs, `build-${key}.log`);
  rmSync(log, { force: true });
  mkdirSync(p.root, { recursive: true });

  // Extracting 150 MB of xz takes a minute or two: only when the tarball changed.
  const st = statSync(base.tarball);
  const srcId = `${base.tarball}|${st.size}|${st.mtimeMs}`;
  const srcStamp = join(p.root, 'linux.source');
  if (!existsSync(join(p.src, 'Makefile')) || !existsSync(srcStamp) || readFileSync(srcStamp, 'utf8') !== srcId) {
    rmSync(p.src, { recursive: true, force: true });
    rmSync(p.obj, { recursive: true, force: true });
    const tmp = `${p.src}.new`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    await runLogged('tar', ['-xJf', base.tarball, '-C', tmp, '--strip-components=1'], { log, phase: 'extract the base tarball (unpatched)' });
    renameSync(tmp, p.src);
    writeFileSync(srcStamp, srcId);
  }

  const jobs = String(opts.jobs ?? Math.max(1, cpus().length + 1));
  const env = { ...process.env, KBUILD_BUILD_USER: 'fuse-kfunc', KBUILD_BUILD_HOST: 'workbench', LOCALVERSION };
  const fragmentFile = join(repo, 'kernel-patch', 'config.fragment');
  const fragment = readFileSync(fragmentFile, 'utf8');
  mkdirSync(p.obj, { recursive: true });
  const cfgStamp = join(p.obj, '.fuse-kfunc-fragment');
  const fragHash = createHash('sha256').update(fragment).digest('hex');
  if (!existsSync(join(p.obj, '.config')) || !existsSync(cfgStamp) || readFileSync(cfgStamp, 'utf8') !== fragHash) {
    await runLogged('make', ['-C', p.src, `O=${p.obj}`, 'tinyconfig'], { log, env, phase: 'configure (unpatched): tinyconfig' });
    await runLogged(join(p.src, 'scripts/kconfig/merge_config.sh'), ['-m', '-O', p.obj, join(p.obj, '.config'), fragmentFile],
      { log, env, cwd: p.src, phase: 'configure (unpatched): merge fragment' });
    await runLogged('make', ['-C', p.src, `O=${p.obj}`, 'olddefconfig'], { log, env, phase: 'configure (unpatched): olddefconfig' });
    const seriesOnly = seriesOnlyOptions(readSeries(repo));
    const missing = checkUnpatchedConfig(fragment, readFileSync(join(p.obj, '.config'), 'utf8'), seriesOnly);
    if (missing.length) {
      throw new Error('the unpatched base kernel did not keep options kernel-patch/config.fragment asks for ' +
        `(tolerated, as the series defines them: ${seriesOnly.join(', ') || 'none'}); the fragment needs a ` +
        'dependency that only the series provides, or lists an option the base lacks:\n' + missing.map((m) => `  ${m}`).join('\n'));
    }
    writeFileSync(cfgStamp, fragHash);
  }
  await runLogged('make', ['-C', p.src, `O=${p.obj}`, `-j${jobs}`, 'bzImage', 'modules'], { log, env, phase: 'build the unpatched kernel (bzImage + modules)' });

  const tmp = `${out}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  cpSync(join(p.obj, 'arch/x86/boot/bzImage'), join(tmp, 'bzImage'));
  cpSync(join(p.obj, '.config'), join(tmp, 'config'));
  // FUSE is a module in the fragment: the guest loads this build's own fuse.ko
  copyModules(p.obj, join(tmp, MODULES_DIR));
  const release = readFileSync(join(p.obj, 'include/config/kernel.release'), 'utf8').trim();
  writeFileSync(join(tmp, 'build.json'), JSON.stringify({
    key, release, unpatched: true, builtAt: new Date().toISOString(), seconds: Math.round((Date.now() - t0) / 1000),
    size: vmlinuxSize(join(p.obj, 'vmlinux')), log,
  }, null, 2) + '\n');
  rmSync(out, { recursive: true, force: true });
  renameSync(tmp, out);
  process.stderr.write(`kernel: built the unpatched ${release} as ${key} in ${fmtDuration(Date.now() - t0)}; artifacts in ${out}\n`);
  return unpatchedArtifactsIn(out)!;
}
