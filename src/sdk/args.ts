// `fuse-kfunc mount` and `fuse-kfunc stats` arguments, parsed without side effects.
import { UsageError } from '../cli/args.ts';

export interface MountArgs {
  backings: string[];
  mountpoint: string;
  program?: string;
  structOps?: string;
  userspace: boolean;
  passthrough: boolean;
  timeout?: number;
  help: boolean;
}

const VALUE = new Set(['program', 'struct-ops', 'timeout']);
const BOOL = new Set(['userspace', 'passthrough', 'help']);

export function parseMountArgs(argv: string[]): MountArgs {
  const pos: string[] = [];
  const f = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '-h') { f.set('help', true); continue; }
    if (!a.startsWith('--')) { pos.push(a); continue; }
    const eq = a.indexOf('=');
    const name = eq > 0 ? a.slice(2, eq) : a.slice(2);
    if (VALUE.has(name)) {
      const v = eq > 0 ? a.slice(eq + 1) : argv[++i];
      if (v === undefined || v === '') throw new UsageError(`--${name} needs a value`);
      f.set(name, v);
    } else if (BOOL.has(name) && eq < 0) f.set(name, true);
    else throw new UsageError(`unknown option ${a} (mount takes --program, --struct-ops, --userspace, --passthrough, --timeout)`);
  }
  const help = f.has('help');
  if (help) return { backings: [], mountpoint: '', userspace: false, passthrough: false, help };
  if (pos.length < 2) throw new UsageError('mount needs BACKING... MOUNTPOINT (at least one backing directory and the mountpoint)');
  const program = f.get('program') as string | undefined;
  const userspace = f.has('userspace');
  const passthrough = f.has('passthrough');
  const modes = [program !== undefined, userspace, passthrough].filter(Boolean).length;
  if (userspace && modes > 1) throw new UsageError('--userspace excludes --program and --passthrough');
  if (program !== undefined && passthrough) throw new UsageError('--program and --passthrough exclude each other (upstream passthrough would bypass the program for READ/WRITE)');
  if (f.has('struct-ops') && program === undefined) throw new UsageError('--struct-ops names a map of --program');
  let timeout: number | undefined;
  if (f.has('timeout')) {
    timeout = Number(f.get('timeout'));
    if (!Number.isFinite(timeout) || timeout < 0) throw new UsageError(`--timeout wants seconds >= 0, got "${f.get('timeout')}"`);
  }
  return {
    backings: pos.slice(0, -1), mountpoint: pos[pos.length - 1]!, program,
    structOps: f.get('struct-ops') as string | undefined, userspace, passthrough, timeout, help,
  };
}

export function parseStatsArgs(argv: string[]): { mountpoint: string; json: boolean; help: boolean } {
  const help = argv.includes('--help') || argv.includes('-h');
  const json = argv.includes('--json');
  const unknown = argv.filter((a) => a.startsWith('-') && !['--help', '-h', '--json'].includes(a));
  if (unknown.length) throw new UsageError(`unknown option ${unknown[0]} (stats takes --json)`);
  const pos = argv.filter((a) => !a.startsWith('-'));
  if (!help && pos.length !== 1) throw new UsageError('stats needs exactly one MOUNTPOINT');
  return { mountpoint: pos[0] ?? '', json, help };
}
