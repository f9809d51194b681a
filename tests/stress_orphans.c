/*
 * stress_orphans.c - pages freed to a thread while it lets go of its cache
 * are found by the next allocation that needs them (the orphan bits of
 * remote.c), and a drained zone's quick refusal (lb_zone_dry) never
 * refuses while a page is reachable.
 *
 * A zone with no warden (nobody reaps: only an allocation's adopt finds
 * pages freed to a cache no thread holds), max_threads 3 and magazines of
 * 4 pages: this thread (M) holds a cache for the whole run, each round's
 * owner O and freer F one each.  A round: O allocates a random number of
 * pages by ATOMIC and stamps them in an ownership table, hands a multiple
 * of 4 of them to F, and lets go of its cache (by exiting, or by
 * labyrinth_thread_release and exiting) while F frees them: before, as O
 * starts to let go, or after, with random pauses.  F's frees go into its
 * outbox for O, pushed onto O's level as each batch fills (early, while
 * the zone is low); F then stays, holding its cache, until M has drained
 * (its exit would reap).  Once O is joined and F done, M drains the zone
 * by NOWAIT, then ATOMIC: it must get every page except the 4 F holds
 * (taken to claim its cache before O lets go, a whole magazine so none is
 * cached there) and F's last partial batch (a live freer's, documented),
 * each one not held in the table, and ATOMIC must get only the reserve
 * (NOWAIT got all the rest).  Then M frees them and releases its cache;
 * labyrinth_zone_check is 0 after every round.
 *
 * What it hunts, each seen caught with the code broken on purpose:
 * - the pusher's check (P3, remote.c "orphans") left out: 2 runs of 2,
 *   the first round ("the drain got 504 of 508 pages ... in_flight 4");
 * - the unowner's check (U3) left out, so that a batch pushed after O
 *   took its inbox but before its owner word read 0 is seen by no one:
 *   2 runs in 3 ("416 of 508 ... in_flight 92");
 * - the quick refusal (lb_zone_dry) not looking at the orphans: every
 *   run ("NOWAIT stopped with 233 pages outside the reserve").
 * Not hunted here: a reader inside a pusher's own window (between its
 * push and its bit), which needs single-stepping; the review's
 * a2_orphan_step found it in the first version (32 instructions of
 * NULL), and the pushes count closes it.
 * LB_ORPHAN_SECONDS (default 1.5), LB_SEED.
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
#include "cache.h"
#include "region.h"
#include "zone.h"

#define PAGES 512u

static struct labyrinth_zone *Z;
static uintptr_t Zlo;
static size_t Zpg;
static unsigned char held[PAGES * 2]; /* ownership table, by page index */
static void *given[PAGES];
static unsigned ngiven;
static unsigned volatile go;        /* O -> F: the pages are given     */
static unsigned volatile releasing; /* O is about to let go            */
static unsigned volatile released;  /* O's labyrinth_thread_release returned */
static unsigned volatile claimed;    /* F holds its cache               */
static uint32_t freer_tid;           /* F's labyrinth_thread_id()       */
static unsigned volatile freed;      /* F has freed every given page    */
static unsigned volatile drain_done; /* M has drained: F may exit       */
static uint64_t rng_state;

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static void spin_ns(uint64_t ns)
{
    uint64_t t0 = now_ns();
    while (now_ns() - t0 < ns) {
    }
}

static size_t idx_of(void *p)
{
    return ((uintptr_t)p - Zlo) / Zpg;
}

static bool stamp(void *p)
{
    size_t i = idx_of(p);
    if (i >= sizeof held) {
        fprintf(stderr, "FAIL: page %p outside the zone's range\n", p);
        return false;
    }
    unsigned char zero = 0;
    if (!__atomic_compare_exchange_n(&held[i], &zero, 1, false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
        fprintf(stderr, "FAIL: page %p handed out while held\n", p);
        return false;
    }
    return true;
}

static void unstamp(void *p)
{
    __atomic_store_n(&held[idx_of(p)], 0, __ATOMIC_RELEASE);
}

/* Whether a level owns page p (its descriptor names an owner: white-box). */
static bool level_owned(void *p)
{
    struct lb_zone *z = lb_zone_of(Z);
    struct lb_region *r;
    uint32_t idx;
    if (lb_zone_locate(z, p, &r, &idx))
        return false;
    uint64_t w = lb_load_rlx_u64(&r->desc[idx]);
    return lb_d_state(w) == LB_S_ALLOC && lb_d_owner(w) != 0;
}

struct owner_arg {
    uint64_t seed;
    bool release_first;
    unsigned want;
    int bad;
};

static void *owner(void *arg)
{
    struct owner_arg *a = arg;
    unsigned n = 0;
    while (n < a->want) {
        void *p = labyrinth_alloc_pages(Z, LABYRINTH_GFP_ATOMIC, 0, 0);
        if (!p)
            break;
        if (!stamp(p))
            a->bad++;
        given[n++] = p;
    }
    /* The freer frees whole batches (magazine_pages 4): its outbox is
     * then empty when it is done, every page pushed onto our level.  So
     * it gets only pages our level owns (a page from the shared path,
     * the reserve or the buddy, has no owner: its free would not go
     * through the outbox, and a batch would stay partial), a multiple of
     * 4 of them.  The rest we free ourselves. */
    unsigned kept = 0;
    for (unsigned i = 0; i < n; i++) {
        if (level_owned(given[i]))
            given[kept++] = given[i];
        else {
            unstamp(given[i]);
            if (labyrinth_free_pages(Z, given[i], 0))
                a->bad++;
        }
    }
    n = kept;
    while (n % 4) {
        n--;
        unstamp(given[n]);
        if (labyrinth_free_pages(Z, given[n], 0))
            a->bad++;
    }
    ngiven = n;
    __atomic_store_n(&go, 1, __ATOMIC_RELEASE);
    spin_ns(rnd(&a->seed) % 20000);
    __atomic_store_n(&releasing, 1, __ATOMIC_RELEASE);
    if (a->release_first) {
        labyrinth_thread_release(Z);
        __atomic_store_n(&released, 1, __ATOMIC_RELEASE);
    }
    return NULL; /* the exit hook lets go of the cache (if still held) */
}

struct freer_arg {
    uint64_t seed;
    int bad;
    unsigned phase; /* 0: any time; 1: as O lets go; 2: after (release_first) */
};

static void *freer(void *arg)
{
    struct freer_arg *a = arg;
    /* Claim our own cache first, with pages we hold until M has drained
     * (a freer claiming only after O let go could get O's cache, and free
     * O's pages into its own magazines, out of M's reach). */
    void *mine[4];
    for (int i = 0; i < 4; i++) /* a whole magazine: none left cached here */
        if (!(mine[i] = labyrinth_alloc_pages(Z, LABYRINTH_GFP_ATOMIC, 0, 0)) || !stamp(mine[i]))
            a->bad++;
    freer_tid = labyrinth_thread_id();
    __atomic_store_n(&claimed, 1, __ATOMIC_RELEASE);
    while (!__atomic_load_n(&go, __ATOMIC_ACQUIRE)) {
    }
    unsigned n = ngiven;
    /* Phase 0: somewhere in the owner's pause (most frees reach it while
     * it holds its cache); 1: as it starts to let go (a few frees land
     * inside its release: the window the orphan protocol closes); 2: once
     * it has let go (every push finds no owner). */
    if (a->phase == 0)
        spin_ns(rnd(&a->seed) % 20000);
    else {
        unsigned volatile *flag = a->phase == 1 ? &releasing : &released;
        while (!__atomic_load_n(flag, __ATOMIC_ACQUIRE)) {
        }
        if (a->phase == 1)
            spin_ns(rnd(&a->seed) % 2500);
    }
    bool pauses = rnd(&a->seed) % 2;
    for (unsigned i = 0; i < n; i++) {
        if (pauses && rnd(&a->seed) % 8 == 0)
            spin_ns(rnd(&a->seed) % 3000);
        unstamp(given[i]);
        int rc = labyrinth_free_pages(Z, given[i], 0);
        if (rc) {
            fprintf(stderr, "FAIL: free of a given page: %d\n", rc);
            a->bad++;
        }
    }
    /* Stay, holding our cache, until M has drained: our exit would reap
     * the caches no thread holds, and find the pages before M's drain. */
    __atomic_store_n(&freed, 1, __ATOMIC_RELEASE);
    while (!__atomic_load_n(&drain_done, __ATOMIC_ACQUIRE))
        sched_yield();
    for (int i = 0; i < 4; i++)
        if (mine[i]) {
            unstamp(mine[i]);
            if (labyrinth_free_pages(Z, mine[i], 0))
                a->bad++;
        }
    return NULL;
}

static void *drained[PAGES * 2];

/* Pages in the outboxes of the tcache thread tid holds: a live freer's
 * partial batch stays there until it frees more, releases or exits
 * (design.md, "Limits"), out of everyone else's reach (white-box). */
static size_t outbox_pages_of(uint32_t tid)
{
    struct lb_cache *c = &lb_zone_of(Z)->cache;
    size_t n = 0;
    for (uint32_t t = 0; t < c->ntcaches; t++) {
        struct lb_tcache *tc = &c->tcaches[t];
        if (lb_load_rlx_u32(&tc->owner) != tid)
            continue;
        for (unsigned d = 0; d < LB_LEVELS; d++)
            for (unsigned k = 0; k < LB_OUTBOX_SLOTS; k++) {
                struct lb_mag *m = lb_load_rlx_ptr(&tc->lvl[d].out_mag[k]);
                if (m)
                    n += lb_load_rlx_u32(&m->count);
            }
    }
    return n;
}

/* On a short drain: where the zone's tcaches stand (white-box). */
static void dump_tcaches(void)
{
    struct lb_cache *c = &lb_zone_of(Z)->cache;
    for (uint32_t t = 0; t < c->ntcaches; t++) {
        struct lb_tcache *tc = &c->tcaches[t];
        for (unsigned d = 0; d < LB_LEVELS; d++) {
            struct lb_level *l = &tc->lvl[d];
            unsigned long long out = 0;
            for (unsigned k = 0; k < LB_OUTBOX_SLOTS; k++) {
                struct lb_mag *m = lb_load_rlx_ptr(&l->out_mag[k]);
                if (m)
                    out += lb_load_rlx_u32(&m->count);
            }
            fprintf(stderr, "  tcache %u (owner %u, orphan bit %d) level %u: inbox %llu queue %llu outbox %llu\n", t,
                    lb_load_rlx_u32(&tc->owner), (int)((lb_load_rlx_u64(&c->orphans[t / 64]) >> (t % 64)) & 1), d,
                    (unsigned long long)lb_load_rlx_u64(&l->inbox_pages),
                    (unsigned long long)lb_load_rlx_u64(&l->queue_pages), out);
        }
    }
}

int main(void)
{
    const char *env = getenv("LB_ORPHAN_SECONDS");
    double secs = env ? atof(env) : 1.5;
    const char *se = getenv("LB_SEED");
    rng_state = se ? strtoull(se, NULL, 0) : (uint64_t)now_ns() | 1;
    printf("stress_orphans: seed 0x%llx (LB_SEED=0x%llx to repeat), %.1f s\n", (unsigned long long)rng_state,
           (unsigned long long)rng_state, secs);
    struct labyrinth_zone_config c;
    memset(&c, 0, sizeof c);
    c.name = "orphans";
    c.pages = PAGES;
    c.max_threads = 3;
    c.magazine_pages = 4;
    c.flags = LABYRINTH_ZONE_NO_WARDEN;
    Z = labyrinth_zone_create(&c);
    REQUIRE(Z != NULL);
    struct labyrinth_region_info ri;
    REQUIRE(labyrinth_zone_region_info(Z, 0, &ri) == 0);
    Zlo = (uintptr_t)ri.start;
    Zpg = 4096;
    struct labyrinth_zone_stats st;
    REQUIRE(labyrinth_zone_stats(Z, &st) == 0);
    size_t total = st.total_pages;
    REQUIRE(total <= PAGES * 2);
    /* M holds the first cache for the whole run. */
    void *warm = labyrinth_alloc_pages(Z, LABYRINTH_GFP_ATOMIC, 0, 0);
    REQUIRE(warm != NULL);
    CHECK_EQ(labyrinth_free_pages(Z, warm, 0), 0);

    uint64_t t0 = now_ns(), rounds = 0, given_total = 0, short_rounds = 0, orphan_rounds = 0, orphan_pages = 0, outbox_left = 0;
    int bad = 0;
    while (now_ns() - t0 < (uint64_t)(secs * 1e9) && !bad) {
        struct owner_arg oa = {rnd(&rng_state) | 1, rnd(&rng_state) % 2 == 0, 0, 0};
        /* Two rounds in three give a few pages (one batch): all their
         * frees may land in the owner's release. */
        oa.want = rnd(&rng_state) % 3 ? 4 + (unsigned)(rnd(&rng_state) % 5) : 1 + (unsigned)(rnd(&rng_state) % 300);
        struct freer_arg fa = {rnd(&rng_state) | 1, 0, (unsigned)(rnd(&rng_state) % 3)};
        if (fa.phase == 2 && !oa.release_first)
            fa.phase = 1;
        __atomic_store_n(&go, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&releasing, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&released, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&freed, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&claimed, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&drain_done, 0, __ATOMIC_RELAXED);
        pthread_t to, tf;
        REQUIRE(pthread_create(&tf, NULL, freer, &fa) == 0);
        while (!__atomic_load_n(&claimed, __ATOMIC_ACQUIRE))
            sched_yield();
        REQUIRE(pthread_create(&to, NULL, owner, &oa) == 0);
        pthread_join(to, NULL);
        while (!__atomic_load_n(&freed, __ATOMIC_ACQUIRE))
            sched_yield();
        given_total += ngiven;
        /* Pages on their way back to a cache no thread holds: the ones
         * M's drain must adopt (counted for the summary). */
        REQUIRE(labyrinth_zone_stats(Z, &st) == 0);
        if (st.in_flight_pages)
            orphan_rounds++, orphan_pages += st.in_flight_pages;
        /* M's drain: every page of the zone, NOWAIT first (everything but
         * the reserve: a quick refusal that missed the orphans would stop
         * it early), then ATOMIC (the reserve, and nothing else). */
        size_t got = 0;
        void *p;
        while (got < sizeof drained / sizeof *drained &&
               (p = labyrinth_alloc_pages(Z, LABYRINTH_GFP_NOWAIT, 0, 0)) != NULL) {
            bad += !stamp(p);
            drained[got++] = p;
        }
        REQUIRE(labyrinth_zone_stats(Z, &st) == 0);
        size_t reserve = st.reserve_free_pages, nowait_got = got;
        while (got < sizeof drained / sizeof *drained &&
               (p = labyrinth_alloc_pages(Z, LABYRINTH_GFP_ATOMIC, 0, 0)) != NULL) {
            bad += !stamp(p);
            drained[got++] = p;
        }
        size_t atomic_got = got - nowait_got;
        if (atomic_got != reserve) {
            fprintf(stderr, "FAIL round %llu: NOWAIT stopped with %zu pages outside the reserve (%zu by NOWAIT, %zu by "
                    "ATOMIC, reserve %zu)\n", (unsigned long long)rounds, atomic_got - reserve, nowait_got,
                    atomic_got, reserve);
            bad++;
        }
        /* F holds 4, and its last partial batch (when the zone ran low,
         * it sent batches on early: remote.c) stays in its outbox. */
        size_t f_out = outbox_pages_of(freer_tid);
        outbox_left += f_out;
        if (got + f_out != total - 4) {
            REQUIRE(labyrinth_zone_stats(Z, &st) == 0);
            fprintf(stderr,
                    "FAIL round %llu: the drain got %zu of %zu pages, %zu in F's outbox (%zu by ATOMIC after NOWAIT; the owner gave %u, %s); "
                    "stats: free %llu, in_flight %llu\n",
                    (unsigned long long)rounds, got, total - 4, f_out, atomic_got, ngiven,
                    oa.release_first ? "released then exited" : "exited", (unsigned long long)st.free_pages,
                    (unsigned long long)st.in_flight_pages);
            short_rounds++;
            bad++;
            dump_tcaches();
            /* Where are the others?  Pages neither drained nor F's. */
            for (size_t i = 0; i < total; i++) {
                if (__atomic_load_n(&held[i], __ATOMIC_ACQUIRE))
                    continue;
                struct labyrinth_page_info pi;
                void *pg = (void *)(Zlo + i * Zpg);
                if (labyrinth_page_info(Z, pg, &pi) == 0)
                    fprintf(stderr, "  page %zu (%p): state %d, order %u\n", i, pg, (int)pi.state, pi.order);
            }
        }
        for (size_t i = 0; i < got; i++) {
            unstamp(drained[i]);
            CHECK_EQ(labyrinth_free_pages(Z, drained[i], 0), 0);
        }
        __atomic_store_n(&drain_done, 1, __ATOMIC_RELEASE);
        pthread_join(tf, NULL);
        bad += oa.bad + fa.bad;
        labyrinth_thread_release(Z); /* M's pages back to the buddy for the next owner */
        long v = labyrinth_zone_check(Z);
        if (v) {
            fprintf(stderr, "FAIL round %llu: labyrinth_zone_check %ld\n", (unsigned long long)rounds, v);
            bad++;
        }
        rounds++;
    }
    CHECK(bad == 0);
    CHECK(rounds > 0);
    REQUIRE(labyrinth_zone_stats(Z, &st) == 0);
    printf("stress_orphans: %llu rounds, %llu pages given to freers without a cache; %llu rounds (%llu pages) "
           "left pages to adopt; %llu pages left in the freer's partial outbox; %llu short drains; atomic_failures %llu "
           "(each drain ends in one)\n",
           (unsigned long long)rounds, (unsigned long long)given_total, (unsigned long long)orphan_rounds,
           (unsigned long long)orphan_pages, (unsigned long long)outbox_left, (unsigned long long)short_rounds,
           (unsigned long long)st.atomic_failures);
    labyrinth_zone_destroy(Z);
    return check_done("stress_orphans");
}
