/*
 * cas_fallback_pool.c - the race of cas_fallback_twice.c in a default zone
 * (4096 pages, max_threads 64, a warden), two threads only: thread B
 * allocates a burst, main frees it (the hand-off in reverse), so the
 * magazine pool ends parked in B's inbox and main's further remote frees
 * take the CAS fallback; then B and main free the same page at the same
 * moment (a double free) in a loop.  Bounded by SECONDS (default 3).
 *   cc -O2 -pthread -I/work/wt-review/include cas_fallback_pool.c \
 *      /tmp/b-rev/liblabyrinth.a -o cas_fallback_pool
 */
#define _GNU_SOURCE
#include <labyrinth.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static struct labyrinth_zone *Z;
static void *burst[3200];
static void *volatile victim;
static volatile unsigned round_no, main_done;
static volatile int main_rc, stage, quit;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}
static void quiet(const struct labyrinth_report *r, void *a) { (void)r; (void)a; }

/* main: frees the burst, then frees each victim when told. */
static void *freer(void *x)
{
    (void)x;
    while (__atomic_load_n(&stage, __ATOMIC_ACQUIRE) != 1)
        ;
    for (int i = 0; i < 3000; i++)
        labyrinth_free_pages(Z, burst[i], 0);
    __atomic_store_n(&stage, 2, __ATOMIC_RELEASE);
    unsigned seen = 0;
    while (!quit) {
        unsigned r = __atomic_load_n(&round_no, __ATOMIC_ACQUIRE);
        if (r == seen)
            continue;
        seen = r;
        main_rc = labyrinth_free_pages(Z, victim, 0);
        __atomic_store_n(&main_done, r, __ATOMIC_RELEASE);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 3;
    setvbuf(stdout, NULL, _IONBF, 0);
    Z = labyrinth_zone_create(NULL);
    labyrinth_zone_set_report_handler(Z, quiet, NULL);
    pthread_t t;
    pthread_create(&t, NULL, freer, NULL);
    /* This thread is "B", the owner. */
    for (int i = 0; i < 3100; i++)
        burst[i] = labyrinth_alloc_pages(Z, LABYRINTH_GFP_NOWAIT, 0, 0);
    for (int i = 3000; i < 3100; i++) /* a few pages in our own magazines */
        labyrinth_free_pages(Z, burst[i], 0);
    __atomic_store_n(&stage, 1, __ATOMIC_RELEASE);
    while (__atomic_load_n(&stage, __ATOMIC_ACQUIRE) != 2)
        ;
    struct labyrinth_zone_stats s;
    labyrinth_zone_stats(Z, &s);
    printf("after the burst: remote_cas_fallbacks=%llu in_flight_pages=%llu\n",
           (unsigned long long)s.remote_cas_fallbacks, (unsigned long long)s.in_flight_pages);
    double end = now() + secs;
    unsigned long rounds = 0, both = 0;
    int failed = 0;
    while (now() < end) {
        void *p = labyrinth_alloc_pages(Z, LABYRINTH_GFP_ATOMIC, 0, 0);
        if (!p) { printf("owner's ATOMIC alloc NULL at round %lu\n", rounds); break; }
        victim = p;
        unsigned r = ++rounds;
        __atomic_store_n(&round_no, r, __ATOMIC_RELEASE);
        for (volatile int i = 0; i < (int)(rounds % 64); i++)
            ;
        int rc = labyrinth_free_pages(Z, p, 0);
        while (__atomic_load_n(&main_done, __ATOMIC_ACQUIRE) != r)
            ;
        if (rc == 0 && main_rc == 0) {
            both++;
            /* Quiescent for a moment: both threads are between rounds. */
            long chk = labyrinth_zone_check(Z);
            if (chk) {
                printf("round %lu: the owner's free and the other thread's free of one page both "
                       "returned 0; labyrinth_zone_check = %ld\n", rounds, chk);
                failed = 1;
                break;
            }
        }
    }
    quit = 1;
    pthread_join(t, NULL);
    labyrinth_zone_stats(Z, &s);
    printf("%lu rounds, %lu with both frees 0; remote_cas_fallbacks=%llu misuse_reports=%llu\n", rounds,
           both, (unsigned long long)s.remote_cas_fallbacks, s.misuse_reports);
    return failed;
}
