// A tiny argument parser: flags before `--`, positionals, and the command after `--`.

export interface Parsed {
  flags: Map<string, string | true>;
  positional: string[];
  rest: string[];           // everything after `--`
}

export function parseArgs(argv: string[], valueFlags: string[] = []): Parsed {
  const flags = new Map<string, string | true>();
  const positional: string[] = [];
  let rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') { rest = argv.slice(i + 1); break; }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq > 0 ? a.slice(2, eq) : a.slice(2);
      if (eq > 0) flags.set(name, a.slice(eq + 1));
      else if (valueFlags.includes(name)) {
        const v = argv[++i];
        if (v === undefined) throw new UsageError(`--${name} needs a value`);
        flags.set(name, v);
      } else flags.set(name, true);
    } else if (a === '-h') flags.set('help', true);
    else if (a.startsWith('-j') && a.length > 2) flags.set('jobs', a.slice(2));
    else positional.push(a);
  }
  return { flags, positional, rest };
}

export class UsageError extends Error {
  constructor(msg: string) { super(msg); this.name = 'UsageError'; }
}

export function numberFlag(p: Parsed, name: string): number | undefined {
  const v = p.flags.get(name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v === true || !Number.isFinite(n) || n <= 0) throw new UsageError(`--${name} wants a positive number, got "${v}"`);
  return n;
}
