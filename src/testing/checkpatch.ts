// Kernel style as a test: every patch of the series must be `checkpatch.pl --strict`
// clean, one TAP result per patch, so a style regression fails `npm test` like a bug.
// One rule is ignored: ENOSYS ("means 'invalid syscall nr' and nothing else", a rule
// checkpatch itself says has false positives). FUSE's protocol answers "not implemented"
// with it, fs/fuse of 6.12 compares against it 22 times (`git grep -c "== -ENOSYS" fuse-kfunc-base --
// fs/fuse` in the kernel work tree), and the hook has to as well.
export const CHECKPATCH_IGNORE = ['ENOSYS'];
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { seriesFiles } from '../kernel/series.ts';

export function checkpatchTap(repo: string, worktree: string): string {
  const patches = seriesFiles(repo);
  const out = [`1..${patches.length}`];
  patches.forEach((p, i) => {
    const r = spawnSync('perl', [join(worktree, 'scripts/checkpatch.pl'), '--strict', '--no-signoff', '--color=never',
      '--show-types', `--ignore=${CHECKPATCH_IGNORE.join(',')}`, join(repo, 'kernel-patch', p)], {
      cwd: worktree, encoding: 'utf8',
      // Debian's python3 (with python3-ply/-git for spdxcheck.py) before any pyenv shim.
      env: { ...process.env, PATH: `/usr/bin:${process.env.PATH ?? ''}` },
    });
    const total = /^total: .*$/m.exec(r.stdout)?.[0] ?? 'no summary';
    if (r.status === 0 && /total: 0 errors, 0 warnings, 0 checks/.test(total)) {
      out.push(`ok ${i + 1} - checkpatch --strict ${p}`);
    } else {
      out.push(`not ok ${i + 1} - checkpatch --strict ${p}: ${total}`);
      for (const l of r.stdout.split('\n').filter((x) => /^(ERROR|WARNING|CHECK):/.test(x)).slice(0, 10)) out.push(`# ${l}`);
    }
  });
  return out.join('\n') + '\n';
}
