// `fuse-kfunc bench --in-guest`: every configuration, every workload, repeated, in one boot.
// Writes the raw measurements as JSON; the host turns them into the report.
import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { release } from 'node:os';
import { join } from 'node:path';
import { CONFIGS, setup, type Config } from './configs.ts';
import { WORKLOADS, prepare, runWorkload, seedBackings, type Measurement, type Workload } from './workloads.ts';

export interface RawResults {
  started: string;
  kernel: string;
  mode: string;
  command: string;
  repeats: number;
  runtime: number;
  /** `bench --profile`: fio ran under perf; its latencies include the sampling. */
  profile?: boolean;
  configs: Config[];
  workloads: Workload[];
  /** results[config][workload] = one Measurement per repeat. */
  results: Record<string, Record<string, Measurement[]>>;
  errors: string[];
}

export interface GuestBenchOptions {
  repo: string;
  buildDir: string;
  fixtures: string;
  out: string;
  repeats: number;
  runtime: number;
  configs: string[];
  workloads: string[];
  mode: string;
  command: string;
  /** fio under perf (Measurement.profile) */
  profile?: boolean;
}

export async function benchInGuest(o: GuestBenchOptions): Promise<number> {
  const work = mkdtempSync('/tmp/fuse-kfunc-bench-');
  const configs = CONFIGS.filter((c) => o.configs.includes(c.name));
  const workloads = WORKLOADS.filter((w) => o.workloads.includes(w.name));
  const raw: RawResults = {
    started: new Date().toISOString(), kernel: release(), mode: o.mode, command: o.command,
    repeats: o.repeats, runtime: o.runtime, ...(o.profile ? { profile: true } : {}), configs, workloads, results: {}, errors: [],
  };
  const save = () => writeFileSync(o.out, JSON.stringify(raw, null, 1) + '\n');
  const ctx = { repo: o.repo, buildDir: o.buildDir, fixtures: o.fixtures, work };
  // The job's tarball is read from guest memory, not from the 9p share, which would
  // otherwise be part of what untar measures.
  let tarball: string | undefined;
  if (workloads.some((w) => w.kind === 'job')) {
    const src = process.env.FUSE_KFUNC_SRCTREE;
    if (!src) throw new Error('the untar-grep workload needs FUSE_KFUNC_SRCTREE (set by `fuse-kfunc bench` on the host)');
    tarball = join(work, 'srctree.tar');
    copyFileSync(src, tarball);
  }
  const seed = workloads.some((w) => w.args[1] === 'dir-10k');
  // Round-robin over configurations within each repeat: a slow phase of the host hits all
  // of them, not one.
  for (let rep = 0; rep < o.repeats; rep++) {
    for (const c of configs) {
      let m;
      try {
        m = await setup(c, { ...ctx, work: join(work, `r${rep}`) });
        prepare(m.dir);
        if (seed) seedBackings(m.backings);
      } catch (e) {
        raw.errors.push(`${c.name} (repeat ${rep + 1}): setup: ${(e as Error).message}`);
        process.stderr.write(`bench: ${c.name}: ${(e as Error).message}\n`);
        await m?.close().catch(() => undefined);
        continue;
      }
      const count = () => m!.stats();
      for (const w of workloads) {
        process.stderr.write(`bench: repeat ${rep + 1}/${o.repeats} ${c.name} ${w.name}\n`);
        try {
          const r = await runWorkload(w, m.dir, { runtime: o.runtime, metaloop: join(o.fixtures, 'metaloop'), count, tarball, profile: o.profile });
          ((raw.results[c.name] ??= {})[w.name] ??= []).push(r);
        } catch (e) {
          raw.errors.push(`${c.name} ${w.name} (repeat ${rep + 1}): ${(e as Error).message}`);
        }
        save();
      }
      await m.close();
    }
  }
  save();
  return raw.errors.length ? 1 : 0;
}
