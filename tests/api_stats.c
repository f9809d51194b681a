/*
 * api_stats.c - the counters: atomic_allocs, nowait_allocs, kernel_allocs,
 * their failures, frees, misuse_reports; free_blocks per order (buddyinfo)
 * against buddy_free_pages and largest_free_order; the buddy's shape is
 * restored when a block is freed (coalescing); free == buddy + cached +
 * reserve; reserve_low_water; the fixed fields.  Public header only.
 */
#include "api_util.h"

#include <stdlib.h>

static struct recorder rec;

/* free_blocks agrees with buddy_free_pages and largest_free_order. */
static void check_buddyinfo(const struct labyrinth_zone_stats *s, unsigned max_order)
{
    size_t pages = 0, largest = (size_t)-1;
    for (unsigned i = 0; i <= LABYRINTH_MAX_ORDER_LIMIT; i++) {
        pages += s->free_blocks[i] << i;
        if (s->free_blocks[i])
            largest = i;
        if (i > max_order)
            CHECK_EQ(s->free_blocks[i], 0);
    }
    CHECK_EQ(pages, s->buddy_free_pages);
    CHECK_EQ(s->largest_free_order, largest);
}

static void check_shape(struct labyrinth_zone *z, unsigned max_order)
{
    struct labyrinth_zone_stats s = stats_of(z);
    check_buddyinfo(&s, max_order);
    CHECK_EQ(s.total_pages, s.free_pages + s.in_use_pages);
    CHECK_EQ(s.free_pages, s.buddy_free_pages + s.cached_pages + s.reserve_free_pages);
    CHECK(s.depot_pages <= s.cached_pages);
    CHECK(s.reserve_low_water <= s.reserve_free_pages);
}

static void test_counters(void)
{
    struct labyrinth_zone *z = zone_small("counters", 1024, 0, &rec);
    struct labyrinth_zone_stats s = stats_of(z);
    CHECK_EQ(s.atomic_allocs, 0);
    CHECK_EQ(s.nowait_allocs, 0);
    CHECK_EQ(s.kernel_allocs, 0);
    CHECK_EQ(s.atomic_failures, 0);
    CHECK_EQ(s.nowait_failures, 0);
    CHECK_EQ(s.kernel_failures, 0);
    CHECK_EQ(s.frees, 0);
    CHECK_EQ(s.misuse_reports, 0);
    CHECK_EQ(s.atomic_reserve_allocs, 0);
    CHECK_EQ(s.grow_events, 0);
    CHECK_EQ(s.page_size, labyrinth_page_size());
    CHECK_EQ(s.page_size, (size_t)sysconf(_SC_PAGESIZE));
    CHECK_EQ(s.total_pages, 1024);
    CHECK_EQ(s.max_pages, 1024);
    CHECK_EQ(s.regions, 1);
    CHECK(s.metadata_bytes > 0);
    CHECK_EQ(s.warden_runs, 0); /* NO_WARDEN */
    check_shape(z, 10);

    struct {
        unsigned gfp, order, count;
    } plan[] = {
        {LABYRINTH_GFP_ATOMIC, 0, 10}, {LABYRINTH_GFP_NOWAIT, 0, 7}, {LABYRINTH_GFP_KERNEL, 0, 5},
        {LABYRINTH_GFP_ATOMIC, 2, 3},  {LABYRINTH_GFP_NOWAIT, 1, 2}, {LABYRINTH_GFP_KERNEL, 3, 4},
    };
    void *blocks[64];
    unsigned orders[64];
    size_t n = 0, pages = 0;
    for (unsigned i = 0; i < sizeof plan / sizeof plan[0]; i++) {
        for (unsigned k = 0; k < plan[i].count; k++) {
            blocks[n] = labyrinth_alloc_pages(z, plan[i].gfp, plan[i].order, 0);
            REQUIRE(blocks[n] != NULL);
            orders[n] = plan[i].order;
            pages += (size_t)1 << plan[i].order;
            n++;
            check_shape(z, 10);
        }
    }
    void *m = labyrinth_void_allocpage_gfpatomic_extra_quality(z, 0);
    REQUIRE(m != NULL);
    s = stats_of(z);
    CHECK_EQ(s.atomic_allocs, 10 + 3 + 1);
    CHECK_EQ(s.nowait_allocs, 7 + 2);
    CHECK_EQ(s.kernel_allocs, 5 + 4);
    CHECK_EQ(s.in_use_pages, pages + 1);
    CHECK_EQ(s.frees, 0);
    CHECK(s.threads >= 1);

    /* Refused calls count as misuse, not as allocations, failures or frees. */
    CHECK(labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, 11, 0) == NULL);
    CHECK(labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0x40) == NULL);
    CHECK_EQ(labyrinth_free_pages(z, (char *)blocks[0] + 1, 0), -EINVAL);
    CHECK_EQ(labyrinth_free_pages(z, NULL, 0), 0);
    struct labyrinth_zone_stats s2 = stats_of(z);
    CHECK_EQ(s2.misuse_reports, 3);
    CHECK_EQ(s2.atomic_allocs, s.atomic_allocs);
    CHECK_EQ(s2.kernel_allocs, s.kernel_allocs);
    CHECK_EQ(s2.atomic_failures, 0);
    CHECK_EQ(s2.kernel_failures, 0);
    CHECK_EQ(s2.frees, 0);

    for (size_t i = 0; i < n; i++)
        CHECK_EQ(labyrinth_free_pages(z, blocks[i], orders[i]), 0);
    CHECK_EQ(labyrinth_free_pages(z, m, 0), 0);
    s = stats_of(z);
    CHECK_EQ(s.frees, n + 1);
    CHECK_EQ(s.in_use_pages, 0);
    CHECK_EQ(s.free_pages, s.total_pages);
    check_shape(z, 10);
    CHECK_EQ(labyrinth_zone_check(z), 0);

    /* Failures by mode. */
    void **all = calloc(1025, sizeof *all);
    REQUIRE(all != NULL);
    size_t k = 0;
    while (k < 1025 && (all[k] = labyrinth_alloc_pages(z, LABYRINTH_GFP_NOWAIT, 0, 0)))
        k++;
    CHECK(labyrinth_alloc_pages(z, LABYRINTH_GFP_NOWAIT, 0, 0) == NULL);
    s = stats_of(z);
    CHECK_EQ(s.nowait_failures, 2);
    CHECK_EQ(s.atomic_failures, 0);
    CHECK_EQ(s.reserve_free_pages, s.reserve_target_pages);
    check_shape(z, 10);
    while (k < 1025 && (all[k] = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0)))
        k++;
    CHECK_EQ(k, 1024);
    s = stats_of(z);
    CHECK_EQ(s.atomic_failures, 1);
    CHECK_EQ(s.atomic_reserve_allocs, s.reserve_target_pages);
    CHECK_EQ(s.reserve_free_pages, 0);
    CHECK_EQ(s.reserve_low_water, 0);
    CHECK_EQ(s.free_pages, 0);
    CHECK_EQ(s.buddy_free_pages, 0);
    CHECK_EQ(s.largest_free_order, (size_t)-1); /* nothing free */
    check_shape(z, 10);
    for (size_t i = 0; i < k; i++)
        CHECK_EQ(labyrinth_free_pages(z, all[i], 0), 0);
    free(all);
    CHECK_EQ(labyrinth_zone_check(z), 0);
    labyrinth_zone_destroy(z);
}

/* A higher-order block taken from and given back to the buddy: the
 * buddyinfo is the same before and after (the block coalesced). */
static void test_buddyinfo(void)
{
    struct labyrinth_zone_config c;
    memset(&c, 0, sizeof c);
    c.pages = 2048;
    c.max_order = 8;
    c.flags = LABYRINTH_ZONE_NO_WARDEN;
    struct labyrinth_zone *z = zone_new(&c, &rec);
    struct labyrinth_zone_stats s0 = stats_of(z);
    check_buddyinfo(&s0, 8);
    CHECK(s0.largest_free_order == 8);
    CHECK(s0.free_blocks[8] > 0);
    for (unsigned order = 1; order <= 8; order++) {
        CASE_BEGIN();
        struct labyrinth_zone_stats a = stats_of(z);
        void *b = labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, order, 0);
        REQUIRE(b != NULL);
        struct labyrinth_zone_stats s = stats_of(z);
        CHECK_EQ(s.buddy_free_pages, a.buddy_free_pages - ((size_t)1 << order));
        check_buddyinfo(&s, 8);
        void *b2 = labyrinth_alloc_pages(z, LABYRINTH_GFP_NOWAIT, order, 0);
        REQUIRE(b2 != NULL);
        CHECK_EQ(labyrinth_free_pages(z, b2, order), 0);
        CHECK_EQ(labyrinth_free_pages(z, b, order), 0);
        /* A freed block may wait in this thread's cache of its order (as in
         * Linux's per-CPU lists): released, it coalesces in the buddy. */
        CHECK_EQ(labyrinth_thread_release(z), 0);
        s = stats_of(z);
        for (unsigned i = 0; i <= LABYRINTH_MAX_ORDER_LIMIT; i++)
            CHECK_EQ(s.free_blocks[i], a.free_blocks[i]);
        CHECK_EQ(s.buddy_free_pages, a.buddy_free_pages);
        CHECK_EQ(s.largest_free_order, a.largest_free_order);
        char what[32];
        snprintf(what, sizeof what, "order %u", order);
        CASE_END(what);
    }
    /* Every order-8 block out: largest_free_order drops below 8. */
    void *big[16];
    size_t n = 0;
    while (n < 16 && (big[n] = labyrinth_alloc_pages(z, LABYRINTH_GFP_NOWAIT, 8, 0)))
        n++;
    struct labyrinth_zone_stats s = stats_of(z);
    CHECK_EQ(s.free_blocks[8], 0);
    CHECK(s.largest_free_order < 8 || s.largest_free_order == (size_t)-1);
    CHECK_EQ(s.in_use_pages, n << 8);
    check_buddyinfo(&s, 8);
    for (size_t i = 0; i < n; i++)
        CHECK_EQ(labyrinth_free_pages(z, big[i], 8), 0);
    s = stats_of(z);
    for (unsigned i = 0; i <= LABYRINTH_MAX_ORDER_LIMIT; i++)
        CHECK_EQ(s.free_blocks[i], s0.free_blocks[i]);
    CHECK_EQ(labyrinth_zone_check(z), 0);
    labyrinth_zone_destroy(z);
}

/* With a warden: the snapshot stays consistent while it works. */
static void test_with_warden(void)
{
    struct labyrinth_zone_config c;
    memset(&c, 0, sizeof c);
    c.pages = 1024;
    c.warden_interval_us = 1000;
    struct labyrinth_zone *z = zone_new(&c, &rec);
    void *p[600];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 600; i++) {
            p[i] = labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, 0, 0);
            REQUIRE(p[i] != NULL);
        }
        struct labyrinth_zone_stats s = stats_of(z);
        CHECK_EQ(s.in_use_pages, 600);
        CHECK_EQ(s.total_pages, s.free_pages + s.in_use_pages);
        for (int i = 0; i < 600; i++)
            CHECK_EQ(labyrinth_free_pages(z, p[i], 0), 0);
        sleep_ms(5);
    }
    struct labyrinth_zone_stats s = stats_of(z);
    CHECK_EQ(s.in_use_pages, 0);
    CHECK(s.warden_runs > 0);
    CHECK_EQ(s.kernel_allocs, 1800);
    CHECK_EQ(s.frees, 1800);
    CHECK_EQ(labyrinth_zone_check(z), 0);
    labyrinth_zone_destroy(z);
}

int main(void)
{
    test_counters();
    test_buddyinfo();
    test_with_warden();
    return check_done("api_stats");
}
