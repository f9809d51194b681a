/*
 * stress_exit_destroy.c (a reproducer from the review of the issue-11 changes) - a worker that has returned from its last labyrinth
 * call and is exiting (its thread-exit hook releasing its cache, flushing
 * its outboxes) while the main thread destroys the zone.  The worker is
 * detached: main waits only for the worker's "done with the zone" flag.
 * Counts LEAK notices and crashes.  Bounded: ROUNDS rounds.
 *   cc -O2 -pthread -I/work/wt-review/include exit_vs_destroy.c \
 *      /tmp/b-rev/liblabyrinth.a -o exit_vs_destroy
 */
#define _GNU_SOURCE
#include <labyrinth.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <unistd.h>

static volatile int cur_round, in_destroy;
static void on_fatal(int sig)
{
    char b[128];
    int n = snprintf(b, sizeof b, "%s in round %d (inside labyrinth_zone_destroy: %s)\n",
                     sig == SIGALRM ? "HANG (no progress for 5 s)" : "SIGSEGV", cur_round,
                     in_destroy ? "yes" : "no");
    write(1, b, (size_t)n);
    _exit(1);
}

static struct labyrinth_zone *Z;
static void *mine[200];
static volatile int done;
static unsigned long notices, leaks, other;

static void on_rep(const struct labyrinth_report *r, void *a)
{
    (void)a;
    if (r->kind == LABYRINTH_REPORT_LEAK) leaks++;
    else if (r->kind == LABYRINTH_REPORT_NOTICE) notices++;
    else other++;
}

static void *worker(void *x)
{
    (void)x;
    /* Pages of its own, freed to its magazines, and main's pages freed
     * into its outbox (partial batch). */
    void *own[100];
    for (int i = 0; i < 100; i++) own[i] = labyrinth_alloc_pages(Z, LABYRINTH_GFP_ATOMIC, 0, 0);
    for (int i = 0; i < 100; i++) labyrinth_free_pages(Z, own[i], 0);
    for (int i = 0; i < 200; i++) labyrinth_free_pages(Z, mine[i], 0);
    __atomic_store_n(&done, 1, __ATOMIC_RELEASE);
    return NULL; /* exit hook runs now, concurrently with main's destroy */
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 300;
    signal(SIGALRM, on_fatal);
    if (!getenv("CORE")) signal(SIGSEGV, on_fatal);
    for (int r = 0; r < rounds; r++) {
        cur_round = r;
        alarm(5);
        struct labyrinth_zone_config c;
        memset(&c, 0, sizeof c);
        c.pages = 1024;
        c.magazine_pages = 64;
        c.flags = LABYRINTH_ZONE_NO_WARDEN;
        Z = labyrinth_zone_create(&c);
        labyrinth_zone_set_report_handler(Z, on_rep, NULL);
        for (int i = 0; i < 200; i++) mine[i] = labyrinth_alloc_pages(Z, LABYRINTH_GFP_ATOMIC, 0, 0);
        done = 0;
        pthread_t t;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        pthread_create(&t, &at, worker, NULL);
        while (!__atomic_load_n(&done, __ATOMIC_ACQUIRE))
            ;
        in_destroy = 1;
        labyrinth_zone_destroy(Z);
        in_destroy = 0;
        if (getenv("VERB")) fprintf(stderr, "round %d done\n", r);
    }
    printf("%d rounds: LEAK reports %lu, NOTICEs %lu, other reports %lu\n", rounds, leaks, notices, other);
    return 0;
}
