/*
 * unit_buddy.c - the buddy layer on its own, against a page map.
 *
 * Three fake regions (descriptors only: the buddy never touches pages),
 * with odd sizes and leading holes as caller memory produces them.  Random
 * takes and gives of every order; after each: no block overlaps a held
 * one, blocks are naturally aligned and inside the usable pages, and
 * lb_buddy_check() finds nothing wrong.  When all is given back, every
 * region coalesces to its maximal blocks again.
 */
#include "buddy.h"
#include "check.h"

#include <stdint.h>

#define MAXO 6

struct fake {
    struct lb_region r;
    void *meta;
    uint8_t *held; /* per page */
};

static uint64_t rng = 88172645463325252ull;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* The blocks lb_buddy_add_region makes of [first, end). */
static size_t maximal_blocks(uint32_t first, uint32_t end, unsigned maxo, size_t *per_order)
{
    size_t n = 0;
    for (uint32_t i = first; i < end;) {
        unsigned k = maxo;
        while (k && ((i & ((1u << k) - 1)) || i + (1u << k) > end))
            k--;
        per_order[k]++;
        i += 1u << k;
        n++;
    }
    return n;
}

int main(void)
{
    static struct lb_buddy b;
    struct fake f[3];
    const uint32_t first[3] = {0, 5, 17}, end[3] = {256, 200, 17 + 333};
    lb_buddy_init(&b, MAXO);
    for (unsigned i = 0; i < 3; i++) {
        size_t bytes = lb_region_meta_bytes(end[i], false, false);
        f[i].meta = calloc(1, bytes);
        f[i].held = calloc(end[i], 1);
        REQUIRE(f[i].meta && f[i].held);
        /* Fake, never dereferenced, 2^MAXO-page aligned base addresses. */
        uintptr_t base = ((uintptr_t)(i + 1) << 40);
        lb_region_init(&f[i].r, i, 12, base, end[i], first[i], end[i], f[i].meta, false, false);
        lb_buddy_add_region(&b, &f[i].r);
    }
    size_t total = 0;
    for (unsigned i = 0; i < 3; i++)
        total += end[i] - first[i];
    CHECK_EQ(lb_load_rlx_u64(&b.free_pages), total);
    CHECK_EQ(lb_buddy_check(&b, NULL), 0);

    struct blk {
        struct lb_region *r;
        uint32_t idx;
        unsigned order;
    } held[4096];
    unsigned nheld = 0;
    size_t held_pages = 0, nulls = 0;
    for (int step = 0; step < 40000; step++) {
        uint64_t r = rnd();
        bool filling = (step / 500) % 2 == 0;
        if (nheld < 4096 && (r % 8) < (filling ? 6u : 2u)) {
            unsigned order = (unsigned)((r >> 8) % (MAXO + 1));
            struct lb_region *reg;
            lb_spin_lock(&b.lock);
            uint32_t idx = lb_buddy_take(&b, order, LB_S_ALLOC, 0, &reg);
            lb_spin_unlock(&b.lock);
            if (idx == LB_NIL) {
                nulls++;
                /* Earned: no free block of order >= order anywhere. */
                for (unsigned o = order; o <= MAXO; o++)
                    CHECK_EQ(lb_load_rlx_u64(&b.free_blocks[o]), 0);
                continue;
            }
            struct fake *fk = &f[reg->index];
            CHECK_EQ(idx & ((1u << order) - 1), 0);
            CHECK(idx >= reg->first && idx + (1u << order) <= reg->end);
            for (uint32_t p = idx; p < idx + (1u << order) && p < reg->end; p++) {
                CHECK_EQ(fk->held[p], 0);
                fk->held[p] = 1;
            }
            uint64_t w = lb_load_rlx_u64(&reg->desc[idx]);
            CHECK(lb_d_state(w) == LB_S_ALLOC && lb_d_order(w) == order);
            held[nheld++] = (struct blk){reg, idx, order};
            held_pages += 1u << order;
        } else if (nheld) {
            unsigned k = (unsigned)((r >> 8) % nheld);
            struct blk h = held[k];
            held[k] = held[--nheld];
            for (uint32_t p = h.idx; p < h.idx + (1u << h.order); p++)
                f[h.r->index].held[p] = 0;
            lb_spin_lock(&b.lock);
            lb_buddy_give(&b, h.r, h.idx, h.order);
            lb_spin_unlock(&b.lock);
            held_pages -= 1u << h.order;
        }
        CHECK_EQ(lb_load_rlx_u64(&b.free_pages) + held_pages, total);
        if (step % 16 == 0)
            CHECK_EQ(lb_buddy_check(&b, NULL), 0);
    }
    CHECK(nulls > 0);
    while (nheld) {
        struct blk h = held[--nheld];
        lb_spin_lock(&b.lock);
        lb_buddy_give(&b, h.r, h.idx, h.order);
        lb_spin_unlock(&b.lock);
    }
    CHECK_EQ(lb_buddy_check(&b, NULL), 0);
    /* Fully coalesced: exactly the maximal blocks of each region. */
    size_t want[MAXO + 1] = {0};
    for (unsigned i = 0; i < 3; i++)
        maximal_blocks(first[i], end[i], MAXO, want);
    for (unsigned o = 0; o <= MAXO; o++)
        CHECK_EQ(lb_load_rlx_u64(&b.free_blocks[o]), want[o]);
    /* Holes stayed holes. */
    for (uint32_t p = 0; p < first[2]; p++)
        CHECK_EQ(lb_d_state(lb_load_rlx_u64(&f[2].r.desc[p])), LB_S_HOLE);
    for (unsigned i = 0; i < 3; i++) {
        free(f[i].meta);
        free(f[i].held);
    }
    printf("buddy: 40000 steps over 3 regions, %zu earned NULLs\n", nulls);
    return check_done("unit_buddy");
}
