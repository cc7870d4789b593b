// Binding a struct_ops link to one FUSE connection: the series' ioctl on the /dev/fuse fd
// (only the holder of the connection's device fd can attach a program to it).
import { ioctlPtr, SysError } from '../fuse/libc.ts';
import { BpfError } from './errors.ts';
import type { Link } from './object.ts';

const IOC_WRITE = 1;
const FUSE_DEV_IOC_MAGIC = 229;

/** _IOC(dir, type, nr, size) as in include/uapi/asm-generic/ioctl.h. */
export function ioc(dir: number, type: number, nr: number, size: number): number {
  return ((dir << 30) | (size << 16) | (type << 8) | nr) >>> 0;
}

export const FUSE_DEV_IOC_BPF_ATTACH = ioc(IOC_WRITE, FUSE_DEV_IOC_MAGIC, 64, 4);
export const FUSE_DEV_IOC_BPF_DETACH = ioc(0, FUSE_DEV_IOC_MAGIC, 65, 0);

const ATTACH_HINTS: Record<number, string> = {
  25: 'the fd is not a /dev/fuse connection (ENOTTY): pass the mount\'s /dev/fuse fd',
  9: 'the fd is closed or not a struct_ops link',
  22: 'not a fuse_bpf_ops struct_ops link (load a program whose SEC(".struct_ops.link") map is struct fuse_bpf_ops)',
  16: 'a program is already attached to this connection: detach it first',
  1: 'attaching needs CAP_SYS_ADMIN and the connection\'s /dev/fuse fd',
  107: 'the connection is not initialised yet or was aborted',
};

/** Attach a fuse_bpf_ops link to the connection whose /dev/fuse fd is devFd. */
export function attachToFuse(devFd: number, link: Link | number): void {
  const linkFd = typeof link === 'number' ? link : link.fd;
  const arg = Buffer.alloc(4);
  arg.writeUInt32LE(linkFd);
  fuseIoctl(devFd, FUSE_DEV_IOC_BPF_ATTACH, arg, `attach link fd ${linkFd} to FUSE connection fd ${devFd}`);
}

export function detachFromFuse(devFd: number): void {
  fuseIoctl(devFd, FUSE_DEV_IOC_BPF_DETACH, Buffer.alloc(0), `detach from FUSE connection fd ${devFd}`);
}

/** The syscall through the FUSE server's libc binding; errors become BpfErrors with a hint. */
function fuseIoctl(devFd: number, req: number, arg: Buffer, what: string): void {
  try {
    ioctlPtr(devFd, req, arg);
  } catch (e) {
    if (!(e instanceof SysError)) throw e;
    throw new BpfError(what, e.errno, ATTACH_HINTS[e.errno] ?? '');
  }
}
