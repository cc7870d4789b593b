// KVM here is a PVM host that hangs a stock kernel: use it only when a probe boot of
// this very kernel finishes; remember the answer per kernel build.
import { accessSync, constants, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { runVm } from './qemu.ts';

const discard = () => new Writable({ write(_c, _e, cb) { cb(); } });

export async function chooseAccel(kernel: string, repo: string, stateDir: string): Promise<'tcg' | 'kvm'> {
  const forced = process.env.FUSE_KFUNC_ACCEL;
  if (forced === 'tcg' || forced === 'kvm') return forced;
  try { accessSync('/dev/kvm', constants.R_OK | constants.W_OK); } catch { return 'tcg'; }
  const memo = join(stateDir, 'accel.json');
  if (existsSync(memo)) {
    try { return JSON.parse(readFileSync(memo, 'utf8')).accel; } catch { /* probe again */ }
  }
  process.stderr.write('vm: probing KVM with a short boot (falls back to TCG if it hangs)...\n');
  let accel: 'tcg' | 'kvm' = 'tcg';
  try {
    const r = await runVm({ kernel, repo, command: ['true'], accel: 'kvm', timeoutSec: 20, stdout: discard(), stderr: discard(), memMB: 512, cpus: 1 });
    if (r.exitCode === 0) accel = 'kvm';
  } catch { /* tcg */ }
  process.stderr.write(`vm: using ${accel === 'kvm' ? 'KVM' : 'TCG (software emulation)'}\n`);
  try { writeFileSync(memo, JSON.stringify({ accel, probedAt: new Date().toISOString() }) + '\n'); } catch { /* read-only */ }
  return accel;
}
