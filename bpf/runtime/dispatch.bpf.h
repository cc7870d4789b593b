/* SPDX-License-Identifier: GPL-2.0 */
/*
 * dispatch.bpf.h - the request hook of the families that serve open files
 * (layout.bpf.h, replicas.bpf.h, placement.bpf.h), included last by each.
 *
 * A family defines family_read(), family_write() and family_getattr() for a
 * node the daemon published in "nodes", and family_home(), the index of the
 * backing file whose attributes the daemon sets (passed to the others as
 * @home); this file routes READ, WRITE and GETATTR to them, serves the xattr
 * reads from the home file,
 * sends everything else (and every node without an entry) to the daemon, and
 * declares the struct_ops the loader attaches.
 */
#ifndef __FUSE_KFUNC_DISPATCH_BPF_H
#define __FUSE_KFUNC_DISPATCH_BPF_H

/*
 * GETXATTR and LISTXATTR from the file at index @i of @n: the file whose
 * attributes the daemon sets (the family's home, dispatch.bpf.h).  The kernel
 * asks for security.capability before every write (FUSE clears SB_NOSEC):
 * serving it here keeps writes off the daemon.
 */
static int serve_xattr(struct fuse_bpf_ctx *fctx, struct fuse_args *args,
		       struct policy_node *n, __s64 i)
{
	struct bpf_file *fb = backing_get(fctx, n, i);
	int ret;

	if (!fb)
		return -EIO;
	ret = fuse_serve_getxattr(fctx, args, fb);
	bpf_file_release(fb);
	return ret;
}

SEC("struct_ops.s/request")
int BPF_PROG(POLICY_REQUEST, struct fuse_bpf_ctx *fctx, struct fuse_args *args)
{
	__u32 op = fctx->opcode;
	__u64 nodeid = fctx->nodeid;
	struct policy_node *n;
	int ret = FUSE_BPF_UPCALL;
	__s64 home;

#ifdef POLICY_RAW
	/* The module's raw handlers first: what it serves itself */
	ret = policy_raw(fctx, args, bpf_map_lookup_elem(&nodes, &nodeid));
	if (ret != FUSE_BPF_UPCALL)
		return FUSE_KFUNC_COUNT(fctx, ret);
#endif
	if (op != FUSE_OP_READ && op != FUSE_OP_WRITE && op != FUSE_OP_GETATTR &&
	    op != FUSE_OP_GETXATTR && op != FUSE_OP_LISTXATTR)
		return FUSE_KFUNC_COUNT(fctx, ret);
	n = bpf_map_lookup_elem(&nodes, &nodeid);
	if (!n || n->nr != policy_backings)	/* not open: the daemon knows */
		return FUSE_KFUNC_COUNT(fctx, ret);
	home = family_home(n);
	if (home < 0)		/* published without a file: the daemon's */
		return FUSE_KFUNC_COUNT(fctx, ret);
	if (op == FUSE_OP_READ)
		ret = family_read(fctx, args, n, home);
	else if (op == FUSE_OP_WRITE)
		ret = family_write(fctx, args, n, home);
	else if (op == FUSE_OP_GETATTR)
		ret = family_getattr(fctx, args, n, home);
	else
		ret = serve_xattr(fctx, args, n, home);
	return FUSE_KFUNC_COUNT(fctx, ret);
}

SEC(".struct_ops.link")
struct fuse_bpf_ops POLICY_OPS = {
	.request = (void *)POLICY_REQUEST,
	.name = POLICY_NAME,
};

#endif /* __FUSE_KFUNC_DISPATCH_BPF_H */
