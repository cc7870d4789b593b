// The userspace runtime of spread policies (the twin of bpf/runtime/spread.bpf.h): each
// file lives on the set of backing directories the policy's create() chose when it was
// made (one: placed there; several: replicas of each other) and stays there; directories
// live in all of them (DirsEverywhereDaemon).
//
// Where a file lives is found (the backing directories that hold it), not computed, so a
// rename keeps a file where it is and the choice may depend on the order of creations.
// The first copy is the file's (its attributes, its inode); the others are written with it
// (WRITE, truncate), read after it fails, and get its owner and mode when they are made and
// whenever those change (never root's: the daemon makes them as root); times and xattrs
// are the first copy's only. A backing that fails a lookup (EIO, ESTALE) holds no copy.
import fs, { constants as fsc } from 'node:fs';
import fsp, { type FileHandle } from 'node:fs/promises';
import { BodyReader, CREATE_IN, FAttr, LINK_IN, MKNOD_IN, Op, SETATTR_IN, type Request } from '../../fuse/protocol.ts';
import { Errno, type Handler, type HandlerResult, type Session } from '../../fuse/session.ts';
import * as libc from '../../fuse/libc.ts';
import { openCopy, type Backings, type BackingSink, type OpenFile } from '../fanout.ts';
import { DirsEverywhereDaemon } from './placement.ts';
import type { PolicyValues, SpreadHooks } from '../lang/define.ts';

export interface SpreadOptions {
  /** The policy's name (messages, counters). */
  name: string;
  backings: string[];
  /** Its spread function (functions.ts), called with `context`. */
  hooks: SpreadHooks<PolicyValues>;
  context: PolicyValues;
  sink?: BackingSink;
}

export class SpreadDaemon extends DirsEverywhereDaemon {
  /** Creations so far: create()'s `turn`. */
  private turn = 0;
  /** Names being made or renamed onto: the backings they go to, before they exist there. */
  private readonly pending = new Map<string, number[]>();

  constructor(private readonly o: SpreadOptions) {
    super({ backings: o.backings, sink: o.sink }, o.name);
  }

  /** The backing directories that hold the non-directory `rel`, in order. */
  holders(rel: string): number[] {
    const p = this.pending.get(rel);
    if (p) return p;
    const out: number[] = [];
    for (let i = 0; i < this.opts.backings.length; i++) {
      let st: fs.Stats | undefined;
      try {
        st = fs.lstatSync(this.backingPath(i, rel), { throwIfNoEntry: false });
      } catch {
        continue; // a backing that fails (EIO, ESTALE) holds no copy the mount can use
      }
      if (st && !st.isDirectory()) out.push(i);
    }
    return out;
  }

  /** Where a new file at `rel` goes: the policy's create(), checked. */
  placeNew(rel: string): number[] {
    const n = this.opts.backings.length;
    const mask = this.o.hooks.create(rel, this.turn++, this.o.context);
    if (!(Number.isInteger(mask) && mask > 0 && mask < 2 ** n)) {
      throw new Errno('EIO', `${this.o.name}: create(${JSON.stringify(rel)}) gave ${mask}, not a mask of backings 1..${2 ** n - 1}`);
    }
    return Array.from({ length: n }, (_, i) => i).filter((i) => Math.floor(mask / 2 ** i) % 2 === 1);
  }

  protected homeOf(rel: string): number {
    return this.holders(rel)[0] ?? 0;
  }

  protected listedIn(child: string, i: number): boolean {
    return this.homeOf(child) === i;
  }

  async movesFiles(): Promise<boolean> {
    return false; // files stay where they are
  }

  /** While `f` runs, `rel` resolves to `where` (a name about to exist there). */
  private async placing<T>(rel: string, where: number[], f: () => T | Promise<T>): Promise<T> {
    this.pending.set(rel, where);
    try {
      return await f();
    } finally {
      this.pending.delete(rel);
    }
  }

  /** RENAME of a file: in every backing that holds it; copies of the old target elsewhere go. */
  protected async renameFile(orig: Handler, req: Request, from: string, to: string, flags: number): Promise<HandlerResult> {
    const hf = this.holders(from);
    const ht = this.holders(to);
    const same = hf.length === ht.length && hf.every((i, k) => ht[k] === i);
    if ((flags & libc.RENAME_EXCHANGE) && !same) throw new Errno('EXDEV', `${this.o.name}: exchanging files kept on different backing directories`);
    if ((flags & libc.RENAME_NOREPLACE) && ht.length) throw new Errno('EEXIST');
    if (ht.length && this.isDir(this.backingPath(0, to))) throw new Errno('EISDIR');
    const r = await this.placing(to, hf, () => orig(req, new BodyReader(req.body, this.policy)));
    for (const i of hf.slice(1)) await libc.renameat2(this.backingPath(i, from), this.backingPath(i, to), flags);
    if (!(flags & libc.RENAME_EXCHANGE)) {
      for (const i of ht) if (!hf.includes(i)) await fsp.unlink(this.backingPath(i, to)).catch(() => undefined);
    }
    return r;
  }

  protected installFiles(_s: Session, wrap: (op: number, f: (orig: Handler, req: Request) => Promise<HandlerResult>) => void, body: (req: Request) => BodyReader): void {
    const c = this.c;
    // A new name is made where create() puts it: the passthrough handler makes the first
    // copy (the reply's), openBackings the others.
    const making = (op: number) => wrap(op, async (orig, req) => {
      const b = body(req);
      const mknod = op === Op.MKNOD ? b.struct(MKNOD_IN) : undefined;
      if (op === Op.CREATE) b.struct(CREATE_IN);
      const { rel } = c.child(req.nodeid, b.cstring());
      const target = op === Op.SYMLINK ? b.cstringBytes() : undefined;
      if (this.holders(rel).length) return orig(req, body(req)); // exists: the handler says what
      const where = this.placeNew(rel);
      const r = await this.placing(rel, where, () => orig(req, body(req)));
      // CREATE's copies are made at open (openBackings); a symlink's and a regular file's
      // from MKNOD here. FIFOs, sockets and devices stay on the first backing.
      for (const i of where.slice(1)) {
        const p = this.backingPath(i, rel);
        if (target) {
          await fsp.symlink(target, p);
          const st = fs.lstatSync(this.backingPath(where[0]!, rel));
          fs.lchownSync(p, st.uid, st.gid);
        } else if (mknod && (mknod.mode & fsc.S_IFMT) === fsc.S_IFREG) {
          const first = await openCopy(this.backingPath(where[0]!, rel), undefined);
          try {
            await (await openCopy(p, first, { make: true })).close();
          } finally {
            await first.close();
          }
        }
      }
      return r;
    });
    making(Op.CREATE);
    making(Op.MKNOD);
    making(Op.SYMLINK);

    // A hard link of a file: in every backing that holds it.
    wrap(Op.LINK, async (orig, req) => {
      const b = body(req);
      const { oldnodeid } = b.struct(LINK_IN);
      const src = c.nodes.path(Number(oldnodeid));
      const { rel } = c.child(req.nodeid, b.cstring());
      const hs = this.holders(src);
      const r = await this.placing(rel, hs, () => orig(req, body(req)));
      for (const i of hs.slice(1)) await fsp.link(this.backingPath(i, src), this.backingPath(i, rel));
      return r;
    });

    wrap(Op.UNLINK, async (orig, req) => {
      const { rel } = c.child(req.nodeid, body(req).cstring());
      const hs = this.holders(rel);
      const r = await orig(req, body(req));
      for (const i of hs.slice(1)) await fsp.unlink(this.backingPath(i, rel)).catch((e) => {
        if (e.code !== 'ENOENT') throw e;
      });
      return r;
    });

    // The handler sets the first copy and replies; a size, an owner and a mode then go to
    // the others (a copy is never left with root's owner or a mode the file no longer has).
    wrap(Op.SETATTR, async (orig, req) => {
      const a = body(req).struct(SETATTR_IN);
      const r = await orig(req, body(req));
      if (!(a.valid & (FAttr.SIZE | FAttr.MODE | FAttr.UID | FAttr.GID))) return r;
      const rel = c.nodes.path(req.nodeid);
      const hs = this.holders(rel);
      if (hs.length < 2 || !fs.lstatSync(this.backingPath(hs[0]!, rel)).isFile()) return r;
      const first = await openCopy(this.backingPath(hs[0]!, rel), undefined);
      try {
        for (const i of hs.slice(1)) {
          const copy = await openCopy(this.backingPath(i, rel), first, { make: true });
          try {
            if (a.valid & FAttr.SIZE) await copy.truncate(Number(a.size));
          } finally {
            await copy.close();
          }
        }
      } finally {
        await first.close();
      }
      return r;
    });
  }

  /** A file's copies, opened read-write (new or truncated: the others made or emptied, as the first's). */
  protected async openBackings(rel: string, how: { create?: number; trunc?: boolean } = {}): Promise<Backings> {
    const out: Backings = Array.from({ length: this.opts.backings.length }, () => undefined);
    const hs = this.holders(rel);
    try {
      for (const [k, i] of hs.entries()) {
        const path = this.backingPath(i, rel);
        const make = how.create !== undefined || !!how.trunc;
        out[i] = k === 0 ? await openCopy(path, undefined) : await openCopy(path, out[hs[0]!]!, { make, trunc: make });
      }
      return out;
    } catch (e) {
      await Promise.allSettled(out.map((f) => f?.close()));
      throw e;
    }
  }

  /** From the first copy that answers. */
  protected async read(open: OpenFile, fds: FileHandle[], offset: number, size: number): Promise<Buffer> {
    const { slots } = await open.ready;
    let err: unknown;
    for (let k = 0; k < fds.length; k++) {
      const i = slots[k]!;
      try {
        const buf = Buffer.allocUnsafe(size);
        const { bytesRead } = await fds[k]!.read(buf, 0, size, offset);
        this.counts[i]!.reads++;
        this.counts[i]!.readBytes += bytesRead;
        return buf.subarray(0, bytesRead);
      } catch (e) {
        this.counts[i]!.errors++;
        err = e;
      }
    }
    throw err ?? new Errno('EIO', `${this.o.name}: no copy of the file is open`);
  }

  /** To every copy: what all of them took; an error after the others were written. */
  protected async write(open: OpenFile, fds: FileHandle[], offset: number, data: Buffer): Promise<number> {
    const { slots } = await open.ready;
    let written = data.length;
    let err: unknown;
    for (let k = 0; k < fds.length; k++) {
      const i = slots[k]!;
      try {
        let done = 0;
        while (done < data.length) {
          const { bytesWritten } = await fds[k]!.write(data, done, data.length - done, offset + done);
          if (bytesWritten === 0) break;
          done += bytesWritten;
        }
        this.counts[i]!.writes++;
        this.counts[i]!.writeBytes += done;
        written = Math.min(written, done);
      } catch (e) {
        this.counts[i]!.errors++;
        err ??= e;
      }
    }
    if (err) throw err;
    return written;
  }
}
