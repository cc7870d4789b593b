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

export interface FragmentFile {
  file: string;   // as named in messages, e.g. kernel-patch/debug.fragment
  text: string;
}

/**
 * Several fragments applied in order, as merge_config.sh does: a later fragment's value
 * of an option replaces an earlier one's, so only the last is checked, and each option
 * remembers which file asked for it (the message must name the file to edit).
 */
export function mergeFragments(files: FragmentFile[]): (FragmentOption & { file: string })[] {
  const last = new Map<string, FragmentOption & { file: string }>();
  for (const f of files) {
    let opts: FragmentOption[];
    try { opts = parseFragment(f.text); } catch (e) { throw new Error(`${f.file}: ${(e as Error).message}`); }
    for (const o of opts) { last.delete(o.name); last.set(o.name, { ...o, file: f.file }); }
  }
  return [...last.values()];
}

/** checkConfig over merged fragments; each line names the fragment that asked. */
export function checkFragments(files: FragmentFile[], dotConfig: string): string[] {
  const wanted = mergeFragments(files);
  const byName = new Map(wanted.map((w) => [w.name, w.file]));
  return checkConfig(wanted, dotConfig).map((m) => `${byName.get(m.slice(0, m.indexOf(':')))}: ${m}`);
}
