/*
 * api_tracking.c - tracking: QUALITY_TRACK and labyrinth_register_page[_tag]
 * record the caller, the thread (labyrinth_thread_id), the tag and an
 * increasing time; labyrinth_page_info on every page of a block; the seed's
 * macro records file/line/function and applies every quality flag; a
 * NO_TRACKING zone refuses register (-EOPNOTSUPP) and the macro still gives
 * a page; the leak report at destroy (handler and default line);
 * labyrinth_zone_for_each_in_use.  Public header only.
 */
#include "api_util.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

static struct recorder rec;

#define SENTINEL 12345
#define FN_SPAN 4096 /* a caller address lies this close after its function */

static int in_fn(const void *caller, void (*fn)(void))
{
    const char *f = (const char *)(uintptr_t)fn;
    return (const char *)caller >= f && (const char *)caller < f + FN_SPAN;
}

static struct labyrinth_zone *tz; /* the zone the call sites below use */

/* Call sites in functions of their own; the barrier after each call keeps
 * it a call (no tail call), so the return address lies inside. */
#define NO_TAIL_CALL() __asm__ __volatile__("" ::: "memory")

__attribute__((noinline)) static void *alloc_site_a(void)
{
    void *p = labyrinth_alloc_pages(tz, LABYRINTH_GFP_ATOMIC, 0, LABYRINTH_QUALITY_TRACK);
    NO_TAIL_CALL();
    return p;
}

__attribute__((noinline)) static void *alloc_site_b(unsigned order)
{
    void *p = labyrinth_alloc_pages(tz, LABYRINTH_GFP_KERNEL, order, LABYRINTH_QUALITY_TRACK);
    NO_TAIL_CALL();
    return p;
}

__attribute__((noinline)) static int register_site(void *p)
{
    int rc = labyrinth_register_page(tz, p);
    NO_TAIL_CALL();
    return rc;
}

static struct labyrinth_page_info info_of(struct labyrinth_zone *z, const void *p)
{
    struct labyrinth_page_info info;
    memset(&info, 0xee, sizeof info);
    CHECK_EQ(labyrinth_page_info(z, p, &info), 0);
    return info;
}

struct thread_arg {
    struct labyrinth_zone *z;
    void *page;     /* in: a page to register; out: a page allocated */
    uint32_t id, id2;
    int rc;
};

static void *other_thread(void *arg)
{
    struct thread_arg *a = arg;
    a->id = labyrinth_thread_id();
    a->id2 = labyrinth_thread_id();
    a->rc = labyrinth_register_page_tag(a->z, a->page, 0x77);
    a->page = labyrinth_alloc_pages(a->z, LABYRINTH_GFP_NOWAIT, 0, LABYRINTH_QUALITY_TRACK);
    return NULL;
}

/* A zone with a warden: records take the warden's clock, which is never
 * ahead of the real time, never goes back, and moves on. */
static void test_coarse_clock(void)
{
    struct labyrinth_zone_config c;
    memset(&c, 0, sizeof c);
    c.name = "clock";
    c.pages = 256;
    c.warden_interval_us = 1000;
    uint64_t t_create = now_ns();
    struct labyrinth_zone *z = labyrinth_zone_create(&c);
    REQUIRE(z != NULL);
    void *p[64];
    uint64_t last = 0;
    for (int i = 0; i < 64; i++) {
        p[i] = labyrinth_void_allocpage_gfpatomic_extra_quality(z, 0);
        REQUIRE(p[i] != NULL);
        struct labyrinth_page_info pi;
        REQUIRE(labyrinth_page_info(z, p[i], &pi) == 0);
        CHECK(pi.site != NULL);
        CHECK(pi.alloc_ns >= last);               /* never goes back */
        CHECK(pi.alloc_ns <= now_ns() - t_create); /* never ahead */
        last = pi.alloc_ns;
        if (i == 31) {
            /* The clock moves on: a page allocated later, while the warden
             * keeps running, shows a later time (within 5 s). */
            uint64_t t0 = now_ns();
            bool moved = false;
            while (!moved && now_ns() - t0 < 5000000000ull) {
                sleep_ms(3);
                void *probe = labyrinth_void_allocpage_gfpatomic_extra_quality(z, 0);
                REQUIRE(probe != NULL);
                struct labyrinth_page_info pp;
                REQUIRE(labyrinth_page_info(z, probe, &pp) == 0);
                moved = pp.alloc_ns > last;
                CHECK(pp.alloc_ns >= last);
                CHECK_EQ(labyrinth_free_pages(z, probe, 0), 0);
            }
            CHECK(moved);
        }
    }
    for (int i = 0; i < 64; i++)
        CHECK_EQ(labyrinth_free_pages(z, p[i], 0), 0);
    labyrinth_zone_destroy(z);
}

/* Zones created in a row (the counter calibrated once per process, so a
 * zone is created well inside the clock's first unit): no record of the
 * macro's, read at once, is ahead of the real time since the zone's
 * creation.  The warden's first tick stored 1 unit (1.024 ms) when the
 * clock still read 0: 98 of 200 zones had a record ahead (the review of
 * KB20).  100 zones, 100 pages each, the first ones read as the warden
 * starts. */
static void test_first_tick(void)
{
    struct labyrinth_zone_config c;
    memset(&c, 0, sizeof c);
    c.name = "tick";
    c.pages = 256;
    c.warden_interval_us = 100;
    unsigned ahead = 0, zones = 100, pages = 0;
    uint64_t most = 0;
    for (unsigned k = 0; k < zones; k++) {
        uint64_t t0 = now_ns();
        struct labyrinth_zone *z = labyrinth_zone_create(&c);
        REQUIRE(z != NULL);
        for (int i = 0; i < 100; i++) {
            void *p = labyrinth_void_allocpage_gfpatomic_extra_quality(z, 0);
            REQUIRE(p != NULL);
            struct labyrinth_page_info pi;
            REQUIRE(labyrinth_page_info(z, p, &pi) == 0);
            uint64_t el = now_ns() - t0;
            pages++;
            if (pi.alloc_ns > el) {
                ahead++;
                most = pi.alloc_ns - el > most ? pi.alloc_ns - el : most;
            }
            CHECK_EQ(labyrinth_free_pages(z, p, 0), 0);
        }
        labyrinth_zone_destroy(z);
    }
    if (ahead)
        fprintf(stderr, "FAIL first tick: %u of %u records ahead of the real time (most %llu ns)\n", ahead, pages,
                (unsigned long long)most);
    CHECK(ahead == 0);
}

static void test_track_and_register(void)
{
    struct labyrinth_zone_config c;
    memset(&c, 0, sizeof c);
    c.name = "track";
    c.pages = 512;
    /* No warden: records read the cycle counter (exact), so the 20 ms
     * below shows.  With a warden they read its coarse clock (checked in
     * test_coarse_clock). */
    c.flags = LABYRINTH_ZONE_NO_WARDEN;
    uint64_t t_create = now_ns();
    tz = zone_new(&c, &rec);
    uint32_t me = labyrinth_thread_id();
    CHECK(me != 0);
    CHECK_EQ(labyrinth_thread_id(), me);

    /* TRACK: caller, thread, time. */
    void *a1 = alloc_site_a();
    void *a2 = alloc_site_a();
    uint64_t t_b = now_ns();
    void *b = alloc_site_b(3);
    REQUIRE(a1 && a2 && b);
    struct labyrinth_page_info i1 = info_of(tz, a1), i2 = info_of(tz, a2), ib = info_of(tz, b);
    CHECK_EQ(i1.tracked, 1);
    CHECK_EQ(i1.state, LABYRINTH_PAGE_IN_USE);
    CHECK(i1.block == a1);
    CHECK_EQ(i1.order, 0);
    CHECK(i1.site == NULL);
    CHECK(in_fn(i1.caller, (void (*)(void))alloc_site_a));
    CHECK(i1.caller == i2.caller); /* the same call site */
    CHECK(in_fn(ib.caller, (void (*)(void))alloc_site_b));
    CHECK(ib.caller != i1.caller);
    CHECK_EQ(i1.thread, tracked_id(me));
    CHECK_EQ(ib.thread, tracked_id(me));
    CHECK_EQ(i1.tag, 0);
    CHECK(i2.alloc_ns >= i1.alloc_ns);
    CHECK(ib.alloc_ns >= i2.alloc_ns);
    CHECK(i1.alloc_ns <= now_ns() - t_create);
    sleep_ms(20);
    void *a3 = alloc_site_a();
    uint64_t t_a3 = now_ns();
    REQUIRE(a3 != NULL);
    struct labyrinth_page_info i3 = info_of(tz, a3);
    CHECK(i3.alloc_ns > ib.alloc_ns);
    CHECK(i3.alloc_ns - ib.alloc_ns >= 15u * 1000000u);
    /* Not ahead of the real clock between the two calls (the calibration is
     * an upper bound of cycles per ms: 1/1024 of slack, and 1 ms of rounding). */
    CHECK(i3.alloc_ns - ib.alloc_ns <= (t_a3 - t_b) + (t_a3 - t_b) / 512 + 1000000u);

    /* Every page of the order-3 block, and bytes inside them. */
    for (unsigned i = 0; i < 8; i++) {
        struct labyrinth_page_info pi = info_of(tz, (char *)b + i * pg() + (i * 37) % pg());
        CHECK(pi.block == b);
        CHECK_EQ(pi.order, 3);
        CHECK_EQ(pi.state, LABYRINTH_PAGE_IN_USE);
        CHECK_EQ(pi.tracked, 1);
        CHECK(pi.caller == ib.caller);
        CHECK_EQ(pi.region, ib.region);
    }

    /* register_page: an untracked page becomes tracked; a tag; replacing. */
    void *u = labyrinth_alloc_pages(tz, LABYRINTH_GFP_NOWAIT, 0, 0);
    REQUIRE(u != NULL);
    CHECK_EQ(info_of(tz, u).tracked, 0);
    CHECK_EQ(register_site(u), 0);
    struct labyrinth_page_info iu = info_of(tz, u);
    CHECK_EQ(iu.tracked, 1);
    CHECK(in_fn(iu.caller, (void (*)(void))register_site));
    CHECK_EQ(iu.thread, tracked_id(me));
    CHECK_EQ(iu.tag, 0);
    CHECK_EQ(labyrinth_register_page_tag(tz, u, 0xabcdef12u), 0);
    iu = info_of(tz, u);
    CHECK_EQ(iu.tag, 0xcdef12u); /* low 24 bits */
    CHECK(iu.alloc_ns >= i3.alloc_ns);
    CHECK_EQ(labyrinth_register_page_tag(tz, u, 5), 0);
    CHECK_EQ(info_of(tz, u).tag, 5);
    CHECK_EQ(labyrinth_register_page_tag(tz, b, 0x123456), 0);
    for (unsigned i = 0; i < 8; i++)
        CHECK_EQ(info_of(tz, (char *)b + i * pg()).tag, 0x123456);

    /* Another thread: its own id, recorded by its register and its TRACK. */
    void *v = labyrinth_alloc_pages(tz, LABYRINTH_GFP_NOWAIT, 0, 0);
    REQUIRE(v != NULL);
    struct thread_arg ta = {tz, v, 0, 0, -1};
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, other_thread, &ta) == 0);
    pthread_join(t, NULL);
    CHECK(ta.id != 0 && ta.id != me);
    CHECK_EQ(ta.id2, ta.id);
    CHECK_EQ(ta.rc, 0);
    struct labyrinth_page_info iv = info_of(tz, v);
    CHECK_EQ(iv.thread, tracked_id(ta.id));
    CHECK_EQ(iv.tag, 0x77);
    REQUIRE(ta.page != NULL);
    CHECK_EQ(info_of(tz, ta.page).thread, tracked_id(ta.id));

    /* A record describes the current allocation only. */
    CHECK_EQ(labyrinth_free_pages(tz, u, 0), 0);
    struct labyrinth_page_info fu = info_of(tz, u);
    CHECK(fu.state != LABYRINTH_PAGE_IN_USE);
    CHECK_EQ(fu.tracked, 0);
    void *w = NULL;
    for (int i = 0; i < 64 && w != u; i++) {
        w = labyrinth_alloc_pages(tz, LABYRINTH_GFP_NOWAIT, 0, 0);
        REQUIRE(w != NULL);
        if (w != u)
            CHECK_EQ(labyrinth_free_pages(tz, w, 0), 0);
    }
    if (w == u) {
        CHECK_EQ(info_of(tz, u).tracked, 0);
        CHECK_EQ(labyrinth_free_pages(tz, u, 0), 0);
    }
    /* A freed block: no longer in use, no record. */
    CHECK_EQ(labyrinth_free_pages(tz, b, 3), 0);
    struct labyrinth_page_info fb = info_of(tz, (char *)b + 5 * pg());
    /* Free: in the buddy, or held by this thread's cache of that order. */
    CHECK(fb.state == LABYRINTH_PAGE_FREE || fb.state == LABYRINTH_PAGE_CACHED);
    CHECK_EQ(fb.tracked, 0);
    CHECK((char *)fb.block <= (char *)b);
    CHECK((char *)fb.block + (pg() << fb.order) >= (char *)b + (pg() << 3));

    CHECK_EQ(labyrinth_free_pages(tz, a1, 0), 0);
    CHECK_EQ(labyrinth_free_pages(tz, a2, 0), 0);
    CHECK_EQ(labyrinth_free_pages(tz, a3, 0), 0);
    CHECK_EQ(labyrinth_free_pages(tz, v, 0), 0);
    CHECK_EQ(labyrinth_free_pages(tz, ta.page, 0), 0);
    CHECK_EQ(stats_of(tz).misuse_reports, 0);
    CHECK_EQ(labyrinth_zone_check(tz), 0);
    labyrinth_zone_destroy(tz);
    tz = NULL;
}

static void test_page_info_errors(void)
{
    struct labyrinth_zone *z = zone_small("pi-a", 64, 0, &rec);
    struct labyrinth_zone *y = zone_small("pi-b", 64, 0, &rec);
    void *p = labyrinth_alloc_pages(y, LABYRINTH_GFP_ATOMIC, 0, 0);
    REQUIRE(p != NULL);
    struct labyrinth_page_info info;
    int local = 0;
    CHECK_EQ(labyrinth_page_info(z, &local, &info), -EFAULT);
    CHECK_EQ(labyrinth_page_info(z, p, &info), -EXDEV);
    CHECK_EQ(labyrinth_page_info(NULL, p, &info), -EBADF);
    CHECK_EQ(labyrinth_page_info(y, p, NULL), -EINVAL);
    CHECK_EQ(labyrinth_free_pages(y, p, 0), 0);
    labyrinth_zone_destroy(z);
    labyrinth_zone_destroy(y);
}

static void test_macro(void)
{
    struct labyrinth_zone_config c;
    memset(&c, 0, sizeof c);
    c.name = "macro";
    c.pages = 128;
    c.poison_pattern = 0x99;
    c.flags = LABYRINTH_ZONE_NO_WARDEN;
    struct labyrinth_zone *z = zone_new(&c, &rec);
    rec_reset(&rec);
    unsigned long long atomic0 = stats_of(z).atomic_allocs;

    /* The call site, on the macro's line. */
    void *p = labyrinth_void_allocpage_gfpatomic_extra_quality(z, 0); const unsigned line = __LINE__;
    REQUIRE(p != NULL);
    struct labyrinth_page_info ip = info_of(z, p);
    CHECK_EQ(ip.tracked, 1);
    CHECK_EQ(ip.order, 0);
    CHECK_EQ(ip.state, LABYRINTH_PAGE_IN_USE);
    CHECK_EQ(ip.thread, tracked_id(labyrinth_thread_id()));
    REQUIRE(ip.site != NULL);
    CHECK(strcmp(ip.site->file, __FILE__) == 0);
    CHECK(strcmp(ip.site->func, __func__) == 0);
    CHECK_EQ(ip.site->line, line);
    CHECK_EQ(stats_of(z).atomic_allocs, atomic0 + 1);

    /* One call site, one site record; another line, another. */
    const struct labyrinth_site *sites[2] = {NULL, NULL};
    void *q[2];
    for (int i = 0; i < 2; i++) {
        q[i] = labyrinth_void_allocpage_gfpatomic_extra_quality(z, LABYRINTH_QUALITY_TRACK);
        REQUIRE(q[i] != NULL);
        sites[i] = info_of(z, q[i]).site;
    }
    CHECK(sites[0] != NULL && sites[0] == sites[1]);
    CHECK(sites[0] != ip.site);
    CHECK(sites[0] && sites[0]->line != line);

    /* Every quality flag, on a dirtied page. */
    struct {
        unsigned q;
        int fill; /* -1: not checked */
    } cases[] = {
        {LABYRINTH_QUALITY_ZERO, 0},
        {LABYRINTH_QUALITY_POISON, 0x99},
        {LABYRINTH_QUALITY_ZERO | LABYRINTH_QUALITY_POISON, 0},
        {LABYRINTH_QUALITY_CL_ALIGN, -1},
        {LABYRINTH_QUALITY_TRACK, -1},
        {LABYRINTH_QUALITY_ALL, 0},
    };
    for (unsigned i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CASE_BEGIN();
        void *d[16];
        for (int j = 0; j < 16; j++) {
            d[j] = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0);
            REQUIRE(d[j] != NULL);
            memset(d[j], 0xd1, pg());
        }
        for (int j = 0; j < 16; j++)
            CHECK_EQ(labyrinth_free_pages(z, d[j], 0), 0);
        void *m = labyrinth_void_allocpage_gfpatomic_extra_quality(z, cases[i].q);
        CHECK(m != NULL);
        if (m) {
            if (cases[i].fill >= 0)
                CHECK(all_bytes(m, pg(), (unsigned char)cases[i].fill));
            struct labyrinth_page_info im = info_of(z, m);
            CHECK_EQ(im.tracked, 1);
            CHECK(im.site != NULL && strcmp(im.site->file, __FILE__) == 0);
            CHECK_EQ(labyrinth_free_pages(z, m, 0), 0);
        }
        char what[48];
        snprintf(what, sizeof what, "macro with quality %#x", cases[i].q);
        CASE_END(what);
    }
    CHECK_EQ(rec_count(&rec), 0); /* CL_ALIGN held: no report */

    /* Unknown quality bits: NULL, a BAD_ARGS report, errno untouched. */
    errno = SENTINEL;
    void *bad = labyrinth_void_allocpage_gfpatomic_extra_quality(z, LABYRINTH_QUALITY_ALL + 1);
    CHECK(bad == NULL);
    CHECK_EQ(errno, SENTINEL);
    CHECK_EQ(rec_count(&rec), 1);
    CHECK_EQ(rec.r[0].kind, LABYRINTH_REPORT_BAD_ARGS);
    CHECK_EQ(rec.r[0].err, -EINVAL);

    /* Spent: NULL, counted as an ATOMIC failure, errno untouched. */
    void *all[128];
    size_t n = 0;
    while (n < 128 && (all[n] = labyrinth_void_allocpage_gfpatomic_extra_quality(z, 0)))
        n++;
    CHECK_EQ(n + 3, 128); /* p and q[0..1] are still out */
    unsigned long long f0 = stats_of(z).atomic_failures;
    errno = SENTINEL;
    CHECK(labyrinth_void_allocpage_gfpatomic_extra_quality(z, 0) == NULL);
    CHECK_EQ(errno, SENTINEL);
    CHECK_EQ(stats_of(z).atomic_failures, f0 + 1);
    for (size_t i = 0; i < n; i++)
        CHECK_EQ(labyrinth_free_pages(z, all[i], 0), 0);
    CHECK_EQ(labyrinth_free_pages(z, p, 0), 0);
    CHECK_EQ(labyrinth_free_pages(z, q[0], 0), 0);
    CHECK_EQ(labyrinth_free_pages(z, q[1], 0), 0);
    CHECK_EQ(labyrinth_zone_check(z), 0);
    labyrinth_zone_destroy(z);
}

static void test_no_tracking(void)
{
    struct labyrinth_zone *z = zone_small("notrack", 64, LABYRINTH_ZONE_NO_TRACKING, &rec);
    void *p = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0);
    REQUIRE(p != NULL);
    CHECK_EQ(labyrinth_register_page(z, p), -EOPNOTSUPP);
    CHECK_EQ(labyrinth_register_page_tag(z, p, 1), -EOPNOTSUPP);
    CHECK_EQ(info_of(z, p).tracked, 0);

    /* The macro still returns a page, unregistered, any quality flags. */
    rec_reset(&rec);
    static const unsigned qs[] = {0, LABYRINTH_QUALITY_ZERO, LABYRINTH_QUALITY_TRACK, LABYRINTH_QUALITY_ALL};
    for (unsigned i = 0; i < 4; i++) {
        CASE_BEGIN();
        void *m = labyrinth_void_allocpage_gfpatomic_extra_quality(z, qs[i]);
        CHECK(m != NULL);
        if (m) {
            struct labyrinth_page_info im = info_of(z, m);
            CHECK_EQ(im.tracked, 0);
            CHECK(im.site == NULL);
            CHECK_EQ(im.state, LABYRINTH_PAGE_IN_USE);
            CHECK_EQ(labyrinth_free_pages(z, m, 0), 0);
        }
        char what[64];
        snprintf(what, sizeof what, "macro in a NO_TRACKING zone, quality %#x", qs[i]);
        CASE_END(what);
    }
    CHECK_EQ(rec_count(&rec), 0);

    /* alloc_pages with TRACK: refused with EOPNOTSUPP and a report. */
    rec_reset(&rec);
    errno = 0;
    CHECK(labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, 0, LABYRINTH_QUALITY_TRACK) == NULL);
    CHECK_EQ(errno, EOPNOTSUPP);
    errno = SENTINEL;
    CHECK(labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 1, LABYRINTH_QUALITY_TRACK) == NULL);
    CHECK_EQ(errno, SENTINEL);
    CHECK_EQ(rec_count(&rec), 2);
    CHECK_EQ(rec.r[0].err, -EOPNOTSUPP);
    CHECK_EQ(labyrinth_free_pages(z, p, 0), 0);
    CHECK_EQ(labyrinth_zone_check(z), 0);
    labyrinth_zone_destroy(z);
}

/* ---- for_each_in_use ------------------------------------------------------ */

struct walk {
    int stop_after; /* return non-zero at this visit (1-based); 0 = never */
    int n;
    struct labyrinth_page_info seen[32];
};

static int walk_fn(const struct labyrinth_page_info *info, void *arg)
{
    struct walk *w = arg;
    if (w->n < 32)
        w->seen[w->n] = *info;
    w->n++;
    return w->stop_after && w->n >= w->stop_after;
}

static void test_for_each(void)
{
    struct labyrinth_zone *z = zone_small("walk", 256, 0, &rec);
    struct walk w;
    memset(&w, 0, sizeof w);
    CHECK_EQ(labyrinth_zone_for_each_in_use(z, walk_fn, &w), 0);
    CHECK_EQ(w.n, 0);

    static const unsigned orders[] = {0, 3, 0, 1, 2, 0, 4};
    enum { NB = sizeof orders / sizeof orders[0] };
    void *b[NB];
    for (unsigned i = 0; i < NB; i++) {
        b[i] = labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, orders[i], i % 2 ? LABYRINTH_QUALITY_TRACK : 0);
        REQUIRE(b[i] != NULL);
    }
    /* One allocated and freed: not visited. */
    void *gone = labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, 1, 0);
    REQUIRE(gone != NULL);
    CHECK_EQ(labyrinth_free_pages(z, gone, 1), 0);

    memset(&w, 0, sizeof w);
    CHECK_EQ(labyrinth_zone_for_each_in_use(z, walk_fn, &w), NB);
    CHECK_EQ(w.n, NB);
    for (int i = 0; i < w.n && i < 32; i++) {
        if (i > 0)
            CHECK((uintptr_t)w.seen[i].block > (uintptr_t)w.seen[i - 1].block); /* address order */
        CHECK_EQ(w.seen[i].state, LABYRINTH_PAGE_IN_USE);
        int found = 0;
        for (unsigned j = 0; j < NB; j++) {
            if (w.seen[i].block == b[j]) {
                found++;
                CHECK_EQ(w.seen[i].order, orders[j]);
                CHECK_EQ(w.seen[i].tracked, (int)(j % 2));
            }
        }
        CHECK_EQ(found, 1);
    }
    /* Early stop. */
    memset(&w, 0, sizeof w);
    w.stop_after = 1;
    CHECK_EQ(labyrinth_zone_for_each_in_use(z, walk_fn, &w), 1);
    CHECK_EQ(w.n, 1);
    memset(&w, 0, sizeof w);
    w.stop_after = 3;
    CHECK_EQ(labyrinth_zone_for_each_in_use(z, walk_fn, &w), 3);
    CHECK_EQ(w.n, 3);

    for (unsigned i = 0; i < NB; i++)
        CHECK_EQ(labyrinth_free_pages(z, b[i], orders[i]), 0);
    memset(&w, 0, sizeof w);
    CHECK_EQ(labyrinth_zone_for_each_in_use(z, walk_fn, &w), 0);
    CHECK_EQ(w.n, 0);
    labyrinth_zone_destroy(z);
}

/* ---- leaks at destroy ----------------------------------------------------- */

static unsigned leak_line;

__attribute__((noinline)) static void *leak_tracked(struct labyrinth_zone *z)
{
    void *p = labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, 2, LABYRINTH_QUALITY_TRACK);
    NO_TAIL_CALL();
    return p;
}

static void test_leaks(void)
{
    struct labyrinth_zone *z = zone_small("leaky", 128, 0, &rec);
    void *a = labyrinth_void_allocpage_gfpatomic_extra_quality(z, 0); leak_line = __LINE__;
    void *b = leak_tracked(z);
    void *c = labyrinth_alloc_pages(z, LABYRINTH_GFP_NOWAIT, 0, 0); /* untracked */
    void *d = labyrinth_alloc_pages(z, LABYRINTH_GFP_NOWAIT, 1, 0);
    void *e = labyrinth_alloc_pages(z, LABYRINTH_GFP_NOWAIT, 0, LABYRINTH_QUALITY_TRACK);
    REQUIRE(a && b && c && d && e);
    CHECK_EQ(labyrinth_register_page_tag(z, d, 42), 0);
    CHECK_EQ(labyrinth_free_pages(z, e, 0), 0); /* freed: no leak */
    rec_reset(&rec);
    labyrinth_zone_destroy(z);

    CHECK_EQ(rec_count_kind(&rec, LABYRINTH_REPORT_LEAK), 4);
    for (int i = 0; i < rec_count(&rec) && i < REC_MAX; i++) /* leaks are not misuse */
        CHECK(rec.r[i].kind == LABYRINTH_REPORT_LEAK || rec.r[i].kind == LABYRINTH_REPORT_NOTICE);
    int seen_a = 0, seen_b = 0, seen_c = 0, seen_d = 0;
    for (int i = 0; i < rec_count(&rec) && i < REC_MAX; i++) {
        const struct rec_entry *r = &rec.r[i];
        if (r->kind != LABYRINTH_REPORT_LEAK)
            continue;
        CHECK(strcmp(r->zone_name, "leaky") == 0);
        CHECK(r->addr != e);
        if (r->addr == a) {
            seen_a++;
            CHECK_EQ(r->order, 0);
            CHECK(r->site != NULL);
            if (r->site) {
                CHECK_EQ(r->site->line, leak_line);
                CHECK(strcmp(r->site->file, __FILE__) == 0);
                CHECK(strcmp(r->site->func, "test_leaks") == 0);
            }
            CHECK_EQ(r->thread, tracked_id(labyrinth_thread_id()));
        } else if (r->addr == b) {
            seen_b++;
            CHECK_EQ(r->order, 2);
            CHECK(in_fn(r->caller, (void (*)(void))leak_tracked));
            CHECK_EQ(r->thread, tracked_id(labyrinth_thread_id()));
        } else if (r->addr == c) {
            seen_c++;
            CHECK(r->site == NULL);
            CHECK(r->caller == NULL);
        } else if (r->addr == d) {
            seen_d++;
            CHECK_EQ(r->order, 1);
            CHECK(r->caller != NULL);
        }
    }
    CHECK_EQ(seen_a, 1);
    CHECK_EQ(seen_b, 1);
    CHECK_EQ(seen_c, 1);
    CHECK_EQ(seen_d, 1);

    /* The default handler: one line per leak, the macro's site in it. */
    z = zone_small("leaky2", 64, 0, NULL);
    a = labyrinth_void_allocpage_gfpatomic_extra_quality(z, 0); leak_line = __LINE__;
    REQUIRE(a != NULL);
    struct capture cap;
    char out[4096];
    capture_begin(&cap);
    labyrinth_zone_destroy(z);
    capture_end(&cap, out, sizeof out);
    char hex[32], where[256];
    snprintf(hex, sizeof hex, "%p", a);
    snprintf(where, sizeof where, "%s:%u", __FILE__, leak_line);
    CHECK(strstr(out, hex) != NULL);
    CHECK(strstr(out, where) != NULL);
    CHECK(strstr(out, "leaky2") != NULL);
    CHECK(count_lines(out) >= 1);
}

int main(void)
{
    test_track_and_register();
    test_coarse_clock();
    test_first_tick();
    test_page_info_errors();
    test_macro();
    test_no_tracking();
    test_for_each();
    test_leaks();
    return check_done("api_tracking");
}
