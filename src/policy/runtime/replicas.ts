// The userspace runtime of replica policies (the twin of bpf/runtime/replicas.bpf.h; the
// fan-out of names and open files is fanout.ts's).
//
// Every backing directory is a replica holding the same tree and the same bytes. READ and
// WRITE that reach the daemon (no program, program detached, file without an entry) are
// served with the program's semantics: a READ tries replicas in the order the policy's
// readFrom gives (the same function, called here as it is written), the next one after an
// error; a WRITE goes to every replica.
import fsp, { type FileHandle } from 'node:fs/promises';
import { constants as fsc } from 'node:fs';
import { BodyReader, COPY_FILE_RANGE_IN, Op, WRITE_OUT, encodeStruct } from '../../fuse/protocol.ts';
import { Errno, type Session } from '../../fuse/session.ts';
import * as libc from '../../fuse/libc.ts';
import { FanOutDaemon, openCopy, type BackingSink, type OpenFile } from '../fanout.ts';
import { zeroBacking, type BackingCounts } from '../../sdk/contract.ts';
import type { PolicyValues, ReplicaHooks } from '../lang/define.ts';

type Context = PolicyValues;

export interface ReplicasOptions {
  /** The policy's name (messages, counters). */
  name: string;
  /** Replica directories; [0] must be the mount's backing directory. */
  replicas: string[];
  /** Its replica functions (functions.ts), called with `context`. */
  hooks: ReplicaHooks<Context>;
  context: Context;
  /** Register backing ids and publish them (needs a connection with FUSE_PASSTHROUGH). */
  sink?: BackingSink;
}

export class ReplicasDaemon extends FanOutDaemon {
  /** READ/WRITE served by the daemon, per replica. */
  readonly counts: BackingCounts[];
  private turn = 0;

  constructor(private readonly r: ReplicasOptions) {
    super({ backings: r.replicas, sink: r.sink }, r.name, 2);
    this.counts = r.replicas.map(zeroBacking);
  }

  protected async read(_open: OpenFile, fds: FileHandle[], offset: number, size: number): Promise<Buffer> {
    const turn = this.turn++ >>> 0; // a u32 cursor, as the program's
    let err: unknown;
    for (let i = 0; i < fds.length; i++) {
      const r = this.r.hooks.readFrom(i, turn, this.r.context);
      if (!(Number.isInteger(r) && r >= 0 && r < fds.length)) throw new Errno('EIO', `${this.r.name}: readFrom(${i}, ${turn}) gave replica ${r}`);
      try {
        const buf = Buffer.allocUnsafe(size);
        const { bytesRead } = await fds[r]!.read(buf, 0, size, offset);
        this.counts[r]!.reads++;
        this.counts[r]!.readBytes += bytesRead;
        return buf.subarray(0, bytesRead);
      } catch (e) {
        this.counts[r]!.errors++;
        err = e;
      }
    }
    throw err;
  }

  protected async write(_open: OpenFile, fds: FileHandle[], offset: number, data: Buffer): Promise<number> {
    let written = data.length;
    let err: unknown;
    for (let i = 0; i < fds.length; i++) {
      try {
        let done = 0;
        while (done < data.length) {
          const { bytesWritten } = await fds[i]!.write(data, done, data.length - done, offset + done);
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
    return written;
  }

  protected async truncate(fds: FileHandle[] | null, rel: string, size: number): Promise<void> {
    if (fds) {
      for (const fd of fds) await fd.truncate(size);
    } else {
      await fsp.truncate(this.backingPath(0, rel), size);
      await this.others((p) => fsp.truncate(p, size), rel, ['ENOENT']);
    }
  }

  /** Missing copies, or copies whose size differs from the primary's, are copied from it. */
  protected async reconcile(rel: string, primary: FileHandle): Promise<FileHandle[]> {
    const size = (await primary.stat()).size;
    const fds: FileHandle[] = [];
    try {
      for (let i = 1; i < this.opts.backings.length; i++) {
        const p = this.backingPath(i, rel);
        const st = await fsp.lstat(p).catch(() => undefined);
        const stale = !st || !st.isFile() || st.size !== size;
        if (stale) {
          // Replaced, never written through: what is there may be a link to elsewhere.
          await fsp.rm(p, { force: true });
          await fsp.copyFile(this.backingPath(0, rel), p, fsc.COPYFILE_EXCL);
        }
        fds.push(await openCopy(p, primary, { make: stale }));
      }
      return fds;
    } catch (e) {
      await Promise.allSettled(fds.map((f) => f.close()));
      throw e;
    }
  }

  // copy_file_range between two mirrored files: replica i to replica i (they hold the
  // same bytes), so the copy is mirrored without the data passing through the daemon.
  protected installMore(s: Session): void {
    const orig = s.handler(Op.COPY_FILE_RANGE)!;
    s.on(Op.COPY_FILE_RANGE, async (req) => {
      const a = new BodyReader(req.body, 'mirror').struct(COPY_FILE_RANGE_IN);
      const src = this.files.get(this.c.file(a.fh_in).node.id);
      const dst = this.files.get(this.c.file(a.fh_out).node.id);
      if (!src || !dst) return orig(req, new BodyReader(req.body, 'mirror'));
      const [from, to] = [(await src.ready).fds, (await dst.ready).fds];
      let copied = Number.MAX_SAFE_INTEGER;
      for (let i = 0; i < to.length; i++) {
        copied = Math.min(copied, libc.copyFileRange(from[i]!.fd, a.off_in, to[i]!.fd, a.off_out, a.len, Number(a.flags)));
      }
      return encodeStruct(WRITE_OUT, { size: copied });
    });
  }
}
