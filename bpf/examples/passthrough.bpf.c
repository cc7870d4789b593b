// SPDX-License-Identifier: GPL-2.0
/*
 * passthrough: the simplest useful fuse_bpf_ops program.  READ, WRITE,
 * GETATTR, GETXATTR and LISTXATTR of an open regular file are served in
 * the kernel from the backing file the daemon registered for it;
 * everything else goes to the daemon.  (GETXATTR matters for writes: the
 * kernel asks for security.capability before each one.)
 *
 * The daemon (src/sdk/mount-serve.ts) registers a backing id with
 * FUSE_DEV_IOC_BACKING_OPEN at the first OPEN/CREATE of a file and
 * publishes it in "nodes" (nodeid -> id), and deletes the entry at the
 * last RELEASE (struct fuse_kfunc_node, fuse_kfunc_daemon.h: the maps the
 * daemon and a program share); this program uses backing[0] only and
 * caches nothing.
 *
 * Counts every request with FUSE_KFUNC_COUNT (fuse_kfunc_stats.h), which
 * is what `fuse-kfunc stats` shows as "kernel".
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "fuse_kfunc.h"
#include "fuse_kfunc_stats.h"
#include "fuse_kfunc_daemon.h"

char LICENSE[] SEC("license") = "GPL";

/* Bound for the read/write loops; a request is at most max_pages (1 MiB) */
#define PT_MAX_CHUNKS	16
#define EIO		5

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);			/* nodeid */
	__type(value, struct fuse_kfunc_node);
} nodes SEC(".maps");

static int pt_read(struct fuse_bpf_ctx *fctx, struct fuse_args *args,
		   struct bpf_file *fb)
{
	const struct fuse_read_in *in = bpf_fuse_in(args, 0, struct fuse_read_in);
	__u32 done = 0;
	int i, ret = 0;

	if (!in)
		return FUSE_BPF_UPCALL;
	for (i = 0; i < PT_MAX_CHUNKS && done < in->size; i++) {
		ret = bpf_fuse_read(fctx, fb, in->offset + done, done, in->size - done);
		if (ret <= 0)
			break;
		done += ret;
	}
	if (ret < 0)
		return ret;
	bpf_fuse_set_out_size(fctx, done);
	return 0;
}

static int pt_write(struct fuse_bpf_ctx *fctx, struct fuse_args *args,
		    struct bpf_file *fb)
{
	const struct fuse_write_in *in = bpf_fuse_in(args, 0, struct fuse_write_in);
	struct fuse_write_out *out = bpf_fuse_out(args, 0, struct fuse_write_out);
	__u32 done = 0;
	int i, ret = 0;

	if (!in || !out)
		return FUSE_BPF_UPCALL;
	for (i = 0; i < PT_MAX_CHUNKS && done < in->size; i++) {
		ret = bpf_fuse_write(fctx, fb, in->offset + done, done, in->size - done);
		if (ret <= 0)
			break;
		done += ret;
	}
	if (ret < 0)
		return ret;
	out->size = done;
	return 0;
}

static int pt_getattr(struct fuse_bpf_ctx *fctx, struct fuse_args *args,
		      struct bpf_file *fb)
{
	struct fuse_attr_out *out = bpf_fuse_out(args, 0, struct fuse_attr_out);
	int ret;

	if (!out)
		return FUSE_BPF_UPCALL;
	ret = fuse_reply_attr(fctx, fb, &out->attr);
	if (ret < 0)
		return ret;
	out->attr_valid = 1;		/* seconds, as the daemon's default */
	out->attr_valid_nsec = 0;
	return 0;
}

SEC("struct_ops.s/request")
int BPF_PROG(pt_request, struct fuse_bpf_ctx *fctx, struct fuse_args *args)
{
	__u32 op = fctx->opcode;
	__u64 nodeid = fctx->nodeid;
	struct bpf_file *fb;
	struct fuse_kfunc_node *n;
	int ret = FUSE_BPF_UPCALL;

	if (op != FUSE_OP_READ && op != FUSE_OP_WRITE && op != FUSE_OP_GETATTR &&
	    op != FUSE_OP_GETXATTR && op != FUSE_OP_LISTXATTR)
		return FUSE_KFUNC_COUNT(fctx, ret);
	n = bpf_map_lookup_elem(&nodes, &nodeid);
	if (!n || n->nr < 1)
		return FUSE_KFUNC_COUNT(fctx, ret);
	fb = bpf_fuse_backing_get(fctx, n->backing[0]);
	if (!fb)		/* id closed behind our back: the daemon knows */
		return FUSE_KFUNC_COUNT(fctx, ret);
	if (op == FUSE_OP_READ)
		ret = pt_read(fctx, args, fb);
	else if (op == FUSE_OP_WRITE)
		ret = pt_write(fctx, args, fb);
	else if (op == FUSE_OP_GETATTR)
		ret = pt_getattr(fctx, args, fb);
	else
		ret = fuse_serve_getxattr(fctx, args, fb);
	bpf_file_release(fb);
	return FUSE_KFUNC_COUNT(fctx, ret);
}

SEC(".struct_ops.link")
struct fuse_bpf_ops passthrough_ops = {
	.request = (void *)pt_request,
	.name = "passthrough",
};
