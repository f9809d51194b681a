/*
 * gen_wrap.c - finding 11.3: a racing double free whose stale entry waits
 * while its page's generation comes round hands the page out twice.
 *
 *   main (the owner, a NO_WARDEN zone) allocates P at generation g;
 *   thread C frees P and lets its cache go (its entry reaches main's inbox);
 *   thread B frees P too (misuse: a racing double free, queued in B's
 *   outbox while P is still allocated) and waits;
 *   main takes P back, then frees and allocates it until its level has
 *   made a multiple of 2^bits allocations since g: P is held at g again;
 *   B lets its cache go: its stale {P, g} reaches main's inbox;
 *   main allocates: if P comes out while main holds it, the page was
 *   handed out twice.
 *
 * The generation is 32 bits (2^32 allocations, about half a minute of
 * pairs); a build with -DLABYRINTH_WRAP_GEN_BITS=8 narrows it so that the
 * same history takes 256.  Run: gen_wrap BITS (the build's width).
 *   cmake -S . -B build-gen8 -DLABYRINTH_WRAP_GEN_BITS=8 -DLABYRINTH_TOOLS=OFF
 *   cmake --build build-gen8 --target labyrinth_static
 *   cc -O2 -pthread -Iinclude tests/open/gen_wrap.c build-gen8/liblabyrinth.a -o /tmp/gen_wrap
 *   /tmp/gen_wrap 8
 * Exit 1 when the page was handed out twice, 0 when not.
 */
#define _GNU_SOURCE
#include <labyrinth.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct labyrinth_zone *Z;
static void *P;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int step;

static void wait_step(int s)
{
    pthread_mutex_lock(&mu);
    while (step < s)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
}
static void set_step(int s)
{
    pthread_mutex_lock(&mu);
    step = s;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void *thread_c(void *arg)
{
    (void)arg;
    int rc = labyrinth_free_pages(Z, P, 0);
    printf("C: free(P) = %d\n", rc);
    labyrinth_thread_release(Z);
    return NULL;
}
static void *thread_b(void *arg)
{
    (void)arg;
    int rc = labyrinth_free_pages(Z, P, 0);
    printf("B: free(P) = %d (a racing double free: queued)\n", rc);
    set_step(1);
    wait_step(2);
    labyrinth_thread_release(Z);
    set_step(3);
    return NULL;
}

static void quiet(const struct labyrinth_report *r, void *a)
{
    (void)a;
    printf("report: %s\n", r->message);
}

int main(int argc, char **argv)
{
    unsigned bits = argc > 1 ? (unsigned)atoi(argv[1]) : 32;
    uint64_t period = (uint64_t)1 << bits;
    struct labyrinth_zone_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.name = "gen_wrap";
    cfg.pages = 1024;
    cfg.flags = LABYRINTH_ZONE_NO_WARDEN;
    Z = labyrinth_zone_create(&cfg);
    if (!Z)
        return 2;
    labyrinth_zone_set_report_handler(Z, quiet, NULL);
    uint64_t count = 0; /* main's order-0 allocations: its level's generation */
    P = labyrinth_alloc_pages(Z, LABYRINTH_GFP_ATOMIC, 0, 0);
    count++;
    uint64_t g = count;
    pthread_t b, c;
    pthread_create(&b, NULL, thread_b, NULL);
    wait_step(1);
    pthread_create(&c, NULL, thread_c, NULL);
    pthread_join(c, NULL);
    /* Take P back: allocate until it comes out (the inbox is taken when the
     * magazines run dry). */
    static void *held[1024];
    size_t n = 0;
    int got = 0;
    while (n < 1024) {
        void *q = labyrinth_alloc_pages(Z, LABYRINTH_GFP_ATOMIC, 0, 0);
        if (!q)
            break;
        count++;
        if (q == P) {
            got = 1;
            break;
        }
        held[n++] = q;
    }
    if (!got) {
        printf("P did not come back (%zu pages taken)\n", n);
        return 2;
    }
    while (n > 0)
        labyrinth_free_pages(Z, held[--n], 0);
    /* Cycle P until its generation is g again. */
    uint64_t misses = 0;
    while ((count - g) % period != 0) {
        labyrinth_free_pages(Z, P, 0);
        void *q = labyrinth_alloc_pages(Z, LABYRINTH_GFP_ATOMIC, 0, 0);
        count++;
        if (q != P) { /* not on top: keep it and look again */
            misses++;
            labyrinth_free_pages(Z, q, 0);
            q = NULL;
            while (q != P) {
                q = labyrinth_alloc_pages(Z, LABYRINTH_GFP_ATOMIC, 0, 0);
                count++;
                if (q != P)
                    held[n++] = q;
            }
            while (n > 0)
                labyrinth_free_pages(Z, held[--n], 0);
        }
    }
    printf("main: holds P at generation g again after %llu allocations (%llu misses)\n",
           (unsigned long long)(count - g), (unsigned long long)misses);
    set_step(2);
    wait_step(3);
    pthread_join(b, NULL);
    /* Take everything: P must not come out while main holds it. */
    int twice = 0;
    while (n < 1024) {
        void *q = labyrinth_alloc_pages(Z, LABYRINTH_GFP_ATOMIC, 0, 0);
        if (!q)
            break;
        if (q == P)
            twice = 1;
        held[n++] = q;
    }
    long chk = labyrinth_zone_check(Z);
    printf("main: %zu more pages taken, zone_check %ld: %s\n", n, chk,
           twice ? "P HANDED OUT TWICE" : "P not handed out again");
    return twice ? 1 : 0;
}
