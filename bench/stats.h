/*
 * stats.h - medians and latency histograms.
 */
#ifndef LBB_STATS_H
#define LBB_STATS_H

#include <stddef.h>
#include <stdint.h>

/* Median of n values (n > 0); the array is left unchanged.  For an even n
 * the mean of the two middle values. */
double lbb_median(const double *v, size_t n);
double lbb_min(const double *v, size_t n);
double lbb_max(const double *v, size_t n);

/* Exact latency histogram: one counter per tick below LBB_HIST_EXACT,
 * the rare larger values kept individually (up to a bound; past it only
 * counted and folded into max). */
#define LBB_HIST_EXACT 65536u
#define LBB_HIST_BIG   65536u

struct lbb_hist {
    uint32_t *bins;
    uint64_t *big;
    size_t nbig;
    uint64_t n, dropped, max;
};

int lbb_hist_init(struct lbb_hist *h);
void lbb_hist_reset(struct lbb_hist *h);
void lbb_hist_free(struct lbb_hist *h);
static inline void lbb_hist_add(struct lbb_hist *h, uint64_t v)
{
    h->n++;
    if (v > h->max)
        h->max = v;
    if (v < LBB_HIST_EXACT)
        h->bins[v]++;
    else if (h->nbig < LBB_HIST_BIG)
        h->big[h->nbig++] = v;
    else
        h->dropped++;
}
/* Nearest-rank percentile (q in (0, 1]): the smallest value with at least
 * q * n samples at or below it.  Samples dropped past LBB_HIST_BIG count
 * as the max. */
uint64_t lbb_hist_pct(struct lbb_hist *h, double q);

/* The percentiles every latency table shows. */
#define LBB_NPCT 5
extern const double lbb_pct_q[LBB_NPCT];
extern const char *const lbb_pct_name[LBB_NPCT];

#endif /* LBB_STATS_H */
