// The raw FFI surface: the libbpf functions this SDK calls, bound with koffi to the
// libbpf built from the pinned kernel tree (Debian's libbpf 1.1 is too old for it).
import koffi from 'koffi';
import { existsSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { cacheDir } from '../util/paths.ts';

export function findLibbpf(explicit?: string): string {
  const candidates = [
    explicit,
    process.env.FUSE_KFUNC_LIBBPF,
    process.env.FUSE_KFUNC_BUILD && join(process.env.FUSE_KFUNC_BUILD, 'libbpf/lib/libbpf.so'),
    join(cacheDir(), 'builds/current/libbpf/lib/libbpf.so'),
  ].filter((c): c is string => Boolean(c));
  for (const c of candidates) if (existsSync(c)) return c;
  throw new Error('libbpf.so of the pinned kernel tree not found (looked in ' + candidates.join(', ') +
    '): run `fuse-kfunc kernel build` or set FUSE_KFUNC_LIBBPF');
}

koffi.opaque('bpf_object');
koffi.opaque('bpf_program');
koffi.opaque('bpf_map');
koffi.opaque('bpf_link');
koffi.opaque('btf');

export const TestRunOpts = koffi.struct('bpf_test_run_opts', {
  sz: 'size_t',
  data_in: 'void *', data_out: 'void *', data_size_in: 'uint32_t', data_size_out: 'uint32_t',
  ctx_in: 'void *', ctx_out: 'void *', ctx_size_in: 'uint32_t', ctx_size_out: 'uint32_t',
  retval: 'uint32_t', repeat: 'int', duration: 'uint32_t', flags: 'uint32_t', cpu: 'uint32_t', batch_size: 'uint32_t',
});

export const BtfType = koffi.struct('btf_type_hdr', { name_off: 'uint32_t', info: 'uint32_t', size: 'uint32_t' });
export const VarSecinfo = koffi.struct('btf_var_secinfo', { type: 'uint32_t', offset: 'uint32_t', size: 'uint32_t' });

function bind(path: string) {
  const lib = koffi.load(path);
  const f = (proto: string) => lib.func(proto);
  return {
    path: readlinkSafe(path),
    libbpf_get_error: f('long libbpf_get_error(const void *ptr)'),
    open_file: f('bpf_object *bpf_object__open_file(const char *path, void *opts)'),
    open_mem: f('bpf_object *bpf_object__open_mem(const void *buf, size_t sz, void *opts)'),
    load: f('int bpf_object__load(bpf_object *obj)'),
    close: f('void bpf_object__close(bpf_object *obj)'),
    obj_name: f('const char *bpf_object__name(const bpf_object *obj)'),
    obj_btf: f('btf *bpf_object__btf(const bpf_object *obj)'),
    next_program: f('bpf_program *bpf_object__next_program(const bpf_object *obj, bpf_program *prog)'),
    prog_name: f('const char *bpf_program__name(const bpf_program *prog)'),
    prog_section: f('const char *bpf_program__section_name(const bpf_program *prog)'),
    prog_fd: f('int bpf_program__fd(const bpf_program *prog)'),
    prog_set_log_buf: f('int bpf_program__set_log_buf(bpf_program *prog, void *buf, size_t size)'),
    prog_set_log_level: f('int bpf_program__set_log_level(bpf_program *prog, uint32_t level)'),
    prog_autoload: f('bool bpf_program__autoload(const bpf_program *prog)'),
    next_map: f('bpf_map *bpf_object__next_map(const bpf_object *obj, const bpf_map *map)'),
    map_name: f('const char *bpf_map__name(const bpf_map *map)'),
    map_fd: f('int bpf_map__fd(const bpf_map *map)'),
    map_type: f('int bpf_map__type(const bpf_map *map)'),
    map_key_size: f('uint32_t bpf_map__key_size(const bpf_map *map)'),
    map_value_size: f('uint32_t bpf_map__value_size(const bpf_map *map)'),
    map_initial_value: f('void *bpf_map__initial_value(const bpf_map *map, _Out_ size_t *psize)'),
    map_attach_struct_ops: f('bpf_link *bpf_map__attach_struct_ops(const bpf_map *map)'),
    link_fd: f('int bpf_link__fd(const bpf_link *link)'),
    link_pin: f('int bpf_link__pin(bpf_link *link, const char *path)'),
    link_unpin: f('int bpf_link__unpin(bpf_link *link)'),
    link_destroy: f('int bpf_link__destroy(bpf_link *link)'),
    link_detach: f('int bpf_link__detach(bpf_link *link)'),
    map_lookup_elem: f('int bpf_map_lookup_elem(int fd, const void *key, _Out_ void *value)'),
    map_update_elem: f('int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags)'),
    map_delete_elem: f('int bpf_map_delete_elem(int fd, const void *key)'),
    map_get_next_key: f('int bpf_map_get_next_key(int fd, const void *key, _Out_ void *next_key)'),
    obj_pin: f('int bpf_obj_pin(int fd, const char *pathname)'),
    obj_get: f('int bpf_obj_get(const char *pathname)'),
    prog_test_run_opts: f('int bpf_prog_test_run_opts(int prog_fd, _Inout_ bpf_test_run_opts *opts)'),
    btf_find_by_name_kind: f('int btf__find_by_name_kind(const btf *btf, const char *name, uint32_t kind)'),
    btf_type_by_id: f('const void *btf__type_by_id(const btf *btf, uint32_t id)'),
    btf_name_by_offset: f('const char *btf__name_by_offset(const btf *btf, uint32_t offset)'),
  };
}

function readlinkSafe(p: string): string {
  try { return join(p, '..', readlinkSync(p)); } catch { return p; }
}

export type Libbpf = ReturnType<typeof bind>;
const cache = new Map<string, Libbpf>();

export function libbpf(path?: string): Libbpf {
  const p = findLibbpf(path);
  let l = cache.get(p);
  if (!l) { l = bind(p); cache.set(p, l); }
  return l;
}
