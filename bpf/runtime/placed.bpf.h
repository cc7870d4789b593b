/* SPDX-License-Identifier: GPL-2.0 */
/*
 * placed.bpf.h - the request half of the families whose FUSE file is one
 * backing file in one of the backing directories (placement.bpf.h,
 * layers.bpf.h), included last by each.
 *
 * The daemon publishes the file's backing id at the index of the directory
 * it lives in (0 elsewhere).  READ, WRITE, GETATTR and the xattr reads go to
 * that file and are counted there.  The family says, with
 * family_may_write(), whether that directory takes writes.
 */
#ifndef __FUSE_KFUNC_PLACED_BPF_H
#define __FUSE_KFUNC_PLACED_BPF_H

#define EROFS			30

/* The backing directory the open file lives in: the one index with an id */
static __always_inline __s64 family_home(struct policy_node *n)
{
	return node_first(n);
}

static int family_read(struct fuse_bpf_ctx *fctx, struct fuse_args *args,
		       struct policy_node *n, __s64 home)
{
	const struct fuse_read_in *in = bpf_fuse_in(args, 0, struct fuse_read_in);
	int ret;

	if (!in)
		return FUSE_BPF_UPCALL;
	ret = backing_io(fctx, n, home, false, in->offset, in->size);
	count_io(home, false, ret);
	if (ret < 0)
		return ret;
	bpf_fuse_set_out_size(fctx, ret);
	return 0;
}

static int family_write(struct fuse_bpf_ctx *fctx, struct fuse_args *args,
			struct policy_node *n, __s64 home)
{
	const struct fuse_write_in *in = bpf_fuse_in(args, 0, struct fuse_write_in);
	struct fuse_write_out *out = bpf_fuse_out(args, 0, struct fuse_write_out);
	int ret;

	if (!in || !out)
		return FUSE_BPF_UPCALL;
	if (!family_may_write(home))
		return -EROFS;
	ret = backing_io(fctx, n, home, true, in->offset, in->size);
	count_io(home, true, ret);
	if (ret < 0)
		return ret;
	out->size = ret;
	return 0;
}

static int family_getattr(struct fuse_bpf_ctx *fctx, struct fuse_args *args,
			  struct policy_node *n, __s64 home)
{
	return serve_getattr(fctx, args, n, home);
}

#include "dispatch.bpf.h"

#endif /* __FUSE_KFUNC_PLACED_BPF_H */
