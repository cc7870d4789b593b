// One FUSE connection: the /dev/fuse fd, the mount, request reading, reply writing,
// passthrough backing ids, and unmount. Knows nothing about filesystems.
import fs from 'node:fs';
import { Worker } from 'node:worker_threads';
import * as libc from './libc.ts';
import { BACKING_MAP, FUSE_BACKING_DIR, FUSE_DEV_IOC_BACKING_CLOSE, FUSE_DEV_IOC_BACKING_OPEN, encodeStruct } from './protocol.ts';

// Readers are plain threads doing blocking read(2): a read on /dev/fuse sleeps until the
// kernel has a request, which would pin a libuv threadpool thread forever (and starve the
// fs calls the handlers need). Each read returns exactly one request; the bytes are
// copied into a right-sized ArrayBuffer and transferred, so the big buffer is reused.
// Plain JS (eval: true) so it works both under tsx and in the esbuild bundle.
const READER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
const { fd, bufSize } = workerData;
const buf = Buffer.allocUnsafeSlow(bufSize);
for (;;) {
  let n;
  try {
    n = fs.readSync(fd, buf, 0, bufSize, null);
  } catch (e) {
    // EINTR: signal; ENOENT: the request was interrupted before we got it; EAGAIN: spurious.
    if (e.code === 'EINTR' || e.code === 'ENOENT' || e.code === 'EAGAIN') continue;
    parentPort.postMessage({ end: e.code || String(e) });
    break;
  }
  if (n === 0) { parentPort.postMessage({ end: 'EOF' }); break; }
  const ab = new ArrayBuffer(n);
  new Uint8Array(ab).set(buf.subarray(0, n));
  parentPort.postMessage(ab, [ab]);
}
`;

export interface MountOptions {
  mountpoint: string;
  /** The "source" column in /proc/mounts. */
  source?: string;
  /** fuse.<subtype> in /proc/mounts. */
  subtype?: string;
  allowOther?: boolean;
  defaultPermissions?: boolean;
  /** Bytes: must cover max_write plus one page of headers. */
  readBufferSize: number;
  readers?: number;
}

export type RequestHandler = (buf: Buffer) => void;

export class FuseDevice {
  readonly fd: number;
  readonly mountpoint: string;
  /** Settles once every reader saw the connection end (unmounted, aborted, or closed). */
  readonly ended: Promise<string>;
  private workers: Worker[] = [];
  private resolveEnded!: (why: string) => void;
  private endReason: string | undefined;
  private mounted = false;
  private fdClosed = false;
  private connId: string | undefined;

  private constructor(fd: number, private readonly opts: MountOptions) {
    this.fd = fd;
    this.mountpoint = opts.mountpoint;
    this.ended = new Promise((r) => (this.resolveEnded = r));
  }

  /**
   * mount(2) is called directly (koffi) rather than via mount(8): no mount.fuse helper
   * lookup, no utab write on a read-only root, and a real errno on failure. It cannot
   * deadlock: the kernel sends INIT in the background and does not wait for us.
   */
  static mount(opts: MountOptions): FuseDevice {
    // Resolved before mounting: afterwards any stat of the mountpoint is a FUSE request
    // that nobody answers yet.
    const real = fs.realpathSync(opts.mountpoint);
    const fd = fs.openSync('/dev/fuse', 'r+');
    const dev = new FuseDevice(fd, opts);
    const uid = process.getuid?.() ?? 0;
    const gid = process.getgid?.() ?? 0;
    const data = [`fd=${fd}`, 'rootmode=40000', `user_id=${uid}`, `group_id=${gid}`];
    if (opts.defaultPermissions !== false) data.push('default_permissions');
    if (opts.allowOther !== false) data.push('allow_other');
    try {
      libc.mount(opts.source ?? 'fuse-kfunc', opts.mountpoint, `fuse.${opts.subtype ?? 'fuse-kfunc'}`, 0, data.join(','));
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
    dev.mounted = true;
    dev.connId = findConnId(real);
    return dev;
  }

  /** Starts the readers; requests are delivered one message per request. */
  start(onRequest: RequestHandler): void {
    const n = Math.max(1, this.opts.readers ?? 2);
    let live = n;
    for (let i = 0; i < n; i++) {
      const w = new Worker(READER_SOURCE, {
        eval: true,
        execArgv: [],
        workerData: { fd: this.fd, bufSize: this.opts.readBufferSize },
        name: `fuse-reader-${i}`,
      });
      w.on('message', (m: ArrayBuffer | { end: string }) => {
        if (m instanceof ArrayBuffer) onRequest(Buffer.from(m));
        else this.endReason ??= m.end;
      });
      w.on('error', (e) => (this.endReason ??= `reader error: ${e.message}`));
      w.on('exit', () => {
        if (--live === 0) this.finish(this.endReason ?? 'readers exited');
      });
      this.workers.push(w);
    }
  }

  /** One writev: the kernel takes a reply as exactly one write. */
  write(iov: Buffer[]): void {
    if (this.fdClosed) return;
    try {
      fs.writevSync(this.fd, iov);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // ENOENT: the request was interrupted/aborted meanwhile; ENODEV: connection gone.
      if (code === 'ENOENT' || code === 'ENODEV') return;
      throw e;
    }
  }

  /** FUSE_DEV_IOC_BACKING_OPEN: needs INIT with PASSTHROUGH and CAP_SYS_ADMIN. `dir`: a
   *  directory for BPF programs (FUSE_BACKING_DIR), which passthrough opens refuse. */
  backingOpen(fd: number, opts: { dir?: boolean } = {}): number {
    return libc.ioctlPtr(this.fd, FUSE_DEV_IOC_BACKING_OPEN, encodeStruct(BACKING_MAP, { fd, flags: opts.dir ? FUSE_BACKING_DIR : 0 }));
  }

  backingClose(id: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(id);
    libc.ioctlPtr(this.fd, FUSE_DEV_IOC_BACKING_CLOSE, b);
  }

  /**
   * Unmounts without blocking the event loop (the kernel may need this process to answer
   * requests while unmounting). Falls back to a lazy unmount, then to aborting the
   * connection through fusectl, so close() always ends the readers.
   */
  async unmount(timeoutMs = 5000): Promise<string> {
    if (this.mounted && !this.endReason) {
      this.mounted = false;
      const ok = (await libc.umount2Async(this.mountpoint, 0)) || (await libc.umount2Async(this.mountpoint, libc.MNT_DETACH));
      if (!ok) this.abort();
    }
    const timer = setTimeout(() => this.abort(), timeoutMs);
    try {
      return await this.ended;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Kills the connection: pending and future requests fail with ENOTCONN for clients. */
  abort(): void {
    if (!this.connId) return;
    try {
      fs.writeFileSync(`/sys/fs/fuse/connections/${this.connId}/abort`, '1');
    } catch {
      // fusectl not mounted; nothing more we can do from here.
    }
  }

  private finish(why: string): void {
    if (!this.fdClosed) {
      this.fdClosed = true;
      try {
        fs.closeSync(this.fd);
      } catch {
        /* already gone */
      }
    }
    this.resolveEnded(why);
  }

  /** For a device that never got started (e.g. setup failed after mount). */
  async dispose(): Promise<void> {
    if (this.workers.length === 0) {
      if (this.mounted) {
        this.mounted = false;
        if (!(await libc.umount2Async(this.mountpoint, libc.MNT_DETACH))) this.abort();
      }
      this.finish('disposed');
    } else {
      await this.unmount();
    }
  }
}

/** The fusectl connection id is the superblock's minor device number. */
function findConnId(want: string): string | undefined {
  try {
    const lines = fs.readFileSync('/proc/self/mountinfo', 'utf8').trim().split('\n');
    for (let i = lines.length - 1; i >= 0; i--) {
      const f = lines[i]!.split(' ');
      if (unescapeMountinfo(f[4]!) === want) return f[2]!.split(':')[1];
    }
  } catch {
    /* best effort */
  }
  return undefined;
}

function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}
