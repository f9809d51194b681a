/*
 * report.c - the tables (Markdown, for a terminal and for
 * docs/benchmarks.md alike) and the JSON document.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "results.h"
#include "timer.h"

/* ---- derived numbers ------------------------------------------------------------- */

static const struct lbb_row *lbb_find(const struct lbb_results *r, const char *name)
{
    for (unsigned i = 0; i < r->nrows; i++)
        if (strcmp(r->rows[i].peer->name, name) == 0)
            return &r->rows[i];
    return NULL;
}

static bool lbb_ok(const struct lbb_series *s) { return s->measured && s->n > 0; }

static double lbb_med(const struct lbb_series *s) { return lbb_median(s->v, s->n); }

/* Median over runs of a.v[i] / b.v[i] (both measured in the same run i);
 * NAN when either is missing. */
static double lbb_ratio(const struct lbb_series *a, const struct lbb_series *b)
{
    if (!lbb_ok(a) || !lbb_ok(b) || a->n != b->n)
        return NAN;
    double q[LBB_MAX_RUNS];
    for (unsigned i = 0; i < a->n; i++)
        q[i] = a->v[i] / b->v[i];
    return lbb_median(q, a->n);
}

/* The smallest per-run ratio a.v[i] / b.v[i]. */
static double lbb_ratio_min(const struct lbb_series *a, const struct lbb_series *b)
{
    if (!lbb_ok(a) || !lbb_ok(b) || a->n != b->n)
        return NAN;
    double m = INFINITY;
    for (unsigned i = 0; i < a->n; i++)
        if (a->v[i] / b->v[i] < m)
            m = a->v[i] / b->v[i];
    return m;
}

static double lbb_harness_net(const struct lbb_results *r, const struct lbb_instr *ins, bool burst)
{
    const struct lbb_row *h = lbb_find(r, "harness");
    const struct lbb_instr *hi = h ? (burst ? &h->instr_burst : &h->instr_lifo) : NULL;
    if (!ins->measured || !hi || !hi->measured)
        return NAN;
    return ins->per_pair - hi->per_pair;
}

/* ---- the targets ----------------------------------------------------------- */

struct lbb_target {
    const char *what;    /* the target                                  */
    char measured[200];  /* the numbers                                 */
    const char *verdict; /* "met", "NOT met", "not measured"            */
};

#define LBB_NTARGETS 48

static const char *lbb_verdict(double v, double limit, bool at_most)
{
    if (isnan(v))
        return "not measured";
    return (at_most ? v <= limit : v >= limit) ? "met" : "NOT met";
}

/* "not measured in this run" instead of a line of nan. */
static void lbb_unmeasured(struct lbb_target *t)
{
    if (strcmp(t->verdict, "not measured") == 0)
        snprintf(t->measured, sizeof t->measured, "not measured in this run (pattern not selected, or a peer "
                                                  "MISSING or FAILED)");
}

/* ---- issue 4, item 5: higher orders ---------------------------------------------------- */

static const struct lbb_row *lbb_find_ok(const struct lbb_results *r, const char *name)
{
    const struct lbb_row *row = lbb_find(r, name);
    return row && row->peer->ok ? row : NULL;
}

/* Index in lbb_ord_k of order k, or -1. */
static int lbb_ord_index(unsigned k)
{
    for (unsigned a = 0; a < LBB_NORD; a++)
        if (lbb_ord_k[a] == k)
            return (int)a;
    return -1;
}

/* Resident memory "follows what is in use": while the probe holds its
 * blocks, at most twice the pages in use plus 8 MiB of slack (metadata,
 * free-list pages, a region being filled). */
static bool lbb_rss_follows(const struct lbb_orss *x)
{
    size_t slack = ((size_t)8 << 20) / (size_t)sysconf(_SC_PAGESIZE);
    return x->res_held >= 0 && (size_t)x->res_held <= 2 * x->held_pages + slack;
}

static double lbb_mib(long pages)
{
    return pages < 0 ? NAN : (double)pages * (double)sysconf(_SC_PAGESIZE) / 1048576.0;
}

static unsigned lbb_order_targets(const struct lbb_results *r, struct lbb_target *t)
{
    static const char *const what[2][2][2] = {
        {{"orders: LIFO pair of order 3, one thread: at most 0.5x spinbuddy's time",
          "orders: LIFO pair of order 3, two threads: at most 0.25x spinbuddy's time per thread"},
         {"orders: LIFO pair of order 9, one thread: at most 0.5x spinbuddy's time",
          "orders: LIFO pair of order 9, two threads: at most 0.25x spinbuddy's time per thread"}},
        {{"orders (burst of 16, for reference): order 3, one thread: at most 0.5x spinbuddy's time",
          "orders (burst of 16, for reference): order 3, two threads: at most 0.25x spinbuddy's time"},
         {"orders (burst of 16, for reference): order 9, one thread: at most 0.5x spinbuddy's time",
          "orders (burst of 16, for reference): order 9, two threads: at most 0.25x spinbuddy's time"}}};
    static const struct lbb_row none;
    const struct lbb_row *lab = lbb_find_ok(r, "labyrinth"), *sb = lbb_find_ok(r, "spinbuddy");
    if (!lab)
        lab = &none;
    if (!sb)
        sb = &none;
    unsigned n = 0;
    for (unsigned b = 0; b < 2; b++)
        for (unsigned q = 0; q < 2; q++) {
            int a = lbb_ord_index(q ? 9 : 3);
            for (unsigned th = 0; th < 2; th++) {
                unsigned v = b ? (th ? LBB_OV_BURST2 : LBB_OV_BURST1) : (th ? LBB_OV_LIFO2 : LBB_OV_LIFO1);
                const struct lbb_series *ls = &lab->ord[a][v], *ss = &sb->ord[a][v];
                double x = lbb_ratio(ls, ss);
                t[n].what = what[b][q][th];
                snprintf(t[n].measured, sizeof t[n].measured,
                         "labyrinth/spinbuddy %.2fx (%.1f vs %.1f ns/pair%s); labyrinth NULLs %llu", x,
                         lbb_ok(ls) ? lbb_med(ls) : NAN, lbb_ok(ss) ? lbb_med(ss) : NAN, th ? " per thread" : "",
                         (unsigned long long)ls->fails);
                t[n++].verdict = lbb_verdict(x, th ? 0.25 : 0.5, true);
            }
        }

    double v = lab->meta_bytes && lab->meta_pages ? (double)lab->meta_bytes / (double)lab->meta_pages : NAN;
    double md = r->meta_default >= 0 ? r->meta_default : NAN, mn = r->meta_notrack >= 0 ? r->meta_notrack : NAN;
    double one = r->meta_1thread >= 0 ? r->meta_1thread : NAN;
    double tr = md - mn, slots = mn - one;
    t[n].what = "orders: metadata at most 8 bytes per page";
    snprintf(t[n].measured, sizeof t[n].measured,
             "labyrinth %.2f B/page (default zone of %u pages) = 8 descriptor + %.2f tracking + %.2f for 64 "
             "thread slots (%.0f B each) + %.2f shared; spinbuddy %.2f",
             v, LBB_POOL_PAGES, tr, slots, slots * LBB_POOL_PAGES / 63.0, one - 8.0,
             sb->meta_bytes && sb->meta_pages ? (double)sb->meta_bytes / (double)sb->meta_pages : NAN);
    t[n++].verdict = lbb_verdict(v, 8.0, true);

    const struct lbb_orss *fx = &lab->rss, *gr = &r->rss_grow;
    t[n].what = "orders: resident memory follows what is in use (the zone timed above)";
    snprintf(t[n].measured, sizeof t[n].measured,
             "%.1f MiB resident with %.1f MiB in use (%.1f after open, %.1f after free): pre-faulted and locked "
             "at creation",
             lbb_mib(fx->res_held), lbb_mib((long)fx->held_pages), lbb_mib(fx->res_open), lbb_mib(fx->res_freed));
    t[n++].verdict = fx->measured ? (lbb_rss_follows(fx) ? "met" : "NOT met") : "not measured";
    t[n].what = "orders: resident memory follows what is in use (a zone growing from one region, shrunk after)";
    snprintf(t[n].measured, sizeof t[n].measured,
             "%.1f MiB resident with %.1f MiB in use (%.1f after open, %.1f after free and "
             "labyrinth_zone_shrink)",
             lbb_mib(gr->res_held), lbb_mib((long)gr->held_pages), lbb_mib(gr->res_open), lbb_mib(gr->res_freed));
    t[n++].verdict = gr->measured ? (lbb_rss_follows(gr) ? "met" : "NOT met") : "not measured";
    return n;
}

static unsigned lbb_targets(const struct lbb_results *r, struct lbb_target *t)
{
    const struct lbb_row *lab = lbb_find(r, "labyrinth"), *dpdk = lbb_find(r, "dpdk");
    static const struct lbb_row none;
    if (!lab)
        lab = &none;
    if (!dpdk)
        dpdk = &none;
    unsigned n = 0;
    double v;

    v = lbb_ratio(&lab->lifo, &dpdk->lifo);
    t[n].what = "LIFO pair: at most 0.6x DPDK's time";
    snprintf(t[n].measured, sizeof t[n].measured, "labyrinth/DPDK time %.2fx (%.2f vs %.2f ns/pair)", v,
             lbb_ok(&lab->lifo) ? lbb_med(&lab->lifo) : NAN, lbb_ok(&dpdk->lifo) ? lbb_med(&dpdk->lifo) : NAN);
    t[n++].verdict = lbb_verdict(v, 0.6, true);

    v = lbb_ratio(&lab->burst, &dpdk->burst);
    t[n].what = "burst pair: at most 0.6x DPDK's time";
    snprintf(t[n].measured, sizeof t[n].measured, "labyrinth/DPDK time %.2fx (%.2f vs %.2f ns/pair)", v,
             lbb_ok(&lab->burst) ? lbb_med(&lab->burst) : NAN, lbb_ok(&dpdk->burst) ? lbb_med(&dpdk->burst) : NAN);
    t[n++].verdict = lbb_verdict(v, 0.6, true);

    for (unsigned b = 0; b < 2; b++) {
        const struct lbb_instr *li = b ? &lab->instr_burst : &lab->instr_lifo;
        const struct lbb_instr *di = b ? &dpdk->instr_burst : &dpdk->instr_lifo;
        double ln = lbb_harness_net(r, li, b), dn = lbb_harness_net(r, di, b);
        v = ln / dn;
        t[n].what = b ? "burst pair: at most 0.6x DPDK's instructions" : "LIFO pair: at most 0.6x DPDK's instructions";
        snprintf(t[n].measured, sizeof t[n].measured,
                 "labyrinth/DPDK %.2fx net of harness (%.1f vs %.1f; raw %.1f vs %.1f)", v, ln, dn,
                 li->measured ? li->per_pair : NAN, di->measured ? di->per_pair : NAN);
        t[n++].verdict = lbb_verdict(v, 0.6, true);
    }

    for (unsigned b = 0; b < 2; b++) {
        const struct lbb_series *lh = b ? &lab->handoff_b : &lab->handoff;
        const struct lbb_series *dh = b ? &dpdk->handoff_b : &dpdk->handoff;
        const struct lbb_series *ring = b ? &r->ring_b : &r->ring;
        v = lbb_ratio(lh, dh);
        t[n].what = b ? "handoff (batched ring): at least DPDK's rate" : "handoff: at least DPDK's rate";
        snprintf(t[n].measured, sizeof t[n].measured, "labyrinth/DPDK rate %.2fx (%.1f vs %.1f M/s)", v,
                 lbb_ok(lh) ? lbb_med(lh) : NAN, lbb_ok(dh) ? lbb_med(dh) : NAN);
        t[n++].verdict = lbb_verdict(v, 1.0, false);

        v = lbb_ratio(lh, ring);
        t[n].what = b ? "handoff (batched ring): at least 90% of the bare ring's rate"
                      : "handoff: at least 90% of the bare ring's rate";
        snprintf(t[n].measured, sizeof t[n].measured, "%.0f%% (%.1f vs %.1f M/s)", v * 100,
                 lbb_ok(lh) ? lbb_med(lh) : NAN, lbb_ok(ring) ? lbb_med(ring) : NAN);
        t[n++].verdict = lbb_verdict(v, 0.9, false);
    }

    for (unsigned h = 0; h < 2; h++) {
        const struct lbb_latency *l = h ? &lab->lat_handoff : &lab->lat_lifo;
        double floor = r->floor.measured ? r->floor.ns[0] : NAN;
        v = l->measured ? l->ns[3] - floor : NAN;
        t[n].what = h ? "atomic allocation p99.99 within 20 ns of the timer floor (handoff)"
                      : "atomic allocation p99.99 within 20 ns of the timer floor (LIFO)";
        snprintf(t[n].measured, sizeof t[n].measured,
                 "p99.99 %.1f ns, floor p50 %.1f ns: %+.1f ns (the counter moves in steps of %.1f ns)",
                 l->measured ? l->ns[3] : NAN, floor, v, r->tick_step_ns);
        t[n].verdict = lbb_verdict(v, 20.0, true);
        /* Both numbers are whole counter steps: a difference less than one
         * step above the limit cannot be told from one at the limit. */
        if (strcmp(t[n].verdict, "NOT met") == 0 && v - 20.0 < r->tick_step_ns)
            t[n].verdict = "undecided: within one counter step of the limit";
        n++;
    }

    for (unsigned h = 0; h < 2; h++) {
        const struct lbb_series *two = h ? &lab->scale2h : &lab->scale2;
        v = lbb_ratio(two, &lab->scale1);
        t[n].what = h ? "two threads: at least 1.9x one thread (right after a handoff)"
                      : "two threads: at least 1.9x one thread";
        snprintf(t[n].measured, sizeof t[n].measured, "%.2fx (%.1f vs %.1f M pairs/s)", v,
                 lbb_ok(two) ? lbb_med(two) : NAN, lbb_ok(&lab->scale1) ? lbb_med(&lab->scale1) : NAN);
        t[n++].verdict = lbb_verdict(v, 1.9, false);
    }

    /* Issue 12 target 4: a failed ATOMIC allocation is instant. */
    for (unsigned f = 0; f < 2; f++) {
        const struct lbb_latency *fl = f ? &lab->lat_fail_fresh : &lab->lat_fail, *ok = &lab->lat_lifo;
        bool both = fl->measured && ok->measured;
        for (unsigned q = 1; q <= 2; q++) {
            double lim = q == 1 ? 2.0 : 10.0;
            v = both ? fl->ns[q] / ok->ns[q] : NAN;
            t[n].what = f ? (q == 1 ? "failed ATOMIC allocation (new thread): p99 at most 2x a successful one's"
                                    : "failed ATOMIC allocation (new thread): p99.9 at most 10x a successful one's")
                          : (q == 1 ? "failed ATOMIC allocation (drained by this thread): p99 at most 2x a successful one's"
                                    : "failed ATOMIC allocation (drained by this thread): p99.9 at most 10x a successful one's");
            snprintf(t[n].measured, sizeof t[n].measured,
                     "%.2fx (%s %.1f vs LIFO %.1f ns, timer included; %llu succeeded)", v, q == 1 ? "p99" : "p99.9",
                     fl->measured ? fl->ns[q] : NAN, ok->measured ? ok->ns[q] : NAN, (unsigned long long)fl->fails);
            t[n++].verdict = lbb_verdict(v, lim, true);
        }
    }

    /* Issue 12: the seed's scenario at full speed (targets 1-3; 4 above,
     * 5 in the kernel's self-test, 6 the ZERO rows). */
    const struct lbb_row *seed = lbb_find(r, "labyrinth-seed");
    if (!seed)
        seed = &none;
    v = lbb_ratio(&seed->lifo, &lab->lifo);
    t[n].what = "issue 12.1: the seed's macro, LIFO pair at most 1.15x the plain ATOMIC pair's time";
    snprintf(t[n].measured, sizeof t[n].measured, "macro/plain %.2fx (%.2f vs %.2f ns/pair)", v,
             lbb_ok(&seed->lifo) ? lbb_med(&seed->lifo) : NAN, lbb_ok(&lab->lifo) ? lbb_med(&lab->lifo) : NAN);
    t[n++].verdict = lbb_verdict(v, 1.15, true);
    {
        double sn = lbb_harness_net(r, &seed->instr_lifo, 0), ln = lbb_harness_net(r, &lab->instr_lifo, 0);
        v = sn / ln;
        t[n].what = "issue 12.1: the seed's macro, instructions per pair at most 1.15x the plain pair's";
        snprintf(t[n].measured, sizeof t[n].measured, "macro/plain %.2fx net of harness (%.1f vs %.1f)", v, sn, ln);
        t[n++].verdict = lbb_verdict(v, 1.15, true);
    }
    v = lbb_ratio(&seed->handoff, &dpdk->handoff);
    t[n].what = "issue 12.1: the seed's macro, hand-off at least 0.9x DPDK's rate";
    snprintf(t[n].measured, sizeof t[n].measured, "macro/DPDK rate %.2fx (%.1f vs %.1f M/s; bare ring %.1f)", v,
             lbb_ok(&seed->handoff) ? lbb_med(&seed->handoff) : NAN,
             lbb_ok(&dpdk->handoff) ? lbb_med(&dpdk->handoff) : NAN, lbb_ok(&r->ring) ? lbb_med(&r->ring) : NAN);
    t[n++].verdict = lbb_verdict(v, 0.9, false);
    v = lbb_ratio(&lab->handoff, &dpdk->handoff);
    t[n].what = "issue 12.2: plain ATOMIC hand-off at least 1.0x DPDK's rate";
    snprintf(t[n].measured, sizeof t[n].measured, "labyrinth/DPDK rate %.2fx (%.1f vs %.1f M/s; bare ring %.1f)", v,
             lbb_ok(&lab->handoff) ? lbb_med(&lab->handoff) : NAN,
             lbb_ok(&dpdk->handoff) ? lbb_med(&dpdk->handoff) : NAN, lbb_ok(&r->ring) ? lbb_med(&r->ring) : NAN);
    t[n++].verdict = lbb_verdict(v, 1.0, false);
    v = lbb_ratio(&lab->handoff, &r->ring);
    t[n].what = "issue 12.2: plain ATOMIC hand-off at least 60% of the bare ring's rate";
    snprintf(t[n].measured, sizeof t[n].measured, "%.0f%% (%.1f vs %.1f M/s)", v * 100,
             lbb_ok(&lab->handoff) ? lbb_med(&lab->handoff) : NAN, lbb_ok(&r->ring) ? lbb_med(&r->ring) : NAN);
    t[n++].verdict = lbb_verdict(v, 0.6, false);
    {
        bool both = lab->lat_handoff.measured && dpdk->lat_handoff.measured;
        v = both ? lab->lat_handoff.ns[3] / dpdk->lat_handoff.ns[3] : NAN;
        t[n].what = "issue 12.2: hand-off allocation p99.99 at most DPDK's";
        snprintf(t[n].measured, sizeof t[n].measured, "labyrinth/DPDK %.2fx (%.1f vs %.1f ns, timer included)", v,
                 lab->lat_handoff.measured ? lab->lat_handoff.ns[3] : NAN,
                 dpdk->lat_handoff.measured ? dpdk->lat_handoff.ns[3] : NAN);
        t[n++].verdict = lbb_verdict(v, 1.0, true);
    }
    for (unsigned b = 0; b < 2; b++) {
        const struct lbb_series *ls = b ? &lab->burst : &lab->lifo, *ds = b ? &dpdk->burst : &dpdk->lifo;
        v = lbb_ratio(ls, ds);
        t[n].what = b ? "issue 12.3: burst pair at most 0.7x DPDK's time" : "issue 12.3: LIFO pair at most 0.7x DPDK's time";
        snprintf(t[n].measured, sizeof t[n].measured, "labyrinth/DPDK time %.2fx (%.2f vs %.2f ns/pair)", v,
                 lbb_ok(ls) ? lbb_med(ls) : NAN, lbb_ok(ds) ? lbb_med(ds) : NAN);
        t[n++].verdict = lbb_verdict(v, 0.7, true);
    }

    /* Issue 12 target 6: ZERO from the zeroed stock at most 1.5x a plain
     * allocation (the pair's time and instructions; the hit rate is in the
     * row's account below). */
    const struct lbb_row *zero = lbb_find(r, "labyrinth-zero");
    if (!zero)
        zero = &none;
    v = lbb_ratio(&zero->lifo, &lab->lifo);
    t[n].what = "issue 12.6: ZERO LIFO pair at most 1.5x the plain pair's time (sustained LIFO: the stock runs dry, hit rate in the account)";
    snprintf(t[n].measured, sizeof t[n].measured, "ZERO/plain %.2fx (%.2f vs %.2f ns/pair; hit rate in the account)", v,
             lbb_ok(&zero->lifo) ? lbb_med(&zero->lifo) : NAN, lbb_ok(&lab->lifo) ? lbb_med(&lab->lifo) : NAN);
    t[n++].verdict = lbb_verdict(v, 1.5, true);
    {
        double zn = lbb_harness_net(r, &zero->instr_lifo, 0), ln = lbb_harness_net(r, &lab->instr_lifo, 0);
        v = zn / ln;
        t[n].what = "issue 12.6: ZERO instructions per pair at most 1.5x the plain pair's (sustained LIFO, misses included)";
        snprintf(t[n].measured, sizeof t[n].measured, "ZERO/plain %.2fx net of harness (%.1f vs %.1f)", v, zn, ln);
        t[n++].verdict = lbb_verdict(v, 1.5, true);
    }

    v = r->meta_default >= 0 ? r->meta_default : NAN;
    t[n].what = "metadata: at most 8 bytes per page";
    snprintf(t[n].measured, sizeof t[n].measured, "%.2f bytes/page (default zone); %.2f with ZONE_NO_TRACKING", v,
             r->meta_notrack >= 0 ? r->meta_notrack : NAN);
    t[n++].verdict = lbb_verdict(v, 8.0, true);

    n += lbb_order_targets(r, t + n);
    for (unsigned i = 0; i < n; i++)
        lbb_unmeasured(&t[i]);
    return n;
}

/* ---- machine ------------------------------------------------------------------------ */

static void lbb_cpu_model(char *out, size_t len)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[256];
    snprintf(out, len, "unknown");
    while (f && fgets(line, sizeof line, f)) {
        char *c = strchr(line, ':');
        if (c && strncmp(line, "model name", 10) == 0) {
            c++;
            while (*c == ' ')
                c++;
            c[strcspn(c, "\n")] = 0;
            snprintf(out, len, "%s", c);
            break;
        }
    }
    if (f)
        fclose(f);
}

struct lbb_machine {
    char cpu[128], kernel[160], compiler[64];
    long cpus;
};

static void lbb_machine(struct lbb_machine *m)
{
    struct utsname u;
    lbb_cpu_model(m->cpu, sizeof m->cpu);
    m->cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (uname(&u) == 0)
        snprintf(m->kernel, sizeof m->kernel, "%.32s %.80s %.32s", u.sysname, u.release, u.machine);
    else
        snprintf(m->kernel, sizeof m->kernel, "unknown");
#if defined(__clang__)
    snprintf(m->compiler, sizeof m->compiler, "clang %d.%d.%d", __clang_major__, __clang_minor__, __clang_patchlevel__);
#elif defined(__GNUC__)
    snprintf(m->compiler, sizeof m->compiler, "gcc %d.%d.%d", __GNUC__, __GNUC_MINOR__, __GNUC_PATCHLEVEL__);
#else
    snprintf(m->compiler, sizeof m->compiler, "unknown");
#endif
}

/* ---- text ---------------------------------------------------------------------------- */

static void lbb_num(char *out, size_t len, double v, int prec)
{
    if (isnan(v))
        snprintf(out, len, "-");
    else
        snprintf(out, len, "%.*f", prec, v);
}

static const char *lbb_row_state(const struct lbb_row *row, const struct lbb_series *s)
{
    if (!row->peer->ok)
        return "MISSING";
    if (!s->measured)
        return "FAILED";
    return NULL;
}

/* One row of a per-run table: median, min, max, ratio to labyrinth. */
static void lbb_text_series_row(const char *label, const struct lbb_row *row, const struct lbb_series *s,
                                const struct lbb_series *lab, int prec, const char *extra)
{
    const char *st = row ? lbb_row_state(row, s) : (s->measured ? NULL : "FAILED");
    if (st) {
        printf("| %s | %s: %s | | | | |\n", label, st,
               row && !row->peer->ok ? row->peer->why : s->error[0] ? s->error : "no result");
        return;
    }
    char med[32], mn[32], mx[32], rt[32];
    lbb_num(med, sizeof med, lbb_med(s), prec);
    lbb_num(mn, sizeof mn, lbb_min(s->v, s->n), prec);
    lbb_num(mx, sizeof mx, lbb_max(s->v, s->n), prec);
    lbb_num(rt, sizeof rt, lab ? lbb_ratio(s, lab) : NAN, 2);
    printf("| %s | %s | %s | %s | %s | %s%s%llu |\n", label, med, mn, mx, rt, extra ? extra : "",
           extra ? "; " : "", (unsigned long long)s->fails);
}

/* which: 0 LIFO, 1 handoff, 2 failed (the thread that drained), 3 failed
 * (a new thread). */
static const struct lbb_latency *lbb_lat_of(const struct lbb_row *row, int which)
{
    return which == 0 ? &row->lat_lifo : which == 1 ? &row->lat_handoff : which == 2 ? &row->lat_fail
                                                                                      : &row->lat_fail_fresh;
}

static void lbb_text_latency(const struct lbb_results *r, int which)
{
    printf("| allocator | p50 | p99 | p99.9 | p99.99 | max | p99.99 - floor p50 | samples |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    if (r->floor.measured) {
        printf("| timer floor (back-to-back reads) |");
        for (unsigned k = 0; k < LBB_NPCT; k++)
            printf(" %.1f |", r->floor.ns[k]);
        printf(" - | %llu |\n", (unsigned long long)r->floor.samples);
    }
    for (unsigned i = 0; i < r->nrows; i++) {
        const struct lbb_row *row = &r->rows[i];
        if (row->peer->reference)
            continue;
        const struct lbb_latency *l = lbb_lat_of(row, which);
        if (!row->peer->ok) {
            printf("| %s | MISSING: %s | | | | | | |\n", row->peer->name, row->peer->why);
            continue;
        }
        if (!l->measured && which >= 2 && row->peer->grows) {
            printf("| %s | n/a: never runs dry (it grows) | | | | | | |\n", row->peer->name);
            continue;
        }
        if (!l->measured) {
            printf("| %s | FAILED: %s | | | | | | |\n", row->peer->name, l->error[0] ? l->error : "no result");
            continue;
        }
        printf("| %s |", row->peer->name);
        for (unsigned k = 0; k < LBB_NPCT; k++)
            printf(" %.1f |", l->ns[k]);
        if (which >= 2 && l->fails)
            printf(" %+.1f | %llu (%llu succeeded: not dry) |\n", l->ns[3] - r->floor.ns[0],
                   (unsigned long long)l->samples, (unsigned long long)l->fails);
        else
            printf(" %+.1f | %llu%s |\n", l->ns[3] - r->floor.ns[0], (unsigned long long)l->samples,
                   l->fails ? " (NULLs counted)" : "");
    }
}


/* ---- text: orders and frag -------------------------------------------------------------- */

static const char *const lbb_ov_title[LBB_OV_N] = {
    "LIFO: allocate one block, free it, repeat; one thread",
    "LIFO on two threads at once, each its own pairs (ns per pair per thread: the slower thread's time)",
    "Burst: allocate 16 blocks, then free them in the same order; one thread",
    "Burst on two threads at once (ns per pair per thread: the slower thread's time)"};

static void lbb_text_orders(const struct lbb_results *r)
{
    const struct lbb_row *sb = lbb_find_ok(r, "spinbuddy");
    printf("\n## Orders: blocks of 2^k pages, naturally aligned (issue 4, item 5)\n\n");
    printf("Each allocator that can return a block of 2^k pages on a 2^k-page boundary, at orders %u, %u and %u: "
           "labyrinth `labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, k, 0)` on a fresh zone of %u pages "
           "(defaults otherwise); spinbuddy, the baseline, a plain buddy behind one test-and-set spinlock over an "
           "arena of the same size; the malloc peers' aligned allocation of 4096 << k bytes on a 4096 << k "
           "boundary.  ns per alloc+free pair (per thread), lower is better; x sb: the allocator's time over "
           "spinbuddy's, the median of the per-run ratios.  NULLs: allocations that returned NULL, all runs.\n",
           lbb_ord_k[0], lbb_ord_k[1], lbb_ord_k[2], LBB_POOL_PAGES);
    for (unsigned v = 0; v < LBB_OV_N; v++) {
        printf("\n### %s\n\n| allocator |", lbb_ov_title[v]);
        for (unsigned a = 0; a < LBB_NORD; a++)
            printf(" order %u ns | x sb |", lbb_ord_k[a]);
        printf(" NULLs o%u/o%u/o%u |\n|---|", lbb_ord_k[0], lbb_ord_k[1], lbb_ord_k[2]);
        for (unsigned a = 0; a < LBB_NORD; a++)
            printf("---:|---:|");
        printf("---:|\n");
        for (unsigned i = 0; i < r->nrows; i++) {
            const struct lbb_row *row = &r->rows[i];
            if (row->peer->reference)
                continue;
            if (!row->peer->ok) {
                printf("| %s | MISSING: %s |%s\n", row->peer->name, row->peer->why, " | | | | | |");
                continue;
            }
            if (!row->peer->orders) {
                printf("| %s | n/a: %s |%s\n", row->peer->name, row->peer->orders_na ? row->peer->orders_na : "",
                       " | | | | | |");
                continue;
            }
            if (!row->ord[0][v].measured) {
                printf("| %s | FAILED: %s |%s\n", row->peer->name, row->ord_error[0] ? row->ord_error : "no result",
                       " | | | | | |");
                continue;
            }
            printf("| %s |", row->peer->name);
            for (unsigned a = 0; a < LBB_NORD; a++) {
                const struct lbb_series *x = &row->ord[a][v];
                char m[32], q[32];
                lbb_num(m, sizeof m, lbb_ok(x) ? lbb_med(x) : NAN, 1);
                lbb_num(q, sizeof q, sb ? lbb_ratio(x, &sb->ord[a][v]) : NAN, 2);
                printf(" %s | %s |", m, q);
            }
            printf(" %llu/%llu/%llu |\n", (unsigned long long)row->ord[0][v].fails,
                   (unsigned long long)row->ord[1][v].fails, (unsigned long long)row->ord[2][v].fails);
        }
    }

    printf("\n### Metadata per page\n\n");
    printf("The pool's allocator metadata over its pages (the pools of the table above).\n\n");
    printf("| allocator | bytes per page | what it is |\n|---|---:|---|\n");
    for (unsigned i = 0; i < r->nrows; i++) {
        const struct lbb_row *row = &r->rows[i];
        if (row->peer->reference || !row->peer->ok || !row->peer->orders)
            continue;
        if (!row->meta_bytes) {
            printf("| %s | - | not exposed (the malloc peers keep their own headers, radix trees and page maps) |\n",
                   row->peer->name);
            continue;
        }
        printf("| %s | %.2f | %s |\n", row->peer->name, (double)row->meta_bytes / (double)row->meta_pages,
               row->meta_desc);
    }
    const struct lbb_row *lab = lbb_find_ok(r, "labyrinth");
    if (lab && r->meta_default >= 0 && r->meta_notrack >= 0 && r->meta_1thread >= 0) {
        double slots = r->meta_notrack - r->meta_1thread;
        printf("\nlabyrinth's %.2f bytes per page, taken apart with zones of the same size and other configs:\n\n",
               r->meta_default);
        printf("| part | bytes per page | how it is found |\n|---|---:|---|\n");
        printf("| descriptors (the core: one 64-bit word per page, docs/design.md) | 8.00 | by design |\n");
        printf("| tracking records (16 bytes per page) | %.2f | default zone minus LABYRINTH_ZONE_NO_TRACKING |\n",
               r->meta_default - r->meta_notrack);
        printf("| thread caches and their magazines: 64 thread slots (max_threads default), allocated at creation | "
               "%.2f (%.0f bytes per slot) | NO_TRACKING with 64 slots minus with 1 |\n",
               slots, slots * LBB_POOL_PAGES / 63.0);
        printf("| the rest: the zone, one thread slot, the depot's magazines, descriptor padding | %.2f | NO_TRACKING "
               "with 1 slot, minus the 8 of the descriptors |\n", r->meta_1thread - 8.0);
    }

    printf("\n### Resident memory against pages in use\n\n");
    printf("A fresh pool of %u pages; resident pages after opening it, while %u blocks of order 3 and %u of order "
           "9 are held (every page of them written), and after they are freed (labyrinth's thread cache released, "
           "and labyrinth_zone_shrink where the zone grew).  labyrinth and spinbuddy: mincore over the pool and "
           "its metadata (labyrinth's metadata is pre-faulted, counted whole); the malloc peers: the increase of "
           "the process's VmRSS since before the pool was opened (they are shared with the rest of the run, so "
           "only indicative).  MiB.\n\n",
           LBB_POOL_PAGES, 64u, 8u);
    printf("| allocator | mapped | in use while held | resident after open | while held | after free | "
           "follows use |\n|---|---:|---:|---:|---:|---:|---|\n");
    for (unsigned i = 0; i <= r->nrows; i++) {
        const struct lbb_row *row = i < r->nrows ? &r->rows[i] : NULL;
        const struct lbb_orss *x = row ? &row->rss : &r->rss_grow;
        char label[96];
        if (row) {
            if (row->peer->reference || !row->peer->ok || !row->peer->orders)
                continue;
            snprintf(label, sizeof label, "%s%s", row->peer->name,
                     strcmp(row->peer->name, "labyrinth") == 0 ? " (fixed zone, as timed)" : "");
        } else {
            if (!lab)
                continue;
            snprintf(label, sizeof label, "labyrinth (zone growing from one region of %u pages, KERNEL; "
                                          "shrunk after the free)", 1u << LBB_OMAX);
        }
        if (!x->measured) {
            printf("| %s | FAILED: %s | | | | | |\n", label, x->error[0] ? x->error : "no result");
            continue;
        }
        char span[32];
        lbb_num(span, sizeof span, x->vmrss ? NAN : lbb_mib((long)x->span_pages), 1);
        printf("| %s | %s | %.1f | %.1f | %.1f | %.1f%s | %s |\n", label, span, lbb_mib((long)x->held_pages),
               lbb_mib(x->res_open), lbb_mib(x->res_held), lbb_mib(x->res_freed),
               x->trimmed > 0 ? " (shrink gave back)" : "", lbb_rss_follows(x) ? "yes" : "no");
    }
}

/* "o3 12, o9 4" for the orders with failures, or "none". */
static void lbb_fails_str(char *out, size_t len, const uint64_t *fails)
{
    size_t n = 0;
    out[0] = 0;
    for (unsigned k = 0; k <= LBB_OMAX && n < len; k++)
        if (fails[k])
            n += (size_t)snprintf(out + n, len - n, "%so%u: %llu", n ? ", " : "", k, (unsigned long long)fails[k]);
    if (!n)
        snprintf(out, len, "none");
}

static void lbb_text_frag_table(const struct lbb_frag_row *fr)
{
    printf("| operations | in use | buddy free pages | free, held back | largest free order | extfrag o3 | "
           "extfrag o9 | free blocks o0..o%u (buddyinfo) | failed allocations so far |\n", LBB_OMAX);
    printf("|---:|---:|---:|---:|---:|---:|---:|---|---|\n");
    unsigned step = fr->nsamples >= 10 ? fr->nsamples / 10 : 1;
    for (unsigned k = step - 1; k < fr->nsamples; k += step) {
        const struct lbb_frag_sample *x = &fr->s[k];
        char bi[128], fl[160];
        size_t n = 0;
        bi[0] = 0;
        for (unsigned q = 0; q <= LBB_OMAX && n < sizeof bi; q++)
            n += (size_t)snprintf(bi + n, sizeof bi - n, "%s%zu", q ? " " : "", x->f.free_blocks[q]);
        lbb_fails_str(fl, sizeof fl, x->fails);
        if (x->have_frag && x->f.waits) {
            size_t l = strlen(fl);
            snprintf(fl + l, sizeof fl - l, "; %llu KERNEL waits", x->f.waits);
        }
        if (!x->have_frag) {
            printf("| %llu | - | - | - | - | - | - | - | %s |\n", (unsigned long long)x->ops, fl);
            continue;
        }
        printf("| %llu | %.1f%% | %zu | %zu | %ld | %.3f | %.3f | %s | %s |\n", (unsigned long long)x->ops,
               100.0 * (double)x->f.in_use_pages / (double)(x->f.total_pages ? x->f.total_pages : 1),
               x->f.buddy_free_pages, x->f.cached_pages, x->f.largest_free_order, x->f.frag_index[3] / 1000.0,
               x->f.frag_index[9] / 1000.0, bi, fl);
    }
}

static double lbb_frag_mean(const struct lbb_frag_row *fr)
{
    return fr->measured && fr->nruns ? lbb_median(fr->mean_ns, fr->nruns) : NAN;
}

static void lbb_text_frag(const struct lbb_opts *o, const struct lbb_results *r)
{
    printf("\n## Fragmentation: a long random mixed-order workload (issue 4, item 6)\n\n");
    printf("One sequence of %llu operations (seed %llu) replayed on every allocator that returns blocks of 2^k "
           "pages: orders 0..9 skewed to the small ones (by count 40%%, 20%%, 12%%, 9%%, 7%%, 5%%, 3%%, 2%%, "
           "1.2%%, 0.8%%), a random population of live blocks held up to %zu pages (70%% of a %zu-page pool), "
           "frees of random live blocks.  %llu allocations (",
           (unsigned long long)o->frag_ops, (unsigned long long)o->frag_seed, r->frag_target, r->frag_pages,
           (unsigned long long)r->frag_allocs);
    for (unsigned k = 0; k < LBB_OMAX; k++)
        printf("%so%u %llu", k ? ", " : "", k, (unsigned long long)r->frag_by_order[k]);
    printf("), %llu frees.  A failed allocation is counted and its free skipped.  labyrinth runs it twice on "
           "fresh zones: with LABYRINTH_GFP_KERNEL (a higher order that finds no block first gives the depot's "
           "cached pages back to the buddy; the zone cannot grow and its wait_timeout_ms is 1, so a real "
           "failure costs about 1 ms) and with LABYRINTH_GFP_ATOMIC (never waits, never drains the depot).\n",
           (unsigned long long)r->frag_frees);
    const struct lbb_row *lab = lbb_find_ok(r, "labyrinth"), *sb = lbb_find_ok(r, "spinbuddy");
    if (lab && lab->frag.measured) {
        printf("\n### labyrinth (KERNEL) over time\n\n");
        printf("labyrinth_zone_stats() every tenth of the run.  Buddy free pages are in the buddy's free lists "
               "(free_blocks counts their blocks); \"held back\" are free pages in magazines, the depot, the "
               "reserve and the level caches, which the buddy cannot coalesce until they return.  extfrag: "
               "Linux's fragmentation index (-1: a block of that order is free; towards 1: the free pages are "
               "scattered in smaller blocks; towards 0: they are simply few).\n\n");
        lbb_text_frag_table(&lab->frag);
    }
    if (lab && lab->frag_b.measured) {
        printf("\n### labyrinth (ATOMIC) over time\n\n");
        lbb_text_frag_table(&lab->frag_b);
    }
    if (sb && sb->frag.measured) {
        printf("\n### spinbuddy over time (the same sequence; nothing is held back)\n\n");
        lbb_text_frag_table(&sb->frag);
    }
    printf("\n### Time per allocation\n\n");
    printf("Every allocation of the replay timed alone with the cycle counter; mean: its median over %u replays, "
           "with the timer floor (%.1f ns, two back-to-back reads) subtracted; percentiles from the first replay, "
           "floor included.  Failed allocations are not in the times (labyrinth KERNEL's wait before a NULL "
           "would dominate them); KERNEL allocations that waited and then succeeded are.  Wall: the whole "
           "replay (allocations, frees, the timer reads, and the failed allocations' waits) per operation.\n\n",
           o->frag_runs, r->frag_floor_ns);
    printf("| allocator | mean ns/alloc | peer/labyrinth | p50 | p99 | p99.9 | max | wall ns/op | failed allocations "
           "(first replay) |\n|---|---:|---:|---:|---:|---:|---:|---:|---|\n");
    double lm = lab ? lbb_frag_mean(&lab->frag) : NAN;
    for (unsigned i = 0; i < r->nrows; i++) {
        const struct lbb_row *row = &r->rows[i];
        if (row->peer->reference)
            continue;
        bool islab = strcmp(row->peer->name, "labyrinth") == 0;
        for (unsigned m = 0; m < (islab ? 2u : 1u); m++) {
            const struct lbb_frag_row *fr = m ? &row->frag_b : &row->frag;
            char label[64];
            snprintf(label, sizeof label, "%s%s", row->peer->name, islab ? (m ? " (ATOMIC)" : " (KERNEL)") : "");
            if (!row->peer->ok) {
                printf("| %s | MISSING: %s | | | | | | | |\n", label, row->peer->why);
                continue;
            }
            if (!row->peer->orders) {
                printf("| %s | n/a: %s | | | | | | | |\n", label, row->peer->orders_na ? row->peer->orders_na : "");
                continue;
            }
            if (!fr->measured) {
                printf("| %s | FAILED: %s | | | | | | | |\n", label, fr->error[0] ? fr->error : "no result");
                continue;
            }
            char fl[200];
            lbb_fails_str(fl, sizeof fl, fr->fails);
            const struct lbb_frag_sample *last = fr->nsamples ? &fr->s[fr->nsamples - 1] : NULL;
            if (last && last->have_frag && last->f.waits) {
                size_t l = strlen(fl);
                snprintf(fl + l, sizeof fl - l, "; %llu allocations waited", last->f.waits);
            }
            double mm = lbb_frag_mean(fr);
            char a[32], q[32];
            lbb_num(a, sizeof a, mm, 1);
            lbb_num(q, sizeof q, mm / lm, 2);
            printf("| %s | %s | %s | %.1f | %.1f | %.1f | %.1f | %.1f | %s |\n", label, a, q, fr->pct_ns[0],
                   fr->pct_ns[1], fr->pct_ns[2], fr->pct_ns[4], lbb_median(fr->wall_ns, fr->nruns), fl);
        }
    }
}

void lbb_report_text(const struct lbb_opts *o, struct lbb_results *r)
{
    struct lbb_machine m;
    lbb_machine(&m);
    const struct lbb_row *lab = lbb_find(r, "labyrinth");
    unsigned p = o->patterns;
    bool timed = p & ((1u << LBB_P_INSTR) - 1);

    printf("## Set-up\n\n");
    printf("- CPU: %s, %ld CPUs online; %s\n", m.cpu, m.cpus, m.kernel);
    printf("- bench compiled with %s; blocks of %u bytes, %u-byte aligned\n", m.compiler, LBB_BLOCK, LBB_BLOCK);
    if (timed) {
        printf("- worker threads: ");
        if (r->worker_cpu[0] >= 0)
            printf("pinned to CPU %d and CPU %d\n", r->worker_cpu[0], r->worker_cpu[1]);
        else
            printf("not pinned\n");
        printf("- each measurement: %u runs of ", o->runs);
        if (o->iterations)
            printf("%llu operations", (unsigned long long)o->iterations);
        else
            printf("about %.0f ms", o->duration_ms);
        printf("; tables give the median run, the fastest and slowest run, and the median over runs "
               "of the ratio peer/labyrinth within the same run\n");
        printf("- cycle counter: %s, %.4f ticks/ns (calibrated against CLOCK_MONOTONIC); it advances in "
               "steps of %.0f ticks = %.2f ns (smallest change seen between two reads)\n",
               LBB_TICK_NAME, r->ticks_per_ns, r->tick_step_ns * r->ticks_per_ns, r->tick_step_ns);
        printf("- wall time of the timed part: %.1f s; load average (1, 5, 15 min) before %s, after %s "
               "(the bench itself adds about 1 to 2)\n", r->wall_s, r->load_before, r->load_after);
        printf("- other processes used %.1f%% of the CPUs' time during the timed part, the hypervisor stole "
               "%.1f%%%s\n", r->others_pct, r->steal_pct,
               r->others_pct + r->steal_pct > 2.0 ? ": **the machine was not quiet; expect noise, compare ratios "
                                                   "and slowest runs**" : " (a quiet machine)");
    }
    printf("\n| allocator | version | calls | set-up |\n|---|---|---|---|\n");
    for (unsigned i = 0; i < r->nrows; i++) {
        const struct lbb_peer *pe = r->rows[i].peer;
        if (pe->ok)
            printf("| %s | %s | `%s` | %s |\n", pe->name, pe->version[0] ? pe->version : "-", pe->api, pe->note);
        else
            printf("| %s | MISSING | `%s` | %s |\n", pe->name, pe->api, pe->why);
    }

    if (p & (1u << LBB_P_LIFO)) {
        printf("\n## LIFO: allocate one block, free it, repeat (one thread)\n\n");
        printf("ns per alloc+free pair, lower is better; ratio > 1: the peer is slower than labyrinth.\n\n");
        printf("| allocator | median ns/pair | fastest run | slowest run | peer/labyrinth time | NULLs |\n");
        printf("|---|---:|---:|---:|---:|---:|\n");
        for (unsigned i = 0; i < r->nrows; i++)
            if (!r->rows[i].peer->reference)
                lbb_text_series_row(r->rows[i].peer->name, &r->rows[i], &r->rows[i].lifo, lab ? &lab->lifo : NULL, 2,
                                    NULL);
    }
    if (p & (1u << LBB_P_BURST)) {
        printf("\n## Burst: allocate %u blocks, then free them in the same order (one thread)\n\n", LBB_BURST);
        printf("ns per alloc+free pair, lower is better; ratio > 1: the peer is slower than labyrinth.\n\n");
        printf("| allocator | median ns/pair | fastest run | slowest run | peer/labyrinth time | NULLs |\n");
        printf("|---|---:|---:|---:|---:|---:|\n");
        for (unsigned i = 0; i < r->nrows; i++)
            if (!r->rows[i].peer->reference)
                lbb_text_series_row(r->rows[i].peer->name, &r->rows[i], &r->rows[i].burst, lab ? &lab->burst : NULL,
                                    2, NULL);
    }
    if (p & (1u << LBB_P_HANDOFF)) {
        printf("\n## Handoff: one thread allocates, a lock-free SPSC ring (%u slots) carries the blocks, "
               "another thread frees them\n\n", o->ring_slots);
        printf("Million blocks per second, higher is better; ratio > 1: the peer is faster than labyrinth. "
               "The bare ring passes pointers with no allocator: the ceiling.  NULLs: allocations that "
               "returned NULL and were retried.  Measured twice: with each side publishing its ring index "
               "after every item (each block visible to the consumer at once), and with the indices "
               "published every %u items (a burst-style loop; the consumer then trails the producer by a "
               "batch or more).\n", o->ring_batch);
        for (unsigned b = 0; b < 2; b++) {
            const struct lbb_series *ring = b ? &r->ring_b : &r->ring;
            if (b)
                printf("\n### Ring indices published every %u items\n\n", o->ring_batch);
            else
                printf("\n### Ring indices published after every item\n\n");
            printf("| allocator | median M/s | slowest run | fastest run | peer/labyrinth rate | %% of bare ring; "
                   "NULLs |\n|---|---:|---:|---:|---:|---:|\n");
            lbb_text_series_row("bare SPSC ring (no allocator)", NULL, ring,
                                lab ? (b ? &lab->handoff_b : &lab->handoff) : NULL, 1, "100%");
            for (unsigned i = 0; i < r->nrows; i++) {
                const struct lbb_row *row = &r->rows[i];
                if (row->peer->reference)
                    continue;
                const struct lbb_series *s = b ? &row->handoff_b : &row->handoff;
                char pct[32];
                double q = lbb_ratio(s, ring);
                snprintf(pct, sizeof pct, isnan(q) ? "-" : "%.0f%%", q * 100);
                lbb_text_series_row(row->peer->name, row, s, lab ? (b ? &lab->handoff_b : &lab->handoff) : NULL, 1,
                                    pct);
            }
        }
    }
    if (p & (1u << LBB_P_SCALING)) {
        printf("\n## Scaling: LIFO pairs on two threads at once vs one thread\n\n");
        printf("Million pairs per second (all threads together), higher is better; the ratios are medians over "
               "runs of the ratio within a run (2.0 = perfect scaling on the 2 CPUs).  \"After handoff\": run k "
               "is preceded by an untimed handoff of 4096 + k blocks from the first thread to the second, so the "
               "threads then recycle blocks that changed hands.  min: the worst run's ratio.\n\n");
        printf("| allocator | 1 thread M/s | 2 threads M/s | 2 threads / 1 | min | after handoff: 2 threads M/s "
               "| 2 threads / 1 | min |\n|---|---:|---:|---:|---:|---:|---:|---:|\n");
        for (unsigned i = 0; i < r->nrows; i++) {
            const struct lbb_row *row = &r->rows[i];
            if (row->peer->reference)
                continue;
            const char *st = lbb_row_state(row, &row->scale2);
            if (st) {
                printf("| %s | %s: %s | | | | | | |\n", row->peer->name, st,
                       !row->peer->ok ? row->peer->why : row->scale2.error);
                continue;
            }
            char a[32], b[32], c[32];
            lbb_num(a, sizeof a, lbb_ok(&row->scale2h) ? lbb_med(&row->scale2h) : NAN, 1);
            lbb_num(b, sizeof b, lbb_ratio(&row->scale2h, &row->scale1), 2);
            lbb_num(c, sizeof c, lbb_ratio_min(&row->scale2h, &row->scale1), 2);
            printf("| %s | %.1f | %.1f | %.2f | %.2f | %s | %s | %s |\n", row->peer->name, lbb_med(&row->scale1),
                   lbb_med(&row->scale2), lbb_ratio(&row->scale2, &row->scale1),
                   lbb_ratio_min(&row->scale2, &row->scale1), a, b, c);
        }
    }
    if (p & (1u << LBB_P_LATENCY)) {
        printf("\n## Latency of one allocation (ns)\n\n");
        printf("Each allocation timed alone with the cycle counter (%s), converted to ns; the numbers include "
               "the timer's own cost, shown as the floor row.  Percentiles over all samples of one pass "
               "(nearest rank).\n\n", LBB_TICK_NAME);
        printf("### LIFO (one thread; each allocation is freed before the next)\n\n");
        lbb_text_latency(r, 0);
        printf("\n### Handoff (the producer's allocations while the consumer frees on the other CPU)\n\n");
        lbb_text_latency(r, 1);
        printf("\n### A failed allocation: the pool drained (both workers took every block they could reach), "
               "timed on the thread that drained it last\n\n");
        lbb_text_latency(r, 2);
        printf("\n### A failed allocation of the drained pool on a new thread (no cache of its own yet)\n\n");
        lbb_text_latency(r, 3);
    }
    if (p & (1u << LBB_P_ORDERS))
        lbb_text_orders(r);
    if (p & (1u << LBB_P_FRAG))
        lbb_text_frag(o, r);
    if (p & (1u << LBB_P_INSTR)) {
        printf("\n## Instructions per alloc+free pair (callgrind)\n\n");
        printf("valgrind --tool=callgrind counting only the LIFO / burst loop, (count(2N) - count(N)) / N "
               "with N = %llu.  Raw includes the harness (loop and indirect calls, the harness row); net "
               "subtracts it.  Ratio: net, peer/labyrinth.\n\n",
               (unsigned long long)((o->cg_iterations + LBB_BURST - 1) / LBB_BURST * LBB_BURST));
        printf("| allocator | LIFO raw | LIFO net | LIFO peer/labyrinth | burst raw | burst net | burst peer/labyrinth |\n");
        printf("|---|---:|---:|---:|---:|---:|---:|\n");
        double lab_l = lab ? lbb_harness_net(r, &lab->instr_lifo, false) : NAN;
        double lab_b = lab ? lbb_harness_net(r, &lab->instr_burst, true) : NAN;
        for (unsigned i = 0; i < r->nrows; i++) {
            const struct lbb_row *row = &r->rows[i];
            if (!row->peer->ok) {
                printf("| %s | MISSING: %s | | | | | |\n", row->peer->name, row->peer->why);
                continue;
            }
            if (!row->instr_lifo.measured && !row->instr_burst.measured) {
                printf("| %s | FAILED: %s | | | | | |\n", row->peer->name,
                       row->instr_lifo.error[0] ? row->instr_lifo.error : row->instr_burst.error);
                continue;
            }
            char a[32], b[32], c[32], d[32], e[32], f[32];
            double nl = lbb_harness_net(r, &row->instr_lifo, false), nb = lbb_harness_net(r, &row->instr_burst, true);
            lbb_num(a, sizeof a, row->instr_lifo.measured ? row->instr_lifo.per_pair : NAN, 1);
            lbb_num(b, sizeof b, nl, 1);
            lbb_num(c, sizeof c, row->peer->reference ? NAN : nl / lab_l, 2);
            lbb_num(d, sizeof d, row->instr_burst.measured ? row->instr_burst.per_pair : NAN, 1);
            lbb_num(e, sizeof e, nb, 1);
            lbb_num(f, sizeof f, row->peer->reference ? NAN : nb / lab_b, 2);
            printf("| %s | %s | %s | %s | %s | %s | %s |\n", row->peer->name, a, b, c, d, e, f);
        }
    }

    struct lbb_target t[LBB_NTARGETS];
    unsigned nt = lbb_targets(r, t);
    printf("\n## The issue's targets, as measured in this run\n\n| target | measured | verdict |\n|---|---|---|\n");
    for (unsigned i = 0; i < nt; i++)
        printf("| %s | %s | **%s** |\n", t[i].what, t[i].measured, t[i].verdict);

    bool any = false;
    for (unsigned i = 0; i < r->nrows; i++)
        if (r->rows[i].after[0]) {
            if (!any)
                printf("\n## State after the timed runs\n\n");
            any = true;
            printf("- %s: %s\n", r->rows[i].peer->name, r->rows[i].after);
        }
}

/* ---- JSON ----------------------------------------------------------------------------- */

static void lbb_jstr(const char *s)
{
    putchar('"');
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static void lbb_jnum(double v)
{
    if (isnan(v) || isinf(v))
        printf("null");
    else
        printf("%.6g", v);
}

static void lbb_jseries_to(const char *key, const struct lbb_series *s, const struct lbb_series *lab,
                           const char *ratio_key)
{
    printf("\"%s\": {", key);
    if (!s->measured) {
        printf("\"error\": ");
        lbb_jstr(s->error);
        printf("}");
        return;
    }
    printf("\"median\": ");
    lbb_jnum(s->n ? lbb_med(s) : NAN);
    printf(", \"%s\": ", ratio_key);
    lbb_jnum(lab ? lbb_ratio(s, lab) : NAN);
    printf(", \"operations_per_run\": %llu, \"nulls\": %llu, \"runs\": [", (unsigned long long)s->iters,
           (unsigned long long)s->fails);
    for (unsigned i = 0; i < s->n; i++) {
        if (i)
            printf(", ");
        lbb_jnum(s->v[i]);
    }
    printf("]}");
}

static void lbb_jseries(const char *key, const struct lbb_series *s, const struct lbb_series *lab)
{
    lbb_jseries_to(key, s, lab, "ratio_to_labyrinth");
}

static void lbb_jorss(const char *key, const struct lbb_orss *x)
{
    printf("\"%s\": {", key);
    if (!x->measured) {
        printf("\"error\": ");
        lbb_jstr(x->error);
        printf("}");
        return;
    }
    printf("\"source\": \"%s\", \"mapped_pages\": ", x->vmrss ? "VmRSS increase" : "mincore");
    lbb_jnum(x->vmrss ? NAN : (double)x->span_pages);
    printf(", \"held_pages\": %zu, \"resident_pages_after_open\": %ld, \"resident_pages_while_held\": %ld, "
           "\"resident_pages_after_free\": %ld, \"trimmed_pages\": %ld, \"follows_use\": %s}",
           x->held_pages, x->res_open, x->res_held, x->res_freed, x->trimmed, lbb_rss_follows(x) ? "true" : "false");
}

/* Percentile keys in JSON: the names of the tables (p99.9) with the dot
 * as an underscore, as every --json of the labyrinth command has them. */
static const char *const lbb_pct_key[LBB_NPCT] = {"p50", "p99", "p99_9", "p99_99", "max"};

static void lbb_jfrag(const char *key, const struct lbb_frag_row *fr)
{
    printf("\"%s\": {", key);
    if (!fr->measured) {
        printf("\"error\": ");
        lbb_jstr(fr->error);
        printf("}");
        return;
    }
    printf("\"mean_ns_per_alloc\": ");
    lbb_jnum(lbb_frag_mean(fr));
    printf(", \"wall_ns_per_op\": ");
    lbb_jnum(lbb_median(fr->wall_ns, fr->nruns));
    printf(", \"runs_mean_ns\": [");
    for (unsigned i = 0; i < fr->nruns; i++) {
        printf("%s", i ? ", " : "");
        lbb_jnum(fr->mean_ns[i]);
    }
    printf("], ");
    for (unsigned k = 0; k < LBB_NPCT; k++) {
        printf("\"%s_ns\": ", lbb_pct_key[k]);
        lbb_jnum(fr->pct_ns[k]);
        printf(", ");
    }
    printf("\"allocations\": %llu, \"frees\": %llu, \"failed_by_order\": [", (unsigned long long)fr->allocs,
           (unsigned long long)fr->frees);
    for (unsigned k = 0; k <= LBB_OMAX; k++)
        printf("%s%llu", k ? ", " : "", (unsigned long long)fr->fails[k]);
    printf("],\n       \"samples\": [");
    for (unsigned i = 0; i < fr->nsamples; i++) {
        const struct lbb_frag_sample *x = &fr->s[i];
        printf("%s\n        {\"ops\": %llu, \"failed_by_order\": [", i ? "," : "", (unsigned long long)x->ops);
        for (unsigned k = 0; k <= LBB_OMAX; k++)
            printf("%s%llu", k ? ", " : "", (unsigned long long)x->fails[k]);
        printf("]");
        if (x->have_frag) {
            printf(", \"in_use_pages\": %zu, \"total_pages\": %zu, \"buddy_free_pages\": %zu, \"held_back_pages\": %zu, "
                   "\"largest_free_order\": %ld, \"kernel_waits\": %llu, \"free_blocks\": [",
                   x->f.in_use_pages, x->f.total_pages, x->f.buddy_free_pages, x->f.cached_pages,
                   x->f.largest_free_order, x->f.waits);
            for (unsigned k = 0; k <= LBB_OMAX; k++)
                printf("%s%zu", k ? ", " : "", x->f.free_blocks[k]);
            printf("], \"frag_index\": [");
            for (unsigned k = 0; k <= LBB_OMAX; k++)
                printf("%s%d", k ? ", " : "", x->f.frag_index[k]);
            printf("]");
        }
        printf("}");
    }
    printf("]}");
}

static void lbb_jlat(const char *key, const struct lbb_latency *l)
{
    /* The failure rows count the allocations that succeeded (not dry). */
    bool failed = strncmp(key, "latency_failed", 14) == 0;
    printf("\"%s\": {", key);
    if (!l->measured) {
        printf("\"error\": ");
        lbb_jstr(l->error);
        printf("}");
        return;
    }
    for (unsigned k = 0; k < LBB_NPCT; k++) {
        printf("\"%s_ns\": ", lbb_pct_key[k]);
        lbb_jnum(l->ns[k]);
        printf(", ");
    }
    printf("\"samples\": %llu, \"%s\": %llu}", (unsigned long long)l->samples, failed ? "succeeded" : "nulls",
           (unsigned long long)l->fails);
}

static void lbb_jinstr(const char *key, const struct lbb_results *r, const struct lbb_instr *ins, bool burst)
{
    printf("\"%s\": {", key);
    if (!ins->measured) {
        printf("\"error\": ");
        lbb_jstr(ins->error);
        printf("}");
        return;
    }
    printf("\"raw\": ");
    lbb_jnum(ins->per_pair);
    printf(", \"net\": ");
    lbb_jnum(lbb_harness_net(r, ins, burst));
    printf("}");
}

void lbb_report_json(const struct lbb_opts *o, struct lbb_results *r)
{
    struct lbb_machine m;
    lbb_machine(&m);
    const struct lbb_row *lab = lbb_find(r, "labyrinth");
    printf("{\n  \"machine\": {\"cpu\": ");
    lbb_jstr(m.cpu);
    printf(", \"cpus\": %ld, \"kernel\": ", m.cpus);
    lbb_jstr(m.kernel);
    printf(", \"compiler\": ");
    lbb_jstr(m.compiler);
    printf("},\n  \"config\": {\"runs\": %u, \"duration_ms\": ", o->runs);
    lbb_jnum(o->duration_ms);
    printf(", \"iterations\": %llu, \"latency_samples\": %llu, \"callgrind_iterations\": %llu, "
           "\"ring_slots\": %u, \"ring_batch\": %u, \"block_bytes\": %u, \"pool_pages\": %u, \"pinned_cpus\": [%d, %d], \"patterns\": [",
           (unsigned long long)o->iterations, (unsigned long long)o->lat_samples,
           (unsigned long long)o->cg_iterations, o->ring_slots, o->ring_batch, LBB_BLOCK, LBB_POOL_PAGES, r->worker_cpu[0],
           r->worker_cpu[1]);
    bool first = true;
    for (unsigned k = 0; k < LBB_P_COUNT; k++)
        if (o->patterns & (1u << k)) {
            printf("%s\"%s\"", first ? "" : ", ", lbb_pattern_name[k]);
            first = false;
        }
    printf("]},\n  \"timer\": {\"name\": ");
    lbb_jstr(LBB_TICK_NAME);
    printf(", \"ticks_per_ns\": ");
    lbb_jnum(r->ticks_per_ns);
    printf(", \"step_ns\": ");
    lbb_jnum(r->tick_step_ns);
    printf(", ");
    lbb_jlat("floor", &r->floor);
    printf("},\n  \"loadavg_before\": ");
    lbb_jstr(r->load_before);
    printf(", \"loadavg_after\": ");
    lbb_jstr(r->load_after);
    printf(", \"other_processes_cpu_pct\": ");
    lbb_jnum(r->others_pct);
    printf(", \"steal_cpu_pct\": ");
    lbb_jnum(r->steal_pct);
    printf(",\n  \"labyrinth_metadata_bytes_per_page\": {\"default\": ");
    lbb_jnum(r->meta_default >= 0 ? r->meta_default : NAN);
    printf(", \"no_tracking\": ");
    lbb_jnum(r->meta_notrack >= 0 ? r->meta_notrack : NAN);
    printf(", \"no_tracking_one_thread_slot\": ");
    lbb_jnum(r->meta_1thread >= 0 && (o->patterns & (1u << LBB_P_ORDERS)) ? r->meta_1thread : NAN);
    printf("}");
    if (o->patterns & (1u << LBB_P_ORDERS)) {
        printf(",\n  \"orders\": {\"orders\": [%u, %u, %u], \"burst\": %u, \"pool_pages\": %u, ", lbb_ord_k[0],
               lbb_ord_k[1], lbb_ord_k[2], LBB_OBURST, LBB_POOL_PAGES);
        lbb_jorss("labyrinth_growing_resident", &r->rss_grow);
        printf("}");
    }
    if (o->patterns & (1u << LBB_P_FRAG)) {
        printf(",\n  \"frag\": {\"operations\": %llu, \"seed\": %llu, \"replays\": %u, \"pool_pages\": %zu, "
               "\"target_pages\": %zu, \"allocations\": %llu, \"frees\": %llu, \"timer_floor_ns\": ",
               (unsigned long long)o->frag_ops, (unsigned long long)o->frag_seed, o->frag_runs, r->frag_pages,
               r->frag_target, (unsigned long long)r->frag_allocs, (unsigned long long)r->frag_frees);
        lbb_jnum(r->frag_floor_ns);
        printf(", \"allocations_by_order\": [");
        for (unsigned k = 0; k < LBB_OMAX; k++)
            printf("%s%llu", k ? ", " : "", (unsigned long long)r->frag_by_order[k]);
        printf("]}");
    }
    printf(",\n  \"bare_ring\": {");
    lbb_jseries("handoff_mops", &r->ring, NULL);
    printf(", ");
    lbb_jseries("handoff_batched_mops", &r->ring_b, NULL);
    printf("},\n  \"allocators\": [\n");
    for (unsigned i = 0; i < r->nrows; i++) {
        const struct lbb_row *row = &r->rows[i];
        const struct lbb_peer *pe = row->peer;
        printf("    {\"name\": ");
        lbb_jstr(pe->name);
        printf(", \"status\": \"%s\", \"version\": ", pe->ok ? "ok" : "MISSING");
        lbb_jstr(pe->version);
        printf(", \"calls\": ");
        lbb_jstr(pe->api);
        printf(", \"setup\": ");
        lbb_jstr(pe->ok ? pe->note : pe->why);
        if (pe->ok && !pe->reference) {
            const struct lbb_row *L = lab;
            printf(",\n     ");
            if (o->patterns & (1u << LBB_P_LIFO)) {
                lbb_jseries("lifo_ns_per_pair", &row->lifo, L ? &L->lifo : NULL);
                printf(",\n     ");
            }
            if (o->patterns & (1u << LBB_P_BURST)) {
                lbb_jseries("burst_ns_per_pair", &row->burst, L ? &L->burst : NULL);
                printf(",\n     ");
            }
            if (o->patterns & (1u << LBB_P_HANDOFF)) {
                lbb_jseries("handoff_mops", &row->handoff, L ? &L->handoff : NULL);
                printf(",\n     ");
                lbb_jseries("handoff_batched_mops", &row->handoff_b, L ? &L->handoff_b : NULL);
                printf(",\n     ");
            }
            if (o->patterns & (1u << LBB_P_SCALING)) {
                lbb_jseries("scaling_1thread_mops", &row->scale1, NULL);
                printf(",\n     ");
                lbb_jseries("scaling_2threads_mops", &row->scale2, NULL);
                printf(",\n     \"scaling_ratio\": ");
                lbb_jnum(lbb_ratio(&row->scale2, &row->scale1));
                printf(",\n     ");
                lbb_jseries("scaling_2threads_after_handoff_mops", &row->scale2h, NULL);
                printf(",\n     \"scaling_ratio_after_handoff\": ");
                lbb_jnum(lbb_ratio(&row->scale2h, &row->scale1));
                printf(",\n     ");
            }
            if (o->patterns & (1u << LBB_P_LATENCY)) {
                lbb_jlat("latency_lifo", &row->lat_lifo);
                printf(",\n     ");
                lbb_jlat("latency_handoff", &row->lat_handoff);
                printf(",\n     ");
                lbb_jlat("latency_failed", &row->lat_fail);
                printf(",\n     ");
                lbb_jlat("latency_failed_new_thread", &row->lat_fail_fresh);
                printf(",\n     ");
            }
            if (pe->orders && (o->patterns & (1u << LBB_P_ORDERS))) {
                static const char *const vk[LBB_OV_N] = {"lifo_1thread_ns", "lifo_2threads_ns_per_thread",
                                                         "burst16_1thread_ns", "burst16_2threads_ns_per_thread"};
                const struct lbb_row *sb = lbb_find_ok(r, "spinbuddy");
                printf("\"orders\": {");
                if (row->ord_error[0]) {
                    printf("\"error\": ");
                    lbb_jstr(row->ord_error);
                    printf(", ");
                }
                for (unsigned a = 0; a < LBB_NORD; a++) {
                    printf("\"order_%u\": {", lbb_ord_k[a]);
                    for (unsigned v = 0; v < LBB_OV_N; v++) {
                        printf("%s", v ? ", " : "");
                        lbb_jseries_to(vk[v], &row->ord[a][v], sb ? &sb->ord[a][v] : NULL, "ratio_to_spinbuddy");
                    }
                    printf("},\n       ");
                }
                printf("\"metadata_bytes_per_page\": ");
                lbb_jnum(row->meta_bytes && row->meta_pages ? (double)row->meta_bytes / (double)row->meta_pages : NAN);
                printf(", ");
                lbb_jorss("resident", &row->rss);
                printf("},\n     ");
            } else if (!pe->orders && (o->patterns & ((1u << LBB_P_ORDERS) | (1u << LBB_P_FRAG)))) {
                printf("\"orders\": {\"not_applicable\": ");
                lbb_jstr(pe->orders_na);
                printf("},\n     ");
            }
            if (pe->orders && (o->patterns & (1u << LBB_P_FRAG))) {
                lbb_jfrag("frag", &row->frag);
                printf(",\n     ");
                if (strcmp(pe->name, "labyrinth") == 0) {
                    lbb_jfrag("frag_atomic", &row->frag_b);
                    printf(",\n     ");
                }
            }
            printf("\"after\": ");
            lbb_jstr(row->after);
        }
        if (pe->ok && (o->patterns & (1u << LBB_P_INSTR))) {
            printf(",\n     ");
            lbb_jinstr("instructions_lifo", r, &row->instr_lifo, false);
            printf(", ");
            lbb_jinstr("instructions_burst", r, &row->instr_burst, true);
        }
        printf("}%s\n", i + 1 < r->nrows ? "," : "");
    }
    struct lbb_target t[LBB_NTARGETS];
    unsigned nt = lbb_targets(r, t);
    printf("  ],\n  \"targets\": [\n");
    for (unsigned i = 0; i < nt; i++) {
        printf("    {\"target\": ");
        lbb_jstr(t[i].what);
        printf(", \"measured\": ");
        lbb_jstr(t[i].measured);
        printf(", \"verdict\": ");
        lbb_jstr(t[i].verdict);
        printf("}%s\n", i + 1 < nt ? "," : "");
    }
    printf("  ],\n  \"wall_seconds\": ");
    lbb_jnum(r->wall_s);
    printf("\n}\n");
}
