// stripe: one FUSE file over N backing files in fixed-size chunks (RAID-0). Logical byte
// off lives in chunk c = off / chunk, on backing c % N, at byte (c / N) * chunk + off % chunk
// of that backing's file. The kernel runs these functions compiled to BPF
// (fuse-kfunc policy show stripe); the daemon runs them as they are.
import { definePolicy, param } from '../lang/define.ts';

export default definePolicy({
  name: 'stripe',
  summary: 'one FUSE file over N backing files in fixed-size chunks (RAID-0)',
  backings: { min: 2, max: 4 },
  params: {
    chunk: param.size({ doc: 'chunk size: whole pages, 4k..64m', default: '64k', min: '4k', max: '64m', multipleOf: '4k' }),
  },
  layout: {
    // Chunk c holds byte off; it is on backing c % N, in that backing's row c / N.
    locate(off, p) {
      const c = Math.floor(off / p.chunk);
      const within = off % p.chunk;
      return { backing: c % p.backings, offset: Math.floor(c / p.backings) * p.chunk + within, length: p.chunk - within };
    },
    // A full row of chunks is on every backing; the rest of the file fills backings in order.
    backingSize(size, i, p) {
      const row = p.chunk * p.backings;
      const rows = Math.floor(size / row);
      const rest = size - rows * row - i * p.chunk;
      return rows * p.chunk + Math.min(Math.max(rest, 0), p.chunk);
    },
    // The last byte of a backing file is in its chunk k, which is the file's chunk k * N + i.
    logicalEnd(size, i, p) {
      const k = Math.floor((size - 1) / p.chunk);
      return (k * p.backings + i) * p.chunk + size - k * p.chunk;
    },
  },
});
