// `fuse-kfunc demo`: on the host, builds or reuses the patched kernel and reruns itself in
// the VM (`demo --in-guest`, src/demo/guest.ts), where the mirror policy runs end to end.
import { dirname, join } from 'node:path';
import { build, currentArtifacts, type Artifacts } from '../kernel/build.ts';
import { runVm } from '../vm/qemu.ts';
import { chooseAccel } from '../vm/accel.ts';
import { demoInGuest } from './guest.ts';

export const DEMO_HELP = `Usage: fuse-kfunc demo [--kernel PATH] [--timeout SEC] [--accel tcg|kvm]

The mirror policy end to end: builds (or reuses) the patched kernel, boots it, and in the
guest mounts two replica directories with the mirror policy (src/policy/builtin/mirror.ts,
compiled to BPF with clang-19 and attached; its daemon half in TypeScript), writes and reads files
(4 KiB to 3 MiB) with shell tools, checks that the mount and both replicas hold the same
bytes as a reference directory, prints per opcode what the kernel served and what went to
the daemon and per replica the reads and writes, detaches (the daemon takes over with the
same semantics) and unmounts. Exits non-zero if anything differs.

Options:
  --kernel PATH   boot this bzImage instead of the project's build (libbpf and bpftool
                  still come from the project's build)
  --timeout SEC   stop the guest after SEC seconds (default 900)
  --accel tcg|kvm override the KVM probe`;

export interface DemoOptions {
  repo: string;
  inGuest: boolean;
  kernel?: string;
  timeoutSec?: number;
  accel?: 'tcg' | 'kvm';
}

export async function demo(o: DemoOptions): Promise<number> {
  if (o.inGuest) return demoInGuest(o.repo);
  let a: Artifacts;
  let kernel: string;
  if (o.kernel) {
    // Another kernel (e.g. a series being developed elsewhere): the BPF toolchain (libbpf,
    // bpftool, headers) is the same tree's, so the project's build serves for it.
    a = currentArtifacts() ?? await build(o.repo);
    kernel = o.kernel;
  } else {
    a = await build(o.repo);
    kernel = a.bzImage;
  }
  const accel = o.accel ?? await chooseAccel(kernel, o.repo, o.kernel ? dirname(o.kernel) : a.dir);
  process.stderr.write(`==> booting ${kernel} (${accel === 'kvm' ? 'KVM' : 'TCG, about 2 minutes'}) and running the demo in the guest\n`);
  const r = await runVm({
    kernel, repo: o.repo, accel, cwd: o.repo, timeoutSec: o.timeoutSec,
    command: [process.execPath, join(o.repo, 'bin', 'fuse-kfunc.js'), 'demo', '--in-guest'],
    env: { FUSE_KFUNC_BUILD: a.dir },
  });
  if (r.failure) process.stderr.write(`fuse-kfunc demo: ${r.message}\n`);
  return r.exitCode;
}
