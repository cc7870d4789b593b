// One FUSE connection: the /dev/fuse fd, the mount, request reading, reply writing,
// passthrough backing ids, and unmount. Knows nothing about filesystems.
import { closeSync, openSync, readFileSync, realpathSync, writeFileSync, writeSync, writevSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { workerModule } from '../util/bundles.mjs';
import * as libc from './libc.ts';
import {
  BACKING_MAP, FUSE_BACKING_DIR, FUSE_DEV_IOC_BACKING_CLOSE, FUSE_DEV_IOC_BACKING_OPEN, IN_HEADER, OUT_HEADER, Op,
  READ_IN, WRITE_IN, WRITE_OUT, encodeStruct, opName, writeOutHeader, type Request,
} from './protocol.ts';

// Readers are plain threads doing blocking read(2): a read on /dev/fuse sleeps until the
// kernel has a request, which would pin a libuv threadpool thread forever (and starve the
// fs calls the handlers need). Each read returns exactly one request.
//
// READ and WRITE of a fast handle (fastFh: a plain backing file whose I/O no policy
// intercepts) are served right here: pread into the reply buffer, or pwrite from the
// request buffer, then one write(2) of the reply. No copy, no hop to the main thread: with
// several readers, several such requests are served at once, as a multi-threaded C daemon
// does. Everything else (the requests that touch the node and handle tables) is copied
// into a right-sized ArrayBuffer and transferred to the main thread, which serves it.
// Plain JS (eval: true) so it works both under tsx and in the esbuild bundle.
const READER_SOURCE = `
const { parentPort, workerData: w } = require('node:worker_threads');
// Named: node:fs's module object has dictionary properties, a slow lookup per call.
const { readSync, writeSync } = require('node:fs');
const { errno: ERRNO } = require('node:os').constants;
const { fd, bufSize, L } = w;
// The layout as constants: the hot loop then loads no property of the layout object.
const { READ, WRITE, fastTag, inHeader, outHeader, readFh, readOffset, readSize, writeFh, writeOffset, writeSize, readIn, writeIn, writeOut } = L;
const buf = Buffer.allocUnsafeSlow(bufSize);
const out = Buffer.allocUnsafeSlow(bufSize);
const counts = new Int32Array(w.counts);
const times = w.times ? new Float64Array(w.times) : null;
const now = () => Number(process.hrtime.bigint());
const errnoOf = (e) => ERRNO[e.code] || ERRNO.EIO;
// The reply: out_header (len, error, unique copied from the request) and n bytes after it.
function reply(error, n) {
  out.writeUInt32LE(outHeader + n, 0);
  out.writeInt32LE(error, 4);
  out.writeUInt32LE(buf.readUInt32LE(8), 8); // unique, as it came (no Buffer.copy: it allocates)
  out.writeUInt32LE(buf.readUInt32LE(12), 12);
  try {
    writeSync(fd, out, 0, outHeader + n);
  } catch (e) {
    // ENOENT: the kernel knows no such request (interrupted meanwhile, or answered twice:
    // counted in slot 0); ENODEV: the connection is gone.
    if (e.code === 'ENOENT') Atomics.add(counts, 0, 1);
    else if (e.code !== 'ENODEV') throw e;
  }
}
function serveRead() {
  const file = buf.readUInt32LE(inHeader + readFh);
  const size = buf.readUInt32LE(inHeader + readSize);
  const off = buf.readUInt32LE(inHeader + readOffset + 4) * 4294967296 + buf.readUInt32LE(inHeader + readOffset);
  let n = 0;
  try {
    n = readSync(file, out, outHeader, size, off);
  } catch (e) {
    return -errnoOf(e);
  }
  return n;
}
function serveWrite() {
  const file = buf.readUInt32LE(inHeader + writeFh);
  const size = buf.readUInt32LE(inHeader + writeSize);
  const off = buf.readUInt32LE(inHeader + writeOffset + 4) * 4294967296 + buf.readUInt32LE(inHeader + writeOffset);
  const data = inHeader + writeIn;
  let done = 0;
  try {
    // A short write only happens on ENOSPC-like conditions: retry, so the kernel sees
    // either everything or the error.
    while (done < size) {
      const k = writeSync(file, buf, data + done, size - done, off + done);
      if (k === 0) break;
      done += k;
    }
  } catch (e) {
    return -errnoOf(e);
  }
  out.writeUInt32LE(done, outHeader);
  out.writeUInt32LE(0, outHeader + 4);
  return writeOut;
}
// With a server module the thread serves every request itself (thread-server.ts): the
// node and handle tables live here, and nothing hops to the main thread.
(async () => {
const serve = w.server ? await (await import(w.server.module)).threadServer(w.server, fd) : null;
for (;;) {
  let n;
  try {
    n = readSync(fd, buf, 0, bufSize, null);
  } catch (e) {
    // EINTR: signal; ENOENT: the request was interrupted before we got it; EAGAIN: spurious.
    if (e.code === 'EINTR' || e.code === 'ENOENT' || e.code === 'EAGAIN') continue;
    if (serve) serve.end();
    parentPort.postMessage({ end: e.code || String(e) });
    break;
  }
  if (n === 0) { if (serve) serve.end(); parentPort.postMessage({ end: 'EOF' }); break; }
  const t0 = times ? now() : 0;
  const op = n >= inHeader ? buf.readUInt32LE(4) : 0;
  const fast = op === READ ? n >= inHeader + readIn && buf.readUInt32LE(inHeader + readFh + 4) === fastTag &&
      outHeader + buf.readUInt32LE(inHeader + readSize) <= bufSize
    : op === WRITE ? n >= inHeader + writeIn && buf.readUInt32LE(inHeader + writeFh + 4) === fastTag &&
      n >= inHeader + writeIn + buf.readUInt32LE(inHeader + writeSize)
    : false;
  // Anything malformed or unusual goes to the main thread, which says what is wrong.
  if (fast) {
    {
      const r = op === READ ? serveRead() : serveWrite();
      const t1 = times ? now() : 0;
      if (r < 0) reply(r, 0);
      else reply(0, r);
      Atomics.add(counts, op, 1);
      if (times) {
        times[op * 4] += 1;
        times[op * 4 + 2] += t1 - t0;
        times[op * 4 + 3] += now() - t1;
      }
      continue;
    }
  }
  if (serve) {
    if (op > 0 && op < counts.length) Atomics.add(counts, op, 1);
    // The request is served from the read buffer: a handler that is not synchronous (a
    // promise) is awaited before the next read, so the buffer is not reused under it.
    const pending = serve(buf.subarray(0, n), times ? t0 : undefined);
    if (pending) await pending;
    continue;
  }
  const ab = new ArrayBuffer(n);
  new Uint8Array(ab).set(buf.subarray(0, n));
  if (times) parentPort.postMessage({ ab, t: t0 }, [ab]);
  else parentPort.postMessage(ab, [ab]);
}
})().catch((e) => parentPort.postMessage({ end: 'server error: ' + (e && e.stack || e) }));
`;

/** The module a server thread imports: beside this one in dist/, or built from the sources
 *  when running them through tsx (bundles.mjs: workerModule). */
function threadServerModule(): string {
  if (!import.meta.url.endsWith('.ts')) return new URL('./thread-server.js', import.meta.url).href;
  return workerModule(fileURLToPath(new URL('../..', import.meta.url)), 'thread-server');
}

/** What a server thread is told (thread-server.ts: threadServer). */
export interface ThreadServerConfig {
  backing: string;
  passthrough: boolean;
  killPrivV2: boolean;
  timeout: number;
  maxPages: number;
  debug: boolean;
}

/** What a server thread reports: INIT's outcome, and its trace at the end. */
export type ThreadServerMessage =
  | { init: { ok: true; negotiated: unknown } | { ok: false; error: string } }
  | { trace: unknown };

/** Replies up to this size are written as one buffer (FuseDevice.write). */
const SMALL_REPLY = 8192;

/** Handles at or above this fh carry their backing fd in the low 32 bits (fastFh). */
const FAST_TAG = 0x10_0000;

/**
 * The fh of a fast handle: the reader threads serve its READ and WRITE with the backing
 * file's fd, found in the fh itself. 2^52 + fd: above every counter-made fh, exact as a JS
 * number, and unique while the fd is open (the handle is released before the fd closes).
 */
export function fastFh(fd: number): number {
  return FAST_TAG * 2 ** 32 + fd;
}

/** Offsets the readers need, from the protocol's struct layouts (one place for them). */
function readerLayout() {
  const off = (def: { fields: ReadonlyArray<{ name: string; offset: number }> }, f: string) => def.fields.find((x) => x.name === f)!.offset;
  return {
    READ: Op.READ, WRITE: Op.WRITE, fastTag: FAST_TAG,
    inHeader: IN_HEADER.size, outHeader: OUT_HEADER.size,
    readFh: off(READ_IN, 'fh'), readOffset: off(READ_IN, 'offset'), readSize: off(READ_IN, 'size'),
    writeFh: off(WRITE_IN, 'fh'), writeOffset: off(WRITE_IN, 'offset'), writeSize: off(WRITE_IN, 'size'),
    readIn: READ_IN.size, writeIn: WRITE_IN.size, writeOut: WRITE_OUT.size,
  };
}

/** Opcodes the readers count (Int32Array slots), below 64; slot 0 (no opcode) counts
 *  stale replies. */
const COUNTED = 64;
const STALE_SLOT = 0;

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

/** `readAt`: hrtime (ns) at which a reader got the request, when tracing. */
export type RequestHandler = (buf: Buffer, readAt?: number) => void;

export class FuseDevice {
  readonly fd: number;
  readonly mountpoint: string;
  /** Settles once every reader saw the connection end (unmounted, aborted, or closed). */
  readonly ended: Promise<string>;
  private workers: Worker[] = [];
  /** What the readers served themselves, per opcode (Atomics). */
  private readonly served: Int32Array = new Int32Array(new SharedArrayBuffer(COUNTED * 4));
  /** Per reader, with tracing: [n, hop, handle, reply] per opcode (ns). */
  private readonly readerTimes: Float64Array[] = [];
  private resolveEnded!: (why: string) => void;
  private endReason: string | undefined;
  private mounted = false;
  private fdClosed = false;
  private connId: string | undefined;

  /** The connection `fd` as seen from a server thread: replies and backing ids, no mount;
   *  `counts`: the starting device's counters (stale replies are counted there). */
  static forThread(fd: number, counts: SharedArrayBuffer): FuseDevice {
    return new FuseDevice(fd, { mountpoint: '', readBufferSize: 0 }, new Int32Array(counts));
  }

  private constructor(fd: number, private readonly opts: MountOptions, served?: Int32Array) {
    if (served) this.served = served;
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
    const real = realpathSync(opts.mountpoint);
    const fd = openSync('/dev/fuse', 'r+');
    const dev = new FuseDevice(fd, opts);
    const uid = process.getuid?.() ?? 0;
    const gid = process.getgid?.() ?? 0;
    const data = [`fd=${fd}`, 'rootmode=40000', `user_id=${uid}`, `group_id=${gid}`];
    if (opts.defaultPermissions !== false) data.push('default_permissions');
    if (opts.allowOther !== false) data.push('allow_other');
    try {
      libc.mount(opts.source ?? 'fuse-kfunc', opts.mountpoint, `fuse.${opts.subtype ?? 'fuse-kfunc'}`, 0, data.join(','));
    } catch (e) {
      closeSync(fd);
      throw e;
    }
    dev.mounted = true;
    dev.connId = findConnId(real);
    return dev;
  }

  /** Starts the readers; requests are delivered one message per request. `trace`: time
   *  each request's stages (Session.times, readerTimes()). */
  start(onRequest: RequestHandler, opts: { trace?: boolean; server?: ThreadServerConfig } = {}): void {
    // A server thread serves everything alone: one thread, like a single-threaded C daemon.
    const n = opts.server ? 1 : Math.max(1, this.opts.readers ?? 2);
    let live = n;
    const L = readerLayout();
    for (let i = 0; i < n; i++) {
      const times = opts.trace ? new SharedArrayBuffer(COUNTED * 4 * 8) : null;
      if (times) this.readerTimes.push(new Float64Array(times));
      const server = opts.server ? { ...opts.server, module: threadServerModule(), tables: this.tablesShared.buffer, times, counts: this.served.buffer } : undefined;
      const w = new Worker(READER_SOURCE, {
        eval: true,
        execArgv: [],
        workerData: { fd: this.fd, bufSize: this.opts.readBufferSize, L, counts: this.served.buffer, times, server },
        name: server ? 'fuse-server' : `fuse-reader-${i}`,
      });
      w.on('message', (m: ArrayBuffer | { ab: ArrayBuffer; t: number } | { end: string } | ThreadServerMessage) => {
        if (m instanceof ArrayBuffer) onRequest(Buffer.from(m));
        else if ('ab' in m) onRequest(Buffer.from(m.ab), m.t);
        else if ('end' in m) this.endReason ??= m.end;
        else this.serverMessage?.(m);
      });
      w.on('error', (e) => (this.endReason ??= `reader error: ${e.message}`));
      w.on('exit', () => {
        if (--live === 0) this.finish(this.endReason ?? 'readers exited');
      });
      this.workers.push(w);
    }
  }

  /** A server thread's messages (INIT's outcome, its trace), for the one who started it. */
  serverMessage: ((m: ThreadServerMessage) => void) | undefined;
  /** A server thread's tables: [nodes, handles], stored after every request. */
  private readonly tablesShared = new Int32Array(new SharedArrayBuffer(8));

  serverTables(): { nodes: number; handles: number } {
    return { nodes: Atomics.load(this.tablesShared, 0), handles: Atomics.load(this.tablesShared, 1) };
  }

  /** Requests the reader threads served themselves (fast READ/WRITE, or everything with a
   *  server thread), by opcode name. */
  servedByReaders(): Record<string, number> {
    const out: Record<string, number> = {};
    for (let op = 1; op < COUNTED; op++) {
      const k = Atomics.load(this.served, op);
      if (k) out[opName(op)] = k;
    }
    return out;
  }

  /** With tracing: the readers' own stage times, summed over readers, by opcode name. */
  readerTimesByOp(): Record<string, { n: number; hop: number; handle: number; reply: number }> {
    const out: Record<string, { n: number; hop: number; handle: number; reply: number }> = {};
    for (let op = 0; op < COUNTED; op++) {
      for (const t of this.readerTimes) {
        if (!t[op * 4]) continue;
        const o = (out[opName(op)] ??= { n: 0, hop: 0, handle: 0, reply: 0 });
        o.n += t[op * 4]!;
        o.handle += t[op * 4 + 2]!;
        o.reply += t[op * 4 + 3]!;
      }
    }
    return out;
  }

  /** Where small replies are assembled (reply): one per device, filled and written in one
   *  synchronous step, so concurrent handlers never share it. */
  private readonly replyBuf = Buffer.allocUnsafeSlow(SMALL_REPLY);

  /**
   * The reply to `req`: fuse_out_header (the request's unique copied back as it came) and the
   * payload (none with an error: the kernel rejects an error with a payload), as one write.
   * A small reply is assembled in one buffer; a large one goes out with writev.
   */
  reply(req: Request, error: number, payload?: Buffer | Buffer[]): void {
    let len = OUT_HEADER.size;
    if (error === 0 && payload !== undefined) {
      if (Array.isArray(payload)) for (const p of payload) len += p.length;
      else len += payload.length;
    }
    if (len > SMALL_REPLY) {
      const h = Buffer.allocUnsafe(OUT_HEADER.size);
      writeOutHeader(h, len, error, req.uniqueLo, req.uniqueHi);
      this.write([h, ...(Array.isArray(payload) ? payload : [payload!])]);
      return;
    }
    const out = this.replyBuf;
    writeOutHeader(out, len, error, req.uniqueLo, req.uniqueHi);
    if (len > OUT_HEADER.size) {
      if (!Array.isArray(payload)) payload!.copy(out, OUT_HEADER.size);
      else {
        let at = OUT_HEADER.size;
        for (const p of payload) at += p.copy(out, at);
      }
    }
    this.write1(out, len);
  }

  private write1(b: Buffer, len: number): void {
    if (this.fdClosed) return;
    try {
      writeSync(this.fd, b, 0, len);
    } catch (e) {
      this.writeFailed(e);
    }
  }

  private writeFailed(e: unknown): void {
    const code = (e as NodeJS.ErrnoException).code;
    // ENOENT: no such request (interrupted or aborted meanwhile, or answered twice);
    // ENODEV: connection gone.
    if (code === 'ENOENT') Atomics.add(this.served, STALE_SLOT, 1);
    else if (code !== 'ENODEV') throw e;
  }

  /** One write(2) or writev(2): the kernel takes a reply as exactly one write. A small
   *  reply is gathered into one pooled buffer first: cheaper than writev's iovec array. */
  write(iov: Buffer[]): void {
    if (this.fdClosed) return;
    try {
      let len = 0;
      for (const b of iov) len += b.length;
      if (iov.length === 1) writeSync(this.fd, iov[0]!);
      else if (len <= SMALL_REPLY) writeSync(this.fd, Buffer.concat(iov, len));
      else writevSync(this.fd, iov);
    } catch (e) {
      this.writeFailed(e);
    }
  }

  /** Replies the kernel refused because it knew no such request: a request answered twice,
   *  or one interrupted before its answer. 0 under a load that interrupts nothing. */
  staleReplies(): number {
    return Atomics.load(this.served, STALE_SLOT);
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
      writeFileSync(`/sys/fs/fuse/connections/${this.connId}/abort`, '1');
    } catch {
      // fusectl not mounted; nothing more we can do from here.
    }
  }

  private finish(why: string): void {
    if (!this.fdClosed) {
      this.fdClosed = true;
      try {
        closeSync(this.fd);
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
    const lines = readFileSync('/proc/self/mountinfo', 'utf8').trim().split('\n');
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
