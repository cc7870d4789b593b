// Reading the guest's kernel console: did it boot, did the kernel complain?

export type ConsoleProblem = 'panic' | 'oops' | 'bug' | 'warn' | 'lockup' | 'boot';

export interface ConsoleReport {
  booted: boolean;           // the guest init reached the job
  problems: { kind: ConsoleProblem; line: string }[];
}

const PATTERNS: [ConsoleProblem, RegExp][] = [
  ['panic', /Kernel panic - not syncing/],
  ['oops', /\bOops: |general protection fault|unable to handle (kernel )?(NULL pointer dereference|paging request)/i],
  ['bug', /\bBUG: |kernel BUG at|UBSAN: |KASAN: |list_(add|del) corruption/],
  ['warn', /WARNING: (CPU: \d+ PID: \d+|.* at .*:\d+)|WARNING: possible (circular|recursive) locking|suspicious RCU usage/],
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
