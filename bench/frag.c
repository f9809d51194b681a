/*
 * frag.c - the frag pattern: a long random mixed-order workload (issue 4,
 * item 6).
 *
 * One sequence of operations is drawn from a seeded generator, then
 * replayed on every allocator that hands out blocks of 2^k pages:
 *
 *   orders   0..9, skewed to the small ones: 40% order 0, 20% order 1,
 *            12%, 9%, 7%, 5%, 3%, 2%, 1.2% and 0.8% order 9 (by count;
 *            by pages, order 9 is a quarter of what is asked for)
 *   holding  a population of live blocks up to 70% of the pool's pages:
 *            each step allocates with probability 1/2 + (target - held) /
 *            (2 target) when the block fits under the target, and
 *            otherwise frees a live block picked at random
 *
 * The sequence does not depend on what the allocators do: an allocation
 * that fails is counted (by order) and its later free skipped.  Every
 * allocation is timed alone with the cycle counter (the timer floor, two
 * back-to-back reads, is measured here and subtracted from the mean); the
 * wall time of the whole replay (allocations and frees) is given too.
 *
 * The pools (labyrinth, spinbuddy) are fresh for every replay.  At
 * LBB_FRAG_SAMPLES points the replay stops its clock and reads the pool's
 * free lists: largest free order, extfrag index, free blocks per order.
 *
 * labyrinth is replayed twice: with LABYRINTH_GFP_KERNEL (a higher order
 * that finds no block in the buddy first gives the depot's cached pages
 * back so that they coalesce; the zone's wait_timeout_ms is 1, and a zone
 * that cannot grow waits that long before its NULL), and with ATOMIC (no
 * wait, no depot drain: pages held in magazines stay there).
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "patterns.h"
#include "results.h"
#include "timer.h"

#define LBB_FRAG_PCT 70u

struct lbb_fop {
    uint32_t slot;
    uint8_t order;
    uint8_t alloc;
};

static struct lbb_fop *lbb_fops;
static uint64_t lbb_nfops;
static uint32_t lbb_fslots;

static const unsigned lbb_fweight[LBB_OMAX] = {400, 200, 120, 90, 70, 50, 30, 20, 12, 8}; /* per mille */

static uint64_t lbb_rng(uint64_t *s)
{
    /* xorshift64* */
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static int lbb_frag_generate(const struct lbb_opts *o, struct lbb_results *r)
{
    size_t pages = LBB_POOL_PAGES, target = pages * LBB_FRAG_PCT / 100;
    r->frag_pages = pages;
    r->frag_target = target;
    lbb_nfops = o->frag_ops;
    lbb_fslots = (uint32_t)target + 1;
    lbb_fops = malloc(lbb_nfops * sizeof *lbb_fops);
    uint32_t *live = malloc(lbb_fslots * sizeof *live), *freeslot = malloc(lbb_fslots * sizeof *freeslot);
    uint8_t *order = malloc(lbb_fslots);
    if (!lbb_fops || !live || !freeslot || !order) {
        free(live);
        free(freeslot);
        free(order);
        return -1;
    }
    uint32_t nlive = 0, nfree = lbb_fslots;
    for (uint32_t i = 0; i < lbb_fslots; i++)
        freeslot[i] = lbb_fslots - 1 - i;
    uint64_t s = o->frag_seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
    if (!s)
        s = 1;
    size_t held = 0;
    memset(r->frag_by_order, 0, sizeof r->frag_by_order);
    r->frag_allocs = r->frag_frees = 0;
    for (uint64_t i = 0; i < lbb_nfops; i++) {
        unsigned w = (unsigned)(lbb_rng(&s) % 1000), k = 0;
        while (w >= lbb_fweight[k]) {
            w -= lbb_fweight[k];
            k++;
        }
        size_t size = (size_t)1 << k;
        double p = 0.5 + 0.5 * ((double)target - (double)held) / (double)target;
        double u = (double)(lbb_rng(&s) >> 11) / 9007199254740992.0;
        bool alloc = nlive == 0 || (held + size <= target && u < p && nfree > 0);
        if (alloc) {
            uint32_t slot = freeslot[--nfree];
            live[nlive++] = slot;
            order[slot] = (uint8_t)k;
            held += size;
            lbb_fops[i] = (struct lbb_fop){slot, (uint8_t)k, 1};
            r->frag_allocs++;
            r->frag_by_order[k]++;
        } else {
            uint32_t j = (uint32_t)(lbb_rng(&s) % nlive), slot = live[j];
            live[j] = live[--nlive];
            held -= (size_t)1 << order[slot];
            freeslot[nfree++] = slot;
            lbb_fops[i] = (struct lbb_fop){slot, order[slot], 0};
            r->frag_frees++;
        }
    }
    free(live);
    free(freeslot);
    free(order);
    return 0;
}

/* ---- one replay ------------------------------------------------------------------- */

struct lbb_fjob {
    struct lbb_peer *peer;
    enum lbb_omode mode;
    struct lbb_frag_row *row;
    bool sample;         /* record the samples (first run)              */
    struct lbb_hist *h;
    double ticks_per_ns, floor_ns;
    /* results */
    bool ok;
    double mean_ns, wall_ns;
};

static void lbb_frag_replay(void *arg)
{
    struct lbb_fjob *j = arg;
    struct lbb_frag_row *row = j->row;
    const struct lbb_order_ops *ops = j->peer->orders;
    j->ok = false;
    void **slot = calloc(lbb_fslots, sizeof *slot);
    if (!slot) {
        snprintf(row->error, sizeof row->error, "out of memory");
        return;
    }
    void *inst = ops->open(j->peer, LBB_POOL_PAGES, j->mode, row->error, sizeof row->error);
    if (!inst) {
        free(slot);
        return;
    }
    void *(*alloc)(void *, unsigned) = ops->alloc;
    void (*release)(void *, void *, unsigned) = ops->free;
    struct lbb_hist *h = j->h;
    uint64_t fails[LBB_OMAX + 1] = {0}, allocs = 0, frees = 0, wall = 0, ticks = 0;
    unsigned nsamp = lbb_nfops < LBB_FRAG_SAMPLES ? (unsigned)lbb_nfops : LBB_FRAG_SAMPLES;
    lbb_hist_reset(h);
    if (j->sample)
        row->nsamples = 0;
    uint64_t i = 0;
    for (unsigned seg = 0; seg < nsamp; seg++) {
        uint64_t end = lbb_nfops * (seg + 1) / nsamp;
        uint64_t t0 = lbb_now_ns();
        for (; i < end; i++) {
            const struct lbb_fop *op = &lbb_fops[i];
            if (op->alloc) {
                uint64_t c0 = lbb_tick_start();
                void *b = alloc(inst, op->order);
                uint64_t c1 = lbb_tick_stop();
                slot[op->slot] = b;
                if (__builtin_expect(!b, 0)) {
                    fails[op->order]++;
                    continue;
                }
                lbb_hist_add(h, c1 - c0);
                ticks += c1 - c0;
                allocs++;
            } else if (slot[op->slot]) {
                release(inst, slot[op->slot], op->order);
                slot[op->slot] = NULL;
                frees++;
            }
        }
        wall += lbb_now_ns() - t0;
        if (j->sample) {
            struct lbb_frag_sample *s = &row->s[row->nsamples++];
            memset(s, 0, sizeof *s);
            s->ops = i;
            memcpy(s->fails, fails, sizeof fails);
            s->have_frag = ops->frag && ops->frag(inst, &s->f) == 0;
        }
    }
    /* Untimed: give everything back. */
    for (uint64_t q = i; q-- > 0;) {
        const struct lbb_fop *op = &lbb_fops[q];
        if (op->alloc && slot[op->slot]) {
            release(inst, slot[op->slot], op->order);
            slot[op->slot] = NULL;
        }
    }
    if (ops->thread_done)
        ops->thread_done(inst);
    ops->close(j->peer, inst);
    free(slot);
    if (j->sample) {
        row->allocs = allocs;
        row->frees = frees;
        memcpy(row->fails, fails, sizeof fails);
        for (unsigned k = 0; k < LBB_NPCT; k++)
            row->pct_ns[k] = allocs ? (double)lbb_hist_pct(h, lbb_pct_q[k]) / j->ticks_per_ns : NAN;
    }
    j->mean_ns = allocs ? (double)ticks / (double)allocs / j->ticks_per_ns - j->floor_ns : NAN;
    j->wall_ns = (double)wall / (double)lbb_nfops;
    j->ok = true;
}

/* The timer floor: two back-to-back reads, the median of many. */
static void lbb_frag_floor(void *arg)
{
    struct lbb_fjob *j = arg;
    lbb_hist_reset(j->h);
    for (unsigned i = 0; i < 200000; i++) {
        uint64_t c0 = lbb_tick_start();
        uint64_t c1 = lbb_tick_stop();
        lbb_hist_add(j->h, c1 - c0);
    }
    j->floor_ns = (double)lbb_hist_pct(j->h, 0.5) / j->ticks_per_ns;
}

/* The samples as columns for gnuplot (bench/frag.gp): per sample the
 * operations done, then for each of labyrinth KERNEL, labyrinth ATOMIC
 * and spinbuddy: in use %, buddy free pages, held-back pages, largest
 * free order, extfrag index of order 9, failed allocations of order > 0
 * so far ("?" where a run is missing). */
static void lbb_frag_dat(const char *path, const struct lbb_opts *o, const struct lbb_results *r)
{
    const struct lbb_frag_row *fr[3] = {NULL, NULL, NULL};
    for (unsigned i = 0; i < r->nrows; i++) {
        const struct lbb_row *row = &r->rows[i];
        if (strcmp(row->peer->name, "labyrinth") == 0) {
            fr[0] = row->frag.measured ? &row->frag : NULL;
            fr[1] = row->frag_b.measured ? &row->frag_b : NULL;
        }
        if (strcmp(row->peer->name, "spinbuddy") == 0 && row->frag.measured)
            fr[2] = &row->frag;
    }
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "labyrinth-bench: cannot write %s\n", path);
        return;
    }
    fprintf(f, "# labyrinth-bench frag samples: %llu operations, seed %llu, pool %zu pages, target %zu pages\n",
            (unsigned long long)o->frag_ops, (unsigned long long)o->frag_seed, r->frag_pages, r->frag_target);
    fprintf(f, "# ops, then for labyrinth KERNEL (2-7), labyrinth ATOMIC (8-13), spinbuddy (14-19): in_use_pct "
               "buddy_free held_back largest_free_order extfrag9 failed_order_gt0\n");
    unsigned n = 0;
    for (unsigned t = 0; t < 3; t++)
        if (fr[t] && fr[t]->nsamples > n)
            n = fr[t]->nsamples;
    for (unsigned k = 0; k < n; k++) {
        fprintf(f, "%llu", (unsigned long long)(o->frag_ops * (k + 1) / n));
        for (unsigned t = 0; t < 3; t++) {
            const struct lbb_frag_sample *x = fr[t] && k < fr[t]->nsamples ? &fr[t]->s[k] : NULL;
            if (!x || !x->have_frag) {
                fprintf(f, " ? ? ? ? ? ?");
                continue;
            }
            uint64_t hi = 0;
            for (unsigned q = 1; q <= LBB_OMAX; q++)
                hi += x->fails[q];
            fprintf(f, " %.2f %zu %zu %ld %.3f %llu", 100.0 * (double)x->f.in_use_pages / (double)x->f.total_pages,
                    x->f.buddy_free_pages, x->f.cached_pages, x->f.largest_free_order, x->f.frag_index[9] / 1000.0,
                    (unsigned long long)hi);
        }
        fputc('\n', f);
    }
    fclose(f);
}

void lbb_frag_run(const struct lbb_opts *o, struct lbb_results *r)
{
    struct lbb_hist h;
    for (unsigned i = 0; i < r->nrows; i++) {
        memset(&r->rows[i].frag, 0, sizeof r->rows[i].frag);
        memset(&r->rows[i].frag_b, 0, sizeof r->rows[i].frag_b);
    }
    if (lbb_hist_init(&h) || lbb_frag_generate(o, r)) {
        for (unsigned i = 0; i < r->nrows; i++)
            snprintf(r->rows[i].frag.error, sizeof r->rows[i].frag.error, "out of memory");
        lbb_hist_free(&h);
        return;
    }
    struct lbb_fjob fl;
    memset(&fl, 0, sizeof fl);
    fl.h = &h;
    fl.ticks_per_ns = r->ticks_per_ns;
    lbb_worker_post(0, lbb_frag_floor, &fl);
    lbb_worker_wait(0);
    r->frag_floor_ns = fl.floor_ns;
    for (unsigned run = 0; run < o->frag_runs; run++) {
        for (unsigned i = 0; i < r->nrows; i++) {
            struct lbb_row *row = &r->rows[i];
            if (!row->peer->ok || row->peer->reference || !row->peer->orders)
                continue;
            bool lab = strcmp(row->peer->name, "labyrinth") == 0;
            for (unsigned m = 0; m < (lab ? 2u : 1u); m++) {
                struct lbb_frag_row *fr = m ? &row->frag_b : &row->frag;
                if (run > 0 && !fr->measured)
                    continue;
                lbb_progress("frag: %s%s, run %u/%u (%llu operations)", row->peer->name,
                             lab ? (m ? " ATOMIC" : " KERNEL") : "", run + 1, o->frag_runs,
                             (unsigned long long)lbb_nfops);
                struct lbb_fjob j;
                memset(&j, 0, sizeof j);
                j.peer = row->peer;
                j.mode = m ? LBB_OM_FRAG_ATOMIC : LBB_OM_FRAG;
                j.row = fr;
                j.sample = run == 0;
                j.h = &h;
                j.ticks_per_ns = r->ticks_per_ns;
                j.floor_ns = r->frag_floor_ns;
                lbb_worker_post(0, lbb_frag_replay, &j);
                lbb_worker_wait(0);
                if (!j.ok) {
                    fr->measured = false;
                    continue;
                }
                fr->measured = true;
                fr->mean_ns[fr->nruns] = j.mean_ns;
                fr->wall_ns[fr->nruns++] = j.wall_ns;
            }
        }
    }
    if (o->frag_dat)
        lbb_frag_dat(o->frag_dat, o, r);
    lbb_hist_free(&h);
    free(lbb_fops);
    lbb_fops = NULL;
}
