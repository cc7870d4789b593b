/* SPDX-License-Identifier: GPL-2.0 */
/*
 * layout.bpf.h - the runtime of data-layout policies (stripe, concatenation):
 * one FUSE file spread over one file in each backing directory.
 *
 * The policy decides where bytes live, with three functions compiled from
 * its TypeScript module before this file is included:
 *
 *   policy_locate(off, &seg)	logical byte @off is at byte seg.offset of
 *				backing seg.backing, and seg.length bytes
 *				from there on are contiguous on it;
 *   policy_backing_size(size, i)	how long backing @i's file is when the
 *				file is @size bytes long and fully written;
 *   policy_logical_end(size, i)	the end of the file a backing file of
 *				@size bytes at index @i implies.
 *
 * This file serves READ, WRITE and GETATTR of open files, and the xattr
 * reads, with those answers.  The daemon (src/policy/runtime/layout.ts) keeps
 * names in step in every backing directory, opens a file's pieces at its
 * first OPEN, publishes their ids in "nodes", and serves everything else by
 * calling the same functions in TypeScript.
 *
 * Sizes follow one invariant: after every WRITE each backing file is at
 * least policy_backing_size() long, so a hole inside the file is a hole of a
 * backing file and reads as zeros, and a short piece is the end of the file.
 */
#ifndef __FUSE_KFUNC_LAYOUT_BPF_H
#define __FUSE_KFUNC_LAYOUT_BPF_H

#ifndef POLICY_NAME
#error "a compiled policy defines POLICY_NAME, POLICY_OPS, POLICY_REQUEST first"
#endif

static __always_inline int policy_locate(__s64 off, struct policy_segment *seg);
static __always_inline __s64 policy_backing_size(__s64 size, __s64 i);
static __always_inline __s64 policy_logical_end(__s64 size, __s64 i);

/*
 * Pieces one request may take: a request is at most 1 MiB (max_pages 256) and
 * a segment at least a page, plus one for an unaligned start.  A layout with
 * smaller segments leaves longer requests to the daemon, which serves them
 * with the same functions.
 */
#define LAYOUT_MAX_PIECES	257

/* layout_io()'s "ask the daemon": no errno is this large */
#define LAYOUT_UPCALL		(-FUSE_BPF_MAX_ERRNO - 1)

/*
 * Walk the request segment by segment, moving each piece between the
 * request's data and its backing file.  Returns the bytes moved (short at the
 * end of the file), -errno, or LAYOUT_UPCALL when the request needs more
 * pieces than LAYOUT_MAX_PIECES (nothing is lost: the daemon redoes it).
 */
static int layout_io(struct fuse_bpf_ctx *fctx, struct policy_node *n,
		     bool write, __u64 offset, __u32 size)
{
	struct policy_segment seg;
	struct bpf_file *fb;
	__u32 done = 0, len;
	int p, ret;

	bpf_for(p, 0, LAYOUT_MAX_PIECES) {
		if (done >= size)
			return done;
		seg = (struct policy_segment){};
		policy_locate(offset + done, &seg);
		/* A segment outside the mount or empty is the policy's bug */
		if (seg.backing < 0 || seg.backing >= policy_backings ||
		    seg.offset < 0 || seg.length <= 0)
			return -EIO;
		len = seg.length < size - done ? seg.length : size - done;
		fb = backing_get(fctx, n, seg.backing);
		if (!fb)
			return -EIO;	/* id closed behind our back */
		if (write)
			ret = bpf_fuse_write(fctx, fb, seg.offset, done, len);
		else
			ret = bpf_fuse_read(fctx, fb, seg.offset, done, len);
		bpf_file_release(fb);
		count_io(seg.backing, write, ret);
		if (ret < 0)
			return ret;
		done += ret;
		if (ret < len)
			return done;	/* end of the file, or the backing is full */
	}
	return done < size ? LAYOUT_UPCALL : done;
}

/*
 * Grow every backing to its size for a file ending at @end.  fallocate() of
 * the last byte, not truncate(): it never shrinks a file that a concurrent
 * WRITE has made longer in the meantime.
 */
static int layout_extend(struct fuse_bpf_ctx *fctx, struct policy_node *n,
			 __u64 end)
{
	struct fuse_attr attr = {};
	struct bpf_file *fb;
	__s64 want;
	int i, ret;

	for (i = 0; i < FUSE_KFUNC_MAX_BACKINGS && i < policy_backings; i++) {
		want = policy_backing_size(end, i);
		if (want <= 0)
			continue;
		fb = backing_get(fctx, n, i);
		if (!fb)
			return -EIO;
		ret = fuse_reply_attr(fctx, fb, &attr);
		if (!ret && attr.size < want) {
			ret = bpf_vfs_fallocate(&fctx->vfs, fb, 0, want - 1, 1);
			if (ret == -EOPNOTSUPP)
				ret = bpf_vfs_truncate(&fctx->vfs, &fb->path, want);
		}
		bpf_file_release(fb);
		if (ret < 0)
			return ret;
	}
	return 0;
}

static int family_read(struct fuse_bpf_ctx *fctx, struct fuse_args *args,
		       struct policy_node *n, __s64 home)
{
	const struct fuse_read_in *in = bpf_fuse_in(args, 0, struct fuse_read_in);
	int ret;

	if (!in)
		return FUSE_BPF_UPCALL;
	ret = layout_io(fctx, n, false, in->offset, in->size);
	if (ret == LAYOUT_UPCALL)
		return FUSE_BPF_UPCALL;
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
	int done, ret;

	if (!in || !out)
		return FUSE_BPF_UPCALL;
	done = layout_io(fctx, n, true, in->offset, in->size);
	if (done == LAYOUT_UPCALL)
		return FUSE_BPF_UPCALL;
	if (done < 0)
		return done;
	ret = layout_extend(fctx, n, in->offset + done);
	if (ret < 0)
		return ret;
	out->size = done;
	return 0;
}

/*
 * The file's size from every piece's, and every piece's blocks, in @attr;
 * with @base, the rest of @attr from backing 0's piece too, else @attr
 * holds backing 0's attributes already.
 */
static int family_fix_attr(struct fuse_bpf_ctx *fctx, struct policy_node *n,
			   struct fuse_attr *attr, bool base)
{
	struct fuse_attr piece = {};
	struct bpf_file *fb;
	__u64 size = 0, blocks = 0;
	__s64 end;
	int i, ret;

	for (i = 0; i < FUSE_KFUNC_MAX_BACKINGS && i < policy_backings; i++) {
		if (i == 0 && !base) {
			piece = *attr;	/* backing 0's already */
		} else {
			fb = backing_get(fctx, n, i);
			if (!fb)
				return -EIO;
			ret = fuse_reply_attr(fctx, fb, &piece);
			bpf_file_release(fb);
			if (ret < 0)
				return ret;
		}
		if (i == 0 && base)
			*attr = piece;
		/* A directory or a link is backing 0's as it is */
		if ((piece.mode & S_IFMT) != S_IFREG)
			return 0;
		end = piece.size ? policy_logical_end(piece.size, i) : 0;
		if (end > 0 && end > size)
			size = end;
		blocks += piece.blocks;
	}
	attr->size = size;
	attr->blocks = blocks;
	return 0;
}

/* Backing 0's attributes with the file's size and every piece's blocks */
static int family_getattr(struct fuse_bpf_ctx *fctx, struct fuse_args *args,
			  struct policy_node *n, __s64 home)
{
	struct fuse_attr_out *out = bpf_fuse_out(args, 0, struct fuse_attr_out);
	int ret;

	if (!out)
		return FUSE_BPF_UPCALL;
	ret = family_fix_attr(fctx, n, &out->attr, true);
	if (ret < 0)
		return ret;
	out->attr_valid = policy_attr_timeout;
	out->attr_valid_nsec = 0;
	return 0;
}

/* A truncation to @size leaves backing @i's piece this long */
static __always_inline __s64 family_size(__s64 size, __s64 i)
{
	__s64 want = policy_backing_size(size, i);

	return want > 0 ? want : 0;
}

/* FALLOCATE would need the layout's mapping of the range: not served */
static const bool family_copies;

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

#endif /* __FUSE_KFUNC_LAYOUT_BPF_H */
