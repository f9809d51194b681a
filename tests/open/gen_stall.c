/*
 * gen_stall.c - a racing double free whose call is stopped mid-way while
 * the page comes round to the same descriptor word (issue 11.3's residue,
 * docs/reliability.md KB51, "What stays").  From the review of 8167138
 * (helper-33, 2026-12-04), reduced to one file.  Wrap flavour only (8-bit
 * low word; GEN_BITS must match LABYRINTH_WRAP_GEN_BITS):
 *   cmake -S . -B /tmp/gen8 -DLABYRINTH_WRAP=ON -DLABYRINTH_WRAP_GEN_BITS=8
 *   cmake --build /tmp/gen8 -j2
 *   gcc -O2 -g -no-pie -Iinclude -Itests tests/open/gen_stall.c \
 *       /tmp/gen8/liblabyrinth.a -lpthread -o gen_stall
 *   ./gen_stall 0    # B has no cache yet: the general path
 *   ./gen_stall 1    # B's outbox already goes to main: the fast path
 * C and B free P (generation g); B's call is single-stepped and stopped at
 * instruction K (it spins in its SIGTRAP handler); C's free lands, main
 * takes P back and cycles it to g + 256 (the same descriptor word) and
 * holds it; B resumes.  Every K is tried.  A stop before B's first read of
 * the descriptor is a later free (no allocator can tell), so the K before
 * that read print "HANDED OUT TWICE" by construction.  What fails today:
 * the K between that first read and lb_desc_gen's load of the high word
 * (about 27 instructions on the fast path, 15 on the general path, here,
 * gcc 12 -O2); on 511745b it was 47 and 219 (the generation was read late).
 */
#define _GNU_SOURCE
#include <labyrinth.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifndef GEN_BITS
#define GEN_BITS 8
#endif
#define PERIOD ((uint64_t)1 << GEN_BITS)
#define W (PERIOD / 2)
static struct labyrinth_zone *Z;
static atomic_int reports, report_err;
static void on_report(const struct labyrinth_report *r, void *a)
{
    (void)a;
    atomic_fetch_add(&reports, 1);
    atomic_store(&report_err, r->err);
}
static struct labyrinth_zone *mkzone(unsigned pages, unsigned max_threads, unsigned flags)
{
    struct labyrinth_zone_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.name = "rv";
    cfg.pages = pages;
    cfg.max_threads = max_threads;
    cfg.flags = LABYRINTH_ZONE_NO_WARDEN | flags;
    struct labyrinth_zone *z = labyrinth_zone_create(&cfg);
    if (!z) { printf("zone_create: %s\n", strerror(errno)); exit(1); }
    labyrinth_zone_set_report_handler(z, on_report, NULL);
    atomic_store(&reports, 0);
    return z;
}
static uint64_t count;
static void *alloc1(void)
{
    void *q = labyrinth_alloc_pages(Z, LABYRINTH_GFP_ATOMIC, 0, 0);
    if (q) count++;
    return q;
}
#include "singlestep.h"
#include <ucontext.h>
#define PAGES 256u
static void *held[PAGES];
static int take_back(void *p)
{
    size_t n = 0; int got = 0;
    while (n < PAGES) { void *q = alloc1(); if (!q) break; if (q == p) { got = 1; break; } held[n++] = q; }
    while (n > 0) labyrinth_free_pages(Z, held[--n], 0);
    return got;
}
static int drain(void *p_held)
{
    size_t n = 0; int twice = 0;
    while (n < PAGES) { void *q = alloc1(); if (!q) break; twice |= q == p_held; held[n++] = q; }
    while (n > 0) labyrinth_free_pages(Z, held[--n], 0);
    return twice;
}
static void *P, *Q;
static volatile int ss_active;
static unsigned long ss_steps, ss_at;
static atomic_int stalled, resume;
static uintptr_t stall_rip;
static void on_trap(int sig, siginfo_t *si, void *ucv)
{
    (void)sig; (void)si;
    if (ss_active && ++ss_steps == ss_at) {
        stall_rip = (uintptr_t)((ucontext_t *)ucv)->uc_mcontext.gregs[REG_RIP];
        atomic_store(&stalled, 1);
        while (!atomic_load(&resume)) ;
    }
    if (!ss_active || ss_steps >= ss_at)
        step_tf_off(ucv);
}
static int rc_b, rc_c, warm;
static void *thread_b(void *a)
{
    (void)a;
    if (warm) labyrinth_free_pages(Z, Q, 0); /* sets B's outbox for main: the fast path */
    ss_steps = 0; ss_active = 1;
    step_tf_on();
    rc_b = labyrinth_free_pages(Z, P, 0);
    ss_active = 0;
    atomic_store(&stalled, 1); /* K past the end */
    while (!atomic_load(&resume)) ;
    labyrinth_thread_release(Z);
    return NULL;
}
static void *thread_c(void *a){(void)a; rc_c = labyrinth_free_pages(Z, P, 0); labyrinth_thread_release(Z); return NULL;}
int main(int argc, char **argv)
{
    warm = argc > 1 ? atoi(argv[1]) : 0;
    step_install(on_trap);
    int bad = 0;
    for (unsigned long K = 1; K < 2000; K++) {
        Z = mkzone(PAGES, 0, 0); count = 0;
        atomic_store(&stalled, 0); atomic_store(&resume, 0);
        P = alloc1(); uint64_t g = count;
        Q = alloc1();
        ss_at = K;
        pthread_t b, c;
        pthread_create(&b, NULL, thread_b, NULL);
        while (!atomic_load(&stalled)) ;
        int past = !ss_active;
        pthread_create(&c, NULL, thread_c, NULL); pthread_join(c, NULL);
        if (!take_back(P)) { printf("K=%lu: P did not come back (rc_c %d)\n", K, rc_c); exit(1); }
        while ((count - g) % PERIOD || count == g) {
            labyrinth_free_pages(Z, P, 0);
            void *q = alloc1();
            if (q != P) { labyrinth_free_pages(Z, q, 0); if (!take_back(P)) { printf("lost P\n"); exit(1);} }
        }
        atomic_store(&resume, 1);
        pthread_join(b, NULL);
        int twice = drain(P);
        long chk = labyrinth_zone_check(Z);
        if (twice || atomic_load(&reports) != 1 || K % 50 == 0 || past)
            printf("K=%lu rip=%#lx: rc_b %d rc_c %d, P %s, reports %d (err %d), zone_check %ld\n", K,
                   (unsigned long)stall_rip, rc_b, rc_c, twice ? "HANDED OUT TWICE" : "not handed out",
                   atomic_load(&reports), atomic_load(&report_err), chk);
        bad += twice;
        labyrinth_free_pages(Z, P, 0);
        labyrinth_zone_destroy(Z);
        if (past) break;
    }
    printf("%d rounds with P handed out twice\n", bad);
    return 0;
}
