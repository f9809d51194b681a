/*
 * level.c - layer 5: one level's own-context work (level.h).
 */
#include "zone.h"
#include "remote.h"

/* Frees into l so far: see the counting invariant in level.h. */
uint64_t lb_level_frees(const struct lb_level *l)
{
    uint64_t allocs = lb_load_rlx_u64(&l->allocs) - lb_load_rlx_u64(&l->allocs_base);
    const struct lb_mag *a = lb_level_loaded(l), *b = lb_level_spare(l);
    return allocs + lb_load_rlx_u64(&l->moved_out) - lb_load_rlx_u64(&l->moved_in) +
           lb_load_rlx_u32(&a->count) + lb_load_rlx_u32(&b->count) + lb_load_rlx_u64(&l->remote_frees) +
           lb_load_rlx_u64(&l->hi_frees) + lb_load_rlx_u32(&l->q_count);
}

void lb_level_own_page(struct lb_zone *z, struct lb_level *l, void *p, unsigned gfp, unsigned dflags)
{
    lb_bump_1w_u64(&l->moved_in, 1); /* as lb_level_own_desc */
    lb_zone_own(z, l, p, lb_level_count_alloc(l, lb_gfp_slot_any(gfp)), dflags);
}

/* Fold a level's counters into the retired totals (its owner is gone; its
 * magazines are empty, their pages counted in moved_out). */
void lb_level_retire(struct lb_cache *c, struct lb_level *l)
{
    lb_add_rlx_u64(&c->retired_frees, lb_level_frees(l));
    uint64_t others = 0;
    for (unsigned i = 0; i < LB_MODE_SLOTS; i++) {
        uint64_t n = lb_load_rlx_u64(&l->mode_allocs[i]);
        lb_add_rlx_u64(&c->retired_allocs[i], n);
        lb_store_rlx_u64(&l->mode_allocs[i], 0);
        others += n;
    }
    uint64_t allocs = lb_load_rlx_u64(&l->allocs);
    lb_add_rlx_u64(&c->retired_allocs[LB_SLOT_ATOMIC],
                   allocs - lb_load_rlx_u64(&l->allocs_base) + lb_load_rlx_u64(&l->hi_allocs) - others);
    lb_store_rlx_u64(&l->hi_allocs, 0);
    lb_store_rlx_u64(&l->hi_frees, 0);
    /* allocs itself runs on: it is the generation of this level's pages,
     * and a queued free from before the release must never match a page
     * the next owner hands out. */
    lb_store_rlx_u64(&l->allocs_base, allocs);
    lb_store_rlx_u64(&l->moved_in, 0);
    lb_store_rlx_u64(&l->moved_out, 0);
    lb_store_rlx_u64(&l->remote_frees, 0);
}

void *lb_level_quarantine(struct lb_level *l, uint32_t cap, void *p)
{
    uint32_t n = lb_load_rlx_u32(&l->q_count);
    if (n < cap) {
        l->quarantine[(l->q_head + n) % cap] = p;
        lb_store_rlx_u32(&l->q_count, n + 1);
        return NULL;
    }
    void *out = l->quarantine[l->q_head];
    l->quarantine[l->q_head] = p;
    l->q_head = (l->q_head + 1) % cap;
    return out;
}

void *lb_level_quarantine_take(struct lb_level *l, uint32_t cap)
{
    uint32_t n = lb_load_rlx_u32(&l->q_count);
    if (!n)
        return NULL;
    void *out = l->quarantine[l->q_head];
    l->q_head = (l->q_head + 1) % cap;
    lb_store_rlx_u32(&l->q_count, n - 1);
    return out;
}

/* Give level l's cached higher-order blocks back to the buddy (l's own
 * context), so that they can be split or coalesced for a request that
 * would otherwise fail.  Returns pages given, 0 if none or the lock was
 * busy (try-lock for TRYLOCK modes). */
uint64_t lb_level_oc_flush(struct lb_zone *z, struct lb_level *l, unsigned gfp)
{
    uint64_t pages = 0;
    bool any = false;
    for (unsigned k = 1; k <= LB_OC_ORDERS; k++)
        any |= lb_load_rlx_ptr(&l->oc[k - 1]) != NULL;
    if (!any || !lb_zone_buddy_lock(z, gfp))
        return 0;
    for (unsigned k = 1; k <= LB_OC_ORDERS; k++) {
        void *b = lb_load_rlx_ptr(&l->oc[k - 1]);
        if (!b)
            continue;
        lb_store_rlx_ptr(&l->oc[k - 1], NULL);
        struct lb_region *r = lb_regmap_lookup(&z->map, (uintptr_t)b);
        lb_buddy_give(&z->buddy, r, lb_region_index(r, b), k);
        pages += (uint64_t)1 << k;
    }
    lb_zone_buddy_unlock(z);
    return pages;
}

/* Keep the chain of validated batches m (level l's own context): each
 * batch becomes l's loaded or spare magazine if that one is empty, else
 * goes to the depot if full, else (a partial batch with nowhere to go
 * whole) its pages go to the buddy or the pending stack. */
static void lb_level_absorb(struct lb_zone *z, struct lb_level *l, struct lb_mag *m)
{
    struct lb_cache *c = &z->cache;
    while (m) {
        struct lb_mag *next = lb_cache_mag_next(c, m);
        uint32_t n = lb_load_rlx_u32(&m->count);
        struct lb_mag *ld = lb_level_loaded(l), *sp = lb_level_spare(l);
        if (n == 0) {
            lb_magstack_push(c, &c->empty, m);
        } else if (lb_load_rlx_u32(&ld->count) == 0) {
            lb_magstack_push(c, &c->empty, ld);
            lb_store_rlx_ptr(&l->loaded, m);
            lb_bump_1w_u64(&l->moved_in, n);
        } else if (lb_load_rlx_u32(&sp->count) == 0) {
            lb_magstack_push(c, &c->empty, sp);
            lb_store_rlx_ptr(&l->spare, m);
            lb_bump_1w_u64(&l->moved_in, n);
        } else if (n == c->mag_size) {
            lb_magstack_push(c, &c->full, m);
        } else {
            /* A partial batch with nowhere to go whole: its pages to the
             * buddy if the lock is free, else to the pending stack. */
            if (lb_spin_trylock_bounded(&z->buddy.lock, LB_TRYLOCK_TRIES)) {
                lb_cache_mag_to_buddy(c, m);
                lb_zone_buddy_unlock(z);
            } else {
                lb_cache_mag_to_stack(c, m, &c->pending, LB_S_PENDING);
            }
            lb_magstack_push(c, &c->empty, m);
        }
        m = next;
    }
}

/* Take up to two batches other contexts freed to level l (l's own
 * context), validated, and keep them (lb_level_absorb).  Returns the
 * pages kept. */
static uint64_t lb_level_absorb_inbox(struct lb_zone *z, struct lb_level *l)
{
    uint64_t pages;
    struct lb_mag *m = lb_level_take_inbox_bounded(&z->cache, l, 2, &pages);
    lb_level_absorb(z, l, m);
    return pages;
}

void *lb_level_refill_pop(struct lb_zone *z, struct lb_level *l, unsigned gfp)
{
    LB_DEBUG_CHECK(lb_ctx()->depth > 0); /* own context: entered */
    struct lb_cache *c = &z->cache;
    void *p = lb_level_pop(l);
    if (p)
        return p;
    if (lb_load_rlx_u32(&lb_level_spare(l)->count)) {
        lb_level_swap(l);
        return lb_level_pop(l);
    }
    /* Our own pages first: what other contexts freed back to us, through
     * batches or (with no magazine to spare) the pages' queue links. */
    if (lb_level_take_queue(c, l, l) && (p = lb_level_pop(l)))
        return p;
    if (lb_level_absorb_inbox(z, l) && (p = lb_level_pop(l)))
        return p;
    struct lb_mag *m = lb_magstack_pop(c, &c->full);
    if (m) {
        lb_magstack_push(c, &c->empty, lb_level_loaded(l));
        lb_store_rlx_ptr(&l->loaded, m);
        lb_bump_1w_u64(&l->moved_in, lb_load_rlx_u32(&m->count));
        if (lb_load_rlx_u64(&c->full.count) * c->mag_size + lb_load_rlx_u64(&c->reserve.count) < z->low)
            lb_zone_kick(z);
        return lb_level_pop(l);
    }
    lb_zone_kick(z);
    if (lb_zone_buddy_lock(z, gfp)) {
        uint32_t n = lb_cache_fill_from_buddy(c, lb_level_loaded(l), c->mag_size);
        lb_zone_buddy_unlock(z);
        lb_bump_1w_u64(&l->moved_in, n);
        if ((p = lb_level_pop(l)))
            return p;
    }
    /* Our own outboxes may hold pages freed to caches no thread holds:
     * send them on, so that the adopt below can take them (the review: a
     * thread got NULL 5 times of 5 while its own partial batch held 2
     * free pages of an exited owner). */
    struct lb_tcache *tc = lb_level_tcache(c, l);
    if (lb_out_begin(tc, lb_level_depth(l))) { /* else the warden is at it */
        for (unsigned k = 0; k < LB_OUTBOX_SLOTS; k++)
            if (lb_load_rlx_ptr(&l->out_mag[k]))
                lb_level_flush_one(c, l, k);
        lb_out_end(tc, lb_level_depth(l));
    }
    /* Last, pages freed back to threads that have exited (the warden
     * would reap them at its next tick): adopt them now. */
    uint64_t pages;
    struct lb_mag *chain = lb_cache_adopt(c, l, &pages);
    if (chain)
        lb_level_absorb(z, l, chain);
    return lb_level_pop(l); /* adopted queued pages may be in our magazine */
}

void lb_zone_free0_slow(struct lb_zone *z, void *p, struct lb_region *r, uint32_t idx, uint32_t d)
{
    struct lb_cache *c = &z->cache;
    struct lb_level *l = lb_tls_level(c, d);
    if (!l && d == 0 && lb_cache_claim(c))
        l = lb_tls_level(c, 0);
    if (l && c->quarantine) {
        /* Held back: the page that has waited longest comes out instead. */
        void *out = lb_level_quarantine(l, c->quarantine, p);
        if (!out)
            return;
        p = out;
        r = lb_regmap_lookup(&z->map, (uintptr_t)p);
        idx = lb_region_index(r, p);
    }
    if (!l) {
        if (lb_spin_trylock_bounded(&z->buddy.lock, LB_TRYLOCK_TRIES)) {
            lb_buddy_give(&z->buddy, r, idx, 0);
            lb_zone_buddy_unlock(z);
        } else if (lb_load_rlx_u64(&c->reserve.count) < z->reserve_target) {
            lb_cache_reserve_put(c, r, idx);
        } else {
            lb_cache_pend(c, r, idx, 0);
            lb_zone_kick(z);
        }
        lb_add_rlx_u64(&c->shared_frees, 1);
        return;
    }
    if (!lb_level_push(l, p, c->mag_size)) {
        if (lb_load_rlx_u32(&lb_level_spare(l)->count) < c->mag_size) {
            lb_level_swap(l);
        } else {
            /* Both magazines full: hand the loaded one on. */
            struct lb_mag *m = lb_level_loaded(l), *e;
            lb_bump_1w_u64(&l->moved_out, lb_load_rlx_u32(&m->count));
            if (lb_load_rlx_u64(&c->reserve.count) < z->reserve_target) {
                lb_cache_mag_to_stack(c, m, &c->reserve, LB_S_RESERVED);
            } else if ((e = lb_magstack_pop(c, &c->empty))) {
                lb_magstack_push(c, &c->full, m);
                lb_store_rlx_ptr(&l->loaded, e);
                if (lb_load_rlx_u64(&c->full.count) * c->mag_size > 2 * (z->high - z->reserve_target) + c->mag_size)
                    lb_zone_kick(z);
            } else if (lb_spin_trylock_bounded(&z->buddy.lock, LB_TRYLOCK_TRIES)) {
                lb_cache_mag_to_buddy(c, m);
                lb_zone_buddy_unlock(z);
            } else {
                lb_cache_mag_to_stack(c, m, &c->pending, LB_S_PENDING);
                lb_zone_kick(z);
            }
        }
        bool ok = lb_level_push(l, p, c->mag_size);
        LB_CHECK(ok);
    }
}

void lb_level_empty(struct lb_cache *c, struct lb_level *l)
{
    LB_DEBUG_CHECK(lb_spin_is_locked(&c->buddy->lock));
    for (uint32_t q = lb_load_rlx_u32(&l->q_count); q; q--) {
        void *p = l->quarantine[l->q_head];
        l->q_head = (l->q_head + 1) % c->quarantine;
        struct lb_region *r = lb_regmap_lookup(c->map, (uintptr_t)p);
        lb_buddy_give(c->buddy, r, lb_region_index(r, p), 0);
        lb_bump_1w_u64(&l->moved_out, 1);
    }
    lb_store_rlx_u32(&l->q_count, 0);
    for (unsigned k = 1; k <= LB_OC_ORDERS; k++) {
        void *b = lb_load_rlx_ptr(&l->oc[k - 1]);
        if (!b)
            continue;
        lb_store_rlx_ptr(&l->oc[k - 1], NULL);
        struct lb_region *r = lb_regmap_lookup(c->map, (uintptr_t)b);
        lb_buddy_give(c->buddy, r, lb_region_index(r, b), k);
    }
    uint64_t n = lb_load_rlx_u32(&lb_level_loaded(l)->count) + lb_load_rlx_u32(&lb_level_spare(l)->count);
    lb_cache_mag_to_buddy(c, lb_level_loaded(l));
    lb_cache_mag_to_buddy(c, lb_level_spare(l));
    lb_bump_1w_u64(&l->moved_out, n);
}
