/* SPDX-License-Identifier: GPL-2.0 */
/*
 * spread.bpf.h - the runtime of spread policies: each file lives on a set of
 * backing directories chosen when it was made (one: placed there; several:
 * replicas of each other), and stays there; directories live in all of them.
 *
 * The policy decides with one function compiled from its TypeScript module
 * before this file is included:
 *
 *   policy_create(path, path_len, turn)	the backing directories a new file
 *				at @path is made on, as a bit mask; @turn counts
 *				the mount's creations.
 *
 * Names are the daemon's (src/policy/runtime/spread.ts): it calls that
 * function when a file is made, finds where an existing file lives, and at a
 * file's first OPEN publishes the backing ids of its copies at their
 * directories' indices (0 elsewhere); policy_create() is compiled and checked
 * natively but not called here yet.  This file serves:
 *
 * READ	from the first copy, the next one after an error;
 * WRITE	to every copy; the reply is what all of them took, an error from
 *	any copy returned after the others were written;
 * GETATTR and the xattr reads from the first copy (the daemon's attributes).
 */
#ifndef __FUSE_KFUNC_SPREAD_BPF_H
#define __FUSE_KFUNC_SPREAD_BPF_H

#ifndef POLICY_NAME
#error "a compiled policy defines POLICY_NAME, POLICY_OPS, POLICY_REQUEST first"
#endif

/* Not called yet (see above): the compiler marks it unused */
static __always_inline __s64 policy_create(const char *path, __s64 path_len,
					   __s64 turn);

static int family_read(struct fuse_bpf_ctx *fctx, struct fuse_args *args,
		       struct policy_node *n, __s64 home)
{
	const struct fuse_read_in *in = bpf_fuse_in(args, 0, struct fuse_read_in);
	int i, ret = -EIO;

	if (!in)
		return FUSE_BPF_UPCALL;
	for (i = 0; i < FUSE_KFUNC_MAX_BACKINGS && i < policy_backings; i++) {
		if (!node_backing(n, i))
			continue;
		ret = backing_io(fctx, n, i, false, in->offset, in->size);
		count_io(i, false, ret);
		if (ret >= 0) {
			/* A copy that failed may have filled more of the reply */
			bpf_fuse_set_out_size(fctx, ret);
			return 0;
		}
	}
	return ret;
}

static int family_write(struct fuse_bpf_ctx *fctx, struct fuse_args *args,
			struct policy_node *n, __s64 home)
{
	return write_copies(fctx, args, n, true);
}

static int family_getattr(struct fuse_bpf_ctx *fctx, struct fuse_args *args,
			  struct policy_node *n, __s64 home)
{
	return serve_getattr(fctx, args, n, home);
}

/* The first copy: its attributes are the file's */
static __always_inline __s64 family_home(struct policy_node *n)
{
	return node_first(n);
}

#include "dispatch.bpf.h"

#endif /* __FUSE_KFUNC_SPREAD_BPF_H */
