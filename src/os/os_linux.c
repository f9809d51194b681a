/*
 * os_linux.c - the OS layer for Linux user space (glibc or musl).
 */
#define _GNU_SOURCE
#include "os.h"

#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef MAP_HUGE_SHIFT
#define MAP_HUGE_SHIFT 26
#endif
#ifndef MADV_DONTFORK
#define MADV_DONTFORK 10
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/* ---- memory ---------------------------------------------------------------- */

size_t lb_os_page_size(void)
{
    /* getauxval reads the auxiliary vector: no system call. */
    static size_t cached;
    size_t p = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (!p) {
        p = (size_t)getauxval(AT_PAGESZ);
        if (!p)
            p = 4096;
        __atomic_store_n(&cached, p, __ATOMIC_RELAXED);
    }
    return p;
}

size_t lb_os_region_max_pages(void) { return SIZE_MAX; }

int lb_os_virt_to_phys(const void *addr, uint64_t *phys)
{
    (void)addr;
    (void)phys;
    return -EOPNOTSUPP; /* user space reads /proc/self/pagemap once: lb_os_phys_table */
}

const char *lb_os_getenv(const char *name) { return getenv(name); }

void lb_os_zone_event(void *zone, const char *name, bool created)
{
    (void)zone;
    (void)name;
    (void)created;
}

unsigned lb_os_ncpus(void)
{
    lb_os_fault(LB_OS_OP_OTHER);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1u;
}

static int lb_os_map_raw(size_t bytes, size_t align, int extra_flags, struct lb_os_mapping *out)
{
    memset(out, 0, sizeof *out);
    size_t raw = bytes + (align > lb_os_page_size() ? align : 0);
    void *p = mmap(NULL, raw, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | extra_flags, -1, 0);
    if (p == MAP_FAILED)
        return -errno;
    uintptr_t start = (uintptr_t)p, aligned = (start + align - 1) & ~(uintptr_t)(align - 1);
    /* Trim the head and tail of an over-sized mapping (not possible for
     * hugetlb mappings smaller than the alignment: they are asked exact). */
    if (aligned > start && !(extra_flags & MAP_HUGETLB))
        munmap(p, aligned - start);
    uintptr_t end = start + raw, want_end = aligned + bytes;
    if (end > want_end && !(extra_flags & MAP_HUGETLB))
        munmap((void *)want_end, end - want_end);
    out->addr = (void *)aligned;
    out->bytes = bytes;
    if (extra_flags & MAP_HUGETLB) {
        out->raw = p;
        out->raw_bytes = raw;
    } else {
        out->raw = (void *)aligned;
        out->raw_bytes = bytes;
    }
    return 0;
}

/* A hugetlb mapping of hbytes (a multiple of the huge page size) at an
 * address aligned to align: reserve address space, then map over it. */
static int lb_os_map_hugetlb(size_t hbytes, size_t align, int hflag, size_t guard, struct lb_os_mapping *out)
{
    memset(out, 0, sizeof *out);
    size_t span = hbytes + align + 2 * guard;
    void *res = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (res == MAP_FAILED)
        return -errno;
    uintptr_t at = ((uintptr_t)res + guard + align - 1) & ~(uintptr_t)(align - 1);
    void *p = mmap((void *)at, hbytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | hflag, -1, 0);
    int rc = p == MAP_FAILED ? -errno : 0;
    /* Give back the reservation around the huge mapping (or all of it),
     * but for a guard page on each side: still PROT_NONE. */
    if (rc) {
        munmap(res, span);
        return rc;
    }
    uintptr_t lo = at - guard;
    if (lo > (uintptr_t)res)
        munmap(res, lo - (uintptr_t)res);
    uintptr_t end = (uintptr_t)res + span, hend = at + hbytes + guard;
    if (end > hend)
        munmap((void *)hend, end - hend);
    out->addr = p;
    out->bytes = hbytes;
    out->raw = (void *)lo;
    out->raw_bytes = hbytes + 2 * guard;
    return 0;
}

/* Read a small text file into buf with open/read (no stdio: no malloc, so
 * no per-thread malloc arena in the warden).  Returns bytes read or -1. */
static ssize_t lb_os_read_small(const char *path, char *buf, size_t n)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t got = read(fd, buf, n - 1);
    close(fd);
    if (got >= 0)
        buf[got] = 0;
    return got;
}

size_t lb_os_huge_pages_free_of(size_t huge_page_bytes)
{
    char path[96], b[32];
    snprintf(path, sizeof path, "/sys/kernel/mm/hugepages/hugepages-%zukB/free_hugepages",
             huge_page_bytes >> 10);
    if (lb_os_read_small(path, b, sizeof b) <= 0)
        return 0;
    return (size_t)strtoull(b, NULL, 10);
}

/* Leave the whole mapping (guards included) out of a fork()'s child:
 * the child refuses every inherited zone (docs/design.md, "fork"), and
 * the parent keeps its pages as they are, with no copy-on-write fault on
 * its ATOMIC path and no DMA page moved.  Best effort: a kernel that
 * refuses leaves a copy in the child, which never uses it. */
static void lb_os_dontfork(const struct lb_os_mapping *m)
{
    /* The raw system call: a sanitizer's madvise interceptor may not pass
     * the advice on (under TSan the child still had the mapping). */
    if (m->raw && m->raw_bytes)
        (void)syscall(SYS_madvise, m->raw, m->raw_bytes, MADV_DONTFORK);
}

int lb_os_map(size_t bytes, size_t align, unsigned flags, struct lb_os_mapping *out)
{
    size_t pg = lb_os_page_size();
    memset(out, 0, sizeof *out);
    if (!bytes || bytes % pg || !align || (align & (align - 1)) || align < pg)
        return -EINVAL;
    if (lb_os_fault(LB_OS_OP_MAP))
        return -ENOMEM;

    if (flags & LB_OS_MAP_HUGE) {
        /* Explicit huge pages, the largest size that is reserved and free
         * in sufficient number; else transparent huge pages. */
        static const size_t sizes[] = {(size_t)1 << 30, (size_t)2 << 20};
        bool injected = lb_os_fault(LB_OS_OP_HUGE); /* one attempt counted */
        for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0] && !injected; i++) {
            size_t hp = sizes[i];
            size_t hbytes = (bytes + hp - 1) / hp * hp;
            if (hp > bytes * 2 && hp > (2u << 20))
                continue; /* a 1 GiB page for a small region: waste */
            if (lb_os_huge_pages_free_of(hp) < hbytes / hp)
                continue;
            struct lb_os_mapping m;
            int hflag = MAP_HUGETLB | (int)((unsigned)__builtin_ctzl(hp) << MAP_HUGE_SHIFT);
            if (lb_os_map_hugetlb(hbytes, align > hp ? align : hp, hflag,
                                  (flags & LB_OS_MAP_GUARD) ? pg : 0, &m) == 0) {
                m.bytes = bytes;
                m.got = LB_OS_GOT_HUGETLB;
                m.huge_bytes = hp;
                lb_os_dontfork(&m);
                *out = m;
                return 0;
            }
        }
        flags |= LB_OS_MAP_THP; /* fall back to transparent huge pages */
        if (align < (2u << 20))
            align = 2u << 20;
    }

    size_t guard = (flags & LB_OS_MAP_GUARD) ? pg : 0;
    struct lb_os_mapping m;
    int rc;
    if (guard) {
        /* One mapping: [guard][bytes][guard], the guards made inaccessible. */
        rc = lb_os_map_raw(bytes + 2 * guard, align, 0, &m);
        if (rc)
            return rc;
        /* Re-center: the usable part must be aligned, so map with extra
         * alignment slack and place the guard just before an aligned start. */
        lb_os_unmap(&m);
        rc = lb_os_map_raw(bytes + align + 2 * guard, pg, 0, &m);
        if (rc)
            return rc;
        uintptr_t usable = ((uintptr_t)m.addr + guard + align - 1) & ~(uintptr_t)(align - 1);
        uintptr_t lo = usable - guard, hi = usable + bytes + guard;
        uintptr_t s = (uintptr_t)m.addr, e = s + m.bytes;
        if (lo > s)
            munmap((void *)s, lo - s);
        if (e > hi)
            munmap((void *)hi, e - hi);
        mprotect((void *)lo, guard, PROT_NONE);
        mprotect((void *)(usable + bytes), guard, PROT_NONE);
        m.raw = (void *)lo;
        m.raw_bytes = hi - lo;
        m.addr = (void *)usable;
        m.bytes = bytes;
    } else {
        rc = lb_os_map_raw(bytes, align, 0, &m);
        if (rc)
            return rc;
    }
    if (flags & LB_OS_MAP_THP) {
        if (madvise(m.addr, m.bytes, MADV_HUGEPAGE) == 0)
            m.got |= LB_OS_GOT_THP;
    }
    if (flags & LB_OS_MAP_PREFAULT) {
        rc = lb_os_populate(m.addr, m.bytes);
        if (rc) {
            lb_os_unmap(&m);
            return rc;
        }
        (void)mlock(m.addr, m.bytes); /* best effort: metadata is small */
    }
    lb_os_dontfork(&m);
    *out = m;
    return 0;
}

void lb_os_unmap(const struct lb_os_mapping *m)
{
    if (m->raw && m->raw_bytes)
        munmap(m->raw, m->raw_bytes);
}

int lb_os_populate(void *addr, size_t bytes)
{
    if (lb_os_fault(LB_OS_OP_POPULATE))
        return -ENOMEM;
    if (madvise(addr, bytes, MADV_POPULATE_WRITE) == 0)
        return 0;
    /* Kernels before 5.14: touch every page (the memory is ours and zero). */
    size_t pg = lb_os_page_size();
    for (size_t off = 0; off < bytes; off += pg)
        __atomic_store_n((volatile char *)addr + off, 0, __ATOMIC_RELAXED);
    return 0;
}

int lb_os_lock(void *addr, size_t bytes)
{
    if (lb_os_fault(LB_OS_OP_LOCK))
        return -ENOMEM;
    if (mlock(addr, bytes) == 0)
        return 0;
    int err = errno;
    /* Over RLIMIT_MEMLOCK mlock says ENOMEM, as when memory is short; the
     * header promises EPERM for the limit (issue 18.5): a finite limit and
     * no CAP_IPC_LOCK (which lifts it) mean it was the limit. */
    if (err == ENOMEM && lb_os_memlock_limit() != SIZE_MAX) {
        struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
        struct __user_cap_data_struct data[2];
        memset(data, 0, sizeof data);
        if (syscall(SYS_capget, &hdr, data) != 0 || !(data[CAP_IPC_LOCK / 32].effective & (1u << (CAP_IPC_LOCK % 32))))
            err = EPERM;
    }
    return -err;
}

int lb_os_phys_table(const void *addr, size_t n, uint64_t *phys)
{
    if (lb_os_fault(LB_OS_OP_PAGEMAP))
        return -EIO;
    int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -EIO;
    size_t pg = lb_os_page_size();
    uint64_t first = (uintptr_t)addr / pg;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i += 512) {
        uint64_t buf[512];
        size_t k = n - i < 512 ? n - i : 512;
        ssize_t got = pread(fd, buf, k * 8, (off_t)((first + i) * 8));
        if (got != (ssize_t)(k * 8)) {
            rc = -EIO;
            break;
        }
        for (size_t j = 0; j < k; j++) {
            uint64_t e = buf[j];
            if (!(e >> 63 & 1)) {
                rc = -ENOENT;
                break;
            }
            uint64_t pfn = e & ((1ull << 55) - 1);
            if (!pfn) {
                rc = -EPERM; /* unprivileged readers see PFN 0 */
                break;
            }
            phys[i + j] = pfn * pg;
        }
    }
    close(fd);
    return rc;
}

size_t lb_os_huge_pages_free(size_t *huge_page_bytes)
{
    lb_os_fault(LB_OS_OP_OTHER);
    char b[4096];
    size_t freep = 0, size_kb = 0;
    if (lb_os_read_small("/proc/meminfo", b, sizeof b) > 0) {
        const char *f = strstr(b, "HugePages_Free:"), *z = strstr(b, "Hugepagesize:");
        if (f)
            freep = (size_t)strtoull(f + 15, NULL, 10);
        if (z)
            size_kb = (size_t)strtoull(z + 13, NULL, 10);
    }
    if (huge_page_bytes)
        *huge_page_bytes = size_kb * 1024;
    return freep;
}

size_t lb_os_memlock_limit(void)
{
    struct rlimit rl;
    lb_os_fault(LB_OS_OP_OTHER);
    if (getrlimit(RLIMIT_MEMLOCK, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return SIZE_MAX;
    return (size_t)rl.rlim_cur;
}

/* ---- threads ------------------------------------------------------------------ */

struct lb_os_start {
    void *(*fn)(void *);
    void *arg;
};

int lb_os_thread_create(lb_os_thread *t, void *(*fn)(void *), void *arg, const char *name)
{
    if (lb_os_fault(LB_OS_OP_THREAD))
        return -EAGAIN;
    pthread_t th;
    sigset_t all, old;
    /* The new thread starts with every signal blocked, so process-directed
     * signals (a demo's timer) go to the application's threads. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&th, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc)
        return -rc;
    if (name) {
        char n16[16];
        snprintf(n16, sizeof n16, "%s", name);
        pthread_setname_np(th, n16);
    }
    t->handle = (uintptr_t)th;
    return 0;
}

void lb_os_thread_join(lb_os_thread t) { pthread_join((pthread_t)t.handle, NULL); }

int lb_os_futex_wait(lb_atomic_u32 *word, uint32_t expected, uint64_t timeout_ns)
{
    if (lb_os_fault(LB_OS_OP_FUTEX))
        return -EINTR; /* a spurious wake-up: callers re-check and loop */
    struct timespec ts, *tsp = NULL;
    if (timeout_ns) {
        ts.tv_sec = (time_t)(timeout_ns / 1000000000u);
        ts.tv_nsec = (long)(timeout_ns % 1000000000u);
        tsp = &ts;
    }
    long rc = syscall(SYS_futex, &word->v, FUTEX_WAIT_PRIVATE, expected, tsp, NULL, 0);
    if (rc == 0 || errno == EAGAIN)
        return 0;
    return -errno;
}

void lb_os_futex_wake(lb_atomic_u32 *word, int n)
{
    lb_os_fault(LB_OS_OP_OTHER);
    syscall(SYS_futex, &word->v, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

int lb_os_fence_all(void)
{
    /* Relaxed: a cache of the answer; a race costs one more look. */
    static lb_atomic_u32 broken;
    if (lb_load_rlx_u32(&broken))
        return -ENOSYS;
    /* Under a seccomp filter (mode 2), or strict mode: no membarrier (see
     * os.h).  Looked at each time: a filter may be installed later. */
    if (prctl(PR_GET_SECCOMP, 0, 0, 0, 0) != 0)
        goto never;
    if (syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0)
        return 0;
    /* EPERM: this process (or this fork child: registration is per
     * address space) has not registered yet. */
    if (errno == EPERM && syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0 &&
        syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0)
        return 0;
never:
    lb_store_rlx_u32(&broken, 1); /* ENOSYS, EINVAL, a filter: never again */
    return -ENOSYS;
}

void lb_os_yield(void)
{
    lb_os_fault(LB_OS_OP_OTHER);
    sched_yield();
}

void lb_os_sleep_ns(uint64_t ns)
{
    lb_os_fault(LB_OS_OP_OTHER);
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

_Static_assert(sizeof(pthread_mutex_t) <= sizeof(lb_os_mutex), "lb_os_mutex too small");

void lb_os_mutex_init(lb_os_mutex *m, enum lb_os_mutex_kind kind)
{
    (void)kind;
    pthread_mutex_init((pthread_mutex_t *)m, NULL);
}
void lb_os_mutex_lock(lb_os_mutex *m) { pthread_mutex_lock((pthread_mutex_t *)m); }
void lb_os_mutex_unlock(lb_os_mutex *m) { pthread_mutex_unlock((pthread_mutex_t *)m); }
void lb_os_mutex_destroy(lb_os_mutex *m) { pthread_mutex_destroy((pthread_mutex_t *)m); }

static pthread_key_t lb_os_exit_key;
static pthread_once_t lb_os_exit_once = PTHREAD_ONCE_INIT;
static void (*lb_os_exit_fn)(void *);
static int lb_os_exit_rc;

/* The key's destructor: the hook, once one is set (a thread that armed
 * the key did so after lb_os_thread_exit_hook_init stored it). */
static void lb_os_exit_tramp(void *arg)
{
    /* Acquire: pairs with the release store in lb_os_thread_exit_hook_init. */
    void (*fn)(void *) = __atomic_load_n(&lb_os_exit_fn, __ATOMIC_ACQUIRE);
    if (fn)
        fn(arg);
}

static void lb_os_exit_key_make(void)
{
    lb_os_exit_rc = -pthread_key_create(&lb_os_exit_key, lb_os_exit_tramp);
}

/* The key is made when the library is loaded, so that it is among the
 * process's first keys: glibc keeps the values of the first 32 inside the
 * thread descriptor, and pthread_setspecific on them is a plain store (no
 * allocation), which a first claim from a signal handler relies on.  A
 * process that made 32 keys before loading labyrinth gets a key whose
 * first setspecific in a thread may allocate (docs/design.md, "Limits"). */
__attribute__((__constructor__)) static void lb_os_exit_key_early(void)
{
    pthread_once(&lb_os_exit_once, lb_os_exit_key_make);
}

int lb_os_thread_exit_hook_init(void (*fn)(void *))
{
    /* Release: the hook is visible to every destructor that runs later. */
    __atomic_store_n(&lb_os_exit_fn, fn, __ATOMIC_RELEASE);
    pthread_once(&lb_os_exit_once, lb_os_exit_key_make);
    return lb_os_exit_rc;
}

void lb_os_thread_exit_arm(void *arg)
{
    /* glibc keeps the values of the first 32 keys inside the thread
     * descriptor: pthread_setspecific on such a key is a store, with no
     * allocation and no system call.  The key is created at the first zone
     * creation, normally among the first keys of the process; the seccomp
     * test (tests/test_seccomp.c) checks the whole ATOMIC path, this call
     * included, makes no system call. */
    pthread_setspecific(lb_os_exit_key, arg);
}

int lb_os_fork_hooks(void (*prepare)(void), void (*parent)(void), void (*child)(void))
{
    return -pthread_atfork(prepare, parent, child);
}

/* ---- time ------------------------------------------------------------------------ */

uint64_t lb_os_clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static lb_atomic_u64 lb_os_cpu_ms;

#if defined(__x86_64__)
/* One (clock, counter) pair whose clock reads bracket the counter's read
 * tightly: *lo and *hi are the clock just before and just after *c.  A
 * preemption between the two reads widens the bracket; the pair with the
 * narrowest of a few tries is kept. */
void (*lb_os_calibrate_pause)(int where);

static void lb_os_clock_pair(uint64_t *lo, uint64_t *c, uint64_t *hi)
{
    uint64_t best = UINT64_MAX;
    /* Relaxed: a test sets the pause before it calibrates. */
    void (*pause)(int) = __atomic_load_n(&lb_os_calibrate_pause, __ATOMIC_RELAXED);
    for (int i = 0; i < 16; i++) {
        uint64_t a = lb_os_clock_ns();
        if (pause)
            pause(0);
        uint64_t x = lb_os_cycles();
        if (pause)
            pause(1);
        uint64_t b = lb_os_clock_ns();
        if (b - a < best) {
            best = b - a;
            *lo = a, *c = x, *hi = b;
        }
        if (best < 1000u)
            break;
    }
}
#endif

/* Counter ticks per millisecond, an upper bound: the tracking clock
 * (lb_clock_of) divides by it, so it may run slow but is never ahead of
 * the real time (tests/api_tracking.c, test_coarse_clock).  On x86-64 the
 * counter's ticks between two bracketed pairs (lb_os_clock_pair) are
 * divided by the shortest time that can lie between them (the later
 * pair's lo minus the earlier's hi), rounded up, plus 1/1024 for the
 * CLOCK_MONOTONIC slew NTP may apply (at most 500 ppm).  A preemption
 * inside a bracket only makes the bound larger (the clock slower), never
 * smaller: the earlier version, which read the clock and the counter one
 * after the other, was made 8 records ahead in CI by one preemption
 * between those reads. */
uint64_t lb_os_cycles_calibrate(void)
{
    uint64_t v;
#if defined(__aarch64__)
    uint64_t f;
    __asm__ __volatile__("mrs %0, cntfrq_el0" : "=r"(f));
    v = (f + 999u) / 1000u;
#elif defined(__x86_64__)
    uint64_t lo0, c0, hi0, lo1, c1, hi1;
    lb_os_clock_pair(&lo0, &c0, &hi0);
    while (lb_os_clock_ns() - hi0 < 2000000u) {
    }
    lb_os_clock_pair(&lo1, &c1, &hi1);
    uint64_t ns = lo1 > hi0 ? lo1 - hi0 : 1;
    v = ((c1 - c0) * 1000000u + ns - 1) / ns;
    v += (v + 1023u) / 1024u;
#else
    v = 1000000u; /* lb_os_cycles() is the clock in ns */
#endif
    return v ? v : 1;
}

uint64_t lb_os_cycles_per_ms(void)
{
    /* Relaxed: a value, the same from whichever thread computes it first
     * (two first callers may both calibrate and store close values). */
    uint64_t v = lb_load_rlx_u64(&lb_os_cpu_ms);
    if (!v) {
        v = lb_os_cycles_calibrate();
        lb_store_rlx_u64(&lb_os_cpu_ms, v);
    }
    return v;
}

/* ---- output ------------------------------------------------------------------------ */

void lb_os_write_err(const char *buf, size_t n)
{
    lb_os_fault(LB_OS_OP_OTHER);
    while (n) {
        ssize_t w = write(2, buf, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        buf += w;
        n -= (size_t)w;
    }
}

void lb_os_abort(void) { abort(); }

/* lb_os_symbolize_any's table: append-only, so a reader in a signal
 * handler never sees an entry change.  An entry is written whole, then
 * published by the count (release store, paired with the readers'
 * acquire load); writers are serialized by the mutex (normal context).
 * An object unloaded stays in the table; a later one at the same
 * addresses is found first (readers walk from the newest).  Full: later
 * objects are unknown (the raw address is printed). */
#define LB_OS_OBJECTS 128
static struct lb_os_object {
    uintptr_t lo, hi, base;
    char name[56];
} lb_os_objects[LB_OS_OBJECTS];
static lb_atomic_u32 lb_os_nobjects;
static pthread_mutex_t lb_os_objects_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t lb_os_objects_once = PTHREAD_ONCE_INIT;

/* Held across fork(): a thread noting objects (a zone creation) at the
 * fork would leave it locked in the child for ever, and the child's first
 * zone creation would hang on it (found by api_fork in CI: a child killed
 * by its 20 s alarm while another thread created zones). */
static void lb_os_objects_fork_prepare(void) { pthread_mutex_lock(&lb_os_objects_lock); }
static void lb_os_objects_fork_parent(void) { pthread_mutex_unlock(&lb_os_objects_lock); }
static void lb_os_objects_fork_child(void) { pthread_mutex_init(&lb_os_objects_lock, NULL); }
static void lb_os_objects_hooks(void)
{
    (void)pthread_atfork(lb_os_objects_fork_prepare, lb_os_objects_fork_parent, lb_os_objects_fork_child);
}

static int lb_os_note_one(struct dl_phdr_info *info, size_t size, void *ctx)
{
    (void)size, (void)ctx;
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    for (unsigned i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
            continue;
        uintptr_t a = info->dlpi_addr + ph->p_vaddr;
        lo = a < lo ? a : lo;
        hi = a + ph->p_memsz > hi ? a + ph->p_memsz : hi;
    }
    if (hi <= lo)
        return 0;
    uint32_t n = lb_load_rlx_u32(&lb_os_nobjects); /* the mutex's: we are the writer */
    const char *name = info->dlpi_name && info->dlpi_name[0] ? info->dlpi_name : program_invocation_name;
    const char *slash = name ? strrchr(name, '/') : NULL;
    char nm[sizeof lb_os_objects[0].name];
    snprintf(nm, sizeof nm, "%s", slash ? slash + 1 : name ? name : "?");
    /* Known already only if the newest entry over these addresses is this
     * very object: one unloaded and another (or the same again) loaded at
     * its addresses gets an entry of its own, found first by readers (the
     * review: after liba, libb and liba again at one address, libb's
     * name was printed for liba's calls). */
    for (uint32_t i = n; i-- > 0;) {
        const struct lb_os_object *e = &lb_os_objects[i];
        if (e->lo < hi && lo < e->hi) {
            if (e->lo == lo && e->hi == hi && e->base == info->dlpi_addr && strcmp(e->name, nm) == 0)
                return 0;
            break;
        }
    }
    if (n == LB_OS_OBJECTS)
        return 1;
    struct lb_os_object *o = &lb_os_objects[n];
    o->lo = lo, o->hi = hi, o->base = info->dlpi_addr;
    memcpy(o->name, nm, sizeof nm);
    lb_store_rel_u32(&lb_os_nobjects, n + 1);
    return 0;
}

void lb_os_objects_note(void)
{
    pthread_once(&lb_os_objects_once, lb_os_objects_hooks);
    pthread_mutex_lock(&lb_os_objects_lock);
    dl_iterate_phdr(lb_os_note_one, NULL);
    pthread_mutex_unlock(&lb_os_objects_lock);
}

int lb_os_symbolize_any(const void *addr, char *buf, size_t n)
{
    uintptr_t a = (uintptr_t)addr;
    for (uint32_t i = lb_load_acq_u32(&lb_os_nobjects); a && i-- > 0;) {
        const struct lb_os_object *o = &lb_os_objects[i];
        if (a >= o->lo && a < o->hi) {
            /* No snprintf: not async-signal-safe in general. */
            static const char hex[] = "0123456789abcdef";
            size_t k = 0;
            for (const char *c = o->name; *c && k + 1 < n; c++)
                buf[k++] = *c;
            char t[20];
            int m = 0;
            uintptr_t off = a - o->base;
            do
                t[m++] = hex[off & 15];
            while (off >>= 4);
            const char *pre = "+0x";
            for (const char *c = pre; *c && k + 1 < n; c++)
                buf[k++] = *c;
            while (m > 0 && k + 1 < n)
                buf[k++] = t[--m];
            if (n)
                buf[k] = 0;
            return 0;
        }
    }
    return -ENOENT;
}

int lb_os_symbolize(const void *addr, char *buf, size_t n)
{
    Dl_info info;
    if (!addr || !dladdr(addr, &info) || !info.dli_fname)
        return -ENOENT;
    const char *obj = strrchr(info.dli_fname, '/');
    obj = obj ? obj + 1 : info.dli_fname;
    if (info.dli_sname)
        snprintf(buf, n, "%s+0x%lx (%s)", info.dli_sname,
                 (unsigned long)((uintptr_t)addr - (uintptr_t)info.dli_saddr), obj);
    else
        snprintf(buf, n, "%s+0x%lx", obj, (unsigned long)((uintptr_t)addr - (uintptr_t)info.dli_fbase));
    return 0;
}
