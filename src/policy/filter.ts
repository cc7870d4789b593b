// The filter policy, daemon side: one backing directory served by the passthrough
// filesystem (files published to the program by mount-serve), plus the pre-filter's
// refusals for whatever reaches the daemon, so a daemon-only mount is the reference.
import { Op } from '../fuse/protocol.ts';
import { Errno, type Session } from '../fuse/session.ts';
import type { FilterOp } from './spec.ts';

const OPCODE: Record<FilterOp, number> = {
  read: Op.READ, write: Op.WRITE, getattr: Op.GETATTR, fsync: Op.FSYNC,
  flush: Op.FLUSH, fallocate: Op.FALLOCATE, lseek: Op.LSEEK, getxattr: Op.GETXATTR, listxattr: Op.LISTXATTR,
};

/** For mountFuse's `setup`: the denied operations fail with EPERM, as in the program. */
export function filterDaemon(deny: FilterOp[]) {
  return ({ session }: { session: Session }): void => {
    for (const op of deny) {
      session.on(OPCODE[op], async () => {
        throw new Errno('EPERM', `filter: ${op} is denied`);
      });
    }
  };
}
