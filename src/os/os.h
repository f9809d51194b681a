/*
 * os.h - layer 1: everything labyrinth asks of the operating system.
 *
 * This is the only interface through which the other layers reach the OS.
 * A kernel-module or bare-metal build provides another implementation of
 * these functions and changes nothing else.  Functions return 0 or a
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

#include <stddef.h>
#include <stdint.h>
#include "../lb_atomic.h"

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

/* ---- memory ----------------------------------------------------------- */
#define LB_OS_MAP_HUGE    0x1u /* try explicit huge pages (MAP_HUGETLB): 1 GiB
                                 for regions of 512 MiB and more, else
                                 2 MiB; transparent huge pages otherwise */
#define LB_OS_MAP_THP     0x2u /* ask for transparent huge pages          */
#define LB_OS_MAP_GUARD   0x4u /* PROT_NONE guard page before and after   */
#define LB_OS_MAP_PREFAULT 0x8u /* populate now, and try to lock (metadata:
                                   the ATOMIC path must never fault on it) */

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
 * -ENOMEM / -EINVAL. */
int lb_os_map(size_t bytes, size_t align, unsigned flags, struct lb_os_mapping *out);
void lb_os_unmap(const struct lb_os_mapping *m);
/* Pre-fault [addr, addr+bytes) for writing. */
int lb_os_populate(void *addr, size_t bytes);
/* Lock [addr, addr+bytes) in memory.  -EPERM/-ENOMEM/-EAGAIN from mlock. */
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
unsigned lb_os_ncpus(void);

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

/* A mutex for normal thread context only (never on the ATOMIC path). */
typedef struct { uint64_t opaque[6]; } lb_os_mutex;
void lb_os_mutex_init(lb_os_mutex *m);
void lb_os_mutex_lock(lb_os_mutex *m);
void lb_os_mutex_unlock(lb_os_mutex *m);
void lb_os_mutex_destroy(lb_os_mutex *m);

/* Thread-exit hook: fn(arg) runs in an exiting thread that has armed it.
 * init once per process (normal context); arm is any context (it writes
 * one word of the thread's own descriptor, no system call). */
int lb_os_thread_exit_hook_init(void (*fn)(void *));
void lb_os_thread_exit_arm(void *arg);

/* ---- time ---------------------------------------------------------------- */
/* Monotonic nanoseconds (normal context). */
uint64_t lb_os_clock_ns(void);
/* A cycle counter readable in any context without a system call (TSC on
 * x86-64, CNTVCT_EL0 on aarch64, the clock elsewhere). */
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
/* Cycles of lb_os_cycles() per microsecond, calibrated once (normal
 * context; later calls any context). */
uint64_t lb_os_cycles_per_us(void);

/* ---- output ---------------------------------------------------------------- */
/* Write to stderr with write(2) (async-signal-safe; the only system call a
 * misuse report may make). */
void lb_os_write_err(const char *buf, size_t n);
void lb_os_abort(void) __attribute__((noreturn));
/* Describe a code address ("func+0x12 (libfoo.so)") into buf (normal
 * context).  Returns 0, or -ENOENT when nothing is known of it. */
int lb_os_symbolize(const void *addr, char *buf, size_t n);

#endif /* LB_OS_H */
