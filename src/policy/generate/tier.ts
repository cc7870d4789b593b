// The tier policy as BPF C: two backing files per FUSE file at most, the slow tier's (always)
// and the fast tier's (when the daemon has one); the program reads from the fast one and
// writes through to both.
import type { TierPolicy } from '../spec.ts';
import { backingIo, backingStats, fileHeader, getattrHelper, nodesMap, xattrHelper } from './common.ts';

export function generateTier(spec: TierPolicy): string {
  return `${fileHeader(spec, `
Backing 0 is the slow tier and holds every file; backing 1 is the fast
tier, a cache.  At a file's first OPEN the daemon (src/policy/tier.ts)
publishes the slow file's backing id and, when the file is on the fast
tier (or small enough to be copied up there first), the fast copy's:
READ   from the fast copy when there is one, else from the slow tier; a
       failing fast copy falls back to the slow tier;
WRITE  to the slow tier first, then the same bytes to the fast copy
       (write-through: the slow tier is always complete);
GETATTR and the xattr reads from the slow tier.`)}
#define TIER_SLOW		0
#define TIER_FAST		1
/* Seconds the kernel may cache the attributes GETATTR returns */
#define TIER_ATTR_VALID		${spec.attrTimeout}
#define EIO			5

${nodesMap()}
${backingStats()}
${backingIo()}

static int tier_read(struct fuse_bpf_ctx *fctx, struct fuse_args *args,
		     struct fuse_kfunc_node *n)
{
	const struct fuse_read_in *in = bpf_fuse_in(args, 0, struct fuse_read_in);
	__u32 fast = n->backing[TIER_FAST];
	int ret;

	if (!in)
		return FUSE_BPF_UPCALL;
	if (fast) {
		ret = backing_io(fctx, fast, false, in->offset, in->size);
		count_io(TIER_FAST, false, ret);
		if (ret >= 0) {
			bpf_fuse_set_out_size(fctx, ret);
			return 0;
		}
	}
	ret = backing_io(fctx, n->backing[TIER_SLOW], false, in->offset, in->size);
	count_io(TIER_SLOW, false, ret);
	if (ret < 0)
		return ret;
	/* A failed fast read may have filled more of the reply */
	bpf_fuse_set_out_size(fctx, ret);
	return 0;
}

static int tier_write(struct fuse_bpf_ctx *fctx, struct fuse_args *args,
		      struct fuse_kfunc_node *n)
{
	const struct fuse_write_in *in = bpf_fuse_in(args, 0, struct fuse_write_in);
	struct fuse_write_out *out = bpf_fuse_out(args, 0, struct fuse_write_out);
	__u32 fast = n->backing[TIER_FAST];
	int ret;

	if (!in || !out)
		return FUSE_BPF_UPCALL;
	ret = backing_io(fctx, n->backing[TIER_SLOW], true, in->offset, in->size);
	count_io(TIER_SLOW, true, ret);
	if (ret < 0)
		return ret;
	out->size = ret;
	if (!fast || !ret)
		return 0;
	/* The copy takes what the slow tier took, so the two stay equal */
	ret = backing_io(fctx, fast, true, in->offset, ret);
	count_io(TIER_FAST, true, ret);
	if (ret < 0)
		return ret;
	if (ret < out->size)
		out->size = ret;
	return 0;
}

${getattrHelper()}
${xattrHelper()}
SEC("struct_ops.s/request")
int BPF_PROG(tier_request, struct fuse_bpf_ctx *fctx, struct fuse_args *args)
{
	__u32 op = fctx->opcode;
	__u64 nodeid = fctx->nodeid;
	struct fuse_kfunc_node *n;
	int ret = FUSE_BPF_UPCALL;

	if (op != FUSE_OP_READ && op != FUSE_OP_WRITE && op != FUSE_OP_GETATTR &&
	    op != FUSE_OP_GETXATTR && op != FUSE_OP_LISTXATTR)
		return FUSE_KFUNC_COUNT(fctx, ret);
	n = bpf_map_lookup_elem(&nodes, &nodeid);
	if (!n || n->nr != 2 || !n->backing[TIER_SLOW])	/* not open */
		return FUSE_KFUNC_COUNT(fctx, ret);
	if (op == FUSE_OP_READ)
		ret = tier_read(fctx, args, n);
	else if (op == FUSE_OP_WRITE)
		ret = tier_write(fctx, args, n);
	else if (op == FUSE_OP_GETATTR)
		ret = serve_getattr(fctx, args, n->backing[TIER_SLOW], TIER_ATTR_VALID);
	else
		ret = serve_xattr(fctx, args, n->backing[TIER_SLOW]);
	return FUSE_KFUNC_COUNT(fctx, ret);
}

SEC(".struct_ops.link")
struct fuse_bpf_ops tier_ops = {
	.request = (void *)tier_request,
	.name = "tier",
};
`;
}
