/*
 * api_reportring.c (a reproducer from the review of the issue-11 changes) - a report made on another thread while a
 * handler change is under way goes to the default handler (stderr) once the
 * reader's 64 tries run out, although the header promises the fallback
 * only for a report from a signal handler interrupting the change on the
 * same thread.  Thread W alternates two user handlers; thread R makes
 * misaligned frees (each one misuse report).  Counted: misuse_reports
 * versus the calls the user handlers got.  stderr lines are the default
 * handler's.  Bounded: 2 seconds.
 *   cc -O2 -pthread -I/work/wt-review/include report_default_fallback.c \
 *      /tmp/b-rev/liblabyrinth.a -o report_default_fallback
 */
#define _GNU_SOURCE
#include <labyrinth.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static struct labyrinth_zone *Z;
static unsigned long calls_a, calls_b, mismatched;
static int quit; /* atomic accesses only */
static int arg_a, arg_b;

static void fn_a(const struct labyrinth_report *r, void *arg)
{
    (void)r;
    if (arg != &arg_a) __atomic_fetch_add(&mismatched, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&calls_a, 1, __ATOMIC_RELAXED);
}
static void fn_b(const struct labyrinth_report *r, void *arg)
{
    (void)r;
    if (arg != &arg_b) __atomic_fetch_add(&mismatched, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&calls_b, 1, __ATOMIC_RELAXED);
}

static void *writer(void *x)
{
    (void)x;
    while (!__atomic_load_n(&quit, __ATOMIC_RELAXED)) {
        labyrinth_zone_set_report_handler(Z, fn_a, &arg_a);
        labyrinth_zone_set_report_handler(Z, fn_b, &arg_b);
    }
    return NULL;
}

int main(void)
{
    struct labyrinth_zone_config c;
    memset(&c, 0, sizeof c);
    c.pages = 64;
    c.flags = LABYRINTH_ZONE_NO_WARDEN;
    Z = labyrinth_zone_create(&c);
    labyrinth_zone_set_report_handler(Z, fn_a, &arg_a);
    char *p = labyrinth_alloc_pages(Z, LABYRINTH_GFP_ATOMIC, 0, 0);
    pthread_t w;
    pthread_create(&w, NULL, writer, NULL);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    unsigned long n = 0;
    do {
        for (int i = 0; i < 1000; i++, n++)
            labyrinth_free_pages(Z, p + 8, 0); /* -EINVAL, one report */
        clock_gettime(CLOCK_MONOTONIC, &t1);
    } while (t1.tv_sec - t0.tv_sec < 2);
    __atomic_store_n(&quit, 1, __ATOMIC_RELAXED);
    pthread_join(w, NULL);
    struct labyrinth_zone_stats s;
    labyrinth_zone_stats(Z, &s);
    unsigned long user = calls_a + calls_b;
    printf("bad frees %lu, misuse_reports %llu, to user handlers %lu (a %lu, b %lu), handler/arg "
           "mismatches %lu, NOT given to any user handler: %llu\n",
           n, s.misuse_reports, user, calls_a, calls_b, mismatched, s.misuse_reports - user);
    labyrinth_free_pages(Z, p, 0);
    labyrinth_zone_destroy(Z);
    return s.misuse_reports != user;
}
