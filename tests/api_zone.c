/*
 * api_zone.c - zone creation (NULL, all-zero and custom configs), every
 * documented EINVAL of labyrinth_zone_create, the documented defaults, the
 * stats' consistency, the live-zone limit (ENOSPC), the handle checks of
 * every function (-EBADF, -EINVAL for NULL out), labyrinth_strerror, DMA
 * and HUGE zones.  Public header only.
 */
#include "api_util.h"

#include <stdlib.h>

static struct recorder rec;

/* Defaults documented in the header for a zone of `pages` pages. */
static void check_defaults(struct labyrinth_zone *z, size_t pages)
{
    struct labyrinth_zone_stats s = stats_of(z);
    CHECK_EQ(s.total_pages, pages);
    CHECK_EQ(s.max_pages, pages);                /* max_pages 0 = pages (no growth) */
    CHECK_EQ(s.reserve_target_pages, pages / 16); /* reserve_pages 0 = pages/16     */
    CHECK_EQ(s.low_pages, pages / 8);            /* low_pages 0 = pages/8           */
    CHECK_EQ(s.high_pages, pages / 4);           /* high_pages 0 = pages/4          */
    CHECK_EQ(s.regions, 1);
    CHECK_EQ(s.page_size, labyrinth_page_size());
    CHECK_EQ(s.total_pages, s.free_pages + s.in_use_pages);
    CHECK_EQ(s.in_use_pages, 0);
    CHECK_EQ(s.misuse_reports, 0);
    CHECK_EQ(s.atomic_allocs, 0);
    CHECK_EQ(s.atomic_failures, 0);
    CHECK(strcmp(labyrinth_zone_name(z), "zone") == 0); /* name NULL = "zone" */
    /* max_order 0 = 10: an order-10 block is served, order 11 refused. */
    int n0 = rec_count(&rec);
    void *big = labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, 10, 0);
    CHECK(big != NULL);
    CHECK_EQ(labyrinth_free_pages(z, big, 10), 0);
    errno = 0;
    CHECK(labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, 11, 0) == NULL);
    CHECK_EQ(errno, EINVAL);
    CHECK_EQ(rec_count(&rec), n0 + 1);
    CHECK_EQ(labyrinth_zone_check(z), 0);
}

static void test_null_and_zero_config(void)
{
    size_t pg4096 = 4096; /* pages 0 = 4096 */
    struct labyrinth_zone *z = zone_new(NULL, &rec);
    check_defaults(z, pg4096);
    labyrinth_zone_destroy(z);

    struct labyrinth_zone_config c;
    memset(&c, 0, sizeof c);
    z = zone_new(&c, &rec);
    check_defaults(z, pg4096);
    labyrinth_zone_destroy(z);
}

/* KERNEL waits LABYRINTH_DEFAULT_WAIT_MS by default (wait_timeout_ms 0). */
static void test_default_wait(void)
{
    struct labyrinth_zone_config c;
    memset(&c, 0, sizeof c);
    c.pages = 16;
    c.reserve_pages = 1;
    c.low_pages = 1;
    c.high_pages = 2;
    c.max_order = 4;
    c.flags = LABYRINTH_ZONE_NO_WARDEN;
    struct labyrinth_zone *z = zone_new(&c, &rec);
    void *pages[16];
    size_t n = 0;
    while (n < 16 && (pages[n] = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0)))
        n++;
    CHECK_EQ(n, 16);
    uint64_t t0 = now_ns();
    errno = 0;
    CHECK(labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, 0, 0) == NULL);
    uint64_t dt = now_ns() - t0;
    CHECK_EQ(errno, ETIMEDOUT);
    CHECK(dt >= (uint64_t)LABYRINTH_DEFAULT_WAIT_MS * 1000000u); /* the default timeout, waited whole */
    for (size_t i = 0; i < n; i++)
        CHECK_EQ(labyrinth_free_pages(z, pages[i], 0), 0);
    labyrinth_zone_destroy(z);
}

static void test_custom_config(void)
{
    char name[32] = "custom-zone";
    struct labyrinth_zone_config c;
    memset(&c, 0, sizeof c);
    c.name = name;
    c.pages = 512;
    c.max_pages = 1024;
    c.reserve_pages = 8;
    c.low_pages = 16;
    c.high_pages = 32;
    c.max_order = 5;
    c.wait_timeout_ms = 20;
    struct labyrinth_zone *z = zone_new(&c, &rec);
    strcpy(name, "overwritten"); /* the name is copied */
    CHECK(strcmp(labyrinth_zone_name(z), "custom-zone") == 0);
    struct labyrinth_zone_stats s = stats_of(z);
    CHECK_EQ(s.total_pages, 512);
    CHECK_EQ(s.max_pages, 1024);
    CHECK_EQ(s.reserve_target_pages, 8);
    CHECK_EQ(s.low_pages, 16);
    CHECK_EQ(s.high_pages, 32);
    CHECK_EQ(s.total_pages, s.free_pages + s.in_use_pages);

    /* max_order 5: order 5 served, order 6 refused (a BAD_ARGS report). */
    rec_reset(&rec);
    void *b = labyrinth_alloc_pages(z, LABYRINTH_GFP_NOWAIT, 5, 0);
    CHECK(b != NULL);
    CHECK(((uintptr_t)b & ((pg() << 5) - 1)) == 0);
    errno = 0;
    CHECK(labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, 6, 0) == NULL);
    CHECK_EQ(errno, EINVAL);
    CHECK_EQ(rec_count(&rec), 1);
    CHECK_EQ(rec.r[0].kind, LABYRINTH_REPORT_BAD_ARGS);
    CHECK_EQ(rec.r[0].err, -EINVAL);
    CHECK(strcmp(rec.r[0].zone_name, "custom-zone") == 0);
    CHECK_EQ(labyrinth_free_pages(z, b, 5), 0);
    CHECK_EQ(labyrinth_zone_check(z), 0);
    labyrinth_zone_destroy(z);

    /* The largest documented max_order is accepted. */
    memset(&c, 0, sizeof c);
    c.pages = 64;
    c.max_order = LABYRINTH_MAX_ORDER_LIMIT;
    c.flags = LABYRINTH_ZONE_NO_WARDEN;
    z = labyrinth_zone_create(&c);
    CHECK(z != NULL);
    if (z) {
        CHECK_EQ(labyrinth_zone_check(z), 0);
        labyrinth_zone_destroy(z);
    } else {
        fprintf(stderr, "  max_order %u refused: %s\n", LABYRINTH_MAX_ORDER_LIMIT, labyrinth_strerror(errno));
    }
}

static void expect_einval(const struct labyrinth_zone_config *c, const char *what)
{
    CASE_BEGIN();
    errno = 0;
    struct labyrinth_zone *z = labyrinth_zone_create(c);
    CHECK(z == NULL);
    CHECK_EQ(errno, EINVAL);
    if (z)
        labyrinth_zone_destroy(z);
    CASE_END(what);
}

static void expect_created(const struct labyrinth_zone_config *c, const char *what)
{
    CASE_BEGIN();
    errno = 0;
    struct labyrinth_zone *z = labyrinth_zone_create(c);
    CHECK(z != NULL);
    if (z) {
        struct labyrinth_zone_stats s = stats_of(z);
        CHECK_EQ(s.reserve_target_pages, c->reserve_pages);
        CHECK_EQ(s.low_pages, c->low_pages);
        CHECK_EQ(s.high_pages, c->high_pages);
        CHECK_EQ(labyrinth_zone_check(z), 0);
        labyrinth_zone_destroy(z);
    } else {
        fprintf(stderr, "  refused with %s\n", labyrinth_strerror(errno));
    }
    CASE_END(what);
}

static void test_create_einval(void)
{
    static unsigned char buf[1 << 20];
    struct labyrinth_zone_config c;

    memset(&c, 0, sizeof c);
    c.pages = 64;
    c.flags = LABYRINTH_ZONE_FLAGS_ALL + 1;
    expect_einval(&c, "unknown flag bit");
    c.flags = 0x80000000u;
    expect_einval(&c, "unknown high flag bit");

    memset(&c, 0, sizeof c);
    c.pages = 64;
    c.quality = LABYRINTH_QUALITY_ALL + 1;
    expect_einval(&c, "unknown quality bit");

    memset(&c, 0, sizeof c);
    c.pages = 64;
    c.max_order = LABYRINTH_MAX_ORDER_LIMIT + 1;
    expect_einval(&c, "max_order above LABYRINTH_MAX_ORDER_LIMIT");
    c.max_order = 1000;
    expect_einval(&c, "max_order 1000");

    /* Watermarks out of order: reserve <= low <= high <= pages required. */
    memset(&c, 0, sizeof c);
    c.pages = 512;
    c.reserve_pages = 8;
    c.low_pages = 64;
    c.high_pages = 32;
    expect_einval(&c, "low > high");
    c.low_pages = 16;
    c.high_pages = 600;
    expect_einval(&c, "high > pages");
    c.reserve_pages = 600;
    c.low_pages = 700;
    c.high_pages = 800;
    expect_einval(&c, "reserve > pages");
    c.reserve_pages = 100;
    c.low_pages = 50;
    c.high_pages = 200;
    expect_einval(&c, "reserve > low");

    /* ... and a config in that order is accepted, the edges included. */
    c.reserve_pages = 32;
    c.low_pages = 64;
    c.high_pages = 128;
    c.flags = LABYRINTH_ZONE_NO_WARDEN;
    expect_created(&c, "reserve < low < high < pages");
    c.reserve_pages = 32;
    c.low_pages = 32;
    c.high_pages = 32;
    expect_created(&c, "reserve == low == high");
    c.reserve_pages = 32;
    c.low_pages = 64;
    c.high_pages = 500;
    expect_created(&c, "reserve <= low <= high <= pages, high near pages");

    /* memory without memory_bytes. */
    memset(&c, 0, sizeof c);
    c.memory = buf;
    c.memory_bytes = 0;
    expect_einval(&c, "memory without memory_bytes");

    /* pages above what memory holds. */
    memset(&c, 0, sizeof c);
    c.memory = buf;
    c.memory_bytes = sizeof buf;
    c.pages = sizeof buf / pg() + 1;
    expect_einval(&c, "pages above what memory holds");
}

/* Live zones are limited: creation fails with ENOSPC, and works again once
 * a zone is destroyed. */
static void test_enospc(void)
{
    enum { CAP = 4096 };
    struct labyrinth_zone **zs = calloc(CAP, sizeof *zs);
    REQUIRE(zs != NULL);
    struct labyrinth_zone_config c;
    memset(&c, 0, sizeof c);
    c.pages = 1;
    c.max_order = 0;
    c.flags = LABYRINTH_ZONE_NO_WARDEN | LABYRINTH_ZONE_NO_TRACKING;
    size_t n = 0;
    int err = 0;
    while (n < CAP) {
        errno = 0;
        zs[n] = labyrinth_zone_create(&c);
        if (!zs[n]) {
            err = errno;
            break;
        }
        n++;
    }
    CHECK(n > 1 && n < CAP);
    CHECK_EQ(err, ENOSPC);
    if (n > 0) {
        labyrinth_zone_destroy(zs[n - 1]);
        zs[n - 1] = labyrinth_zone_create(&c);
        CHECK(zs[n - 1] != NULL);
        if (!zs[n - 1])
            n--;
    }
    for (size_t i = 0; i < n; i++)
        labyrinth_zone_destroy(zs[i]);
    free(zs);
}

static void test_bad_handles(void)
{
    struct labyrinth_zone *z = zone_small("handles", 64, 0, &rec);
    struct labyrinth_zone_stats s;
    struct labyrinth_page_info info;
    uint64_t phys;
    void *p = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0);
    REQUIRE(p != NULL);
    /* A zeroed block of memory is not a live zone. */
    static _Alignas(4096) uint64_t fake[512]; /* zeros, aligned like any handle */
    struct labyrinth_zone *bogus = (struct labyrinth_zone *)fake;

    CHECK_EQ(labyrinth_zone_stats(NULL, &s), -EBADF);
    CHECK_EQ(labyrinth_zone_stats(bogus, &s), -EBADF);
    CHECK_EQ(labyrinth_zone_stats(z, NULL), -EINVAL);
    CHECK_EQ(labyrinth_zone_check(NULL), -EBADF);
    CHECK_EQ(labyrinth_zone_check(bogus), -EBADF);
    CHECK_EQ(labyrinth_page_info(NULL, p, &info), -EBADF);
    CHECK_EQ(labyrinth_page_info(z, p, NULL), -EINVAL);
    CHECK_EQ(labyrinth_virt_to_phys(NULL, p, &phys), -EBADF);
    CHECK_EQ(labyrinth_virt_to_phys(z, p, NULL), -EINVAL);
    CHECK_EQ(labyrinth_virt_to_phys(z, p, &phys), -EOPNOTSUPP); /* not a DMA zone */
    CHECK_EQ(labyrinth_virt_to_phys(z, &phys, &phys), -EFAULT);
    CHECK_EQ(labyrinth_zone_set_report_handler(NULL, rec_handler, &rec), -EBADF);
    CHECK_EQ(labyrinth_thread_release(NULL), -EBADF);
    CHECK_EQ(labyrinth_thread_release(bogus), -EBADF);
    CHECK_EQ(labyrinth_zone_for_each_in_use(NULL, NULL, NULL), -EBADF);
    labyrinth_zone_destroy(NULL); /* a no-op */
    CHECK_EQ(stats_of(z).misuse_reports, 0);
    CHECK_EQ(labyrinth_free_pages(z, p, 0), 0);
    labyrinth_zone_destroy(z);
}

static void test_strerror(void)
{
    static const int misuse[] = {EFAULT, EXDEV, EINVAL, ENXIO, EALREADY, ERANGE, EBADF};
    static const int others[] = {ENOENT, EOPNOTSUPP, ENOMEM, ETIMEDOUT, EPERM, EAGAIN, ENOSPC, EIO, EEXIST};
    const size_t nm = sizeof misuse / sizeof misuse[0];
    for (size_t i = 0; i < nm; i++) {
        const char *a = labyrinth_strerror(misuse[i]), *b = labyrinth_strerror(-misuse[i]);
        REQUIRE(a != NULL && b != NULL);
        CHECK(a[0] != 0);
        CHECK(strcmp(a, b) == 0);
        for (size_t j = 0; j < i; j++)
            CHECK(strcmp(a, labyrinth_strerror(misuse[j])) != 0); /* one sentence per kind */
    }
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        const char *a = labyrinth_strerror(-others[i]);
        REQUIRE(a != NULL);
        CHECK(a[0] != 0);
        CHECK(strcmp(a, labyrinth_strerror(others[i])) == 0);
        CHECK(strcmp(a, labyrinth_strerror(9999)) != 0); /* a real sentence, not "unknown" */
    }
    CHECK(labyrinth_strerror(9999) != NULL);
    CHECK(labyrinth_strerror(0) != NULL);
}

/* Stats are consistent through allocations of every mode and order. */
static void test_stats_consistent(void)
{
    struct labyrinth_zone *z = zone_new(NULL, &rec);
    void *blocks[40];
    unsigned orders[40];
    size_t n = 0, pages = 0;
    static const unsigned gfps[] = {LABYRINTH_GFP_ATOMIC, LABYRINTH_GFP_NOWAIT, LABYRINTH_GFP_KERNEL};
    for (unsigned i = 0; i < 40; i++) {
        orders[n] = i % 5;
        blocks[n] = labyrinth_alloc_pages(z, gfps[i % 3], orders[n], 0);
        CHECK(blocks[n] != NULL);
        if (blocks[n]) {
            pages += (size_t)1 << orders[n];
            n++;
        }
        struct labyrinth_zone_stats s = stats_of(z);
        CHECK_EQ(s.total_pages, s.free_pages + s.in_use_pages);
    }
    struct labyrinth_zone_stats s = stats_of(z);
    CHECK_EQ(s.in_use_pages, pages);
    for (size_t i = 0; i < n; i++)
        CHECK_EQ(labyrinth_free_pages(z, blocks[i], orders[i]), 0);
    s = stats_of(z);
    CHECK_EQ(s.in_use_pages, 0);
    CHECK_EQ(s.free_pages, s.total_pages);
    CHECK_EQ(labyrinth_zone_check(z), 0);
    labyrinth_zone_destroy(z);
}

/* DMA: created with physical addresses, or refused with EPERM/EIO. */
static void test_dma(void)
{
    struct labyrinth_zone_config c;
    memset(&c, 0, sizeof c);
    c.name = "dma";
    c.pages = 64;
    c.flags = LABYRINTH_ZONE_DMA | LABYRINTH_ZONE_NO_WARDEN;
    errno = 0;
    struct labyrinth_zone *z = labyrinth_zone_create(&c);
    if (!z) {
        CHECK(errno == EPERM || errno == EIO);
        printf("api_zone: DMA zone refused (%s); physical addresses not checked\n", labyrinth_strerror(errno));
        return;
    }
    void *a = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0);
    void *b = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0);
    REQUIRE(a && b);
    uint64_t pa = 0, pa2 = 0, pb = 0;
    CHECK_EQ(labyrinth_virt_to_phys(z, a, &pa), 0);
    CHECK_EQ(labyrinth_virt_to_phys(z, (char *)a + 123, &pa2), 0);
    CHECK_EQ(labyrinth_virt_to_phys(z, b, &pb), 0);
    CHECK(pa != 0);
    CHECK_EQ(pa & (pg() - 1), 0);
    CHECK_EQ(pa2, pa + 123);
    CHECK(pa != pb);
    CHECK_EQ(labyrinth_free_pages(z, a, 0), 0);
    CHECK_EQ(labyrinth_free_pages(z, b, 0), 0);
    labyrinth_zone_destroy(z);
}

/* HUGE: created (huge pages, THP or base pages with a notice) and works. */
static void test_huge(void)
{
    struct labyrinth_zone_config c;
    memset(&c, 0, sizeof c);
    c.name = "huge";
    c.pages = 1024;
    c.flags = LABYRINTH_ZONE_HUGE;
    struct labyrinth_zone *z = labyrinth_zone_create(&c);
    CHECK(z != NULL);
    if (!z)
        return;
    void *b = labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, 4, LABYRINTH_QUALITY_ZERO);
    CHECK(b != NULL);
    if (b) {
        CHECK(all_bytes(b, pg() << 4, 0));
        CHECK_EQ(labyrinth_free_pages(z, b, 4), 0);
    }
    CHECK_EQ(labyrinth_zone_check(z), 0);
    labyrinth_zone_destroy(z);
}

int main(void)
{
    test_null_and_zero_config();
    test_custom_config();
    test_create_einval();
    test_bad_handles();
    test_strerror();
    test_stats_consistent();
    test_default_wait();
    test_enospc();
    test_dma();
    test_huge();
    return check_done("api_zone");
}
