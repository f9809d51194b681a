/*
 * proof_seccomp.c - the ATOMIC path makes no system call.
 *
 * In a child process, a fresh thread installs a seccomp filter that allows
 * only write, exit, exit_group and rt_sigreturn (any other system call
 * kills the process with SIGSYS).  Strict mode is not used: on x86 it also
 * forbids rdtsc.  From its very first labyrinth call (its thread cache is
 * claimed under the filter) the thread runs millions of ATOMIC allocations
 * and frees: LIFO pairs, bursts through the depot, the seed's macro with
 * every quality flag, higher orders through the buddy try-lock, the zone
 * drained down through the reserve until ATOMIC returns NULL, refused frees
 * (whose reports use write), while the main thread interrupts it with
 * signals whose handler allocates and frees too.  The parent checks the
 * child exited normally with the thread's results.
 *
 * Plain build only: sanitizer runtimes make their own system calls.
 */
#define _GNU_SOURCE
#include "check.h"

#include <labyrinth.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__x86_64__)
#define LB_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define LB_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

static struct labyrinth_zone *Z;
static int result_pipe[2];
static volatile uint64_t handler_ok, handler_null;
static volatile int filtered_ready;

struct result {
    uint64_t pairs, bursts, macro, higher, drained, refused, nulls_seen;
    uint64_t handler_allocs;
    uint64_t bad;
};

static void on_signal(int sig)
{
    (void)sig;
    void *p = labyrinth_void_allocpage_gfpatomic_extra_quality(Z, LABYRINTH_QUALITY_ZERO);
    if (p) {
        ((char *)p)[100] = 1;
        labyrinth_free_pages(Z, p, 0);
        handler_ok = handler_ok + 1;
    } else {
        handler_null = handler_null + 1;
    }
}

static int install_filter(void)
{
#ifdef LB_AUDIT_ARCH
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, LB_AUDIT_ARCH, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_write, 4, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_exit, 3, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_exit_group, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_rt_sigreturn, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {(unsigned short)(sizeof f / sizeof f[0]), f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
        return -1;
    return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
#else
    return -1;
#endif
}

static void *filtered_main(void *arg)
{
    (void)arg;
    struct result r = {0};
    if (install_filter() != 0) {
        r.bad = ~0ull;
        if (write(result_pipe[1], &r, sizeof r) < 0) {
        }
        syscall(SYS_exit, 0);
    }
    filtered_ready = 1;
    if (getenv("LB_PROOF_SABOTAGE")) /* the self-test: this must be caught */
        syscall(SYS_getpid);
    /* 1. LIFO pairs: the very first labyrinth call of this thread is here. */
    for (int i = 0; i < 2000000; i++) {
        void *p = labyrinth_alloc_pages(Z, LABYRINTH_GFP_ATOMIC, 0, 0);
        if (!p) {
            r.nulls_seen++;
            continue;
        }
        *(volatile char *)p = 1;
        r.bad += labyrinth_free_pages(Z, p, 0) != 0;
        r.pairs++;
    }
    /* 2. Bursts of 64 and 300: through the spare magazine and the depot. */
    void *b[300];
    for (int round = 0; round < 20000; round++) {
        int n = round % 10 == 0 ? 300 : 64, got = 0;
        for (int i = 0; i < n; i++)
            if ((b[got] = labyrinth_alloc_pages(Z, LABYRINTH_GFP_ATOMIC, 0, 0)))
                got++;
        for (int i = 0; i < got; i++)
            r.bad += labyrinth_free_pages(Z, b[i], 0) != 0;
        r.bursts += (uint64_t)got;
    }
    /* 3. The seed's macro with every quality flag (tracking: rdtsc). */
    for (int i = 0; i < 200000; i++) {
        void *p = labyrinth_void_allocpage_gfpatomic_extra_quality(
            Z, LABYRINTH_QUALITY_ZERO | LABYRINTH_QUALITY_POISON | LABYRINTH_QUALITY_CL_ALIGN |
                   LABYRINTH_QUALITY_TRACK);
        if (!p)
            continue;
        struct labyrinth_page_info info;
        r.bad += labyrinth_page_info(Z, p, &info) != 0 || !info.tracked;
        r.bad += labyrinth_register_page_tag(Z, p, 7) != 0;
        r.bad += labyrinth_free_pages(Z, p, 0) != 0;
        r.macro++;
    }
    /* 4. Higher orders: the buddy, try-lock only. */
    for (int i = 0; i < 20000; i++) {
        unsigned order = 1 + (unsigned)i % 4;
        void *p = labyrinth_alloc_pages(Z, LABYRINTH_GFP_ATOMIC, order, 0);
        if (!p)
            continue;
        uint64_t phys;
        r.bad += labyrinth_virt_to_phys(Z, p, &phys) != -EOPNOTSUPP;
        r.bad += labyrinth_free_pages(Z, p, order) != 0;
        r.higher++;
    }
    /* 5. Drain everything through the reserve, then give it all back. */
    static void *all[1 << 16];
    size_t n = 0;
    while (n < (1u << 16) && (all[n] = labyrinth_alloc_pages(Z, LABYRINTH_GFP_ATOMIC, 0, 0)))
        n++;
    r.nulls_seen++;
    /* (Not labyrinth_zone_stats here: it is normal context only and takes
     * the zone's mutex, a futex call whenever the warden holds it.) */
    for (size_t i = 0; i < n; i++)
        r.bad += labyrinth_free_pages(Z, all[i], 0) != 0;
    r.drained = n;
    /* 6. Refused frees: reports go out with write(2). */
    void *p = labyrinth_alloc_pages(Z, LABYRINTH_GFP_ATOMIC, 0, 0);
    if (p) {
        r.bad += labyrinth_free_pages(Z, p, 0) != 0;
        r.refused += labyrinth_free_pages(Z, p, 0) == -EALREADY;
        r.refused += labyrinth_free_pages(Z, (char *)p + 1, 0) == -EINVAL;
        r.refused += labyrinth_free_pages(Z, &r, 0) == -EFAULT;
    }
    r.handler_allocs = handler_ok;
    if (write(result_pipe[1], &r, sizeof r) < 0) {
    }
    filtered_ready = 2;
    syscall(SYS_exit, 0); /* glibc's thread exit makes other system calls */
    return NULL;
}

static int child(void)
{
    struct labyrinth_zone_config cfg = {0};
    cfg.name = "seccomp";
    cfg.pages = 8192;
    cfg.max_order = 6;
    Z = labyrinth_zone_create(&cfg);
    if (!Z)
        return 3;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
    pthread_t t;
    if (pthread_create(&t, NULL, filtered_main, NULL))
        return 4;
    while (filtered_ready == 0)
        usleep(100);
    unsigned kicks = 0;
    while (filtered_ready == 1) {
        pthread_kill(t, SIGUSR1);
        kicks++;
        usleep(200);
    }
    pthread_join(t, NULL);
    labyrinth_zone_destroy(Z);
    return 0;
}

int main(void)
{
#ifdef LB_TEST_SANITIZED
    SKIP("sanitizer runtimes make their own system calls; this proof runs on the plain build");
#endif
#ifndef LB_AUDIT_ARCH
    SKIP("no seccomp architecture constant for this CPU");
#endif
    REQUIRE(pipe(result_pipe) == 0);
    fflush(stdout);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0)
        _exit(child());
    close(result_pipe[1]);
    struct result r;
    ssize_t got = read(result_pipe[0], &r, sizeof r);
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFSIGNALED(status))
        fprintf(stderr, "child killed by signal %d%s\n", WTERMSIG(status),
                WTERMSIG(status) == SIGSYS ? " (SIGSYS: the ATOMIC path made a forbidden system call)" : "");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    REQUIRE(got == (ssize_t)sizeof r);
    REQUIRE(r.bad != ~0ull); /* the filter was installed */
    printf("under seccomp: %llu pairs, %llu burst pages, %llu macro pages, %llu higher-order blocks, "
           "%llu pages drained to NULL, %llu refused frees, %llu allocations in signal handlers\n",
           (unsigned long long)r.pairs, (unsigned long long)r.bursts, (unsigned long long)r.macro,
           (unsigned long long)r.higher, (unsigned long long)r.drained, (unsigned long long)r.refused,
           (unsigned long long)r.handler_allocs);
    CHECK(r.handler_allocs > 10);
    CHECK_EQ(r.bad, 0);
    CHECK_EQ(r.pairs, 2000000);
    CHECK(r.bursts >= 20000ull * 64);
    CHECK_EQ(r.macro, 200000);
    CHECK(r.higher > 10000);
    CHECK(r.drained >= 8192 - 64 * 4); /* all but what other contexts cache */
    CHECK_EQ(r.refused, 3);
    return check_done("proof_seccomp");
}
