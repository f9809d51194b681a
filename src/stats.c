/*
 * stats.c - layer 5: statistics: the cache's counters and
 * labyrinth_zone_stats's snapshot.
 */
#include "zone.h"

void lb_cache_counts(const struct lb_cache *c, struct lb_cache_counts *out)
{
    for (unsigned i = 0; i < LB_MODE_SLOTS; i++)
        out->allocs[i] = lb_load_rlx_u64(&c->shared_allocs[i]) + lb_load_rlx_u64(&c->retired_allocs[i]);
    out->frees = lb_load_rlx_u64(&c->shared_frees) + lb_load_rlx_u64(&c->retired_frees) -
                 lb_load_rlx_u64(&c->late_refused);
    out->in_flight_pages = 0;
    out->quarantined_pages = 0;
    out->cached_pages = 0;
    for (uint32_t t = 0; t < c->ntcaches; t++) {
        const struct lb_tcache *tc = &c->tcaches[t];
        for (unsigned d = 0; d < LB_LEVELS; d++) {
            const struct lb_level *l = &tc->lvl[d];
            uint64_t others = 0;
            for (unsigned i = 0; i < LB_MODE_SLOTS; i++) {
                uint64_t n = lb_load_rlx_u64(&l->mode_allocs[i]);
                out->allocs[i] += n;
                others += n;
            }
            out->allocs[LB_SLOT_ATOMIC] += lb_load_rlx_u64(&l->allocs) - lb_load_rlx_u64(&l->allocs_base) +
                                              lb_load_rlx_u64(&l->hi_allocs) - others;
            out->frees += lb_level_frees(l);
            /* The owner may swap loaded and spare meanwhile: a snapshot. */
            struct lb_mag *a = lb_level_loaded(l);
            struct lb_mag *b = lb_level_spare(l);
            out->cached_pages += lb_load_rlx_u32(&a->count) + lb_load_rlx_u32(&b->count);
            for (unsigned k = 1; k <= LB_OC_ORDERS; k++)
                out->cached_pages += lb_load_rlx_ptr(&l->oc[k - 1]) ? (uint64_t)1 << k : 0;
            out->quarantined_pages += lb_load_rlx_u32(&l->q_count);
            out->cached_pages += lb_load_rlx_u32(&l->q_count);
            out->in_flight_pages += lb_load_rlx_u64(&l->inbox_pages) + lb_load_rlx_u64(&l->queue_pages);
            for (unsigned k = 0; k < LB_OUTBOX_SLOTS; k++) {
                struct lb_mag *m = lb_load_rlx_ptr(&l->out_mag[k]);
                if (m)
                    out->in_flight_pages += lb_load_rlx_u32(&m->count);
            }
        }
    }
    out->depot_pages = lb_load_rlx_u64(&c->full.count) * c->mag_size;
    /* The zeroed stock's pages are free: counted as cached (the header's
     * cached_pages), beside the depot's. */
    out->cached_pages += out->depot_pages + lb_load_rlx_u64(&c->zstock.count);
    out->threads = lb_load_rlx_u32(&c->threads);
}

void lb_zone_stats(struct lb_zone *z, struct labyrinth_zone_stats *o)
{
    struct lb_cache *c = &z->cache;
    struct lb_cache_counts cc;
    memset(o, 0, sizeof *o);
    /* The warden moves pages between places in steps: keep it out of the
     * snapshot, so a zone no application thread touches reads exactly. */
    lb_os_mutex_lock(&z->rebalance_mutex);
    lb_cache_counts(c, &cc);
    o->page_size = z->page_size;
    o->total_pages = lb_load_rlx_u64(&z->total_pages);
    o->max_pages = z->max_pages;
    o->regions = lb_regmap_count(&z->map);
    o->buddy_free_pages = lb_load_rlx_u64(&z->buddy.free_pages);
    o->cached_pages = cc.cached_pages;
    o->depot_pages = cc.depot_pages;
    o->reserve_free_pages = lb_load_rlx_u64(&c->reserve.count);
    /* Blocks freed while the buddy's lock was busy (the pending stack) are
     * on their way back too, to the buddy: counted in flight, so that
     * buddy + cached + reserve + in flight is free_pages exactly (stress_zero
     * under ASan: a snapshot with 16 pages pending summed 1008 of 1024). */
    cc.in_flight_pages += lb_load_rlx_u64(&c->pending_pages);
    size_t free_pages = o->buddy_free_pages + o->cached_pages + o->reserve_free_pages + cc.in_flight_pages;
    o->free_pages = LB_MIN(free_pages, o->total_pages);
    o->in_use_pages = o->total_pages - o->free_pages;
    o->reserve_target_pages = z->reserve_target;
    o->low_pages = z->low;
    o->high_pages = z->high;
    uint64_t lw = lb_load_rlx_u64(&c->reserve_low_water);
    o->reserve_low_water = lw == UINT64_MAX ? o->reserve_free_pages : lw;
    o->threads = cc.threads;
    int lo = lb_buddy_largest_order(&z->buddy);
    o->largest_free_order = lo < 0 ? (size_t)-1 : (size_t)lo;
    uint64_t blocks_total = 0;
    for (unsigned i = 0; i <= z->max_order; i++) {
        o->free_blocks[i] = lb_load_rlx_u64(&z->buddy.free_blocks[i]);
        blocks_total += o->free_blocks[i];
    }
    /* The extfrag index of Linux's mm/vmstat.c, computed over the buddy. */
    for (unsigned j = 0; j <= z->max_order; j++) {
        bool suitable = false;
        for (unsigned i = j; i <= z->max_order; i++)
            suitable |= o->free_blocks[i] != 0;
        if (!blocks_total)
            o->frag_index[j] = 0;
        else if (suitable)
            o->frag_index[j] = -1000;
        else
            o->frag_index[j] = (int)(1000 - (1000 + o->buddy_free_pages * 1000 / ((uint64_t)1 << j)) / blocks_total);
    }
    o->shrink_events = lb_load_rlx_u64(&z->shrink_events);
    o->atomic_allocs = cc.allocs[LB_SLOT_ATOMIC] + cc.allocs[LB_SLOT_RESERVE];
    o->nowait_allocs = cc.allocs[LB_SLOT_NOWAIT];
    o->kernel_allocs = cc.allocs[LB_SLOT_KERNEL];
    o->atomic_failures = lb_load_rlx_u64(&z->fails[LB_SLOT_ATOMIC]) + lb_load_rlx_u64(&z->fails[LB_SLOT_RESERVE]);
    o->nowait_failures = lb_load_rlx_u64(&z->fails[LB_SLOT_NOWAIT]);
    o->kernel_failures = lb_load_rlx_u64(&z->fails[LB_SLOT_KERNEL]);
    o->misuse_reports = lb_load_rlx_u64(&z->misuse);
    o->atomic_reserve_allocs = lb_load_rlx_u64(&z->reserve_allocs);
    o->kernel_waits = lb_load_rlx_u64(&z->kernel_waits);
    o->frees = cc.frees;
    o->warden_runs = lb_load_rlx_u64(&z->warden_runs);
    o->warden_pages_moved = lb_load_rlx_u64(&z->warden_moved);
    o->grow_events = lb_load_rlx_u64(&z->grow_events);
    o->retry_cap_hits = lb_load_rlx_u64(&c->retry_cap_hits);
    o->in_flight_pages = cc.in_flight_pages;
    o->quarantined_pages = cc.quarantined_pages;
    o->remote_cas_fallbacks = lb_load_rlx_u64(&c->remote_fallbacks);
    o->max_retries = lb_load_rlx_u64(&c->max_retries);
    lb_os_mutex_unlock(&z->rebalance_mutex);
    o->metadata_bytes = lb_load_rlx_u64(&z->metadata_bytes);
    o->locked_pages = 0;
    unsigned n = (unsigned)o->regions;
    for (unsigned i = 0; i < n; i++) {
        struct lb_region *r = lb_regmap_get(&z->map, i);
        if (r && r->locked)
            o->locked_pages += lb_region_pages(r);
    }
}
