/*
 * main.c - labyrinth-bench: options, the allocators, and the order of
 * things.
 *
 *   labyrinth-bench [options]            timed patterns, tables on stdout
 *   labyrinth-bench --callgrind          instruction counts (valgrind)
 *   labyrinth-bench --json               the same as one JSON document
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "results.h"

/* Every allocator the bench knows, in table order. */
static struct lbb_peer *const lbb_all[] = {
    &lbb_peer_labyrinth, &lbb_peer_labyrinth_seed, &lbb_peer_labyrinth_zero, &lbb_peer_dpdk, &lbb_peer_tcmalloc,
    &lbb_peer_jemalloc,  &lbb_peer_mimalloc,       &lbb_peer_glibc, &lbb_peer_spinbuddy,
    &lbb_peer_harness,
};
#define LBB_NALL (sizeof lbb_all / sizeof lbb_all[0])

static bool lbb_quiet;

void lbb_progress(const char *fmt, ...)
{
    if (lbb_quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "labyrinth-bench: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void lbb_usage(FILE *f)
{
    fprintf(f,
            "usage: labyrinth-bench [options]\n"
            "\n"
            "Runs labyrinth and its peers (DPDK rte_mempool, tcmalloc, jemalloc, mimalloc,\n"
            "glibc, and spinbuddy, a plain buddy behind one spinlock) through the same\n"
            "allocation patterns in one process and prints the median of several runs of\n"
            "each, with the ratio peer/labyrinth.  Every allocation is one 4 KiB block on\n"
            "a 4 KiB boundary, except in orders and frag (blocks of 2^k pages, aligned to\n"
            "their size).  A peer that is not installed is listed as MISSING.\n"
            "\n"
            "options:\n"
            "  --patterns LIST    comma-separated, from: lifo, burst, handoff, scaling,\n"
            "                     latency, orders (blocks of 2^k pages), frag (a random\n"
            "                     mixed-order workload), instr (callgrind), default (all\n"
            "                     but instr), all [default]\n"
            "  --peers LIST       comma-separated allocator names, from: labyrinth,\n"
            "                     labyrinth-seed, dpdk, tcmalloc, jemalloc, mimalloc, glibc,\n"
            "                     spinbuddy (harness, the no-allocator baseline, is added for\n"
            "                     instr; spinbuddy, the baseline of the targets, for orders)\n"
            "                     [all]\n"
            "  --runs N           runs per measurement, the median is reported (1..%u) [9]\n"
            "  --duration MS      length of one timed run in milliseconds [30]\n"
            "  --iterations N     exact operations per run instead of --duration\n"
            "  --samples N        latency: timed allocations per allocator and pattern\n"
            "                     [1000000]\n"
            "  --ring-slots N     handoff ring size, a power of two [512]\n"
            "  --ring-batch N     handoff is measured twice: publishing the ring's\n"
            "                     indices after every item, and every N items [32]\n"
            "  --frag-ops N       frag: operations in the workload [1000000]\n"
            "  --frag-seed N      frag: the generator's seed [1]\n"
            "  --frag-runs N      frag: replays per allocator, the median is reported [3]\n"
            "  --frag-dat FILE    frag: write the samples to FILE (for bench/frag.gp)\n"
            "  --callgrind        instruction counts only (same as --patterns instr)\n"
            "  --cg-iterations N  callgrind: count N and 2N pairs [100000]\n"
            "  --cg-out DIR       callgrind: keep the profiles in DIR (for callgrind_annotate)\n"
            "  --no-pin           do not pin the two worker threads to CPUs\n"
            "  --json             one JSON document on stdout instead of the tables\n"
            "  --quiet            no progress lines on stderr\n"
            "  --help             this text\n"
            "\n"
            "Exit status: 0 done (targets missed are results, not errors), 1 the bench\n"
            "itself failed, 2 bad usage.\n",
            LBB_MAX_RUNS);
}

static void __attribute__((noreturn, format(printf, 1, 2))) lbb_bad(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "labyrinth-bench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see --help)\n");
    va_end(ap);
    exit(2);
}

static const char *lbb_arg(int argc, char **argv, int *i)
{
    const char *opt = argv[*i];
    if (*i + 1 >= argc)
        lbb_bad("%s needs a value", opt);
    return argv[++*i];
}

static uint64_t lbb_uint(const char *opt, const char *s, uint64_t lo, uint64_t hi)
{
    char *end;
    errno = 0;
    if (!*s || *s == '-')
        lbb_bad("%s: '%s' is not a positive whole number", opt, s);
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        lbb_bad("%s: '%s' is not a positive whole number", opt, s);
    if (v < lo || v > hi)
        lbb_bad("%s: %llu is out of range %llu..%llu", opt, v, (unsigned long long)lo, (unsigned long long)hi);
    return v;
}

static unsigned lbb_parse_patterns(const char *list)
{
    unsigned mask = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", list);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (strcmp(t, "all") == 0) {
            mask |= (1u << LBB_P_COUNT) - 1;
            continue;
        }
        if (strcmp(t, "default") == 0) {
            mask |= LBB_P_DEFAULT;
            continue;
        }
        unsigned k;
        for (k = 0; k < LBB_P_COUNT; k++)
            if (strcmp(t, lbb_pattern_name[k]) == 0)
                break;
        if (k == LBB_P_COUNT)
            lbb_bad("--patterns: unknown pattern '%s' (lifo, burst, handoff, scaling, latency, orders, frag, instr, "
                    "default, all)", t);
        mask |= 1u << k;
    }
    if (!mask)
        lbb_bad("--patterns: empty list");
    return mask;
}

static struct lbb_peer *lbb_peer_by_name(const char *name)
{
    for (unsigned k = 0; k < LBB_NALL; k++)
        if (strcmp(name, lbb_all[k]->name) == 0)
            return lbb_all[k];
    return NULL;
}

static void lbb_parse_peers(const char *list, bool *on)
{
    char buf[256];
    bool any = false;
    snprintf(buf, sizeof buf, "%s", list);
    memset(on, 0, sizeof(bool) * LBB_MAX_PEERS);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        unsigned k;
        for (k = 0; k < LBB_NALL; k++)
            if (strcmp(t, lbb_all[k]->name) == 0)
                break;
        if (k == LBB_NALL)
            lbb_bad("--peers: unknown allocator '%s' (labyrinth, labyrinth-seed, labyrinth-zero, dpdk, tcmalloc, jemalloc, "
                    "mimalloc, glibc, spinbuddy, harness)", t);
        on[k] = any = true;
    }
    if (!any)
        lbb_bad("--peers: empty list");
}

/* jemalloc's initial-exec TLS needs more static TLS than glibc keeps for
 * dlopen (see peer_dlopen.c): run again, once, with a larger surplus.
 * If that cannot be done, jemalloc says MISSING with dlopen's reason. */
static void lbb_static_tls(char **argv)
{
    if (getenv("LABYRINTH_BENCH_REEXEC"))
        return;
    const char *t = getenv("GLIBC_TUNABLES");
    if (t && strstr(t, "glibc.rtld.optional_static_tls"))
        return;
    char buf[1024];
    snprintf(buf, sizeof buf, "%s%s%s", t ? t : "", t && *t ? ":" : "", LBB_STATIC_TLS_TUNABLE);
    setenv("GLIBC_TUNABLES", buf, 1);
    setenv("LABYRINTH_BENCH_REEXEC", "1", 1);
    execv("/proc/self/exe", argv);
    /* Still here: carry on without. */
}

int main(int argc, char **argv)
{
    lbb_static_tls(argv);
    setvbuf(stdout, NULL, _IOLBF, 0);

    struct lbb_opts o;
    memset(&o, 0, sizeof o);
    o.patterns = LBB_P_DEFAULT;
    o.runs = 9;
    o.duration_ms = 30;
    o.lat_samples = 1000000;
    o.cg_iterations = 100000;
    o.ring_slots = 512;
    o.ring_batch = 32;
    o.frag_ops = 1000000;
    o.frag_seed = 1;
    o.frag_runs = 3;
    o.pin = true;
    for (unsigned k = 0; k < LBB_NALL; k++)
        o.peer_on[k] = !lbb_all[k]->reference;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            lbb_usage(stdout);
            return 0;
        } else if (strcmp(a, "--cg-child") == 0) {
            /* Internal: one allocator's loop under valgrind (callgrind.c). */
            if (i + 3 >= argc)
                lbb_bad("--cg-child needs PEER PATTERN PAIRS");
            struct lbb_peer *pe = lbb_peer_by_name(argv[i + 1]);
            if (!pe)
                lbb_bad("--cg-child: unknown allocator '%s'", argv[i + 1]);
            return lbb_callgrind_child(pe, argv[i + 2], lbb_uint("--cg-child", argv[i + 3], 1, UINT64_MAX / 4));
        } else if (strcmp(a, "--patterns") == 0) {
            o.patterns = lbb_parse_patterns(lbb_arg(argc, argv, &i));
        } else if (strcmp(a, "--callgrind") == 0) {
            o.patterns = 1u << LBB_P_INSTR;
        } else if (strcmp(a, "--peers") == 0) {
            lbb_parse_peers(lbb_arg(argc, argv, &i), o.peer_on);
        } else if (strcmp(a, "--runs") == 0) {
            o.runs = (unsigned)lbb_uint(a, lbb_arg(argc, argv, &i), 1, LBB_MAX_RUNS);
        } else if (strcmp(a, "--duration") == 0) {
            o.duration_ms = (double)lbb_uint(a, lbb_arg(argc, argv, &i), 1, 600000);
        } else if (strcmp(a, "--iterations") == 0) {
            o.iterations = lbb_uint(a, lbb_arg(argc, argv, &i), 1, 1ull << 40);
        } else if (strcmp(a, "--samples") == 0) {
            o.lat_samples = lbb_uint(a, lbb_arg(argc, argv, &i), 1000, 1ull << 32);
        } else if (strcmp(a, "--ring-slots") == 0) {
            o.ring_slots = (unsigned)lbb_uint(a, lbb_arg(argc, argv, &i), 2, 1u << 24);
            if (o.ring_slots & (o.ring_slots - 1))
                lbb_bad("--ring-slots: %u is not a power of two", o.ring_slots);
        } else if (strcmp(a, "--ring-batch") == 0) {
            o.ring_batch = (unsigned)lbb_uint(a, lbb_arg(argc, argv, &i), 2, 1u << 24);
        } else if (strcmp(a, "--frag-ops") == 0) {
            o.frag_ops = lbb_uint(a, lbb_arg(argc, argv, &i), 1, 1ull << 32);
        } else if (strcmp(a, "--frag-seed") == 0) {
            o.frag_seed = lbb_uint(a, lbb_arg(argc, argv, &i), 0, UINT64_MAX);
        } else if (strcmp(a, "--frag-runs") == 0) {
            o.frag_runs = (unsigned)lbb_uint(a, lbb_arg(argc, argv, &i), 1, LBB_MAX_RUNS);
        } else if (strcmp(a, "--frag-dat") == 0) {
            o.frag_dat = lbb_arg(argc, argv, &i);
        } else if (strcmp(a, "--cg-iterations") == 0) {
            o.cg_iterations = lbb_uint(a, lbb_arg(argc, argv, &i), LBB_BURST, 1ull << 32);
        } else if (strcmp(a, "--cg-out") == 0) {
            o.cg_keep = lbb_arg(argc, argv, &i);
            if (access(o.cg_keep, W_OK) != 0)
                lbb_bad("--cg-out: '%s' is not a writable directory", o.cg_keep);
        } else if (strcmp(a, "--no-pin") == 0) {
            o.pin = false;
        } else if (strcmp(a, "--json") == 0) {
            o.json = true;
        } else if (strcmp(a, "--quiet") == 0) {
            o.quiet = true;
        } else {
            lbb_bad("unknown option '%s'", a);
        }
    }
    if (o.ring_batch > o.ring_slots)
        lbb_bad("--ring-batch: %u is more than the ring's %u slots", o.ring_batch, o.ring_slots);
    lbb_quiet = o.quiet;
    /* The harness baseline belongs to the instruction counts, spinbuddy
     * (the baseline of its targets) to the orders pattern. */
    if (o.patterns & (1u << LBB_P_INSTR))
        for (unsigned k = 0; k < LBB_NALL; k++)
            o.peer_on[k] = o.peer_on[k] || lbb_all[k]->reference;
    if (o.patterns & (1u << LBB_P_ORDERS))
        for (unsigned k = 0; k < LBB_NALL; k++)
            o.peer_on[k] = o.peer_on[k] || lbb_all[k] == &lbb_peer_spinbuddy;

    static struct lbb_results r;
    bool timed = o.patterns & ((1u << LBB_P_INSTR) - 1);
    for (unsigned k = 0; k < LBB_NALL; k++) {
        if (!o.peer_on[k])
            continue;
        struct lbb_peer *pe = lbb_all[k];
        r.rows[r.nrows++].peer = pe;
        /* For instruction counts each valgrind child sets its allocator up
         * again; this one only tells MISSING from present. */
        lbb_progress("setting up %s", pe->name);
        pe->ok = pe->init(pe) == 0;
        if (!pe->ok)
            lbb_progress("%s: MISSING: %s", pe->name, pe->why);
    }

    r.meta_default = r.meta_notrack = r.meta_1thread = -1;
    if (lbb_peer_labyrinth.ok)
        lbb_labyrinth_metadata(&r.meta_default, &r.meta_notrack);
    if (timed) {
        lbb_timer_setup(&r);
        lbb_run_all(&o, &r);
    }
    if (o.patterns & (1u << LBB_P_INSTR)) {
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n <= 0) {
            fprintf(stderr, "labyrinth-bench: cannot find my own executable: %s\n", strerror(errno));
            return 1;
        }
        self[n] = 0;
        lbb_callgrind_all(&o, &r, self);
    }
    if (o.json)
        lbb_report_json(&o, &r);
    else
        lbb_report_text(&o, &r);
    fflush(stdout);
    for (unsigned i = 0; i < r.nrows; i++)
        if (r.rows[i].peer->ok && r.rows[i].peer->fini)
            r.rows[i].peer->fini(r.rows[i].peer);
    return 0;
}
