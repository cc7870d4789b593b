// Where a request's time goes in the daemon (docs/fuse-server.md, "Where the time goes"):
// mounts a --userspace mount per workload with FUSE_KFUNC_TRACE set, runs the bench's
// workload on it and prints p50 and the daemon's per-stage table. Run in the guest:
//   fuse-kfunc vm run --icount -- env FIX=<fixtures dir> node --import tsx scripts/daemon-trace.ts [WORKLOAD...]
// (FIX: ~/.cache/fuse-kfunc/fixtures/<build key>, which holds the metaloop binary; for
// untar-grep also TAR=~/.cache/fuse-kfunc/fixtures/srctree-<id>.tar, made by `fuse-kfunc bench`).
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { mount } from '../src/sdk/mount.ts';
import { WORKLOADS, prepare, runWorkload } from '../src/bench/workloads.ts';

const fixtures = process.env.FIX;
if (!fixtures) throw new Error('FIX must name the fixtures directory (the metaloop binary)');
const names = process.argv.slice(2).length ? process.argv.slice(2) : ['randread4k-direct', 'stat'];
for (const name of names) {
  const w = WORKLOADS.find((x) => x.name === name);
  if (!w) throw new Error(`unknown workload ${name}`);
  const base = `/tmp/daemon-trace/${name}`;
  rmSync(base, { recursive: true, force: true });
  const b = join(base, 'b'), mnt = join(base, 'm'), trace = `${base}.json`;
  mkdirSync(b, { recursive: true });
  mkdirSync(mnt, { recursive: true });
  process.env.FUSE_KFUNC_TRACE = trace; // inherited by the daemon mount() forks
  const h = await mount({ backings: [b], mountpoint: mnt, userspace: true, timeout: 0 });
  prepare(mnt);
  const r = await runWorkload(w, mnt, { runtime: 3, metaloop: join(fixtures, 'metaloop'), count: async () => undefined, tarball: process.env.TAR });
  await h.close();
  console.log(`${name}: p50 ${r.p50us} µs, ${r.seconds.toFixed(2)} s${r.phases ? ` (${r.phases.map((p) => `${p.name} ${p.seconds.toFixed(2)} s, CPU ${p.cpuSeconds.toFixed(2)} s`).join('; ')})` : ''}`);
  for (const row of JSON.parse(readFileSync(trace, 'utf8')) as { n: number }[]) if (row.n > 500) console.log(' ', JSON.stringify(row));
}
