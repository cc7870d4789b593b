/* SPDX-License-Identifier: GPL-2.0 */
/*
 * policy_str.h - the string tests of compiled policy functions, and the
 * rules parameter they walk.
 *
 * Plain C, like policy_math.h, so that the unit tests run the translated
 * functions natively beside the TypeScript.  A string is a pointer and a
 * length in bytes; the second string of a test (the pattern) is a literal of
 * at most POLICY_LITERAL_MAX bytes or a rule's pattern, which bounds the
 * loops.  Bytes, not UTF-16 units: for well-formed UTF-8 a prefix or suffix
 * of the bytes is one of the characters, so the answers are TypeScript's.
 * The strings are volatile: a pattern may be a parameter the loader sets in
 * .rodata, which the compiler must read rather than fold to its default.
 */
#ifndef __FUSE_KFUNC_POLICY_STR_H
#define __FUSE_KFUNC_POLICY_STR_H

#define POLICY_RULES_MAX	8	/* rules in a rules parameter */
#define POLICY_MATCH_MAX	56	/* bytes of a rule's pattern */
#define POLICY_LITERAL_MAX	255	/* bytes of a pattern */

/*
 * One rule of a rules parameter (lang/params.ts encodes them): names the
 * pattern selects go to backing @to.  The pattern is an extension (".log")
 * or a directory prefix ("logs/"); the policy's function says which test
 * applies to which.
 */
struct policy_rule {
	__u32 to;
	__u32 len;			/* bytes of match */
	char match[POLICY_MATCH_MAX];
};

/* Whether the @n bytes at @s begin with the @m bytes at @t */
static __always_inline __s64 policy_str_prefix(const volatile char *s, __s64 n,
					       const volatile char *t, __s64 m)
{
	__s64 i;

	if (m > n || m > POLICY_LITERAL_MAX)
		return 0;
	for (i = 0; i < POLICY_LITERAL_MAX && i < m; i++)
		if (s[i] != t[i])
			return 0;
	return 1;
}

/* Whether the @n bytes at @s end with the @m bytes at @t */
static __always_inline __s64 policy_str_suffix(const volatile char *s, __s64 n,
					       const volatile char *t, __s64 m)
{
	if (m > n)
		return 0;
	return policy_str_prefix(s + (n - m), m, t, m);
}

/* Whether the @n bytes at @s are the @m bytes at @t */
static __always_inline __s64 policy_str_eq(const volatile char *s, __s64 n,
					   const volatile char *t, __s64 m)
{
	return n == m && policy_str_prefix(s, n, t, m);
}

#endif /* __FUSE_KFUNC_POLICY_STR_H */
