// `fuse-kfunc bench` (npm run bench): on the host, builds or reuses the kernel and the
// fixtures, boots the VM once and runs every configuration and workload there
// (`bench --in-guest`), then writes docs/benchmarks.md's measured part, docs/bench/*.svg and
// the raw JSON. `--icount` runs the guest with QEMU's -icount: guest time follows executed
// instructions, so ratios do not move with the host's load (absolute times are not real).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { build } from '../kernel/build.ts';
import { buildFixtures } from '../testing/fixtures.ts';
import { runVm } from '../vm/qemu.ts';
import { chooseAccel } from '../vm/accel.ts';
import { cacheDir } from '../util/paths.ts';
import { CONFIGS } from './configs.ts';
import { WORKLOADS } from './workloads.ts';
import { benchInGuest, type RawResults } from './guest.ts';
import { markdown, svgBars } from './report.ts';
import { UsageError } from '../cli/args.ts';

export const BENCH_HELP = `Usage: fuse-kfunc bench [--repeats N] [--runtime SEC] [--icount] [--quick]
                        [--configs a,b,...] [--workloads a,b,...] [--report-only]

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

Takes about (configs × workloads × repeats × (runtime + 3) s) under TCG; 8 × 10 × 3 × 7 s
≈ 30 minutes by default.`;

export interface BenchOptions {
  repo: string;
  repeats: number;
  runtime: number;
  icount: boolean;
  configs: string[];
  workloads: string[];
  reportOnly: boolean;
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
  return {
    repo, argv,
    repeats: num('repeats', quick ? 1 : 3),
    runtime: num('runtime', quick ? 2 : 4),
    icount: flags.has('icount'),
    configs: pick(flags.get('configs') as string | undefined, CONFIGS.map((c) => c.name), 'configuration'),
    workloads: pick(flags.get('workloads') as string | undefined, WORKLOADS.map((w) => w.name), 'workload'),
    reportOnly: flags.has('report-only'),
  };
}

const BEGIN = '<!-- BEGIN measured (fuse-kfunc bench) -->';
const END = '<!-- END measured -->';

export function writeReport(repo: string): void {
  const dir = join(repo, 'docs', 'bench');
  const parts: string[] = [];
  for (const mode of ['wallclock', 'icount']) {
    const f = join(dir, `raw-${mode}.json`);
    if (!existsSync(f)) continue;
    const raw = JSON.parse(readFileSync(f, 'utf8')) as RawResults;
    parts.push(markdown(raw));
    const charts: [string, 'p50us' | 'mbps', string, string][] = [
      ['randread4k-direct', 'p50us', '4 KiB random read, O_DIRECT: p50 latency', 'µs'],
      ['stat', 'p50us', 'stat(2), zero timeouts: p50 latency', 'µs'],
      ['seqread128k-direct', 'mbps', '128 KiB sequential read, O_DIRECT: throughput', 'MB/s'],
    ];
    for (const [w, m, title, unit] of charts) {
      if (!raw.workloads.some((x) => x.name === w)) continue;
      const name = `${mode}-${w}.svg`;
      writeFileSync(join(dir, name), svgBars(raw, w, m, `${title} (${mode})`, unit));
      parts.push(`![${title}](bench/${name})\n`);
    }
  }
  const md = join(repo, 'docs', 'benchmarks.md');
  const body = `${BEGIN}\n\n${parts.join('\n')}\n${END}`;
  const cur = existsSync(md) ? readFileSync(md, 'utf8') : `# Benchmarks\n\n${BEGIN}\n${END}\n`;
  const a = cur.indexOf(BEGIN);
  const b = cur.indexOf(END);
  writeFileSync(md, a >= 0 && b > a ? cur.slice(0, a) + body + cur.slice(b + END.length) : `${cur.trimEnd()}\n\n${body}\n`);
}

export async function bench(o: BenchOptions): Promise<number> {
  if (o.reportOnly) {
    writeReport(o.repo);
    process.stdout.write('wrote docs/benchmarks.md and docs/bench/*.svg\n');
    return 0;
  }
  const a = await build(o.repo);
  const fixtures = await buildFixtures(o.repo, a, cacheDir());
  const accel = await chooseAccel(a.bzImage, o.repo, a.dir);
  const mode = o.icount ? 'icount' : 'wallclock';
  const dir = join(o.repo, 'docs', 'bench');
  mkdirSync(dir, { recursive: true });
  const out = join(dir, `raw-${mode}.json`);
  const command = `fuse-kfunc bench ${o.argv.join(' ')}`.trim();
  process.stderr.write(`==> booting ${a.release} (${accel}${o.icount ? ', -icount' : ''}): ${o.configs.length} configurations × ${o.workloads.length} workloads × ${o.repeats}\n`);
  const r = await runVm({
    kernel: a.bzImage, repo: o.repo, accel, icount: o.icount, memMB: 3072,
    timeoutSec: 600 + o.configs.length * o.workloads.length * o.repeats * (o.runtime + 20) * (o.icount ? 3 : 1),
    command: [process.execPath, join(o.repo, 'bin', 'fuse-kfunc.js'), 'bench', '--in-guest', '--out', out,
      '--repeats', String(o.repeats), '--runtime', String(o.runtime), '--configs', o.configs.join(','),
      '--workloads', o.workloads.join(','), '--mode', mode, '--command', command],
    env: { FUSE_KFUNC_BUILD: a.dir, FUSE_KFUNC_FIXTURES: fixtures, FUSE_KFUNC_RELEASE: a.release },
    stdout: process.stdout, stderr: process.stderr,
  });
  if (r.failure) process.stderr.write(`fuse-kfunc bench: ${r.message}\n`);
  if (existsSync(out)) {
    writeReport(o.repo);
    process.stdout.write(`wrote ${out}, docs/benchmarks.md, docs/bench/*.svg\n`);
  }
  return r.exitCode;
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
  });
}
