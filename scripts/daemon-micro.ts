// The server's pieces timed in-process, without FUSE (docs/fuse-server.md: what is left per
// request). Run in the guest: fuse-kfunc vm run --icount -- node --import tsx scripts/daemon-micro.ts
import fs from 'node:fs';
import { FuseDevice } from '../src/fuse/dev.ts';
import { Session } from '../src/fuse/session.ts';
import { createPassthroughFs, PASSTHROUGH_FS_FLAGS } from '../src/fuse/passthrough-fs.ts';
import { BodyReader, FLUSH_IN, GETATTR_IN, GETXATTR_IN, IN_HEADER, INIT_IN, Op, encodeStruct, parseRequest, replyIov } from '../src/fuse/protocol.ts';
import { statxPath } from '../src/fuse/statx.ts';

const dir = fs.mkdtempSync('/tmp/daemon-micro-');
fs.writeFileSync(`${dir}/file`, 'x'.repeat(100));
const out = fs.openSync('/dev/null', 'w');
const dev = FuseDevice.forThread(out, new SharedArrayBuffer(256));
const s = new Session(dev, { maxPages: 256, wantFlags: PASSTHROUGH_FS_FLAGS, requirePassthrough: false });
const c = (await createPassthroughFs(s, dev, dir, { passthrough: false, entryTimeout: 0, attrTimeout: 0 })).ctx;
const req = (opcode: number, nodeid: number, body: Buffer) => Buffer.concat([encodeStruct(IN_HEADER, {
  len: IN_HEADER.size + body.length, opcode, unique: 7n, nodeid: BigInt(nodeid), uid: 0, gid: 0, pid: 1, total_extlen: 0, padding: 0,
}), body]);
s.receive(req(Op.INIT, 0, encodeStruct(INIT_IN, { major: 7, minor: 41, max_readahead: 0, flags: 0, flags2: 0 })));
s.receive(req(Op.LOOKUP, 1, Buffer.from('file\0')));
const getattr = req(Op.GETATTR, 2, encodeStruct(GETATTR_IN, { getattr_flags: 0, dummy: 0, fh: 0n }));
const reply = c.getattrReply(2, undefined);
const time = (name: string, f: () => void) => {
  const N = 20000;
  for (let i = 0; i < N; i++) f(); // warm up
  const t = process.hrtime.bigint();
  for (let i = 0; i < N; i++) f();
  console.log(name.padEnd(24), (Number(process.hrtime.bigint() - t) / N / 1000).toFixed(2), 'µs');
};
time('GETATTR, whole', () => s.receive(getattr));
const lookup = req(Op.LOOKUP, 1, Buffer.from('file\0'));
const negative = req(Op.LOOKUP, 1, Buffer.from('nothing\0'));
const getxattr = req(Op.GETXATTR, 2, Buffer.concat([encodeStruct(GETXATTR_IN, { size: 0, padding: 0 }), Buffer.from('security.capability\0')]));
const flush = req(Op.FLUSH, 2, encodeStruct(FLUSH_IN, { fh: 12345, unused: 0, padding: 0, lock_owner: 0n }));
time('LOOKUP, whole', () => s.receive(lookup));
time('LOOKUP ENOENT, whole', () => s.receive(negative));
time('GETXATTR ENODATA, whole', () => s.receive(getxattr));
time('FLUSH EBADF, whole', () => s.receive(flush));
time('parse the request', () => parseRequest(getattr));
time('decode the body', () => new BodyReader(getattr.subarray(IN_HEADER.size), 'GETATTR').struct(GETATTR_IN));
time('statx (koffi)', () => statxPath(`${dir}/file`));
time('GETATTR reply', () => c.getattrReply(2, undefined));
time('LOOKUP reply', () => c.lookupEntry('file', `${dir}/file`));
time('reply header', () => replyIov(7n, 0, [reply]));
time('write one buffer', () => fs.writeSync(out, reply));
