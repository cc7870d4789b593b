// Build a BPF C program against the running kernel: vmlinux.h from /sys/kernel/btf/vmlinux
// (bpftool of the kernel build), libbpf's headers of the same build, bpf/include. clang's
// diagnostics are kept as file:line messages in the error.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

export interface CompileOptions {
  source: string;
  outDir: string;
  /** Kernel build dir with bpftool and libbpf/include (FUSE_KFUNC_BUILD in the guest). */
  buildDir: string;
  repo: string;
  clang?: string;
  btf?: string;
}

export class CompileError extends Error {
  constructor(readonly source: string, readonly diagnostics: string[], detail: string) {
    super(`${source} does not compile:\n${diagnostics.length ? diagnostics.join('\n') : detail}`);
    this.name = 'CompileError';
  }
}

/** `file:line:col: error: ...` lines, plus their notes; clang's caret lines dropped. */
export function clangDiagnostics(stderr: string): string[] {
  return stderr.split('\n').filter((l) => /^[^\s:]+:\d+:\d+: (error|warning|note|fatal error):/.test(l));
}

/**
 * bpftool's arguments dumping vmlinux.h from @base's BTF (vmlinux, or /sys/kernel/btf/vmlinux)
 * and, when FUSE is a module, @fuse's split BTF on top of it (fuse.ko or /sys/kernel/btf/fuse):
 * struct fuse_args, fuse_bpf_ops and the FUSE wire structs live there then.
 */
export function vmlinuxDumpArgs(base: string, fuse: string): string[] {
  return existsSync(fuse) ? ['-B', base, 'btf', 'dump', 'file', fuse, 'format', 'c'] : ['btf', 'dump', 'file', base, 'format', 'c'];
}

/**
 * vmlinux.h of the kernel build (written by the build), else dumped from the running kernel's
 * BTF: with FUSE a module, fuse's split BTF on top of vmlinux's (its types live there).
 */
export function vmlinuxHeader(buildDir: string, outDir: string, btf = '/sys/kernel/btf/vmlinux'): string {
  const out = join(outDir, 'vmlinux.h');
  if (existsSync(out)) return out;
  if (existsSync(join(buildDir, 'vmlinux.h'))) {
    copyFileSync(join(buildDir, 'vmlinux.h'), out);
    return out;
  }
  if (!existsSync(btf)) throw new Error(`${btf} is missing: the kernel was built without CONFIG_DEBUG_INFO_BTF`);
  const bpftool = join(buildDir, 'bpftool');
  const r = spawnSync(bpftool, vmlinuxDumpArgs(btf, join(dirname(btf), 'fuse')), { maxBuffer: 256 << 20 });
  if (r.status !== 0) throw new Error(`${bpftool} btf dump ${btf} failed: ${r.error?.message ?? r.stderr.toString().trim()}`);
  writeFileSync(out, r.stdout);
  return out;
}

/**
 * The kfunc declarations live in one place, the kernel's selftest header, which `kernel build`
 * installs beside libbpf's headers: without it no program builds for that kernel.
 */
export const KFUNCS_HEADER = 'fuse_bpf_kfuncs.h';

export function checkKfuncsHeader(buildDir: string): void {
  if (!existsSync(join(buildDir, 'libbpf', 'include', KFUNCS_HEADER))) {
    throw new Error(`${buildDir} has no libbpf/include/${KFUNCS_HEADER}, the kfunc declarations of its kernel ` +
      '(a build made before builds installed them, or a directory that is no build): run `fuse-kfunc kernel build`');
  }
}

/** Compiles `source` to `outDir/<name>.o` and returns its path. */
export function compileBpf(o: CompileOptions): string {
  checkKfuncsHeader(o.buildDir);
  mkdirSync(o.outDir, { recursive: true });
  vmlinuxHeader(o.buildDir, o.outDir, o.btf);
  const name = o.source.replace(/^.*\//, '').replace(/\.c$/, '');
  const out = join(o.outDir, `${name}.o`);
  const clang = o.clang ?? 'clang-19';
  const args = [
    '-O2', '-g', '--target=bpf', '-D__TARGET_ARCH_x86', '-Wall', '-Werror',
    '-I', o.outDir, '-I', join(o.buildDir, 'libbpf', 'include'), '-I', join(o.repo, 'bpf', 'include'), '-I', join(o.repo, 'bpf', 'runtime'),
    '-c', o.source, '-o', out,
  ];
  const r = spawnSync(clang, args, { encoding: 'utf8' });
  if (r.error) throw new Error(`cannot run ${clang} (${r.error.message}): apt-get install clang-19`);
  if (r.status !== 0) throw new CompileError(o.source, clangDiagnostics(r.stderr), r.stderr.trim());
  return out;
}
