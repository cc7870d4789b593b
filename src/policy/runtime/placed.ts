// The daemon half shared by policies whose FUSE file has one backing file, in one of N
// backing directories the policy chose (route: by the name; union: the topmost layer): the
// names are resolved, not kept in step, and READ/WRITE that reach the daemon go to that one
// file, counted per directory as the program counts them.
import fsp, { type FileHandle } from 'node:fs/promises';
import { constants as fsc } from 'node:fs';
import { FanOutDaemon, type Backings, type BackingSink, type OpenFile } from '../fanout.ts';
import { zeroBacking, type BackingCounts } from '../../sdk/contract.ts';

export abstract class PlacedDaemon extends FanOutDaemon {
  /** READ/WRITE served by the daemon, per backing directory. */
  readonly counts: BackingCounts[];
  protected readonly namesInStep = false;

  constructor(opts: { backings: string[]; sink?: BackingSink }, policy: string) {
    super(opts, policy, 2);
    this.counts = opts.backings.map(zeroBacking);
  }

  /** The backing directory `rel` lives in now. */
  protected abstract placeOf(rel: string): number;

  /** Whether files in backing `i` are opened for writing. */
  protected writable(_i: number): boolean {
    return true;
  }

  protected async openBackings(rel: string): Promise<Backings> {
    const out: Backings = Array.from({ length: this.opts.backings.length }, () => undefined);
    const i = this.placeOf(rel);
    out[i] = await fsp.open(this.backingPath(i, rel), this.writable(i) ? fsc.O_RDWR : fsc.O_RDONLY);
    return out;
  }

  protected async placeOfOpen(open: OpenFile): Promise<number> {
    return (await open.ready).slots[0]!;
  }

  protected async read(open: OpenFile, fds: FileHandle[], offset: number, size: number): Promise<Buffer> {
    const i = await this.placeOfOpen(open);
    const buf = Buffer.allocUnsafe(size);
    const { bytesRead } = await fds[0]!.read(buf, 0, size, offset);
    this.counts[i]!.reads++;
    this.counts[i]!.readBytes += bytesRead;
    return buf.subarray(0, bytesRead);
  }

  protected async write(open: OpenFile, fds: FileHandle[], offset: number, data: Buffer): Promise<number> {
    const i = await this.placeOfOpen(open);
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await fds[0]!.write(data, done, data.length - done, offset + done);
      if (bytesWritten === 0) break;
      done += bytesWritten;
    }
    this.counts[i]!.writes++;
    this.counts[i]!.writeBytes += done;
    return done;
  }

  // The first open never reconciles (openBackings is the policy's) and the in-step SETATTR
  // handler that truncates is not installed.
  protected async reconcile(): Promise<FileHandle[]> {
    return [];
  }

  protected async truncate(): Promise<void> {
    throw new Error(`${this.policy}: truncate goes through the passthrough handler`);
  }
}
