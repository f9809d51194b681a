/*
 * stats.c - medians and latency histograms.
 */
#include "stats.h"

#include <stdlib.h>
#include <string.h>

const double lbb_pct_q[LBB_NPCT] = {0.50, 0.99, 0.999, 0.9999, 1.0};
const char *const lbb_pct_name[LBB_NPCT] = {"p50", "p99", "p99.9", "p99.99", "max"};

static int lbb_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double lbb_median(const double *v, size_t n)
{
    double tmp[256];
    double *s = n <= 256 ? tmp : malloc(n * sizeof *s);
    if (!s || n == 0)
        return 0;
    memcpy(s, v, n * sizeof *s);
    qsort(s, n, sizeof *s, lbb_cmp_double);
    double m = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    if (s != tmp)
        free(s);
    return m;
}

double lbb_min(const double *v, size_t n)
{
    double m = n ? v[0] : 0;
    for (size_t i = 1; i < n; i++)
        if (v[i] < m)
            m = v[i];
    return m;
}

double lbb_max(const double *v, size_t n)
{
    double m = n ? v[0] : 0;
    for (size_t i = 1; i < n; i++)
        if (v[i] > m)
            m = v[i];
    return m;
}

int lbb_hist_init(struct lbb_hist *h)
{
    memset(h, 0, sizeof *h);
    h->bins = calloc(LBB_HIST_EXACT, sizeof *h->bins);
    h->big = calloc(LBB_HIST_BIG, sizeof *h->big);
    if (!h->bins || !h->big) {
        lbb_hist_free(h);
        return -1;
    }
    return 0;
}

void lbb_hist_reset(struct lbb_hist *h)
{
    memset(h->bins, 0, LBB_HIST_EXACT * sizeof *h->bins);
    h->nbig = 0;
    h->n = h->dropped = h->max = 0;
}

void lbb_hist_free(struct lbb_hist *h)
{
    free(h->bins);
    free(h->big);
    h->bins = NULL;
    h->big = NULL;
}

static int lbb_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

uint64_t lbb_hist_pct(struct lbb_hist *h, double q)
{
    if (!h->n)
        return 0;
    if (q >= 1.0)
        return h->max;
    uint64_t rank = (uint64_t)(q * (double)h->n);
    if ((double)rank < q * (double)h->n)
        rank++;
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (uint32_t v = 0; v < LBB_HIST_EXACT; v++) {
        seen += h->bins[v];
        if (seen >= rank)
            return v;
    }
    qsort(h->big, h->nbig, sizeof *h->big, lbb_cmp_u64);
    for (size_t i = 0; i < h->nbig; i++)
        if (++seen >= rank)
            return h->big[i];
    return h->max;
}
