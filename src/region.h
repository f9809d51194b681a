/*
 * region.h - layer 2: one contiguous span of pages and its out-of-band
 * descriptors, and the per-zone map from an address to its region.
 *
 * A region covers span pages starting at base, which is aligned to
 * 2^max_order pages so that buddy blocks are naturally aligned in the
 * address space.  Pages in [first, end) are usable; the others (alignment
 * padding of caller-supplied memory) are holes that are never handed out.
 *
 * Every page has one 64-bit descriptor, kept in a separate array: nothing
 * the allocator needs lives inside a page it hands out, so a stray write by
 * the user into a page cannot corrupt the allocator.
 *
 * Descriptor word (all fields change together, in one atomic store or CAS):
 *   bits  0..2   state (enum lb_state)
 *   bits  3..7   order of the block this head describes
 *   bits  8..15  flags (LB_D_*)
 *   FREE:      bits 16..39 next, bits 40..63 prev (region-local page index,
 *              LB_NIL = none): the buddy's doubly linked free lists
 *   RESERVED,
 *   PENDING:   bits 32..63 next (global page id + 1, 0 = none): the links
 *              of the lock-free page stacks of the cache layer
 *   QUEUED:    as ALLOC (owner, generation; cache.h), state 7: the page's
 *              link is in the region's qlink[] (remote.c)
 *   ALLOC, CACHED, TAIL, HOLE: no links
 * An order-0 page a level owns (ALLOC with an owner, cache.h) keeps the
 * high word of its 64-bit generation beside, in the region's gen_hi[].
 */
#ifndef LB_REGION_H
#define LB_REGION_H

#include "lb_common.h"
#include "lb_atomic.h"
#include "os/os.h"

enum lb_state {
    LB_S_HOLE = 0,     /* not a usable page                               */
    LB_S_TAIL = 1,     /* a page inside a block, not its head             */
    LB_S_FREE = 2,     /* head of a free block in the buddy's lists       */
    LB_S_ALLOC = 3,    /* head of an allocated block                      */
    LB_S_CACHED = 4,   /* free order-0 page in a magazine                 */
    LB_S_RESERVED = 5, /* free order-0 page in the atomic reserve, or
                          (flag LB_D_ZEROED) in the zeroed stock         */
    LB_S_PENDING = 6,  /* free block waiting for the buddy lock           */
    LB_S_QUEUED = 7    /* order-0 page of a level, freed by another context
                          through the page's queue link (owner and
                          generation kept): its owner takes it back     */
};

#define LB_D_TRACKED  0x01u /* ALLOC: the tracking record is current      */
#define LB_D_POISONED 0x02u /* free: contents are the poison pattern       */
#define LB_D_ZEROED   0x04u /* RESERVED: a page of the zeroed stock (the
                               warden cleared it; cache.h, zstock)       */

#define LB_NIL 0xffffffu

static inline unsigned lb_d_state(uint64_t w) { return (unsigned)w & 7u; }
static inline unsigned lb_d_order(uint64_t w) { return ((unsigned)w >> 3) & 31u; }
static inline unsigned lb_d_flags(uint64_t w) { return ((unsigned)w >> 8) & 0xffu; }
static inline uint32_t lb_d_next(uint64_t w) { return (uint32_t)(w >> 16) & LB_NIL; }
static inline uint32_t lb_d_prev(uint64_t w) { return (uint32_t)(w >> 40) & LB_NIL; }
static inline uint32_t lb_d_link(uint64_t w) { return (uint32_t)(w >> 32); }

static inline uint64_t lb_d_make(unsigned state, unsigned order, unsigned flags)
{
    return (uint64_t)state | (uint64_t)order << 3 | (uint64_t)flags << 8;
}
static inline uint64_t lb_d_make_free(unsigned order, uint32_t next, uint32_t prev)
{
    return lb_d_make(LB_S_FREE, order, 0) | (uint64_t)next << 16 | (uint64_t)prev << 40;
}
static inline uint64_t lb_d_make_linked(unsigned state, unsigned order, unsigned flags, uint32_t link)
{
    return lb_d_make(state, order, flags) | (uint64_t)link << 32;
}

/* Why a free (or register) of a block head with descriptor w at the given
 * order must be refused: 0 when w is an allocated block of that order,
 * else the API's negative errno. */
static inline int lb_d_refuse(uint64_t w, unsigned order)
{
    switch (lb_d_state(w)) {
    case LB_S_ALLOC: return lb_d_order(w) == order ? 0 : -ERANGE;
    case LB_S_TAIL:  return -ENXIO;    /* inside a block              */
    case LB_S_HOLE:  return -EFAULT;   /* not a usable page           */
    default:         return -EALREADY; /* free already: a double free */
    }
}

/* Per-page tracking record (16 bytes, and 4 more in the region's
 * track_hi[]), interpreted by the track layer. */
struct lb_track_rec {
    lb_atomic_u64 who;
    lb_atomic_u64 when;
};

struct lb_region {
    uintptr_t      base;      /* address of page 0 of the span             */
    uintptr_t      lo;        /* address of page first                     */
    size_t         bytes;     /* (end - first) pages, in bytes             */
    uint32_t       span;      /* descriptors                               */
    uint32_t       first, end;/* usable page indices                       */
    unsigned       index;     /* in the zone's map                         */
    unsigned       page_shift;
    lb_atomic_u64 *desc;      /* span descriptors                          */
    lb_atomic_u32 *qlink;     /* span queue links of QUEUED pages (remote.c):
                                 0 = on no queue, else the next page id + 1
                                 or LB_QLINK_LAST / LB_QLINK_CLAIMED         */
    lb_atomic_u32 *gen_hi;    /* span high words of the 64-bit generation of
                                 a page a level owns (cache.h, lb_level_own):
                                 written by the owner only, before the
                                 descriptor; read by remote freers           */
    struct lb_track_rec *track; /* span records, or NULL                  */
    lb_atomic_u32 *track_hi;    /* ... and each record's thread id from bit
                                   15 on (issue 11.5), or NULL             */
    uint64_t      *phys;      /* span physical addresses, or NULL (DMA)    */
    uint32_t      *phys_hash; /* DMA: open-addressing table pfn -> index+1 */
    uint32_t       phys_mask; /* its size - 1                              */
    bool           released;  /* given back to the OS (pages unmapped)    */
    struct lb_os_mapping pages_map; /* raw == NULL: caller memory          */
    struct lb_os_mapping meta_map;  /* raw == NULL: carved from elsewhere  */
    unsigned       got;       /* LB_OS_GOT_* of the pages' mapping         */
    size_t         huge_bytes;
    bool           locked;    /* mlock succeeded                           */
};

static inline size_t lb_region_pages(const struct lb_region *r) { return r->end - r->first; }
static inline uintptr_t lb_region_addr(const struct lb_region *r, uint32_t idx)
{
    return r->base + ((uintptr_t)idx << r->page_shift);
}
/* Page index of address a, which lies in r's span (any context). */
static inline uint32_t lb_region_index(const struct lb_region *r, const void *a)
{
    uintptr_t off = (uintptr_t)a - r->base;
    LB_DEBUG_CHECK(off < ((uintptr_t)r->span << r->page_shift));
    return (uint32_t)(off >> r->page_shift);
}

/* Global page id: region index in the top 8 bits, page index below (the
 * links of the page stacks and the outbox entries hold it). */
#define LB_PAGE_ID_INDEX_BITS 24u
#define LB_PAGE_ID_INDEX_MASK ((1u << LB_PAGE_ID_INDEX_BITS) - 1)
static inline uint32_t lb_page_id(const struct lb_region *r, uint32_t idx)
{
    LB_DEBUG_CHECK(idx <= LB_PAGE_ID_INDEX_MASK && r->index < LB_MAX_REGIONS);
    return (uint32_t)r->index << LB_PAGE_ID_INDEX_BITS | idx;
}
static inline unsigned lb_page_id_region(uint32_t page_id) { return page_id >> LB_PAGE_ID_INDEX_BITS; }
static inline uint32_t lb_page_id_index(uint32_t page_id) { return page_id & LB_PAGE_ID_INDEX_MASK; }

/* A page's queue link (lb_region.qlink): values besides next id + 1.  Page
 * ids stay below LB_MAX_REGIONS << 24, so neither is an id + 1. */
#define LB_QLINK_LAST    0xffffffffu /* on a queue, its last page          */
#define LB_QLINK_CLAIMED 0xfffffffeu /* claimed by its pusher, not yet on  */

/* Metadata bytes a region of span pages needs (descriptors, queue links, tracking,
 * physical table and its reverse index), rounded to a cache line. */
size_t lb_region_meta_bytes(size_t span, bool track, bool phys);
/* DMA: build the reverse index from r->phys (normal context). */
void lb_region_phys_index(struct lb_region *r);
/* DMA: page index of the page with physical address page_phys, or LB_NIL.
 * Any context: O(1) expected. */
uint32_t lb_region_phys_find(const struct lb_region *r, uint64_t page_phys);

/* Set up r over pages [base + first*pg, base + end*pg) with its metadata at
 * meta (zeroed, lb_region_meta_bytes long).  All usable pages start as
 * TAIL (the buddy layer makes heads of them); the others are HOLE. */
void lb_region_init(struct lb_region *r, unsigned index, unsigned page_shift, uintptr_t base,
                    uint32_t span, uint32_t first, uint32_t end, void *meta, bool track,
                    bool phys);

/* ---- the zone's map of regions ---------------------------------------------- */

/* Address -> region in O(1): region 0 by a range check, any other through a
 * two-level table indexed by 2 MiB chunk (a region owns every chunk it
 * touches; regions are placed so that no two share one).  Readers never
 * lock; regions are only added, never removed while the zone lives. */
#define LB_CHUNK_SHIFT 21u
#define LB_L2_BITS     14u
#define LB_L1_BITS     (48u - LB_CHUNK_SHIFT - LB_L2_BITS)

struct lb_regmap {
    struct lb_region *r0;                  /* set before the zone is published */
    lb_atomic_ptr     regions[LB_MAX_REGIONS];
    lb_atomic_u32     count;
    lb_atomic_ptr     l1;                  /* -> 2^LB_L1_BITS leaf pointers,
                                              or NULL (one region so far)   */
    struct lb_os_mapping l1_map;
    struct lb_os_mapping leaf_maps[LB_MAX_REGIONS];
    unsigned          leaves;
};

/* Add r (normal context, serialized by the caller).  Returns 0, -ENOSPC
 * (LB_MAX_REGIONS reached), -EBUSY (a chunk already belongs to a region),
 * -ENOMEM (table). */
int lb_regmap_add(struct lb_regmap *m, struct lb_region *r);
void lb_regmap_destroy(struct lb_regmap *m);

struct lb_region *lb_regmap_lookup_slow(const struct lb_regmap *m, uintptr_t a);
/* Forget r (not region 0): lookups no longer find it.  The region struct
 * and its metadata stay valid for readers that found it earlier. */
void lb_regmap_remove(struct lb_regmap *m, struct lb_region *r);

/* The region whose usable pages hold a, or NULL.  Any context. */
static inline struct lb_region *lb_regmap_lookup(const struct lb_regmap *m, uintptr_t a)
{
    const struct lb_region *r0 = m->r0;
    if (LB_LIKELY(a - r0->lo < r0->bytes))
        return (struct lb_region *)r0;
    return lb_regmap_lookup_slow(m, a);
}

static inline struct lb_region *lb_regmap_get(const struct lb_regmap *m, unsigned index)
{
    /* Acquire: pairs with the release store in lb_regmap_add, so the
     * region's fields are visible to whoever found its index in a page id. */
    return (struct lb_region *)lb_load_acq_ptr(&m->regions[index]);
}
static inline unsigned lb_regmap_count(const struct lb_regmap *m)
{
    /* Acquire: pairs with the release increment in lb_regmap_add. */
    return lb_load_acq_u32(&m->count);
}

/* Head of the block containing page idx (HOLE pages: LB_NIL).  Reads
 * descriptors only; exact when the region is quiescent. */
uint32_t lb_region_block_head(const struct lb_region *r, uint32_t idx, unsigned max_order);

#endif /* LB_REGION_H */
