// Policies that spread one FUSE tree over several backing directories (mirror, stripe),
// daemon side, on top of the passthrough filesystem.
//
// Backing 0 (the mount's backing directory) holds the namespace; backings 1..n-1 hold the
// same tree. Names are kept in step here (MKDIR, SYMLINK, UNLINK, RMDIR, RENAME, SETATTR
// size). On the first OPEN/CREATE of a regular file every backing's file is opened
// read-write and, when a BPF program serves the data path, registered with
// FUSE_DEV_IOC_BACKING_OPEN and published to it (nodeid -> backing ids, the node layout of
// contract.ts); at the last RELEASE the entry is withdrawn and everything closed.
// What the bytes mean is the subclass's: READ/WRITE that still reach the daemon (no
// program, program detached, file without an entry), truncation and sizes.
import fsp, { type FileHandle } from 'node:fs/promises';
import fs, { constants as fsc } from 'node:fs';
import { join } from 'node:path';
import {
  BodyReader, CREATE_IN, FAttr, MKDIR_IN, OPEN_IN, OPEN_OUT, Op, READ_IN, RELEASE_IN, RENAME2_IN, RENAME_IN,
  SETATTR_IN, WRITE_IN, WRITE_OUT, decodeStruct, encodeStruct, type Request,
} from '../fuse/protocol.ts';
import { Errno, type Handler, type HandlerResult, type Session } from '../fuse/session.ts';
import type { FuseDevice } from '../fuse/dev.ts';
import type { PtContext } from '../fuse/pt-context.ts';
import * as libc from '../fuse/libc.ts';
import { MAX_BACKINGS } from '../sdk/contract.ts';

/**
 * Opens a copy of a file whose first copy is `first` (a replica, a stripe's piece, a fast
 * tier's copy), made or emptied as `how` says. The daemon runs as root and the backing
 * directory may hold anything: the copy is opened without following a symlink, must be a
 * regular file, and one it makes or empties gets the first copy's owner and then its mode
 * (setuid/setgid only as the first copy has them, for the first copy's owner), never
 * root's.
 */
export async function openCopy(path: string, first: FileHandle | undefined, how: { make?: boolean; trunc?: boolean } = {}): Promise<FileHandle> {
  const flags = fsc.O_RDWR | fsc.O_NOFOLLOW | (how.make ? fsc.O_CREAT : 0) | (how.trunc ? fsc.O_TRUNC : 0);
  const fd = await fsp.open(path, flags, 0o600);
  try {
    if (!(await fd.stat()).isFile()) throw new Errno('EIO', `${path} is not a regular file: a backing directory holds something else there`);
    if (first && (how.make || how.trunc)) {
      const st = await first.stat();
      await fd.chown(st.uid, st.gid);
      await fd.chmod(st.mode & 0o7777);
    }
    return fd;
  } catch (e) {
    await fd.close();
    throw e;
  }
}

/** Where the daemon publishes a file's backing ids (the BPF map, in BPF mode). */
export interface BackingSink {
  set(nodeid: number, backingIds: number[]): void;
  delete(nodeid: number): void;
}

export interface FanOutOptions {
  /** Backing directories; [0] must be the mount's backing directory. */
  backings: string[];
  /** Register backing ids and publish them (needs a connection with FUSE_PASSTHROUGH). */
  sink?: BackingSink;
}

export interface OpenFile {
  refs: number;
  ready: Promise<{ fds: FileHandle[]; ids: number[]; slots: number[] }>;
  /** The backings' files once `ready` resolved (for synchronous attribute hooks). */
  fds?: FileHandle[];
}

/** What a policy opened for a file: per backing directory its file, or undefined where the
 *  policy keeps no copy (a tier's cold file, a route's other directories). */
export type Backings = (FileHandle | undefined)[];

export abstract class FanOutDaemon {
  protected readonly files = new Map<number, OpenFile>();
  /** File handles (fh) that hold a reference on a fanned-out file. */
  private readonly fannedFh = new Map<number, number>();
  protected c!: PtContext;
  private dev!: FuseDevice;

  constructor(protected readonly opts: FanOutOptions, readonly policy: string, min: number) {
    if (opts.backings.length < min || opts.backings.length > MAX_BACKINGS) {
      throw new Error(`${policy}: ${min}..${MAX_BACKINGS} backing directories, got ${opts.backings.length}`);
    }
  }

  /** Files currently open and fanned out (for leak checks). */
  get openFiles(): number {
    return this.files.size;
  }

  /** For mountFuse's `setup`: wraps the passthrough handlers. */
  install = ({ session, device, fs }: { session: Session; device: FuseDevice; fs: PtContext }): void => {
    this.c = fs;
    this.dev = device;
    // The connection may have negotiated FUSE_PASSTHROUGH (needed for backing ids), but the
    // kernel's passthrough would send all I/O to one file: files are opened without it.
    fs.opts.passthrough = false;
    if (this.namesInStep) this.wrapNamespace(session);
    this.wrapFiles(session);
    this.installMore(session);
  };

  /** READ of an open fanned-out file: the bytes, short at end of file. */
  protected abstract read(open: OpenFile, fds: FileHandle[], offset: number, size: number): Promise<Buffer>;
  /** WRITE: bytes written. */
  protected abstract write(open: OpenFile, fds: FileHandle[], offset: number, data: Buffer): Promise<number>;
  /** SETATTR with a size: give every backing, the primary included, its size (`fds` when
   *  the file is open, else by path). The passthrough handler then sets the rest. */
  protected abstract truncate(fds: FileHandle[] | null, rel: string, size: number): Promise<void>;
  /** First open of an existing file: open backings 1..n-1 read-write, repairing missing or
   *  stale copies (files made behind the mount's back). */
  protected abstract reconcile(rel: string, primary: FileHandle): Promise<FileHandle[]>;
  /** More handlers (after the generic ones are in place). */
  protected installMore(_s: Session): void {}
  /** Whether the generic handlers keep the same names in every backing directory (mkdir,
   *  unlink, rename ... repeated in each). A policy whose names live in one directory each
   *  (route) turns this off and resolves names itself. */
  protected readonly namesInStep: boolean = true;
  /** Whether a failure to repeat a name operation in backings 1..n-1 is ignored (a tier's
   *  fast directory is a cache: a name it lacks is only cold). */
  protected readonly othersBestEffort: boolean = false;

  /** RENAME in backing i (1..n-1) after the primary's succeeded. */
  protected renameIn(i: number, from: string, to: string, flags: number): Promise<void> | void {
    const a = this.backingPath(i, from);
    return flags ? libc.renameat2(a, this.backingPath(i, to), flags) : fsp.rename(a, this.backingPath(i, to));
  }

  /**
   * A regular file's first open: its file in each backing directory (undefined where the
   * policy keeps none). By default the primary's and, new or truncated, empty copies in all
   * the others; else what reconcile() makes of them.
   */
  protected async openBackings(rel: string, how: { create?: number; trunc?: boolean }): Promise<Backings> {
    const fds: FileHandle[] = [await fsp.open(this.backingPath(0, rel), fsc.O_RDWR)];
    try {
      if (how.create !== undefined || how.trunc) {
        // New or truncated: every backing's copy is empty, whatever the policy.
        for (let i = 1; i < this.opts.backings.length; i++) {
          fds.push(await openCopy(this.backingPath(i, rel), fds[0]!, { make: true, trunc: true }));
        }
      } else {
        fds.push(...(await this.reconcile(rel, fds[0]!)));
      }
      return fds;
    } catch (e) {
      await Promise.allSettled(fds.map((f) => f.close()));
      throw e;
    }
  }

  protected backingPath(i: number, rel: string): string {
    return rel === '' ? this.opts.backings[i]! : join(this.opts.backings[i]!, rel);
  }

  /** Runs `each` on backings 1..n-1 after the primary's handler succeeded. */
  protected async others(each: (abs: string, i: number) => Promise<unknown> | unknown, rel: string, ignore: string[] = []): Promise<void> {
    for (let i = 1; i < this.opts.backings.length; i++) {
      try {
        await each(this.backingPath(i, rel), i);
      } catch (e) {
        if (!this.othersBestEffort && !ignore.includes((e as NodeJS.ErrnoException).code ?? '')) throw e;
      }
    }
  }

  private wrap(s: Session, op: number, f: (orig: Handler, req: Request) => Promise<HandlerResult>): void {
    const orig = s.handler(op);
    if (!orig) throw new Error(`${this.policy}: no passthrough handler for opcode ${op}`);
    s.on(op, (req) => f(orig, req));
  }

  private wrapNamespace(s: Session): void {
    const c = this.c;
    const body = (req: Request) => new BodyReader(req.body, this.policy);
    this.wrap(s, Op.MKDIR, async (orig, req) => {
      const b = body(req);
      const { mode } = b.struct(MKDIR_IN);
      const { rel } = c.child(req.nodeid, b.cstring());
      const r = await orig(req, body(req));
      await this.others((p) => fsp.mkdir(p, { mode: mode & 0o7777 }), rel, ['EEXIST']);
      return r;
    });
    for (const [op, rm] of [[Op.UNLINK, fsp.unlink], [Op.RMDIR, fsp.rmdir]] as const) {
      this.wrap(s, op, async (orig, req) => {
        const { rel } = c.child(req.nodeid, body(req).cstring());
        const r = await orig(req, body(req));
        await this.others((p) => rm(p), rel, ['ENOENT']);
        return r;
      });
    }
    this.wrap(s, Op.SYMLINK, async (orig, req) => {
      const b = body(req);
      const { rel } = c.child(req.nodeid, b.cstring());
      const target = b.cstringBytes();
      const r = await orig(req, body(req));
      await this.others((p) => fsp.symlink(target, p), rel, ['EEXIST']);
      return r;
    });
    const rename = (two: boolean) => async (orig: Handler, req: Request) => {
      const b = body(req);
      const a = two ? b.struct(RENAME2_IN) : { ...b.struct(RENAME_IN), flags: 0 };
      const from = c.child(req.nodeid, b.cstring()).rel;
      const to = c.child(Number(a.newdir), b.cstring()).rel;
      const r = await orig(req, body(req));
      await this.others((_p, i) => this.renameIn(i, from, to, a.flags), from, ['ENOENT']);
      return r;
    };
    this.wrap(s, Op.RENAME, rename(false));
    this.wrap(s, Op.RENAME2, rename(true));
    this.wrap(s, Op.SETATTR, async (orig, req) => {
      const a = body(req).struct(SETATTR_IN);
      if (!(a.valid & FAttr.SIZE)) return orig(req, body(req));
      const open = this.files.get(req.nodeid);
      await this.truncate(open ? (await open.ready).fds : null, c.nodes.path(req.nodeid), Number(a.size));
      // The size is the policy's (a stripe's primary is not the file's size): the handler
      // applies the other attributes and replies with the attributes as they now are.
      const rest = Buffer.from(req.body);
      rest.writeUInt32LE(a.valid & ~FAttr.SIZE, 0);
      const req2 = req.withBody(rest);
      return orig(req2, body(req2));
    });
  }

  private wrapFiles(s: Session): void {
    const c = this.c;
    const body = (req: Request) => new BodyReader(req.body, this.policy);

    // After the primary's handler opened the file: fan it out if it is a regular file.
    const afterOpen = async (nodeid: number, rel: string, openOut: Buffer, how: { create?: number; trunc?: boolean }) => {
      const fh = Number(decodeStruct(OPEN_OUT, openOut).fh);
      const h = c.handles.get(fh);
      if (!h || h.kind !== 'file' || !fs.fstatSync(h.fd).isFile()) return;
      try {
        await this.acquire(nodeid, rel, how);
      } catch (e) {
        // The kernel gets the error, so it will never RELEASE this handle: undo it here.
        c.dropHandle(BigInt(fh));
        fs.closeSync(h.fd);
        if (how.create !== undefined) c.nodes.forget(nodeid, 1);
        throw e;
      }
      this.fannedFh.set(fh, nodeid);
    };

    this.wrap(s, Op.OPEN, async (orig, req) => {
      const { flags } = body(req).struct(OPEN_IN);
      const r = (await orig(req, body(req))) as Buffer;
      await afterOpen(req.nodeid, c.nodes.path(req.nodeid), r, { trunc: (flags & fsc.O_TRUNC) !== 0 });
      return r;
    });

    this.wrap(s, Op.CREATE, async (orig, req) => {
      const b = body(req);
      const a = b.struct(CREATE_IN);
      const { rel } = c.child(req.nodeid, b.cstring());
      const r = (await orig(req, body(req))) as Buffer[];
      const nodeid = Number(r[0]!.readBigUInt64LE(0)); // fuse_entry_out.nodeid
      await afterOpen(nodeid, rel, r[1]!, { create: a.mode & 0o7777 });
      return r;
    });

    this.wrap(s, Op.RELEASE, async (orig, req) => {
      const fh = Number(body(req).struct(RELEASE_IN).fh);
      const r = await orig(req, body(req));
      const nodeid = this.fannedFh.get(fh);
      if (nodeid !== undefined) {
        this.fannedFh.delete(fh);
        await this.release(nodeid);
      }
      return r;
    });

    this.wrap(s, Op.READ, async (orig, req) => {
      const a = body(req).struct(READ_IN);
      const open = this.files.get(c.file(a.fh).node.id);
      if (!open) return orig(req, body(req));
      return this.read(open, (await open.ready).fds, Number(a.offset), a.size);
    });

    this.wrap(s, Op.WRITE, async (orig, req) => {
      const b = body(req);
      const a = b.struct(WRITE_IN);
      const open = this.files.get(c.file(a.fh).node.id);
      if (!open) return orig(req, body(req));
      const data = b.bytes(a.size);
      const written = await this.write(open, (await open.ready).fds, Number(a.offset), data);
      return encodeStruct(WRITE_OUT, { size: written });
    });
  }

  /**
   * One reference per open handle. The first opens every backing's copy read-write (the
   * kernel's open flags are the primary handle's business).
   */
  private acquire(nodeid: number, rel: string, how: { create?: number; trunc?: boolean }): Promise<unknown> {
    const have = this.files.get(nodeid);
    if (have) {
      have.refs++;
      // O_TRUNC on the primary: the copies already open follow.
      return how.trunc ? have.ready.then(({ fds }) => Promise.all(fds.slice(1).map((f) => f.truncate(0)))) : have.ready;
    }
    const entry: OpenFile = { refs: 1, ready: this.openAll(nodeid, rel, how) };
    this.files.set(nodeid, entry);
    entry.ready.then((r) => (entry.fds = r.fds), () => {
      if (this.files.get(nodeid) === entry) this.files.delete(nodeid);
    });
    return entry.ready;
  }

  private async openAll(nodeid: number, rel: string, how: { create?: number; trunc?: boolean }): Promise<{ fds: FileHandle[]; ids: number[]; slots: number[] }> {
    const opened = await this.openBackings(rel, how);
    const fds: FileHandle[] = [];
    const slots: number[] = [];
    opened.forEach((f, i) => {
      if (f) {
        fds.push(f);
        slots.push(i);
      }
    });
    // Published in backing order, 0 (no id) where the policy keeps no file.
    const ids: number[] = [];
    try {
      if (this.opts.sink) {
        const byBacking = Array.from({ length: opened.length }, () => 0);
        for (let k = 0; k < fds.length; k++) {
          const id = this.dev.backingOpen(fds[k]!.fd);
          ids.push(id);
          byBacking[slots[k]!] = id;
        }
        this.opts.sink.set(nodeid, byBacking);
      }
      return { fds, ids, slots };
    } catch (e) {
      for (const id of ids) this.closeId(id);
      await Promise.allSettled(fds.map((f) => f.close()));
      throw e;
    }
  }

  /**
   * An open file whose backing files changed under it (a union's copy-up): open them again,
   * publish the new ids (the program sees them from its next request) and drop the old.
   */
  protected async refresh(nodeid: number, rel: string): Promise<void> {
    const have = this.files.get(nodeid);
    if (!have) return;
    const old = await have.ready;
    const next = this.openAll(nodeid, rel, {});
    await next;
    have.ready = next;
    have.fds = (await next).fds;
    for (const id of old.ids) this.closeId(id);
    await Promise.allSettled(old.fds.map((f) => f.close()));
  }

  private async release(nodeid: number): Promise<void> {
    const open = this.files.get(nodeid);
    if (!open || --open.refs > 0) return;
    this.files.delete(nodeid);
    const { fds, ids } = await open.ready;
    // Withdraw the entry first: from now on the program sends this node's I/O up.
    if (ids.length) this.opts.sink?.delete(nodeid);
    for (const id of ids) this.closeId(id);
    await Promise.allSettled(fds.map((f) => f.close()));
  }

  private closeId(id: number): void {
    try {
      this.dev.backingClose(id);
    } catch (e) {
      if ((e as libc.SysError).code !== 'ENODEV') throw e; // connection already gone
    }
  }
}
