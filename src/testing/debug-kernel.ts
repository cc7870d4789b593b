// `npm run test:debug-kernel`: the patched kernel rebuilt with KASAN, lockdep, PROVE_RCU,
// DEBUG_ATOMIC_SLEEP and DEBUG_LIST (kernel-patch/debug.fragment), booted once for the
// kernel selftests and the guest suites that drive the hook hardest. The console check of
// the normal run applies unchanged: with these options, it is what catches a use-after-free
// or a lock-order bug that the normal kernel executes silently. Not part of `npm test`: a
// cold debug build plus the slowed guest does not fit CI's budget.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { build, DEBUG_VARIANT, type Artifacts } from '../kernel/build.ts';
import { fmtDuration } from '../util/progress.ts';
import { runVmSuites, summarize, type SuiteResult } from './suite.ts';

/** The guest suites that exercise the hook, the kfuncs and the daemon fallback. */
export const DEBUG_GUEST_FILES = [
  'test/guest/fuse-posix.test.ts',
  'test/guest/kernel-names.test.ts',
  'test/guest/policies.test.ts',
  'test/guest/reliability.test.ts',
  'test/guest/tree.test.ts',
];

/**
 * The files to run: those committed to git (a file still being written would fail for its
 * own reasons and hide what this run is for); the rest are reported as skipped. Without
 * git (a tarball checkout), whatever exists.
 */
export function selectGuestFiles(wanted: string[], present: (f: string) => boolean): { run: string[]; skipped: string[] } {
  const run = wanted.filter(present);
  return { run, skipped: wanted.filter((f) => !run.includes(f)) };
}

function committed(repo: string): ((f: string) => boolean) | undefined {
  try {
    const files = new Set(execFileSync('git', ['-C', repo, 'ls-files', '-z', 'test/guest'], { encoding: 'utf8' }).split('\0'));
    return (f) => files.has(f) && existsSync(join(repo, f));
  } catch { return undefined; }
}

// KASAN's shadow takes an eighth of guest memory and lockdep's tables a few hundred MB more.
export const DEBUG_MEM_MB = 4096;

// Guest-side checks that the debug options are really live in the booted kernel: without
// them a clean console would prove nothing. KASAN announces itself at boot (pr_info, below
// the console loglevel but in dmesg); lockdep has /proc/lockdep_stats and turns
// debug_locks off after its first report or when its tables overflow.
const tapCheck = (n: number, desc: string, cond: string) => `if ${cond}; then echo "ok ${n} - ${desc}"; else echo "not ok ${n} - ${desc}"; fi`;
const BEFORE = {
  name: 'debugcheck',
  script: ['echo "1..3"', 'uname -r',
    tapCheck(1, 'KASAN initialized (dmesg)', 'dmesg | grep -q "KernelAddressSanitizer initialized"'),
    tapCheck(2, 'lockdep present (/proc/lockdep_stats)', 'test -r /proc/lockdep_stats'),
    tapCheck(3, 'lockdep on at boot (debug_locks 1)', 'grep -Eq "debug_locks:[[:space:]]+1" /proc/lockdep_stats'),
  ].join('\n'),
};
const AFTER = {
  name: 'lockdepafter',
  script: ['echo "1..1"', 'grep -E "debug_locks|lock-classes|direct dependencies" /proc/lockdep_stats | sed "s/^/# /"',
    tapCheck(1, 'lockdep still on after the suites (no report turned it off)', 'grep -Eq "debug_locks:[[:space:]]+1" /proc/lockdep_stats'),
  ].join('\n'),
};

export interface DebugRunOptions {
  timeoutSec?: number;
  jobs?: number;
  force?: boolean;
  /** Guest files to run instead of DEBUG_GUEST_FILES, committed or not (must exist). */
  guestFiles?: string[];
}

export async function runDebugKernel(repo: string, o: DebugRunOptions = {}): Promise<number> {
  const t0 = Date.now();
  const results: SuiteResult[] = [];
  process.stderr.write(`==> debug kernel: the patched kernel + ${DEBUG_VARIANT.fragments.join(', ')} (built apart, cached)\n`);
  let a: Artifacts | undefined;
  try {
    a = await build(repo, { variant: DEBUG_VARIANT, jobs: o.jobs, force: o.force });
  } catch (e) {
    process.stderr.write(`debug kernel build failed: ${(e as Error).message}\n`);
    results.push({ suite: 'kernel-build', passed: 0, failed: 1, notes: ['debug kernel build failed (see above)'] });
  }
  if (a) {
    const pick = o.guestFiles
      ? selectGuestFiles(o.guestFiles, (f) => existsSync(join(repo, f)))
      : selectGuestFiles(DEBUG_GUEST_FILES, committed(repo) ?? ((f) => existsSync(join(repo, f))));
    if (o.guestFiles && pick.skipped.length) {
      throw new Error(`--guest names files that do not exist: ${pick.skipped.join(', ')} (paths are relative to ${repo})`);
    }
    if (pick.skipped.length) process.stderr.write(`note: not committed yet, not run: ${pick.skipped.join(', ')} (name them with --guest to run them anyway)\n`);
    process.stderr.write(`==> guest suites under the debug kernel: ${pick.run.join(', ')}\n`);
    try {
      results.push(...await runVmSuites(repo, a, {
        guestFiles: pick.run, memMB: DEBUG_MEM_MB,
        // TCG runs a KASAN + lockdep kernel several times slower than the normal one.
        avaTimeout: '40m', testDeadlineSec: 1800, timeoutSec: o.timeoutSec ?? 4 * 3600,
        before: [BEFORE], after: [AFTER],
        env: { FUSE_KFUNC_DEBUG_KERNEL: '1' },
      }));
    } catch (e) {
      process.stderr.write(`guest run failed: ${(e as Error).message}\n`);
      results.push({ suite: 'vm', passed: 0, failed: 1, notes: [(e as Error).message.split('\n')[0]] });
    }
  }
  process.stderr.write(`==> debug kernel run: ${fmtDuration(Date.now() - t0)} in all\n`);
  return summarize(results);
}
