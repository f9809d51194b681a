/*
 * zone.h - layer 5: the zone and its policy.  The struct, configuration
 * (zone.c), the GFP modes and the allocation and free paths (alloc.c,
 * free.c), growth and regions (grow.c), the warden (warden.c), the live
 * zones (registry.c), statistics (stats.c) and invariant sweeps (check.c).
 * tcache.h, level.h, remote.h and report.h are this layer's other headers;
 * the public entry points (api.c) sit on top of it.
 *
 * If you change the GFP bits or modes, also update: lb_gfp_valid and
 * lb_gfp_slot below, enum lb_mode_slot (cache.h), lb_zone_stats
 * (stats.c), the asserts in alloc.c, include/labyrinth.h's tables and
 * docs/design.md ("Modes").
 */
#ifndef LB_ZONE_H
#define LB_ZONE_H

#include "../include/labyrinth.h"
#include "tcache.h"


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
/* The counters' slot of a named mode (the fast paths: two low bits, one
 * instruction).  Exact for ATOMIC, NOWAIT, KERNEL and every gfp with a
 * TRYLOCK, RESERVE or SLEEP bit. */
static inline unsigned lb_gfp_slot(unsigned gfp) { return gfp & (LB_MODE_SLOTS - 1); }
/* The slot of any valid gfp (the slow paths), by what the call does: only
 * SLEEP makes a call wait (for the lock, for pages) and only RESERVE
 * lets it take the reserve, so gfp 0, which has neither, is counted as
 * NOWAIT, not as KERNEL as its two low bits would say (issue 18.5); gfp 1
 * (RESERVE alone) counts as ATOMIC. */
static inline unsigned lb_gfp_slot_any(unsigned gfp)
{
    return (gfp & (LABYRINTH_GFP_BIT_RESERVE | LABYRINTH_GFP_BIT_TRYLOCK | LABYRINTH_GFP_BIT_SLEEP))
               ? lb_gfp_slot(gfp)
               : (unsigned)LB_SLOT_NOWAIT;
}

/* The public handle, struct labyrinth_zone: a slot of a process-wide table
 * that is never unmapped (registry.c), so that a call on a destroyed zone,
 * or on a pointer that was never a zone, is refused with EBADF without
 * touching freed memory (KB9).  Its first line is what the order-0 fast
 * paths read, copied from the zone at creation (immutable while it lives);
 * destruction makes every fast path miss (key, fast_gfp, r0_bytes)
 * before anything of the zone goes.  A freed slot is taken again only after
 * every other free slot (round robin): a dead handle is recognised until
 * LB_HANDLES - (live zones) further zones have been created. */
#define LB_HANDLES (2u * LB_MAX_ZONES)
/* A handle slot is 2^LB_HANDLE_SHIFT bytes (its alignment), so that the
 * fast paths check "a slot's start inside the table" with one rotate and
 * one compare (lb_handle_in_table). */
#ifdef __KERNEL__
#define LB_HANDLE_SHIFT 9
#else
#define LB_HANDLE_SHIFT 8
#endif
/* A zone name's bytes kept, with its NUL (longer names are cut). */
#define LB_NAME_MAX 48
struct labyrinth_zone {
    uint64_t      key;          /* lb_handle_key's word: LB_KEY_WORD(serial);
                                   0 once destroyed                         */
    uintptr_t     r0_lo;
    size_t        r0_bytes;     /* 0 once destroyed                         */
    lb_atomic_u64 *r0_desc;
    uint32_t      fast_gfp;     /* 0 once destroyed                         */
    uint32_t      mag_size;
    uint8_t       page_shift;
    bool          free_slow;
    bool          site_fast;    /* the seed's macro has a fast path (true,
                                   never 0: a buffer of zeros taken for a
                                   handle must take the checked path)      */
    uint32_t      r0_first;
    uintptr_t     page_mask;
    lb_atomic_u32 *r0_genhi;    /* the generations' high word of r0_lo's page */
    /* Second line: validation, and the macro's tracking table. */
    lb_atomic_ptr zone LB_ALIGNED_CL; /* struct lb_zone *, NULL when free or dead */
    lb_atomic_u64 live_serial;  /* the zone's serial while it lives, else 0 */
    struct lb_track_rec *r0_track; /* the record of r0_lo's page             */
    lb_atomic_u32 *r0_track_hi; /* ... and its thread id's high half        */
    lb_atomic_u64 clock;        /* the zone's coarse clock, 0 = none       */
    uint64_t      epoch_cycles; /* the zone's, for the clock's fallback     */
    uint64_t      clock_mult;   /* the zone's (lb_clock_of)                 */
    uintptr_t     claim_lo;     /* caller memory: the zone's claim, else 0  */
    lb_atomic_u32 inherited;    /* 1: a live zone of the parent of a fork(),
                                   dead in this child until destroyed     */
    uint64_t      serial;       /* the zone's; LB_SERIAL_DEAD once destroyed */
    /* Third line: what the OS keeps of the seed macro's sites (a kernel:
     * the modules pinned that hold them, issue 17.3; user space: nothing). */
    struct lb_os_sites sites LB_ALIGNED_CL;
} __attribute__((__aligned__(1u << LB_HANDLE_SHIFT)));
_Static_assert(sizeof(struct labyrinth_zone) == 1u << LB_HANDLE_SHIFT, "a handle slot is 2^LB_HANDLE_SHIFT bytes");
_Static_assert(offsetof(struct labyrinth_zone, r0_genhi) + sizeof(void *) <= LB_CACHELINE,
               "the fast paths' fields are the handle's first line");
/* The zone's clock, the unit of the tracking records' time: 1.024 ms
 * (1024 us) since the zone was created, from the cycle counter through
 * clock_mult (2^32 * 1000 / cycles per ms, lb_zone_set_clock); 39 bits
 * of it last 17.8 years.  Never ahead of the real time: the rate is an
 * upper bound (lb_os_cycles_per_ms) and the product is rounded down; it
 * may run slow by about 0.1 %.  A zone that could not calibrate the counter (caller memory makes
 * no OS call) counts cycles >> 20 instead, and reports no alloc_ns.  The
 * warden stores the clock in the handle (clock) at every run, at most
 * warden_interval_us apart; a record written then reads that word instead
 * of the cycle counter (about 10 ns on some CPUs, the largest cost of the
 * seed's macro).  0: no warden yet, the writer reads the counter. */
#define LB_CLOCK_UNIT_US 1024u
/* The clock stops at LB_CLOCK_MAX (39 bits: 17.8 years of a zone's life)
 * rather than wrap, so that a time value always fits a tracking record's
 * field and its writers need no mask. */
#define LB_CLOCK_MAX ((1ull << 39) - 1)
static inline uint64_t lb_clock_of(uint64_t dcycles, uint64_t mult)
{
    uint64_t t = mult ? (uint64_t)(((unsigned __int128)dcycles * mult) >> 42) : dcycles >> 20;
    return t < LB_CLOCK_MAX ? t : LB_CLOCK_MAX;
}
#define LB_SERIAL_DEAD UINT64_MAX

/* What the default handler has printed of one report kind in one zone
 * (issue 17.9; report.c, lb_report_admit): a cap over the zone's life
 * (LB_REPORT_LINES) and, where the OS asks for one (a kernel:
 * LB_OS_REPORT_BURST lines per LB_OS_REPORT_WINDOW_MS), a window; the
 * lines a window held back are counted and summarised in one line. */
#define LB_REPORT_KINDS (LABYRINTH_REPORT_NOTICE + 1)
struct lb_report_limit {
    lb_atomic_u64 window;     /* the window's start, ms + 1 (0: none yet)  */
    lb_atomic_u32 lines;      /* lines admitted in the window              */
    lb_atomic_u32 total;      /* lines admitted in the zone's life         */
    lb_atomic_u32 suppressed; /* held back by windows, not yet summarised  */
};

struct lb_zone {
    /* Hot: everything the order-0 fast paths read, in one cache line (the
     * same fields as the handle's first line). */
    uint64_t      serial;       /* unique per process; = cache.serial      */
    uintptr_t     r0_lo;        /* region 0's usable pages ...              */
    size_t        r0_bytes;
    lb_atomic_u64 *r0_desc;     /* ... and the descriptor of r0_lo's page   */
    uint32_t      fast_gfp;     /* modes with a fast path (bit per gfp
                                   value); 0 when quality or VERIFY apply   */
    uint32_t      mag_size;
    unsigned      page_shift;
    bool          free_slow;    /* VERIFY: poison on free                   */
    bool          site_fast;    /* the seed's macro may take its fast path:
                                   tracking table, no VERIFY, no quarantine,
                                   zone quality at most TRACK               */
    uintptr_t     page_mask;    /* page size - 1                            */
    uint32_t      r0_first;     /* page index of r0_lo in region 0 (= its
                                   global page id: region 0's ids are bare) */
    lb_atomic_u32 *r0_genhi;    /* the high word of r0_lo's page's generation */

    struct labyrinth_zone *handle; /* this zone's slot of the handle table */
    struct lb_track_rec *r0_track; /* the record of r0_lo's page, or NULL   */
    lb_atomic_u32 *r0_track_hi; /* ... and its thread id's high half        */
    char          name[LB_NAME_MAX];
    unsigned      flags, quality, max_order;
    size_t        page_size;
    unsigned char poison;
    bool          caller_memory;
    uintptr_t     claim_lo;     /* caller memory: its claim in the registry */
    size_t        pages, max_pages, reserve_target, low, high;
    unsigned      wait_timeout_ms, warden_interval_us;
    uint64_t      epoch_cycles, cycles_per_ms;
    uint64_t      clock_mult;   /* lb_clock_of: cycles to clock units, 0 =
                                   uncalibrated                             */

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

    /* The zeroed stock (cache.zstock; warden.c, docs/design.md "The zeroed
     * stock").  Its target starts at 0, doubles (from a magazine's worth)
     * at each warden run that follows a ZERO miss, up to zero_max, and
     * halves after LB_ZERO_IDLE_RUNS runs with no ZERO demand. */
    size_t        zero_max;     /* the target's bound: reserve_target, or 0
                                   (no warden: no stock)                    */
    lb_atomic_u64 zero_target;  /* the warden writes it, stats read it     */
    lb_atomic_u32 zero_want;    /* set by a ZERO allocation that found the
                                   stock empty; the warden clears it       */
    uint32_t      zero_idle;    /* the warden's: runs in a row without
                                   ZERO demand                              */
    lb_atomic_u64 zero_cleared; /* pages the warden has cleared            */
    lb_atomic_u64 zero_hits_shared, zero_misses_shared; /* no level        */

    /* Reports. */
    /* The handler and its argument, a pair (KB11: two loose words let a
     * report pair one handler with the other's argument).  Each change
     * takes a ticket n, claims a ring slot holding a pair older than the
     * published one (CAS of its sequence to 2n - 1), writes the pair, marks
     * it complete (2n) and publishes (n << LB_REPORT_SLOT_BITS | slot) in
     * report_cur unless a later ticket already is; ticket 0 in slot 0 is
     * the default handler (a zeroed ring).  The published slot is never
     * claimed, so a change stalled anywhere (a signal, preemption) cannot
     * overwrite it (KB46).  Readers never wait for a writer and writers
     * never wait for anyone (a handler interrupting a change is safe both
     * ways); a reader retries only if changes overtook its read, and a
     * change gives up (-EBUSY) only while LB_REPORT_RING - 1 others are
     * under way (api.c). */
#define LB_REPORT_RING 8u
#define LB_REPORT_SLOT_BITS 3u
    lb_atomic_u64 report_next;
    lb_atomic_u64 report_cur;
    struct {
        lb_atomic_u64 seq;
        lb_atomic_ptr fn, arg;
    } report_ring[LB_REPORT_RING];
    /* The default handler's limits, per report kind (report.c). */
    struct lb_report_limit report_limit[LB_REPORT_KINDS];
};

/* Create / destroy (normal context).  Create returns 0 and *out, or a
 * negative errno. */
int lb_zone_create(const struct labyrinth_zone_config *cfg, struct lb_zone **out);
void lb_zone_destroy(struct lb_zone *z);
/* Which live zone holds address a, by serial (0 = none).  Any context. */
uint64_t lb_zone_owner_of(uintptr_t a);

/* Any order for the public API (depth d already entered): sets *err to a
 * negative errno on failure (ETIMEDOUT after a KERNEL wait, ENOMEM). */
void *lb_zone_alloc_err(struct lb_zone *z, unsigned gfp, unsigned order, unsigned dflags,
                        uint32_t d, int *err);
/* A block of any order whose descriptor this call turned PENDING: give it
 * to the buddy, or to the pending stack if the lock is busy. */
void lb_zone_free_block(struct lb_zone *z, struct lb_region *r, uint32_t idx, unsigned order);

/* The buddy lock as mode gfp may take it: waits (SLEEP) or tries a bounded
 * number of times (LB_TRYLOCK_TRIES).  Unlock drains a bounded batch of
 * the pending stack first. */
#define LB_TRYLOCK_TRIES 16u /* bounded: ATOMIC and NOWAIT never wait longer */
bool lb_zone_buddy_lock(struct lb_zone *z, unsigned gfp);
void lb_zone_buddy_unlock(struct lb_zone *z);

/* Supplies are low: a hint the warden reads at its next tick (any context,
 * no system call). */
void lb_zone_kick(struct lb_zone *z);
/* KERNEL: wait for pages until deadline (0 = none); false when it has
 * passed.  Normal context. */
bool lb_zone_wait(struct lb_zone *z, uint64_t deadline);
/* Give every full magazine of the depot, and the zeroed stock, back to
 * the buddy (normal context).  Returns pages given. */
uint64_t lb_zone_drain_depot(struct lb_zone *z);
/* The zeroed stock: give pages back to the buddy until keep are left
 * (normal context; VERIFY zones poison them again).  Returns pages given. */
uint64_t lb_zone_zero_trim(struct lb_zone *z, uint64_t keep);
/* Fill out (labyrinth_zone_zero_stock; any context: relaxed reads). */
void lb_zone_zero_stats(struct lb_zone *z, struct labyrinth_zero_stock_stats *out);
/* The warden thread's body (warden.c). */
void *lb_warden_main(void *arg);

/* Growth (normal context): a region of up to want pages, as large as the
 * zone was created for lb_zone_grow.  Pages added, 0, or -errno. */
long lb_zone_grow_by(struct lb_zone *z, size_t want, bool event);
long lb_zone_grow(struct lb_zone *z);
/* Map region index of npages from the OS into r / unmap it (grow.c). */
int lb_zone_region_os(struct lb_zone *z, unsigned index, size_t npages, struct lb_region *r);
void lb_zone_region_unmap(struct lb_region *r);

/* The registry of live zones and their address ranges (registry.c; normal
 * context unless said).  add: 0 or -ENOSPC. */
int lb_registry_add(struct lb_zone *z);
/* The first step of destruction: the handle stops working (every fast
 * path misses, lb_zone_get says NULL); the slot is freed by
 * lb_registry_remove. */
void lb_registry_kill_handle(struct lb_zone *z);
void lb_registry_remove(struct lb_zone *z);
uint64_t lb_registry_next_serial(void);
/* fork() (docs/design.md, "fork"): the hooks are registered once, before
 * the first zone is (normal context).  In the child every zone the parent
 * had is inherited: its handle is dead (every call refused, EBADF), its
 * TLS slot, address ranges and the zones half made or half destroyed by
 * other threads are forgotten.  lb_registry_inherited: h is such a handle
 * (any context).  lb_registry_release_inherited: destroy of such a handle
 * in the child frees its slot and its caller-memory claim; false when h
 * is not one (normal context). */
void lb_registry_fork_init(void);
bool lb_registry_inherited(const struct labyrinth_zone *h);
bool lb_registry_release_inherited(const struct labyrinth_zone *h);
/* Caller memory [lo, hi) for a new zone: 0, or -EEXIST when it overlaps
 * the caller memory or the pages of a live zone (adjacent is fine) without
 * lying inside one block allocated from it (a zone nested in a block is
 * fine), or -ENOSPC; unclaim gives it back (by its lo) when the zone is
 * destroyed or its creation failed. */
int lb_registry_claim(uintptr_t lo, uintptr_t hi);
void lb_registry_unclaim(uintptr_t lo);
/* A region added to / released from a live zone. */
void lb_registry_range_add(uintptr_t lo, uintptr_t hi, uint64_t serial);
void lb_registry_range_remove(uintptr_t lo);

/* Regions (normal context). */
int lb_zone_region_info(struct lb_zone *z, unsigned index, struct labyrinth_region_info *out);
long lb_zone_shrink(struct lb_zone *z);

/* Check and for_each: one zeroed mark byte per page of each of the first
 * n regions, mark[i] for region i (normal context).  0 or -ENOMEM (then
 * nothing is left mapped). */
int lb_zone_marks_map(struct lb_zone *z, unsigned n, uint8_t **mark);
void lb_zone_marks_unmap(unsigned n, uint8_t **mark);

/* Stats and check (normal context). */
void lb_zone_stats(struct lb_zone *z, struct labyrinth_zone_stats *out);
long lb_zone_check(struct lb_zone *z);

/* Move pages between buddy, reserve and depot to meet the watermarks
 * (normal context; what the warden runs).  Returns pages moved. */
uint64_t lb_zone_rebalance(struct lb_zone *z);

/* Descriptor of a page handed out from a magazine (any region). */
lb_atomic_u64 *lb_zone_desc_slow(struct lb_zone *z, const void *p);
static inline lb_atomic_u64 *lb_zone_desc(struct lb_zone *z, const void *p)
{
    uintptr_t off = (uintptr_t)p - z->r0_lo;
    if (LB_LIKELY(off < z->r0_bytes))
        return &z->r0_desc[off >> z->page_shift];
    return lb_zone_desc_slow(z, p);
}
/* Page p of z (which the caller holds, l's own context) becomes l's at
 * generation n with descriptor flags (cache.h, lb_level_own). */
void lb_zone_own_slow(struct lb_zone *z, const struct lb_level *l, const void *p, uint64_t n, unsigned flags);
static inline void lb_zone_own(struct lb_zone *z, const struct lb_level *l, const void *p, uint64_t n,
                               unsigned flags)
{
    uintptr_t off = (uintptr_t)p - z->r0_lo;
    if (LB_LIKELY(off < z->r0_bytes)) {
        uintptr_t i = off >> z->page_shift;
        lb_level_own(l, &z->r0_desc[i], &z->r0_genhi[i], n, flags);
        return;
    }
    lb_zone_own_slow(z, l, p, n, flags);
}

/* The region of z whose usable pages hold a: 0, or -EXDEV (another live
 * zone's page) or -EFAULT (no zone's).  Any context. */
int lb_zone_region_of(struct lb_zone *z, uintptr_t a, struct lb_region **rp);
/* Region and page index of address a in z: 0, or the negative errno of a
 * free (-EFAULT, -EXDEV, -EINVAL misaligned).  Any context. */
int lb_zone_locate(struct lb_zone *z, const void *addr, struct lb_region **rp, uint32_t *idxp);

/* CAS attempts on a descriptor that keeps changing (a racing register)
 * before a free or register gives up with -EBUSY. */
#define LB_DESC_CAS_TRIES 64u
/* Why freeing (or registering) page idx of r (descriptor w) at the given
 * order is refused, or 0 (free.c). */
int lb_refusal(struct lb_zone *z, struct lb_region *r, uint32_t idx, uint64_t w, unsigned order);

/* The live zone of handle h, or NULL: h not a slot of the handle table (a
 * foreign or NULL pointer: never dereferenced), a free slot, or a
 * destroyed zone's (registry.c).  Any context, no lock. */
struct lb_zone *lb_zone_get(const struct labyrinth_zone *h);
/* What the fast paths compare with the context's current zone, for a
 * slot of the table (lb_handle_in_table): the slot's key word,
 * (serial << 21) ^ 2^63 for a live zone, xored with the slot's address.
 * One load and one xor.  What it must do:
 *  - a byte copy of a live handle misses (not a slot; the xor with the
 *    address is one-to-one anyway: issue 17, review: a copy used after its
 *    zone's destroy read the freed metadata);
 *  - two live zones never share a key (the second review, helper-28: with
 *    serial ^ address, zones whose serials and slots differed in the same
 *    bits did, and a call through one used the other's cache, 1 in about
 *    200,000 creations): equal keys need addresses equal modulo 2^21,
 *    which two slots of a table under 2^21 bytes are not (static assert in
 *    registry.c), and then serials equal modulo 2^43, which no process
 *    makes (2^43 creations: 100 days at a million a second);
 *  - no key is 0, the "no current zone" of struct lb_tls: bit 63 of a live
 *    word is set, so its key is 0 only at an address with bit 63 set
 *    (user space has none) and with a serial near 2^42 (a kernel); a
 *    dead handle's word is 0, so its key is its address, which is neither
 *    0 nor, by the same bit 63, any live key.  A buffer of zeros taken for
 *    a handle keys as a dead one. */
/* The handle table (registry.c).  A fast path takes a handle only at the
 * start of one of its slots (lb_handle_in_table, the first test, in place
 * of a NULL test): a copy, a forgery, NULL or a pointer into a slot goes
 * the checked way, so the fields the fast paths read before any other
 * check are always one slot's own.  (helper-29: a copy of zone X placed
 * where its key equalled zone Y's was served with Y's cache; helper-30:
 * X's slot + 4, whose misaligned "key" was made of X's key and the
 * caller-chosen r0_lo, matched Y's and crashed in the allocation.)  The
 * offset rotated right by the slot's shift is below LB_HANDLES only when
 * its low bits are 0 and it is inside the table. */
extern LB_HIDDEN struct labyrinth_zone lb_handles[LB_HANDLES];
static inline bool lb_handle_in_table(const struct labyrinth_zone *h)
{
    uintptr_t off = (uintptr_t)h - (uintptr_t)lb_handles;
    uintptr_t slot = off >> LB_HANDLE_SHIFT | off << (8 * sizeof off - LB_HANDLE_SHIFT);
    return slot < LB_HANDLES;
}
#define LB_KEY_SHIFT 21
#define LB_KEY_WORD(serial) (((uint64_t)(serial) << LB_KEY_SHIFT) ^ (1ull << 63))
static inline uint64_t lb_handle_key(const struct labyrinth_zone *h)
{
    return h->key ^ (uint64_t)(uintptr_t)h;
}
/* White-box tests and the fuzzer: the zone behind a live handle. */
static inline struct lb_zone *lb_zone_of(const struct labyrinth_zone *h)
{
    struct lb_zone *z = lb_zone_get(h);
    LB_CHECK(z != NULL);
    return z;
}
/* The zone of a handle the fast path has just used (its serial matched
 * this thread's current zone, so it was live): no validation. */
static inline struct lb_zone *lb_zone_of_live(const struct labyrinth_zone *h)
{
    /* Acquire: pairs with lb_registry_add's release store, like
     * lb_zone_get (on x86 a plain load). */
    return (struct lb_zone *)lb_load_acq_ptr(&h->zone);
}

/* The zone's time in clock units (lb_clock_of): the warden's coarse clock when
 * it runs, else the cycle counter (any context). */
static inline uint64_t lb_zone_clock_read(const struct lb_zone *z, const struct labyrinth_zone *h)
{
    /* Relaxed: a time value, nothing is published with it. */
    uint64_t t = lb_load_rlx_u64(&h->clock);
    return LB_LIKELY(t != 0) ? t : lb_clock_of(lb_os_cycles() - z->epoch_cycles, h->clock_mult);
}

#include "level.h"
#include "report.h"

#endif /* LB_ZONE_H */
