// The configurations a benchmark run compares, each set up on its own tmpfs-backed
// directories in the guest: the backing directory itself (the limit), the daemons, upstream
// passthrough, and this design's programs.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { mount, mountPoints, type MountHandle } from '../sdk/mount.ts';
import { makePolicy } from '../policy/spec.ts';
import type { MountStats } from '../sdk/stats.ts';
import { umount2Async, MNT_DETACH } from '../fuse/libc.ts';

export interface Config {
  name: string;
  /** What it is, for the report. */
  label: string;
  backings: number;
  /** A BPF program serves requests (its counters are the kernel column). */
  program?: boolean;
}

export const CONFIGS: Config[] = [
  { name: 'native', label: 'the backing tmpfs directly (the limit)', backings: 1 },
  { name: 'userspace', label: 'TypeScript daemon, every request in userspace', backings: 1 },
  { name: 'libfuse-c', label: 'C libfuse3 high-level passthrough daemon (test/guest/fixtures/passthrough_fuse.c)', backings: 1 },
  { name: 'passthrough', label: 'upstream FUSE passthrough (FOPEN_PASSTHROUGH, backing ids)', backings: 1 },
  { name: 'bpf', label: 'this design: bpf/examples/passthrough.bpf.c (READ/WRITE/GETATTR in BPF)', backings: 1, program: true },
  { name: 'tree', label: 'this design: bpf/examples/tree.bpf.c (names, attributes and data all in BPF: no daemon after INIT)', backings: 1, program: true },
  { name: 'tree-pt', label: 'tree.bpf.c with passthrough: the program passes open files through to their backing files (bpf_fuse_backing_open, FOPEN_PASSTHROUGH)', backings: 1, program: true },
  { name: 'tree-cached', label: 'tree-pt with the 1 s entry/attribute timeouts the program puts in its replies', backings: 1, program: true },
  { name: 'filter', label: 'the filter policy: fuse-bpf\'s pre/post-filter pipeline on this hook', backings: 1, program: true },
  { name: 'stripe2', label: 'stripe policy, 64 KiB chunks over 2 backings', backings: 2, program: true },
  { name: 'mirror2', label: 'mirror policy over 2 replicas, round-robin reads', backings: 2, program: true },
  { name: 'stripe2-names', label: 'stripe2 with names in the kernel too (names: \'kernel\'): no daemon after INIT', backings: 2, program: true },
  { name: 'mirror2-names', label: 'mirror2 with names in the kernel too (names: \'kernel\'): no daemon after INIT', backings: 2, program: true },
];

/** A mounted configuration: where to run the workload, and how to count requests. */
export interface Mounted {
  dir: string;
  backings: string[];
  /** Daemon and kernel request counts so far (undefined where nothing counts them). */
  stats(): Promise<MountStats | undefined>;
  close(): Promise<void>;
}

export interface SetupContext {
  repo: string;
  buildDir: string;
  fixtures: string;
  work: string;
}

async function libfuseC(ctx: SetupContext, backing: string, mnt: string): Promise<Mounted> {
  // Single-threaded (-s) like the TypeScript daemon's server thread; zero cache timeouts;
  // the mount options every mount() has (default_permissions, allow_other), so that both
  // daemons receive the same requests: without default_permissions the kernel checks
  // permissions on cached modes and sends no GETATTR per path component (on untar + grep:
  // 12,520 requests instead of 18,495; docs/benchmarks.md).
  const child: ChildProcess = spawn(join(ctx.fixtures, 'passthrough_fuse'), [backing, mnt, '-f', '-s', '-o', 'default_permissions,allow_other'], {
    stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, PT_TIMEOUT: '0' },
  });
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const deadline = Date.now() + 30_000;
  while (!mountPoints().has(mnt)) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`passthrough_fuse did not mount ${mnt}: ${err.trim() || `exit ${child.exitCode}`}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    dir: mnt, backings: [backing], stats: async () => undefined,
    close: async () => {
      await umount2Async(mnt, MNT_DETACH);
      if (child.exitCode === null) await new Promise((r) => child.on('exit', r));
    },
  };
}

export async function setup(c: Config, ctx: SetupContext): Promise<Mounted> {
  const base = join(ctx.work, c.name);
  const backings = Array.from({ length: c.backings }, (_, i) => join(base, `b${i}`));
  const mnt = join(base, 'mnt');
  for (const d of [...backings, mnt]) mkdirSync(d, { recursive: true });
  if (c.name === 'native') return { dir: backings[0]!, backings, stats: async () => undefined, close: async () => {} };
  if (c.name === 'libfuse-c') return libfuseC(ctx, backings[0]!, mnt);
  const common = { backings, mountpoint: mnt, buildDir: ctx.buildDir, timeout: 0 };
  let h: MountHandle;
  switch (c.name) {
    case 'userspace': h = await mount({ ...common, userspace: true }); break;
    case 'passthrough': h = await mount({ ...common, passthrough: true }); break;
    case 'bpf': h = await mount({ ...common, program: join(ctx.repo, 'bpf/examples/passthrough.bpf.c') }); break;
    case 'tree': h = await mount({ ...common, program: join(ctx.repo, 'bpf/examples/tree.bpf.c') }); break;
    case 'tree-pt': h = await mount({ ...common, program: join(ctx.repo, 'bpf/examples/tree.bpf.c'), globals: { passthrough: 1 } }); break;
    case 'tree-cached': h = await mount({ ...common, timeout: 1, program: join(ctx.repo, 'bpf/examples/tree.bpf.c'), globals: { passthrough: 1 } }); break;
    case 'filter': h = await mount({ ...common, policy: makePolicy('filter', {}, 1) }); break;
    case 'stripe2': h = await mount({ ...common, policy: makePolicy('stripe', { chunk: '64k' }, 2) }); break;
    case 'mirror2': h = await mount({ ...common, policy: makePolicy('mirror', {}, 2) }); break;
    case 'stripe2-names': h = await mount({ ...common, policy: makePolicy('stripe', { chunk: '64k' }, 2), names: 'kernel' }); break;
    case 'mirror2-names': h = await mount({ ...common, policy: makePolicy('mirror', {}, 2), names: 'kernel' }); break;
    default: throw new Error(`unknown configuration ${c.name}`);
  }
  return { dir: mnt, backings, stats: () => h.stats(), close: async () => void (await h.close()) };
}
