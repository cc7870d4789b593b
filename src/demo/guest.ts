// `fuse-kfunc demo --in-guest`: the mirror policy end to end inside the VM. Mounts two
// replicas with mount() and the mirror policy (its module compiled to BPF against the
// booted kernel and attached; its daemon keeps the names in step), runs the workload, checks that the mount and
// both replicas equal a reference directory, prints what was served where, detaches,
// shows the daemon taking over with the same semantics, and unmounts.
import { existsSync, mkdtempSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { vmlinuxHeader } from '../policy/compile.ts';
import { makePolicy } from '../policy/spec.ts';
import { mount, MountError, preparePolicy, type MountHandle } from '../sdk/mount.ts';
import type { MountStats, PerBacking } from '../sdk/stats.ts';
import { keyLogLines } from '../bpf/errors.ts';
import { fmtDuration } from '../util/progress.ts';
import { makeSources, runWorkload, sh, READ_SCRIPT } from './workload.ts';
import { diffTrees } from './verify.ts';
import { opcodeTable, replicaTable } from './report.ts';

const out = (s = '') => process.stdout.write(`${s}\n`);

interface DemoStats {
  ops: MountStats;
  backings: PerBacking;
}

async function demoStats(m: MountHandle): Promise<DemoStats> {
  return { ops: await m.stats(), backings: (await m.backings())! };
}

/** A slow step (TCG): one line before, one after; no live status line on the serial console. */
async function step<T>(what: string, f: () => Promise<T> | T): Promise<T> {
  const t0 = Date.now();
  process.stderr.write(`==> ${what}\n`);
  const r = await f();
  process.stderr.write(`    done in ${fmtDuration(Date.now() - t0)}\n`);
  return r;
}

/** Fails early, and clearly, on a kernel without the series' hook. */
function checkKernel(buildDir: string, work: string): void {
  const h = vmlinuxHeader(buildDir, work);
  if (!/^struct fuse_bpf_ops \{/m.test(readFileSync(h, 'utf8'))) {
    throw new Error('the running kernel has no struct fuse_bpf_ops (BTF of /sys/kernel/btf/vmlinux): boot a kernel ' +
      'built with the fuse-kfunc series (`fuse-kfunc demo --kernel PATH/bzImage`)');
  }
}

function checkTrees(ref: string, dirs: string[]): string[] {
  return dirs.flatMap((d, i) => diffTrees(ref, d).map((l) => `replica ${i}: ${l}`));
}

export async function demoInGuest(repo: string): Promise<number> {
  const buildDir = process.env.FUSE_KFUNC_BUILD;
  if (!buildDir) throw new Error('FUSE_KFUNC_BUILD is not set: run `fuse-kfunc demo` on the host, it boots the VM');
  if (!existsSync('/dev/fuse')) throw new Error('/dev/fuse is missing in this guest');
  const work = mkdtempSync('/tmp/fuse-kfunc-demo-');
  const dirs = { src: join(work, 'src'), ref: join(work, 'reference'), mnt: join(work, 'mnt') };
  const replicas = [join(work, 'replica0'), join(work, 'replica1')];
  for (const d of [dirs.ref, dirs.mnt, ...replicas]) mkdirSync(d);
  const build = join(work, 'build');
  mkdirSync(build);

  out(`mirror demo: ${replicas.length} replicas under ${work}, mounted at ${dirs.mnt}`);
  checkKernel(buildDir, build);
  const policy = makePolicy('mirror', { read: 'round-robin' }, replicas.length);
  const prog = await step('compile the mirror policy (src/policy/builtin/mirror.ts -> BPF C -> clang-19)', () => preparePolicy(policy, buildDir));
  out(`    C: ${prog.source}`);

  let m: MountHandle;
  try {
    m = await step('mount, load the program (verifier), attach it to the connection', () =>
      mount({ backings: replicas, mountpoint: dirs.mnt, policy, buildDir }));
  } catch (e) {
    if (e instanceof MountError && e.log) {
      throw new Error(`${e.message}\nverifier log (last lines):\n  ${keyLogLines(e.log, 20).join('\n  ')}`);
    }
    throw e;
  }

  let failures: string[] = [];
  try {
    makeSources(dirs.src);
    await step('reference run on tmpfs', () => runWorkload(dirs.ref, dirs.src));
    const ref = await sh(READ_SCRIPT, { D: dirs.ref });
    const w = await step('workload on the mount (BPF attached)', () => runWorkload(dirs.mnt, dirs.src, (s) => out(`    ${s}`)));
    if (w.sums !== ref) failures.push(`sha256 through the mount differs from the reference:\n${w.sums}\nvs\n${ref}`);
    failures.push(...checkTrees(dirs.ref, replicas));
    const s = await demoStats(m);

    out('');
    out(w.listing.trim().split('\n').filter(Boolean).map((l) => `  ${l}`).join('\n'));
    out('');
    out('Requests by opcode (BPF program attached):');
    out(opcodeTable(s.ops));
    out('');
    out('Replica I/O (READ round-robin with failover, WRITE to every replica):');
    out(replicaTable(s.backings, replicas));
    out('');
    const served = (x: DemoStats, op: string) => x.ops[op]?.kernel ?? 0;
    const daemon = (x: DemoStats, op: string) => x.ops[op]?.daemon ?? 0;
    out(`kernel served ${served(s, 'READ')} READ and ${served(s, 'WRITE')} WRITE; the daemon saw ${daemon(s, 'READ')} READ and ` +
      `${daemon(s, 'WRITE')} WRITE.`);
    out(`replicas vs reference: ${failures.length ? `${failures.length} difference(s)` : 'identical (layout and bytes)'}`);

    // A replica the program cannot use: its reads fail over to the other one.
    await step('fault injection: replica 0 unusable for files opened from now on; read everything again', async () => {
      await m.fault(0);
      if ((await sh(READ_SCRIPT, { D: dirs.mnt })) !== ref) failures.push('with replica 0 failing: sha256 through the mount differs');
    });
    const sf = await demoStats(m);
    const rep = (x: DemoStats, i: number) => x.backings.kernel![i]!;
    out(`failover: ${rep(sf, 0).errors - rep(s, 0).errors} reads failed on replica 0 and were served by replica 1 ` +
      `(replica 1: +${rep(sf, 1).reads - rep(s, 1).reads} reads, replica 0: +${rep(sf, 0).reads - rep(s, 0).reads}); ` +
      `the daemon saw ${daemon(sf, 'READ') - daemon(s, 'READ')} READ`);

    // Detached, the same daemon serves READ/WRITE itself, with the same semantics.
    await step('detach the program; write and read again through the daemon', async () => {
      await m.detach();
      const env = { D: dirs.mnt, S: dirs.src };
      await sh('cp "$S/medium.bin" "$D/after-detach.bin"', env);
      await sh('cp "$S/medium.bin" "$D/after-detach.bin"', { D: dirs.ref, S: dirs.src });
      const again = await sh(READ_SCRIPT, env);
      const refAgain = await sh(READ_SCRIPT, { D: dirs.ref });
      if (again !== refAgain) failures.push('after detach: sha256 through the mount differs from the reference');
    });
    failures.push(...checkTrees(dirs.ref, replicas).map((l) => `after detach: ${l}`));
    const s2 = await demoStats(m);
    const d = (op: string) => daemon(s2, op) - daemon(sf, op);
    out(`after detach: the daemon served ${d('READ')} READ and ${d('WRITE')} WRITE ` +
      `(replica 0: ${s2.backings.daemon[0]!.reads} reads, replica 1: ${s2.backings.daemon[1]!.reads} reads; ` +
      `${s2.backings.daemon.map((x) => x.writes).join('/')} writes); the program served ${served(s2, 'READ') - served(sf, 'READ')} more READ`);
  } finally {
    await step('unmount', () => m.close());
  }

  out('');
  if (failures.length) {
    out(`FAILED: ${failures.length} problem(s):`);
    for (const f of failures) out(`  ${f}`);
    return 1;
  }
  out('OK: the mount and every replica hold the reference bytes, before and after detaching.');
  return 0;
}
