// The mirror policy (its module src/policy/builtin/mirror.ts compiled to BPF, and its
// daemon half, mounted with the SDK's mount() as the demo does) end to end, the
// demo's scenario as assertions: the program serves every READ/WRITE of mirrored files,
// replicas stay byte-identical, reads are spread over replicas; detached, the daemon
// serves them with the same semantics; the userspace-only daemon produces the same
// replicas. Needs the patched kernel: fails (never skips) on a kernel without the hook.
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { compileBpf, vmlinuxHeader, CompileError } from '../../src/policy/compile.ts';
import { mount, MountError, type MountHandle } from '../../src/sdk/mount.ts';
import { makePolicy } from '../../src/policy/spec.ts';
import { generatePolicy, policyGlobals } from '../../src/policy/build.ts';
import { makeSources, runWorkload, sh, READ_SCRIPT, type WorkloadResult } from '../../src/demo/workload.ts';
import { diffTrees } from '../../src/demo/verify.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
let work = '';
let sources = '';
let reference: WorkloadResult;
const servers: MountHandle[] = [];

/** The figures the assertions read: per opcode daemon counts (fuse), per replica what the
 *  daemon did (daemon), and what the program served and moved (bpf; null without one). */
async function snap(m: MountHandle) {
  const ops = await m.stats();
  const per = (await m.backings())!;
  const fuse: Record<string, number> = {};
  const served: Record<string, number> = {};
  for (const [op, v] of Object.entries(ops)) {
    if (v.daemon) fuse[op] = v.daemon;
    if (v.kernel) served[op] = v.kernel;
  }
  return { fuse, daemon: per.daemon, bpf: per.kernel ? { served, replicas: per.kernel } : null };
}

function setupDirs(name: string) {
  const base = path.join(work, name);
  const d = { mnt: path.join(base, 'mnt'), replicas: [path.join(base, 'r0'), path.join(base, 'r1')] };
  for (const x of [d.mnt, ...d.replicas]) fs.mkdirSync(x, { recursive: true });
  return d;
}

async function start(name: string, bpf: boolean) {
  const d = setupDirs(name);
  const m = await mount({ backings: d.replicas, mountpoint: d.mnt, policy: makePolicy('mirror', {}, 2), ...(bpf ? {} : { userspace: true }) });
  servers.push(m);
  return { ...d, m };
}

test.before(async () => {
  if (!fs.existsSync('/dev/fuse')) throw new Error('/dev/fuse is missing: no CONFIG_FUSE_FS or no devtmpfs');
  if (process.getuid?.() !== 0) throw new Error('mirror tests need root (mount, BPF, FUSE_DEV_IOC_BACKING_OPEN)');
  const build = process.env.FUSE_KFUNC_BUILD;
  if (!build) throw new Error('FUSE_KFUNC_BUILD is not set: run guest tests through `fuse-kfunc test`');
  work = fs.mkdtempSync('/tmp/mirror-test-');
  const out = path.join(work, 'build');
  fs.mkdirSync(out);
  const h = fs.readFileSync(vmlinuxHeader(build, out), 'utf8');
  if (!/^struct fuse_bpf_ops \{/m.test(h)) {
    throw new Error('this kernel has no struct fuse_bpf_ops: the fuse-kfunc series (the BPF hook) is not in the booted kernel');
  }
  sources = makeSources(path.join(work, 'src'));
  const ref = path.join(work, 'reference');
  fs.mkdirSync(ref);
  reference = await runWorkload(ref, sources);
});

test.after.always(async () => {
  for (const m of servers) await m.close().catch(() => undefined);
});

test('without a build\'s vmlinux.h the running kernel\'s BTF gives one, fuse.ko\'s types included', (t) => {
  // A build dir holding only bpftool, as a user's own kernel would: the header is dumped from
  // /sys/kernel/btf, where FUSE's types are in the module's split BTF (FUSE is a module)
  const build = process.env.FUSE_KFUNC_BUILD!;
  const bare = fs.mkdtempSync(path.join(work, 'bare-build-'));
  fs.symlinkSync(path.join(build, 'bpftool'), path.join(bare, 'bpftool'));
  const out = fs.mkdtempSync(path.join(work, 'bare-out-'));
  const h = fs.readFileSync(vmlinuxHeader(bare, out), 'utf8');
  t.regex(h, /^struct fuse_bpf_ops \{/m);
  t.regex(h, /^struct task_struct \{/m);
  t.regex(h, /\bFUSE_BPF_UPCALL = 1\b/);
});

let bpfReplicas: string[] = [];

test.serial('the program serves every READ and WRITE; replicas identical; reads spread over replicas', async (t) => {
  const { mnt, replicas, m } = await start('bpf', true);
  bpfReplicas = replicas;
  const w = await runWorkload(mnt, sources);
  t.is(w.sums, reference.sums, 'sha256 through the mount');
  t.is(m.mode, 'program+mirror');
  const s = await snap(m);
  t.is(s.fuse.READ ?? 0, 0, 'daemon READ: no READ sent up');
  t.is(s.fuse.WRITE ?? 0, 0, 'daemon WRITE: no WRITE sent up');
  t.deepEqual(s.daemon.map((r) => r.reads + r.writes), [0, 0]);
  t.true((s.bpf!.served.READ ?? 0) > 0, 'program served READ');
  t.true((s.bpf!.served.WRITE ?? 0) > 0, 'program served WRITE');
  const [r0, r1] = s.bpf!.replicas;
  t.true(r0!.reads > 0 && r1!.reads > 0, `both replicas read (${r0!.reads}, ${r1!.reads})`);
  t.is(r0!.writes, r1!.writes, 'every WRITE went to both replicas');
  t.is(r0!.writeBytes, r1!.writeBytes);
  t.is(r0!.errors + r1!.errors, 0);
  // Each open file's backing files are looked up by id once per replica, then shared.
  t.true(r0!.cached > 0 && r1!.cached > 0, `cached references used (${r0!.cached}, ${r1!.cached})`);
  t.true(r0!.cached + r1!.cached > (r0!.reads + r0!.writes + r1!.reads + r1!.writes) / 2, 'most requests hit the cache');
  for (const r of replicas) t.deepEqual(diffTrees(path.join(work, 'reference'), r), [], `replica ${r}`);

  // Replica 0 unusable for the program: reads fail over to replica 1, contents unchanged.
  await m.fault(0);
  t.is(await sh(READ_SCRIPT, { D: mnt }), reference.sums, 'reads with replica 0 failing');
  const f = await snap(m);
  t.true(f.bpf!.replicas[0]!.errors > 0, 'replica 0 failed');
  t.is(f.bpf!.replicas[0]!.reads, r0!.reads, 'no successful read from replica 0');
  t.true(f.bpf!.replicas[1]!.reads > r1!.reads, 'replica 1 took over');
  t.is(f.fuse.READ ?? 0, 0, 'failover stays in the kernel');

  // Detached: the daemon takes READ/WRITE over, with the same mirror semantics.
  await m.detach();
  const before = await snap(m);
  await sh('cp "$S/medium.bin" "$D/detached.bin"', { D: mnt, S: sources });
  await sh('cp "$S/medium.bin" "$D/detached.bin"', { D: path.join(work, 'reference'), S: sources });
  t.is(await sh(READ_SCRIPT, { D: mnt }), await sh(READ_SCRIPT, { D: path.join(work, 'reference') }));
  const after = await snap(m);
  t.true((after.fuse.READ ?? 0) > 0, 'daemon READ after detach');
  t.true((after.fuse.WRITE ?? 0) > 0, 'daemon WRITE after detach');
  t.is(after.bpf!.served.READ, before.bpf!.served.READ, 'no READ served by a detached program');
  t.is(after.daemon[0]!.writes, after.daemon[1]!.writes, 'daemon writes every replica');
  t.true(after.daemon[0]!.reads > 0 && after.daemon[1]!.reads > 0, 'daemon reads round-robin');
  for (const r of replicas) t.deepEqual(diffTrees(path.join(work, 'reference'), r), [], `replica ${r} after detach`);

  // And attached again, the program serves again.
  await m.attach();
  await sh(READ_SCRIPT, { D: mnt });
  const again = await snap(m);
  t.true((again.bpf!.served.READ ?? 0) > (after.bpf!.served.READ ?? 0), 'READ served after re-attach');
  t.is(again.fuse.READ, after.fuse.READ, 'no daemon READ after re-attach');
  t.is((await m.tables()).handles, 0, 'every file closed');
  await m.close();
});

test.serial('userspace mode gives the same replicas as the BPF run', async (t) => {
  const { mnt, replicas, m } = await start('userspace', false);
  const w = await runWorkload(mnt, sources);
  t.is(w.sums, reference.sums);
  await sh('cp "$S/medium.bin" "$D/detached.bin"', { D: mnt, S: sources }); // as the BPF run did after detaching
  t.is(m.mode, 'userspace+mirror');
  const s = await snap(m);
  t.is(s.bpf, null);
  t.true((s.fuse.READ ?? 0) > 0 && (s.fuse.WRITE ?? 0) > 0);
  t.true(s.daemon[0]!.reads > 0 && s.daemon[1]!.reads > 0, 'reads spread over replicas');
  t.is(s.daemon[0]!.writes, s.daemon[1]!.writes);
  t.is(bpfReplicas.length, 2, 'the BPF test ran first');
  await t.throwsAsync(m.fault(2), { message: /fault: backing 2 is not one of this mount's 2 backing directories/ });
  for (let i = 0; i < replicas.length; i++) {
    t.deepEqual(diffTrees(bpfReplicas[i]!, replicas[i]!), [], `replica ${i}: BPF run vs userspace run`);
  }
  await m.close();
});

test.serial('a program the verifier rejects fails the daemon\'s start with the verifier log', async (t) => {
  // The compiled mirror policy on a copy of its runtime whose backing_io() leaks the
  // reference it takes: a quoted #include looks beside the including file first.
  const dir = path.join(work, 'leaky');
  fs.mkdirSync(dir);
  for (const f of fs.readdirSync(path.join(REPO, 'bpf/runtime'))) fs.copyFileSync(path.join(REPO, 'bpf/runtime', f), path.join(dir, f));
  const runtime = fs.readFileSync(path.join(dir, 'policy.bpf.h'), 'utf8');
  const leaky = runtime.replace(/\tret = file_io\(fctx, fb, write, pos, size\);\n\tbpf_file_release\(fb\);/, '\tret = file_io(fctx, fb, write, pos, size);');
  t.not(leaky, runtime);
  fs.writeFileSync(path.join(dir, 'policy.bpf.h'), leaky);
  fs.writeFileSync(path.join(dir, 'leaky.bpf.c'), generatePolicy(makePolicy('mirror', {}, 2)));
  fs.copyFileSync(path.join(work, 'build', 'vmlinux.h'), path.join(dir, 'vmlinux.h'));
  const bad = compileBpf({ source: path.join(dir, 'leaky.bpf.c'), outDir: dir, buildDir: process.env.FUSE_KFUNC_BUILD!, repo: REPO });
  const d = setupDirs('leaky');
  const e = await t.throwsAsync(mount({ backings: d.replicas, mountpoint: d.mnt, program: bad, globals: policyGlobals(makePolicy('mirror', {}, 2)) }), { instanceOf: MountError });
  t.regex(e!.message, /verifier rejected program "mirror_request"/);
  t.regex(e!.log ?? '', /Unreleased reference/);
  t.false(fs.readFileSync('/proc/self/mountinfo', 'utf8').includes(d.mnt), 'nothing left mounted');
});

test.serial('clang errors name the file and line', (t) => {
  const dir = path.join(work, 'broken');
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'broken.bpf.c'), '#include "vmlinux.h"\nint f(void) { return undeclared; }\n');
  fs.copyFileSync(path.join(work, 'build', 'vmlinux.h'), path.join(dir, 'vmlinux.h'));
  const e = t.throws(() => compileBpf({ source: path.join(dir, 'broken.bpf.c'), outDir: dir, buildDir: process.env.FUSE_KFUNC_BUILD!, repo: REPO }), { instanceOf: CompileError });
  t.regex(e!.message, /broken\.bpf\.c:2:\d+: error: use of undeclared identifier 'undeclared'/);
});
