// prepare → edit → status → export → prepare again, on a tiny fake "kernel" tarball so
// the whole git round trip runs in a second.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, readdirSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prepare, exportSeries, worktreeStatus } from '../../src/kernel/worktree.ts';
import { mergeCoverLetter } from '../../src/kernel/cover-letter.ts';

function fakeRepo(version = '117') {
  const root = mkdtempSync(join(tmpdir(), 'fk-wt-'));
  const src = join(root, 'src', 'linux-source-6.12');
  mkdirSync(join(src, 'fs', 'fuse'), { recursive: true });
  writeFileSync(join(src, 'Makefile'), `VERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = ${version}\nEXTRAVERSION =\n`);
  writeFileSync(join(src, 'fs', 'fuse', 'dev.c'), 'int fuse_simple_request(void)\n{\n\treturn 0;\n}\n');
  const tarball = join(root, 'linux.tar.xz');
  execFileSync('tar', ['-cJf', tarball, '-C', join(root, 'src'), 'linux-source-6.12']);
  const repo = join(root, 'repo');
  // tarballVersion() remembers versions in the cache dir: keep the user's cache untouched.
  process.env.FUSE_KFUNC_CACHE = join(root, 'memo-cache');
  mkdirSync(join(repo, 'kernel-patch'), { recursive: true });
  writeFileSync(join(repo, 'kernel-patch', 'BASE'), `package=linux-source-6.12\npackage_version=6.12.117-1\nkernel_version=6.12.117\ntarball=${tarball}\n`);
  writeFileSync(join(repo, 'kernel-patch', 'series'), '');
  return { repo, cache: join(root, 'cache') };
}

const quiet = () => {
  const w = process.stderr.write;
  process.stderr.write = (() => true) as any;
  return () => { process.stderr.write = w; };
};

function commitIn(wt: string, file: string, text: string, subject: string) {
  writeFileSync(join(wt, file), text);
  execFileSync('git', ['-C', wt, 'commit', '-qam', `${subject}\n\nWhy: a test.`]);
}

test.serial('prepare, edit, status, export, re-prepare round trip', async (t) => {
  const { repo, cache } = fakeRepo();
  const restore = quiet();
  try {
    const wt = await prepare(repo, { cache });
    t.true(existsSync(join(wt, 'fs/fuse/dev.c')));
    t.false(worktreeStatus(repo, cache).dirty);

    commitIn(wt, 'fs/fuse/dev.c', 'int fuse_simple_request(void)\n{\n\treturn 1;\n}\n', 'fuse: return one');
    writeFileSync(join(wt, 'Makefile'), readFileSync(join(wt, 'Makefile'), 'utf8') + '# edit\n');
    let st = worktreeStatus(repo, cache);
    t.is(st.unexportedCommits.length, 1);
    t.regex(st.unexportedCommits[0], /fuse: return one/);
    t.deepEqual(st.uncommitted, [' M Makefile']);
    t.throws(() => exportSeries(repo, { cache }), { message: /uncommitted edits/ });
    await t.throwsAsync(prepare(repo, { cache }), { message: /not exported[\s\S]*fuse: return one/ });

    execFileSync('git', ['-C', wt, 'checkout', 'Makefile']);
    const r = exportSeries(repo, { cache });
    t.deepEqual(r.written, ['0000-cover-letter.patch', '0001-fuse-return-one.patch']);
    t.is(readFileSync(join(repo, 'kernel-patch', 'series'), 'utf8'), '0001-fuse-return-one.patch\n');
    const p1 = readFileSync(join(repo, 'kernel-patch', '0001-fuse-return-one.patch'), 'utf8');
    t.regex(p1, /^From 0000000000000000000000000000000000000000 /);
    t.regex(p1, /From: fuse-kfunc developers/);
    t.false(worktreeStatus(repo, cache).dirty);

    // A hand-written cover letter survives the next export.
    const coverPath = join(repo, 'kernel-patch', '0000-cover-letter.patch');
    writeFileSync(coverPath, readFileSync(coverPath, 'utf8').replace('*** SUBJECT HERE ***', 'fuse: a BPF hook').replace('*** BLURB HERE ***', 'Why this series exists.'));
    commitIn(wt, 'fs/fuse/dev.c', 'int fuse_simple_request(void)\n{\n\treturn 2;\n}\n', 'fuse: return two');
    exportSeries(repo, { cache });
    const cover = readFileSync(coverPath, 'utf8');
    t.regex(cover, /Subject: \[PATCH 0\/2\] fuse: a BPF hook/);
    t.regex(cover, /Why this series exists\./);
    t.regex(cover, /fuse: return two/);
    t.deepEqual(readdirSync(join(repo, 'kernel-patch')).filter((f) => f.endsWith('.patch')).sort(),
      ['0000-cover-letter.patch', '0001-fuse-return-one.patch', '0002-fuse-return-two.patch']);

    // Re-export of unchanged commits is byte-identical (stable names and contents).
    const before = readFileSync(join(repo, 'kernel-patch', '0002-fuse-return-two.patch'), 'utf8');
    exportSeries(repo, { cache });
    t.is(readFileSync(join(repo, 'kernel-patch', '0002-fuse-return-two.patch'), 'utf8'), before);

    // kernel-patch/subject-prefix names the round; the hand-written subject stays.
    writeFileSync(join(repo, 'kernel-patch', 'subject-prefix'), 'PATCH v2\n');
    exportSeries(repo, { cache });
    t.regex(readFileSync(coverPath, 'utf8'), /Subject: \[PATCH v2 0\/2\] fuse: a BPF hook/);
    t.regex(readFileSync(join(repo, 'kernel-patch', '0002-fuse-return-two.patch'), 'utf8'), /Subject: \[PATCH v2 2\/2\] fuse: return two/);
    rmSync(join(repo, 'kernel-patch', 'subject-prefix'));
    exportSeries(repo, { cache });

    // Dropping a commit removes its stale patch file.
    execFileSync('git', ['-C', wt, 'reset', '-q', '--hard', 'HEAD~1']);
    t.deepEqual(exportSeries(repo, { cache }).removed, ['0002-fuse-return-two.patch']);

    // A fresh cache applies the exported series and gets the same tree.
    const cache2 = cache + '2';
    const wt2 = await prepare(repo, { cache: cache2 });
    t.is(readFileSync(join(wt2, 'fs/fuse/dev.c'), 'utf8'), readFileSync(join(wt, 'fs/fuse/dev.c'), 'utf8'));
    t.false(worktreeStatus(repo, cache2).dirty);
  } finally { restore(); }
});

test.serial('a patch that does not apply names itself; a version mismatch only warns', async (t) => {
  const { repo, cache } = fakeRepo('118');
  writeFileSync(join(repo, 'kernel-patch', '0001-bad.patch'),
    'From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\nFrom: x <x@invalid>\nDate: Thu, 1 Jan 2026 00:00:00 +0000\nSubject: [PATCH] bad\n\n---\n fs/fuse/dev.c | 2 +-\n\ndiff --git a/fs/fuse/dev.c b/fs/fuse/dev.c\n--- a/fs/fuse/dev.c\n+++ b/fs/fuse/dev.c\n@@ -1,3 +1,3 @@\n-int nothing_like_this(void)\n+int other(void)\n {\n \treturn 0;\n }\n');
  writeFileSync(join(repo, 'kernel-patch', 'series'), '0001-bad.patch\n');
  let warned = '';
  const w = process.stderr.write;
  process.stderr.write = ((s: string) => { warned += s; return true; }) as any;
  try {
    await t.throwsAsync(prepare(repo, { cache }), { message: /kernel-patch\/0001-bad\.patch does not apply/ });
  } finally { process.stderr.write = w; }
  t.regex(warned, /holds Linux 6\.12\.118, but the series was written against 6\.12\.117/);
});

test('cover letter merge keeps subject and blurb, takes the new shortlog', (t) => {
  const old = 'From 0 Mon Sep 17 00:00:00 2001\nSubject: [PATCH 0/1] My subject\n\nMy blurb\nline two\n\nA (1):\n  old\n\n a | 1 +\n';
  const gen = 'From 0 Mon Sep 17 00:00:00 2001\nSubject: [PATCH 0/2] *** SUBJECT HERE ***\n\n*** BLURB HERE ***\n\nA (2):\n  one\n  two\n\n b | 2 +\n';
  t.is(mergeCoverLetter(old, gen), 'From 0 Mon Sep 17 00:00:00 2001\nSubject: [PATCH 0/2] My subject\n\nMy blurb\nline two\n\nA (2):\n  one\n  two\n\n b | 2 +\n');
});
