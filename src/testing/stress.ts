// Stress with verification: several processes at once on one mount, for a bounded time.
// Writers each run rounds of the seeded model-checked workload (workload.ts) in their own
// directory, so every byte they read back is checked against their own model while the
// mount serves everyone's requests interleaved; readers check random ranges of shared files
// whose contents are known. At the end each writer's last files (name, size, sha256) are
// returned so the caller can check them again through another mount of the same backings
// (the userspace reference: what the program left in the backing files must mean the same).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';
import { prng, runWorkload } from './workload.ts';
import { repoRoot } from '../util/paths.ts';
import { nodeEntry } from '../util/bundles.mjs';

export interface StressOptions {
  root: string;
  seed: number;
  seconds: number;
  writers: number;
  readers: number;
  /** Sizes and offsets are drawn around this (a stripe's chunk). */
  unit: number;
  /** Between a writer's phases (drop caches so reads reach the filesystem). */
  dropCaches?: boolean;
}

export interface StressResult {
  rounds: number;
  ops: number;
  bytesWritten: number;
  bytesRead: number;
  readerChecks: number;
  mismatches: string[];
  /** rel (under root) -> "size sha256-prefix", for every file a writer left. */
  files: Record<string, string>;
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex').slice(0, 16);
const SELF = fileURLToPath(import.meta.url);

/** Files the readers check: written here, before the workers start. */
function sharedFiles(root: string, seed: number, unit: number): Map<string, Buffer> {
  const rnd = prng(seed ^ 0x5eed);
  const m = new Map<string, Buffer>();
  fs.mkdirSync(path.join(root, 'shared'), { recursive: true });
  for (let i = 0; i < 4; i++) {
    const b = Buffer.alloc(Math.floor(unit * (1 + 3 * rnd())) + i * 7);
    for (let j = 0; j < b.length; j++) b[j] = Math.floor(rnd() * 256);
    const rel = `shared/s${i}`;
    fs.writeFileSync(path.join(root, rel), b);
    m.set(rel, b);
  }
  return m;
}

export async function runStress(o: StressOptions): Promise<StressResult> {
  const shared = sharedFiles(o.root, o.seed, o.unit);
  const jobs = [
    ...Array.from({ length: o.writers }, (_, k) => ({ kind: 'writer' as const, k })),
    ...Array.from({ length: o.readers }, (_, k) => ({ kind: 'reader' as const, k })),
  ];
  // Decided once for all workers: a stat of each bundle input, not one round per worker.
  const entry = nodeEntry(repoRoot(), 'stress');
  const results = await Promise.all(jobs.map((j) => new Promise<StressResult>((resolve, reject) => {
    const cfg = { ...o, kind: j.kind, k: j.k, shared: [...shared].map(([rel, b]) => [rel, sha(b), b.length]) };
    const child = spawn(process.execPath, [...entry.execArgv, entry.file, JSON.stringify(cfg)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('exit', (code) => {
      try {
        if (code !== 0) throw new Error(`${j.kind} ${j.k} exited ${code}: ${err.trim().split('\n').slice(-5).join('\n')}`);
        resolve(JSON.parse(out) as StressResult);
      } catch (e) {
        reject(e);
      }
    });
  })));
  const total: StressResult = { rounds: 0, ops: 0, bytesWritten: 0, bytesRead: 0, readerChecks: 0, mismatches: [], files: {} };
  for (const r of results) {
    total.rounds += r.rounds;
    total.ops += r.ops;
    total.bytesWritten += r.bytesWritten;
    total.bytesRead += r.bytesRead;
    total.readerChecks += r.readerChecks;
    total.mismatches.push(...r.mismatches);
    Object.assign(total.files, r.files);
  }
  for (const [rel, b] of shared) total.files[rel] = `${b.length} ${sha(b)}`;
  return total;
}

/** What a mount shows for `files` now: the entries that differ (empty when all agree). */
export function checkFiles(root: string, files: Record<string, string>): string[] {
  const bad: string[] = [];
  for (const [rel, want] of Object.entries(files)) {
    let got: string;
    try {
      const b = fs.readFileSync(path.join(root, rel));
      got = `${b.length} ${sha(b)}`;
    } catch (e) {
      got = (e as NodeJS.ErrnoException).code ?? String(e);
    }
    if (got !== want) bad.push(`${rel}: ${got}, expected ${want}`);
  }
  return bad;
}

// A worker process: `node dist/stress.js '<json>'` (or the source through tsx: src/util/bundles.mjs).
function worker(cfg: StressOptions & { kind: 'writer' | 'reader'; k: number; shared: [string, string, number][] }): StressResult {
  // From this process's start: starting node under TCG can take seconds of the budget.
  const deadline = Date.now() + cfg.seconds * 1000;
  const r: StressResult = { rounds: 0, ops: 0, bytesWritten: 0, bytesRead: 0, readerChecks: 0, mismatches: [], files: {} };
  const drop = () => {
    if (cfg.dropCaches) fs.writeFileSync('/proc/sys/vm/drop_caches', '3');
  };
  if (cfg.kind === 'writer') {
    do {
      const dir = `w${cfg.k}/r${r.rounds}`;
      fs.mkdirSync(path.join(cfg.root, dir), { recursive: true });
      const res = runWorkload(path.join(cfg.root, dir), { seed: cfg.seed * 1000 + cfg.k * 100 + r.rounds, ops: 40, unit: cfg.unit, direct: true, flush: drop });
      r.rounds++;
      r.ops += res.log.length;
      r.bytesWritten += res.bytesWritten;
      r.bytesRead += res.bytesRead;
      r.mismatches.push(...res.mismatches.map((m) => `${dir}: ${m}`));
      for (const l of res.log) {
        const m = /^final (\S+) (\d+) ([0-9a-f]+)$/.exec(l);
        if (m) r.files[`${dir}/${m[1]}`] = `${m[2]} ${m[3]}`;
      }
    } while (Date.now() < deadline);
    return r;
  }
  const rnd = prng(cfg.seed * 31 + cfg.k);
  const whole = new Map<string, Buffer>();
  for (const [rel, want, len] of cfg.shared) {
    const b = fs.readFileSync(path.join(cfg.root, rel));
    if (b.length !== len || sha(b) !== want) r.mismatches.push(`reader ${cfg.k}: ${rel} is ${b.length} ${sha(b)}, expected ${len} ${want}`);
    whole.set(rel, b);
  }
  while (Date.now() < deadline || r.readerChecks === 0) {
    const [rel, , len] = cfg.shared[Math.floor(rnd() * cfg.shared.length)]!;
    const off = Math.floor(rnd() * len);
    const n = 1 + Math.floor(rnd() * Math.min(len - off, 3 * cfg.unit));
    const fd = fs.openSync(path.join(cfg.root, rel), fs.constants.O_RDONLY | (rnd() < 0.5 ? fs.constants.O_DIRECT : 0));
    const buf = Buffer.alloc(n);
    let got = 0;
    try {
      while (got < n) {
        const k = fs.readSync(fd, buf, got, n - got, off + got);
        if (k === 0) break;
        got += k;
      }
    } finally {
      fs.closeSync(fd);
    }
    r.readerChecks++;
    r.bytesRead += got;
    if (got !== n || !buf.equals(whole.get(rel)!.subarray(off, off + n))) r.mismatches.push(`reader ${cfg.k}: ${rel} ${off}+${n} -> ${got} bytes differing from the file`);
  }
  return r;
}

if (process.argv[1] === SELF && process.argv[2]) {
  process.stdout.write(JSON.stringify(worker(JSON.parse(process.argv[2]))));
}
