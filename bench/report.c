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

#define LBB_NTARGETS 14

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

    v = r->meta_default >= 0 ? r->meta_default : NAN;
    t[n].what = "metadata: at most 8 bytes per page";
    snprintf(t[n].measured, sizeof t[n].measured, "%.2f bytes/page (default zone); %.2f with ZONE_NO_TRACKING", v,
             r->meta_notrack >= 0 ? r->meta_notrack : NAN);
    t[n++].verdict = lbb_verdict(v, 8.0, true);
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

static void lbb_text_latency(const struct lbb_results *r, bool handoff)
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
        const struct lbb_latency *l = handoff ? &row->lat_handoff : &row->lat_lifo;
        if (!row->peer->ok) {
            printf("| %s | MISSING: %s | | | | | | |\n", row->peer->name, row->peer->why);
            continue;
        }
        if (!l->measured) {
            printf("| %s | FAILED: %s | | | | | | |\n", row->peer->name, l->error[0] ? l->error : "no result");
            continue;
        }
        printf("| %s |", row->peer->name);
        for (unsigned k = 0; k < LBB_NPCT; k++)
            printf(" %.1f |", l->ns[k]);
        printf(" %+.1f | %llu%s |\n", l->ns[3] - r->floor.ns[0], (unsigned long long)l->samples,
               l->fails ? " (NULLs counted)" : "");
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
        lbb_text_latency(r, false);
        printf("\n### Handoff (the producer's allocations while the consumer frees on the other CPU)\n\n");
        lbb_text_latency(r, true);
    }
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

static void lbb_jseries(const char *key, const struct lbb_series *s, const struct lbb_series *lab)
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
    printf(", \"ratio_to_labyrinth\": ");
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

static void lbb_jlat(const char *key, const struct lbb_latency *l)
{
    printf("\"%s\": {", key);
    if (!l->measured) {
        printf("\"error\": ");
        lbb_jstr(l->error);
        printf("}");
        return;
    }
    for (unsigned k = 0; k < LBB_NPCT; k++) {
        printf("\"%s_ns\": ", lbb_pct_name[k]);
        lbb_jnum(l->ns[k]);
        printf(", ");
    }
    printf("\"samples\": %llu, \"nulls\": %llu}", (unsigned long long)l->samples, (unsigned long long)l->fails);
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
    printf("},\n  \"bare_ring\": {");
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
