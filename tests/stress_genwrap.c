/*
 * stress_genwrap.c - issue 11.3: a page's generation never comes round.
 *
 * A remote free is an entry {page, low word of the page's generation} in a
 * batch for the page's owner; the owner refuses an entry whose generation
 * is not the page's current one.  With 32-bit generations an entry that
 * waited while its page came round 2^32 allocations later validated against
 * the new allocation: the page was taken from the application holding it
 * and handed out again (reproduced by tests/open/gen_wrap.c, now this
 * test).  Generations are 64 bits now (src/cache.h, "Generations"): the
 * descriptor carries the low word, gen_hi[] the high word, and a batch
 * stamps the full generation of its first entry.
 *
 * The low word's width is the build's LB_GEN_BITS: 32 in every build but
 * the wrap flavour's 8 (scripts/test.sh), where one round is 256
 * allocations and every test of the suite runs across thousands of them.
 * Here:
 *
 *   stale    (the finding) main owns P; C frees P and lets its cache go;
 *            B frees P too (a racing double free: queued while P is still
 *            allocated) with three legitimate frees of other pages behind
 *            it in the same batch, and waits; main takes P back and cycles
 *            it until it holds P at the same low word k rounds later
 *            (k = 1, 2, 3); B lets go: its stale entry must be refused and
 *            reported (one report, EALREADY), P never handed out while main
 *            holds it, B's three other pages back, the zone consistent;
 *   held     the other side: P allocated, held while main makes m rounds
 *            of allocations (m = 1, 2, 5), then freed by B together with a
 *            page allocated just now (its generation outside the batch's
 *            window: a batch split), in both orders: both must come back,
 *            no report;
 *   torture  (rounds of at most 4096 allocations) two freer threads hold
 *            pages main hands them for random times (some across many
 *            rounds) while main churns: an ownership table checks that no
 *            page main allocates is held, that every page comes back, and
 *            that no report is made.
 *
 * With 32-bit generations (the plain build) only "stale" at k = 1 runs
 * (2^32 allocations, about 30 s unsanitized); the sanitizer builds skip it
 * (minutes), and the wrap flavour covers it.
 */
#define _GNU_SOURCE
#include <labyrinth.h>
#include "cache.h"
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

#define PAGES 1024u
static const uint64_t period = (uint64_t)1 << LB_GEN_BITS;
static int failures;
#define CHECK(c, ...)                                                                                      \
    do {                                                                                                   \
        if (!(c)) {                                                                                        \
            failures++;                                                                                    \
            printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #c);                                           \
            printf(__VA_ARGS__);                                                                           \
            printf("\n");                                                                                  \
        }                                                                                                  \
    } while (0)

static struct labyrinth_zone *Z;
static atomic_int reports, report_err;

static void on_report(const struct labyrinth_report *r, void *a)
{
    (void)a;
    atomic_fetch_add(&reports, 1);
    atomic_store(&report_err, r->err);
}

static struct labyrinth_zone *zone(const char *name)
{
    struct labyrinth_zone_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.name = name;
    cfg.pages = PAGES;
    cfg.flags = LABYRINTH_ZONE_NO_WARDEN; /* no warden: nothing moves pages but these threads */
    struct labyrinth_zone *z = labyrinth_zone_create(&cfg);
    if (!z) {
        printf("zone_create: %s\n", strerror(errno));
        exit(1);
    }
    labyrinth_zone_set_report_handler(z, on_report, NULL);
    atomic_store(&reports, 0);
    return z;
}

/* main's order-0 allocations from its own level: the level's generation. */
static uint64_t count;
static void *alloc1(void)
{
    void *q = labyrinth_alloc_pages(Z, LABYRINTH_GFP_ATOMIC, 0, 0);
    if (q)
        count++;
    return q;
}

/* Allocate until p comes out (pages freed to main come back when its
 * magazines run dry); the others are freed again.  1 if it came. */
static void *held[PAGES];
static int take_back(void *p)
{
    size_t n = 0;
    int got = 0;
    while (n < PAGES) {
        void *q = alloc1();
        if (!q)
            break;
        if (q == p) {
            got = 1;
            break;
        }
        held[n++] = q;
    }
    while (n > 0)
        labyrinth_free_pages(Z, held[--n], 0);
    return got;
}

/* Free and allocate p (held by main) until main's level has made a
 * multiple of period allocations since g, at least `at_least` of them:
 * main holds p at generation g + j * period. */
static void cycle_to(void *p, uint64_t g, uint64_t at_least)
{
    while (count - g < at_least || (count - g) % period != 0) {
        labyrinth_free_pages(Z, p, 0);
        void *q = alloc1();
        if (q != p) { /* not on top (a refill): find it again */
            labyrinth_free_pages(Z, q, 0);
            if (!take_back(p)) {
                printf("cycle_to: p lost\n");
                exit(1);
            }
        }
    }
}

/* Take every free page: 1 if p (held by main) is among them; the pages of
 * want[0..nwant) that come out are marked found.  Frees them again. */
static int drain(void *p, void *const *want, int *found, int nwant)
{
    size_t n = 0;
    int twice = 0;
    while (n < PAGES) {
        void *q = alloc1();
        if (!q)
            break;
        twice |= q == p;
        for (int i = 0; i < nwant; i++)
            found[i] |= q == want[i];
        held[n++] = q;
    }
    while (n > 0)
        labyrinth_free_pages(Z, held[--n], 0);
    return twice;
}

/* ---- stale ---------------------------------------------------------------------- */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int step;
static void wait_step(int s)
{
    pthread_mutex_lock(&mu);
    while (step < s)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
}
static void set_step(int s)
{
    pthread_mutex_lock(&mu);
    step = s;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void *P, *extra[3];
static int rc_b, rc_c, rc_extra[3];

static void *thread_c(void *arg)
{
    (void)arg;
    rc_c = labyrinth_free_pages(Z, P, 0);
    labyrinth_thread_release(Z);
    return NULL;
}
static void *thread_b(void *arg)
{
    (void)arg;
    rc_b = labyrinth_free_pages(Z, P, 0); /* queued: P is allocated */
    for (int i = 0; i < 3; i++)
        rc_extra[i] = labyrinth_free_pages(Z, extra[i], 0);
    set_step(1);
    wait_step(2);
    labyrinth_thread_release(Z); /* the batch, stale entry first, reaches main */
    set_step(3);
    return NULL;
}

static void stale(unsigned k)
{
    Z = zone("genwrap-stale");
    count = 0;
    step = 0;
    P = alloc1();
    uint64_t g = count;
    for (int i = 0; i < 3; i++)
        extra[i] = alloc1();
    pthread_t b, c;
    pthread_create(&b, NULL, thread_b, NULL);
    wait_step(1);
    pthread_create(&c, NULL, thread_c, NULL);
    pthread_join(c, NULL);
    CHECK(rc_b == 0 && rc_c == 0, "the two frees were queued (%d, %d)", rc_b, rc_c);
    if (!take_back(P)) {
        printf("stale: P did not come back\n");
        exit(1);
    }
    cycle_to(P, g, k * period);
    uint64_t made = count - g;
    set_step(2);
    wait_step(3);
    pthread_join(b, NULL);
    int found[3] = {0, 0, 0};
    int twice = drain(P, extra, found, 3);
    long chk = labyrinth_zone_check(Z);
    struct labyrinth_zone_stats st;
    labyrinth_zone_stats(Z, &st);
    printf("stale k=%u: P held at its generation's low word again after %llu allocations; "
           "%d report(s), P %s, extras back %d%d%d, zone_check %ld, in use %llu\n",
           k, (unsigned long long)made, atomic_load(&reports), twice ? "HANDED OUT TWICE" : "not handed out",
           found[0], found[1], found[2], chk, (unsigned long long)st.in_use_pages);
    CHECK(!twice, "P handed out while main holds it");
    CHECK(atomic_load(&reports) == 1 && atomic_load(&report_err) == -EALREADY,
          "the stale entry refused and reported once (%d reports, err %d)", atomic_load(&reports),
          atomic_load(&report_err));
    CHECK(found[0] && found[1] && found[2], "B's legitimate frees came back");
    CHECK(rc_extra[0] == 0 && rc_extra[1] == 0 && rc_extra[2] == 0, "B's frees accepted");
    CHECK(chk == 0, "zone_check %ld", chk);
    CHECK(st.in_use_pages == 1, "only P in use (%llu)", (unsigned long long)st.in_use_pages);
    labyrinth_free_pages(Z, P, 0);
    labyrinth_zone_destroy(Z);
}

/* ---- held ----------------------------------------------------------------------- */

static void *Q;
static int q_first, rc_p, rc_q;
static void *thread_free_pq(void *arg)
{
    (void)arg;
    if (q_first) {
        rc_q = labyrinth_free_pages(Z, Q, 0);
        rc_p = labyrinth_free_pages(Z, P, 0);
    } else {
        rc_p = labyrinth_free_pages(Z, P, 0);
        rc_q = labyrinth_free_pages(Z, Q, 0);
    }
    labyrinth_thread_release(Z);
    return NULL;
}

static void held_long(unsigned m, int qfirst)
{
    Z = zone("genwrap-held");
    count = 0;
    P = alloc1();
    uint64_t g = count;
    /* m rounds of allocations while P is held. */
    while (count - g < m * period + period / 3) {
        void *q = alloc1();
        labyrinth_free_pages(Z, q, 0);
    }
    Q = alloc1();
    q_first = qfirst;
    pthread_t t;
    pthread_create(&t, NULL, thread_free_pq, NULL);
    pthread_join(t, NULL);
    uint64_t across = count - g;
    void *want[2] = {P, Q};
    int found[2] = {0, 0};
    drain(NULL, want, found, 2);
    long chk = labyrinth_zone_check(Z);
    struct labyrinth_zone_stats st;
    labyrinth_zone_stats(Z, &st);
    printf("held m=%u %s: P held across %llu allocations; P back %d, Q back %d, %d report(s), "
           "zone_check %ld, in use %llu\n",
           m, qfirst ? "Q first" : "P first", (unsigned long long)across, found[0], found[1],
           atomic_load(&reports), chk, (unsigned long long)st.in_use_pages);
    CHECK(rc_p == 0 && rc_q == 0, "both frees accepted (%d, %d)", rc_p, rc_q);
    CHECK(found[0] && found[1], "P and Q came back");
    CHECK(atomic_load(&reports) == 0, "no report");
    CHECK(chk == 0 && st.in_use_pages == 0, "zone consistent and empty");
    labyrinth_zone_destroy(Z);
}

/* ---- torture -------------------------------------------------------------------- */

#define FREERS 2
#define HAND 64 /* pages a freer holds at most */
static _Atomic(void *) box[FREERS][HAND]; /* main -> freer: a page to hold */
static atomic_uchar owned[PAGES];        /* page index -> 1 while an application holds it */
static atomic_int stop;
static uintptr_t zlo;
static size_t psize;
static atomic_ullong freed_by[FREERS];

static unsigned page_index(void *p) { return (unsigned)(((uintptr_t)p - zlo) / psize); }

static void *freer(void *arg)
{
    unsigned me = (unsigned)(uintptr_t)arg;
    uint64_t rnd = 0x9e3779b97f4a7c15ull * (me + 1);
    void *mine[HAND];
    unsigned n = 0;
    while (!atomic_load_explicit(&stop, memory_order_relaxed) || n) {
        for (unsigned i = 0; i < HAND && n < HAND; i++) {
            void *p = atomic_exchange_explicit(&box[me][i], NULL, memory_order_acquire);
            if (p)
                mine[n++] = p;
        }
        rnd ^= rnd << 13, rnd ^= rnd >> 7, rnd ^= rnd << 17;
        /* Free one at random, most of the time: some pages stay long. */
        if (n && ((rnd & 7) != 0 || atomic_load_explicit(&stop, memory_order_relaxed))) {
            unsigned j = (unsigned)(rnd >> 8) % n;
            void *p = mine[j];
            mine[j] = mine[--n];
            atomic_store_explicit(&owned[page_index(p)], 0, memory_order_relaxed);
            /* Release order is given by the allocator's own hand-offs;
             * the table is written before the free. */
            int rc = labyrinth_free_pages(Z, p, 0);
            if (rc)
                printf("freer %u: free = %d\n", me, rc), failures++;
            atomic_fetch_add_explicit(&freed_by[me], 1, memory_order_relaxed);
        }
        if ((rnd & 1023) == 0)
            labyrinth_thread_release(Z); /* batches go now; the next free claims again */
    }
    labyrinth_thread_release(Z);
    return NULL;
}

static void torture(uint64_t rounds)
{
    Z = zone("genwrap-torture");
    count = 0;
    psize = labyrinth_page_size(); /* the zone's: the config leaves it 0 (the default) */
    /* The zone's pages are one span (one region, no growth): its lowest
     * address is found by taking them all once. */
    zlo = UINTPTR_MAX;
    {
        size_t n = 0;
        void *q;
        while (n < PAGES && (q = alloc1()))
            held[n++] = q;
        for (size_t i = 0; i < n; i++)
            zlo = (uintptr_t)held[i] < zlo ? (uintptr_t)held[i] : zlo;
        while (n > 0)
            labyrinth_free_pages(Z, held[--n], 0);
    }
    atomic_store(&stop, 0);
    pthread_t t[FREERS];
    for (uintptr_t i = 0; i < FREERS; i++)
        pthread_create(&t[i], NULL, freer, (void *)i);
    uint64_t rnd = 88172645463325252ull, twice = 0, handed = 0, nulls = 0;
    uint64_t target = rounds * period;
    while (count < target) {
        void *p = alloc1();
        if (!p) {
            nulls++; /* pages are with the freers or in flight back */
            continue;
        }
        unsigned i = page_index(p);
        if (i >= PAGES || atomic_exchange_explicit(&owned[i], 1, memory_order_relaxed)) {
            twice++;
            continue;
        }
        rnd ^= rnd << 13, rnd ^= rnd >> 7, rnd ^= rnd << 17;
        if ((rnd & 15) == 0) { /* hand it to a freer */
            unsigned f = (unsigned)(rnd >> 4) % FREERS, s = (unsigned)(rnd >> 8) % HAND;
            void *expect = NULL;
            if (atomic_compare_exchange_strong_explicit(&box[f][s], &expect, p, memory_order_release,
                                                        memory_order_relaxed)) {
                handed++;
                continue;
            }
        }
        atomic_store_explicit(&owned[i], 0, memory_order_relaxed);
        labyrinth_free_pages(Z, p, 0);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < FREERS; i++)
        pthread_join(t[i], NULL);
    /* Leftovers in the boxes: freed here. */
    for (int f = 0; f < FREERS; f++)
        for (int s = 0; s < HAND; s++) {
            void *p = atomic_exchange(&box[f][s], NULL);
            if (p) {
                atomic_store(&owned[page_index(p)], 0);
                labyrinth_free_pages(Z, p, 0);
                atomic_fetch_add(&freed_by[0], 1);
            }
        }
    size_t n = 0;
    void *q;
    while (n < PAGES && (q = alloc1())) {
        twice += atomic_exchange(&owned[page_index(q)], 1) != 0;
        held[n++] = q;
    }
    long chk = labyrinth_zone_check(Z);
    printf("torture: %llu allocations (%llu rounds of %llu), %llu pages handed to freers, %llu freed by "
           "them, %llu NULLs; at the end %zu of %u pages taken, %llu handed out twice, %d report(s), "
           "zone_check %ld\n",
           (unsigned long long)count, (unsigned long long)rounds, (unsigned long long)period,
           (unsigned long long)handed, (unsigned long long)(freed_by[0] + freed_by[1]),
           (unsigned long long)nulls, n, PAGES, (unsigned long long)twice, atomic_load(&reports), chk);
    CHECK(twice == 0, "no page handed out while held");
    CHECK(n == PAGES, "every page came back");
    CHECK(atomic_load(&reports) == 0, "no report");
    CHECK(chk == 0, "zone_check");
    CHECK(handed > 0 && handed == freed_by[0] + freed_by[1], "every handed page freed once");
    while (n > 0)
        labyrinth_free_pages(Z, held[--n], 0);
    for (unsigned i = 0; i < PAGES; i++)
        atomic_store(&owned[i], 0);
    labyrinth_zone_destroy(Z);
}

int main(void)
{
    printf("generation low word: %d bits (a round is %llu allocations)\n", LB_GEN_BITS,
           (unsigned long long)period);
    if (period > 4096) {
        if (SANITIZED) {
            printf("SKIP: a round of 2^%d allocations takes minutes under a sanitizer; "
                   "the wrap flavour (8 bits) runs every case\n", LB_GEN_BITS);
            return 77;
        }
        stale(1);
        return failures ? 1 : 0;
    }
    for (unsigned k = 1; k <= 3; k++)
        stale(k);
    for (unsigned m = 1; m <= 5; m += m == 1 ? 1 : 3)
        for (int qf = 0; qf < 2; qf++)
            held_long(m, qf);
    torture(20000);
    printf("%s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
