/*
 * api_util.h - shared helpers of the black-box tests (tests/api_*.c): public
 * header only.  A report recorder (an async-signal-safe report handler that
 * keeps copies of what it was told), zone creation that REQUIREs success,
 * stats snapshots and comparisons, and a stderr capture for the default
 * report handler.
 */
#ifndef LB_TEST_API_UTIL_H
#define LB_TEST_API_UTIL_H

#include <labyrinth.h>

#include "check.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define REC_MAX 256

struct rec_entry {
    enum labyrinth_report_kind kind;
    int err;
    const void *addr;
    unsigned order;
    size_t offset;
    const void *caller;
    const struct labyrinth_site *site;
    uint32_t thread;
    char zone_name[64];
    char message[256];
};

/* Counts every report; keeps the first REC_MAX. */
struct recorder {
    int n;
    struct rec_entry r[REC_MAX];
};

static void rec_copy(char *dst, size_t cap, const char *src)
{
    size_t i = 0;
    if (src)
        for (; src[i] && i + 1 < cap; i++)
            dst[i] = src[i];
    dst[i] = 0;
}

/* The report handler: async-signal-safe (no locks, no allocation). */
static void rec_handler(const struct labyrinth_report *rep, void *arg)
{
    struct recorder *rec = arg;
    int i = __atomic_fetch_add(&rec->n, 1, __ATOMIC_RELAXED);
    if (i >= REC_MAX)
        return;
    struct rec_entry *e = &rec->r[i];
    e->kind = rep->kind;
    e->err = rep->err;
    e->addr = rep->addr;
    e->order = rep->order;
    e->offset = rep->offset;
    e->caller = rep->caller;
    e->site = rep->site;
    e->thread = rep->thread;
    rec_copy(e->zone_name, sizeof e->zone_name, rep->zone_name);
    rec_copy(e->message, sizeof e->message, rep->message);
}

static int rec_count(const struct recorder *rec) { return __atomic_load_n(&rec->n, __ATOMIC_RELAXED); }

static void rec_reset(struct recorder *rec) { __atomic_store_n(&rec->n, 0, __ATOMIC_RELAXED); }

/* Reports of one kind recorded so far. */
static int rec_count_kind(const struct recorder *rec, enum labyrinth_report_kind kind)
{
    int n = rec_count(rec), c = 0;
    for (int i = 0; i < n && i < REC_MAX; i++)
        c += rec->r[i].kind == kind;
    return c;
}

static size_t pg(void) { return labyrinth_page_size(); }

/* Create a zone or stop the test; attach rec (if any) as report handler. */
static struct labyrinth_zone *zone_new(const struct labyrinth_zone_config *cfg, struct recorder *rec)
{
    struct labyrinth_zone *z = labyrinth_zone_create(cfg);
    if (!z)
        fprintf(stderr, "labyrinth_zone_create: %s\n", labyrinth_strerror(errno));
    REQUIRE(z != NULL);
    if (rec)
        REQUIRE(labyrinth_zone_set_report_handler(z, rec_handler, rec) == 0);
    return z;
}

/* A small zone without a warden (nothing moves behind the test's back). */
static struct labyrinth_zone *zone_small(const char *name, size_t pages, unsigned flags, struct recorder *rec)
{
    struct labyrinth_zone_config c;
    memset(&c, 0, sizeof c);
    c.name = name;
    c.pages = pages;
    c.flags = flags | LABYRINTH_ZONE_NO_WARDEN;
    return zone_new(&c, rec);
}

static struct labyrinth_zone_stats stats_of(struct labyrinth_zone *z)
{
    struct labyrinth_zone_stats s;
    memset(&s, 0, sizeof s);
    REQUIRE(labyrinth_zone_stats(z, &s) == 0);
    return s;
}

/* The page counts and the buddy's shape are identical. */
static void check_same_pages(const struct labyrinth_zone_stats *a, const struct labyrinth_zone_stats *b)
{
    CHECK_EQ(a->total_pages, b->total_pages);
    CHECK_EQ(a->free_pages, b->free_pages);
    CHECK_EQ(a->in_use_pages, b->in_use_pages);
    CHECK_EQ(a->reserve_free_pages, b->reserve_free_pages);
    CHECK_EQ(a->buddy_free_pages, b->buddy_free_pages);
    CHECK_EQ(a->cached_pages, b->cached_pages);
    CHECK_EQ(a->frees, b->frees);
    CHECK_EQ(a->atomic_allocs, b->atomic_allocs);
    CHECK_EQ(a->nowait_allocs, b->nowait_allocs);
    CHECK_EQ(a->kernel_allocs, b->kernel_allocs);
    CHECK_EQ(a->largest_free_order, b->largest_free_order);
    for (unsigned i = 0; i <= LABYRINTH_MAX_ORDER_LIMIT; i++)
        CHECK_EQ(a->free_blocks[i], b->free_blocks[i]);
}

/* total == free + in_use, and free is buddy + cached + reserve. */
static void check_conservation(struct labyrinth_zone *z)
{
    struct labyrinth_zone_stats s = stats_of(z);
    CHECK_EQ(s.total_pages, s.free_pages + s.in_use_pages);
    CHECK_EQ(s.free_pages, s.buddy_free_pages + s.cached_pages + s.reserve_free_pages);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Take with NOWAIT every page a zone will give up to `cap`, into pages[].
 * With a warden, a NULL can come while the warden has pages in its hands
 * (moving them between the buddy and the lock-free supply: the header's
 * "pages in a mover's hands" limit, long under TSan or valgrind), so a NULL
 * while the statistics still show more free than the reserve is retried
 * after 1 ms, for at most 5 s.  Returns how many were taken. */
static size_t drain_nowait(struct labyrinth_zone *z, void **pages, size_t cap)
{
    size_t n = 0;
    for (unsigned waits = 0; n < cap;) {
        if ((pages[n] = labyrinth_alloc_pages(z, LABYRINTH_GFP_NOWAIT, 0, 0))) {
            n++;
            continue;
        }
        struct labyrinth_zone_stats s = stats_of(z);
        if (s.free_pages <= s.reserve_free_pages || waits++ >= 5000)
            break;
        sleep_ms(1);
    }
    return n;
}

/* Does every byte of [p, p+n) equal v? */
static int all_bytes(const void *p, size_t n, unsigned char v)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i] != v)
            return 0;
    return 1;
}

/* ---- capturing what the default report handler writes to fd 2 ---------- */

struct capture {
    int saved;
    FILE *tmp;
};

static void capture_begin(struct capture *c)
{
    fflush(stderr);
    c->tmp = tmpfile();
    REQUIRE(c->tmp != NULL);
    c->saved = dup(2);
    REQUIRE(c->saved >= 0);
    REQUIRE(dup2(fileno(c->tmp), 2) == 2);
}

/* Restore fd 2; the captured text (NUL-terminated, truncated) in buf. */
static size_t capture_end(struct capture *c, char *buf, size_t cap)
{
    fflush(stderr);
    REQUIRE(dup2(c->saved, 2) == 2);
    close(c->saved);
    rewind(c->tmp);
    size_t n = fread(buf, 1, cap - 1, c->tmp);
    buf[n] = 0;
    fclose(c->tmp);
    return n;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* Report the case a group of checks belongs to when one of them failed. */
#define CASE_BEGIN() int case_failures_ = check_failures
#define CASE_END(what)                                                                       \
    do {                                                                                     \
        if (check_failures != case_failures_)                                                \
            fprintf(stderr, "  ^ in case: %s\n", (what));                                    \
    } while (0)

/* Callbacks that do nothing: a for_each_in_use walker and a report
 * handler that keeps reports off stderr (api_fork, api_deadzone). */
static inline int each_fn(const struct labyrinth_page_info *info, void *arg)
{
    (void)info;
    (void)arg;
    return 0;
}

static inline void quiet_fn(const struct labyrinth_report *rep, void *arg)
{
    (void)rep;
    (void)arg;
}

#endif
