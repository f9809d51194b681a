/*
 * unit_region.c - layer 2: descriptor words, region set-up, the per-zone
 * address map and block-head lookup.
 *
 * The regions of the map tests cover address ranges that are never mapped:
 * lb_regmap only reads region fields and its own tables, never the pages.
 */
#include "check.h"

#include "region.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define PG_SHIFT 12u
#define CHUNK ((uintptr_t)1 << LB_CHUNK_SHIFT)
#define GIB ((uintptr_t)1 << 30)

static const unsigned all_states[] = {LB_S_HOLE,   LB_S_TAIL,     LB_S_FREE,   LB_S_ALLOC,
                                      LB_S_CACHED, LB_S_RESERVED, LB_S_PENDING};

/* A deterministic generator for "random" field values. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* ---- descriptor words ------------------------------------------------------------- */

static void test_descriptors(void)
{
    int bad = 0;
    /* lb_d_make: every state, every 5-bit order, a spread of flag bytes. */
    static const unsigned flags_set[] = {0, LB_D_TRACKED, LB_D_POISONED, LB_D_TRACKED | LB_D_POISONED,
                                         0x80, 0xff, 0x5a};
    for (unsigned s = 0; s < 8; s++)
        for (unsigned o = 0; o < 32; o++)
            for (unsigned f = 0; f < LB_ARRAY_SIZE(flags_set); f++) {
                uint64_t w = lb_d_make(s, o, flags_set[f]);
                bad += lb_d_state(w) != s;
                bad += lb_d_order(w) != o;
                bad += lb_d_flags(w) != flags_set[f];
                bad += (w >> 16) != 0; /* no link bits */
                bad += lb_d_next(w) != 0 || lb_d_prev(w) != 0 || lb_d_link(w) != 0;
            }
    CHECK_EQ(bad, 0);

    /* lb_d_make_free: next and prev are independent 24-bit fields. */
    bad = 0;
    const uint32_t edge[] = {0, 1, 2, 0x7fffff, 0x800000, LB_NIL - 1, LB_NIL};
    for (unsigned o = 0; o < 32; o++)
        for (unsigned i = 0; i < LB_ARRAY_SIZE(edge); i++)
            for (unsigned j = 0; j < LB_ARRAY_SIZE(edge); j++) {
                uint64_t w = lb_d_make_free(o, edge[i], edge[j]);
                bad += lb_d_state(w) != LB_S_FREE;
                bad += lb_d_order(w) != o;
                bad += lb_d_flags(w) != 0;
                bad += lb_d_next(w) != edge[i];
                bad += lb_d_prev(w) != edge[j];
            }
    for (int k = 0; k < 100000; k++) {
        unsigned o = (unsigned)rng() & 31;
        uint32_t n = (uint32_t)rng() & LB_NIL, p = (uint32_t)rng() & LB_NIL;
        uint64_t w = lb_d_make_free(o, n, p);
        bad += lb_d_state(w) != LB_S_FREE || lb_d_order(w) != o || lb_d_next(w) != n || lb_d_prev(w) != p;
    }
    CHECK_EQ(bad, 0);
    CHECK_EQ(lb_d_make_free(0, LB_NIL, LB_NIL), 0xffffffffffff0002ull);

    /* lb_d_make_linked: a 32-bit link above state, order and flags. */
    bad = 0;
    const uint32_t links[] = {0, 1, 0x00ffffff, 0x01000000, 0x3f000001, 0x80000000u, 0xffffffffu};
    for (unsigned s = 0; s < LB_ARRAY_SIZE(all_states); s++)
        for (unsigned o = 0; o < 32; o++)
            for (unsigned f = 0; f < LB_ARRAY_SIZE(flags_set); f++)
                for (unsigned l = 0; l < LB_ARRAY_SIZE(links); l++) {
                    uint64_t w = lb_d_make_linked(all_states[s], o, flags_set[f], links[l]);
                    bad += lb_d_state(w) != all_states[s];
                    bad += lb_d_order(w) != o;
                    bad += lb_d_flags(w) != flags_set[f];
                    bad += lb_d_link(w) != links[l];
                    bad += ((w >> 16) & 0xffff) != 0; /* bits 16..31 unused */
                }
    CHECK_EQ(bad, 0);

    /* lb_d_refuse: every state against every order of the free. */
    bad = 0;
    for (unsigned s = 0; s < LB_ARRAY_SIZE(all_states); s++) {
        unsigned st = all_states[s];
        for (unsigned o = 0; o <= LB_ORDER_LIMIT; o++)
            for (unsigned fo = 0; fo <= LB_ORDER_LIMIT; fo++)
                for (unsigned f = 0; f < LB_ARRAY_SIZE(flags_set); f++) {
                    int want;
                    switch (st) {
                    case LB_S_ALLOC: want = o == fo ? 0 : -ERANGE; break;
                    case LB_S_TAIL: want = -ENXIO; break;
                    case LB_S_HOLE: want = -EFAULT; break;
                    default: want = -EALREADY; break;
                    }
                    uint64_t w = lb_d_make(st, o, flags_set[f]);
                    if (lb_d_refuse(w, fo) != want) {
                        if (bad++ < 5)
                            fprintf(stderr, "refuse(state %u, order %u, flags %#x, free order %u) = %d, want %d\n",
                                    st, o, flags_set[f], fo, lb_d_refuse(w, fo), want);
                    }
                    /* Links never change the verdict. */
                    if (st == LB_S_RESERVED || st == LB_S_PENDING)
                        bad += lb_d_refuse(lb_d_make_linked(st, o, flags_set[f], 0xdeadbeef), fo) != -EALREADY;
                    if (st == LB_S_FREE)
                        bad += lb_d_refuse(lb_d_make_free(o, 7, LB_NIL), fo) != -EALREADY;
                }
    }
    CHECK_EQ(bad, 0);
    /* Spot values, independent of the loop's own table. */
    CHECK_EQ(lb_d_refuse(lb_d_make(LB_S_ALLOC, 3, LB_D_TRACKED), 3), 0);
    CHECK_EQ(lb_d_refuse(lb_d_make(LB_S_ALLOC, 3, 0), 2), -ERANGE);
    CHECK_EQ(lb_d_refuse(lb_d_make(LB_S_TAIL, 0, 0), 0), -ENXIO);
    CHECK_EQ(lb_d_refuse(0, 0), -EFAULT);
    CHECK_EQ(lb_d_refuse(lb_d_make(LB_S_CACHED, 0, 0), 0), -EALREADY);
}

/* ---- lb_region_init --------------------------------------------------------------- */

static void *meta_alloc(size_t bytes)
{
    void *p = aligned_alloc(LB_CACHELINE, lb_align_up(bytes ? bytes : 1, LB_CACHELINE));
    REQUIRE(p != NULL);
    memset(p, 0, lb_align_up(bytes ? bytes : 1, LB_CACHELINE));
    return p;
}

static void test_region_init(void)
{
    /* Metadata sizes: each array rounded up to a cache line: descriptors
     * (8 bytes a page), queue links and generation high words (4 bytes a
     * page each) always. */
    CHECK_EQ(lb_region_meta_bytes(1, false, false), 64 + 64 + 64);
    CHECK_EQ(lb_region_meta_bytes(8, false, false), 64 + 64 + 64);
    CHECK_EQ(lb_region_meta_bytes(9, false, false), 128 + 64 + 64);
    CHECK_EQ(lb_region_meta_bytes(17, false, false), 192 + 128 + 128);
    CHECK_EQ(lb_region_meta_bytes(9, true, false), 128 + 64 + 64 + lb_align_up(9 * 16, 64) + 64); /* + track_hi */
    /* DMA adds the physical table (8 bytes a page) and its reverse index
     * (4 bytes a slot, the next power of two >= 2 x span, at least 16). */
    CHECK_EQ(lb_region_meta_bytes(9, false, true), 128 + 64 + 64 + 128 + 128);
    CHECK_EQ(lb_region_meta_bytes(9, true, true), 128 + 64 + 64 + 192 + 64 + 128 + 128);
    CHECK_EQ(lb_region_meta_bytes(4096, true, true), 4096 * (8 + 4 + 4 + 16 + 4 + 8) + 8192 * 4);

    const uintptr_t base = (uintptr_t)0x123400000000ull;
    for (int variant = 0; variant < 4; variant++) {
        bool track = variant & 1, phys = variant & 2;
        const uint32_t span = 100, first = 7, end = 93;
        size_t mb = lb_region_meta_bytes(span, track, phys);
        char *meta = meta_alloc(mb);
        /* The high words' array dirty: init must define it (the queue
         * links rely on zeroed metadata, the high words do not). */
        memset(meta + lb_align_up(span * 8, LB_CACHELINE) + lb_align_up(span * 4, LB_CACHELINE), 0xa5,
               lb_align_up(span * 4, LB_CACHELINE));
        struct lb_region r;
        memset(&r, 0xa5, sizeof r); /* every field must be set by init */
        lb_region_init(&r, 5, PG_SHIFT, base, span, first, end, meta, track, phys);
        CHECK_EQ(r.base, base);
        CHECK_EQ(r.lo, base + ((uintptr_t)first << PG_SHIFT));
        CHECK_EQ(r.bytes, (size_t)(end - first) << PG_SHIFT);
        CHECK_EQ(r.span, span);
        CHECK_EQ(r.first, first);
        CHECK_EQ(r.end, end);
        CHECK_EQ(r.index, 5);
        CHECK_EQ(r.page_shift, PG_SHIFT);
        CHECK_EQ(lb_region_pages(&r), end - first);
        CHECK_EQ(lb_region_addr(&r, 0), base);
        CHECK_EQ(lb_region_addr(&r, 10), base + (10u << PG_SHIFT));
        CHECK_EQ(lb_page_id(&r, 10), (5u << 24) | 10u);
        CHECK(r.desc == (lb_atomic_u64 *)meta);
        /* The arrays follow one another inside meta, without overlap. */
        size_t dbytes = lb_align_up(span * 8, LB_CACHELINE),
               tbytes = lb_align_up(span * 16, LB_CACHELINE) + lb_align_up(span * 4, LB_CACHELINE);
        CHECK(r.qlink == (lb_atomic_u32 *)(meta + dbytes));
        dbytes += lb_align_up(span * 4, LB_CACHELINE); /* the queue links */
        CHECK(r.gen_hi == (lb_atomic_u32 *)(meta + dbytes));
        dbytes += lb_align_up(span * 4, LB_CACHELINE); /* the generations' high words */
        if (track) {
            CHECK(r.track == (struct lb_track_rec *)(meta + dbytes));
            CHECK(r.track_hi == (lb_atomic_u32 *)(meta + dbytes + lb_align_up(span * 16, LB_CACHELINE)));
        } else {
            CHECK(r.track == NULL);
            CHECK(r.track_hi == NULL);
        }
        if (phys)
            CHECK(r.phys == (uint64_t *)(meta + dbytes + (track ? tbytes : 0)));
        else
            CHECK(r.phys == NULL);
        size_t hslots = 16;
        while (hslots < 2 * (size_t)span)
            hslots <<= 1;
        CHECK_EQ(dbytes + (track ? tbytes : 0) + (phys ? lb_align_up(span * 8, 64) + lb_align_up(hslots * 4, 64) : 0), mb);
        int bad = 0;
        for (uint32_t i = 0; i < span; i++) {
            uint64_t w = lb_load_rlx_u64(&r.desc[i]);
            unsigned want = i >= first && i < end ? LB_S_TAIL : LB_S_HOLE;
            bad += w != lb_d_make(want, 0, 0);
            bad += lb_load_rlx_u32(&r.gen_hi[i]) != 0; /* defined before any owner's store */
        }
        CHECK_EQ(bad, 0);
        CHECK_EQ(lb_d_state(lb_load_rlx_u64(&r.desc[first - 1])), LB_S_HOLE);
        CHECK_EQ(lb_d_state(lb_load_rlx_u64(&r.desc[first])), LB_S_TAIL);
        CHECK_EQ(lb_d_state(lb_load_rlx_u64(&r.desc[end - 1])), LB_S_TAIL);
        CHECK_EQ(lb_d_state(lb_load_rlx_u64(&r.desc[end])), LB_S_HOLE);
        free(meta);
    }

    /* No holes at all: first = 0, end = span. */
    char *meta = meta_alloc(lb_region_meta_bytes(16, false, false));
    struct lb_region r;
    lb_region_init(&r, 0, PG_SHIFT, base, 16, 0, 16, meta, false, false);
    CHECK_EQ(r.lo, base);
    CHECK_EQ(r.bytes, 16u << PG_SHIFT);
    int bad = 0;
    for (uint32_t i = 0; i < 16; i++)
        bad += lb_d_state(lb_load_rlx_u64(&r.desc[i])) != LB_S_TAIL;
    CHECK_EQ(bad, 0);
    free(meta);
}

/* ---- the address map ---------------------------------------------------------------- */

struct fake {
    struct lb_region r;
    char *meta;
};

/* A region of `pages` pages, its usable part starting `hole` pages after base. */
static void fake_init(struct fake *f, unsigned index, uintptr_t base, uint32_t hole, uint32_t pages)
{
    f->meta = meta_alloc(lb_region_meta_bytes(hole + pages, false, false));
    lb_region_init(&f->r, index, PG_SHIFT, base, hole + pages, hole, hole + pages, f->meta, false, false);
}

static struct lb_region *look(const struct lb_regmap *m, uintptr_t a) { return lb_regmap_lookup(m, a); }

/* Every boundary of r: first and last byte map to r, bytes just outside
 * map to `below` / `above` (NULL or a neighbour). */
static void check_bounds(const struct lb_regmap *m, const struct lb_region *r, const struct lb_region *below,
                         const struct lb_region *above, int line)
{
    uintptr_t lo = r->lo, hi = r->lo + r->bytes;
    struct lb_region *got[6] = {look(m, lo), look(m, hi - 1), look(m, lo + r->bytes / 2), look(m, lo - 1),
                                look(m, hi), look(m, lo + 4096)};
    const struct lb_region *want[6] = {r, r, r, below, above, r->bytes > 4096 ? r : above};
    for (int i = 0; i < 6; i++) {
        if (got[i] != want[i]) {
            __atomic_fetch_add(&check_failures, 1, __ATOMIC_RELAXED);
            fprintf(stderr, "FAIL line %d: region %u probe %d: got region %d, want %d\n", line, r->index, i,
                    got[i] ? (int)got[i]->index : -1, want[i] ? (int)want[i]->index : -1);
        }
        __atomic_fetch_add(&check_count, 1, __ATOMIC_RELAXED);
    }
}

static void test_regmap(void)
{
    static struct lb_regmap m; /* zero: empty */
    static struct fake f[LB_MAX_REGIONS + 1];
    const uintptr_t A = (uintptr_t)0x200000000000ull; /* 32 TiB, 2 MiB aligned */

    /* Region 0: 3 pages of holes, then 509 usable pages, ending exactly at
     * the end of its chunk. */
    fake_init(&f[0], 0, A, 3, 509);
    CHECK_EQ(lb_regmap_add(&m, &f[0].r), 0);
    CHECK_EQ(lb_regmap_count(&m), 1);
    CHECK(lb_regmap_get(&m, 0) == &f[0].r);
    CHECK(m.r0 == &f[0].r);
    CHECK(lb_load_rlx_ptr(&m.l1) == NULL); /* one region: no table */
    check_bounds(&m, &f[0].r, NULL, NULL, __LINE__);
    CHECK(look(&m, A) == NULL);            /* a hole page of region 0 */
    CHECK(look(&m, A + 64 * GIB) == NULL); /* nothing there */
    CHECK(look(&m, 0) == NULL);
    CHECK(look(&m, UINTPTR_MAX) == NULL);

    /* Region 1: the next chunk, adjacent to region 0 (2 pages, no hole). */
    fake_init(&f[1], 1, A + CHUNK, 0, 2);
    CHECK_EQ(lb_regmap_add(&m, &f[1].r), 0);
    CHECK(lb_load_rlx_ptr(&m.l1) != NULL);
    /* Region 2: 64 GiB away (another L1 slot), spanning three chunks and
     * starting in the middle of its first one after a hole. */
    uintptr_t b2 = A + 64 * GIB;
    fake_init(&f[2], 2, b2, 256, 1024); /* lo = b2 + 1 MiB, 4 MiB long */
    CHECK_EQ(lb_regmap_add(&m, &f[2].r), 0);
    /* Region 3: near the top of the 48-bit space. */
    uintptr_t b3 = ((uintptr_t)1 << 48) - 4 * CHUNK;
    fake_init(&f[3], 3, b3, 0, 16);
    CHECK_EQ(lb_regmap_add(&m, &f[3].r), 0);
    /* Region 4: below region 0, far away (low addresses, L1 slot 0). */
    uintptr_t b4 = 16 * CHUNK;
    fake_init(&f[4], 4, b4, 1, 511); /* ends at the end of its chunk */
    CHECK_EQ(lb_regmap_add(&m, &f[4].r), 0);
    CHECK_EQ(lb_regmap_count(&m), 5);
    /* The layout's premise: regions 0, 2, 3 and 4 in different L1 slots. */
    const unsigned l1s = LB_CHUNK_SHIFT + LB_L2_BITS;
    REQUIRE((b2 >> l1s) != (A >> l1s) && (b3 >> l1s) != (b2 >> l1s) && (b4 >> l1s) != (A >> l1s));

    for (unsigned i = 0; i < 5; i++)
        CHECK(lb_regmap_get(&m, i) == &f[i].r);
    check_bounds(&m, &f[0].r, NULL, &f[1].r, __LINE__);
    check_bounds(&m, &f[1].r, &f[0].r, NULL, __LINE__);
    check_bounds(&m, &f[2].r, NULL, NULL, __LINE__);
    check_bounds(&m, &f[3].r, NULL, NULL, __LINE__);
    check_bounds(&m, &f[4].r, NULL, NULL, __LINE__);
    /* Every page of the multi-chunk region 2, chunk boundaries included. */
    int bad = 0;
    for (uintptr_t a = f[2].r.lo; a < f[2].r.lo + f[2].r.bytes; a += 4096)
        bad += look(&m, a) != &f[2].r || look(&m, a + 4095) != &f[2].r;
    CHECK_EQ(bad, 0);
    CHECK(look(&m, b2 + 3 * CHUNK) == NULL);     /* past region 2's last chunk */
    CHECK(look(&m, f[2].r.lo + f[2].r.bytes) == NULL);
    CHECK(look(&m, b2) == NULL);                 /* region 2's hole, in its own chunk */
    CHECK(look(&m, b2 + 255 * 4096 + 4095) == NULL);
    CHECK(look(&m, b4) == NULL);                 /* region 4's hole page */
    /* Region 1 owns its whole chunk in the table, but only 2 pages are usable. */
    CHECK(look(&m, A + CHUNK + 2 * 4096) == NULL);
    CHECK(look(&m, A + 2 * CHUNK - 1) == NULL);
    /* Chunks no region owns, in used and unused L1 slots. */
    CHECK(look(&m, A + 5 * CHUNK) == NULL);
    CHECK(look(&m, A - CHUNK) == NULL);
    CHECK(look(&m, A + 32 * GIB) == NULL);
    CHECK(look(&m, b2 - CHUNK) == NULL);
    CHECK(look(&m, 0) == NULL);
    CHECK(look(&m, 4096) == NULL);
    /* 2^48 and above: never a region, whatever the low bits say. */
    const uintptr_t top = (uintptr_t)1 << 48;
    CHECK(look(&m, top) == NULL);
    CHECK(look(&m, top - 1) == NULL); /* region 3 ends 3 chunks below the top */
    CHECK(look(&m, top + f[0].r.lo) == NULL);
    CHECK(look(&m, top + f[2].r.lo) == NULL);
    CHECK(look(&m, top + f[3].r.lo) == NULL);
    CHECK(look(&m, ((uintptr_t)1 << 63) + f[1].r.lo) == NULL);
    CHECK(look(&m, UINTPTR_MAX) == NULL);
    CHECK(look(&m, UINTPTR_MAX - 4095) == NULL);

    /* -EBUSY: a region sharing a chunk with region 1 (after its 2 pages)... */
    struct fake busy;
    fake_init(&busy, 5, A + CHUNK + 16 * 4096, 0, 4);
    CHECK_EQ(lb_regmap_add(&m, &busy.r), -EBUSY);
    /* ... with region 0 (whose chunk is in the table since region 1) ... */
    free(busy.meta);
    fake_init(&busy, 5, A - 4 * 4096, 0, 8); /* its last pages: region 0's chunk */
    CHECK_EQ(lb_regmap_add(&m, &busy.r), -EBUSY);
    /* ... and one whose last chunk only is region 2's first. */
    free(busy.meta);
    fake_init(&busy, 5, b2 - CHUNK, 0, 512 + 1);
    CHECK_EQ(lb_regmap_add(&m, &busy.r), -EBUSY);
    free(busy.meta);
    /* A refused add changes nothing. */
    CHECK_EQ(lb_regmap_count(&m), 5);
    CHECK(lb_regmap_get(&m, 5) == NULL);
    CHECK(look(&m, A + CHUNK + 16 * 4096) == NULL);
    CHECK(look(&m, b2 - CHUNK) == NULL);
    check_bounds(&m, &f[1].r, &f[0].r, NULL, __LINE__);
    check_bounds(&m, &f[2].r, NULL, NULL, __LINE__);

    /* Fill up to LB_MAX_REGIONS: one page each, in distinct chunks of one
     * L1 slot (one leaf), two chunks apart. */
    const uintptr_t C = A + 8 * GIB;
    for (unsigned i = 5; i < LB_MAX_REGIONS; i++) {
        fake_init(&f[i], i, C + 2 * i * CHUNK, 0, 1);
        int rc = lb_regmap_add(&m, &f[i].r);
        if (rc) {
            CHECK_EQ(rc, 0);
            break;
        }
    }
    CHECK_EQ(lb_regmap_count(&m), LB_MAX_REGIONS);
    fake_init(&f[LB_MAX_REGIONS], LB_MAX_REGIONS, C + 2 * 200 * CHUNK, 0, 1);
    CHECK_EQ(lb_regmap_add(&m, &f[LB_MAX_REGIONS].r), -ENOSPC);
    CHECK_EQ(lb_regmap_count(&m), LB_MAX_REGIONS);
    CHECK(look(&m, f[LB_MAX_REGIONS].r.lo) == NULL);
    bad = 0;
    for (unsigned i = 0; i < LB_MAX_REGIONS; i++) {
        const struct lb_region *r = &f[i].r;
        bad += lb_regmap_get(&m, i) != r;
        bad += look(&m, r->lo) != r || look(&m, r->lo + r->bytes - 1) != r;
        if (i >= 5)
            bad += look(&m, r->lo + r->bytes) != NULL || look(&m, r->lo - 1) != NULL ||
                   look(&m, r->lo + CHUNK) != NULL;
    }
    CHECK_EQ(bad, 0);

    lb_regmap_destroy(&m);
    CHECK(lb_load_rlx_ptr(&m.l1) == NULL);
    CHECK_EQ(m.leaves, 0);
    for (unsigned i = 0; i <= LB_MAX_REGIONS; i++)
        free(f[i].meta);
}

/* A table allocation that fails leaves the map as it was: retried, the
 * add succeeds and the map is whole (region 0 in the table too). */
static void test_regmap_faults(void)
{
    const uintptr_t A = (uintptr_t)0x280000000000ull;
    const uintptr_t far = 64 * GIB; /* another L1 slot: its own leaf */
    /* Maps made by the first extra add: the L1 table, region 0's leaf,
     * region 1's leaf; each can fail by its map or its pre-fault. */
    for (int op = 0; op < 2; op++)
        for (uint64_t n = 1; n <= 3; n++) {
            static struct lb_regmap m;
            memset(&m, 0, sizeof m);
            struct fake f0, f1, f2, busy;
            fake_init(&f0, 0, A, 0, 500);
            fake_init(&f1, 1, A + far, 0, 512);
            REQUIRE(lb_regmap_add(&m, &f0.r) == 0);
            enum lb_os_op fop = op ? LB_OS_OP_POPULATE : LB_OS_OP_MAP;
            lb_os_fault_set(fop, n, 0);
            int rc = lb_regmap_add(&m, &f1.r);
            lb_os_fault_set(fop, 0, 0);
            CHECK_EQ(rc, -ENOMEM);
            CHECK_EQ(lb_regmap_count(&m), 1);
            CHECK(lb_regmap_get(&m, 1) == NULL);
            CHECK(look(&m, f1.r.lo) == NULL);
            CHECK(look(&m, f0.r.lo) == &f0.r);
            /* Retried without the fault. */
            rc = lb_regmap_add(&m, &f1.r);
            CHECK_EQ(rc, 0);
            if (rc) {
                fprintf(stderr, "  (after failing %s call %llu)\n", op ? "POPULATE" : "MAP", (unsigned long long)n);
                lb_regmap_destroy(&m);
                free(f0.meta);
                free(f1.meta);
                continue;
            }
            check_bounds(&m, &f1.r, NULL, NULL, __LINE__);
            /* Region 0 is in the table: the slow path finds it... */
            if (lb_regmap_lookup_slow(&m, f0.r.lo) != &f0.r ||
                lb_regmap_lookup_slow(&m, f0.r.lo + f0.r.bytes - 1) != &f0.r) {
                __atomic_fetch_add(&check_failures, 1, __ATOMIC_RELAXED);
                fprintf(stderr, "FAIL after failing %s call %llu of the first extra add: region 0 missing from "
                                "the table\n", op ? "POPULATE" : "MAP", (unsigned long long)n);
            }
            __atomic_fetch_add(&check_count, 1, __ATOMIC_RELAXED);
            /* ... and a region in its chunk is refused. */
            fake_init(&busy, 2, A + (504u << PG_SHIFT), 0, 4); /* after region 0, in its chunk */
            rc = lb_regmap_add(&m, &busy.r);
            if (rc != -EBUSY) {
                __atomic_fetch_add(&check_failures, 1, __ATOMIC_RELAXED);
                fprintf(stderr, "FAIL after failing %s call %llu of the first extra add: a region sharing region "
                                "0's chunk was added (%d, want -EBUSY)\n", op ? "POPULATE" : "MAP",
                        (unsigned long long)n, rc);
            }
            __atomic_fetch_add(&check_count, 1, __ATOMIC_RELAXED);
            /* A third region elsewhere still goes in. */
            fake_init(&f2, lb_regmap_count(&m), A + 2 * far, 0, 8);
            CHECK_EQ(lb_regmap_add(&m, &f2.r), 0);
            check_bounds(&m, &f2.r, NULL, NULL, __LINE__);
            lb_regmap_destroy(&m);
            free(f0.meta);
            free(f1.meta);
            free(f2.meta);
            free(busy.meta);
        }
}

/* ---- lb_region_block_head -------------------------------------------------------------- */

static void test_block_head(void)
{
    const uint32_t span = 40, first = 2, end = 34;
    char *meta = meta_alloc(lb_region_meta_bytes(span, false, false));
    struct lb_region r;
    lb_region_init(&r, 0, PG_SHIFT, (uintptr_t)0x300000000000ull, span, first, end, meta, false, false);
    /* Layout (index: block), TAIL elsewhere inside [first, end):
     *   0,1 hole | 2 ALLOC o1 | 4 FREE o2 | 8 CACHED o0 | 9 RESERVED o0 (linked)
     *   10 PENDING o1 | 12 ALLOC o2 tracked | 16 FREE o3 | 24 ALLOC o0 | 25 stray TAIL
     *   26 ALLOC o1 | 28 FREE o1 (linked) | 30 ALLOC o1 | 32 CACHED o1 | 34..39 hole */
    struct { uint32_t idx; uint64_t w; } heads[] = {
        {2, lb_d_make(LB_S_ALLOC, 1, 0)},
        {4, lb_d_make_free(2, LB_NIL, LB_NIL)},
        {8, lb_d_make(LB_S_CACHED, 0, 0)},
        {9, lb_d_make_linked(LB_S_RESERVED, 0, 0, 0x01000005)},
        {10, lb_d_make_linked(LB_S_PENDING, 1, 0, 0)},
        {12, lb_d_make(LB_S_ALLOC, 2, LB_D_TRACKED)},
        {16, lb_d_make_free(3, 4, LB_NIL)},
        {24, lb_d_make(LB_S_ALLOC, 0, 0)},
        {26, lb_d_make(LB_S_ALLOC, 1, 0)},
        {28, lb_d_make_free(1, 16, 4)},
        {30, lb_d_make(LB_S_ALLOC, 1, 0)},
        {32, lb_d_make(LB_S_CACHED, 1, 0)},
    };
    for (unsigned i = 0; i < LB_ARRAY_SIZE(heads); i++)
        lb_store_rlx_u64(&r.desc[heads[i].idx], heads[i].w);
    static const uint32_t want3[40] = {
        LB_NIL, LB_NIL, 2, 2, 4, 4, 4, 4, 8, 9, 10, 10, 12, 12, 12, 12,
        16, 16, 16, 16, 16, 16, 16, 16, 24, LB_NIL, 26, 26, 28, 28, 30, 30, 32, 32,
        LB_NIL, LB_NIL, LB_NIL, LB_NIL, LB_NIL, LB_NIL};
    int bad = 0;
    for (uint32_t i = 0; i < span; i++) {
        uint32_t h = lb_region_block_head(&r, i, 3);
        if (h != want3[i]) {
            if (bad++ < 8)
                fprintf(stderr, "block_head(%u, max 3) = %#x, want %#x\n", i, h, want3[i]);
        }
    }
    CHECK_EQ(bad, 0);
    /* Past the region: nothing. */
    CHECK_EQ(lb_region_block_head(&r, span, 3), LB_NIL);
    CHECK_EQ(lb_region_block_head(&r, 1000, 3), LB_NIL);
    /* A search bounded by max_order 2 cannot see the order-3 block's head
     * from its upper half. */
    CHECK_EQ(lb_region_block_head(&r, 17, 2), 16);
    CHECK_EQ(lb_region_block_head(&r, 19, 2), 16);
    CHECK_EQ(lb_region_block_head(&r, 20, 2), LB_NIL);
    CHECK_EQ(lb_region_block_head(&r, 23, 2), LB_NIL);
    CHECK_EQ(lb_region_block_head(&r, 15, 2), 12);
    /* max_order 0: only heads themselves. */
    CHECK_EQ(lb_region_block_head(&r, 12, 0), 12);
    CHECK_EQ(lb_region_block_head(&r, 13, 0), LB_NIL);
    /* A head whose block does not reach idx is not its head: shrink the
     * order-2 block at 12 to order 1, pages 14, 15 become orphans. */
    lb_store_rlx_u64(&r.desc[12], lb_d_make(LB_S_ALLOC, 1, 0));
    CHECK_EQ(lb_region_block_head(&r, 13, 3), 12);
    CHECK_EQ(lb_region_block_head(&r, 14, 3), LB_NIL);
    CHECK_EQ(lb_region_block_head(&r, 15, 3), LB_NIL);
    /* A HOLE descriptor inside [first, end) is never a head. */
    lb_store_rlx_u64(&r.desc[8], lb_d_make(LB_S_HOLE, 0, 0));
    CHECK_EQ(lb_region_block_head(&r, 8, 3), LB_NIL);
    free(meta);
}

int main(void)
{
    test_descriptors();
    test_region_init();
    test_regmap();
    test_regmap_faults();
    test_block_head();
    return check_done("unit_region");
}
