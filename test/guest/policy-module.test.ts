// A policy module as a user writes one, in the VM: scaffolded with `policy new`, checked with
// `policy check` (the verifier of this kernel included), mounted from its .ts file over three
// backing directories with parameters, and run differentially, its program against the same
// functions in the daemon. Errors point at the module's lines: a compile error at mount, and
// a verifier rejection. Needs the patched kernel (the VM under npm test).
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { mount, MountError, type MountHandle } from '../../src/sdk/mount.ts';
import { runWorkload, treeDigest } from '../../src/testing/workload.ts';
import { differentialTest, formatDiff } from '../../src/policy/difftest.ts';
import { guestBuild, mountDirs } from './helpers.ts';

const REPO = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const CLI = path.join(REPO, 'bin/fuse-kfunc.js');
let work = '';
let build = '';
let module = '';
const handles: MountHandle[] = [];
const dropCaches = () => fs.writeFileSync('/proc/sys/vm/drop_caches', '3');
const cli = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', cwd: work });

test.before(() => {
  if (process.getuid?.() !== 0) throw new Error('policy module tests need root');
  build = guestBuild();
  work = fs.mkdtempSync('/tmp/policy-module-');
  const r = cli('policy', 'new', 'headtail', work);
  if (r.status !== 0) throw new Error(`policy new: ${r.stderr}`);
  module = path.join(work, 'headtail.ts');
});

test.after.always(async () => {
  for (const h of handles) await h.close().catch(() => undefined);
});

test.serial('policy check: a scaffolded module compiles, its C agrees with its TypeScript, and this kernel\'s verifier loads it', (t) => {
  const r = cli('policy', 'check', module);
  t.log(r.stdout);
  t.is(r.status, 0, r.stdout + r.stderr);
  for (const step of ['compile', 'native', 'bpf', 'verifier']) t.regex(r.stdout, new RegExp(`^ok {3}${step}`, 'm'));
  t.regex(r.stdout, /loaded: the verifier accepted headtail_ops/);
});

test.serial('a module mounted from its file: the program and the daemon (the same functions) agree, and bytes land where the module says', async (t) => {
  const params = { head: '8k', chunk: '4k' };
  const run = async (userspace: boolean) => {
    const { b, mnt } = mountDirs(work, `ht-${userspace}`, 3);
    const h = await mount({ backings: b, mountpoint: mnt, policy: module, params, userspace, buildDir: build, timeout: 0 });
    handles.push(h);
    t.is(h.mode, `${userspace ? 'userspace' : 'program'}+headtail`);
    const res = runWorkload(mnt, { seed: 21, ops: 80, unit: 4096, direct: true, flush: dropCaches });
    const stats = (await h.close())!;
    return { res, stats, b, layout: b.map((d) => treeDigest(d)) };
  };
  const bpf = await run(false);
  const user = await run(true);
  t.deepEqual(bpf.res.mismatches, [], 'the BPF mount agrees with the model');
  t.deepEqual(user.res.mismatches, [], 'the daemon alone agrees with the model');
  t.deepEqual(bpf.res.log, user.res.log, 'same results, operation by operation');
  t.deepEqual(bpf.layout, user.layout, 'the same pieces in every backing directory');
  const k = (op: string) => bpf.stats[op]?.kernel ?? 0;
  const d = (op: string) => bpf.stats[op]?.daemon ?? 0;
  t.log(`BPF run: READ ${k('READ')} kernel / ${d('READ')} daemon, WRITE ${k('WRITE')} / ${d('WRITE')}`);
  t.true(k('READ') > 0 && k('WRITE') > 0, 'the program served READ and WRITE');
  t.is(d('READ') + d('WRITE'), 0, 'no READ or WRITE reached the daemon');
  // The head of every file is on backing 0, at most 8 KiB of it.
  const sizes0 = bpf.layout[0]!.filter((l) => !l.endsWith('/')).map((l) => Number(l.split(' ')[1]));
  t.true(sizes0.length > 0 && sizes0.every((s) => s <= 8192), `backing 0 holds heads only: ${sizes0.join(', ')}`);
  t.true(bpf.layout[1]!.concat(bpf.layout[2]!).some((l) => / [1-9]\d* /.test(l)), 'the rest is striped over backings 1 and 2');
});

test.serial('fuse-kfunc policy test FILE: the differential workload from the command line, and a broken twin caught', async (t) => {
  const run = (file: string) => new Promise<{ status: number | null; out: string }>((res) => {
    const p = spawn(process.execPath, [CLI, 'policy', 'test', file, '--backings', '3', '--head', '8k', '--chunk', '4k', '--ops', '40', '--seed', '5'], { cwd: work, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (x) => (out += x));
    p.stderr.on('data', (x) => (out += x));
    p.on('exit', (status) => res({ status, out }));
  });
  const ok = await run(module);
  t.log(ok.out);
  t.is(ok.status, 0, ok.out);
  t.regex(ok.out, /^policy test: ok$/m);
  // A module whose logicalEnd forgets the head: a file longer than the head reports a size
  // 8 KiB short, on both mounts (the same functions), which the model catches.
  const broken = path.join(work, 'broken.ts');
  fs.writeFileSync(broken, fs.readFileSync(module, 'utf8').replace("name: 'headtail'", "name: 'broken'").replace('return p.head + (k * n + i - 1) * p.chunk', 'return (k * n + i - 1) * p.chunk'));
  const bad = await run(broken);
  t.log(bad.out);
  t.is(bad.status, 1, bad.out);
  t.regex(bad.out, /^ {2}FAIL /m);
});

test.serial('fuse-kfunc mount --policy ./FILE --head 8k: the CLI mounts a module with its own parameters', async (t) => {
  const { b, mnt } = mountDirs(work, 'cli', 3);
  const bad = cli('mount', ...b, mnt, '--policy', module, '--head', '5000');
  t.is(bad.status, 1);
  t.regex(bad.stderr, /--head: 5000 is not a multiple of 4k/);
  const p = spawn(process.execPath, [CLI, 'mount', ...b, mnt, '--policy', module, '--head', '8k', '--chunk', '4k'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  p.stdout.on('data', (x) => (out += x));
  p.stderr.on('data', (x) => (out += x));
  const deadline = Date.now() + 240_000;
  while (!/stats: fuse-kfunc stats/.test(out) && Date.now() < deadline && p.exitCode === null) await new Promise((r) => setTimeout(r, 200));
  t.regex(out, /\(program\+headtail/, out);
  const data = Buffer.alloc(8192 + 3 * 4096 + 100);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff;
  fs.writeFileSync(path.join(mnt, 'f'), data);
  t.deepEqual(fs.readFileSync(path.join(mnt, 'f')), data);
  // 8 KiB head on b0; then 4 KiB chunks b1, b2, b1 and a 100-byte one on b2.
  t.deepEqual(b.map((d) => fs.statSync(path.join(d, 'f')).size), [8192, 8192, 4096 + 100]);
  t.deepEqual(fs.readFileSync(path.join(b[0]!, 'f')), data.subarray(0, 8192));
  t.deepEqual(fs.readFileSync(path.join(b[2]!, 'f')).subarray(0, 4096), data.subarray(8192 + 4096, 8192 + 8192));
  const exited = new Promise((r) => p.on('exit', r));
  p.kill('SIGTERM');
  await exited;
});

test.serial('a module outside the subset fails the mount with its TypeScript line', async (t) => {
  const bad = path.join(work, 'bad_div.ts');
  fs.writeFileSync(bad, fs.readFileSync(module, 'utf8').replace("name: 'headtail'", "name: 'bad_div'").replace('const rest = off - p.head;', 'const rest = (off - p.head) / 2;'));
  const line = fs.readFileSync(bad, 'utf8').split('\n').findIndex((l) => l.includes('(off - p.head) / 2')) + 1;
  const { b, mnt } = mountDirs(work, 'bad', 2);
  const e = await t.throwsAsync(mount({ backings: b, mountpoint: mnt, policy: bad, buildDir: build }), { instanceOf: MountError });
  t.is(e!.kind, 'compile');
  t.regex(e!.message, new RegExp(`bad_div\\.ts:${line}:\\d+: / divides to a fraction`));
});

test.serial('a verifier rejection names the module\'s lines', async (t) => {
  const heavy = path.join(work, 'heavy.ts');
  // A loop with a branch on data the verifier cannot know: it keeps one path of every
  // iteration for later, and refuses the program when 8,192 are pending.
  fs.writeFileSync(heavy, fs.readFileSync(module, 'utf8').replace("name: 'headtail'", "name: 'heavy'").replace(
    'if (off < p.head) return { backing: 0, offset: off, length: p.head - off };',
    `let mix = off;
      for (let i = 0; i < 100000; i++) {
        if ((mix >> (i % 60)) % 2 === 1) mix = mix + i;
      }
      if (mix === 12345 || off < p.head) return { backing: 0, offset: off, length: p.head - off };`));
  const lines = fs.readFileSync(heavy, 'utf8').split('\n');
  const loop = lines.findIndex((l) => l.includes('for (let i = 0; i < 100000')) + 1;
  const r = await new Promise<{ status: number | null; stdout: string }>((res) => {
    const p = spawn(process.execPath, [CLI, 'policy', 'check', heavy], { cwd: work, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    p.stdout.on('data', (x) => (stdout += x));
    p.stderr.on('data', (x) => (stdout += x));
    p.on('exit', (status) => res({ status, stdout }));
  });
  t.log(r.stdout);
  t.is(r.status, 1);
  t.regex(r.stdout, /^ok {3}compile/m);
  t.regex(r.stdout, /^FAIL verifier +the verifier rejected program "heavy_request"/m);
  const at = /at (.*) \(the last TypeScript lines the verifier walked\)/.exec(r.stdout);
  t.truthy(at, 'the report names TypeScript lines');
  t.regex(at![1]!, new RegExp(`heavy\\.ts:(${loop}|${loop + 1}|${loop + 2})\\b`), 'a line of the loop');
  // mount() says the same.
  const { b, mnt } = mountDirs(work, 'heavy', 2);
  const e = await t.throwsAsync(mount({ backings: b, mountpoint: mnt, policy: heavy, buildDir: build }), { instanceOf: MountError });
  t.is(e!.kind, 'verifier');
  t.regex(e!.message, new RegExp(`at .*heavy\\.ts:(${loop}|${loop + 1}|${loop + 2})\\b.* \\(the last TypeScript lines the verifier walked\\)`));
});

// Issue 18's test of the language: a policy written from docs/policies.md alone (the spread
// family: by extension on one backing, mirrored under a directory, else round-robin), in
// test/guest/fixtures/by-extension.ts, checked, mounted, placed where it says, and run
// differentially.
test.serial('a policy written from the docs alone: by extension on one backing, mirrored under a directory, else round-robin', async (t) => {
  const file = path.join(REPO, 'test/guest/fixtures/by-extension.ts');
  const chk = cli('policy', 'check', file);
  t.log(chk.stdout);
  t.is(chk.status, 0, chk.stdout + chk.stderr);
  for (const step of ['compile', 'native', 'bpf', 'verifier']) t.regex(chk.stdout, new RegExp(`^ok {3}${step}`, 'm'));

  // Where files land: creations 0..2 round-robin, .log on backing 1, shared/ on all three.
  const { b, mnt } = mountDirs(work, 'byext', 3);
  const h = await mount({ backings: b, mountpoint: mnt, policy: file, params: { rules: '.log=1', shared: 'shared/' }, buildDir: build, timeout: 0 });
  handles.push(h);
  t.is(h.mode, 'program+by_extension');
  const m = (rel: string) => path.join(mnt, rel);
  const where = (rel: string) => b.flatMap((d, i) => (fs.existsSync(path.join(d, rel)) ? [i] : []));
  fs.mkdirSync(m('shared'));
  const made: [string, number[]][] = [['f0', [0]], ['f1', [1]], ['f2', [2]], ['a.log', [1]], ['shared/x', [0, 1, 2]], ['f3', [2]]];
  for (const [rel] of made) fs.writeFileSync(m(rel), `${rel} `.repeat(3000));
  for (const [rel, want] of made) {
    t.deepEqual(where(rel), want, `${rel} is on ${want.join(', ')}`);
    t.is(fs.readFileSync(m(rel), 'utf8'), `${rel} `.repeat(3000));
  }
  for (const i of [0, 1, 2]) t.deepEqual(fs.readFileSync(path.join(b[i]!, 'shared/x')), fs.readFileSync(m('shared/x')), `copy ${i} of shared/x`);
  t.deepEqual(fs.readdirSync(mnt).sort(), ['a.log', 'f0', 'f1', 'f2', 'f3', 'shared']);
  fs.renameSync(m('f0'), m('g0'));
  t.deepEqual(where('g0'), [0], 'a renamed file stays where it is');
  fs.appendFileSync(m('shared/x'), 'more');
  for (const i of [0, 1, 2]) t.true(fs.readFileSync(path.join(b[i]!, 'shared/x'), 'utf8').endsWith('more'), `the write reached copy ${i}`);
  fs.unlinkSync(m('shared/x'));
  t.deepEqual(where('shared/x'), [], 'unlink removes every copy');
  const s = (await h.close())!;
  t.true((s.WRITE?.kernel ?? 0) > 0 && (s.READ?.kernel ?? 0) > 0, 'the program served READ and WRITE');
  t.is((s.READ?.daemon ?? 0) + (s.WRITE?.daemon ?? 0), 0, 'no READ or WRITE reached the daemon');

  // The seeded differential workload, .log names and files under d0/ included: the same
  // results and the same files in every backing on its program and on the daemon alone.
  const o = { backings: 3, params: { rules: '.log=1', shared: 'd0/' }, seed: 3, ops: 90, unit: 4096, exts: ['.log', '.txt'], buildDir: build };
  const r = await differentialTest(file, o);
  t.log(formatDiff(file, o, r));
  t.true(r.ok, r.failures.join('\n'));
  // What the workload left shows the three decisions (a rename keeps a file where it is).
  const files = r.bpf.layout.map((l) => l.filter((e) => !e.endsWith('/')).map((e) => e.split(' ')[0]!));
  const copies = (f: string) => files.filter((fs) => fs.includes(f)).length;
  t.true(files[0]!.some((f) => f.startsWith('d0/') && copies(f) === 3), `a file made under d0/ is on all three: ${files.map((f) => f.join(' ')).join(' | ')}`);
  t.true(files[1]!.some((f) => f.endsWith('.log') && copies(f) === 1), 'a .log file on backing 1 alone (seed 3 leaves f0.log)');
  t.true(files.every((fs) => fs.some((f) => copies(f) === 1)), 'single-copy files on every backing (round-robin)');
  // The same from the command line (--exts for the names the workload draws).
  const cliRun = spawnSync(process.execPath, [CLI, 'policy', 'test', file, '--backings', '3', '--rules', '.log=1', '--shared', 'd0/', '--exts', '.log,.txt', '--ops', '40', '--seed', '12'], { encoding: 'utf8', cwd: work });
  t.log(cliRun.stdout + cliRun.stderr);
  t.is(cliRun.status, 0, cliRun.stdout + cliRun.stderr);
  t.regex(cliRun.stdout, /^policy test: ok$/m);
});

test.serial('a raw handler serves an opcode its family leaves to the daemon (FLUSH of a mirror), through the verifier', async (t) => {
  const file = path.join(REPO, 'test/guest/fixtures/mirror-flush.ts');
  const chk = cli('policy', 'check', file);
  t.log(chk.stdout);
  t.is(chk.status, 0, chk.stdout + chk.stderr);
  const data = Buffer.alloc(100_000, 3);
  const run = async (userspace: boolean) => {
    const { b, mnt } = mountDirs(work, `rawflush-${userspace}`, 2);
    const h = await mount({ backings: b, mountpoint: mnt, policy: file, userspace, buildDir: build, timeout: 0 });
    handles.push(h);
    for (let i = 0; i < 5; i++) fs.writeFileSync(path.join(mnt, `f${i}`), data); // each close is a FLUSH
    for (let i = 0; i < 5; i++) t.deepEqual(fs.readFileSync(path.join(mnt, `f${i}`)), data);
    for (const d of b) t.deepEqual(fs.readFileSync(path.join(d, 'f4')), data, `replica ${d}`);
    return (await h.close())!;
  };
  const k = await run(false);
  t.log(`program: FLUSH ${k.FLUSH?.kernel} kernel / ${k.FLUSH?.daemon ?? 0} daemon`);
  t.true((k.FLUSH?.kernel ?? 0) >= 10, 'the raw handler served every FLUSH');
  t.is(k.FLUSH?.daemon ?? 0, 0, 'no FLUSH reached the daemon');
  t.true((k.READ?.kernel ?? 0) > 0 && (k.WRITE?.kernel ?? 0) > 0, 'the family still serves READ and WRITE');
  const u = await run(true);
  t.true((u.FLUSH?.daemon ?? 0) >= 10, 'the daemon alone serves FLUSH as always');
});
