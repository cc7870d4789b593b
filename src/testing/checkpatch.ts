// Kernel style as a test: every patch of the series must be `checkpatch.pl --strict`
// clean, one TAP result per patch, so a style regression fails `npm test` like a bug.
// Two rules are ignored. ENOSYS ("means 'invalid syscall nr' and nothing else", a rule
// checkpatch itself says has false positives): FUSE's protocol answers "not implemented"
// with it, fs/fuse of 6.12 compares against it 22 times (`git grep -c "== -ENOSYS" fuse-kfunc-base --
// fs/fuse` in the kernel work tree), and the hook has to as well. UNKNOWN_COMMIT_ID: the work
// tree is Debian's source tarball, one commit without upstream history, so checkpatch cannot
// look up the commit a `Fixes:` tag names; the tags' ids and subjects were checked against the
// public record instead (docs/kernel-v2.md, the status table).
export const CHECKPATCH_IGNORE = ['ENOSYS', 'UNKNOWN_COMMIT_ID'];
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { seriesFiles } from '../kernel/series.ts';

/** Files a patch creates or deletes. */
export function addedOrDeleted(patch: string): string[] {
  const out: string[] = [];
  let cur: string | undefined;
  for (const l of patch.split('\n')) {
    const d = /^diff --git a\/(\S+) b\/(\S+)$/.exec(l);
    if (d) { cur = d[2]; continue; }
    if (cur && /^(new|deleted) file mode /.test(l)) { out.push(cur); cur = undefined; }
  }
  return out;
}

/** Whether an F: pattern of MAINTAINERS covers @file (a directory ending in '/', a glob, or the file itself). */
export function maintained(maintainers: string, file: string): boolean {
  return [...maintainers.matchAll(/^F:\s+(\S+)\s*$/gm)].some(([, pat]) => {
    if (pat.endsWith('/')) return file.startsWith(pat);
    const re = new RegExp(`^${pat.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]')}$`);
    return re.test(file);
  });
}

/**
 * The rules ignored for one patch: CHECKPATCH_IGNORE, and FILE_PATH_CHANGES ("does
 * MAINTAINERS need updating?", which checkpatch asks of every patch adding a file without
 * touching MAINTAINERS) when the work tree's MAINTAINERS already covers every file it adds
 * or deletes, e.g. a new selftest program in a listed directory.
 */
export function ignoredFor(patch: string, maintainers: string): string[] {
  const files = addedOrDeleted(patch);
  const covered = files.length > 0 && files.every((f) => maintained(maintainers, f));
  return covered ? [...CHECKPATCH_IGNORE, 'FILE_PATH_CHANGES'] : CHECKPATCH_IGNORE;
}

export function checkpatchTap(repo: string, worktree: string): string {
  const patches = seriesFiles(repo);
  const out = [`1..${patches.length}`];
  const mf = join(worktree, 'MAINTAINERS');
  const maintainers = existsSync(mf) ? readFileSync(mf, 'utf8') : '';
  patches.forEach((p, i) => {
    const file = join(repo, 'kernel-patch', p);
    const ignore = ignoredFor(readFileSync(file, 'utf8'), maintainers);
    const r = spawnSync('perl', [join(worktree, 'scripts/checkpatch.pl'), '--strict', '--no-signoff', '--color=never',
      '--show-types', `--ignore=${ignore.join(',')}`, file], {
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
