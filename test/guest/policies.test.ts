// The built-in policies, differentially: the same seeded workload (create, writes at random
// unaligned offsets across chunk boundaries and past the end, buffered and O_DIRECT reads,
// truncate up and down, rename, unlink, mkdir, readdir, stat) runs on a mount with the
// generated program attached and on the daemon-only mount (the userspace reference). Both
// must agree with the in-memory model, with each other line by line, and leave the same
// files in every backing directory; the BPF run must serve every READ and WRITE in the
// kernel. Needs the patched kernel (the VM under npm test).
import test, { type ExecutionContext } from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { mount, type MountHandle } from '../../src/sdk/mount.ts';
import { formatRules, makePolicy, type PolicySpec } from '../../src/policy/spec.ts';
import { compiledModule } from '../../src/policy/build.ts';
import { builtinModuleFile } from '../../src/policy/builtin/index.ts';
import { placementHooks } from '../../src/policy/runtime/functions.ts';
import type { NameRule } from '../../src/policy/lang/define.ts';
import { prng, runWorkload, treeDigest, type WorkloadResult } from '../../src/testing/workload.ts';
import type { PerBacking } from '../../src/sdk/stats.ts';
import type { MountStats } from '../../src/sdk/stats.ts';
import { guestBuild, mountDirs } from './helpers.ts';

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
  per: PerBacking;
  /** Every backing directory before and after the run. */
  before: string[][];
  layout: string[][];
}

interface Case {
  spec: PolicySpec;
  unit: number;
  seeds: number[];
  ops: number;
  exts?: string[];
  /** Files in a backing directory before the mount (a tier's slow tier, a union's lower):
   *  sizes in units. */
  initial?: number[];
  initialIn?: number;
  /** The program serves names too (names: 'kernel'); the reference is the same daemon. */
  names?: 'kernel';
}

/** Deterministic contents for pre-existing files. */
function initialFiles(c: Case, seed: number): Map<string, Buffer> {
  const rnd = prng(seed * 7919);
  const m = new Map<string, Buffer>();
  (c.initial ?? []).forEach((units, i) => {
    const b = Buffer.alloc(Math.round(units * c.unit) + i);
    for (let j = 0; j < b.length; j++) b[j] = Math.floor(rnd() * 256);
    m.set(i % 2 ? `d0/old${i}` : `old${i}`, b);
  });
  return m;
}

async function runOn(name: string, c: Case, userspace: boolean, seed: number): Promise<Run> {
  const { spec, unit, ops } = c;
  const { b: backings, mnt } = mountDirs(work, name, spec.backings);
  const initial = initialFiles(c, seed);
  const home = backings[c.initialIn ?? 0]!;
  if (initial.size) fs.mkdirSync(path.join(home, 'd0'));
  for (const [rel, data] of initial) fs.writeFileSync(path.join(home, rel), data);
  const before = backings.map((b) => treeDigest(b));
  const h = await mount({ backings, mountpoint: mnt, policy: spec, userspace, buildDir: build, timeout: 0, names: userspace ? undefined : c.names });
  handles.push(h);
  let res: WorkloadResult;
  try {
    res = runWorkload(mnt, { seed, ops, unit, direct: true, flush: dropCaches, exts: c.exts, initial });
  } catch (e) {
    await h.close();
    throw e;
  }
  const stats = (await h.close())!;
  const per = (await h.backings())!;
  return { res, stats, per, before, layout: backings.map((b) => treeDigest(b)) };
}

const paramsOf = (spec: PolicySpec): string => {
  switch (spec.policy) {
    case 'stripe': return `chunk=${spec.chunk}`;
    case 'mirror': return `read=${spec.read}`;
    case 'filter': return `deny=${spec.deny.join(',') || 'none'}`;
    case 'tier': return `promote-max=${spec.promoteMax}`;
    case 'route': return `rules=${formatRules(spec.rules)}`;
    case 'union': return 'layers';
  }
};

/**
 * The seeds to run: the first of each case under npm test, every one on demand
 * (FUSE_KFUNC_POLICY_SEEDS=all), as the longer stress is (docs/reliability.md).
 */
const ALL_SEEDS = process.env.FUSE_KFUNC_POLICY_SEEDS === 'all';

// unit: the size offsets and lengths are drawn around (a stripe's chunk).
const cases: Case[] = [
  { spec: makePolicy('stripe', { chunk: '4k' }, 2), unit: 4096, seeds: [1, 2], ops: 90 },
  { spec: makePolicy('stripe', { chunk: '16k' }, 3), unit: 16384, seeds: [3], ops: 90 },
  { spec: makePolicy('mirror', {}, 2), unit: 16384, seeds: [4], ops: 90 },
  { spec: makePolicy('mirror', { read: 'primary' }, 3), unit: 4096, seeds: [5], ops: 60 },
  { spec: makePolicy('filter', {}, 1), unit: 16384, seeds: [6, 13], ops: 90 },
  // Cold files on the slow tier, some larger than promote-max (read from the slow tier).
  { spec: makePolicy('tier', { 'promote-max': '32k' }, 2), unit: 16384, seeds: [7, 8], ops: 90, initial: [0.2, 1, 1.5, 2.5, 4, 0.5, 3] },
  // Extensions and a prefix spread files over three directories; renames move them.
  { spec: makePolicy('route', { rules: '.log=1,d0/=2' }, 3), unit: 16384, seeds: [9, 10], ops: 90, exts: ['', '.log', '.txt'] },
  // Files in the lower layer: writes copy them up, unlinks and renames leave whiteouts.
  { spec: makePolicy('union', {}, 2), unit: 16384, seeds: [11, 12], ops: 90, initial: [0.2, 1, 1.5, 2.5, 4, 0.5, 3, 1.2, 0.7], initialIn: 1 },
  // Names in the kernel too: the same workload, its renames, unlinks, mkdirs and readdirs
  // served by the program, against the same userspace reference.
  { spec: makePolicy('stripe', { chunk: '4k' }, 2), unit: 4096, seeds: [21, 22], ops: 90, names: 'kernel' },
  { spec: makePolicy('mirror', {}, 3), unit: 16384, seeds: [23], ops: 90, names: 'kernel' },
];

for (const c of cases) {
  const { spec } = c;
  for (const seed of ALL_SEEDS ? c.seeds : c.seeds.slice(0, 1)) {
    const params = paramsOf(spec);
    const title = `${spec.policy} ${params} backings=${spec.backings}${c.names ? ' names=kernel' : ''} seed=${seed}`;
    test.serial(`${title}: BPF and userspace agree with the model, each other and on the backing layout`, async (t) => {
      const tag = `${spec.policy}-${params}-${spec.backings}-${c.names ?? 'daemon'}-${seed}`;
      const bpf = await runOn(`bpf-${tag}`, c, false, seed);
      const user = await runOn(`user-${tag}`, c, true, seed);
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
      if (c.names) {
        const up = Object.entries(bpf.stats).filter(([op, x]) => x.daemon && op !== 'INIT').map(([op, x]) => `${op} ${x.daemon}`);
        t.deepEqual(up, [], 'names in the kernel: nothing after INIT reached the daemon');
        for (const op of ['LOOKUP', 'CREATE', 'MKDIR', 'OPEN', 'RELEASE']) t.true(k(op) > 0, `${op} served by the program`);
        t.log(`names served by the program: ${['LOOKUP', 'CREATE', 'MKDIR', 'RENAME', 'RENAME2', 'UNLINK', 'READDIR', 'READDIRPLUS', 'SETATTR', 'FORGET'].map((op) => `${op} ${k(op)}`).join(', ')}`);
      }
      policyChecks(t, spec, bpf, user);
    });
  }
}

/** Where the route module puts a file, as the daemon asks it. */
function routeOf(rules: readonly NameRule[], rel: string): number {
  const m = compiledModule(builtinModuleFile('route'));
  return placementHooks({ name: 'route', family: m.family, js: m.js }).place(rel, { backings: 4, rules });
}

/** What each policy promises beyond agreeing with its reference. */
function policyChecks(t: ExecutionContext, spec: PolicySpec, bpf: Run, user: Run): void {
  const moved = (r: Run) => r.per.kernel!.map((k, i) => `${i}: kernel ${k.reads}r/${k.writes}w, daemon ${r.per.daemon[i]!.reads}r/${r.per.daemon[i]!.writes}w`);
  if (spec.policy === 'stripe' || spec.policy === 'mirror') {
    // Compiled modules keep a reference to each backing file in the node entry (policy.bpf.h).
    const cached = bpf.per.kernel!.map((k) => k.cached);
    t.log(`references taken from the node entry, per backing: ${cached.join(', ')}`);
    t.true(cached.every((c) => c > 0), 'every backing file was served from the kept reference');
  }
  if (spec.policy === 'tier') {
    t.log(`per tier: ${moved(bpf).join('; ')}; promotions ${bpf.per.events.promotions}`);
    t.true(bpf.per.events.promotions! > 0, 'cold files were copied up');
    t.is(bpf.per.events.promotions, user.per.events.promotions, 'the same files were copied up');
    t.true(bpf.per.kernel![1]!.reads > 0, 'the program read from the fast tier');
    t.true(bpf.per.kernel![0]!.reads > 0, 'the program read files too big to copy up from the slow tier');
    t.true(bpf.per.kernel![0]!.writes >= bpf.per.kernel![1]!.writes && bpf.per.kernel![1]!.writes > 0, 'writes went through to both tiers');
    // Every fast copy is a copy of the slow file under the same name.
    const slow = new Set(bpf.layout[0]);
    for (const l of bpf.layout[1]!) t.true(slow.has(l), `fast tier entry ${l} equals the slow tier's`);
  }
  if (spec.policy === 'union') {
    t.log(`per layer: ${moved(bpf).join('; ')}; ${JSON.stringify(bpf.per.events)}`);
    t.deepEqual(bpf.layout[1], bpf.before[1], 'the lower layer is untouched');
    t.true(bpf.per.events.copyUps! > 0 && bpf.per.events.whiteouts! > 0, 'files were copied up and deletions whited out');
    t.deepEqual(bpf.per.events, user.per.events, 'the same copy-ups and whiteouts as the reference');
    t.true(bpf.layout[0]!.some((l) => l.includes('.wh.')), 'the upper layer holds whiteouts');
    t.true(bpf.per.kernel![1]!.reads > 0, 'the program read lower files in place');
    t.is(bpf.per.kernel![1]!.writes, 0, 'and never wrote to the lower layer');
    t.true(bpf.per.kernel![0]!.writes > 0, 'writes went to the upper layer');
  }
  if (spec.policy === 'route') {
    t.log(`per backing: ${moved(bpf).join('; ')}`);
    for (let i = 0; i < spec.backings; i++) t.true(bpf.per.kernel![i]!.reads > 0 && bpf.per.kernel![i]!.writes > 0, `the program moved data in backing ${i}`);
    for (let i = 0; i < spec.backings; i++) {
      for (const l of bpf.layout[i]!) {
        if (l.endsWith('/')) continue;
        const rel = l.split(' ')[0]!;
        t.is(routeOf(spec.rules, rel), i, `${rel} lives in backing ${i}, where the rules put it`);
      }
    }
    t.deepEqual(bpf.layout.map((l) => l.filter((e) => e.endsWith('/'))), bpf.layout.map(() => bpf.layout[0]!.filter((e) => e.endsWith('/'))), 'directories exist in every backing');
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
  const bad = spawnSync(process.execPath, [cli, 'mount', b0!, b1!, mnt!, '--policy', 'stripe', '--chunk', '5000'], { encoding: 'utf8' });
  t.is(bad.status, 1);
  t.regex(bad.stderr, /--chunk: 5000 is not a multiple of 4k/);
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
  t.regex(s.stdout, /per backing directory:\n#.*\n0 .*b0 +\d+ \([^)]*\) +[1-9]\d* .*\n1 .*b1 +\d+ \([^)]*\) +[1-9]\d* /, 'the program wrote pieces to both backings');
  const exited = new Promise((r) => p.on('exit', r));
  p.kill('SIGTERM');
  await exited;
  t.regex(out, /unmounted/);
});

const dirs = (name: string, n: number) => mountDirs(work, name, n);

test.serial('union over two lowers: shadowing, copy-up, whiteouts, opaque directories, EXDEV for lower directories', async (t) => {
  const { b, mnt } = dirs('union-semantics', 3);
  const put = (layer: number, rel: string, data: string) => {
    fs.mkdirSync(path.dirname(path.join(b[layer]!, rel)), { recursive: true });
    fs.writeFileSync(path.join(b[layer]!, rel), data);
  };
  put(2, 'a/x', 'x from the lowest');
  put(2, 'a/y', 'y from the lowest');
  put(2, 'z/1', 'one');
  put(1, 'a/x', 'x from the middle');
  put(1, 'mid', 'middle only');
  const lowers = () => [treeDigest(b[1]!), treeDigest(b[2]!)];
  const before = lowers();
  const h = await mount({ backings: b, mountpoint: mnt, policy: makePolicy('union', {}, 3), buildDir: build, timeout: 0 });
  handles.push(h);
  const m = (rel: string) => path.join(mnt, rel);
  t.deepEqual(fs.readdirSync(mnt).sort(), ['a', 'mid', 'z'], 'the root merges all layers');
  t.deepEqual(fs.readdirSync(m('a')).sort(), ['x', 'y']);
  t.is(fs.readFileSync(m('a/x'), 'utf8'), 'x from the middle', 'the higher layer shadows the lower');
  t.is(fs.readFileSync(m('mid'), 'utf8'), 'middle only');

  t.is(fs.readFileSync(m('a/y'), 'utf8'), 'y from the lowest', 'read in place from the lowest layer');
  fs.appendFileSync(m('a/y'), ' + appended');
  t.is(fs.readFileSync(m('a/y'), 'utf8'), 'y from the lowest + appended');
  t.is(fs.readFileSync(path.join(b[0]!, 'a/y'), 'utf8'), 'y from the lowest + appended', 'copied up to the upper layer');

  fs.unlinkSync(m('a/x'));
  t.false(fs.existsSync(m('a/x')), 'unlinked: neither lower copy shows through');
  t.deepEqual(fs.readdirSync(m('a')), ['y']);
  t.true(fs.existsSync(path.join(b[0]!, 'a/.wh.x')), 'a whiteout hides it');

  fs.rmSync(m('z'), { recursive: true });
  t.false(fs.existsSync(m('z')));
  fs.mkdirSync(m('z'));
  t.deepEqual(fs.readdirSync(m('z')), [], 'a directory made over a removed one is opaque');
  fs.writeFileSync(m('z/new'), 'new');
  t.deepEqual(fs.readdirSync(m('z')), ['new']);

  t.throws(() => fs.renameSync(m('a'), m('a2')), { code: 'EXDEV' }, 'a lower directory is not renamed in place');
  const mv = spawnSync('mv', [m('a'), m('a2')], { encoding: 'utf8' });
  t.is(mv.status, 0, mv.stderr);
  t.deepEqual(fs.readdirSync(m('a2')), ['y']);
  t.is(fs.readFileSync(m('a2/y'), 'utf8'), 'y from the lowest + appended');
  t.false(fs.existsSync(m('a')), 'mv copied and removed it');

  fs.renameSync(m('mid'), m('moved'));
  t.is(fs.readFileSync(m('moved'), 'utf8'), 'middle only');
  t.false(fs.existsSync(m('mid')));
  t.throws(() => fs.writeFileSync(m('.wh.sneaky'), ''), { code: 'EPERM' }, 'whiteout names are reserved');
  t.deepEqual(fs.readdirSync(mnt).sort(), ['a2', 'moved', 'z']);

  const s = (await h.close())!;
  const per = (await h.backings())!;
  t.deepEqual(lowers(), before, 'both lower layers are untouched');
  t.log(`events ${JSON.stringify(per.events)}; kernel per layer ${per.kernel!.map((k) => `${k.reads}r/${k.writes}w`).join(' ')}`);
  t.true(per.kernel![1]!.reads > 0 && per.kernel![2]!.reads > 0, 'the program read each lower layer in place');
  t.true(per.kernel![0]!.writes > 0 && per.kernel![1]!.writes === 0 && per.kernel![2]!.writes === 0, 'and wrote only the upper one');
  t.is(s.READ?.daemon ?? 0, 0, 'no READ reached the daemon');
});

test.serial('route: directories span backings (rmdir sees every one); renames that would move a file of a directory are EXDEV', async (t) => {
  const { b, mnt } = dirs('route-dirs', 2);
  const h = await mount({ backings: b, mountpoint: mnt, policy: makePolicy('route', { rules: '.log=1,logs/=1' }, 2), buildDir: build, timeout: 0 });
  handles.push(h);
  const m = (rel: string) => path.join(mnt, rel);
  fs.mkdirSync(m('d'));
  fs.writeFileSync(m('d/a.log'), 'log line\n');
  fs.writeFileSync(m('d/b.txt'), 'text\n');
  t.true(fs.existsSync(path.join(b[1]!, 'd/a.log')) && fs.existsSync(path.join(b[0]!, 'd/b.txt')), 'each file where its rule puts it');
  fs.unlinkSync(m('d/b.txt'));
  t.throws(() => fs.rmdirSync(m('d')), { code: 'ENOTEMPTY' }, 'empty in backing 0 is not empty');
  t.deepEqual(fs.readdirSync(m('d')), ['a.log']);
  fs.mkdirSync(m('logs'));
  fs.writeFileSync(m('d/c.txt'), 'text\n');
  t.throws(() => fs.renameSync(m('d'), m('logs/d')), { code: 'EXDEV' }, 'moving a directory under a prefix rule would move c.txt');
  fs.unlinkSync(m('d/c.txt'));
  fs.mkdirSync(m('d2'));
  fs.writeFileSync(m('d2/z.log'), 'z\n');
  fs.renameSync(m('d2'), m('logs/d2'));
  t.is(fs.readFileSync(m('logs/d2/z.log'), 'utf8'), 'z\n', 'no file changes backing (.log and logs/ both go to 1): renamed in place');
  t.true(fs.existsSync(path.join(b[1]!, 'logs/d2/z.log')));
  fs.renameSync(m('d'), m('e'));
  t.is(fs.readFileSync(m('e/a.log'), 'utf8'), 'log line\n');
  fs.renameSync(m('e/a.log'), m('e/a.txt'));
  t.true(fs.existsSync(path.join(b[0]!, 'e/a.txt')) && !fs.existsSync(path.join(b[1]!, 'e/a.log')), 'a rename that changes the route moves the file');
  fs.writeFileSync(m('logs/app'), 'by prefix\n');
  t.true(fs.existsSync(path.join(b[1]!, 'logs/app')));
  fs.unlinkSync(m('e/a.txt'));
  fs.rmdirSync(m('e'));
  t.false(fs.existsSync(path.join(b[0]!, 'e')) || fs.existsSync(path.join(b[1]!, 'e')), 'rmdir removed it from every backing');
  await h.close();
});
