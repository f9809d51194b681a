/*
 * api_modes.c - the allocation modes: ATOMIC, NOWAIT and KERNEL at order 0
 * and higher orders; NOWAIT never takes the reserve, ATOMIC takes exactly
 * the reserve and fails only when everything is spent (atomic_failures);
 * ATOMIC/NOWAIT never touch errno; KERNEL waits wait_timeout_ms then fails
 * with ETIMEDOUT, is woken by frees, grows the zone up to max_pages (and
 * only KERNEL grows); invalid gfp combinations are refused with a report;
 * natural alignment of every order.  Public header only.
 */
#include "api_util.h"

#include <pthread.h>
#include <stdlib.h>

static struct recorder rec;

#define SENTINEL 12345

static void test_modes_basic(void)
{
    struct labyrinth_zone *z = zone_new(NULL, &rec);
    static const unsigned gfps[] = {LABYRINTH_GFP_ATOMIC, LABYRINTH_GFP_NOWAIT, LABYRINTH_GFP_KERNEL};
    for (unsigned g = 0; g < 3; g++) {
        for (unsigned order = 0; order <= 6; order++) {
            CASE_BEGIN();
            errno = SENTINEL;
            void *p = labyrinth_alloc_pages(z, gfps[g], order, 0);
            /* ATOMIC and NOWAIT only try the buddy's lock for a block of
             * order > 0 (include/labyrinth.h): a NULL may mean the warden
             * held it, filling the depot of this new zone.  Try again a
             * while; a zone that never gives the block still fails. */
            for (int tries = 0; !p && order > 0 && gfps[g] != LABYRINTH_GFP_KERNEL && tries < 200; tries++) {
                sleep_ms(1);
                p = labyrinth_alloc_pages(z, gfps[g], order, 0);
            }
            CHECK(p != NULL);
            if (gfps[g] != LABYRINTH_GFP_KERNEL)
                CHECK_EQ(errno, SENTINEL); /* ATOMIC/NOWAIT never touch errno */
            if (p) {
                CHECK_EQ((uintptr_t)p & ((pg() << order) - 1), 0);
                memset(p, 0x5a, pg() << order); /* the whole block is usable */
                struct labyrinth_page_info info;
                CHECK_EQ(labyrinth_page_info(z, (char *)p + (pg() << order) - 1, &info), 0);
                CHECK(info.block == p);
                CHECK_EQ(info.order, order);
                CHECK_EQ(info.state, LABYRINTH_PAGE_IN_USE);
                CHECK_EQ(labyrinth_free_pages(z, p, order), 0);
            }
            char what[64];
            snprintf(what, sizeof what, "gfp %#x order %u", gfps[g], order);
            CASE_END(what);
        }
    }
    /* Valid raw combinations beyond the named modes. */
    static const unsigned raw[] = {0, LABYRINTH_GFP_BIT_TRYLOCK, LABYRINTH_GFP_BIT_RESERVE,
                                   LABYRINTH_GFP_BIT_SLEEP};
    for (unsigned i = 0; i < 4; i++) {
        void *p = labyrinth_alloc_pages(z, raw[i], 1, 0);
        CHECK(p != NULL);
        CHECK_EQ(labyrinth_free_pages(z, p, 1), 0);
    }
    CHECK_EQ(stats_of(z).misuse_reports, 0);
    CHECK_EQ(labyrinth_zone_check(z), 0);
    labyrinth_zone_destroy(z);
}

/* Every order's blocks are naturally aligned, up to max_order. */
static void test_alignment(void)
{
    struct labyrinth_zone_config c;
    memset(&c, 0, sizeof c);
    c.pages = 4096;
    c.max_order = 11;
    c.flags = LABYRINTH_ZONE_NO_WARDEN;
    struct labyrinth_zone *z = zone_new(&c, &rec);
    for (unsigned order = 0; order <= 11; order++) {
        void *b[3];
        unsigned n = order >= 10 ? 1 : 3;
        for (unsigned i = 0; i < n; i++) {
            b[i] = labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, order, 0);
            CHECK(b[i] != NULL);
            CHECK_EQ((uintptr_t)b[i] & ((pg() << order) - 1), 0);
        }
        for (unsigned i = 0; i < n; i++)
            if (b[i])
                CHECK_EQ(labyrinth_free_pages(z, b[i], order), 0);
    }
    CHECK_EQ(labyrinth_zone_check(z), 0);
    labyrinth_zone_destroy(z);
}

/* NOWAIT drains everything but the reserve; ATOMIC then takes exactly the
 * reserve and fails only when all is spent. */
static void test_reserve(void)
{
    struct labyrinth_zone_config c;
    memset(&c, 0, sizeof c);
    c.name = "reserve";
    c.pages = 256;
    c.reserve_pages = 24;
    c.flags = LABYRINTH_ZONE_NO_WARDEN;
    struct labyrinth_zone *z = zone_new(&c, &rec);
    void **pages = calloc(256, sizeof *pages);
    REQUIRE(pages != NULL);
    struct labyrinth_zone_stats s = stats_of(z);
    CHECK_EQ(s.reserve_target_pages, 24);
    CHECK_EQ(s.reserve_free_pages, 24);

    size_t n = 0;
    errno = SENTINEL;
    while (n < 256 && (pages[n] = labyrinth_alloc_pages(z, LABYRINTH_GFP_NOWAIT, 0, 0)))
        n++;
    CHECK_EQ(errno, SENTINEL);
    s = stats_of(z);
    CHECK_EQ(n, 256 - 24);                /* everything but the reserve */
    CHECK_EQ(s.reserve_free_pages, 24);   /* untouched by NOWAIT */
    CHECK_EQ(s.nowait_failures, 1);
    CHECK_EQ(s.atomic_failures, 0);
    CHECK_EQ(s.in_use_pages, n);
    /* NOWAIT keeps failing, at higher orders too. */
    CHECK(labyrinth_alloc_pages(z, LABYRINTH_GFP_NOWAIT, 0, 0) == NULL);
    CHECK(labyrinth_alloc_pages(z, LABYRINTH_GFP_NOWAIT, 1, 0) == NULL);
    CHECK_EQ(stats_of(z).reserve_free_pages, 24);

    size_t before = n;
    errno = SENTINEL;
    while (n < 256 && (pages[n] = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0)))
        n++;
    CHECK(labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0) == NULL); /* all spent */
    CHECK_EQ(errno, SENTINEL);
    s = stats_of(z);
    CHECK_EQ(n - before, 24); /* exactly the reserve */
    CHECK_EQ(n, 256);
    CHECK_EQ(s.reserve_free_pages, 0);
    CHECK_EQ(s.reserve_low_water, 0);
    CHECK_EQ(s.atomic_reserve_allocs, 24);
    CHECK_EQ(s.atomic_failures, 1); /* the one NULL above */
    CHECK_EQ(s.free_pages, 0);
    CHECK_EQ(s.in_use_pages, 256);
    CHECK_EQ(s.misuse_reports, 0);

    /* One page back: ATOMIC succeeds again. */
    CHECK_EQ(labyrinth_free_pages(z, pages[--n], 0), 0);
    void *p = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0);
    CHECK(p != NULL);
    if (p)
        pages[n++] = p;
    CHECK_EQ(stats_of(z).atomic_failures, 1);

    for (size_t i = 0; i < n; i++)
        CHECK_EQ(labyrinth_free_pages(z, pages[i], 0), 0);
    CHECK_EQ(labyrinth_zone_check(z), 0);
    s = stats_of(z);
    CHECK_EQ(s.in_use_pages, 0);
    free(pages);
    labyrinth_zone_destroy(z);
}

/* ATOMIC fails with NULL only when every page is spent. */
static void test_atomic_until_spent(void)
{
    struct labyrinth_zone *z = zone_small("atomic", 128, 0, &rec);
    void *pages[128];
    size_t n = 0;
    errno = SENTINEL;
    while (n < 128 && (pages[n] = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0)))
        n++;
    CHECK_EQ(n, 128);
    CHECK(labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0) == NULL);
    CHECK(labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 2, 0) == NULL);
    CHECK_EQ(errno, SENTINEL);
    struct labyrinth_zone_stats s = stats_of(z);
    CHECK_EQ(s.atomic_failures, 2);
    CHECK_EQ(s.atomic_allocs, 128);
    CHECK_EQ(s.misuse_reports, 0);
    for (size_t i = 0; i < n; i++)
        CHECK_EQ(labyrinth_free_pages(z, pages[i], 0), 0);
    /* Higher orders from a zone whose order-0 pages went round. */
    void *b = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 3, 0);
    CHECK(b != NULL);
    CHECK_EQ(labyrinth_free_pages(z, b, 3), 0);
    CHECK_EQ(labyrinth_zone_check(z), 0);
    labyrinth_zone_destroy(z);
}

/* KERNEL waits wait_timeout_ms, then NULL with ETIMEDOUT. */
static void test_kernel_timeout(void)
{
    struct labyrinth_zone_config c;
    memset(&c, 0, sizeof c);
    c.pages = 32;
    c.max_order = 5;
    c.wait_timeout_ms = 60;
    struct labyrinth_zone *z = zone_new(&c, &rec);
    void *all = labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, 5, 0); /* every page but... */
    void *pages[32];
    size_t n = 0;
    if (all) {
        pages[n++] = all;
    } else {
        while (n < 32 && (pages[n] = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0)))
            n++;
    }
    while (n < 32 && (pages[n] = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0)))
        n++;
    CHECK_EQ(stats_of(z).free_pages, 0);
    struct labyrinth_zone_stats s0 = stats_of(z);
    uint64_t t0 = now_ns();
    errno = 0;
    void *p = labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, 0, 0);
    uint64_t dt = now_ns() - t0;
    CHECK(p == NULL);
    CHECK_EQ(errno, ETIMEDOUT);
    CHECK(dt >= 60u * 1000000u); /* waited its whole timeout (no upper bound: a loaded machine) */
    struct labyrinth_zone_stats s = stats_of(z);
    CHECK_EQ(s.kernel_failures, s0.kernel_failures + 1);
    CHECK(s.kernel_waits > s0.kernel_waits);
    CHECK_EQ(s.total_pages, 32); /* max_pages 0: no growth */
    CHECK_EQ(s.grow_events, 0);
    /* Higher order: same. */
    errno = 0;
    CHECK(labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, 2, 0) == NULL);
    CHECK_EQ(errno, ETIMEDOUT);
    for (size_t i = 0; i < n; i++)
        CHECK_EQ(labyrinth_free_pages(z, pages[i], pages[i] == all ? 5 : 0), 0);
    CHECK_EQ(labyrinth_zone_check(z), 0);
    labyrinth_zone_destroy(z);
}

/* A KERNEL waiter gets the block another thread frees meanwhile. */
struct freer {
    struct labyrinth_zone *z;
    void *block;
    unsigned order;
    int rc;
};

static void *freer_main(void *arg)
{
    struct freer *f = arg;
    sleep_ms(100);
    f->rc = labyrinth_free_pages(f->z, f->block, f->order);
    return NULL;
}

/* A KERNEL waiter for an order-`order` block in a zone where only the
 * reserve is left; another thread frees an order-`freed` block (and, for a
 * page, exits: its cache returns to the zone).  With a warden, the freed
 * block must be larger than high_pages: the warden may first refill the
 * lock-free supply up to high with it (header: "a KERNEL caller waits until
 * frees have restored the reserve and then some"). */
static void test_kernel_woken(unsigned order, unsigned freed, int warden, const char *what)
{
    CASE_BEGIN();
    struct labyrinth_zone_config c;
    memset(&c, 0, sizeof c);
    c.pages = 512;
    c.max_order = 8;
    c.wait_timeout_ms = 3000;
    c.flags = warden ? 0 : LABYRINTH_ZONE_NO_WARDEN;
    struct labyrinth_zone *z = zone_new(&c, &rec);
    void **pages = calloc(512, sizeof *pages);
    REQUIRE(pages != NULL);
    size_t n = 0;
    void *blk = labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, freed, 0);
    REQUIRE(blk != NULL);
    n = drain_nowait(z, pages, 512);
    struct labyrinth_zone_stats s = stats_of(z);
    CHECK_EQ(s.free_pages, s.reserve_free_pages); /* only the reserve is left */
    if (warden)
        CHECK(((size_t)1 << freed) > s.high_pages);
    struct freer f = {z, blk, freed, -1};
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, freer_main, &f) == 0);
    void *p = labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, order, 0);
    pthread_join(t, NULL);
    CHECK_EQ(f.rc, 0);
    CHECK(p != NULL); /* woken by the free: without it the 3 s timeout gives NULL */
    if (!p) {
        s = stats_of(z);
        fprintf(stderr, "  KERNEL order %u timed out with free %zu: buddy %zu, cached %zu, reserve %zu\n", order,
                s.free_pages, s.buddy_free_pages, s.cached_pages, s.reserve_free_pages);
    }
    if (p)
        CHECK_EQ(labyrinth_free_pages(z, p, order), 0);
    for (size_t i = 0; i < n; i++)
        CHECK_EQ(labyrinth_free_pages(z, pages[i], 0), 0);
    CHECK_EQ(labyrinth_zone_check(z), 0);
    free(pages);
    labyrinth_zone_destroy(z);
    CASE_END(what);
}

/* KERNEL grows the zone up to max_pages; ATOMIC, NOWAIT and SLEEP without
 * GROW never do. */
static void test_growth(void)
{
    struct labyrinth_zone_config c;
    memset(&c, 0, sizeof c);
    c.name = "grow";
    c.pages = 64;
    c.max_pages = 256;
    c.max_order = 4;
    c.wait_timeout_ms = 30;
    c.flags = LABYRINTH_ZONE_NO_WARDEN;
    struct labyrinth_zone *z = zone_new(&c, &rec);
    void **pages = calloc(512, sizeof *pages);
    REQUIRE(pages != NULL);
    size_t n = 0;
    while (n < 512 && (pages[n] = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0)))
        n++;
    CHECK_EQ(n, 64);
    CHECK(labyrinth_alloc_pages(z, LABYRINTH_GFP_NOWAIT, 0, 0) == NULL);
    errno = 0;
    CHECK(labyrinth_alloc_pages(z, LABYRINTH_GFP_BIT_SLEEP, 0, 0) == NULL);
    CHECK_EQ(errno, ETIMEDOUT);
    struct labyrinth_zone_stats s = stats_of(z);
    CHECK_EQ(s.total_pages, 64);
    CHECK_EQ(s.regions, 1);
    CHECK_EQ(s.grow_events, 0);

    size_t k0 = n;
    while (n < 512 && (pages[n] = labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, 0, 0)))
        n++;
    CHECK_EQ(errno, ETIMEDOUT); /* at max_pages: waited, then gave up */
    s = stats_of(z);
    CHECK_EQ(s.total_pages, 256);
    CHECK_EQ(s.max_pages, 256);
    CHECK(s.regions >= 2);
    CHECK_EQ(s.grow_events, s.regions - 1);
    CHECK_EQ(s.kernel_allocs, n - k0);
    CHECK_EQ(n + s.reserve_free_pages, 256); /* KERNEL takes all but the reserve */
    CHECK_EQ(s.in_use_pages, n);
    CHECK_EQ(s.total_pages, s.free_pages + s.in_use_pages);
    CHECK_EQ(labyrinth_zone_check(z), 0);
    /* Pages of the new regions are the zone's like the first ones. */
    struct labyrinth_page_info info;
    CHECK_EQ(labyrinth_page_info(z, pages[n - 1], &info), 0);
    CHECK(info.region >= 1);
    CHECK_EQ(info.state, LABYRINTH_PAGE_IN_USE);
    for (size_t i = 0; i < n; i++)
        CHECK_EQ(labyrinth_free_pages(z, pages[i], 0), 0);
    s = stats_of(z);
    CHECK_EQ(s.in_use_pages, 0);
    CHECK_EQ(s.total_pages, 256);
    CHECK_EQ(s.misuse_reports, 0);
    CHECK_EQ(labyrinth_zone_check(z), 0);
    free(pages);
    labyrinth_zone_destroy(z);

    /* A higher-order KERNEL request grows a full zone too. */
    c.pages = 16;
    c.max_pages = 64;
    z = zone_new(&c, &rec);
    void *b0 = labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, 4, 0);
    void *b1 = labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, 4, 0);
    CHECK(b0 != NULL && b1 != NULL);
    s = stats_of(z);
    CHECK(s.total_pages > 16);
    CHECK(s.grow_events >= 1);
    if (b0)
        CHECK_EQ(labyrinth_free_pages(z, b0, 4), 0);
    if (b1)
        CHECK_EQ(labyrinth_free_pages(z, b1, 4), 0);
    CHECK_EQ(labyrinth_zone_check(z), 0);
    labyrinth_zone_destroy(z);
}

/* Invalid gfp combinations: NULL, a BAD_ARGS report, errno EINVAL for the
 * ones that may sleep, errno untouched otherwise. */
static void test_invalid_gfp(void)
{
    struct labyrinth_zone *z = zone_small("gfp", 64, 0, &rec);
    struct {
        unsigned gfp;
        int sleeps;
        const char *what;
    } bad[] = {
        {LABYRINTH_GFP_BIT_SLEEP | LABYRINTH_GFP_BIT_TRYLOCK, 1, "SLEEP|TRYLOCK"},
        {LABYRINTH_GFP_BIT_SLEEP | LABYRINTH_GFP_BIT_RESERVE, 1, "SLEEP|RESERVE"},
        {LABYRINTH_GFP_KERNEL | LABYRINTH_GFP_BIT_TRYLOCK, 1, "KERNEL|TRYLOCK"},
        {LABYRINTH_GFP_KERNEL | LABYRINTH_GFP_BIT_RESERVE, 1, "KERNEL|RESERVE"},
        {LABYRINTH_GFP_KERNEL | 0x10u, 1, "KERNEL|unknown bit"},
        {LABYRINTH_GFP_BIT_GROW, 0, "GROW alone"},
        {LABYRINTH_GFP_BIT_GROW | LABYRINTH_GFP_BIT_TRYLOCK, 0, "GROW|TRYLOCK"},
        {LABYRINTH_GFP_ATOMIC | LABYRINTH_GFP_BIT_GROW, 0, "ATOMIC|GROW"},
        {LABYRINTH_GFP_ATOMIC | 0x10u, 0, "ATOMIC|unknown bit"},
        {0x100u, 0, "unknown bit alone"},
        {~0u, 1, "all bits"},
    };
    struct labyrinth_zone_stats s0 = stats_of(z);
    for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CASE_BEGIN();
        for (unsigned order = 0; order <= 2; order += 2) {
            rec_reset(&rec);
            unsigned long long m0 = stats_of(z).misuse_reports;
            errno = SENTINEL;
            void *p = labyrinth_alloc_pages(z, bad[i].gfp, order, 0);
            int e = errno;
            CHECK(p == NULL);
            if (bad[i].sleeps)
                CHECK_EQ(e, EINVAL);
            else
                CHECK_EQ(e, SENTINEL);
            CHECK_EQ(stats_of(z).misuse_reports, m0 + 1);
            CHECK_EQ(rec_count(&rec), 1);
            CHECK_EQ(rec.r[0].kind, LABYRINTH_REPORT_BAD_ARGS);
            CHECK_EQ(rec.r[0].err, -EINVAL);
            CHECK_EQ(rec.r[0].order, order);
            CHECK(rec.r[0].message[0] != 0);
            if (p)
                labyrinth_free_pages(z, p, order);
        }
        CASE_END(bad[i].what);
    }
    /* Unknown quality bits and orders above max_order, by mode. */
    rec_reset(&rec);
    errno = SENTINEL;
    CHECK(labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, LABYRINTH_QUALITY_ALL + 1) == NULL);
    CHECK(labyrinth_alloc_pages(z, LABYRINTH_GFP_NOWAIT, 11, 0) == NULL);
    CHECK_EQ(errno, SENTINEL);
    CHECK(labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, 0, 0x100u) == NULL);
    CHECK_EQ(errno, EINVAL);
    errno = 0;
    CHECK(labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, 11, 0) == NULL);
    CHECK_EQ(errno, EINVAL);
    CHECK_EQ(rec_count(&rec), 4);
    CHECK_EQ(rec_count_kind(&rec, LABYRINTH_REPORT_BAD_ARGS), 4);
    /* A NULL zone: EBADF for KERNEL, errno untouched for ATOMIC. */
    struct capture cap;
    char out[2048];
    capture_begin(&cap);
    errno = 0;
    void *p = labyrinth_alloc_pages(NULL, LABYRINTH_GFP_KERNEL, 0, 0);
    int e1 = errno;
    errno = SENTINEL;
    void *q = labyrinth_alloc_pages(NULL, LABYRINTH_GFP_ATOMIC, 0, 0);
    int e2 = errno;
    capture_end(&cap, out, sizeof out);
    CHECK(p == NULL && q == NULL);
    CHECK_EQ(e1, EBADF);
    CHECK_EQ(e2, SENTINEL);

    /* Nothing changed by any of it. */
    struct labyrinth_zone_stats s1 = stats_of(z);
    check_same_pages(&s0, &s1);
    CHECK_EQ(s1.atomic_failures, s0.atomic_failures);
    CHECK_EQ(s1.nowait_failures, s0.nowait_failures);
    CHECK_EQ(s1.kernel_failures, s0.kernel_failures);
    CHECK_EQ(labyrinth_zone_check(z), 0);
    labyrinth_zone_destroy(z);
}

int main(void)
{
    test_modes_basic();
    test_alignment();
    test_reserve();
    test_atomic_until_spent();
    test_kernel_timeout();
    test_kernel_woken(0, 0, 0, "KERNEL waiter, a page freed by an exiting thread");
    test_kernel_woken(2, 2, 0, "KERNEL waiter, a block freed by another thread");
    test_kernel_woken(2, 8, 1, "KERNEL waiter, a block above high_pages freed, warden on");
    test_growth();
    test_invalid_gfp();
    return check_done("api_modes");
}
