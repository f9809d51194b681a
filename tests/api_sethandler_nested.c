/*
 * api_sethandler_nested.c (a reproducer from the review of the issue-11 changes) - labyrinth_zone_set_report_handler called from
 * a signal handler that interrupted labyrinth_zone_set_report_handler of
 * the same zone on the same thread spins for ever (the writer's CAS loop
 * waits for the interrupted writer to make report_seq even).  The owner's
 * call is single-stepped; at instruction k the SIGTRAP handler calls
 * set_report_handler itself.  An alarm after 2 s reports the hang.
 *   cc -O2 -pthread -I/work/wt-review/include sethandler_nested_hang.c \
 *      /tmp/b-rev/liblabyrinth.a -o sethandler_nested_hang
 */
#define _GNU_SOURCE
#include <labyrinth.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "singlestep.h"
#include <unistd.h>

#if STEP_PHASE
static struct labyrinth_zone *Z;
static volatile int ss_active;
static unsigned long ss_steps, ss_at, cur_k;

static void fn(const struct labyrinth_report *r, void *a) { (void)r; (void)a; }

static void on_alarm(int s)
{
    (void)s;
    char b[160];
    int n = snprintf(b, sizeof b,
                     "HANG: the nested set_report_handler at instruction %lu of the outer one has not "
                     "returned after 2 s\n", cur_k);
    write(1, b, (size_t)n);
    _exit(1);
}

static void on_trap(int sig, siginfo_t *si, void *ucv)
{
    (void)sig; (void)si;
    if (ss_active && ++ss_steps == ss_at) {
        step_tf_off(ucv);
        alarm(2);
        labyrinth_zone_set_report_handler(Z, NULL, NULL); /* "any thread" */
        alarm(0);
    }
    if (!ss_active || ss_steps >= ss_at)
        step_tf_off(ucv);
}

#endif

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
#if !STEP_PHASE
    /* Single-stepping needs the x86 trap flag, and a sanitizer's signal
     * interception makes every step a trip through its runtime. */
    printf("api_sethandler_nested: skipped (needs x86-64 single-stepping, no sanitizer)\n");
    return 77;
#else
    struct labyrinth_zone_config c;
    memset(&c, 0, sizeof c);
    c.pages = 64;
    c.flags = LABYRINTH_ZONE_NO_WARDEN;
    Z = labyrinth_zone_create(&c);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_trap;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGTRAP, &sa, NULL);
    signal(SIGALRM, on_alarm);
    ss_steps = 0; ss_at = (unsigned long)-1; ss_active = 1;
    step_tf_on();
    labyrinth_zone_set_report_handler(Z, fn, NULL);
    ss_active = 0;
    unsigned long total = ss_steps;
    printf("set_report_handler: %lu instructions\n", total);
    for (unsigned long k = 1; k <= total; k++) {
        cur_k = k;
        ss_steps = 0; ss_at = k; ss_active = 1;
        step_tf_on();
        labyrinth_zone_set_report_handler(Z, fn, NULL);
        ss_active = 0;
    }
    printf("no hang\n");
    return 0;
#endif
}
