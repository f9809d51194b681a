/*
 * timer.h - the clocks of labyrinth-bench.
 *
 * Throughput runs are timed with CLOCK_MONOTONIC around whole loops.
 * Single-operation latency is timed with the CPU's counter, fenced so that
 * the operation cannot move across the reads:
 *
 *   x86-64   start: lfence; rdtsc; lfence    (nothing earlier is still
 *                                             running, nothing later has
 *                                             started)
 *            stop:  rdtscp; lfence           (rdtscp waits for everything
 *                                             earlier; the lfence keeps
 *                                             later work out)
 *   aarch64  isb; mrs cntvct_el0; isb
 *   other    clock_gettime(CLOCK_MONOTONIC), in ns
 *
 * lbb_timer_calibrate() measures ticks per ns against CLOCK_MONOTONIC, and
 * the timer floor (two back-to-back reads) is measured like any operation
 * and reported next to every latency table.
 */
#ifndef LBB_TIMER_H
#define LBB_TIMER_H

#include <stdint.h>
#include <time.h>

static inline uint64_t lbb_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#if defined(__x86_64__)
#define LBB_TICK_NAME "rdtsc (lfence; rdtsc; lfence / rdtscp; lfence)"
static inline uint64_t lbb_tick_start(void)
{
    uint32_t lo, hi;
    __asm__ __volatile__("lfence\n\trdtsc\n\tlfence" : "=a"(lo), "=d"(hi) : : "memory");
    return (uint64_t)hi << 32 | lo;
}
static inline uint64_t lbb_tick_stop(void)
{
    uint32_t lo, hi, aux;
    __asm__ __volatile__("rdtscp\n\tlfence" : "=a"(lo), "=d"(hi), "=c"(aux) : : "memory");
    return (uint64_t)hi << 32 | lo;
}
#elif defined(__aarch64__)
#define LBB_TICK_NAME "cntvct_el0 (isb; mrs; isb)"
static inline uint64_t lbb_tick_read(void)
{
    uint64_t v;
    __asm__ __volatile__("isb\n\tmrs %0, cntvct_el0\n\tisb" : "=r"(v) : : "memory");
    return v;
}
static inline uint64_t lbb_tick_start(void) { return lbb_tick_read(); }
static inline uint64_t lbb_tick_stop(void) { return lbb_tick_read(); }
#else
#define LBB_TICK_NAME "clock_gettime(CLOCK_MONOTONIC)"
static inline uint64_t lbb_tick_start(void) { return lbb_now_ns(); }
static inline uint64_t lbb_tick_stop(void) { return lbb_now_ns(); }
#endif

/* Ticks per ns, measured against CLOCK_MONOTONIC (median of a few
 * spins of about 20 ms each). */
double lbb_timer_calibrate(void);

#endif /* LBB_TIMER_H */
