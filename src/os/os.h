/*
 * os.h - layer 1: everything labyrinth asks of the operating system.
 *
 * This is the only interface through which the other layers reach the OS.
 * A kernel-module or bare-metal build provides another implementation of
 * these functions and changes nothing else: os_linux.c is Linux user
 * space, os_kernel.c (with os_kernel.h for its inline parts) the Linux
 * kernel module (docs/kernel.md).  Functions return 0 or a
 * negative errno unless stated otherwise; each states its preconditions.
 *
 * Context: unless marked "any context", a function may make system calls
 * and must only be called from normal thread context (never on the ATOMIC
 * path).
 *
 * Fault injection: every function that can fail counts its calls per
 * operation kind and can be told to fail at the Nth call (tests use it; see
 * lb_os_fault_set).
 */
#ifndef LB_OS_H
#define LB_OS_H

#include "../lb_compat.h"
#include "../lb_atomic.h"

#ifdef __KERNEL__
#include "os_kernel.h"
#endif

/* ---- fault injection and call counting -------------------------------- */
enum lb_os_op {
    LB_OS_OP_MAP = 0,   /* lb_os_map                                   */
    LB_OS_OP_LOCK,      /* lb_os_lock                                  */
    LB_OS_OP_POPULATE,  /* lb_os_populate                              */
    LB_OS_OP_HUGE,      /* the huge-page attempt inside lb_os_map      */
    LB_OS_OP_PAGEMAP,   /* lb_os_phys_table                            */
    LB_OS_OP_THREAD,    /* lb_os_thread_create                         */
    LB_OS_OP_FUTEX,     /* lb_os_futex_wait                            */
    LB_OS_OP_OTHER,     /* every other OS call (clock, yield, write...)*/
    LB_OS_OP_COUNT
};
/* Fail the nth call (1-based) of op from now on; persistent: every call
 * from the nth on fails.  nth 0 disarms.  Returns the calls counted so far. */
uint64_t lb_os_fault_set(enum lb_os_op op, uint64_t nth, int persistent);
/* Calls made so far to op (failed ones included). */
uint64_t lb_os_calls(enum lb_os_op op);
/* Total calls to any OS primitive. */
uint64_t lb_os_calls_total(void);
/* For implementations of this interface (os_fault.c): count a call of op;
 * true when it must fail. */
bool lb_os_fault(enum lb_os_op op);

/* ---- memory ----------------------------------------------------------- */
#define LB_OS_MAP_HUGE    0x1u /* try explicit huge pages (MAP_HUGETLB): 1 GiB
                                 for regions of 512 MiB and more, else
                                 2 MiB; transparent huge pages otherwise */
#define LB_OS_MAP_THP     0x2u /* ask for transparent huge pages          */
#define LB_OS_MAP_GUARD   0x4u /* PROT_NONE guard page before and after   */
#define LB_OS_MAP_PREFAULT 0x8u /* populate now, and try to lock (metadata:
                                   the ATOMIC path must never fault on it) */
#define LB_OS_MAP_PAGES   0x10u /* a zone's pages (not metadata): a kernel
                                   gives them physically contiguous, from
                                   its page allocator                      */

struct lb_os_mapping {
    void    *addr;       /* usable start, aligned as asked               */
    size_t   bytes;      /* usable length                                */
    void    *raw;        /* what to unmap                                */
    size_t   raw_bytes;
    unsigned got;        /* LB_OS_GOT_* describing what was obtained     */
    size_t   huge_bytes; /* huge page size obtained, 0 if none           */
};
#define LB_OS_GOT_HUGETLB 0x1u
#define LB_OS_GOT_THP     0x2u

/* Map bytes (a multiple of the page size) of zeroed private anonymous
 * memory aligned to align (a power of two >= page size).  Returns 0 or
 * -ENOMEM / -EINVAL.  User space: the mapping is left out of the child of
 * a fork() (MADV_DONTFORK, docs/design.md "fork"): the parent's pages are
 * never made copy-on-write, so its ATOMIC path takes no page fault and a
 * DMA zone's pages keep their physical addresses after a fork. */
int lb_os_map(size_t bytes, size_t align, unsigned flags, struct lb_os_mapping *out);
void lb_os_unmap(const struct lb_os_mapping *m);
/* Pre-fault [addr, addr+bytes) for writing. */
int lb_os_populate(void *addr, size_t bytes);
/* Lock [addr, addr+bytes) in memory.  -EPERM when the memlock limit
 * (RLIMIT_MEMLOCK, without CAP_IPC_LOCK) refuses it, else -ENOMEM/-EAGAIN
 * from mlock. */
int lb_os_lock(void *addr, size_t bytes);
/* Physical address of each of n pages from addr into phys[].  -EPERM when
 * the caller may not read physical addresses (they read as 0), -EIO when
 * /proc/self/pagemap cannot be read, -ENOENT when a page is not present. */
int lb_os_phys_table(const void *addr, size_t n, uint64_t *phys);
/* Huge pages of the default size currently free in the system (0 if unknown). */
size_t lb_os_huge_pages_free(size_t *huge_page_bytes);
/* Free huge pages of the given size (2 MiB, 1 GiB; 0 if none or unknown). */
size_t lb_os_huge_pages_free_of(size_t huge_page_bytes);
/* RLIMIT_MEMLOCK soft limit in bytes (SIZE_MAX = unlimited). */
size_t lb_os_memlock_limit(void);

/* Base page size (any context: read once, then cached). */
size_t lb_os_page_size(void);
/* The CPUs that may run a caller: user space, the online ones; a kernel,
 * the possible ones (CPU hotplug may online more later). */
unsigned lb_os_ncpus(void);
/* The most pages one lb_os_map(LB_OS_MAP_PAGES) can give (user space:
 * no limit below LB_REGION_MAX_PAGES; a kernel: its largest physically
 * contiguous allocation).  A zone larger than this spans several regions. */
size_t lb_os_region_max_pages(void);
/* Physical address of addr from the OS's own mapping, without a table
 * (any context): -EOPNOTSUPP where the OS cannot say (user space), else 0
 * or -EFAULT. */
int lb_os_virt_to_phys(const void *addr, uint64_t *phys);

/* ---- the calling context ------------------------------------------------
 * The cache layer keeps a small struct per execution context: per thread
 * in user space (initial-exec TLS), per CPU in a kernel.  The core names it
 * only through these:
 *   LB_OS_CTX_DECLARE(type, name) / LB_OS_CTX_DEFINE(type, name)
 *   lb_os_ctx(name)       the calling context's instance; in a kernel only
 *                         valid with preemption off (lb_os_preempt_off)
 *   LB_OS_CTX_PER_CPU     1 when contexts are CPUs: a caller that sleeps
 *                         must give its context up first (zone.c)
 *   lb_os_preempt_off/on  keep the caller on its CPU, unpreempted (nests);
 *                         nothing in user space
 *   lb_os_ctx_id()        a fixed id for the calling context (the CPU + 1),
 *                         or 0: ids are then handed out on first use
 *   lb_os_can_sleep()     false where sleeping is a bug (a kernel's atomic
 *                         contexts); user space: always true
 *   lb_os_may_sleep()     the same, at the start of a call that may sleep
 *                         or wait for a lock (KERNEL allocations, the
 *                         normal-context entry points): a kernel also
 *                         tells its debug checks (might_sleep())
 * In user space they compile to what the code wrote before: a TLS access
 * (tools: the callgrind LIFO count, docs/kernel.md). */
#ifndef __KERNEL__
#define LB_OS_CTX_PER_CPU 0
#define LB_OS_CTX_DECLARE(type, name) extern __thread type name __attribute__((tls_model("initial-exec")))
#define LB_OS_CTX_DEFINE(type, name)  __thread type name __attribute__((tls_model("initial-exec")))
#define lb_os_ctx(name) (&(name))
static inline void lb_os_preempt_off(void) {}
static inline void lb_os_preempt_on(void) {}
static inline uint32_t lb_os_ctx_id(void) { return 0; }
static inline bool lb_os_can_sleep(void) { return true; }
static inline bool lb_os_may_sleep(void) { return true; }
/* The address map's key of an address: itself (kernel: its offset from
 * the direct map, so that it fits in 48 bits). */
#define LB_OS_ADDR_BASE ((uintptr_t)0)
/* The default report handler's window (report.c): at most BURST lines of
 * a zone's report kind per WINDOW_MS, the rest counted in a "suppressed"
 * line.  0: no window (user space: stderr is the process's own; only the
 * lifetime cap, LB_REPORT_LINES, applies).  A kernel: os_kernel.h. */
#define LB_OS_REPORT_BURST 0u
#define LB_OS_REPORT_WINDOW_MS 0u
#endif

/* An environment variable, or NULL (a kernel has none). */
const char *lb_os_getenv(const char *name);

/* The seed macro's sites (issue 17.3).  A record points at the caller's
 * static struct labyrinth_site; where the code holding it can go away (a
 * kernel module unloaded) the OS keeps it (a kernel: pins the module) for
 * as long as the zone lives.  lb_os_site_keep (any context, on every
 * macro call): the site to record, or NULL to record the caller instead
 * (the site could not be kept).  lb_os_sites_init (zone creation, normal
 * context): owner is the creating module (a kernel: THIS_MODULE through
 * the header's labyrinth_zone_create macro; NULL: none), whose
 * sites are not pinned (it destroys its zones before it goes; pinning it
 * would refuse its unload for ever).  lb_os_sites_release (destroy, after
 * the last reader): drops what keep took.  User space: nothing to keep. */
#ifndef __KERNEL__
struct lb_os_sites {
    uint32_t none;
};
static inline const void *lb_os_site_keep(struct lb_os_sites *s, const void *site)
{
    (void)s;
    return site;
}
static inline void lb_os_sites_init(struct lb_os_sites *s, void *owner) { (void)s, (void)owner; }
static inline void lb_os_sites_release(struct lb_os_sites *s) { (void)s; }
static inline int lb_os_handler_keep(struct lb_os_sites *s, void *module)
{
    (void)s, (void)module;
    return 0;
}
#endif
/* lb_os_handler_keep (any context): a report handler (and its arg) set by
 * the code of module is kept as long as the zone lives (a kernel: the
 * module is pinned, in the sites' table, until lb_os_sites_release;
 * putting it when the handler changes would race a report still running
 * the old one).  0, or -EAGAIN (the module is in its __init, which may
 * fail and free it whatever its count), -ENOENT (it is unloading),
 * -ENOSPC (the zone's table of pinned modules is full).  module NULL (the
 * kernel image, or user space) or the zone's creator: nothing to keep. */

/* Zone life-cycle hook (normal context): a kernel publishes each zone in
 * debugfs; user space does nothing.  zone is a struct labyrinth_zone *. */
void lb_os_zone_event(void *zone, const char *name, bool created);

/* ---- threads and waiting ------------------------------------------------ */
typedef struct { uintptr_t handle; } lb_os_thread;
int lb_os_thread_create(lb_os_thread *t, void *(*fn)(void *), void *arg, const char *name);
void lb_os_thread_join(lb_os_thread t);
/* Sleep while *word == expected, at most timeout_ns (0 = no timeout).
 * Returns 0 when woken or the value differed, -ETIMEDOUT, -EINTR. */
int lb_os_futex_wait(lb_atomic_u32 *word, uint32_t expected, uint64_t timeout_ns);
/* Wake up to n sleepers on word. */
void lb_os_futex_wake(lb_atomic_u32 *word, int n);
void lb_os_yield(void);
void lb_os_sleep_ns(uint64_t ns);
/* An asymmetric fence (normal context; may sleep): when it returns, every
 * other thread of the process (each CPU, in a kernel) has executed a full
 * memory barrier at some point since the call began, so a store made
 * before the call and a load made after it pair with any other thread's
 * store-then-load separated by a compiler fence only (the outbox steal,
 * remote.c: a Dekker whose heavy side is here).  User space:
 * membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED), the process registered
 * on first use (again after a fork: a child's registration starts
 * empty); a kernel: synchronize_rcu_expedited(), whose grace period waits
 * for every preemption-disabled section (lb_enter disables preemption)
 * with full barriers on every CPU.  Returns 0; -EAGAIN, not now (a kernel
 * caller that may not sleep); -ENOSYS, never in this process: an old
 * kernel, a seccomp filter that refuses the call, or any seccomp filter
 * at all (one may kill the process on membarrier rather than refuse it,
 * as systemd's SystemCallFilter= does by default, and a filter's rules
 * cannot be read: so no call is made under one). */
int lb_os_fence_all(void);

/* A mutex for normal thread context only (never on the ATOMIC path).
 * LB_OS_MUTEX_INITIALIZER(name) initialises a static one. */
#ifndef __KERNEL__
typedef struct { uint64_t opaque[6]; } lb_os_mutex;
#define LB_OS_MUTEX_INITIALIZER(name) {{0}} /* a zero-filled pthread mutex */
#endif
/* What a mutex guards, for a kernel's lockdep: each kind is its own lock
 * class, so that holding a zone's rebalance and grow mutexes together
 * (check.c) is not seen as taking one mutex twice (the debug kernel's
 * "possible recursive locking": all were one class).  User space ignores
 * it. */
enum lb_os_mutex_kind {
    LB_MUTEX_GROW,      /* a zone's growth                  */
    LB_MUTEX_REBALANCE, /* a zone's warden run, check, shrink */
    LB_MUTEX_TLS,       /* the thread-cache slots           */
    LB_MUTEX_REGISTRY,  /* the zone registry                */
    LB_MUTEX_KINDS
};
void lb_os_mutex_init(lb_os_mutex *m, enum lb_os_mutex_kind kind);
void lb_os_mutex_lock(lb_os_mutex *m);
void lb_os_mutex_unlock(lb_os_mutex *m);
void lb_os_mutex_destroy(lb_os_mutex *m);

/* Thread-exit hook: fn(arg) runs in an exiting thread that has armed it.
 * init once per process (normal context); arm is any context (it writes
 * one word of the thread's own descriptor, no system call). */
int lb_os_thread_exit_hook_init(void (*fn)(void *));
void lb_os_thread_exit_arm(void *arg);

/* fork() hooks (normal context, once per process): prepare runs in the
 * forking thread before the fork, parent and child after it in each
 * process (pthread_atfork).  A kernel has no fork: nothing is registered,
 * 0 is returned. */
int lb_os_fork_hooks(void (*prepare)(void), void (*parent)(void), void (*child)(void));

/* ---- time ---------------------------------------------------------------- */
/* Monotonic nanoseconds (normal context). */
uint64_t lb_os_clock_ns(void);
/* A cycle counter readable in any context without a system call (TSC on
 * x86-64, CNTVCT_EL0 on aarch64, the clock elsewhere; a kernel:
 * get_cycles()). */
#ifndef __KERNEL__
static inline uint64_t lb_os_cycles(void)
{
#if defined(__x86_64__)
    uint32_t lo, hi;
    __asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
#elif defined(__aarch64__)
    uint64_t v;
    __asm__ __volatile__("mrs %0, cntvct_el0" : "=r"(v));
    return v;
#else
    return lb_os_clock_ns();
#endif
}
#endif
/* Ticks of lb_os_cycles() per millisecond, calibrated once (normal
 * context; later calls any context); never below the true rate, so that
 * a clock made from it is never ahead of the real time.  Per millisecond,
 * not microsecond: an aarch64 counter at 19.2 MHz would round to 20 per us
 * (4 % off), and is 19200 per ms. */
uint64_t lb_os_cycles_per_ms(void);
#ifndef __KERNEL__
/* One calibration, uncached (what lb_os_cycles_per_ms caches; for
 * tests/unit_os.c, which calibrates under load). */
uint64_t lb_os_cycles_calibrate(void);
/* Tests only: called between the clock's and the counter's reads of a
 * calibration (where 0: after the clock's first read, 1: before its
 * second), to stand for a preemption there.  NULL: none. */
extern void (*lb_os_calibrate_pause)(int where);
#endif

/* ---- output ---------------------------------------------------------------- */
/* Write to stderr with write(2) (async-signal-safe; the only system call a
 * misuse report may make).  A kernel: printk, any context, not rate
 * limited here: the core limits report lines per zone and kind
 * (LB_OS_REPORT_BURST), and a line before an abort must not be lost. */
void lb_os_write_err(const char *buf, size_t n);
#ifndef __KERNEL__
void lb_os_abort(void) __attribute__((__noreturn__));
#endif /* a kernel: BUG() in line (os_kernel.h) */
/* Describe a code address ("func+0x12 (libfoo.so)") into buf (normal
 * context).  Returns 0, or -ENOENT when nothing is known of it. */
int lb_os_symbolize(const void *addr, char *buf, size_t n);
/* The same in any context (a signal handler, an interrupt): user space
 * gives "object+0x12a8" (what `addr2line -f -e object 0x12a8` turns into a
 * function and a line) from a table of the loaded objects that
 * lb_os_objects_note() fills; a kernel gives %pS.  -ENOENT when the
 * address is in no object the table knows. */
int lb_os_symbolize_any(const void *addr, char *buf, size_t n);
/* Add the objects loaded now to lb_os_symbolize_any's table (normal
 * context; zone creation calls it, so objects loaded before a zone was
 * created are known). */
void lb_os_objects_note(void);
/* An address for a report line, any context: into buf (cap bytes, NUL
 * included), returning the characters written, or 0 for "write it in hex
 * yourself" (user space: always; the core's formatter does).  A kernel
 * must not print raw addresses (kptr_restrict): a data address is hashed
 * (%p), a code address is a symbol (%pS) (issue 17.8). */
#ifndef __KERNEL__
static inline size_t lb_os_fmt_addr(char *buf, size_t cap, const void *addr, bool code)
{
    (void)buf, (void)cap, (void)addr, (void)code;
    return 0;
}
#else
size_t lb_os_fmt_addr(char *buf, size_t cap, const void *addr, bool code);
#endif

#endif /* LB_OS_H */
