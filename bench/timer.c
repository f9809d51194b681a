/*
 * timer.c - calibration of the cycle counter against CLOCK_MONOTONIC.
 */
#include "timer.h"
#include "stats.h"

double lbb_timer_calibrate(void)
{
    double est[5];
    for (unsigned i = 0; i < 5; i++) {
        uint64_t t0 = lbb_now_ns(), c0 = lbb_tick_start();
        while (lbb_now_ns() - t0 < 20000000u) {
        }
        uint64_t c1 = lbb_tick_stop(), t1 = lbb_now_ns();
        est[i] = (double)(c1 - c0) / (double)(t1 - t0);
    }
    double r = lbb_median(est, 5);
    return r > 0 ? r : 1.0;
}
