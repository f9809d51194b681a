/*
 * api_reportstall.c - a report handler change interrupted by other changes
 * must never lose the handler (KB46; helper-28's second break).
 *
 * The bug: each change took a ticket n and wrote its pair into ring slot
 * n % 8.  A change interrupted between its ticket and its last store (a
 * signal handler, preemption) while 8 others completed - they wrapped the
 * ring and published n + 8 in the same slot - overwrote that slot with its
 * own, older pair when it resumed.  The published ticket's slot then never
 * matched, every reader gave up after its tries and used the default
 * handler, until the next change: `rh_persist` saw 100 reports in a row go
 * to stderr after a set had returned.
 *
 * The promise (include/labyrinth.h): a report gets the handler together
 * with its own arg, the one set before the report or the one being set;
 * never the default handler once a user handler is set.
 *
 * The interleaving hunted: the main thread sets (h_main, &arg_main) while
 * a signal handler on the same thread, arriving inside that call, sets
 * (h_sig, &arg_sig) 1 to 17 times (around and past the ring's 8).  After
 * main's call returns, with signals blocked, one misuse is made (a free of
 * an address outside the zone): exactly one report, which must reach
 * h_main or h_sig with its own argument.  Counted: the zone's
 * misuse_reports against the calls the two handlers got; the difference
 * went to the default handler (stderr, sent to /dev/null here).
 *   Phase 1: a per-thread timer signal every 40 microseconds, for
 *   LB_REPORTSTALL_SECONDS (default 2).
 *   Phase 2 (plain x86-64 builds): main's call single-stepped, the
 *   handler's sets done at instruction k, for every k of the call.
 *   Phase 3 (the same builds): the report single-stepped, the sets done
 *   at instruction k of the report.  (Sets at every instruction of one
 *   report - helper-29's rh_stepread - can starve it: each of the
 *   reader's 1024 tries fails only when a change is published during it,
 *   so that takes 1024 changes inside one report; the header says so.)
 * On the code before the fix, phase 2 lost the handler at every
 * instruction between the ticket and the slot's last store.  Public
 * header only.
 */
#define _GNU_SOURCE
#include "api_util.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include "singlestep.h"

/* How many sets a handler makes: around the ring's 8 (the bug needed
 * exactly 8, so that the last one published landed in the interrupted
 * change's slot), and twice it. */
static const unsigned nsets_of[] = {1, 7, 8, 9, 15, 16, 17};
#define NSETS_KINDS (sizeof nsets_of / sizeof nsets_of[0])
static unsigned nsets = 8;

static struct labyrinth_zone *Z;
static int arg_main, arg_sig;
static unsigned long calls_main, calls_sig, bad_pair; /* atomic accesses */
static char foreign[8192] __attribute__((aligned(4096)));

static unsigned long h_at; /* phase 3: the step at which a handler was entered */
static unsigned long step_now(void);
static void h_main(const struct labyrinth_report *r, void *a)
{
    (void)r;
    if (!h_at)
        h_at = step_now();
    if (a != &arg_main)
        __atomic_fetch_add(&bad_pair, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&calls_main, 1, __ATOMIC_RELAXED);
}
static void h_sig(const struct labyrinth_report *r, void *a)
{
    (void)r;
    if (a != &arg_sig)
        __atomic_fetch_add(&bad_pair, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&calls_sig, 1, __ATOMIC_RELAXED);
}

static unsigned long sig_sets, sig_refused;
static void signal_sets(void)
{
    for (unsigned i = 0; i < nsets; i++) {
        int rc = labyrinth_zone_set_report_handler(Z, h_sig, &arg_sig);
        if (rc)
            sig_refused++;
        sig_sets++;
    }
}

/* One report with signals blocked; false if it missed both handlers. */
static unsigned long lost, rounds, main_refused;
static bool report_once(void)
{
    sigset_t ss, old;
    sigfillset(&ss);
    pthread_sigmask(SIG_BLOCK, &ss, &old);
    struct labyrinth_zone_stats s0, s1;
    labyrinth_zone_stats(Z, &s0);
    unsigned long before = __atomic_load_n(&calls_main, __ATOMIC_RELAXED) + __atomic_load_n(&calls_sig, __ATOMIC_RELAXED);
    int rc = labyrinth_free_pages(Z, foreign, 0);
    unsigned long after = __atomic_load_n(&calls_main, __ATOMIC_RELAXED) + __atomic_load_n(&calls_sig, __ATOMIC_RELAXED);
    labyrinth_zone_stats(Z, &s1);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    CHECK_EQ(rc, -EFAULT);
    CHECK_EQ(s1.misuse_reports - s0.misuse_reports, 1);
    rounds++;
    if (after != before + 1) {
        lost++;
        return false;
    }
    return true;
}

#if !STEP_PHASE
static unsigned long step_now(void) { return 0; }
#endif

/* ---- phase 1: a timer signal ---------------------------------------------------------- */

static void on_timer(int sig)
{
    (void)sig;
    int saved = errno;
    signal_sets();
    errno = saved;
}

static void hunt_timer(double secs)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_timer;
    sigemptyset(&sa.sa_mask);
    REQUIRE(sigaction(SIGRTMIN, &sa, NULL) == 0);
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = SIGRTMIN;
    sev._sigev_un._tid = (pid_t)syscall(SYS_gettid);
    timer_t t;
    REQUIRE(timer_create(CLOCK_MONOTONIC, &sev, &t) == 0);
    struct itimerspec its = {{0, 40000}, {0, 40000}};
    REQUIRE(timer_settime(t, 0, &its, NULL) == 0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    unsigned long r0 = rounds, l0 = lost;
    do {
        /* Relaxed: the handler runs on this thread. */
        __atomic_store_n(&nsets, nsets_of[rounds % NSETS_KINDS], __ATOMIC_RELAXED);
        if (labyrinth_zone_set_report_handler(Z, h_main, &arg_main))
            main_refused++;
        report_once();
        clock_gettime(CLOCK_MONOTONIC, &t1);
    } while ((double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9 < secs);
    struct itimerspec off = {{0, 0}, {0, 0}};
    timer_settime(t, 0, &off, NULL);
    timer_delete(t);
    printf("phase 1: %lu changes beside a timer (%lu sets in its handler, %lu refused), %lu reports, "
           "%lu to the default handler\n",
           rounds - r0, sig_sets, sig_refused, rounds - r0, lost - l0);
}

/* ---- phase 2: single-stepping (x86-64) -------------------------------------------------- */

#if STEP_PHASE
static volatile int ss_active;
static unsigned long ss_steps, ss_at;
static unsigned long step_now(void) { return ss_active ? ss_steps : 0; }

static void on_trap(int sig, siginfo_t *si, void *ucv)
{
    (void)sig;
    (void)si;
    int saved = errno;
    if (ss_active && ++ss_steps == ss_at)
        signal_sets();
    if (!ss_active || ss_steps >= ss_at)
        step_tf_off(ucv);
    errno = saved;
}

/* Phase 3: the report single-stepped instead, the changes at instruction
 * k of the reader (lb_zone_report's loads of report_cur, the slot's
 * sequence and pair).  A report interrupted by any number of changes
 * at one point must still reach a user handler: a reader retries only
 * when a change was published during its try. */
static unsigned long rep_steps;
static int stepped_report(unsigned long at)
{
    ss_steps = 0;
    ss_at = at;
    unsigned long before = __atomic_load_n(&calls_main, __ATOMIC_RELAXED) + __atomic_load_n(&calls_sig, __ATOMIC_RELAXED);
    ss_active = 1;
    step_tf_on();
    int rc = labyrinth_free_pages(Z, foreign, 0);
    ss_active = 0;
    rep_steps = ss_steps;
    unsigned long after = __atomic_load_n(&calls_main, __ATOMIC_RELAXED) + __atomic_load_n(&calls_sig, __ATOMIC_RELAXED);
    CHECK_EQ(rc, -EFAULT);
    rounds++;
    if (after != before + 1) {
        lost++;
        return 0;
    }
    return 1;
}

static void hunt_step_report(void)
{
    nsets = 0;
    CHECK_EQ(labyrinth_zone_set_report_handler(Z, h_main, &arg_main), 0);
    h_at = 0;
    stepped_report((unsigned long)-1);
    unsigned long total = rep_steps, entry = h_at;
    printf("phase 3: a report (a foreign free) takes %lu instructions, the handler entered at %lu\n", total, entry);
    if (total == 0)
        return;
    CHECK(entry > 0 && entry <= total);
    /* The reader is the stretch just before the handler is entered (the
     * message is formatted before it): the 200 instructions before the
     * entry, each with 1, 8 and 17 sets (stepping all of a report's
     * instructions takes about a minute). */
    static const unsigned few[] = {1, 8, 17};
    unsigned long from = entry > 200 ? entry - 200 : 1, l0 = lost, tried = 0;
    for (unsigned long k = from; k <= entry; k++)
        for (unsigned v = 0; v < 3; v++) {
            CHECK_EQ(labyrinth_zone_set_report_handler(Z, h_main, &arg_main), 0);
            nsets = few[v];
            stepped_report(k);
            tried++;
        }
    printf("phase 3: sets at instructions %lu to %lu of the report (%lu reports), %lu to the default handler\n", from,
           entry, tried, lost - l0);
}

static int stepped_set(unsigned long at)
{
    ss_steps = 0;
    ss_at = at;
    ss_active = 1;
    step_tf_on();
    int rc = labyrinth_zone_set_report_handler(Z, h_main, &arg_main);
    ss_active = 0;
    return rc;
}

static void hunt_step(void)
{
    REQUIRE(step_install(on_trap) == 0);
    int rc = stepped_set((unsigned long)-1);
    unsigned long total = ss_steps;
    CHECK_EQ(rc, 0);
    printf("phase 2: labyrinth_zone_set_report_handler takes %lu instructions\n", total);
    if (total == 0) {
        printf("phase 2: single-stepping is not available here (valgrind?): skipped\n");
        return;
    }
    REQUIRE(total > 10 && total < 100000);
    unsigned long l0 = lost, first = 0, last = 0;
    for (unsigned long k = 1; k <= total + 4; k++)
        for (unsigned v = 0; v < NSETS_KINDS; v++) {
            nsets = nsets_of[v];
            rc = stepped_set(k);
            CHECK_EQ(rc, 0);
            if (!report_once()) {
                if (!first)
                    first = k;
                last = k;
            }
        }
    if (lost != l0)
        printf("phase 2: the handler was lost after interruptions at instructions %lu to %lu of %lu\n", first, last,
               total);
    printf("phase 2: %lu interleavings tried (1, 7, 8, 9, 15, 16 and 17 sets in the handler at each), %lu reports "
           "to the default handler\n",
           total + 4, lost - l0);
}
#endif

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    Z = zone_small("reportstall", 64, LABYRINTH_ZONE_NO_WARDEN, NULL);
    /* The default handler's lines (the losses) are counted, not read. */
    int null = open("/dev/null", O_WRONLY);
    REQUIRE(null >= 0);
    int saved = dup(2);
    dup2(null, 2);
    const char *env = getenv("LB_REPORTSTALL_SECONDS");
    double secs = env ? atof(env) : 2.0;
    if (secs > 0)
        hunt_timer(secs);
#if STEP_PHASE
    hunt_step();
    hunt_step_report();
#else
    printf("phase 2 skipped: single-stepping is for plain x86-64 builds only\n");
#endif
    dup2(saved, 2);
    close(saved);
    close(null);
    printf("%lu reports in all: %lu to h_main, %lu to h_sig, %lu to the default handler, %lu with another's "
           "argument; %lu of main's changes and %lu of the handler's refused\n",
           rounds, calls_main, calls_sig, lost, bad_pair, main_refused, sig_refused);
    CHECK_EQ(lost, 0);
    CHECK_EQ(bad_pair, 0);
    CHECK_EQ(main_refused, 0);
    CHECK_EQ(sig_refused, 0);
    CHECK(rounds > 0);
    CHECK_EQ(labyrinth_zone_check(Z), 0);
    labyrinth_zone_destroy(Z);
    return check_done("api_reportstall");
}
