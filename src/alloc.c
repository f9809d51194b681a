/*
 * alloc.c - layer 5: allocation.  The public entry points and their inlined
 * order-0 fast path, the general path (argument checks, quality, tracking)
 * and the zone's slow loop: level refill, buddy by mode, reserve, growth,
 * KERNEL waits.
 */
#include "zone.h"
#include "remote.h"
#include "quality.h"
#include "level.h"
#include "lb_annotate.h"

_Static_assert(LB_ORDER_LIMIT == LABYRINTH_MAX_ORDER_LIMIT, "order limits differ");

/* The named modes land in their own counter slots (enum lb_mode_slot). */
_Static_assert((LABYRINTH_GFP_ATOMIC & (LB_MODE_SLOTS - 1)) == LB_SLOT_ATOMIC &&
                   (LABYRINTH_GFP_NOWAIT & (LB_MODE_SLOTS - 1)) == LB_SLOT_NOWAIT &&
                   (LABYRINTH_GFP_KERNEL & (LB_MODE_SLOTS - 1)) == LB_SLOT_KERNEL &&
                   (LABYRINTH_GFP_BIT_RESERVE & (LB_MODE_SLOTS - 1)) == LB_SLOT_RESERVE,
               "the named modes need their counter slots");
/* The fast paths' test "a named mode" is gfp & ~LABYRINTH_GFP_BITS_ALL == 0
 * and a bit of fast_gfp: every bit value must index fast_gfp. */
_Static_assert(LABYRINTH_GFP_BITS_ALL < 32, "fast_gfp has a bit per gfp value");

static void *lb_zone_alloc_zeroed(struct lb_zone *z, unsigned gfp, unsigned dflags, uint32_t d);
static void lb_zone_zero_miss(struct lb_zone *z, uint32_t d);

static LB_NOINLINE void *lb_alloc_general(const struct labyrinth_zone *h, struct lb_zone *z, unsigned gfp,
                                          unsigned order,
                                          unsigned quality, const void *caller,
                                          const struct labyrinth_site *site, uint32_t tag)
{
    /* errno is set when the caller said it may sleep (the SLEEP bit), even
     * in a combination refused as invalid: that caller is not in a context
     * whose errno must be preserved. */
    bool sleeps = gfp & LABYRINTH_GFP_BIT_SLEEP;
    if (!z) {
        lb_report_no_zone("alloc_pages", h, NULL, caller);
        if (sleeps)
            lb_set_errno(EBADF);
        return NULL;
    }
    int bad = 0;
    if (!lb_gfp_valid(gfp) || (quality & ~LABYRINTH_QUALITY_ALL) || order > z->max_order)
        bad = -EINVAL;
    unsigned q = quality | z->quality;
    if (!bad && (q & LABYRINTH_QUALITY_TRACK) && (z->flags & LABYRINTH_ZONE_NO_TRACKING))
        bad = -EOPNOTSUPP;
    /* A kernel: a mode that may sleep, from a context that must not
     * (interrupt, softirq, preemption or interrupts off, an RCU reader).
     * User space: never (lb_os_may_sleep() is true). */
    bool atomic_ctx = !bad && sleeps && !lb_os_may_sleep();
    if (atomic_ctx)
        bad = -EINVAL;
    if (bad) {
        char b[160];
        struct lb_fmt f = {b, 0, sizeof b};
        lb_fmt_str(&f, "alloc_pages(gfp ");
        lb_fmt_hex(&f, gfp);
        lb_fmt_str(&f, ", order ");
        lb_fmt_dec(&f, order);
        lb_fmt_str(&f, ", quality ");
        lb_fmt_hex(&f, quality);
        lb_fmt_str(&f, atomic_ctx ? ") refused: a mode that may sleep, from a context that cannot (EINVAL)"
                       : bad == -EINVAL ? ") refused: unknown or contradictory flags, or order above max_order (EINVAL)"
                                        : ") refused: TRACK in a zone without tracking (EOPNOTSUPP)");
        struct labyrinth_report rep = lb_report_make(LABYRINTH_REPORT_BAD_ARGS, z, bad, b);
        rep.order = order;
        rep.caller = caller;
        lb_zone_report(z, &rep);
        if (sleeps)
            lb_set_errno(-bad);
        return NULL;
    }
    unsigned dflags = (q & LABYRINTH_QUALITY_TRACK) ? LB_D_TRACKED : 0;
    int err = 0;
    uint32_t d = lb_enter();
    /* ZERO, order 0: a page the warden cleared, if the stock has one. */
    bool want_zero = order == 0 && (q & LABYRINTH_QUALITY_ZERO);
    void *p = want_zero ? lb_zone_alloc_zeroed(z, gfp, dflags, d) : NULL;
    bool zeroed = p != NULL;
    if (!p) {
        p = lb_zone_alloc_err(z, gfp, order, dflags, d, &err);
        /* A miss only when a page was found and cleared here (the review:
         * an exhausted zone counted every failed ZERO request as a miss,
         * and grew its stock's target for them). */
        if (want_zero && p)
            lb_zone_zero_miss(z, d);
    }
    if (p) {
        LB_TOOL_ALLOC(p, z->page_size << order,
                      (z->flags & LABYRINTH_ZONE_VERIFY) || (q & (LABYRINTH_QUALITY_ZERO | LABYRINTH_QUALITY_POISON)));
        /* A stock page holds zeros, not the poison: VERIFY checks those
         * (a write into the stock is a use after free), and clears the
         * page again when they are not all there. */
        if (z->flags & LABYRINTH_ZONE_VERIFY)
            zeroed = zeroed ? lb_verify_check_byte(z, p, 0, caller, 0) : (lb_verify_check(z, p, order, caller), false);
        /* ZERO done: POISON too (ZERO wins over it). */
        if (zeroed)
            q &= ~(LABYRINTH_QUALITY_ZERO | LABYRINTH_QUALITY_POISON);
        if (q)
            lb_quality_apply(z, p, order, q, caller, site, tag);
    }
    lb_leave(d);
    if (!p && lb_gfp_may_sleep(gfp))
        lb_set_errno(-err);
    return p;
}

static LB_NOINLINE void *lb_alloc_miss(struct labyrinth_zone *h, unsigned gfp, unsigned order,
                                       unsigned quality, const void *caller);

/* A mode that may sleep is taken by a fast path only where the caller may
 * sleep (a kernel's atomic context gets the general path's refusal; user
 * space may always). */
static inline bool lb_gfp_ctx_ok(unsigned gfp)
{
    return !LB_OS_CTX_PER_CPU || !lb_gfp_may_sleep(gfp) || lb_os_may_sleep();
}

/* ZERO alone at order 0, in a zone with fast modes (no default quality, no
 * VERIFY, no quarantine: fast_gfp), the zone the thread used last: a page
 * of the zeroed stock, made the caller's level's as the fast path takes a
 * magazine's, without lb_alloc_general's checks (the mode is a named one,
 * the handle live: a level of it was found).  What lb_zone_alloc_zeroed and
 * lb_alloc_general do for it, in the same order: the hit counted, the page
 * owned, the memory tool told its bytes are defined.  NULL when the stock
 * is empty or the zone is not current: the general path then decides (and
 * counts a miss).  Reached from labyrinth_alloc_pages's miss with
 * quality ZERO alone; anything else goes on to lb_alloc_miss.  Issue 12,
 * target 6 (docs/design.md, "The zeroed stock"). */
static LB_NOINLINE void *lb_alloc_zero(struct labyrinth_zone *h, unsigned gfp, unsigned order, const void *caller)
{
    if (order != 0 || !lb_handle_in_table(h) || (gfp & ~LABYRINTH_GFP_BITS_ALL) != 0 || !((h->fast_gfp >> gfp) & 1) ||
        !lb_gfp_ctx_ok(gfp))
        return lb_alloc_miss(h, gfp, order, LABYRINTH_QUALITY_ZERO, caller);
    uint32_t d = lb_enter();
    struct lb_level *l = lb_tls_level_cur(lb_handle_key(h), d);
    if (LB_LIKELY(l != NULL)) {
        struct lb_zone *z = lb_zone_of_live(h);
        struct lb_cache *c = &z->cache;
        /* Relaxed: a hint that spares the CAS when the stock is empty. */
        uint32_t top = lb_load_rlx_u64(&c->zstock.count) ? lb_pstack_pop(c, &c->zstock) : 0;
        if (top) {
            struct lb_region *r = lb_cache_id_region(c, top - 1);
            uint32_t idx = lb_page_id_index(top - 1);
            void *p = (void *)lb_region_addr(r, idx);
            /* l is lvl[d] of its tcache (lb_tls_level_cur). */
            lb_bump_1w_u64(&lb_level_tcache_at(l, d)->zero_hits[d], 1);
            lb_level_own_desc(l, &r->desc[idx], &r->gen_hi[idx], gfp, 0);
            lb_leave(d);
            LB_TOOL_ALLOC(p, z->page_size, 1);
            return p;
        }
    }
    lb_leave(d);
    return lb_alloc_miss(h, gfp, order, LABYRINTH_QUALITY_ZERO, caller);
}

/* Everything the inlined fast path of labyrinth_alloc_pages does not do. */
static LB_NOINLINE void *lb_alloc_miss(struct labyrinth_zone *h, unsigned gfp, unsigned order,
                                       unsigned quality, const void *caller)
{
    struct lb_zone *z = lb_zone_get(h);
    if (z != NULL && (order | quality | (gfp & ~LABYRINTH_GFP_BITS_ALL)) == 0 && ((z->fast_gfp >> gfp) & 1) &&
        lb_gfp_ctx_ok(gfp)) {
        /* Order 0, a named mode, no quality: the magazines missed. */
        int err = 0;
        uint32_t d = lb_enter();
        void *p = lb_zone_alloc_err(z, gfp, 0, 0, d, &err);
        lb_leave(d);
        if (p)
            LB_TOOL_ALLOC(p, z->page_size, 0);
        else if (lb_gfp_may_sleep(gfp))
            lb_set_errno(-err);
        return p;
    }
    return lb_alloc_general(h, z, gfp, order, quality, caller, NULL, 0);
}

/* The fast path popped p from level l (depth d) but p is not in region 0. */
static LB_NOINLINE void *lb_alloc_finish(struct labyrinth_zone *h, void *p, struct lb_level *l,
                                         uint32_t d, unsigned gfp)
{
    struct lb_zone *z = lb_zone_of_live(h);
    lb_zone_own_slow(z, l, p, lb_level_count_alloc(l, lb_gfp_slot(gfp)), 0);
    lb_leave(d);
    LB_TOOL_ALLOC(p, z->page_size, 0);
    return p;
}

void *labyrinth_alloc_pages(struct labyrinth_zone *z, unsigned gfp, unsigned order, unsigned quality)
{
    /* The fast path: order 0, a named mode, no quality, a page in this
     * thread's loaded magazine.  Anything else is a tail call. */
    if (LB_LIKELY(lb_handle_in_table(z)) && LB_LIKELY((order | quality | (gfp & ~LABYRINTH_GFP_BITS_ALL)) == 0) &&
        LB_LIKELY((z->fast_gfp >> gfp) & 1) && lb_gfp_ctx_ok(gfp)) {
        uint32_t d = lb_enter();
        struct lb_level *l = lb_tls_level_cur(lb_handle_key(z), d);
        if (LB_LIKELY(l != NULL)) {
            struct lb_mag *m = lb_level_loaded(l);
            uint32_t n = lb_load_rlx_u32(&m->count);
            if (LB_LIKELY(n != 0)) {
                void *p = m->slot[--n];
                lb_store_rlx_u32(&m->count, n);
                uintptr_t off = (uintptr_t)p - z->r0_lo;
                if (LB_UNLIKELY(off >= z->r0_bytes))
                    return lb_alloc_finish(z, p, l, d, gfp);
                /* The page was CACHED in our own magazine: no one else
                 * writes its descriptor (a racing bad free's CAS expects
                 * ALLOC and fails). */
                uintptr_t i = off >> z->page_shift;
                lb_level_own(l, &z->r0_desc[i], &z->r0_genhi[i], lb_level_count_alloc(l, lb_gfp_slot(gfp)), 0);
                lb_leave(d);
                LB_TOOL_ALLOC(p, z->page_mask + 1, 0);
                return p;
            }
        }
        lb_leave(d);
    }
    if (quality == LABYRINTH_QUALITY_ZERO)
        return lb_alloc_zero(z, gfp, order, __builtin_return_address(0));
    return lb_alloc_miss(z, gfp, order, quality, __builtin_return_address(0));
}
LB_EXPORT(labyrinth_alloc_pages);

/* The seed's macro's fast path popped p from level l (depth d), but p is
 * not in region 0: the descriptor and the record through the region map. */
static LB_NOINLINE void *lb_alloc_site_finish(struct labyrinth_zone *h, void *p, struct lb_level *l,
                                              uint32_t d, const struct labyrinth_site *site,
                                              const void *caller)
{
    struct lb_zone *z = lb_zone_of_live(h);
    struct lb_region *r = lb_regmap_lookup(&z->map, (uintptr_t)p);
    uint32_t idx = lb_region_index(r, p);
    lb_level_own(l, &r->desc[idx], &r->gen_hi[idx], lb_level_count_alloc(l, LB_SLOT_ATOMIC), LB_D_TRACKED);
    lb_track_write(z, r, idx, caller, site, 0);
    lb_leave(d);
    LB_TOOL_ALLOC(p, z->page_size, 0);
    return p;
}

/* Everything the macro's fast path does not do. */
static LB_NOINLINE void *lb_alloc_site_slow(struct labyrinth_zone *h, unsigned quality,
                                            const struct labyrinth_site *site, const void *caller)
{
    struct lb_zone *z = lb_zone_get(h);
    /* The macro registers the page; a zone without a tracking table still
     * gets its page, unregistered (the header's promise). */
    if (z && site)
        site = lb_os_site_keep(&z->handle->sites, site); /* again: idempotent */
    if (z)
        quality = (z->flags & LABYRINTH_ZONE_NO_TRACKING) ? quality & ~LABYRINTH_QUALITY_TRACK
                                                          : quality | LABYRINTH_QUALITY_TRACK;
    return lb_alloc_general(h, z, LABYRINTH_GFP_ATOMIC, 0, quality, caller, site, 0);
}

/* The macro's fast path found no thread id yet (the thread's first
 * record): the rest of its work, with the id made. */
void *labyrinth_alloc_page_atomic_site(struct labyrinth_zone *h, unsigned quality,
                                       const struct labyrinth_site *site)
{
    /* The fast path: no quality beyond the registration, a zone that
     * allows it (site_fast), a site (the macro always gives one with GNU
     * C), a page in this thread's loaded magazine.  The same steps as
     * labyrinth_alloc_pages's, plus the TRACKED flag in the descriptor and
     * the page's tracking record, written before the page is returned (its
     * owner is the only writer of both).  Anything else is a tail call.
     * The site goes through the OS once the handle is known live (a level
     * of it found, or lb_zone_get): a kernel pins its module at its first
     * use in the zone (issue 17.3); a site it cannot keep is not recorded,
     * the caller is. */
    /* quality first: with a quality the handle is not read before
     * lb_zone_get (a pointer to unmapped memory is refused; labyrinth.h,
     * HANDLES). */
    if (LB_LIKELY(quality == 0) && LB_LIKELY(lb_handle_in_table(h)) && LB_LIKELY(h->site_fast) &&
        LB_LIKELY(site != NULL)) {
        uint32_t d = lb_enter();
        struct lb_level *l = lb_tls_level_cur(lb_handle_key(h), d);
        if (LB_LIKELY(l != NULL)) {
            struct lb_mag *m = lb_level_loaded(l);
            uint32_t n = lb_load_rlx_u32(&m->count);
            site = lb_os_site_keep(&h->sites, site);
            if (LB_LIKELY(n != 0) && LB_LIKELY(site != NULL)) {
                void *p = m->slot[--n];
                lb_store_rlx_u32(&m->count, n);
                uintptr_t off = (uintptr_t)p - h->r0_lo;
                if (LB_UNLIKELY(off >= h->r0_bytes))
                    return lb_alloc_site_finish(h, p, l, d, site, __builtin_return_address(0));
                uintptr_t i = off >> h->page_shift;
                lb_level_own(l, &h->r0_desc[i], &h->r0_genhi[i], lb_level_count_alloc(l, LB_SLOT_ATOMIC),
                             LB_D_TRACKED);
                /* Relaxed: the clock is a time value (lb_zone_clock_read,
                 * here without the zone: its epoch is in the handle). */
                uint64_t units = lb_load_rlx_u64(&h->clock);
                if (LB_UNLIKELY(units == 0))
                    units = lb_clock_of(lb_os_cycles() - h->epoch_cycles, h->clock_mult);
                /* This thread holds a cache: it has its id (lb_id_word_peek). */
                uint64_t tw = lb_id_word_peek();
                LB_DEBUG_CHECK(tw != 0);
                lb_track_store_site(&h->r0_track[i], &h->r0_track_hi[i], site, tw, units);
                lb_leave(d);
                LB_TOOL_ALLOC(p, h->page_mask + 1, 0);
                return p;
            }
        }
        lb_leave(d);
    }
    return lb_alloc_site_slow(h, quality, site, __builtin_return_address(0));
}
LB_EXPORT(labyrinth_alloc_page_atomic_site);

bool lb_zone_buddy_lock(struct lb_zone *z, unsigned gfp)
{
    if (lb_gfp_may_sleep(gfp)) {
        lb_spin_lock(&z->buddy.lock);
        return true;
    }
    return lb_spin_trylock_bounded(&z->buddy.lock, LB_TRYLOCK_TRIES);
}

void lb_zone_buddy_unlock(struct lb_zone *z)
{
    /* Blocks freed while the lock was busy: a bounded batch per holder. */
    if (lb_load_rlx_u64(&z->cache.pending.count))
        lb_cache_drain_pending(&z->cache, 64);
    lb_spin_unlock(&z->buddy.lock);
}

/* One attempt at the buddy and (order 0, RESERVE) the reserve. */
static void *lb_zone_try_block(struct lb_zone *z, unsigned gfp, unsigned order, unsigned dflags,
                               bool reserve)
{
    if (reserve) {
        void *p = lb_cache_reserve_get(&z->cache, dflags);
        lb_zone_kick(z);
        if (p)
            lb_add_rlx_u64(&z->reserve_allocs, 1);
        return p;
    }
    if (lb_zone_buddy_lock(z, gfp)) {
        struct lb_region *r;
        if (lb_load_rlx_u64(&z->cache.pending.count))
            lb_cache_drain_pending(&z->cache, 64);
        uint32_t idx = lb_buddy_take(&z->buddy, order, LB_S_ALLOC, dflags, &r);
        bool low = lb_load_rlx_u64(&z->buddy.free_pages) < z->low;
        lb_zone_buddy_unlock(z);
        if (low)
            lb_zone_kick(z);
        if (idx != LB_NIL)
            return (void *)lb_region_addr(r, idx);
    }
    if (order == 0) {
        /* No magazines of our own (a thread past max_threads, deep
         * nesting): a full magazine from the depot, one page from it, the
         * rest onto the pending stack for the next buddy lock holder. */
        struct lb_cache *c = &z->cache;
        struct lb_mag *m = lb_magstack_pop(c, &c->full);
        if (m) {
            uint32_t n = lb_load_rlx_u32(&m->count);
            void *p = m->slot[n - 1];
            lb_store_rlx_u32(&m->count, n - 1);
            lb_cache_mag_to_stack(c, m, &c->pending, LB_S_PENDING);
            lb_magstack_push(c, &c->empty, m);
            lb_store_rlx_u64(lb_zone_desc(z, p), lb_d_make(LB_S_ALLOC, 0, dflags));
            lb_zone_kick(z);
            return p;
        }
        /* The zeroed stock's pages are free pages like any others: never
         * left there while a request fails.  In a VERIFY zone the caller
         * checks the poison, so the page gets it back first. */
        void *p = lb_cache_zstock_pop(c);
        if (p) {
            if (z->flags & LABYRINTH_ZONE_VERIFY)
                lb_zero_unstock(z, p);
            lb_store_rlx_u64(lb_zone_desc(z, p), lb_d_make(LB_S_ALLOC, 0, dflags));
            lb_zone_kick(z);
            return p;
        }
    }
    return NULL;
}

/* The levels an allocation at depth d may use: *own, the caller's level
 * (order 0, or an order with level caches), and *l, the level whose
 * magazines serve it (order 0 only). */
static void lb_zone_levels(struct lb_zone *z, unsigned order, uint32_t d, struct lb_level **l,
                           struct lb_level **own)
{
    *l = NULL;
    if (order == 0 || order <= z->cache.oc_max_order) {
        *l = lb_tls_level(&z->cache, d);
        if (!*l && d == 0 && lb_cache_claim(&z->cache))
            *l = lb_tls_level(&z->cache, 0);
    }
    *own = *l;
    if (order > 0)
        *l = NULL;
}

/* A KERNEL allocation is about to sleep (grow, wait).  In user space the
 * thread keeps its levels across the sleep: nothing to do.  In a kernel
 * the levels are the CPU's, which another task may use while this one
 * sleeps: leave the call (the depth restored, preemption back on) and
 * enter again afterwards, perhaps on another CPU, whose levels the caller
 * then fetches again.  Only a context that may sleep gets here (api.c
 * refuses the others), and such a context on a CPU is never nested in a
 * labyrinth call there: it enters again at the same depth, 0. */
static void lb_zone_sleep_begin(uint32_t d)
{
    if (LB_OS_CTX_PER_CPU)
        lb_leave(d);
}

static void lb_zone_sleep_end(uint32_t d)
{
    if (LB_OS_CTX_PER_CPU) {
        uint32_t again = lb_enter();
        LB_CHECK(again == d);
    }
}

/* Whether a request that may not sleep would find nothing anywhere the
 * loop below looks: the level's spare, queue, inbox, quarantine and cached
 * higher-order blocks (its loaded magazine too: the general path comes
 * here without popping it), the orphans, the depot, the pending stack, the
 * buddy, the zeroed stock, and (RESERVE) the reserve.  Relaxed loads: hints, the values the
 * loop would read first; taken in the direction pages flow, so that a page
 * moving while we look is mostly seen at one end or the other (one in
 * transit between two, in a mover's hands, is missed here as it is by the
 * loop).  A drained zone then fails in a few loads, with no lock, no scan
 * and no call (issue 12 target 4: 3,790 instructions per failed ATOMIC
 * allocation before, with 64 thread caches). */
static bool lb_zone_dry(struct lb_zone *z, const struct lb_level *l, const struct lb_level *own, unsigned gfp)
{
    const struct lb_cache *c = &z->cache;
    if (l) {
        /* Our outboxes too: the loop sends them on and may adopt them. */
        for (unsigned k = 0; k < LB_OUTBOX_SLOTS; k++)
            if (lb_load_rlx_ptr(&l->out_mag[k]))
                return false;
        if (lb_load_rlx_u32(&lb_level_loaded(l)->count) || lb_load_rlx_u32(&lb_level_spare(l)->count) ||
            lb_load_rlx_u32(&l->queue) ||
            (uint32_t)lb_load_rlx_u64(&l->inbox.head) || (c->quarantine && lb_load_rlx_u32(&l->q_count)))
            return false;
    }
    uintptr_t any = 0; /* or-ed, not a branch per word */
    if (own)
        for (unsigned k = 0; k < c->oc_max_order && k < LB_OC_ORDERS; k++)
            any |= (uintptr_t)lb_load_rlx_ptr(&own->oc[k]);
    /* The orphan bits, when they can be trusted (no push or unown under
     * way: remote.c, "orphans"; acquire there, so the bits set before are
     * seen). */
    if (!lb_cache_orphans_sure(c))
        return false;
    for (uint32_t w = 0; w < (c->ntcaches + 63) / 64; w++)
        any |= lb_load_rlx_u64(&c->orphans[w]);
    /* The stacks by their heads, not their counts: a push adds to the
     * count only after its CAS has put the items on (the review found
     * NULL with a full magazine on the depot, its count still 0).  The
     * buddy: its count is changed inside the lock, so while the lock is
     * held the loop below may still find a block. */
    any |= (uint32_t)lb_load_rlx_u64(&c->full.head) | (uint32_t)lb_load_rlx_u64(&c->pending.head) |
           (uint32_t)lb_load_rlx_u64(&c->zstock.head);
    if ((gfp & LABYRINTH_GFP_BIT_RESERVE))
        any |= (uint32_t)lb_load_rlx_u64(&c->reserve.head);
    return !any && !lb_load_rlx_u64(&z->buddy.free_pages) && !lb_spin_is_locked(&z->buddy.lock);
}

/* The common slow loop: level refill (if l), buddy, higher-order level
 * cache, reserve, depot drain, growth, wait. */
static void *lb_zone_alloc_loop(struct lb_zone *z, unsigned gfp, unsigned order, unsigned dflags,
                                uint32_t d, struct lb_level *l, struct lb_level *own, int *err)
{
    uint64_t deadline = 0;
    long grow_rc = 0;
    if (!lb_gfp_may_sleep(gfp) && lb_zone_dry(z, l, own, gfp)) {
        lb_zone_kick(z); /* the warden's next tick refills the reserve */
        goto fail;
    }
    for (;;) {
        void *p = NULL;
        if (l) {
            p = lb_level_refill_pop(z, l, gfp);
            if (p) {
                lb_zone_own(z, l, p, lb_level_count_alloc(l, lb_gfp_slot_any(gfp)), dflags);
                return p;
            }
        }
        p = lb_zone_try_block(z, gfp, order, dflags, false);
        if (p) {
            /* Not from the level's magazines: counted apart (see struct lb_level). */
            lb_add_rlx_u64(&z->cache.shared_allocs[lb_gfp_slot_any(gfp)], 1);
            return p;
        }
        /* Our own cached higher-order blocks, before the reserve or a NULL. */
        if (own && lb_level_oc_flush(z, own, gfp))
            continue;
        if (order == 0 && (gfp & LABYRINTH_GFP_BIT_RESERVE) &&
            (p = lb_zone_try_block(z, gfp, order, dflags, true))) {
            lb_add_rlx_u64(&z->cache.shared_allocs[lb_gfp_slot_any(gfp)], 1);
            return p;
        }
        /* Last, this level's own quarantine, oldest page first (issue
         * 18.3): held-back pages are free, and holding them must not make
         * a request fail (or a KERNEL caller wait) with them at hand. */
        if (l && z->cache.quarantine && (p = lb_level_quarantine_take(l, z->cache.quarantine))) {
            lb_zone_own(z, l, p, lb_level_count_alloc(l, lb_gfp_slot_any(gfp)), dflags);
            return p;
        }
        if (!lb_gfp_may_sleep(gfp))
            break;
        /* A higher order: free pages may sit in the depot's magazines,
         * split; give them back to the buddy to coalesce (as Linux drains
         * its per-CPU lists), then try again. */
        if (order > 0 && lb_zone_drain_depot(z))
            continue;
        lb_zone_sleep_begin(d);
        long g = 0;
        if (gfp & LABYRINTH_GFP_BIT_GROW) {
            g = lb_zone_grow(z);
            if (g < 0)
                grow_rc = g;
        }
        bool waited = true; /* a growth: try again at once */
        if (g <= 0) {
            if (!deadline && z->wait_timeout_ms != LABYRINTH_WAIT_FOREVER)
                deadline = lb_os_clock_ns() + (uint64_t)z->wait_timeout_ms * 1000000u;
            waited = lb_zone_wait(z, deadline);
        }
        lb_zone_sleep_end(d);
        if (!waited) {
            /* A growth the OS refused, whatever its errno: ENOMEM. */
            *err = grow_rc ? -ENOMEM : -ETIMEDOUT;
            break;
        }
        if (LB_OS_CTX_PER_CPU)
            lb_zone_levels(z, order, d, &l, &own);
    }
fail:
    lb_add_rlx_u64(&z->fails[lb_gfp_slot_any(gfp)], 1);
    if (!*err)
        *err = -ENOMEM;
    return NULL;
}

/* A ZERO order-0 request the stock could not serve, served otherwise (the
 * page cleared in the call): a miss, which the warden reads as demand. */
static void lb_zone_zero_miss(struct lb_zone *z, uint32_t d)
{
    struct lb_level *l, *own;
    lb_zone_levels(z, 0, d, &l, &own);
    struct lb_tcache *tc = l ? lb_level_tcache(&z->cache, l) : NULL;
    if (tc)
        lb_bump_1w_u64(&tc->zero_misses[d], 1);
    else
        lb_add_rlx_u64(&z->zero_misses_shared, 1); /* a statistic */
    /* Relaxed: a hint for the warden's next run (lb_zone_kick's). */
    if (z->zero_max && !lb_load_rlx_u32(&z->zero_want)) {
        lb_store_rlx_u32(&z->zero_want, 1);
        lb_zone_kick(z);
    }
}

/* A ZERO order-0 request (depth d entered): a page of the zeroed stock,
 * made the caller's level's (its frees then take the fast paths), or NULL
 * when the stock is empty: a miss, which the warden reads as demand. */
static void *lb_zone_alloc_zeroed(struct lb_zone *z, unsigned gfp, unsigned dflags, uint32_t d)
{
    struct lb_level *l, *own;
    lb_zone_levels(z, 0, d, &l, &own);
    struct lb_cache *c = &z->cache;
    struct lb_tcache *tc = l ? lb_level_tcache(c, l) : NULL;
    /* Relaxed: a hint that spares the CAS when the stock is empty. */
    void *p = lb_load_rlx_u64(&c->zstock.count) ? lb_cache_zstock_pop(c) : NULL;
    if (!p)
        return NULL; /* the caller counts the miss if it finds a page */
    if (tc) {
        lb_bump_1w_u64(&tc->zero_hits[d], 1);
        lb_level_own_page(z, l, p, gfp, dflags);
    } else {
        lb_add_rlx_u64(&z->zero_hits_shared, 1); /* a statistic */
        lb_store_rlx_u64(lb_zone_desc(z, p), lb_d_make(LB_S_ALLOC, 0, dflags));
        lb_add_rlx_u64(&z->cache.shared_allocs[lb_gfp_slot_any(gfp)], 1);
    }
    return p;
}

void *lb_zone_alloc_err(struct lb_zone *z, unsigned gfp, unsigned order, unsigned dflags,
                        uint32_t d, int *err)
{
    struct lb_level *l, *own;
    lb_zone_levels(z, order, d, &l, &own);
    if (order > 0 && own) {
        /* A block of this order this level freed: ours alone, no lock. */
        void *b = lb_load_rlx_ptr(&own->oc[order - 1]);
        if (b) {
            lb_store_rlx_ptr(&own->oc[order - 1], NULL);
            lb_store_rlx_u64(lb_zone_desc(z, b), lb_d_make(LB_S_ALLOC, order, dflags));
            /* Counted in the level: no shared counter line per block. */
            lb_bump_1w_u64(&own->hi_allocs, 1);
            if (lb_gfp_slot_any(gfp) != LB_SLOT_ATOMIC)
                lb_bump_1w_u64(&own->mode_allocs[lb_gfp_slot_any(gfp)], 1);
            return b;
        }
    }
    return lb_zone_alloc_loop(z, gfp, order, dflags, d, l, own, err);
}
