/*
 * unit_cache.c - layer 4 on real zones: the lock-free depot and page stacks
 * under contention (nothing lost, nothing held twice, one tag step per
 * operation), a magazine moved onto a stack as one chain, thread caches
 * claimed and released (also by thread exit), the nesting levels, and the
 * magazine swap logic through the public API.
 *
 * Every zone here has no warden: the test threads are the only ones
 * touching the structures, so counts at the end are exact.
 */
#define _GNU_SOURCE
#include "check.h"

#include "zone.h"

#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>

#if defined(__SANITIZE_THREAD__)
#define UT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UT_TSAN 1
#endif
#endif
#ifndef UT_TSAN
#define UT_TSAN 0
#endif

#define NTHREADS 4
#define CYCLES 200000

static struct labyrinth_zone *make_zone(unsigned pages, unsigned mag, unsigned threads)
{
    struct labyrinth_zone_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.name = "unit_cache";
    cfg.pages = pages;
    cfg.magazine_pages = mag;
    cfg.max_threads = threads;
    cfg.flags = LABYRINTH_ZONE_NO_WARDEN;
    struct labyrinth_zone *z = labyrinth_zone_create(&cfg);
    REQUIRE(z != NULL);
    return z;
}


/* The descriptor of page p of z. */
static lb_atomic_u64 *page_desc(struct labyrinth_zone *z, const void *p)
{
    struct lb_region *r = lb_regmap_lookup(&lb_zone_of(z)->map, (uintptr_t)p);
    REQUIRE(r != NULL);
    return &r->desc[((uintptr_t)p - r->base) >> z->page_shift];
}

/* The full 64-bit generation of page p, which a level of this thread owns. */
static uint64_t page_gen(struct labyrinth_zone *z, const void *p)
{
    struct lb_region *r = lb_regmap_lookup(&lb_zone_of(z)->map, (uintptr_t)p);
    REQUIRE(r != NULL);
    uint32_t idx = (uint32_t)(((uintptr_t)p - r->base) >> z->page_shift);
    return (uint64_t)lb_load_rlx_u32(&r->gen_hi[idx]) << LB_GEN_BITS | lb_d_gen(lb_load_rlx_u64(&r->desc[idx]));
}

static uint32_t stack_tag(const struct lb_stack *s) { return (uint32_t)(lb_load_acq_u64(&s->head) >> 32); }
static uint32_t stack_top(const struct lb_stack *s) { return (uint32_t)lb_load_acq_u64(&s->head); }

/* Walk a magazine stack: marks seen[index]; returns the length, or -1 on a
 * wild link or a cycle. */
static long walk_mags(const struct lb_cache *c, const struct lb_stack *s, uint8_t *seen)
{
    long n = 0;
    for (uint32_t top = stack_top(s); top; n++) {
        if (top - 1 >= c->nmags || n > (long)c->nmags)
            return -1;
        seen[top - 1]++;
        top = lb_load_rlx_u32(&lb_mag_at(c, top - 1)->next);
    }
    return n;
}

/* Walk a page stack of single pages in region 0: marks seen[idx], checks
 * each descriptor's state; returns the length or -1. */
static long walk_pages(const struct lb_cache *c, const struct lb_stack *s, unsigned state, uint8_t *seen,
                       long *bad_state)
{
    long n = 0;
    for (uint32_t top = stack_top(s); top; n++) {
        uint32_t id = top - 1;
        struct lb_region *r = lb_cache_id_region(c, id);
        if (!r || lb_page_id_index(id) >= r->span || n > (long)r->span)
            return -1;
        uint64_t w = lb_load_rlx_u64(&r->desc[lb_page_id_index(id)]);
        *bad_state += lb_d_state(w) != state || lb_d_order(w) != 0;
        seen[lb_page_id_index(id)]++;
        top = lb_d_link(w);
    }
    return n;
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* ---- the depot under contention ------------------------------------------------------------ */

struct hammer {
    struct labyrinth_zone *z;
    uint8_t *held;         /* per magazine or page: 1 while a thread holds it */
    int start;             /* threads released together (atomic) */
    int ready;
    int stop_early;        /* a thread saw a double hold (atomic) */
    int cycles;
};

struct hammer_thread {
    struct hammer *h;
    unsigned seed;
    uint64_t pops, pushes, nulls, doubles, bad_state;
};

static void wait_start(struct hammer *h)
{
    __atomic_fetch_add(&h->ready, 1, __ATOMIC_ACQ_REL);
    while (!__atomic_load_n(&h->start, __ATOMIC_ACQUIRE))
        sched_yield();
}

static void *depot_main(void *arg)
{
    struct hammer_thread *t = arg;
    struct hammer *h = t->h;
    struct lb_cache *c = &lb_zone_of(h->z)->cache;
    uint64_t s = 0x2545f4914f6cdd1dull * (t->seed + 1);
    wait_start(h);
    for (int i = 0; i < h->cycles && !__atomic_load_n(&h->stop_early, __ATOMIC_RELAXED); i++) {
        struct lb_mag *got[3];
        unsigned want = 1 + (unsigned)(rng_next(&s) % 3), k = 0;
        for (unsigned j = 0; j < want; j++) {
            struct lb_mag *m = lb_magstack_pop(c, &c->empty);
            if (!m) {
                /* The retry cap (the stack is never empty here, unless it
                 * was corrupted: then give up rather than spin). */
                if (++t->nulls > 100000)
                    __atomic_store_n(&h->stop_early, 1, __ATOMIC_RELAXED);
                if (__atomic_load_n(&h->stop_early, __ATOMIC_RELAXED))
                    break;
                j--;
                continue;
            }
            t->pops++;
            k++;
            if (__atomic_exchange_n(&h->held[lb_mag_index(c, m)], 1, __ATOMIC_ACQ_REL)) {
                t->doubles++; /* popped while someone else holds it */
                __atomic_store_n(&h->stop_early, 1, __ATOMIC_RELAXED);
            }
            got[k - 1] = m;
        }
        /* Push back in a varying order: the stack's order keeps changing,
         * which is what makes an untagged CAS fall for ABA. */
        bool rev = rng_next(&s) & 1;
        for (unsigned j = 0; j < k; j++) {
            struct lb_mag *m = got[rev ? k - 1 - j : j];
            __atomic_store_n(&h->held[lb_mag_index(c, m)], 0, __ATOMIC_RELEASE);
            lb_magstack_push(c, &c->empty, m);
            t->pushes++;
        }
    }
    return NULL;
}

static void run_threads(struct hammer *h, void *(*fn)(void *), struct hammer_thread *t)
{
    pthread_t th[NTHREADS];
    for (unsigned i = 0; i < NTHREADS; i++) {
        t[i].h = h;
        t[i].seed = i;
        REQUIRE(pthread_create(&th[i], NULL, fn, &t[i]) == 0);
    }
    while (__atomic_load_n(&h->ready, __ATOMIC_ACQUIRE) < NTHREADS)
        sched_yield();
    __atomic_store_n(&h->start, 1, __ATOMIC_RELEASE);
    for (unsigned i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
}

static void test_depot_aba(void)
{
    struct labyrinth_zone *z = make_zone(4096, 8, 8);
    struct lb_cache *c = &lb_zone_of(z)->cache;
    uint8_t *before = calloc(c->nmags, 1), *after = calloc(c->nmags, 1);
    struct hammer h = {.z = z, .held = calloc(c->nmags, 1), .cycles = CYCLES};
    REQUIRE(before && after && h.held);
    long n0 = walk_mags(c, &c->empty, before);
    REQUIRE(n0 >= 3 * NTHREADS + 1);
    CHECK_EQ(n0, lb_load_rlx_u64(&c->empty.count));
    uint32_t tag0 = stack_tag(&c->empty);
    uint64_t full0 = lb_load_rlx_u64(&c->full.count);

    struct hammer_thread t[NTHREADS];
    memset(t, 0, sizeof t);
    run_threads(&h, depot_main, t);

    uint64_t pops = 0, pushes = 0, nulls = 0, doubles = 0;
    for (unsigned i = 0; i < NTHREADS; i++) {
        pops += t[i].pops;
        pushes += t[i].pushes;
        nulls += t[i].nulls;
        doubles += t[i].doubles;
    }
    CHECK_EQ(doubles, 0);
    CHECK_EQ(__atomic_load_n(&h.stop_early, __ATOMIC_RELAXED), 0);
    CHECK_EQ(pops, pushes);
    CHECK(pops >= (uint64_t)NTHREADS * CYCLES);
    long n1 = walk_mags(c, &c->empty, after);
    CHECK_EQ(n1, n0);
    CHECK_EQ(lb_load_rlx_u64(&c->empty.count), (uint64_t)n0);
    /* The same magazines, each exactly once. */
    int bad = 0;
    for (uint32_t i = 0; i < c->nmags; i++)
        bad += after[i] != before[i] || after[i] > 1;
    CHECK_EQ(bad, 0);
    /* One tag step per successful operation, no more, no less. */
    CHECK_EQ((uint32_t)(stack_tag(&c->empty) - tag0), (uint32_t)(pops + pushes));
    CHECK_EQ(lb_load_rlx_u64(&c->full.count), full0);
    struct labyrinth_zone_stats st;
    labyrinth_zone_stats(z, &st);
    CHECK_EQ(st.retry_cap_hits, nulls);
    CHECK_EQ(labyrinth_zone_check(z), 0);
    printf("depot: %llu pops, %llu pushes, %llu retry-cap hits, max retries %llu\n", (unsigned long long)pops,
           (unsigned long long)pushes, (unsigned long long)nulls, (unsigned long long)st.max_retries);
    free(before);
    free(after);
    free(h.held);
    labyrinth_zone_destroy(z);
}

/* ---- the reserve page stack under contention ------------------------------------------------------ */

static void *reserve_main(void *arg)
{
    struct hammer_thread *t = arg;
    struct hammer *h = t->h;
    struct labyrinth_zone *z = h->z;
    struct lb_cache *c = &lb_zone_of(z)->cache;
    uint64_t s = 0x9e3779b97f4a7c15ull * (t->seed + 1);
    wait_start(h);
    for (int i = 0; i < h->cycles && !__atomic_load_n(&h->stop_early, __ATOMIC_RELAXED); i++) {
        void *got[3];
        unsigned want = 1 + (unsigned)(rng_next(&s) % 3), k = 0;
        for (unsigned j = 0; j < want; j++) {
            void *p = lb_cache_reserve_get(c, 0);
            if (!p) {
                if (++t->nulls > 100000)
                    __atomic_store_n(&h->stop_early, 1, __ATOMIC_RELAXED);
                if (__atomic_load_n(&h->stop_early, __ATOMIC_RELAXED))
                    break;
                j--;
                continue;
            }
            t->pops++;
            k++;
            struct lb_region *r = lb_regmap_lookup(&lb_zone_of(z)->map, (uintptr_t)p);
            uint32_t idx = (uint32_t)(((uintptr_t)p - r->base) >> z->page_shift);
            if (__atomic_exchange_n(&h->held[idx], 1, __ATOMIC_ACQ_REL)) {
                t->doubles++;
                __atomic_store_n(&h->stop_early, 1, __ATOMIC_RELAXED);
            }
            /* We own it: ALLOC, order 0. */
            t->bad_state += lb_load_rlx_u64(&r->desc[idx]) != lb_d_make(LB_S_ALLOC, 0, 0);
            got[k - 1] = p;
        }
        bool rev = rng_next(&s) & 1;
        for (unsigned j = 0; j < k; j++) {
            void *p = got[rev ? k - 1 - j : j];
            struct lb_region *r = lb_regmap_lookup(&lb_zone_of(z)->map, (uintptr_t)p);
            uint32_t idx = (uint32_t)(((uintptr_t)p - r->base) >> z->page_shift);
            __atomic_store_n(&h->held[idx], 0, __ATOMIC_RELEASE);
            lb_cache_reserve_put(c, r, idx);
            t->pushes++;
        }
    }
    return NULL;
}

static void test_reserve_aba(void)
{
    struct labyrinth_zone *z = make_zone(4096, 8, 8);
    struct lb_cache *c = &lb_zone_of(z)->cache;
    struct lb_region *r0 = lb_regmap_get(&lb_zone_of(z)->map, 0);
    uint8_t *before = calloc(r0->span, 1), *after = calloc(r0->span, 1);
    struct hammer h = {.z = z, .held = calloc(r0->span, 1), .cycles = CYCLES};
    REQUIRE(before && after && h.held);
    long bad_state = 0;
    long n0 = walk_pages(c, &c->reserve, LB_S_RESERVED, before, &bad_state);
    REQUIRE(n0 >= 3 * NTHREADS + 1);
    CHECK_EQ(bad_state, 0);
    CHECK_EQ(n0, lb_zone_of(z)->reserve_target);
    CHECK_EQ(lb_load_rlx_u64(&c->reserve.count), (uint64_t)n0);
    uint32_t tag0 = stack_tag(&c->reserve);

    struct hammer_thread t[NTHREADS];
    memset(t, 0, sizeof t);
    run_threads(&h, reserve_main, t);

    uint64_t pops = 0, pushes = 0, nulls = 0, doubles = 0, bad_owned = 0;
    for (unsigned i = 0; i < NTHREADS; i++) {
        pops += t[i].pops;
        pushes += t[i].pushes;
        nulls += t[i].nulls;
        doubles += t[i].doubles;
        bad_owned += t[i].bad_state;
    }
    CHECK_EQ(doubles, 0);
    CHECK_EQ(bad_owned, 0);
    CHECK_EQ(pops, pushes);
    CHECK(pops >= (uint64_t)NTHREADS * CYCLES);
    bad_state = 0;
    long n1 = walk_pages(c, &c->reserve, LB_S_RESERVED, after, &bad_state);
    CHECK_EQ(n1, n0);
    CHECK_EQ(bad_state, 0);
    CHECK_EQ(lb_load_rlx_u64(&c->reserve.count), (uint64_t)n0);
    int bad = 0;
    for (uint32_t i = 0; i < r0->span; i++)
        bad += after[i] != before[i] || after[i] > 1;
    CHECK_EQ(bad, 0);
    CHECK_EQ((uint32_t)(stack_tag(&c->reserve) - tag0), (uint32_t)(pops + pushes));
    struct labyrinth_zone_stats st;
    labyrinth_zone_stats(z, &st);
    CHECK_EQ(st.retry_cap_hits, nulls);
    CHECK_EQ(st.reserve_free_pages, (size_t)n0);
    CHECK(st.reserve_low_water < (size_t)n0); /* the gets were seen */
    CHECK(st.reserve_low_water >= (size_t)n0 - 3 * NTHREADS);
    CHECK_EQ(labyrinth_zone_check(z), 0);
    printf("reserve: %llu pops, %llu pushes, %llu retry-cap hits\n", (unsigned long long)pops,
           (unsigned long long)pushes, (unsigned long long)nulls);
    free(before);
    free(after);
    free(h.held);
    labyrinth_zone_destroy(z);
}

/* ---- a magazine onto a page stack, one chain --------------------------------------------------------- */

static void test_mag_to_stack(void)
{
    struct labyrinth_zone *z = make_zone(1024, 16, 4);
    struct lb_cache *c = &lb_zone_of(z)->cache;
    const struct { struct lb_stack *s; unsigned state; } cases[2] = {{&c->reserve, LB_S_RESERVED},
                                                                     {&c->pending, LB_S_PENDING}};
    for (int k = 0; k < 2; k++) {
        struct lb_stack *s = cases[k].s;
        struct lb_mag *m = lb_magstack_pop(c, &c->empty);
        REQUIRE(m != NULL);
        CHECK_EQ(lb_load_rlx_u32(&m->count), 0);
        lb_spin_lock(&c->buddy->lock);
        uint32_t n = lb_cache_fill_from_buddy(c, m, c->mag_size);
        lb_spin_unlock(&c->buddy->lock);
        CHECK_EQ(n, c->mag_size);
        int bad = 0;
        for (uint32_t i = 0; i < n; i++)
            bad += lb_load_rlx_u64(page_desc(z, m->slot[i])) != lb_d_make(LB_S_CACHED, 0, 0);
        CHECK_EQ(bad, 0);
        void *slots[LB_MAG_MAX];
        memcpy(slots, m->slot, n * sizeof *slots);

        uint64_t head0 = lb_load_acq_u64(&s->head), count0 = lb_load_rlx_u64(&s->count);
        uint64_t pend0 = lb_load_rlx_u64(&c->pending_pages);
        lb_cache_mag_to_stack(c, m, s, cases[k].state);
        uint64_t head1 = lb_load_acq_u64(&s->head);
        CHECK_EQ(lb_load_rlx_u32(&m->count), 0);
        CHECK_EQ(lb_load_rlx_u64(&s->count), count0 + n);
        /* One CAS: the tag moved by exactly one. */
        CHECK_EQ((uint32_t)((head1 >> 32) - (head0 >> 32)), 1);
        CHECK_EQ(lb_load_rlx_u64(&c->pending_pages), pend0 + (k == 1 ? n : 0));
        /* The chain: slot order, each with the state, then the old top. */
        struct lb_region *r0 = lb_regmap_get(&lb_zone_of(z)->map, 0);
        uint32_t top = (uint32_t)head1;
        bad = 0;
        for (uint32_t i = 0; i < n; i++) {
            uint32_t want = lb_page_id(r0, (uint32_t)(((uintptr_t)slots[i] - r0->base) >> z->page_shift)) + 1;
            if (top != want) {
                bad++;
                break;
            }
            uint64_t w = lb_load_rlx_u64(&r0->desc[lb_page_id_index(top - 1)]);
            bad += lb_d_state(w) != cases[k].state || lb_d_order(w) != 0;
            top = lb_d_link(w);
        }
        CHECK_EQ(bad, 0);
        CHECK_EQ(top, (uint32_t)head0);
        lb_magstack_push(c, &c->empty, m);
        CHECK_EQ(labyrinth_zone_check(z), 0);
        /* The statistics' parts add up to free_pages with pages pending
         * too: they count in flight (KB45: they were in no part). */
        struct labyrinth_zone_stats st;
        CHECK_EQ(labyrinth_zone_stats(z, &st), 0);
        CHECK_EQ(st.buddy_free_pages + st.cached_pages + st.reserve_free_pages + st.in_flight_pages, st.free_pages);
        CHECK_EQ(st.free_pages, st.total_pages);
        if (k == 1)
            CHECK(st.in_flight_pages >= n);
    }
    /* The pending pages drain back into the buddy. */
    lb_spin_lock(&c->buddy->lock);
    uint64_t moved = lb_cache_drain_pending(c, UINT64_MAX);
    lb_spin_unlock(&c->buddy->lock);
    CHECK_EQ(moved, c->mag_size);
    CHECK_EQ(lb_load_rlx_u64(&c->pending_pages), 0);
    CHECK_EQ(stack_top(&c->pending), 0);
    CHECK_EQ(labyrinth_zone_check(z), 0);
    /* Empty magazine: nothing moves, no CAS. */
    struct lb_mag *m = lb_magstack_pop(c, &c->empty);
    REQUIRE(m != NULL);
    uint64_t h0 = lb_load_acq_u64(&c->reserve.head);
    lb_cache_mag_to_stack(c, m, &c->reserve, LB_S_RESERVED);
    CHECK_EQ(lb_load_acq_u64(&c->reserve.head), h0);
    lb_magstack_push(c, &c->empty, m);
    labyrinth_zone_destroy(z);
}

/* ---- thread caches ------------------------------------------------------------------------------------ */

static size_t tc_pages(const struct lb_tcache *tc)
{
    size_t n = 0;
    for (unsigned d = 0; d < LB_LEVELS; d++)
        n += lb_load_rlx_u32(&lb_level_loaded(&tc->lvl[d])->count) +
             lb_load_rlx_u32(&lb_level_spare(&tc->lvl[d])->count);
    return n;
}

struct exiter {
    struct labyrinth_zone *z;
    unsigned n;
    struct lb_tcache *tc; /* written before `parked`, read after it */
    uint32_t id;
    int parked, go;       /* atomic */
    int errors;
};

static void *exiter_main(void *arg)
{
    struct exiter *e = arg;
    void *p[256];
    for (unsigned i = 0; i < e->n; i++)
        e->errors += !(p[i] = labyrinth_alloc_pages(e->z, LABYRINTH_GFP_ATOMIC, 0, 0));
    for (unsigned i = 0; i < e->n; i++)
        e->errors += p[i] && labyrinth_free_pages(e->z, p[i], 0) != 0;
    struct lb_cache *c = &lb_zone_of(e->z)->cache;
    const struct lb_tls_zone *tz = &lb_tls.z[c->tls_slot & (LB_TLS_ZONES - 1)];
    e->tc = tz->serial == c->serial ? tz->tc : NULL;
    e->id = lb_cache_thread_id();
    __atomic_store_n(&e->parked, 1, __ATOMIC_RELEASE);
    while (!__atomic_load_n(&e->go, __ATOMIC_ACQUIRE))
        sched_yield();
    return NULL; /* the exit hook gives the cache back */
}

static void test_thread_exit(void)
{
    struct labyrinth_zone *z = make_zone(1024, 8, 4);
    struct lb_cache *c = &lb_zone_of(z)->cache;
    CHECK_EQ(lb_load_rlx_u32(&c->threads), 0);
    struct exiter e = {.z = z, .n = 3 * 8 + 1};
    pthread_t th;
    REQUIRE(pthread_create(&th, NULL, exiter_main, &e) == 0);
    while (!__atomic_load_n(&e.parked, __ATOMIC_ACQUIRE))
        sched_yield();
    CHECK_EQ(e.errors, 0);
    REQUIRE(e.tc != NULL);
    struct lb_tcache *tc = e.tc;
    /* While it lives: it owns one cache, which holds its freed pages. */
    CHECK_EQ(lb_load_rlx_u32(&c->threads), 1);
    CHECK_EQ(lb_load_rlx_u32(&tc->owner), e.id);
    CHECK(tc_pages(tc) > 0);
    struct labyrinth_zone_stats st;
    labyrinth_zone_stats(z, &st);
    CHECK_EQ(st.threads, 1);
    CHECK_EQ(st.in_use_pages, 0);
    __atomic_store_n(&e.go, 1, __ATOMIC_RELEASE);
    pthread_join(th, NULL);
    /* After its exit: the cache is free and empty, its pages are back. */
    CHECK_EQ(lb_load_rlx_u32(&c->threads), 0);
    CHECK_EQ(lb_load_rlx_u32(&tc->owner), 0);
    CHECK_EQ(tc_pages(tc), 0);
    labyrinth_zone_stats(z, &st);
    CHECK_EQ(st.threads, 0);
    CHECK_EQ(st.in_use_pages, 0);
    CHECK_EQ(st.free_pages, st.total_pages);
    CHECK_EQ(st.atomic_allocs, e.n); /* its counters were folded in */
    CHECK_EQ(st.frees, e.n);
    CHECK_EQ(labyrinth_zone_check(z), 0);

    /* The freed cache is claimed again by the next thread. */
    struct exiter e2 = {.z = z, .n = 5};
    REQUIRE(pthread_create(&th, NULL, exiter_main, &e2) == 0);
    while (!__atomic_load_n(&e2.parked, __ATOMIC_ACQUIRE))
        sched_yield();
    CHECK_EQ(lb_load_rlx_u32(&c->threads), 1);
    CHECK(e2.tc != NULL);
    __atomic_store_n(&e2.go, 1, __ATOMIC_RELEASE);
    pthread_join(th, NULL);
    CHECK_EQ(lb_load_rlx_u32(&c->threads), 0);
    CHECK_EQ(labyrinth_zone_check(z), 0);
    labyrinth_zone_destroy(z);
}

/* A thread that finds every cache taken uses the shared path. */
struct uncached {
    struct labyrinth_zone *z;
    struct lb_tcache *claimed;
    void *page;
    int freed;
};

static void *uncached_main(void *arg)
{
    struct uncached *u = arg;
    u->claimed = lb_cache_claim(&lb_zone_of(u->z)->cache);
    u->page = labyrinth_alloc_pages(u->z, LABYRINTH_GFP_ATOMIC, 0, 0);
    u->freed = u->page ? labyrinth_free_pages(u->z, u->page, 0) : -1;
    return NULL;
}

static void test_claim_levels(void)
{
    struct labyrinth_zone *z = make_zone(1024, 8, 1);
    struct lb_cache *c = &lb_zone_of(z)->cache;
    CHECK(lb_tls_level(c, 0) == NULL); /* nothing claimed yet */
    struct lb_tcache *tc = lb_cache_claim(c);
    REQUIRE(tc != NULL);
    CHECK(tc == &c->tcaches[0]);
    CHECK_EQ(lb_load_rlx_u32(&tc->owner), lb_cache_thread_id());
    CHECK(lb_cache_thread_id() != 0);
    CHECK_EQ(lb_load_rlx_u32(&c->threads), 1);

    /* Levels: one per nesting depth, none past LB_LEVELS. */
    uint32_t d0 = lb_enter();
    uint32_t d1 = lb_enter();
    CHECK_EQ(d0, 0);
    CHECK_EQ(d1, 1);
    CHECK_EQ(lb_tls.depth, 2);
    struct lb_level *l0 = lb_tls_level(c, 0), *l1 = lb_tls_level(c, 1), *l2 = lb_tls_level(c, 2);
    CHECK(l0 == &tc->lvl[0]);
    CHECK(l1 == &tc->lvl[1]);
    CHECK(l2 == &tc->lvl[2]);
    CHECK(l0 != l1 && l1 != l2 && l0 != l2);
    CHECK(lb_level_loaded(l0) != lb_level_loaded(l1) && lb_level_loaded(l1) != lb_level_loaded(l2));
    CHECK(lb_tls_level(c, LB_LEVELS) == NULL);
    CHECK(lb_tls_level(c, LB_LEVELS + 1) == NULL);
    CHECK(lb_tls_level(c, 1000) == NULL);

    /* A public call made at depth 2 uses level 2's magazines and counters. */
    const unsigned slot = lb_gfp_slot(LABYRINTH_GFP_ATOMIC);
    uint64_t a0 = lb_load_rlx_u64(&l0->allocs), a2 = lb_load_rlx_u64(&l2->allocs);
    uint64_t sh0 = lb_load_rlx_u64(&c->shared_allocs[slot]), shf0 = lb_load_rlx_u64(&c->shared_frees);
    void *p = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0);
    REQUIRE(p != NULL);
    CHECK_EQ(lb_tls.depth, 2); /* restored by the call */
    CHECK_EQ(lb_load_rlx_u64(&l2->allocs), a2 + 1);
    CHECK_EQ(lb_load_rlx_u64(&l0->allocs), a0);
    CHECK(lb_load_rlx_u32(&lb_level_loaded(l2)->count) > 0); /* refilled */
    CHECK_EQ(lb_load_rlx_u32(&lb_level_loaded(l0)->count), 0);
    uint64_t f2 = lb_level_frees(l2), f0 = lb_level_frees(l0);
    CHECK_EQ(labyrinth_free_pages(z, p, 0), 0);
    CHECK_EQ(lb_level_frees(l2), f2 + 1);
    CHECK_EQ(lb_level_frees(l0), f0);
    CHECK_EQ(lb_load_rlx_u64(&c->shared_frees), shf0);
    /* At depth LB_LEVELS: no level, the shared path. */
    uint32_t d2 = lb_enter();
    CHECK_EQ(d2, 2);
    CHECK_EQ(lb_tls.depth, LB_LEVELS);
    p = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0);
    REQUIRE(p != NULL);
    CHECK_EQ(lb_load_rlx_u64(&c->shared_allocs[slot]), sh0 + 1);
    CHECK_EQ(lb_load_rlx_u64(&l2->allocs), a2 + 1);
    CHECK_EQ(labyrinth_free_pages(z, p, 0), 0);
    CHECK_EQ(lb_load_rlx_u64(&c->shared_frees), shf0 + 1);
    CHECK_EQ(lb_level_frees(l2), f2 + 1);
    lb_leave(d2);
    lb_leave(d1);
    lb_leave(d0);
    CHECK_EQ(lb_tls.depth, 0);
    /* Back at depth 0: level 0. */
    p = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0);
    REQUIRE(p != NULL);
    CHECK_EQ(lb_load_rlx_u64(&l0->allocs), a0 + 1);
    CHECK_EQ(labyrinth_free_pages(z, p, 0), 0);
    CHECK_EQ(labyrinth_zone_check(z), 0);

    /* The only cache is ours: another thread gets none, and is served by
     * the shared path. */
    struct uncached u = {.z = z};
    pthread_t th;
    uint64_t sh1 = lb_load_rlx_u64(&c->shared_allocs[slot]);
    REQUIRE(pthread_create(&th, NULL, uncached_main, &u) == 0);
    pthread_join(th, NULL);
    CHECK(u.claimed == NULL);
    CHECK(u.page != NULL);
    CHECK_EQ(u.freed, 0);
    CHECK_EQ(lb_load_rlx_u64(&c->shared_allocs[slot]), sh1 + 1);
    CHECK_EQ(lb_load_rlx_u32(&c->threads), 1);

    /* Release: pages back to the buddy, the cache free, our levels gone. */
    CHECK(tc_pages(tc) > 0);
    lb_cache_release_self(c);
    CHECK_EQ(lb_load_rlx_u32(&c->threads), 0);
    CHECK_EQ(lb_load_rlx_u32(&tc->owner), 0);
    CHECK_EQ(tc_pages(tc), 0);
    CHECK(lb_tls_level(c, 0) == NULL);
    struct labyrinth_zone_stats st;
    labyrinth_zone_stats(z, &st);
    CHECK_EQ(st.in_use_pages, 0);
    CHECK_EQ(st.cached_pages, st.depot_pages);
    CHECK_EQ(labyrinth_zone_check(z), 0);
    /* Released twice: nothing happens. */
    lb_cache_release_self(c);
    CHECK_EQ(lb_load_rlx_u32(&c->threads), 0);
    /* lb_cache_release on a cache claimed explicitly. */
    tc = lb_cache_claim(c);
    REQUIRE(tc != NULL);
    CHECK_EQ(lb_load_rlx_u32(&c->threads), 1);
    CHECK_EQ(labyrinth_thread_release(z), 0);
    CHECK_EQ(lb_load_rlx_u32(&c->threads), 0);
    CHECK_EQ(lb_load_rlx_u32(&tc->owner), 0);
    CHECK_EQ(labyrinth_zone_check(z), 0);
    labyrinth_zone_destroy(z);
}

/* A thread that used two zones gives both caches back at exit. */
struct two {
    struct labyrinth_zone *a, *b;
    int parked, go, errors;
};

static void *two_main(void *arg)
{
    struct two *t = arg;
    void *p = labyrinth_alloc_pages(t->a, LABYRINTH_GFP_ATOMIC, 0, 0);
    void *q = labyrinth_alloc_pages(t->b, LABYRINTH_GFP_NOWAIT, 0, 0);
    void *p2 = labyrinth_alloc_pages(t->a, LABYRINTH_GFP_KERNEL, 0, 0);
    t->errors += !p || !q || !p2;
    t->errors += labyrinth_free_pages(t->a, p, 0) != 0;
    t->errors += labyrinth_free_pages(t->b, q, 0) != 0;
    t->errors += labyrinth_free_pages(t->a, p2, 0) != 0;
    __atomic_store_n(&t->parked, 1, __ATOMIC_RELEASE);
    while (!__atomic_load_n(&t->go, __ATOMIC_ACQUIRE))
        sched_yield();
    return NULL;
}

static void test_two_zones_exit(void)
{
    struct labyrinth_zone *a = make_zone(512, 4, 2), *b = make_zone(512, 4, 2);
    struct two t = {.a = a, .b = b};
    pthread_t th;
    REQUIRE(pthread_create(&th, NULL, two_main, &t) == 0);
    while (!__atomic_load_n(&t.parked, __ATOMIC_ACQUIRE))
        sched_yield();
    CHECK_EQ(t.errors, 0);
    CHECK_EQ(lb_load_rlx_u32(&lb_zone_of(a)->cache.threads), 1);
    CHECK_EQ(lb_load_rlx_u32(&lb_zone_of(b)->cache.threads), 1);
    __atomic_store_n(&t.go, 1, __ATOMIC_RELEASE);
    pthread_join(th, NULL);
    struct labyrinth_zone *zs[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        struct labyrinth_zone_stats st;
        labyrinth_zone_stats(zs[i], &st);
        CHECK_EQ(lb_load_rlx_u32(&lb_zone_of(zs[i])->cache.threads), 0);
        CHECK_EQ(st.in_use_pages, 0);
        CHECK_EQ(st.cached_pages, st.depot_pages); /* no thread holds any */
        CHECK_EQ(st.frees, i == 0 ? 2 : 1);
        CHECK_EQ(labyrinth_zone_check(zs[i]), 0);
        labyrinth_zone_destroy(zs[i]);
    }
}

/* TLS slots: LB_TLS_ZONES live zones have one each; one more has none and
 * serves every thread through the shared path; a slot freed by a destroyed
 * zone goes to the next, and the stale entry of a thread that used the old
 * zone does not leak into the new one. */
static void test_tls_slots(void)
{
    struct labyrinth_zone *zs[LB_TLS_ZONES + 1];
    unsigned used = 0;
    for (unsigned i = 0; i < LB_TLS_ZONES; i++) {
        zs[i] = make_zone(64, 2, 2);
        unsigned slot = lb_zone_of(zs[i])->cache.tls_slot;
        CHECK(slot < LB_TLS_ZONES);
        if (slot < LB_TLS_ZONES) {
            CHECK(!(used & (1u << slot)));
            used |= 1u << slot;
        }
    }
    struct labyrinth_zone *x = zs[LB_TLS_ZONES] = make_zone(64, 2, 2);
    struct lb_cache *c = &lb_zone_of(x)->cache;
    CHECK_EQ(c->tls_slot, LB_TLS_ZONES);
    CHECK(lb_cache_claim(c) == NULL);
    CHECK(lb_tls_level(c, 0) == NULL);
    const unsigned slot3 = lb_gfp_slot(LABYRINTH_GFP_ATOMIC);
    uint64_t sh = lb_load_rlx_u64(&c->shared_allocs[slot3]), shf = lb_load_rlx_u64(&c->shared_frees);
    void *p = labyrinth_alloc_pages(x, LABYRINTH_GFP_ATOMIC, 0, 0);
    REQUIRE(p != NULL);
    CHECK_EQ(lb_load_rlx_u64(&c->shared_allocs[slot3]), sh + 1);
    CHECK_EQ(labyrinth_free_pages(x, p, 0), 0);
    CHECK_EQ(lb_load_rlx_u64(&c->shared_frees), shf + 1);
    CHECK_EQ(lb_load_rlx_u32(&c->threads), 0);
    CHECK_EQ(labyrinth_zone_check(x), 0);

    /* This thread uses zone 3 (claims a cache there), then zone 3 goes. */
    p = labyrinth_alloc_pages(zs[3], LABYRINTH_GFP_ATOMIC, 0, 0);
    REQUIRE(p != NULL);
    CHECK_EQ(labyrinth_free_pages(zs[3], p, 0), 0);
    CHECK_EQ(lb_load_rlx_u32(&lb_zone_of(zs[3])->cache.threads), 1);
    unsigned freed_slot = lb_zone_of(zs[3])->cache.tls_slot;
    uint64_t old_serial = zs[3]->serial;
    labyrinth_zone_destroy(zs[3]);
    CHECK_EQ(lb_tls.z[freed_slot & (LB_TLS_ZONES - 1)].serial, old_serial); /* stale, harmless */
    zs[3] = make_zone(64, 2, 2);
    struct lb_cache *n = &lb_zone_of(zs[3])->cache;
    CHECK_EQ(n->tls_slot, freed_slot);
    CHECK(zs[3]->serial != old_serial);
    CHECK(lb_tls_level(n, 0) == NULL); /* the old zone's cache is not this one's */
    CHECK_EQ(lb_load_rlx_u32(&n->threads), 0);
    p = labyrinth_alloc_pages(zs[3], LABYRINTH_GFP_ATOMIC, 0, 0);
    REQUIRE(p != NULL);
    CHECK_EQ(lb_load_rlx_u32(&n->threads), 1);
    CHECK(lb_tls_level(n, 0) != NULL);
    CHECK_EQ(labyrinth_free_pages(zs[3], p, 0), 0);
    CHECK_EQ(labyrinth_zone_check(zs[3]), 0);
    for (unsigned i = 0; i <= LB_TLS_ZONES; i++)
        labyrinth_zone_destroy(zs[i]);
}

/* ---- magazine swaps through the public API --------------------------------------------------------------- */

static void test_lifo(void)
{
    struct labyrinth_zone *z = make_zone(4096, 8, 4);
    struct lb_cache *c = &lb_zone_of(z)->cache;
    const unsigned M = c->mag_size, n = 2 * M + 5;
    CHECK_EQ(M, 8);
    void *p[2 * LB_MAG_MAX + 5];
    uint64_t full0 = lb_load_rlx_u64(&c->full.count);
    uint64_t empty0 = lb_load_rlx_u64(&c->empty.count);
    REQUIRE(full0 >= 3);
    int bad = 0;
    for (unsigned i = 0; i < n; i++) {
        p[i] = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0);
        bad += p[i] == NULL;
        for (unsigned j = 0; j < i && p[i]; j++)
            bad += p[j] == p[i];
    }
    CHECK_EQ(bad, 0);
    uint64_t full1 = lb_load_rlx_u64(&c->full.count);
    /* The thread's two magazines were empty: the depot fed every one. */
    CHECK(full1 < full0);
    CHECK_EQ(full0 - full1, (n + M - 1) / M);
    CHECK_EQ(lb_load_rlx_u64(&c->full.count) + lb_load_rlx_u64(&c->empty.count), full0 + empty0);
    struct labyrinth_zone_stats st;
    labyrinth_zone_stats(z, &st);
    CHECK_EQ(st.in_use_pages, n);
    CHECK_EQ(labyrinth_zone_check(z), 0);
    for (unsigned i = n; i-- > 0;)
        bad += labyrinth_free_pages(z, p[i], 0) != 0;
    CHECK_EQ(bad, 0);
    uint64_t full2 = lb_load_rlx_u64(&c->full.count);
    /* Both magazines filled up: a full one went back to the depot. */
    CHECK(full2 > full1);
    CHECK_EQ(lb_load_rlx_u64(&c->full.count) + lb_load_rlx_u64(&c->empty.count), full0 + empty0);
    struct lb_level *l = lb_tls_level(c, 0);
    REQUIRE(l != NULL);
    uint32_t lc = lb_load_rlx_u32(&lb_level_loaded(l)->count), sc = lb_load_rlx_u32(&lb_level_spare(l)->count);
    CHECK(lc <= M && sc <= M);
    /* Every page came back: the thread holds what the depot lost. */
    CHECK_EQ((uint64_t)lc + sc + full2 * M, full0 * M);
    labyrinth_zone_stats(z, &st);
    CHECK_EQ(st.in_use_pages, 0);
    CHECK_EQ(st.atomic_allocs, n);
    CHECK_EQ(st.frees, n);
    CHECK_EQ(labyrinth_zone_check(z), 0);
    /* And once more, with the reserve below its target: a full magazine
     * then tops the reserve up instead of going to the depot. */
    void *q;
    uint64_t rsv = lb_load_rlx_u64(&c->reserve.count);
    REQUIRE(rsv >= M);
    for (uint64_t i = 0; i < M; i++) {
        q = lb_cache_reserve_get(c, 0);
        REQUIRE(q != NULL);
        struct lb_region *r = lb_regmap_lookup(&lb_zone_of(z)->map, (uintptr_t)q);
        /* Give it to the buddy, as an allocated page freed there would be. */
        lb_spin_lock(&c->buddy->lock);
        lb_buddy_give(c->buddy, r, (uint32_t)(((uintptr_t)q - r->base) >> z->page_shift), 0);
        lb_spin_unlock(&c->buddy->lock);
    }
    CHECK_EQ(lb_load_rlx_u64(&c->reserve.count), rsv - M);
    for (unsigned i = 0; i < n; i++)
        bad += !(p[i] = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0));
    uint64_t full3 = lb_load_rlx_u64(&c->full.count);
    for (unsigned i = n; i-- > 0;)
        bad += labyrinth_free_pages(z, p[i], 0) != 0;
    CHECK_EQ(bad, 0);
    CHECK_EQ(lb_load_rlx_u64(&c->reserve.count), rsv); /* one magazine's worth */
    CHECK_EQ(lb_load_rlx_u64(&c->full.count), full3);
    CHECK_EQ(labyrinth_zone_check(z), 0);
    labyrinth_zone_destroy(z);
}

/* The thread-id counter near its wrap (finding 11.7): no thread gets 0
 * ("no id yet") or LB_OWNER_WARDEN (a cache the warden holds).  On
 * 4d14bd8 the third thread below got 0xffffffff and the fourth 0. */
static void *take_id(void *arg)
{
    *(uint32_t *)arg = lb_cache_thread_id();
    return NULL;
}
static void test_thread_id_wrap(void)
{
    lb_cache_thread_id_test_set(0xfffffffcu);
    uint32_t ids[6];
    for (int i = 0; i < 6; i++) {
        pthread_t t;
        REQUIRE(pthread_create(&t, NULL, take_id, &ids[i]) == 0);
        pthread_join(t, NULL);
    }
    const uint32_t want[6] = {0xfffffffdu, 0xfffffffeu, 1, 2, 3, 4};
    for (int i = 0; i < 6; i++) {
        CHECK(ids[i] != 0 && ids[i] != LB_OWNER_WARDEN);
        CHECK_EQ(ids[i], want[i]);
    }
}

/* The review of issue 11.5: a signal handler that takes the thread's id
 * between the two stores of its first assignment (the word stored, the id
 * not yet) must adopt the id the word names, so that word and id agree
 * (it took an id of its own, and the thread was left with the handler's
 * word and its own id: every seed-macro record named the other).  The
 * window is two stores wide; this reproduces the state it leaves.  Also
 * the word's round trip at the edges of its two halves. */
static void *adopt_id(void *arg)
{
    uint32_t *out = arg;
    lb_ctx()->id_word = lb_id_word(0x89abcdefu); /* the interrupted code's first store */
    lb_ctx()->thread_id = 0;
    out[0] = lb_cache_thread_id(); /* the handler */
    out[1] = lb_ctx()->thread_id;
    out[2] = lb_cache_thread_id(); /* the thread, later */
    return NULL;
}

static void test_thread_id_adopt(void)
{
    uint32_t got[3];
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, adopt_id, got) == 0);
    pthread_join(t, NULL);
    CHECK_EQ(got[0], 0x89abcdefu);
    CHECK_EQ(got[1], 0x89abcdefu);
    CHECK_EQ(got[2], 0x89abcdefu);
    const uint32_t ids[] = {1, 0x7fff, 0x8000, 0xffff, 0x10000, 0x7fffffffu, 0x80000000u, 0xfffffffeu};
    for (unsigned i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        CHECK_EQ(lb_id_of_word(lb_id_word(ids[i])), ids[i]);
        CHECK(lb_id_word(ids[i]) & LB_ID_WORD_TOP_BIT);
    }
}

/* The wrap flavour's starts (cache.h, "The wrap flavour"): a level's
 * generations run from LB_WRAP_GEN_START(id) and the statistics do not see
 * the offset; in the wrap flavour 6,000 LIFO pairs take level 0 across the
 * generation wrap and the depot's stack tags across theirs, with no page
 * twice and exact counts.  (In other builds the starts are 0 and the same
 * checks hold with no wrap.) */
static void test_wrap_starts(void)
{
    struct labyrinth_zone *z = make_zone(4096, 8, 4);
    struct lb_cache *c = &lb_zone_of(z)->cache;
    void *p = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0);
    REQUIRE(p != NULL);
    struct lb_level *l = lb_tls_level(c, 0);
    REQUIRE(l != NULL);
    uint64_t start = LB_WRAP_GEN_START(l->id);
    CHECK_EQ(lb_load_rlx_u64(&l->allocs_base), start);
    CHECK_EQ(lb_load_rlx_u64(&l->allocs), start + 1);
    CHECK_EQ(lb_d_gen(lb_load_rlx_u64(page_desc(z, p))), (uint32_t)(start + 1) & LB_GEN_MASK);
    CHECK_EQ(page_gen(z, p), start + 1); /* all 64 bits: low word and high word */
    /* A stack no one has touched (no warden: no zeroed stock) holds its
     * start. */
    CHECK_EQ(stack_tag(&c->zstock), LB_WRAP_TAG_START(4));
    CHECK_EQ(stack_top(&c->zstock), 0);
    uint32_t tag0 = stack_tag(&c->full);
    uint64_t full0 = lb_load_rlx_u64(&c->full.count);
    int high = 0, low = 0, bad = 0;
    void *held[64];
    for (unsigned i = 0; i < 6000; i++) {
        /* Bursts of 64 so that the depot's stacks move too. */
        unsigned k = 0;
        for (; k < 64; k++) {
            held[k] = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0);
            if (!held[k])
                break;
            /* The full generation, across 2^32 (the wrap flavour) where
             * the descriptor's low word wraps into the high word. */
            uint64_t g = page_gen(z, held[k]);
            high += g >= 0xfffff000u && g < 0x100000000ull;
            low += g < 0x1000u || (g >= 0x100000000ull && g < 0x100001000ull);
            bad += g > lb_load_rlx_u64(&l->allocs) || g <= start; /* this level's, this run's */
            for (unsigned j = 0; j < k; j++)
                bad += held[j] == held[k] || held[k] == p;
        }
        CHECK_EQ(k, 64);
        while (k-- > 0)
            bad += labyrinth_free_pages(z, held[k], 0) != 0;
        i += 63;
    }
    CHECK_EQ(bad, 0);
    struct labyrinth_zone_stats st;
    labyrinth_zone_stats(z, &st);
    CHECK_EQ(st.atomic_allocs, 6016 + 1);
    CHECK_EQ(st.in_use_pages, 1);
    CHECK_EQ(labyrinth_zone_check(z), 0);
#ifdef LABYRINTH_WRAP
    CHECK(high > 0 && low > 0);  /* the generations went across 2^32 */
    /* The depot's full stack started 16 below its tag's wrap and had more
     * than 16 pushes at creation: across it (a plain build counts up from
     * 0 and could not be here below 16 with a count above 16). */
    CHECK(full0 > 16 && tag0 < full0);
    CHECK(labyrinth_thread_id() >= 0xffffff00u || labyrinth_thread_id() < 64);
#else
    CHECK_EQ(high, 0);
    CHECK(low > 0);
    CHECK(tag0 >= full0); /* from 0: at least one step per push */
#endif
    CHECK_EQ(labyrinth_free_pages(z, p, 0), 0);
    labyrinth_zone_destroy(z);
}

/* ---- handle keys (zone.h, lb_handle_key) --------------------------------------------------------------- */

/* helper-28's break: with key = serial ^ address, two live zones whose
 * serials and slots differed in the same bits shared a key, and a call
 * through one used the other's cache (keycoll3: after 271,615 creations,
 * pages of B freed into A; zone.c:539 aborted).  Every slot of the table,
 * against every other, with the serial pairs an adversary would pick: the
 * one that collided before (s ^ a_i ^ a_j), the one that would collide if
 * the shift were too small (s ^ (a_i ^ a_j) >> 21), and a dead slot
 * against a live one.  No two keys equal, none is 0. */
static void test_handle_keys(void)
{
    static struct labyrinth_zone *slot[LB_HANDLES];
    unsigned n = 0;
    for (unsigned k = 0; k < 2 * LB_HANDLES && n < LB_HANDLES; k++) {
        struct labyrinth_zone *z = make_zone(8, 2, 1);
        bool seen = false;
        for (unsigned i = 0; i < n && !seen; i++)
            seen = slot[i] == z;
        if (!seen)
            slot[n++] = z;
        labyrinth_zone_destroy(z);
    }
    CHECK_EQ(n, LB_HANDLES); /* round robin: every slot in turn */
    uint64_t pairs = 0, equal = 0, zero = 0;
    const uint64_t smask = (1ull << (64 - LB_KEY_SHIFT)) - 1;
    for (unsigned i = 0; i < n; i++) {
        uintptr_t ai = (uintptr_t)slot[i];
        uint64_t si = 1 + (uint64_t)i * 7919;
        for (unsigned j = i + 1; j < n; j++) {
            uintptr_t aj = (uintptr_t)slot[j];
            uint64_t sj[3] = {(si ^ ai ^ aj) & smask, (si ^ ((uint64_t)(ai ^ aj) >> LB_KEY_SHIFT)) & smask, 0};
            for (unsigned v = 0; v < 3; v++) {
                slot[i]->key = LB_KEY_WORD(si);
                slot[j]->key = v == 2 ? 0 : LB_KEY_WORD(sj[v]); /* v 2: j dead */
                uint64_t ki = lb_handle_key(slot[i]), kj = lb_handle_key(slot[j]);
                equal += ki == kj;
                zero += !ki || !kj;
                pairs++;
            }
            slot[j]->key = 0;
        }
        slot[i]->key = 0;
    }
    CHECK_EQ(equal, 0);
    CHECK_EQ(zero, 0);
    /* The fast paths' first test (KB48, helper-30): only a slot's start
     * inside the table; every other byte of it, and around it, not (X's
     * slot + 4 matched Y's key with a caller-chosen r0_lo and crashed). */
    uint64_t starts = 0, others = 0;
    const uintptr_t base = (uintptr_t)lb_handles, end = base + sizeof lb_handles;
    for (uintptr_t a = base - 4096; a < end + 4096; a++) {
        bool in = lb_handle_in_table((const struct labyrinth_zone *)a);
        bool want = a >= base && a < end && (a - base) % sizeof(struct labyrinth_zone) == 0;
        starts += in && want;
        others += in != want;
    }
    CHECK_EQ(starts, LB_HANDLES);
    CHECK_EQ(others, 0);
    CHECK(!lb_handle_in_table(NULL));
    CHECK(!lb_handle_in_table((const struct labyrinth_zone *)(base - (1ull << 63))));
    printf("handle keys: %llu slot pairs with adversarial serials, %llu equal, %llu zero; every byte of the table "
           "and 4096 around it: %llu slot starts taken, %llu others\n",
           (unsigned long long)pairs, (unsigned long long)equal, (unsigned long long)zero, (unsigned long long)starts,
           (unsigned long long)others);
}

/* ---- the report handler ring (api.c, KB46) -------------------------------------------------------------- */

static unsigned long ring_reports, ring_bad;
static int ring_arg, ring_err;
static void ring_handler(const struct labyrinth_report *r, void *a)
{
    if (a != &ring_arg)
        ring_bad++;
    ring_err = r->err;
    ring_reports++;
}

/* Every slot but the published one taken by a change under way (their
 * sequences odd, as a stalled writer leaves them): a change finds none,
 * gives up with -EAGAIN and a report to the handler in place, and the
 * handler stays; once one slot is free again a change goes through, into
 * that slot, and is published. */
static void test_report_ring_full(void)
{
    struct labyrinth_zone *z = make_zone(64, 2, 1);
    struct lb_zone *zz = lb_zone_of(z);
    CHECK_EQ(labyrinth_zone_set_report_handler(z, ring_handler, &ring_arg), 0);
    uint64_t pub = lb_load_rlx_u64(&zz->report_cur);
    unsigned ps = (unsigned)(pub & (LB_REPORT_RING - 1));
    uint64_t saved[LB_REPORT_RING];
    for (unsigned k = 0; k < LB_REPORT_RING; k++) {
        saved[k] = lb_load_rlx_u64(&zz->report_ring[k].seq);
        if (k != ps)
            lb_store_rlx_u64(&zz->report_ring[k].seq, 2 * (pub >> LB_REPORT_SLOT_BITS) + 101); /* odd: being written */
    }
    struct labyrinth_zone_stats st;
    CHECK_EQ(labyrinth_zone_stats(z, &st), 0);
    unsigned long long misuse0 = st.misuse_reports;
    CHECK_EQ(labyrinth_zone_set_report_handler(z, NULL, NULL), -EBUSY);
    CHECK_EQ(ring_reports, 1);
    CHECK_EQ(ring_err, -EBUSY);
    CHECK_EQ(labyrinth_zone_stats(z, &st), 0);
    CHECK_EQ(st.misuse_reports, misuse0); /* a notice: contention is not misuse */
    CHECK_EQ(ring_bad, 0);
    CHECK_EQ(lb_load_rlx_u64(&zz->report_cur), pub); /* unchanged: the handler stays */
    unsigned freed = (ps + 3) % LB_REPORT_RING;
    lb_store_rlx_u64(&zz->report_ring[freed].seq, saved[freed]);
    CHECK_EQ(labyrinth_zone_set_report_handler(z, ring_handler, &ring_arg), 0);
    uint64_t pub2 = lb_load_rlx_u64(&zz->report_cur);
    CHECK((pub2 >> LB_REPORT_SLOT_BITS) > (pub >> LB_REPORT_SLOT_BITS));
    CHECK_EQ((unsigned)(pub2 & (LB_REPORT_RING - 1)), freed);
    for (unsigned k = 0; k < LB_REPORT_RING; k++)
        if (k != ps && k != freed)
            lb_store_rlx_u64(&zz->report_ring[k].seq, saved[k]);
    /* A report now: the handler published last, with its argument. */
    CHECK_EQ(labyrinth_free_pages(z, (void *)(uintptr_t)4096, 0), -EFAULT);
    CHECK_EQ(ring_reports, 2);
    CHECK_EQ(ring_err, -EFAULT);
    CHECK_EQ(ring_bad, 0);
    labyrinth_zone_destroy(z);
    printf("report ring: with 7 slots under way a change is refused (EBUSY, a notice), the next one takes the freed slot\n");
}

int main(void)
{
    test_report_ring_full();
    test_handle_keys();
    test_wrap_starts();
    test_thread_id_wrap();
    test_thread_id_adopt();
    test_depot_aba();
    test_reserve_aba();
    test_mag_to_stack();
    test_thread_exit();
    test_claim_levels();
    test_two_zones_exit();
    test_tls_slots();
    test_lifo();
    (void)UT_TSAN;
    return check_done("unit_cache");
}
