// Errors of the libbpf binding: errno values become names, verifier rejections carry
// the program's name and the log lines that explain them.
import { constants } from 'node:os';

const ERRNO_NAMES = new Map<number, string>(Object.entries(constants.errno).map(([k, v]) => [v as number, k]));

export function errnoName(err: number): string {
  return ERRNO_NAMES.get(Math.abs(err)) ?? `errno ${Math.abs(err)}`;
}

export class BpfError extends Error {
  readonly errno: number;
  readonly code: string;
  constructor(what: string, err: number, hint = '') {
    const code = errnoName(err);
    super(`${what}: ${code}${hint ? ` (${hint})` : ''}`);
    this.name = 'BpfError';
    this.errno = Math.abs(err);
    this.code = code;
  }
}

const HINTS: Record<string, string> = {
  EPERM: 'loading BPF needs root (CAP_BPF and CAP_PERFMON)',
  EACCES: 'the verifier or a permission check refused it',
  ENOENT: 'a kernel symbol, map or BTF type the object needs is not in this kernel',
  EINVAL: 'the kernel did not accept the object; the log below says what',
  E2BIG: 'the program or its maps are larger than the kernel allows',
};

export function hintFor(err: number): string {
  return HINTS[errnoName(err)] ?? '';
}

/**
 * The verifier log is long; the lines that matter are the last instructions before the
 * rejection and the message itself (libbpf-rs and bpftrace show the tail the same way).
 */
export function keyLogLines(log: string, max = 12): string[] {
  const lines = log.split('\n').map((l) => l.trimEnd()).filter(Boolean);
  const stats = lines.findIndex((l) => /^processed \d+ insns|^verification time/.test(l));
  const end = stats >= 0 ? stats : lines.length;
  return lines.slice(Math.max(0, end - max), end);
}

/** The .ts lines a verifier log names (a compiled policy module's #line directives), last three. */
export function tsLines(log: string): string[] {
  const seen: string[] = [];
  for (const m of [...log.matchAll(/@ ([^\s:]+\.ts):(\d+)/g)].reverse()) {
    const at = `${m[1]}:${m[2]}`;
    if (!seen.includes(at)) seen.unshift(at);
    if (seen.length === 3) break;
  }
  return seen;
}

export class VerifierError extends BpfError {
  readonly program: string;
  readonly log: string;
  constructor(program: string, err: number, log: string) {
    // ENOSPC is the log buffer filling up on a long walk; the verdict is the log's last line.
    super(`the verifier rejected program "${program}"`, err, errnoName(err) === 'ENOSPC' && log ? 'its log outgrew the buffer: the verdict is its last line' : '');
    this.name = 'VerifierError';
    this.program = program;
    this.log = log;
    const key = keyLogLines(log);
    this.message += key.length
      ? `\n  verifier log (last lines; full log in .log):\n${key.map((l) => `    ${l}`).join('\n')}`
      : '\n  (no verifier log: the failure came before verification; see libbpf messages)';
  }
}
