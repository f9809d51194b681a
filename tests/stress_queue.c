/*
 * stress_queue.c - remote frees with no magazine left go through the
 * pages' own queue links (issue 11, deliver 2): hunted with racing double
 * frees, an ownership table and the zone check.
 *
 * Before the queue, such a free took the page back with a CAS on its
 * descriptor, which raced with the owner's own plain free of the same
 * page: both "won", the page went to the buddy and to the owner's
 * magazine, and labyrinth_zone_check counted 3 to 15 violations (a later
 * allocation could crash in the buddy's lists).  On b4bc389 phase 1 failed
 * at round 2879 and phase 2 at round 383 (tests/open/cas_fallback_*.c).
 *
 * Phase 1 ("natural"): a zone with max_threads 1; the owner (this thread)
 * allocates a page and frees it at the same moment as up to two other
 * threads past max_threads (no level: batches of one until the pool is
 * dry, then the queue).  Phase 2 ("pool"): a default zone with a warden; a burst
 * freed by another thread parks the magazine pool in the owner's inbox,
 * then the same racing frees.  Phase 3 ("owners"): two owners (two thread
 * caches) and a thread past max_threads; each round's page comes from
 * either owner and is freed by a random set of the three at once, so
 * pages move between levels with stale queue entries behind them (the
 * forwarding case).
 *
 * Checked in every round: at least one of the racing frees returned 0 (a
 * page is never lost to refusals), and every refusal is EALREADY; every
 * allocation is stamped in an ownership table by CAS (a page handed out
 * while the table says it is held fails at once); after every round in
 * which two frees returned 0, labyrinth_zone_check is 0.  At the end of
 * each phase: the queue was used (remote_cas_fallbacks > 0), the zone
 * check is 0, and every page can be allocated again; over the three
 * phases, frees went through the queue (whether a given phase dries the
 * pool is timing: under TSan the pool phase may not).  Each phase runs
 * LB_QUEUE_SECONDS (default 1.5).
 */
#define _GNU_SOURCE
#include <labyrinth.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <time.h>
#include "check.h"

#define MAXP 8192

static struct labyrinth_zone *Z;
static uintptr_t Zlo;
static size_t Zpg;
static unsigned char held[MAXP]; /* the ownership table: 1 while handed out */

/* Round protocol: the coordinator publishes a page and a mask of freers;
 * each helper whose bit is set frees it and posts its result. */
static void *volatile victim;
static unsigned volatile round_no, mask;
static unsigned volatile done_no[3];
static int volatile rcs[3];
static int volatile quit;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}
static void quiet(const struct labyrinth_report *r, void *a) { (void)r; (void)a; }

static size_t slot(void *p)
{
    size_t i = ((uintptr_t)p - Zlo) / Zpg;
    return i < MAXP ? i : MAXP - 1;
}
/* A page handed out: the table must say it was free. */
static void take(void *p)
{
    unsigned char zero = 0;
    if (!__atomic_compare_exchange_n(&held[slot(p)], &zero, 1, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        fprintf(stderr, "FAIL: page %p handed out while it is held\n", p);
        CHECK(0);
        exit(1);
    }
}
static void give(void *p) { __atomic_store_n(&held[slot(p)], 0, __ATOMIC_RELEASE); }

/* Helper k (1 or 2) frees the round's page when its bit is set. */
static void *helper(void *arg)
{
    unsigned k = (unsigned)(uintptr_t)arg, seen = 0;
    while (!__atomic_load_n(&quit, __ATOMIC_ACQUIRE)) {
        unsigned r = __atomic_load_n(&round_no, __ATOMIC_ACQUIRE);
        if (r == seen) {
            sched_yield(); /* 2 vCPUs, 3 to 4 threads: let the others run */
            continue;
        }
        seen = r;
        if (__atomic_load_n(&mask, __ATOMIC_RELAXED) & (1u << k))
            rcs[k] = labyrinth_free_pages(Z, victim, 0);
        __atomic_store_n(&done_no[k], r, __ATOMIC_RELEASE);
    }
    return NULL;
}

/* Owner 2 of phase 3: allocates a page for the round when asked. */
static void *volatile o2_page;
static unsigned volatile o2_req, o2_done;
static void *owner2(void *arg)
{
    (void)arg;
    unsigned seen = 0;
    while (!__atomic_load_n(&quit, __ATOMIC_ACQUIRE)) {
        unsigned r = __atomic_load_n(&o2_req, __ATOMIC_ACQUIRE);
        if (r == seen) {
            sched_yield();
            continue;
        }
        seen = r;
        void *p = labyrinth_alloc_pages(Z, LABYRINTH_GFP_ATOMIC, 0, 0);
        if (p)
            take(p);
        o2_page = p;
        __atomic_store_n(&o2_done, r, __ATOMIC_RELEASE);
    }
    return NULL;
}

static unsigned long long queued_total;

static void end_of_phase(const char *name, unsigned long rounds, unsigned long both, unsigned long pairs)
{
    struct labyrinth_zone_stats s;
    CHECK_EQ(labyrinth_zone_check(Z), 0);
    labyrinth_zone_stats(Z, &s);
    printf("%s: %lu rounds, %lu racing pairs, %lu with two frees 0; queued frees %llu, "
           "misuse reports %llu\n", name, rounds, pairs, both, (unsigned long long)s.remote_cas_fallbacks,
           (unsigned long long)s.misuse_reports);
    /* Whether the pool ran dry is timing: the queue must have been used
     * in some phase (checked at the end), else the test tested nothing. */
    queued_total += s.remote_cas_fallbacks;
    /* Every page can be had again (nothing lost, nothing held twice). */
    size_t total = s.total_pages, got = 0;
    void **all = calloc(total + 1, sizeof *all);
    REQUIRE(all != NULL);
    for (int tries = 0; tries < 4 && got < total; tries++) {
        void *p;
        while (got < total && (p = labyrinth_alloc_pages(Z, LABYRINTH_GFP_ATOMIC, 0, 0))) {
            take(p);
            all[got++] = p;
        }
    }
    CHECK_EQ(got, total);
    for (size_t i = 0; i < got; i++) {
        give(all[i]);
        CHECK_EQ(labyrinth_free_pages(Z, all[i], 0), 0);
    }
    free(all);
    CHECK_EQ(labyrinth_zone_check(Z), 0);
}

static unsigned long last_rounds, last_both, last_pairs;

/* Rounds: the page comes from alloc_round(); freers is a mask of {0 = us,
 * 1, 2}. */
static void run_rounds(const char *name, double secs, bool two_owners)
{
    unsigned long rounds = 0, both = 0, pairs = 0;
    unsigned seed = 12345;
    double end = now() + secs;
    while (now() < end) {
        seed = seed * 1103515245u + 12345u;
        void *p;
        if (two_owners && (seed >> 16) & 1) {
            unsigned r = __atomic_load_n(&o2_req, __ATOMIC_RELAXED) + 1;
            __atomic_store_n(&o2_req, r, __ATOMIC_RELEASE);
            while (__atomic_load_n(&o2_done, __ATOMIC_ACQUIRE) != r)
                sched_yield();
            p = o2_page;
        } else {
            p = labyrinth_alloc_pages(Z, LABYRINTH_GFP_ATOMIC, 0, 0);
            if (p)
                take(p);
        }
        if (!p) {
            printf("%s: ATOMIC NULL at round %lu\n", name, rounds);
            CHECK(p != NULL);
            break;
        }
        unsigned m = 1u + (seed >> 20) % 7u; /* a non-empty subset of 3 freers */
        int n = __builtin_popcount(m);
        pairs += n > 1;
        give(p); /* from here the page may be handed out again */
        victim = p;
        mask = m;
        ++rounds;
        unsigned r = __atomic_load_n(&round_no, __ATOMIC_RELAXED) + 1; /* we are its only writer */
        __atomic_store_n(&round_no, r, __ATOMIC_RELEASE);
        for (volatile unsigned i = 0; i < (seed >> 8) % 64u; i++)
            ;
        int rc0 = (m & 1) ? labyrinth_free_pages(Z, p, 0) : -1;
        for (unsigned k = 1; k < 3; k++)
            while (__atomic_load_n(&done_no[k], __ATOMIC_ACQUIRE) != r)
                sched_yield();
        int res[3] = {rc0, rcs[1], rcs[2]}, zeros = 0;
        for (unsigned k = 0; k < 3; k++) {
            if (!(m & (1u << k)))
                continue;
            if (res[k] == 0)
                zeros++;
            else if (res[k] != -EALREADY) {
                printf("%s: round %lu: freer %u got %d (%s)\n", name, rounds, k, res[k], strerror(-res[k]));
                CHECK_EQ(res[k], -EALREADY);
            }
        }
        if (zeros == 0) {
            printf("%s: round %lu: every free of the page was refused: the page is lost\n", name, rounds);
            CHECK(zeros > 0);
            break;
        }
        if (zeros > 1) {
            both++;
            long chk = labyrinth_zone_check(Z);
            if (chk) {
                printf("%s: round %lu: %d frees returned 0 and labyrinth_zone_check = %ld\n", name, rounds,
                       zeros, chk);
                CHECK_EQ(chk, 0);
                break;
            }
        }
    }
    last_rounds = rounds;
    last_both = both;
    last_pairs = pairs;
}

static void start_helpers(pthread_t t[2])
{
    /* Atomic stores: owner 2 may be running (it reads quit). */
    __atomic_store_n(&quit, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&round_no, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&done_no[1], 0, __ATOMIC_RELEASE);
    __atomic_store_n(&done_no[2], 0, __ATOMIC_RELEASE);
    for (uintptr_t k = 1; k < 3; k++)
        REQUIRE(pthread_create(&t[k - 1], NULL, helper, (void *)k) == 0);
}
static void stop_helpers(pthread_t t[2])
{
    __atomic_store_n(&quit, 1, __ATOMIC_RELEASE);
    for (int k = 0; k < 2; k++)
        pthread_join(t[k], NULL);
}

static void zone_info(void)
{
    struct labyrinth_region_info ri;
    struct labyrinth_zone_stats s;
    REQUIRE(labyrinth_zone_region_info(Z, 0, &ri) == 0);
    labyrinth_zone_stats(Z, &s);
    Zlo = (uintptr_t)ri.start;
    Zpg = s.page_size;
    REQUIRE(ri.pages <= MAXP);
    memset(held, 0, sizeof held);
}

int main(void)
{
    const char *e = getenv("LB_QUEUE_SECONDS");
    double secs = e ? atof(e) : 1.5;
    setvbuf(stdout, NULL, _IONBF, 0);
    pthread_t t[2];

    /* Phase 1: max_threads 1, no warden: the helpers have no level. */
    struct labyrinth_zone_config c;
    memset(&c, 0, sizeof c);
    c.pages = 256;
    c.magazine_pages = 16;
    c.max_threads = 1;
    c.flags = LABYRINTH_ZONE_NO_WARDEN;
    Z = labyrinth_zone_create(&c);
    REQUIRE(Z != NULL);
    labyrinth_zone_set_report_handler(Z, quiet, NULL);
    zone_info();
    labyrinth_free_pages(Z, labyrinth_alloc_pages(Z, LABYRINTH_GFP_ATOMIC, 0, 0), 0); /* our cache */
    start_helpers(t);
    run_rounds("natural", secs, false);
    stop_helpers(t);
    end_of_phase("natural", last_rounds, last_both, last_pairs);
    labyrinth_zone_destroy(Z);

    /* Phase 2: a default zone with a warden; helper 1 frees a burst we
     * allocated, which parks the magazine pool in our inbox. */
    Z = labyrinth_zone_create(NULL);
    REQUIRE(Z != NULL);
    labyrinth_zone_set_report_handler(Z, quiet, NULL);
    zone_info();
    {
        static void *burst[3100];
        int n = 0;
        while (n < 3100 && (burst[n] = labyrinth_alloc_pages(Z, LABYRINTH_GFP_NOWAIT, 0, 0)))
            take(burst[n++]);
        for (int i = 3000; i < n; i++) {
            give(burst[i]);
            labyrinth_free_pages(Z, burst[i], 0);
        }
        start_helpers(t);
        /* Helper 1 frees the burst: one round per page, mask = {1}. */
        for (int i = 0; i < n && i < 3000; i++) {
            give(burst[i]);
            victim = burst[i];
            mask = 2;
            unsigned r = __atomic_load_n(&round_no, __ATOMIC_RELAXED) + 1; /* we are its only writer */
            __atomic_store_n(&round_no, r, __ATOMIC_RELEASE);
            while (__atomic_load_n(&done_no[1], __ATOMIC_ACQUIRE) != r ||
                   __atomic_load_n(&done_no[2], __ATOMIC_ACQUIRE) != r)
                sched_yield();
            CHECK_EQ(rcs[1], 0);
        }
        run_rounds("pool", secs, false);
        stop_helpers(t); /* their caches go back at their exit */
        end_of_phase("pool", last_rounds, last_both, last_pairs);
    }
    labyrinth_zone_destroy(Z);

    /* Phase 3: two owners and a thread past max_threads. */
    memset(&c, 0, sizeof c);
    c.pages = 512;
    c.magazine_pages = 16;
    c.max_threads = 2;
    c.flags = LABYRINTH_ZONE_NO_WARDEN;
    Z = labyrinth_zone_create(&c);
    REQUIRE(Z != NULL);
    labyrinth_zone_set_report_handler(Z, quiet, NULL);
    zone_info();
    labyrinth_free_pages(Z, labyrinth_alloc_pages(Z, LABYRINTH_GFP_ATOMIC, 0, 0), 0);
    pthread_t o2;
    __atomic_store_n(&quit, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&o2_req, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&o2_done, 0, __ATOMIC_RELEASE);
    REQUIRE(pthread_create(&o2, NULL, owner2, NULL) == 0);
    {
        /* Owner 2 claims the second cache before the helpers start. */
        unsigned r = 1;
        __atomic_store_n(&o2_req, r, __ATOMIC_RELEASE);
        while (__atomic_load_n(&o2_done, __ATOMIC_ACQUIRE) != r)
            ;
        if (o2_page) {
            give(o2_page);
            labyrinth_free_pages(Z, o2_page, 0);
        }
    }
    start_helpers(t);
    run_rounds("owners", secs, true);
    stop_helpers(t);
    pthread_join(o2, NULL); /* owner 2's cache goes back at its exit */
    end_of_phase("owners", last_rounds, last_both, last_pairs);
    labyrinth_zone_destroy(Z);
    CHECK(queued_total > 0);
    return check_done("stress_queue");
}
