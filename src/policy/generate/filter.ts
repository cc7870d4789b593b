// The filter policy: fuse-bpf's design (one backing file per FUSE file; for each operation
// a pre-filter that may refuse or pass the request, the backing operation, and a post-filter
// that sees the result) written against this hook, so the two designs can be compared on
// the same kernel, program shape and workload.
import { FILTER_OPS, type FilterOp, type FilterPolicy } from '../spec.ts';
import { fileHeader, nodesMap } from './common.ts';

const OPCODE: Record<FilterOp, string> = {
  read: 'FUSE_OP_READ', write: 'FUSE_OP_WRITE', getattr: 'FUSE_OP_GETATTR', fsync: 'FUSE_OP_FSYNC',
  flush: 'FUSE_OP_FLUSH', fallocate: 'FUSE_OP_FALLOCATE', lseek: 'FUSE_OP_LSEEK',
  getxattr: 'FUSE_OP_GETXATTR', listxattr: 'FUSE_OP_LISTXATTR',
};

export function generateFilter(spec: FilterPolicy): string {
  const deny = (op: FilterOp) => (spec.deny.includes(op) ? 1 : 0);
  return `${fileHeader(spec, `
Each served operation runs three steps, as a fuse-bpf filter program does:
  pre_filter()    sees the request; returns FILTER_PASS, or an error for the
                  caller, or FUSE_BPF_UPCALL to hand it to the daemon;
  the backing operation, on the file the daemon registered at OPEN;
  post_filter()   sees the result and may replace it.
Here the pre-filter refuses the operations the policy denies (EPERM) and
the post-filter counts what passed; replace either to build on it.
The difference from fuse-bpf: the filters and the backing call are one
program with the VFS behind kfuncs, not a kernel pipeline around BPF.`)}
#define EPERM			1
#define EIO			5
#define FILTER_PASS		0
/* Calls to move one request: a regular file is short only at its end */
#define FILTER_MAX_CALLS	16
#define FILTER_ATTR_VALID	${spec.attrTimeout}

/* Denied by the pre-filter (1) or passed (0), per operation */
${FILTER_OPS.map((op) => `#define FILTER_DENY_${op.toUpperCase()}${'\t'.repeat(op.length > 5 ? 1 : 2)}${deny(op)}`).join('\n')}

${nodesMap()}
/* What each post-filter saw, per opcode: calls, errors, bytes */
struct filter_stats {
	__u64 calls;
	__u64 errors;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FUSE_OP_MAX);
	__type(key, __u32);
	__type(value, struct filter_stats);
} filter_stats SEC(".maps");

static __always_inline bool denied(__u32 op)
{
	switch (op) {
${FILTER_OPS.map((op) => `\tcase ${OPCODE[op]}:\n\t\treturn FILTER_DENY_${op.toUpperCase()};`).join('\n')}
	default:
		return true;	/* not an operation this policy serves */
	}
}

static int pre_filter(struct fuse_bpf_ctx *fctx, struct fuse_args *args)
{
	if (denied(fctx->opcode))
		return -EPERM;
	return FILTER_PASS;
}

static int post_filter(struct fuse_bpf_ctx *fctx, struct fuse_args *args,
		       int ret, __u64 bytes)
{
	__u32 op = fctx->opcode;
	struct filter_stats *st = bpf_map_lookup_elem(&filter_stats, &op);

	if (st) {
		__sync_fetch_and_add(&st->calls, 1);
		if (ret < 0)
			__sync_fetch_and_add(&st->errors, 1);
		else
			__sync_fetch_and_add(&st->bytes, bytes);
	}
	return ret;
}

/* The backing operations: each returns 0 or -errno and fills the reply */
static int do_read(struct fuse_bpf_ctx *fctx, struct fuse_args *args,
		   struct bpf_file *fb, __u64 *bytes)
{
	const struct fuse_read_in *in = bpf_fuse_in(args, 0, struct fuse_read_in);
	__u32 done = 0;
	int c, ret = 0;

	if (!in)
		return -EIO;
	for (c = 0; c < FILTER_MAX_CALLS && done < in->size; c++) {
		ret = bpf_fuse_read(fctx, fb, in->offset + done, done, in->size - done);
		if (ret <= 0)
			break;
		done += ret;
	}
	if (ret < 0)
		return ret;
	bpf_fuse_set_out_size(fctx, done);
	*bytes = done;
	return 0;
}

static int do_write(struct fuse_bpf_ctx *fctx, struct fuse_args *args,
		    struct bpf_file *fb, __u64 *bytes)
{
	const struct fuse_write_in *in = bpf_fuse_in(args, 0, struct fuse_write_in);
	struct fuse_write_out *out = bpf_fuse_out(args, 0, struct fuse_write_out);
	__u32 done = 0;
	int c, ret = 0;

	if (!in || !out)
		return -EIO;
	for (c = 0; c < FILTER_MAX_CALLS && done < in->size; c++) {
		ret = bpf_fuse_write(fctx, fb, in->offset + done, done, in->size - done);
		if (ret <= 0)
			break;
		done += ret;
	}
	if (ret < 0)
		return ret;
	out->size = done;
	*bytes = done;
	return 0;
}

static int do_getattr(struct fuse_bpf_ctx *fctx, struct fuse_args *args,
		      struct bpf_file *fb)
{
	struct fuse_attr_out *out = bpf_fuse_out(args, 0, struct fuse_attr_out);
	int ret;

	if (!out)
		return -EIO;
	ret = fuse_reply_attr(fctx, fb, &out->attr);
	if (ret < 0)
		return ret;
	out->attr_valid = FILTER_ATTR_VALID;
	out->attr_valid_nsec = 0;
	return 0;
}

static int do_fsync(struct fuse_bpf_ctx *fctx, struct fuse_args *args,
		    struct bpf_file *fb)
{
	const struct fuse_fsync_in *in = bpf_fuse_in(args, 0, struct fuse_fsync_in);

	if (!in)
		return -EIO;
	return bpf_vfs_fsync(&fctx->vfs, fb, in->fsync_flags & 1);	/* FUSE_FSYNC_FDATASYNC */
}

static int do_fallocate(struct fuse_bpf_ctx *fctx, struct fuse_args *args,
			struct bpf_file *fb)
{
	const struct fuse_fallocate_in *in = bpf_fuse_in(args, 0, struct fuse_fallocate_in);

	if (!in)
		return -EIO;
	return bpf_vfs_fallocate(&fctx->vfs, fb, in->mode, in->offset, in->length);
}

static int do_lseek(struct fuse_bpf_ctx *fctx, struct fuse_args *args,
		    struct bpf_file *fb)
{
	const struct fuse_lseek_in *in = bpf_fuse_in(args, 0, struct fuse_lseek_in);
	struct fuse_lseek_out *out = bpf_fuse_out(args, 0, struct fuse_lseek_out);
	__s64 pos;

	if (!in || !out)
		return -EIO;
	pos = bpf_vfs_llseek(&fctx->vfs, fb, in->offset, in->whence);
	if (pos < 0)
		return pos;
	out->offset = pos;
	return 0;
}

static int backing_op(struct fuse_bpf_ctx *fctx, struct fuse_args *args,
		      struct bpf_file *fb, __u64 *bytes)
{
	switch (fctx->opcode) {
	case FUSE_OP_READ:
		return do_read(fctx, args, fb, bytes);
	case FUSE_OP_WRITE:
		return do_write(fctx, args, fb, bytes);
	case FUSE_OP_GETATTR:
		return do_getattr(fctx, args, fb);
	case FUSE_OP_FSYNC:
		return do_fsync(fctx, args, fb);
	case FUSE_OP_FLUSH:
		return bpf_vfs_flush(&fctx->vfs, fb);
	case FUSE_OP_FALLOCATE:
		return do_fallocate(fctx, args, fb);
	case FUSE_OP_LSEEK:
		return do_lseek(fctx, args, fb);
	case FUSE_OP_GETXATTR:
	case FUSE_OP_LISTXATTR:
		return fuse_serve_getxattr(fctx, args, fb);
	}
	return FUSE_BPF_UPCALL;
}

static bool served(__u32 op)
{
	return op == FUSE_OP_READ || op == FUSE_OP_WRITE ||
	       op == FUSE_OP_GETATTR || op == FUSE_OP_FSYNC ||
	       op == FUSE_OP_FLUSH || op == FUSE_OP_FALLOCATE ||
	       op == FUSE_OP_LSEEK || op == FUSE_OP_GETXATTR ||
	       op == FUSE_OP_LISTXATTR;
}

SEC("struct_ops.s/request")
int BPF_PROG(filter_request, struct fuse_bpf_ctx *fctx, struct fuse_args *args)
{
	__u64 nodeid = fctx->nodeid, bytes = 0;
	struct bpf_file *fb;
	struct fuse_kfunc_node *n;
	int ret;

	if (!served(fctx->opcode))
		return FUSE_KFUNC_COUNT(fctx, FUSE_BPF_UPCALL);
	n = bpf_map_lookup_elem(&nodes, &nodeid);
	if (!n || n->nr < 1)	/* not open: the daemon knows */
		return FUSE_KFUNC_COUNT(fctx, FUSE_BPF_UPCALL);

	ret = pre_filter(fctx, args);
	if (ret != FILTER_PASS)
		return FUSE_KFUNC_COUNT(fctx, ret);
	fb = bpf_fuse_backing_get(fctx, n->backing[0]);
	if (!fb)		/* id closed behind our back */
		return FUSE_KFUNC_COUNT(fctx, FUSE_BPF_UPCALL);
	ret = backing_op(fctx, args, fb, &bytes);
	bpf_file_release(fb);
	if (ret == FUSE_BPF_UPCALL)
		return FUSE_KFUNC_COUNT(fctx, ret);
	return FUSE_KFUNC_COUNT(fctx, post_filter(fctx, args, ret, bytes));
}

SEC(".struct_ops.link")
struct fuse_bpf_ops filter_ops = {
	.request = (void *)filter_request,
	.name = "filter",
};
`;
}
