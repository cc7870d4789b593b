// Declarative C struct layouts: one table per struct gives size, offsets and both
// directions of conversion, so a size mistake shows up in exactly one place (and in the
// unit test that compares every size with the header).

export type Scalar = 'u8' | 'u16' | 'u32' | 'i32' | 'u64' | 'i64';
export type FieldSpec =
  | readonly [name: string, type: Scalar]
  | readonly [name: string, type: 'pad', bytes: number]
  | readonly [name: string, type: StructDef<any>];

type FieldValue<F> = F extends readonly [string, infer T]
  ? T extends 'u64' | 'i64'
    ? bigint
    : T extends Scalar
      ? number
      : T extends StructDef<infer S>
        ? Decoded<S>
        : never
  : never;

/** The JS object a struct decodes to: 64-bit fields are bigints, the rest numbers. */
export type Decoded<S extends readonly FieldSpec[]> = {
  [F in S[number] as F extends readonly [infer N extends string, Scalar | StructDef<any>] ? N : never]: FieldValue<F>;
};

/** The same struct with every field a number, 64-bit ones too (decodeNumbers). */
export type Numeric<S extends readonly FieldSpec[]> = {
  [K in keyof Decoded<S>]: Decoded<S>[K] extends bigint | number ? number : Numeric<any>;
};

/** What encode accepts: any subset of fields; numbers are accepted for 64-bit fields too. */
export type Encodable<S extends readonly FieldSpec[]> = {
  [K in keyof Decoded<S>]?: Decoded<S>[K] extends bigint ? bigint | number : Decoded<S>[K] extends number ? number : Encodable<any>;
};

export interface StructDef<S extends readonly FieldSpec[]> {
  readonly name: string;
  readonly size: number;
  readonly align: number;
  readonly fields: ReadonlyArray<{ name: string; type: Scalar | 'pad' | StructDef<any>; offset: number; bytes: number }>;
  /** Only for typing: never set. */
  readonly _spec?: S;
}

const SCALAR_SIZE: Record<Scalar, number> = { u8: 1, u16: 2, u32: 4, i32: 4, u64: 8, i64: 8 };

export class ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtocolError';
  }
}

export function struct<const S extends readonly FieldSpec[]>(name: string, spec: S): StructDef<S> {
  let off = 0;
  let align = 1;
  const fields: { name: string; type: Scalar | 'pad' | StructDef<any>; offset: number; bytes: number }[] = [];
  for (const f of spec) {
    const type = f[1];
    let bytes: number;
    let a: number;
    if (type === 'pad') {
      bytes = (f as readonly [string, 'pad', number])[2];
      a = 1;
    } else if (typeof type === 'string') {
      bytes = SCALAR_SIZE[type];
      a = bytes;
    } else {
      bytes = type.size;
      a = type.align;
    }
    off = alignUp(off, a);
    fields.push({ name: f[0], type, offset: off, bytes });
    off += bytes;
    align = Math.max(align, a);
  }
  return { name, size: alignUp(off, align), align, fields };
}

export function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

export function decodeStruct<S extends readonly FieldSpec[]>(def: StructDef<S>, buf: Buffer, at = 0): Decoded<S> {
  if (buf.length - at < def.size) {
    throw new ProtocolError(`truncated ${def.name}: need ${def.size} bytes at offset ${at}, have ${Math.max(0, buf.length - at)}`);
  }
  let d = decoders.get(def);
  if (!d) decoders.set(def, (d = compileDecoder(def)));
  return d(buf, at) as Decoded<S>;
}

/**
 * Every request body is decoded with one of these: a function per struct that reads each
 * field at its fixed offset into an object literal, which the JIT compiles to straight
 * loads and one object shape. The interpreted walk (decodeStructSlow) is its reference.
 * The source is built only from our own struct tables (names and offsets), never input.
 */
const decoders = new WeakMap<StructDef<any>, (buf: Buffer, at: number) => unknown>();

const READERS: Record<Scalar, string> = {
  u8: 'readUInt8', u16: 'readUInt16LE', u32: 'readUInt32LE', i32: 'readInt32LE', u64: 'readBigUInt64LE', i64: 'readBigInt64LE',
};

/** 64-bit fields read as numbers: high half times 2^32 plus low half (decodeNumbers). */
const NUMBER_READERS: Partial<Record<Scalar, (o: number) => string>> = {
  u64: (o) => `buf.readUInt32LE(at + ${o + 4}) * 4294967296 + buf.readUInt32LE(at + ${o})`,
  i64: (o) => `buf.readInt32LE(at + ${o + 4}) * 4294967296 + buf.readUInt32LE(at + ${o})`,
};

function compileDecoder(def: StructDef<any>, numbers = false): (buf: Buffer, at: number) => unknown {
  const nested: ((buf: Buffer, at: number) => unknown)[] = [];
  const props = def.fields.filter((f) => f.type !== 'pad').map((f) => {
    if (!/^[A-Za-z_]\w*$/.test(f.name)) throw new Error(`${def.name}: field name ${JSON.stringify(f.name)} is not an identifier`);
    if (typeof f.type === 'string') {
      const num = numbers ? NUMBER_READERS[f.type as Scalar] : undefined;
      return `${f.name}: ${num ? num(f.offset) : `buf.${READERS[f.type as Scalar]}(at + ${f.offset})`}`;
    }
    nested.push(compileDecoder(f.type, numbers));
    return `${f.name}: nested[${nested.length - 1}](buf, at + ${f.offset})`;
  });
  return new Function('nested', `return (buf, at) => ({ ${props.join(', ')} });`)(nested) as (buf: Buffer, at: number) => unknown;
}

/**
 * decodeStruct with 64-bit fields as numbers: no BigInt per field, which on a hot request
 * (SETATTR_IN has six 64-bit fields, FLUSH_IN and RELEASE_IN two) cost more than the
 * rest of the decoding. Exact below 2^53 only: for handles, sizes, offsets and times; not
 * for a value the kernel may fill with all 64 bits (lock_owner is a hash).
 */
export function decodeNumbers<S extends readonly FieldSpec[]>(def: StructDef<S>, buf: Buffer, at = 0): Numeric<S> {
  if (buf.length - at < def.size) {
    throw new ProtocolError(`truncated ${def.name}: need ${def.size} bytes at offset ${at}, have ${Math.max(0, buf.length - at)}`);
  }
  let d = numberDecoders.get(def);
  if (!d) numberDecoders.set(def, (d = compileDecoder(def, true)));
  return d(buf, at) as Numeric<S>;
}

const numberDecoders = new WeakMap<StructDef<any>, (buf: Buffer, at: number) => unknown>();

/** decodeStruct by walking the field table: the reference the compiled decoders are tested against. */
export function decodeStructSlow<S extends readonly FieldSpec[]>(def: StructDef<S>, buf: Buffer, at = 0): Decoded<S> {
  const out: Record<string, unknown> = {};
  for (const f of def.fields) {
    const o = at + f.offset;
    switch (f.type) {
      case 'pad': break;
      case 'u8': out[f.name] = buf.readUInt8(o); break;
      case 'u16': out[f.name] = buf.readUInt16LE(o); break;
      case 'u32': out[f.name] = buf.readUInt32LE(o); break;
      case 'i32': out[f.name] = buf.readInt32LE(o); break;
      case 'u64': out[f.name] = buf.readBigUInt64LE(o); break;
      case 'i64': out[f.name] = buf.readBigInt64LE(o); break;
      default: out[f.name] = decodeStructSlow(f.type, buf, o);
    }
  }
  return out as Decoded<S>;
}

/** Writes into `buf` at `at` (zeroing unset fields) and returns `buf`. */
export function encodeStructInto<S extends readonly FieldSpec[]>(def: StructDef<S>, v: Encodable<S>, buf: Buffer, at = 0): Buffer {
  buf.fill(0, at, at + def.size);
  const vals = v as Record<string, unknown>;
  for (const f of def.fields) {
    const x = vals[f.name];
    if (x === undefined || f.type === 'pad') continue;
    const o = at + f.offset;
    switch (f.type) {
      case 'u8': buf.writeUInt8(Number(x), o); break;
      case 'u16': buf.writeUInt16LE(Number(x), o); break;
      case 'u32': buf.writeUInt32LE(Number(x) >>> 0, o); break;
      case 'i32': buf.writeInt32LE(Number(x), o); break;
      case 'u64': buf.writeBigUInt64LE(BigInt.asUintN(64, BigInt(x as number | bigint)), o); break;
      case 'i64': buf.writeBigInt64LE(BigInt.asIntN(64, BigInt(x as number | bigint)), o); break;
      default: encodeStructInto(f.type, x as Encodable<any>, buf, o);
    }
  }
  return buf;
}

/**
 * A new buffer holding `v`: unset fields and padding zero. Compiled per struct like the
 * decoders (a reply such as fuse_open_out is encoded per request); encodeStructInto, the
 * table walk, is its reference. A 64-bit field given as a number is written as two halves,
 * without a BigInt.
 */
export function encodeStruct<S extends readonly FieldSpec[]>(def: StructDef<S>, v: Encodable<S>): Buffer {
  let e = encoders.get(def);
  if (!e) encoders.set(def, (e = compileEncoder(def)));
  const buf = Buffer.alloc(def.size);
  e(v, buf, 0);
  return buf;
}

type Encoder = (v: Record<string, unknown>, buf: Buffer, at: number) => void;
const encoders = new WeakMap<StructDef<any>, Encoder>();

/** Writes a 64-bit field: numbers as two 32-bit halves, anything else through BigInt (as encodeStructInto). */
function put64(buf: Buffer, o: number, x: unknown, signed: boolean): void {
  if (typeof x === 'number' && Number.isSafeInteger(x) && (signed || x >= 0)) {
    const hi = Math.floor(x / 4294967296);
    buf.writeUInt32LE(x - hi * 4294967296, o);
    buf.writeInt32LE(hi | 0, o + 4);
  } else if (signed) buf.writeBigInt64LE(BigInt.asIntN(64, BigInt(x as number | bigint)), o);
  else buf.writeBigUInt64LE(BigInt.asUintN(64, BigInt(x as number | bigint)), o);
}

const WRITERS: Record<Scalar, (o: number, x: string) => string> = {
  u8: (o, x) => `buf.writeUInt8(Number(${x}), at + ${o})`,
  u16: (o, x) => `buf.writeUInt16LE(Number(${x}), at + ${o})`,
  u32: (o, x) => `buf.writeUInt32LE(Number(${x}) >>> 0, at + ${o})`,
  i32: (o, x) => `buf.writeInt32LE(Number(${x}), at + ${o})`,
  u64: (o, x) => `put64(buf, at + ${o}, ${x}, false)`,
  i64: (o, x) => `put64(buf, at + ${o}, ${x}, true)`,
};

/** The encoder writes into a zeroed buffer: unset fields are skipped. */
function compileEncoder(def: StructDef<any>): Encoder {
  const nested: Encoder[] = [];
  const lines = def.fields.filter((f) => f.type !== 'pad').map((f) => {
    if (!/^[A-Za-z_]\w*$/.test(f.name)) throw new Error(`${def.name}: field name ${JSON.stringify(f.name)} is not an identifier`);
    const x = `v.${f.name}`;
    if (typeof f.type === 'string') return `if (${x} !== undefined) ${WRITERS[f.type as Scalar](f.offset, x)};`;
    nested.push(compileEncoder(f.type));
    return `if (${x} !== undefined) nested[${nested.length - 1}](${x}, buf, at + ${f.offset});`;
  });
  return new Function('nested', 'put64', `return (v, buf, at) => { ${lines.join(' ')} };`)(nested, put64) as Encoder;
}

export function offsetOf(def: StructDef<any>, field: string): number {
  const f = def.fields.find((x) => x.name === field);
  if (!f) throw new Error(`${def.name} has no field ${field}`);
  return f.offset;
}
