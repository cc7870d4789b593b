// `fuse-kfunc policy test FILE`: the seeded differential workload of the policy tests for any
// policy module. The same operations (create, writes at random unaligned offsets across
// piece boundaries and past the end, buffered and O_DIRECT reads, truncate, rename, unlink,
// mkdir, readdir, stat, every file read back) run on a mount with the module's program and
// on the daemon alone, which runs the same functions: both must agree with an in-memory
// model, with each other operation by operation, and leave the same files in every backing
// directory; the program must serve READ and WRITE in the kernel. Needs root and the patched
// kernel (the CLI boots the VM for it when this kernel is not one).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mount } from '../sdk/mount.ts';
import { runWorkload, treeDigest, type WorkloadResult } from '../testing/workload.ts';

export interface DiffOptions {
  backings: number;
  params: Record<string, string | number | undefined>;
  seed: number;
  ops: number;
  /** The size offsets and lengths are drawn around (default 4096). */
  unit: number;
  /** Name endings the workload draws from besides none (['.log']: some files end in .log). */
  exts?: string[];
  buildDir?: string;
}

export interface DiffSide {
  res: WorkloadResult;
  layout: string[][];
  kernel: { READ: number; WRITE: number };
  daemon: { READ: number; WRITE: number };
}

export interface DiffReport {
  ok: boolean;
  /** What differed, one line each (empty when ok). */
  failures: string[];
  bpf: DiffSide;
  user: DiffSide;
}

async function side(file: string, o: DiffOptions, userspace: boolean, work: string): Promise<DiffSide> {
  const base = join(work, userspace ? 'userspace' : 'bpf');
  const backings = Array.from({ length: o.backings }, (_, i) => join(base, `b${i}`));
  const mnt = join(base, 'mnt');
  for (const d of [...backings, mnt]) mkdirSync(d, { recursive: true });
  const h = await mount({ backings, mountpoint: mnt, policy: file, params: o.params as Record<string, string | number>, userspace, buildDir: o.buildDir, timeout: 0 });
  let res: WorkloadResult;
  try {
    res = runWorkload(mnt, { seed: o.seed, ops: o.ops, unit: o.unit, direct: true, exts: o.exts?.length ? ['', ...o.exts] : undefined, flush: () => writeFileSync('/proc/sys/vm/drop_caches', '3') });
  } catch (e) {
    await h.close();
    throw e;
  }
  const s = (await h.close())!;
  const n = (op: string, k: 'kernel' | 'daemon') => s[op]?.[k] ?? 0;
  return {
    res,
    layout: backings.map((b) => treeDigest(b)),
    kernel: { READ: n('READ', 'kernel'), WRITE: n('WRITE', 'kernel') },
    daemon: { READ: n('READ', 'daemon'), WRITE: n('WRITE', 'daemon') },
  };
}

export async function differentialTest(file: string, o: DiffOptions): Promise<DiffReport> {
  if (process.getuid?.() !== 0) throw new Error('policy test mounts: run it as root');
  const work = mkdtempSync('/tmp/fuse-kfunc-policy-test-');
  try {
    const bpf = await side(file, o, false, work);
    const user = await side(file, o, true, work);
    const failures: string[] = [];
    const first = (m: string[]) => `${m.length} disagreement(s) with the model, first: ${m[0]}`;
    if (bpf.res.mismatches.length) failures.push(`program: ${first(bpf.res.mismatches)}`);
    if (user.res.mismatches.length) failures.push(`daemon alone: ${first(user.res.mismatches)}`);
    const at = bpf.res.log.findIndex((l, i) => l !== user.res.log[i]);
    if (at >= 0 || bpf.res.log.length !== user.res.log.length) {
      const i = at >= 0 ? at : Math.min(bpf.res.log.length, user.res.log.length);
      failures.push(`operation ${i + 1} differs: program "${bpf.res.log[i] ?? '(none)'}", daemon "${user.res.log[i] ?? '(none)'}"`);
    }
    bpf.layout.forEach((l, i) => {
      if (JSON.stringify(l) !== JSON.stringify(user.layout[i])) failures.push(`backing ${i} holds different files after the two runs`);
    });
    if (!bpf.kernel.READ || !bpf.kernel.WRITE) failures.push(`the program served READ ${bpf.kernel.READ} and WRITE ${bpf.kernel.WRITE} times: it should serve both`);
    if (bpf.daemon.READ || bpf.daemon.WRITE) failures.push(`READ ${bpf.daemon.READ} and WRITE ${bpf.daemon.WRITE} reached the daemon on the program's mount`);
    return { ok: failures.length === 0, failures, bpf, user };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

export function formatDiff(file: string, o: DiffOptions, r: DiffReport): string {
  const c = r.bpf.res.counts;
  return [
    `policy test ${file}: ${o.backings} backings, ${JSON.stringify(o.params)}, seed ${o.seed}, ${o.ops} operations`,
    `  operations: ${Object.entries(c).map(([k, v]) => `${k} ${v}`).join(', ')}; ${r.bpf.res.bytesWritten} B written, ${r.bpf.res.bytesRead} B read`,
    `  program: READ ${r.bpf.kernel.READ} in the kernel / ${r.bpf.daemon.READ} in the daemon, WRITE ${r.bpf.kernel.WRITE} / ${r.bpf.daemon.WRITE}`,
    ...(r.ok ? ['  the program and the daemon alone agree with the model, with each other, and on every backing directory', 'policy test: ok']
      : [...r.failures.map((f) => `  FAIL ${f}`), 'policy test: FAILED']),
  ].join('\n') + '\n';
}
