/* SPDX-License-Identifier: GPL-2.0 */
/*
 * placement.bpf.h - the runtime of placement policies (route): every file
 * lives in one backing directory, which the policy chooses from its path;
 * every directory lives in all of them.
 *
 * The policy decides with one function compiled from its TypeScript module
 * before this file is included:
 *
 *   policy_place(path, path_len)	the backing directory a file at @path
 *				(relative to the mount) lives in.
 *
 * Names are the daemon's for now (src/policy/runtime/placement.ts): it
 * resolves them with the same function, keeps directories in every backing
 * directory, and at a file's first OPEN publishes the backing id of its one
 * file at the index of the directory it lives in (0 elsewhere).  This file
 * serves READ, WRITE, GETATTR and the xattr reads of open files there, and
 * counts what it moved per backing directory.  policy_place() is compiled,
 * and checked against the TypeScript natively, but not yet called here:
 * that comes with names served in BPF.
 */
#ifndef __FUSE_KFUNC_PLACEMENT_BPF_H
#define __FUSE_KFUNC_PLACEMENT_BPF_H

#ifndef POLICY_NAME
#error "a compiled policy defines POLICY_NAME, POLICY_OPS, POLICY_REQUEST first"
#endif

/* Not called yet (see above): the compiler marks it unused */
static __always_inline __s64 policy_place(const char *path, __s64 path_len);

/* A file is written where it lives */
static __always_inline bool family_may_write(__s64 home)
{
	return true;
}

#include "placed.bpf.h"

#endif /* __FUSE_KFUNC_PLACEMENT_BPF_H */
