// The userspace runtime of access policies (filter; the twin of bpf/runtime/access.bpf.h):
// one backing directory served by the passthrough filesystem (mount-serve publishes open
// files to the program), and around each served operation the policy's before() and
// after(), called as they are written, so a daemon-only mount is the reference.
import { constants } from 'node:os';
import { Op, WRITE_OUT, decodeStruct } from '../../fuse/protocol.ts';
import { Errno, type HandlerResult, type Session } from '../../fuse/session.ts';
import { ACCESS_OPS, type AccessHooks, type AccessOp, type PolicyValues } from '../lang/define.ts';

const OPCODE: Record<AccessOp, number> = {
  read: Op.READ, write: Op.WRITE, getattr: Op.GETATTR, fsync: Op.FSYNC, flush: Op.FLUSH,
  fallocate: Op.FALLOCATE, lseek: Op.LSEEK, getxattr: Op.GETXATTR, listxattr: Op.LISTXATTR,
};

const NAMES = new Map(Object.entries(constants.errno).map(([name, n]) => [n, name]));

/** The errno a policy answered, as the error the daemon replies with: EIO outside 1..511 and for ENOSYS (as access.bpf.h). */
function policyError(e: number, what: string): Errno {
  const name = Number.isInteger(e) && e > 0 && e < 512 && e !== constants.errno.ENOSYS ? NAMES.get(e) : undefined;
  return new Errno(name ?? 'EIO', `${what} answered ${e}`);
}

/** Bytes a successful reply moved (READ: the data; WRITE: what write_out says), else 0. */
function resultOf(op: AccessOp, out: HandlerResult): number {
  if (op === 'read') {
    if (Buffer.isBuffer(out)) return out.length;
    if (Array.isArray(out)) return out.reduce((n, b) => n + b.length, 0);
  }
  if (op === 'write' && Buffer.isBuffer(out) && out.length >= WRITE_OUT.size) return Number(decodeStruct(WRITE_OUT, out).size);
  return 0;
}

export interface AccessOptions {
  name: string;
  hooks: AccessHooks<PolicyValues>;
  context: PolicyValues;
}

/** For mountFuse's `setup`: every served operation goes through before() and after(). */
export function accessDaemon(o: AccessOptions) {
  return ({ session }: { session: Session }): void => {
    for (const op of ACCESS_OPS) {
      const orig = session.handler(OPCODE[op]);
      if (!orig) continue;
      session.on(OPCODE[op], async (req, body) => {
        const before = Number(o.hooks.before(op, o.context)); // true is 1, as in the C
        if (before) throw policyError(before, `${o.name}: before(${op})`);
        let out: HandlerResult;
        let failure: unknown;
        let result: number;
        try {
          out = await orig(req, body);
          // A handler may answer an error as a negative number rather than throw it.
          result = typeof out === 'number' && out < 0 ? out : resultOf(op, out);
        } catch (e) {
          const code = (e as { code?: unknown }).code;
          if (typeof code !== 'string') throw e;
          failure = e;
          result = -((constants.errno as Record<string, number>)[code] ?? constants.errno.EIO);
        }
        const after = Number(o.hooks.after(op, result, o.context));
        if (after) throw policyError(after, `${o.name}: after(${op}, ${result})`);
        if (failure) throw failure;
        return out!;
      });
    }
  };
}
