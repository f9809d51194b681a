/*
 * callgrind.c - instructions per alloc+free pair, under valgrind.
 *
 * For each allocator and each of the LIFO and burst loops, the program
 * runs itself twice under
 *   valgrind --tool=callgrind --collect-atstart=no --toggle-collect=LOOP
 * (LOOP = lbb_loop_lifo or lbb_loop_burst, the very loops the timings
 * run), once with N pairs and once with 2N, after an uncounted warm-up.
 * Only instructions executed inside the loop (and what it calls) are
 * counted, and the difference of the two totals divided by N is the cost
 * of one pair in the steady state: set-up, the first-use slow paths and
 * the toggling itself cancel out.  Instruction counts do not depend on
 * the machine's load, so one measurement is enough.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "patterns.h"
#include "results.h"
#include "timer.h"

/* ---- the child: one allocator, one loop, under valgrind ------------------------------ */

struct lbb_cg_job {
    struct lbb_peer *peer;
    const char *pattern;
    uint64_t pairs;
    int rc;
};

static void lbb_cg_run(void *arg)
{
    struct lbb_cg_job *j = arg;
    void *ctx = lbb_tctx(j->peer);
    if (!ctx) {
        fprintf(stderr, "labyrinth-bench: %s: %s\n", j->peer->name, j->peer->why);
        j->rc = 1;
        return;
    }
    /* Warm-up outside the counted loops: the same shapes, not counted. */
    void *blk[LBB_BURST];
    for (unsigned r = 0; r < 256; r++) {
        for (unsigned k = 0; k < LBB_BURST; k++)
            blk[k] = j->peer->alloc(ctx);
        for (unsigned k = 0; k < LBB_BURST; k++)
            if (blk[k])
                j->peer->free(ctx, blk[k]);
        void *b = j->peer->alloc(ctx);
        if (b)
            j->peer->free(ctx, b);
    }
    uint64_t fails = strcmp(j->pattern, "burst") == 0 ? lbb_loop_burst(j->peer, ctx, j->pairs)
                                                       : lbb_loop_lifo(j->peer, ctx, j->pairs);
    if (fails) {
        fprintf(stderr, "labyrinth-bench: %s: %llu allocations failed\n", j->peer->name,
                (unsigned long long)fails);
        j->rc = 1;
    }
}

int lbb_callgrind_child(struct lbb_peer *peer, const char *pattern, uint64_t pairs)
{
    if (peer->init(peer)) {
        fprintf(stderr, "labyrinth-bench: %s: %s\n", peer->name, peer->why);
        return 1;
    }
    peer->ok = true;
    struct lbb_cg_job j = {peer, pattern, pairs, 0};
    if (lbb_workers_start(1, false))
        return 1;
    lbb_worker_post(0, lbb_cg_run, &j);
    lbb_worker_wait(0);
    lbb_workers_stop();
    if (peer->fini)
        peer->fini(peer);
    return j.rc;
}

/* ---- the parent ---------------------------------------------------------------------- */

static int lbb_find_in_path(const char *name, char *out, size_t len)
{
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        const char *end = strchr(path, ':');
        size_t n = end ? (size_t)(end - path) : strlen(path);
        snprintf(out, len, "%.*s/%s", (int)n, path, name);
        if (n && access(out, X_OK) == 0)
            return 0;
        path += n + (end ? 1 : 0);
    }
    return -1;
}

/* The last non-empty line of a file, for error messages. */
static void lbb_last_line(const char *file, char *out, size_t len)
{
    FILE *f = fopen(file, "r");
    char line[512];
    out[0] = 0;
    if (!f)
        return;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        if (line[0])
            lbb_copy(out, len, line);
    }
    fclose(f);
}

/* Instructions counted by one valgrind run, or -1 with err set. */
static double lbb_cg_once(const char *valgrind, const char *self, const char *peer, const char *pattern,
                          uint64_t pairs, const char *keep, char *err, size_t errlen)
{
    char out[] = "/tmp/labyrinth-bench-cg-XXXXXX";
    char log[] = "/tmp/labyrinth-bench-log-XXXXXX";
    int ofd = mkstemp(out), lfd = mkstemp(log);
    if (ofd < 0 || lfd < 0) {
        snprintf(err, errlen, "mkstemp: %s", strerror(errno));
        if (ofd >= 0) {
            close(ofd);
            unlink(out);
        }
        if (lfd >= 0) {
            close(lfd);
            unlink(log);
        }
        return -1;
    }
    close(ofd);
    char outopt[80], toggle[80], n[32];
    snprintf(outopt, sizeof outopt, "--callgrind-out-file=%s", out);
    snprintf(toggle, sizeof toggle, "--toggle-collect=lbb_loop_%s", strcmp(pattern, "burst") ? "lifo" : "burst");
    snprintf(n, sizeof n, "%llu", (unsigned long long)pairs);
    char *argv[] = {(char *)valgrind, "--tool=callgrind", "-q", "--collect-atstart=no", toggle, outopt,
                    (char *)self, "--cg-child", (char *)peer, (char *)pattern, n, NULL};
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int nul = open("/dev/null", O_RDWR);
        if (nul >= 0)
            dup2(nul, 0);
        dup2(lfd, 1);
        dup2(lfd, 2);
        execv(valgrind, argv);
        _exit(127);
    }
    close(lfd);
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) < 0) {
        snprintf(err, errlen, "cannot run valgrind: %s", strerror(errno));
        unlink(out);
        unlink(log);
        return -1;
    }
    double total = -1;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        FILE *f = fopen(out, "r");
        char line[256];
        while (f && fgets(line, sizeof line, f)) {
            unsigned long long v;
            if (sscanf(line, "totals: %llu", &v) == 1 || (total < 0 && sscanf(line, "summary: %llu", &v) == 1))
                total = (double)v;
        }
        if (f)
            fclose(f);
        if (total < 0)
            snprintf(err, errlen, "no totals in valgrind's output");
    } else {
        char last[300];
        lbb_last_line(log, last, sizeof last);
        snprintf(err, errlen, "valgrind run failed (%s %d): %s", WIFEXITED(status) ? "exit" : "signal",
                 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), last[0] ? last : "no output");
    }
    if (keep && total >= 0) {
        /* --cg-out: keep the profile for callgrind_annotate. */
        char dst[PATH_MAX];
        snprintf(dst, sizeof dst, "%s/callgrind.%s.%s.%llu.out", keep, peer, pattern, (unsigned long long)pairs);
        if (rename(out, dst) != 0 && !err[0])
            lbb_progress("cannot keep %s as %s: %s", out, dst, strerror(errno));
    }
    unlink(out);
    unlink(log);
    return total;
}

static void lbb_cg_measure(const char *valgrind, const char *self, struct lbb_peer *p, const char *pattern,
                           uint64_t n, const char *keep, struct lbb_instr *ins)
{
    char err[200] = "";
    memset(ins, 0, sizeof *ins);
    double a = lbb_cg_once(valgrind, self, p->name, pattern, n, keep, err, sizeof err);
    double b = a < 0 ? -1 : lbb_cg_once(valgrind, self, p->name, pattern, 2 * n, keep, err, sizeof err);
    if (a < 0 || b < 0) {
        snprintf(ins->error, sizeof ins->error, "%s", err);
        return;
    }
    ins->per_pair = (b - a) / (double)n;
    ins->measured = true;
}

void lbb_callgrind_all(const struct lbb_opts *o, struct lbb_results *r, const char *self)
{
    char valgrind[512];
    bool have = lbb_find_in_path("valgrind", valgrind, sizeof valgrind) == 0;
    uint64_t n = (o->cg_iterations + LBB_BURST - 1) / LBB_BURST * LBB_BURST;
    for (unsigned i = 0; i < r->nrows; i++) {
        struct lbb_row *row = &r->rows[i];
        struct lbb_instr *ins[2] = {&row->instr_lifo, &row->instr_burst};
        static const char *const pat[2] = {"lifo", "burst"};
        for (unsigned k = 0; k < 2; k++) {
            memset(ins[k], 0, sizeof *ins[k]);
            if (!have) {
                snprintf(ins[k]->error, sizeof ins[k]->error, "SKIPPED: valgrind not found (apt-get install valgrind)");
                continue;
            }
            if (!row->peer->ok) {
                snprintf(ins[k]->error, sizeof ins[k]->error, "MISSING");
                continue;
            }
            lbb_progress("instructions: %s %s (valgrind, %llu and %llu pairs)", row->peer->name, pat[k],
                         (unsigned long long)n, (unsigned long long)(2 * n));
            lbb_cg_measure(valgrind, self, row->peer, pat[k], n, o->cg_keep, ins[k]);
        }
    }
}
