// `fuse-kfunc bench` (npm run bench): on the host, builds or reuses the kernel and the
// fixtures, boots the VM once and runs every configuration and workload there
// (`bench --in-guest`), then writes docs/benchmarks.md's measured part, docs/bench/*.svg and
// the raw JSON. `--icount` runs the guest with QEMU's -icount: guest time follows executed
// instructions, so ratios do not move with the host's load (absolute times are not real).
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join, resolve } from 'node:path';
import { build, type Artifacts } from '../kernel/build.ts';
import { buildUnpatched } from '../kernel/unpatched.ts';
import { capture } from '../util/exec.ts';
import { cachePaths } from '../util/paths.ts';
import { buildFixtures } from '../testing/fixtures.ts';
import { runVm } from '../vm/qemu.ts';
import { chooseAccel } from '../vm/accel.ts';
import { cacheDir } from '../util/paths.ts';
import { CONFIGS } from './configs.ts';
import { WORKLOADS } from './workloads.ts';
import { benchInGuest, type RawResults } from './guest.ts';
import { markdown, svgBars } from './report.ts';
import { bootOrder, DEFAULT_OVERHEAD_WORKLOADS, overheadMarkdown, type OverheadResults, type Side } from './overhead.ts';
import { UsageError } from '../cli/args.ts';

/** Configurations without a BPF program: the only ones an unpatched kernel can run. */
export const OVERHEAD_CONFIGS = CONFIGS.filter((c) => !c.program).map((c) => c.name);

export const BENCH_HELP = `Usage: fuse-kfunc bench [--repeats N] [--runtime SEC] [--icount] [--quick]
                        [--configs a,b,...] [--workloads a,b,...] [--report-only]
       fuse-kfunc bench --overhead [--repeats N] [--runtime SEC] [--wallclock]
                        [--configs a,b,...] [--workloads a,b,...]

Boots the patched kernel once and measures, side by side on tmpfs backings, every
configuration on every workload, repeated (interleaved); writes
  docs/bench/raw-<mode>.json   every measurement
  docs/bench/*.svg             bar charts (median, whisker = range)
  docs/benchmarks.md           the tables and the goals between its BEGIN/END markers

  --repeats N        repeats of everything (default 3)
  --runtime SEC      seconds per fio job, no ramp (default 4)
  --icount           deterministic mode: QEMU -icount (guest time = executed instructions)
  --quick            1 repeat, 2 s jobs (a smoke run; figures are noisy)
  --configs LIST     subset of: ${CONFIGS.map((c) => c.name).join(', ')}
  --workloads LIST   subset of: ${WORKLOADS.map((w) => w.name).join(', ')}
  --report-only      rewrite the report from the raw JSON already there
  --out FILE         the raw JSON to FILE instead, docs/ untouched (smoke runs)
  --profile          run each fio and metadata workload under perf (cpu-clock sampling,
                     Debian's perf from the host root): a table of where its time goes,
                     per function, in µs per operation, to docs/bench/raw-profile-<mode>.json;
                     the latencies of such a run include the sampling's own cost

  --overhead         "overhead when unused": the daemon-only configurations (${OVERHEAD_CONFIGS.join(', ')})
                     on the patched kernel with no program and on the unpatched base
                     kernel (same config; built by \`fuse-kfunc kernel build --unpatched\`,
                     here if missing, 10-18 min), one boot of each per repeat, alternated;
                     reports patched / base per workload -> docs/bench/raw-overhead.json.
                     Runs in --icount mode unless --wallclock, fio jobs 2 s unless
                     --runtime; default workloads:
                     ${DEFAULT_OVERHEAD_WORKLOADS.join(', ')}

Takes about (configs × workloads × repeats × (runtime + 3) s) under TCG; 8 × 10 × 3 × 7 s
≈ 30 minutes by default, plus readdir-10k and untar-grep (a minute or more per
configuration each with the TypeScript daemon).`;


export interface BenchOptions {
  repo: string;
  repeats: number;
  runtime: number;
  icount: boolean;
  configs: string[];
  workloads: string[];
  reportOnly: boolean;
  overhead: boolean;
  /** Raw JSON to this file instead of docs/bench/raw-<mode>.json, report untouched (smoke runs). */
  out?: string;
  /** fio under perf: where each workload's time goes, per function. */
  profile: boolean;
  argv: string[];
}

function pick(list: string | undefined, all: string[], what: string): string[] {
  if (!list) return all;
  const xs = list.split(',').map((s) => s.trim()).filter(Boolean);
  for (const x of xs) if (!all.includes(x)) throw new UsageError(`unknown ${what} "${x}" (choose from ${all.join(', ')})`);
  return xs;
}

export function parseBenchArgs(flags: Map<string, string | true>, repo: string, argv: string[]): BenchOptions {
  const num = (k: string, d: number) => {
    const v = flags.get(k);
    if (v === undefined) return d;
    const n = Number(v);
    if (v === true || !Number.isInteger(n) || n < 1) throw new UsageError(`--${k} wants a whole number >= 1, got "${v}"`);
    return n;
  };
  const quick = flags.has('quick');
  const overhead = flags.has('overhead');
  if (flags.has('wallclock') && !overhead) throw new UsageError('--wallclock only applies to --overhead (the default mode of bench is wall clock)');
  if (flags.has('wallclock') && flags.has('icount')) throw new UsageError('--wallclock and --icount exclude each other');
  if (flags.has('profile') && overhead) throw new UsageError('--profile and --overhead exclude each other');
  const configs = flags.has('configs') || !overhead ? pick(flags.get('configs') as string | undefined, CONFIGS.map((c) => c.name), 'configuration') : OVERHEAD_CONFIGS;
  if (overhead) {
    const prog = configs.filter((c) => !OVERHEAD_CONFIGS.includes(c));
    if (prog.length) throw new UsageError(`--overhead runs daemon-only configurations (the unpatched kernel has no hook); drop ${prog.join(', ')}`);
  }
  return {
    repo, argv, overhead, configs,
    repeats: num('repeats', quick ? 1 : 3),
    runtime: num('runtime', quick ? 2 : overhead ? 2 : 4),
    icount: overhead ? !flags.has('wallclock') : flags.has('icount'),
    workloads: overhead && !flags.has('workloads') ? DEFAULT_OVERHEAD_WORKLOADS
      : pick(flags.get('workloads') as string | undefined, WORKLOADS.map((w) => w.name), 'workload'),
    reportOnly: flags.has('report-only'),
    out: typeof flags.get('out') === 'string' ? resolve(flags.get('out') as string) : undefined,
    profile: flags.has('profile'),
  };
}

const BEGIN = '<!-- BEGIN measured (fuse-kfunc bench) -->';
const END = '<!-- END measured -->';

export function writeReport(repo: string): void {
  const dir = join(repo, 'docs', 'bench');
  const parts: string[] = [];
  // raw-wallclock, raw-icount first, then any other run kept beside them (`--out
  // docs/bench/raw-NAME.json`, e.g. a subset with other repeats); overhead has its own table.
  const rest = readdirSync(dir).filter((f) => /^raw-[\w-]+\.json$/.test(f) && !['raw-wallclock.json', 'raw-icount.json', 'raw-overhead.json'].includes(f)).sort();
  for (const file of ['raw-wallclock.json', 'raw-icount.json', ...rest]) {
    const f = join(dir, file);
    const mode = file.slice(4, -5);
    if (!existsSync(f)) continue;
    const raw = JSON.parse(readFileSync(f, 'utf8')) as RawResults;
    parts.push(markdown(raw));
    const charts: [string, 'p50us' | 'mbps' | 'seconds', string, string][] = [
      ['randread4k-direct', 'p50us', '4 KiB random read, O_DIRECT: p50 latency', 'µs'],
      ['stat', 'p50us', 'stat(2), zero timeouts: p50 latency', 'µs'],
      ['seqread128k-direct', 'mbps', '128 KiB sequential read, O_DIRECT: throughput', 'MB/s'],
      ['untar-grep', 'seconds', 'untar + grep -r of a source tree: seconds', 's'],
    ];
    for (const [w, m, title, unit] of charts) {
      if (raw.profile || !raw.workloads.some((x) => x.name === w)) continue;
      const name = `${mode}-${w}.svg`;
      writeFileSync(join(dir, name), svgBars(raw, w, m, `${title} (${mode})`, unit));
      parts.push(`![${title}](bench/${name})\n`);
    }
  }
  const ov = join(dir, 'raw-overhead.json');
  if (existsSync(ov)) parts.push(overheadMarkdown(JSON.parse(readFileSync(ov, 'utf8')) as OverheadResults));
  const md = join(repo, 'docs', 'benchmarks.md');
  const body = `${BEGIN}\n\n${parts.join('\n')}\n${END}`;
  const cur = existsSync(md) ? readFileSync(md, 'utf8') : `# Benchmarks\n\n${BEGIN}\n${END}\n`;
  const a = cur.indexOf(BEGIN);
  const b = cur.indexOf(END);
  writeFileSync(md, a >= 0 && b > a ? cur.slice(0, a) + body + cur.slice(b + END.length) : `${cur.trimEnd()}\n\n${body}\n`);
}

/**
 * Subtrees of the base kernel that make the untar-grep job's tarball: lib/, 570 files,
 * 8 MB. kernel/ + lib/ (1163 files, 22 MB) took 270 s per TypeScript-daemon configuration
 * under TCG (27k requests for the untar alone), too long to repeat over 8 configurations.
 */
export const SRCTREE_PATHS = ['lib'];

/**
 * The untar-grep job's tarball: those subtrees at the work tree's base tag (`git archive`:
 * byte-identical every time, mtimes of the base commit), uncompressed so that the job
 * measures the filesystem rather than a decompressor. Made once, kept in the cache.
 */
export function srcTreeTarball(cache = cacheDir()): string {
  const wt = cachePaths(cache).worktree;
  let commit: string;
  try {
    commit = capture('git', ['-C', wt, 'rev-parse', 'fuse-kfunc-base^{commit}']).trim();
  } catch {
    throw new Error(`no kernel work tree with the fuse-kfunc-base tag at ${wt}, which the untar-grep tarball is made from: run \`fuse-kfunc kernel prepare\``);
  }
  const id = createHash('sha256').update(`${commit}\0${SRCTREE_PATHS.join(',')}`).digest('hex').slice(0, 12);
  const out = join(cache, 'fixtures', `srctree-${id}.tar`);
  if (!existsSync(out)) {
    mkdirSync(join(cache, 'fixtures'), { recursive: true });
    capture('git', ['-C', wt, 'archive', '--format=tar', '-o', `${out}.tmp`, commit, '--', ...SRCTREE_PATHS]);
    renameSync(`${out}.tmp`, out);
  }
  return out;
}

interface GuestRun {
  kernel: string;
  accel: 'tcg' | 'kvm';
  a: Artifacts;
  fixtures: string;
  srctree?: string;
  out: string;
  repeats: number;
  command: string;
  mode: string;
}

/** One boot running `bench --in-guest`. The guest runs the same CLI entry as this process. */
async function guestRun(o: BenchOptions, g: GuestRun) {
  const entry = [process.execPath, ...process.execArgv, process.argv[1]!];
  const perCell = (o.runtime + 20) * (o.icount ? 3 : 1);
  const heavy = o.workloads.filter((w) => w === 'untar-grep' || w === 'readdir-10k').length * 300;
  return runVm({
    kernel: g.kernel, repo: o.repo, accel: g.accel, icount: o.icount, memMB: 3072,
    timeoutSec: 600 + o.configs.length * g.repeats * (o.workloads.length * perCell + heavy),
    command: [...entry, 'bench', '--in-guest', '--out', g.out,
      '--repeats', String(g.repeats), '--runtime', String(o.runtime), '--configs', o.configs.join(','),
      '--workloads', o.workloads.join(','), '--mode', g.mode, '--command', g.command, ...(o.profile ? ['--profile'] : [])],
    env: {
      FUSE_KFUNC_BUILD: g.a.dir, FUSE_KFUNC_FIXTURES: g.fixtures, ...(g.srctree ? { FUSE_KFUNC_SRCTREE: g.srctree } : {}),
      // The TypeScript daemon's V8 flags, when measuring one (sdk/mount.ts: daemonV8Flags).
      ...(process.env.FUSE_KFUNC_DAEMON_V8_FLAGS !== undefined ? { FUSE_KFUNC_DAEMON_V8_FLAGS: process.env.FUSE_KFUNC_DAEMON_V8_FLAGS } : {}),
    },
    stdout: process.stdout, stderr: process.stderr,
  });
}

export async function bench(o: BenchOptions): Promise<number> {
  if (o.reportOnly) {
    writeReport(o.repo);
    process.stdout.write('wrote docs/benchmarks.md and docs/bench/*.svg\n');
    return 0;
  }
  const a = await build(o.repo);
  const fixtures = await buildFixtures(o.repo, a, cacheDir());
  const srctree = o.workloads.includes('untar-grep') ? srcTreeTarball() : undefined;
  const accel = await chooseAccel(a.bzImage, o.repo, a.dir);
  const dir = join(o.repo, 'docs', 'bench');
  mkdirSync(dir, { recursive: true });
  const v8 = process.env.FUSE_KFUNC_DAEMON_V8_FLAGS;
  const command = `${v8 !== undefined ? `FUSE_KFUNC_DAEMON_V8_FLAGS='${v8}' ` : ''}fuse-kfunc bench ${o.argv.join(' ')}`.trim();
  if (o.overhead) return overhead(o, { a, fixtures, srctree, accel, command });
  const mode = `${o.profile ? 'profile-' : ''}${o.icount ? 'icount' : 'wallclock'}`;
  const out = o.out ?? join(dir, `raw-${mode}.json`);
  // The guest writes into the repo (shared read-write; its /tmp is its own tmpfs).
  const part = join(dir, `.raw-${mode}-boot.json`);
  rmSync(part, { force: true });
  process.stderr.write(`==> booting ${a.release} (${accel}${o.icount ? ', -icount' : ''}): ${o.configs.length} configurations × ${o.workloads.length} workloads × ${o.repeats}\n`);
  const r = await guestRun(o, { kernel: a.bzImage, accel, a, fixtures, srctree, out: part, repeats: o.repeats, command, mode });
  if (r.failure) process.stderr.write(`fuse-kfunc bench: ${r.message}\n`);
  if (existsSync(part)) {
    writeFileSync(out, readFileSync(part));
    rmSync(part, { force: true });
    if (!o.out) writeReport(o.repo);
    process.stdout.write(`wrote ${out}${o.out ? '' : ', docs/benchmarks.md, docs/bench/*.svg'}\n`);
  }
  return r.exitCode;
}

async function overhead(o: BenchOptions, h: { a: Artifacts; fixtures: string; srctree?: string; accel: 'tcg' | 'kvm'; command: string }): Promise<number> {
  const base = await buildUnpatched(o.repo);
  const dir = join(o.repo, 'docs', 'bench');
  const out = o.out ?? join(dir, 'raw-overhead.json');
  const part = join(dir, '.raw-overhead-boot.json');
  const mode = o.icount ? 'icount' : 'wallclock';
  const raw: OverheadResults = {
    started: new Date().toISOString(), mode, command: h.command, repeats: o.repeats, runtime: o.runtime,
    kernels: { patched: '', base: '' }, boots: [], configs: [], workloads: [], results: { patched: {}, base: {} }, errors: [],
  };
  const kernels: Record<Side, string> = { patched: h.a.bzImage, base: base.bzImage };
  const order = bootOrder(o.repeats);
  let rc = 0;
  for (const [i, b] of order.entries()) {
    process.stderr.write(`==> overhead boot ${i + 1}/${order.length}: ${b.side} kernel (${b.side === 'patched' ? h.a.release : base.release}, ` +
      `${h.accel}${o.icount ? ', -icount' : ''}), repeat ${b.repeat + 1}/${o.repeats}: ${o.configs.length} configurations × ${o.workloads.length} workloads\n`);
    rmSync(part, { force: true });
    const t0 = Date.now();
    const r = await guestRun(o, { kernel: kernels[b.side], accel: h.accel, a: h.a, fixtures: h.fixtures, srctree: h.srctree, out: part, repeats: 1,
      command: h.command, mode });
    raw.boots.push({ side: b.side, repeat: b.repeat, seconds: Math.round((Date.now() - t0) / 1000), exitCode: r.exitCode });
    if (r.failure) {
      process.stderr.write(`fuse-kfunc bench: ${b.side} boot: ${r.message}\n`);
      raw.errors.push(`${b.side} boot, repeat ${b.repeat + 1}: ${r.message?.split('\n')[0]}`);
    }
    if (r.exitCode !== 0) rc = r.exitCode;
    if (!existsSync(part)) continue;
    const one = JSON.parse(readFileSync(part, 'utf8')) as RawResults;
    raw.kernels[b.side] = one.kernel;
    raw.configs = one.configs;
    raw.workloads = one.workloads;
    for (const e of one.errors) raw.errors.push(`${b.side}: ${e}`);
    // A measurement missing from one boot must not shift the later repeats of that cell
    // against the other kernel's: pad with the repeat index.
    for (const [c, ws] of Object.entries(one.results)) {
      for (const [w, ms] of Object.entries(ws)) {
        const cell = ((raw.results[b.side][c] ??= {})[w] ??= []);
        cell[b.repeat] = ms[0]!;
      }
    }
    writeFileSync(out, JSON.stringify(raw, null, 1) + '\n');
  }
  rmSync(part, { force: true });
  if (existsSync(out)) {
    if (!o.out) writeReport(o.repo);
    process.stdout.write(`wrote ${out}${o.out ? '' : ', docs/benchmarks.md'}\n`);
  }
  return rc;
}

export async function benchGuestCmd(flags: Map<string, string | true>, repo: string): Promise<number> {
  const s = (k: string) => {
    const v = flags.get(k);
    if (typeof v !== 'string') throw new UsageError(`bench --in-guest needs --${k}`);
    return v;
  };
  const buildDir = process.env.FUSE_KFUNC_BUILD;
  const fixtures = process.env.FUSE_KFUNC_FIXTURES;
  if (!buildDir || !fixtures) throw new Error('bench --in-guest runs in the VM that `fuse-kfunc bench` boots (FUSE_KFUNC_BUILD, FUSE_KFUNC_FIXTURES unset)');
  return benchInGuest({
    repo, buildDir, fixtures, out: s('out'), repeats: Number(s('repeats')), runtime: Number(s('runtime')),
    configs: s('configs').split(','), workloads: s('workloads').split(','), mode: s('mode'), command: s('command'),
    profile: flags.has('profile'),
  });
}
