// The userspace runtime of data-layout policies (the twin of bpf/runtime/layout.bpf.h): one
// FUSE file over one file in each backing directory, placed by the policy's own functions,
// called here as they are written. Names and open files fan out as for every multi-backing
// policy (fanout.ts).
//
// The daemon answers what the program leaves to it with the program's semantics, so a mount
// without a program is the userspace reference the differential tests compare with:
// READ/WRITE piece by piece, a short piece is the end of the file; after a WRITE every
// backing is extended to its size (fallocate of its last byte: it never shrinks a file a
// concurrent WRITE extended); attributes carry the logical size. copy_file_range, fallocate
// and SEEK_DATA/SEEK_HOLE are refused (ENOSYS/EOPNOTSUPP): the kernel falls back to
// read/write and to "all data", which is correct if slower.
import fs from 'node:fs';
import fsp, { type FileHandle } from 'node:fs/promises';
import { constants as fsc } from 'node:fs';
import { Op } from '../../fuse/protocol.ts';
import { Errno, type Session } from '../../fuse/session.ts';
import * as libc from '../../fuse/libc.ts';
import { FanOutDaemon, openCopy, type BackingSink, type OpenFile } from '../fanout.ts';
import { zeroBacking, type BackingCounts } from '../../sdk/contract.ts';
import type { LayoutHooks, PolicyValues, Segment } from '../lang/define.ts';

type Context = PolicyValues;

export interface LayoutOptions {
  /** The policy's name (messages, counters). */
  name: string;
  /** The fewest backing directories it takes. */
  minBackings: number;
  /** Its layout functions (functions.ts), called with `context`. */
  hooks: LayoutHooks<Context>;
  /** The parameters as resolved for this mount (lang/params.ts), with `backings`. */
  context: Context;
  /** Backing directories, one piece of every file in each; [0] is the mount's backing. */
  backings: string[];
  sink?: BackingSink;
}

/** A piece of a request: `len` bytes at `bufOff` in the request's data. */
export interface Piece extends Segment {
  bufOff: number;
  len: number;
}

/** Layout functions bound to one mount's parameters, checked as the kernel runtime checks them. */
export class Layout {
  constructor(private readonly hooks: LayoutHooks<Context>, readonly context: Context) {}

  /** The pieces [off, off + len) is made of, in logical order; EIO for a segment the kernel would refuse. */
  pieces(off: number, len: number): Piece[] {
    const out: Piece[] = [];
    for (let done = 0; done < len;) {
      const s = this.hooks.locate(off + done, this.context);
      if (!(s.backing >= 0 && s.backing < this.context.backings && s.offset >= 0 && s.length > 0)) {
        throw new Errno('EIO', `layout: locate(${off + done}) gave backing ${s.backing}, offset ${s.offset}, length ${s.length}`);
      }
      const n = Math.min(s.length, len - done);
      out.push({ ...s, bufOff: done, len: n });
      done += n;
    }
    return out;
  }

  backingSize(size: number, i: number): number {
    return this.hooks.backingSize(size, i, this.context);
  }

  /** The logical size of a file from its backing files' sizes (an empty backing implies 0). */
  logicalSize(sizes: number[]): number {
    let end = 0;
    sizes.forEach((s, i) => {
      if (s > 0) end = Math.max(end, this.hooks.logicalEnd(s, i, this.context));
    });
    return end;
  }
}

export class LayoutDaemon extends FanOutDaemon {
  readonly layout: Layout;
  /** Pieces read and written by the daemon, per backing. */
  readonly counts: BackingCounts[];

  constructor(opts: LayoutOptions) {
    super({ backings: opts.backings, sink: opts.sink }, opts.name, opts.minBackings);
    this.layout = new Layout(opts.hooks, opts.context);
    this.counts = opts.backings.map(zeroBacking);
  }

  protected async read(_open: OpenFile, fds: FileHandle[], offset: number, size: number): Promise<Buffer> {
    const out = Buffer.alloc(size);
    let done = 0;
    for (const p of this.layout.pieces(offset, size)) {
      // One read per piece, as the program does: a regular file is short only at its end.
      const { bytesRead: n } = await fds[p.backing]!.read(out, p.bufOff, p.len, p.offset);
      this.counts[p.backing]!.reads++;
      this.counts[p.backing]!.readBytes += n;
      done += n;
      if (n < p.len) break; // the end of the file
    }
    return out.subarray(0, done);
  }

  protected async write(_open: OpenFile, fds: FileHandle[], offset: number, data: Buffer): Promise<number> {
    let done = 0;
    for (const p of this.layout.pieces(offset, data.length)) {
      const { bytesWritten } = await fds[p.backing]!.write(data, p.bufOff, p.len, p.offset);
      this.counts[p.backing]!.writes++;
      this.counts[p.backing]!.writeBytes += bytesWritten;
      done += bytesWritten;
      if (bytesWritten < p.len) break;
    }
    await this.extend(fds, offset + done);
    return done;
  }

  /** Every backing at least its size for a file ending at `end`. */
  private async extend(fds: FileHandle[], end: number): Promise<void> {
    for (let i = 0; i < fds.length; i++) {
      const want = this.layout.backingSize(end, i);
      if (want <= 0 || (await fds[i]!.stat()).size >= want) continue;
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
      const want = Math.max(this.layout.backingSize(size, i), 0);
      if (fds) await fds[i]!.truncate(want);
      else await fsp.truncate(this.backingPath(i, rel), want).catch((e) => {
        if (i === 0 || e.code !== 'ENOENT') throw e;
      });
    }
  }

  /** Missing pieces are created empty; existing ones are taken as they are. */
  protected async reconcile(rel: string, primary: FileHandle): Promise<FileHandle[]> {
    const fds: FileHandle[] = [];
    try {
      for (let i = 1; i < this.opts.backings.length; i++) {
        const path = this.backingPath(i, rel);
        const missing = !(await fsp.lstat(path).catch(() => undefined));
        fds.push(await openCopy(path, primary, { make: missing }));
      }
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
      return { ...attr, size: BigInt(this.layout.logicalSize(sizes)), blocks };
    };
    const refuse = (code: string, why: string) => async () => {
      throw new Errno(code, why);
    };
    const name = this.policy;
    s.on(Op.COPY_FILE_RANGE, refuse('ENOSYS', `${name}: copy_file_range falls back to read/write`));
    s.on(Op.FALLOCATE, refuse('EOPNOTSUPP', `${name}: fallocate of a file spread over backings is not supported`));
    s.on(Op.LSEEK, refuse('ENOSYS', `${name}: SEEK_DATA/SEEK_HOLE fall back to "all data"`));
  }
}
