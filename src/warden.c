/*
 * warden.c - layer 5: the warden: rebalancing the supplies to the
 * watermarks, growth ahead of need, KERNEL waits and their wake-ups.
 */
#include "zone.h"
#include "remote.h"
#include "quality.h"


void lb_zone_kick(struct lb_zone *z)
{
    /* Relaxed: a hint the warden reads at its next tick; no system call. */
    if (!lb_load_rlx_u32(&z->kick))
        lb_store_rlx_u32(&z->kick, 1);
}

static void lb_zone_wake_warden(struct lb_zone *z)
{
    if (!z->warden_running)
        return;
    lb_add_rlx_u32(&z->warden_word, 1);
    lb_os_futex_wake(&z->warden_word, 1);
}

/* KERNEL: wait for pages until deadline; false when it has passed. */
bool lb_zone_wait(struct lb_zone *z, uint64_t deadline)
{
    uint64_t now = lb_os_clock_ns();
    if (deadline && now >= deadline)
        return false;
    /* Acquire: pairs with the warden's release increment after it has made
     * pages available. */
    uint32_t seq = lb_load_acq_u32(&z->free_seq);
    if (!z->warden_running) {
        /* No warden to push on idle levels' batches (remote.h): we may
         * sleep, so we do it (the second wait finds them idle). */
        lb_os_mutex_lock(&z->rebalance_mutex);
        lb_cache_steal_idle(&z->cache, lb_zone_clock_read(z, z->handle), true);
        lb_os_mutex_unlock(&z->rebalance_mutex);
    }
    lb_add_rlx_u32(&z->waiters, 1);
    lb_add_rlx_u64(&z->kernel_waits, 1);
    lb_zone_wake_warden(z);
    uint64_t slice = 1000000; /* frees make no system call: poll each ms */
    if (deadline && deadline - now < slice)
        slice = deadline - now;
    lb_os_futex_wait(&z->free_seq, seq, slice);
    lb_add_rlx_u32(&z->waiters, (uint32_t)-1);
    return true;
}

/* Give every full magazine of the depot back to the buddy (normal
 * context).  Returns pages given. */
uint64_t lb_zone_drain_depot(struct lb_zone *z)
{
    struct lb_cache *c = &z->cache;
    uint64_t pages = 0;
    struct lb_mag *m;
    while ((m = lb_magstack_pop(c, &c->full))) {
        pages += lb_load_rlx_u32(&m->count);
        lb_spin_lock(&z->buddy.lock);
        lb_cache_mag_to_buddy(c, m);
        lb_spin_unlock(&z->buddy.lock);
        lb_magstack_push(c, &c->empty, m);
    }
    return pages + lb_zone_zero_trim(z, 0);
}

/* ---- the zeroed stock (docs/design.md, "The zeroed stock") ---------------- */

#define LB_ZERO_BATCH     16u /* pages per buddy lock hold, cleared outside it */
#define LB_ZERO_IDLE_RUNS 64u /* warden runs without ZERO demand before the
                                 target halves                               */

uint64_t lb_zone_zero_trim(struct lb_zone *z, uint64_t keep)
{
    struct lb_cache *c = &z->cache;
    uint64_t given = 0;
    void *p[LB_ZERO_BATCH];
    while (lb_load_rlx_u64(&c->zstock.count) > keep) {
        uint32_t n = 0;
        uint64_t over = lb_load_rlx_u64(&c->zstock.count) - keep;
        while (n < LB_ZERO_BATCH && n < over && (p[n] = lb_cache_zstock_pop(c)))
            n++;
        if (!n)
            break;
        /* Ours now: the poison back in VERIFY zones, outside the lock. */
        if (z->flags & LABYRINTH_ZONE_VERIFY)
            for (uint32_t i = 0; i < n; i++)
                lb_zero_unstock(z, p[i]);
        lb_spin_lock(&z->buddy.lock);
        for (uint32_t i = 0; i < n; i++) {
            struct lb_region *r = lb_regmap_lookup(&z->map, (uintptr_t)p[i]);
            lb_buddy_give(&z->buddy, r, lb_region_index(r, p[i]), 0);
        }
        lb_spin_unlock(&z->buddy.lock);
        given += n;
    }
    return given;
}

/* Clear up to want pages from the buddy into the stock, a batch per lock
 * hold, leaving the buddy at least the reserve's target (for the
 * reserve's own refill and for higher orders).  Pages cleared. */
static uint64_t lb_zone_zero_fill(struct lb_zone *z, uint64_t want)
{
    struct lb_cache *c = &z->cache;
    uint32_t ids[LB_ZERO_BATCH];
    uint64_t done = 0;
    while (done < want) {
        /* One page at a time, and only while the buddy has plenty: a page
         * being cleared is in our hands, on no list, out of every
         * allocation's reach (the review: with batches of 16 and the
         * buddy allowed down to the reserve's target, a drain got NULL
         * with 16 pages in the memset).  With the buddy above the reserve
         * and the high mark, a drain cannot reach the last pages while one
         * page is cleared, unless we are preempted in the middle of it. */
        uint64_t n = 1;
        lb_spin_lock(&z->buddy.lock);
        uint64_t bf = lb_load_rlx_u64(&z->buddy.free_pages);
        n = bf > z->reserve_target + z->high + 1 ? n : 0;
        uint32_t got = n ? lb_cache_zstock_take(c, ids, (uint32_t)n) : 0;
        lb_spin_unlock(&z->buddy.lock);
        if (!got)
            break;
        /* Ours (RESERVED, on no stack): cleared with no lock held. */
        for (uint32_t i = 0; i < got; i++)
            lb_zero_clear(z, (void *)lb_region_addr(lb_cache_id_region(c, ids[i]), lb_page_id_index(ids[i])));
        /* Counted before the pages show in the stock (relaxed, a
         * statistic): a snapshot that reads the stock, then this, sees
         * cleared_pages >= stock_pages (CI, api_zero under TSan: counted
         * after the loop, a snapshot in the middle of a fill saw more
         * pages in the stock than cleared). */
        lb_add_rlx_u64(&z->zero_cleared, got);
        lb_cache_zstock_push(c, ids, got);
        done += got;
    }
    return done;
}

/* One warden run's decision: adapt the target to the demand, then fill or
 * trim the stock to it.  Pages moved. */
static uint64_t lb_zone_zero_rebalance(struct lb_zone *z)
{
    if (!z->zero_max)
        return 0;
    struct lb_cache *c = &z->cache;
    uint64_t target = lb_load_rlx_u64(&z->zero_target);
    uint64_t have = lb_load_rlx_u64(&c->zstock.count);
    /* Relaxed: a hint, as the kick (a miss racing the clear is seen at
     * the next one, or counted in misses only). */
    if (lb_load_rlx_u32(&z->zero_want)) {
        lb_store_rlx_u32(&z->zero_want, 0);
        target = target ? LB_MIN(target * 2, (uint64_t)z->zero_max)
                        : LB_MIN((uint64_t)c->mag_size, (uint64_t)z->zero_max);
        z->zero_idle = 0;
    } else if (have >= target) {
        /* Nothing taken since the last run, nothing missed. */
        if (target && ++z->zero_idle >= LB_ZERO_IDLE_RUNS) {
            target /= 2;
            z->zero_idle = 0;
        }
    } else {
        z->zero_idle = 0;
    }
    /* Relaxed: a statistic for labyrinth_zone_zero_stock; only the warden
     * (under the rebalance mutex) writes it. */
    lb_store_rlx_u64(&z->zero_target, target);
    if (have > target)
        return lb_zone_zero_trim(z, target);
    /* While KERNEL callers wait, leave the buddy's pages to them. */
    if (have < target && !lb_load_rlx_u32(&z->waiters))
        return lb_zone_zero_fill(z, target - have);
    return 0;
}

void lb_zone_zero_stats(struct lb_zone *z, struct labyrinth_zero_stock_stats *o)
{
    const struct lb_cache *c = &z->cache;
    memset(o, 0, sizeof *o);
    /* Relaxed: statistics, a snapshot. */
    o->hits = lb_load_rlx_u64(&z->zero_hits_shared);
    o->misses = lb_load_rlx_u64(&z->zero_misses_shared);
    for (uint32_t t = 0; t < c->ntcaches; t++)
        for (unsigned d = 0; d < LB_LEVELS; d++) {
            o->hits += lb_load_rlx_u64(&c->tcaches[t].zero_hits[d]);
            o->misses += lb_load_rlx_u64(&c->tcaches[t].zero_misses[d]);
        }
    /* The stock before cleared_pages: the warden counts a page cleared
     * before it pushes it (lb_zone_zero_fill). */
    o->stock_pages = lb_load_rlx_u64(&c->zstock.count);
    o->cleared_pages = lb_load_rlx_u64(&z->zero_cleared);
    o->target_pages = lb_load_rlx_u64(&z->zero_target);
    o->max_pages = z->zero_max;
}

static uint64_t lb_zone_rebalance_locked(struct lb_zone *z);

uint64_t lb_zone_rebalance(struct lb_zone *z)
{
    lb_os_mutex_lock(&z->rebalance_mutex);
    /* Idle levels' partial batches first (remote.h, "Stealing idle
     * outboxes"): they reach their owners' inboxes, where a starving owner
     * finds them at its next refill.  Not counted as moved: they are not
     * free yet. */
    const struct lb_cache *c = &z->cache;
    bool urgent = lb_load_rlx_u32(&z->kick) || lb_load_rlx_u32(&z->waiters) ||
                  lb_load_rlx_u64(&z->buddy.free_pages) + lb_load_rlx_u64(&c->full.count) * c->mag_size +
                          lb_load_rlx_u64(&c->reserve.count) <
                      z->low;
    lb_cache_steal_idle(&z->cache, lb_zone_clock_read(z, z->handle), urgent);
    uint64_t moved = lb_cache_reap(&z->cache) + lb_zone_rebalance_locked(z);
    lb_os_mutex_unlock(&z->rebalance_mutex);
    return moved;
}

static uint64_t lb_zone_rebalance_locked(struct lb_zone *z)
{
    struct lb_cache *c = &z->cache;
    uint64_t moved = 0;
    /* Grow ahead of need: when what is free (buddy, depot, reserve) has
     * fallen below low and the zone may grow, add a region now rather than
     * make a KERNEL caller wait for it. */
    if (!z->caller_memory && lb_load_rlx_u64(&z->total_pages) < z->max_pages &&
        lb_load_rlx_u64(&z->buddy.free_pages) + lb_load_rlx_u64(&c->full.count) * c->mag_size +
                lb_load_rlx_u64(&c->reserve.count) + lb_load_rlx_u64(&c->zstock.count) < z->low) {
        long g = lb_zone_grow(z);
        if (g > 0)
            moved += (uint64_t)g;
    }
    lb_spin_lock(&z->buddy.lock);
    moved += lb_cache_drain_pending(c, UINT64_MAX);
    uint64_t rl = lb_load_rlx_u64(&c->reserve.count);
    if (rl < z->reserve_target)
        moved += lb_cache_reserve_fill(c, z->reserve_target - rl);
    else if (rl > z->reserve_target + c->mag_size)
        moved += lb_cache_reserve_trim(c, rl - z->reserve_target);
    lb_spin_unlock(&z->buddy.lock);

    /* The lock-free supply is the reserve plus the depot's full magazines:
     * below low, fill the depot until the supply reaches high. */
    uint64_t dp = lb_load_rlx_u64(&c->full.count) * c->mag_size;
    uint64_t depot_high = z->high - z->reserve_target;
    /* While KERNEL callers wait, leave the buddy's blocks to them. */
    if (dp + lb_load_rlx_u64(&c->reserve.count) < z->low && !lb_load_rlx_u32(&z->waiters)) {
        while (dp + c->mag_size <= LB_MAX(depot_high, (size_t)c->mag_size)) {
            struct lb_mag *e = lb_magstack_pop(c, &c->empty);
            if (!e)
                break;
            /* One magazine per lock hold: ATOMIC try-lockers wait little. */
            lb_spin_lock(&z->buddy.lock);
            uint32_t n = lb_cache_fill_from_buddy(c, e, c->mag_size);
            if (n < c->mag_size)
                lb_cache_mag_to_buddy(c, e);
            lb_spin_unlock(&z->buddy.lock);
            if (n < c->mag_size) {
                lb_magstack_push(c, &c->empty, e);
                break;
            }
            lb_magstack_push(c, &c->full, e);
            dp += c->mag_size;
            moved += c->mag_size;
        }
    } else if (dp > 2 * depot_high + c->mag_size) {
        while (dp > depot_high) {
            struct lb_mag *m = lb_magstack_pop(c, &c->full);
            if (!m)
                break;
            lb_spin_lock(&z->buddy.lock);
            lb_cache_mag_to_buddy(c, m);
            lb_spin_unlock(&z->buddy.lock);
            lb_magstack_push(c, &c->empty, m);
            dp -= c->mag_size;
            moved += c->mag_size;
        }
    }
    /* Last, what is left of the buddy above the reserve's target. */
    moved += lb_zone_zero_rebalance(z);
    if (moved)
        lb_add_rlx_u64(&z->warden_moved, moved);
    return moved;
}

void *lb_warden_main(void *arg)
{
    struct lb_zone *z = arg;
    const uint64_t min_ns = 100000, max_ns = (uint64_t)z->warden_interval_us * 1000u;
    uint64_t interval = min_ns;
    for (;;) {
        /* The coarse clock (lb_clock_of): relaxed, a time value.  0 means
         * none (writers read the counter), so it is stored only from the
         * first whole unit on: storing 1 before then put records up to
         * 1.024 ms ahead of the real time (found by the review of KB20:
         * 98 of 200 zones created in a row). */
        uint64_t now = lb_clock_of(lb_os_cycles() - z->epoch_cycles, z->clock_mult);
        if (now)
            lb_store_rlx_u64(&z->handle->clock, now);
        uint32_t w = lb_load_rlx_u32(&z->warden_word);
        if (lb_load_rlx_u32(&z->warden_stop))
            break;
        /* A kick or a waiter shortens the sleep but never skips it: with
         * the zone exhausted, ATOMIC callers kick at every failure, and a
         * warden that does not sleep would take a CPU for nothing.  KERNEL
         * waiters and the stop request wake the futex at once. */
        if (lb_load_rlx_u32(&z->kick) || lb_load_rlx_u32(&z->waiters))
            interval = min_ns;
        lb_os_futex_wait(&z->warden_word, w, interval);
        if (lb_load_rlx_u32(&z->warden_stop))
            break;
        bool kicked = lb_load_rlx_u32(&z->kick) != 0;
        if (kicked)
            lb_store_rlx_u32(&z->kick, 0);
        uint64_t moved = lb_zone_rebalance(z);
        lb_add_rlx_u64(&z->warden_runs, 1);
        if (moved || kicked)
            interval = min_ns;
        else if (interval < max_ns)
            interval = LB_MIN(interval * 2, max_ns);
        if (lb_load_rlx_u32(&z->waiters)) {
            /* Release: pairs with lb_zone_wait's acquire of free_seq. */
            lb_add_acqrel_u32(&z->free_seq, 1);
            lb_os_futex_wake(&z->free_seq, 1 << 30);
            if (!moved)
                lb_os_sleep_ns(min_ns); /* nothing to give: do not spin */
        }
    }
    return NULL;
}
