// The kernel work tree: a git repo of the pristine base with the series applied, where
// developers edit and commit; `export` turns its commits back into kernel-patch/.
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { capture, runLogged, CommandError } from '../util/exec.ts';
import { cachePaths } from '../util/paths.ts';
import { checkTarball, readBase } from './base.ts';
import { readSeries, seriesHash } from './series.ts';
import { mergeCoverLetter } from './cover-letter.ts';

export const AUTHOR = 'fuse-kfunc developers <devel@fuse-kfunc.invalid>';
const BASE_TAG = 'fuse-kfunc-base';

/** What the work tree was last synchronised with (written by prepare and export). */
interface Marker {
  applied: string;     // commit at which the tree matched kernel-patch/
  seriesHash: string;  // hash of kernel-patch/ series at that moment
}

const markerFile = (wt: string) => join(wt, '.git', 'fuse-kfunc.json');

function git(wt: string, ...args: string[]): string {
  return capture('git', ['-C', wt, ...args], {
    env: { ...process.env, GIT_AUTHOR_NAME: 'fuse-kfunc developers', GIT_AUTHOR_EMAIL: 'devel@fuse-kfunc.invalid',
      GIT_COMMITTER_NAME: 'fuse-kfunc developers', GIT_COMMITTER_EMAIL: 'devel@fuse-kfunc.invalid' },
  }).trim();
}

function readMarker(wt: string): Marker | undefined {
  try { return JSON.parse(readFileSync(markerFile(wt), 'utf8')); } catch { return undefined; }
}

function writeMarker(wt: string, m: Marker): void {
  writeFileSync(markerFile(wt), JSON.stringify(m, null, 2) + '\n');
}

export interface WorktreeStatus {
  path: string;
  exists: boolean;
  /** kernel-patch/ changed since the tree was prepared or exported (e.g. after git pull). */
  seriesChanged: boolean;
  unexportedCommits: string[];
  uncommitted: string[];
  /** Work that `prepare` would destroy. */
  dirty: boolean;
}

export function worktreeStatus(repo: string, cache?: string): WorktreeStatus {
  const wt = cachePaths(cache).worktree;
  const st: WorktreeStatus = { path: wt, exists: false, seriesChanged: false, unexportedCommits: [], uncommitted: [], dirty: false };
  if (!existsSync(join(wt, '.git'))) return st;
  const m = readMarker(wt);
  st.exists = true;
  if (!m) {
    st.seriesChanged = true;
    return st;
  }
  st.seriesChanged = m.seriesHash !== seriesHash(readSeries(repo));
  const log = git(wt, 'log', '--format=%h %s', `${m.applied}..HEAD`);
  st.unexportedCommits = log ? log.split('\n') : [];
  // Not through git(): its trim would eat the leading status column.
  const porcelain = capture('git', ['-C', wt, 'status', '--porcelain', '--untracked-files=normal']);
  st.uncommitted = porcelain.split('\n').filter(Boolean);
  st.dirty = st.unexportedCommits.length > 0 || st.uncommitted.length > 0;
  return st;
}

/**
 * Create (or re-create) the work tree: pristine base committed and tagged, series applied
 * with `git am`. Refuses to throw away unexported work unless forced.
 */
export async function prepare(repo: string, opts: { force?: boolean; cache?: string } = {}): Promise<string> {
  const cp = cachePaths(opts.cache);
  const wt = cp.worktree;
  const base = readBase(repo);
  const check = checkTarball(base);
  if (!check.found) throw new Error(check.message);
  process.stderr.write(`${check.ok ? '' : 'warning: '}${check.message}\n`);

  const st = worktreeStatus(repo, opts.cache);
  if (st.dirty && !opts.force) {
    throw new Error(`the work tree ${wt} holds work not exported to kernel-patch/:\n` +
      [...st.unexportedCommits.map((c) => `  commit ${c}`), ...st.uncommitted.slice(0, 10).map((u) => `  edit   ${u}`)].join('\n') +
      '\nRun `fuse-kfunc kernel export` to keep it, or `fuse-kfunc kernel prepare --force` to discard it.');
  }
  mkdirSync(cp.logs, { recursive: true });
  const log = join(cp.logs, 'prepare.log');

  const haveBase = st.exists && (() => { try { git(wt, 'rev-parse', '-q', '--verify', `refs/tags/${BASE_TAG}`); return true; } catch { return false; } })();
  if (haveBase) {
    // Reuse the committed base: reset is seconds, re-extracting is a minute.
    try { git(wt, 'am', '--abort'); } catch { /* no am in progress */ }
    git(wt, 'checkout', '-q', '-f', '-B', 'work', BASE_TAG);
    git(wt, 'clean', '-qfdx');
  } else {
    rmSync(wt, { recursive: true, force: true });
    const tmp = `${wt}.new`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    await runLogged('tar', ['-xJf', base.tarball, '-C', tmp, '--strip-components=1'], { log, phase: 'extract base tarball' });
    git(tmp, 'init', '-q', '-b', 'work');
    git(tmp, 'config', 'user.name', 'fuse-kfunc developers');
    git(tmp, 'config', 'user.email', 'devel@fuse-kfunc.invalid');
    git(tmp, 'config', 'core.autocrlf', 'false');
    git(tmp, 'config', 'gc.auto', '0');
    await runLogged('git', ['-C', tmp, 'add', '-A', '-f'], { log, phase: 'git add base' });
    await runLogged('git', ['-C', tmp, 'commit', '-q', '--no-verify', '-m', `Linux ${check.found} (${base.package} ${base.packageVersion})`],
      { log, phase: 'commit base', env: { ...process.env, GIT_AUTHOR_NAME: 'fuse-kfunc developers', GIT_AUTHOR_EMAIL: 'devel@fuse-kfunc.invalid', GIT_COMMITTER_NAME: 'fuse-kfunc developers', GIT_COMMITTER_EMAIL: 'devel@fuse-kfunc.invalid', GIT_AUTHOR_DATE: '2000-01-01T00:00:00Z', GIT_COMMITTER_DATE: '2000-01-01T00:00:00Z' } });
    git(tmp, 'tag', BASE_TAG);
    renameSync(tmp, wt);
  }

  const patches = readSeries(repo);
  for (const p of patches) {
    try {
      git(wt, 'am', '-q', '--3way', '--keep-cr', join(repo, 'kernel-patch', p.name));
    } catch (e) {
      try { git(wt, 'am', '--abort'); } catch { /* ignore */ }
      throw new CommandError(`kernel-patch/${p.name} does not apply to Linux ${check.found} ` +
        `(work tree ${wt}):\n${(e as Error).message}\nFix the patch in the work tree and export the series again.`);
    }
  }
  writeMarker(wt, { applied: git(wt, 'rev-parse', 'HEAD'), seriesHash: seriesHash(patches) });
  process.stderr.write(`work tree ready: ${wt} (${patches.length} patch${patches.length === 1 ? '' : 'es'} applied on ${BASE_TAG})\n`);
  return wt;
}

const PATCH_RE = /^\d{4}-.*\.patch$/;
const COVER = '0000-cover-letter.patch';

/** Write the work tree's commits back into kernel-patch/ as a format-patch series. */
export function exportSeries(repo: string, opts: { cache?: string } = {}): { written: string[]; removed: string[] } {
  const wt = cachePaths(opts.cache).worktree;
  const st = worktreeStatus(repo, opts.cache);
  if (!st.exists) throw new Error(`no work tree at ${wt}: run \`fuse-kfunc kernel prepare\` first`);
  if (st.uncommitted.length) {
    throw new Error(`the work tree has uncommitted edits; commit them first (git -C ${wt} commit -a):\n` +
      st.uncommitted.slice(0, 10).map((u) => `  ${u}`).join('\n'));
  }
  const count = Number(git(wt, 'rev-list', '--count', `${BASE_TAG}..HEAD`));
  const dir = join(repo, 'kernel-patch');
  const tmp = mkdtempSync(join(tmpdir(), 'fuse-kfunc-export-'));
  try {
    if (count > 0) {
      // The round of the series ("PATCH v2"), if kernel-patch/subject-prefix names one.
      const pf = join(dir, 'subject-prefix');
      const prefix = existsSync(pf) ? readFileSync(pf, 'utf8').trim() : '';
      // --zero-commit and no signature keep re-exports of unchanged commits byte-identical.
      git(wt, 'format-patch', '-q', '--zero-commit', '--no-signature', '--abbrev=9', '--cover-letter', '--base', BASE_TAG,
        ...(prefix ? [`--subject-prefix=${prefix}`] : []), '-o', tmp, `${BASE_TAG}..HEAD`);
    }
    const fresh = readdirSync(tmp).filter((f) => PATCH_RE.test(f)).sort();
    const old = readdirSync(dir).filter((f) => PATCH_RE.test(f));
    const removed = old.filter((f) => !fresh.includes(f));
    for (const f of removed) rmSync(join(dir, f));
    for (const f of fresh) {
      let text = readFileSync(join(tmp, f), 'utf8');
      if (f === COVER && existsSync(join(dir, COVER))) text = mergeCoverLetter(readFileSync(join(dir, COVER), 'utf8'), text);
      writeFileSync(join(dir, f), text);
    }
    const series = fresh.filter((f) => f !== COVER);
    writeFileSync(join(dir, 'series'), series.map((s) => s + '\n').join(''));
    writeMarker(wt, { applied: git(wt, 'rev-parse', 'HEAD'), seriesHash: seriesHash(readSeries(repo)) });
    return { written: fresh, removed };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
