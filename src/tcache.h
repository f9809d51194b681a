/*
 * tcache.h - layer 5: thread caches and the calling context.
 *
 * Signal safety without atomic read-modify-writes on the magazines: every
 * thread (in a kernel: every CPU) counts how deeply it is nested in
 * labyrinth calls (lb_tls.depth).  A call at depth d uses the magazines of
 * level d of the thread's cache, so a signal handler that interrupts
 * labyrinth (depth 0) runs at depth 1 and never touches the magazines the
 * interrupted code is in the middle of changing.  Levels past LB_LEVELS,
 * and threads without a cache, use the shared path (buddy try-lock,
 * reserve, pending stack), which is lock-free.  The depth counter itself
 * is a plain load and store: a handler restores it before returning, so
 * its increments never interleave destructively.
 *
 * Who may call what concurrently:
 *
 *   call                       context                 concurrent with
 *   ------------------------   ---------------------   ------------------------------
 *   lb_enter / lb_leave        any                     handlers nesting inside them
 *   lb_tls_level*              any, entered            handlers (they use level d+1)
 *   lb_cache_claim             entered at depth 0      other threads' claims (CAS)
 *   lb_cache_release(_self)    normal, depth 0         remote pushes to its inboxes;
 *                                                      adopt/reap skip it (owned)
 *   thread-exit hook           normal (a pthread key   the same as release
 *                              destructor)
 *   lb_cache_release_ctx       normal, another         the same as release
 *                              context's (a CPU that
 *                              went offline)
 *   lb_cache_tls_(un)register  normal (zone create/    each other (a mutex)
 *                              destroy)
 */
#ifndef LB_TCACHE_H
#define LB_TCACHE_H

#include "cache.h"

/* ---- per-context state -------------------------------------------------------
 *
 * One struct per thread in user space (initial-exec TLS: no lazy
 * allocation, no call), one per CPU in a kernel (per-CPU data), reached
 * through the OS layer's lb_os_ctx() (os.h). */
struct lb_tls_zone {
    uint64_t          serial;    /* zone serial this entry belongs to      */
    struct lb_tcache *tc;
};
struct lb_tls {
    uint32_t depth;              /* nesting of labyrinth calls             */
    uint32_t thread_id;          /* 0 until first needed                   */
    uint64_t cur_serial;         /* the zone this thread used last, as its
                                    key (lb_cache.tls_key) ...            */
    struct lb_level *cur_lvl;    /* ... and its level 0 (fast check)       */
    uint32_t armed;              /* exit hook: 0 not armed, 1 armed,
                                    LB_EXIT_HOOK_RAN after it ran (no
                                    claim from then on)                   */
    uint64_t id_word;            /* lb_id_word(thread_id), stored before
                                    it (user space)                       */
    struct lb_tls_zone z[LB_TLS_ZONES];
};
#define LB_EXIT_HOOK_RAN 2u
LB_OS_CTX_DECLARE(struct lb_tls, lb_tls);
/* The calling context's struct: user space, this thread's; a kernel, this
 * CPU's, valid between lb_enter() and lb_leave(). */
#define lb_ctx() lb_os_ctx(lb_tls)
/* (Written lb_ctx()->field at each use, never kept in a pointer variable:
 * in user space that is exactly the TLS access lb_tls.field, which
 * sanitizers do not instrument as a pointer dereference.) */

/* Enter / leave a labyrinth call; returns the depth the call runs at.
 * In a kernel, entering also disables preemption (lb_os_preempt_off): the
 * context is the CPU's, and an interrupt that calls labyrinth while this
 * call is under way runs at the next depth, as a signal handler does. */
static inline uint32_t lb_enter(void)
{
    lb_os_preempt_off();
    uint32_t d = lb_ctx()->depth;
    lb_ctx()->depth = d + 1;
    /* Compiler-only ordering: a signal handler (an interrupt) arriving
     * after this point sees the new depth before any magazine access
     * below. */
    lb_signal_fence();
    return d;
}
static inline void lb_leave(uint32_t d)
{
    lb_signal_fence(); /* magazine accesses stay before the restore */
    lb_ctx()->depth = d;
    lb_os_preempt_on();
}

/* The level a call at depth d may use in the zone whose key is given
 * (lb_cache.tls_key; from a handle, lb_handle_key):
 * the "current zone" entry first (one compare), else the zone's slot.
 * NULL: the shared path, or a claim is needed.  Only a call entered at
 * depth 0 changes the current-zone entry, so a call that read it after its
 * lb_enter() cannot have it changed under it by a nested handler. */
static inline struct lb_level *lb_tls_level_cur(uint64_t key, uint32_t d)
{
    if (LB_LIKELY(lb_ctx()->cur_serial == key && d < LB_LEVELS))
        return lb_ctx()->cur_lvl + d;
    return NULL;
}
struct lb_level *lb_tls_level_slow(const struct lb_cache *c, uint32_t d);
static inline struct lb_level *lb_tls_level(const struct lb_cache *c, uint32_t d)
{
    struct lb_level *l = lb_tls_level_cur(c->tls_key, d);
    return l ? l : lb_tls_level_slow(c, d);
}
/* Take a TLS slot for c (normal context; false: none left). */
bool lb_cache_tls_register(struct lb_cache *c);
/* Forget c: threads exiting later leave its caches alone. */
void lb_cache_tls_unregister(struct lb_cache *c);
/* fork() (registry.c's hooks): prepare takes the TLS mutex, parent gives
 * it back; child forgets every slot's cache (they are the parent's) and
 * the forking thread's entries, and makes the mutex anew. */
void lb_cache_tls_fork_prepare(void);
void lb_cache_tls_fork_parent(void);
void lb_cache_tls_fork_child(void);

/* ---- thread caches --------------------------------------------------------------- */
/* Claim a cache for the calling thread (any context at depth 0; a bounded
 * scan).  NULL when none is free or the zone has no TLS slot. */
struct lb_tcache *lb_cache_claim(struct lb_cache *c);
/* Thread id of the caller, assigned on first use (any context). */
uint32_t lb_cache_thread_id(void);
/* Tests (the wrap flavour of the thread-id counter): the next id handed
 * out is last + 1, skipping the reserved ones. */
void lb_cache_thread_id_test_set(uint32_t last);
/* The same if it is already known, else 0 (a kernel: the CPU's; user
 * space: the thread's TLS word, set at its first use). */
/* A context id in the form the tracking records take it (quality.h):
 * bits 48..62 its bits 0..14, bits 0..16 its bits 15..31 (the region's
 * track_hi[] word), bit 63 set, nothing else; never 0.  User space keeps
 * it beside the id (lb_tls.id_word). */
#define LB_ID_WORD_LO_SHIFT 48u
#define LB_ID_WORD_LO_MASK  0x7fffu
#define LB_ID_WORD_HI_SHIFT 15u /* the id's bits from 15 on: the word's 0..16 */
#define LB_ID_WORD_TOP_BIT  (1ull << 63)
static inline uint64_t lb_id_word(uint32_t id)
{
    return (uint64_t)(id & LB_ID_WORD_LO_MASK) << LB_ID_WORD_LO_SHIFT | (uint64_t)(id >> LB_ID_WORD_HI_SHIFT) |
           LB_ID_WORD_TOP_BIT;
}
/* The id a word of lb_id_word names. */
static inline uint32_t lb_id_of_word(uint64_t w)
{
    return (uint32_t)((w >> LB_ID_WORD_LO_SHIFT) & LB_ID_WORD_LO_MASK) | (uint32_t)w << LB_ID_WORD_HI_SHIFT;
}
/* The calling context's lb_id_word.  User space: valid once the thread has
 * an id, which it has whenever it holds a cache (lb_cache_claim takes the
 * id first), so on every fast path. */
static inline uint64_t lb_id_word_peek(void)
{
#if LB_OS_CTX_PER_CPU
    return lb_id_word(lb_os_ctx_id());
#else
    return lb_ctx()->id_word;
#endif
}
static inline uint32_t lb_thread_id_peek(void)
{
#if LB_OS_CTX_PER_CPU
    return lb_os_ctx_id();
#else
    return lb_ctx()->thread_id;
#endif
}
static inline uint32_t lb_thread_id_fast(void)
{
    uint32_t id = lb_thread_id_peek();
    return LB_LIKELY(id != 0) ? id : lb_cache_thread_id();
}
/* Give every page of tc back to the buddy and free tc (normal context;
 * takes the buddy lock). */
void lb_cache_release(struct lb_cache *c, struct lb_tcache *tc);
/* Release the calling thread's cache of c, if any (normal context). */
void lb_cache_release_self(struct lb_cache *c);
/* Release every cache that context t (whose id is id) holds, in every
 * zone that still lives, and detach them from t.  Normal context; t runs
 * nothing and nothing runs on it meanwhile (a kernel: the per-CPU struct of
 * a CPU that has gone offline; its hotplug callback). */
void lb_cache_release_ctx(struct lb_tls *t, uint32_t id);


#endif /* LB_TCACHE_H */
