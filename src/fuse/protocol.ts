// The FUSE wire protocol as Linux 6.12 speaks it (include/uapi/linux/fuse.h, 7.41; we
// use nothing newer than 7.40's passthrough/max_stack_depth). Little-endian only: FUSE
// structs are host-endian and every target of this project is x86-64 or arm64 LE.
import {
  ProtocolError, alignUp, decodeNumbers, decodeStruct, encodeStruct, encodeStructInto, struct,
  type Decoded, type Encodable, type FieldSpec, type Numeric, type StructDef,
} from './layout.ts';

export { ProtocolError, decodeStruct, encodeStruct, type Decoded };

export const FUSE_KERNEL_VERSION = 7;
export const FUSE_KERNEL_MINOR_VERSION = 41;
export const FUSE_ROOT_ID = 1;
export const FUSE_MIN_READ_BUFFER = 8192;

export const Op = {
  LOOKUP: 1, FORGET: 2, GETATTR: 3, SETATTR: 4, READLINK: 5, SYMLINK: 6, MKNOD: 8, MKDIR: 9,
  UNLINK: 10, RMDIR: 11, RENAME: 12, LINK: 13, OPEN: 14, READ: 15, WRITE: 16, STATFS: 17,
  RELEASE: 18, FSYNC: 20, SETXATTR: 21, GETXATTR: 22, LISTXATTR: 23, REMOVEXATTR: 24,
  FLUSH: 25, INIT: 26, OPENDIR: 27, READDIR: 28, RELEASEDIR: 29, FSYNCDIR: 30, GETLK: 31,
  SETLK: 32, SETLKW: 33, ACCESS: 34, CREATE: 35, INTERRUPT: 36, BMAP: 37, DESTROY: 38,
  IOCTL: 39, POLL: 40, NOTIFY_REPLY: 41, BATCH_FORGET: 42, FALLOCATE: 43, READDIRPLUS: 44,
  RENAME2: 45, LSEEK: 46, COPY_FILE_RANGE: 47, SETUPMAPPING: 48, REMOVEMAPPING: 49,
  SYNCFS: 50, TMPFILE: 51, STATX: 52,
} as const;
export type OpName = keyof typeof Op;
const OP_NAMES = new Map<number, OpName>(Object.entries(Op).map(([k, v]) => [v, k as OpName]));
export function opName(opcode: number): string {
  return OP_NAMES.get(opcode) ?? `OP_${opcode}`;
}

/** INIT flags as one 64-bit set: bits 32..63 travel in flags2 (only with INIT_EXT). */
export const InitFlag = {
  ASYNC_READ: 1n << 0n, POSIX_LOCKS: 1n << 1n, FILE_OPS: 1n << 2n, ATOMIC_O_TRUNC: 1n << 3n,
  EXPORT_SUPPORT: 1n << 4n, BIG_WRITES: 1n << 5n, DONT_MASK: 1n << 6n, SPLICE_WRITE: 1n << 7n,
  SPLICE_MOVE: 1n << 8n, SPLICE_READ: 1n << 9n, FLOCK_LOCKS: 1n << 10n, HAS_IOCTL_DIR: 1n << 11n,
  AUTO_INVAL_DATA: 1n << 12n, DO_READDIRPLUS: 1n << 13n, READDIRPLUS_AUTO: 1n << 14n,
  ASYNC_DIO: 1n << 15n, WRITEBACK_CACHE: 1n << 16n, NO_OPEN_SUPPORT: 1n << 17n,
  PARALLEL_DIROPS: 1n << 18n, HANDLE_KILLPRIV: 1n << 19n, POSIX_ACL: 1n << 20n,
  ABORT_ERROR: 1n << 21n, MAX_PAGES: 1n << 22n, CACHE_SYMLINKS: 1n << 23n,
  NO_OPENDIR_SUPPORT: 1n << 24n, EXPLICIT_INVAL_DATA: 1n << 25n, MAP_ALIGNMENT: 1n << 26n,
  SUBMOUNTS: 1n << 27n, HANDLE_KILLPRIV_V2: 1n << 28n, SETXATTR_EXT: 1n << 29n,
  INIT_EXT: 1n << 30n, INIT_RESERVED: 1n << 31n, SECURITY_CTX: 1n << 32n,
  HAS_INODE_DAX: 1n << 33n, CREATE_SUPP_GROUP: 1n << 34n, HAS_EXPIRE_ONLY: 1n << 35n,
  DIRECT_IO_ALLOW_MMAP: 1n << 36n, PASSTHROUGH: 1n << 37n, NO_EXPORT_SUPPORT: 1n << 38n,
  HAS_RESEND: 1n << 39n, ALLOW_IDMAP: 1n << 40n,
} as const;

export const FOpen = {
  DIRECT_IO: 1 << 0, KEEP_CACHE: 1 << 1, NONSEEKABLE: 1 << 2, CACHE_DIR: 1 << 3, STREAM: 1 << 4,
  NOFLUSH: 1 << 5, PARALLEL_DIRECT_WRITES: 1 << 6, PASSTHROUGH: 1 << 7,
} as const;

export const FAttr = {
  MODE: 1 << 0, UID: 1 << 1, GID: 1 << 2, SIZE: 1 << 3, ATIME: 1 << 4, MTIME: 1 << 5, FH: 1 << 6,
  ATIME_NOW: 1 << 7, MTIME_NOW: 1 << 8, LOCKOWNER: 1 << 9, CTIME: 1 << 10, KILL_SUIDGID: 1 << 11,
} as const;

export const FUSE_GETATTR_FH = 1 << 0;
export const FUSE_FSYNC_FDATASYNC = 1 << 0;
export const FUSE_RELEASE_FLUSH = 1 << 0;
export const FUSE_WRITE_CACHE = 1 << 0;

// ---- structs (names as in fuse.h, without the fuse_ prefix) ----

export const ATTR = struct('fuse_attr', [
  ['ino', 'u64'], ['size', 'u64'], ['blocks', 'u64'], ['atime', 'u64'], ['mtime', 'u64'], ['ctime', 'u64'],
  ['atimensec', 'u32'], ['mtimensec', 'u32'], ['ctimensec', 'u32'], ['mode', 'u32'], ['nlink', 'u32'],
  ['uid', 'u32'], ['gid', 'u32'], ['rdev', 'u32'], ['blksize', 'u32'], ['flags', 'u32'],
]);
export type Attr = Decoded<typeof ATTR extends StructDef<infer S> ? S : never>;
export type AttrIn = Encodable<typeof ATTR extends StructDef<infer S> ? S : never>;

export const KSTATFS = struct('fuse_kstatfs', [
  ['blocks', 'u64'], ['bfree', 'u64'], ['bavail', 'u64'], ['files', 'u64'], ['ffree', 'u64'],
  ['bsize', 'u32'], ['namelen', 'u32'], ['frsize', 'u32'], ['padding', 'u32'], ['spare', 'pad', 24],
]);
export const FILE_LOCK = struct('fuse_file_lock', [['start', 'u64'], ['end', 'u64'], ['type', 'u32'], ['pid', 'u32']]);
export const ENTRY_OUT = struct('fuse_entry_out', [
  ['nodeid', 'u64'], ['generation', 'u64'], ['entry_valid', 'u64'], ['attr_valid', 'u64'],
  ['entry_valid_nsec', 'u32'], ['attr_valid_nsec', 'u32'], ['attr', ATTR],
]);
export const FORGET_IN = struct('fuse_forget_in', [['nlookup', 'u64']]);
export const FORGET_ONE = struct('fuse_forget_one', [['nodeid', 'u64'], ['nlookup', 'u64']]);
export const BATCH_FORGET_IN = struct('fuse_batch_forget_in', [['count', 'u32'], ['dummy', 'u32']]);
export const GETATTR_IN = struct('fuse_getattr_in', [['getattr_flags', 'u32'], ['dummy', 'u32'], ['fh', 'u64']]);
export const ATTR_OUT = struct('fuse_attr_out', [['attr_valid', 'u64'], ['attr_valid_nsec', 'u32'], ['dummy', 'u32'], ['attr', ATTR]]);
export const MKNOD_IN = struct('fuse_mknod_in', [['mode', 'u32'], ['rdev', 'u32'], ['umask', 'u32'], ['padding', 'u32']]);
export const MKDIR_IN = struct('fuse_mkdir_in', [['mode', 'u32'], ['umask', 'u32']]);
export const RENAME_IN = struct('fuse_rename_in', [['newdir', 'u64']]);
export const RENAME2_IN = struct('fuse_rename2_in', [['newdir', 'u64'], ['flags', 'u32'], ['padding', 'u32']]);
export const LINK_IN = struct('fuse_link_in', [['oldnodeid', 'u64']]);
export const SETATTR_IN = struct('fuse_setattr_in', [
  ['valid', 'u32'], ['padding', 'u32'], ['fh', 'u64'], ['size', 'u64'], ['lock_owner', 'u64'],
  ['atime', 'u64'], ['mtime', 'u64'], ['ctime', 'u64'], ['atimensec', 'u32'], ['mtimensec', 'u32'],
  ['ctimensec', 'u32'], ['mode', 'u32'], ['unused4', 'u32'], ['uid', 'u32'], ['gid', 'u32'], ['unused5', 'u32'],
]);
export const OPEN_IN = struct('fuse_open_in', [['flags', 'u32'], ['open_flags', 'u32']]);
export const CREATE_IN = struct('fuse_create_in', [['flags', 'u32'], ['mode', 'u32'], ['umask', 'u32'], ['open_flags', 'u32']]);
export const OPEN_OUT = struct('fuse_open_out', [['fh', 'u64'], ['open_flags', 'u32'], ['backing_id', 'i32']]);
export const RELEASE_IN = struct('fuse_release_in', [['fh', 'u64'], ['flags', 'u32'], ['release_flags', 'u32'], ['lock_owner', 'u64']]);
export const FLUSH_IN = struct('fuse_flush_in', [['fh', 'u64'], ['unused', 'u32'], ['padding', 'u32'], ['lock_owner', 'u64']]);
export const READ_IN = struct('fuse_read_in', [
  ['fh', 'u64'], ['offset', 'u64'], ['size', 'u32'], ['read_flags', 'u32'], ['lock_owner', 'u64'], ['flags', 'u32'], ['padding', 'u32'],
]);
export const WRITE_IN = struct('fuse_write_in', [
  ['fh', 'u64'], ['offset', 'u64'], ['size', 'u32'], ['write_flags', 'u32'], ['lock_owner', 'u64'], ['flags', 'u32'], ['padding', 'u32'],
]);
export const WRITE_OUT = struct('fuse_write_out', [['size', 'u32'], ['padding', 'u32']]);
export const STATFS_OUT = struct('fuse_statfs_out', [['st', KSTATFS]]);
export const FSYNC_IN = struct('fuse_fsync_in', [['fh', 'u64'], ['fsync_flags', 'u32'], ['padding', 'u32']]);
export const SETXATTR_IN = struct('fuse_setxattr_in', [['size', 'u32'], ['flags', 'u32'], ['setxattr_flags', 'u32'], ['padding', 'u32']]);
/** The pre-7.33 layout, used by the kernel unless INIT negotiated SETXATTR_EXT. */
export const SETXATTR_IN_COMPAT = struct('fuse_setxattr_in(compat)', [['size', 'u32'], ['flags', 'u32']]);
export const GETXATTR_IN = struct('fuse_getxattr_in', [['size', 'u32'], ['padding', 'u32']]);
export const GETXATTR_OUT = struct('fuse_getxattr_out', [['size', 'u32'], ['padding', 'u32']]);
export const LK_IN = struct('fuse_lk_in', [['fh', 'u64'], ['owner', 'u64'], ['lk', FILE_LOCK], ['lk_flags', 'u32'], ['padding', 'u32']]);
export const ACCESS_IN = struct('fuse_access_in', [['mask', 'u32'], ['padding', 'u32']]);
export const INIT_IN = struct('fuse_init_in', [
  ['major', 'u32'], ['minor', 'u32'], ['max_readahead', 'u32'], ['flags', 'u32'], ['flags2', 'u32'], ['unused', 'pad', 44],
]);
export const INIT_OUT = struct('fuse_init_out', [
  ['major', 'u32'], ['minor', 'u32'], ['max_readahead', 'u32'], ['flags', 'u32'], ['max_background', 'u16'],
  ['congestion_threshold', 'u16'], ['max_write', 'u32'], ['time_gran', 'u32'], ['max_pages', 'u16'],
  ['map_alignment', 'u16'], ['flags2', 'u32'], ['max_stack_depth', 'u32'], ['unused', 'pad', 24],
]);
export const INTERRUPT_IN = struct('fuse_interrupt_in', [['unique', 'u64']]);
export const FALLOCATE_IN = struct('fuse_fallocate_in', [['fh', 'u64'], ['offset', 'u64'], ['length', 'u64'], ['mode', 'u32'], ['padding', 'u32']]);
export const IN_HEADER = struct('fuse_in_header', [
  ['len', 'u32'], ['opcode', 'u32'], ['unique', 'u64'], ['nodeid', 'u64'], ['uid', 'u32'], ['gid', 'u32'],
  ['pid', 'u32'], ['total_extlen', 'u16'], ['padding', 'u16'],
]);
export const OUT_HEADER = struct('fuse_out_header', [['len', 'u32'], ['error', 'i32'], ['unique', 'u64']]);
export const DIRENT = struct('fuse_dirent', [['ino', 'u64'], ['off', 'u64'], ['namelen', 'u32'], ['type', 'u32']]);
export const DIRENTPLUS = struct('fuse_direntplus', [['entry_out', ENTRY_OUT], ['dirent', DIRENT]]);
export const BACKING_MAP = struct('fuse_backing_map', [['fd', 'i32'], ['flags', 'u32'], ['padding', 'u64']]);
export const LSEEK_IN = struct('fuse_lseek_in', [['fh', 'u64'], ['offset', 'u64'], ['whence', 'u32'], ['padding', 'u32']]);
export const LSEEK_OUT = struct('fuse_lseek_out', [['offset', 'u64']]);
export const COPY_FILE_RANGE_IN = struct('fuse_copy_file_range_in', [
  ['fh_in', 'u64'], ['off_in', 'u64'], ['nodeid_out', 'u64'], ['fh_out', 'u64'], ['off_out', 'u64'], ['len', 'u64'], ['flags', 'u64'],
]);

/** Sizes the kernel uses when talking to daemons of older minor versions. */
export const COMPAT_SIZE = {
  ENTRY_OUT: 120, ATTR_OUT: 96, MKNOD_IN: 8, WRITE_IN: 24, STATFS: 48, SETXATTR_IN: 8, INIT_OUT: 8, INIT_OUT_22: 24,
} as const;

// The name in a dirent starts right after the fixed part (offsetof(fuse_dirent, name)).
export const FUSE_NAME_OFFSET = DIRENT.size;
export const FUSE_NAME_OFFSET_DIRENTPLUS = DIRENTPLUS.size;

// ---- ioctls on /dev/fuse, computed like <asm-generic/ioctl.h> (x86-64/arm64 values) ----
const IOC_NRBITS = 8, IOC_TYPEBITS = 8, IOC_SIZEBITS = 14;
const IOC_NRSHIFT = 0, IOC_TYPESHIFT = IOC_NRSHIFT + IOC_NRBITS, IOC_SIZESHIFT = IOC_TYPESHIFT + IOC_TYPEBITS;
const IOC_DIRSHIFT = IOC_SIZESHIFT + IOC_SIZEBITS;
const IOC_WRITE = 1, IOC_READ = 2;
export function ioc(dir: number, type: number, nr: number, size: number): number {
  // >>> 0: READ lands in bit 31 and must stay an unsigned 32-bit request number.
  return ((dir << IOC_DIRSHIFT) | (type << IOC_TYPESHIFT) | (nr << IOC_NRSHIFT) | (size << IOC_SIZESHIFT)) >>> 0;
}
export const FUSE_DEV_IOC_MAGIC = 229;
export const FUSE_DEV_IOC_CLONE = ioc(IOC_READ, FUSE_DEV_IOC_MAGIC, 0, 4);
/** fuse_backing_map.flags: a backing directory, for BPF programs (the series' uapi). */
export const FUSE_BACKING_DIR = 1;
export const FUSE_DEV_IOC_BACKING_OPEN = ioc(IOC_WRITE, FUSE_DEV_IOC_MAGIC, 1, BACKING_MAP.size);
export const FUSE_DEV_IOC_BACKING_CLOSE = ioc(IOC_WRITE, FUSE_DEV_IOC_MAGIC, 2, 4);

// ---- requests ----

export type InHeader = Decoded<typeof IN_HEADER extends StructDef<infer S> ? S : never>;

/**
 * One request as read. The header's fields are plain numbers, read once; `unique` is kept
 * as its two 32-bit halves, which a reply copies back as they came (a BigInt per request
 * cost more than the copy), and `header` is built only when asked for.
 */
export class Request {
  constructor(
    readonly opcode: number,
    /** Exact below 2^53, as every nodeid this server hands out is. */
    readonly nodeid: number,
    readonly uid: number,
    readonly gid: number,
    readonly pid: number,
    readonly uniqueLo: number,
    readonly uniqueHi: number,
    /** Everything after the header, minus trailing request extensions. */
    readonly body: Buffer,
    private readonly extlen: number,
  ) {}

  /** The same request with another body (a policy that rewrites what a handler sees). */
  withBody(body: Buffer): Request {
    return new Request(this.opcode, this.nodeid, this.uid, this.gid, this.pid, this.uniqueLo, this.uniqueHi, body, this.extlen);
  }

  get unique(): bigint {
    return (BigInt(this.uniqueHi) << 32n) | BigInt(this.uniqueLo);
  }

  /** fuse_in_header as the struct decoder gives it. */
  get header(): InHeader {
    return {
      len: IN_HEADER.size + this.body.length + this.extlen * 8, opcode: this.opcode, unique: this.unique,
      nodeid: BigInt(this.nodeid), uid: this.uid, gid: this.gid, pid: this.pid, total_extlen: this.extlen, padding: 0,
    };
  }
}

const IH = offsetsOf(IN_HEADER);
// As plain constants: a property load per field per request showed up in the profile.
const IH_LEN = IH.len!, IH_OPCODE = IH.opcode!, IH_UNIQUE = IH.unique!, IH_NODEID = IH.nodeid!;
const IH_UID = IH.uid!, IH_GID = IH.gid!, IH_PID = IH.pid!, IH_EXTLEN = IH.total_extlen!;

export function parseRequest(buf: Buffer): Request {
  if (buf.length < IN_HEADER.size) {
    throw new ProtocolError(`truncated request: ${buf.length} bytes, a fuse_in_header alone is ${IN_HEADER.size}`);
  }
  // Field by field (every request has a header): the generic decoder costs more.
  const len = buf.readUInt32LE(IH_LEN);
  const opcode = buf.readUInt32LE(IH_OPCODE);
  if (len !== buf.length) {
    throw new ProtocolError(`truncated request: header.len=${len} but read returned ${buf.length} bytes (opcode ${opName(opcode)})`);
  }
  const extlen = buf.readUInt16LE(IH_EXTLEN);
  if (IN_HEADER.size + extlen * 8 > buf.length) throw new ProtocolError(`request extensions (${extlen * 8} bytes) overrun the request`);
  return new Request(
    opcode, buf.readUInt32LE(IH_NODEID + 4) * 0x1_0000_0000 + buf.readUInt32LE(IH_NODEID),
    buf.readUInt32LE(IH_UID), buf.readUInt32LE(IH_GID), buf.readUInt32LE(IH_PID),
    buf.readUInt32LE(IH_UNIQUE), buf.readUInt32LE(IH_UNIQUE + 4),
    buf.subarray(IN_HEADER.size, buf.length - extlen * 8), extlen,
  );
}

/** Walks a request body front to back; each read fails with the opcode in its message. */
export class BodyReader {
  private pos = 0;
  constructor(private readonly buf: Buffer, private readonly what: string) {}

  struct<S extends readonly FieldSpec[]>(def: StructDef<S>): Decoded<S> {
    return decodeStruct(def, this.buf, this.take(def));
  }

  /** struct() with 64-bit fields as numbers (layout.ts: decodeNumbers, exact below 2^53). */
  numbers<S extends readonly FieldSpec[]>(def: StructDef<S>): Numeric<S> {
    return decodeNumbers(def, this.buf, this.take(def));
  }

  /** Where `def` starts, once it is known to fit; moves past it. */
  private take(def: StructDef<readonly FieldSpec[]>): number {
    const at = this.pos;
    if (this.buf.length - at < def.size) {
      throw new ProtocolError(`${this.what}: truncated ${def.name}: need ${def.size} bytes, have ${this.buf.length - at}`);
    }
    this.pos += def.size;
    return at;
  }

  /** A NUL-terminated name, returned without the NUL as raw bytes (names need not be UTF-8). */
  cstringBytes(): Buffer {
    const end = this.buf.indexOf(0, this.pos);
    if (end < 0) throw new ProtocolError(`${this.what}: name at offset ${this.pos} is not NUL-terminated`);
    const s = this.buf.subarray(this.pos, end);
    this.pos = end + 1;
    return s;
  }

  cstring(): string {
    return this.cstringBytes().toString('utf8');
  }

  bytes(n: number): Buffer {
    if (this.buf.length - this.pos < n) throw new ProtocolError(`${this.what}: truncated payload: need ${n} bytes, have ${this.buf.length - this.pos}`);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }

  rest(): Buffer {
    const b = this.buf.subarray(this.pos);
    this.pos = this.buf.length;
    return b;
  }
}

// ---- replies ----

const OUT = offsetsOf(OUT_HEADER);

/** Header plus payload pieces, for one writev so the kernel sees one message (FuseDevice.reply
 *  assembles the same bytes in one buffer; this is its reference in the unit tests). */
export function replyIov(unique: bigint, error: number, payload: Buffer[] = []): Buffer[] {
  // An error reply is the bare header: the kernel rejects an error with a payload.
  const body = error === 0 ? payload : [];
  let len = OUT_HEADER.size;
  for (const p of body) len += p.length;
  const h = Buffer.allocUnsafe(OUT_HEADER.size);
  writeOutHeader(h, len, error, Number(unique & 0xffffffffn), Number(unique >> 32n));
  return [h, ...body];
}

/**
 * fuse_out_header into `b`, written by hand (every reply has one: the generic encoder costs
 * more than the write); the request's unique as its two 32-bit halves, as it came.
 */
export function writeOutHeader(b: Buffer, len: number, error: number, uniqueLo: number, uniqueHi: number): void {
  b.writeUInt32LE(len, OUT.len!);
  b.writeInt32LE(error, OUT.error!);
  b.writeUInt32LE(uniqueLo, OUT.unique!);
  b.writeUInt32LE(uniqueHi, OUT.unique! + 4);
}

/** Field name -> offset, for the encoders written by hand on hot paths. */
export function offsetsOf(def: StructDef<readonly FieldSpec[]>): Record<string, number> {
  return Object.fromEntries(def.fields.map((f) => [f.name, f.offset]));
}

export function encodeInitOut(v: Encodable<typeof INIT_OUT extends StructDef<infer S> ? S : never>): Buffer {
  return encodeStruct(INIT_OUT, v);
}

export function splitInitFlags(flags: bigint): { flags: number; flags2: number } {
  return { flags: Number(flags & 0xffffffffn), flags2: Number((flags >> 32n) & 0xffffffffn) };
}

export function joinInitFlags(flags: number, flags2: number, hasExt: boolean): bigint {
  return BigInt(flags >>> 0) | (hasExt ? BigInt(flags2 >>> 0) << 32n : 0n);
}

export interface EntryParams {
  nodeid: number;
  generation?: number;
  entryValid: number; // seconds, fractional allowed
  attrValid: number;
  attr: AttrIn;
}

function splitTimeout(sec: number): [bigint, number] {
  const whole = Math.floor(sec);
  return [BigInt(whole), Math.round((sec - whole) * 1e9)];
}

export function encodeEntryOutInto(e: EntryParams, buf: Buffer, at: number): void {
  const [ev, evn] = splitTimeout(e.entryValid);
  const [av, avn] = splitTimeout(e.attrValid);
  encodeStructInto(ENTRY_OUT, {
    nodeid: e.nodeid, generation: e.generation ?? 0, entry_valid: ev, attr_valid: av,
    entry_valid_nsec: evn, attr_valid_nsec: avn, attr: e.attr,
  }, buf, at);
}

// Offsets in u32 units, as constants: these encoders run for every LOOKUP and GETATTR.
const EO = offsetsOf(ENTRY_OUT);
const AO = offsetsOf(ATTR_OUT);
const EO_NODEID = EO.nodeid! >> 2, EO_GENERATION = EO.generation! >> 2, EO_ATTR = EO.attr!;
const EO_ENTRY_VALID = EO.entry_valid! >> 2, EO_ENTRY_VALID_NSEC = EO.entry_valid_nsec! >> 2;
const EO_ATTR_VALID = EO.attr_valid! >> 2, EO_ATTR_VALID_NSEC = EO.attr_valid_nsec! >> 2;
const AO_ATTR_VALID = AO.attr_valid! >> 2, AO_ATTR_VALID_NSEC = AO.attr_valid_nsec! >> 2, AO_DUMMY = AO.dummy! >> 2, AO_ATTR = AO.attr!;

function writeTimeout(b32: Uint32Array, sec32: number, nsec32: number, sec: number): void {
  const whole = Math.floor(sec);
  b32[sec32] = whole >>> 0;
  b32[sec32 + 1] = Math.floor(whole / 0x1_0000_0000);
  b32[nsec32] = Math.round((sec - whole) * 1e9);
}

/**
 * Replies of these encoders are carved from one ArrayBuffer at a time, which a Uint32Array
 * spans whole: per reply one Buffer view and nothing else. A Uint32Array per reply over a
 * pooled Buffer cost more than the encoding (the view, and the runtime call that finds a
 * pooled Buffer's ArrayBuffer). Not zeroed: the caller writes every field. Slices stay
 * 8-byte aligned (every size here is a multiple of 8).
 */
const POOL_BYTES = 64 * 1024;
let pool = new ArrayBuffer(POOL_BYTES);
let pool32 = new Uint32Array(pool);
let poolAt = 0;

/** `size` bytes of the pool: the Buffer, and the index of its first word in `pool32`. */
function carve(size: number): [Buffer, number] {
  if (poolAt + size > POOL_BYTES) {
    // Replies already handed out keep the old pool alive as long as they need it.
    pool = new ArrayBuffer(POOL_BYTES);
    pool32 = new Uint32Array(pool);
    poolAt = 0;
  }
  const at = poolAt;
  poolAt += size;
  return [Buffer.from(pool, at, size), at >>> 2];
}

/**
 * fuse_entry_out with the attributes written by `attrInto` (statx.ts: sxAttrInto): the
 * LOOKUP reply without building an attribute object (encodeEntryOut is the reference).
 */
export function encodeEntryOutWith(nodeid: number, entryValid: number, attrValid: number, attrInto: (out32: Uint32Array, at: number) => void): Buffer {
  const [b, w] = carve(ENTRY_OUT.size);
  const b32 = pool32;
  b32[w + EO_NODEID] = nodeid >>> 0;
  b32[w + EO_NODEID + 1] = Math.floor(nodeid / 0x1_0000_0000);
  b32[w + EO_GENERATION] = 0;
  b32[w + EO_GENERATION + 1] = 0;
  writeTimeout(b32, w + EO_ENTRY_VALID, w + EO_ENTRY_VALID_NSEC, entryValid);
  writeTimeout(b32, w + EO_ATTR_VALID, w + EO_ATTR_VALID_NSEC, attrValid);
  attrInto(b32, (w << 2) + EO_ATTR); // a byte offset, as attrInto takes it
  return b;
}

/** fuse_attr_out, the same way (encodeAttrOut is the reference). */
export function encodeAttrOutWith(attrValid: number, attrInto: (out32: Uint32Array, at: number) => void): Buffer {
  const [b, w] = carve(ATTR_OUT.size);
  const b32 = pool32;
  writeTimeout(b32, w + AO_ATTR_VALID, w + AO_ATTR_VALID_NSEC, attrValid);
  b32[w + AO_DUMMY] = 0;
  attrInto(b32, (w << 2) + AO_ATTR);
  return b;
}

export function encodeEntryOut(e: EntryParams): Buffer {
  const b = Buffer.alloc(ENTRY_OUT.size);
  encodeEntryOutInto(e, b, 0);
  return b;
}

export function encodeAttrOut(attrValid: number, attr: AttrIn): Buffer {
  const [av, avn] = splitTimeout(attrValid);
  return encodeStruct(ATTR_OUT, { attr_valid: av, attr_valid_nsec: avn, attr });
}

// ---- directory entries ----

export interface Dirent {
  ino: bigint | number;
  /** Offset of the *next* entry: what the kernel passes back in the next READDIR. */
  off: bigint | number;
  /** DT_* type (mode >> 12). */
  type: number;
  name: Buffer | string;
}

export function direntSize(nameLen: number): number {
  return alignUp(FUSE_NAME_OFFSET + nameLen, 8);
}

export function direntplusSize(nameLen: number): number {
  return alignUp(FUSE_NAME_OFFSET_DIRENTPLUS + nameLen, 8);
}

/**
 * Appends one dirent at `at`; returns the new end, or -1 if it does not fit in
 * `buf` (the caller then stops: a partial READDIR reply is valid, an overlong one is EIO).
 */
export function encodeDirentInto(buf: Buffer, at: number, d: Dirent): number {
  const name = typeof d.name === 'string' ? Buffer.from(d.name) : d.name;
  const end = at + direntSize(name.length);
  if (end > buf.length) return -1;
  encodeStructInto(DIRENT, { ino: d.ino, off: d.off, namelen: name.length, type: d.type }, buf, at);
  name.copy(buf, at + FUSE_NAME_OFFSET);
  buf.fill(0, at + FUSE_NAME_OFFSET + name.length, end);
  return end;
}

export function encodeDirentplusInto(buf: Buffer, at: number, e: EntryParams | null, d: Dirent): number {
  const name = typeof d.name === 'string' ? Buffer.from(d.name) : d.name;
  const end = at + direntplusSize(name.length);
  if (end > buf.length) return -1;
  if (e) encodeEntryOutInto(e, buf, at);
  else buf.fill(0, at, at + ENTRY_OUT.size); // nodeid 0: "no entry info", the kernel only lists the name
  encodeStructInto(DIRENT, { ino: d.ino, off: d.off, namelen: name.length, type: d.type }, buf, at + ENTRY_OUT.size);
  name.copy(buf, at + FUSE_NAME_OFFSET_DIRENTPLUS);
  buf.fill(0, at + FUSE_NAME_OFFSET_DIRENTPLUS + name.length, end);
  return end;
}

export interface DecodedDirent {
  ino: bigint;
  off: bigint;
  type: number;
  name: string;
  entry?: Decoded<typeof ENTRY_OUT extends StructDef<infer S> ? S : never>;
}

/** Inverse of the encoders, for tests and debugging. */
export function decodeDirents(buf: Buffer, plus = false): DecodedDirent[] {
  const out: DecodedDirent[] = [];
  let at = 0;
  while (at < buf.length) {
    const base = plus ? at + ENTRY_OUT.size : at;
    const d = decodeStruct(DIRENT, buf, base);
    const nameAt = base + DIRENT.size;
    if (nameAt + d.namelen > buf.length) throw new ProtocolError(`dirent at ${at}: name overruns buffer`);
    const rec: DecodedDirent = { ino: d.ino, off: d.off, type: d.type, name: buf.toString('utf8', nameAt, nameAt + d.namelen) };
    if (plus) rec.entry = decodeStruct(ENTRY_OUT, buf, at);
    out.push(rec);
    at += plus ? direntplusSize(d.namelen) : direntSize(d.namelen);
  }
  return out;
}
