/* SPDX-License-Identifier: GPL-2.0 */
/*
 * fuse_kfunc.h - what a BPF program implementing struct fuse_bpf_ops needs
 * beyond vmlinux.h.
 *
 * Include it after vmlinux.h (which provides struct fuse_bpf_ctx,
 * struct fuse_args, struct bpf_file, the generic structs of the bpf_vfs_*
 * kfuncs and the FUSE wire structs).
 *
 * The kfuncs are declared in one place, the kernel's own header for its
 * selftests (tools/testing/selftests/filesystems/fuse_bpf/fuse_bpf_kfuncs.h),
 * which `fuse-kfunc kernel build` installs beside libbpf's headers of the
 * same build: the declarations always match the kernel the program is
 * built for (libbpf checks them against its BTF at load time).  With them
 * come the inlines that turn the generic kfuncs' results into FUSE replies
 * (fuse_reply_attr(), fuse_reply_entry(), fuse_reply_statfs()) and FUSE
 * requests into their arguments (fuse_serve_setattr(), fuse_serve_mknod(),
 * fuse_serve_create(), fuse_rename_args(), fuse_serve_readdir()).
 */
#ifndef __FUSE_KFUNC_H
#define __FUSE_KFUNC_H

/*
 * ->request() returns either a result in (-MAX_ERRNO_FUSE, 0], meaning the
 * request was served with that result, or FUSE_BPF_UPCALL to send it to
 * the daemon unchanged.  Falling back is not -ENOSYS on purpose: the FUSE
 * core remembers -ENOSYS as "this opcode is not implemented", for every
 * node.  Only the daemon speaks for all of them, so on the daemon's nodes a
 * program's -ENOSYS asks the daemon, like FUSE_BPF_UPCALL; on the program's
 * own nodes (FUSE_BPF_CTX_OWN_NODE) it stands and switches the opcode off.
 */
#define FUSE_BPF_MAX_ERRNO	512

/*
 * FUSE_BPF_UPCALL (enum fuse_bpf_ret), the struct fuse_bpf_ctx::flags
 * FUSE_BPF_CTX_BACKGROUND (the program runs on the fuse_bpf workqueue) and
 * FUSE_BPF_CTX_OWN_NODE (ctx->nodeid is one of the program's own nodes, see
 * FUSE_BPF_NODEID; FORGETs of them always carry it), and FUSE_BPF_NODEID
 * (enum fuse_bpf_nodeid) are enums of the kernel: they come with vmlinux.h.
 */

/* FUSE opcodes (include/uapi/linux/fuse.h; enums are not always in BTF) */
#define FUSE_OP_LOOKUP		1
#define FUSE_OP_FORGET		2
#define FUSE_OP_GETATTR		3
#define FUSE_OP_SETATTR		4
#define FUSE_OP_READLINK	5
#define FUSE_OP_SYMLINK		6
#define FUSE_OP_MKNOD		8
#define FUSE_OP_MKDIR		9
#define FUSE_OP_UNLINK		10
#define FUSE_OP_RMDIR		11
#define FUSE_OP_RENAME		12
#define FUSE_OP_LINK		13
#define FUSE_OP_OPEN		14
#define FUSE_OP_READ		15
#define FUSE_OP_WRITE		16
#define FUSE_OP_STATFS		17
#define FUSE_OP_RELEASE		18
#define FUSE_OP_FSYNC		20
#define FUSE_OP_SETXATTR	21
#define FUSE_OP_GETXATTR	22
#define FUSE_OP_LISTXATTR	23
#define FUSE_OP_REMOVEXATTR	24
#define FUSE_OP_FLUSH		25
#define FUSE_OP_OPENDIR		27
#define FUSE_OP_READDIR		28
#define FUSE_OP_RELEASEDIR	29
#define FUSE_OP_FSYNCDIR	30
#define FUSE_OP_ACCESS		34
#define FUSE_OP_CREATE		35
#define FUSE_OP_IOCTL		39
#define FUSE_OP_POLL		40
#define FUSE_OP_FALLOCATE	43
#define FUSE_OP_READDIRPLUS	44
#define FUSE_OP_RENAME2		45
#define FUSE_OP_LSEEK		46
#define FUSE_OP_COPY_FILE_RANGE	47
#define FUSE_OP_TMPFILE		51
#define FUSE_OP_STATX		52
#define FUSE_OP_MAX		64	/* opcodes below this fit a counter array */

#include "fuse_bpf_kfuncs.h"

/*
 * What the kfuncs do, in short (the kernel-doc of fs/bpf_vfs_kfuncs.c and
 * fs/fuse/bpf.c says it in full):
 *
 * - Request arguments: bpf_fuse_in()/bpf_fuse_out() give an argument of
 *   exactly a type's size (NULL otherwise, or in pages); names are copied
 *   with bpf_fuse_in_arg_copy(); variable sized replies in memory are
 *   filled with bpf_fuse_out_arg_copy() and sized with
 *   bpf_fuse_set_out_size().
 * - Files: programs hold struct bpf_file, from bpf_fuse_backing_get() (a
 *   file the daemon registered with FUSE_DEV_IOC_BACKING_OPEN) or the
 *   lookup kfuncs; the verifier tracks the reference: release it, or move
 *   it into a map (bpf_file_kptr_t) with bpf_kptr_xchg().  A file loaded
 *   from a map inside bpf_rcu_read_lock() can be shared with
 *   bpf_file_acquire().
 * - Generic VFS kfuncs (fs/bpf_vfs_kfuncs.c, sleepable programs only) take
 *   &ctx->vfs and a file, or &bf->path where a path will do.  A file is
 *   used only where this connection would have accepted it from
 *   FUSE_DEV_IOC_BACKING_OPEN (-ELOOP otherwise), wherever it came from.
 *   Every kfunc acts as the caller (the process that made the request; a
 *   background request as the attacher without any capability).  Names
 *   are one path component: not empty, not "." or "..", no '/'; lookups
 *   follow no final symlink and enter no mount (-EXDEV).
 * - Directories are listed with the generic iterator (bpf_iter_vfs_dir_new,
 *   _next, _destroy); bpf_fuse_dir_emit() appends an entry, the
 *   iterator's or the program's own, to a READDIR(PLUS) reply with the
 *   offset to continue from (-ENOSPC: full): merged listings, hidden
 *   entries.  fuse_serve_readdir() lists one directory.
 * - The FUSE kfuncs taking the request (bpf_fuse_read/write into the
 *   request's pages, the xattr ones, symlink, readlink) serve the request
 *   they are given.  Every write is
 *   preceded by a GETXATTR of security.capability (FUSE clears
 *   SB_NOSEC): a program serving WRITE should serve it too.
 * - Node ids a program hands out carry FUSE_BPF_NODEID; their FORGET
 *   reaches the program as a FUSE_FORGET request from a worker.  The
 *   daemon may use the bit too, so test FUSE_BPF_CTX_OWN_NODE, not the bit.
 */

#endif /* __FUSE_KFUNC_H */
