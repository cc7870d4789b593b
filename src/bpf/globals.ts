// Values of a BPF object's globals as they travel: set by name before load
// (BpfObjectSpec.setGlobal), carried in JSON between mount() and the daemon, and written
// on the command line (--set NAME=VALUE). No libbpf here, so the CLI parses without it.

/** Values for setGlobal by name, as JSON carries them (bytes as number[]). */
export type GlobalValues = Record<string, number | number[]>;

/** A global's value as `--set NAME=VALUE` takes it: a number, or `bytes:HEX` (trailing zero bytes left out). */
export function formatGlobal(v: number | number[]): string {
  if (!Array.isArray(v)) return String(v);
  let end = v.length;
  while (end > 0 && v[end - 1] === 0) end--;
  return `bytes:${Buffer.from(v.slice(0, end)).toString('hex') || '00'}`;
}

/** formatGlobal's inverse; undefined when `s` is neither form. */
export function parseGlobal(s: string): number | number[] | undefined {
  if (/^(\d+|0x[0-9a-fA-F]+)$/.test(s)) return Number(s);
  const m = /^bytes:((?:[0-9a-fA-F]{2})+)$/.exec(s);
  return m ? [...Buffer.from(m[1]!, 'hex')] : undefined;
}
