// SPDX-License-Identifier: GPL-2.0
/*
 * tree: serves a whole backing directory tree in the kernel.  After INIT
 * no request reaches the daemon: names (lookup, create, mkdir, mknod,
 * symlink, link, unlink, rmdir, rename), attributes, extended attributes,
 * directory listings and file data are all served here through the
 * namespace kfuncs.
 *
 * The daemon (src/sdk/mount-serve.ts) registers the backing directory
 * with FUSE_BACKING_DIR and publishes its id in "roots"[0]; the program
 * answers for the root node (1) from it.  Every node below is the
 * program's: its id is FUSE_BPF_NODEID | the backing inode number, and
 * the node table keeps an O_PATH reference to the inode and the number of
 * lookups the kernel holds, which FORGET (delivered to the program, never
 * to the daemon) takes back.  Open files are kept per file handle.
 *
 * Credentials: the kfuncs act as the caller, so the backing tree's own
 * permissions apply to each user of the mount; the SDK also mounts with
 * default_permissions, which checks the FUSE inode beforehand.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "fuse_kfunc.h"
#include "fuse_kfunc_stats.h"

char LICENSE[] SEC("license") = "GPL";

#define ENOENT		2
#define EIO		5
#define E2BIG		7
#define EBADF		9
#define EAGAIN		11
#define ENOMEM		12
#define EMFILE		24
#define ENOTTY		25
#define ENAMETOOLONG	36
#define ENOSYS		38
#define EINVAL		22
#define ESTALE		116

#define O_RDONLY	00
#define O_ACCMODE	03
#define O_TRUNC		01000
#define O_DIRECTORY	0200000

/* include/uapi/linux/fuse.h: defines do not reach vmlinux.h */
#define FOPEN_PASSTHROUGH	0x80

#define ROOT_ID		1
#define NAME_SZ		256	/* NAME_MAX + 1 */
#define MAX_NODES	65536
#define MAX_FILES	8192

/* Index 0: backing id of the root directory, set by the daemon */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} roots SEC(".maps");

/*
 * Index 0: how long the kernel may cache names and attributes, in seconds:
 * the mount's timeout, set by the daemon, as the daemon's replies carry it
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} cache_timeout SEC(".maps");

static __u64 valid_secs(void)
{
	__u32 zero = 0, *t = bpf_map_lookup_elem(&cache_timeout, &zero);

	return t ? *t : 0;
}

/*
 * Pass open regular files through to their backing inodes: reads, writes
 * and mappings then go to the backing file without a request or a program
 * run, as fast as upstream FUSE passthrough, and this program no longer
 * sees them.  Set before load (the SDK's `globals: { passthrough: 1 }`);
 * the daemon has enabled passthrough at INIT, which backing ids need.
 */
const volatile bool passthrough;

struct tree_node {
	struct bpf_spin_lock lock;
	/* Lookups the kernel holds; 0: forgotten, about to be deleted */
	__u32 nlookup;
	/*
	 * With passthrough, the node's backing id from its first open
	 * (0 before it): every open of a FUSE inode must name the same one.
	 * 64 bits for the atomic exchanges of BPF's base instruction set.
	 */
	__u64 backing_id;
	struct bpf_file __kptr *fb;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_NODES);
	__type(key, __u64);
	__type(value, struct tree_node);
} tree_nodes SEC(".maps");

struct tree_file {
	struct bpf_file __kptr *fb;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_FILES);
	__type(key, __u64);
	__type(value, struct tree_file);
} tree_files SEC(".maps");

__u64 last_fh;

/*
 * A RENAME's two names need more than the 512-byte stack.  The buffer is
 * per thread, not per CPU: the program sleeps in the kfuncs, and another
 * request may run on the same CPU meanwhile.
 */
struct scratch {
	struct bpf_vfs_rename_names rn;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch_zero SEC(".maps");

static struct scratch *scratch_get(void)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid(), zero = 0;
	struct scratch *z = bpf_map_lookup_elem(&scratch_zero, &zero);

	if (!z || bpf_map_update_elem(&scratch, &tid, z, BPF_ANY))
		return NULL;
	return bpf_map_lookup_elem(&scratch, &tid);
}

static void scratch_put(void)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();

	bpf_map_delete_elem(&scratch, &tid);
}

/* ---- Nodes ---------------------------------------------------------------- */

static struct bpf_file *node_get(__u64 nodeid)
{
	struct tree_node *n = bpf_map_lookup_elem(&tree_nodes, &nodeid);
	struct bpf_file *fb;

	if (!n)
		return NULL;
	bpf_rcu_read_lock();
	fb = n->fb;
	if (fb)
		fb = bpf_file_acquire(fb);
	bpf_rcu_read_unlock();
	return fb;
}

/* The node a request is about: the root or one of ours */
static struct bpf_file *node_backing(struct fuse_bpf_ctx *ctx, __u64 nodeid)
{
	__u32 zero = 0, *id;

	if (nodeid != ROOT_ID)
		return node_get(nodeid);
	id = bpf_map_lookup_elem(&roots, &zero);
	return id && *id ? bpf_fuse_backing_get(ctx, *id) : NULL;
}

/*
 * One more lookup of @nodeid, backed by @fb (consumed): the last step of
 * a reply carrying an entry, which the kernel counts if the request
 * succeeds.  A node seen at zero lookups is being deleted by node_forget();
 * retry until a fresh one can be inserted.
 */
static int node_remember(__u64 nodeid, struct bpf_file *fb)
{
	struct tree_node fresh = { .nlookup = 1 }, *n;
	bool counted;
	int i;

	for (i = 0; i < 64; i++) {
		counted = !bpf_map_update_elem(&tree_nodes, &nodeid, &fresh,
					       BPF_NOEXIST);
		n = bpf_map_lookup_elem(&tree_nodes, &nodeid);
		if (!n)
			continue;
		if (!counted) {
			bpf_spin_lock(&n->lock);
			if (n->nlookup) {
				n->nlookup++;
				counted = true;
			}
			bpf_spin_unlock(&n->lock);
		}
		if (counted) {
			fb = bpf_kptr_xchg(&n->fb, fb);
			if (fb)
				bpf_file_release(fb);
			return 0;
		}
	}
	bpf_file_release(fb);
	return -EAGAIN;
}

static void node_forget(struct fuse_bpf_ctx *ctx, __u64 nodeid, __u64 nlookup)
{
	struct tree_node *n = bpf_map_lookup_elem(&tree_nodes, &nodeid);
	struct bpf_file *fb;
	__u64 backing_id;
	bool gone;

	if (!n)
		return;
	bpf_spin_lock(&n->lock);
	gone = n->nlookup <= nlookup;
	n->nlookup = gone ? 0 : n->nlookup - nlookup;
	bpf_spin_unlock(&n->lock);
	if (!gone)
		return;
	fb = bpf_kptr_xchg(&n->fb, NULL);
	if (fb)
		bpf_file_release(fb);
	/* Open files keep their backing file; later opens get a new id */
	backing_id = __sync_lock_test_and_set(&n->backing_id, 0);
	if (backing_id)
		bpf_fuse_backing_close(ctx, backing_id);
	bpf_map_delete_elem(&tree_nodes, &nodeid);
}

/* Answer a request creating or finding an entry with node @fb (consumed) */
static int reply_entry(struct fuse_bpf_ctx *ctx, struct fuse_args *args,
		       struct bpf_file *fb)
{
	struct fuse_entry_out *out = bpf_fuse_out(args, 0, struct fuse_entry_out);
	int err;

	if (!out) {
		bpf_file_release(fb);
		return -EIO;
	}
	/* Node id 0: FUSE_BPF_NODEID | the backing inode number */
	err = fuse_reply_entry(ctx, args, fb, 0);
	if (err) {
		bpf_file_release(fb);
		return err;
	}
	out->entry_valid = valid_secs();
	out->attr_valid = out->entry_valid;
	return node_remember(out->nodeid, fb);
}

/* ---- File handles ------------------------------------------------------- */

static int file_add(struct bpf_file *fb, __u64 *fh)
{
	struct tree_file zero = {}, *f;
	__u64 id = __sync_fetch_and_add(&last_fh, 1) + 1;

	if (bpf_map_update_elem(&tree_files, &id, &zero, BPF_NOEXIST)) {
		bpf_file_release(fb);
		return -EMFILE;
	}
	f = bpf_map_lookup_elem(&tree_files, &id);
	if (!f) {
		bpf_file_release(fb);
		return -EIO;
	}
	fb = bpf_kptr_xchg(&f->fb, fb);
	if (fb)
		bpf_file_release(fb);
	*fh = id;
	return 0;
}

static struct bpf_file *file_get(__u64 fh)
{
	struct tree_file *f = bpf_map_lookup_elem(&tree_files, &fh);
	struct bpf_file *fb;

	if (!f)
		return NULL;
	bpf_rcu_read_lock();
	fb = f->fb;
	if (fb)
		fb = bpf_file_acquire(fb);
	bpf_rcu_read_unlock();
	return fb;
}

static void file_release(__u64 fh)
{
	struct tree_file *f = bpf_map_lookup_elem(&tree_files, &fh);
	struct bpf_file *fb;

	if (!f)
		return;
	fb = bpf_kptr_xchg(&f->fb, NULL);
	if (fb)
		bpf_file_release(fb);
	bpf_map_delete_elem(&tree_files, &fh);
}

static int open_fh(struct fuse_bpf_ctx *ctx, struct fuse_args *args,
		   struct bpf_file *node, __u32 flags)
{
	struct fuse_open_out *out = bpf_fuse_out(args, 0, struct fuse_open_out);
	struct bpf_file *file;
	int err = 0;

	if (!out)
		return -EIO;
	file = bpf_vfs_open(&ctx->vfs, &node->path, flags, &err);
	if (!file)
		return err;
	return file_add(file, &out->fh);
}

/*
 * With passthrough, make the file an OPEN or CREATE reply opens (@out) a
 * passthrough one on node @nodeid's inode @node.  The file handle was
 * opened all the same: that checked the caller against the backing file,
 * and FLUSH, FSYNC and RELEASE still come here.  If the node cannot be
 * passed through (not a regular file), its requests are served as usual.
 */
static __noinline int pass_through(struct fuse_bpf_ctx *ctx,
				   struct fuse_open_out *out, __u64 nodeid,
				   struct bpf_file *node)
{
	struct tree_node *n;
	__u64 id;
	int ret;

	if (!passthrough)
		return 0;
	n = bpf_map_lookup_elem(&tree_nodes, &nodeid);
	if (!n)
		return 0;
	id = n->backing_id;
	if (!id) {
		ret = bpf_fuse_backing_open(ctx, node);
		if (ret < 0)
			return 0;
		id = __sync_val_compare_and_swap(&n->backing_id, 0, (__u64)ret);
		if (id)
			bpf_fuse_backing_close(ctx, ret);	/* another open won */
		else
			id = ret;
	}
	out->open_flags |= FOPEN_PASSTHROUGH;
	out->backing_id = id;
	return 0;
}

/* ---- Names ---------------------------------------------------------------- */

static int get_name(struct fuse_args *args, __u32 idx, char *name)
{
	int ret = bpf_fuse_in_arg_copy(args, idx, name, NAME_SZ);

	if (ret == -E2BIG)
		return -ENAMETOOLONG;
	return ret < 0 ? ret : 0;
}

static __noinline int serve_lookup(struct fuse_bpf_ctx *ctx,
				   struct fuse_args *args,
				   struct bpf_file *dir)
{
	char name[NAME_SZ];
	struct bpf_file *fb;
	int err;

	err = get_name(args, 0, name);
	if (err)
		return err;
	fb = bpf_vfs_lookup(&ctx->vfs, &dir->path, name, sizeof(name), &err);
	if (!fb)
		return err;
	return reply_entry(ctx, args, fb);
}

/* After MKNOD, MKDIR, SYMLINK or LINK made @name in @dir */
static int reply_created(struct fuse_bpf_ctx *ctx, struct fuse_args *args,
			 struct bpf_file *dir, const char *name)
{
	struct bpf_file *fb;
	int err = 0;

	fb = bpf_vfs_lookup(&ctx->vfs, &dir->path, name, NAME_SZ, &err);
	if (!fb)
		return err;
	return reply_entry(ctx, args, fb);
}

static __noinline int serve_create(struct fuse_bpf_ctx *ctx,
				   struct fuse_args *args,
				   struct bpf_file *dir)
{
	struct fuse_open_out *open_out = bpf_fuse_out(args, 1, struct fuse_open_out);
	struct bpf_file *file, *node, *node2;
	struct fuse_entry_out *out;
	char name[NAME_SZ];
	__u64 fh = 0;
	int err;

	if (!open_out)
		return -EIO;
	err = get_name(args, 1, name);
	if (err)
		return err;
	/* Flags and mode come from the request */
	file = fuse_serve_create(ctx, args, dir, name, sizeof(name), &err);
	if (!file)
		return err;
	/* The new file is both the node and the open file handle */
	node = bpf_file_acquire(file);
	if (!node) {
		bpf_file_release(file);
		return -EIO;
	}
	err = file_add(file, &fh);
	if (err) {
		bpf_file_release(node);
		return err;
	}
	/* reply_entry() consumes the node: keep one for pass_through() */
	node2 = passthrough ? bpf_file_acquire(node) : NULL;
	err = reply_entry(ctx, args, node);
	if (err) {
		if (node2)
			bpf_file_release(node2);
		file_release(fh);
		return err;
	}
	open_out->fh = fh;
	if (!node2)
		return 0;
	out = bpf_fuse_out(args, 0, struct fuse_entry_out);
	err = out ? pass_through(ctx, open_out, out->nodeid, node2) : 0;
	bpf_file_release(node2);
	return err;
}

static __noinline int serve_mknod(struct fuse_bpf_ctx *ctx,
				  struct fuse_args *args,
				  struct bpf_file *dir)
{
	char name[NAME_SZ];
	int err;

	err = get_name(args, 1, name);
	if (err)
		return err;
	/* The kernel applied the caller's umask to the mode already */
	if (ctx->opcode == FUSE_OP_MKDIR) {
		const struct fuse_mkdir_in *in = bpf_fuse_in(args, 0, struct fuse_mkdir_in);

		if (!in)
			return -EIO;
		err = bpf_vfs_mkdir(&ctx->vfs, &dir->path, name, sizeof(name), in->mode);
	} else {
		/* Type, mode and device number come from the request */
		err = fuse_serve_mknod(ctx, args, dir, name, sizeof(name));
	}
	return err ? err : reply_created(ctx, args, dir, name);
}

static __noinline int serve_symlink(struct fuse_bpf_ctx *ctx,
				    struct fuse_args *args,
				    struct bpf_file *dir)
{
	char name[NAME_SZ];
	int err;

	err = get_name(args, 0, name);
	if (err)
		return err;
	/* The link's contents come from the request */
	err = fuse_serve_symlink(ctx, args, dir, name, sizeof(name));
	return err ? err : reply_created(ctx, args, dir, name);
}

static __noinline int serve_link(struct fuse_bpf_ctx *ctx,
				 struct fuse_args *args,
				 struct bpf_file *dir)
{
	const struct fuse_link_in *in = bpf_fuse_in(args, 0, struct fuse_link_in);
	char name[NAME_SZ];
	struct bpf_file *old;
	int err;

	if (!in)
		return -EIO;
	err = get_name(args, 1, name);
	if (err)
		return err;
	old = node_get(in->oldnodeid);
	if (!old)
		return -ESTALE;
	err = bpf_vfs_link(&ctx->vfs, &old->path, &dir->path, name, sizeof(name));
	bpf_file_release(old);
	return err ? err : reply_created(ctx, args, dir, name);
}

static __noinline int serve_remove(struct fuse_bpf_ctx *ctx,
				   struct fuse_args *args,
				   struct bpf_file *dir)
{
	char name[NAME_SZ];
	int err;

	err = get_name(args, 0, name);
	if (err)
		return err;
	if (ctx->opcode == FUSE_OP_RMDIR)
		return bpf_vfs_rmdir(&ctx->vfs, &dir->path, name, sizeof(name));
	return bpf_vfs_unlink(&ctx->vfs, &dir->path, name, sizeof(name));
}

/* RENAME and RENAME2 (whose flags come from the request) */
static __noinline int serve_rename(struct fuse_bpf_ctx *ctx,
				   struct fuse_args *args,
				   struct bpf_file *dir)
{
	struct bpf_file *newdir;
	struct scratch *s;
	__u64 newdir_id;
	int err;

	s = scratch_get();
	if (!s)
		return -ENOMEM;
	err = fuse_rename_args(ctx, args, &s->rn, &newdir_id);
	if (err)
		goto out;
	err = -ESTALE;
	newdir = node_backing(ctx, newdir_id);
	if (!newdir)
		goto out;
	err = bpf_vfs_rename(&ctx->vfs, &dir->path, &newdir->path, &s->rn);
	bpf_file_release(newdir);
out:
	scratch_put();
	return err;
}

static int serve_attr(struct fuse_bpf_ctx *ctx, struct fuse_args *args,
		      struct bpf_file *fb)
{
	struct fuse_attr_out *out = bpf_fuse_out(args, 0, struct fuse_attr_out);
	int err;

	if (!out)
		return -EIO;
	if (ctx->opcode == FUSE_OP_SETATTR) {
		err = fuse_serve_setattr(ctx, args, fb);
		if (err)
			return err;
	}
	out->attr_valid = valid_secs();
	return fuse_reply_attr(ctx, fb, &out->attr);
}

/* Requests about a node (the root or ours), with a reference to it */
static __noinline int serve_node(struct fuse_bpf_ctx *ctx,
				 struct fuse_args *args,
				 struct bpf_file *fb)
{
	switch (ctx->opcode) {
	case FUSE_OP_LOOKUP:
		return serve_lookup(ctx, args, fb);
	case FUSE_OP_GETATTR:
	case FUSE_OP_SETATTR:
		return serve_attr(ctx, args, fb);
	case FUSE_OP_OPEN: {
		const struct fuse_open_in *in = bpf_fuse_in(args, 0, struct fuse_open_in);
		struct fuse_open_out *out;
		int err;

		if (!in)
			return -EIO;
		/* O_APPEND is the kernel's business: it sends the offset */
		err = open_fh(ctx, args, fb, in->flags & (O_ACCMODE | O_TRUNC));
		out = bpf_fuse_out(args, 0, struct fuse_open_out);
		if (err || !out)
			return err;
		return pass_through(ctx, out, ctx->nodeid, fb);
	}
	case FUSE_OP_OPENDIR:
		return open_fh(ctx, args, fb, O_RDONLY | O_DIRECTORY);
	case FUSE_OP_CREATE:
		return serve_create(ctx, args, fb);
	case FUSE_OP_MKNOD:
	case FUSE_OP_MKDIR:
		return serve_mknod(ctx, args, fb);
	case FUSE_OP_SYMLINK:
		return serve_symlink(ctx, args, fb);
	case FUSE_OP_LINK:
		return serve_link(ctx, args, fb);
	case FUSE_OP_UNLINK:
	case FUSE_OP_RMDIR:
		return serve_remove(ctx, args, fb);
	case FUSE_OP_RENAME:
	case FUSE_OP_RENAME2:
		return serve_rename(ctx, args, fb);
	case FUSE_OP_READLINK: {
		int ret = fuse_serve_readlink(ctx, fb);

		return ret < 0 ? ret : 0;
	}
	case FUSE_OP_GETXATTR:
	case FUSE_OP_LISTXATTR:
		return fuse_serve_getxattr(ctx, args, fb);
	case FUSE_OP_SETXATTR:
		return fuse_serve_setxattr(ctx, args, fb);
	case FUSE_OP_REMOVEXATTR:
		return fuse_serve_removexattr(ctx, args, fb);
	case FUSE_OP_STATFS: {
		struct fuse_statfs_out *out = bpf_fuse_out(args, 0, struct fuse_statfs_out);

		return out ? fuse_reply_statfs(ctx, fb, &out->st) : -EIO;
	}
	}
	return -ENOSYS;
}

/* ---- Open files ------------------------------------------------------------ */

/* All requests on an open file start with its fh: read it from the right struct */
static int request_fh(struct fuse_args *args, __u32 op, __u64 *fh)
{
	const struct fuse_read_in *rd;
	const struct fuse_write_in *wr;
	const struct fuse_flush_in *fl;
	const struct fuse_fsync_in *fs;
	const struct fuse_release_in *rel;
	const struct fuse_lseek_in *ls;
	const struct fuse_fallocate_in *fa;

	switch (op) {
	case FUSE_OP_READ:
	case FUSE_OP_READDIR:
	case FUSE_OP_READDIRPLUS:
		rd = bpf_fuse_in(args, 0, struct fuse_read_in);
		if (!rd)
			return -EIO;
		*fh = rd->fh;
		return 0;
	case FUSE_OP_WRITE:
		wr = bpf_fuse_in(args, 0, struct fuse_write_in);
		if (!wr)
			return -EIO;
		*fh = wr->fh;
		return 0;
	case FUSE_OP_FLUSH:
		fl = bpf_fuse_in(args, 0, struct fuse_flush_in);
		if (!fl)
			return -EIO;
		*fh = fl->fh;
		return 0;
	case FUSE_OP_FSYNC:
	case FUSE_OP_FSYNCDIR:
		fs = bpf_fuse_in(args, 0, struct fuse_fsync_in);
		if (!fs)
			return -EIO;
		*fh = fs->fh;
		return 0;
	case FUSE_OP_RELEASE:
	case FUSE_OP_RELEASEDIR:
		rel = bpf_fuse_in(args, 0, struct fuse_release_in);
		if (!rel)
			return -EIO;
		*fh = rel->fh;
		return 0;
	case FUSE_OP_LSEEK:
		ls = bpf_fuse_in(args, 0, struct fuse_lseek_in);
		if (!ls)
			return -EIO;
		*fh = ls->fh;
		return 0;
	case FUSE_OP_FALLOCATE:
		fa = bpf_fuse_in(args, 0, struct fuse_fallocate_in);
		if (!fa)
			return -EIO;
		*fh = fa->fh;
		return 0;
	}
	return -EINVAL;
}

static __noinline int serve_open_file(struct fuse_bpf_ctx *ctx,
				      struct fuse_args *args,
				      struct bpf_file *file)
{
	__u32 op = ctx->opcode;
	int ret = -EIO;

	switch (op) {
	case FUSE_OP_READ:
	case FUSE_OP_READDIR:
	case FUSE_OP_READDIRPLUS: {
		const struct fuse_read_in *in = bpf_fuse_in(args, 0, struct fuse_read_in);

		if (!in)
			break;
		if (op == FUSE_OP_READ)
			ret = bpf_fuse_read(ctx, file, in->offset, 0, in->size);
		else
			ret = fuse_serve_readdir(ctx, file, in->offset);
		/* The reply is as long as what was filled in */
		if (ret > 0)
			ret = 0;
		break;
	}
	case FUSE_OP_WRITE: {
		const struct fuse_write_in *in = bpf_fuse_in(args, 0, struct fuse_write_in);
		struct fuse_write_out *out = bpf_fuse_out(args, 0, struct fuse_write_out);

		if (!in || !out)
			break;
		ret = bpf_fuse_write(ctx, file, in->offset, 0, in->size);
		if (ret >= 0) {
			out->size = ret;
			ret = 0;
		}
		break;
	}
	case FUSE_OP_FLUSH:
		ret = bpf_vfs_flush(&ctx->vfs, file);
		break;
	case FUSE_OP_FSYNC:
	case FUSE_OP_FSYNCDIR: {
		const struct fuse_fsync_in *in = bpf_fuse_in(args, 0, struct fuse_fsync_in);

		if (in)
			ret = bpf_vfs_fsync(&ctx->vfs, file, in->fsync_flags & 1);
		break;
	}
	case FUSE_OP_LSEEK: {
		const struct fuse_lseek_in *in = bpf_fuse_in(args, 0, struct fuse_lseek_in);
		struct fuse_lseek_out *out = bpf_fuse_out(args, 0, struct fuse_lseek_out);
		__s64 pos;

		if (!in || !out)
			break;
		pos = bpf_vfs_llseek(&ctx->vfs, file, in->offset, in->whence);
		if (pos < 0) {
			ret = pos;
		} else {
			out->offset = pos;
			ret = 0;
		}
		break;
	}
	case FUSE_OP_FALLOCATE: {
		const struct fuse_fallocate_in *in = bpf_fuse_in(args, 0, struct fuse_fallocate_in);

		if (in)
			ret = bpf_vfs_fallocate(&ctx->vfs, file, in->mode, in->offset, in->length);
		break;
	}
	}
	return ret;
}

static __noinline int serve_file(struct fuse_bpf_ctx *ctx, struct fuse_args *args)
{
	struct bpf_file *file;
	__u64 fh = 0;
	int ret;

	ret = request_fh(args, ctx->opcode, &fh);
	if (ret)
		return ret;
	if (ctx->opcode == FUSE_OP_RELEASE || ctx->opcode == FUSE_OP_RELEASEDIR) {
		file_release(fh);
		return 0;
	}
	file = file_get(fh);
	if (!file)
		return -EBADF;
	ret = serve_open_file(ctx, args, file);
	bpf_file_release(file);
	return ret;
}

static __noinline int tree_serve(struct fuse_bpf_ctx *ctx, struct fuse_args *args)
{
	__u64 nodeid = ctx->nodeid;
	struct bpf_file *fb;
	int ret;

	switch (ctx->opcode) {
	case FUSE_OP_FORGET: {
		/* From a worker, after the kernel dropped the inode */
		const struct fuse_forget_in *in = bpf_fuse_in(args, 0, struct fuse_forget_in);

		if (in)
			node_forget(ctx, nodeid, in->nlookup);
		return 0;
	}
	case FUSE_OP_READ:
	case FUSE_OP_WRITE:
	case FUSE_OP_FLUSH:
	case FUSE_OP_FSYNC:
	case FUSE_OP_FSYNCDIR:
	case FUSE_OP_RELEASE:
	case FUSE_OP_RELEASEDIR:
	case FUSE_OP_READDIR:
	case FUSE_OP_READDIRPLUS:
	case FUSE_OP_LSEEK:
	case FUSE_OP_FALLOCATE:
		return serve_file(ctx, args);
	case FUSE_OP_ACCESS:
		/* Mounted with default_permissions: the kernel checked already */
		return 0;
	case FUSE_OP_IOCTL:
		return -ENOTTY;
	case FUSE_OP_POLL:
	case FUSE_OP_COPY_FILE_RANGE:
	case FUSE_OP_TMPFILE:
	case FUSE_OP_STATX:
		/* -ENOSYS: the kernel stops asking and uses its fallback */
		return -ENOSYS;
	}

	fb = node_backing(ctx, nodeid);
	if (!fb)
		return nodeid == ROOT_ID ? FUSE_BPF_UPCALL : -ESTALE;
	ret = serve_node(ctx, args, fb);
	bpf_file_release(fb);
	return ret;
}

SEC("struct_ops.s/request")
int BPF_PROG(tree_request, struct fuse_bpf_ctx *fctx, struct fuse_args *args)
{
	int ret = FUSE_BPF_UPCALL;

	/* The daemon's nodes other than the root: none, unless it was detached */
	if (fctx->nodeid == ROOT_ID || (fctx->flags & FUSE_BPF_CTX_OWN_NODE))
		ret = tree_serve(fctx, args);
	return FUSE_KFUNC_COUNT(fctx, ret);
}

SEC(".struct_ops.link")
struct fuse_bpf_ops tree_ops = {
	.request = (void *)tree_request,
	.name = "tree",
};
