/*
 * lb_common.h - definitions shared by every layer (no layer of its own).
 */
#ifndef LB_COMMON_H
#define LB_COMMON_H

#include "lb_compat.h"

#define LB_LIKELY(x)   __builtin_expect(!!(x), 1)
#define LB_UNLIKELY(x) __builtin_expect(!!(x), 0)
/* Attribute names in their __x__ form: a kernel build has macros named
 * noinline, cold... */
#define LB_NOINLINE    __attribute__((__noinline__))
#define LB_COLD        __attribute__((__cold__, __noinline__))
#define LB_HIDDEN      __attribute__((__visibility__("hidden")))
#define LB_CACHELINE   64u
#define LB_ALIGNED_CL  __attribute__((__aligned__(LB_CACHELINE)))

#define LB_MIN(a, b) ((a) < (b) ? (a) : (b))
#define LB_MAX(a, b) ((a) > (b) ? (a) : (b))
#define LB_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static inline size_t lb_align_up(size_t x, size_t a) { return (x + a - 1) & ~(a - 1); }
static inline uintptr_t lb_align_up_ptr(uintptr_t x, uintptr_t a) { return (x + a - 1) & ~(a - 1); }

/* Assertions that guard memory safety: never compiled out, NDEBUG or not. */
#ifndef __KERNEL__
void lb_panic(const char *file, int line, const char *what) __attribute__((__noreturn__, __cold__));
#define LB_CHECK(cond)                                                                    \
    do {                                                                                  \
        if (LB_UNLIKELY(!(cond)))                                                         \
            lb_panic(__FILE__, __LINE__, #cond);                                          \
    } while (0)
#else
/* A kernel: the report, then BUG() in line, where objtool sees it (it
 * cannot know that a function of a module never returns). */
void lb_panic(const char *file, int line, const char *what) __attribute__((__cold__));
#define LB_CHECK(cond)                                                                    \
    do {                                                                                  \
        if (LB_UNLIKELY(!(cond))) {                                                       \
            lb_panic(__FILE__, __LINE__, #cond);                                          \
            BUG();                                                                        \
        }                                                                                 \
    } while (0)
#endif

/* The debug tier: preconditions that comments used to state ("buddy lock
 * held", "own level", "depth 0") checked at run time.  On in the asan,
 * tsan and fuzz flavours (-DLB_DEBUG=1, set by CMake with
 * LABYRINTH_SANITIZE or LABYRINTH_FUZZ, or by LABYRINTH_DEBUG=ON), off in
 * the plain and bench builds, where it compiles to nothing (the argument
 * is not evaluated).  A failure panics like LB_CHECK. */
#if defined(LB_DEBUG) && LB_DEBUG
#define LB_DEBUG_CHECK(cond) LB_CHECK(cond)
#else
#define LB_DEBUG_CHECK(cond) do { (void)sizeof(!(cond)); } while (0)
#endif

/* Compile-time limits, documented in docs/design.md ("Limits"). */
#define LB_MAX_REGIONS     64u        /* regions per zone                      */
/* Pages per region, alignment holes included: page indices fit the 24
 * bits of the descriptor links, and LB_NIL (2^24 - 1) is none of them. */
#define LB_REGION_MAX_PAGES ((1u << 24) - 1)
#define LB_LEVELS          3u         /* nesting levels with their own caches  */
#define LB_TLS_ZONES       16u        /* live zones with per-thread caches     */
#define LB_MAX_ZONES       1024u      /* live zones in a process               */
#define LB_ORDER_LIMIT     20u        /* = LABYRINTH_MAX_ORDER_LIMIT           */

#endif /* LB_COMMON_H */
