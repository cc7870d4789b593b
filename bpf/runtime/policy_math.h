/* SPDX-License-Identifier: GPL-2.0 */
/*
 * policy_math.h - the arithmetic of compiled policy functions.
 *
 * Plain C with no BPF in it, so that the unit tests compile the translated
 * functions natively with this same file and compare them with the
 * TypeScript on random inputs (test/unit/policy-compiler.test.ts).
 */
#ifndef __FUSE_KFUNC_POLICY_MATH_H
#define __FUSE_KFUNC_POLICY_MATH_H

/*
 * The decision functions compute in signed 64-bit integers, as TypeScript's
 * numbers do for the integers they hold exactly.  Division and remainder are
 * defined for non-negative operands (docs/policies.md), where Math.floor(a / b)
 * and C's unsigned division agree; BPF before cpu v4 has no signed division.
 */
static __always_inline __s64 policy_div(__s64 a, __s64 b)
{
	return b ? (__s64)((__u64)a / (__u64)b) : 0;
}

static __always_inline __s64 policy_mod(__s64 a, __s64 b)
{
	return b ? (__s64)((__u64)a % (__u64)b) : a;
}

static __always_inline __s64 policy_min(__s64 a, __s64 b)
{
	return a < b ? a : b;
}

static __always_inline __s64 policy_max(__s64 a, __s64 b)
{
	return a > b ? a : b;
}

/*
 * TypeScript's bit operators work on 32-bit integers: the operands are
 * wrapped to signed 32 bits, a shift count is taken modulo 32, and the result
 * is a signed 32-bit value.  These do the same, so a policy's bit arithmetic
 * gives the kernel and the daemon the same answers for every operand.
 */
static __always_inline __s64 policy_and(__s64 a, __s64 b)
{
	return (__s32)a & (__s32)b;
}

static __always_inline __s64 policy_or(__s64 a, __s64 b)
{
	return (__s32)a | (__s32)b;
}

static __always_inline __s64 policy_xor(__s64 a, __s64 b)
{
	return (__s32)a ^ (__s32)b;
}

static __always_inline __s64 policy_not(__s64 a)
{
	return ~(__s32)a;
}

static __always_inline __s64 policy_shl(__s64 a, __s64 b)
{
	return (__s32)((__u32)a << (b & 31));
}

static __always_inline __s64 policy_shr(__s64 a, __s64 b)
{
	return (__s32)a >> (b & 31);
}

/* Whether the bit mask @set holds operation @op, a FUSE opcode below 64 */
static __always_inline __s64 policy_op_in(__u64 set, __s64 op)
{
	return op >= 0 && op < 64 && ((set >> op) & 1);
}

#endif /* __FUSE_KFUNC_POLICY_MATH_H */
