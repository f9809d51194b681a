/*
 * singlestep.h - the tests' single-stepping harness: a SIGTRAP after every
 * instruction (the x86-64 trap flag), so that a test can run a racing
 * operation at every instruction of the call it steps.
 *
 *   STEP_PHASE        1 where stepping works: x86-64, no sanitizer (their
 *                     instrumentation and signal machinery make every step a
 *                     trip through the runtime); 0 elsewhere, where the
 *                     tests skip their stepping phase and say so
 *   step_tf_on()      set the trap flag: a SIGTRAP after every instruction
 *                     from the caller's return on
 *   step_tf_off(ucv)  clear it in the interrupted context (from the SIGTRAP
 *                     handler, whose third argument ucv is)
 */
#ifndef LB_TEST_SINGLESTEP_H
#define LB_TEST_SINGLESTEP_H

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define TEST_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TEST_SANITIZED 1
#endif

#if defined(__x86_64__) && !defined(TEST_SANITIZED)
#define STEP_PHASE 1
#include <signal.h>
#include <string.h>
#include <ucontext.h>

#define STEP_TF 0x100 /* EFLAGS.TF */

static __attribute__((noinline, unused)) void step_tf_on(void)
{
    __asm__ volatile("pushfq\n\torq $0x100, (%%rsp)\n\tpopfq" ::: "memory", "cc");
}

static inline __attribute__((unused)) void step_tf_off(void *ucv)
{
    ((ucontext_t *)ucv)->uc_mcontext.gregs[REG_EFL] &= ~(greg_t)STEP_TF;
}

/* Install fn as the SIGTRAP handler (SA_SIGINFO, nothing masked); 0 or -1. */
static inline __attribute__((unused)) int step_install(void (*fn)(int, siginfo_t *, void *))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = fn;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    return sigaction(SIGTRAP, &sa, NULL);
}
#else
#define STEP_PHASE 0
#endif

#endif /* LB_TEST_SINGLESTEP_H */
