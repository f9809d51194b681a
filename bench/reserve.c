/*
 * reserve.c - labyrinth-bench-reserve: do the reserves hold under bursts?
 *
 * A fast context (one thread) takes 2 x (high - low) pages with ATOMIC as
 * fast as it can, hands each to a worker thread over a ring, and does it
 * again after a pause; repeated.  The worker frees what it receives.  For
 * several pauses between bursts and warden intervals, the table shows how
 * many ATOMIC allocations failed, how low the reserve went, how often the
 * warden ran and how long a burst took.  A failure is legitimate only when
 * the reserve is spent: every NULL is checked against the reserve level
 * read right after it (a NULL with reserve pages left would be spurious).
 * labyrinth only: the peers have no reserve to measure.
 */
#define _GNU_SOURCE
#include <labyrinth.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RING 8192u

static void *slots[RING];
static unsigned long head, tail; /* __atomic */
static int done;                 /* __atomic */
static struct labyrinth_zone *Z;

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static void *worker(void *arg)
{
    (void)arg;
    for (;;) {
        unsigned long t = __atomic_load_n(&tail, __ATOMIC_RELAXED);
        if (t == __atomic_load_n(&head, __ATOMIC_ACQUIRE)) {
            if (__atomic_load_n(&done, __ATOMIC_ACQUIRE) && t == __atomic_load_n(&head, __ATOMIC_ACQUIRE))
                return NULL;
            sched_yield();
            continue;
        }
        void *p = slots[t % RING];
        __atomic_store_n(&tail, t + 1, __ATOMIC_RELEASE); /* the slot is free again */
        labyrinth_free_pages(Z, p, 0);
    }
}

struct result {
    unsigned pause_ms, warden_us, bursts;
    size_t burst, reserve, low, high;
    unsigned long long nulls, spurious, from_reserve, warden_runs;
    size_t low_water;
    double burst_us;
};

static struct result run(size_t pages, unsigned pause_ms, unsigned warden_us, unsigned bursts)
{
    struct labyrinth_zone_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.name = "reserve";
    cfg.pages = pages;
    cfg.warden_interval_us = warden_us;
    Z = labyrinth_zone_create(&cfg);
    if (!Z) {
        perror("labyrinth-bench-reserve: zone");
        exit(1);
    }
    struct labyrinth_zone_stats st;
    labyrinth_zone_stats(Z, &st);
    struct result r;
    memset(&r, 0, sizeof r);
    r.pause_ms = pause_ms;
    r.warden_us = warden_us;
    r.bursts = bursts;
    r.burst = 2 * (st.high_pages - st.low_pages);
    r.reserve = st.reserve_target_pages;
    r.low = st.low_pages;
    r.high = st.high_pages;
    head = tail = 0;
    __atomic_store_n(&done, 0, __ATOMIC_RELEASE);
    pthread_t w;
    pthread_create(&w, NULL, worker, NULL);
    double total = 0;
    for (unsigned b = 0; b < bursts; b++) {
        double t0 = now_ns();
        for (size_t i = 0; i < r.burst; i++) {
            void *p = labyrinth_alloc_pages(Z, LABYRINTH_GFP_ATOMIC, 0, 0);
            if (!p) {
                r.nulls++;
                struct labyrinth_zone_stats s;
                labyrinth_zone_stats(Z, &s);
                /* The warden may have refilled it in the meantime; only a
                 * reserve well above a magazine's worth is suspicious. */
                if (s.reserve_free_pages > 64)
                    r.spurious++;
                continue;
            }
            unsigned long h = __atomic_load_n(&head, __ATOMIC_RELAXED);
            while (h - __atomic_load_n(&tail, __ATOMIC_ACQUIRE) >= RING)
                sched_yield();
            slots[h % RING] = p;
            __atomic_store_n(&head, h + 1, __ATOMIC_RELEASE);
        }
        total += now_ns() - t0;
        if (pause_ms)
            usleep(pause_ms * 1000u);
    }
    __atomic_store_n(&done, 1, __ATOMIC_RELEASE);
    pthread_join(w, NULL);
    labyrinth_thread_release(Z);
    labyrinth_zone_stats(Z, &st);
    r.from_reserve = st.atomic_reserve_allocs;
    r.low_water = st.reserve_low_water;
    r.warden_runs = st.warden_runs;
    r.burst_us = total / bursts / 1000.0;
    if (labyrinth_zone_check(Z) != 0 || st.in_use_pages != 0)
        fprintf(stderr, "labyrinth-bench-reserve: zone inconsistent after the run\n");
    labyrinth_zone_destroy(Z);
    return r;
}

int main(int argc, char **argv)
{
    size_t pages = 4096;
    unsigned bursts = 50;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--pages") && i + 1 < argc)
            pages = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--bursts") && i + 1 < argc)
            bursts = (unsigned)strtoul(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: labyrinth-bench-reserve [--pages N] [--bursts N]\n");
            return 2;
        }
    }
    if (pages < 256 || bursts < 1) {
        fprintf(stderr, "labyrinth-bench-reserve: --pages >= 256, --bursts >= 1\n");
        return 2;
    }
    static const unsigned pauses[] = {0, 1, 5, 20};
    static const unsigned wardens[] = {10000, 1000};
    printf("## Reserves under bursts (labyrinth-bench-reserve)\n\n");
    printf("A fast context takes 2 x (high - low) pages with ATOMIC as fast as it can and hands\n"
           "them to a worker that frees them; %u bursts per row, with the pause given between\n"
           "bursts, in a zone of %zu pages with the default watermarks. \"Spurious\" counts NULLs\n"
           "returned while more than a magazine of reserve pages was left (0 is the contract).\n\n",
           bursts, pages);
    printf("| pause | warden interval | burst (pages) | reserve / low / high | NULLs | spurious | from reserve | reserve low point | warden runs | µs per burst |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|\n");
    unsigned long long spurious = 0;
    for (unsigned w = 0; w < 2; w++)
        for (unsigned p = 0; p < 4; p++) {
            struct result r = run(pages, pauses[p], wardens[w], bursts);
            printf("| %u ms | %u µs | %zu | %zu / %zu / %zu | %llu | %llu | %llu | %zu | %llu | %.0f |\n", r.pause_ms,
                   r.warden_us, r.burst, r.reserve, r.low, r.high, r.nulls, r.spurious, r.from_reserve, r.low_water,
                   r.warden_runs, r.burst_us);
            spurious += r.spurious;
        }
    printf("\n%s\n", spurious ? "Spurious NULLs were seen: see the table." : "No spurious NULL in any row.");
    return spurious ? 1 : 0;
}
