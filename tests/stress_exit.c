/*
 * stress_exit.c - regression tests for findings 11.1 and 11.2: labyrinth's
 * thread-exit hook.
 *
 * 11.1 - a signal during thread exit hands pages out twice.
 *   The exit hook lb_tls_exit (src/cache.c; a pthread-key destructor, see
 *   lb_os_thread_exit_hook_init/arm in src/os/os_linux.c) calls
 *   lb_cache_release at depth 0 without lb_enter(), while the thread's TLS
 *   still names the cache as current (cur_serial, cur_lvl).  A signal
 *   handler that calls labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0)
 *   meanwhile runs at depth 0 too, takes the fast path on level 0 and pops
 *   a page from the very magazine lb_cache_mag_to_buddy is giving to the
 *   buddy (it read the count before the pop): the page ends up in the
 *   handler's hands AND free in the buddy.
 *   Interleaving hunted: a worker thread fills both magazines of its level
 *   0 (allocates then frees 2 x 256 pages, magazine_pages = 256) and
 *   returns; its exit hook then gives them to the buddy while a signal
 *   handler on that thread allocates ATOMIC pages.  The handler allocates
 *   only while the worker's TLS still names the zone (white-box gate:
 *   lb_tls.cur_serial or the zone's TLS slot), and keeps its pages (up to
 *   64) in a handler-safe array.
 *   Phase 1 (signals; up to 100 exits or LB_STRESS_SECONDS, default 2):
 *   the main thread holds the buddy lock (white-box) while the worker's
 *   exit hook reaches lb_cache_release, so the hook waits at lb_spin_lock
 *   just before the magazines go to the buddy; then it unlocks and fires
 *   SIGUSR1 at the exiting worker every few microseconds (pthread_kill)
 *   until the worker is gone.  Timing-dependent: on an idle machine the
 *   first exits already show it; on a loaded one it may miss.
 *   Phase 2 (deterministic; plain x86-64 builds; up to 3 exits, when phase
 *   1 saw nothing): the worker sets the trap flag (EFLAGS.TF) just before
 *   it returns, so its whole exit is single-stepped; the SIGTRAP handler
 *   allocates every 512 instructions while the zone's buddy lock is held
 *   (only the hook holds it then: the locked part of lb_cache_release,
 *   where the magazines go to the buddy), and stops stepping after 4 such
 *   allocations or once the hook has forgotten the zone.
 *   Detection, after the join: every page a handler holds must read as
 *   allocated (labyrinth_page_info: IN_USE, the block at that address);
 *   then the zone is drained (ATOMIC until NULL) through an ownership
 *   table (CAS 0 -> owner stamp, handler pages stamped first): a page the
 *   handler holds that comes out again is "handed out twice".
 *   labyrinth_zone_check() must be 0 too (checked before the drain: a
 *   page popped after the hook gave it to the buddy has its free-list
 *   descriptor overwritten); it often is 0 even so, the page being a valid
 *   free page in the buddy: the check cannot know a handler holds it.
 *
 * 11.2 - the exit hook is armed once per thread.
 *   lb_cache_claim arms the hook only if lb_tls.armed is 0, and the hook
 *   never clears it.  A pthread key created after the zone (its destructor
 *   runs after labyrinth's in the same round; glibc runs up to
 *   PTHREAD_DESTRUCTOR_ITERATIONS rounds, and would run another if the
 *   hook were armed again) whose destructor allocates and frees a page
 *   claims a cache that nobody ever releases.
 *   Detection: a zone with max_threads = 4; six threads, one after the
 *   other, each use the zone and set that key; after each join
 *   labyrinth_zone_stats().threads must be 0; and a seventh thread must
 *   still get a cache of its own (white-box: its TLS names the zone as
 *   current after an allocation).
 *
 * LB_STRESS_SECONDS bounds phase 1 of 11.1 (default 2; 0 skips it).
 */
#define _GNU_SOURCE
#include "check.h"
#include "region.h"
#include "zone.h"

#include <errno.h>
#include <labyrinth.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "singlestep.h"

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_us(unsigned us)
{
    struct timespec ts = {0, (long)us * 1000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void spin_ns(uint64_t ns)
{
    uint64_t end = now_ns() + ns;
    while (now_ns() < end) {
    }
}

static const char *state_name(enum labyrinth_page_state s)
{
    switch (s) {
    case LABYRINTH_PAGE_NOT_A_BLOCK: return "NOT_A_BLOCK (inside a free block)";
    case LABYRINTH_PAGE_FREE: return "FREE";
    case LABYRINTH_PAGE_IN_USE: return "IN_USE";
    case LABYRINTH_PAGE_CACHED: return "CACHED";
    case LABYRINTH_PAGE_RESERVED: return "RESERVED";
    }
    return "?";
}

/* ==== 11.1: a signal during the exit hook ============================================ */

#define MAG   256u     /* magazine_pages: a long lb_cache_mag_to_buddy */
#define NP    (2 * MAG) /* fills the loaded and the spare magazine      */
#define HMAX  64u

static struct labyrinth_zone *Z;
static __thread int exiting;          /* the worker returned from its function */
static void *hpages[HMAX];            /* pages the exit-time handler took      */
static unsigned hn;                   /* written by the handler only           */
static unsigned long hsignals, hgated;

/* Does this thread's TLS still name Z (as its current zone, or in Z's
 * slot)?  The state lb_tls_exit runs lb_cache_release in.  Once the hook
 * has forgotten Z, an allocation from a handler would claim a new cache
 * that nobody releases (finding 11.2, tested below): the handlers stop. */
static bool names_z(void)
{
    unsigned slot = lb_zone_of(Z)->cache.tls_slot;
    return lb_ctx()->cur_serial == lb_handle_key(Z) || (slot < LB_TLS_ZONES && lb_ctx()->z[slot].serial == Z->serial);
}

/* What the handler does: one ATOMIC page, kept (handler-safe array). */
static void handler_alloc(void)
{
    __atomic_fetch_add(&hgated, 1, __ATOMIC_RELAXED);
    void *p = labyrinth_alloc_pages(Z, LABYRINTH_GFP_ATOMIC, 0, 0);
    if (p)
        hpages[hn++] = p;
}

static void on_usr1(int sig)
{
    (void)sig;
    int saved = errno;
    __atomic_fetch_add(&hsignals, 1, __ATOMIC_RELAXED);
    if (exiting && names_z() && hn < HMAX)
        handler_alloc();
    errno = saved;
}

#if STEP_PHASE
#define STRIDE 512u   /* phase 2: a handler allocation every STRIDE instructions */
#define STEP_TAKE 4u  /* ... of the locked part, then stepping stops */
static __thread int stepping;
static unsigned long ss_steps;

static void on_trap(int sig, siginfo_t *si, void *ucv)
{
    (void)sig;
    (void)si;
    int saved = errno;
    if (!stepping || !exiting || !names_z() || hn >= STEP_TAKE) {
        stepping = 0; /* done: the rest of the exit runs at full speed */
        step_tf_off(ucv);
    } else if (++ss_steps % STRIDE == 0 && lb_load_rlx_u32(&lb_zone_of(Z)->buddy.lock.v)) {
        /* Inside lb_cache_release's buddy-locked part (nothing else uses
         * Z meanwhile): where the magazines go to the buddy. */
        handler_alloc();
    }
    errno = saved;
}

#endif

struct worker {
    int ready, go, step;
    unsigned long alloc_fails;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    static __thread void *mine[NP];
    for (unsigned i = 0; i < NP; i++) {
        mine[i] = labyrinth_alloc_pages(Z, LABYRINTH_GFP_KERNEL, 0, 0);
        if (!mine[i])
            w->alloc_fails++;
    }
    for (unsigned i = 0; i < NP; i++)
        if (mine[i])
            labyrinth_free_pages(Z, mine[i], 0);
    /* Both magazines of level 0 are full now; the exit hook will give them
     * to the buddy. */
    exiting = 1;
    __atomic_store_n(&w->ready, 1, __ATOMIC_RELEASE);
    while (!__atomic_load_n(&w->go, __ATOMIC_ACQUIRE))
        sched_yield();
#if STEP_PHASE
    if (w->step) {
        stepping = 1;
        step_tf_on(); /* single-step the rest of the thread's life: its exit */
    }
#endif
    return NULL;
}

static uintptr_t z_lo;
static size_t z_pages;
static uint8_t *own; /* 0 free, 1 held by a handler, 2 handed out by the drain */

static size_t page_idx(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    if (a < z_lo || a >= z_lo + z_pages * labyrinth_page_size())
        return (size_t)-1;
    return (a - z_lo) / labyrinth_page_size();
}

/* Returns 1 when the handler pages of this exit are also free in the zone. */
static int check_exit(unsigned iter)
{
    int bad = 0;
    unsigned said_free = 0, said_twice = 0; /* counted; the first 3 of each kind printed */
    /* 1. Every page a handler holds reads as allocated. */
    for (unsigned i = 0; i < hn; i++) {
        struct labyrinth_page_info info;
        int rc = labyrinth_page_info(Z, hpages[i], &info);
        if (rc != 0 || info.state != LABYRINTH_PAGE_IN_USE || info.block != hpages[i] || info.order != 0) {
            bad = 1;
            if (said_free++ >= 3)
                continue;
            fprintf(stderr,
                    "FAIL: exit %u: page %p, taken by a signal handler (ATOMIC, fast path) while its "
                    "thread's exit hook released the thread's cache, reads as %s (block %p, order %u, "
                    "rc %d) in the zone: it is free there while the handler holds it\n",
                    iter, hpages[i], rc ? "(page_info failed)" : state_name(info.state), info.block,
                    info.order, rc);
        }
    }
    /* 2. The zone's own invariants (before the drain: a page popped from a
     * magazine the hook had already given to the buddy has its free-list
     * descriptor overwritten, and taking from those lists would crash). */
    long chk = labyrinth_zone_check(Z);
    if (chk) {
        fprintf(stderr,
                "FAIL: exit %u: labyrinth_zone_check() = %ld after the exit (the handler took %u page(s), "
                "%u of them read as free in the zone); the zone is corrupt, not drained\n",
                iter, chk, hn, said_free);
        return 1;
    }
    /* 3. Drain the zone: no page a handler holds may come out. */
    memset(own, 0, z_pages);
    for (unsigned i = 0; i < hn; i++) {
        size_t k = page_idx(hpages[i]);
        REQUIRE(k != (size_t)-1);
        if (__atomic_exchange_n(&own[k], 1, __ATOMIC_RELAXED) != 0) {
            fprintf(stderr, "FAIL: exit %u: page %p handed out twice to the exit-time handler\n", iter,
                    hpages[i]);
            bad = 1;
        }
    }
    static void *drained[1u << 16];
    size_t nd = 0;
    while (nd < sizeof drained / sizeof drained[0]) {
        void *p = labyrinth_alloc_pages(Z, LABYRINTH_GFP_ATOMIC, 0, 0);
        if (!p)
            break;
        drained[nd++] = p;
        size_t k = page_idx(p);
        REQUIRE(k != (size_t)-1);
        uint8_t was = __atomic_exchange_n(&own[k], 2, __ATOMIC_RELAXED);
        if (was) {
            bad = 1;
            if (said_twice++ >= 3)
                continue;
            fprintf(stderr,
                    "FAIL: exit %u: page %p handed out twice: the signal handler of the exiting thread "
                    "holds it, and draining the zone handed it out again (%s)\n",
                    iter, p, was == 1 ? "handler's page" : "twice in the drain");
        }
    }
    if (bad) {
        fprintf(stderr,
                "  (exit %u: the handler took %u page(s): %u read as free in the zone, %u handed out again "
                "by the drain; labyrinth_zone_check() = 0)\n", iter, hn, said_free, said_twice);
        return 1;
    }
    for (size_t i = 0; i < nd; i++)
        REQUIRE(labyrinth_free_pages(Z, drained[i], 0) == 0);
    for (unsigned i = 0; i < hn; i++)
        REQUIRE(labyrinth_free_pages(Z, hpages[i], 0) == 0);
    return 0;
}

static int part_exit_signal(double seconds)
{
    struct labyrinth_zone_config c;
    memset(&c, 0, sizeof c);
    c.name = "exit-signal";
    c.pages = 4096;
    c.magazine_pages = MAG;
    c.flags = LABYRINTH_ZONE_NO_WARDEN;
    Z = labyrinth_zone_create(&c);
    REQUIRE(Z != NULL);
    struct labyrinth_region_info ri;
    REQUIRE(labyrinth_zone_region_info(Z, 0, &ri) == 0);
    z_lo = (uintptr_t)ri.start;
    z_pages = ri.pages;
    own = calloc(z_pages, 1);
    REQUIRE(own != NULL);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    REQUIRE(sigaction(SIGUSR1, &sa, NULL) == 0);

    /* Phase 1: signals at the exiting thread. */
    uint64_t start = now_ns(), deadline = start + (uint64_t)(seconds * 1e9);
    unsigned iter = 0, taken = 0;
    int failed = 0;
    for (; iter < 100 && now_ns() < deadline && !failed; iter++) {
        struct worker w = {0, 0, 0, 0};
        hn = 0;
        pthread_t t;
        REQUIRE(pthread_create(&t, NULL, worker_main, &w) == 0);
        while (!__atomic_load_n(&w.ready, __ATOMIC_ACQUIRE))
            sched_yield();
        /* Hold the buddy lock: the exit hook will wait for it inside
         * lb_cache_release, just before it gives the magazines away. */
        lb_spin_lock(&lb_zone_of(Z)->buddy.lock);
        __atomic_store_n(&w.go, 1, __ATOMIC_RELEASE);
        sleep_us(300 + (iter % 7) * 100); /* pacing only: the hook reaches the lock */
        lb_spin_unlock(&lb_zone_of(Z)->buddy.lock);
        /* Signals while the magazines go to the buddy, until the thread is gone. */
        for (unsigned k = 0; k < 200000; k++) {
            pthread_kill(t, SIGUSR1);
            spin_ns(500 + (k % 5) * 400);
            if (pthread_tryjoin_np(t, NULL) == 0)
                goto joined;
        }
        REQUIRE(pthread_join(t, NULL) == 0);
    joined:
        REQUIRE(w.alloc_fails == 0);
        taken += hn;
        failed = check_exit(iter);
    }
    printf("11.1 phase 1 (signals): %u thread exits in %.2f s, %lu signals, %lu handler allocations while "
           "the exiting thread's TLS named the zone, %u pages taken%s\n",
           iter, (double)(now_ns() - start) / 1e9, hsignals, hgated, taken,
           failed ? ": a page was handed out twice" : ", none handed out twice");
#if STEP_PHASE
    /* Phase 2: single-step the exit, a handler allocation every STRIDE
     * instructions of the buddy-locked part of lb_cache_release. */
    struct sigaction st;
    memset(&st, 0, sizeof st);
    st.sa_sigaction = on_trap;
    st.sa_flags = SA_SIGINFO;
    sigemptyset(&st.sa_mask);
    REQUIRE(sigaction(SIGTRAP, &st, NULL) == 0);
    for (unsigned round = 0; round < 3 && !failed; round++, iter++) {
        struct worker w = {0, 1, 1, 0};
        hn = 0;
        hgated = 0;
        ss_steps = 0;
        uint64_t t0 = now_ns();
        pthread_t t;
        REQUIRE(pthread_create(&t, NULL, worker_main, &w) == 0);
        REQUIRE(pthread_join(t, NULL) == 0);
        REQUIRE(w.alloc_fails == 0);
        printf("11.1 phase 2 (single-stepped exit %u): %lu instructions stepped in %.2f s, %u pages taken "
               "by the handler\n", iter, ss_steps, (double)(now_ns() - t0) / 1e9, hn);
        failed = check_exit(iter);
    }
#else
    printf("11.1 phase 2 skipped: single-stepping is for plain x86-64 builds only\n");
#endif
    if (!failed) {
        long chk = labyrinth_zone_check(Z);
        if (chk != 0) {
            fprintf(stderr, "FAIL: 11.1: labyrinth_zone_check() = %ld after the exits\n", chk);
            failed = 1;
        }
        labyrinth_zone_destroy(Z);
    } /* else: the zone is corrupt, leave it */
    free(own);
    return failed;
}

/* ==== 11.2: a destructor that runs after labyrinth's =================================== */

#define Z2_THREADS 4u

static struct labyrinth_zone *Z2;
static pthread_key_t late_key;
static int late_runs;

static void late_dtor(void *v)
{
    (void)v;
    void *p = labyrinth_alloc_pages(Z2, LABYRINTH_GFP_KERNEL, 0, 0);
    if (p)
        labyrinth_free_pages(Z2, p, 0);
    __atomic_fetch_add(&late_runs, 1, __ATOMIC_RELAXED);
}

static void *late_user(void *arg)
{
    (void)arg;
    REQUIRE(pthread_setspecific(late_key, (void *)1) == 0);
    void *p = labyrinth_alloc_pages(Z2, LABYRINTH_GFP_KERNEL, 0, 0);
    REQUIRE(p != NULL);
    REQUIRE(labyrinth_free_pages(Z2, p, 0) == 0);
    return NULL;
}

static void *probe(void *arg)
{
    int *got_cache = arg;
    void *p = labyrinth_alloc_pages(Z2, LABYRINTH_GFP_KERNEL, 0, 0);
    REQUIRE(p != NULL);
    *got_cache = lb_ctx()->cur_serial == lb_handle_key(Z2);
    REQUIRE(labyrinth_free_pages(Z2, p, 0) == 0);
    labyrinth_thread_release(Z2);
    return NULL;
}

static int part_armed_once(void)
{
    struct labyrinth_zone_config c;
    memset(&c, 0, sizeof c);
    c.name = "exit-armed";
    c.pages = 1024;
    c.max_threads = Z2_THREADS;
    c.flags = LABYRINTH_ZONE_NO_WARDEN;
    Z2 = labyrinth_zone_create(&c);
    REQUIRE(Z2 != NULL);
    /* Created after the zone (and so after labyrinth's exit key): its
     * destructor runs after labyrinth's in each round. */
    REQUIRE(pthread_key_create(&late_key, late_dtor) == 0);

    int failed = 0;
    size_t first_leak = 0;
    unsigned leaked_at = 0;
    for (unsigned i = 1; i <= Z2_THREADS + 2; i++) {
        pthread_t t;
        REQUIRE(pthread_create(&t, NULL, late_user, NULL) == 0);
        REQUIRE(pthread_join(t, NULL) == 0);
        struct labyrinth_zone_stats s;
        REQUIRE(labyrinth_zone_stats(Z2, &s) == 0);
        if (s.threads != 0 && !leaked_at) {
            leaked_at = i;
            first_leak = s.threads;
        }
        if (i == Z2_THREADS + 2 && s.threads != 0) {
            fprintf(stderr,
                    "FAIL: 11.2: after %u threads exited (each used the zone, and a pthread key created "
                    "after the zone has a destructor that allocates and frees a page), "
                    "labyrinth_zone_stats().threads = %zu, not 0: the cache the late destructor claimed "
                    "is never released (first seen after exit %u: threads = %zu; max_threads = %u)\n",
                    i, s.threads, leaked_at, first_leak, Z2_THREADS);
            failed = 1;
        }
    }
    CHECK_EQ(late_runs, Z2_THREADS + 2);
    int got_cache = 0;
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, probe, &got_cache) == 0);
    REQUIRE(pthread_join(t, NULL) == 0);
    if (!got_cache) {
        struct labyrinth_zone_stats s;
        REQUIRE(labyrinth_zone_stats(Z2, &s) == 0);
        fprintf(stderr,
                "FAIL: 11.2: a new thread got no cache of its own (all %zu of max_threads = %u caches "
                "are held by threads that have exited); it runs on the shared path\n",
                s.threads, Z2_THREADS);
        failed = 1;
    }
    printf("11.2: %u exits with a late destructor: %s\n", Z2_THREADS + 2,
           failed ? "caches leaked" : "every cache released");
    labyrinth_zone_destroy(Z2);
    return failed;
}

int main(void)
{
    const char *env = getenv("LB_STRESS_SECONDS");
    double secs = env ? atof(env) : 2.0;
    int f1 = part_exit_signal(secs);
    int f2 = part_armed_once();
    CHECK(!f1);
    CHECK(!f2);
    return check_done("stress_exit");
}
