// Reading the guest's kernel console: did it boot, did the kernel complain?

export type ConsoleProblem = 'panic' | 'oops' | 'bug' | 'lockdep' | 'warn' | 'lockup' | 'boot';

export interface ConsoleReport {
  booted: boolean;           // the guest init reached the job
  problems: { kind: ConsoleProblem; line: string }[];
}

const PATTERNS: [ConsoleProblem, RegExp][] = [
  ['panic', /Kernel panic - not syncing/],
  ['oops', /\bOops: |general protection fault|unable to handle (kernel )?(NULL pointer dereference|paging request)/i],
  ['bug', /\bBUG: |kernel BUG at|UBSAN: |KASAN: |list_(add|del) corruption|list_add double add/],
  // Lockdep's reports (debug kernel) carry no CPU/line like a WARN_ON: match their headers.
  ['lockdep', /WARNING: (possible (circular|recursive) locking|inconsistent lock state|possible irq lock inversion|bad unlock balance|held lock freed|lock held when returning to user space|lock held at task exit|suspicious RCU usage|Nested lock was not taken|bad contention detected|.* still has locks held)|INFO: trying to register non-static key/],
  ['warn', /WARNING: (CPU: \d+ PID: \d+|.* at .*:\d+)|suspicious RCU usage/],
  ['lockup', /soft lockup|hard LOCKUP|rcu_\w+ detected stalls|INFO: task .* blocked for more than/],
  ['boot', /VFS: Unable to mount root fs|Kernel panic - not syncing: No working init found|Failed to execute .*init/],
];

export const BOOT_MARK = 'fuse-kfunc-guest: running job';

export function parseConsole(text: string): ConsoleReport {
  const problems: ConsoleReport['problems'] = [];
  for (const line of text.split('\n')) {
    for (const [kind, re] of PATTERNS) {
      if (re.test(line)) { problems.push({ kind, line: line.trim() }); break; }
    }
  }
  return { booted: text.includes(BOOT_MARK), problems };
}

export function tail(text: string, n: number): string[] {
  const lines = text.replace(/\r/g, '').split('\n');
  while (lines.length && !lines[lines.length - 1].trim()) lines.pop();
  return lines.slice(-n);
}

/** A report as printed: from its first line to its end marker (or a bounded length). */
export interface ReportBlock { kind: ConsoleProblem; lines: string[] }

const stripTime = (l: string) => l.replace(/^\[\s*\d+\.\d+\]\s?/, '');

/**
 * The whole of each report the console check found: a WARN ends at "---[ end trace",
 * KASAN and lockdep reports at their closing "=====" rule; anything else after `max` lines.
 * A problem line inside an earlier block (a BUG inside a KASAN report) adds no block.
 */
export function reportBlocks(text: string, problems: { kind: ConsoleProblem; line: string }[], max = 80): ReportBlock[] {
  const lines = text.replace(/\r/g, '').split('\n');
  const out: ReportBlock[] = [];
  let covered = -1;
  let from = 0;
  for (const p of problems) {
    const i = lines.findIndex((l, j) => j >= from && l.trim() === p.line);
    if (i < 0) continue;
    from = i + 1;
    if (i <= covered) continue;
    // Include the rule above a KASAN/lockdep header, so the block reads as printed.
    const start = i > 0 && /^=+$/.test(stripTime(lines[i - 1]).trim()) ? i - 1 : i;
    let end = Math.min(lines.length - 1, i + max - 1);
    for (let j = i + 1; j <= end; j++) {
      const l = stripTime(lines[j]).trim();
      if (/---\[ end trace/.test(l) || (/^={10,}$/.test(l) && j > i + 2)) { end = j; break; }
    }
    out.push({ kind: p.kind, lines: lines.slice(start, end + 1) });
    covered = end;
  }
  return out;
}
