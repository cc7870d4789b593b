// The config fragment and the check that Kconfig kept every option it asks for.

export interface FragmentOption {
  name: string;
  value: string; // 'y', 'm', a number, a quoted string, or 'n' for "# CONFIG_X is not set"
}

export function parseFragment(text: string): FragmentOption[] {
  const opts: FragmentOption[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    const off = /^# (CONFIG_\w+) is not set$/.exec(line);
    if (off) { opts.push({ name: off[1], value: 'n' }); continue; }
    if (!line || line.startsWith('#')) continue;
    const m = /^(CONFIG_\w+)=(.*)$/.exec(line);
    if (!m) throw new Error(`config.fragment: cannot parse "${line}" (expected CONFIG_NAME=value)`);
    opts.push({ name: m[1], value: m[2] });
  }
  return opts;
}

/** Options whose final value differs from what the fragment asked for. */
export function checkConfig(wanted: FragmentOption[], dotConfig: string): string[] {
  const have = new Map<string, string>();
  for (const line of dotConfig.split('\n')) {
    const m = /^(CONFIG_\w+)=(.*)$/.exec(line);
    if (m) have.set(m[1], m[2]);
  }
  const out: string[] = [];
  for (const w of wanted) {
    const got = have.get(w.name) ?? 'n';
    if (got !== w.value) out.push(`${w.name}: wanted ${w.value}, got ${got === 'n' ? 'not set' : got}`);
  }
  return out;
}
