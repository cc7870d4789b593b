// The few syscalls node:fs lacks, through koffi. All are called synchronously on purpose:
// koffi's async calls run on another thread and lose errno, and these are short metadata
// syscalls on the backing filesystem (see docs/fuse-server.md, "limits"). umount is the
// exception: it runs async because it may wait for this very process.
import koffi from 'koffi';
import { constants as osConstants } from 'node:os';

let lib: ReturnType<typeof bind> | undefined;

function bind() {
  const c = koffi.load('libc.so.6');
  return {
    ioctlPtr: c.func('int ioctl(int fd, unsigned long req, void *arg)'),
    mount: c.func('int mount(const char *src, const char *target, const char *type, unsigned long flags, const char *data)'),
    umount2: c.func('int umount2(const char *target, int flags)'),
    mknod: c.func('int mknod(const char *path, uint32_t mode, uint64_t dev)'),
    renameat2: c.func('int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags)'),
    lsetxattr: c.func('int lsetxattr(const char *path, const char *name, const void *value, size_t size, int flags)'),
    lgetxattr: c.func('intptr_t lgetxattr(const char *path, const char *name, void *value, size_t size)'),
    llistxattr: c.func('intptr_t llistxattr(const char *path, void *list, size_t size)'),
    lremovexattr: c.func('int lremovexattr(const char *path, const char *name)'),
    fgetxattr: c.func('intptr_t fgetxattr(int fd, const char *name, void *value, size_t size)'),
    fallocate: c.func('int fallocate(int fd, int mode, int64_t offset, int64_t len)'),
    lseek: c.func('int64_t lseek(int fd, int64_t offset, int whence)'),
    copyFileRange: c.func('intptr_t copy_file_range(int fd_in, _Inout_ int64_t *off_in, int fd_out, _Inout_ int64_t *off_out, size_t len, unsigned int flags)'),
    utimensat: c.func('int utimensat(int dirfd, const char *path, const int64_t *times, int flags)'),
  };
}

function L() {
  return (lib ??= bind());
}

const ERRNO_NAME = new Map<number, string>(Object.entries(osConstants.errno).map(([k, v]) => [v, k]));

/** An Error shaped like node:fs errors (code + positive errno), so one mapper serves both. */
export class SysError extends Error {
  readonly errno: number;
  readonly code: string;
  readonly syscall: string;
  constructor(syscall: string, errno: number, detail = '') {
    const code = ERRNO_NAME.get(errno) ?? `E${errno}`;
    // Most are expected answers (ENODATA of a getxattr on every write, EEXIST, ...) that
    // travel back as an errno, and a stack costs more than the syscall; EIO keeps one
    // (Session.fail logs it), as session.ts: Errno does.
    const limit = Error.stackTraceLimit;
    if (code !== 'EIO') Error.stackTraceLimit = 0;
    super(`${syscall}${detail ? ` ${detail}` : ''}: ${code}`);
    Error.stackTraceLimit = limit;
    this.errno = errno;
    this.code = code;
    this.syscall = syscall;
  }
}

function check<T extends number | bigint>(syscall: string, r: T, detail?: string): T {
  if (Number(r) < 0) throw new SysError(syscall, koffi.errno(), detail);
  return r;
}

export function ioctlPtr(fd: number, req: number, arg: Buffer): number {
  return check('ioctl', L().ioctlPtr(fd, req, arg) as number);
}

export function mount(src: string, target: string, type: string, flags: number, data: string): void {
  check('mount', L().mount(src, target, type, flags, data) as number, target);
}

export const MNT_FORCE = 1;
export const MNT_DETACH = 2;

/** Resolves true when umount2 succeeded. errno is not available from koffi's worker thread. */
export function umount2Async(target: string, flags: number): Promise<boolean> {
  return new Promise((resolve) => {
    L().umount2.async(target, flags, (err: unknown, r: number) => resolve(!err && r === 0));
  });
}

export function mknod(path: string, mode: number, dev: number): void {
  check('mknod', L().mknod(path, mode, dev) as number, path);
}

export const AT_FDCWD = -100;
export const AT_SYMLINK_NOFOLLOW = 0x100;
export const RENAME_NOREPLACE = 1;
export const RENAME_EXCHANGE = 2;
export const RENAME_WHITEOUT = 4;

export function renameat2(oldPath: string, newPath: string, flags: number): void {
  check('renameat2', L().renameat2(AT_FDCWD, oldPath, AT_FDCWD, newPath, flags) as number, `${oldPath} -> ${newPath}`);
}

export function lsetxattr(path: string, name: string, value: Buffer, flags: number): void {
  check('lsetxattr', L().lsetxattr(path, name, value, value.length, flags) as number, name);
}

/** With size 0 returns the value's length; otherwise fills `into` and returns bytes used. */
export function lgetxattr(path: string, name: string, into: Buffer | null): number {
  const r = lgetxattrOrErrno(path, name, into);
  if (r < 0) throw new SysError('lgetxattr', -r, name);
  return r;
}

/** lgetxattr(2) returning -errno on failure instead of throwing (GETXATTR's ENODATA is
 *  the answer for nearly every file, asked on every write: session.ts, HandlerResult). */
export function lgetxattrOrErrno(path: string, name: string, into: Buffer | null): number {
  const r = Number(L().lgetxattr(path, name, into, into ? into.length : 0) as number | bigint);
  return r < 0 ? -koffi.errno() : r;
}

export function llistxattr(path: string, into: Buffer | null): number {
  return Number(check('llistxattr', L().llistxattr(path, into, into ? into.length : 0) as number | bigint));
}

export function lremovexattr(path: string, name: string): void {
  check('lremovexattr', L().lremovexattr(path, name) as number, name);
}

export function fallocate(fd: number, mode: number, offset: bigint, len: bigint): void {
  check('fallocate', L().fallocate(fd, mode, offset, len) as number);
}

export const SEEK_DATA = 3;
export const SEEK_HOLE = 4;

export function lseek(fd: number, offset: bigint, whence: number): bigint {
  return BigInt(check('lseek', L().lseek(fd, offset, whence) as number | bigint));
}

export function copyFileRange(fdIn: number, offIn: bigint, fdOut: number, offOut: bigint, len: bigint, flags: number): number {
  // size_t len: clamp so a huge request cannot overflow koffi's conversion.
  const n = len > 0x7ffff000n ? 0x7ffff000 : Number(len);
  return Number(check('copy_file_range', L().copyFileRange(fdIn, [offIn], fdOut, [offOut], n, flags) as number | bigint));
}

export const UTIME_NOW = (1 << 30) - 1;
export const UTIME_OMIT = (1 << 30) - 2;

export type TimeSpec = { sec: bigint | number; nsec: number } | 'now' | 'omit';

export function utimensat(path: string, atime: TimeSpec, mtime: TimeSpec): void {
  // int64_t elements: koffi takes numbers (and bigints) for them.
  const ts = (t: TimeSpec): [bigint | number, number] =>
    t === 'now' ? [0, UTIME_NOW] : t === 'omit' ? [0, UTIME_OMIT] : [t.sec, t.nsec];
  const arr = [...ts(atime), ...ts(mtime)];
  check('utimensat', L().utimensat(AT_FDCWD, path, arr, AT_SYMLINK_NOFOLLOW) as number, path);
}
