/*
 * cache.h - layer 4: the structures of the order-0 fast path and the
 * lock-free hand-offs between them.
 *
 * Per-thread magazines (a loaded and a spare one, after Bonwick's magazine
 * layer) over a lock-free depot of full and empty magazines, plus two
 * lock-free page stacks: the atomic-only reserve, and the pending stack of
 * blocks freed while the buddy lock was busy.  This header holds the types
 * and their small helpers; stack.c the tagged stacks, supply.c the set-up
 * and the hand-offs to and from the buddy.  The layer above (zone.h,
 * tcache.h, level.h, remote.h) decides who uses which structure when.
 *
 * Lock-free stacks use one 64-bit head {32-bit tag, 32-bit index + 1}: a
 * plain 64-bit CAS, no double-word CAS, no ABA (the tag changes with every
 * successful operation), and no pointers (ready for shared memory).  Pops
 * give up after LB_RETRY_CAP failed CAS attempts (counted); a failed CAS
 * always means that another operation on the same stack succeeded.
 *
 * Who may call what concurrently (after liburcu's tables):
 *
 *   structure            writers                        concurrent with
 *   ------------------   ----------------------------   --------------------------
 *   magazine stacks      any context (push, pop)        each other: lock-free;
 *   (depot full/empty,                                  take_all only by the
 *    inboxes)                                           stack's consumer
 *   page stacks          any context (push, pop)        each other: lock-free
 *   (reserve, pending)
 *   a magazine's slots   its holder only                stats read count only
 *   supply.c hand-offs   the buddy lock holder          page-stack pushes and pops
 *   level fields         the level's own context        stats (relaxed snapshots)
 *                        (tcache.h), or the warden
 *                        holding an unowned tcache
 *   level inbox          any context pushes; the        pushes
 *                        level's own context takes
 *   set-up (init)        one thread, before the zone    nothing
 *                        is published
 */
#ifndef LB_CACHE_H
#define LB_CACHE_H

#include "buddy.h"

#define LB_RETRY_CAP   1024u  /* CAS attempts before a pop gives up       */
#define LB_MAG_MAX     256u   /* largest magazine                         */

/* A magazine: an array of free order-0 pages (state CACHED). */
struct lb_mag {
    lb_atomic_u32 next;  /* depot stack link: magazine index + 1        */
    lb_atomic_u32 count; /* pages in slot[0..count); written only by the
                            magazine's holder, read by anyone (stats)  */
    uint64_t      stamp; /* a batch of remote frees (outbox, inbox): the
                            full generation of its first entry; every
                            entry's is within LB_GEN_WINDOW of it, so the
                            owner rebuilds each from its low bits
                            (lb_entry_gen).  Written by the holder before
                            the push (release), read after the pop     */
    void         *slot[];/* written and read only by the holder; a depot
                            push (release) / pop (acquire) hands them on */
};

/* The wrap flavour (LABYRINTH_WRAP, `make test`'s "wrap" flavour, issue
 * 11): the 32-bit counters whose wrap matters start just below it, each
 * level's and each stack's at a different distance, so that the suite runs
 * across their wraps within its first few thousand operations (as a kernel
 * starts jiffies 5 minutes before theirs).  The page generations (a
 * level's allocs: their low word in the descriptor wraps into the high
 * word in gen_hi; the statistics read allocs relative to allocs_base), the
 * stack tags, and the thread ids (tcache.c).  In every other build each
 * starts at 0.  LB_GEN_BITS (the gen8 flavour and hunting builds) narrows
 * the generations' low word, the part the descriptor and the outbox
 * entries carry. */
#ifdef LABYRINTH_WRAP
#define LB_WRAP_GEN_START(id) (((uint64_t)1 << 32) - 4096u - 61u * (uint64_t)(id))
#define LB_WRAP_TAG_START(salt) (0u - 16u - 7u * (uint32_t)(salt))
#else
#define LB_WRAP_GEN_START(id) ((uint64_t)0 * (id))
#define LB_WRAP_TAG_START(salt) (0u * (uint32_t)(salt))
#endif
#ifndef LB_GEN_BITS
#define LB_GEN_BITS 32
#endif
#define LB_GEN_MASK ((uint32_t)(((uint64_t)1 << LB_GEN_BITS) - 1))
/* A batch's entries lie within [stamp - W, stamp + W) generations of its
 * stamp: their low words then name them exactly (lb_entry_gen). */
#define LB_GEN_WINDOW ((uint64_t)1 << (LB_GEN_BITS - 1))
_Static_assert(LB_GEN_BITS >= 4 && LB_GEN_BITS <= 32, "LB_GEN_BITS is 4..32");

struct lb_stack {
    lb_atomic_u64 head LB_ALIGNED_CL; /* {tag << 32 | index + 1}; 0 index = empty */
    lb_atomic_u64 count;              /* items (pages or magazines), approximate
                                         while others operate              */
};

/* Allocation counters are indexed by a mode slot: the two low GFP bits
 * (RESERVE, TRYLOCK) of the call, lb_gfp_slot() in zone.h, except gfp 0
 * (no bit: never sleeps), which lb_gfp_slot_any() counts as NOWAIT, not in
 * the KERNEL slot (SLEEP, with no low bit).  Adding a mode
 * means: a slot here, its stats field in lb_zone_stats (stats.c), and the
 * asserts in alloc.c. */
enum lb_mode_slot {
    LB_SLOT_KERNEL  = 0, /* neither bit, SLEEP: may wait                 */
    LB_SLOT_RESERVE = 1, /* RESERVE alone: counted as ATOMIC             */
    LB_SLOT_NOWAIT  = 2, /* TRYLOCK                                      */
    LB_SLOT_ATOMIC  = 3, /* RESERVE | TRYLOCK: the uncounted default     */
    LB_MODE_SLOTS   = 4
};

#define LB_OUTBOX_SLOTS 4u  /* destinations a level batches frees for  */
#define LB_BLOOM_WORDS  4u   /* 256-bit filter per outbox slot          */
#define LB_OC_ORDERS    10u  /* higher orders with a one-block level cache */
_Static_assert(LB_OUTBOX_SLOTS == 4, "out_dest is 8 bytes of line 2");

/* One nesting level of one thread's cache.
 *
 * Ownership: an order-0 page handed out from a level's magazines records
 * the level's id in its descriptor (with a generation), and from then on
 * only that level writes the descriptor: its own frees are plain stores.
 * Another context that frees the page does not touch the descriptor: it
 * appends {page id, generation} to an outbox magazine for the owner and,
 * when that is full, pushes it onto the owner's inbox (one CAS per batch).
 * The owner validates each entry when it takes the batch.  So no locked
 * instruction is spent per page, and two frees of one page can never both
 * succeed: the owner sees the second.
 *
 * Counting: only allocations are counted on the fast path; frees follow:
 *   own frees = allocs + moved_out - moved_in + pages in loaded and spare
 *   frees     = own frees + remote_frees */
struct lb_level {
    /* Line 1: the owner's fast paths. */
    lb_atomic_ptr  loaded;   /* struct lb_mag *; written only by the level */
    lb_atomic_ptr  spare;    /* struct lb_mag *; read by stats             */
    uint64_t       pattern;  /* ALLOC | id << 16: our pages' descriptors  */
    lb_atomic_u64  allocs;   /* allocations from our magazines, all modes,
                                since the zone's creation: never reset, its
                                low 32 bits are the pages' generations     */
    uint32_t       id;       /* owner id: tcache * LB_LEVELS + level + 1  */
    uint32_t       out_last; /* outbox slot used last (inlined remote free) */
    lb_atomic_u64  remote_frees; /* pages freed into outboxes             */
    lb_atomic_ptr  out_mag[LB_OUTBOX_SLOTS]; /* outbox magazines or NULL ... */
    /* Then: the owner's slow paths (single writer). */
    uint16_t       out_dest[LB_OUTBOX_SLOTS]; /* ... and their owners' ids  */
    lb_atomic_u64  allocs_base;  /* allocs when the last owner released it */
    lb_atomic_u64  moved_in;     /* pages put in by refills and drains     */
    lb_atomic_u64  moved_out;    /* pages taken out by flushes             */
    lb_atomic_u64  mode_allocs[LB_MODE_SLOTS]; /* allocs (order 0 and oc[])
                                    in modes other than ATOMIC; slot 3 stays
                                    0: ATOMIC = the rest                    */
    /* One free block per order 1..LB_OC_ORDERS that this level freed,
     * handed out again first (state CACHED, that order): the LIFO pattern
     * of a higher order needs no lock.  Single writer. */
    lb_atomic_ptr  oc[LB_OC_ORDERS];
    lb_atomic_u64  hi_allocs;    /* blocks handed out from oc[], all modes */
    lb_atomic_u64  hi_frees;     /* blocks freed into oc[]                 */
    void         **quarantine;   /* FIFO of freed pages held back, or NULL  */
    uint32_t       q_head;       /* oldest entry                            */
    lb_atomic_u32  q_count;      /* entries (read by stats)                 */
    /* Its own line: written by other threads. */
    struct lb_stack inbox;       /* batches freed to us (magazines)         */
    lb_atomic_u64  inbox_pages;  /* entries in them                         */
    /* Pages freed to us by contexts that had no magazine for a batch: a
     * push-only stack of page id + 1 (0 = empty), linked through the
     * regions' qlink[], which the owner takes whole (remote.c). */
    lb_atomic_u32  queue;
    lb_atomic_u64  queue_pages;  /* entries on it (a statistic)             */
    /* Last two lines: for each outbox slot, a Bloom filter of the page ids
     * in its magazine (two bits per id, cleared when the slot is flushed):
     * no false negatives, so a second free of a page still in our outbox
     * is always found at once (a hit is confirmed by scanning the batch,
     * lb_level_out_holds).  Written and read by the level itself, and
     * cleared by the warden while it holds the level's outbox guard
     * (remote.h, "Stealing idle outboxes"). */
    uint64_t       out_bloom[LB_OUTBOX_SLOTS][LB_BLOOM_WORDS] LB_ALIGNED_CL;
} __attribute__((__aligned__(512)));
_Static_assert(sizeof(struct lb_level) == 512, "a level is 512 bytes: found by a shift");

struct lb_tcache {
    struct lb_level lvl[LB_LEVELS];
    lb_atomic_u32   owner;   /* 0 = free, else the owning thread's id;
                                LB_OWNER_WARDEN while the warden empties it */
    uint32_t        index;
    uint32_t        flushed_epoch[LB_LEVELS]; /* lb_level_flush_once: each
                                level's last epoch (the level's own context;
                                here because struct lb_level is full)        */
    /* Each level's outbox guard (remote.h, "Stealing idle outboxes"):
     * out_busy, written by the level's own context around every use of
     * its outboxes; out_steal, the warden's request (0 none, 1 asked, 2
     * taking them; the level may CAS 1 back to 0).  steal_seen: the
     * level's remote_frees at the warden's last look, steal_since: the
     * clock when it last changed (the warden's alone, under the rebalance
     * mutex). */
    lb_atomic_u32   out_busy[LB_LEVELS];
    lb_atomic_u32   out_steal[LB_LEVELS];
    uint64_t        steal_seen[LB_LEVELS];
    uint64_t        steal_since[LB_LEVELS];
    /* ZERO allocations by each level (its own context writes, with
     * lb_bump_1w_u64; stats read): served from the zeroed stock, or not
     * (the page cleared by the caller).  Never reset: lifetime totals. */
    lb_atomic_u64   zero_hits[LB_LEVELS];
    lb_atomic_u64   zero_misses[LB_LEVELS];
} LB_ALIGNED_CL;
#define LB_OWNER_WARDEN 0xffffffffu

/* Descriptor of an owned page: ALLOC, order 0, flags, owner, generation. */
#define LB_D_OWNED_MASK 0xffff00ffull /* state, order and owner fields */
static inline uint32_t lb_d_owner(uint64_t w) { return (uint32_t)(w >> 16) & 0xffffu; }
static inline uint32_t lb_d_gen(uint64_t w) { return (uint32_t)(w >> 32); }
static inline uint64_t lb_d_owned(uint64_t pattern, unsigned flags, uint32_t gen)
{
    return pattern | (uint64_t)flags << 8 | (uint64_t)gen << 32;
}
/* Generations (issue 11.3).  Each allocation from a level's magazines
 * takes the next value n of the level's 64-bit allocs: the page's
 * generation, unique per level for ever (2^64).  Its low LB_GEN_BITS go
 * into the descriptor, the rest (n >> LB_GEN_BITS) into the region's
 * gen_hi[] word of the page; an outbox entry carries the low word and its
 * batch the full value of its first entry (lb_mag.stamp), from which the
 * owner rebuilds each entry's and compares all 64 bits (lb_entry_current).
 * A stale entry waiting while its page's low word comes round (2^32
 * allocations, half a minute of pairs) is refused by the high word.
 *
 * Count an allocation from level l's magazines in mode slot s; returns
 * the page's generation. */
static inline uint64_t lb_level_count_alloc(struct lb_level *l, unsigned s)
{
    uint64_t n = lb_load_rlx_u64(&l->allocs) + 1;
    lb_store_rlx_u64(&l->allocs, n);
    if (LB_UNLIKELY(s != LB_SLOT_ATOMIC))
        lb_bump_1w_u64(&l->mode_allocs[s], 1);
    return n;
}
/* The page (descriptor desc, high word hi) becomes l's at generation n
 * (l's own context, which holds the page: it is the only writer of both).
 * Release, both: the high word's store orders the page's earlier
 * descriptor change (away from its previous ALLOC word) before it, and
 * the descriptor's orders the high word before it.  They pair with the
 * acquire loads of lb_desc_gen: a freer that reads the new high word then
 * reads a descriptor that is no longer the old ALLOC word, and one that
 * reads the new descriptor reads the new high word.  (Plain stores on
 * x86-64, stlr on aarch64.) */
static inline void lb_level_own(const struct lb_level *l, lb_atomic_u64 *desc, lb_atomic_u32 *hi, uint64_t n,
                                unsigned flags)
{
    lb_store_rel_u32(hi, (uint32_t)(n >> LB_GEN_BITS));
    lb_store_rel_u64(desc, lb_d_owned(l->pattern, flags, (uint32_t)n & LB_GEN_MASK));
}
/* The full generation of the allocation that descriptor word w (read by
 * the caller, any order, just before) names, for a context that is not
 * the page's owner: false if the descriptor is no longer w (the caller
 * decides anew).  Acquire, both loads (see lb_level_own): the high word
 * read belongs to w unless the descriptor moved on, which the last load
 * then sees.  This is a free's decisive read: the free paths call it
 * first, before any decision, and the free is then of that allocation
 * whatever happens later (the review of KB51: called later, a call
 * stopped after its first read of w while the page came round to w again
 * freed the newer allocation).  One exception stays: the descriptor
 * leaving w and coming back to the same word between the caller's read
 * and the last load here (a handful of instructions), which takes
 * 2^LB_GEN_BITS allocations by its owner while the call is stopped there
 * (the class of ABA the stack tags accept). */
static inline bool lb_desc_gen(const lb_atomic_u64 *desc, const lb_atomic_u32 *hi, uint64_t w, uint64_t *n)
{
    if (lb_load_acq_u64(desc) != w)
        return false;
    uint32_t h = lb_load_acq_u32(hi);
    if (lb_load_rlx_u64(desc) != w)
        return false;
    *n = (uint64_t)h << LB_GEN_BITS | lb_d_gen(w);
    return true;
}
/* The two filter bits of a page id (0..255 each). */
static inline unsigned lb_bloom_h1(uint32_t page_id) { return page_id & 255u; }
static inline unsigned lb_bloom_h2(uint32_t page_id) { return (page_id * 0x9e3779b1u) >> 24; }
/* An outbox entry: {global page id, low word of the generation}. */
static inline uintptr_t lb_entry(uint32_t page_id, uint32_t gen)
{
    return (uintptr_t)page_id << 32 | gen;
}
/* The full generation of an entry with low word lo in a batch stamped
 * stamp: the one value within LB_GEN_WINDOW of the stamp with that low
 * word (lb_level_out_append keeps every entry there). */
static inline uint64_t lb_entry_gen(uint64_t stamp, uint32_t lo)
{
    uint64_t d = (uint64_t)((lo - (uint32_t)stamp) & LB_GEN_MASK);
    if (d >= LB_GEN_WINDOW)
        d -= 2 * LB_GEN_WINDOW; /* behind the stamp: wraps below */
    return stamp + d;
}
/* Whether an entry with low word lo of batch m still names the current
 * allocation of page idx of r, whose descriptor word w the caller read
 * and found ALLOC by the entry's owner: the low word matches w and the
 * rebuilt high word the page's.  Relaxed: the owner reads its own pages
 * (their only writer), lb_zone_check a quiescent zone. */
static inline bool lb_entry_current(const struct lb_mag *m, uint32_t lo, const struct lb_region *r, uint32_t idx,
                                    uint64_t w)
{
    uint64_t n = lb_entry_gen(m->stamp, lo);
    return lb_d_gen(w) == lo && lb_load_rlx_u32(&r->gen_hi[idx]) == (uint32_t)(n >> LB_GEN_BITS);
}

typedef void lb_bad_entry_fn(void *ctx, void *page, uint64_t w);

#define LB_ORPHAN_WORDS 64 /* 4096 tcaches, the max_threads limit (zone.c) */

struct lb_cache {
    unsigned        mag_size;    /* pages per magazine (M)                */
    size_t          mag_stride;  /* bytes per magazine                    */
    char           *mags;        /* the magazine pool                     */
    uint32_t        nmags;
    struct lb_tcache *tcaches;
    uint32_t        ntcaches;
    unsigned        page_shift;
    struct lb_regmap *map;
    struct lb_buddy *buddy;

    struct lb_stack full;        /* depot: full magazines                  */
    struct lb_stack empty;       /* depot: empty magazines                 */
    struct lb_stack reserve;     /* reserve pages (ATOMIC only)            */
    struct lb_stack pending;     /* blocks freed while the buddy was busy  */
    /* The zeroed stock (issue 12 target 6): order-0 pages the warden has
     * cleared, state RESERVED with LB_D_ZEROED, for ZERO allocations
     * (and for any order-0 request that finds nothing else). */
    struct lb_stack zstock;
    lb_atomic_u64   pending_pages;
    lb_atomic_u64   reserve_low_water;
    lb_atomic_u64   retry_cap_hits;
    lb_atomic_u64   max_retries;
    lb_atomic_u64   shared_allocs[LB_MODE_SLOTS]; /* uncached path        */
    lb_atomic_u64   shared_frees;
    lb_atomic_u64   retired_allocs[LB_MODE_SLOTS]; /* of released caches  */
    lb_atomic_u64   retired_frees;
    lb_atomic_u32   threads;     /* tcaches owned                          */
    uint64_t        serial;      /* the zone's unique serial               */
    uint64_t        tls_key;     /* the handle's key word ^ its address:
                                    what a thread's current-zone entry holds
                                    and the fast paths compare
                                    (lb_handle_key, zone.h: a byte copy of a
                                    handle never matches, two live zones
                                    never share one, none is 0)            */
    unsigned        tls_slot;    /* LB_TLS_ZONES = none                    */
    unsigned        oc_max_order;/* orders 1..this use the level caches    */
    uint32_t        quarantine;  /* entries per level's quarantine, or 0   */
    lb_atomic_u64   late_refused;/* queued frees found invalid at the owner */
    lb_atomic_u64   remote_fallbacks; /* remote frees done by CAS (no magazine) */
    lb_atomic_u64   outbox_spills; /* full depot magazines emptied onto the
                                      pending stack for an outbox      */
    lb_atomic_u64   remote_singles; /* remote frees sent as a batch of one
                                      (no level, or no outbox magazine) */
    lb_atomic_u64   outbox_steals; /* pages the warden pushed on from idle
                                      levels' outboxes (remote.h)       */
    lb_atomic_u64   steal_dodges; /* remote frees made without the outbox
                                     while the warden took it           */
    lb_atomic_u32   steal_off;    /* no asymmetric fence here: written
                                     under the rebalance mutex; relaxed,
                                     a flag others may read (tests)     */
    lb_bad_entry_fn *bad_entry;  /* reports a late-detected double free     */
    void           *bad_ctx;
    /* A bit per tcache that may be unowned with pages on a level's inbox
     * or queue (an orphan: pages freed to a thread that has released its
     * cache), so that a failing allocation adopts them without looking at
     * every tcache (lb_cache_adopt; remote.c says how the bits are kept
     * exact). */
    lb_atomic_u64   orphans[LB_ORPHAN_WORDS];
    /* Pushes onto another tcache's level under way (remote.c, "orphans"):
     * while it is not 0 a reader cannot trust a missing bit. */
    lb_atomic_u64   pushes;
};


/* Pop a page from the loaded magazine, NULL if it is empty. */
static inline struct lb_mag *lb_level_loaded(const struct lb_level *l) { return lb_load_rlx_ptr(&l->loaded); }
static inline struct lb_mag *lb_level_spare(const struct lb_level *l) { return lb_load_rlx_ptr(&l->spare); }
/* Single writer (the level's own context): relaxed stores suffice; readers
 * (stats) only take snapshots. */
static inline void lb_level_swap(struct lb_level *l)
{
    void *a = lb_load_rlx_ptr(&l->loaded);
    lb_store_rlx_ptr(&l->loaded, lb_load_rlx_ptr(&l->spare));
    lb_store_rlx_ptr(&l->spare, a);
}

static inline void *lb_level_pop(struct lb_level *l)
{
    struct lb_mag *m = lb_level_loaded(l);
    uint32_t n = lb_load_rlx_u32(&m->count);
    if (LB_UNLIKELY(!n))
        return NULL;
    void *p = m->slot[--n];
    lb_store_rlx_u32(&m->count, n);
    return p;
}
/* Push onto the loaded magazine; false if it is full. */
static inline bool lb_level_push(struct lb_level *l, void *p, unsigned mag_size)
{
    struct lb_mag *m = lb_level_loaded(l);
    uint32_t n = lb_load_rlx_u32(&m->count);
    if (LB_UNLIKELY(n >= mag_size))
        return false;
    m->slot[n] = p;
    lb_store_rlx_u32(&m->count, n + 1);
    return true;
}

/* ---- named helpers: magazines and page ids --------------------------------------- */

/* Magazine i of the pool (cache-line aligned: through void *). */
static inline struct lb_mag *lb_mag_at(const struct lb_cache *c, uint32_t i)
{
    LB_DEBUG_CHECK(i < c->nmags);
    return (struct lb_mag *)(void *)(c->mags + (size_t)i * c->mag_stride);
}
static inline uint32_t lb_mag_index(const struct lb_cache *c, const struct lb_mag *m)
{
    uint32_t i = (uint32_t)(((const char *)m - c->mags) / c->mag_stride);
    LB_DEBUG_CHECK(i < c->nmags && lb_mag_at(c, i) == m);
    return i;
}
/* The magazine after m in a chain (->next is index + 1), or NULL. */
static inline struct lb_mag *lb_cache_mag_next(const struct lb_cache *c, const struct lb_mag *m)
{
    uint32_t next = lb_load_rlx_u32(&m->next);
    return next ? lb_mag_at(c, next - 1) : NULL;
}
/* The thread cache level l belongs to. */
static inline struct lb_tcache *lb_level_tcache(const struct lb_cache *c, const struct lb_level *l)
{
    LB_DEBUG_CHECK(l->id >= 1 && l->id <= c->ntcaches * LB_LEVELS);
    return &c->tcaches[(l->id - 1) / LB_LEVELS];
}
/* The same, for a level known to be lvl[d] of its tcache (no division). */
static inline struct lb_tcache *lb_level_tcache_at(struct lb_level *l, uint32_t d)
{
    _Static_assert(__builtin_offsetof(struct lb_tcache, lvl) == 0, "lvl[0] starts the tcache");
    return (struct lb_tcache *)(void *)(l - d);
}
/* The region and descriptor of a global page id (region.h's layout). */
static inline struct lb_region *lb_cache_id_region(const struct lb_cache *c, uint32_t page_id)
{
    return lb_regmap_get(c->map, lb_page_id_region(page_id));
}
static inline lb_atomic_u64 *lb_id_desc(const struct lb_cache *c, uint32_t page_id)
{
    struct lb_region *r = lb_cache_id_region(c, page_id);
    LB_DEBUG_CHECK(r != NULL && lb_page_id_index(page_id) < r->span);
    return &r->desc[lb_page_id_index(page_id)];
}
/* The global page id of page p, which lies in a region of c. */
static inline uint32_t lb_cache_page_id(const struct lb_cache *c, const void *p)
{
    const struct lb_region *r = lb_regmap_lookup(c->map, (uintptr_t)p);
    LB_DEBUG_CHECK(r != NULL);
    return lb_page_id(r, lb_region_index(r, p));
}

/* ---- set-up ----------------------------------------------------------------- */
size_t lb_cache_meta_bytes(unsigned mag_size, uint32_t nmags, uint32_t ntcaches, uint32_t quarantine);
/* meta is zeroed memory of lb_cache_meta_bytes.  Gives every tcache level
 * two empty magazines and puts the rest on the depot's empty stack. */
void lb_cache_init(struct lb_cache *c, void *meta, unsigned mag_size, uint32_t nmags,
                   uint32_t ntcaches, uint32_t quarantine, unsigned page_shift, struct lb_regmap *map,
                   struct lb_buddy *buddy, uint64_t serial);

/* ---- magazine stacks (stack.c) --------------------------------------------------------------------- */
/* Magazine stacks serve the depot (full, empty) and the levels' inboxes. */
struct lb_mag *lb_magstack_pop(struct lb_cache *c, struct lb_stack *s);
void lb_magstack_push(struct lb_cache *c, struct lb_stack *s, struct lb_mag *m);
/* Take a whole magazine stack at once (an inbox's consumer). */
struct lb_mag *lb_magstack_take_all(struct lb_cache *c, struct lb_stack *s);

/* ---- page stacks (reserve, pending) -------------------------------------------------- */
/* Push a chain of blocks already linked through their descriptors (state
 * and links written by the caller) from first to last (global page ids). */
void lb_pstack_push_chain(struct lb_cache *c, struct lb_stack *s, uint32_t first_id,
                          uint32_t last_id, unsigned last_state, unsigned last_order,
                          unsigned last_flags, uint64_t n);
void lb_cache_note_retries(struct lb_cache *c, unsigned retries);
/* A stack head: its tag (high 32 bits) moved on, its top index_plus_1. */
static inline uint64_t lb_head_next(uint64_t old, uint32_t index_plus_1)
{
    return ((old >> 32) + 1) << 32 | index_plus_1;
}
/* Pop one block; returns its global id + 1 (0 = empty or retry cap). The
 * caller owns the block and rewrites its descriptor.  Inline: the ZERO
 * path pops the zeroed stock per request (alloc.c, lb_alloc_zero). */
static inline uint32_t lb_pstack_pop(struct lb_cache *c, struct lb_stack *s)
{
    /* Acquire: pairs with the release CAS of lb_pstack_push_chain. */
    uint64_t old = lb_load_acq_u64(&s->head);
    for (unsigned tries = 0; tries < LB_RETRY_CAP; tries++) {
        uint32_t top = (uint32_t)old;
        if (!top) {
            if (tries)
                lb_cache_note_retries(c, tries);
            return 0;
        }
        /* The link may be stale (the block popped and reused meanwhile):
         * the tag then fails the CAS. */
        uint32_t next = lb_d_link(lb_load_rlx_u64(lb_id_desc(c, top - 1)));
        if (lb_cas_acq_u64(&s->head, &old, lb_head_next(old, next))) {
            /* Relaxed: a statistic and a hint; emptiness is the head's. */
            lb_sub_rlx_u64(&s->count, 1);
            if (tries)
                lb_cache_note_retries(c, tries);
            return top;
        }
    }
    lb_add_rlx_u64(&c->retry_cap_hits, 1);
    return 0;
}
/* Take the whole stack at once (id + 1 of the first, 0 if empty). */
uint32_t lb_pstack_take_all(struct lb_cache *c, struct lb_stack *s);

/* ---- buddy hand-offs (buddy lock held) -------------------------------------------- */
/* Fill m with up to want pages from the buddy (state CACHED). */
uint32_t lb_cache_fill_from_buddy(struct lb_cache *c, struct lb_mag *m, uint32_t want);
/* Give all of m's pages back to the buddy. */
void lb_cache_mag_to_buddy(struct lb_cache *c, struct lb_mag *m);
/* Give every page of a chain of magazines to the buddy and put the
 * magazines back on the depot's empty stack.  Returns pages given. */
uint64_t lb_chain_to_buddy(struct lb_cache *c, struct lb_mag *m);
/* Give up to max pending blocks to the buddy; returns pages given. */
uint64_t lb_cache_drain_pending(struct lb_cache *c, uint64_t max);
/* Move up to n pages from the buddy into the reserve; returns pages moved. */
uint64_t lb_cache_reserve_fill(struct lb_cache *c, uint64_t n);
/* Move up to n pages from the reserve back to the buddy. */
uint64_t lb_cache_reserve_trim(struct lb_cache *c, uint64_t n);

/* A free block that could not get the buddy lock: onto the pending stack.
 * The caller owns the block (its descriptor is being rewritten here). */
void lb_cache_pend(struct lb_cache *c, struct lb_region *r, uint32_t idx, unsigned order);
/* Put an order-0 page the caller owns onto the reserve. */
void lb_cache_reserve_put(struct lb_cache *c, struct lb_region *r, uint32_t idx);
/* Take a page from the reserve (ATOMIC only); state becomes ALLOC|flags. */
void *lb_cache_reserve_get(struct lb_cache *c, unsigned flags);
/* The zeroed stock.  Take up to n order-0 pages from the buddy for the
 * caller to clear (buddy lock held): their ids into ids[], state RESERVED
 * with LB_D_ZEROED, on no stack yet (the caller holds them).  Returns how
 * many. */
uint32_t lb_cache_zstock_take(struct lb_cache *c, uint32_t *ids, uint32_t n);
/* Push n pages held by the caller (ids[], cleared) onto the stock, one CAS. */
void lb_cache_zstock_push(struct lb_cache *c, const uint32_t *ids, uint32_t n);
/* Pop a stock page; its descriptor is left to the caller, who owns the
 * page now (any context).  NULL when the stock is empty. */
void *lb_cache_zstock_pop(struct lb_cache *c);
/* Move all of m's pages (state CACHED, the caller holds m) onto stack s
 * with state (RESERVED or PENDING), one CAS for the lot; m ends empty. */
void lb_cache_mag_to_stack(struct lb_cache *c, struct lb_mag *m, struct lb_stack *s, unsigned state);

/* ---- counters (stats.c) ---------------------------------------------------------------------- */
struct lb_cache_counts {
    uint64_t allocs[LB_MODE_SLOTS], frees; /* allocs by mode slot */
    uint64_t cached_pages, depot_pages, threads;
    uint64_t in_flight_pages; /* freed, in outboxes and inboxes */
    uint64_t quarantined_pages; /* freed, held back (part of cached_pages) */
};
void lb_cache_counts(const struct lb_cache *c, struct lb_cache_counts *out);

/* ---- invariant sweeps (check.c) ------------------------------------------------ */
/* Call fn(ctx, m, owner, inbox) for every magazine of queued remote frees:
 * each outbox (owner: its destination level's id) and each inbox batch
 * (owner: the level's id).  Quiescent.  false if an inbox chain was longer
 * than the magazine pool (a cycle: the rest of that chain is skipped). */
typedef void lb_queued_fn(void *ctx, const struct lb_mag *m, uint32_t owner, bool inbox);
bool lb_cache_for_each_queued(const struct lb_cache *c, lb_queued_fn *fn, void *ctx);
/* Mark (mark[region][page] = 1) the pages freed and queued back to their
 * owner: still ALLOC in their descriptors, but not in use.  Quiescent. */
void lb_cache_mark_in_flight(const struct lb_cache *c, uint8_t *const *mark);
/* White-box check (quiescent): count violations among magazines and page
 * stacks; mark[] (one byte per page id, caller-zeroed) detects a page held
 * twice.  Adds pages seen to *cached, *reserved, *pending, *in_flight, and
 * queued frees the owner will refuse to *queued_invalid. */
long lb_cache_check(const struct lb_cache *c, uint8_t *const *mark, uint64_t *cached,
                    uint64_t *reserved, uint64_t *pending, uint64_t *in_flight,
                    uint64_t *queued_invalid);

#endif /* LB_CACHE_H */
