// The built-in policies, differentially: the same seeded workload (create, writes at random
// unaligned offsets across chunk boundaries and past the end, buffered and O_DIRECT reads,
// truncate up and down, rename, unlink, mkdir, readdir, stat) runs on a mount with the
// generated program attached and on the daemon-only mount (the userspace reference). Both
// must agree with the in-memory model, with each other line by line, and leave the same
// files in every backing directory; the BPF run must serve every READ and WRITE in the
// kernel. Needs the patched kernel (the VM under npm test).
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { mount, type MountHandle } from '../../src/sdk/mount.ts';
import { makePolicy, type PolicySpec } from '../../src/policy/spec.ts';
import { runWorkload, treeDigest, type WorkloadResult } from '../../src/testing/workload.ts';
import type { MountStats } from '../../src/sdk/stats.ts';
import { guestBuild } from './helpers.ts';

let work = '';
let build = '';
const handles: MountHandle[] = [];
const dropCaches = () => fs.writeFileSync('/proc/sys/vm/drop_caches', '3');

test.before(() => {
  if (process.getuid?.() !== 0) throw new Error('policy tests need root');
  build = guestBuild();
  work = fs.mkdtempSync('/tmp/policies-');
});

test.after.always(async () => {
  for (const h of handles) await h.close().catch(() => undefined);
});

interface Run {
  res: WorkloadResult;
  stats: MountStats;
  layout: string[][];
}

async function runOn(name: string, spec: PolicySpec, unit: number, userspace: boolean, seed: number, ops: number): Promise<Run> {
  const base = path.join(work, name);
  const backings = Array.from({ length: spec.backings }, (_, i) => path.join(base, `b${i}`));
  const mnt = path.join(base, 'mnt');
  for (const d of [...backings, mnt]) fs.mkdirSync(d, { recursive: true });
  const h = await mount({ backings, mountpoint: mnt, policy: spec, userspace, buildDir: build, timeout: 0 });
  handles.push(h);
  let res: WorkloadResult;
  try {
    res = runWorkload(mnt, { seed, ops, unit, direct: true, flush: dropCaches });
  } catch (e) {
    await h.close();
    throw e;
  }
  const stats = (await h.close())!;
  return { res, stats, layout: backings.map((b) => treeDigest(b)) };
}

// unit: the size offsets and lengths are drawn around (a stripe's chunk).
const cases: { spec: PolicySpec; unit: number; seeds: number[]; ops: number }[] = [
  { spec: makePolicy('stripe', { chunk: '4k' }, 2), unit: 4096, seeds: [1, 2], ops: 90 },
  { spec: makePolicy('stripe', { chunk: '16k' }, 3), unit: 16384, seeds: [3], ops: 90 },
  { spec: makePolicy('mirror', {}, 2), unit: 16384, seeds: [4], ops: 90 },
  { spec: makePolicy('mirror', { read: 'primary' }, 3), unit: 4096, seeds: [5], ops: 60 },
  { spec: makePolicy('filter', {}, 1), unit: 16384, seeds: [6], ops: 90 },
];

for (const { spec, unit, seeds, ops } of cases) {
  for (const seed of seeds) {
    const params = spec.policy === 'stripe' ? `chunk=${spec.chunk}` : spec.policy === 'mirror' ? `read=${spec.read}` : `deny=${spec.deny.join(',') || 'none'}`;
    const title = `${spec.policy} ${params} backings=${spec.backings} seed=${seed}`;
    test.serial(`${title}: BPF and userspace agree with the model, each other and on the backing layout`, async (t) => {
      const tag = `${spec.policy}-${params}-${spec.backings}-${seed}`;
      const bpf = await runOn(`bpf-${tag}`, spec, unit, false, seed, ops);
      const user = await runOn(`user-${tag}`, spec, unit, true, seed, ops);
      t.log(`ops ${JSON.stringify(bpf.res.counts)}; ${bpf.res.bytesWritten} B written, ${bpf.res.bytesRead} B read`);
      t.deepEqual(bpf.res.mismatches, [], 'BPF mount agrees with the model');
      t.deepEqual(user.res.mismatches, [], 'userspace reference agrees with the model');
      t.deepEqual(bpf.res.log, user.res.log, 'same results, operation by operation');
      for (let i = 0; i < spec.backings; i++) t.deepEqual(bpf.layout[i], user.layout[i], `backing ${i}: same pieces`);
      // Every backing holds data; a mirror's replicas hold the same files.
      for (let i = 0; i < spec.backings; i++) t.true(bpf.layout[i]!.some((l) => / [1-9]\d* /.test(l)), `backing ${i} has non-empty files`);
      if (spec.policy === 'mirror') for (let i = 1; i < spec.backings; i++) t.deepEqual(bpf.layout[i], bpf.layout[0], `replica ${i} = replica 0`);
      const k = (op: string) => bpf.stats[op]?.kernel ?? 0;
      const d = (op: string) => bpf.stats[op]?.daemon ?? 0;
      t.log(`BPF run: READ ${k('READ')} kernel / ${d('READ')} daemon, WRITE ${k('WRITE')} / ${d('WRITE')}, GETATTR ${k('GETATTR')} / ${d('GETATTR')}`);
      t.true(k('READ') > 0 && k('WRITE') > 0, 'the program served READ and WRITE');
      t.is(d('READ'), 0, 'no READ reached the daemon');
      t.is(d('WRITE'), 0, 'no WRITE reached the daemon');
      t.true((user.stats.READ?.daemon ?? 0) > 0 && (user.stats.READ?.kernel ?? 0) === 0, 'the reference served READ in userspace');
    });
  }
}

test.serial('filter --deny write,fallocate: refused with EPERM by the program and by the reference; reads pass', async (t) => {
  const spec = makePolicy('filter', { deny: 'write,fallocate' }, 1);
  for (const userspace of [false, true]) {
    const base = path.join(work, `deny-${userspace}`);
    const [b, mnt] = [path.join(base, 'b'), path.join(base, 'mnt')];
    fs.mkdirSync(b, { recursive: true });
    fs.mkdirSync(mnt, { recursive: true });
    fs.writeFileSync(path.join(b, 'f'), 'original');
    const h = await mount({ backings: [b], mountpoint: mnt, policy: spec, userspace, buildDir: build, timeout: 0 });
    handles.push(h);
    t.is(h.mode, userspace ? 'userspace+filter' : 'program+filter');
    t.is(fs.readFileSync(path.join(mnt, 'f'), 'utf8'), 'original');
    const fd = fs.openSync(path.join(mnt, 'f'), 'r+');
    t.throws(() => fs.writeSync(fd, 'changed', 0), { code: 'EPERM' }, `${h.mode}: write refused`);
    fs.closeSync(fd);
    t.is(fs.readFileSync(path.join(b, 'f'), 'utf8'), 'original', 'backing file untouched');
    const s = (await h.close())!;
    if (!userspace) {
      t.true((s.WRITE?.kernel ?? 0) > 0, 'the program answered the WRITE (with EPERM)');
      t.is(s.WRITE?.daemon ?? 0, 0);
      t.true((s.READ?.kernel ?? 0) > 0);
    } else t.true((s.WRITE?.daemon ?? 0) > 0);
  }
});

test.serial('CLI: mount --policy stripe --chunk 64k, pieces in both backings, kernel-served WRITE in stats', async (t) => {
  const { spawn, spawnSync } = await import('node:child_process');
  const REPO = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
  const cli = path.join(REPO, 'bin/fuse-kfunc.js');
  const base = path.join(work, 'cli');
  const [b0, b1, mnt] = ['b0', 'b1', 'mnt'].map((d) => path.join(base, d));
  for (const d of [b0, b1, mnt]) fs.mkdirSync(d!, { recursive: true });
  const bad = spawnSync(process.execPath, [cli, 'mount', b0!, b1!, mnt!, '--policy', 'stripe', '--chunk', '1000'], { encoding: 'utf8' });
  t.is(bad.status, 1);
  t.regex(bad.stderr, /--chunk 1000 is not a multiple of 4096/);
  const p = spawn(process.execPath, [cli, 'mount', b0!, b1!, mnt!, '--policy', 'stripe', '--chunk', '64k'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  p.stdout.on('data', (x) => (out += x));
  p.stderr.on('data', (x) => (out += x));
  const deadline = Date.now() + 240_000;
  while (!/stats: fuse-kfunc stats/.test(out) && Date.now() < deadline && p.exitCode === null) await new Promise((r) => setTimeout(r, 200));
  t.regex(out, /\(program\+stripe/, out);
  const data = Buffer.alloc(200_000, 7);
  fs.writeFileSync(path.join(mnt!, 'f'), data);
  t.deepEqual(fs.readFileSync(path.join(mnt!, 'f')), data);
  // 200000 B in 64 KiB chunks over 2: chunks 0 and 2 on b0, 1 and the 3392-byte chunk 3 on b1.
  t.is(fs.statSync(path.join(b0!, 'f')).size, 2 * 65536);
  t.is(fs.statSync(path.join(b1!, 'f')).size, 65536 + (200_000 - 3 * 65536));
  t.is(fs.statSync(path.join(mnt!, 'f')).size, 200_000);
  await new Promise((r) => setTimeout(r, 1500));
  const s = spawnSync(process.execPath, [cli, 'stats', mnt!], { encoding: 'utf8' });
  t.is(s.status, 0, s.stderr);
  t.log(s.stdout);
  t.regex(s.stdout, /WRITE\s+[1-9]\d*\s+0/);
  const exited = new Promise((r) => p.on('exit', r));
  p.kill('SIGTERM');
  await exited;
  t.regex(out, /unmounted/);
});
