// `fuse-kfunc selftest` tested as a user runs it: the real CLI in a child process, after
// npm test's main boot, against the build npm test just used. Two short boots (a filter,
// another bzImage); the listing and a wrong name boot nothing. One TAP result per check.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { tapWriter } from './tap.ts';
import type { Artifacts } from '../kernel/build.ts';

interface Run { code: number; out: string; stdout: string }

function cli(repo: string, args: string[]): Run {
  const r = spawnSync(process.execPath, [join(repo, 'bin/fuse-kfunc.js'), 'selftest', ...args], {
    cwd: repo, encoding: 'utf8', maxBuffer: 64 << 20, timeout: 20 * 60_000,
  });
  return { code: r.status ?? -1, out: `${r.stdout ?? ''}${r.stderr ?? ''}`, stdout: r.stdout ?? '' };
}

const lastLine = (out: string) => out.trimEnd().split('\n').pop() ?? '';

export function selftestCliTap(repo: string, a: Artifacts): string {
  const { check, text } = tapWriter();

  const list = cli(repo, ['--list']);
  const names = list.out.split('\n').filter((l) => /^\w+(\.\w+)+$/.test(l));
  check(list.code === 0 && names.includes('fbt.read_gap_zeroed') && !/==> booting/.test(list.out),
    `selftest --list prints the names without booting (${names.length})`, list.out);

  const wrong = cli(repo, ['no_such_selftest']);
  check(wrong.code === 2 && /unknown selftest "no_such_selftest".*--list/.test(wrong.out) && !/==> booting/.test(wrong.out),
    'selftest NAME refuses an unknown name before booting', wrong.out);

  const want = names.filter((x) => /^global\.verifier_rejects_/.test(x)).length;
  const filtered = cli(repo, ['--filter', 'verifier_rejects_*']);
  check(filtered.code === 0 && want > 0 && new RegExp(`^1\\.\\.${want}$`, 'm').test(filtered.out) &&
    lastLine(filtered.stdout) === `${want} passed, 0 failed`,
    `selftest --filter runs exactly the ${want} matching tests in one boot`, filtered.out);

  const other = cli(repo, ['--kernel', a.bzImage, 'read_gap_zeroed']);
  check(other.code === 0 && other.out.includes(a.bzImage) && /^1\.\.1$/m.test(other.out) &&
    lastLine(other.stdout) === '1 passed, 0 failed',
    'selftest --kernel PATH boots that bzImage, names it, runs the named test', other.out);

  return text();
}
