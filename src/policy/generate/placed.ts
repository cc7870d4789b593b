// Policies whose FUSE file has one backing file, in one of N backing directories the
// daemon chose (route: by the name's rules; union: the topmost layer that has it). The
// daemon publishes the file's backing id at that directory's index (0 elsewhere), so the
// program knows where each request goes and counts it there.
import type { RoutePolicy, UnionPolicy } from '../spec.ts';
import { backingIo, backingStats, fileHeader, getattrHelper, nodesMap, xattrHelper } from './common.ts';

export function placedProgram(spec: RoutePolicy | UnionPolicy, doc: string, opts: { writeGuard?: string } = {}): string {
  const p = spec.policy;
  const ids = Array.from({ length: spec.backings }, (_, i) => i);
  const writeGuard = opts.writeGuard ?? '';
  return `${fileHeader(spec, doc)}
#define PLACED_NR		${spec.backings}
/* Seconds the kernel may cache the attributes GETATTR returns */
#define PLACED_ATTR_VALID	${spec.attrTimeout}
#define EIO			5
${opts.writeGuard ? '#define EROFS\t\t\t30\n' : ''}
${nodesMap()}
${backingStats()}
${backingIo()}

/* The backing directory the file lives in, or -1 */
static __always_inline int ${p}_index(struct fuse_kfunc_node *n)
{
${ids.map((i) => `\tif (n->backing[${i}])\n\t\treturn ${i};`).join('\n')}
	return -1;
}

static int ${p}_read(struct fuse_bpf_ctx *fctx, struct fuse_args *args,
		      __u32 i, __u32 id)
{
	const struct fuse_read_in *in = bpf_fuse_in(args, 0, struct fuse_read_in);
	int ret;

	if (!in)
		return FUSE_BPF_UPCALL;
	ret = backing_io(fctx, id, false, in->offset, in->size);
	count_io(i, false, ret);
	if (ret < 0)
		return ret;
	bpf_fuse_set_out_size(fctx, ret);
	return 0;
}

static int ${p}_write(struct fuse_bpf_ctx *fctx, struct fuse_args *args,
		       __u32 i, __u32 id)
{
	const struct fuse_write_in *in = bpf_fuse_in(args, 0, struct fuse_write_in);
	struct fuse_write_out *out = bpf_fuse_out(args, 0, struct fuse_write_out);
	int ret;

	if (!in || !out)
		return FUSE_BPF_UPCALL;
${writeGuard}	ret = backing_io(fctx, id, true, in->offset, in->size);
	count_io(i, true, ret);
	if (ret < 0)
		return ret;
	out->size = ret;
	return 0;
}

${getattrHelper()}
${xattrHelper()}
SEC("struct_ops.s/request")
int BPF_PROG(${p}_request, struct fuse_bpf_ctx *fctx, struct fuse_args *args)
{
	__u32 op = fctx->opcode, id;
	__u64 nodeid = fctx->nodeid;
	struct fuse_kfunc_node *n;
	int ret = FUSE_BPF_UPCALL, i;

	if (op != FUSE_OP_READ && op != FUSE_OP_WRITE && op != FUSE_OP_GETATTR &&
	    op != FUSE_OP_GETXATTR && op != FUSE_OP_LISTXATTR)
		return FUSE_KFUNC_COUNT(fctx, ret);
	n = bpf_map_lookup_elem(&nodes, &nodeid);
	if (!n || n->nr != PLACED_NR)	/* not open: the daemon knows */
		return FUSE_KFUNC_COUNT(fctx, ret);
	i = ${p}_index(n);
	if (i < 0)
		return FUSE_KFUNC_COUNT(fctx, ret);
	id = n->backing[i];
	if (op == FUSE_OP_READ)
		ret = ${p}_read(fctx, args, i, id);
	else if (op == FUSE_OP_WRITE)
		ret = ${p}_write(fctx, args, i, id);
	else if (op == FUSE_OP_GETATTR)
		ret = serve_getattr(fctx, args, id, PLACED_ATTR_VALID);
	else
		ret = serve_xattr(fctx, args, id);
	return FUSE_KFUNC_COUNT(fctx, ret);
}

SEC(".struct_ops.link")
struct fuse_bpf_ops ${p}_ops = {
	.request = (void *)${p}_request,
	.name = "${p}",
};
`;
}
