/*
 * api_threads.c - several threads allocate (every mode, several orders) and
 * free each other's blocks; labyrinth_thread_release; pages cached by an
 * exiting thread come back (after the threads exit: in_use == 0, free ==
 * total, check() == 0, and one thread can take every page again); threads
 * beyond max_threads (the shared path) still reach the depot; a thread may
 * outlive a zone it used.  Public header only.
 */
#include "api_util.h"

#include <pthread.h>
#include <stdlib.h>

static struct recorder rec;

#define NT 4
#define ITERS 3000
#define SLOTS 256

struct item {
    void *p;
    unsigned order;
    uint64_t stamp;
};

static struct {
    pthread_mutex_t mu;
    struct item items[SLOTS];
    int n;
} shared = {PTHREAD_MUTEX_INITIALIZER, {{0, 0, 0}}, 0};

struct worker {
    struct labyrinth_zone *z;
    int index;
    int release; /* call labyrinth_thread_release before exiting */
    unsigned long allocs, frees, fails, kernel_fails, bad_stamps, free_errors, release_rc;
};

static int push(struct item it)
{
    pthread_mutex_lock(&shared.mu);
    int ok = shared.n < SLOTS;
    if (ok)
        shared.items[shared.n++] = it;
    pthread_mutex_unlock(&shared.mu);
    return ok;
}

static int pop(struct item *it, unsigned pick)
{
    pthread_mutex_lock(&shared.mu);
    int ok = shared.n > 0;
    if (ok) {
        unsigned i = pick % (unsigned)shared.n;
        *it = shared.items[i];
        shared.items[i] = shared.items[--shared.n];
    }
    pthread_mutex_unlock(&shared.mu);
    return ok;
}

static void stamp_block(void *p, unsigned order, uint64_t stamp)
{
    size_t bytes = pg() << order;
    memcpy(p, &stamp, sizeof stamp);
    memcpy((char *)p + bytes - sizeof stamp, &stamp, sizeof stamp);
}

static int stamp_ok(const void *p, unsigned order, uint64_t stamp)
{
    size_t bytes = pg() << order;
    uint64_t a, b;
    memcpy(&a, p, sizeof a);
    memcpy(&b, (const char *)p + bytes - sizeof b, sizeof b);
    return a == stamp && b == stamp;
}

static int free_item(struct labyrinth_zone *z, struct worker *w, const struct item *it)
{
    if (!stamp_ok(it->p, it->order, it->stamp))
        w->bad_stamps++;
    if (labyrinth_free_pages(z, it->p, it->order) != 0)
        w->free_errors++;
    w->frees++;
    return 0;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    static const unsigned gfps[] = {LABYRINTH_GFP_ATOMIC, LABYRINTH_GFP_NOWAIT, LABYRINTH_GFP_KERNEL};
    uint32_t x = 2463534242u + (uint32_t)w->index * 7919u; /* xorshift, per thread */
    for (unsigned i = 0; i < ITERS; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        if (x % 8 < 5) {
            unsigned gfp = gfps[x % 3];
            unsigned order = (x >> 8) % 8 == 0 ? 1 + (x >> 12) % 3 : 0;
            void *p = labyrinth_alloc_pages(w->z, gfp, order, 0);
            if (!p) {
                w->fails++;
                if (gfp == LABYRINTH_GFP_KERNEL)
                    w->kernel_fails++;
                continue;
            }
            w->allocs++;
            struct item it = {p, order, ((uint64_t)w->index << 32) | i};
            stamp_block(p, order, it.stamp);
            if (!push(it)) {
                free_item(w->z, w, &it);
            }
        } else {
            struct item it;
            if (pop(&it, x >> 4))
                free_item(w->z, w, &it); /* often another thread's block */
        }
    }
    if (w->release)
        w->release_rc = (unsigned long)-labyrinth_thread_release(w->z);
    return NULL;
}

/* Take every page with NOWAIT, then ATOMIC; give them back. */
static size_t drain_count(struct labyrinth_zone *z, size_t cap)
{
    void **pages = calloc(cap + 1, sizeof *pages);
    REQUIRE(pages != NULL);
    size_t n = 0;
    while (n <= cap && (pages[n] = labyrinth_alloc_pages(z, LABYRINTH_GFP_NOWAIT, 0, 0)))
        n++;
    while (n <= cap && (pages[n] = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0)))
        n++;
    for (size_t i = 0; i < n; i++)
        CHECK_EQ(labyrinth_free_pages(z, pages[i], 0), 0);
    free(pages);
    return n;
}

static void test_cross_thread(void)
{
    struct labyrinth_zone_config c;
    memset(&c, 0, sizeof c);
    c.name = "threads";
    c.pages = 2048;
    struct labyrinth_zone *z = zone_new(&c, &rec);
    pthread_t t[NT];
    struct worker w[NT];
    memset(w, 0, sizeof w);
    for (int i = 0; i < NT; i++) {
        w[i].z = z;
        w[i].index = i;
        w[i].release = i < NT / 2;
        REQUIRE(pthread_create(&t[i], NULL, worker_main, &w[i]) == 0);
    }
    for (int i = 0; i < NT; i++)
        pthread_join(t[i], NULL);
    unsigned long allocs = 0, frees = 0;
    for (int i = 0; i < NT; i++) {
        CHECK_EQ(w[i].bad_stamps, 0);
        CHECK_EQ(w[i].free_errors, 0);
        CHECK_EQ(w[i].kernel_fails, 0);
        CHECK_EQ(w[i].release_rc, 0);
        allocs += w[i].allocs;
        frees += w[i].frees;
    }
    CHECK(allocs > 1000);
    /* The workers are gone: their caches came back to the zone. */
    struct labyrinth_zone_stats s = stats_of(z);
    CHECK_EQ(s.threads, 0);
    /* Free what is left from this thread, then release its cache too. */
    struct worker me;
    memset(&me, 0, sizeof me);
    struct item it;
    while (pop(&it, 0))
        free_item(z, &me, &it);
    CHECK_EQ(me.bad_stamps, 0);
    CHECK_EQ(me.free_errors, 0);
    CHECK_EQ(labyrinth_thread_release(z), 0);
    s = stats_of(z);
    CHECK_EQ(s.in_use_pages, 0);
    CHECK_EQ(s.free_pages, s.total_pages);
    CHECK_EQ(s.threads, 0);
    CHECK_EQ(s.frees, frees + me.frees);
    CHECK_EQ(s.atomic_allocs + s.nowait_allocs + s.kernel_allocs, allocs);
    CHECK_EQ(s.misuse_reports, 0);
    CHECK_EQ(labyrinth_zone_check(z), 0);
    /* One thread can take every page again. */
    CHECK_EQ(drain_count(z, s.total_pages), s.total_pages);
    CHECK_EQ(labyrinth_thread_release(z), 0);
    CHECK_EQ(labyrinth_zone_check(z), 0);
    labyrinth_zone_destroy(z);
}

/* labyrinth_thread_release returns the caller's cache; the thread may go
 * on using the zone. */
struct rel_arg {
    struct labyrinth_zone *z;
    size_t threads_before, threads_after, free_after, total;
    int rc, again_ok;
};

static void *release_main(void *arg)
{
    struct rel_arg *a = arg;
    void *p[100];
    for (int i = 0; i < 100; i++) {
        p[i] = labyrinth_alloc_pages(a->z, LABYRINTH_GFP_NOWAIT, 0, 0);
        REQUIRE(p[i] != NULL);
    }
    for (int i = 0; i < 100; i++)
        labyrinth_free_pages(a->z, p[i], 0);
    a->threads_before = stats_of(a->z).threads;
    a->rc = labyrinth_thread_release(a->z);
    struct labyrinth_zone_stats s = stats_of(a->z);
    a->threads_after = s.threads;
    a->free_after = s.free_pages;
    a->total = s.total_pages;
    void *q = labyrinth_alloc_pages(a->z, LABYRINTH_GFP_ATOMIC, 0, 0);
    a->again_ok = q != NULL && labyrinth_free_pages(a->z, q, 0) == 0;
    return NULL; /* exits holding a new cache */
}

static void test_release(void)
{
    struct labyrinth_zone *z = zone_small("release", 512, 0, &rec);
    struct rel_arg a;
    memset(&a, 0, sizeof a);
    a.z = z;
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, release_main, &a) == 0);
    pthread_join(t, NULL);
    CHECK_EQ(a.rc, 0);
    CHECK_EQ(a.threads_before, 1);
    CHECK_EQ(a.threads_after, 0);
    CHECK_EQ(a.free_after, a.total);
    CHECK(a.again_ok);
    struct labyrinth_zone_stats s = stats_of(z);
    CHECK_EQ(s.threads, 0);
    CHECK_EQ(s.in_use_pages, 0);
    CHECK_EQ(s.free_pages, s.total_pages);
    CHECK_EQ(labyrinth_zone_check(z), 0);
    labyrinth_zone_destroy(z);
}

/* A thread that exits without labyrinth_thread_release: its cached pages
 * come back, every one of them can be allocated again. */
static void *cache_and_exit(void *arg)
{
    struct labyrinth_zone *z = arg;
    void *p[300];
    for (int i = 0; i < 300; i++) {
        p[i] = labyrinth_alloc_pages(z, i % 2 ? LABYRINTH_GFP_NOWAIT : LABYRINTH_GFP_ATOMIC, 0, 0);
        REQUIRE(p[i] != NULL);
    }
    for (int i = 0; i < 300; i++)
        labyrinth_free_pages(z, p[i], 0);
    return NULL;
}

static void test_exit_returns_cache(void)
{
    struct labyrinth_zone *z = zone_small("exit", 512, 0, &rec);
    for (int round = 0; round < 3; round++) {
        pthread_t t;
        REQUIRE(pthread_create(&t, NULL, cache_and_exit, z) == 0);
        pthread_join(t, NULL);
        struct labyrinth_zone_stats s = stats_of(z);
        CHECK_EQ(s.threads, 0);
        CHECK_EQ(s.in_use_pages, 0);
        CHECK_EQ(s.free_pages, s.total_pages);
        CHECK_EQ(labyrinth_zone_check(z), 0);
    }
    CHECK_EQ(drain_count(z, 512), 512);
    CHECK_EQ(labyrinth_zone_check(z), 0);
    labyrinth_zone_destroy(z);
}

/* More threads than max_threads: the extra one has no cache of its own
 * (the shared path) and still gets every free page, the depot's included. */
struct holder {
    struct labyrinth_zone *z;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int ready, done;
};

static void *hold_cache(void *arg)
{
    struct holder *h = arg;
    void *p = labyrinth_alloc_pages(h->z, LABYRINTH_GFP_NOWAIT, 0, 0);
    if (p)
        labyrinth_free_pages(h->z, p, 0);
    pthread_mutex_lock(&h->mu);
    h->ready = 1;
    pthread_cond_broadcast(&h->cv);
    while (!h->done)
        pthread_cond_wait(&h->cv, &h->mu);
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

struct drainer {
    struct labyrinth_zone *z;
    size_t n;
};

static void *drain_main(void *arg)
{
    struct drainer *d = arg;
    void *pages[300];
    size_t n = 0;
    while (n < 300 && (pages[n] = labyrinth_alloc_pages(d->z, LABYRINTH_GFP_NOWAIT, 0, 0)))
        n++;
    while (n < 300 && (pages[n] = labyrinth_alloc_pages(d->z, LABYRINTH_GFP_ATOMIC, 0, 0)))
        n++;
    d->n = n;
    struct labyrinth_zone_stats s = stats_of(d->z);
    CHECK_EQ(s.depot_pages, 0); /* NULL only when the depot is empty */
    CHECK_EQ(s.buddy_free_pages, 0);
    CHECK_EQ(s.reserve_free_pages, 0);
    CHECK_EQ(n + (s.cached_pages - s.depot_pages), s.total_pages);
    for (size_t i = 0; i < n; i++)
        CHECK_EQ(labyrinth_free_pages(d->z, pages[i], 0), 0);
    return NULL;
}

static void test_shared_path(void)
{
    struct labyrinth_zone_config c;
    memset(&c, 0, sizeof c);
    c.name = "one-cache";
    c.pages = 256;
    c.max_threads = 1;
    c.flags = LABYRINTH_ZONE_NO_WARDEN;
    struct labyrinth_zone *z = zone_new(&c, &rec);
    struct holder h = {z, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    pthread_t th, td;
    REQUIRE(pthread_create(&th, NULL, hold_cache, &h) == 0);
    pthread_mutex_lock(&h.mu);
    while (!h.ready)
        pthread_cond_wait(&h.cv, &h.mu);
    pthread_mutex_unlock(&h.mu);
    CHECK_EQ(stats_of(z).threads, 1);
    struct drainer d = {z, 0};
    REQUIRE(pthread_create(&td, NULL, drain_main, &d) == 0);
    pthread_join(td, NULL);
    CHECK(d.n > 0);
    pthread_mutex_lock(&h.mu);
    h.done = 1;
    pthread_cond_broadcast(&h.cv);
    pthread_mutex_unlock(&h.mu);
    pthread_join(th, NULL);
    struct labyrinth_zone_stats s = stats_of(z);
    CHECK_EQ(s.in_use_pages, 0);
    CHECK_EQ(s.free_pages, s.total_pages);
    CHECK_EQ(labyrinth_zone_check(z), 0);
    labyrinth_zone_destroy(z);
}

/* A thread that used a zone may outlive it: its exit must not touch the
 * destroyed zone. */
struct outlive {
    struct labyrinth_zone *z;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int used, destroyed;
};

static void *outlive_main(void *arg)
{
    struct outlive *o = arg;
    void *p = labyrinth_alloc_pages(o->z, LABYRINTH_GFP_ATOMIC, 0, 0);
    if (p)
        labyrinth_free_pages(o->z, p, 0);
    pthread_mutex_lock(&o->mu);
    o->used = 1;
    pthread_cond_broadcast(&o->cv);
    while (!o->destroyed)
        pthread_cond_wait(&o->cv, &o->mu);
    pthread_mutex_unlock(&o->mu);
    return NULL; /* the thread-exit hook runs now */
}

static void test_outlive(void)
{
    struct outlive o = {NULL, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    o.z = zone_small("short-lived", 64, 0, &rec);
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, outlive_main, &o) == 0);
    pthread_mutex_lock(&o.mu);
    while (!o.used)
        pthread_cond_wait(&o.cv, &o.mu);
    pthread_mutex_unlock(&o.mu);
    labyrinth_zone_destroy(o.z);
    /* A new zone may take the old one's slot. */
    struct labyrinth_zone *z2 = zone_small("successor", 64, 0, &rec);
    pthread_mutex_lock(&o.mu);
    o.destroyed = 1;
    pthread_cond_broadcast(&o.cv);
    pthread_mutex_unlock(&o.mu);
    pthread_join(t, NULL);
    struct labyrinth_zone_stats s = stats_of(z2);
    CHECK_EQ(s.threads, 0);
    CHECK_EQ(s.free_pages, s.total_pages);
    CHECK_EQ(labyrinth_zone_check(z2), 0);
    CHECK_EQ(drain_count(z2, 64), 64);
    labyrinth_zone_destroy(z2);
}

/* A thread that runs one step at a time for the test (its cache and its
 * outboxes stay between steps). */
struct agent {
    pthread_t t;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    void (*fn)(void *);
    void *arg;
    int quit;
};

static void *agent_main(void *arg)
{
    struct agent *a = arg;
    pthread_mutex_lock(&a->mu);
    for (;;) {
        while (!a->fn && !a->quit)
            pthread_cond_wait(&a->cv, &a->mu);
        if (!a->fn)
            break;
        a->fn(a->arg);
        a->fn = NULL;
        pthread_cond_broadcast(&a->cv);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

static void agent_start(struct agent *a)
{
    memset(a, 0, sizeof *a);
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    REQUIRE(pthread_create(&a->t, NULL, agent_main, a) == 0);
}

static void agent_run(struct agent *a, void (*fn)(void *), void *arg)
{
    pthread_mutex_lock(&a->mu);
    a->fn = fn;
    a->arg = arg;
    pthread_cond_broadcast(&a->cv);
    while (a->fn)
        pthread_cond_wait(&a->cv, &a->mu);
    pthread_mutex_unlock(&a->mu);
}

static void agent_stop(struct agent *a)
{
    pthread_mutex_lock(&a->mu);
    a->quit = 1;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->t, NULL);
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
}

struct step {
    struct labyrinth_zone *z;
    void *p;
    int rc;
};
static void step_free(void *arg)
{
    struct step *s = arg;
    s->rc = labyrinth_free_pages(s->z, s->p, 0);
}
static void step_release(void *arg)
{
    struct step *s = arg;
    s->rc = labyrinth_thread_release(s->z);
}

/* Found by the fuzzer (fuzz/regressions/kb5-*): B frees A's page P (the
 * entry waits in B's outbox), C frees P again (a double free; C's outbox)
 * and C's batch reaches A first, so A takes P back and hands it out again.
 * B's next free of P is legitimate and must succeed; B's first entry is the
 * double free, refused with one report when A takes B's batch.  (B used to
 * refuse the new free at once, -EALREADY, from its recent-free table (now
 * the outbox filters): the
 * page was lost to the model and a held block could not be freed.) */
static void test_stale_outbox_entry(void)
{
    CASE_BEGIN();
    struct labyrinth_zone *z = zone_small("stale-entry", 64, 0, &rec);
    rec_reset(&rec);
    struct agent b, c;
    agent_start(&b);
    agent_start(&c);
    void *p = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0);
    REQUIRE(p != NULL);
    struct step sb = {z, p, -1}, sc = {z, p, -1};
    agent_run(&b, step_free, &sb);
    CHECK_EQ(sb.rc, 0);
    agent_run(&c, step_free, &sc);
    CHECK_EQ(sc.rc, 0); /* queued: refused when the owner sees it */
    agent_run(&c, step_release, &sc);
    CHECK_EQ(sc.rc, 0);
    /* A takes C's batch (P comes back) and takes pages until it has P. */
    CHECK_EQ(labyrinth_thread_release(z), 0);
    CHECK_EQ(rec_count(&rec), 0);
    void *held[64];
    unsigned n = 0;
    int got = 0;
    while (n < 64 && !got) {
        held[n] = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0);
        if (!held[n])
            break;
        got = held[n++] == p;
    }
    CHECK(got);
    for (unsigned i = 0; i < n; i++)
        if (held[i] != p)
            CHECK_EQ(labyrinth_free_pages(z, held[i], 0), 0);
    /* P is A's again: B's free of it is legitimate. */
    agent_run(&b, step_free, &sb);
    CHECK_EQ(sb.rc, 0);
    CHECK_EQ(rec_count(&rec), 0);
    agent_run(&b, step_release, &sb);
    CHECK_EQ(sb.rc, 0);
    CHECK_EQ(labyrinth_thread_release(z), 0); /* A takes B's batch */
    CHECK_EQ(rec_count(&rec), 1);
    CHECK_EQ(rec.r[0].kind, LABYRINTH_REPORT_BAD_FREE);
    CHECK_EQ(rec.r[0].err, -EALREADY);
    CHECK(rec.r[0].addr == p);
    struct labyrinth_zone_stats s = stats_of(z);
    CHECK_EQ(s.in_use_pages, 0);
    CHECK_EQ(s.free_pages, s.total_pages);
    CHECK_EQ(labyrinth_zone_check(z), 0);
    agent_stop(&b);
    agent_stop(&c);
    labyrinth_zone_destroy(z);
    CHECK_EQ(rec_count(&rec), 1); /* no leak */
    CASE_END("a stale outbox entry does not refuse a later, legitimate free");
}

int main(void)
{
    test_stale_outbox_entry();
    test_cross_thread();
    test_release();
    test_exit_returns_cache();
    test_shared_path();
    test_outlive();
    return check_done("api_threads");
}
