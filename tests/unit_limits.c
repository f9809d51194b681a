/*
 * unit_limits.c - the compile-time limits, each reached (docs/design.md,
 * "Limits"):
 *   - the largest region, LB_REGION_MAX_PAGES pages, through the buddy on
 *     a fake region (descriptors only): every page is handed out exactly
 *     once, the last page index included, and LB_NIL is no page index
 *     (KB12: with 2^24 pages, the last page's index was LB_NIL, and
 *     lb_buddy_take lost it as "no block");
 *   (caller memory larger than one region is capped to one region, not
 *   refused; a zone over caller memory touches every page at creation, so
 *   that case needs 64 GiB and is not run here);
 *   - max_threads exceeded: more threads than caches, the extra ones on the
 *     shared path, nothing lost;
 *   - LB_MAX_ZONES live zones: the next creation fails with ENOSPC, and
 *     succeeds again once one is destroyed.
 */
#define _GNU_SOURCE
#include "zone.h"
#include "check.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>

static void test_largest_region(void)
{
    static struct lb_buddy b;
    struct lb_region r;
    const uint32_t span = LB_REGION_MAX_PAGES;
    CHECK(span <= LB_PAGE_ID_INDEX_MASK);
    CHECK(LB_NIL > span - 1); /* no page index is LB_NIL */
    size_t bytes = lb_region_meta_bytes(span, false, false);
    void *meta = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    REQUIRE(meta != MAP_FAILED);
    uint8_t *seen = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    REQUIRE(seen != MAP_FAILED);
    lb_buddy_init(&b, 10);
    /* A fake, never dereferenced base, aligned for max_order. */
    lb_region_init(&r, 0, 12, (uintptr_t)1 << 44, span, 0, span, meta, false, false);
    lb_spin_lock(&b.lock);
    lb_buddy_add_region(&b, &r);
    CHECK_EQ(lb_load_rlx_u64(&b.free_pages), span);
    uint64_t got = 0, twice = 0, last = 0;
    for (;;) {
        struct lb_region *rp;
        uint32_t idx = lb_buddy_take(&b, 0, LB_S_ALLOC, 0, &rp);
        if (idx == LB_NIL)
            break;
        twice += seen[idx]++ != 0;
        last = idx > last ? idx : last;
        got++;
    }
    CHECK_EQ(got, span);
    CHECK_EQ(twice, 0);
    CHECK_EQ(last, span - 1);
    CHECK_EQ(lb_load_rlx_u64(&b.free_pages), 0);
    /* All back: the region coalesces and checks clean. */
    for (uint32_t i = 0; i < span; i++)
        lb_buddy_give(&b, &r, i, 0);
    size_t free_pages = 0;
    CHECK_EQ(lb_buddy_check(&b, &free_pages), 0);
    CHECK_EQ(free_pages, span);
    lb_spin_unlock(&b.lock);
    munmap(meta, bytes);
    munmap(seen, span);
    printf("limits: a region of %u pages handed out whole (last index %llu), none twice\n", span,
           (unsigned long long)last);
}

struct worker {
    struct labyrinth_zone *z;
    int bad;
    pthread_barrier_t *bar;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    void *held[64];
    pthread_barrier_wait(w->bar); /* every thread alive at once */
    for (int round = 0; round < 200; round++) {
        unsigned n = 0;
        for (; n < 64; n++)
            if (!(held[n] = labyrinth_alloc_pages(w->z, LABYRINTH_GFP_ATOMIC, 0, 0)))
                break;
        for (unsigned i = 0; i < n; i++)
            w->bad += labyrinth_free_pages(w->z, held[i], 0) != 0;
    }
    pthread_barrier_wait(w->bar); /* nobody releases before all are done */
    return NULL;
}

static void test_max_threads(void)
{
    struct labyrinth_zone_config c;
    memset(&c, 0, sizeof c);
    c.name = "two-caches";
    c.pages = 2048;
    c.max_threads = 2;
    struct labyrinth_zone *z = labyrinth_zone_create(&c);
    REQUIRE(z != NULL);
    enum { N = 6 };
    pthread_t t[N];
    struct worker w[N];
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, N);
    for (int i = 0; i < N; i++) {
        w[i] = (struct worker){z, 0, &bar};
        REQUIRE(pthread_create(&t[i], NULL, worker_main, &w[i]) == 0);
    }
    int bad = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        bad += w[i].bad;
    }
    pthread_barrier_destroy(&bar);
    CHECK_EQ(bad, 0);
    struct labyrinth_zone_stats s;
    CHECK_EQ(labyrinth_zone_stats(z, &s), 0);
    CHECK_EQ(s.in_use_pages, 0);
    CHECK_EQ(s.threads, 0);
    CHECK_EQ(s.misuse_reports, 0);
    CHECK_EQ(labyrinth_zone_check(z), 0);
    printf("limits: %d threads on a zone of max_threads 2: no free refused, nothing in use after\n", N);
    labyrinth_zone_destroy(z);
}

static void test_zone_count(void)
{
    /* Small zones over caller memory (no warden, no system call). */
    enum { BYTES = 96 * 4096 };
    static struct labyrinth_zone *zs[LB_MAX_ZONES + 1];
    char *pool = mmap(NULL, (size_t)BYTES * (LB_MAX_ZONES + 1), PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    REQUIRE(pool != MAP_FAILED);
    struct labyrinth_zone_config c;
    memset(&c, 0, sizeof c);
    c.name = "many";
    c.memory_bytes = BYTES;
    c.max_threads = 1;
    unsigned made = 0;
    for (unsigned i = 0; i < LB_MAX_ZONES; i++) {
        c.memory = pool + (size_t)i * BYTES;
        zs[i] = labyrinth_zone_create(&c);
        made += zs[i] != NULL;
    }
    CHECK_EQ(made, LB_MAX_ZONES);
    c.memory = pool + (size_t)LB_MAX_ZONES * BYTES;
    errno = 0;
    CHECK(labyrinth_zone_create(&c) == NULL);
    CHECK_EQ(errno, ENOSPC);
    /* One gone: room for one more, and the dead handle stays refused. */
    struct labyrinth_zone *dead = zs[7];
    labyrinth_zone_destroy(dead);
    zs[7] = labyrinth_zone_create(&c);
    CHECK(zs[7] != NULL);
    CHECK(zs[7] != dead); /* a fresh slot, not the one just freed */
    CHECK_EQ(labyrinth_zone_check(dead), -EBADF);
    void *p = zs[7] ? labyrinth_alloc_pages(zs[7], LABYRINTH_GFP_ATOMIC, 0, 0) : NULL;
    CHECK(p != NULL);
    if (p)
        CHECK_EQ(labyrinth_free_pages(zs[7], p, 0), 0);
    for (unsigned i = 0; i < LB_MAX_ZONES; i++)
        labyrinth_zone_destroy(zs[i]);
    munmap(pool, (size_t)BYTES * (LB_MAX_ZONES + 1));
    printf("limits: %u live zones, the next refused with ENOSPC, one more after a destroy\n", made);
}

int main(void)
{
    test_largest_region();
    test_max_threads();
    test_zone_count();
    return check_done("unit_limits");
}
