// Just enough ELF64 to find a BPF object's struct_ops maps before libbpf loads it: the
// symbols defined in ".struct_ops" / ".struct_ops.link" sections (that is how libbpf names
// them), and whether the object's BTF mentions struct fuse_bpf_ops at all.

export interface StructOpsScan {
  /** Map (variable) names in .struct_ops* sections. */
  maps: string[];
  /** The object's BTF strings contain "fuse_bpf_ops". */
  fuseBpfOps: boolean;
}

export function scanStructOps(buf: Buffer): StructOpsScan {
  if (buf.length < 64 || buf.readUInt32BE(0) !== 0x7f454c46) throw new Error('not an ELF file');
  if (buf[4] !== 2 || buf[5] !== 1) throw new Error('not a 64-bit little-endian ELF (BPF objects are)');
  if (buf.readUInt16LE(18) !== 247) throw new Error('not a BPF object (e_machine is not EM_BPF): compile with clang --target=bpf');
  const shoff = Number(buf.readBigUInt64LE(40));
  const shentsize = buf.readUInt16LE(58);
  const shnum = buf.readUInt16LE(60);
  const shstrndx = buf.readUInt16LE(62);
  const sec = (i: number) => {
    const o = shoff + i * shentsize;
    return {
      name: buf.readUInt32LE(o), type: buf.readUInt32LE(o + 4),
      offset: Number(buf.readBigUInt64LE(o + 24)), size: Number(buf.readBigUInt64LE(o + 32)),
      link: buf.readUInt32LE(o + 40), entsize: Number(buf.readBigUInt64LE(o + 56)),
    };
  };
  const str = (tab: { offset: number }, off: number) => {
    const s = tab.offset + off;
    return buf.toString('latin1', s, buf.indexOf(0, s));
  };
  const shstr = sec(shstrndx);
  const names = Array.from({ length: shnum }, (_, i) => str(shstr, sec(i).name));
  const maps: string[] = [];
  for (let i = 0; i < shnum; i++) {
    const s = sec(i);
    if (s.type !== 2 /* SHT_SYMTAB */) continue;
    const strtab = sec(s.link);
    for (let o = s.offset; o + 24 <= s.offset + s.size; o += s.entsize || 24) {
      const info = buf[o + 4]!;
      const shndx = buf.readUInt16LE(o + 6);
      if ((info & 0xf) !== 1 /* STT_OBJECT */ || shndx === 0 || shndx >= shnum) continue;
      if (/^\.struct_ops(\.link)?$/.test(names[shndx]!)) maps.push(str(strtab, buf.readUInt32LE(o)));
    }
  }
  return { maps, fuseBpfOps: buf.includes(Buffer.from('\0fuse_bpf_ops\0', 'latin1')) };
}
