/*
 * unit_quality.c - layer 6: the cache-line assertion (its failure path can
 * only be reached white-box: real blocks are page aligned), STRICT aborts,
 * ZONE_VERIFY's poison check, and the tracking records read back by
 * lb_page_info_fill.
 */
#define _GNU_SOURCE
#include "check.h"

#include "quality.h"

#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static size_t PG;

/* ---- a report recorder ----------------------------------------------------------------- */

struct rec {
    int n, by_kind[8];
    struct labyrinth_report last;
    char message[256], zone[64];
    int fd; /* >= 0: also write the kind there (from a forked child) */
};

static void record(const struct labyrinth_report *rep, void *arg)
{
    struct rec *r = arg;
    r->n++;
    if ((unsigned)rep->kind < 8)
        r->by_kind[rep->kind]++;
    r->last = *rep;
    snprintf(r->message, sizeof r->message, "%s", rep->message ? rep->message : "");
    snprintf(r->zone, sizeof r->zone, "%s", rep->zone_name ? rep->zone_name : "");
    r->last.message = r->message;
    r->last.zone_name = r->zone;
    if (r->fd >= 0) {
        char k = (char)('0' + rep->kind);
        if (write(r->fd, &k, 1) != 1)
            _exit(3);
    }
}

static struct labyrinth_zone *make_zone(const char *name, unsigned flags, unsigned char poison, struct rec *rec)
{
    struct labyrinth_zone_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.name = name;
    cfg.pages = 256;
    cfg.flags = flags | LABYRINTH_ZONE_NO_WARDEN;
    cfg.poison_pattern = poison;
    struct labyrinth_zone *z = labyrinth_zone_create(&cfg);
    REQUIRE(z != NULL);
    if (rec) {
        memset(rec, 0, sizeof *rec);
        rec->fd = -1;
        REQUIRE(labyrinth_zone_set_report_handler(z, record, rec) == 0);
    }
    return z;
}

static unsigned long long misuse(struct labyrinth_zone *z)
{
    struct labyrinth_zone_stats st;
    REQUIRE(labyrinth_zone_stats(z, &st) == 0);
    return st.misuse_reports;
}

/* ---- CL_ALIGN ------------------------------------------------------------------------------- */

static void test_cl_align(void)
{
    struct rec rec;
    struct labyrinth_zone *z = make_zone("quality", 0, 0, &rec);
    char *p = labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, 0, 0);
    REQUIRE(p != NULL);
    const void *caller = (const void *)(uintptr_t)0x5a5a1230;

    /* Aligned: true, silent. */
    CHECK(lb_quality_assert_cl_align(lb_zone_of(z), p, 0, caller));
    CHECK(lb_quality_assert_cl_align(lb_zone_of(z), p + 64, 0, caller));
    CHECK(lb_quality_assert_cl_align(lb_zone_of(z), p + PG - 64, 0, caller));
    CHECK_EQ(rec.n, 0);
    CHECK_EQ(misuse(z), 0);

    /* A zone page + 8: false, exactly one CL_ALIGN report. */
    CHECK(!lb_quality_assert_cl_align(lb_zone_of(z), p + 8, 0, caller));
    CHECK_EQ(rec.n, 1);
    CHECK_EQ(rec.by_kind[LABYRINTH_REPORT_CL_ALIGN], 1);
    CHECK_EQ(rec.last.kind, LABYRINTH_REPORT_CL_ALIGN);
    CHECK(rec.last.addr == p + 8);
    CHECK_EQ(rec.last.order, 0);
    CHECK(rec.last.caller == caller);
    CHECK_EQ(rec.last.err, 0);
    CHECK(strcmp(rec.zone, "quality") == 0);
    CHECK(strstr(rec.message, "CL_ALIGN") != NULL);
    CHECK_EQ(misuse(z), 1);

    /* Every misalignment within a line, and the order passed through. */
    int bad = 0;
    for (unsigned off = 1; off < 64; off++)
        bad += lb_quality_assert_cl_align(lb_zone_of(z), p + 128 + off, 3, caller);
    CHECK_EQ(bad, 0);
    CHECK_EQ(rec.n, 64);
    CHECK_EQ(rec.last.order, 3);
    CHECK(rec.last.addr == p + 128 + 63);
    CHECK_EQ(misuse(z), 64);

    /* Through lb_quality_apply: CL_ALIGN asks the same question. */
    lb_quality_apply(lb_zone_of(z), p + 16, 0, LABYRINTH_QUALITY_CL_ALIGN, caller, NULL, 0);
    CHECK_EQ(rec.n, 65);
    CHECK(rec.last.addr == p + 16);
    lb_quality_apply(lb_zone_of(z), p, 0, LABYRINTH_QUALITY_CL_ALIGN, caller, NULL, 0);
    CHECK_EQ(rec.n, 65);
    CHECK_EQ(rec.by_kind[LABYRINTH_REPORT_CL_ALIGN], 65);

    CHECK_EQ(labyrinth_free_pages(z, p, 0), 0);
    CHECK_EQ(labyrinth_zone_check(z), 0);
    labyrinth_zone_destroy(z);
}

/* ---- STRICT: the report, then abort() -------------------------------------------------------- */

static void default_signal(int sig)
{
    struct {
        void (*handler)(int);
        unsigned long flags;
        void (*restorer)(void);
        uint64_t mask;
    } ksa;
    memset(&ksa, 0, sizeof ksa);
    ksa.handler = SIG_DFL;
    syscall(SYS_rt_sigaction, sig, &ksa, NULL, 8);
}

/* In a child: assert on a page + off of a STRICT zone the child makes
 * (a zone of the parent is refused in a child of fork(), KB25); reports
 * go to fd.  The wait status and what the handler wrote. */
static int strict_child(size_t off, char *got, size_t n)
{
    int pfd[2];
    REQUIRE(pipe(pfd) == 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        close(pfd[0]);
        default_signal(SIGABRT);
        struct rec crec;
        struct labyrinth_zone *z = make_zone("strict-child", LABYRINTH_ZONE_STRICT, 0, &crec);
        char *p = labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, 0, 0);
        if (!p)
            _exit(4);
        crec.fd = pfd[1];
        bool ok = lb_quality_assert_cl_align(lb_zone_of(z), p + off, 0, NULL);
        _exit(ok ? 0 : 2); /* 2: returned false instead of aborting */
    }
    close(pfd[1]);
    int st = 0;
    REQUIRE(waitpid(pid, &st, 0) == pid);
    ssize_t k = read(pfd[0], got, n - 1);
    got[k > 0 ? k : 0] = 0;
    close(pfd[0]);
    return st;
}

static void test_strict(void)
{
    struct rec rec;
    struct labyrinth_zone *z = make_zone("strict", LABYRINTH_ZONE_STRICT, 0, &rec);
    char *p = labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, 0, 0);
    REQUIRE(p != NULL);
    char got[16];
    /* Control: aligned, the child returns normally, nothing reported. */
    int st = strict_child(0, got, sizeof got);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK_EQ(strlen(got), 0);
    /* Misaligned: one CL_ALIGN report, then SIGABRT. */
    st = strict_child(8, got, sizeof got);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
    if (WIFEXITED(st))
        fprintf(stderr, "strict child exited with %d instead of aborting\n", WEXITSTATUS(st));
    char want[2] = {(char)('0' + LABYRINTH_REPORT_CL_ALIGN), 0};
    CHECK(strcmp(got, want) == 0);
    /* The parent's zone is untouched by the child's misuse. */
    CHECK_EQ(rec.n, 0);
    CHECK_EQ(misuse(z), 0);
    CHECK_EQ(labyrinth_free_pages(z, p, 0), 0);
    labyrinth_zone_destroy(z);
}

/* ---- ZONE_VERIFY ------------------------------------------------------------------------------- */

static int all_bytes(const unsigned char *p, size_t n, unsigned char v)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != v)
            return 0;
    return 1;
}

static void test_verify(void)
{
    struct rec rec;
    struct labyrinth_zone *z = make_zone("verify", LABYRINTH_ZONE_VERIFY, 0, &rec);
    CHECK_EQ(lb_zone_of(z)->poison, 0x6b);
    unsigned char *p = labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, 0, 0);
    REQUIRE(p != NULL);
    CHECK_EQ(rec.n, 0); /* handed out poisoned, as created */
    CHECK_EQ(labyrinth_register_page(z, p), 0);
    const void *caller = (const void *)(uintptr_t)0x1234560;

    lb_verify_poison(lb_zone_of(z), p, 0);
    CHECK(all_bytes(p, PG, 0x6b));
    CHECK(lb_verify_check(lb_zone_of(z), p, 0, caller));
    CHECK_EQ(rec.n, 0);

    /* One byte written at 1234: false, one USE_AFTER_FREE at offset 1234,
     * naming the page's last owner (this thread, by its record). */
    p[1234] = 0;
    CHECK(!lb_verify_check(lb_zone_of(z), p, 0, caller));
    CHECK_EQ(rec.n, 1);
    CHECK_EQ(rec.by_kind[LABYRINTH_REPORT_USE_AFTER_FREE], 1);
    CHECK_EQ(rec.last.kind, LABYRINTH_REPORT_USE_AFTER_FREE);
    CHECK_EQ(rec.last.offset, 1234);
    CHECK(rec.last.addr == p);
    CHECK_EQ(rec.last.order, 0);
    CHECK_EQ(rec.last.thread, labyrinth_thread_id());
    CHECK(rec.last.caller != NULL && rec.last.caller != caller); /* the registering call */
    CHECK(rec.last.site == NULL);
    CHECK(strstr(rec.message, "offset 1234") != NULL);
    CHECK_EQ(misuse(z), 1);
    /* The first bad byte is the one reported. */
    p[1240] = 1;
    CHECK(!lb_verify_check(lb_zone_of(z), p, 0, caller));
    CHECK_EQ(rec.last.offset, 1234);
    p[1234] = 0x6b;
    CHECK(!lb_verify_check(lb_zone_of(z), p, 0, caller));
    CHECK_EQ(rec.last.offset, 1240);
    p[1240] = 0x6b;
    CHECK(lb_verify_check(lb_zone_of(z), p, 0, caller));
    CHECK_EQ(rec.n, 3);
    /* First and last byte. */
    p[0] = 0x6a;
    CHECK(!lb_verify_check(lb_zone_of(z), p, 0, caller));
    CHECK_EQ(rec.last.offset, 0);
    p[0] = 0x6b;
    p[PG - 1] = 0;
    CHECK(!lb_verify_check(lb_zone_of(z), p, 0, caller));
    CHECK_EQ(rec.last.offset, PG - 1);
    p[PG - 1] = 0x6b;
    CHECK_EQ(rec.n, 5);

    /* An order-1 block: offsets count from the block, into its second page. */
    unsigned char *b = labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, 1, 0);
    REQUIRE(b != NULL);
    lb_verify_poison(lb_zone_of(z), b, 1);
    CHECK(all_bytes(b, 2 * PG, 0x6b));
    CHECK(lb_verify_check(lb_zone_of(z), b, 1, caller));
    b[PG + 7] = 0xff;
    CHECK(!lb_verify_check(lb_zone_of(z), b, 1, caller));
    CHECK_EQ(rec.last.offset, PG + 7);
    CHECK_EQ(rec.last.order, 1);
    CHECK(rec.last.addr == b);
    CHECK(rec.last.caller == caller); /* the second page was never tracked */
    CHECK_EQ(rec.n, 6);

    /* Through the public API: a write after free is found when the page is
     * handed out again (LIFO: the same page comes back). */
    CHECK_EQ(labyrinth_free_pages(z, b, 1), 0);
    CHECK_EQ(labyrinth_free_pages(z, p, 0), 0);
    TEST_TOUCH_FREED(p, PG);
    CHECK(all_bytes(p, PG, 0x6b)); /* poisoned on free */
    p[1234] = 0x42;                /* use after free */
    unsigned char *q = labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, 0, 0);
    CHECK(q == p);
    CHECK_EQ(rec.n, 7);
    CHECK_EQ(rec.last.kind, LABYRINTH_REPORT_USE_AFTER_FREE);
    CHECK_EQ(rec.last.offset, 1234);
    CHECK(rec.last.addr == p);
    if (q)
        CHECK_EQ(labyrinth_free_pages(z, q, 0), 0);
    CHECK_EQ(labyrinth_zone_check(z), 0);
    labyrinth_zone_destroy(z);

    /* Another poison byte: writing the poison itself goes unseen, any
     * other byte is found. */
    z = make_zone("verify-a5", LABYRINTH_ZONE_VERIFY, 0xa5, &rec);
    p = labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, 0, 0);
    REQUIRE(p != NULL);
    CHECK(all_bytes(p, PG, 0xa5));
    lb_verify_poison(lb_zone_of(z), p, 0);
    CHECK(all_bytes(p, PG, 0xa5));
    p[1234] = 0xa5;
    CHECK(lb_verify_check(lb_zone_of(z), p, 0, caller));
    p[1234] = 0x6b;
    CHECK(!lb_verify_check(lb_zone_of(z), p, 0, caller));
    CHECK_EQ(rec.last.offset, 1234);
    CHECK_EQ(rec.n, 1);
    CHECK_EQ(labyrinth_free_pages(z, p, 0), 0);
    labyrinth_zone_destroy(z);
}

/* ---- tracking records ---------------------------------------------------------------------------- */

struct tracker {
    struct labyrinth_zone *z;
    struct lb_region *r;
    uint32_t idx;
    uint32_t id;
};

static void *tracker_main(void *arg)
{
    struct tracker *t = arg;
    lb_track_write(lb_zone_of(t->z), t->r, t->idx, (const void *)(uintptr_t)0x777000, NULL, 99);
    t->id = lb_cache_thread_id();
    return NULL;
}

static void test_tracking(void)
{
    struct labyrinth_zone *z = make_zone("track", 0, 0, NULL);
    char *p = labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, 0, 0);
    REQUIRE(p != NULL);
    struct lb_region *r = lb_regmap_lookup(&lb_zone_of(z)->map, (uintptr_t)p);
    REQUIRE(r != NULL && r->track != NULL);
    uint32_t idx = (uint32_t)(((uintptr_t)p - r->base) >> z->page_shift);
    struct labyrinth_page_info info;

    /* Allocated, not tracked: no record is reported. */
    lb_page_info_fill(lb_zone_of(z), r, idx, &info);
    CHECK_EQ(info.state, LABYRINTH_PAGE_IN_USE);
    CHECK(info.block == p);
    CHECK_EQ(info.order, 0);
    CHECK_EQ(info.tracked, 0);
    CHECK(info.caller == NULL && info.site == NULL);

    /* A record, and the descriptor's flag saying it is current. */
    const void *caller = (const void *)(uintptr_t)0x7f0012345678ull; /* 47 bits */
    lb_track_write(lb_zone_of(z), r, idx, caller, NULL, 0xabcdef12u);
    lb_store_rlx_u64(&r->desc[idx], lb_d_make(LB_S_ALLOC, 0, LB_D_TRACKED));
    lb_page_info_fill(lb_zone_of(z), r, idx, &info);
    CHECK_EQ(info.tracked, 1);
    CHECK(info.caller == caller);
    CHECK(info.site == NULL);
    CHECK_EQ(info.thread, labyrinth_thread_id());
    CHECK_EQ(info.tag, 0xcdef12u); /* the low 24 bits */
    CHECK_EQ(info.state, LABYRINTH_PAGE_IN_USE);
    CHECK(info.block == p);
    CHECK_EQ(info.region, 0);
    uint64_t t1 = info.alloc_ns;
    /* The public call reads the same. */
    struct labyrinth_page_info pub;
    CHECK_EQ(labyrinth_page_info(z, p + 100, &pub), 0);
    CHECK(memcmp(&pub, &info, sizeof info) == 0);

    /* Time: monotonic, in ns since the zone's creation. */
    struct timespec ts = {0, 3000000};
    nanosleep(&ts, NULL);
    lb_track_write(lb_zone_of(z), r, idx, caller, NULL, 1);
    lb_page_info_fill(lb_zone_of(z), r, idx, &info);
    uint64_t t2 = info.alloc_ns;
    CHECK(t2 > t1);
    CHECK(t2 - t1 >= 2000000);    /* at least most of the 3 ms slept */
    CHECK(t2 - t1 < 5000000000u); /* and not wildly more */
    CHECK_EQ(info.tag, 1);
    uint64_t prev = t2;
    int bad = 0;
    for (int i = 0; i < 1000; i++) {
        lb_track_write(lb_zone_of(z), r, idx, caller, NULL, (uint32_t)i);
        lb_page_info_fill(lb_zone_of(z), r, idx, &info);
        bad += info.alloc_ns < prev || info.tag != (uint32_t)i;
        prev = info.alloc_ns;
    }
    CHECK_EQ(bad, 0);

    /* Tags: only 24 bits. */
    lb_track_write(lb_zone_of(z), r, idx, caller, NULL, 0xffffffffu);
    lb_page_info_fill(lb_zone_of(z), r, idx, &info);
    CHECK_EQ(info.tag, 0xffffffu);
    lb_track_write(lb_zone_of(z), r, idx, caller, NULL, 0x1000000u);
    lb_page_info_fill(lb_zone_of(z), r, idx, &info);
    CHECK_EQ(info.tag, 0);
    CHECK(info.caller == caller); /* the tag does not spill into the record */

    /* A site instead of a caller. */
    static const struct labyrinth_site site = {"file.c", "func", 42};
    lb_track_write(lb_zone_of(z), r, idx, caller, &site, 7);
    lb_page_info_fill(lb_zone_of(z), r, idx, &info);
    CHECK(info.site == &site);
    CHECK(info.caller == NULL);
    CHECK_EQ(info.tag, 7);
    CHECK_EQ(info.tracked, 1);

    /* Another thread's record carries its id. */
    struct tracker t = {z, r, idx, 0};
    pthread_t th;
    REQUIRE(pthread_create(&th, NULL, tracker_main, &t) == 0);
    pthread_join(th, NULL);
    lb_page_info_fill(lb_zone_of(z), r, idx, &info);
    CHECK(t.id != 0 && t.id != labyrinth_thread_id());
    CHECK_EQ(info.thread, t.id);
    CHECK(info.caller == (const void *)(uintptr_t)0x777000);
    CHECK_EQ(info.tag, 99);

    /* A record on an order-2 block, read from its last page. */
    char *b = labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, 2, 0);
    REQUIRE(b != NULL);
    uint32_t bidx = (uint32_t)(((uintptr_t)b - r->base) >> z->page_shift);
    lb_track_write(lb_zone_of(z), r, bidx, caller, NULL, 0x123456);
    lb_store_rlx_u64(&r->desc[bidx], lb_d_make(LB_S_ALLOC, 2, LB_D_TRACKED));
    lb_page_info_fill(lb_zone_of(z), r, bidx + 3, &info);
    CHECK(info.block == b);
    CHECK_EQ(info.order, 2);
    CHECK_EQ(info.tracked, 1);
    CHECK(info.caller == caller);
    CHECK_EQ(info.tag, 0x123456);

    /* Freed: the record is no longer reported (the flag went with the
     * descriptor's state). */
    CHECK_EQ(labyrinth_free_pages(z, b, 2), 0);
    CHECK_EQ(labyrinth_free_pages(z, p, 0), 0);
    lb_page_info_fill(lb_zone_of(z), r, idx, &info);
    CHECK_EQ(info.tracked, 0);
    CHECK(info.state == LABYRINTH_PAGE_CACHED || info.state == LABYRINTH_PAGE_FREE);
    CHECK(info.caller == NULL);
    lb_page_info_fill(lb_zone_of(z), r, bidx + 1, &info);
    CHECK_EQ(info.tracked, 0);
    /* Free: in the buddy, or held by this level's cache of that order. */
    CHECK(info.state == LABYRINTH_PAGE_FREE || info.state == LABYRINTH_PAGE_CACHED);
    CHECK_EQ(labyrinth_zone_check(z), 0);
    labyrinth_zone_destroy(z);
}

int main(void)
{
    PG = lb_os_page_size();
    test_cl_align();
    test_strict();
    test_verify();
    test_tracking();
    return check_done("unit_quality");
}
