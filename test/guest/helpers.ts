// Shared by guest tests: where the host put the fixtures, and a guard that the tests
// really are inside the project VM (running them on the host would test the wrong kernel).
import { existsSync, mkdirSync, readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import type { MountStats } from '../../src/sdk/stats.ts';

export function fixture(name: string): string {
  const dir = process.env.FUSE_KFUNC_FIXTURES;
  if (!dir) throw new Error('FUSE_KFUNC_FIXTURES is not set: run guest tests through `fuse-kfunc test` (they need the VM)');
  return join(dir, name);
}

export function assertInGuest(): void {
  const release = readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
  // -debug: the same patched kernel with KASAN and lockdep (`npm run test:debug-kernel`).
  if (!/-fuse-kfunc(-debug)?$/.test(release)) {
    throw new Error(`guest tests must run in the fuse-kfunc VM, but this kernel is ${release}: use \`npm test\``);
  }
}

/**
 * The kernel build (libbpf, bpftool, vmlinux.h) the SDK compiles and loads against, after
 * checking that this is the VM. Exported back to FUSE_KFUNC_BUILD: the daemon children
 * find libbpf through it.
 */
export function guestBuild(): string {
  assertInGuest();
  const cand = process.env.FUSE_KFUNC_BUILD ?? '/root/.cache/fuse-kfunc/builds/current';
  if (!existsSync(join(cand, 'bpftool'))) throw new Error(`no kernel build at ${cand}: set FUSE_KFUNC_BUILD`);
  const build = realpathSync(cand);
  process.env.FUSE_KFUNC_BUILD = build;
  return build;
}

/** Backing directories b0..b{n-1} and a mountpoint under work/name, created. */
export function mountDirs(work: string, name: string, n: number): { b: string[]; mnt: string } {
  const base = join(work, name);
  const b = Array.from({ length: n }, (_, i) => join(base, `b${i}`));
  const mnt = join(base, 'mnt');
  for (const d of [...b, mnt]) mkdirSync(d, { recursive: true });
  return { b, mnt };
}

/** Opcodes whose daemon count grew between two snapshots of a mount's stats. */
export function daemonGrowth(a: MountStats, b: MountStats): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [op, s] of Object.entries(b)) {
    const d = s.daemon - (a[op]?.daemon ?? 0);
    if (d) out[op] = d;
  }
  return out;
}
