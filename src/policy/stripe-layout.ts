// RAID-0 geometry of the stripe policy, shared by the daemon, the userspace reference and
// the tests (the generated C computes the same with constants; see gen/stripe.ts).
//
// Logical byte `off` of a FUSE file lives in chunk c = off / chunk, on backing c % nr, at
// byte (c / nr) * chunk + off % chunk of that backing's file. Sizes follow one invariant:
// after every WRITE and truncate, backing i is at least canonical(L, i) bytes long, where L
// is the logical size, and the logical size is read back as the largest logical end any
// backing implies. Holes inside L are therefore holes of some backing file (zeros), never a
// short piece, so a READ never has to zero-fill the reply itself (it cannot: READ replies
// live in pages only bpf_fuse_read fills).

export interface StripeGeometry {
  /** Bytes per chunk. */
  chunk: number;
  /** Backing files per FUSE file. */
  nr: number;
}

export interface Piece {
  /** Which backing file. */
  backing: number;
  /** Byte offset in that backing file. */
  pos: number;
  len: number;
  /** Offset of this piece in the request's data. */
  bufOff: number;
}

/** The pieces [off, off+len) is made of, in logical order. */
export function pieces(g: StripeGeometry, off: number, len: number): Piece[] {
  const out: Piece[] = [];
  let done = 0;
  while (done < len) {
    const o = off + done;
    const c = Math.floor(o / g.chunk);
    const within = o - c * g.chunk;
    const n = Math.min(g.chunk - within, len - done);
    out.push({ backing: c % g.nr, pos: Math.floor(c / g.nr) * g.chunk + within, len: n, bufOff: done });
    done += n;
  }
  return out;
}

/** Size backing i has when the logical file is exactly `size` bytes and fully written. */
export function canonicalSize(g: StripeGeometry, size: number, i: number): number {
  const row = g.chunk * g.nr;
  const rows = Math.floor(size / row);
  const rem = size - rows * row;
  return rows * g.chunk + Math.min(Math.max(rem - i * g.chunk, 0), g.chunk);
}

/** The logical end a backing file of `size` bytes implies (0 for an empty one). */
export function logicalEnd(g: StripeGeometry, size: number, i: number): number {
  if (size <= 0) return 0;
  const k = Math.floor((size - 1) / g.chunk);
  return (k * g.nr + i) * g.chunk + (size - k * g.chunk);
}

/** The logical size of a FUSE file from its backing files' sizes. */
export function logicalSize(g: StripeGeometry, sizes: number[]): number {
  let L = 0;
  sizes.forEach((s, i) => (L = Math.max(L, logicalEnd(g, s, i))));
  return L;
}
