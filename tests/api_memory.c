/*
 * api_memory.c - zones over caller-supplied memory: a static array and a
 * malloc'd buffer, both with an unaligned start; every page inside the
 * buffer, page-aligned and distinct; the metadata never inside a page
 * handed out (every page filled with a pattern, the zone still works,
 * check() == 0, the patterns intact); too small buffers (ENOMEM), pages
 * above what fits (EINVAL), no growth; pointers just outside the buffer;
 * another zone's pages.  Public header only.
 */
#include "api_util.h"

#include <stdlib.h>

static struct recorder rec;

#define STATIC_BYTES (2u << 20)
static unsigned char arena[STATIC_BYTES];

/* Take every page (NOWAIT, then ATOMIC for the reserve); n returned. */
static size_t take_all(struct labyrinth_zone *z, void **pages, size_t cap)
{
    size_t n = 0;
    while (n < cap && (pages[n] = labyrinth_alloc_pages(z, LABYRINTH_GFP_NOWAIT, 0, 0)))
        n++;
    while (n < cap && (pages[n] = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0)))
        n++;
    return n;
}

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

static void exercise(void *mem, size_t bytes, const char *what)
{
    CASE_BEGIN();
    struct labyrinth_zone_config c;
    memset(&c, 0, sizeof c);
    c.name = what;
    c.memory = mem;
    c.memory_bytes = bytes;
    struct labyrinth_zone *z = zone_new(&c, &rec);
    struct labyrinth_zone_stats s = stats_of(z);
    size_t total = s.total_pages;
    CHECK(total > 0);
    CHECK(total * pg() <= bytes);
    CHECK(total * pg() + s.metadata_bytes <= bytes);
    CHECK_EQ(s.total_pages, s.free_pages + s.in_use_pages);
    CHECK_EQ(s.max_pages, total);
    CHECK_EQ(s.regions, 1);

    void **pages = calloc(total + 1, sizeof *pages);
    REQUIRE(pages != NULL);
    size_t n = take_all(z, pages, total + 1);
    CHECK_EQ(n, total); /* every page, and no more */
    if (n != total) {
        s = stats_of(z);
        fprintf(stderr, "  %zu pages free but not served: buddy %zu, cached %zu (depot %zu), reserve %zu\n",
                s.free_pages, s.buddy_free_pages, s.cached_pages, s.depot_pages, s.reserve_free_pages);
    }
    uintptr_t lo = (uintptr_t)mem, hi = lo + bytes;
    for (size_t i = 0; i < n; i++) {
        uintptr_t a = (uintptr_t)pages[i];
        CHECK(a >= lo && a + pg() <= hi);
        CHECK_EQ(a & (pg() - 1), 0);
    }
    /* Distinct. */
    uintptr_t *sorted = malloc(n * sizeof *sorted);
    REQUIRE(sorted != NULL);
    for (size_t i = 0; i < n; i++)
        sorted[i] = (uintptr_t)pages[i];
    qsort(sorted, n, sizeof *sorted, cmp_ptr);
    for (size_t i = 1; i < n; i++)
        CHECK(sorted[i] >= sorted[i - 1] + pg());
    free(sorted);

    /* Scribble over every page: the zone's metadata must not be there. */
    for (size_t i = 0; i < n; i++)
        memset(pages[i], 0xee, pg());
    CHECK_EQ(labyrinth_zone_check(z), 0);
    s = stats_of(z);
    CHECK_EQ(s.in_use_pages, total);
    CHECK_EQ(s.free_pages, 0);
    CHECK_EQ(labyrinth_zone_for_each_in_use(z, NULL, NULL), (long)n);
    for (size_t i = 0; i < n; i++) {
        struct labyrinth_page_info info;
        CHECK_EQ(labyrinth_page_info(z, pages[i], &info), 0);
        CHECK_EQ(info.state, LABYRINTH_PAGE_IN_USE);
    }
    /* ... and the zone wrote nothing into the pages it handed out. */
    for (size_t i = 0; i < n; i++)
        CHECK(all_bytes(pages[i], pg(), 0xee));

    /* Everything back, then a second round works the same. */
    for (size_t i = 0; i < n; i++)
        CHECK_EQ(labyrinth_free_pages(z, pages[i], 0), 0);
    CHECK_EQ(labyrinth_zone_check(z), 0);
    s = stats_of(z);
    CHECK_EQ(s.in_use_pages, 0);
    CHECK_EQ(s.free_pages, total);
    size_t n2 = take_all(z, pages, total + 1);
    CHECK_EQ(n2, total);
    for (size_t i = 0; i < n2; i++)
        memset(pages[i], 0x11, pg());
    for (size_t i = 0; i < n2; i++)
        CHECK_EQ(labyrinth_free_pages(z, pages[i], 0), 0);

    /* Higher orders inside the buffer too. */
    void *b = labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, 3, LABYRINTH_QUALITY_ZERO);
    CHECK(b != NULL);
    if (b) {
        CHECK((uintptr_t)b >= lo && (uintptr_t)b + (pg() << 3) <= hi);
        CHECK_EQ((uintptr_t)b & ((pg() << 3) - 1), 0);
        CHECK(all_bytes(b, pg() << 3, 0));
        CHECK_EQ(labyrinth_free_pages(z, b, 3), 0);
    }

    /* Just outside the buffer: foreign. */
    uintptr_t below = (lo & ~(uintptr_t)(pg() - 1)) - pg();
    uintptr_t above = (hi + pg() - 1) & ~(uintptr_t)(pg() - 1);
    rec_reset(&rec);
    CHECK_EQ(labyrinth_free_pages(z, (void *)below, 0), -EFAULT);
    CHECK_EQ(labyrinth_free_pages(z, (void *)above, 0), -EFAULT);
    CHECK_EQ(rec_count(&rec), 2);

    CHECK_EQ(stats_of(z).misuse_reports, 2);
    CHECK_EQ(labyrinth_zone_check(z), 0);
    free(pages);
    labyrinth_zone_destroy(z);
    CASE_END(what);
}

static void test_static_and_malloc(void)
{
    exercise(arena + 3, STATIC_BYTES - 3, "static+3");
    exercise(arena, STATIC_BYTES, "static");
    size_t bytes = (3u << 20) + 123;
    unsigned char *m = malloc(bytes);
    REQUIRE(m != NULL);
    exercise(m + 1, bytes - 1, "malloc+1");
    exercise(m + 4095, bytes - 4095, "malloc+4095");
    free(m);
}

static void test_sizes(void)
{
    struct labyrinth_zone_config c;
    memset(&c, 0, sizeof c);

    /* Too small for metadata plus one page. */
    static const size_t small[] = {1, 64, 4096, 8192};
    for (unsigned i = 0; i < 4; i++) {
        c.memory = arena + 5;
        c.memory_bytes = small[i];
        errno = 0;
        struct labyrinth_zone *z = labyrinth_zone_create(&c);
        CHECK(z == NULL);
        CHECK_EQ(errno, ENOMEM);
        if (z)
            labyrinth_zone_destroy(z);
    }

    /* What fits; pages above it refused; pages below it honoured. */
    c.memory = arena + 3;
    c.memory_bytes = 512 * 1024;
    struct labyrinth_zone *z = zone_new(&c, &rec);
    size_t fit = stats_of(z).total_pages;
    labyrinth_zone_destroy(z);
    CHECK(fit > 0);
    c.pages = fit + 1;
    errno = 0;
    z = labyrinth_zone_create(&c);
    CHECK(z == NULL);
    CHECK_EQ(errno, EINVAL);
    if (z)
        labyrinth_zone_destroy(z);
    c.pages = fit;
    z = labyrinth_zone_create(&c);
    CHECK(z != NULL);
    if (z) {
        CHECK_EQ(stats_of(z).total_pages, fit);
        labyrinth_zone_destroy(z);
    }
    c.pages = fit / 2;
    z = labyrinth_zone_create(&c);
    CHECK(z != NULL);
    if (z) {
        CHECK_EQ(stats_of(z).total_pages, fit / 2);
        void *pages[128];
        size_t n = take_all(z, pages, 128);
        CHECK_EQ(n, fit / 2);
        for (size_t i = 0; i < n; i++)
            CHECK_EQ(labyrinth_free_pages(z, pages[i], 0), 0);
        labyrinth_zone_destroy(z);
    }
}

/* A zone over caller memory never grows: max_pages above pages is refused
 * (EINVAL), or accepted without growth. */
static void test_no_growth(void)
{
    struct labyrinth_zone_config c;
    memset(&c, 0, sizeof c);
    c.memory = arena;
    c.memory_bytes = 256 * 1024;
    c.pages = 16;
    c.max_pages = 64;
    c.wait_timeout_ms = 20;
    errno = 0;
    struct labyrinth_zone *z = labyrinth_zone_create(&c);
    if (!z) {
        CHECK_EQ(errno, EINVAL);
        c.max_pages = 0;
        z = zone_new(&c, &rec);
    }
    void *pages[64];
    size_t n = take_all(z, pages, 64);
    CHECK_EQ(n, 16);
    errno = 0;
    void *k = labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, 0, 0);
    CHECK(k == NULL);
    CHECK(errno == ENOMEM || errno == ETIMEDOUT);
    struct labyrinth_zone_stats s = stats_of(z);
    CHECK_EQ(s.total_pages, 16);
    CHECK_EQ(s.regions, 1);
    CHECK_EQ(s.grow_events, 0);
    for (size_t i = 0; i < n; i++)
        CHECK_EQ(labyrinth_free_pages(z, pages[i], 0), 0);
    CHECK_EQ(labyrinth_zone_check(z), 0);
    labyrinth_zone_destroy(z);
}

/* Pages of another zone, in both directions, are -EXDEV. */
static void test_other_zone(void)
{
    struct labyrinth_zone_config c;
    memset(&c, 0, sizeof c);
    c.name = "caller-mem";
    c.memory = arena + 100;
    c.memory_bytes = 512 * 1024;
    struct labyrinth_zone *m = zone_new(&c, &rec);
    struct labyrinth_zone *o = zone_small("os-mapped", 64, 0, &rec);
    void *pm = labyrinth_alloc_pages(m, LABYRINTH_GFP_ATOMIC, 0, 0);
    void *po = labyrinth_alloc_pages(o, LABYRINTH_GFP_ATOMIC, 0, 0);
    REQUIRE(pm && po);
    rec_reset(&rec);
    CHECK_EQ(labyrinth_free_pages(m, po, 0), -EXDEV);
    CHECK_EQ(labyrinth_free_pages(o, pm, 0), -EXDEV);
    CHECK_EQ(rec_count(&rec), 2);
    CHECK_EQ(labyrinth_free_pages(m, pm, 0), 0);
    CHECK_EQ(labyrinth_free_pages(o, po, 0), 0);
    CHECK_EQ(labyrinth_zone_check(m), 0);
    CHECK_EQ(labyrinth_zone_check(o), 0);
    labyrinth_zone_destroy(o);
    labyrinth_zone_destroy(m);
}

/* The buffer is the caller's again after destroy: reusable for a zone. */
static void test_reuse(void)
{
    for (int round = 0; round < 3; round++) {
        struct labyrinth_zone_config c;
        memset(&c, 0, sizeof c);
        c.memory = arena + round;
        c.memory_bytes = 256 * 1024;
        c.flags = round == 2 ? LABYRINTH_ZONE_VERIFY : 0;
        struct labyrinth_zone *z = zone_new(&c, &rec);
        void *p = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, LABYRINTH_QUALITY_ZERO);
        CHECK(p != NULL && all_bytes(p, pg(), 0));
        if (p)
            CHECK_EQ(labyrinth_free_pages(z, p, 0), 0);
        CHECK_EQ(labyrinth_zone_check(z), 0);
        labyrinth_zone_destroy(z);
        memset(arena, 0x77, 256 * 1024 + 4);
    }
}

int main(void)
{
    test_static_and_malloc();
    test_sizes();
    test_no_growth();
    test_other_zone();
    test_reuse();
    return check_done("api_memory");
}
