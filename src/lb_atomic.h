/*
 * lb_atomic.h - typed atomics whose memory order is in the name.
 *
 * Every shared word of labyrinth is one of the types below, so a plain load
 * or store of it does not compile (after jemalloc), and every ordering can
 * be found with grep (after mimalloc): lb_load_acq, lb_store_rel, ...
 * The functions use the compiler's __atomic builtins, which gcc and clang
 * provide in user space and in a kernel build alike, and which TSan
 * understands.
 *
 * Each call site in labyrinth carries a comment naming what the ordering
 * publishes or observes and the operation it pairs with; docs/memory-ordering.md
 * gathers them.
 */
#ifndef LB_ATOMIC_H
#define LB_ATOMIC_H

#include "lb_compat.h"

typedef struct { uint32_t v; } lb_atomic_u32;
typedef struct { uint64_t v; } lb_atomic_u64;
typedef struct { void *v; } lb_atomic_ptr;

#define LB_ATOMIC_OPS(T, A)                                                               \
    static inline T lb_load_rlx_##A(const lb_atomic_##A *a)                               \
    { return __atomic_load_n(&a->v, __ATOMIC_RELAXED); }                                   \
    static inline T lb_load_acq_##A(const lb_atomic_##A *a)                               \
    { return __atomic_load_n(&a->v, __ATOMIC_ACQUIRE); }                                   \
    static inline void lb_store_rlx_##A(lb_atomic_##A *a, T x)                           \
    { __atomic_store_n(&a->v, x, __ATOMIC_RELAXED); }                                      \
    static inline void lb_store_rel_##A(lb_atomic_##A *a, T x)                           \
    { __atomic_store_n(&a->v, x, __ATOMIC_RELEASE); }                                      \
    static inline bool lb_cas_rlx_##A(lb_atomic_##A *a, T *expected, T desired)          \
    { return __atomic_compare_exchange_n(&a->v, expected, desired, false,                 \
                                         __ATOMIC_RELAXED, __ATOMIC_RELAXED); }            \
    static inline bool lb_cas_acq_##A(lb_atomic_##A *a, T *expected, T desired)          \
    { return __atomic_compare_exchange_n(&a->v, expected, desired, false,                 \
                                         __ATOMIC_ACQUIRE, __ATOMIC_ACQUIRE); }            \
    static inline bool lb_cas_rel_##A(lb_atomic_##A *a, T *expected, T desired)          \
    { return __atomic_compare_exchange_n(&a->v, expected, desired, false,                 \
                                         __ATOMIC_RELEASE, __ATOMIC_RELAXED); }            \
    static inline bool lb_cas_acqrel_##A(lb_atomic_##A *a, T *expected, T desired)       \
    { return __atomic_compare_exchange_n(&a->v, expected, desired, false,                 \
                                         __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE); }            \
    static inline T lb_xchg_acqrel_##A(lb_atomic_##A *a, T x)                             \
    { return __atomic_exchange_n(&a->v, x, __ATOMIC_ACQ_REL); }                            \
    static inline T lb_xchg_acq_##A(lb_atomic_##A *a, T x)                                \
    { return __atomic_exchange_n(&a->v, x, __ATOMIC_ACQUIRE); }                            \
    /* Sequentially consistent: only where two contexts each write one word  \
     * and then read the other's (a store-load pattern, as the remote-free  \
     * queue's descriptor and link words): acquire/release cannot order a   \
     * store before a later load. */                                         \
    static inline T lb_load_sc_##A(const lb_atomic_##A *a)                                \
    { return __atomic_load_n(&a->v, __ATOMIC_SEQ_CST); }                                   \
    static inline void lb_store_sc_##A(lb_atomic_##A *a, T x)                            \
    { __atomic_store_n(&a->v, x, __ATOMIC_SEQ_CST); }                                      \
    static inline bool lb_cas_sc_##A(lb_atomic_##A *a, T *expected, T desired)           \
    { return __atomic_compare_exchange_n(&a->v, expected, desired, false,                 \
                                         __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST); }

LB_ATOMIC_OPS(uint32_t, u32)
LB_ATOMIC_OPS(uint64_t, u64)
LB_ATOMIC_OPS(void *, ptr)

static inline uint64_t lb_add_rlx_u64(lb_atomic_u64 *a, uint64_t x)
{ return __atomic_fetch_add(&a->v, x, __ATOMIC_RELAXED); }
static inline uint64_t lb_sub_rlx_u64(lb_atomic_u64 *a, uint64_t x)
{ return __atomic_fetch_sub(&a->v, x, __ATOMIC_RELAXED); }
static inline uint32_t lb_add_rlx_u32(lb_atomic_u32 *a, uint32_t x)
{ return __atomic_fetch_add(&a->v, x, __ATOMIC_RELAXED); }
static inline uint32_t lb_add_acqrel_u32(lb_atomic_u32 *a, uint32_t x)
{ return __atomic_fetch_add(&a->v, x, __ATOMIC_ACQ_REL); }
static inline uint64_t lb_add_acqrel_u64(lb_atomic_u64 *a, uint64_t x)
{ return __atomic_fetch_add(&a->v, x, __ATOMIC_ACQ_REL); }
static inline uint64_t lb_sub_rel_u64(lb_atomic_u64 *a, uint64_t x)
{ return __atomic_fetch_sub(&a->v, x, __ATOMIC_RELEASE); }
static inline uint64_t lb_or_rel_u64(lb_atomic_u64 *a, uint64_t x)
{ return __atomic_fetch_or(&a->v, x, __ATOMIC_RELEASE); }
static inline uint64_t lb_and_acq_u64(lb_atomic_u64 *a, uint64_t x)
{ return __atomic_fetch_and(&a->v, x, __ATOMIC_ACQUIRE); }

/* A counter with one writer (a thread, or one nesting level of it) and any
 * number of readers.  The writer's read-modify-write is a relaxed load and
 * a relaxed store, not an atomic RMW: no other context writes the word, and
 * readers only need a value that was current at some point. */
static inline void lb_bump_1w_u64(lb_atomic_u64 *a, uint64_t x)
{ lb_store_rlx_u64(a, lb_load_rlx_u64(a) + x); }

/* Order compiler-visible memory accesses against a signal handler running
 * on this thread (no CPU fence: the handler runs on the same CPU, in
 * program order with the interrupted code). */
static inline void lb_signal_fence(void)
{ __atomic_signal_fence(__ATOMIC_SEQ_CST); }

static inline void lb_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    __asm__ __volatile__("" ::: "memory");
#endif
}

#endif /* LB_ATOMIC_H */
