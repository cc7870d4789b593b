// The workloads: fio (Debian's) for data, metaloop (a fixture: each operation timed on its
// own) for metadata, and one job a user would run (untar a source tree, grep it). Every
// run also reports guest CPU time (all processes: the daemon's work counts) and the
// requests the daemon received per operation.
import { spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { totals, type MountStats } from '../sdk/stats.ts';

export interface Workload {
  name: string;
  label: string;
  kind: 'fio' | 'meta' | 'job';
  /** fio arguments (without filename/runtime/output), the metaloop op and its directory,
   *  or the job's name. */
  args: string[];
}

export const WORKLOADS: Workload[] = [
  { name: 'randread4k-direct', label: '4 KiB random read, O_DIRECT, psync, 1 job', kind: 'fio', args: ['--rw=randread', '--bs=4k', '--direct=1'] },
  { name: 'randread4k-buffered', label: '4 KiB random read, buffered, 1 job', kind: 'fio', args: ['--rw=randread', '--bs=4k', '--direct=0'] },
  { name: 'randwrite4k-direct', label: '4 KiB random write, O_DIRECT, 1 job', kind: 'fio', args: ['--rw=randwrite', '--bs=4k', '--direct=1'] },
  { name: 'randread4k-direct-2j', label: '4 KiB random read, O_DIRECT, 2 jobs', kind: 'fio', args: ['--rw=randread', '--bs=4k', '--direct=1', '--numjobs=2'] },
  { name: 'seqread128k-direct', label: '128 KiB sequential read, O_DIRECT', kind: 'fio', args: ['--rw=read', '--bs=128k', '--direct=1'] },
  { name: 'seqwrite128k-direct', label: '128 KiB sequential write, O_DIRECT', kind: 'fio', args: ['--rw=write', '--bs=128k', '--direct=1'] },
  { name: 'stat', label: 'stat(2) of one file (zero entry/attr timeouts)', kind: 'meta', args: ['stat'] },
  { name: 'open-close', label: 'open(2)+close(2) of one file', kind: 'meta', args: ['open'] },
  { name: 'create-unlink', label: 'create + unlink', kind: 'meta', args: ['create'] },
  { name: 'readdir-1k', label: 'readdir of 1000 entries', kind: 'meta', args: ['readdir'] },
  { name: 'readdir-10k', label: 'readdir of 10000 entries', kind: 'meta', args: ['readdir', 'dir-10k'] },
  { name: 'untar-grep', label: 'untar a source tree (lib/ of the base kernel: 570 files, 8 MB, uncompressed tar), then grep -r it', kind: 'job', args: ['untar-grep'] },
];

/** One phase of a job: its own time, CPU and request counts (not per operation). */
export interface Phase {
  name: string;
  seconds: number;
  cpuSeconds: number;
  daemon: number | null;
  kernel: number | null;
}

export interface Measurement {
  /** Operations (fio I/Os, metaloop operations) in the measured part. */
  ops: number;
  seconds: number;
  iops: number;
  mbps: number;
  p50us: number;
  p99us: number;
  /** Guest CPU time (all CPUs, all processes: the daemon's too) per 1000 operations, in ms;
   *  fio runs without a ramp so that its I/O count and the request counters cover the same span. */
  cpuMsPerKop: number;
  /** Requests the daemon received per operation (null: nothing counts them). */
  daemonPerOp: number | null;
  /** Requests the BPF program served per operation (null: no program). */
  kernelPerOp: number | null;
  /** Per opcode, per operation: what reached the daemon and what the program served. */
  byOpcode?: Record<string, { daemon: number; kernel: number | null }>;
  /** Jobs only: per phase (untar, grep). */
  phases?: Phase[];
  /** `bench --profile`: where the workload's time went, per function (self time). */
  profile?: ProfileEntry[];
  /** `bench --profile`: how many samples the shares are of. */
  profileSamples?: number;
}

/** One function of a profile: its share of the samples (self time). */
export interface ProfileEntry {
  sym: string;
  /** [k] kernel, [.] user */
  kernel: boolean;
  /** Share of all samples, % */
  share: number;
}

/**
 * perf's sampling period asked for, ns of cpu-clock. The guest kernel has no high-resolution
 * timers (tinyconfig), so samples actually come at its tick: a 2 s job gets a few hundred,
 * whatever is asked. Shares are what a profile gives; times per operation come from the
 * workload's own latency (report.ts).
 */
export const PROFILE_PERIOD_NS = 10_000;

/**
 * Parses `perf report --stdio --sort sym` output: the number of samples and each function's
 * share of them. Exported for tests.
 */
export function parsePerfReport(text: string): { samples: number; entries: ProfileEntry[] } {
  const n = /^# Samples: (\d+)(K?)/m.exec(text);
  // No sample at all: the workload slept throughout (waiting for a daemon), or perf failed
  if (!n) {
    if (/^# To display the perf\.data header/m.test(text)) return { samples: 0, entries: [] };
    throw new Error(`perf report printed no sample count:\n${text.slice(0, 400)}`);
  }
  const entries: ProfileEntry[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s+([\d.]+)%\s+\[([k.])\]\s+(\S.*?)\s*$/.exec(line);
    if (m) entries.push({ sym: m[3]!, kernel: m[2] === 'k', share: Number(m[1]) });
  }
  return { samples: Number(n[1]) * (n[2] ? 1000 : 1), entries };
}

/** Busy jiffies of all CPUs (/proc/stat), USER_HZ = 100. */
function cpuBusy(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = f;
  return (user! + nice! + system! + irq! + softirq! + (steal ?? 0)) / 100;
}

export const FIO_SIZE = '16m';
const META_N: Record<string, number> = { stat: 2000, open: 1000, create: 300, readdir: 30, 'dir-10k': 5 };

/** Entries of the 10k-entry directory. */
export const DIR_10K = 10_000;

/**
 * The 10k-entry directory, made in every backing directory itself rather than through the
 * mount: 10000 creates through the TypeScript daemon under TCG take minutes per
 * configuration, and readdir (what is measured) reads the backing directory either way.
 * Empty files in every backing are a valid state of every configuration (a mirror's
 * replicas all hold the file; a stripe's pieces of an empty file are empty).
 */
export function seedBackings(backings: string[]): void {
  for (const b of backings) {
    const d = join(b, 'dir-10k');
    mkdirSync(d, { recursive: true });
    for (let i = 0; i < DIR_10K; i++) closeSync(openSync(join(d, `e${i}`), 'w'));
  }
}

/** Files the workloads use, created through the configuration's directory. */
export function prepare(dir: string): void {
  writeFileSync(join(dir, 'meta-file'), 'x');
  mkdirSync(join(dir, 'meta-dir'), { recursive: true });
  const big = join(dir, 'dir-1k');
  mkdirSync(big, { recursive: true });
  for (let i = 0; i < 1000; i++) writeFileSync(join(big, `e${i}`), '');
  mkdirSync(join(dir, 'fio'), { recursive: true });
  // fio's data file, laid out once here rather than inside the first measured job.
  writeFileSync(join(dir, 'fio', 'data'), Buffer.alloc(parseInt(FIO_SIZE) << 20, 0x5a));
}

export type Counter = () => Promise<MountStats | undefined>;

export interface RunOptions {
  runtime: number;
  metaloop: string;
  count: Counter;
  /** The job's source tarball, in guest memory (untar-grep). */
  tarball?: string;
  /** The workload (fio or metaloop) under `perf record` (cpu-clock): adds
   *  Measurement.profile; the figures then include the sampling's own cost. */
  profile?: boolean;
}

/** Sum of daemon / kernel counts between two snapshots (null where nothing counts). */
function delta(a: MountStats | undefined, b: MountStats | undefined): { daemon: number | null; kernel: number | null } {
  if (!a || !b) return { daemon: null, kernel: null };
  const [x, y] = [totals(a), totals(b)];
  return { daemon: y.daemon - x.daemon, kernel: y.kernel === null || x.kernel === null ? null : y.kernel - x.kernel };
}

/**
 * untar, then grep -r, each timed with its CPU and requests. The tree goes to a fresh
 * directory; grep reads every file to its end (-c counts, it does not stop at a match).
 */
async function untarGrep(dir: string, o: RunOptions): Promise<{ phases: Phase[]; files: number; before?: MountStats; after?: MountStats }> {
  if (!o.tarball) throw new Error('untar-grep needs the source tarball (FUSE_KFUNC_SRCTREE, made by `fuse-kfunc bench` on the host)');
  const target = join(dir, `job-${process.hrtime.bigint()}`);
  mkdirSync(target);
  const steps: [string, string, string[]][] = [
    ['untar', 'tar', ['-xf', o.tarball, '-C', target]],
    ['grep', 'grep', ['-r', '-c', '-F', 'static', target]],
  ];
  const phases: Phase[] = [];
  let files = 0;
  // tar and grep come from the host's root over 9p: the first exec reads them from there,
  // which would be billed to whichever configuration runs first.
  for (const [, cmd] of steps) spawnSync(cmd, ['--version'], { stdio: 'ignore' });
  const before = await o.count();
  for (const [name, cmd, args] of steps) {
    const s0 = await o.count();
    const c0 = cpuBusy();
    const t0 = process.hrtime.bigint();
    const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20 });
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpuSeconds = cpuBusy() - c0;
    // grep exits 1 when no file matched, which would mean it read nothing useful.
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status}): ${(r.stderr || '').trim().split('\n').slice(-3).join('\n')}`);
    if (name === 'grep') files = r.stdout.split('\n').filter(Boolean).length;
    phases.push({ name, seconds, cpuSeconds, ...delta(s0, await o.count()) });
  }
  return { phases, files, before, after: await o.count() };
}

/** Per opcode, per operation: what reached the daemon and what the program served. */
function perOpcode(before: MountStats | undefined, after: MountStats | undefined, ops: number): Measurement['byOpcode'] {
  if (!before || !after) return undefined;
  const out: NonNullable<Measurement['byOpcode']> = {};
  for (const [op, v] of Object.entries(after)) {
    const d = (v.daemon - (before[op]?.daemon ?? 0)) / Math.max(1, ops);
    const k = v.kernel === null ? null : (v.kernel - (before[op]?.kernel ?? 0)) / Math.max(1, ops);
    if (d > 0.005 || (k ?? 0) > 0.005) out[op] = { daemon: Number(d.toFixed(3)), kernel: k === null ? null : Number(k.toFixed(3)) };
  }
  return out;
}

export async function runWorkload(w: Workload, dir: string, opts: RunOptions): Promise<Measurement> {
  if (w.kind === 'job') {
    const { phases, files, before, after } = await untarGrep(dir, opts);
    const sum = (f: (p: Phase) => number | null) => phases.some((p) => f(p) === null) ? null : phases.reduce((a, p) => a + f(p)!, 0);
    const seconds = phases.reduce((a, p) => a + p.seconds, 0);
    const d = sum((p) => p.daemon);
    const k = sum((p) => p.kernel);
    return {
      ops: files, seconds, iops: files / seconds, mbps: 0, p50us: NaN, p99us: NaN,
      cpuMsPerKop: (phases.reduce((a, p) => a + p.cpuSeconds, 0) * 1e6) / Math.max(1, files),
      daemonPerOp: d === null ? null : d / Math.max(1, files), kernelPerOp: k === null ? null : k / Math.max(1, files), phases,
      byOpcode: perOpcode(before, after, files),
    };
  }
  const before = await opts.count();
  const cpu0 = cpuBusy();
  const t0 = process.hrtime.bigint();
  let m: Omit<Measurement, 'cpuMsPerKop' | 'daemonPerOp' | 'kernelPerOp' | 'seconds'>;
  let profile: ReturnType<typeof parsePerfReport> | undefined;
  // `--profile`: the workload under perf, which samples it and what runs in its context (the
  // whole synchronous FUSE path, the program included), not the daemon's process or workers.
  const data = join(dir, 'perf.data');
  const run = (argv: string[]) => {
    if (!opts.profile) return spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', maxBuffer: 64 << 20 });
    // Under TCG a sample's interrupt is slow, and the kernel would lower the sample rate to a
    // few hundred per second to bound it: keep the rate asked for (the rate first: the
    // kernel refuses to set it once throttling is off).
    if (readFileSync('/proc/sys/kernel/perf_cpu_time_max_percent', 'utf8').trim() !== '0') {
      writeFileSync('/proc/sys/kernel/perf_event_max_sample_rate', String(2 * 1e9 / PROFILE_PERIOD_NS));
      writeFileSync('/proc/sys/kernel/perf_cpu_time_max_percent', '0');
    }
    return spawnSync('perf', ['record', '-q', '-e', 'cpu-clock', '-c', String(PROFILE_PERIOD_NS), '-o', data, '--', ...argv], { encoding: 'utf8', maxBuffer: 64 << 20 });
  };
  if (w.kind === 'fio') {
    const r = run([
      'fio', `--name=${w.name}`, `--directory=${join(dir, 'fio')}`, `--filename=data`, `--size=${FIO_SIZE}`,
      '--ioengine=psync', '--iodepth=1', '--time_based', `--runtime=${opts.runtime}`,
      '--group_reporting', '--output-format=json', '--randrepeat=1', '--random_generator=tausworthe64',
      ...w.args,
    ]);
    if (r.status !== 0) throw new Error(`fio ${w.name} in ${dir} failed: ${(r.stderr || r.stdout).trim().split('\n').slice(-5).join('\n')}`);
    const job = JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))).jobs[0];
    const side = /write/.test(w.args.join(' ')) ? job.write : job.read;
    const pct = side.clat_ns.percentile as Record<string, number>;
    m = {
      ops: side.total_ios, iops: side.iops, mbps: side.bw_bytes / 1e6,
      p50us: pct['50.000000']! / 1000, p99us: pct['99.000000']! / 1000,
    };
  } else {
    const target = w.args[0] === 'stat' || w.args[0] === 'open' ? join(dir, 'meta-file') : w.args[0] === 'create' ? join(dir, 'meta-dir') : join(dir, w.args[1] ?? 'dir-1k');
    const n = META_N[w.args[1] ?? w.args[0]!]!;
    const r = run([opts.metaloop, w.args[0]!, target, String(n)]);
    if (r.status !== 0) throw new Error(`metaloop ${w.args[0]} ${target} failed: ${r.stderr.trim()}`);
    const j = JSON.parse(r.stdout) as { n: number; p50_ns: number; p99_ns: number; mean_ns: number };
    m = { ops: j.n, iops: 1e9 / j.mean_ns, mbps: 0, p50us: j.p50_ns / 1000, p99us: j.p99_ns / 1000 };
  }
  if (opts.profile) {
    const rep = spawnSync('perf', ['report', '-i', data, '--stdio', '--sort', 'sym', '--percent-limit', '0.5'], { encoding: 'utf8', maxBuffer: 64 << 20 });
    if (rep.status !== 0) throw new Error(`perf report failed: ${rep.stderr.trim().split('\n').slice(-3).join('\n')}`);
    profile = parsePerfReport(rep.stdout);
    rmSync(data, { force: true });
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = cpuBusy() - cpu0;
  const after = await opts.count();
  const per = (a: number | null | undefined, b: number | null | undefined) => (a === null || a === undefined || b === null || b === undefined ? null : (a - b) / Math.max(1, m.ops));
  const [t0s, t1s] = [before && totals(before), after && totals(after)];
  let byOpcode: Measurement['byOpcode'];
  if (before && after) {
    byOpcode = {};
    for (const [op, v] of Object.entries(after)) {
      const d = per(v.daemon, before[op]?.daemon ?? 0)!;
      const k = per(v.kernel, v.kernel === null ? null : before[op]?.kernel ?? 0);
      if (d > 0.005 || (k ?? 0) > 0.005) byOpcode[op] = { daemon: Number(d.toFixed(3)), kernel: k === null ? null : Number(k.toFixed(3)) };
    }
  }
  return {
    ...m, seconds, ...(profile ? { profile: profile.entries, profileSamples: profile.samples } : {}),
    cpuMsPerKop: (cpu * 1e6) / Math.max(1, m.ops),
    daemonPerOp: per(t1s?.daemon, t0s?.daemon),
    kernelPerOp: per(t1s?.kernel, t0s?.kernel),
    byOpcode,
  };
}
