// Protocol session: INIT negotiation, request dispatch, error mapping, counters.
// Filesystem semantics live in the Ops object it is given.
import { constants as osConstants } from 'node:os';
import type { FuseDevice } from './dev.ts';
import {
  BodyReader, FUSE_KERNEL_MINOR_VERSION, FUSE_KERNEL_VERSION, INIT_IN, InitFlag, Op, ProtocolError,
  encodeInitOut, joinInitFlags, opName, parseRequest, splitInitFlags, type Request,
} from './protocol.ts';

/** Returned by handlers of requests the kernel expects no reply to (FORGET, INTERRUPT). */
export const NO_REPLY = Symbol('no-reply');
/**
 * What a handler gives back: the reply's payload (one buffer or pieces), nothing (an empty
 * reply), NO_REPLY, or a negative errno: an error reply without an exception, for outcomes
 * as common as a missing name (a negative LOOKUP, getxattr's ENODATA on every write), where
 * building and catching an Error cost more than serving the request. Throwing an Errno
 * means the same; a handler that wraps another must treat both as a failure.
 */
export type HandlerResult = Buffer | Buffer[] | void | typeof NO_REPLY | number;
export type Handler = (req: Request, body: BodyReader) => HandlerResult | Promise<HandlerResult>;

export interface Negotiated {
  major: number;
  minor: number;
  flags: bigint;
  maxWrite: number;
  maxPages: number;
  passthrough: boolean;
}

export interface SessionOptions {
  maxPages: number;
  /** Flags we would like; the kernel's offer is intersected with these. */
  wantFlags: bigint;
  /** Fail INIT unless the kernel grants PASSTHROUGH. */
  requirePassthrough: boolean;
  debug?: boolean;
}

const PAGE = 4096;
/** Opcodes counted one by one (FUSE's go up to 52; CUSE_INIT, 4096, counts as 'other'). */
const OPCODES = 64;

/** Per opcode, with FUSE_KFUNC_TRACE: requests, and nanoseconds summed per stage. */
export interface StageTimes {
  n: number;
  /** From read(2) returning in a reader thread to the handler starting on the main thread. */
  hop: number;
  /** The handler, its calls on the backing filesystem included. */
  handle: number;
  /** Encoding and writing the reply. */
  reply: number;
}

export class Session {
  negotiated: Negotiated | undefined;
  /** Requests per opcode (the opcode indexes it; anything larger counts in the last slot). */
  private readonly opCounts = new Float64Array(OPCODES + 1);
  /** Filled only when tracing (FuseDevice.start's `trace`). */
  readonly times = new Map<string, StageTimes>();
  errors = 0;
  /** Why INIT failed, once it did (also rejects initDone). */
  initError: Error | undefined;
  private handlers = new Map<number, Handler>();
  private initWaiters: { resolve: (n: Negotiated) => void; reject: (e: Error) => void } | undefined;
  readonly initDone: Promise<Negotiated>;

  constructor(private readonly dev: FuseDevice, private readonly opts: SessionOptions) {
    this.initDone = new Promise((resolve, reject) => (this.initWaiters = { resolve, reject }));
    // Nobody may await initDone (e.g. the device ended first); keep that from crashing.
    this.initDone.catch(() => {});
  }

  /** Requests received, by opcode name. */
  get counts(): Map<string, number> {
    const m = new Map<string, number>();
    for (let op = 0; op <= OPCODES; op++) if (this.opCounts[op]) m.set(op === OPCODES ? 'other' : opName(op), this.opCounts[op]!);
    return m;
  }

  get debug(): boolean {
    return !!this.opts.debug;
  }

  static readBufferSize(maxPages: number): number {
    return maxPages * PAGE + PAGE;
  }

  on(opcode: number, h: Handler): void {
    this.handlers.set(opcode, h);
  }

  /** The handler registered for an opcode, so a policy can wrap it. */
  handler(opcode: number): Handler | undefined {
    return this.handlers.get(opcode);
  }

  failInit(e: Error): void {
    this.initWaiters?.reject(e);
  }

  /** Entry point for each raw request read from the device; `readAt`: when (hrtime ns,
   *  tracing only) the reader thread got it. */
  receive = (buf: Buffer, readAt?: number): void | Promise<void> => {
    const t = readAt === undefined ? undefined : { readAt, start: now(), done: 0 };
    let req: Request;
    try {
      req = parseRequest(buf);
    } catch (e) {
      // Without a parsable header there is no unique to answer; the kernel times nothing
      // out, so say it loudly rather than hang silently.
      process.stderr.write(`fuse: dropping malformed request: ${(e as Error).message}\n`);
      this.errors++;
      return;
    }
    this.opCounts[req.opcode < OPCODES ? req.opcode : OPCODES]!++;
    if (req.opcode === Op.INIT) return this.init(req);
    const h = this.handlers.get(req.opcode);
    if (!h) return this.send(req, -osConstants.errno.ENOSYS);
    let result: HandlerResult | Promise<HandlerResult>;
    try {
      result = h(req, new BodyReader(req.body, opName(req.opcode)));
    } catch (e) {
      return this.fail(req, e, t);
    }
    if (result instanceof Promise) return result.then((r) => this.done(req, r, t), (e) => this.fail(req, e, t));
    this.done(req, result, t);
  };

  private done(req: Request, r: HandlerResult, t?: Timing): void {
    if (t) t.done = now();
    if (typeof r === 'number') this.send(req, r < 0 ? r : -osConstants.errno.EIO);
    else if (r !== NO_REPLY) this.send(req, 0, r === undefined ? undefined : r);
    if (t) this.account(req.opcode, t);
  }

  private fail(req: Request, e: unknown, t?: Timing): void {
    if (t) t.done = now();
    const errno = toErrno(e);
    if (errno === osConstants.errno.EIO || e instanceof ProtocolError) {
      this.errors++;
      process.stderr.write(`fuse: ${opName(req.opcode)} nodeid=${req.nodeid}: ${(e as Error)?.stack ?? e}\n`);
    }
    this.send(req, -errno);
    if (t) this.account(req.opcode, t);
  }

  private account(opcode: number, t: Timing): void {
    const name = opName(opcode);
    let s = this.times.get(name);
    if (!s) this.times.set(name, (s = { n: 0, hop: 0, handle: 0, reply: 0 }));
    s.n++;
    s.hop += t.start - t.readAt;
    s.handle += t.done - t.start;
    s.reply += now() - t.done;
  }

  private send(req: Request, error: number, payload?: Buffer | Buffer[]): void {
    if (this.opts.debug) {
      const len = payload === undefined ? 0 : Array.isArray(payload) ? payload.reduce((n, b) => n + b.length, 0) : payload.length;
      process.stderr.write(`fuse: ${opName(req.opcode)} #${req.unique} nodeid=${req.nodeid} -> ${error || `ok ${len}B`}\n`);
    }
    this.dev.reply(req, error, payload);
  }

  private init(req: Request): void {
    try {
      const a = new BodyReader(req.body, 'INIT').struct(INIT_IN);
      if (a.major !== FUSE_KERNEL_VERSION) throw new ProtocolError(`kernel speaks FUSE ${a.major}.${a.minor}, we need 7.x`);
      const offered = joinInitFlags(a.flags, a.flags2, (BigInt(a.flags) & InitFlag.INIT_EXT) !== 0n);
      let flags = offered & this.opts.wantFlags;
      const passthrough = (flags & InitFlag.PASSTHROUGH) !== 0n;
      if (this.opts.requirePassthrough && !passthrough) {
        throw new ProtocolError('passthrough requested but the kernel did not offer FUSE_PASSTHROUGH (CONFIG_FUSE_PASSTHROUGH?)');
      }
      if (passthrough) flags &= ~InitFlag.WRITEBACK_CACHE; // the kernel refuses the pair
      const maxPages = (flags & InitFlag.MAX_PAGES) !== 0n ? this.opts.maxPages : 32;
      const maxWrite = maxPages * PAGE;
      const { flags: f1, flags2 } = splitInitFlags(flags);
      this.send(req, 0, encodeInitOut({
        major: FUSE_KERNEL_VERSION, minor: FUSE_KERNEL_MINOR_VERSION, max_readahead: a.max_readahead,
        flags: f1, flags2, max_write: maxWrite, time_gran: 1, max_pages: maxPages,
        // Depth 1: our backing files live on an ordinary filesystem, not on another stack.
        max_stack_depth: passthrough ? 1 : 0,
      }));
      this.negotiated = { major: a.major, minor: Math.min(a.minor, FUSE_KERNEL_MINOR_VERSION), flags, maxWrite, maxPages, passthrough };
      this.initWaiters?.resolve(this.negotiated);
    } catch (e) {
      this.send(req, -osConstants.errno.EPROTO);
      this.initError = e as Error;
      this.initWaiters?.reject(e as Error);
    }
  }
}

interface Timing { readAt: number; start: number; done: number }

function now(): number {
  return Number(process.hrtime.bigint());
}

/** node:fs errors carry a code; koffi SysErrors carry a positive errno; anything else is EIO. */
export function toErrno(e: unknown): number {
  const err = e as { code?: unknown; errno?: unknown } | null;
  if (err && typeof err.code === 'string') {
    const n = (osConstants.errno as Record<string, number>)[err.code];
    if (n) return n;
  }
  if (err && typeof err.errno === 'number' && err.errno !== 0) return Math.abs(err.errno);
  return osConstants.errno.EIO;
}

/**
 * An errno for the kernel. Expected outcomes (ENOENT of a LOOKUP, EACCES, ...) are common
 * and capturing a stack trace costs more than serving the request, so only EIO (a failure
 * worth logging with its stack, Session.fail) gets one.
 */
export class Errno extends Error {
  constructor(readonly code: string, message = code) {
    const limit = Error.stackTraceLimit;
    if (code !== 'EIO') Error.stackTraceLimit = 0;
    super(message);
    Error.stackTraceLimit = limit;
  }
}
