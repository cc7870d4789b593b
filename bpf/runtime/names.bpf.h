/* SPDX-License-Identifier: GPL-2.0 */
/*
 * names.bpf.h - the request hook of the families whose every backing
 * directory holds every name (layout.bpf.h, replicas.bpf.h) when the policy
 * serves names in the kernel too: after INIT no request reaches the daemon.
 * Included last by the family instead of dispatch.bpf.h when the build
 * defines POLICY_KERNEL_NAMES.
 *
 * The daemon registers each backing directory with FUSE_BACKING_DIR and
 * publishes its id in "roots", in mount order (fuse_kfunc_daemon.h).  Below
 * the root every node is the program's: its id is FUSE_BPF_NODEID | the
 * inode number in backing 0, and "name_nodes" keeps an O_PATH reference to
 * the name in each backing directory and the lookups the kernel holds,
 * which FORGET takes back.  Open files keep one opened file per backing in
 * "name_files"; READ, WRITE and GETATTR are the family's, as with the
 * daemon (family_read(), family_write(), family_fix_attr()).
 *
 * Backing 0 is the authority on names, as in the daemon
 * (src/policy/fanout.ts): an operation runs there first and its error is
 * the reply; then it is repeated in backings 1..n-1.  A creation that fails
 * there is undone in the backings that had it, so the mount shows no half
 * made name; a name a later backing already holds (left over by an earlier
 * failure) is replaced.  A removal or rename that fails in a later backing
 * after succeeding in backing 0 is reported, and leaves that backing's
 * name behind: invisible through the mount, replaced by the next creation
 * of the name.  Extended attributes, links' targets and listings are
 * backing 0's; mode, owner and times are set in every backing (each file
 * is opened as the caller); sizes are the family's.
 *
 * The kfuncs act as the caller, so every backing directory's permissions
 * apply to each user of the mount, and what they create is the caller's in
 * every backing; the SDK mounts with default_permissions.
 */
#ifndef __FUSE_KFUNC_NAMES_BPF_H
#define __FUSE_KFUNC_NAMES_BPF_H

#define ENOENT		2
#define EBADF		9
#define EAGAIN		11
#define ENOMEM		12
#define EEXIST		17
#define EINVAL		22
#define EMFILE		24
#define ENOTTY		25
/* The errno FUSE takes as "not implemented": it stops asking and falls back */
#define FUSE_ERRNO_UNIMPLEMENTED	38
#define ESTALE		116

#define O_RDONLY	00
#define O_ACCMODE	03
#define O_CREAT		0100
#define O_EXCL		0200
#define O_TRUNC		01000
#define O_DIRECTORY	0200000

#define STATX_BASIC_STATS	0x7ff

#define NAMES_ROOT	1
#define NAME_SZ		256	/* NAME_MAX + 1 */

/* Index i: backing id of backing directory i, set by the daemon */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FUSE_KFUNC_MAX_BACKINGS);
	__type(key, __u32);
	__type(value, __u32);
} roots SEC(".maps");

/*
 * Index 0: how long the kernel may cache names, in seconds: the mount's
 * timeout, set by the daemon, as its entry replies would carry it.
 * Attributes the program returns for GETATTR carry the policy's
 * policy_attr_timeout, as in the daemon's mode.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} cache_timeout SEC(".maps");

static __u64 names_valid_secs(void)
{
	__u32 zero = 0, *t = bpf_map_lookup_elem(&cache_timeout, &zero);

	return t ? *t : 0;
}

/*
 * A node: struct policy_node's layout (the family's functions take one),
 * its references being the name's O_PATH file in each backing directory,
 * and the lookups the kernel holds under a lock.  Only the root's entry has
 * backing ids: the roots, from which backing_get() takes its references.
 */
struct names_node {
	__u32 backing[FUSE_KFUNC_MAX_BACKINGS];
	__u32 nr;
	__u32 lookups;		/* 0: forgotten, about to be deleted */
	struct bpf_file __kptr *fb0;
	struct bpf_file __kptr *fb1;
	struct bpf_file __kptr *fb2;
	struct bpf_file __kptr *fb3;
	struct bpf_spin_lock lock;
};

_Static_assert(__builtin_offsetof(struct names_node, fb0) ==
	       __builtin_offsetof(struct policy_node, fb0) &&
	       __builtin_offsetof(struct names_node, fb3) ==
	       __builtin_offsetof(struct policy_node, fb3),
	       "struct names_node begins like struct policy_node");

/* The family's view of a node or an open file: the same references */
#define as_policy_node(x)	((struct policy_node *)(x))

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);			/* node id */
	__type(value, struct names_node);
} name_nodes SEC(".maps");

/* An open file or directory: its opened file in each backing (a directory: 0 only) */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u64);			/* fh */
	__type(value, struct policy_node);
} name_files SEC(".maps");

static __u64 names_last_fh;

/*
 * The request's names: a RENAME's two, or one in old_name, which would take
 * half of the 512-byte stack.  Per thread, not per CPU: the program sleeps
 * in the kfuncs, and another request may run on the same CPU meanwhile.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct bpf_vfs_rename_names);
} names_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bpf_vfs_rename_names);
} names_scratch_zero SEC(".maps");

static struct bpf_vfs_rename_names *names_scratch_get(void)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid(), zero = 0;
	struct bpf_vfs_rename_names *z = bpf_map_lookup_elem(&names_scratch_zero, &zero);

	if (!z || bpf_map_update_elem(&names_scratch, &tid, z, BPF_ANY))
		return NULL;
	return bpf_map_lookup_elem(&names_scratch, &tid);
}

static void names_scratch_put(void)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();

	bpf_map_delete_elem(&names_scratch, &tid);
}

/* ---- Nodes ---------------------------------------------------------------- */

/*
 * The node a request is about.  The root's entry is made at its first
 * request from "roots" (never forgotten); the others by names_remember().
 */
static struct names_node *names_node(__u64 nodeid)
{
	struct names_node root = { .nr = policy_backings, .lookups = 1 };
	struct names_node *n = bpf_map_lookup_elem(&name_nodes, &nodeid);
	__u32 k0 = 0, k1 = 1, k2 = 2, k3 = 3, *id;

	if (n || nodeid != NAMES_ROOT)
		return n;
	id = bpf_map_lookup_elem(&roots, &k0);
	if (!id || !*id)
		return NULL;	/* not published yet: the daemon answers */
	root.backing[0] = *id;
	id = bpf_map_lookup_elem(&roots, &k1);
	root.backing[1] = id ? *id : 0;
	id = bpf_map_lookup_elem(&roots, &k2);
	root.backing[2] = id ? *id : 0;
	id = bpf_map_lookup_elem(&roots, &k3);
	root.backing[3] = id ? *id : 0;
	bpf_map_update_elem(&name_nodes, &nodeid, &root, BPF_NOEXIST);
	return bpf_map_lookup_elem(&name_nodes, &nodeid);
}

/*
 * One more lookup of @nodeid: its entry, made if there is none (@made).  An
 * entry seen at zero lookups is being deleted by names_forget(); retry
 * until a fresh one can be inserted.
 */
static struct names_node *names_remember(__u64 nodeid, bool *made)
{
	struct names_node fresh = { .nr = policy_backings, .lookups = 1 }, *n;
	bool counted;
	int i;

	for (i = 0; i < 64; i++) {
		counted = !bpf_map_update_elem(&name_nodes, &nodeid, &fresh,
					       BPF_NOEXIST);
		n = bpf_map_lookup_elem(&name_nodes, &nodeid);
		if (!n)
			continue;
		*made = counted;
		if (counted)
			return n;
		bpf_spin_lock(&n->lock);
		if (n->lookups) {
			n->lookups++;
			counted = true;
		}
		bpf_spin_unlock(&n->lock);
		if (counted)
			return n;
	}
	return NULL;
}

static void names_forget(__u64 nodeid, __u64 nlookup)
{
	struct names_node *n = bpf_map_lookup_elem(&name_nodes, &nodeid);
	bool gone;

	if (!n || nodeid == NAMES_ROOT)
		return;
	bpf_spin_lock(&n->lock);
	gone = n->lookups <= nlookup;
	n->lookups = gone ? 0 : n->lookups - nlookup;
	bpf_spin_unlock(&n->lock);
	/* Deleting the entry drops its references */
	if (gone)
		bpf_map_delete_elem(&name_nodes, &nodeid);
}

/* Keep @fb (consumed; NULL clears the slot) as slot @i of @n */
static __always_inline void names_keep(struct policy_node *n, __s64 i,
				       struct bpf_file *fb)
{
	struct bpf_file *old;

	/* The verifier takes NULL as a constant only, not a possibly-NULL file */
	if (fb)
		old = bpf_kptr_xchg(node_slot(n, i), fb);
	else
		old = bpf_kptr_xchg(node_slot(n, i), NULL);
	if (old)
		bpf_file_release(old);
}

/* Whether slot @i of @n holds a file */
static __always_inline bool names_has(struct policy_node *n, __s64 i)
{
	bool has;

	bpf_rcu_read_lock();
	has = !!*node_slot(n, i);
	bpf_rcu_read_unlock();
	return has;
}

/* ---- Names ---------------------------------------------------------------- */

static int names_arg(struct fuse_args *args, __u32 idx, char *name)
{
	int ret = bpf_fuse_in_arg_copy(args, idx, name, NAME_SZ);

	if (ret == -E2BIG)
		return -ENAMETOOLONG;
	return ret < 0 ? ret : 0;
}

/*
 * The entry reply for @name in directory @dir, after a LOOKUP found it or a
 * creation made it in every backing: the node's references are looked up
 * in each backing directory, so that a name a backing lacks has an empty
 * slot, or taken from a CREATE's opened files (@made_files).  The kernel
 * counts the lookup if the reply is sent: the node is remembered first and
 * forgotten again if the reply cannot be made.
 */
static __noinline int
names_reply_entry(struct fuse_bpf_ctx *fctx, struct fuse_args *args,
		  struct names_node *dir, const char *name,
		  struct policy_node *made_files)
{
	struct fuse_entry_out *out = bpf_fuse_out(args, 0, struct fuse_entry_out);
	struct bpf_file *d, *fb;
	struct names_node *n;
	bool made = false;
	__u64 nodeid;
	int i, err = 0;

	if (!out)
		return -EIO;
	if (made_files) {
		fb = backing_get(fctx, made_files, 0);
		if (!fb)
			return -EIO;
	} else {
		d = backing_get(fctx, as_policy_node(dir), 0);
		if (!d)
			return -ESTALE;
		fb = bpf_vfs_lookup(&fctx->vfs, &d->path, name, NAME_SZ, &err);
		bpf_file_release(d);
		if (!fb)
			return err;
	}
	err = fuse_reply_entry(fctx, args, fb, 0);
	if (err) {
		bpf_file_release(fb);
		return err;
	}
	nodeid = out->nodeid;
	n = names_remember(nodeid, &made);
	if (!n) {
		bpf_file_release(fb);
		return -EAGAIN;
	}
	names_keep(as_policy_node(n), 0, fb);
	for (i = 1; i < FUSE_KFUNC_MAX_BACKINGS && i < policy_backings; i++) {
		/*
		 * A node the kernel holds already keeps the inode in each
		 * backing (names are moved and linked in every backing
		 * alike): look again only where it has none.
		 */
		if (!made && names_has(as_policy_node(n), i))
			continue;
		if (made_files) {
			names_keep(as_policy_node(n), i, backing_get(fctx, made_files, i));
			continue;
		}
		d = backing_get(fctx, as_policy_node(dir), i);
		fb = d ? bpf_vfs_lookup(&fctx->vfs, &d->path, name, NAME_SZ, &err) : NULL;
		if (d)
			bpf_file_release(d);
		names_keep(as_policy_node(n), i, fb);
	}
	out->entry_valid = names_valid_secs();
	out->attr_valid = out->entry_valid;
	out->entry_valid_nsec = 0;
	out->attr_valid_nsec = 0;
	return 0;
}

/*
 * The family's attributes in the entry reply names_reply_entry() made (a
 * stripe's size from its pieces); the node is forgotten again on failure.
 * Its own call rather than the end of names_reply_entry(): the two frames
 * side by side, not stacked, keep the program under BPF's 512-byte stack.
 */
static __noinline int names_entry_attr(struct fuse_bpf_ctx *fctx,
				       struct fuse_args *args)
{
	struct fuse_entry_out *out = bpf_fuse_out(args, 0, struct fuse_entry_out);
	struct names_node *n;
	__u64 nodeid;
	int err;

	if (!out)
		return -EIO;
	nodeid = out->nodeid;
	n = bpf_map_lookup_elem(&name_nodes, &nodeid);
	if (!n)
		return -ESTALE;
	err = family_fix_attr(fctx, as_policy_node(n), &out->attr, false);
	if (err)
		names_forget(nodeid, 1);
	return err;
}

/*
 * Both halves of an entry reply; @made_files: a CREATE's opened files, which
 * stand for the node's references instead of looking the name up again
 */
static __always_inline int names_entry(struct fuse_bpf_ctx *fctx,
				       struct fuse_args *args,
				       struct names_node *dir, const char *name,
				       struct policy_node *made_files)
{
	int err = names_reply_entry(fctx, args, dir, name, made_files);

	return err ? err : names_entry_attr(fctx, args);
}

/* Undo a creation of @name in the first @made backings, which made it */
static void names_undo(struct fuse_bpf_ctx *fctx, struct names_node *dir,
		       const char *name, int made, bool is_dir)
{
	struct bpf_file *d;
	int i;

	for (i = 0; i < FUSE_KFUNC_MAX_BACKINGS && i < made; i++) {
		d = backing_get(fctx, as_policy_node(dir), i);
		if (!d)
			continue;
		if (is_dir)
			bpf_vfs_rmdir(&fctx->vfs, &d->path, name, NAME_SZ);
		else
			bpf_vfs_unlink(&fctx->vfs, &d->path, name, NAME_SZ);
		bpf_file_release(d);
	}
}

/* MKNOD, MKDIR, SYMLINK or LINK of @name in backing directory @d */
static int names_make_one(struct fuse_bpf_ctx *fctx, struct fuse_args *args,
			  struct bpf_file *d, const char *name, __s64 i)
{
	const struct fuse_mkdir_in *mk;
	const struct fuse_link_in *ln;
	struct names_node *old;
	struct bpf_file *ofb;
	__u64 oldid;
	int err;

	switch (fctx->opcode) {
	case FUSE_OP_MKDIR:
		/* The kernel applied the caller's umask to the mode already */
		mk = bpf_fuse_in(args, 0, struct fuse_mkdir_in);
		return mk ? bpf_vfs_mkdir(&fctx->vfs, &d->path, name, NAME_SZ, mk->mode) : -EIO;
	case FUSE_OP_MKNOD:
		return fuse_serve_mknod(fctx, args, d, name, NAME_SZ);
	case FUSE_OP_SYMLINK:
		return fuse_serve_symlink(fctx, args, d, name, NAME_SZ);
	case FUSE_OP_LINK:
		ln = bpf_fuse_in(args, 0, struct fuse_link_in);
		if (!ln)
			return -EIO;
		oldid = ln->oldnodeid;
		old = bpf_map_lookup_elem(&name_nodes, &oldid);
		ofb = old ? backing_get(fctx, as_policy_node(old), i) : NULL;
		if (!ofb)
			return -ESTALE;
		err = bpf_vfs_link(&fctx->vfs, &ofb->path, &d->path, name, NAME_SZ);
		bpf_file_release(ofb);
		return err;
	}
	return -EIO;
}

/*
 * MKNOD, MKDIR, SYMLINK, LINK: in backing 0 (whose error is the reply), then
 * in the others; undone everywhere if a later backing fails.  The entry
 * reply is the caller's.
 */
static __noinline int names_make(struct fuse_bpf_ctx *fctx,
				 struct fuse_args *args, struct names_node *dir,
				 char *name)
{
	bool is_dir = fctx->opcode == FUSE_OP_MKDIR;
	struct bpf_file *d;
	int i, err = 0;

	for (i = 0; i < FUSE_KFUNC_MAX_BACKINGS && i < policy_backings; i++) {
		d = backing_get(fctx, as_policy_node(dir), i);
		if (!d) {
			err = -EIO;
		} else {
			err = names_make_one(fctx, args, d, name, i);
			/*
			 * A leftover of an earlier failure: a directory
			 * stays, the rest is replaced
			 */
			if (err == -EEXIST && i > 0 && !is_dir) {
				bpf_vfs_unlink(&fctx->vfs, &d->path, name, NAME_SZ);
				err = names_make_one(fctx, args, d, name, i);
			} else if (err == -EEXIST && i > 0) {
				err = 0;
			}
			bpf_file_release(d);
		}
		if (err) {
			names_undo(fctx, dir, name, i, is_dir);
			return err;
		}
	}
	return 0;
}

/* UNLINK, RMDIR: backing 0's error is the reply; a name others lack is no error */
static __noinline int names_remove(struct fuse_bpf_ctx *fctx,
				   struct fuse_args *args,
				   struct names_node *dir, char *name)
{
	struct bpf_file *d;
	int i, ret, err;

	err = names_arg(args, 0, name);
	if (err)
		return err;
	for (i = 0; i < FUSE_KFUNC_MAX_BACKINGS && i < policy_backings; i++) {
		d = backing_get(fctx, as_policy_node(dir), i);
		if (!d)
			return -EIO;
		if (fctx->opcode == FUSE_OP_RMDIR)
			ret = bpf_vfs_rmdir(&fctx->vfs, &d->path, name, NAME_SZ);
		else
			ret = bpf_vfs_unlink(&fctx->vfs, &d->path, name, NAME_SZ);
		bpf_file_release(d);
		if (ret && (i == 0 || ret != -ENOENT))
			return ret;
	}
	return 0;
}

/* RENAME and RENAME2 (flags from the request), in each backing in turn */
static __noinline int names_rename(struct fuse_bpf_ctx *fctx,
				   struct fuse_args *args,
				   struct names_node *dir,
				   struct bpf_vfs_rename_names *rn)
{
	struct names_node *to;
	struct bpf_file *a, *b;
	__u64 newdir = 0;
	int i, err;

	err = fuse_rename_args(fctx, args, rn, &newdir);
	if (err)
		return err;
	to = names_node(newdir);
	if (!to)
		return -ESTALE;
	for (i = 0; i < FUSE_KFUNC_MAX_BACKINGS && i < policy_backings; i++) {
		a = backing_get(fctx, as_policy_node(dir), i);
		b = backing_get(fctx, as_policy_node(to), i);
		err = a && b ? bpf_vfs_rename(&fctx->vfs, &a->path, &b->path, rn) : -EIO;
		if (a)
			bpf_file_release(a);
		if (b)
			bpf_file_release(b);
		if (err && (i == 0 || err != -ENOENT))
			return err;
	}
	return 0;
}

/* ---- Open files ---------------------------------------------------------- */

/* A new file handle's entry, empty: its key in @fh */
static struct policy_node *names_file_new(__u64 *fh)
{
	struct policy_node zero = { .nr = policy_backings };
	__u64 id = __sync_fetch_and_add(&names_last_fh, 1) + 1;

	if (bpf_map_update_elem(&name_files, &id, &zero, BPF_NOEXIST))
		return NULL;
	*fh = id;
	return bpf_map_lookup_elem(&name_files, &id);
}

/*
 * OPEN and OPENDIR: each backing's file opened as the caller (a directory:
 * backing 0's, which lists it).  O_APPEND is the kernel's business: it
 * sends the offset.
 */
static __noinline int names_open(struct fuse_bpf_ctx *fctx,
				 struct fuse_args *args, struct names_node *n)
{
	const struct fuse_open_in *in = bpf_fuse_in(args, 0, struct fuse_open_in);
	struct fuse_open_out *out = bpf_fuse_out(args, 0, struct fuse_open_out);
	bool is_dir = fctx->opcode == FUSE_OP_OPENDIR;
	struct policy_node *f;
	struct bpf_file *fb, *file;
	__u32 flags;
	__u64 fh = 0;
	int i, err = 0;

	if (!in || !out)
		return -EIO;
	flags = is_dir ? O_RDONLY | O_DIRECTORY : in->flags & (O_ACCMODE | O_TRUNC);
	f = names_file_new(&fh);
	if (!f)
		return -EMFILE;
	for (i = 0; i < FUSE_KFUNC_MAX_BACKINGS && i < policy_backings; i++) {
		if (is_dir && i > 0)
			break;
		fb = backing_get(fctx, as_policy_node(n), i);
		if (!fb) {
			err = -EIO;	/* a copy missing from a backing */
			break;
		}
		file = bpf_vfs_open(&fctx->vfs, &fb->path, flags, &err);
		bpf_file_release(fb);
		if (!file)
			break;
		names_keep(f, i, file);
	}
	if (err) {
		bpf_map_delete_elem(&name_files, &fh);
		return err;
	}
	out->fh = fh;
	return 0;
}

/*
 * CREATE's file in backing directory @d, at index @i: backing 0's with the
 * request's flags, a later backing's made or emptied.  The kfunc opens an
 * existing name only if it is a regular file: a later backing's leftover
 * of another kind (-EINVAL) is replaced, a directory (-EISDIR) is not.
 */
static __always_inline struct bpf_file *
names_create_one(struct fuse_bpf_ctx *fctx, const struct fuse_create_in *in,
		 struct bpf_file *d, const char *name, __s64 i, int *err)
{
	struct bpf_vfs_how how = { .mode = in->mode };
	struct bpf_file *file;

	how.flags = i ? (in->flags & ~O_EXCL) | O_TRUNC : in->flags;
	file = bpf_vfs_create(&fctx->vfs, &d->path, name, NAME_SZ, &how);
	if (!file && i && how.err == -EINVAL) {
		bpf_vfs_unlink(&fctx->vfs, &d->path, name, NAME_SZ);
		how.flags |= O_EXCL;
		how.err = 0;
		file = bpf_vfs_create(&fctx->vfs, &d->path, name, NAME_SZ, &how);
	}
	*err = file ? 0 : how.err ?: -EIO;
	return file;
}

/*
 * CREATE: backing 0's file made with the request's flags and mode (its
 * error is the reply), then the others' made or emptied with the same mode;
 * all of them undone if one fails.  The opened files are the new file
 * handle's, whose id goes to @fh; the entry reply is the caller's.
 */
static __noinline int names_create(struct fuse_bpf_ctx *fctx,
				   struct fuse_args *args,
				   struct names_node *dir, char *name,
				   __u64 *fh)
{
	const struct fuse_create_in *in = bpf_fuse_in(args, 0, struct fuse_create_in);
	struct policy_node *f;
	struct bpf_file *d, *file;
	int i, err = 0;

	if (!in)
		return -EIO;
	f = names_file_new(fh);
	if (!f)
		return -EMFILE;
	for (i = 0; i < FUSE_KFUNC_MAX_BACKINGS && i < policy_backings; i++) {
		d = backing_get(fctx, as_policy_node(dir), i);
		if (!d) {
			err = -EIO;
			break;
		}
		file = names_create_one(fctx, in, d, name, i, &err);
		bpf_file_release(d);
		if (!file)
			break;
		names_keep(f, i, file);
	}
	if (err) {
		bpf_map_delete_elem(&name_files, fh);
		/* Backing 0's error means it made nothing */
		names_undo(fctx, dir, name, i, false);
	}
	return err;
}

/*
 * All requests on an open file start with its fh: read it from the right
 * struct (the kfunc gives an argument of exactly the struct's size)
 */
static int names_request_fh(struct fuse_args *args, __u32 op, __u64 *fh)
{
	const __u64 *p;

	switch (op) {
	case FUSE_OP_READ:
	case FUSE_OP_READDIR:
	case FUSE_OP_READDIRPLUS:
		p = (const __u64 *)bpf_fuse_in(args, 0, struct fuse_read_in);
		break;
	case FUSE_OP_WRITE:
		p = (const __u64 *)bpf_fuse_in(args, 0, struct fuse_write_in);
		break;
	case FUSE_OP_FLUSH:
		p = (const __u64 *)bpf_fuse_in(args, 0, struct fuse_flush_in);
		break;
	case FUSE_OP_FSYNC:
	case FUSE_OP_FSYNCDIR:
		p = (const __u64 *)bpf_fuse_in(args, 0, struct fuse_fsync_in);
		break;
	case FUSE_OP_RELEASE:
	case FUSE_OP_RELEASEDIR:
		p = (const __u64 *)bpf_fuse_in(args, 0, struct fuse_release_in);
		break;
	case FUSE_OP_LSEEK:
		p = (const __u64 *)bpf_fuse_in(args, 0, struct fuse_lseek_in);
		break;
	case FUSE_OP_FALLOCATE:
		p = (const __u64 *)bpf_fuse_in(args, 0, struct fuse_fallocate_in);
		break;
	default:
		return -EINVAL;
	}
	if (!p)
		return -EIO;
	*fh = *p;
	return 0;
}

static __noinline int names_file_op(struct fuse_bpf_ctx *fctx,
				    struct fuse_args *args)
{
	const struct fuse_fsync_in *fs;
	const struct fuse_fallocate_in *fa;
	const struct fuse_read_in *rd;
	struct policy_node *f;
	struct bpf_file *fb;
	__u32 op = fctx->opcode;
	__u64 fh = 0;
	int i, ret;

	ret = names_request_fh(args, op, &fh);
	if (ret)
		return ret;
	if (op == FUSE_OP_RELEASE || op == FUSE_OP_RELEASEDIR) {
		/* Deleting the entry drops its files */
		bpf_map_delete_elem(&name_files, &fh);
		return 0;
	}
	f = bpf_map_lookup_elem(&name_files, &fh);
	if (!f)
		return -EBADF;
	switch (op) {
	case FUSE_OP_READ:
		return family_read(fctx, args, f, 0);
	case FUSE_OP_WRITE:
		return family_write(fctx, args, f, 0);
	case FUSE_OP_READDIR:
	case FUSE_OP_READDIRPLUS:
		rd = bpf_fuse_in(args, 0, struct fuse_read_in);
		fb = backing_get(fctx, f, 0);
		if (!rd || !fb) {
			if (fb)
				bpf_file_release(fb);
			return -EIO;
		}
		ret = fuse_serve_readdir(fctx, fb, rd->offset);
		bpf_file_release(fb);
		/* The reply is as long as what was filled in */
		return ret > 0 ? 0 : ret;
	case FUSE_OP_LSEEK:
		/* Not implemented: the kernel stops asking and seeks itself */
		return -FUSE_ERRNO_UNIMPLEMENTED;
	case FUSE_OP_FALLOCATE:
		if (!family_copies)
			return -EOPNOTSUPP;
		break;
	}
	/* FLUSH, FSYNC, FSYNCDIR, FALLOCATE: every backing's file; the first error */
	fs = op == FUSE_OP_FSYNC || op == FUSE_OP_FSYNCDIR ?
	     bpf_fuse_in(args, 0, struct fuse_fsync_in) : NULL;
	fa = op == FUSE_OP_FALLOCATE ? bpf_fuse_in(args, 0, struct fuse_fallocate_in) : NULL;
	ret = 0;
	for (i = 0; i < FUSE_KFUNC_MAX_BACKINGS && i < policy_backings; i++) {
		int err;

		fb = backing_get(fctx, f, i);
		if (!fb)
			continue;	/* a directory, or a copy this open lacks */
		if (op == FUSE_OP_FLUSH)
			err = bpf_vfs_flush(&fctx->vfs, fb);
		else if (op == FUSE_OP_FALLOCATE)
			err = fa ? bpf_vfs_fallocate(&fctx->vfs, fb, fa->mode,
						     fa->offset, fa->length) : -EIO;
		else
			err = fs ? bpf_vfs_fsync(&fctx->vfs, fb, fs->fsync_flags & 1) : -EIO;
		bpf_file_release(fb);
		if (err && !ret)
			ret = err;
	}
	return ret;
}

/* ---- Attributes ------------------------------------------------------------ */

/*
 * SETATTR: a size goes to every backing, each at the family's size for it;
 * mode, owner and times too, as they are: every backing's file is opened as
 * the caller, so its permissions must be backing 0's, which the mount shows.
 */
static __noinline int names_setattr(struct fuse_bpf_ctx *fctx,
				    struct fuse_args *args,
				    struct names_node *n)
{
	const struct fuse_setattr_in *in = bpf_fuse_in(args, 0, struct fuse_setattr_in);
	struct fuse_attr_out *out = bpf_fuse_out(args, 0, struct fuse_attr_out);
	struct bpf_vfs_iattr ia = {};
	struct bpf_file *fb;
	__u32 valid;
	int i, err;

	if (!in || !out)
		return -EIO;
	valid = in->valid;
	for (i = 0; i < FUSE_KFUNC_MAX_BACKINGS && i < policy_backings; i++) {
		if (!(valid & FUSE_BPF_FATTR_SIZE))
			break;
		fb = backing_get(fctx, as_policy_node(n), i);
		if (!fb)
			return -EIO;
		err = bpf_vfs_truncate(&fctx->vfs, &fb->path, family_size(in->size, i));
		bpf_file_release(fb);
		if (err)
			return err;
	}
	if (valid & FUSE_BPF_FATTR_MODE)
		ia.valid |= BPF_VFS_SET_MODE;
	if (valid & FUSE_BPF_FATTR_UID)
		ia.valid |= BPF_VFS_SET_UID;
	if (valid & FUSE_BPF_FATTR_GID)
		ia.valid |= BPF_VFS_SET_GID;
	/* FUSE sends FATTR_*_NOW together with FATTR_* */
	if (valid & FUSE_BPF_FATTR_ATIME_NOW)
		ia.valid |= BPF_VFS_SET_ATIME_NOW;
	else if (valid & FUSE_BPF_FATTR_ATIME)
		ia.valid |= BPF_VFS_SET_ATIME;
	if (valid & FUSE_BPF_FATTR_MTIME_NOW)
		ia.valid |= BPF_VFS_SET_MTIME_NOW;
	else if (valid & FUSE_BPF_FATTR_MTIME)
		ia.valid |= BPF_VFS_SET_MTIME;
	if (valid & FUSE_BPF_FATTR_KILL_SUIDGID)
		ia.valid |= BPF_VFS_SET_KILL_SUIDGID;
	ia.mode = in->mode;
	ia.uid = in->uid;
	ia.gid = in->gid;
	ia.atime_sec = in->atime;
	ia.mtime_sec = in->mtime;
	ia.atime_nsec = in->atimensec;
	ia.mtime_nsec = in->mtimensec;
	for (i = 0; i < FUSE_KFUNC_MAX_BACKINGS && i < policy_backings; i++) {
		if (!ia.valid)
			break;
		fb = backing_get(fctx, as_policy_node(n), i);
		if (!fb)
			return -EIO;
		err = bpf_vfs_setattr(&fctx->vfs, &fb->path, &ia);
		bpf_file_release(fb);
		if (err)
			return err;
	}
	err = family_fix_attr(fctx, as_policy_node(n), &out->attr, true);
	if (err)
		return err;
	out->attr_valid = policy_attr_timeout;
	out->attr_valid_nsec = 0;
	return 0;
}

/* GETATTR: the family's, as for an open file (a stripe's size from its pieces) */
static __noinline int names_getattr(struct fuse_bpf_ctx *fctx,
				    struct fuse_args *args,
				    struct names_node *n)
{
	return family_getattr(fctx, args, as_policy_node(n), 0);
}

/*
 * STATX: GETATTR's attributes in statx's form, without a birth time (the
 * kfuncs' attributes have none).  Served, not refused with -FUSE_ERRNO_UNIMPLEMENTED: for the
 * root, which is the daemon's node, that would ask the daemon.
 */
static __noinline int names_statx(struct fuse_bpf_ctx *fctx,
				  struct fuse_args *args, struct names_node *n)
{
	struct fuse_statx_out *out = bpf_fuse_out(args, 0, struct fuse_statx_out);
	struct fuse_attr a = {};
	int err;

	if (!out)
		return -EIO;
	err = family_fix_attr(fctx, as_policy_node(n), &a, true);
	if (err)
		return err;
	out->attr_valid = policy_attr_timeout;
	out->attr_valid_nsec = 0;
	out->stat.mask = STATX_BASIC_STATS;
	out->stat.blksize = a.blksize;
	out->stat.nlink = a.nlink;
	out->stat.uid = a.uid;
	out->stat.gid = a.gid;
	out->stat.mode = a.mode;
	out->stat.ino = a.ino;
	out->stat.size = a.size;
	out->stat.blocks = a.blocks;
	out->stat.atime.tv_sec = a.atime;
	out->stat.atime.tv_nsec = a.atimensec;
	out->stat.mtime.tv_sec = a.mtime;
	out->stat.mtime.tv_nsec = a.mtimensec;
	out->stat.ctime.tv_sec = a.ctime;
	out->stat.ctime.tv_nsec = a.ctimensec;
	/* fuse_attr's rdev is new_encode_dev()'s */
	out->stat.rdev_major = (a.rdev & 0xfff00) >> 8;
	out->stat.rdev_minor = (a.rdev & 0xff) | ((a.rdev >> 12) & 0xfff00);
	return 0;
}

/* Requests served from backing 0's name: links, xattrs, statfs */
static __noinline int names_home(struct fuse_bpf_ctx *fctx,
				 struct fuse_args *args, struct names_node *n)
{
	struct fuse_statfs_out *st;
	struct bpf_file *fb;
	int ret;

	fb = backing_get(fctx, as_policy_node(n), 0);
	if (!fb)
		return -ESTALE;
	switch (fctx->opcode) {
	case FUSE_OP_READLINK:
		ret = fuse_serve_readlink(fctx, fb);
		ret = ret < 0 ? ret : 0;
		break;
	case FUSE_OP_GETXATTR:
	case FUSE_OP_LISTXATTR:
		ret = fuse_serve_getxattr(fctx, args, fb);
		break;
	case FUSE_OP_SETXATTR:
		ret = fuse_serve_setxattr(fctx, args, fb);
		break;
	case FUSE_OP_REMOVEXATTR:
		ret = fuse_serve_removexattr(fctx, args, fb);
		break;
	case FUSE_OP_STATFS:
		st = bpf_fuse_out(args, 0, struct fuse_statfs_out);
		ret = st ? fuse_reply_statfs(fctx, fb, &st->st) : -EIO;
		break;
	default:
		ret = -FUSE_ERRNO_UNIMPLEMENTED;
	}
	bpf_file_release(fb);
	return ret;
}

/* Requests naming an entry of directory @dir, with the names in the scratch */
static __noinline int names_named(struct fuse_bpf_ctx *fctx,
				  struct fuse_args *args, struct names_node *dir)
{
	struct bpf_vfs_rename_names *s = names_scratch_get();
	struct fuse_open_out *open_out;
	__u64 fh = 0;
	char *name;
	int ret;

	if (!s)
		return -ENOMEM;
	name = s->old_name;
	switch (fctx->opcode) {
	case FUSE_OP_LOOKUP:
		ret = names_arg(args, 0, name);
		if (!ret)
			ret = names_entry(fctx, args, dir, name, NULL);
		break;
	case FUSE_OP_CREATE:
		open_out = bpf_fuse_out(args, 1, struct fuse_open_out);
		ret = open_out ? names_arg(args, 1, name) : -EIO;
		if (!ret)
			ret = names_create(fctx, args, dir, name, &fh);
		if (ret)
			break;
		ret = names_entry(fctx, args, dir, name,
				  bpf_map_lookup_elem(&name_files, &fh));
		if (ret) {
			bpf_map_delete_elem(&name_files, &fh);
			names_undo(fctx, dir, name, policy_backings, false);
			break;
		}
		open_out->fh = fh;
		break;
	case FUSE_OP_UNLINK:
	case FUSE_OP_RMDIR:
		ret = names_remove(fctx, args, dir, name);
		break;
	case FUSE_OP_RENAME:
	case FUSE_OP_RENAME2:
		ret = names_rename(fctx, args, dir, s);
		break;
	default:
		/* MKNOD, MKDIR, SYMLINK, LINK: SYMLINK's name comes first */
		ret = names_arg(args, fctx->opcode == FUSE_OP_SYMLINK ? 0 : 1, name);
		if (!ret)
			ret = names_make(fctx, args, dir, name);
		if (ret)
			break;
		ret = names_entry(fctx, args, dir, name, NULL);
		if (ret)
			names_undo(fctx, dir, name, policy_backings,
				   fctx->opcode == FUSE_OP_MKDIR);
	}
	names_scratch_put();
	return ret;
}

static __noinline int names_serve(struct fuse_bpf_ctx *fctx,
				  struct fuse_args *args)
{
	const struct fuse_forget_in *fg;
	struct names_node *n;

	switch (fctx->opcode) {
	case FUSE_OP_FORGET:
		/* From a worker, after the kernel dropped the inode */
		fg = bpf_fuse_in(args, 0, struct fuse_forget_in);
		if (fg)
			names_forget(fctx->nodeid, fg->nlookup);
		return 0;
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
		return names_file_op(fctx, args);
	case FUSE_OP_ACCESS:
		/* Mounted with default_permissions: the kernel checked already */
		return 0;
	case FUSE_OP_IOCTL:
		return -ENOTTY;
	case FUSE_OP_POLL:
	case FUSE_OP_COPY_FILE_RANGE:
	case FUSE_OP_TMPFILE:
		/* Not implemented: the kernel stops asking and uses its fallback */
		return -FUSE_ERRNO_UNIMPLEMENTED;
	}
	n = names_node(fctx->nodeid);
	if (!n)
		return fctx->nodeid == NAMES_ROOT ? FUSE_BPF_UPCALL : -ESTALE;
	switch (fctx->opcode) {
	case FUSE_OP_GETATTR:
		return names_getattr(fctx, args, n);
	case FUSE_OP_STATX:
		return names_statx(fctx, args, n);
	case FUSE_OP_SETATTR:
		return names_setattr(fctx, args, n);
	case FUSE_OP_OPEN:
	case FUSE_OP_OPENDIR:
		return names_open(fctx, args, n);
	case FUSE_OP_LOOKUP:
	case FUSE_OP_CREATE:
	case FUSE_OP_MKNOD:
	case FUSE_OP_MKDIR:
	case FUSE_OP_SYMLINK:
	case FUSE_OP_LINK:
	case FUSE_OP_UNLINK:
	case FUSE_OP_RMDIR:
	case FUSE_OP_RENAME:
	case FUSE_OP_RENAME2:
		return names_named(fctx, args, n);
	}
	return names_home(fctx, args, n);
}

SEC("struct_ops.s/request")
int BPF_PROG(POLICY_REQUEST, struct fuse_bpf_ctx *fctx, struct fuse_args *args)
{
	int ret = FUSE_BPF_UPCALL;

#ifdef POLICY_RAW
	/* The module's raw handlers first: what it serves itself */
	ret = policy_raw(fctx, args, NULL);
	if (ret != FUSE_BPF_UPCALL)
		return FUSE_KFUNC_COUNT(fctx, ret);
#endif
	/* The daemon's nodes other than the root: none, unless it was detached */
	if (fctx->nodeid == NAMES_ROOT || (fctx->flags & FUSE_BPF_CTX_OWN_NODE))
		ret = names_serve(fctx, args);
	return FUSE_KFUNC_COUNT(fctx, ret);
}

SEC(".struct_ops.link")
struct fuse_bpf_ops POLICY_OPS = {
	.request = (void *)POLICY_REQUEST,
	.name = POLICY_NAME,
};

#endif /* __FUSE_KFUNC_NAMES_BPF_H */
