/* SPDX-License-Identifier: GPL-2.0 */
/*
 * tiers.bpf.h - the runtime of tiered policies (tier): backing 0 is the slow
 * tier and holds every file, backing 1 the fast tier, a cache of some of
 * them under the same names.
 *
 * The policy decides with one function compiled from its TypeScript module
 * before this file is included:
 *
 *   policy_promote(size)	whether a cold file of @size bytes is copied to
 *				the fast tier at its first open.
 *
 * The daemon (src/policy/runtime/tiers.ts) calls it at a file's first OPEN
 * and publishes the slow file's backing id and, when the file is on the fast
 * tier (or was just copied there), the fast copy's; policy_promote() is
 * compiled and checked natively but not called here.  This file serves:
 *
 * READ	from the fast copy when there is one, else from the slow tier; a
 *	failing fast copy falls back to the slow tier;
 * WRITE	to the slow tier first, then the same bytes to the fast copy
 *	(write-through: the slow tier is always complete);
 * GETATTR and the xattr reads from the slow tier.
 */
#ifndef __FUSE_KFUNC_TIERS_BPF_H
#define __FUSE_KFUNC_TIERS_BPF_H

#ifndef POLICY_NAME
#error "a compiled policy defines POLICY_NAME, POLICY_OPS, POLICY_REQUEST first"
#endif

#define TIER_SLOW		0
#define TIER_FAST		1

/* Not called here (see above): the compiler marks it unused */
static __always_inline __s64 policy_promote(__s64 size);

static int family_read(struct fuse_bpf_ctx *fctx, struct fuse_args *args,
		       struct policy_node *n, __s64 home)
{
	const struct fuse_read_in *in = bpf_fuse_in(args, 0, struct fuse_read_in);
	int ret;

	if (!in)
		return FUSE_BPF_UPCALL;
	if (node_backing(n, TIER_FAST)) {
		ret = backing_io(fctx, n, TIER_FAST, false, in->offset, in->size);
		count_io(TIER_FAST, false, ret);
		if (ret >= 0) {
			bpf_fuse_set_out_size(fctx, ret);
			return 0;
		}
	}
	ret = backing_io(fctx, n, TIER_SLOW, false, in->offset, in->size);
	count_io(TIER_SLOW, false, ret);
	if (ret < 0)
		return ret;
	/* A failed fast read may have filled more of the reply */
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
	ret = backing_io(fctx, n, TIER_SLOW, true, in->offset, in->size);
	count_io(TIER_SLOW, true, ret);
	if (ret < 0)
		return ret;
	out->size = ret;
	if (!node_backing(n, TIER_FAST) || !ret)
		return 0;
	/* The copy takes what the slow tier took, so the two stay equal */
	ret = backing_io(fctx, n, TIER_FAST, true, in->offset, ret);
	count_io(TIER_FAST, true, ret);
	if (ret < 0)
		return ret;
	if (ret < out->size)
		out->size = ret;
	return 0;
}

static int family_getattr(struct fuse_bpf_ctx *fctx, struct fuse_args *args,
			  struct policy_node *n, __s64 home)
{
	return serve_getattr(fctx, args, n, TIER_SLOW);
}

/* The slow tier holds every file; a node without its id is the daemon's */
static __always_inline __s64 family_home(struct policy_node *n)
{
	return node_backing(n, TIER_SLOW) ? TIER_SLOW : -1;
}

#include "dispatch.bpf.h"

#endif /* __FUSE_KFUNC_TIERS_BPF_H */
