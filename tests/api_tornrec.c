/*
 * api_tornrec.c - regression test for finding 17.2: a torn tracking record
 * yields a wild labyrinth_page_info().site pointer.
 *
 * The bug: a tracking record (src/quality.c) is two words written with two
 * relaxed stores: `who` holds the pointer (a caller's code address, or a
 * struct labyrinth_site *), `when` holds the time, the tag and the bit that
 * says "who is a site".  A reader (labyrinth_page_info, any context) loads
 * the two words separately.  When the page's owner rewrites the record -
 * the seed's macro recorded a site, then labyrinth_register_page records
 * the caller's code address - a reader between the two stores gets the new
 * `who` (a code address) with the old `when` (site bit set): info.site
 * then points at code, not at a struct labyrinth_site (the header's
 * promise: "never a wild pointer").  A leak report or a report handler
 * that prints site->file would follow it.
 *
 * The known site: the macro's static struct of seed_alloc() below; its
 * address is learnt from a page_info read when nothing races (and its
 * file, function and line are checked).  Any other non-NULL info.site is a
 * wild site pointer.
 *
 *   Phase 1 (black-box hunt, two threads): a writer thread repeatedly
 *   allocates a page with the seed's macro, registers it with
 *   labyrinth_register_page and frees it (LIFO magazines: the same page
 *   each time); the main thread calls labyrinth_page_info on that page in
 *   a loop.  Up to LB_TORNREC_SECONDS (default 3) or the first wild site.
 *   Phase 2 (deterministic; plain x86-64 builds): the main thread allocates the
 *   page with the macro, then single-steps (EFLAGS.TF) its own
 *   labyrinth_register_page call; the SIGTRAP handler reads page_info
 *   after every instruction, so a read between the two stores is certain.
 *
 * Fails if any wild site pointer was seen (the count, the first value and
 * the phase are printed).  Public header only.
 */
#define _GNU_SOURCE
#include "api_util.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include "singlestep.h"

static struct labyrinth_zone *Z;
static const struct labyrinth_site *known_site;
static void *page;   /* the page phase 1 races on */
static int stop;

static unsigned long wild, reads, tracked_reads, site_reads, caller_as_site;
static const void *first_wild;
static unsigned long first_wild_at;

static __attribute__((noinline)) void *seed_alloc(void)
{
    return labyrinth_void_allocpage_gfpatomic_extra_quality(Z, 0);
}

/* Classify one read of page p (any context: async-signal-safe). */
static void look(const void *p, unsigned long at)
{
    struct labyrinth_page_info info;
    if (labyrinth_page_info(Z, p, &info) != 0)
        return;
    reads++;
    if (!info.tracked)
        return;
    tracked_reads++;
    if (info.site == known_site)
        site_reads++;
    else if (info.site != NULL) {
        if (wild++ == 0) {
            first_wild = info.site;
            first_wild_at = at;
        }
    }
    if (info.caller && info.caller == (const void *)known_site)
        caller_as_site++; /* the mirror image: a site's address as "caller" */
}

/* ---- phase 1 ------------------------------------------------------------------------------- */

static void *writer(void *arg)
{
    unsigned long *rounds = arg;
    while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
        void *p = seed_alloc();
        if (!p)
            continue;
        __atomic_store_n(&page, p, __ATOMIC_RELAXED);
        labyrinth_register_page(Z, p);
        labyrinth_free_pages(Z, p, 0);
        (*rounds)++;
    }
    return NULL;
}

static void hunt_threads(double seconds)
{
    unsigned long rounds = 0;
    pthread_t t;
    __atomic_store_n(&page, NULL, __ATOMIC_RELAXED);
    REQUIRE(pthread_create(&t, NULL, writer, &rounds) == 0);
    uint64_t start = now_ns(), deadline = start + (uint64_t)(seconds * 1e9);
    unsigned long n = 0;
    while (wild == 0 && (n & 1023 || now_ns() < deadline)) {
        const void *p = __atomic_load_n(&page, __ATOMIC_RELAXED);
        if (p)
            look(p, n);
        n++;
    }
    __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
    REQUIRE(pthread_join(t, NULL) == 0);
    printf("phase 1: %lu writer rounds, %lu page_info reads (%lu tracked, %lu with the known site) in "
           "%.2f s: %lu wild site pointer(s)\n",
           rounds, reads, tracked_reads, site_reads, (double)(now_ns() - start) / 1e9, wild);
}

/* ---- phase 2 ------------------------------------------------------------------------------- */

#if STEP_PHASE
static volatile int ss_active;
static const void *ss_page;
static unsigned long ss_steps;

static void on_trap(int sig, siginfo_t *si, void *ucv)
{
    (void)sig;
    (void)si;
    int saved = errno;
    if (ss_active)
        look(ss_page, ++ss_steps);
    else
        step_tf_off(ucv);
    errno = saved;
}


static void hunt_step(void)
{
    REQUIRE(step_install(on_trap) == 0);
    unsigned long before = wild;
    for (int round = 0; round < 3; round++) {
        void *p = seed_alloc();
        REQUIRE(p != NULL);
        ss_page = p;
        ss_steps = 0;
        ss_active = 1;
        step_tf_on();
        int rc = labyrinth_register_page(Z, p);
        ss_active = 0;
        CHECK_EQ(rc, 0);
        REQUIRE(labyrinth_free_pages(Z, p, 0) == 0);
        printf("phase 2, round %d: labyrinth_register_page single-stepped, page_info read after each of "
               "its %lu instructions\n", round, ss_steps);
    }
    printf("phase 2: %lu wild site pointer(s)\n", wild - before);
}
#endif

int main(void)
{
    Z = zone_small("tornrec", 256, 0, NULL);

    /* Learn the macro's site, with nothing racing. */
    void *p = seed_alloc();
    REQUIRE(p != NULL);
    struct labyrinth_page_info info;
    REQUIRE(labyrinth_page_info(Z, p, &info) == 0);
    REQUIRE(info.tracked && info.site != NULL);
    known_site = info.site;
    CHECK(strcmp(known_site->func, "seed_alloc") == 0);
    CHECK(strstr(known_site->file, "api_tornrec.c") != NULL);
    CHECK(known_site->line > 0);
    REQUIRE(labyrinth_register_page(Z, p) == 0);
    REQUIRE(labyrinth_page_info(Z, p, &info) == 0);
    CHECK(info.tracked && info.site == NULL && info.caller != NULL);
    REQUIRE(labyrinth_free_pages(Z, p, 0) == 0);
    printf("the macro's site: %p (%s:%u, %s)\n", (const void *)known_site, known_site->file, known_site->line,
           known_site->func);

    const char *env = getenv("LB_TORNREC_SECONDS");
    double secs = env ? atof(env) : 3.0;
    const char *phase = NULL;
    if (secs > 0) {
        hunt_threads(secs);
        if (wild)
            phase = "phase 1 (two threads)";
    }
#if STEP_PHASE
    if (!wild) {
        hunt_step();
        if (wild)
            phase = "phase 2 (single-stepped register)";
    }
#else
    printf("phase 2 skipped: single-stepping is for plain x86-64 builds only\n");
#endif
    if (caller_as_site)
        printf("note: %lu read(s) gave the site's address as info.caller (the same tear, other way round)\n",
               caller_as_site);
    if (wild) {
        fprintf(stderr,
                "FAIL: %lu wild site pointer(s) from labyrinth_page_info, first %p (read %lu of %s): "
                "info.site is not the macro's struct labyrinth_site %p but a code address (a register "
                "call's caller) paired with the old record's site bit: a torn tracking record\n",
                wild, first_wild, first_wild_at, phase, (const void *)known_site);
        CHECK(wild == 0);
    }
    CHECK_EQ(labyrinth_zone_check(Z), 0);
    labyrinth_zone_destroy(Z);
    return check_done("api_tornrec");
}
