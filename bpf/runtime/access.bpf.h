/* SPDX-License-Identifier: GPL-2.0 */
/*
 * access.bpf.h - the runtime of access policies (filter): one backing file
 * per FUSE file, and around each operation on it a check before and one
 * after, as fuse-bpf's pre- and post-filters.
 *
 * The policy decides with two functions compiled from its TypeScript module
 * before this file is included:
 *
 *   policy_before(op)		0 lets FUSE opcode @op run; an errno refuses it
 *				(the backing file is not touched);
 *   policy_after(op, result)	0 keeps the result (bytes moved, 0, or
 *				-errno); an errno fails the operation with it.
 *
 * Served for open files (the daemon publishes the backing id at OPEN): READ,
 * WRITE, GETATTR, FSYNC, FLUSH, FALLOCATE, LSEEK and the xattr reads.  The
 * difference from fuse-bpf: the checks and the backing call are one program
 * with the VFS behind kfuncs, not a kernel pipeline around BPF.  The daemon
 * (src/policy/runtime/access.ts) calls the same functions around what it
 * serves, so a daemon-only mount is the reference.
 */
#ifndef __FUSE_KFUNC_ACCESS_BPF_H
#define __FUSE_KFUNC_ACCESS_BPF_H

#ifndef POLICY_NAME
#error "a compiled policy defines POLICY_NAME, POLICY_OPS, POLICY_REQUEST first"
#endif

static __always_inline __s64 policy_before(__s64 op);
static __always_inline __s64 policy_after(__s64 op, __s64 result);

/* What the after-check saw, per opcode: calls, errors, bytes */
struct access_stats {
	__u64 calls;
	__u64 errors;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FUSE_OP_MAX);
	__type(key, __u32);
	__type(value, struct access_stats);
} access_stats SEC(".maps");

/* The backing operations on @fb: each returns bytes moved, 0, or -errno */
static int do_read(struct fuse_bpf_ctx *fctx, struct fuse_args *args,
		   struct bpf_file *fb)
{
	const struct fuse_read_in *in = bpf_fuse_in(args, 0, struct fuse_read_in);
	int ret;

	if (!in)
		return -EIO;
	ret = file_io(fctx, fb, false, in->offset, in->size);
	if (ret >= 0)
		bpf_fuse_set_out_size(fctx, ret);
	return ret;
}

static int do_write(struct fuse_bpf_ctx *fctx, struct fuse_args *args,
		    struct bpf_file *fb)
{
	const struct fuse_write_in *in = bpf_fuse_in(args, 0, struct fuse_write_in);
	struct fuse_write_out *out = bpf_fuse_out(args, 0, struct fuse_write_out);
	int ret;

	if (!in || !out)
		return -EIO;
	ret = file_io(fctx, fb, true, in->offset, in->size);
	if (ret >= 0)
		out->size = ret;
	return ret;
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
	out->attr_valid = policy_attr_timeout;
	out->attr_valid_nsec = 0;
	return 0;
}

static int do_fsync(struct fuse_bpf_ctx *fctx, struct fuse_args *args,
		    struct bpf_file *fb)
{
	const struct fuse_fsync_in *in = bpf_fuse_in(args, 0, struct fuse_fsync_in);

	if (!in)
		return -EIO;
	/* bit 0 of fsync_flags: FUSE_FSYNC_FDATASYNC */
	return bpf_vfs_fsync(&fctx->vfs, fb, in->fsync_flags & 1);
}

static int do_fallocate(struct fuse_bpf_ctx *fctx, struct fuse_args *args,
			struct bpf_file *fb)
{
	const struct fuse_fallocate_in *in = bpf_fuse_in(args, 0,
							 struct fuse_fallocate_in);

	if (!in)
		return -EIO;
	return bpf_vfs_fallocate(&fctx->vfs, fb, in->mode, in->offset,
				 in->length);
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
		      struct bpf_file *fb)
{
	switch (fctx->opcode) {
	case FUSE_OP_READ:
		return do_read(fctx, args, fb);
	case FUSE_OP_WRITE:
		return do_write(fctx, args, fb);
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
	default:		/* GETXATTR, LISTXATTR */
		return fuse_serve_getxattr(fctx, args, fb);
	}
}

static void count_access(__u32 op, int ret)
{
	struct access_stats *st = bpf_map_lookup_elem(&access_stats, &op);

	if (!st)
		return;
	__sync_fetch_and_add(&st->calls, 1);
	if (ret < 0)
		__sync_fetch_and_add(&st->errors, 1);
	else
		__sync_fetch_and_add(&st->bytes, ret);
}

static bool served(__u32 op)
{
	return op == FUSE_OP_READ || op == FUSE_OP_WRITE ||
	       op == FUSE_OP_GETATTR || op == FUSE_OP_FSYNC ||
	       op == FUSE_OP_FLUSH || op == FUSE_OP_FALLOCATE ||
	       op == FUSE_OP_LSEEK || op == FUSE_OP_GETXATTR ||
	       op == FUSE_OP_LISTXATTR;
}

/* The errno FUSE takes as "not implemented", for the whole mount */
#define FUSE_ERRNO_UNIMPLEMENTED	38

/*
 * An errno the policy answered, as the request's result: EIO for anything
 * outside 1..511 and for FUSE_ERRNO_UNIMPLEMENTED, after which FUSE would
 * stop sending the operation at all.
 */
static __always_inline int policy_error(__s64 e)
{
	return e > 0 && e < 512 && e != FUSE_ERRNO_UNIMPLEMENTED ? -e : -EIO;
}

SEC("struct_ops.s/request")
int BPF_PROG(POLICY_REQUEST, struct fuse_bpf_ctx *fctx, struct fuse_args *args)
{
	__u64 nodeid = fctx->nodeid;
	__u32 op = fctx->opcode;
	struct policy_node *n;
	struct bpf_file *fb;
	__s64 e;
	int ret;

#ifdef POLICY_RAW
	/* The module's raw handlers first: what it serves itself */
	ret = policy_raw(fctx, args, bpf_map_lookup_elem(&nodes, &nodeid));
	if (ret != FUSE_BPF_UPCALL)
		return FUSE_KFUNC_COUNT(fctx, ret);
#endif
	if (!served(op))
		return FUSE_KFUNC_COUNT(fctx, FUSE_BPF_UPCALL);
	n = bpf_map_lookup_elem(&nodes, &nodeid);
	if (!n || n->nr != policy_backings || !node_backing(n, 0))
		return FUSE_KFUNC_COUNT(fctx, FUSE_BPF_UPCALL);	/* not open */
	e = policy_before(op);
	if (e)
		return FUSE_KFUNC_COUNT(fctx, policy_error(e));
	fb = backing_get(fctx, n, 0);
	if (!fb)		/* id closed behind our back */
		return FUSE_KFUNC_COUNT(fctx, FUSE_BPF_UPCALL);
	ret = backing_op(fctx, args, fb);
	bpf_file_release(fb);
	count_access(op, ret);
	e = policy_after(op, ret);
	if (e)
		ret = policy_error(e);
	return FUSE_KFUNC_COUNT(fctx, ret < 0 ? ret : 0);
}

SEC(".struct_ops.link")
struct fuse_bpf_ops POLICY_OPS = {
	.request = (void *)POLICY_REQUEST,
	.name = POLICY_NAME,
};

#endif /* __FUSE_KFUNC_ACCESS_BPF_H */
