/*
 * remote.h - layer 5: the ownership protocol of order-0 pages, end to end
 * (remote.c): how a context frees a page another level owns, when its
 * batches are handed on (the flush policy), how the owner validates them,
 * how pages freed to caches no thread holds are adopted or reaped, and the
 * queue through the pages' own links when no magazine is left for a batch.
 *
 * Ownership: an order-0 page handed out from a level's magazines records
 * the level's id in its descriptor (with a generation), and from then on
 * only that level writes the descriptor: its own frees are plain stores.
 * Another context that frees the page does not touch the descriptor: it
 * appends {page id, generation} to an outbox magazine for the owner and,
 * when that is full, pushes it onto the owner's inbox (one CAS per batch).
 * The owner validates each entry when it takes the batch.  So no locked
 * instruction is spent per page, and two frees of one page can never both
 * succeed: the owner sees the second.  Generations are 64 bits (cache.h,
 * "Generations"): a stale entry is refused however long it waited.
 *
 * Who may call what concurrently:
 *
 *   call                          context                     concurrent with
 *   ---------------------------   -------------------------   ---------------------------
 *   lb_level_out_append,          the freeing level's own     the owner taking its inbox,
 *   lb_level_remote_free,         context (entered)           other freers' pushes
 *   lb_level_flush_*
 *   lb_level_take_inbox(_bnd)     the owning level's own      pushes to that inbox
 *                                 context, or whoever holds
 *                                 the tcache (warden, adopt)
 *   lb_cache_adopt                any context (claims an      claims, releases (CAS on
 *                                 unowned tcache by CAS)      owner)
 *   lb_cache_reap                 normal (warden, release)    the same
 *   lb_zone_free_remote           a free, entered             all of the above
 *   lb_zone_settle                quiescent zone (destroy)    nothing
 *
 * If you change the protocol, also update: model/labyrinth.pml (the spin
 * model), fuzz/fuzz_model.c (its NULL and late-report rules),
 * docs/design.md ("Ownership") and docs/memory-ordering.md.
 */
#ifndef LB_REMOTE_H
#define LB_REMOTE_H

#include "zone.h"

struct lb_level *lb_cache_level_by_id(const struct lb_cache *c, uint32_t id);
/* A context at level l frees page p (global id page_id) owned by another level
 * (descriptor w, read by the caller; n its full generation, lb_desc_gen).
 * 0: queued for the owner; -EALREADY: the page is already queued in l's
 * outbox (a double free); -ENOSPC: no magazine to queue it in (the caller
 * must fall back). */
int lb_level_remote_free(struct lb_cache *c, struct lb_level *l, void *p, uint32_t page_id, uint64_t w,
                         uint64_t n);
/* Push outbox slot k of l to its owner's inbox. */
void lb_level_flush_one(struct lb_cache *c, struct lb_level *l, unsigned k);
/* Whether outbox magazine m holds the entry {page_id, gen} (cold: called when
 * the slot's filter says the page may be in it). */
bool lb_level_out_holds(const struct lb_mag *m, uint32_t page_id, uint32_t gen);
enum lb_append {
    LB_APPENDED = 0, /* queued                                              */
    LB_ALREADY,      /* the page is in our outbox already: a double free    */
    LB_OUT_OF_WINDOW /* n is too far from the batch's stamp: flush the slot
                        and start a new batch (nothing appended)            */
};
/* ---- Stealing idle outboxes -------------------------------------------
 * A level's partial batches wait for its next remote free; a freer that
 * goes idle (a thread blocked in its own event loop) would strand them,
 * and their owner would starve while the pages count as in flight (the
 * review's outbox_starve.c).  So the warden takes the outboxes of a level
 * that stayed idle (lb_cache_steal_idle: for about 10 ms, or for a whole
 * run while the zone is short of pages) and pushes them on.  The guard is an asymmetric Dekker pair per level:
 *
 *   level (own context)                 warden (normal context)
 *   B1 busy = 1           relaxed       S1 steal = 1              relaxed
 *   B2 compiler fence                   S2 lb_os_fence_all()      membarrier
 *   B3 s = steal          acquire       S3 b = busy               acquire
 *   B4 s == 1: CAS steal 1 -> 0         S4 b == 1: CAS 1 -> 0, skip
 *   B5 s == 2: busy = 0, no outbox      S5 CAS steal 1 -> 2, else skip
 *   B6 use the outboxes; busy = 0 rel   S6 push every outbox; steal = 0 rel
 *
 * S2 makes every thread execute a full fence during the call, so either
 * the level's B3 sees S1, or the warden's S3 sees B1: never both miss.
 * A level that sees 1 takes its outboxes back (B4; the warden's S5 then
 * fails); one that sees 2 frees this page without its outbox (a batch of
 * one, remote.c) and leaves the outboxes to the warden.  The B1..B3 cost
 * on a remote free: two stores and a load on a line the level owns; none
 * on allocation.  A signal handler uses another level, so it never meets
 * the guard of the context it interrupted.  Model: model/outbox_steal.pml. */

/* Begin a use of level d's outboxes (tc its tcache): true, go on and end
 * with lb_out_end; false, the warden is taking them: do without. */
bool lb_out_begin_slow(struct lb_tcache *tc, uint32_t d, uint32_t s);
static inline bool lb_out_begin(struct lb_tcache *tc, uint32_t d)
{
    /* B1, B2: relaxed, then only a compiler fence; the warden's
     * lb_os_fence_all (S2) is the hardware fence of this pair. */
    lb_store_rlx_u32(&tc->out_busy[d], 1);
    lb_signal_fence();
    /* B3, acquire: pairs with the warden's release store of 0 (S6), so
     * its changes to our outboxes are seen before we use them. */
    uint32_t s = lb_load_acq_u32(&tc->out_steal[d]);
    if (LB_LIKELY(s == 0))
        return true;
    return lb_out_begin_slow(tc, d, s);
}
static inline void lb_out_end(struct lb_tcache *tc, uint32_t d)
{
    /* Release: our outbox writes happen before the warden's acquire load
     * of busy (S3) that reads this 0. */
    lb_store_rel_u32(&tc->out_busy[d], 0);
}
/* The same for a level whose depth the caller does not know. */
static inline uint32_t lb_level_depth(const struct lb_level *l)
{
    return (l->id - 1) % LB_LEVELS;
}
/* Begin, waiting while the warden takes the outboxes (normal context:
 * thread release and exit; the warden's steal is a few pushes). */
void lb_out_begin_wait(struct lb_tcache *tc, uint32_t d);
/* Warden (normal context, the rebalance mutex held; now: the zone's
 * clock): push the partial outboxes of every owned level that has made no
 * remote free for LB_STEAL_IDLE_UNITS of the clock, or (urgent: the zone
 * is short of pages) since the last look.  Returns the pages pushed. */
#define LB_STEAL_IDLE_UNITS 10u /* about 10 ms: a freer between bursts is
                                   not fenced at every warden run        */
uint64_t lb_cache_steal_idle(struct lb_cache *c, uint64_t now, bool urgent);

/* Append {page_id, generation n} to outbox magazine m (slot k) of l, known
 * to be for the page's owner: the inlined part of a remote free.
 *
 * A batch carries the low word of each entry's generation and, in its
 * stamp, the full generation of its first: an entry more than
 * LB_GEN_WINDOW from the stamp could not be rebuilt by the owner, so it
 * starts a new batch (LB_OUT_OF_WINDOW, tested first: a page in m is
 * within the window, so such a page is not in m at this generation).
 *
 * The slot's filter only says the page may be queued here (it has no
 * false negatives: a page in m always hits); it is a double free only if
 * m holds the page's current generation.  An older entry means another
 * context's free of the page reached the owner first, the owner handed the
 * page out again and this is a new, legitimate free (the older entry is
 * the double free: the owner refuses it when it takes the batch). */
static inline enum lb_append lb_level_out_append(struct lb_cache *c, struct lb_level *l, unsigned k,
                                                 struct lb_mag *m, uint32_t page_id, uint64_t n)
{
    uint32_t count = lb_load_rlx_u32(&m->count);
    if (count == 0)
        m->stamp = n;
    else if (LB_UNLIKELY(n - m->stamp + LB_GEN_WINDOW >= 2 * LB_GEN_WINDOW))
        return LB_OUT_OF_WINDOW;
    uint32_t gen = (uint32_t)n & LB_GEN_MASK;
    uint64_t *bloom = l->out_bloom[k];
    unsigned h1 = lb_bloom_h1(page_id), h2 = lb_bloom_h2(page_id);
    uint64_t b1 = 1ull << (h1 & 63), b2 = 1ull << (h2 & 63);
    if (LB_UNLIKELY((bloom[h1 >> 6] & b1) && (bloom[h2 >> 6] & b2)) && lb_level_out_holds(m, page_id, gen))
        return LB_ALREADY;
    m->slot[count] = (void *)lb_entry(page_id, gen);
    lb_store_rlx_u32(&m->count, count + 1);
    bloom[h1 >> 6] |= b1;
    bloom[h2 >> 6] |= b2;
    lb_bump_1w_u64(&l->remote_frees, 1);
    if (LB_UNLIKELY(count + 1 == c->mag_size))
        lb_level_flush_one(c, l, k);
    return LB_APPENDED;
}
/* Push every outbox batch of l to its owner (l's own context). */
void lb_level_flush_outboxes(struct lb_cache *c, struct lb_level *l);
/* The same, unless l already did for this epoch (l's own context). */
void lb_level_flush_once(struct lb_cache *c, struct lb_level *l, uint32_t epoch);
/* Take l's inbox (l's own context, or the warden holding the tcache):
 * validate every entry (the descriptor still says: allocated by l, same
 * generation), turn valid ones into CACHED pages and call bad(ctx, page,
 * entry) for the others (late-detected double frees).  Returns a chain of
 * magazines holding only page pointers, linked by ->next (index + 1), or
 * NULL; *pages gets the pages kept. */
struct lb_mag *lb_level_take_inbox(struct lb_cache *c, struct lb_level *l, uint64_t *pages);
/* The same for at most max batches (the ATOMIC path's bound). */
struct lb_mag *lb_level_take_inbox_bounded(struct lb_cache *c, struct lb_level *l, unsigned max,
                                           uint64_t *pages);
/* Warden: empty the inboxes of thread caches no thread holds (their pages
 * go to the buddy).  Normal context.  Returns pages reclaimed. */
uint64_t lb_cache_reap(struct lb_cache *c);
/* Any context (lock-free, one scan of the thread caches): take the queued
 * frees of one cache no thread holds, validated, as a chain of magazines
 * of CACHED pages for the caller to keep.  NULL if there are none.  Pages
 * on that cache's queues go into into's loaded magazine (the caller's own
 * level, or NULL) while it has room, else to the pending stack. */
struct lb_mag *lb_cache_adopt(struct lb_cache *c, struct lb_level *into, uint64_t *pages);
/* Around a push onto a level of another tcache (a batch, or a page onto
 * its queue): begin before it; note after it marks that tcache an orphan
 * if no thread owns it, and ends the push.  Any context. */
void lb_tcache_push_begin(struct lb_cache *c);
void lb_tcache_note_push(struct lb_cache *c, const struct lb_level *dst);
/* Whether the orphan bits can be trusted now (no push or unown under way:
 * remote.c, "orphans"); if not, a reader must look at every tcache. */
bool lb_cache_orphans_sure(const struct lb_cache *c);
/* Let go of tc (its holder: a thread releasing it, the warden or an
 * adopter), marking it an orphan if pages are queued on it. */
void lb_tcache_unown(struct lb_cache *c, struct lb_tcache *tc);
/* Take l's queue (l's own context, or whoever holds its tcache): each page
 * still QUEUED for l is taken back, into into's loaded magazine (CACHED)
 * while it has room, else onto the pending stack; a page QUEUED for
 * another level is passed on to that level's queue; a stale entry (the
 * free lost to the owner's own free) is reported as a late double free.
 * Returns the pages taken back.  Lock-free. */
uint64_t lb_level_take_queue(struct lb_cache *c, struct lb_level *l, struct lb_level *into);


/* The free fast path's question to the policy: may a remote free of a page
 * of region 0 be appended to the freer's last outbox without the general
 * path?  Not while the zone is short of pages (kicked): then the general
 * path applies the flush policy of lb_zone_free_remote.  Relaxed: a hint
 * (lb_zone_kick's relaxed store); a stale value costs one slow free. */
static inline bool lb_remote_fast_ok(const struct lb_zone *z)
{
    return !lb_load_rlx_u32(&z->kick);
}

/* An order-0 page owned by another level (descriptor w, still ALLOC, and
 * n its full generation: the caller's decisive read, lb_desc_gen): queue
 * it for its owner, flushing as the policy says.  Returns 0 or the
 * refusal's negative errno; -EALREADY also when the queue's CAS finds
 * that the allocation n is gone (another free of it won). */
int lb_zone_free_remote(struct lb_zone *z, void *p, struct lb_region *r, uint32_t idx,
                        uint64_t w, uint64_t n, uint32_t d);
/* Quiescent zone: flush every outbox, take every inbox (pages to the
 * buddy).  Normal context. */
void lb_zone_settle(struct lb_zone *z);

#endif /* LB_REMOTE_H */
