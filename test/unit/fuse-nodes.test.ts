import test from 'ava';
import { NodeTable } from '../../src/fuse/nodes.ts';

test('lookup counts: remember adds, forget removes, root is permanent', (t) => {
  const n = new NodeTable('1:2');
  const a = n.remember('1:10', 'a');
  t.is(a.id, 2);
  t.is(n.remember('1:10', 'a').id, 2, 'same inode, same nodeid');
  t.is(a.nlookup, 2);
  n.forget(2, 1);
  t.is(n.size, 2);
  n.forget(2, 1);
  t.is(n.size, 1, 'dropped at zero');
  n.forget(1, 100);
  t.is(n.path(1), '');
  t.throws(() => n.get(2), { message: /unknown nodeid 2/ });
});

test('open handles keep a forgotten node alive', (t) => {
  const n = new NodeTable('r');
  const a = n.remember('k', 'f');
  a.openCount++;
  n.forget(a.id, 1);
  t.is(n.get(a.id), a);
  a.openCount--;
  n.maybeDrop(a);
  t.is(n.size, 1);
});

test('hard links share a nodeid and survive unlink of the first name', (t) => {
  const n = new NodeTable('r');
  const a = n.remember('k', 'x');
  n.remember('k', 'y');
  t.deepEqual(a.paths, ['y', 'x']);
  n.removePath('y');
  t.is(n.path(a.id), 'x');
  n.removePath('x');
  t.throws(() => n.path(a.id), { message: /no remaining name/ });
  // A new file that reuses the inode number gets a fresh nodeid.
  t.not(n.remember('k', 'z').id, a.id);
});

test('renaming a directory rewrites the paths below it', (t) => {
  const n = new NodeTable('r');
  const d = n.remember('d', 'dir');
  const f = n.remember('f', 'dir/sub/f');
  const o = n.remember('o', 'dir2/f');
  n.renamePath('dir', 'moved');
  t.is(n.path(d.id), 'moved');
  t.is(n.path(f.id), 'moved/sub/f');
  t.is(n.path(o.id), 'dir2/f', 'a sibling with a common prefix is untouched');
  n.exchangePaths('moved', 'dir2');
  t.is(n.path(f.id), 'dir2/sub/f');
  t.is(n.path(o.id), 'moved/f');
});
