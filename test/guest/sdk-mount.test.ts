// `mount()` (src/sdk/mount.ts) in the VM: the three modes with their stats, and every bad
// input giving its clear error without leaving a mount behind. Needs the patched kernel.
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { mount, MountError, type MountHandle } from '../../src/sdk/mount.ts';
import { guestBuild } from './helpers.ts';
import { makePolicy } from '../../src/policy/spec.ts';
import { generatePolicy, policyGlobals } from '../../src/policy/build.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
let work = '';
let build = '';
const handles: MountHandle[] = [];

// A FUSE mount on mnt (a busy mountpoint like /proc is a mount point of its own already).
const mounted = (mnt: string) => fs.readFileSync('/proc/mounts', 'utf8').split('\n')
  .some((l) => l.split(' ')[1] === mnt && l.split(' ')[2]!.startsWith('fuse'));
const dropCaches = () => fs.writeFileSync('/proc/sys/vm/drop_caches', '3');

function dirs(name: string) {
  const base = path.join(work, name);
  const d = { b: path.join(base, 'b'), m: path.join(base, 'm') };
  fs.mkdirSync(d.b, { recursive: true });
  fs.mkdirSync(d.m, { recursive: true });
  return d;
}

async function start(o: Parameters<typeof mount>[0]) {
  const h = await mount({ buildDir: build, ...o });
  handles.push(h);
  t_mounted(h.mountpoint);
  return h;
}
function t_mounted(mnt: string) {
  if (!mounted(mnt)) throw new Error(`${mnt} is not in /proc/mounts after mount()`);
}

test.before(() => {
  if (process.getuid?.() !== 0) throw new Error('sdk-mount tests need root');
  build = guestBuild();
  work = fs.mkdtempSync('/tmp/sdk-mount-');
});

test.after.always(async () => {
  for (const h of handles) await h.close().catch(() => undefined);
});

test.serial('userspace: everything reaches the daemon, kernel counts 0', async (t) => {
  const d = dirs('user');
  const h = await start({ backings: [d.b], mountpoint: d.m, userspace: true, timeout: 0 });
  t.is(h.mode, 'userspace');
  const data = randomBytes(300_000);
  fs.writeFileSync(path.join(d.m, 'f'), data);
  dropCaches();
  t.true(fs.readFileSync(path.join(d.m, 'f')).equals(data));
  t.true(fs.readFileSync(path.join(d.b, 'f')).equals(data));
  const s = await h.stats();
  t.log(JSON.stringify(s));
  t.true((s.READ?.daemon ?? 0) > 0 && (s.WRITE?.daemon ?? 0) > 0);
  for (const [op, v] of Object.entries(s)) t.is(v.kernel, 0, op);
  await h.close();
  t.false(mounted(d.m));
});

test.serial('passthrough: READ/WRITE never reach the daemon', async (t) => {
  const d = dirs('pt');
  const data = randomBytes(200_000);
  fs.writeFileSync(path.join(d.b, 'f'), data);
  const h = await start({ backings: [d.b], mountpoint: d.m, passthrough: true, timeout: 0 });
  t.is(h.mode, 'passthrough');
  t.true(fs.readFileSync(path.join(d.m, 'f')).equals(data));
  fs.appendFileSync(path.join(d.m, 'f'), 'tail');
  t.is(fs.readFileSync(path.join(d.b, 'f')).length, data.length + 4);
  const s = await h.stats();
  t.log(JSON.stringify(s));
  t.is(s.READ?.daemon ?? 0, 0);
  t.is(s.WRITE?.daemon ?? 0, 0);
  t.true((s.OPEN?.daemon ?? 0) > 0);
  await h.close();
  t.false(mounted(d.m));
});

test.serial('program passthrough.bpf.c: READ/WRITE served in the kernel, content correct', async (t) => {
  const d = dirs('prog');
  const before = randomBytes(500_000);
  fs.writeFileSync(path.join(d.b, 'old'), before);
  const h = await start({ backings: [d.b], mountpoint: d.m, program: path.join(REPO, 'bpf/examples/passthrough.bpf.c'), timeout: 0 });
  t.is(h.mode, 'program');
  t.true(h.counting);
  t.true(fs.readFileSync(path.join(d.m, 'old')).equals(before));
  const data = randomBytes(1_500_000);
  fs.writeFileSync(path.join(d.m, 'new'), data);
  t.true(fs.readFileSync(path.join(d.b, 'new')).equals(data), 'backing file has what was written');
  dropCaches();
  t.true(fs.readFileSync(path.join(d.m, 'new')).equals(data), 'read back through the mount');
  const fd = fs.openSync(path.join(d.m, 'new'), 'r');
  t.is(fs.fstatSync(fd).size, data.length);
  fs.closeSync(fd);
  const s = await h.stats();
  t.log(JSON.stringify(s));
  t.true((s.READ?.kernel ?? 0) > 0, 'READ served in the kernel');
  t.true((s.WRITE?.kernel ?? 0) > 0, 'WRITE served in the kernel');
  t.is(s.READ?.daemon ?? 0, 0);
  t.is(s.WRITE?.daemon ?? 0, 0);
  t.true((s.OPEN?.daemon ?? 0) > 0);
  await h.close();
  t.false(mounted(d.m));
});

test.serial('program + mirror: the mirror policy\'s C over two backings, without fuse_kfunc_stats: kernel counts unknown', async (t) => {
  const base = path.join(work, 'mirror');
  const r = [path.join(base, 'r0'), path.join(base, 'r1')];
  const m = path.join(base, 'm');
  for (const x of [...r, m]) fs.mkdirSync(x, { recursive: true });
  // The compiled mirror policy, on a copy of its runtime whose fuse_kfunc_stats.h counts
  // nothing (a quoted #include looks beside the including file first), so the daemon
  // cannot know what the kernel served.
  const rt = path.join(base, 'runtime');
  fs.mkdirSync(rt);
  for (const f of fs.readdirSync(path.join(REPO, 'bpf/runtime'))) fs.copyFileSync(path.join(REPO, 'bpf/runtime', f), path.join(rt, f));
  fs.writeFileSync(path.join(rt, 'fuse_kfunc_stats.h'), '#define FUSE_KFUNC_COUNT(fctx, ret) (ret)\n');
  const prog = path.join(rt, 'uncounted.bpf.c');
  fs.writeFileSync(prog, generatePolicy(makePolicy('mirror', {}, 2)));
  const h = await start({ backings: r, mountpoint: m, program: prog, globals: policyGlobals(makePolicy('mirror', {}, 2)), timeout: 0 });
  t.is(h.mode, 'program+mirror');
  t.false(h.counting, 'no fuse_kfunc_stats map');
  const data = randomBytes(400_000);
  fs.writeFileSync(path.join(m, 'f'), data);
  dropCaches();
  t.true(fs.readFileSync(path.join(m, 'f')).equals(data));
  for (const x of r) t.true(fs.readFileSync(path.join(x, 'f')).equals(data), x);
  const s = await h.stats();
  t.log(JSON.stringify(s));
  t.is(s.READ?.daemon ?? 0, 0, 'READ served by the program');
  t.is(s.WRITE?.daemon ?? 0, 0, 'WRITE served by the program');
  for (const [op, v] of Object.entries(s)) t.is(v.kernel, null, op);
  await h.close();
  t.false(mounted(m));
});

async function rejects(t: import('ava').ExecutionContext, o: Parameters<typeof mount>[0], kind: string, re: RegExp) {
  const e = await t.throwsAsync(mount({ buildDir: build, ...o }), { instanceOf: MountError, message: re });
  t.is(e?.kind, kind, e?.message);
  t.false(mounted(fs.existsSync(o.mountpoint) ? fs.realpathSync(o.mountpoint) : o.mountpoint), 'no mount left behind');
  return e!;
}

test.serial('bad inputs: clear errors, no mount left', async (t) => {
  const d = dirs('bad');
  const file = path.join(work, 'plain');
  fs.writeFileSync(file, 'x');
  await rejects(t, { backings: [path.join(work, 'nope')], mountpoint: d.m }, 'backing-missing', /backing directory .*nope does not exist/);
  await rejects(t, { backings: [d.b], mountpoint: file }, 'mountpoint-not-dir', /mountpoint .*plain is not a directory/);
  await rejects(t, { backings: [d.b], mountpoint: '/proc' }, 'mountpoint-busy', /\/proc is busy: already a mount point \(proc\)/);
  await rejects(t, { backings: [d.b], mountpoint: d.m, program: path.join(work, 'missing.bpf.o') }, 'program-missing', /does not exist/);

  const bad = path.join(work, 'syntax.bpf.c');
  fs.writeFileSync(bad, '#include "vmlinux.h"\nint x = ;\n');
  const ce = await rejects(t, { backings: [d.b], mountpoint: d.m, program: bad }, 'compile', /syntax\.bpf\.c:2:\d+: error:/);
  t.true(ce.diagnostics!.length > 0);

  const noops = path.join(work, 'noops.bpf.c');
  fs.writeFileSync(noops, '#include "vmlinux.h"\n#include <bpf/bpf_helpers.h>\nchar L[] SEC("license") = "GPL";\n' +
    'SEC("xdp") int p(void *c) { return 2; }\n');
  await rejects(t, { backings: [d.b], mountpoint: d.m, program: noops }, 'no-struct-ops', /has no struct_ops map/);

  const vbad = path.join(work, 'reject.bpf.c');
  fs.writeFileSync(vbad, [
    '#include "vmlinux.h"', '#include <bpf/bpf_helpers.h>', '#include <bpf/bpf_tracing.h>',
    '#include "fuse_kfunc.h"', '#include "fuse_kfunc_stats.h"', 'char L[] SEC("license") = "GPL";',
    'SEC("struct_ops.s/request")', 'int BPF_PROG(bad_request, struct fuse_bpf_ctx *fctx, struct fuse_args *args)', '{',
    '\t__u32 op = fctx->opcode;', '\tstruct fuse_kfunc_op_stats *s = bpf_map_lookup_elem(&fuse_kfunc_stats, &op);',
    '\treturn s->served; /* no NULL check: rejected */', '}',
    'SEC(".struct_ops.link")', 'struct fuse_bpf_ops bad_ops = { .request = (void *)bad_request, .name = "bad" };', '',
  ].join('\n'));
  const ve = await rejects(t, { backings: [d.b], mountpoint: d.m, program: vbad }, 'verifier', /bad_request|verifier|reject/i);
  t.regex(ve.log ?? '', /invalid mem access|R\d+ invalid|null/i, 'the verifier log is there');
  t.log(ve.message.split('\n').slice(0, 6).join('\n'));

  // Not root: the CLI as nobody.
  const r = spawnSync(process.execPath, [path.join(REPO, 'bin/fuse-kfunc.js'), 'mount', d.b, d.m], { uid: 65534, gid: 65534, encoding: 'utf8' });
  t.is(r.status, 1, r.stderr);
  t.regex(r.stderr, /mount needs root/);
  t.false(mounted(d.m));
});

test.serial('CLI: mount in the foreground, stats from another process, SIGTERM unmounts', async (t) => {
  const d = dirs('cli');
  fs.writeFileSync(path.join(d.b, 'f'), 'hello\n');
  const { spawn } = await import('node:child_process');
  const cli = path.join(REPO, 'bin/fuse-kfunc.js');
  const p = spawn(process.execPath, [cli, 'mount', d.b, d.m, '--program', path.join(REPO, 'bpf/examples/passthrough.bpf.c')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  p.stdout.on('data', (x) => (out += x));
  p.stderr.on('data', (x) => (out += x));
  const deadline = Date.now() + 240_000;
  while (!/stats: fuse-kfunc stats/.test(out) && Date.now() < deadline && p.exitCode === null) await new Promise((r) => setTimeout(r, 200));
  t.regex(out, /mounted .* on .*cli\/m \(program/, out);
  t.is(fs.readFileSync(path.join(d.m, 'f'), 'utf8'), 'hello\n');
  await new Promise((r) => setTimeout(r, 1500));
  const s = spawnSync(process.execPath, [cli, 'stats', d.m], { encoding: 'utf8' });
  t.is(s.status, 0, s.stderr);
  t.log(s.stdout);
  t.regex(s.stdout, /READ\s+[1-9]\d*\s+0/);
  const exited = new Promise((r) => p.on('exit', r));
  p.kill('SIGTERM');
  await exited;
  t.false(mounted(fs.realpathSync(d.m)));
  t.regex(out, /unmounted/);
});
