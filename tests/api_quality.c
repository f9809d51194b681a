/*
 * api_quality.c - quality flags: ZERO gives zeros even after the block was
 * dirtied and freed; POISON fills the zone's poison_pattern (default 0x6b,
 * and a custom one); ZERO+POISON gives zeros; CL_ALIGN on normal blocks
 * makes no report; a zone-wide quality applies to every allocation (fast
 * path included) and adds to the per-call one; ZONE_VERIFY poisons freed
 * blocks and reports a write into a freed block as USE_AFTER_FREE with the
 * right offset when the block is handed out again.  Public header only.
 */
#include "api_util.h"

#include <stdlib.h>

static struct recorder rec;

static const unsigned gfps[] = {LABYRINTH_GFP_ATOMIC, LABYRINTH_GFP_NOWAIT, LABYRINTH_GFP_KERNEL};

/* Take n blocks of `order`, fill them with `dirty`, free them. */
static void dirty_round(struct labyrinth_zone *z, unsigned order, size_t n, unsigned char dirty)
{
    void *b[64];
    REQUIRE(n <= 64);
    for (size_t i = 0; i < n; i++) {
        b[i] = labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, order, 0);
        REQUIRE(b[i] != NULL);
        memset(b[i], dirty, pg() << order);
    }
    for (size_t i = 0; i < n; i++)
        CHECK_EQ(labyrinth_free_pages(z, b[i], order), 0);
}

/* Take n blocks with quality q in mode gfp: every byte must be `want`. */
static void expect_filled(struct labyrinth_zone *z, unsigned gfp, unsigned order, unsigned q, size_t n,
                          unsigned char want, const char *what)
{
    CASE_BEGIN();
    void *b[64];
    REQUIRE(n <= 64);
    for (size_t i = 0; i < n; i++) {
        b[i] = labyrinth_alloc_pages(z, gfp, order, q);
        CHECK(b[i] != NULL);
        if (b[i])
            CHECK(all_bytes(b[i], pg() << order, want));
    }
    for (size_t i = 0; i < n; i++)
        if (b[i])
            CHECK_EQ(labyrinth_free_pages(z, b[i], order), 0);
    CASE_END(what);
}

static void test_zero_poison(void)
{
    struct labyrinth_zone *z = zone_small("quality", 512, 0, &rec);
    for (unsigned order = 0; order <= 4; order++) {
        size_t n = order == 0 ? 64 : 8;
        for (unsigned g = 0; g < 3; g++) {
            char what[96];
            dirty_round(z, order, n, 0xaa);
            snprintf(what, sizeof what, "ZERO, gfp %#x, order %u", gfps[g], order);
            expect_filled(z, gfps[g], order, LABYRINTH_QUALITY_ZERO, n, 0, what);
            dirty_round(z, order, n, 0x11);
            snprintf(what, sizeof what, "POISON (default 0x6b), gfp %#x, order %u", gfps[g], order);
            expect_filled(z, gfps[g], order, LABYRINTH_QUALITY_POISON, n, 0x6b, what);
            dirty_round(z, order, n, 0x22);
            snprintf(what, sizeof what, "ZERO|POISON, gfp %#x, order %u", gfps[g], order);
            expect_filled(z, gfps[g], order, LABYRINTH_QUALITY_ZERO | LABYRINTH_QUALITY_POISON, n, 0, what);
        }
    }
    CHECK_EQ(stats_of(z).misuse_reports, 0);
    CHECK_EQ(labyrinth_zone_check(z), 0);
    labyrinth_zone_destroy(z);

    /* A custom pattern. */
    struct labyrinth_zone_config c;
    memset(&c, 0, sizeof c);
    c.pages = 256;
    c.poison_pattern = 0xa5;
    c.flags = LABYRINTH_ZONE_NO_WARDEN;
    z = zone_new(&c, &rec);
    for (unsigned order = 0; order <= 3; order++) {
        dirty_round(z, order, 8, 0x00);
        expect_filled(z, LABYRINTH_GFP_ATOMIC, order, LABYRINTH_QUALITY_POISON, 8, 0xa5, "custom poison 0xa5");
        dirty_round(z, order, 8, 0xa5);
        expect_filled(z, LABYRINTH_GFP_KERNEL, order, LABYRINTH_QUALITY_ZERO | LABYRINTH_QUALITY_POISON, 8, 0,
                      "ZERO|POISON with a custom pattern");
    }
    labyrinth_zone_destroy(z);
}

static void test_cl_align(void)
{
    struct labyrinth_zone *z = zone_small("cl", 512, 0, &rec);
    rec_reset(&rec);
    for (unsigned order = 0; order <= 5; order++) {
        for (unsigned g = 0; g < 3; g++) {
            void *b = labyrinth_alloc_pages(z, gfps[g], order, LABYRINTH_QUALITY_CL_ALIGN);
            CHECK(b != NULL);
            CHECK_EQ((uintptr_t)b & 63, 0);
            if (b)
                CHECK_EQ(labyrinth_free_pages(z, b, order), 0);
        }
    }
    void *m = labyrinth_void_allocpage_gfpatomic_extra_quality(z, LABYRINTH_QUALITY_CL_ALIGN);
    CHECK(m != NULL);
    CHECK_EQ(labyrinth_free_pages(z, m, 0), 0);
    CHECK_EQ(rec_count(&rec), 0);
    CHECK_EQ(stats_of(z).misuse_reports, 0);
    labyrinth_zone_destroy(z);
}

/* config.quality applies to every allocation, the order-0 fast path too. */
static void test_zone_quality(void)
{
    struct labyrinth_zone_config c;
    memset(&c, 0, sizeof c);
    c.name = "zq-zero";
    c.pages = 256;
    c.quality = LABYRINTH_QUALITY_ZERO;
    c.flags = LABYRINTH_ZONE_NO_WARDEN;
    struct labyrinth_zone *z = zone_new(&c, &rec);
    for (unsigned order = 0; order <= 3; order++)
        for (unsigned g = 0; g < 3; g++) {
            dirty_round(z, order, 8, 0xcc);
            expect_filled(z, gfps[g], order, 0, 8, 0, "zone-wide ZERO");
        }
    dirty_round(z, 0, 8, 0xcc);
    void *m = labyrinth_void_allocpage_gfpatomic_extra_quality(z, 0);
    CHECK(m != NULL && all_bytes(m, pg(), 0));
    CHECK_EQ(labyrinth_free_pages(z, m, 0), 0);
    labyrinth_zone_destroy(z);

    c.name = "zq-poison";
    c.quality = LABYRINTH_QUALITY_POISON;
    c.poison_pattern = 0x3c;
    z = zone_new(&c, &rec);
    for (unsigned order = 0; order <= 3; order++)
        for (unsigned g = 0; g < 3; g++) {
            dirty_round(z, order, 8, 0xcc);
            expect_filled(z, gfps[g], order, 0, 8, 0x3c, "zone-wide POISON 0x3c");
        }
    /* The call's ZERO adds to the zone's POISON: zeros win. */
    dirty_round(z, 1, 8, 0xcc);
    expect_filled(z, LABYRINTH_GFP_NOWAIT, 1, LABYRINTH_QUALITY_ZERO, 8, 0, "zone POISON + call ZERO");
    labyrinth_zone_destroy(z);

    c.name = "zq-track";
    c.quality = LABYRINTH_QUALITY_TRACK | LABYRINTH_QUALITY_CL_ALIGN;
    c.poison_pattern = 0;
    z = zone_new(&c, &rec);
    rec_reset(&rec);
    for (unsigned order = 0; order <= 3; order++)
        for (unsigned g = 0; g < 3; g++) {
            void *b = labyrinth_alloc_pages(z, gfps[g], order, 0);
            REQUIRE(b != NULL);
            struct labyrinth_page_info info;
            CHECK_EQ(labyrinth_page_info(z, b, &info), 0);
            CHECK_EQ(info.tracked, 1);
            CHECK_EQ(info.thread, tracked_id(labyrinth_thread_id()));
            CHECK(info.caller != NULL);
            CHECK_EQ(labyrinth_free_pages(z, b, order), 0);
        }
    CHECK_EQ(rec_count(&rec), 0);
    CHECK_EQ(labyrinth_zone_check(z), 0);
    labyrinth_zone_destroy(z);
}

/* Allocate order-`order` blocks until `want` comes back (others kept). */
static void *alloc_until(struct labyrinth_zone *z, unsigned order, void *want, void **kept, size_t *nkept,
                         size_t cap)
{
    for (;;) {
        void *b = labyrinth_alloc_pages(z, LABYRINTH_GFP_NOWAIT, order, 0);
        if (!b || b == want)
            return b;
        REQUIRE(*nkept < cap);
        kept[(*nkept)++] = b;
    }
}

static void test_verify(void)
{
    struct labyrinth_zone_config c;
    memset(&c, 0, sizeof c);
    c.name = "verify";
    c.pages = 256;
    c.flags = LABYRINTH_ZONE_VERIFY | LABYRINTH_ZONE_NO_WARDEN;
    struct labyrinth_zone *z = zone_new(&c, &rec);
    void *kept[256];
    size_t nkept = 0;

    /* No false alarm: blocks used and freed properly. */
    rec_reset(&rec);
    for (unsigned i = 0; i < 300; i++) {
        unsigned order = i % 3;
        void *b = labyrinth_alloc_pages(z, gfps[i % 3], order, 0);
        REQUIRE(b != NULL);
        memset(b, (int)i, pg() << order);
        CHECK_EQ(labyrinth_free_pages(z, b, order), 0);
    }
    CHECK_EQ(rec_count(&rec), 0);
    CHECK_EQ(stats_of(z).misuse_reports, 0);

    /* A freed block holds the poison. */
    void *p = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0);
    REQUIRE(p != NULL);
    memset(p, 0, pg());
    CHECK_EQ(labyrinth_free_pages(z, p, 0), 0);
    TEST_TOUCH_FREED(p, pg());
    CHECK(all_bytes(p, pg(), 0x6b));

    /* Order 0: a write into the freed page, reported at hand-out. */
    ((volatile unsigned char *)p)[1234] = 0x11;
    unsigned long long m0 = stats_of(z).misuse_reports;
    rec_reset(&rec);
    void *again = alloc_until(z, 0, p, kept, &nkept, 256);
    CHECK(again == p);
    CHECK_EQ(rec_count(&rec), 1);
    CHECK_EQ(stats_of(z).misuse_reports, m0 + 1);
    if (rec_count(&rec) >= 1) {
        CHECK_EQ(rec.r[0].kind, LABYRINTH_REPORT_USE_AFTER_FREE);
        CHECK(rec.r[0].addr == p);
        CHECK_EQ(rec.r[0].offset, 1234);
        CHECK_EQ(rec.r[0].order, 0);
        CHECK(strcmp(rec.r[0].zone_name, "verify") == 0);
    }
    if (again)
        CHECK_EQ(labyrinth_free_pages(z, again, 0), 0);
    while (nkept)
        CHECK_EQ(labyrinth_free_pages(z, kept[--nkept], 0), 0);

    /* Order 2: a write into the third page of a freed block. */
    void *b = labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, 2, 0);
    REQUIRE(b != NULL);
    CHECK_EQ(labyrinth_free_pages(z, b, 2), 0);
    TEST_TOUCH_FREED(b, pg() << 2);
    CHECK(all_bytes(b, pg() << 2, 0x6b));
    size_t off = 2 * pg() + 100;
    ((volatile unsigned char *)b)[off] = 0;
    rec_reset(&rec);
    again = alloc_until(z, 2, b, kept, &nkept, 256);
    CHECK(again == b);
    CHECK_EQ(rec_count(&rec), 1);
    if (rec_count(&rec) >= 1) {
        CHECK_EQ(rec.r[0].kind, LABYRINTH_REPORT_USE_AFTER_FREE);
        CHECK(rec.r[0].addr == b);
        CHECK_EQ(rec.r[0].offset, off);
        CHECK_EQ(rec.r[0].order, 2);
    }
    if (again)
        CHECK_EQ(labyrinth_free_pages(z, again, 2), 0);
    while (nkept)
        CHECK_EQ(labyrinth_free_pages(z, kept[--nkept], 2), 0);
    CHECK_EQ(stats_of(z).in_use_pages, 0);
    CHECK_EQ(labyrinth_zone_check(z), 0);
    labyrinth_zone_destroy(z);

    /* A custom pattern: writing the default poison byte is a change too;
     * the ZERO quality is still applied to the reported page. */
    c.poison_pattern = 0x5a;
    z = zone_new(&c, &rec);
    p = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0);
    REQUIRE(p != NULL);
    CHECK_EQ(labyrinth_free_pages(z, p, 0), 0);
    TEST_TOUCH_FREED(p, pg());
    CHECK(all_bytes(p, pg(), 0x5a));
    ((volatile unsigned char *)p)[pg() - 1] = 0x6b;
    rec_reset(&rec);
    again = NULL;
    for (;;) {
        void *q = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, LABYRINTH_QUALITY_ZERO);
        if (!q || q == p) {
            again = q;
            break;
        }
        REQUIRE(nkept < 256);
        kept[nkept++] = q;
    }
    CHECK(again == p);
    CHECK_EQ(rec_count(&rec), 1);
    if (rec_count(&rec) >= 1) {
        CHECK_EQ(rec.r[0].kind, LABYRINTH_REPORT_USE_AFTER_FREE);
        CHECK_EQ(rec.r[0].offset, pg() - 1);
    }
    if (again) {
        CHECK(all_bytes(again, pg(), 0));
        CHECK_EQ(labyrinth_free_pages(z, again, 0), 0);
    }
    while (nkept)
        CHECK_EQ(labyrinth_free_pages(z, kept[--nkept], 0), 0);
    CHECK_EQ(labyrinth_zone_check(z), 0);
    labyrinth_zone_destroy(z);
}

int main(void)
{
    test_zero_poison();
    test_cl_align();
    test_zone_quality();
    test_verify();
    return check_done("api_quality");
}
