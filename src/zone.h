/*
 * zone.h - layer 5: policy.  Configuration and defaults, watermarks, the
 * GFP modes, the warden, growth, statistics, invariant checks and misuse
 * reports.  The public entry points (api.c) sit on top of it.
 */
#ifndef LB_ZONE_H
#define LB_ZONE_H

#include "../include/labyrinth.h"
#include "cache.h"

#define LB_ZONE_MAGIC 0x6c6162797a6f6e65ull /* "labyzone" */

/* Every GFP combination that is valid (docs: contradictions refused). */
static inline bool lb_gfp_valid(unsigned gfp)
{
    if (gfp & ~LABYRINTH_GFP_BITS_ALL)
        return false;
    if ((gfp & LABYRINTH_GFP_BIT_SLEEP) && (gfp & (LABYRINTH_GFP_BIT_TRYLOCK | LABYRINTH_GFP_BIT_RESERVE)))
        return false;
    if ((gfp & LABYRINTH_GFP_BIT_GROW) && !(gfp & LABYRINTH_GFP_BIT_SLEEP))
        return false;
    return true;
}
/* The three named modes take the inlined fast path: a set of gfp values. */
#define LB_GFP_FAST_SET ((1u << LABYRINTH_GFP_ATOMIC) | (1u << LABYRINTH_GFP_NOWAIT) | (1u << LABYRINTH_GFP_KERNEL))
static inline bool lb_gfp_may_sleep(unsigned gfp) { return gfp & LABYRINTH_GFP_BIT_SLEEP; }
static inline unsigned lb_gfp_slot(unsigned gfp) { return gfp & (LB_MODE_SLOTS - 1); }

struct labyrinth_zone {
    /* Hot: everything the order-0 fast paths read, in one cache line. */
    uint64_t      serial;       /* unique per process; = cache.serial      */
    uintptr_t     r0_lo;        /* region 0's usable pages ...              */
    size_t        r0_bytes;
    lb_atomic_u64 *r0_desc;     /* ... and the descriptor of r0_lo's page   */
    uint32_t      fast_gfp;     /* modes with a fast path (bit per gfp
                                   value); 0 when quality or VERIFY apply   */
    uint32_t      mag_size;
    unsigned      page_shift;
    bool          free_slow;    /* VERIFY: poison on free                   */
    uintptr_t     page_mask;    /* page size - 1                            */
    uint32_t      r0_first;     /* page index of r0_lo in region 0 (= its
                                   global page id: region 0's ids are bare) */

    uint64_t      magic;
    char          name[48];
    unsigned      flags, quality, max_order;
    size_t        page_size;
    unsigned char poison;
    bool          caller_memory;
    size_t        pages, max_pages, reserve_target, low, high;
    unsigned      wait_timeout_ms, warden_interval_us;
    uint64_t      epoch_cycles, cycles_per_us;

    struct lb_regmap map;
    struct lb_buddy  buddy;
    struct lb_cache  cache;
    struct lb_region regions[LB_MAX_REGIONS];
    lb_atomic_u64    total_pages;
    lb_os_mutex      grow_mutex;
    lb_os_mutex      rebalance_mutex; /* one rebalance at a time; check excludes it */
    struct lb_os_mapping meta_map;
    lb_atomic_u64    metadata_bytes; /* grows with regions (under grow_mutex); read by stats */

    /* The warden. */
    lb_os_thread  warden;
    bool          warden_running;
    lb_atomic_u32 warden_word;  /* futex: bumped to wake the warden       */
    lb_atomic_u32 warden_stop;
    lb_atomic_u32 kick;         /* set by any context when supplies are low */
    lb_atomic_u32 free_seq;     /* futex: bumped when pages become available */
    lb_atomic_u32 waiters;      /* KERNEL callers waiting                 */

    /* Counters (slow paths only: atomic adds are fine there). */
    lb_atomic_u64 fails[LB_MODE_SLOTS];
    lb_atomic_u64 misuse;
    lb_atomic_u64 reserve_allocs;
    lb_atomic_u64 kernel_waits;
    lb_atomic_u64 warden_runs, warden_moved;
    lb_atomic_u64 grow_events;
    lb_atomic_u64 shrink_events;

    /* Reports. */
    lb_atomic_ptr report_fn;
    lb_atomic_ptr report_arg;
    lb_atomic_u32 reports_printed;
    lb_atomic_u32 leaks_printed;
};

/* Create / destroy (normal context).  Create returns 0 and *out, or a
 * negative errno. */
int lb_zone_create(const struct labyrinth_zone_config *cfg, struct labyrinth_zone **out);
void lb_zone_destroy(struct labyrinth_zone *z);
/* Which live zone holds address a, by serial (0 = none).  Any context. */
uint64_t lb_zone_owner_of(uintptr_t a);

/* Any order for the public API (depth d already entered): sets *err to a
 * negative errno on failure (ETIMEDOUT after a KERNEL wait, ENOMEM). */
void *lb_zone_alloc_err(struct labyrinth_zone *z, unsigned gfp, unsigned order, unsigned dflags,
                        uint32_t d, int *err);
/* Order-0 page at (r, idx) whose descriptor this call turned CACHED: find
 * it a home (level magazines at depth d when possible). */
void lb_zone_free0_slow(struct labyrinth_zone *z, void *p, struct lb_region *r, uint32_t idx, uint32_t d);
/* An order-0 page owned by another level (descriptor w, still ALLOC):
 * queue it for its owner.  *rc: 0, or the refusal's negative errno. */
void lb_zone_free_remote(struct labyrinth_zone *z, void *p, struct lb_region *r, uint32_t idx,
                         uint64_t w, uint32_t d, int *rc);
/* Quiescent zone: flush every outbox, take every inbox (pages to the
 * buddy).  Normal context. */
void lb_zone_settle(struct labyrinth_zone *z);
/* A block of any order whose descriptor this call turned PENDING: give it
 * to the buddy, or to the pending stack if the lock is busy. */
void lb_zone_free_block(struct labyrinth_zone *z, struct lb_region *r, uint32_t idx, unsigned order);

/* Regions (normal context). */
int lb_zone_region_info(struct labyrinth_zone *z, unsigned index, struct labyrinth_region_info *out);
long lb_zone_shrink(struct labyrinth_zone *z);

/* Check and for_each: one zeroed mark byte per page of each of the first
 * n regions, mark[i] for region i (normal context).  0 or -ENOMEM (then
 * nothing is left mapped). */
int lb_zone_marks_map(struct labyrinth_zone *z, unsigned n, uint8_t **mark);
void lb_zone_marks_unmap(unsigned n, uint8_t **mark);

/* Stats and check (normal context). */
void lb_zone_stats(struct labyrinth_zone *z, struct labyrinth_zone_stats *out);
long lb_zone_check(struct labyrinth_zone *z);

/* Move pages between buddy, reserve and depot to meet the watermarks
 * (normal context; what the warden runs).  Returns pages moved. */
uint64_t lb_zone_rebalance(struct labyrinth_zone *z);

/* Reports: build one and hand it to the zone's handler (any context);
 * counts misuse kinds and aborts after the report in STRICT zones. */
void lb_zone_report(struct labyrinth_zone *z, const struct labyrinth_report *rep);
/* The default handler: one line on stderr (async-signal-safe). */
void lb_report_default(const struct labyrinth_report *rep, void *arg);

/* Descriptor of a page handed out from a magazine (any region). */
lb_atomic_u64 *lb_zone_desc_slow(struct labyrinth_zone *z, const void *p);
static inline lb_atomic_u64 *lb_zone_desc(struct labyrinth_zone *z, const void *p)
{
    uintptr_t off = (uintptr_t)p - z->r0_lo;
    if (LB_LIKELY(off < z->r0_bytes))
        return &z->r0_desc[off >> z->page_shift];
    return lb_zone_desc_slow(z, p);
}

/* Region and page index of address a in z: 0, or the negative errno of a
 * free (-EFAULT, -EXDEV, -EINVAL misaligned).  Any context. */
int lb_zone_locate(struct labyrinth_zone *z, const void *addr, struct lb_region **rp, uint32_t *idxp);

/* A tiny async-signal-safe formatter for report lines. */
struct lb_fmt {
    char  *buf;
    size_t len, cap;
};
void lb_fmt_str(struct lb_fmt *f, const char *s);
void lb_fmt_hex(struct lb_fmt *f, uint64_t v);
void lb_fmt_dec(struct lb_fmt *f, uint64_t v);

#endif /* LB_ZONE_H */
