// statx(2) into one reusable buffer, and FUSE attributes encoded straight from it: the hot
// path of LOOKUP and GETATTR. node:fs's lstatSync builds a BigIntStats object (fourteen
// BigInts, four Dates) per call, and the generic struct encoder walks field tables; in the
// TCG guest those cost a GETATTR more than the syscall (docs/fuse-server.md: the request
// path). toAttr/encodeStruct (attr.ts, protocol.ts) stay the reference: the unit tests
// compare both encodings byte for byte.
import koffi from 'koffi';
import { ATTR } from './protocol.ts';
import { Errno } from './session.ts';
import { SysError } from './libc.ts';

const AT_FDCWD = -100;
const AT_SYMLINK_NOFOLLOW = 0x100;
const AT_EMPTY_PATH = 0x1000;
const STATX_BASIC_STATS = 0x7ff;
const ENOENT = 2;
const EFAULT = 14;

// struct statx (include/uapi/linux/stat.h): offsets of the fields used here.
const SX = {
  blksize: 4, nlink: 16, uid: 20, gid: 24, mode: 28, ino: 32, size: 40, blocks: 48,
  atime: 64, ctime: 96, mtime: 112, rdevMajor: 128, rdevMinor: 132, devMajor: 136, devMinor: 140,
} as const;
const STATX_SIZE = 256;

let fn: ((dirfd: number, path: string | null, flags: number, mask: number, buf: Buffer) => number) | undefined;
function bind() {
  return (fn ??= koffi.load('libc.so.6').func('int statx(int dirfd, const char *path, int flags, unsigned int mask, _Out_ uint8_t *buf)') as never);
}

/** The buffer every call fills: read it before the next call. */
const buf = Buffer.alloc(STATX_SIZE);

/** lstat(2) of `path` into the shared buffer; null if it does not exist (the common miss). */
export function statxPath(path: string): Buffer | null {
  if (bind()(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, buf) === 0) return buf;
  const errno = koffi.errno();
  if (errno === ENOENT) return null;
  throw new SysError('statx', errno, path);
}

/** Whether statx takes a NULL path with AT_EMPTY_PATH (Linux 6.11+): no path to copy in. */
let nullPath = true;

/** fstat(2) of an open fd into the shared buffer. */
export function statxFd(fd: number): Buffer {
  if (nullPath) {
    if (bind()(fd, null, AT_EMPTY_PATH, STATX_BASIC_STATS, buf) === 0) return buf;
    const errno = koffi.errno();
    if (errno !== EFAULT) throw new SysError('statx', errno, `fd ${fd}`);
    nullPath = false; // an older kernel: it wants ""
  }
  if (bind()(fd, '', AT_EMPTY_PATH, STATX_BASIC_STATS, buf) === 0) return buf;
  throw new SysError('statx', koffi.errno(), `fd ${fd}`);
}

/** Like statxPath, but a missing name is the ENOENT a handler throws. */
export function statxOrENOENT(path: string): Buffer {
  const sx = statxPath(path);
  if (!sx) throw new Errno('ENOENT');
  return sx;
}

export function sxMode(sx: Buffer): number {
  return sx.readUInt16LE(SX.mode);
}

/** A u64 as an exact decimal string, without a BigInt for the values that fit a double. */
function u64String(b: Buffer, at: number): string {
  const hi = b.readUInt32LE(at + 4);
  return hi < 0x200000 ? String(hi * 0x1_0000_0000 + b.readUInt32LE(at)) : b.readBigUInt64LE(at).toString();
}

/** glibc's makedev(major, minor), as node:fs reports st_dev and st_rdev. */
function makedev(major: number, minor: number): bigint {
  return (BigInt(major & 0xfffff000) << 32n) | BigInt((((major & 0xfff) << 8) | ((minor & 0xffffff00) << 12) | (minor & 0xff)) >>> 0);
}

function makedevLow(major: number, minor: number): number {
  return (((major & 0xfff) << 8) | ((minor & 0xffffff00) << 12) | (minor & 0xff)) >>> 0;
}

/** The node key (attr.ts: statKey) of the file in `sx`: "dev:ino", decimal. */
export function sxKey(sx: Buffer): string {
  const major = sx.readUInt32LE(SX.devMajor);
  const minor = sx.readUInt32LE(SX.devMinor);
  const dev = major & 0xfffff000 ? makedev(major, minor).toString() : String(makedevLow(major, minor));
  return `${dev}:${u64String(sx, SX.ino)}`;
}

// Every fuse_attr field is a u32 or a u64 at a 4-byte aligned offset, and so are the statx
// fields read here: both sides are handled as Uint32Arrays, whose indexing the JIT inlines
// (Buffer's read/write methods are calls, and a GETATTR made some forty of them). The
// offsets are constants (in u32 units), taken once from the struct table.
const attrAt = (name: string) => ATTR.fields.find((f) => f.name === name)!.offset / 4;
const A_INO = attrAt('ino'), A_SIZE = attrAt('size'), A_BLOCKS = attrAt('blocks');
const A_ATIME = attrAt('atime'), A_MTIME = attrAt('mtime'), A_CTIME = attrAt('ctime');
const A_ATIMENSEC = attrAt('atimensec'), A_MTIMENSEC = attrAt('mtimensec'), A_CTIMENSEC = attrAt('ctimensec');
const A_MODE = attrAt('mode'), A_NLINK = attrAt('nlink'), A_UID = attrAt('uid'), A_GID = attrAt('gid');
const A_RDEV = attrAt('rdev'), A_BLKSIZE = attrAt('blksize'), A_FLAGS = attrAt('flags');
const sx32 = new Uint32Array(buf.buffer, buf.byteOffset, STATX_SIZE / 4);

/**
 * struct fuse_attr at out[at..] (at: a multiple of 4 from an aligned buffer), from the
 * statx buffer the last statxPath/statxFd filled: what toAttr + encodeStruct write.
 */
export function sxAttrInto(out32: Uint32Array, at: number): void {
  const o = at >> 2;
  const s = sx32;
  out32[o + A_INO] = s[SX.ino >> 2]!;
  out32[o + A_INO + 1] = s[(SX.ino >> 2) + 1]!;
  out32[o + A_SIZE] = s[SX.size >> 2]!;
  out32[o + A_SIZE + 1] = s[(SX.size >> 2) + 1]!;
  out32[o + A_BLOCKS] = s[SX.blocks >> 2]!;
  out32[o + A_BLOCKS + 1] = s[(SX.blocks >> 2) + 1]!;
  // statx_timestamp: __s64 tv_sec; __u32 tv_nsec. fuse_attr keeps them as u64 + u32.
  out32[o + A_ATIME] = s[SX.atime >> 2]!;
  out32[o + A_ATIME + 1] = s[(SX.atime >> 2) + 1]!;
  out32[o + A_MTIME] = s[SX.mtime >> 2]!;
  out32[o + A_MTIME + 1] = s[(SX.mtime >> 2) + 1]!;
  out32[o + A_CTIME] = s[SX.ctime >> 2]!;
  out32[o + A_CTIME + 1] = s[(SX.ctime >> 2) + 1]!;
  out32[o + A_ATIMENSEC] = s[(SX.atime >> 2) + 2]!;
  out32[o + A_MTIMENSEC] = s[(SX.mtime >> 2) + 2]!;
  out32[o + A_CTIMENSEC] = s[(SX.ctime >> 2) + 2]!;
  out32[o + A_MODE] = s[SX.mode >> 2]! & 0xffff;
  out32[o + A_NLINK] = s[SX.nlink >> 2]!;
  out32[o + A_UID] = s[SX.uid >> 2]!;
  out32[o + A_GID] = s[SX.gid >> 2]!;
  out32[o + A_RDEV] = makedevLow(s[SX.rdevMajor >> 2]!, s[SX.rdevMinor >> 2]!);
  out32[o + A_BLKSIZE] = s[SX.blksize >> 2]!;
  out32[o + A_FLAGS] = 0;
}
