/*
 * warden.c - layer 5: the warden: rebalancing the supplies to the
 * watermarks, growth ahead of need, KERNEL waits and their wake-ups.
 */
#include "zone.h"
#include "remote.h"


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
    return pages;
}

static uint64_t lb_zone_rebalance_locked(struct lb_zone *z);

uint64_t lb_zone_rebalance(struct lb_zone *z)
{
    lb_os_mutex_lock(&z->rebalance_mutex);
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
                lb_load_rlx_u64(&c->reserve.count) < z->low) {
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
