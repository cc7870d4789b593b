// The stripe policy, daemon side: one FUSE file over N backing files in fixed-size chunks
// (RAID-0). The geometry and the size invariant are stripe-layout.ts's; names and open
// files fan out as for every multi-backing policy (fanout.ts).
//
// The daemon answers what the program leaves to it, with the program's semantics, so a
// mount without a program is the userspace reference the differential tests compare with:
// READ/WRITE piece by piece, a short piece is the end of the file; after a WRITE every
// backing is extended to its canonical size (fallocate of its last byte: it never shrinks a
// file a concurrent WRITE extended); attributes carry the logical size. copy_file_range,
// fallocate and SEEK_DATA/SEEK_HOLE are refused (ENOSYS/EOPNOTSUPP): the kernel falls back
// to read/write and to "all data", which is correct if slower.
import fs from 'node:fs';
import fsp, { type FileHandle } from 'node:fs/promises';
import { constants as fsc } from 'node:fs';
import { Op } from '../fuse/protocol.ts';
import { Errno, type Session } from '../fuse/session.ts';
import * as libc from '../fuse/libc.ts';
import { FanOutDaemon, type BackingSink, type OpenFile } from './fanout.ts';
import { zeroBacking, type BackingCounts } from '../sdk/contract.ts';
import { canonicalSize, logicalSize, pieces, type StripeGeometry } from './stripe-layout.ts';

export interface StripeOptions {
  /** Backing directories, one piece of every file in each; [0] is the mount's backing. */
  backings: string[];
  /** Chunk size in bytes. */
  chunk: number;
  sink?: BackingSink;
}

export class StripeDaemon extends FanOutDaemon {
  readonly geometry: StripeGeometry;
  /** Pieces read and written by the daemon, per backing. */
  readonly counts: BackingCounts[];

  constructor(opts: StripeOptions) {
    super({ backings: opts.backings, sink: opts.sink }, 'stripe', 2);
    this.geometry = { chunk: opts.chunk, nr: opts.backings.length };
    this.counts = opts.backings.map(zeroBacking);
  }

  protected async read(_open: OpenFile, fds: FileHandle[], offset: number, size: number): Promise<Buffer> {
    const out = Buffer.alloc(size);
    let done = 0;
    for (const p of pieces(this.geometry, offset, size)) {
      // One read per piece, as the program does: a regular file is short only at its end.
      const { bytesRead: n } = await fds[p.backing]!.read(out, p.bufOff, p.len, p.pos);
      this.counts[p.backing]!.reads++;
      this.counts[p.backing]!.readBytes += n;
      done += n;
      if (n < p.len) break; // the end of the file
    }
    return out.subarray(0, done);
  }

  protected async write(_open: OpenFile, fds: FileHandle[], offset: number, data: Buffer): Promise<number> {
    let done = 0;
    for (const p of pieces(this.geometry, offset, data.length)) {
      const { bytesWritten } = await fds[p.backing]!.write(data, p.bufOff, p.len, p.pos);
      this.counts[p.backing]!.writes++;
      this.counts[p.backing]!.writeBytes += bytesWritten;
      done += bytesWritten;
      if (bytesWritten < p.len) break;
    }
    await this.extend(fds, offset + done);
    return done;
  }

  /** Every backing at least its canonical size for a file ending at `end`. */
  private async extend(fds: FileHandle[], end: number): Promise<void> {
    for (let i = 0; i < fds.length; i++) {
      const want = canonicalSize(this.geometry, end, i);
      if (want === 0 || (await fds[i]!.stat()).size >= want) continue;
      try {
        libc.fallocate(fds[i]!.fd, 0, BigInt(want - 1), 1n);
      } catch (e) {
        if ((e as libc.SysError).code !== 'EOPNOTSUPP') throw e;
        await fds[i]!.truncate(want); // racy against a concurrent extension; tmpfs never gets here
      }
    }
  }

  protected async truncate(fds: FileHandle[] | null, rel: string, size: number): Promise<void> {
    for (let i = 0; i < this.opts.backings.length; i++) {
      const want = canonicalSize(this.geometry, size, i);
      if (fds) await fds[i]!.truncate(want);
      else await fsp.truncate(this.backingPath(i, rel), want).catch((e) => {
        if (i === 0 || e.code !== 'ENOENT') throw e;
      });
    }
  }

  /** Missing pieces are created empty; existing ones are taken as they are. */
  protected async reconcile(rel: string, primary: FileHandle): Promise<FileHandle[]> {
    const mode = Number((await primary.stat()).mode & 0o7777);
    const fds: FileHandle[] = [];
    try {
      for (let i = 1; i < this.opts.backings.length; i++) fds.push(await fsp.open(this.backingPath(i, rel), fsc.O_RDWR | fsc.O_CREAT, mode));
      return fds;
    } catch (e) {
      await Promise.allSettled(fds.map((f) => f.close()));
      throw e;
    }
  }

  protected installMore(s: Session): void {
    this.c.attrHook = (at, st, attr) => {
      if ((Number(st.mode) & fsc.S_IFMT) !== fsc.S_IFREG) return attr;
      const sizes = [Number(st.size)];
      let blocks = st.blocks;
      const open = at.nodeid !== undefined ? this.files.get(at.nodeid)?.fds : undefined;
      const rel = at.rel ?? (at.nodeid !== undefined ? this.c.nodes.get(at.nodeid).paths[0] : undefined);
      for (let i = 1; i < this.opts.backings.length; i++) {
        let other: fs.BigIntStats | undefined;
        try {
          other = open ? fs.fstatSync(open[i]!.fd, { bigint: true }) : rel !== undefined ? fs.statSync(this.backingPath(i, rel), { bigint: true }) : undefined;
        } catch {
          other = undefined; // a missing piece is an empty one
        }
        sizes.push(Number(other?.size ?? 0n));
        blocks += other?.blocks ?? 0n;
      }
      return { ...attr, size: BigInt(logicalSize(this.geometry, sizes)), blocks };
    };
    const refuse = (code: string, why: string) => async () => {
      throw new Errno(code, why);
    };
    s.on(Op.COPY_FILE_RANGE, refuse('ENOSYS', 'stripe: copy_file_range falls back to read/write'));
    s.on(Op.FALLOCATE, refuse('EOPNOTSUPP', 'stripe: fallocate of a striped file is not supported'));
    s.on(Op.LSEEK, refuse('ENOSYS', 'stripe: SEEK_DATA/SEEK_HOLE fall back to "all data"'));
  }
}
