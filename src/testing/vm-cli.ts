// `fuse-kfunc vm run` tested as a user meets it: README's in-guest flow (mount a backing
// directory with bpf/examples/tree.bpf.c, read through it, stats) in one boot, which needs
// the kernel build inside the guest; and a runner stopped by SIGTERM, which must take its
// QEMU with it. Run by npm test after its main boot, as TAP.
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';

const BIN = (repo: string) => join(repo, 'bin/fuse-kfunc.js');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch { return false; }
}

/** QEMU processes whose parent is @ppid. */
function qemuChildren(ppid: number): number[] {
  const r = spawnSync('pgrep', ['-P', String(ppid), '-f', 'qemu-system'], { encoding: 'utf8' });
  return (r.stdout ?? '').split('\n').filter(Boolean).map(Number);
}

// README: "In the guest (`npx fuse-kfunc vm shell`), mount and watch where requests are
// served". Node instead of npx (no registry in the guest); the rest as printed there.
const README_GUEST_FLOW = [
  'set -e',
  'mkdir -p /tmp/backing /tmp/mnt',
  'echo "hello from the backing tree" > /tmp/backing/f',
  'node bin/fuse-kfunc.js mount /tmp/backing /tmp/mnt --program bpf/examples/tree.bpf.c & pid=$!',
  'i=0; until grep -q " /tmp/mnt " /proc/mounts; do i=$((i+1)); [ $i -lt 300 ] || exit 3; kill -0 $pid; sleep 0.2; done',
  'cat /tmp/mnt/f',
  'node bin/fuse-kfunc.js stats /tmp/mnt',
  'kill $pid; wait $pid || true',
].join('\n');

export async function vmCliTap(repo: string): Promise<string> {
  const lines: string[] = [];
  let n = 0;
  const check = (ok: boolean, what: string, out?: string) => {
    lines.push(`${ok ? 'ok' : 'not ok'} ${++n} - ${what}`);
    if (!ok && out) for (const l of out.trimEnd().split('\n').slice(-15)) lines.push(`# ${l}`);
  };

  const flow = spawnSync(process.execPath, [BIN(repo), 'vm', 'run', '--timeout', '600', '--', 'sh', '-c', README_GUEST_FLOW], {
    cwd: repo, encoding: 'utf8', maxBuffer: 64 << 20,
  });
  const out = `${flow.stdout ?? ''}${flow.stderr ?? ''}`;
  check(flow.status === 0 && out.includes('hello from the backing tree') && /READ/.test(flow.stdout ?? ''),
    'README in-guest flow: vm run -- fuse-kfunc mount --program bpf/examples/tree.bpf.c, cat, stats', out);

  // A runner killed with SIGTERM while its guest runs.
  const runner = spawn(process.execPath, [BIN(repo), 'vm', 'run', '--timeout', '300', '--', 'sleep', '240'], {
    cwd: repo, stdio: 'ignore',
  });
  let qemu: number[] = [];
  for (let i = 0; i < 600 && !qemu.length; i++) {
    await sleep(100);
    qemu = qemuChildren(runner.pid!);
  }
  // Let the guest boot and start its command: a runner is usually stopped mid-command.
  await sleep(15_000);
  const exited = new Promise<number | null>((r) => runner.on('exit', (code, sig) => r(code ?? (sig ? 128 : null))));
  runner.kill('SIGTERM');
  const code = await Promise.race([exited, sleep(15_000).then(() => undefined)]);
  await sleep(2000);
  const left = qemu.filter(alive);
  check(qemu.length === 1 && code !== undefined && left.length === 0,
    `vm run stopped by SIGTERM leaves no QEMU (qemu ${qemu.join(',') || 'never seen'}, runner exit ${code}, left ${left.join(',') || 'none'})`);
  // Whatever happened, leave nothing running.
  for (const pid of left) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  if (alive(runner.pid!)) runner.kill('SIGKILL');

  return [`1..${n}`, ...lines].join('\n') + '\n';
}
