// `fuse-kfunc mount` and `fuse-kfunc stats` arguments, parsed without side effects.
import { UsageError } from '../cli/args.ts';
import { builtinPolicies } from '../policy/spec.ts';
import { parseGlobal, type GlobalValues } from '../bpf/globals.ts';

export interface MountArgs {
  backings: string[];
  mountpoint: string;
  program?: string;
  /** --policy NAME and that policy's parameters (--chunk 64k ...), unvalidated. */
  policy?: string;
  policyParams: Record<string, string>;
  structOps?: string;
  userspace: boolean;
  passthrough: boolean;
  timeout?: number;
  /** --set NAME=VALUE: global variables of --program, set before load. */
  globals: GlobalValues;
  /** --names kernel|daemon: who serves a policy's names. */
  names?: 'kernel' | 'daemon';
  help: boolean;
}

const VALUE = new Set(['program', 'struct-ops', 'timeout', 'policy', 'names']);

/** Whether --name is a parameter of a built-in policy (their modules declare them). */
function isBuiltinParam(name: string): boolean {
  return builtinPolicies().some((p) => p.params.some((q) => q.name === name));
}
const BOOL = new Set(['userspace', 'passthrough', 'help']);

/** --policy names a module file rather than a built-in policy. */
export function isPolicyFile(v: string): boolean {
  return v.includes('/') || v.endsWith('.ts');
}

export function parseMountArgs(argv: string[]): MountArgs {
  // A policy (a built-in's module or a file) declares its own parameters: with --policy any
  // --name VALUE is one of them, checked against the module's declarations.
  const pi = argv.findIndex((a) => a === '--policy' || a.startsWith('--policy='));
  const moduleParams = pi >= 0;
  const pos: string[] = [];
  const f = new Map<string, string | true>();
  const globals: GlobalValues = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '-h') { f.set('help', true); continue; }
    if (!a.startsWith('--')) { pos.push(a); continue; }
    const eq = a.indexOf('=');
    const name = eq > 0 ? a.slice(2, eq) : a.slice(2);
    if (name === 'set') {
      // --set NAME=VALUE (the first '=' after --set belongs to the assignment)
      const v = eq > 0 ? a.slice(eq + 1) : argv[++i];
      const m = /^([A-Za-z_]\w*)=(.*)$/.exec(v ?? '');
      const value = m ? parseGlobal(m[2]!) : undefined;
      if (!m || value === undefined) throw new UsageError(`--set wants NAME=VALUE, a global variable of --program and a non-negative integer or bytes:HEX (e.g. --set passthrough=1), got "${v ?? ''}"`);
      globals[m[1]!] = value;
      continue;
    }
    if (VALUE.has(name) || (moduleParams && !BOOL.has(name))) {
      const v = eq > 0 ? a.slice(eq + 1) : argv[++i];
      if (v === undefined || v === '') throw new UsageError(`--${name} needs a value`);
      f.set(name, v);
    } else if (BOOL.has(name) && eq < 0) f.set(name, true);
    else if (isBuiltinParam(name)) throw new UsageError(`--${name} is a policy parameter: add --policy NAME`);
    else throw new UsageError(`unknown option ${a} (mount takes --program, --set, --policy, --names, --struct-ops, --userspace, --passthrough, --timeout)`);
  }
  const help = f.has('help');
  if (help) return { backings: [], mountpoint: '', userspace: false, passthrough: false, help, policyParams: {}, globals };
  if (pos.length < 2) throw new UsageError('mount needs BACKING... MOUNTPOINT (at least one backing directory and the mountpoint)');
  const program = f.get('program') as string | undefined;
  const userspace = f.has('userspace');
  const passthrough = f.has('passthrough');
  const modes = [program !== undefined, userspace, passthrough].filter(Boolean).length;
  if (userspace && modes > 1) throw new UsageError('--userspace excludes --program and --passthrough');
  if (program !== undefined && passthrough) throw new UsageError('--program and --passthrough exclude each other (upstream passthrough would bypass the program for READ/WRITE)');
  if (f.has('struct-ops') && program === undefined) throw new UsageError('--struct-ops names a map of --program');
  if (Object.keys(globals).length && program === undefined) throw new UsageError('--set sets a global variable of --program: add --program FILE');
  const policy = f.get('policy') as string | undefined;
  const policyParams: Record<string, string> = {};
  for (const [k, v] of f) {
    if (moduleParams && !VALUE.has(k) && !BOOL.has(k)) policyParams[k] = v as string;
  }
  if (policy === undefined && Object.keys(policyParams).length) {
    throw new UsageError(`--${Object.keys(policyParams)[0]} is a policy parameter: add --policy NAME`);
  }
  if (policy !== undefined && (program !== undefined || passthrough)) {
    throw new UsageError('--policy brings its own program: it excludes --program and --passthrough (add --userspace for its daemon-only reference)');
  }
  const names = f.get('names') as string | undefined;
  if (names !== undefined && names !== 'kernel' && names !== 'daemon') throw new UsageError(`--names is kernel or daemon, got "${names}"`);
  if (names !== undefined && (policy === undefined || userspace)) {
    throw new UsageError('--names says who serves a policy\'s names: it needs --policy, and excludes --userspace (the daemon serves everything there)');
  }
  let timeout: number | undefined;
  if (f.has('timeout')) {
    timeout = Number(f.get('timeout'));
    if (!Number.isFinite(timeout) || timeout < 0) throw new UsageError(`--timeout wants seconds >= 0, got "${f.get('timeout')}"`);
  }
  return {
    backings: pos.slice(0, -1), mountpoint: pos[pos.length - 1]!, program, policy, policyParams,
    structOps: f.get('struct-ops') as string | undefined, userspace, passthrough, timeout, globals, help,
    ...(names ? { names: names as 'kernel' | 'daemon' } : {}),
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
