/*
 * cas_fallback_natural.c - the race of cas_fallback_twice.c without
 * single-stepping: the owner and a thread past max_threads free the same
 * page at the same moment (a spin barrier), for at most SECONDS seconds.
 * After every round in which both frees returned 0, labyrinth_zone_check.
 *   cc -O2 -pthread -I/work/wt-review/include cas_fallback_natural.c \
 *      /tmp/b-rev/liblabyrinth.a -o cas_fallback_natural
 */
#define _GNU_SOURCE
#include <labyrinth.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static struct labyrinth_zone *Z;
static void *volatile victim;
static volatile unsigned round_no, b_done;
static volatile int b_rc, quit;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void quiet(const struct labyrinth_report *r, void *a) { (void)r; (void)a; }

static void *thread_b(void *arg)
{
    (void)arg;
    unsigned seen = 0;
    while (!quit) {
        unsigned r = __atomic_load_n(&round_no, __ATOMIC_ACQUIRE);
        if (r == seen)
            continue;
        seen = r;
        b_rc = labyrinth_free_pages(Z, victim, 0);
        __atomic_store_n(&b_done, r, __ATOMIC_RELEASE);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 3;
    setvbuf(stdout, NULL, _IONBF, 0);
    struct labyrinth_zone_config c;
    memset(&c, 0, sizeof c);
    c.pages = 256;
    c.magazine_pages = 16;
    c.max_threads = 1;
    c.flags = LABYRINTH_ZONE_NO_WARDEN;
    Z = labyrinth_zone_create(&c);
    labyrinth_zone_set_report_handler(Z, quiet, NULL);
    labyrinth_free_pages(Z, labyrinth_alloc_pages(Z, LABYRINTH_GFP_ATOMIC, 0, 0), 0);
    pthread_t tb;
    pthread_create(&tb, NULL, thread_b, NULL);
    double end = now() + secs;
    unsigned long rounds = 0, both = 0;
    while (now() < end) {
        void *p = labyrinth_alloc_pages(Z, LABYRINTH_GFP_ATOMIC, 0, 0);
        if (!p) { printf("alloc NULL at round %lu\n", rounds); break; }
        victim = p;
        unsigned r = ++rounds;
        __atomic_store_n(&round_no, r, __ATOMIC_RELEASE);
        for (volatile int i = 0; i < (int)(rounds % 64); i++)
            ;
        int rc = labyrinth_free_pages(Z, p, 0);
        while (__atomic_load_n(&b_done, __ATOMIC_ACQUIRE) != r)
            ;
        if (rc == 0 && b_rc == 0) {
            both++;
            long chk = labyrinth_zone_check(Z);
            if (chk) {
                printf("round %lu: both frees returned 0 and labyrinth_zone_check = %ld\n", rounds, chk);
                quit = 1;
                pthread_join(tb, NULL);
                return 1;
            }
        }
    }
    quit = 1;
    pthread_join(tb, NULL);
    printf("%lu rounds, %lu with both frees 0, zone check clean\n", rounds, both);
    return 0;
}
