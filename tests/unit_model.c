/*
 * unit_model.c - random operation sequences against a reference model.
 *
 * One thread, no warden (so the zone is quiescent between calls), several
 * seeds.  The model is a page map of what the test holds.  After every
 * step the zone must agree with it:
 *   - a block handed out overlaps nothing held, is naturally aligned and
 *     lies inside the zone; its pattern survives until its free;
 *   - a NULL is never spurious: ATOMIC order 0 fails only when every page
 *     is held; NOWAIT order 0 only when every page not in the reserve is;
 *     order k only when the buddy has no free block of order >= k;
 *   - each kind of bad free gets its errno and changes nothing;
 *   - stats.in_use_pages == pages held; every 64 steps (and at the end)
 *     labyrinth_zone_check() == 0.
 * LB_MODEL_STEPS sets the steps per seed (default 20000).
 */
#include "check.h"
#include "zone.h"

#include <labyrinth.h>
#include <stdint.h>

#define PAGES     512
#define MAX_ORDER 5
#define MAXHELD   1024

struct held {
    char *p;
    unsigned order;
    uint64_t tag;
};

static struct labyrinth_zone *Z;
static size_t PG;
static uintptr_t lo;
static uint8_t map[PAGES];
static struct held held[MAXHELD];
static unsigned nheld;
static size_t held_pages;
static uint64_t rng;
static unsigned reports;
static unsigned long nulls[3], bad_frees;

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void on_report(const struct labyrinth_report *r, void *arg)
{
    (void)r;
    (void)arg;
    reports++;
}

static size_t pidx(const void *p) { return ((uintptr_t)p - lo) / PG; }

static void take(char *p, unsigned order, uint64_t tag)
{
    REQUIRE((uintptr_t)p >= lo && pidx(p) + ((size_t)1 << order) <= PAGES);
    CHECK_EQ((uintptr_t)p & ((PG << order) - 1), 0);
    for (size_t i = 0; i < ((size_t)1 << order); i++) {
        CHECK_EQ(map[pidx(p) + i], 0);
        map[pidx(p) + i] = 1;
        *(uint64_t *)(p + i * PG) = tag + i;
    }
    held[nheld++] = (struct held){p, order, tag};
    held_pages += (size_t)1 << order;
}

static void give(unsigned k)
{
    struct held h = held[k];
    for (size_t i = 0; i < ((size_t)1 << h.order); i++) {
        CHECK_EQ(*(uint64_t *)(h.p + i * PG), h.tag + i);
        map[pidx(h.p) + i] = 0;
    }
    CHECK_EQ(labyrinth_free_pages(Z, h.p, h.order), 0);
    held[k] = held[--nheld];
    held_pages -= (size_t)1 << h.order;
}

static void step_alloc(void)
{
    uint64_t r = rnd();
    unsigned order = (r & 7) < 5 ? 0 : (unsigned)((r >> 3) % (MAX_ORDER + 1));
    unsigned m = (unsigned)(r >> 8) % 3;
    unsigned gfp = m == 0 ? LABYRINTH_GFP_ATOMIC : m == 1 ? LABYRINTH_GFP_NOWAIT : LABYRINTH_GFP_KERNEL;
    unsigned q = (r >> 12) & LABYRINTH_QUALITY_ALL;
    if (nheld == MAXHELD)
        return;
    char *p = labyrinth_alloc_pages(Z, gfp, order, q);
    struct labyrinth_zone_stats st;
    labyrinth_zone_stats(Z, &st);
    if (!p) {
        /* Was this NULL earned? */
        nulls[order ? 2 : gfp == LABYRINTH_GFP_ATOMIC ? 0 : 1]++;
        if (order == 0 && gfp == LABYRINTH_GFP_ATOMIC)
            CHECK_EQ(held_pages, PAGES);
        else if (order == 0)
            CHECK_EQ(held_pages + st.reserve_free_pages, PAGES);
        else
            CHECK(st.largest_free_order == (size_t)-1 || st.largest_free_order < order);
        return;
    }
    if (q & LABYRINTH_QUALITY_ZERO)
        CHECK_EQ(p[PG - 1], 0);
    else if (q & LABYRINTH_QUALITY_POISON)
        CHECK_EQ((unsigned char)p[PG - 1], 0x6b);
    if (q & LABYRINTH_QUALITY_TRACK) {
        struct labyrinth_page_info info;
        CHECK_EQ(labyrinth_page_info(Z, p + PG / 2, &info), 0);
        CHECK(info.tracked && info.block == p && info.order == order && info.state == LABYRINTH_PAGE_IN_USE);
    }
    take(p, order, r & ~0xffffull);
}

static void step_bad_free(void)
{
    uint64_t r = rnd();
    unsigned before = reports;
    struct labyrinth_zone_stats s0, s1;
    labyrinth_zone_stats(Z, &s0);
    int want, got;
    switch (r % 5) {
    case 0: { /* a page we do not hold: double free or interior of a free block */
        size_t i = (size_t)(r >> 8) % PAGES;
        if (map[i])
            return;
        got = labyrinth_free_pages(Z, (char *)lo + i * PG, 0);
        CHECK(got == -EALREADY || got == -ENXIO);
        want = got;
        break;
    }
    case 1: { /* interior page of a held block */
        if (!nheld)
            return;
        struct held *h = &held[(r >> 8) % nheld];
        if (!h->order)
            return;
        want = -ENXIO;
        got = labyrinth_free_pages(Z, h->p + PG * (1 + (r >> 20) % ((1u << h->order) - 1)), h->order);
        break;
    }
    case 2: { /* wrong order */
        if (!nheld)
            return;
        struct held *h = &held[(r >> 8) % nheld];
        want = -ERANGE;
        got = labyrinth_free_pages(Z, h->p, (h->order + 1 + (unsigned)(r >> 20) % MAX_ORDER) % (MAX_ORDER + 2));
        break;
    }
    case 3: /* misaligned */
        if (!nheld)
            return;
        want = -EINVAL;
        got = labyrinth_free_pages(Z, held[(r >> 8) % nheld].p + 1 + (r >> 20) % (PG - 1), 0);
        break;
    default: /* foreign */
        want = -EFAULT;
        got = labyrinth_free_pages(Z, (char *)lo - PG * (1 + (r >> 8) % 64), 0);
        break;
    }
    CHECK_EQ(got, want);
    bad_frees++;
    CHECK_EQ(reports, before + 1);
    labyrinth_zone_stats(Z, &s1);
    CHECK_EQ(s1.in_use_pages, s0.in_use_pages);
    CHECK_EQ(s1.misuse_reports, s0.misuse_reports + 1);
}

static void run(uint64_t seed, unsigned steps)
{
    struct labyrinth_zone_config cfg = {0};
    cfg.name = "model";
    cfg.pages = PAGES;
    cfg.max_order = MAX_ORDER;
    cfg.reserve_pages = 24;
    cfg.flags = LABYRINTH_ZONE_NO_WARDEN;
    cfg.wait_timeout_ms = 1;
    Z = labyrinth_zone_create(&cfg);
    REQUIRE(Z);
    labyrinth_zone_set_report_handler(Z, on_report, NULL);
    PG = labyrinth_page_size();
    lo = lb_zone_of(Z)->map.r0->lo;
    memset(map, 0, sizeof map);
    nheld = 0;
    held_pages = 0;
    rng = seed;
    for (unsigned s = 0; s < steps; s++) {
        /* Phases of filling and draining, so the zone runs dry often. */
        bool filling = (s / 700) % 2 == 0;
        uint64_t r = rnd() % 16;
        if (r < (filling ? 12u : 4u))
            step_alloc();
        else if (r < 15 && nheld)
            give((unsigned)(rnd() % nheld));
        else
            step_bad_free();
        struct labyrinth_zone_stats st;
        labyrinth_zone_stats(Z, &st);
        CHECK_EQ(st.in_use_pages, held_pages);
        if (s % 64 == 0)
            CHECK_EQ(labyrinth_zone_check(Z), 0);
    }
    CHECK_EQ(labyrinth_zone_check(Z), 0);
    while (nheld)
        give(nheld - 1);
    struct labyrinth_zone_stats st;
    labyrinth_zone_stats(Z, &st);
    CHECK_EQ(st.in_use_pages, 0);
    CHECK_EQ(st.free_pages, PAGES);
    CHECK_EQ(labyrinth_zone_check(Z), 0);
    labyrinth_zone_destroy(Z);
}

int main(void)
{
    unsigned steps = getenv("LB_MODEL_STEPS") ? (unsigned)atoi(getenv("LB_MODEL_STEPS")) : 20000;
    for (uint64_t seed = 1; seed <= 8; seed++)
        run(seed * 0x9e3779b97f4a7c15ull, steps);
    printf("model: 8 seeds x %u steps; NULLs: %lu ATOMIC, %lu NOWAIT/KERNEL order 0, %lu higher order; "
           "%lu bad frees\n", steps, nulls[0], nulls[1], nulls[2], bad_frees);
    CHECK(nulls[0] > 0 && nulls[1] > 0 && nulls[2] > 0 && bad_frees > 1000); /* the paths ran */
    return check_done("unit_model");
}
