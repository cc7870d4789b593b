// `fuse-kfunc bench --in-guest`: every configuration, every workload, repeated, in one boot.
// Writes the raw measurements as JSON; the host turns them into the report.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CONFIGS, setup, type Config } from './configs.ts';
import { WORKLOADS, prepare, runWorkload, type Measurement, type Workload } from './workloads.ts';

export interface RawResults {
  started: string;
  kernel: string;
  mode: string;
  command: string;
  repeats: number;
  runtime: number;
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
}

export async function benchInGuest(o: GuestBenchOptions): Promise<number> {
  const work = mkdtempSync('/tmp/fuse-kfunc-bench-');
  const configs = CONFIGS.filter((c) => o.configs.includes(c.name));
  const workloads = WORKLOADS.filter((w) => o.workloads.includes(w.name));
  const raw: RawResults = {
    started: new Date().toISOString(), kernel: process.env.FUSE_KFUNC_RELEASE ?? '', mode: o.mode, command: o.command,
    repeats: o.repeats, runtime: o.runtime, configs, workloads, results: {}, errors: [],
  };
  const save = () => writeFileSync(o.out, JSON.stringify(raw, null, 1) + '\n');
  const ctx = { repo: o.repo, buildDir: o.buildDir, fixtures: o.fixtures, work };
  // Round-robin over configurations within each repeat: a slow phase of the host hits all
  // of them, not one.
  for (let rep = 0; rep < o.repeats; rep++) {
    for (const c of configs) {
      let m;
      try {
        m = await setup(c, { ...ctx, work: join(work, `r${rep}`) });
        prepare(m.dir);
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
          const r = await runWorkload(w, m.dir, { runtime: o.runtime, metaloop: join(o.fixtures, 'metaloop'), count });
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
