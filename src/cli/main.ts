// fuse-kfunc: the command line of the project (kernel workbench, VM runner, tests).
import { join } from 'node:path';
import { repoRoot, cacheDir } from '../util/paths.ts';
import { parseArgs, numberFlag, UsageError, type Parsed } from './args.ts';
import { prepare, exportSeries, worktreeStatus } from '../kernel/worktree.ts';
import { build, currentArtifacts, currentKey, artifactsIn, findVariant, DEBUG_VARIANT } from '../kernel/build.ts';
import { runDebugKernel } from '../testing/debug-kernel.ts';
import { checkTarball, readBase } from '../kernel/base.ts';
import { buildUnpatched, findUnpatched } from '../kernel/unpatched.ts';
import { runVm } from '../vm/qemu.ts';
import { chooseAccel } from '../vm/accel.ts';
import { runAll } from '../testing/suite.ts';
import { runSelftests, SelectionError } from '../testing/selftest.ts';
import { cachePaths } from '../util/paths.ts';
import { demo, DEMO_HELP } from '../demo/index.ts';
import { mountCmd, statsCmd } from '../sdk/cli.ts';
import { policyCmd } from '../policy/cli.ts';
import { bench, benchGuestCmd, parseBenchArgs, BENCH_HELP } from '../bench/index.ts';

const HELP: Record<string, string> = {
  main: `fuse-kfunc — a BPF hook on fuse_simple_request plus bpf_vfs_* kfuncs, and its SDK

Usage: fuse-kfunc <command> [options]

Commands:
  kernel prepare|build|export|status   the patched Linux 6.12 work tree and its build
  vm run [options] -- CMD...           boot the built kernel and run CMD in it
  vm shell                             an interactive shell in the guest
  selftest [NAME...] [--filter P] [--list] [--kernel PATH|--debug]
                                       the kernel selftests alone, one VM boot
  test [--unit|--vm]                   everything npm test runs (unit, guest, selftests)
  test --debug-kernel                  selftests + hook suites on a KASAN/lockdep kernel
  demo [--kernel PATH]                 the mirror policy end to end in the VM
  mount BACKING... MOUNTPOINT [--program OBJ|SRC | --policy NAME] [--userspace] [--passthrough]
                                       mount with the FUSE daemon (+ a BPF program), foreground
  stats MOUNTPOINT                     per-opcode kernel/daemon counts of a running mount
  policy list|show|compile NAME        built-in policies: their generated BPF C and objects
  bench [--quick] [--icount]           benchmarks in the VM -> docs/benchmarks.md

Environment:
  FUSE_KFUNC_CACHE   cache dir for the kernel tree and builds (default ~/.cache/fuse-kfunc)
  FUSE_KFUNC_ACCEL   tcg or kvm (default: probe KVM once per build, else TCG)

Run \`fuse-kfunc <command> --help\` for details.`,
  kernel: `Usage: fuse-kfunc kernel <prepare|build|export|status> [options]

  prepare [--force]   extract the base (kernel-patch/BASE) into a git work tree at
                      $FUSE_KFUNC_CACHE/linux, commit it (tag fuse-kfunc-base) and apply
                      kernel-patch/series with git am. Refuses to discard unexported work
                      unless --force.
  build [--force] [-jN]
                      build bzImage + vmlinux, libbpf, bpftool, vmlinux.h and the series'
                      selftests. Cached by hash of (base, series, config fragment); with
                      unexported changes in the work tree, builds those (incrementally).
  build --unpatched   the base kernel WITHOUT the series, same config (tinyconfig +
                      kernel-patch/config.fragment; the options only the series defines
                      are dropped and tolerated), bzImage only, kept apart in
                      $FUSE_KFUNC_CACHE/unpatched and never used as the current build:
                      the reference of \`fuse-kfunc bench --overhead\`.
  build --debug       the patched kernel with kernel-patch/debug.fragment on top (KASAN,
                      lockdep, PROVE_RCU, DEBUG_ATOMIC_SLEEP, DEBUG_LIST), in its own
                      $FUSE_KFUNC_CACHE/debug (object dir, tools, artifacts; keys debug-…),
                      never the current build: what \`test --debug-kernel\` boots.
  export              write the work tree's commits to kernel-patch/ (format-patch, stable
                      names, the cover letter's subject and text kept) and rewrite series.
  status              base version, work-tree state (unexported commits, edits), build cache.`,
  vm: `Usage: fuse-kfunc vm run [options] -- CMD [ARGS...]
       fuse-kfunc vm shell [options]

Boots the last built kernel (or --kernel) under QEMU with the host's / shared read-only
over 9p, tmpfs on /tmp /run /var/tmp (HOME=/tmp/home), proc, sys, dev, bpffs, tracefs, and this repo
read-write at its own path. CMD's stdout/stderr stream here; its exit code is ours.
A timeout exits 124, a kernel oops/panic/WARN/BUG 125, a failed boot 126, each with the
last console lines.

Options:
  --kernel PATH     bzImage to boot (default: the current build; builds if none)
  --timeout SEC     stop the guest after SEC seconds (default 900)
  --mem MB          guest memory (default 2048)
  --cpus N          guest CPUs (default 2)
  --icount          QEMU -icount: guest time follows executed instructions (timings that
                    do not move with the host's load; TCG only)
  --accel tcg|kvm   override the KVM probe
  --cwd DIR         guest working directory (default: the current directory)
  --console         print the whole kernel console afterwards`,
  selftest: `Usage: fuse-kfunc selftest [NAME...] [--filter PATTERN] [--list]
                         [--kernel PATH | --debug] [--timeout SEC]

Runs the series' kernel selftests (tools/testing/selftests/filesystems/fuse_bpf, the
kselftest harness binary fuse_bpf_test) and nothing else, in one VM boot: builds or
reuses the kernel (cached), names the build and bzImage it boots, streams the TAP lines,
then prints the failures, a timing line and last "N passed, N failed".
Exit 0 only if every selected test passed; 1 on a failure, SKIP or missing result;
124 guest timeout, 125 kernel oops/WARN/BUG (printed whole), 126 failed boot.

  NAME...           run these tests only: fixture.test or test
                    (fbt.read_gap_zeroed or read_gap_zeroed); an unknown name is an error
  --filter PATTERN  run the tests whose name contains PATTERN, or matches it as a glob
                    with * (fbt.ns_* or ns_*); comma-separated patterns add up
  --list            print the test names (with NAME/--filter: those selected), no boot;
                    read from the build's fuse_bpf_test -l on the host
  --kernel PATH     boot this bzImage instead; the selftests binary is still the current
                    build's (built against the series' headers)
  --debug           the debug kernel build (\`kernel build --debug\`: KASAN, lockdep) and
                    its selftests, 4096 MB guest memory
  --timeout SEC     stop the guest after SEC seconds (default 900; 3600 with --debug)

Examples:
  fuse-kfunc selftest --list
  fuse-kfunc selftest --filter 'ns_*'
  fuse-kfunc selftest read_gap_zeroed fbt.union_whiteout`,
  test: `Usage: fuse-kfunc test [--unit] [--vm]
       fuse-kfunc test --debug-kernel [--guest FILE,...] [--timeout SEC] [--jobs N]

Runs the host unit tests (ava), builds or reuses the kernel, then boots it once to run the
guest suite (ava in the guest) and the kernel selftests. The last line is
"N passed, N failed" over all of them. --unit runs only host tests, --vm only the VM part.

--debug-kernel (npm run test:debug-kernel; on demand, not in npm test or CI): builds or
reuses the debug kernel (\`kernel build --debug\`; a cold build takes 20-40 minutes on 2
cores), boots it once with 4 GB and runs the kernel selftests and the guest suites
fuse-posix, policies and reliability (those committed). Any KASAN, lockdep, RCU, list,
atomic-sleep report or WARN in the console fails the run and is printed whole.
--guest runs the named guest files instead (committed or not); --timeout bounds the
guest run (default 4 h).`,
};

function help(topic: string): void {
  process.stdout.write((HELP[topic] ?? HELP.main) + '\n');
}

async function kernelCmd(p: Parsed): Promise<number> {
  const repo = repoRoot();
  const sub = p.positional[1];
  if (p.flags.has('help') || !sub) { help('kernel'); return sub ? 0 : 2; }
  switch (sub) {
    case 'prepare': await prepare(repo, { force: p.flags.has('force') }); return 0;
    case 'build': {
      if (p.flags.has('debug')) {
        const a = await build(repo, { force: p.flags.has('force'), jobs: numberFlag(p, 'jobs'), variant: DEBUG_VARIANT });
        process.stdout.write(`${a.release} (debug)\n  bzImage   ${a.bzImage}\n  config    ${join(a.dir, 'config')}\n` +
          `  selftests ${a.selftests ?? '(none in this series)'}\n`);
        return 0;
      }
      if (p.flags.has('unpatched')) {
        const u = await buildUnpatched(repo, { force: p.flags.has('force'), jobs: numberFlag(p, 'jobs') });
        process.stdout.write(`${u.release} (unpatched)\n  bzImage   ${u.bzImage}\n`);
        return 0;
      }
      const a = await build(repo, { force: p.flags.has('force'), jobs: numberFlag(p, 'jobs') });
      process.stdout.write(`${a.release}\n  bzImage   ${a.bzImage}\n  vmlinux   ${a.vmlinux}\n  vmlinux.h ${a.vmlinuxH}\n` +
        `  libbpf    ${a.libbpfLib} (headers ${a.libbpfInclude})\n  bpftool   ${a.bpftool}\n` +
        `  selftests ${a.selftests ?? '(none in this series)'}\n`);
      return 0;
    }
    case 'export': {
      const r = exportSeries(repo);
      process.stdout.write(`exported ${r.written.length} file(s) to kernel-patch/` +
        `${r.removed.length ? `; removed ${r.removed.join(', ')}` : ''}\n`);
      for (const w of r.written) process.stdout.write(`  ${w}\n`);
      return 0;
    }
    case 'status': return kernelStatus(repo);
    default: throw new UsageError(`unknown kernel command "${sub}" (prepare, build, export, status)`);
  }
}

function kernelStatus(repo: string): number {
  const base = readBase(repo);
  const check = checkTarball(base);
  process.stdout.write(`base:      ${check.message}\n`);
  const st = worktreeStatus(repo);
  process.stdout.write(`cache:     ${cacheDir()}\n`);
  if (!st.exists) {
    process.stdout.write(`work tree: none (run \`fuse-kfunc kernel prepare\`)\n`);
  } else {
    process.stdout.write(`work tree: ${st.path}\n`);
    if (st.seriesChanged && !st.dirty) process.stdout.write('           kernel-patch/ changed since prepare: `kernel prepare` (or build) re-applies it\n');
    if (st.seriesChanged && st.dirty) process.stdout.write('           kernel-patch/ ALSO changed since prepare: export would overwrite it; compare first\n');
    if (st.unexportedCommits.length) {
      process.stdout.write(`           ${st.unexportedCommits.length} commit(s) not exported (\`fuse-kfunc kernel export\`):\n`);
      for (const c of st.unexportedCommits) process.stdout.write(`             ${c}\n`);
    }
    if (st.uncommitted.length) {
      process.stdout.write(`           ${st.uncommitted.length} uncommitted edit(s) (commit them, then export):\n`);
      for (const u of st.uncommitted.slice(0, 20)) process.stdout.write(`             ${u}\n`);
    }
    if (!st.dirty) process.stdout.write('           in sync with kernel-patch/ (nothing to export)\n');
  }
  if (check.found) {
    const { key } = currentKey(repo);
    const a = artifactsIn(join(cachePaths().builds, key));
    process.stdout.write(`build:     ${a ? `${key} built (${a.release})` : `${key} not built yet (\`fuse-kfunc kernel build\`)`}\n`);
    const u = findUnpatched(repo);
    process.stdout.write(`unpatched: ${u ? `${u.key} built (${u.release})` : 'not built (`fuse-kfunc kernel build --unpatched`, for bench --overhead)'}\n`);
    const d = findVariant(repo, DEBUG_VARIANT);
    process.stdout.write(`debug:     ${d ? `${d.key} built (${d.release})` : 'not built (`fuse-kfunc kernel build --debug`, for test --debug-kernel)'}\n`);
  }
  return 0;
}

async function vmCmd(p: Parsed): Promise<number> {
  const sub = p.positional[1];
  if (p.flags.has('help') || !sub) { help('vm'); return sub ? 0 : 2; }
  const repo = repoRoot();
  if (sub !== 'run' && sub !== 'shell') throw new UsageError(`unknown vm command "${sub}" (run, shell)`);
  if (sub === 'run' && p.rest.length === 0) throw new UsageError('vm run needs a command after `--`, e.g. `fuse-kfunc vm run -- uname -r`');
  let kernel = p.flags.get('kernel');
  let stateDir = cacheDir();
  if (typeof kernel !== 'string') {
    const a = currentArtifacts() ?? await build(repo);
    kernel = a.bzImage;
    stateDir = a.dir;
  }
  const accelFlag = p.flags.get('accel');
  if (accelFlag !== undefined && accelFlag !== 'tcg' && accelFlag !== 'kvm') throw new UsageError('--accel is tcg or kvm');
  const accel = (accelFlag as 'tcg' | 'kvm' | undefined) ?? await chooseAccel(kernel, repo, stateDir);
  const cwd = typeof p.flags.get('cwd') === 'string' ? p.flags.get('cwd') as string : process.cwd();
  const r = await runVm({
    kernel, repo, accel, cwd, command: sub === 'shell' ? ['true'] : p.rest, interactive: sub === 'shell',
    timeoutSec: numberFlag(p, 'timeout'), memMB: numberFlag(p, 'mem'), cpus: numberFlag(p, 'cpus'),
    icount: p.flags.has('icount'),
  });
  if (p.flags.has('console')) process.stderr.write(r.console);
  if (r.failure) process.stderr.write(`fuse-kfunc vm: ${r.message}\n`);
  return r.exitCode;
}

async function selftestCmd(p: Parsed): Promise<number> {
  if (p.flags.has('help')) { help('selftest'); return 0; }
  const kernel = p.flags.get('kernel');
  const filter = p.flags.get('filter');
  if (kernel === true || kernel === '') throw new UsageError('--kernel wants the path of a bzImage');
  if (filter === true) throw new UsageError('--filter wants a pattern (a substring, or a glob with *)');
  try {
    return await runSelftests(repoRoot(), {
      names: p.positional.slice(1), filter, list: p.flags.has('list'), kernel, debug: p.flags.has('debug'),
      timeoutSec: numberFlag(p, 'timeout'),
    });
  } catch (e) {
    if (e instanceof SelectionError) throw new UsageError(e.message);
    throw e;
  }
}

async function main(argv: string[]): Promise<number> {
  const p = parseArgs(argv, ['kernel', 'timeout', 'mem', 'cpus', 'accel', 'cwd', 'jobs', 'repeats', 'runtime', 'configs', 'workloads', 'out', 'mode', 'command', 'guest', 'filter']);
  const cmd = p.positional[0];
  if (!cmd) { help('main'); return p.flags.has('help') ? 0 : 2; }
  switch (cmd) {
    case 'help': help(p.positional[1] ?? 'main'); return 0;
    case 'mount': return mountCmd(argv.slice(argv.indexOf('mount') + 1));
    case 'stats': return statsCmd(argv.slice(argv.indexOf('stats') + 1));
    case 'policy': return policyCmd(argv.slice(argv.indexOf('policy') + 1));
    case 'bench':
      if (p.flags.has('help')) { process.stdout.write(BENCH_HELP + '\n'); return 0; }
      if (p.flags.has('in-guest')) return benchGuestCmd(p.flags, repoRoot());
      return bench(parseBenchArgs(p.flags, repoRoot(), argv.slice(argv.indexOf('bench') + 1)));
    case 'kernel': return kernelCmd(p);
    case 'vm': return vmCmd(p);
    case 'selftest': return selftestCmd(p);
    case 'test':
      if (p.flags.has('help')) { help('test'); return 0; }
      if (p.flags.has('debug-kernel')) {
        const g = p.flags.get('guest');
        if (g === true || g === '') throw new UsageError('--guest wants a comma-separated list of guest test files');
        return runDebugKernel(repoRoot(), { timeoutSec: numberFlag(p, 'timeout'), jobs: numberFlag(p, 'jobs'), force: p.flags.has('force'),
          guestFiles: g?.split(',').map((f) => f.trim()).filter(Boolean) });
      }
      return runAll(repoRoot(), { unit: !p.flags.has('vm') || p.flags.has('unit'), vm: !p.flags.has('unit') || p.flags.has('vm') });
    case 'demo': {
      if (p.flags.has('help')) { process.stdout.write(DEMO_HELP + '\n'); return 0; }
      const accel = p.flags.get('accel');
      if (accel !== undefined && accel !== 'tcg' && accel !== 'kvm') throw new UsageError('--accel is tcg or kvm');
      const kernel = p.flags.get('kernel');
      return demo({ repo: repoRoot(), inGuest: p.flags.has('in-guest'), kernel: typeof kernel === 'string' ? kernel : undefined,
        timeoutSec: numberFlag(p, 'timeout'), accel: accel as 'tcg' | 'kvm' | undefined });
    }
    default: throw new UsageError(`unknown command "${cmd}"; see \`fuse-kfunc --help\``);
  }
}

// A reader that stops early (`fuse-kfunc policy show ... | head`) is not an error: stop quietly,
// as other command-line tools do, instead of dying on an unhandled EPIPE.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code !== 'EPIPE') throw e;
  process.exit(0);
});

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (e: Error) => {
    process.stderr.write(`fuse-kfunc: ${e.name === 'UsageError' ? 'usage: ' : ''}${e.message}\n`);
    process.exitCode = e.name === 'UsageError' ? 2 : 1;
  },
);
