// Conversions between node:fs stats and FUSE attribute structs.
import type { BigIntStats, BigIntStatsFs } from 'node:fs';
import { KSTATFS, type AttrIn } from './protocol.ts';
import type { Encodable, StructDef } from './layout.ts';

const NS = 1_000_000_000n;

export function statKey(st: BigIntStats): string {
  return `${st.dev}:${st.ino}`;
}

export function toAttr(st: BigIntStats): AttrIn {
  return {
    ino: st.ino,
    size: st.size,
    blocks: st.blocks,
    atime: st.atimeNs / NS, atimensec: Number(st.atimeNs % NS),
    mtime: st.mtimeNs / NS, mtimensec: Number(st.mtimeNs % NS),
    ctime: st.ctimeNs / NS, ctimensec: Number(st.ctimeNs % NS),
    mode: Number(st.mode),
    nlink: Number(st.nlink),
    uid: Number(st.uid),
    gid: Number(st.gid),
    // glibc's dev_t encoding and the kernel's new_encode_dev agree in the low 32 bits for
    // every major < 4096, which is all fuse_attr.rdev (u32) can carry anyway.
    rdev: Number(st.rdev & 0xffffffffn),
    blksize: Number(st.blksize),
  };
}

/** DT_* from st_mode: the file type bits shifted down, as the kernel's dirents use. */
export function dtype(mode: number | bigint): number {
  return (Number(mode) >> 12) & 0xf;
}

type KStatfsIn = Encodable<typeof KSTATFS extends StructDef<infer S> ? S : never>;

export function toKstatfs(s: BigIntStatsFs): KStatfsIn {
  return {
    blocks: s.blocks, bfree: s.bfree, bavail: s.bavail, files: s.files, ffree: s.ffree,
    bsize: Number(s.bsize),
    // node's statfs omits f_namelen/f_frsize; these are what every local Linux fs reports.
    namelen: 255,
    frsize: Number(s.bsize),
  };
}
