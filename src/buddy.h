/*
 * buddy.h - layer 3: free areas by order, split and coalesce.
 *
 * Each region has its own free lists ("its own allocation tables"); a
 * per-order bitmask says which regions have a free block of that order, so
 * finding a block is O(max_order) whatever the number of regions.  Blocks
 * are naturally aligned: a block of order k starts at a page index (and, as
 * regions are aligned, an address) that is a multiple of 2^k pages.
 *
 * Everything except the lock functions and the relaxed counters requires
 * the buddy lock.  The lock is a test-and-set spinlock whose unlock is one
 * store: an ATOMIC or NOWAIT caller only tries it (a bounded number of
 * times), never waits, and never makes a system call to unlock it.
 */
#ifndef LB_BUDDY_H
#define LB_BUDDY_H

#include "region.h"

struct lb_spinlock { lb_atomic_u32 v; };

static inline bool lb_spin_trylock(struct lb_spinlock *l)
{
    uint32_t expected = 0;
    /* A relaxed peek first, so a busy lock costs a load, not a line steal. */
    if (lb_load_rlx_u32(&l->v))
        return false;
    /* A kernel holds the lock with preemption off, as its own spinlocks
     * do: a holder preempted on its CPU would stall every waiter (user
     * space: nothing). */
    lb_os_preempt_off();
    /* Acquire: the holder sees everything the previous holder wrote before
     * its release in lb_spin_unlock. */
    if (lb_cas_acq_u32(&l->v, &expected, 1))
        return true;
    lb_os_preempt_on();
    return false;
}
/* Try up to tries times with a pause between tries (bounded: ATOMIC/NOWAIT). */
static inline bool lb_spin_trylock_bounded(struct lb_spinlock *l, unsigned tries)
{
    for (unsigned i = 0; i < tries; i++) {
        if (lb_spin_trylock(l))
            return true;
        lb_cpu_relax();
    }
    return false;
}
static inline void lb_spin_unlock(struct lb_spinlock *l)
{
    /* Release: publishes the critical section to the next acquirer. */
    lb_store_rel_u32(&l->v, 0);
    lb_os_preempt_on();
}
/* Whether someone holds the lock: the debug tier's "lock held" check (it
 * cannot tell who holds it). */
static inline bool lb_spin_is_locked(const struct lb_spinlock *l)
{
    /* Relaxed: a holder reads its own store; a debug check needs no order. */
    return lb_load_rlx_u32(&l->v) != 0;
}
/* Wait for the lock (normal context: spins, then yields the CPU). */
void lb_spin_lock(struct lb_spinlock *l);

struct lb_free_area {
    uint32_t head;  /* page index of the first free block, or LB_NIL */
    uint32_t count; /* free blocks in the list                        */
};

struct lb_buddy {
    struct lb_spinlock lock;
    unsigned max_order;
    unsigned nregions;
    /* Written under the lock with relaxed stores, read by anyone (stats). */
    lb_atomic_u64 free_pages;
    lb_atomic_u64 free_blocks[LB_ORDER_LIMIT + 1];
    uint64_t order_mask[LB_ORDER_LIMIT + 1]; /* bit r: region r has a block */
    struct lb_region *regions[LB_MAX_REGIONS];
    struct lb_free_area area[LB_MAX_REGIONS][LB_ORDER_LIMIT + 1];
};

void lb_buddy_init(struct lb_buddy *b, unsigned max_order);

/* Lock held.  Add every usable page of r as maximal aligned free blocks. */
void lb_buddy_add_region(struct lb_buddy *b, struct lb_region *r);

/* Lock held.  Take a block of 2^order pages; its head descriptor becomes
 * state|order|flags.  Returns the page index and sets *rp, or LB_NIL. */
uint32_t lb_buddy_take(struct lb_buddy *b, unsigned order, unsigned state, unsigned flags,
                       struct lb_region **rp);

/* Lock held.  Give back the block of 2^order pages at idx of r: the caller
 * owns it (its head descriptor is not FREE and no other context will write
 * it), and its tail pages are TAIL.  Coalesces with free buddies. */
void lb_buddy_give(struct lb_buddy *b, struct lb_region *r, uint32_t idx, unsigned order);

/* Lock held.  If every usable page of r is free in its lists, take all
 * its blocks out (r no longer gives pages) and return the pages; else 0. */
size_t lb_buddy_remove_region(struct lb_buddy *b, struct lb_region *r);
/* Lock held.  Pages free in r's lists, and its largest free order (-1). */
size_t lb_buddy_region_free(const struct lb_buddy *b, const struct lb_region *r, int *largest);

/* Largest order with a free block, or -1.  Relaxed read: any context. */
int lb_buddy_largest_order(const struct lb_buddy *b);

/* Lock held.  Count violated invariants of the free lists (each listed
 * block is a FREE head of the list's order, aligned, in the region, its
 * buddy not free at the same order; counts match).  *free_pages_out gets
 * the pages found in the lists. */
long lb_buddy_check(const struct lb_buddy *b, size_t *free_pages_out);

#endif /* LB_BUDDY_H */
