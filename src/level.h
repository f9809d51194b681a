/*
 * level.h - layer 5: the work one level of a thread cache does in its own
 * context (level.c): refilling its loaded magazine, absorbing the batches
 * freed back to it, handing a full magazine on, its quarantine, its cached
 * higher-order blocks, and emptying and retiring it when its thread lets
 * go.  level.c is the only writer of moved_in and moved_out, so the
 * counting invariant of struct lb_level (cache.h) is kept in one file:
 *   own frees = allocs + moved_out - moved_in + pages in loaded and spare
 *
 * Every function here runs in the level's own context (the thread, at the
 * level's depth, entered), or with the level's tcache held by whoever
 * releases it (LB_DEBUG_CHECK where the caller can be named).
 *
 * If you change the refill order, also update the fuzzer's NULL rule
 * (fuzz/fuzz_model.c) and docs/design.md ("Modes").
 */
#ifndef LB_LEVEL_H
#define LB_LEVEL_H

#include "zone.h"

/* Refill level l's loaded magazine and pop a page (own context), or NULL:
 * spare, inbox, depot, buddy (as gfp may lock it), ownerless inboxes. */
void *lb_level_refill_pop(struct lb_zone *z, struct lb_level *l, unsigned gfp);
/* Give level l's cached higher-order blocks back to the buddy, so that
 * they can be split or coalesced.  Pages given, 0 if none or the lock was
 * busy (try-lock for TRYLOCK modes). */
uint64_t lb_level_oc_flush(struct lb_zone *z, struct lb_level *l, unsigned gfp);
/* Order-0 page at (r, idx) whose descriptor this call turned CACHED: find
 * it a home, in level l's magazines when l (the level at depth d) exists,
 * else the shared supplies. */
void lb_zone_free0_slow(struct lb_zone *z, void *p, struct lb_region *r, uint32_t idx, uint32_t d);
/* Put a freed order-0 page (CACHED, ours) into level l's quarantine; the
 * page that leaves it, or NULL, is returned for the caller to cache. */
void *lb_level_quarantine(struct lb_level *l, uint32_t cap, void *p);
/* The page that has waited longest in level l's quarantine, taken out
 * (CACHED, ours), or NULL when it is empty (l's own context): the last
 * resort of an order-0 allocation before it fails (issue 18.3). */
void *lb_level_quarantine_take(struct lb_level *l, uint32_t cap);
/* Buddy lock held, l's tcache held by the caller: every page l holds
 * (magazines, quarantine, higher-order blocks) back to the buddy. */
void lb_level_empty(struct lb_cache *c, struct lb_level *l);
/* Fold a level's counters into the retired totals (its owner is gone; its
 * magazines are empty, their pages counted in moved_out). */
void lb_level_retire(struct lb_cache *c, struct lb_level *l);
/* Page p, which the caller took from a shared supply (the zeroed stock)
 * and owns, becomes level l's as if it had come through its magazines:
 * counted as moved in and allocated in mode gfp, its descriptor owned by
 * l with dflags (l's own context), so that its frees take the fast paths. */
void lb_level_own_page(struct lb_zone *z, struct lb_level *l, void *p, unsigned gfp, unsigned dflags);
/* The same with the page's descriptor and generation high word at hand. */
static inline void lb_level_own_desc(struct lb_level *l, lb_atomic_u64 *desc, lb_atomic_u32 *hi, unsigned gfp,
                                     unsigned dflags)
{
    /* moved_in and allocs together: own frees (lb_level_frees) are
     * unchanged until the page comes back. */
    lb_bump_1w_u64(&l->moved_in, 1);
    lb_level_own(l, desc, hi, lb_level_count_alloc(l, lb_gfp_slot_any(gfp)), dflags);
}
/* Frees into level l so far (see struct lb_level).  Any context: a
 * snapshot of relaxed counters. */
uint64_t lb_level_frees(const struct lb_level *l);

#endif /* LB_LEVEL_H */
