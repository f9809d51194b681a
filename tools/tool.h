/* tool.h - shared by the labyrinth command's subcommands. */
#ifndef LB_TOOL_H
#define LB_TOOL_H

#include <labyrinth.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

/* Exit status of every subcommand. */
#define TOOL_OK    0 /* done, healthy                               */
#define TOOL_FAIL  1 /* a failure was found (or the run could not be made) */
#define TOOL_USAGE 2 /* bad usage: unknown option, bad value        */

/* The subcommands (argv[0] is the subcommand's name). */
int tool_demo(int argc, char **argv);
int tool_bench(int argc, char **argv);
int tool_stress(int argc, char **argv);
int tool_info(int argc, char **argv);
int tool_stats(int argc, char **argv);

/* ---- values on the command line ----------------------------------------- */

/* A non-negative whole number, optionally with k (x1000) or M (x10^6).
 * Returns false on a malformed value. */
bool tool_parse_u64(const char *s, uint64_t *out);
/* A duration: a number with us, ms, s (the default), m or h; result in
 * microseconds. */
bool tool_parse_duration_us(const char *s, uint64_t *out);
/* A duration in microseconds the way the parser reads it back: 1h, 90s, 250ms. */
void tool_fmt_duration(char *out, size_t len, uint64_t us);
/* A comma list of zero, poison, cl_align, track, all, none: the quality
 * flags it names, if all are among allowed (false otherwise). */
bool tool_parse_quality(const char *s, unsigned allowed, unsigned *q);
/* "bad value 'V' for --NAME: VALID" on stderr, VALID saying what is
 * accepted (the range, the words); returns TOOL_USAGE. */
int tool_bad_value(const char *cmd, const char *opt, const char *value, const char *valid);
/* After getopt's own message: where to read the options; TOOL_USAGE. */
int tool_usage_hint(const char *cmd);

/* ---- time ---------------------------------------------------------------- */

uint64_t tool_now_ns(void);

static inline uint64_t tool_cycles(void)
{
#if defined(__x86_64__)
    uint32_t lo, hi;
    __asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
#elif defined(__aarch64__)
    uint64_t v;
    __asm__ __volatile__("isb; mrs %0, cntvct_el0" : "=r"(v));
    return v;
#else
    return tool_now_ns();
#endif
}

/* Cycle-counter ticks per nanosecond, measured over 20 ms. */
double tool_calibrate(void);
void tool_sleep_us(uint64_t us);

/* ---- a log-linear histogram of small integers (cycles) -------------------
 * Values below 256 have their own bucket; above, 32 buckets per power of
 * two (about 3% wide).  One writer per histogram (relaxed atomic stores,
 * so a monitor thread may read it while it is written). */
#define TOOL_HIST_LINEAR 256u
#define TOOL_HIST_SUB    32u
#define TOOL_HIST_BUCKETS (TOOL_HIST_LINEAR + (64u - 8u) * TOOL_HIST_SUB)

struct tool_hist {
    uint64_t n[TOOL_HIST_BUCKETS];
};

static inline unsigned tool_hist_bucket(uint64_t v)
{
    if (v < TOOL_HIST_LINEAR)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* >= 8 */
    unsigned sub = (unsigned)(v >> (e - 5)) & (TOOL_HIST_SUB - 1);
    return TOOL_HIST_LINEAR + (e - 8) * TOOL_HIST_SUB + sub;
}

static inline void tool_hist_add(struct tool_hist *h, uint64_t v)
{
    uint64_t *c = &h->n[tool_hist_bucket(v)];
    __atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
}

/* The smallest value a bucket holds. */
uint64_t tool_hist_value(unsigned bucket);
/* Copy with relaxed atomic loads (the writer may be running). */
void tool_hist_snapshot(struct tool_hist *dst, const struct tool_hist *src);
/* dst = a - b, bucket by bucket. */
void tool_hist_diff(struct tool_hist *dst, const struct tool_hist *a, const struct tool_hist *b);
uint64_t tool_hist_total(const struct tool_hist *h);
/* The q-quantile (0 <= q <= 1) and the largest value, in the histogram's
 * units; 0 when empty. */
uint64_t tool_hist_quantile(const struct tool_hist *h, double q);
uint64_t tool_hist_max(const struct tool_hist *h);

/* ---- output -------------------------------------------------------------- */

/* A live status line on stderr: redrawn in place on a terminal, a plain
 * line otherwise; cut to tool_status_width(). */
void tool_status(bool tty, const char *line);
/* The line as fields joined by two spaces; while it is wider than the
 * terminal, the fields with the highest drop go first (drop 0: never). */
struct tool_field {
    const char *text;
    unsigned drop;
};
void tool_status_fields(bool tty, const struct tool_field *f, unsigned n);
/* End the line being redrawn (a newline on a terminal). */
void tool_status_done(bool tty);
/* The columns a status line may use: on a terminal its width (TIOCGWINSZ,
 * else $COLUMNS, else 80) less one, so it never wraps; otherwise 79. */
unsigned tool_status_width(bool tty);
/* Set while a redrawn line is on the terminal without its newline. */
extern volatile sig_atomic_t tool_status_open;

/* ---- SIGINT and SIGTERM: the run stops early, with its report ------------------
 * install: a handler that notes the first signal (unless the signal is
 * ignored, as in a background job); a second one ends the process at once.
 * The runs poll tool_interrupted() (the signal's number, or 0), print
 * their report marked as interrupted and exit with TOOL_INTERRUPTED(sig):
 * 130 for SIGINT, 143 for SIGTERM, as a shell reports a process the signal
 * killed.  block: keep them from the calling thread (for threads that must
 * not take them: the main thread polls). */
void tool_interrupt_install(void);
void tool_interrupt_restore(void);
int tool_interrupted(void);
void tool_interrupt_block(bool block);
const char *tool_signal_name(int sig);
#define TOOL_INTERRUPTED(sig) (128 + (sig))

/* TEXT on f in lines of at most width columns, broken at spaces. */
void tool_wrap(FILE *f, const char *text, unsigned width);

/* JSON scalars: a quoted, escaped string; a number (null if not finite). */
void tool_json_str(FILE *f, const char *s);
void tool_json_num(FILE *f, double v);
/* Quality flags as a list of their names: ["poison","cl_align"], [] for none. */
void tool_json_quality(FILE *f, unsigned q);

/* ---- plots (gnuplot) -------------------------------------------------------- */

/* Check FILE's extension (.png or .svg) and that gnuplot is installed,
 * before a run.  Returns TOOL_OK, or prints why and returns TOOL_USAGE
 * (bad extension) or TOOL_FAIL (no gnuplot). */
int tool_plot_check(const char *cmd, const char *file);
/* "set terminal ...; set output ..." for FILE, into buf. */
void tool_plot_terminal(char *buf, size_t len, const char *file, int width, int height);
/* A private temporary directory for data files; "" on failure. */
bool tool_tmpdir(char *out, size_t len);
void tool_rmtree(const char *dir);
/* Run gnuplot on a script; 0 when it succeeded and FILE exists. */
int tool_gnuplot(const char *cmd, const char *script, const char *file);

/* ---- the zone in a /proc/buddyinfo-like layout ----------------------------- */

/* What `labyrinth stats` asks of a demo or stress run: snapshots of the
 * zone at intervals and at the end (before the zone is destroyed). */
struct tool_stats_req {
    bool on;
    bool json;          /* JSON objects, one per line, on stdout          */
    bool quiet_run;     /* the run prints neither status nor its report   */
    uint64_t interval_us; /* 0: only at the end                           */
    unsigned emitted;   /* snapshots printed so far                       */
};
extern struct tool_stats_req tool_stats_req;

/* A snapshot for `labyrinth stats` (nothing unless tool_stats_req.on):
 * the runs call it every interval_us and once at the end. */
void tool_stats_emit(struct labyrinth_zone *zone, const char *run, double secs, bool final);

/* Print one snapshot of the zone (normal context); JSON: one object, no
 * newline after it. */
void tool_zone_snapshot(FILE *f, struct labyrinth_zone *zone, const char *run, double secs, bool final,
                        bool json);

/* ---- machine facts (info.c), shared with bench's report --------------------- */
struct tool_machine {
    char cpu[128];
    long cpus_online, cpus_conf, cpus_allowed;
    char kernel[160];
    size_t page_size;
    long hugepages_total, hugepages_free, hugepage_kb; /* -1 unknown */
    char thp[64];          /* transparent_hugepage/enabled's choice */
    int pagemap_pfn;       /* 1 readable (nonzero PFN), 0 zero PFNs, -1 no access */
    char pagemap_why[128];
    int rseq;              /* 1 registered by glibc, 0 not, -1 unknown */
    unsigned long rseq_feature_size, rseq_size;
    unsigned long long memlock_cur, memlock_max; /* RLIM_INFINITY = ~0 */
};
void tool_machine_read(struct tool_machine *m);
/* One object; with command, "command":COMMAND first (info's own report). */
void tool_machine_json(FILE *f, const struct tool_machine *m, const char *command);

#endif
