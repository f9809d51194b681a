/*
 * outbox_starve.c - pages freed by a thread that then goes idle wait in its
 * outbox for as long as it stays idle; their owner meanwhile gets NULL from
 * every ATOMIC allocation, while labyrinth_zone_stats counts them as free
 * (in_flight_pages).  With and without a warden.
 *   cc -O2 -pthread -I/work/wt-review/include outbox_starve.c \
 *      /tmp/b-rev/liblabyrinth.a -o outbox_starve
 */
#define _GNU_SOURCE
#include <labyrinth.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static struct labyrinth_zone *Z;
static void *held[4096];
static size_t nfree;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int phase;
static unsigned long got;

static void *worker(void *arg)
{
    (void)arg;
    for (size_t i = 0; i < nfree; i++)
        if (labyrinth_free_pages(Z, held[i], 0))
            printf("worker: free failed\n");
    pthread_mutex_lock(&mu);
    phase = 1;
    pthread_cond_broadcast(&cv);
    while (phase != 2) /* idle, alive: an event loop waiting for work */
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    return NULL;
}

static void run(unsigned flags, const char *what)
{
    struct labyrinth_zone_config c;
    memset(&c, 0, sizeof c);
    c.name = what;
    c.pages = 512;
    c.magazine_pages = 64;
    c.flags = flags;
    Z = labyrinth_zone_create(&c);
    size_t n = 0;
    while (n < 4096 && (held[n] = labyrinth_alloc_pages(Z, LABYRINTH_GFP_ATOMIC, 0, 0)))
        n++;
    nfree = 63; /* the worker frees 63 of them: less than one batch */
    phase = 0;
    pthread_t t;
    pthread_create(&t, NULL, worker, NULL);
    pthread_mutex_lock(&mu);
    while (phase != 1)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);

    /* The owner needs pages for 2 seconds. */
    unsigned long tries = 0;
    got = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        void *p = labyrinth_alloc_pages(Z, LABYRINTH_GFP_ATOMIC, 0, 0);
        tries++;
        if (p) held[n + got++] = p; /* kept: the owner needs them */
        usleep(1000);
        clock_gettime(CLOCK_MONOTONIC, &t1);
    } while ((t1.tv_sec - t0.tv_sec) * 1000000000L + (t1.tv_nsec - t0.tv_nsec) < 2000000000L);
    struct labyrinth_zone_stats s;
    labyrinth_zone_stats(Z, &s);
    printf("%s: owner held %zu pages, worker freed 63 and idles: owner's ATOMIC allocations over 2 s: "
           "%lu tries, %lu pages obtained (kept); stats: free_pages=%zu in_flight_pages=%llu atomic_failures=%llu "
           "warden_runs=%llu\n",
           what, n, tries, got, s.free_pages, (unsigned long long)s.in_flight_pages,
           s.atomic_failures, (unsigned long long)s.warden_runs);

    pthread_mutex_lock(&mu);
    phase = 2;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    pthread_join(t, NULL);
    void *p = labyrinth_alloc_pages(Z, LABYRINTH_GFP_ATOMIC, 0, 0);
    printf("%s: after the worker exited: ATOMIC allocation %s\n", what, p ? "succeeds" : "still NULL");
    if (p)
        labyrinth_free_pages(Z, p, 0);
    for (size_t i = nfree; i < n + got; i++)
        labyrinth_free_pages(Z, held[i], 0);
    labyrinth_zone_destroy(Z);
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    run(0, "with warden");
    run(LABYRINTH_ZONE_NO_WARDEN, "no warden");
    return 0;
}
