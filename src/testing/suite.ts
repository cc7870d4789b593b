// `npm test`: host unit tests, then one VM boot running the guest suite and the kernel
// selftests; every TAP result counts toward the last line, "N passed, N failed".
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { build, kselftestArgs, type Artifacts } from '../kernel/build.ts';
import { cacheDir } from '../util/paths.ts';
import { printFailure, runVm, shellQuote } from '../vm/qemu.ts';
import { chooseAccel } from '../vm/accel.ts';
import { countTap, verdict } from './tap.ts';
import { buildFixtures } from './fixtures.ts';
import { checkpatchTap } from './checkpatch.ts';
import { selftestCliTap } from './selftest-cli.ts';
import { vmCliTap } from './vm-cli.ts';
import { docCommandsTap } from './doc-commands.ts';
import { seriesFiles } from '../kernel/series.ts';
import { cachePaths } from '../util/paths.ts';
import { fmtDuration } from '../util/progress.ts';

export interface SuiteResult { suite: string; passed: number; failed: number; notes: string[] }

const AVA = (repo: string) => join(repo, 'node_modules', 'ava', 'entrypoints', 'cli.mjs');

async function runAvaOnHost(repo: string, pattern: string): Promise<SuiteResult> {
  let text = '';
  const code: number = await new Promise((res) => {
    const child = spawn(process.execPath, [AVA(repo), '--tap', pattern], { cwd: repo, stdio: ['ignore', 'pipe', 'inherit'] });
    child.stdout.on('data', (b) => { text += b; process.stdout.write(b); });
    child.on('close', (c) => res(c ?? 1));
  });
  return fromTap('unit', text, code);
}

export function fromTap(suite: string, text: string, code: number): SuiteResult {
  const c = countTap(text);
  const v = verdict(c);
  const notes = c.failures.map((f) => `${suite}: ${f}`);
  if (c.missing) notes.push(`${suite}: ${c.missing} planned result(s) never arrived`);
  if (code !== 0 && v.failed === 0) {
    v.failed = 1;
    notes.push(`${suite}: runner exited ${code} without a failing result (crash?)`);
  }
  return { suite, ...v, notes };
}

/**
 * The backstop of the guest run (selftests, then the ava suites): 2327 s at stop 15, 1219 s at
 * stop 17 (bundled daemons, a cached 9p share, one seed per policy case). Each
 * guest test has a deadline of its own (`ava-deadline.mjs`, TEST_DEADLINE_SEC), so a test that
 * hangs fails by name and the others still run; this one only ends a guest that stops making
 * progress altogether, and leaves a slow machine the time its tests take, within CI's 90
 * minutes for everything.
 */
export const GUEST_DEADLINE_SEC = 3600;

/** Each guest test's own deadline, seconds (FUSE_KFUNC_TEST_DEADLINE_SEC in the guest). */
export const TEST_DEADLINE_SEC = 900;

/** What one VM boot runs; the defaults are `npm test`'s. */
export interface VmSuiteOptions {
  timeoutSec?: number;
  memMB?: number;
  /** Guest ava files or globs, repo-relative. */
  guestFiles?: string[];
  /** ava's inactivity timeout in the guest: longer than the per-test deadline, so that fires first. */
  avaTimeout?: string;
  /** Each guest test's deadline, seconds (default TEST_DEADLINE_SEC). */
  testDeadlineSec?: number;
  /** Extra TAP-printing sections: `before` runs first, `after` after the selftests. */
  before?: { name: string; script: string }[];
  after?: { name: string; script: string }[];
  env?: Record<string, string>;
}

const section = (name: string, script: string) => [`echo "### section ${name}"`, script, `echo "### end ${name} rc=$?"`];

/**
 * The selftests as kselftest runs them (`make -C tools/testing/selftests TARGETS=... run_tests`)
 * when the build holds them in kselftest's layout; a build from before that runs its binary.
 */
export function selftestCommand(a: Artifacts): string {
  if (a.tree) {
    return `make ${kselftestArgs(a.tree, a.dir, 'run_tests').map(shellQuote).join(' ')} 2>&1`;
  }
  return `(cd ${a.selftests} && ./fuse_bpf_test)`;
}

/**
 * The guest cannot write the build (the host's root is read-only there), so kselftest's
 * `run_tests` must find its `all` up to date: make it so on the host first. A no-op for a
 * fresh build; after the tree's files were touched (a checkout) it rebuilds the same objects.
 */
export function refreshSelftests(a: Artifacts): void {
  if (!a.tree) return;
  const args = kselftestArgs(a.tree, a.dir, 'all');
  const r = spawnSync('make', args, { encoding: 'utf8' });
  if (r.status !== 0) {
    throw new Error(`the kernel selftests of ${a.dir} did not rebuild (make ${args.join(' ')}):\n` +
      `${(r.stdout + r.stderr).split('\n').slice(-15).join('\n')}\nrebuild the kernel: fuse-kfunc kernel build`);
  }
}

/**
 * kselftest's runner prefixes every line of a test's own TAP with "# " and adds its own
 * plan and one result for the whole program: take one level off, so each harness test
 * counts by name (and the runner's result, which fails on a crash or its timeout, too).
 */
export function unnestKselftest(text: string): string {
  return text.split('\n').map((l) => l.startsWith('# ') ? l.slice(2) : l).join('\n');
}

/** The guest side of the run: sections delimited by markers the host splits on. */
export function guestScript(repo: string, a: Artifacts, o: VmSuiteOptions = {}): string[] {
  const files = (o.guestFiles ?? ['test/guest/**/*.test.ts']).map((f) => `'${f}'`).join(' ');
  const lines = ['set +e', `cd ${repo}`];
  for (const s of o.before ?? []) lines.push(...section(s.name, s.script));
  // The selftests first: a minute at most, and a slow guest suite running into the deadline
  // must not take them down with it.
  if (a.selftests) lines.push(...section('selftests', selftestCommand(a)));
  const durations = join(repo, 'src/testing/ava-durations.mjs');
  const deadline = join(repo, 'src/testing/ava-deadline.mjs');
  // ava's workers: tsx (as package.json's ava config says) and a deadline for every test; as
  // many files at once as the guest has CPUs (under CI ava would run two on one: 1366 s
  // against 1219 s for the same run one file at a time)
  const workers = `--concurrency=$(nproc) --node-arguments='--import=tsx --import=${deadline}'`;
  lines.push(...section('guest', `FUSE_KFUNC_TEST_DEADLINE_SEC=${o.testDeadlineSec ?? TEST_DEADLINE_SEC} ` +
    `${process.execPath} --import ${durations} ${AVA(repo)} --tap --timeout=${o.avaTimeout ?? '20m'} ${workers} ${files}`));
  for (const s of o.after ?? []) lines.push(...section(s.name, s.script));
  return ['sh', '-c', lines.join('\n')];
}

/** The @n slowest tests of an ava TAP run with ava-durations.mjs, as lines to print. */
export function slowestTests(tap: string, n = 10): string[] {
  const all = [...tap.matchAll(/^# duration (\d+) ms (.*)$/gm)].map((m) => ({ ms: Number(m[1]), title: m[2] }));
  if (!all.length) return ['(no test durations in the output)'];
  all.sort((a, b) => b.ms - a.ms);
  const total = all.reduce((t, x) => t + x.ms, 0);
  return [
    ...all.slice(0, n).map((x) => `${fmtDuration(x.ms).padStart(7)}  ${x.title}`),
    `(${all.length} tests, ${fmtDuration(total)} in all; hooks and each file's worker start-up not counted)`,
  ];
}

export function splitSections(text: string): Map<string, { body: string; rc?: number }> {
  const out = new Map<string, { body: string; rc?: number }>();
  let cur: { name: string; lines: string[] } | undefined;
  for (const line of text.split('\n')) {
    const open = /^### section (\w+)$/.exec(line);
    const close = /^### end (\w+) rc=(\d+)$/.exec(line);
    if (open) {
      cur = { name: open[1], lines: [] };
      out.set(cur.name, { body: '' });
    } else if (close && cur && close[1] === cur.name) {
      out.set(cur.name, { body: cur.lines.join('\n'), rc: Number(close[2]) });
      cur = undefined;
    } else if (cur) {
      cur.lines.push(line);
    }
  }
  // A section cut short (the VM died) keeps what it printed, with no exit status.
  if (cur) out.set(cur.name, { body: cur.lines.join('\n') });
  return out;
}

/** The knobs of the longer runs (docs/reliability.md), passed from the host to the guest tests. */
export const ON_DEMAND_ENV = ['FUSE_KFUNC_STRESS_SECONDS', 'FUSE_KFUNC_FUZZ_SECONDS', 'FUSE_KFUNC_POLICY_SEEDS'] as const;

export function onDemand(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  return Object.fromEntries(ON_DEMAND_ENV.filter((k) => env[k] !== undefined).map((k) => [k, env[k]!]));
}

export async function runVmSuites(repo: string, a: Artifacts, opts: VmSuiteOptions = {}): Promise<SuiteResult[]> {
  const cache = cacheDir();
  const fixtures = await buildFixtures(repo, a, cache);
  const accel = await chooseAccel(a.bzImage, repo, a.dir);
  refreshSelftests(a);
  let text = '';
  const tee = new PassThrough();
  tee.on('data', (b) => { text += b.toString(); process.stdout.write(b); });
  process.stderr.write(`==> booting ${a.release} (${accel}) for the guest suite${a.selftests ? ' and kernel selftests' : ''}\n`);
  const r = await runVm({
    kernel: a.bzImage, repo, accel, command: guestScript(repo, a, opts), stdout: tee,
    timeoutSec: opts.timeoutSec ?? GUEST_DEADLINE_SEC, memMB: opts.memMB ?? 3072,
    env: { FUSE_KFUNC_FIXTURES: fixtures, FUSE_KFUNC_BUILD: a.dir, CI: process.env.CI ?? '', ...onDemand(), ...(opts.env ?? {}) },
  });
  process.stderr.write(`==> the guest run took ${Math.round(r.seconds)}s\n`);
  const sections = splitSections(text.replace(/\r/g, ''));
  const guest = sections.get('guest');
  if (guest) process.stdout.write(`\n# the ten slowest guest tests\n${slowestTests(guest.body).map((l) => `#   ${l}`).join('\n')}\n`);
  const results: SuiteResult[] = [];
  const expected = [...(opts.before ?? []).map((s) => s.name), ...(a.selftests ? ['selftests'] : []), 'guest', ...(opts.after ?? []).map((s) => s.name)];
  for (const name of expected) {
    const s = sections.get(name);
    if (!s) { results.push({ suite: name, passed: 0, failed: 1, notes: [`${name}: never ran (the VM stopped first)`] }); continue; }
    results.push(fromTap(name, name === 'selftests' ? unnestKselftest(s.body) : s.body, s.rc ?? 1));
  }
  if (r.failure) {
    const notes = [`vm: ${r.failure}: ${r.message?.split('\n')[0]}`];
    for (const b of printFailure(r).slice(1)) notes.push(`vm: ${b.kind}: ${b.lines[0]}`);
    results.push({ suite: 'vm', passed: 0, failed: 1, notes });
  }
  return results;
}

export async function runAll(repo: string, opts: { unit?: boolean; vm?: boolean } = {}): Promise<number> {
  const results: SuiteResult[] = [];
  if (opts.unit !== false) {
    process.stderr.write('==> host unit tests\n');
    results.push(await runAvaOnHost(repo, 'test/unit/**/*.test.ts'));
  }
  if (opts.vm !== false) {
    let a: Artifacts | undefined;
    try {
      a = await build(repo);
    } catch (e) {
      process.stderr.write(`kernel build failed: ${(e as Error).message}\n`);
      results.push({ suite: 'kernel-build', passed: 0, failed: 1, notes: ['kernel build failed (see above)'] });
    }
    if (a && seriesFiles(repo).length) {
      process.stderr.write('==> checkpatch --strict over the series\n');
      const tap = checkpatchTap(repo, cachePaths().worktree);
      process.stdout.write(tap);
      results.push(fromTap('checkpatch', tap, 0));
    }
    if (a) {
      try {
        results.push(...await runVmSuites(repo, a));
      } catch (e) {
        process.stderr.write(`guest run failed: ${(e as Error).message}\n`);
        results.push({ suite: 'vm', passed: 0, failed: 1, notes: [(e as Error).message.split('\n')[0]] });
      }
    }
    if (a?.selftests) {
      process.stderr.write('==> fuse-kfunc selftest, run as a user runs it\n');
      const tap = selftestCliTap(repo, a);
      process.stdout.write(tap);
      results.push(fromTap('selftest-cli', tap, 0));
    }
    if (a) {
      process.stderr.write('==> fuse-kfunc vm run stopped by SIGTERM\n');
      const tap = await vmCliTap(repo);
      process.stdout.write(tap);
      results.push(fromTap('vm-cli', tap, 0));
      process.stderr.write('==> the commands of README.md, docs/mount.md and docs/policies.md (host, then one guest boot)\n');
      const docs = docCommandsTap(repo);
      process.stdout.write(docs);
      results.push(fromTap('doc-commands', docs, 0));
    }
  }
  return summarize(results);
}

/** Per-suite lines, the failures, and last the one line CI reads; the exit code. */
export function summarize(results: SuiteResult[]): number {
  const passed = results.reduce((n, r) => n + r.passed, 0);
  const failed = results.reduce((n, r) => n + r.failed, 0);
  process.stdout.write('\n');
  for (const r of results) process.stdout.write(`${r.suite.padEnd(13)} ${r.passed} passed, ${r.failed} failed\n`);
  for (const n of results.flatMap((r) => r.notes)) process.stdout.write(`  - ${n}\n`);
  process.stdout.write(`${passed} passed, ${failed} failed\n`);
  return failed === 0 && passed > 0 ? 0 : 1;
}

