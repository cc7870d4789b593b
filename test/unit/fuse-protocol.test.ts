import test from 'ava';
import * as P from '../../src/fuse/protocol.ts';
import { Session, NO_REPLY } from '../../src/fuse/session.ts';
import { FuseDevice } from '../../src/fuse/dev.ts';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { StructDef } from '../../src/fuse/layout.ts';

// Sizes derived by hand from linux-6.12 include/uapi/linux/fuse.h (field widths summed,
// padded to 8): e.g. fuse_attr = 6*8 + 10*4 = 88; fuse_entry_out = 4*8 + 2*4 + 88 = 128;
// fuse_init_out = 4*4 + 2*2 + 2*4 + 2*2 + 2*4 + 6*4 = 64; fuse_setattr_in = 2*4 + 6*8 + 8*4 = 88.
const EXPECTED_SIZES: [{ size: number; name: string }, number][] = [
  [P.ATTR, 88], [P.KSTATFS, 80], [P.FILE_LOCK, 24], [P.ENTRY_OUT, 128], [P.FORGET_IN, 8],
  [P.FORGET_ONE, 16], [P.BATCH_FORGET_IN, 8], [P.GETATTR_IN, 16], [P.ATTR_OUT, 104], [P.MKNOD_IN, 16],
  [P.MKDIR_IN, 8], [P.RENAME_IN, 8], [P.RENAME2_IN, 16], [P.LINK_IN, 8], [P.SETATTR_IN, 88],
  [P.OPEN_IN, 8], [P.CREATE_IN, 16], [P.OPEN_OUT, 16], [P.RELEASE_IN, 24], [P.FLUSH_IN, 24],
  [P.READ_IN, 40], [P.WRITE_IN, 40], [P.WRITE_OUT, 8], [P.STATFS_OUT, 80], [P.FSYNC_IN, 16],
  [P.SETXATTR_IN, 16], [P.SETXATTR_IN_COMPAT, 8], [P.GETXATTR_IN, 8], [P.GETXATTR_OUT, 8], [P.LK_IN, 48],
  [P.ACCESS_IN, 8], [P.INIT_IN, 64], [P.INIT_OUT, 64], [P.INTERRUPT_IN, 8], [P.FALLOCATE_IN, 32],
  [P.IN_HEADER, 40], [P.OUT_HEADER, 16], [P.DIRENT, 24], [P.DIRENTPLUS, 152], [P.BACKING_MAP, 16],
  [P.LSEEK_IN, 24], [P.LSEEK_OUT, 8], [P.COPY_FILE_RANGE_IN, 56],
];

test('struct sizes match fuse.h (7.41)', (t) => {
  for (const [def, size] of EXPECTED_SIZES) t.is(def.size, size, def.name);
  // The header's FUSE_COMPAT_* sizes are prefixes of the current structs.
  t.deepEqual(P.COMPAT_SIZE, { ENTRY_OUT: 120, ATTR_OUT: 96, MKNOD_IN: 8, WRITE_IN: 24, STATFS: 48, SETXATTR_IN: 8, INIT_OUT: 8, INIT_OUT_22: 24 });
  t.is(P.FUSE_NAME_OFFSET, 24);
  t.is(P.FUSE_NAME_OFFSET_DIRENTPLUS, 152);
});

test('field offsets of fuse_init_out and fuse_attr', (t) => {
  const off = (d: { fields: readonly { name: string; offset: number }[] }) => Object.fromEntries(d.fields.map((f) => [f.name, f.offset]));
  t.like(off(P.INIT_OUT), { max_background: 16, congestion_threshold: 18, max_write: 20, time_gran: 24, max_pages: 28, map_alignment: 30, flags2: 32, max_stack_depth: 36 });
  t.like(off(P.ATTR), { atimensec: 48, mode: 60, nlink: 64, rdev: 76, blksize: 80, flags: 84 });
  t.like(off(P.ENTRY_OUT), { attr: 40 });
  t.like(off(P.IN_HEADER), { unique: 8, nodeid: 16, uid: 24, total_extlen: 36 });
});

test('ioctl numbers: _IOR/_IOW(229, nr, size)', (t) => {
  t.is(P.FUSE_DEV_IOC_CLONE, 0x8004e500);
  t.is(P.FUSE_DEV_IOC_BACKING_OPEN, 0x4010e501);
  t.is(P.FUSE_DEV_IOC_BACKING_CLOSE, 0x4004e502);
});

test('opcodes and flags', (t) => {
  t.is(P.Op.INIT, 26);
  t.is(P.Op.BATCH_FORGET, 42);
  t.is(P.Op.COPY_FILE_RANGE, 47);
  t.is(P.opName(44), 'READDIRPLUS');
  t.is(P.opName(9999), 'OP_9999');
  t.is(P.InitFlag.PASSTHROUGH, 1n << 37n);
  t.deepEqual(P.splitInitFlags(P.InitFlag.PASSTHROUGH | P.InitFlag.MAX_PAGES), { flags: 1 << 22, flags2: 1 << 5 });
  t.is(P.joinInitFlags(0x40000001, 0x20, true), P.InitFlag.INIT_EXT | P.InitFlag.ASYNC_READ | P.InitFlag.PASSTHROUGH);
  t.is(P.joinInitFlags(0x1, 0x20, false), P.InitFlag.ASYNC_READ); // flags2 ignored without INIT_EXT
  t.is(P.FOpen.PASSTHROUGH, 0x80);
});

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

// INIT from a 6.12 kernel: header (len 104, opcode 26, unique 2) + fuse_init_in 7.41,
// max_readahead 128 KiB, flags = INIT_EXT|MAX_PAGES|DO_READDIRPLUS|ASYNC_READ, flags2 = PASSTHROUGH.
const INIT_REQ = hex(`
  68000000 1a000000 0200000000000000 0000000000000000 00000000 00000000 00000000 0000 0000
  07000000 29000000 00000200 01204040 20000000
  ${'00'.repeat(44)}`);

function fakeSession(opts: Partial<ConstructorParameters<typeof Session>[1]> = {}) {
  const written: Buffer[] = [];
  const asList = (p?: Buffer | Buffer[]) => (p === undefined ? [] : Array.isArray(p) ? p : [p]);
  const dev = {
    write: (iov: Buffer[]) => written.push(Buffer.concat(iov)),
    reply: (req: P.Request, error: number, p?: Buffer | Buffer[]) => written.push(Buffer.concat(P.replyIov(req.unique, error, asList(p)))),
  } as unknown as FuseDevice;
  const s = new Session(dev, { maxPages: 256, wantFlags: 0n, requirePassthrough: false, ...opts });
  return { s, written };
}

test('INIT request decodes and the reply is byte-exact', async (t) => {
  const req = P.parseRequest(INIT_REQ);
  t.is(req.opcode, P.Op.INIT);
  t.is(req.unique, 2n);
  t.is(req.body.length, 64);
  const a = new P.BodyReader(req.body, 'INIT').struct(P.INIT_IN);
  t.like(a, { major: 7, minor: 41, max_readahead: 0x20000, flags: 0x40402001, flags2: 0x20 });

  const { s, written } = fakeSession({
    wantFlags: P.InitFlag.INIT_EXT | P.InitFlag.MAX_PAGES | P.InitFlag.ASYNC_READ | P.InitFlag.PASSTHROUGH | P.InitFlag.WRITEBACK_CACHE,
  });
  s.receive(INIT_REQ);
  const n = await s.initDone;
  t.true(n.passthrough);
  t.is(n.maxWrite, 1 << 20);
  t.is(written.length, 1);
  t.deepEqual(written[0], hex(`
    50000000 00000000 0200000000000000
    07000000 29000000 00000200 01004040 0000 0000 00001000 01000000 0001 0000 20000000 01000000
    ${'00'.repeat(24)}`));
});

test('INIT fails loudly when passthrough is required but not offered', async (t) => {
  const req = Buffer.from(INIT_REQ);
  req.writeUInt32LE(0, 56); // flags2 = 0: no PASSTHROUGH
  const { s, written } = fakeSession({ wantFlags: P.InitFlag.PASSTHROUGH | P.InitFlag.INIT_EXT, requirePassthrough: true });
  s.receive(req);
  await t.throwsAsync(s.initDone, { message: /passthrough requested/ });
  t.is(written[0]!.readInt32LE(4), -71); // -EPROTO
});

test('LOOKUP reply (fuse_entry_out) golden bytes', (t) => {
  const b = P.encodeEntryOut({
    nodeid: 2, generation: 0, entryValid: 1, attrValid: 1.5,
    attr: { ino: 0x1234n, size: 5n, blocks: 8n, atime: 1700000000n, atimensec: 7, mtime: 1700000001n, ctime: 1700000002n,
      mode: 0o100644, nlink: 1, uid: 1000, gid: 100, rdev: 0, blksize: 4096 },
  });
  t.deepEqual(b, hex(`
    0200000000000000 0000000000000000 0100000000000000 0100000000000000 00000000 0065cd1d
    3412000000000000 0500000000000000 0800000000000000
    00f1536500000000 01f1536500000000 02f1536500000000
    07000000 00000000 00000000 a4810000 01000000 e8030000 64000000 00000000 00100000 00000000`));
  t.is(b.length, 128);
  const d = P.decodeStruct(P.ENTRY_OUT, b);
  t.is(d.attr.mode, 0o100644);
  t.is(d.attr_valid_nsec, 500_000_000);
});

test('FuseDevice.reply writes one message per reply: header with the unique as it came, payload after it', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fuse-reply-'));
  const file = path.join(dir, 'out');
  const fd = fs.openSync(file, 'w+');
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const dev = FuseDevice.forThread(fd, new SharedArrayBuffer(256));
  // unique 0x1_0000_0009: both halves must come back as they were.
  const req = P.parseRequest(hex(`38000000 03000000 0900000001000000 0100000000000000 00000000 00000000 2a000000 0000 0000
    01000000 00000000 0300000000000000`));
  t.is(req.unique, 0x1_0000_0009n);
  const big = Buffer.alloc(9000, 7); // above the small-reply buffer: the writev path
  dev.reply(req, 0, Buffer.from('abcd'));
  dev.reply(req, 0, [Buffer.from('ab'), Buffer.from('cdef')]);
  dev.reply(req, -2, Buffer.from('dropped'));
  dev.reply(req, 0);
  dev.reply(req, 0, [big, Buffer.from('z')]);
  dev.reply(req, 0, Buffer.from('after'));
  fs.closeSync(fd);
  const h = (len: number, err: string) => hex(`${Buffer.from(Uint32Array.of(len).buffer).toString('hex')} ${err} 0900000001000000`);
  t.deepEqual(fs.readFileSync(file), Buffer.concat([
    h(20, '00000000'), Buffer.from('abcd'),
    h(22, '00000000'), Buffer.from('abcdef'),
    h(16, 'feffffff'),
    h(16, '00000000'),
    h(16 + 9001, '00000000'), big, Buffer.from('z'),
    h(21, '00000000'), Buffer.from('after'),
  ]));
});

test('GETATTR request and reply (fuse_attr_out) golden bytes', (t) => {
  // header (len 56, GETATTR, unique 9, nodeid 1, uid 0) + fuse_getattr_in {flags 1, fh 3}
  const req = P.parseRequest(hex(`38000000 03000000 0900000000000000 0100000000000000 00000000 00000000 2a000000 0000 0000
    01000000 00000000 0300000000000000`));
  t.like(req.header, { pid: 42, nodeid: 1n });
  t.like(new P.BodyReader(req.body, 'GETATTR').struct(P.GETATTR_IN), { getattr_flags: 1, fh: 3n });
  const out = P.encodeAttrOut(0.25, { ino: 1n, mode: 0o40755, nlink: 2, blksize: 4096 });
  t.deepEqual(out, hex(`0000000000000000 80b2e60e 00000000
    0100000000000000 ${'00'.repeat(40)} 00000000 00000000 00000000 ed410000 02000000 00000000 00000000 00000000 00100000 00000000`));
  const iov = P.replyIov(9n, 0, [out]);
  t.deepEqual(iov[0], hex('78000000 00000000 0900000000000000'));
  t.deepEqual(P.replyIov(9n, -2, [out]), [hex('10000000 feffffff 0900000000000000')]);
});

test('READDIR dirents are 8-byte aligned (golden bytes) and round-trip', (t) => {
  const buf = Buffer.alloc(100, 0xff);
  let at = P.encodeDirentInto(buf, 0, { ino: 1, off: 1, type: 4, name: '.' });
  t.is(at, 32);
  at = P.encodeDirentInto(buf, at, { ino: 0x1234, off: 2, type: 8, name: 'hello.txt' });
  t.is(at, 72);
  t.deepEqual(buf.subarray(0, at), hex(`
    0100000000000000 0100000000000000 01000000 04000000 2e00000000000000
    3412000000000000 0200000000000000 09000000 08000000 68656c6c6f2e747874 00000000000000`));
  t.deepEqual(P.decodeDirents(buf.subarray(0, at)).map((d) => [d.name, d.ino, d.off, d.type]), [['.', 1n, 1n, 4], ['hello.txt', 0x1234n, 2n, 8]]);
  t.is(P.encodeDirentInto(Buffer.alloc(40), 0, { ino: 1, off: 1, type: 8, name: 'x'.repeat(17) }), -1, 'does not fit: 24+17 -> 48');
  t.is(P.direntSize(8), 32);
  t.is(P.direntplusSize(9), 168);
});

test('READDIRPLUS records carry entry_out then dirent', (t) => {
  const buf = Buffer.alloc(400);
  let at = P.encodeDirentplusInto(buf, 0, null, { ino: 1, off: 1, type: 4, name: '..' });
  at = P.encodeDirentplusInto(buf, at, { nodeid: 5, entryValid: 0, attrValid: 0, attr: { ino: 77n, mode: 0o100600 } }, { ino: 77, off: 2, type: 8, name: 'f' });
  t.is(at, 160 + 160);
  const ds = P.decodeDirents(buf.subarray(0, at), true);
  t.is(ds[0]!.entry!.nodeid, 0n);
  t.is(ds[1]!.entry!.nodeid, 5n);
  t.is(ds[1]!.entry!.attr.ino, 77n);
  t.is(ds[1]!.name, 'f');
});

test('truncated and malformed requests give clear errors', (t) => {
  t.throws(() => P.parseRequest(Buffer.alloc(12)), { instanceOf: P.ProtocolError, message: /truncated request: 12 bytes/ });
  const short = Buffer.from(INIT_REQ.subarray(0, 80));
  t.throws(() => P.parseRequest(short), { message: /header.len=104 but read returned 80 bytes \(opcode INIT\)/ });
  const r = new P.BodyReader(Buffer.from('abc'), 'LOOKUP');
  t.throws(() => r.cstring(), { message: /LOOKUP: name at offset 0 is not NUL-terminated/ });
  const r2 = new P.BodyReader(Buffer.alloc(10), 'READ');
  t.throws(() => r2.struct(P.READ_IN), { message: /READ: truncated fuse_read_in: need 40 bytes, have 10/ });
  t.throws(() => P.decodeStruct(P.ATTR, Buffer.alloc(87)), { message: /truncated fuse_attr/ });
});

test('session answers a truncated body with EIO and unknown opcodes with ENOSYS', async (t) => {
  const { s, written } = fakeSession();
  s.on(P.Op.READ, (_req, b) => {
    b.struct(P.READ_IN);
    return NO_REPLY;
  });
  const hdr = (opcode: number, bodyLen: number, unique: bigint) =>
    P.encodeStruct(P.IN_HEADER, { len: 40 + bodyLen, opcode, unique, nodeid: 1 });
  const orig = process.stderr.write;
  process.stderr.write = () => true; // the EIO path logs on purpose
  try {
    s.receive(Buffer.concat([hdr(P.Op.READ, 8, 5n), Buffer.alloc(8)]));
    s.receive(hdr(P.Op.BMAP, 0, 6n));
  } finally {
    process.stderr.write = orig;
  }
  await new Promise((r) => setImmediate(r));
  t.deepEqual(written.map((w) => [w.readInt32LE(4), w.readBigUInt64LE(8)]), [[-5, 5n], [-38, 6n]]);
  t.deepEqual(Object.fromEntries(s.counts), { READ: 1, BMAP: 1 });
});

test('a handler may answer with a negative errno instead of throwing; any other number is EIO', async (t) => {
  const { s, written } = fakeSession();
  s.on(P.Op.LOOKUP, () => -2);
  s.on(P.Op.GETXATTR, async () => -61);
  s.on(P.Op.LISTXATTR, () => 5);
  const hdr = (opcode: number, unique: bigint) => P.encodeStruct(P.IN_HEADER, { len: 40, opcode, unique, nodeid: 1 });
  s.receive(hdr(P.Op.LOOKUP, 7n));
  s.receive(hdr(P.Op.GETXATTR, 8n));
  s.receive(hdr(P.Op.LISTXATTR, 9n));
  await new Promise((r) => setImmediate(r));
  t.deepEqual(written.map((w) => [w.length, w.readInt32LE(4), w.readBigUInt64LE(8)]), [[16, -2, 7n], [16, -5, 9n], [16, -61, 8n]]);
});

test('compiled struct decoders read what the field-table walk reads, for every struct', async (t) => {
  const layout = await import('../../src/fuse/layout.ts');
  const proto = await import('../../src/fuse/protocol.ts') as Record<string, unknown>;
  const defs = Object.values(proto).filter((v): v is StructDef<any> => !!v && typeof v === 'object' && 'fields' in v && 'size' in v);
  t.true(defs.length > 30, `${defs.length} structs`);
  for (const def of defs) {
    const buf = Buffer.alloc(def.size + 8);
    for (let i = 0; i < buf.length; i++) buf[i] = (i * 151 + def.size * 7) & 0xff;
    t.deepEqual(layout.decodeStruct(def, buf, 8), layout.decodeStructSlow(def, buf, 8), def.name);
    // The numeric decoder: every 64-bit field is what Number() of the bigint gives (both
    // round the exact value once, so they agree above 2^53 too).
    t.deepEqual(layout.decodeNumbers(def, buf, 8), asNumbers(layout.decodeStructSlow(def, buf, 8)), `${def.name} as numbers`);
  }
});

/** A decoded struct with every bigint turned into a number, nested structs too. */
function asNumbers(v: unknown): unknown {
  if (typeof v === 'bigint') return Number(v);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, asNumbers(x)]));
  return v;
}

test('compiled struct encoders write what the field-table walk writes, for every struct', async (t) => {
  const layout = await import('../../src/fuse/layout.ts');
  const proto = await import('../../src/fuse/protocol.ts') as Record<string, unknown>;
  const defs = Object.values(proto).filter((v): v is StructDef<any> => !!v && typeof v === 'object' && 'fields' in v && 'size' in v);
  const walk = (def: StructDef<any>, v: object) => layout.encodeStructInto(def, v, Buffer.alloc(def.size));
  for (const def of defs) {
    const buf = Buffer.alloc(def.size);
    for (let i = 0; i < buf.length; i++) buf[i] = (i * 151 + def.size * 7) & 0xff;
    // Full values as bigints (all 64 bits set), and a subset: unset fields stay zero.
    const full = layout.decodeStructSlow(def, buf);
    t.deepEqual(layout.encodeStruct(def, full), walk(def, full), `${def.name}: bigints`);
    const some = Object.fromEntries(Object.entries(full).filter((_, i) => i % 2 === 0));
    t.deepEqual(layout.encodeStruct(def, some), walk(def, some), `${def.name}: some fields`);
    // 64-bit fields as numbers below 2^53, negative ones for the signed: written as halves.
    const small = Buffer.from(buf);
    const mask = (d: StructDef<any>, at: number): void => {
      for (const f of d.fields) {
        if (f.type === 'u64' || f.type === 'i64') small.writeUInt16LE(f.type === 'i64' ? 0xffe0 : 0x1f, at + f.offset + 6);
        else if (typeof f.type !== 'string') mask(f.type, at + f.offset);
      }
    };
    mask(def, 0);
    const nums = layout.decodeNumbers(def, small);
    t.deepEqual(layout.encodeStruct(def, nums), walk(def, nums), `${def.name}: numbers`);
    t.deepEqual(layout.encodeStruct(def, nums), walk(def, layout.decodeStructSlow(def, small)), `${def.name}: numbers as their bigints`);
  }
});

test('encoded replies carved from the shared pool stay intact across pools', (t) => {
  // 2,000 replies span several 64 KiB pools: every one must still hold what was written.
  const out: Buffer[] = [];
  for (let i = 0; i < 2000; i++) {
    const mark = (w: Uint32Array, at: number) => { for (let k = 0; k < P.ATTR.size / 4; k++) w[(at >> 2) + k] = i; };
    out.push(i % 2 ? P.encodeAttrOutWith(i, mark) : P.encodeEntryOutWith(i, i, i, mark));
  }
  out.forEach((b, i) => {
    t.is(b.length, i % 2 ? P.ATTR_OUT.size : P.ENTRY_OUT.size);
    const at = (i % 2 ? P.ATTR_OUT : P.ENTRY_OUT).fields.find((f) => f.name === 'attr')!.offset;
    t.is(b.readUInt32LE(at), i, `reply ${i}: attr`);
    t.is(b.readUInt32LE(at + P.ATTR.size - 4), i, `reply ${i}: end of attr`);
    if (!(i % 2)) t.is(b.readUInt32LE(0), i, `reply ${i}: nodeid`);
  });
});
