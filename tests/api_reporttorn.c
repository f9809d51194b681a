/*
 * api_reporttorn.c - regression test for finding 18.1: a report handler is
 * called with the other handler's argument.
 *
 * The bug: labyrinth_zone_set_report_handler stores the handler's argument
 * and the handler as two words (report_arg, then report_fn with release);
 * a report (lb_zone_report, src/zone.c) loads report_fn, then report_arg.
 * A report made while the handler is being switched from fA(argA) to
 * fB(argB) can pair fA with argB (or, when the report's two loads straddle
 * a switch, fB with argA): the handler then works on an argument that is
 * not its own (a different recorder, a freed object...).
 *
 * Each handler checks that the argument it gets is its own; a mismatch is
 * counted (first one described).  The test fails if any is seen.
 *
 *   Phase 1 (black-box hunt, two threads): one thread switches the zone's
 *   handler between fA(&argA) and fB(&argB) in a loop; the main thread
 *   makes bad frees in a loop (a foreign pointer: refused with -EFAULT and
 *   reported).  Up to LB_REPORTTORN_SECONDS (default 3) or the first
 *   mismatch.
 *   Phase 2 (deterministic; plain x86-64 builds; a report from a signal handler,
 *   as a driver's interrupt would make one): (a) the main thread
 *   single-steps (EFLAGS.TF) its own switch fA -> fB and the SIGTRAP
 *   handler makes a bad free after every instruction; (b) the main thread
 *   single-steps its own bad free and the SIGTRAP handler switches the
 *   handler after every instruction.
 *
 * Public header only.
 */
#define _GNU_SOURCE
#include "api_util.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include "singlestep.h"

static struct labyrinth_zone *Z;
static int argA, argB;
static char foreign[64]; /* not a page of any zone: a free of it is refused and reported */
static int stop;

static unsigned long calls_a, calls_b, mismatches;
static const char *first_what;

static void mismatch(const char *what)
{
    if (__atomic_fetch_add(&mismatches, 1, __ATOMIC_RELAXED) == 0)
        first_what = what;
}

static void fA(const struct labyrinth_report *rep, void *arg)
{
    (void)rep;
    __atomic_fetch_add(&calls_a, 1, __ATOMIC_RELAXED);
    if (arg != &argA)
        mismatch(arg == &argB ? "handler fA called with argB" : "handler fA called with a foreign argument");
}

static void fB(const struct labyrinth_report *rep, void *arg)
{
    (void)rep;
    __atomic_fetch_add(&calls_b, 1, __ATOMIC_RELAXED);
    if (arg != &argB)
        mismatch(arg == &argA ? "handler fB called with argA" : "handler fB called with a foreign argument");
}

static void bad_free(void)
{
    int rc = labyrinth_free_pages(Z, foreign, 0);
    if (rc != -EFAULT) {
        fprintf(stderr, "FAIL: free of a foreign pointer returned %d, not -EFAULT\n", rc);
        exit(1);
    }
}

/* ---- phase 1 ------------------------------------------------------------------------------- */

static void *switcher(void *arg)
{
    unsigned long *n = arg;
    while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
        labyrinth_zone_set_report_handler(Z, fA, &argA);
        labyrinth_zone_set_report_handler(Z, fB, &argB);
        (*n)++;
    }
    return NULL;
}

static void hunt_threads(double seconds)
{
    unsigned long switches = 0, frees = 0;
    pthread_t t;
    REQUIRE(labyrinth_zone_set_report_handler(Z, fA, &argA) == 0);
    REQUIRE(pthread_create(&t, NULL, switcher, &switches) == 0);
    uint64_t start = now_ns(), deadline = start + (uint64_t)(seconds * 1e9);
    while (!__atomic_load_n(&mismatches, __ATOMIC_RELAXED) && (frees & 1023 || now_ns() < deadline)) {
        bad_free();
        frees++;
    }
    __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
    REQUIRE(pthread_join(t, NULL) == 0);
    printf("phase 1: %lu switch pairs, %lu reported bad frees (fA %lu, fB %lu) in %.2f s: %lu mismatch(es)\n",
           switches, frees, calls_a, calls_b, (double)(now_ns() - start) / 1e9, mismatches);
}

/* ---- phase 2 ------------------------------------------------------------------------------- */

#if STEP_PHASE
static volatile int ss_active, ss_mode; /* mode 0: bad free per step; 1: switch per step */
static unsigned long ss_steps;

static void on_trap(int sig, siginfo_t *si, void *ucv)
{
    (void)sig;
    (void)si;
    int saved = errno;
    if (!ss_active) {
        step_tf_off(ucv);
    } else {
        ss_steps++;
        if (ss_mode == 0)
            bad_free();
        else if (ss_steps & 1)
            labyrinth_zone_set_report_handler(Z, fB, &argB);
        else
            labyrinth_zone_set_report_handler(Z, fA, &argA);
    }
    errno = saved;
}


static void hunt_step(void)
{
    REQUIRE(step_install(on_trap) == 0);

    unsigned long before = mismatches;
    /* (a) a report after every instruction of a switch fA -> fB. */
    REQUIRE(labyrinth_zone_set_report_handler(Z, fA, &argA) == 0);
    ss_mode = 0;
    ss_steps = 0;
    ss_active = 1;
    step_tf_on();
    int rc = labyrinth_zone_set_report_handler(Z, fB, &argB);
    ss_active = 0;
    CHECK_EQ(rc, 0);
    printf("phase 2a: a switch fA -> fB single-stepped, a bad free after each of its %lu instructions: "
           "%lu mismatch(es)\n", ss_steps, mismatches - before);
    if (mismatches)
        return;
    /* (b) a switch after every instruction of a reported bad free. */
    before = mismatches;
    REQUIRE(labyrinth_zone_set_report_handler(Z, fA, &argA) == 0);
    ss_mode = 1;
    ss_steps = 0;
    ss_active = 1;
    step_tf_on();
    rc = labyrinth_free_pages(Z, foreign, 0);
    ss_active = 0;
    CHECK_EQ(rc, -EFAULT);
    printf("phase 2b: a reported bad free single-stepped, the handler switched after each of its %lu "
           "instructions: %lu mismatch(es)\n", ss_steps, mismatches - before);
}
#endif

int main(void)
{
    Z = zone_small("reporttorn", 64, 0, NULL);

    /* Without a race, each handler gets its own argument. */
    REQUIRE(labyrinth_zone_set_report_handler(Z, fA, &argA) == 0);
    bad_free();
    REQUIRE(labyrinth_zone_set_report_handler(Z, fB, &argB) == 0);
    bad_free();
    REQUIRE(calls_a == 1 && calls_b == 1 && mismatches == 0);

    const char *env = getenv("LB_REPORTTORN_SECONDS");
    double secs = env ? atof(env) : 3.0;
    const char *phase = NULL;
    if (secs > 0) {
        hunt_threads(secs);
        if (mismatches)
            phase = "phase 1 (two threads)";
    }
#if STEP_PHASE
    if (!mismatches) {
        hunt_step();
        if (mismatches)
            phase = "phase 2 (single-stepped, reports from a signal handler)";
    }
#else
    printf("phase 2 skipped: single-stepping is for plain x86-64 builds only\n");
#endif
    if (mismatches) {
        fprintf(stderr,
                "FAIL: %lu report(s) reached a handler with the other handler's argument (%s; first: %s): "
                "the handler and its argument are read as two words\n",
                mismatches, phase, first_what);
        CHECK(mismatches == 0);
    }
    REQUIRE(labyrinth_zone_set_report_handler(Z, NULL, NULL) == 0);
    labyrinth_zone_destroy(Z);
    return check_done("api_reporttorn");
}
