/*
 * api_zero.c - the zeroed stock through the public API: the errnos of
 * labyrinth_zone_zero_stock, a stock that stays empty where ZERO is never
 * asked for (and where there is no warden), a miss that makes the warden
 * fill it, a hit, and the accounting of stock pages (cached_pages, free
 * pages adding up, labyrinth_zone_check, shrink and stats).
 */
#define _GNU_SOURCE
#include "check.h"

#include <labyrinth.h>
#include <stdbool.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>

static int quiet_reports;
static void on_report(const struct labyrinth_report *r, void *arg)
{
    (void)r;
    (void)arg;
    quiet_reports++;
}

static bool all_zero(const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i])
            return false;
    return true;
}

/* Wait up to 2 s for the warden to put want pages in the stock. */
static bool wait_stock(struct labyrinth_zone *z, size_t want, struct labyrinth_zero_stock_stats *zs)
{
    for (int i = 0; i < 2000; i++) {
        if (labyrinth_zone_zero_stock(z, zs) == 0 && zs->stock_pages >= want)
            return true;
        usleep(1000);
    }
    return false;
}

static void sums(struct labyrinth_zone *z)
{
    struct labyrinth_zone_stats st;
    CHECK_EQ(labyrinth_zone_stats(z, &st), 0);
    CHECK_EQ(st.buddy_free_pages + st.cached_pages + st.reserve_free_pages + st.in_flight_pages, st.free_pages);
    CHECK_EQ(st.free_pages + st.in_use_pages, st.total_pages);
    CHECK_EQ(labyrinth_zone_check(z), 0);
}

int main(void)
{
    struct labyrinth_zero_stock_stats zs;
    size_t ps = labyrinth_page_size();

    /* Errnos. */
    CHECK_EQ(labyrinth_zone_zero_stock(NULL, &zs), -EBADF);
    struct labyrinth_zone_config cfg = {0};
    cfg.pages = 1024;
    cfg.warden_interval_us = 1000;
    struct labyrinth_zone *z = labyrinth_zone_create(&cfg);
    REQUIRE(z != NULL);
    CHECK_EQ(labyrinth_zone_zero_stock(z, NULL), -EINVAL);
    CHECK_EQ(labyrinth_zone_zero_stock(z, &zs), 0);
    CHECK_EQ(zs.hits, 0);
    CHECK_EQ(zs.misses, 0);
    CHECK_EQ(zs.stock_pages, 0);
    CHECK_EQ(zs.target_pages, 0);
    CHECK_EQ(zs.max_pages, 1024 / 16); /* the reserve's target */

    /* Plain requests only: nothing is ever cleared. */
    for (int i = 0; i < 1000; i++) {
        void *p = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0);
        CHECK(p != NULL);
        CHECK_EQ(labyrinth_free_pages(z, p, 0), 0);
    }
    usleep(20000);
    CHECK_EQ(labyrinth_zone_zero_stock(z, &zs), 0);
    CHECK_EQ(zs.cleared_pages, 0);
    CHECK_EQ(zs.target_pages, 0);

    /* A ZERO miss: cleared by the call; the warden fills the stock. */
    unsigned char *p = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, LABYRINTH_QUALITY_ZERO);
    REQUIRE(p != NULL);
    CHECK(all_zero(p, ps));
    memset(p, 0x5a, ps);
    CHECK_EQ(labyrinth_free_pages(z, p, 0), 0);
    CHECK_EQ(labyrinth_zone_zero_stock(z, &zs), 0);
    CHECK_EQ(zs.misses, 1);
    CHECK_EQ(zs.hits, 0);
    CHECK(wait_stock(z, 1, &zs));
    CHECK(zs.target_pages > 0 && zs.target_pages <= zs.max_pages);
    /* The warden may still be filling: it counts a page cleared before it
     * pushes it, and the snapshot reads the stock first (warden.c; on a
     * CPU that reorders relaxed loads this could still read low). */
    CHECK(zs.cleared_pages >= zs.stock_pages);
    sums(z); /* stock pages are free pages, in cached_pages; check walks them */

    struct labyrinth_zone_stats st, st0;
    /* A hit, plain call and the seed's macro; the pages are zeros. */
    unsigned long long hits0 = zs.hits;
    REQUIRE(wait_stock(z, 2, &zs));
    p = labyrinth_alloc_pages(z, LABYRINTH_GFP_NOWAIT, 0, LABYRINTH_QUALITY_ZERO);
    unsigned char *q = labyrinth_void_allocpage_gfpatomic_extra_quality(z, LABYRINTH_QUALITY_ZERO);
    REQUIRE(p != NULL && q != NULL);
    CHECK(all_zero(p, ps) && all_zero(q, ps));
    CHECK_EQ(labyrinth_zone_zero_stock(z, &zs), 0);
    CHECK_EQ(zs.hits, hits0 + 2);
    struct labyrinth_page_info info;
    CHECK_EQ(labyrinth_page_info(z, q, &info), 0);
    CHECK_EQ(info.state, LABYRINTH_PAGE_IN_USE);
    CHECK(info.tracked);
    sums(z);
    /* A page from the stock is freed like any other, once. */
    CHECK_EQ(labyrinth_free_pages(z, p, 0), 0);
    CHECK_EQ(labyrinth_free_pages(z, q, 0), 0);
    labyrinth_zone_set_report_handler(z, on_report, NULL);
    CHECK_EQ(labyrinth_free_pages(z, q, 0), -EALREADY);
    labyrinth_zone_set_report_handler(z, NULL, NULL);

    /* The lean ZERO path (issue 12 target 6: alloc.c, lb_alloc_zero): ZERO
     * alone, order 0, this thread's current zone.  Each page a hit, all
     * zeros, distinct, counted in its mode exactly; freed by the fast path.
     * Then another zone made current: the general path, still a hit. */
    REQUIRE(wait_stock(z, 9, &zs));
    CHECK_EQ(labyrinth_zone_stats(z, &st0), 0);
    hits0 = zs.hits;
    unsigned char *fp[8];
    for (int i = 0; i < 8; i++) {
        fp[i] = labyrinth_alloc_pages(z, i % 2 ? LABYRINTH_GFP_NOWAIT : LABYRINTH_GFP_ATOMIC, 0,
                                      LABYRINTH_QUALITY_ZERO);
        REQUIRE(fp[i] != NULL);
        CHECK(all_zero(fp[i], ps));
        for (int j = 0; j < i; j++)
            CHECK(fp[j] != fp[i]);
        memset(fp[i], 0x77, ps); /* dirty: a page that came back must not be served as zeroed */
    }
    CHECK_EQ(labyrinth_zone_zero_stock(z, &zs), 0);
    CHECK_EQ(zs.hits, hits0 + 8);
    CHECK_EQ(labyrinth_zone_stats(z, &st), 0);
    CHECK_EQ(st.atomic_allocs, st0.atomic_allocs + 4);
    CHECK_EQ(st.nowait_allocs, st0.nowait_allocs + 4);
    CHECK_EQ(st.in_use_pages, st0.in_use_pages + 8);
    sums(z);
    for (int i = 0; i < 8; i++)
        CHECK_EQ(labyrinth_free_pages(z, fp[i], 0), 0);
    labyrinth_zone_set_report_handler(z, on_report, NULL);
    int rep0 = quiet_reports;
    CHECK_EQ(labyrinth_free_pages(z, fp[3], 0), -EALREADY);
    CHECK_EQ(quiet_reports, rep0 + 1);
    labyrinth_zone_set_report_handler(z, NULL, NULL);
    /* The stock pages are zeros again, the freed dirty ones are not among
     * them: every stock hit from now on is all zeros. */
    struct labyrinth_zone_config oc = {0};
    oc.pages = 64;
    oc.flags = LABYRINTH_ZONE_NO_WARDEN;
    struct labyrinth_zone *other = labyrinth_zone_create(&oc);
    REQUIRE(other != NULL);
    REQUIRE(wait_stock(z, 1, &zs));
    hits0 = zs.hits;
    void *o = labyrinth_alloc_pages(other, LABYRINTH_GFP_ATOMIC, 0, 0); /* other is current now */
    REQUIRE(o != NULL);
    p = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, LABYRINTH_QUALITY_ZERO);
    REQUIRE(p != NULL);
    CHECK(all_zero(p, ps));
    CHECK_EQ(labyrinth_zone_zero_stock(z, &zs), 0);
    CHECK_EQ(zs.hits, hits0 + 1);
    CHECK_EQ(labyrinth_free_pages(z, p, 0), 0);
    CHECK_EQ(labyrinth_free_pages(other, o, 0), 0);
    labyrinth_zone_destroy(other);
    /* ZERO with what the lean path must leave to the general one: a mode
     * with a bit it does not know, a higher order (EINVAL reports), and a
     * destroyed handle (EBADF report, below). */
    labyrinth_zone_set_report_handler(z, on_report, NULL);
    rep0 = quiet_reports;
    CHECK(labyrinth_alloc_pages(z, 0x80000000u, 0, LABYRINTH_QUALITY_ZERO) == NULL);
    CHECK_EQ(quiet_reports, rep0 + 1);
    p = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 1, LABYRINTH_QUALITY_ZERO);
    REQUIRE(p != NULL);
    CHECK(all_zero(p, 2 * ps));
    CHECK_EQ(labyrinth_free_pages(z, p, 1), 0);
    labyrinth_zone_set_report_handler(z, NULL, NULL);
    sums(z);

    /* Shrink drains the stock to the buddy; nothing is lost. */
    REQUIRE(wait_stock(z, 1, &zs));
    CHECK(labyrinth_zone_shrink(z) >= 0);
    sums(z);
    CHECK_EQ(labyrinth_zone_stats(z, &st), 0);
    CHECK_EQ(st.in_use_pages, 0);
    labyrinth_zone_destroy(z);
    /* A dead handle: the zero stock's call, and a ZERO allocation (the lean
     * path reads the handle's fast modes, 0 once destroyed). */
    CHECK_EQ(labyrinth_zone_zero_stock(z, &zs), -EBADF);
    {
        int saved = dup(2), devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 2); /* the default handler's EBADF line */
        errno = 0;
        CHECK(labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, LABYRINTH_QUALITY_ZERO) == NULL);
        CHECK_EQ(errno, 0); /* ATOMIC never sets errno */
        CHECK(labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, 0, LABYRINTH_QUALITY_ZERO) == NULL);
        CHECK_EQ(errno, EBADF);
        dup2(saved, 2);
        close(saved);
        close(devnull);
    }

    /* No warden: no stock, ZERO still zeroes. */
    cfg.flags = LABYRINTH_ZONE_NO_WARDEN;
    z = labyrinth_zone_create(&cfg);
    REQUIRE(z != NULL);
    for (int i = 0; i < 3; i++) {
        p = labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, 0, LABYRINTH_QUALITY_ZERO);
        REQUIRE(p != NULL);
        CHECK(all_zero(p, ps));
        memset(p, 1, ps);
        CHECK_EQ(labyrinth_free_pages(z, p, 0), 0);
    }
    CHECK_EQ(labyrinth_zone_zero_stock(z, &zs), 0);
    CHECK_EQ(zs.max_pages, 0);
    CHECK_EQ(zs.misses, 3);
    CHECK_EQ(zs.cleared_pages, 0);
    sums(z);
    labyrinth_zone_destroy(z);
    return check_done("api_zero");
}
