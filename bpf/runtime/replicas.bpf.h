/* SPDX-License-Identifier: GPL-2.0 */
/*
 * replicas.bpf.h - the runtime of replica policies (mirror, RAID-1): every
 * backing directory holds the same files and the same bytes.
 *
 * The policy decides where a READ goes, with one function compiled from its
 * TypeScript module before this file is included:
 *
 *   policy_read_from(attempt, turn)	the replica a READ's attempt-th try
 *				goes to; turn counts the mount's READs.
 *
 * READ	tries replicas in that order, the next one after an error, so a bad
 *	replica costs latency, not availability.
 * WRITE	goes to every replica; the reply is what all of them took.  An error
 *	from any replica is returned after the others were written, so the
 *	healthy ones stay identical.
 * GETATTR of an open file from the first replica that answers; xattr reads
 *	from the first.
 *
 * The daemon (src/policy/runtime/replicas.ts) keeps names in step in every
 * replica directory, publishes an open file's backing ids in "nodes", and
 * serves what comes up the same way, calling the same function.
 */
#ifndef __FUSE_KFUNC_REPLICAS_BPF_H
#define __FUSE_KFUNC_REPLICAS_BPF_H

#ifndef POLICY_NAME
#error "a compiled policy defines POLICY_NAME, POLICY_OPS, POLICY_REQUEST first"
#endif

static __always_inline __s64 policy_read_from(__s64 attempt, __s64 turn);

/* READ cursor; racy on purpose: a lost update only skews the balance */
static __u32 read_turn;

static int family_read(struct fuse_bpf_ctx *fctx, struct fuse_args *args,
		       struct policy_node *n, __s64 home)
{
	const struct fuse_read_in *in = bpf_fuse_in(args, 0, struct fuse_read_in);
	__u32 turn = read_turn++;
	int i, ret = -EIO;
	__s64 r;

	if (!in)
		return FUSE_BPF_UPCALL;
	for (i = 0; i < FUSE_KFUNC_MAX_BACKINGS && i < policy_backings; i++) {
		r = policy_read_from(i, turn);
		if (r < 0 || r >= policy_backings)
			return -EIO;	/* the policy's bug: a replica that is not there */
		ret = backing_io(fctx, n, r, false, in->offset, in->size);
		count_io(r, false, ret);
		if (ret >= 0) {
			/* A replica that failed may have filled more of the reply */
			bpf_fuse_set_out_size(fctx, ret);
			return 0;
		}
	}
	return ret;
}

static int family_write(struct fuse_bpf_ctx *fctx, struct fuse_args *args,
			struct policy_node *n, __s64 home)
{
	return write_copies(fctx, args, n, false);
}

static int family_getattr(struct fuse_bpf_ctx *fctx, struct fuse_args *args,
			  struct policy_node *n, __s64 home)
{
	struct fuse_attr_out *out = bpf_fuse_out(args, 0, struct fuse_attr_out);
	struct bpf_file *fb;
	int i, ret = -EIO;

	if (!out)
		return FUSE_BPF_UPCALL;
	for (i = 0; i < FUSE_KFUNC_MAX_BACKINGS && i < policy_backings; i++) {
		fb = backing_get(fctx, n, i);
		if (!fb)
			continue;
		ret = fuse_reply_attr(fctx, fb, &out->attr);
		bpf_file_release(fb);
		if (!ret) {
			out->attr_valid = policy_attr_timeout;
			out->attr_valid_nsec = 0;
			return 0;
		}
	}
	return ret;
}

#ifdef POLICY_KERNEL_NAMES
/* Attributes are the first replica's, which @attr holds with @base (names.bpf.h) */
static int family_fix_attr(struct fuse_bpf_ctx *fctx, struct policy_node *n,
			   struct fuse_attr *attr, bool base)
{
	struct bpf_file *fb;
	int ret;

	if (!base)
		return 0;
	fb = backing_get(fctx, n, 0);
	if (!fb)
		return -EIO;
	ret = fuse_reply_attr(fctx, fb, attr);
	bpf_file_release(fb);
	return ret;
}
#endif

/* Every replica is the whole file */
static __always_inline __s64 family_size(__s64 size, __s64 i)
{
	return size;
}

/* FALLOCATE reaches every replica */
static const bool family_copies = true;

/* The daemon sets attributes and xattrs on the first backing directory's file */
static __always_inline __s64 family_home(struct policy_node *n)
{
	return 0;
}

#ifdef POLICY_KERNEL_NAMES
#include "names.bpf.h"
#else
#include "dispatch.bpf.h"
#endif

#endif /* __FUSE_KFUNC_REPLICAS_BPF_H */
