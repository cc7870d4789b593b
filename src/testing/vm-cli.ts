// `fuse-kfunc vm run` tested as a user meets it: a runner stopped by SIGTERM must take its
// QEMU with it. (README's in-guest flow, which needs the kernel build inside the guest, runs
// with the other doc commands: src/testing/doc-commands.ts.) Run by npm test after its main
// boot, as TAP.
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { tapWriter } from './tap.ts';

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

export async function vmCliTap(repo: string): Promise<string> {
  const { check, text } = tapWriter();

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

  return text();
}
