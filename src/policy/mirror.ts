// The mirror policy, daemon side, on top of the passthrough filesystem.
//
// Replica 0 (the mount's backing directory) holds the namespace; replicas 1..n-1 hold the
// same tree. Names are kept in step here (CREATE, MKDIR, SYMLINK, UNLINK, RMDIR, RENAME,
// SETATTR size). Data is the policy's: on the first OPEN/CREATE of a regular file every
// replica's copy is opened read-write and, when a BPF program serves the data path,
// registered with FUSE_DEV_IOC_BACKING_OPEN and published to it (nodeid -> backing ids);
// at the last RELEASE the entry is withdrawn and everything closed. READ and WRITE that
// still reach the daemon (no program, program detached, file without an entry) are served
// with the same semantics as bpf/examples/mirror.bpf.c: read one replica round-robin,
// failing over on error; write every replica.
import fsp, { type FileHandle } from 'node:fs/promises';
import { constants as fsc } from 'node:fs';
import { join } from 'node:path';
import {
  BodyReader, COPY_FILE_RANGE_IN, CREATE_IN, FAttr, MKDIR_IN, OPEN_IN, OPEN_OUT, Op, READ_IN, RELEASE_IN, RENAME2_IN, RENAME_IN,
  SETATTR_IN, WRITE_IN, WRITE_OUT, decodeStruct, encodeStruct, type Request,
} from '../fuse/protocol.ts';
import type { Handler, HandlerResult, Session } from '../fuse/session.ts';
import type { FuseDevice } from '../fuse/dev.ts';
import type { PtContext } from '../fuse/pt-context.ts';
import * as libc from '../fuse/libc.ts';
import { MAX_REPLICAS, zeroReplica, type ReplicaCounts } from './mirror-layout.ts';

/** Where the daemon publishes a file's backing ids (the BPF map, in BPF mode). */
export interface MirrorSink {
  set(nodeid: number, backingIds: number[]): void;
  delete(nodeid: number): void;
}

export interface MirrorOptions {
  /** Replica directories; [0] must be the mount's backing directory. */
  replicas: string[];
  /** Register backing ids and publish them (needs a connection with FUSE_PASSTHROUGH). */
  sink?: MirrorSink;
}

interface OpenFile {
  refs: number;
  ready: Promise<{ fds: FileHandle[]; ids: number[] }>;
  /** Round-robin cursor for READs served here. */
  next: number;
}

export class MirrorDaemon {
  /** READ/WRITE served by the daemon, per replica. */
  readonly counts: ReplicaCounts[];
  private readonly files = new Map<number, OpenFile>();
  /** File handles (fh) that hold a reference on a mirrored file. */
  private readonly mirroredFh = new Map<number, number>();
  private c!: PtContext;
  private dev!: FuseDevice;

  constructor(private readonly opts: MirrorOptions) {
    if (opts.replicas.length < 2 || opts.replicas.length > MAX_REPLICAS) {
      throw new Error(`mirror: 2..${MAX_REPLICAS} replica directories, got ${opts.replicas.length}`);
    }
    this.counts = opts.replicas.map(zeroReplica);
  }

  /** Files currently open and mirrored (for leak checks). */
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
    this.wrapNamespace(session);
    this.wrapFiles(session);
  };

  private replicaPath(i: number, rel: string): string {
    return rel === '' ? this.opts.replicas[i]! : join(this.opts.replicas[i]!, rel);
  }

  /** Runs `each` on replicas 1..n-1 after the primary's handler succeeded. */
  private async others(each: (abs: string, i: number) => Promise<unknown> | unknown, rel: string, ignore: string[] = []): Promise<void> {
    for (let i = 1; i < this.opts.replicas.length; i++) {
      try {
        await each(this.replicaPath(i, rel), i);
      } catch (e) {
        if (!ignore.includes((e as NodeJS.ErrnoException).code ?? '')) throw e;
      }
    }
  }

  private wrap(s: Session, op: number, f: (orig: Handler, req: Request) => Promise<HandlerResult>): void {
    const orig = s.handler(op);
    if (!orig) throw new Error(`mirror: no passthrough handler for opcode ${op}`);
    s.on(op, (req) => f(orig, req));
  }

  private wrapNamespace(s: Session): void {
    const c = this.c;
    const body = (req: Request) => new BodyReader(req.body, 'mirror');
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
      await this.others((p, i) => (a.flags ? libc.renameat2(p, this.replicaPath(i, to), a.flags) : fsp.rename(p, this.replicaPath(i, to))), from, ['ENOENT']);
      return r;
    };
    this.wrap(s, Op.RENAME, rename(false));
    this.wrap(s, Op.RENAME2, rename(true));
    this.wrap(s, Op.SETATTR, async (orig, req) => {
      const a = body(req).struct(SETATTR_IN);
      const r = await orig(req, body(req));
      if (a.valid & FAttr.SIZE) {
        const open = this.files.get(req.nodeid);
        if (open) {
          const { fds } = await open.ready;
          for (const fd of fds.slice(1)) await fd.truncate(Number(a.size));
        } else {
          await this.others((p) => fsp.truncate(p, Number(a.size)), c.nodes.path(req.nodeid), ['ENOENT']);
        }
      }
      return r;
    });
  }

  private wrapFiles(s: Session): void {
    const c = this.c;
    const body = (req: Request) => new BodyReader(req.body, 'mirror');

    // After the primary's handler opened the file: mirror it if it is a regular file.
    const afterOpen = async (nodeid: number, rel: string, openOut: Buffer, how: { create?: number; trunc?: boolean }) => {
      const fh = Number(decodeStruct(OPEN_OUT, openOut).fh);
      const h = c.handles.get(fh);
      if (!h || h.kind !== 'file' || !(await h.fh.stat()).isFile()) return;
      try {
        await this.acquire(nodeid, rel, how);
      } catch (e) {
        // The kernel gets the error, so it will never RELEASE this handle: undo it here.
        c.dropHandle(BigInt(fh));
        await h.fh.close();
        if (how.create !== undefined) c.nodes.forget(nodeid, 1);
        throw e;
      }
      this.mirroredFh.set(fh, nodeid);
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
      const nodeid = this.mirroredFh.get(fh);
      if (nodeid !== undefined) {
        this.mirroredFh.delete(fh);
        await this.release(nodeid);
      }
      return r;
    });

    this.wrap(s, Op.READ, async (orig, req) => {
      const a = body(req).struct(READ_IN);
      const open = this.files.get(c.file(a.fh).node.id);
      if (!open) return orig(req, body(req));
      const { fds } = await open.ready;
      const first = open.next++;
      let err: unknown;
      for (let i = 0; i < fds.length; i++) {
        const r = (first + i) % fds.length;
        try {
          const buf = Buffer.allocUnsafe(a.size);
          const { bytesRead } = await fds[r]!.read(buf, 0, a.size, Number(a.offset));
          this.counts[r]!.reads++;
          this.counts[r]!.readBytes += bytesRead;
          return buf.subarray(0, bytesRead);
        } catch (e) {
          this.counts[r]!.errors++;
          err = e;
        }
      }
      throw err;
    });

    this.wrap(s, Op.WRITE, async (orig, req) => {
      const b = body(req);
      const a = b.struct(WRITE_IN);
      const open = this.files.get(c.file(a.fh).node.id);
      if (!open) return orig(req, body(req));
      const data = b.bytes(a.size);
      const { fds } = await open.ready;
      let written = data.length;
      let err: unknown;
      for (let i = 0; i < fds.length; i++) {
        try {
          let done = 0;
          while (done < data.length) {
            const { bytesWritten } = await fds[i]!.write(data, done, data.length - done, Number(a.offset) + done);
            if (bytesWritten === 0) break;
            done += bytesWritten;
          }
          this.counts[i]!.writes++;
          this.counts[i]!.writeBytes += done;
          written = Math.min(written, done);
        } catch (e) {
          // Keep writing the others so the healthy replicas stay identical.
          this.counts[i]!.errors++;
          err ??= e;
        }
      }
      if (err) throw err;
      return encodeStruct(WRITE_OUT, { size: written });
    });
    // copy_file_range between two mirrored files: replica i to replica i (they hold the
    // same bytes), so the copy is mirrored without the data passing through the daemon.
    this.wrap(s, Op.COPY_FILE_RANGE, async (orig, req) => {
      const a = body(req).struct(COPY_FILE_RANGE_IN);
      const src = this.files.get(c.file(a.fh_in).node.id);
      const dst = this.files.get(c.file(a.fh_out).node.id);
      if (!src || !dst) return orig(req, body(req));
      const [from, to] = [(await src.ready).fds, (await dst.ready).fds];
      let copied = Number.MAX_SAFE_INTEGER;
      for (let i = 0; i < to.length; i++) {
        copied = Math.min(copied, libc.copyFileRange(from[i]!.fd, a.off_in, to[i]!.fd, a.off_out, a.len, Number(a.flags)));
      }
      return encodeStruct(WRITE_OUT, { size: copied });
    });
  }

  /**
   * One reference per open handle. The first opens every replica read-write (the kernel's
   * open flags are the primary handle's business), creating missing copies from the primary
   * (files made behind the mount's back, or O_TRUNC: sizes differ).
   */
  private acquire(nodeid: number, rel: string, how: { create?: number; trunc?: boolean }): Promise<unknown> {
    const have = this.files.get(nodeid);
    if (have) {
      have.refs++;
      // O_TRUNC on the primary: the copies already open follow.
      return how.trunc ? have.ready.then(({ fds }) => Promise.all(fds.slice(1).map((f) => f.truncate(0)))) : have.ready;
    }
    const entry: OpenFile = { refs: 1, next: 0, ready: this.openAll(nodeid, rel, how.create) };
    this.files.set(nodeid, entry);
    entry.ready.catch(() => {
      if (this.files.get(nodeid) === entry) this.files.delete(nodeid);
    });
    return entry.ready;
  }

  private async openAll(nodeid: number, rel: string, create?: number): Promise<{ fds: FileHandle[]; ids: number[] }> {
    const fds: FileHandle[] = [];
    const ids: number[] = [];
    try {
      const primary = this.replicaPath(0, rel);
      fds.push(await fsp.open(primary, fsc.O_RDWR));
      const size = (await fds[0]!.stat()).size;
      for (let i = 1; i < this.opts.replicas.length; i++) {
        const p = this.replicaPath(i, rel);
        if (create !== undefined) {
          fds.push(await fsp.open(p, fsc.O_RDWR | fsc.O_CREAT | fsc.O_TRUNC, create));
          continue;
        }
        const st = await fsp.stat(p).catch(() => undefined);
        if (!st || st.size !== size) await fsp.copyFile(primary, p);
        fds.push(await fsp.open(p, fsc.O_RDWR));
      }
      if (this.opts.sink) {
        for (const f of fds) ids.push(this.dev.backingOpen(f.fd));
        this.opts.sink.set(nodeid, ids);
      }
      return { fds, ids };
    } catch (e) {
      for (const id of ids) this.closeId(id);
      await Promise.allSettled(fds.map((f) => f.close()));
      throw e;
    }
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
