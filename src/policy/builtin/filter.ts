// filter: fuse-bpf's design on this hook: one backing file per FUSE file and, around each
// operation on it, a pre-filter that may refuse it and a post-filter that sees the result.
// This one refuses the operations --deny names, with EPERM, and passes every result on.
import { definePolicy, errno, param } from '../lang/define.ts';

export default definePolicy({
  name: 'filter',
  summary: 'one backing file per FUSE file, pre- and post-filters around each operation',
  backings: { min: 1, max: 1 },
  params: {
    // GETATTR and the xattr reads are answered for any open inode, also by path, which the
    // daemon cannot tell apart: only operations on a file handle may be refused.
    deny: param.ops({ doc: 'comma list of read,write,fsync,flush,fallocate,lseek the pre-filter refuses (EPERM), or none', allowed: ['read', 'write', 'fsync', 'flush', 'fallocate', 'lseek'], default: 'none' }),
  },
  access: {
    // The pre-filter: a denied operation fails before the backing file is touched.
    before(op, p) {
      return p.deny.includes(op) ? errno.EPERM : 0;
    },
    // The post-filter: every result goes to the caller as it is.
    after(op, result, p) {
      return 0;
    },
  },
});
