// A seeded syscall fuzzer for a FUSE mount: random operations on a small set of names with
// random flags, offsets and sizes, valid and not, for a bounded time. It checks nothing
// about results (errors are expected, above all under a program answering at random); its
// job is to make the kernel take every path of the hook, so the console check (no oops, no
// WARN) and a clean unmount afterwards are the verdict. Run as a process:
//   node --import tsx fuzz.ts '{"root": "/mnt", "seed": 1, "seconds": 10}'
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { prng } from './workload.ts';
import { copyFileRange } from '../fuse/libc.ts';

export interface FuzzOptions {
  root: string;
  seed: number;
  seconds: number;
}

export interface FuzzResult {
  ops: number;
  /** errno code (or "ok") -> count */
  outcomes: Record<string, number>;
}

export function fuzz(o: FuzzOptions): FuzzResult {
  const rnd = prng(o.seed);
  const int = (n: number) => Math.floor(rnd() * n);
  const pick = <T>(a: readonly T[]): T => a[int(a.length)]!;
  const names = ['a', 'b', 'c', 'd/e', 'd/f', 'd', 'g/h/i', 'link', 'x.log'];
  const p = () => path.join(o.root, pick(names));
  const size = () => pick([0, 1, 7, 4095, 4096, 4097, 65536, 131073, 1 << 20, int(300000)]);
  const off = () => pick([0, 1, 4096, 65535, 1 << 20, 2 ** 40, int(500000)]);
  const F = fs.constants;
  const openFlags = () => pick([F.O_RDONLY, F.O_WRONLY, F.O_RDWR]) | (rnd() < 0.5 ? F.O_CREAT : 0) | (rnd() < 0.2 ? F.O_TRUNC : 0) |
    (rnd() < 0.3 ? F.O_DIRECT : 0) | (rnd() < 0.1 ? F.O_APPEND : 0) | (rnd() < 0.05 ? F.O_EXCL : 0) | (rnd() < 0.1 ? F.O_SYNC : 0);
  const fds: number[] = [];
  const res: FuzzResult = { ops: 0, outcomes: {} };
  const buf = Buffer.alloc((1 << 20) + 1, 0x5a);
  const ops: (() => unknown)[] = [
    () => fds.push(fs.openSync(p(), openFlags(), 0o644)),
    () => fds.length && fs.closeSync(fds.splice(int(fds.length), 1)[0]!),
    () => fds.length && fs.readSync(pick(fds), buf, 0, Math.min(size(), buf.length), off()),
    () => fds.length && fs.writeSync(pick(fds), buf, 0, Math.min(size(), buf.length), off()),
    () => fds.length && fs.ftruncateSync(pick(fds), off()),
    () => fds.length && fs.fsyncSync(pick(fds)),
    () => fds.length && fs.fdatasyncSync(pick(fds)),
    () => fds.length && fs.fstatSync(pick(fds)),
    () => fs.truncateSync(p(), off()),
    () => fs.statSync(p()),
    () => fs.lstatSync(p()),
    () => fs.readdirSync(path.dirname(p())),
    () => fs.readdirSync(o.root, { withFileTypes: true }).map((d) => d.isFile()),
    () => fs.renameSync(p(), p()),
    () => fs.unlinkSync(p()),
    () => fs.mkdirSync(p(), { recursive: rnd() < 0.5 }),
    () => fs.rmdirSync(p()),
    () => fs.symlinkSync(pick(['a', '../../etc/passwd', '/proc/self/fd/0', 'd/e']), p()),
    () => fs.readlinkSync(p()),
    () => fs.linkSync(p(), p()),
    () => fs.chmodSync(p(), int(0o7777)),
    () => fs.utimesSync(p(), rnd() * 2e9, rnd() * 2e9),
    () => fs.accessSync(p(), int(8)),
    () => fs.statfsSync(o.root),
    // One copy_file_range(2), not fs.copyFileSync: libuv's copy loops for ever when the
    // source shrinks under it (the other fuzzer truncates) and each call returns 0.
    () => {
      const src = fs.openSync(p(), F.O_RDONLY);
      try {
        const dst = fs.openSync(p(), F.O_WRONLY | F.O_CREAT, 0o644);
        try {
          return copyFileRange(src, BigInt(off()), dst, BigInt(off()), BigInt(size()), 0);
        } finally {
          fs.closeSync(dst);
        }
      } finally {
        fs.closeSync(src);
      }
    },
    () => fs.readFileSync(p()),
    () => fs.writeFileSync(p(), buf.subarray(0, int(200000))),
    () => fs.appendFileSync(p(), buf.subarray(0, int(5000))),
    () => fs.existsSync(p()),
  ];
  const end = Date.now() + o.seconds * 1000;
  while (Date.now() < end) {
    let outcome = 'ok';
    try {
      pick(ops)();
    } catch (e) {
      outcome = (e as NodeJS.ErrnoException).code ?? (e as Error).name;
    }
    res.ops++;
    res.outcomes[outcome] = (res.outcomes[outcome] ?? 0) + 1;
  }
  for (const fd of fds) {
    try {
      fs.closeSync(fd);
    } catch { /* the mount may be the thing that failed */ }
  }
  return res;
}

const SELF = fileURLToPath(import.meta.url);
if (process.argv[1] === SELF && process.argv[2]) {
  process.stdout.write(JSON.stringify(fuzz(JSON.parse(process.argv[2]) as FuzzOptions)));
}
