// The userspace runtime of tiered policies (tier; the twin of bpf/runtime/tiers.bpf.h):
// backing 0 is the slow tier and holds every file (the namespace), backing 1 the fast
// tier, a cache of some of them under the same names.
//
// At a file's first open the daemon decides where its bytes are read from: a fresh copy on
// the fast tier is used as it is; a cold file the policy's promote() takes is copied up first
// (the population "through the daemon"); anything else is read from the slow tier. The
// program (bpf/runtime/tiers.bpf.h) then reads from the fast copy when there is one and writes
// through to both, so the slow tier is always complete. A READ or WRITE that reaches the
// daemon is served the same way: a daemon-only mount is the reference.
//
// A fast copy is fresh when it has the slow file's size and is not older than it (writes
// go to the slow tier first). Names are kept in step on the fast tier on a best-effort
// basis: it is a cache, so a name it lacks is simply cold.
import fsp, { type FileHandle } from 'node:fs/promises';
import { constants as fsc } from 'node:fs';
import { dirname } from 'node:path';
import { FanOutDaemon, openCopy, type Backings, type BackingSink, type OpenFile } from '../fanout.ts';
import { zeroBacking, type BackingCounts } from '../../sdk/contract.ts';
import type { PolicyValues, TierHooks } from '../lang/define.ts';

export const SLOW = 0;
export const FAST = 1;

export interface TierOptions {
  /** The policy's name (messages, counters). */
  name: string;
  /** [slow, fast]; slow must be the mount's backing directory. */
  backings: string[];
  /** Its tier functions (functions.ts), called with `context`. */
  hooks: TierHooks<PolicyValues>;
  context: PolicyValues;
  sink?: BackingSink;
}

export class TierDaemon extends FanOutDaemon {
  /** READ/WRITE served by the daemon, per tier. */
  readonly counts: BackingCounts[] = [zeroBacking(), zeroBacking()];
  /** Cold files copied up, and copies that failed (the fast tier full, say). */
  promotions = 0;
  promoteErrors = 0;

  protected readonly othersBestEffort = true;

  constructor(private readonly t: TierOptions) {
    super({ backings: t.backings, sink: t.sink }, t.name, 2);
    if (t.backings.length !== 2) throw new Error(`${t.name}: two backing directories (slow, fast), got ${t.backings.length}`);
  }

  /** The fast copy when the file has one: fds are [slow] or [slow, fast]. */
  protected async read(_open: OpenFile, fds: FileHandle[], offset: number, size: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(size);
    for (let k = fds.length - 1; k >= 0; k--) {
      const tier = k === 1 ? FAST : SLOW;
      try {
        const { bytesRead } = await fds[k]!.read(buf, 0, size, offset);
        this.counts[tier]!.reads++;
        this.counts[tier]!.readBytes += bytesRead;
        return buf.subarray(0, bytesRead);
      } catch (e) {
        // A failing fast copy costs latency, not the read: the slow tier has every byte.
        this.counts[tier]!.errors++;
        if (k === 0) throw e;
      }
    }
    throw new Error('tier: no backing file');
  }

  /** Write-through: the slow tier first (it must be complete), then the fast copy. */
  protected async write(_open: OpenFile, fds: FileHandle[], offset: number, data: Buffer): Promise<number> {
    let written = data.length;
    for (let k = 0; k < fds.length; k++) {
      let done = 0;
      while (done < written) {
        const { bytesWritten } = await fds[k]!.write(data, done, written - done, offset + done);
        if (bytesWritten === 0) break;
        done += bytesWritten;
      }
      this.counts[k]!.writes++;
      this.counts[k]!.writeBytes += done;
      written = done;
    }
    return written;
  }

  protected async truncate(fds: FileHandle[] | null, rel: string, size: number): Promise<void> {
    if (fds) {
      for (const fd of fds) await fd.truncate(size);
      return;
    }
    await fsp.truncate(this.backingPath(SLOW, rel), size);
    await fsp.truncate(this.backingPath(FAST, rel), size).catch((e) => {
      if (e.code !== 'ENOENT') throw e;
    });
  }

  /** [slow, fast copy or nothing]: always two slots, so the program sees nr == 2. */
  protected async openBackings(rel: string, how: { create?: number; trunc?: boolean }): Promise<Backings> {
    const slow = await fsp.open(this.backingPath(SLOW, rel), fsc.O_RDWR);
    try {
      if (how.create === undefined && !how.trunc) return [slow, (await this.reconcile(rel, slow))[0]];
      // New or emptied: hot, so on the fast tier too, if it has room and the directory.
      const fast = this.backingPath(FAST, rel);
      try {
        await fsp.mkdir(dirname(fast), { recursive: true });
        return [slow, await openCopy(fast, slow, { make: true, trunc: true })];
      } catch {
        this.promoteErrors++;
        await fsp.rm(fast, { force: true, recursive: true }).catch(() => undefined);
        return [slow, undefined];
      }
    } catch (e) {
      await slow.close();
      throw e;
    }
  }

  /** First open of an existing file: its fast copy, made if the file is small enough. */
  protected async reconcile(rel: string, slow: FileHandle): Promise<FileHandle[]> {
    const st = await slow.stat();
    const fast = this.backingPath(FAST, rel);
    const copy = await fsp.lstat(fast).catch(() => undefined); // a link is never a fresh copy
    const fresh = copy?.isFile() && copy.size === st.size && copy.mtimeMs >= st.mtimeMs;
    if (!fresh) {
      if (!this.t.hooks.promote(st.size, this.t.context)) {
        // Too big to copy up: a stale copy must not be read later, so it goes.
        if (copy) await fsp.rm(fast, { force: true, recursive: copy.isDirectory() });
        return [];
      }
      try {
        await fsp.mkdir(dirname(fast), { recursive: true });
        // Replaced, never written through: what is there may be a link to elsewhere.
        await fsp.rm(fast, { force: true, recursive: copy?.isDirectory() ?? false });
        await fsp.copyFile(this.backingPath(SLOW, rel), fast, fsc.COPYFILE_EXCL);
        await (await openCopy(fast, slow, { make: true })).close(); // the slow file's owner and mode
        this.promotions++;
      } catch {
        // The fast tier full or gone: the file stays cold, the slow tier serves it.
        this.promoteErrors++;
        await fsp.rm(fast, { force: true }).catch(() => undefined);
        return [];
      }
    }
    return [await openCopy(fast, slow)];
  }

  /** A rename the fast tier cannot follow (the source is not cached) drops both names there. */
  protected async renameIn(i: number, from: string, to: string, flags: number): Promise<void> {
    try {
      await super.renameIn(i, from, to, flags);
    } catch {
      for (const rel of [from, to]) await fsp.rm(this.backingPath(i, rel), { force: true, recursive: true });
    }
  }
}
