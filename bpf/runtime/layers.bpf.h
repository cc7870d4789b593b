/* SPDX-License-Identifier: GPL-2.0 */
/*
 * layers.bpf.h - the runtime of layered policies (union): backing 0 is the
 * writable upper directory, backings 1..n-1 are read-only lowers, highest
 * first, with overlayfs's rules: the topmost layer that has a name wins, a
 * directory merges the layers down to an opaque one, a removed lower name
 * leaves a whiteout (.wh.NAME) in the upper directory, and a lower file is
 * copied up before it is opened for writing or changed.
 *
 * The policy decides with one function compiled from its TypeScript module
 * before this file is included:
 *
 *   policy_hidden(name, name_len)	whether a name is never shown through
 *				the mount nor made there (whiteouts are, always).
 *
 * Names are the daemon's (src/policy/union.ts), which calls that function;
 * policy_hidden() is compiled and checked natively but not called here yet.
 * This file serves READ, WRITE, GETATTR and the xattr reads of open files
 * from the file in its topmost layer, and counts per layer.  A WRITE to a
 * lower layer cannot happen (the open copied the file up); if one comes it
 * is refused with EROFS, never written through.
 */
#ifndef __FUSE_KFUNC_LAYERS_BPF_H
#define __FUSE_KFUNC_LAYERS_BPF_H

#ifndef POLICY_NAME
#error "a compiled policy defines POLICY_NAME, POLICY_OPS, POLICY_REQUEST first"
#endif

/* Not called yet (see above): the compiler marks it unused */
static __always_inline __s64 policy_hidden(const char *name, __s64 name_len);

/* Lower layers are read-only */
static __always_inline bool family_may_write(__s64 home)
{
	return home == 0;
}

#include "placed.bpf.h"

#endif /* __FUSE_KFUNC_LAYERS_BPF_H */
