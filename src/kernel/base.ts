// The pinned base kernel: kernel-patch/BASE says which Debian source package the series
// is written against; the tarball on this machine is checked against it.
import { readFileSync, existsSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { capture } from '../util/exec.ts';
import { cacheDir } from '../util/paths.ts';

export interface BaseSpec {
  package: string;
  packageVersion: string;
  kernelVersion: string;
  tarball: string;
}

export function parseBase(text: string): BaseSpec {
  const kv = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq < 0) throw new Error(`kernel-patch/BASE: line "${line}" is not key=value`);
    kv.set(line.slice(0, eq).trim(), line.slice(eq + 1).trim());
  }
  const need = (k: string) => {
    const v = kv.get(k);
    if (!v) throw new Error(`kernel-patch/BASE: missing "${k}="`);
    return v;
  };
  return {
    package: need('package'),
    packageVersion: need('package_version'),
    kernelVersion: need('kernel_version'),
    tarball: need('tarball'),
  };
}

export function readBase(repo: string): BaseSpec {
  const spec = parseBase(readFileSync(join(repo, 'kernel-patch', 'BASE'), 'utf8'));
  if (process.env.FUSE_KFUNC_TARBALL) spec.tarball = process.env.FUSE_KFUNC_TARBALL;
  return spec;
}

/** Kernel version from a top-level Makefile's VERSION/PATCHLEVEL/SUBLEVEL lines. */
export function makefileVersion(makefile: string): string {
  const get = (k: string) => new RegExp(`^${k}[ \\t]*=[ \\t]*(\\S*)`, 'm').exec(makefile)?.[1] ?? '';
  const v = `${get('VERSION')}.${get('PATCHLEVEL')}.${get('SUBLEVEL')}`;
  const extra = get('EXTRAVERSION');
  if (!/^\d+\.\d+\.\d+$/.test(v)) throw new Error('not a kernel Makefile (no VERSION/PATCHLEVEL/SUBLEVEL)');
  return v + extra;
}

export interface BaseCheck {
  ok: boolean;
  found?: string;
  message: string;
}

/** Compare the tarball's kernel version with BASE; a mismatch is a warning, not a stop. */
export function checkTarball(spec: BaseSpec): BaseCheck {
  if (!existsSync(spec.tarball)) {
    return {
      ok: false,
      message: `${spec.tarball} is missing: install it with \`apt-get install ${spec.package}\` ` +
        '(or point FUSE_KFUNC_TARBALL at a linux-source tarball)',
    };
  }
  const found = tarballVersion(spec.tarball);
  if (found !== spec.kernelVersion) {
    return {
      ok: false, found,
      message: `${spec.tarball} holds Linux ${found}, but the series was written against ` +
        `${spec.kernelVersion} (kernel-patch/BASE). Trying anyway: fs/fuse rarely changes within 6.12.y; ` +
        'if `git am` fails, rebase the series in the work tree and export it.',
    };
  }
  return { ok: true, found, message: `base Linux ${found} (${spec.package} ${spec.packageVersion})` };
}

/**
 * The kernel version inside a tarball. Reading it means decompressing 150 MB of xz, so
 * the answer is remembered per (path, size, mtime) in the cache.
 */
export function tarballVersion(tarball: string): string {
  const st = statSync(tarball);
  const id = `${tarball}|${st.size}|${st.mtimeMs}`;
  const memo = join(cacheDir(), 'tarball-version.json');
  let known: Record<string, string> = {};
  try { known = JSON.parse(readFileSync(memo, 'utf8')); } catch { /* not remembered yet */ }
  if (known[id]) return known[id];
  const top = capture('sh', ['-c', `tar -tJf '${tarball}' | head -1`]).trim().replace(/\/.*$/, '');
  const version = makefileVersion(capture('tar', ['-xJOf', tarball, `${top}/Makefile`]));
  try {
    mkdirSync(cacheDir(), { recursive: true });
    writeFileSync(memo, JSON.stringify({ ...known, [id]: version }, null, 1) + '\n');
  } catch { /* read-only cache: just slower next time */ }
  return version;
}
