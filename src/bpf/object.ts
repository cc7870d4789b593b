// The BPF object lifecycle, shaped like cilium/ebpf and libbpf-rs:
//   BpfObjectSpec.open(file|bytes) → setGlobal(...) → load() → program()/map()/attachStructOps() → close()
// Every kernel object is an fd owned by this process: if the process dies, the kernel
// closes them and unpinned links detach by themselves.
import koffi from 'koffi';
import { BpfError, VerifierError, hintFor } from './errors.ts';
import { libbpf, TestRunOpts, BtfType, VarSecinfo, type Libbpf } from './libbpf.ts';

const BTF_KIND_VAR = 14;
const BTF_KIND_DATASEC = 15;
const LOG_SIZE = 4 << 20;

export interface OpenOptions {
  /** path of libbpf.so (default: the current kernel build's) */
  libbpf?: string;
  /**
   * Verifier log level for every program. 0 (the default): no log while a load succeeds;
   * a failed load is retried by libbpf at level 1 into the program's buffer, so a
   * rejection still carries the log. A successful load at level 1 or 2 logs every
   * instruction and fails with ENOSPC once a large program fills the 4 MiB buffer.
   */
  logLevel?: number;
}

/** An opened, not yet loaded object: globals can still be set. */
export class BpfObjectSpec {
  private logs = new Map<string, unknown>();
  private closed = false;

  private constructor(private lib: Libbpf, private obj: unknown, readonly source: string, logLevel: number) {
    for (const p of this.rawPrograms()) {
      const buf = koffi.alloc('char', LOG_SIZE);
      const name = lib.prog_name(p) as string;
      lib.prog_set_log_buf(p, buf, LOG_SIZE);
      lib.prog_set_log_level(p, logLevel);
      this.logs.set(name, buf);
    }
  }

  static open(src: string | Uint8Array, opts: OpenOptions = {}): BpfObjectSpec {
    const lib = libbpf(opts.libbpf);
    const isPath = typeof src === 'string';
    const obj = isPath ? lib.open_file(src, null) : lib.open_mem(src, src.byteLength, null);
    const label = isPath ? src : `<${src.byteLength}-byte object>`;
    if (!obj) {
      const err = koffi.errno();
      throw new BpfError(`cannot open BPF object ${label}`, err,
        err === 2 ? 'no such file' : 'not a BPF ELF object, or built for another target: compile with clang-19 --target=bpf -g');
    }
    return new BpfObjectSpec(lib, obj, label, opts.logLevel ?? 0);
  }

  private *rawPrograms(): Generator<unknown> {
    for (let p = this.lib.next_program(this.obj, null); p; p = this.lib.next_program(this.obj, p)) yield p;
  }

  private *rawMaps(): Generator<unknown> {
    for (let m = this.lib.next_map(this.obj, null); m; m = this.lib.next_map(this.obj, m)) yield m;
  }

  get programs(): string[] {
    return [...this.rawPrograms()].map((p) => this.lib.prog_name(p) as string);
  }

  get maps(): string[] {
    return [...this.rawMaps()].map((m) => this.lib.map_name(m) as string);
  }

  /**
   * Set a global variable (const volatile in .rodata, or .data/.bss) before load.
   * Values are little-endian: numbers for 1/2/4-byte vars, bigint for 8, bytes otherwise.
   */
  setGlobal(name: string, value: number | bigint | Uint8Array | number[]): void {
    this.assertOpen();
    if (Array.isArray(value)) value = Uint8Array.from(value);
    const btf = this.lib.obj_btf(this.obj);
    if (!btf) throw new Error(`${this.source} has no BTF: build it with -g`);
    for (const m of this.rawMaps()) {
      const mapName = this.lib.map_name(m) as string;
      const dot = mapName.lastIndexOf('.');
      if (dot < 0) continue;
      const sec = mapName.slice(dot);
      const id = this.lib.btf_find_by_name_kind(btf, sec, BTF_KIND_DATASEC) as number;
      if (id < 0) continue;
      const tptr = this.lib.btf_type_by_id(btf, id);
      const hdr = koffi.decode(tptr, BtfType) as { info: number };
      const vlen = hdr.info & 0xffff;
      const infos = koffi.decode(tptr, 12, koffi.array(VarSecinfo, vlen)) as { type: number; offset: number; size: number }[];
      for (const vi of infos) {
        const v = koffi.decode(this.lib.btf_type_by_id(btf, vi.type), BtfType) as { name_off: number; info: number };
        if (((v.info >>> 24) & 0x1f) !== BTF_KIND_VAR) continue;
        if (this.lib.btf_name_by_offset(btf, v.name_off) !== name) continue;
        const bytes = encodeValue(name, value, vi.size);
        const psize = [0];
        const data = this.lib.map_initial_value(m, psize);
        if (!data) throw new Error(`global "${name}": section ${sec} has no initial value`);
        new Uint8Array(koffi.view(data, psize[0])).set(bytes, vi.offset);
        return;
      }
    }
    throw new Error(`${this.source} has no global variable "${name}" (declare it const volatile in the BPF C)`);
  }

  /** Load every program into the kernel; a rejection throws VerifierError with the log. */
  load(): LoadedObject {
    this.assertOpen();
    const err = this.lib.load(this.obj) as number;
    if (err) {
      for (const p of this.rawPrograms()) {
        const name = this.lib.prog_name(p) as string;
        const log = this.log(name);
        if (log) throw new VerifierError(name, err, log);
      }
      throw new BpfError(`cannot load ${this.source}`, err, hintFor(err));
    }
    return new LoadedObject(this.lib, this.obj, this.source, (n) => this.log(n), () => this.close());
  }

  /** The verifier log of a program from the last load attempt. */
  log(program: string): string {
    const buf = this.logs.get(program);
    if (!buf) return '';
    const s = koffi.decode(buf, 'char', -1) as string;
    return s;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.lib.close(this.obj);
    for (const b of this.logs.values()) koffi.free(b);
    this.logs.clear();
  }

  private assertOpen(): void {
    if (this.closed) throw new Error(`${this.source} is closed`);
  }
}

function encodeValue(name: string, value: number | bigint | Uint8Array, size: number): Uint8Array {
  if (value instanceof Uint8Array) {
    if (value.byteLength > size) throw new Error(`global "${name}" is ${size} bytes, got ${value.byteLength}`);
    if (value.byteLength === size) return value;
    const padded = new Uint8Array(size); // the rest is zeros, as formatGlobal leaves it out
    padded.set(value);
    return padded;
  }
  const b = Buffer.alloc(size);
  if (size === 8) b.writeBigUInt64LE(BigInt.asUintN(64, BigInt(value)));
  else if (size === 4) b.writeUInt32LE(Number(value) >>> 0);
  else if (size === 2) b.writeUInt16LE(Number(value) & 0xffff);
  else if (size === 1) b.writeUInt8(Number(value) & 0xff);
  else throw new Error(`global "${name}" is ${size} bytes: pass a Uint8Array`);
  return b;
}

export class LoadedObject {
  private links: Link[] = [];
  constructor(private lib: Libbpf, private obj: unknown, readonly source: string,
    private logOf: (p: string) => string, private closeSpec: () => void) {}

  program(name: string): Program {
    for (let p = this.lib.next_program(this.obj, null); p; p = this.lib.next_program(this.obj, p)) {
      if (this.lib.prog_name(p) === name) return new Program(this.lib, p, name, this.logOf(name));
    }
    throw new Error(`${this.source} has no program "${name}"`);
  }

  map(name: string): BpfMap {
    for (let m = this.lib.next_map(this.obj, null); m; m = this.lib.next_map(this.obj, m)) {
      if (this.lib.map_name(m) === name) return new BpfMap(this.lib, m, name);
    }
    throw new Error(`${this.source} has no map "${name}"`);
  }

  /** Register a struct_ops map's instance with the kernel; returns its link. */
  attachStructOps(mapName: string): Link {
    const m = this.map(mapName);
    const link = this.lib.map_attach_struct_ops(m.raw);
    if (!link) {
      const err = koffi.errno();
      throw new BpfError(`cannot attach struct_ops map "${mapName}"`, err,
        err === 22 ? 'declare it SEC(".struct_ops.link") so it attaches as a link' : hintFor(err));
    }
    const l = new Link(this.lib, link, `struct_ops ${mapName}`);
    this.links.push(l);
    return l;
  }

  /** Destroy links (detaching what is not pinned) and free every kernel object. */
  close(): void {
    for (const l of this.links.splice(0)) l.close();
    this.closeSpec();
  }
}

export class Program {
  constructor(private lib: Libbpf, private raw: unknown, readonly name: string, readonly log: string) {}

  get fd(): number { return this.lib.prog_fd(this.raw) as number; }
  get section(): string { return this.lib.prog_section(this.raw) as string; }

  /** Run once with BPF_PROG_RUN (syscall/tracing-style programs); ctx is written back. */
  testRun(ctx?: Uint8Array): { retval: number; ctx?: Buffer } {
    const buf = ctx ? Buffer.from(ctx) : undefined;
    const opts = {
      sz: koffi.sizeof(TestRunOpts), data_in: null, data_out: null, data_size_in: 0, data_size_out: 0,
      ctx_in: buf ?? null, ctx_out: null, ctx_size_in: buf?.byteLength ?? 0, ctx_size_out: 0,
      retval: 0, repeat: 0, duration: 0, flags: 0, cpu: 0, batch_size: 0,
    };
    const err = this.lib.prog_test_run_opts(this.fd, opts) as number;
    if (err) throw new BpfError(`BPF_PROG_RUN of "${this.name}"`, koffi.errno());
    return { retval: opts.retval, ctx: buf };
  }
}

export class BpfMap {
  constructor(private lib: Libbpf, readonly raw: unknown, readonly name: string) {}

  get fd(): number { return this.lib.map_fd(this.raw) as number; }
  get keySize(): number { return this.lib.map_key_size(this.raw) as number; }
  get valueSize(): number { return this.lib.map_value_size(this.raw) as number; }

  private check(what: string, b: Uint8Array, size: number): void {
    if (b.byteLength !== size) throw new Error(`map "${this.name}": ${what} is ${b.byteLength} bytes, the map wants ${size}`);
  }

  lookup(key: Uint8Array): Buffer | undefined {
    this.check('key', key, this.keySize);
    const out = Buffer.alloc(this.valueSize);
    if ((this.lib.map_lookup_elem(this.fd, key, out) as number) === 0) return out;
    const e = koffi.errno();
    if (e === 2) return undefined;
    throw new BpfError(`lookup in map "${this.name}"`, e);
  }

  update(key: Uint8Array, value: Uint8Array, flags: 'any' | 'noexist' | 'exist' = 'any'): void {
    this.check('key', key, this.keySize);
    this.check('value', value, this.valueSize);
    const f = { any: 0n, noexist: 1n, exist: 2n }[flags];
    if ((this.lib.map_update_elem(this.fd, key, value, f) as number) !== 0) throw new BpfError(`update of map "${this.name}"`, koffi.errno());
  }

  delete(key: Uint8Array): boolean {
    this.check('key', key, this.keySize);
    if ((this.lib.map_delete_elem(this.fd, key) as number) === 0) return true;
    const e = koffi.errno();
    if (e === 2) return false;
    throw new BpfError(`delete from map "${this.name}"`, e);
  }

  *keys(): Generator<Buffer> {
    let prev: Buffer | null = null;
    for (;;) {
      const next = Buffer.alloc(this.keySize);
      if ((this.lib.map_get_next_key(this.fd, prev, next) as number) !== 0) {
        const e = koffi.errno();
        if (e === 2) return;
        throw new BpfError(`iterating map "${this.name}"`, e);
      }
      yield next;
      prev = next;
    }
  }

  *entries(): Generator<[Buffer, Buffer]> {
    for (const k of this.keys()) {
      const v = this.lookup(k);
      if (v) yield [k, v];
    }
  }

  pin(path: string): void {
    if ((this.lib.obj_pin(this.fd, path) as number) !== 0) throw new BpfError(`pin map "${this.name}" at ${path}`, koffi.errno(), 'is bpffs mounted there?');
  }
}

export class Link {
  private closed = false;
  constructor(private lib: Libbpf, private raw: unknown, readonly what: string) {}

  get fd(): number { return this.lib.link_fd(this.raw) as number; }

  pin(path: string): void {
    const err = this.lib.link_pin(this.raw, path) as number;
    if (err) throw new BpfError(`pin ${this.what} at ${path}`, err, 'is bpffs mounted there?');
  }

  unpin(): void {
    const err = this.lib.link_unpin(this.raw) as number;
    if (err) throw new BpfError(`unpin ${this.what}`, err);
  }

  /** Detach now, even if pinned. */
  detach(): void {
    const err = this.lib.link_detach(this.raw) as number;
    if (err) throw new BpfError(`detach ${this.what}`, err);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.lib.link_destroy(this.raw);
  }
}
