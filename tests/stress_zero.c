/*
 * stress_zero.c - the zeroed stock (issue 12 target 6) under threads.
 *
 * In three zones with a warden - a plain one, a VERIFY one and one whose
 * quality is ZERO - four threads make ZERO allocations (plain call in
 * every mode, and the seed's macro) and plain ones, hold a few pages,
 * write garbage into every page before it is freed, and free half of
 * them through another thread (a shared queue).  Before the threads start
 * every page of the zone is dirtied and given back to the buddy, so that
 * the warden clears dirty pages from the first run on.  Checked:
 *   - every page received from a ZERO allocation is all zeros (a stock
 *     page the warden did not clear, or one written while in the stock,
 *     is a failure);
 *   - an ownership table: no page is handed out twice;
 *   - the stock was used (hits), the hit rate is printed;
 *   - at the end one thread drains the zone whole, half of it by ZERO
 *     requests (the stock's pages are taken too): every page, zeroed
 *     where asked; labyrinth_zone_check is 0 before and after, and the
 *     statistics add up (free == total, in use 0).
 * No use-after-free report is expected in the VERIFY zone: the garbage is
 * written while the page is held.
 *
 * LB_STRESS_SECONDS sets each zone's run (default 1).
 */
#define _GNU_SOURCE
#include "check.h"

#include <labyrinth.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#define THREADS 4
#define HOLD    24
#define PAGES   1024

static struct labyrinth_zone *Z;
static unsigned Zquality;
static uintptr_t base;
static size_t npages, ps;
static unsigned char own[PAGES * 2];
static int stop;
static unsigned long long nonzero, twice, zero_got, reports;

static pthread_mutex_t q_lock = PTHREAD_MUTEX_INITIALIZER;
static void *queue[64];
static unsigned q_n;

static void on_report(const struct labyrinth_report *r, void *arg)
{
    (void)arg;
    __atomic_fetch_add(&reports, 1, __ATOMIC_RELAXED);
    fprintf(stderr, "report: %s\n", r->message);
}

static size_t idx_of(void *p)
{
    size_t i = ((uintptr_t)p - base) / ps;
    REQUIRE((uintptr_t)p >= base && i < npages);
    return i;
}

/* First non-zero byte's offset, or -1. */
static long first_nonzero(const void *p)
{
    const uint64_t *w = p;
    for (size_t i = 0; i < ps / 8; i++)
        if (w[i]) {
            const unsigned char *c = p;
            size_t o = i * 8;
            while (!c[o])
                o++;
            return (long)o;
        }
    return -1;
}

static void received(void *p, bool zero)
{
    if (__atomic_exchange_n(&own[idx_of(p)], 1, __ATOMIC_ACQ_REL)) {
        __atomic_fetch_add(&twice, 1, __ATOMIC_RELAXED);
        fprintf(stderr, "FAIL: page %p handed out twice\n", p);
    }
    if (zero) {
        __atomic_fetch_add(&zero_got, 1, __ATOMIC_RELAXED);
        long o = first_nonzero(p);
        if (o >= 0 && __atomic_fetch_add(&nonzero, 1, __ATOMIC_RELAXED) < 5)
            fprintf(stderr, "FAIL: ZERO page %p has byte %#x at offset %ld\n", p, ((unsigned char *)p)[o], o);
    }
}

static void release(void *p, unsigned seed)
{
    memset(p, 0x80 | (seed & 0x7f), ps); /* garbage: the next owner must not see it */
    __atomic_store_n(&own[idx_of(p)], 0, __ATOMIC_RELEASE);
    CHECK_EQ(labyrinth_free_pages(Z, p, 0), 0);
}

static unsigned rnd(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return *s >> 8;
}

static void *worker(void *arg)
{
    unsigned s = (unsigned)(uintptr_t)arg * 7919u + 1;
    void *held[HOLD];
    unsigned n = 0;
    static const unsigned modes[3] = {LABYRINTH_GFP_ATOMIC, LABYRINTH_GFP_NOWAIT, LABYRINTH_GFP_KERNEL};
    while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
        unsigned r = rnd(&s);
        if (n < HOLD && (r & 3) != 0) {
            void *p;
            bool zero = (r >> 2) & 1;
            if (zero && ((r >> 3) & 3) == 0)
                p = labyrinth_void_allocpage_gfpatomic_extra_quality(Z, LABYRINTH_QUALITY_ZERO);
            else
                p = labyrinth_alloc_pages(Z, modes[(r >> 5) % 3], 0, zero ? LABYRINTH_QUALITY_ZERO : 0);
            if (p) {
                received(p, zero || (Zquality & LABYRINTH_QUALITY_ZERO));
                held[n++] = p;
            }
        } else if (n) {
            unsigned i = r % n;
            void *p = held[i];
            held[i] = held[--n];
            if ((r >> 4) & 1) {
                pthread_mutex_lock(&q_lock);
                if (q_n < sizeof queue / sizeof queue[0]) {
                    memset(p, 0x55, ps);
                    queue[q_n++] = p;
                    p = NULL;
                }
                pthread_mutex_unlock(&q_lock);
            }
            if (p)
                release(p, r);
        }
        /* Someone else's page, freed here (cross-thread). */
        if ((r & 7) == 0) {
            void *q = NULL;
            pthread_mutex_lock(&q_lock);
            if (q_n)
                q = queue[--q_n];
            pthread_mutex_unlock(&q_lock);
            if (q)
                release(q, r >> 3);
        }
    }
    while (n)
        release(held[--n], s);
    return NULL;
}

/* Take every page (ATOMIC: the reserve too): the first half alternately
 * by ZERO and plain requests, the rest by plain ones only, which must
 * take the stock's pages too (none is stranded there while a request
 * fails).  A NULL is retried for a while (the warden may hold the buddy
 * lock). */
static size_t drain(void **all, size_t cap)
{
    size_t got = 0;
    for (int misses = 0; got < cap && misses < 50;) {
        bool zero = got < npages / 2 && (got & 1);
        void *p = labyrinth_alloc_pages(Z, LABYRINTH_GFP_ATOMIC, 0, zero ? LABYRINTH_QUALITY_ZERO : 0);
        if (!p) {
            misses++;
            usleep(1000);
            continue;
        }
        received(p, zero || (Zquality & LABYRINTH_QUALITY_ZERO));
        all[got++] = p;
    }
    return got;
}

static void run_zone(const char *name, unsigned flags, unsigned quality, double seconds)
{
    struct labyrinth_zone_config cfg = {0};
    cfg.name = name;
    cfg.pages = PAGES;
    cfg.flags = flags;
    cfg.quality = quality;
    cfg.warden_interval_us = 1000;
    Z = labyrinth_zone_create(&cfg);
    REQUIRE(Z != NULL);
    Zquality = quality;
    CHECK_EQ(labyrinth_zone_set_report_handler(Z, on_report, NULL), 0);
    struct labyrinth_region_info ri;
    REQUIRE(labyrinth_zone_region_info(Z, 0, &ri) == 0);
    base = (uintptr_t)ri.start;
    npages = ri.pages;
    ps = labyrinth_page_size();
    REQUIRE(npages <= sizeof own);
    memset(own, 0, sizeof own);
    nonzero = twice = zero_got = reports = 0;
    stop = 0;
    q_n = 0;

    /* Every page dirty, and back in the buddy (plain requests: in a zone
     * whose quality is ZERO they are zeroed as they come). */
    void **all = calloc(npages + 1, sizeof *all);
    REQUIRE(all != NULL);
    size_t n = 0;
    void *p;
    while (n < npages && (p = labyrinth_alloc_pages(Z, LABYRINTH_GFP_KERNEL, 0, 0)))
        all[n++] = p;
    for (size_t i = 0; i < n; i++)
        memset(all[i], 0xa5, ps);
    for (size_t i = 0; i < n; i++)
        CHECK_EQ(labyrinth_free_pages(Z, all[i], 0), 0);
    CHECK_EQ(labyrinth_thread_release(Z), 0);
    CHECK(labyrinth_zone_shrink(Z) >= 0);

    pthread_t t[THREADS];
    for (uintptr_t i = 0; i < THREADS; i++)
        REQUIRE(pthread_create(&t[i], NULL, worker, (void *)(i + 1)) == 0);
    struct timespec ts = {(time_t)seconds, (long)((seconds - (time_t)seconds) * 1e9)};
    nanosleep(&ts, NULL);
    __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    while (q_n)
        release(queue[--q_n], 3);
    /* Our outbox batches for the workers' levels go back too. */
    CHECK_EQ(labyrinth_thread_release(Z), 0);

    struct labyrinth_zero_stock_stats zs;
    CHECK_EQ(labyrinth_zone_zero_stock(Z, &zs), 0);
    printf("%s: %llu ZERO pages received; stock: %llu hits, %llu misses (hit rate %.1f%%), %llu cleared, "
           "%zu in stock, target %zu of %zu\n",
           name, zero_got, zs.hits, zs.misses, 100.0 * (double)zs.hits / (double)(zs.hits + zs.misses + !(zs.hits + zs.misses)),
           zs.cleared_pages, zs.stock_pages, zs.target_pages, zs.max_pages);
    CHECK(zs.hits > 0);
    CHECK(zs.cleared_pages > 0);
    CHECK(zs.target_pages <= zs.max_pages);
    CHECK_EQ(labyrinth_zone_check(Z), 0);

    /* The whole zone, from this thread (the workers' caches went back at
     * their exit). */
    n = drain(all, npages + 1);
    CHECK_EQ(n, npages);
    struct labyrinth_zone_stats st;
    CHECK_EQ(labyrinth_zone_stats(Z, &st), 0);
    CHECK_EQ(labyrinth_zone_zero_stock(Z, &zs), 0);
    if (n != npages)
        fprintf(stderr, "drain: %zu of %zu; buddy %zu cached %zu depot %zu reserve %zu in flight %zu stock %zu\n", n,
                npages, st.buddy_free_pages, st.cached_pages, st.depot_pages, st.reserve_free_pages,
                st.in_flight_pages, zs.stock_pages);
    CHECK_EQ(st.in_use_pages, npages);
    CHECK_EQ(st.free_pages, 0);
    CHECK_EQ(labyrinth_zone_check(Z), 0);
    for (size_t i = 0; i < n; i++)
        release(all[i], 9);
    CHECK_EQ(labyrinth_zone_stats(Z, &st), 0);
    CHECK_EQ(st.free_pages, st.total_pages);
    CHECK_EQ(st.in_use_pages, 0);
    CHECK_EQ(st.buddy_free_pages + st.cached_pages + st.reserve_free_pages + st.in_flight_pages, st.total_pages);
    CHECK_EQ(labyrinth_zone_check(Z), 0);
    CHECK_EQ(nonzero, 0);
    CHECK_EQ(twice, 0);
    CHECK_EQ(reports, 0);
    free(all);
    labyrinth_zone_destroy(Z);
}

int main(void)
{
    const char *e = getenv("LB_STRESS_SECONDS");
    double seconds = e ? atof(e) : 1.0;
    run_zone("zero-plain", 0, 0, seconds);
    run_zone("zero-verify", LABYRINTH_ZONE_VERIFY, 0, seconds);
    run_zone("zero-quality", 0, LABYRINTH_QUALITY_ZERO, seconds);
    return check_done("stress_zero");
}
