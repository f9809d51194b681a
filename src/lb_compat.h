/*
 * lb_compat.h - the C environment of the core: the same source files
 * compile in user space (C17 and libc's headers) and in a Linux kernel
 * build (__KERNEL__ set by Kbuild: the kernel's own headers).  Nothing else
 * in src/ above the OS layer names a header of either world.
 *
 *   lb_set_errno(e)  user space: errno = e.  A kernel has no errno: the
 *                    call does nothing (docs/kernel.md, "Errors").
 *   LB_EXPORT(sym)   a kernel build exports sym to other modules
 *                    (EXPORT_SYMBOL_GPL); user space: nothing (a
 *                    declaration, so the semicolon after it is legal).
 */
#ifndef LB_COMPAT_H
#define LB_COMPAT_H

#ifdef __KERNEL__

#include <linux/types.h>   /* uint32_t, uint64_t, uintptr_t, size_t, bool */
#include <linux/stddef.h>  /* NULL, true, false                             */
#include <linux/errno.h>
#include <linux/limits.h>  /* SIZE_MAX, U32_MAX, U64_MAX                     */
#include <linux/string.h>  /* memset, memcpy, strlen                        */
#include <linux/export.h>

#ifndef UINT32_MAX
#define UINT32_MAX U32_MAX
#endif
#ifndef UINT64_MAX
#define UINT64_MAX U64_MAX
#endif

#define lb_set_errno(e) ((void)(e))
#define LB_EXPORT(sym)  EXPORT_SYMBOL_GPL(sym)

#else /* user space */

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <errno.h>
#include <string.h>

#define lb_set_errno(e) ((void)(errno = (e)))
#define LB_EXPORT(sym)  _Static_assert(1, #sym)

#endif /* __KERNEL__ */

#endif /* LB_COMPAT_H */
