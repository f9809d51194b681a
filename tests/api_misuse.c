/*
 * api_misuse.c - every kind of refused free, with its distinct errno:
 *   NULL (a no-op returning 0), foreign -EFAULT, another zone's page -EXDEV,
 *   misaligned -EINVAL, interior page -ENXIO, double free -EALREADY, wrong
 *   order -ERANGE, no live zone -EBADF;
 * for each: misuse_reports + 1, the report handler called exactly once with
 * the right kind/err/addr/order, nothing changed (page counts, buddy shape,
 * labyrinth_zone_check() == 0), and the legitimately allocated block can
 * still be freed.  Also register_page misuse, and the default handler's
 * line on stderr.  Public header only.
 */
#include "api_util.h"

#include <stdlib.h>
#include <sys/wait.h>

static struct recorder rec;
static struct labyrinth_zone *za, *zb; /* two live zones without warden */

/* One refused free: err returned, one report, nothing changed. */
static void expect_refused(struct labyrinth_zone *z, void *addr, unsigned order, int err, const char *what)
{
    CASE_BEGIN();
    struct labyrinth_zone_stats before = stats_of(z);
    struct labyrinth_zone_stats other0 = stats_of(z == za ? zb : za);
    rec_reset(&rec);
    int rc = labyrinth_free_pages(z, addr, order);
    CHECK_EQ(rc, err);
    struct labyrinth_zone_stats after = stats_of(z);
    CHECK_EQ(after.misuse_reports, before.misuse_reports + 1);
    CHECK_EQ(rec_count(&rec), 1);
    if (rec_count(&rec) >= 1) {
        const struct rec_entry *r = &rec.r[0];
        CHECK_EQ(r->kind, LABYRINTH_REPORT_BAD_FREE);
        CHECK_EQ(r->err, err);
        CHECK(r->addr == addr);
        CHECK_EQ(r->order, order);
        CHECK(strcmp(r->zone_name, labyrinth_zone_name(z)) == 0);
        CHECK(r->message[0] != 0 && strchr(r->message, '\n') == NULL);
    }
    check_same_pages(&before, &after);
    CHECK_EQ(labyrinth_zone_check(z), 0);
    /* The other zone heard nothing of it. */
    struct labyrinth_zone_stats other1 = stats_of(z == za ? zb : za);
    CHECK_EQ(other1.misuse_reports, other0.misuse_reports);
    check_same_pages(&other0, &other1);
    CASE_END(what);
}

/* Same for labyrinth_register_page (kind BAD_ARGS). */
static void expect_register_refused(struct labyrinth_zone *z, void *addr, int err, const char *what)
{
    CASE_BEGIN();
    struct labyrinth_zone_stats before = stats_of(z);
    rec_reset(&rec);
    CHECK_EQ(labyrinth_register_page(z, addr), err);
    CHECK_EQ(rec_count(&rec), 1);
    if (rec_count(&rec) >= 1) {
        CHECK_EQ(rec.r[0].kind, LABYRINTH_REPORT_BAD_ARGS);
        CHECK_EQ(rec.r[0].err, err);
        CHECK(rec.r[0].addr == addr);
    }
    rec_reset(&rec);
    CHECK_EQ(labyrinth_register_page_tag(z, addr, 7), err);
    CHECK_EQ(rec_count(&rec), 1);
    struct labyrinth_zone_stats after = stats_of(z);
    CHECK_EQ(after.misuse_reports, before.misuse_reports + 2);
    check_same_pages(&before, &after);
    CHECK_EQ(labyrinth_zone_check(z), 0);
    CASE_END(what);
}

static void *alloc_ok(struct labyrinth_zone *z, unsigned order)
{
    void *p = labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, order, 0);
    REQUIRE(p != NULL);
    return p;
}

static void free_ok(struct labyrinth_zone *z, void *p, unsigned order)
{
    CHECK_EQ(labyrinth_free_pages(z, p, order), 0);
}

static void test_null(void)
{
    struct labyrinth_zone_stats before = stats_of(za);
    rec_reset(&rec);
    CHECK_EQ(labyrinth_free_pages(za, NULL, 0), 0);
    CHECK_EQ(labyrinth_free_pages(za, NULL, 3), 0);
    CHECK_EQ(labyrinth_free_pages(za, NULL, 1000), 0);
    CHECK_EQ(labyrinth_free_pages(NULL, NULL, 0), 0);
    CHECK_EQ(rec_count(&rec), 0);
    struct labyrinth_zone_stats after = stats_of(za);
    CHECK_EQ(after.misuse_reports, before.misuse_reports);
    check_same_pages(&before, &after);
}

static void test_foreign(void)
{
    void *p = alloc_ok(za, 0);
    int on_stack = 0;
    char *heap = malloc(100);
    void *heap_page = aligned_alloc(pg(), pg());
    static char in_data[8192];
    REQUIRE(heap && heap_page);
    expect_refused(za, &on_stack, 0, -EFAULT, "stack address");
    expect_refused(za, heap, 0, -EFAULT, "malloc'd address");
    expect_refused(za, heap_page, 0, -EFAULT, "page-aligned heap page");
    expect_refused(za, heap_page, 2, -EFAULT, "page-aligned heap page, order 2");
    expect_refused(za, (void *)(((uintptr_t)in_data + pg() - 1) & ~(uintptr_t)(pg() - 1)), 0, -EFAULT,
                   "page in static data");
    expect_refused(za, (void *)(uintptr_t)pg(), 0, -EFAULT, "low address");
    free(heap);
    free(heap_page);

    /* Just outside the zone: find its extent by taking every page. */
    struct labyrinth_zone *z = zone_small("extent", 64, 0, &rec);
    void *pages[64];
    size_t n = 0;
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    while (n < 64 && (pages[n] = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0))) {
        uintptr_t a = (uintptr_t)pages[n++];
        lo = a < lo ? a : lo;
        hi = a > hi ? a : hi;
    }
    REQUIRE(n == 64);
    CHECK_EQ(hi - lo, 63 * pg()); /* one contiguous region */
    for (size_t i = 0; i < n; i++)
        free_ok(z, pages[i], 0);
    struct labyrinth_zone *keep = zb;
    zb = z; /* expect_refused compares against the "other" zone */
    expect_refused(z, (void *)(lo - pg()), 0, -EFAULT, "the page just below the zone");
    expect_refused(z, (void *)(hi + pg()), 0, -EFAULT, "the page just above the zone");
    expect_refused(z, (void *)(lo - 16 * pg()), 0, -EFAULT, "16 pages below the zone");
    expect_refused(z, (void *)(hi + 16 * pg()), 0, -EFAULT, "16 pages above the zone");
    struct labyrinth_page_info info;
    CHECK_EQ(labyrinth_page_info(z, (void *)(hi + pg()), &info), -EFAULT);
    zb = keep;
    CHECK_EQ(labyrinth_zone_check(z), 0);
    labyrinth_zone_destroy(z);
    free_ok(za, p, 0);
}

static void test_other_zone(void)
{
    void *pa = alloc_ok(za, 0);
    void *pb = alloc_ok(zb, 0);
    void *bb = alloc_ok(zb, 3);
    expect_refused(za, pb, 0, -EXDEV, "zone b's page freed to zone a");
    expect_refused(za, bb, 3, -EXDEV, "zone b's order-3 block freed to zone a");
    expect_refused(zb, pa, 0, -EXDEV, "zone a's page freed to zone b");
    expect_refused(za, (char *)bb + pg(), 0, -EXDEV, "zone b's interior page freed to zone a");
    /* A page of zone b that is free right now. */
    free_ok(zb, pb, 0);
    expect_refused(za, pb, 0, -EXDEV, "zone b's free page freed to zone a");
    free_ok(zb, bb, 3);
    free_ok(za, pa, 0);
}

static void test_misaligned(void)
{
    void *p = alloc_ok(za, 0);
    void *b = alloc_ok(za, 2);
    expect_refused(za, (char *)p + 1, 0, -EINVAL, "page + 1");
    expect_refused(za, (char *)p + pg() / 2, 0, -EINVAL, "page + half a page");
    expect_refused(za, (char *)p + pg() - 1, 0, -EINVAL, "page + page_size - 1");
    expect_refused(za, (char *)b + 8, 2, -EINVAL, "order-2 block + 8");
    expect_refused(za, (char *)b + pg() + 64, 2, -EINVAL, "inside the second page of a block");
    free_ok(za, p, 0);
    free_ok(za, b, 2);
}

static void test_interior(void)
{
    void *b = alloc_ok(za, 2);
    void *c = alloc_ok(za, 5);
    expect_refused(za, (char *)b + pg(), 2, -ENXIO, "second page of an order-2 block");
    expect_refused(za, (char *)b + 3 * pg(), 2, -ENXIO, "last page of an order-2 block");
    expect_refused(za, (char *)b + pg(), 0, -ENXIO, "interior page freed as order 0");
    expect_refused(za, (char *)b + 2 * pg(), 1, -ENXIO, "upper half freed as order 1");
    expect_refused(za, (char *)c + 16 * pg(), 4, -ENXIO, "upper half of an order-5 block as order 4");
    expect_refused(za, (char *)c + 31 * pg(), 5, -ENXIO, "last page of an order-5 block");
    free_ok(za, b, 2);
    free_ok(za, c, 5);
}

static void test_double_free(void)
{
    /* Order 0: in the magazine right after the free. */
    void *p = alloc_ok(za, 0);
    free_ok(za, p, 0);
    expect_refused(za, p, 0, -EALREADY, "order-0 double free");
    expect_refused(za, p, 0, -EALREADY, "order-0 triple free");
    /* After the page went through a magazine and came back. */
    void *q = labyrinth_alloc_pages(za, LABYRINTH_GFP_ATOMIC, 0, 0);
    REQUIRE(q != NULL);
    free_ok(za, q, 0);
    expect_refused(za, q, 0, -EALREADY, "order-0 double free after a round trip through a magazine");

    /* Higher orders. */
    for (unsigned order = 1; order <= 6; order++) {
        void *b = alloc_ok(za, order);
        free_ok(za, b, order);
        char what[80];
        snprintf(what, sizeof what, "order-%u double free", order);
        expect_refused(za, b, order, -EALREADY, what);
    }

    /* A block whose buddy is free too: freeing both coalesces them, and a
     * second free of either is still a double free. */
    void *blocks[64];
    size_t n = 0;
    void *lower = NULL, *upper = NULL;
    while (n < 64 && !upper) {
        blocks[n] = alloc_ok(za, 2);
        uintptr_t a = (uintptr_t)blocks[n];
        for (size_t i = 0; i < n; i++) {
            if (((uintptr_t)blocks[i] ^ a) == (pg() << 2)) {
                lower = (uintptr_t)blocks[i] < a ? blocks[i] : blocks[n];
                upper = (uintptr_t)blocks[i] < a ? blocks[n] : blocks[i];
            }
        }
        n++;
    }
    REQUIRE(upper != NULL);
    for (size_t i = 0; i < n; i++)
        if (blocks[i] != lower && blocks[i] != upper)
            free_ok(za, blocks[i], 2);
    free_ok(za, lower, 2);
    free_ok(za, upper, 2);
    struct labyrinth_page_info info;
    CHECK_EQ(labyrinth_page_info(za, upper, &info), 0);
    CHECK(info.state != LABYRINTH_PAGE_IN_USE);
    expect_refused(za, upper, 2, -EALREADY, "double free of an order-2 block merged with its buddy");
    expect_refused(za, lower, 2, -EALREADY, "double free of the lower buddy after merging");

    /* Order-0 pages that went through magazines back to the buddy. */
    struct labyrinth_zone *z = zone_small("merged", 256, 0, &rec);
    void *pages[200];
    for (size_t i = 0; i < 200; i++) {
        pages[i] = labyrinth_alloc_pages(z, LABYRINTH_GFP_NOWAIT, 0, 0);
        REQUIRE(pages[i] != NULL);
    }
    for (size_t i = 0; i < 200; i++)
        free_ok(z, pages[i], 0);
    CHECK_EQ(labyrinth_thread_release(z), 0);
    size_t ealready = 0, other = 0;
    rec_reset(&rec);
    for (size_t i = 0; i < 200; i++) {
        int rc = labyrinth_free_pages(z, pages[i], 0);
        if (rc == -EALREADY)
            ealready++;
        else
            other++;
    }
    CHECK_EQ(ealready, 200);
    CHECK_EQ(other, 0);
    CHECK_EQ(rec_count(&rec), 200);
    CHECK_EQ(stats_of(z).misuse_reports, 200);
    CHECK_EQ(stats_of(z).in_use_pages, 0);
    CHECK_EQ(labyrinth_zone_check(z), 0);
    labyrinth_zone_destroy(z);
}

static void test_wrong_order(void)
{
    void *p = alloc_ok(za, 0);
    void *b = alloc_ok(za, 2);
    expect_refused(za, p, 1, -ERANGE, "order-0 page freed as order 1");
    expect_refused(za, p, 4, -ERANGE, "order-0 page freed as order 4");
    expect_refused(za, b, 1, -ERANGE, "order-2 block freed as order 1 (smaller)");
    expect_refused(za, b, 0, -ERANGE, "order-2 block freed as order 0 (smaller)");
    expect_refused(za, b, 3, -ERANGE, "order-2 block freed as order 3 (larger)");
    expect_refused(za, p, 11, -ERANGE, "order above max_order (11)");
    expect_refused(za, b, LABYRINTH_MAX_ORDER_LIMIT + 1, -ERANGE, "order above the limit");
    expect_refused(za, b, 1000, -ERANGE, "order 1000");
    expect_refused(za, b, ~0u, -ERANGE, "order ~0u");
    free_ok(za, p, 0);
    free_ok(za, b, 2);
}

/* Run fn in a child process (a crash there is a failure, not the end of
 * this test); its exit status is the number of failed checks. */
static void in_child(int (*fn)(void *), void *arg, const char *what)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0)
        _exit(fn(arg));
    int st = 0;
    REQUIRE(waitpid(pid, &st, 0) == pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    if (WIFSIGNALED(st))
        fprintf(stderr, "  ^ %s: killed by signal %d\n", what, WTERMSIG(st));
    else if (WEXITSTATUS(st))
        fprintf(stderr, "  ^ %s: %d failed checks in the child\n", what, WEXITSTATUS(st));
}

/* A block of zeros is not a live zone. */
static int free_to_fake_zone(void *page)
{
    static _Alignas(4096) uint64_t fake[512]; /* zeros, aligned like any handle */
    int f0 = check_failures;
    struct labyrinth_zone *z = (struct labyrinth_zone *)fake;
    CHECK_EQ(labyrinth_free_pages(z, page, 0), -EBADF);
    CHECK_EQ(labyrinth_free_pages(z, page, 2), -EBADF);
    CHECK_EQ(labyrinth_register_page(z, page), -EBADF);
    struct labyrinth_page_info info;
    CHECK_EQ(labyrinth_page_info(z, page, &info), -EBADF);
    return check_failures - f0;
}

/* A destroyed zone (over caller memory, so its handle stays readable): its
 * pages are no longer anyone's to free. */
static int free_to_dead_zone(void *unused)
{
    (void)unused;
    static unsigned char arena[256 * 1024];
    int f0 = check_failures;
    struct labyrinth_zone_config c;
    memset(&c, 0, sizeof c);
    c.name = "dead";
    c.memory = arena;
    c.memory_bytes = sizeof arena;
    struct labyrinth_zone *dead = zone_new(&c, &rec);
    void *dp = labyrinth_alloc_pages(dead, LABYRINTH_GFP_ATOMIC, 0, 0);
    void *db = labyrinth_alloc_pages(dead, LABYRINTH_GFP_ATOMIC, 1, 0);
    REQUIRE(dp != NULL && db != NULL);
    labyrinth_zone_destroy(dead); /* two leaks reported */
    rec_reset(&rec);
    CHECK_EQ(labyrinth_free_pages(dead, dp, 0), -EBADF);
    CHECK_EQ(labyrinth_free_pages(dead, db, 1), -EBADF);
    CHECK_EQ(labyrinth_register_page(dead, dp), -EBADF);
    CHECK_EQ(rec_count(&rec), 0); /* a dead zone's handler is not called */
    return check_failures - f0;
}

static void test_no_zone(void)
{
    void *p = alloc_ok(za, 0);
    struct labyrinth_zone_stats before = stats_of(za);
    rec_reset(&rec);
    struct capture cap;
    char out[4096];
    capture_begin(&cap);
    int rc = labyrinth_free_pages(NULL, p, 0);
    int rc2 = labyrinth_free_pages(NULL, p, 3);
    capture_end(&cap, out, sizeof out);
    CHECK_EQ(rc, -EBADF);
    CHECK_EQ(rc2, -EBADF);
    /* No zone to ask: the default handler wrote one line each. */
    CHECK_EQ(count_lines(out), 2);
    char hex[32];
    snprintf(hex, sizeof hex, "%p", p);
    CHECK(strstr(out, hex) != NULL);
    CHECK_EQ(rec_count(&rec), 0);

    /* The children's stderr (default-handler lines) is shown only when
     * they failed. */
    int f0 = check_failures;
    capture_begin(&cap);
    in_child(free_to_fake_zone, p, "free/register with a zeroed block as zone");
    in_child(free_to_dead_zone, NULL, "free/register with a destroyed zone");
    capture_end(&cap, out, sizeof out);
    if (check_failures != f0)
        fputs(out, stderr);

    /* Zone a never heard of any of it; its page is still in use. */
    struct labyrinth_zone_stats after = stats_of(za);
    CHECK_EQ(after.misuse_reports, before.misuse_reports);
    check_same_pages(&before, &after);
    struct labyrinth_page_info info;
    CHECK_EQ(labyrinth_page_info(za, p, &info), 0);
    CHECK_EQ(info.state, LABYRINTH_PAGE_IN_USE);
    free_ok(za, p, 0);
}

static void test_register(void)
{
    void *p = alloc_ok(za, 0);
    void *b = alloc_ok(za, 2);
    void *pb = alloc_ok(zb, 0);
    int on_stack = 0;
    expect_register_refused(za, &on_stack, -EFAULT, "register a stack address");
    expect_register_refused(za, pb, -EXDEV, "register another zone's page");
    expect_register_refused(za, (char *)p + 8, -EINVAL, "register a misaligned address");
    expect_register_refused(za, (char *)b + pg(), -ENXIO, "register an interior page");
    void *f = alloc_ok(za, 0);
    free_ok(za, f, 0);
    expect_register_refused(za, f, -ENOENT, "register a free page");
    /* The refusals left the good pages untracked and freeable. */
    struct labyrinth_page_info info;
    CHECK_EQ(labyrinth_page_info(za, p, &info), 0);
    CHECK_EQ(info.tracked, 0);
    CHECK_EQ(labyrinth_register_page(za, p), 0);
    CHECK_EQ(labyrinth_register_page(za, b), 0);
    struct capture cap;
    char out[1024];
    capture_begin(&cap);
    CHECK_EQ(labyrinth_register_page(NULL, p), -EBADF);
    capture_end(&cap, out, sizeof out);
    CHECK_EQ(count_lines(out), 1);
    free_ok(za, p, 0);
    free_ok(za, b, 2);
    free_ok(zb, pb, 0);
}

/* With no handler set (or NULL restored), a misuse is one line on stderr
 * naming the zone and the address. */
static void test_default_handler(void)
{
    void *p = alloc_ok(za, 0);
    free_ok(za, p, 0);
    CHECK_EQ(labyrinth_zone_set_report_handler(za, NULL, NULL), 0);
    struct capture cap;
    char out[4096];
    unsigned long long m0 = stats_of(za).misuse_reports;
    capture_begin(&cap);
    int rc = labyrinth_free_pages(za, p, 0);
    capture_end(&cap, out, sizeof out);
    CHECK_EQ(rc, -EALREADY);
    CHECK_EQ(stats_of(za).misuse_reports, m0 + 1);
    CHECK_EQ(count_lines(out), 1);
    char hex[32];
    snprintf(hex, sizeof hex, "%p", p);
    CHECK(strstr(out, hex) != NULL);
    CHECK(strstr(out, labyrinth_zone_name(za)) != NULL);
    REQUIRE(labyrinth_zone_set_report_handler(za, rec_handler, &rec) == 0);
}

int main(void)
{
    za = zone_small("zone-a", 1024, 0, &rec);
    zb = zone_small("zone-b", 1024, 0, &rec);
    struct labyrinth_zone_stats a0 = stats_of(za);

    test_null();
    test_foreign();
    test_other_zone();
    test_misaligned();
    test_interior();
    test_double_free();
    test_wrong_order();
    test_no_zone();
    test_register();
    test_default_handler();

    /* Everything handed out went back; the zones are whole. */
    struct labyrinth_zone_stats a1 = stats_of(za), b1 = stats_of(zb);
    CHECK_EQ(a1.in_use_pages, 0);
    CHECK_EQ(a1.free_pages, a0.total_pages);
    CHECK_EQ(b1.in_use_pages, 0);
    CHECK_EQ(labyrinth_zone_check(za), 0);
    CHECK_EQ(labyrinth_zone_check(zb), 0);
    labyrinth_zone_destroy(za);
    labyrinth_zone_destroy(zb);
    return check_done("api_misuse");
}
