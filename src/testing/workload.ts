// A seeded random file workload with an in-memory model: the same seed gives the same
// operations, so a run on a BPF mount and one on its userspace reference can be compared
// line by line, and each is also checked against the model (equal and right, not just
// equal). Offsets and sizes are drawn around a unit (a stripe's chunk) so requests cross
// chunk boundaries, start unaligned and leave holes.
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';

/** mulberry32: small, fast, and the same in every Node version. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface WorkloadOptions {
  seed: number;
  ops: number;
  /** Sizes and offsets are drawn in multiples and fractions of this. */
  unit: number;
  /** Open some reads and writes with O_DIRECT (exact, unaligned READ/WRITE requests). */
  direct?: boolean;
  /** Between phases (e.g. drop the page cache so READs reach the filesystem). */
  flush?: () => void;
  /** Extensions new and renamed files get, drawn at random ('' for none): a route policy's
   *  rules then send them to different backing directories, and renames move them. */
  exts?: string[];
  /** Files already there before the run (the caller put them in the backing directories),
   *  relative to the root, in the root or d0. */
  initial?: Map<string, Buffer>;
}

export interface WorkloadResult {
  /** One line per operation: what was asked and what came back. */
  log: string[];
  /** Operations whose result disagreed with the model. */
  mismatches: string[];
  counts: Record<string, number>;
  bytesWritten: number;
  bytesRead: number;
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex').slice(0, 16);

export function runWorkload(root: string, o: WorkloadOptions): WorkloadResult {
  const rnd = prng(o.seed);
  const int = (n: number) => Math.floor(rnd() * n);
  const pick = <T>(a: T[]): T => a[int(a.length)]!;
  const files = new Map<string, Buffer>(o.initial ?? []);
  const ext = () => (o.exts?.length ? pick(o.exts) : '');
  const dirs = ['', 'd0'];
  fs.mkdirSync(path.join(root, 'd0'), { recursive: true });
  const res: WorkloadResult = { log: [], mismatches: [], counts: {}, bytesWritten: 0, bytesRead: 0 };
  const log = (op: string, line: string) => {
    res.log.push(line);
    res.counts[op] = (res.counts[op] ?? 0) + 1;
  };
  const expect = (line: string, ok: boolean, detail: string) => {
    if (!ok) res.mismatches.push(`${line}: ${detail}`);
  };
  const bytes = (n: number) => {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i + 4 <= n; i += 4) b.writeUInt32LE(Math.floor(rnd() * 2 ** 32), i);
    for (let i = n - (n % 4); i < n; i++) b[i] = int(256);
    return b;
  };
  // Around the unit: tiny, just under/over it, several units, unaligned.
  const size = () => pick([1 + int(100), o.unit - 1 - int(50), o.unit + 1 + int(50), 2 * o.unit + int(o.unit), 3 * o.unit + 17, int(5 * o.unit)]);
  const abs = (rel: string) => path.join(root, rel);
  let serial = 0;
  const flags = (base: number) => (o.direct && rnd() < 0.3 ? base | fs.constants.O_DIRECT : base);

  const writeAt = (rel: string, off: number, data: Buffer) => {
    const fd = fs.openSync(abs(rel), flags(fs.constants.O_WRONLY));
    try {
      let done = 0;
      while (done < data.length) done += fs.writeSync(fd, data, done, data.length - done, off + done);
    } finally {
      fs.closeSync(fd);
    }
    const cur = files.get(rel)!;
    const next = Buffer.alloc(Math.max(cur.length, off + data.length));
    cur.copy(next);
    data.copy(next, off);
    files.set(rel, next);
    res.bytesWritten += data.length;
  };

  for (let i = 0; i < o.ops; i++) {
    const names = [...files.keys()].sort();
    const r = rnd();
    if (names.length < 3 || r < 0.12) {
      const rel = path.join(pick(dirs), `f${serial++}${ext()}`);
      fs.writeFileSync(abs(rel), '');
      files.set(rel, Buffer.alloc(0));
      const data = bytes(size());
      writeAt(rel, 0, data);
      log('create', `create ${rel} ${data.length} ${sha(data)}`);
    } else if (r < 0.42) {
      const rel = pick(names);
      const cur = files.get(rel)!.length;
      const off = int(cur + o.unit) + (rnd() < 0.3 ? o.unit - int(3) : 0);
      const data = bytes(size());
      writeAt(rel, off, data);
      log('write', `write ${rel} ${off}+${data.length} ${sha(data)}`);
    } else if (r < 0.70) {
      const rel = pick(names);
      const want = files.get(rel)!;
      const off = int(want.length + 10);
      const len = size();
      const fd = fs.openSync(abs(rel), flags(fs.constants.O_RDONLY));
      const buf = Buffer.alloc(len);
      let got = 0;
      try {
        for (;;) {
          const n = fs.readSync(fd, buf, got, len - got, off + got);
          if (n === 0) break;
          got += n;
          if (got === len) break;
        }
      } finally {
        fs.closeSync(fd);
      }
      const exp = want.subarray(off, off + len);
      const line = `read ${rel} ${off}+${len} -> ${got} ${sha(buf.subarray(0, got))}`;
      expect(line, got === exp.length && buf.subarray(0, got).equals(exp), `model has ${exp.length} bytes ${sha(exp)}`);
      res.bytesRead += got;
      log('read', line);
    } else if (r < 0.80) {
      const rel = pick(names);
      const cur = files.get(rel)!;
      const len = int(Math.floor(cur.length * 1.5) + o.unit);
      fs.truncateSync(abs(rel), len);
      const next = Buffer.alloc(len);
      cur.copy(next, 0, 0, Math.min(len, cur.length));
      files.set(rel, next);
      log('truncate', `truncate ${rel} ${len}`);
    } else if (r < 0.86) {
      const rel = pick(names);
      const to = path.join(pick(dirs), `r${serial++}${ext()}`);
      fs.renameSync(abs(rel), abs(to));
      files.set(to, files.get(rel)!);
      files.delete(rel);
      log('rename', `rename ${rel} ${to}`);
    } else if (r < 0.90) {
      const rel = pick(names);
      fs.unlinkSync(abs(rel));
      files.delete(rel);
      log('unlink', `unlink ${rel}`);
    } else if (r < 0.93) {
      const d = `d${dirs.length - 1}`;
      fs.mkdirSync(abs(d));
      dirs.push(d);
      log('mkdir', `mkdir ${d}`);
    } else if (r < 0.96) {
      const d = pick(dirs);
      const got = fs.readdirSync(abs(d)).sort();
      const want = [...files.keys()].filter((f) => path.dirname(f) === (d || '.')).map((f) => path.basename(f))
        .concat(d === '' ? dirs.filter(Boolean) : []).sort();
      const line = `readdir ${d || '.'} ${got.join(',')}`;
      expect(line, got.join(',') === want.join(','), `model has ${want.join(',')}`);
      log('readdir', line);
    } else {
      const rel = pick(names);
      const st = fs.statSync(abs(rel));
      const line = `stat ${rel} size=${st.size} mode=${(st.mode & 0o7777).toString(8)} nlink=${st.nlink}`;
      expect(line, st.size === files.get(rel)!.length, `model size ${files.get(rel)!.length}`);
      log('stat', line);
    }
    if (o.flush && i % 16 === 15) o.flush();
  }
  o.flush?.();
  // Every file, whole, through the mount.
  for (const [rel, want] of [...files.entries()].sort()) {
    const got = fs.readFileSync(abs(rel));
    const line = `final ${rel} ${got.length} ${sha(got)}`;
    expect(line, got.equals(want), `model has ${want.length} bytes ${sha(want)}`);
    log('final', line);
  }
  return res;
}

/** Every entry under dir: type, size and content hash (for comparing backing layouts). */
export function treeDigest(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const name of fs.readdirSync(path.join(dir, rel)).sort()) {
      const r = path.join(rel, name);
      const st = fs.lstatSync(path.join(dir, r));
      if (st.isDirectory()) {
        out.push(`${r}/`);
        walk(r);
      } else if (st.isFile()) out.push(`${r} ${st.size} ${sha(fs.readFileSync(path.join(dir, r)))}`);
      else out.push(`${r} ${st.mode.toString(8)}`);
    }
  };
  walk('');
  return out;
}
