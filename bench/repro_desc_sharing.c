/*
 * repro_desc_sharing.c - two threads that each recycle one page of the
 * same labyrinth zone slow each other down when the two pages are
 * neighbours.
 *
 * Every page has an 8-byte descriptor, 8 to a 64-byte cache line, and
 * every order-0 alloc and free writes its page's descriptor.  When two
 * threads' hot pages are neighbours, both write the same line (or two
 * adjacent lines, which the CPU's adjacent-line prefetcher moves as a
 * 128-byte pair): it bounces between the CPUs on every operation.
 *
 * Thread A allocates `handed` pages and thread B frees them, as a handoff
 * would; then each thread runs a LIFO alloc/free loop on its own top page.
 * Where the two top pages land depends on the count and on the library's
 * caching policy (which changes): the program prints, per count, how far
 * apart they are, whether their descriptors share a 64-byte line or a
 * 128-byte pair of lines, and each thread's rate.  Compare with a count
 * whose pages are far apart.  Needs 2 CPUs.
 *
 * Before commit db8ba0c, B's frees put A's pages in B's own cache, so for
 * most counts (65, 100, 4097: anything but a multiple of the 64-page
 * magazine) the two hot pages were neighbours on one descriptor line and
 * both threads ran at a quarter of their rate.  Since db8ba0c frees go
 * back to the page's owner, and the default counts land far apart.
 *
 *   labyrinth-repro-desc-sharing [HANDED...]  (default: 1 2 3 64 65 100 4096 4097)
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "labyrinth.h"

#define REPRO_PAIRS 10000000ull

static struct labyrinth_zone *zone;
static pthread_barrier_t barrier;
static void **handed_pages;
static unsigned handed;
static uintptr_t hot[2];
static double rate[2];

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void *thread_main(void *arg)
{
    int id = (int)(intptr_t)arg;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(id, &one);
    pthread_setaffinity_np(pthread_self(), sizeof one, &one);

    /* Each thread claims its cache. */
    labyrinth_free_pages(zone, labyrinth_alloc_pages(zone, LABYRINTH_GFP_ATOMIC, 0, 0), 0);
    pthread_barrier_wait(&barrier);
    if (id == 0)
        for (unsigned i = 0; i < handed; i++)
            handed_pages[i] = labyrinth_alloc_pages(zone, LABYRINTH_GFP_ATOMIC, 0, 0);
    pthread_barrier_wait(&barrier);
    if (id == 1)
        for (unsigned i = 0; i < handed; i++)
            labyrinth_free_pages(zone, handed_pages[i], 0);
    pthread_barrier_wait(&barrier);

    void *p = labyrinth_alloc_pages(zone, LABYRINTH_GFP_ATOMIC, 0, 0);
    hot[id] = (uintptr_t)p;
    labyrinth_free_pages(zone, p, 0);
    pthread_barrier_wait(&barrier);
    double t0 = now_s();
    for (unsigned long long i = 0; i < REPRO_PAIRS; i++) {
        p = labyrinth_alloc_pages(zone, LABYRINTH_GFP_ATOMIC, 0, 0);
        __asm__ __volatile__("" : : "r"(p) : "memory");
        labyrinth_free_pages(zone, p, 0);
    }
    rate[id] = (double)REPRO_PAIRS / (now_s() - t0) / 1e6;
    return NULL;
}

int main(int argc, char **argv)
{
    static const char *const defaults[] = {"1", "2", "3", "64", "65", "100", "4096", "4097"};
    const char *const *counts = argc > 1 ? (const char *const *)argv + 1 : defaults;
    int ncounts = argc > 1 ? argc - 1 : (int)(sizeof defaults / sizeof defaults[0]);
    size_t page = labyrinth_page_size();
    struct labyrinth_zone_config cfg = {.name = "repro", .pages = 65536};

    handed_pages = calloc(cfg.pages, sizeof *handed_pages);
    if (!handed_pages)
        return 1;
    for (int c = 0; c < ncounts; c++) {
        char *end;
        unsigned long n = strtoul(counts[c], &end, 10);
        if (*end || n > cfg.pages / 2) {
            fprintf(stderr, "usage: %s [HANDED...]  (each 0..%zu)\n", argv[0], cfg.pages / 2);
            return 2;
        }
        handed = (unsigned)n;
        zone = labyrinth_zone_create(&cfg);
        if (!zone) {
            perror("labyrinth_zone_create");
            return 1;
        }
        pthread_barrier_init(&barrier, NULL, 2);
        pthread_t t[2];
        for (int i = 0; i < 2; i++)
            pthread_create(&t[i], NULL, thread_main, (void *)(intptr_t)i);
        for (int i = 0; i < 2; i++)
            pthread_join(t[i], NULL);
        pthread_barrier_destroy(&barrier);
        long apart = ((long)hot[1] - (long)hot[0]) / (long)page;
        /* Descriptors are 8 bytes: 8 pages to a line, 16 to a pair. */
        const char *where = hot[0] / page / 8 == hot[1] / page / 8     ? "SHARE a 64-byte line"
                            : hot[0] / page / 16 == hot[1] / page / 16 ? "share a 128-byte pair"
                                                                       : "far apart";
        printf("handed %5u: hot pages %+6ld pages apart, descriptors %-21s: %6.1f + %6.1f M pairs/s\n", handed,
               apart, where, rate[0], rate[1]);
        labyrinth_zone_destroy(zone);
    }
    free(handed_pages);
    return 0;
}
