// The hot path's attributes (statx into the reply, statx.ts) against the reference path
// (node:fs BigIntStats -> toAttr -> the generic struct encoder): byte for byte, for every
// kind of file, with nanosecond times and sizes past 4 GiB.
import test from 'ava';
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { statKey, toAttr } from '../../src/fuse/attr.ts';
import { encodeAttrOut, encodeAttrOutWith, encodeEntryOut, encodeEntryOutWith } from '../../src/fuse/protocol.ts';
import { statxFd, statxPath, sxAttrInto, sxKey } from '../../src/fuse/statx.ts';
import * as libc from '../../src/fuse/libc.ts';

const dir = fs.mkdtempSync(join(tmpdir(), 'statx-'));
const files: Record<string, string> = {
  file: join(dir, 'file'), big: join(dir, 'big'), dir: join(dir, 'sub'), link: join(dir, 'link'), fifo: join(dir, 'fifo'),
};
fs.writeFileSync(files.file!, 'hello');
fs.writeFileSync(files.big!, '');
fs.truncateSync(files.big!, 5 * 2 ** 30 + 123); // sparse: a size above 32 bits
fs.mkdirSync(files.dir!, { mode: 0o2755 });
fs.symlinkSync('file', files.link!);
libc.mknod(files.fifo!, 0o10640, 0);
libc.utimensat(files.file!, { sec: 1_700_000_000n, nsec: 123_456_789 }, { sec: 1_600_000_000n, nsec: 987_654_321 });

for (const [kind, p] of Object.entries(files)) {
  test(`${kind}: key, entry and attr replies equal the reference encoding`, (t) => {
    const st = fs.lstatSync(p, { bigint: true });
    const sx = statxPath(p)!;
    t.is(sxKey(sx), statKey(st));
    const attr = toAttr(st);
    t.deepEqual(encodeEntryOutWith(42, 1.5, 0.25, sxAttrInto),
      encodeEntryOut({ nodeid: 42, entryValid: 1.5, attrValid: 0.25, attr }));
    t.deepEqual(encodeAttrOutWith(3, sxAttrInto), encodeAttrOut(3, attr));
  });
}

test('by fd: the same attributes as by path', (t) => {
  const fd = fs.openSync(files.file!, 'r');
  try {
    statxFd(fd);
    const byFd = encodeAttrOutWith(0, sxAttrInto);
    t.deepEqual(byFd, encodeAttrOut(0, toAttr(fs.fstatSync(fd, { bigint: true }))));
  } finally {
    fs.closeSync(fd);
  }
});

test('a missing name is null (no exception); other failures are errors with their code', (t) => {
  t.is(statxPath(join(dir, 'nope')), null);
  t.throws(() => statxPath(join(files.file!, 'below')), { code: 'ENOTDIR' });
});
