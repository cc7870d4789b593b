// Which checkpatch rules a patch of the series may break: FILE_PATH_CHANGES only where
// MAINTAINERS already lists every file the patch adds or deletes.
import test from 'ava';
import { addedOrDeleted, ignoredFor, maintained } from '../../src/testing/checkpatch.ts';

const MAINTAINERS = `FUSE BPF OPS
L:\tbpf@vger.kernel.org
F:\tDocumentation/filesystems/fuse-bpf-ops.rst
F:\tfs/bpf_vfs_kfuncs.c
F:\ttools/testing/selftests/filesystems/fuse_bpf/
F:\tinclude/linux/bpf_vfs*.h
`;

const patch = (files: string[], kind = 'new') => files.map((f) =>
  `diff --git a/${f} b/${f}\n${kind} file mode 100644\nindex 0000000..e69de29\n--- /dev/null\n+++ b/${f}\n@@ -0,0 +1 @@\n+x\n`).join('');

test('the files a patch creates or deletes, not those it changes', (t) => {
  const p = patch(['a/new.c']) + 'diff --git a/b/old.c b/b/old.c\nindex 1..2 100644\n--- a/b/old.c\n+++ b/b/old.c\n' + patch(['c/gone.c'], 'deleted');
  t.deepEqual(addedOrDeleted(p), ['a/new.c', 'c/gone.c']);
});

test('F: patterns: a directory, a glob, a file', (t) => {
  t.true(maintained(MAINTAINERS, 'tools/testing/selftests/filesystems/fuse_bpf/progs/x.bpf.c'));
  t.true(maintained(MAINTAINERS, 'include/linux/bpf_vfs.h'));
  t.true(maintained(MAINTAINERS, 'fs/bpf_vfs_kfuncs.c'));
  t.false(maintained(MAINTAINERS, 'fs/bpf_vfs_kfuncs.h'));
  t.false(maintained(MAINTAINERS, 'include/linux/bpf_vfs/x.h'));
  t.false(maintained(MAINTAINERS, 'tools/testing/selftests/filesystems/fuse_bpfx/a.c'));
});

test('FILE_PATH_CHANGES is ignored only when every added file is listed', (t) => {
  t.deepEqual(ignoredFor(patch(['tools/testing/selftests/filesystems/fuse_bpf/settings']), MAINTAINERS), ['ENOSYS', 'UNKNOWN_COMMIT_ID', 'FILE_PATH_CHANGES']);
  t.deepEqual(ignoredFor(patch(['tools/testing/selftests/filesystems/fuse_bpf/settings', 'fs/new.c']), MAINTAINERS), ['ENOSYS', 'UNKNOWN_COMMIT_ID']);
  t.deepEqual(ignoredFor('diff --git a/x b/x\nindex 1..2\n', MAINTAINERS), ['ENOSYS', 'UNKNOWN_COMMIT_ID']);
});
