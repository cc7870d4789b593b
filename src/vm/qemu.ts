// Boot the built kernel in QEMU with the host's root over 9p and run one command.
// The job goes in through a 9p share; the command's stdout/stderr come back on two
// serial ports (the kernel console has the first one to itself, logged to a file).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { constants, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseConsole, reportBlocks, tail, type ConsoleReport, type ReportBlock } from './console.ts';
import { cacheDir } from '../util/paths.ts';

export interface VmOptions {
  kernel: string;              // bzImage
  command: string[];           // argv run in the guest by /bin/sh
  repo: string;                // shared read-write at the same path
  cache?: string;              // the build cache, shared read-only at the same path
  cwd?: string;                // guest working dir (default: repo)
  env?: Record<string, string>;
  timeoutSec?: number;
  memMB?: number;
  cpus?: number;
  accel?: 'tcg' | 'kvm';
  interactive?: boolean;       // a shell on the terminal instead of a command
  stdout?: NodeJS.WritableStream;
  stderr?: NodeJS.WritableStream;
  extraAppend?: string;
  icount?: boolean;            // guest time follows executed instructions (benchmarks)
}

export interface VmResult {
  exitCode: number;            // the command's, or the runner's code for a VM failure
  failure?: 'timeout' | 'kernel' | 'boot' | 'no-exit';
  message?: string;
  console: string;
  report: ConsoleReport;
  seconds: number;
}

export const EXIT_TIMEOUT = 124;
export const EXIT_KERNEL = 125;
export const EXIT_BOOT = 126;

export const shellQuote = (s: string) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

function listen(path: string, sink: NodeJS.WritableStream | undefined): Promise<Server> {
  return new Promise((res, rej) => {
    const srv = createServer((sock: Socket) => {
      sock.on('data', (b) => sink?.write(b));
      sock.on('error', () => {});
    });
    srv.on('error', rej);
    srv.listen(path, () => res(srv));
  });
}

export function qemuArgs(o: VmOptions, job: string, sockets: { out: string; err: string }): string[] {
  const accel = o.accel ?? 'tcg';
  const append = [
    'console=ttyS0', 'root=hostroot', 'rootfstype=9p',
    'rootflags=trans=virtio,version=9p2000.L,msize=262144,cache=loose', 'ro',
    `init=${join(o.repo, 'src/vm/guest-init.sh')}`, 'panic=-1', 'oops=panic', 'loglevel=5',
    'tsc=reliable', 'no_timer_check',
    o.extraAppend ?? '',
  ].filter(Boolean).join(' ');
  const args = [
    '-nodefaults', '-display', 'none', '-no-reboot',
    '-machine', 'q35', '-m', String(o.memMB ?? 2048), '-smp', String(o.cpus ?? 2),
    '-kernel', o.kernel, '-append', append,
    '-fsdev', 'local,id=root,path=/,security_model=none,readonly=on,multidevs=remap',
    '-device', 'virtio-9p-pci,fsdev=root,mount_tag=hostroot',
    '-fsdev', `local,id=job,path=${job},security_model=none`,
    '-device', 'virtio-9p-pci,fsdev=job,mount_tag=job',
    '-fsdev', `local,id=repo,path=${o.repo},security_model=none`,
    '-device', 'virtio-9p-pci,fsdev=repo,mount_tag=repo',
    ...(o.cache ? ['-fsdev', `local,id=cache,path=${o.cache},security_model=none,readonly=on,multidevs=remap`,
      '-device', 'virtio-9p-pci,fsdev=cache,mount_tag=cache'] : []),
    '-device', 'virtio-rng-pci',
    '-serial', `file:${join(job, 'console.log')}`,
  ];
  if (o.interactive) {
    args.push('-chardev', 'stdio,id=tty,signal=off', '-serial', 'chardev:tty');
  } else {
    args.push('-chardev', `socket,id=out,path=${sockets.out}`, '-serial', 'chardev:out');
  }
  args.push('-chardev', `socket,id=err,path=${sockets.err}`, '-serial', 'chardev:err');
  if (accel === 'kvm') args.push('-accel', 'kvm', '-cpu', 'host');
  // icount needs single-threaded TCG: one vCPU thread, so a deterministic instruction clock.
  // la57=off: with 5-level paging, an interrupt taken while identify_cpu() has cleared the
  // boot CPU's feature bits makes KASAN (whose shadow bounds follow X86_FEATURE_LA57) call a
  // valid irq_desc "wild-memory-access" and turn lockdep off for the boot (docs/reliability.md).
  else args.push('-accel', o.icount ? 'tcg,thread=single' : 'tcg,thread=multi', '-cpu', 'max,la57=off');
  if (o.icount) args.push('-icount', 'shift=0,sleep=off');
  return args;
}

/**
 * The kernel build guest commands should use (vmlinux.h, bpftool, libbpf headers): the one
 * the booted bzImage belongs to, else the host's current build. The guest's HOME is a tmpfs,
 * so a tool looking in ~/.cache/fuse-kfunc/builds/current there finds nothing; the cache is
 * shared at its host path, read-only, and FUSE_KFUNC_BUILD points into it.
 */
export function guestBuildDir(kernel: string, cache?: string): string | undefined {
  const own = dirname(resolve(kernel));
  if (existsSync(join(own, 'vmlinux.h'))) return own;
  const current = cache && join(cache, 'builds', 'current');
  if (current && existsSync(join(current, 'vmlinux.h'))) return realpathSync(current);
  return undefined;
}

/**
 * The modules of the booted kernel's own build (fuse.ko, FUSE being a module), which the
 * guest's init loads: never another build's, whose symbols the kernel may not have.
 */
export function guestModulesDir(kernel: string): string | undefined {
  const own = join(dirname(resolve(kernel)), 'modules');
  return existsSync(own) ? own : undefined;
}

/** What the guest's init exports before running the job (guest-init.sh sources it). */
export function guestEnv(o: VmOptions, cwd: string, cache?: string): Record<string, string> {
  const build = guestBuildDir(o.kernel, cache);
  const modules = guestModulesDir(o.kernel);
  return {
    REPO: o.repo, JOB_CWD: cwd,
    ...(cache ? { CACHE: cache } : {}),
    ...(build ? { FUSE_KFUNC_BUILD: build } : {}),
    ...(modules ? { FUSE_KFUNC_MODULES: modules } : {}),
    ...(o.interactive ? { INTERACTIVE: '1' } : { REPO_CACHE: 'loose' }),
    ...(o.env ?? {}),
  };
}

/**
 * A failed run's message and every kernel report in it, in full, on stderr: not only the
 * first line, as the second splat is often the cause. Returns the reports.
 */
export function printFailure(r: VmResult): ReportBlock[] {
  process.stderr.write(`vm: ${r.message}\n`);
  const blocks = reportBlocks(r.console, r.report.problems.filter((p) => p.kind !== 'boot'));
  for (const [i, b] of blocks.entries()) {
    process.stderr.write(`\n--- kernel report ${i + 1}/${blocks.length} (${b.kind}) ---\n${b.lines.join('\n')}\n---\n`);
  }
  return blocks;
}

// A runner stopped by a signal (a closed terminal, a CI timeout, `kill`) takes its guest
// with it: QEMU is its child, not its process group's, and would run on, orphaned.
const STOP_SIGNALS: NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP'];

export async function runVm(o: VmOptions): Promise<VmResult> {
  if (!existsSync(o.kernel)) throw new Error(`kernel image ${o.kernel} not found: run \`fuse-kfunc kernel build\``);
  const t0 = Date.now();
  const job = mkdtempSync(join(tmpdir(), 'fuse-kfunc-vm-'));
  const sockets = { out: join(job, 'out.sock'), err: join(job, 'err.sock') };
  const cwd = o.cwd ?? o.repo;
  // Repo and cache get shares of their own: they may live under /tmp or /var/tmp, which
  // the guest covers with tmpfs.
  const cache = o.cache ?? (existsSync(cacheDir()) ? cacheDir() : undefined);
  o = { ...o, cache };
  const env = guestEnv(o, cwd, cache);
  writeFileSync(join(job, 'env'), Object.entries(env).map(([k, v]) => `export ${k}=${shellQuote(v)}\n`).join(''));
  writeFileSync(join(job, 'cmd'), o.command.map(shellQuote).join(' ') + '\n');

  const servers = [
    ...(o.interactive ? [] : [await listen(sockets.out, o.stdout ?? process.stdout)]),
    await listen(sockets.err, o.stderr ?? process.stderr),
  ];
  const child = spawn('qemu-system-x86_64', qemuArgs(o, job, sockets), {
    stdio: o.interactive ? 'inherit' : ['ignore', 'ignore', 'pipe'],
  });
  let qemuErr = '';
  child.stderr?.on('data', (b) => { qemuErr += b.toString(); });
  const onSignal = (sig: NodeJS.Signals) => {
    child.kill('SIGKILL');
    rmSync(job, { recursive: true, force: true });
    process.exit(128 + (constants.signals[sig] ?? 15));
  };
  for (const sig of STOP_SIGNALS) process.on(sig, onSignal);
  let timedOut = false;
  const timeoutSec = o.timeoutSec ?? 900;
  const timer = o.interactive ? undefined : setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, timeoutSec * 1000);
  const code: number | null = await new Promise((res, rej) => {
    child.on('error', (e) => rej(new Error(`cannot start qemu-system-x86_64 (${e.message}): apt-get install qemu-system-x86`)));
    child.on('close', (c) => res(c));
  });
  if (timer) clearTimeout(timer);
  for (const sig of STOP_SIGNALS) process.off(sig, onSignal);
  await new Promise((r) => setTimeout(r, 50)); // let the sockets drain
  for (const s of servers) s.close();

  const consoleText = existsSync(join(job, 'console.log')) ? readFileSync(join(job, 'console.log'), 'utf8') : '';
  const report = parseConsole(consoleText);
  const rcFile = join(job, 'rc');
  const rc = existsSync(rcFile) ? Number(readFileSync(rcFile, 'utf8').trim()) : undefined;
  rmSync(job, { recursive: true, force: true });
  const seconds = (Date.now() - t0) / 1000;
  const res: VmResult = { exitCode: rc ?? EXIT_BOOT, console: consoleText, report, seconds };
  const shown = () => `\n--- last console lines ---\n${tail(consoleText, 40).join('\n')}\n---`;
  const serious = report.problems.filter((p) => p.kind !== 'boot');
  if (timedOut) {
    Object.assign(res, { exitCode: EXIT_TIMEOUT, failure: 'timeout', message: `guest command timed out after ${timeoutSec}s (stopped)${shown()}` });
  } else if (serious.length) {
    Object.assign(res, { exitCode: EXIT_KERNEL, failure: 'kernel',
      message: `the guest kernel reported ${serious.map((p) => p.kind).join(', ')}: ${serious[0].line}${shown()}` });
  } else if (!report.booted) {
    Object.assign(res, { exitCode: EXIT_BOOT, failure: 'boot',
      message: `the guest did not boot (qemu exit ${code})${qemuErr ? `\nqemu: ${qemuErr.trim()}` : ''}${shown()}` });
  } else if (rc === undefined) {
    Object.assign(res, { exitCode: EXIT_KERNEL, failure: 'no-exit', message: `the guest stopped before the command finished${shown()}` });
  }
  return res;
}
