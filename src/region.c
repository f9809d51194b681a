/*
 * region.c - layer 2: regions, descriptors and the address map.
 */
#include "region.h"

/* Twice the pages, a power of two: probes stay short. */
static size_t lb_phys_hash_size(size_t span)
{
    size_t n = 16;
    while (n < 2 * span)
        n <<= 1;
    return n;
}

size_t lb_region_meta_bytes(size_t span, bool track, bool phys)
{
    size_t b = lb_align_up(span * sizeof(lb_atomic_u64), LB_CACHELINE) +
               2 * lb_align_up(span * sizeof(lb_atomic_u32), LB_CACHELINE); /* qlink, gen_hi */
    if (track)
        b += lb_align_up(span * sizeof(struct lb_track_rec), LB_CACHELINE) +
             lb_align_up(span * sizeof(lb_atomic_u32), LB_CACHELINE); /* track_hi */
    if (phys)
        b += lb_align_up(span * sizeof(uint64_t), LB_CACHELINE) +
             lb_align_up(lb_phys_hash_size(span) * sizeof(uint32_t), LB_CACHELINE);
    return b;
}

void lb_region_init(struct lb_region *r, unsigned index, unsigned page_shift, uintptr_t base,
                    uint32_t span, uint32_t first, uint32_t end, void *meta, bool track,
                    bool phys)
{
    LB_CHECK(first <= end && end <= span && span <= LB_REGION_MAX_PAGES);
    uintptr_t p = (uintptr_t)meta; /* cache-line aligned: see lb_region_meta_bytes */
    r->base = base;
    r->page_shift = page_shift;
    r->lo = base + ((uintptr_t)first << page_shift);
    r->bytes = (size_t)(end - first) << page_shift;
    r->span = span;
    r->first = first;
    r->end = end;
    r->index = index;
    r->desc = (lb_atomic_u64 *)p;
    p += lb_align_up(span * sizeof(lb_atomic_u64), LB_CACHELINE);
    r->qlink = (lb_atomic_u32 *)p; /* zeroed: on no queue */
    p += lb_align_up(span * sizeof(lb_atomic_u32), LB_CACHELINE);
    r->gen_hi = (lb_atomic_u32 *)p; /* stored before any use (lb_level_own); zeroed below */
    p += lb_align_up(span * sizeof(lb_atomic_u32), LB_CACHELINE);
    r->track = NULL;
    r->track_hi = NULL;
    if (track) {
        r->track = (struct lb_track_rec *)p;
        p += lb_align_up(span * sizeof(struct lb_track_rec), LB_CACHELINE);
        r->track_hi = (lb_atomic_u32 *)p; /* read only with a written record */
        p += lb_align_up(span * sizeof(lb_atomic_u32), LB_CACHELINE);
    }
    r->phys = phys ? (uint64_t *)p : NULL;
    r->phys_hash = NULL;
    r->phys_mask = 0;
    if (phys) {
        p += lb_align_up(span * sizeof(uint64_t), LB_CACHELINE);
        r->phys_hash = (uint32_t *)p;
        r->phys_mask = (uint32_t)lb_phys_hash_size(span) - 1;
    }
    r->released = false;
    /* Relaxed: the region is not yet reachable by any other thread; its
     * publication (lb_regmap_add, or the zone's) is a release. */
    for (uint32_t i = 0; i < span; i++) {
        lb_store_rlx_u64(&r->desc[i], lb_d_make(i >= first && i < end ? LB_S_TAIL : LB_S_HOLE, 0, 0));
        lb_store_rlx_u32(&r->gen_hi[i], 0); /* never read before its owner's store; defined anyway */
    }
}

static inline uint32_t lb_phys_slot(uint64_t pfn, uint32_t mask)
{
    return (uint32_t)((pfn * 0x9e3779b97f4a7c15ull) >> 32) & mask;
}

void lb_region_phys_index(struct lb_region *r)
{
    for (uint32_t i = 0; i <= r->phys_mask; i++)
        r->phys_hash[i] = 0;
    for (uint32_t idx = r->first; idx < r->end; idx++) {
        uint64_t pfn = r->phys[idx] >> r->page_shift;
        uint32_t h = lb_phys_slot(pfn, r->phys_mask);
        while (r->phys_hash[h])
            h = (h + 1) & r->phys_mask;
        r->phys_hash[h] = idx + 1;
    }
}

uint32_t lb_region_phys_find(const struct lb_region *r, uint64_t page_phys)
{
    if (!r->phys_hash)
        return LB_NIL;
    uint64_t pfn = page_phys >> r->page_shift;
    /* The table is at most half full: a probe ends at an empty slot. */
    for (uint32_t h = lb_phys_slot(pfn, r->phys_mask);; h = (h + 1) & r->phys_mask) {
        uint32_t e = r->phys_hash[h];
        if (!e)
            return LB_NIL;
        if (r->phys[e - 1] >> r->page_shift == pfn)
            return e - 1;
    }
}

uint32_t lb_region_block_head(const struct lb_region *r, uint32_t idx, unsigned max_order)
{
    if (idx < r->first || idx >= r->end)
        return LB_NIL;
    for (unsigned j = 0; j <= max_order; j++) {
        uint32_t h = idx & ~((1u << j) - 1);
        if (h < r->first)
            break;
        uint64_t w = lb_load_rlx_u64(&r->desc[h]);
        unsigned s = lb_d_state(w);
        if (s != LB_S_TAIL && s != LB_S_HOLE && lb_d_order(w) >= j &&
            idx < h + (1u << lb_d_order(w)))
            return h;
    }
    return LB_NIL;
}

/* ---- map ----------------------------------------------------------------------- */

/* The leaf-pointer table; only the (serialized) writer calls this, so a
 * relaxed load sees its own stores. */
static inline lb_atomic_ptr *lb_regmap_l1(const struct lb_regmap *m) { return lb_load_rlx_ptr(&m->l1); }

/* The map is indexed by an address's key, below 2^48: the address itself
 * in user space; in a kernel, its offset from the direct map's base
 * (LB_OS_ADDR_BASE), which keeps chunk boundaries (the base is aligned to
 * 1 GiB) and maps the upper half's addresses into the table. */
static inline uintptr_t lb_map_key(uintptr_t a) { return a - LB_OS_ADDR_BASE; }

static inline size_t lb_l1_index(uintptr_t a) { return (size_t)(a >> (LB_CHUNK_SHIFT + LB_L2_BITS)); }
static inline size_t lb_l2_index(uintptr_t a) { return (size_t)(a >> LB_CHUNK_SHIFT) & ((1u << LB_L2_BITS) - 1); }

struct lb_region *lb_regmap_lookup_slow(const struct lb_regmap *m, uintptr_t a)
{
    uintptr_t key = lb_map_key(a);
    if (key >> 48)
        return NULL;
    /* Acquire loads pair with the release stores of lb_regmap_add: a leaf
     * found through l1 is initialised, a region found through a leaf is. */
    lb_atomic_ptr *l1 = lb_load_acq_ptr(&m->l1);
    if (!l1)
        return NULL;
    lb_atomic_u32 *leaf = lb_load_acq_ptr(&l1[lb_l1_index(key)]);
    if (!leaf)
        return NULL;
    /* Four 8-bit entries per word; entry = region index + 1. */
    size_t i = lb_l2_index(key);
    uint32_t word = lb_load_acq_u32(&leaf[i / 4]);
    unsigned e = (word >> (8 * (i % 4))) & 0xffu;
    if (!e)
        return NULL;
    struct lb_region *r = lb_regmap_get(m, e - 1);
    if (!r || a - r->lo >= r->bytes)
        return NULL;
    return r;
}

static int lb_regmap_chunks_free(lb_atomic_ptr *l1, const struct lb_region *r)
{
    uintptr_t c0 = lb_map_key(r->lo) >> LB_CHUNK_SHIFT, c1 = lb_map_key(r->lo + r->bytes - 1) >> LB_CHUNK_SHIFT;
    for (uintptr_t c = c0; c <= c1; c++) {
        uintptr_t a = c << LB_CHUNK_SHIFT;
        lb_atomic_u32 *leaf = lb_load_rlx_ptr(&l1[lb_l1_index(a)]);
        size_t i = lb_l2_index(a);
        if (leaf && (lb_load_rlx_u32(&leaf[i / 4]) >> (8 * (i % 4))) & 0xffu)
            return -EBUSY;
    }
    return 0;
}

/* Make sure every chunk r touches has a leaf in table l1 (normal context). */
static int lb_regmap_leaves(struct lb_regmap *m, lb_atomic_ptr *l1, const struct lb_region *r)
{
    uintptr_t c0 = lb_map_key(r->lo) >> LB_CHUNK_SHIFT, c1 = lb_map_key(r->lo + r->bytes - 1) >> LB_CHUNK_SHIFT;
    for (uintptr_t c = c0; c <= c1; c++) {
        uintptr_t a = c << LB_CHUNK_SHIFT;
        if (lb_load_rlx_ptr(&l1[lb_l1_index(a)]))
            continue;
        if (m->leaves >= LB_MAX_REGIONS)
            return -ENOMEM;
        size_t bytes = lb_align_up((size_t)1 << LB_L2_BITS, lb_os_page_size());
        int rc = lb_os_map(bytes, lb_os_page_size(), LB_OS_MAP_PREFAULT, &m->leaf_maps[m->leaves]);
        if (rc)
            return rc;
        /* Release: the zeroed leaf is visible before its pointer (pairs with
         * the acquire in lb_regmap_lookup_slow). */
        lb_store_rel_ptr(&l1[lb_l1_index(a)], m->leaf_maps[m->leaves++].addr);
    }
    return 0;
}

/* Point every chunk of r at region index n in table l1 (leaves exist). */
static void lb_regmap_mark(lb_atomic_ptr *l1, const struct lb_region *r, unsigned n)
{
    uintptr_t c0 = lb_map_key(r->lo) >> LB_CHUNK_SHIFT, c1 = lb_map_key(r->lo + r->bytes - 1) >> LB_CHUNK_SHIFT;
    for (uintptr_t c = c0; c <= c1; c++) {
        uintptr_t a = c << LB_CHUNK_SHIFT;
        lb_atomic_u32 *leaf = lb_load_rlx_ptr(&l1[lb_l1_index(a)]);
        size_t i = lb_l2_index(a);
        uint32_t w = lb_load_rlx_u32(&leaf[i / 4]) | (uint32_t)(n + 1) << (8 * (i % 4));
        /* Release: pairs with the acquire in lb_regmap_lookup_slow; the
         * region itself was published before (lb_regmap_add). */
        lb_store_rel_u32(&leaf[i / 4], w);
    }
}

int lb_regmap_add(struct lb_regmap *m, struct lb_region *r)
{
    unsigned n = lb_load_rlx_u32(&m->count);
    if (n >= LB_MAX_REGIONS)
        return -ENOSPC;
    LB_CHECK(r->index == n && r->bytes > 0);
    if (lb_map_key(r->lo + r->bytes - 1) >> 48 || lb_map_key(r->lo) >> 48)
        return -EINVAL;
    if (n == 0) {
        m->r0 = r;
    } else {
        lb_atomic_ptr *l1 = lb_regmap_l1(m);
        if (!l1) {
            /* The first extra region: build the table with region 0 in it,
             * privately, and publish it only once complete (a failure
             * leaves no half-built table behind). */
            size_t bytes = lb_align_up(sizeof(lb_atomic_ptr) << LB_L1_BITS, lb_os_page_size());
            int rc = lb_os_map(bytes, lb_os_page_size(), LB_OS_MAP_PREFAULT, &m->l1_map);
            if (rc)
                return rc;
            l1 = (lb_atomic_ptr *)m->l1_map.addr;
            unsigned leaves0 = m->leaves;
            rc = lb_regmap_leaves(m, l1, m->r0);
            if (rc) {
                while (m->leaves > leaves0)
                    lb_os_unmap(&m->leaf_maps[--m->leaves]);
                lb_os_unmap(&m->l1_map);
                return rc;
            }
            lb_regmap_mark(l1, m->r0, 0);
            /* Release: pairs with the acquire in lb_regmap_lookup_slow (the
             * table and its leaves are visible before its pointer). */
            lb_store_rel_ptr(&m->l1, l1);
        }
        int rc = lb_regmap_chunks_free(l1, r);
        if (!rc)
            rc = lb_regmap_leaves(m, l1, r);
        if (rc)
            return rc;
    }
    /* Release: the region's fields are visible before its index can be
     * found (pairs with lb_regmap_get's acquire). */
    lb_store_rel_ptr(&m->regions[n], r);
    if (n > 0)
        lb_regmap_mark(lb_regmap_l1(m), r, n);
    /* Release: pairs with lb_regmap_count's acquire. */
    lb_store_rel_u32(&m->count, n + 1);
    return 0;
}

void lb_regmap_remove(struct lb_regmap *m, struct lb_region *r)
{
    lb_atomic_ptr *l1 = lb_regmap_l1(m);
    LB_CHECK(r != m->r0 && l1 != NULL);
    uintptr_t c0 = lb_map_key(r->lo) >> LB_CHUNK_SHIFT, c1 = lb_map_key(r->lo + r->bytes - 1) >> LB_CHUNK_SHIFT;
    for (uintptr_t c = c0; c <= c1; c++) {
        uintptr_t a = c << LB_CHUNK_SHIFT;
        lb_atomic_u32 *leaf = lb_load_rlx_ptr(&l1[lb_l1_index(a)]);
        size_t i = lb_l2_index(a);
        uint32_t w = lb_load_rlx_u32(&leaf[i / 4]) & ~((uint32_t)0xffu << (8 * (i % 4)));
        /* Release: pairs with the lookup's acquire (a reader sees either
         * the region, still intact, or no region). */
        lb_store_rel_u32(&leaf[i / 4], w);
    }
}

void lb_regmap_destroy(struct lb_regmap *m)
{
    for (unsigned i = 0; i < m->leaves; i++)
        lb_os_unmap(&m->leaf_maps[i]);
    if (lb_regmap_l1(m))
        lb_os_unmap(&m->l1_map);
    lb_store_rlx_ptr(&m->l1, NULL);
    m->leaves = 0;
}
