/*
 * util.c - what the subcommands share: parsing values, time, the
 * histogram, the status line, JSON scalars, gnuplot, zone snapshots.
 */
#define _GNU_SOURCE
#include "tool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- values ----------------------------------------------------------------- */

bool tool_parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!s || *s < '0' || *s > '9')
        return false;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return false;
    unsigned long long mul = 1;
    if (*end == 'k' && !end[1])
        mul = 1000;
    else if (*end == 'M' && !end[1])
        mul = 1000000;
    else if (*end)
        return false;
    if (v > UINT64_MAX / mul)
        return false;
    *out = v * mul;
    return true;
}

bool tool_parse_duration_us(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!s || ((*s < '0' || *s > '9') && *s != '.'))
        return false;
    double v = strtod(s, &end);
    if (errno || !(v >= 0) || end == s)
        return false;
    if (!*end || !strcmp(end, "s"))
        v *= 1e6;
    else if (!strcmp(end, "ms"))
        v *= 1e3;
    else if (!strcmp(end, "m"))
        v *= 60e6;
    else if (!strcmp(end, "h"))
        v *= 3600e6;
    else if (strcmp(end, "us"))
        return false;
    if (v > 1e15)
        return false;
    *out = (uint64_t)v;
    return true;
}

void tool_fmt_duration(char *out, size_t len, uint64_t us)
{
    if (us && us % 3600000000ull == 0)
        snprintf(out, len, "%lluh", (unsigned long long)(us / 3600000000ull));
    else if (us && us % 60000000ull == 0)
        snprintf(out, len, "%llum", (unsigned long long)(us / 60000000ull));
    else if (us && us % 1000000ull == 0)
        snprintf(out, len, "%llus", (unsigned long long)(us / 1000000ull));
    else if (us && us % 1000ull == 0)
        snprintf(out, len, "%llums", (unsigned long long)(us / 1000ull));
    else
        snprintf(out, len, "%lluus", (unsigned long long)us);
}

int tool_usage_hint(const char *cmd)
{
    fprintf(stderr, "labyrinth %s: see 'labyrinth %s --help' for the options\n", cmd, cmd);
    return TOOL_USAGE;
}

int tool_bad_value(const char *cmd, const char *opt, const char *value, const char *valid)
{
    if (valid && *valid)
        fprintf(stderr, "labyrinth %s: bad value '%s' for --%s: %s\n", cmd, value, opt, valid);
    else
        fprintf(stderr, "labyrinth %s: bad value '%s' for --%s (see 'labyrinth %s --help')\n", cmd, value, opt,
                cmd);
    return TOOL_USAGE;
}

/* ---- time ------------------------------------------------------------------- */

uint64_t tool_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double tool_calibrate(void)
{
    uint64_t t0 = tool_now_ns(), c0 = tool_cycles();
    while (tool_now_ns() - t0 < 20000000u) {
    }
    uint64_t t1 = tool_now_ns(), c1 = tool_cycles();
    double r = (double)(c1 - c0) / (double)(t1 - t0);
    return r > 0 ? r : 1.0;
}

void tool_sleep_us(uint64_t us)
{
    struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ---- histogram ---------------------------------------------------------------- */

uint64_t tool_hist_value(unsigned b)
{
    if (b < TOOL_HIST_LINEAR)
        return b;
    unsigned e = (b - TOOL_HIST_LINEAR) / TOOL_HIST_SUB + 8, sub = (b - TOOL_HIST_LINEAR) % TOOL_HIST_SUB;
    return (1ull << e) | ((uint64_t)sub << (e - 5));
}

void tool_hist_snapshot(struct tool_hist *dst, const struct tool_hist *src)
{
    for (unsigned i = 0; i < TOOL_HIST_BUCKETS; i++)
        dst->n[i] = __atomic_load_n(&src->n[i], __ATOMIC_RELAXED);
}

void tool_hist_diff(struct tool_hist *dst, const struct tool_hist *a, const struct tool_hist *b)
{
    for (unsigned i = 0; i < TOOL_HIST_BUCKETS; i++)
        dst->n[i] = a->n[i] - b->n[i];
}

uint64_t tool_hist_total(const struct tool_hist *h)
{
    uint64_t t = 0;
    for (unsigned i = 0; i < TOOL_HIST_BUCKETS; i++)
        t += h->n[i];
    return t;
}

uint64_t tool_hist_quantile(const struct tool_hist *h, double q)
{
    uint64_t total = tool_hist_total(h);
    if (!total)
        return 0;
    /* The smallest value v with at least ceil(q * total) samples <= v. */
    uint64_t want = (uint64_t)ceil(q * (double)total), acc = 0;
    if (want < 1)
        want = 1;
    for (unsigned i = 0; i < TOOL_HIST_BUCKETS; i++) {
        acc += h->n[i];
        if (acc >= want)
            return tool_hist_value(i);
    }
    return tool_hist_max(h);
}

uint64_t tool_hist_max(const struct tool_hist *h)
{
    for (unsigned i = TOOL_HIST_BUCKETS; i-- > 0;)
        if (h->n[i])
            return tool_hist_value(i);
    return 0;
}

/* ---- output -------------------------------------------------------------------- */

unsigned tool_status_width(bool tty)
{
    unsigned cols = 0;
    if (tty) {
        struct winsize ws;
        if (ioctl(2, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
            cols = ws.ws_col;
        else {
            const char *c = getenv("COLUMNS");
            long v = c ? strtol(c, NULL, 10) : 0;
            cols = v > 0 && v < 10000 ? (unsigned)v : 80;
        }
    } else {
        cols = 80;
    }
    /* One column short of the edge: a line that fills the last column
     * wraps on some terminals, and '\r' then returns to the start of the
     * second half only, leaving the first on the screen. */
    return cols > 20 ? cols - 1 : 19;
}

volatile sig_atomic_t tool_status_open;

void tool_status(bool tty, const char *line)
{
    unsigned w = tool_status_width(tty);
    int n = (int)strlen(line);
    if (n > (int)w)
        n = (int)w;
    if (tty) {
        fprintf(stderr, "\r\033[K%.*s", n, line);
        tool_status_open = 1;
    } else {
        fprintf(stderr, "%.*s\n", n, line);
    }
    fflush(stderr);
}

void tool_status_fields(bool tty, const struct tool_field *f, unsigned n)
{
    unsigned w = tool_status_width(tty);
    bool on[32];
    if (n > 32)
        n = 32;
    size_t total = 0;
    for (unsigned i = 0; i < n; i++) {
        on[i] = f[i].text && *f[i].text;
        if (on[i])
            total += strlen(f[i].text) + (total ? 2 : 0);
    }
    /* Drop the least needed fields (highest drop, the later on a tie)
     * until the line fits; fields with drop 0 stay. */
    while (total > w) {
        int worst = -1;
        for (unsigned i = 0; i < n; i++)
            if (on[i] && f[i].drop && (worst < 0 || f[i].drop >= f[worst].drop))
                worst = (int)i;
        if (worst < 0)
            break;
        on[worst] = false;
        total = 0;
        for (unsigned i = 0; i < n; i++)
            if (on[i])
                total += strlen(f[i].text) + (total ? 2 : 0);
    }
    char line[1024];
    size_t len = 0;
    line[0] = 0;
    for (unsigned i = 0; i < n; i++)
        if (on[i] && len + 2 < sizeof line)
            len += (size_t)snprintf(line + len, sizeof line - len, "%s%s", len ? "  " : "", f[i].text);
    tool_status(tty, line);
}

void tool_status_done(bool tty)
{
    if (tty && tool_status_open) {
        fprintf(stderr, "\n");
        fflush(stderr);
    }
    tool_status_open = 0;
}

/* ---- SIGINT and SIGTERM ------------------------------------------------------ */

static volatile sig_atomic_t interrupted_by;
static struct sigaction old_int, old_term;
static bool interrupt_installed;

static void on_interrupt(int sig)
{
    if (interrupted_by) {
        /* A second one: the user means now.  End the redrawn line, then
         * die of the signal as if it had not been caught. */
        int saved = errno;
        if (tool_status_open)
            (void)!write(2, "\n", 1);
        signal(sig, SIG_DFL);
        raise(sig);
        errno = saved;
        return;
    }
    interrupted_by = sig;
}

void tool_interrupt_install(void)
{
    interrupted_by = 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_interrupt;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    /* A signal the parent ignores (a background job of a shell without job
     * control, nohup) stays ignored. */
    sigaction(SIGINT, NULL, &old_int);
    sigaction(SIGTERM, NULL, &old_term);
    if (old_int.sa_handler != SIG_IGN)
        sigaction(SIGINT, &sa, NULL);
    if (old_term.sa_handler != SIG_IGN)
        sigaction(SIGTERM, &sa, NULL);
    interrupt_installed = true;
}

void tool_interrupt_restore(void)
{
    if (!interrupt_installed)
        return;
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    interrupt_installed = false;
}

int tool_interrupted(void) { return interrupted_by; }

void tool_interrupt_block(bool block)
{
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGINT);
    sigaddset(&s, SIGTERM);
    pthread_sigmask(block ? SIG_BLOCK : SIG_UNBLOCK, &s, NULL);
}

const char *tool_signal_name(int sig) { return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "a signal"; }

void tool_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", f);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

void tool_wrap(FILE *f, const char *text, unsigned width)
{
    const char *p = text;
    while (*p) {
        size_t len = strlen(p);
        if (len <= width) {
            fprintf(f, "%s\n", p);
            return;
        }
        size_t cut = width;
        while (cut > 0 && p[cut] != ' ')
            cut--;
        if (cut == 0)
            cut = width;
        size_t end = cut;
        while (end > 0 && p[end - 1] == ' ')
            end--;
        fprintf(f, "%.*s\n", (int)end, p);
        p += cut;
        while (*p == ' ')
            p++;
    }
}

void tool_json_quality(FILE *f, unsigned q)
{
    static const struct {
        unsigned bit;
        const char *name;
    } names[] = {{LABYRINTH_QUALITY_ZERO, "zero"},
                 {LABYRINTH_QUALITY_POISON, "poison"},
                 {LABYRINTH_QUALITY_CL_ALIGN, "cl_align"},
                 {LABYRINTH_QUALITY_TRACK, "track"}};
    fputc('[', f);
    bool first = true;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (q & names[i].bit) {
            fprintf(f, "%s\"%s\"", first ? "" : ",", names[i].name);
            first = false;
        }
    fputc(']', f);
}

void tool_json_num(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.6g", v);
    else
        fputs("null", f);
}

/* ---- gnuplot ---------------------------------------------------------------------- */

static const char *plot_ext(const char *file)
{
    const char *dot = strrchr(file, '.');
    if (dot && !strcasecmp(dot, ".png"))
        return "png";
    if (dot && !strcasecmp(dot, ".svg"))
        return "svg";
    return NULL;
}

static bool in_path(const char *prog)
{
    const char *path = getenv("PATH");
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path && *path ? path : "/usr/bin:/bin");
    for (char *save, *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        char full[4200];
        snprintf(full, sizeof full, "%s/%s", *d ? d : ".", prog);
        if (access(full, X_OK) == 0)
            return true;
    }
    return false;
}

/* Can FILE be written?  Tried for real (root passes access() checks that a
 * write would fail, on a read-only file system say): an existing file is
 * opened for writing without truncating it, a new one created and removed
 * again.  false with the reason in why. */
static bool path_writable(const char *file, char *why, size_t len)
{
    struct stat sb;
    if (stat(file, &sb) == 0) {
        if (S_ISDIR(sb.st_mode)) {
            snprintf(why, len, "it is a directory");
            return false;
        }
        int fd = open(file, O_WRONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0) {
            snprintf(why, len, "%s", strerror(errno));
            return false;
        }
        close(fd);
        if (!S_ISREG(sb.st_mode)) {
            snprintf(why, len, "not a regular file (a plot is written with the file name gnuplot is given)");
            return false;
        }
        return true;
    }
    if (errno != ENOENT) {
        snprintf(why, len, "%s", strerror(errno));
        return false;
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", file);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = 0;
    else
        *slash = 0;
    if (stat(dir, &sb) != 0) {
        snprintf(why, len, "the directory %s: %s", dir, strerror(errno));
        return false;
    }
    if (!S_ISDIR(sb.st_mode)) {
        snprintf(why, len, "%s is not a directory", dir);
        return false;
    }
    int fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(why, len, "%s", strerror(errno));
        return false;
    }
    close(fd);
    unlink(file);
    return true;
}

int tool_plot_check(const char *cmd, const char *file)
{
    if (!*file || !plot_ext(file)) {
        fprintf(stderr, "labyrinth %s: bad value '%s' for --plot: the file must end in .png or .svg\n", cmd, file);
        return TOOL_USAGE;
    }
    char why[4200];
    if (!path_writable(file, why, sizeof why)) {
        fprintf(stderr, "labyrinth %s: bad value '%s' for --plot: cannot write there: %s\n", cmd, file, why);
        return TOOL_USAGE;
    }
    if (!in_path("gnuplot")) {
        fprintf(stderr,
                "labyrinth %s: --plot needs gnuplot, which is not installed "
                "(Debian: apt-get install gnuplot-nox)\n",
                cmd);
        return TOOL_FAIL;
    }
    return TOOL_OK;
}

/* A file name inside single quotes for gnuplot: quotes doubled. */
static void gp_quote(char *out, size_t len, const char *s)
{
    size_t n = 0;
    if (len < 3)
        return;
    out[n++] = '\'';
    for (; *s && n + 3 < len; s++) {
        if (*s == '\'')
            out[n++] = '\'';
        out[n++] = *s;
    }
    out[n++] = '\'';
    out[n] = 0;
}

void tool_plot_terminal(char *buf, size_t len, const char *file, int width, int height)
{
    char q[1200];
    gp_quote(q, sizeof q, file);
    const char *ext = plot_ext(file);
    if (ext && !strcmp(ext, "svg"))
        snprintf(buf, len, "set terminal svg size %d,%d dynamic enhanced font 'Sans,11' background '#ffffff'\n"
                           "set output %s\n", width, height, q);
    else
        snprintf(buf, len, "set terminal pngcairo size %d,%d enhanced font 'Sans,10' background '#ffffff'\n"
                           "set output %s\n", width, height, q);
}

bool tool_tmpdir(char *out, size_t len)
{
    const char *t = getenv("TMPDIR");
    snprintf(out, len, "%s/labyrinth-plot.XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(out)) {
        out[0] = 0;
        return false;
    }
    return true;
}

void tool_rmtree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char p[4200];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

/* The last lines of gnuplot's messages that say something (not its echo
 * of the script line, not the caret under it), joined with "; ". */
static void gnuplot_why(FILE *err, char *out, size_t len)
{
    char line[512], keep[2][512] = {"", ""};
    out[0] = 0;
    if (!err)
        return;
    rewind(err);
    while (fgets(line, sizeof line, err)) {
        line[strcspn(line, "\n")] = 0;
        char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p || *p == '^' || !strncmp(p, "set output", 10) || !strncmp(p, "set terminal", 12))
            continue;
        snprintf(keep[0], sizeof keep[0], "%s", keep[1]);
        snprintf(keep[1], sizeof keep[1], "%s", p);
    }
    if (keep[0][0])
        snprintf(out, len, "%s; %s", keep[0], keep[1]);
    else
        snprintf(out, len, "%s", keep[1]);
}

int tool_gnuplot(const char *cmd, const char *script, const char *file)
{
    fflush(NULL);
    int fds[2];
    if (pipe(fds) != 0) {
        fprintf(stderr, "labyrinth %s: pipe: %s\n", cmd, strerror(errno));
        return -1;
    }
    /* gnuplot's messages go to a file, shown briefly if it fails; its
     * standard output to /dev/null: a terminal whose 'set output' failed
     * writes the picture there, and ours carries the report or the JSON. */
    FILE *err = tmpfile();
    unlink(file);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "labyrinth %s: fork: %s\n", cmd, strerror(errno));
        close(fds[0]);
        close(fds[1]);
        if (err)
            fclose(err);
        return -1;
    }
    if (pid == 0) {
        dup2(fds[0], 0);
        close(fds[0]);
        close(fds[1]);
        int null = open("/dev/null", O_WRONLY);
        if (null < 0 || dup2(null, 1) < 0)
            _exit(126);
        if (err)
            dup2(fileno(err), 2);
        else
            dup2(null, 2);
        execlp("gnuplot", "gnuplot", (char *)NULL);
        _exit(127);
    }
    close(fds[0]);
    /* gnuplot may stop reading early (a script error): no SIGPIPE. */
    struct sigaction ign = {0}, old;
    ign.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &ign, &old);
    size_t n = strlen(script), off = 0;
    while (off < n) {
        ssize_t w = write(fds[1], script + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    close(fds[1]);
    sigaction(SIGPIPE, &old, NULL);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    struct stat sb;
    int rc = 0;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || stat(file, &sb) != 0 || sb.st_size == 0) {
        char why[1100];
        gnuplot_why(err, why, sizeof why);
        if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
            snprintf(why, sizeof why, "gnuplot could not be started");
        fprintf(stderr, "labyrinth %s: gnuplot failed to write %s (exit %d)%s%s\n", cmd, file,
                WIFEXITED(st) ? WEXITSTATUS(st) : -1, why[0] ? ": " : "", why);
        rc = -1;
    }
    if (err)
        fclose(err);
    return rc;
}

/* ---- zone snapshots ------------------------------------------------------------------- */

struct tool_stats_req tool_stats_req;

void tool_zone_snapshot(FILE *f, struct labyrinth_zone *zone, const char *run, double secs, bool final, bool json)
{
    struct labyrinth_zone_stats st;
    if (labyrinth_zone_stats(zone, &st) != 0)
        return;
    unsigned top = 0; /* the highest order with a block, at least 10 */
    for (unsigned o = 0; o <= LABYRINTH_MAX_ORDER_LIMIT; o++)
        if (st.free_blocks[o])
            top = o;
    if (top < 10)
        top = 10;
    struct {
        const char *name;
        unsigned long long v;
    } c[] = {
        {"total_pages", st.total_pages},
        {"free_pages", st.free_pages},
        {"in_use_pages", st.in_use_pages},
        {"buddy_free_pages", st.buddy_free_pages},
        {"cached_pages", st.cached_pages},
        {"depot_pages", st.depot_pages},
        {"in_flight_pages", st.in_flight_pages},
        {"reserve_free_pages", st.reserve_free_pages},
        {"reserve_target_pages", st.reserve_target_pages},
        {"reserve_low_water", st.reserve_low_water},
        {"low_pages", st.low_pages},
        {"high_pages", st.high_pages},
        {"atomic_allocs", st.atomic_allocs},
        {"atomic_failures", st.atomic_failures},
        {"atomic_reserve_allocs", st.atomic_reserve_allocs},
        {"nowait_allocs", st.nowait_allocs},
        {"nowait_failures", st.nowait_failures},
        {"kernel_allocs", st.kernel_allocs},
        {"kernel_failures", st.kernel_failures},
        {"kernel_waits", st.kernel_waits},
        {"frees", st.frees},
        {"misuse_reports", st.misuse_reports},
        {"warden_runs", st.warden_runs},
        {"warden_pages_moved", st.warden_pages_moved},
        {"grow_events", st.grow_events},
        {"retry_cap_hits", st.retry_cap_hits},
        {"max_retries", st.max_retries},
        {"remote_cas_fallbacks", st.remote_cas_fallbacks},
        {"threads", st.threads},
        {"regions", st.regions},
        {"metadata_bytes", st.metadata_bytes},
        {"locked_pages", st.locked_pages},
    };
    const char *zname = labyrinth_zone_name(zone);
    if (json) {
        fprintf(f, "{\"run\":");
        tool_json_str(f, run);
        fprintf(f, ",\"zone\":");
        tool_json_str(f, zname);
        fprintf(f, ",\"t_s\":%.3f,\"final\":%s,\"page_size\":%zu,\"free_blocks\":[", secs,
                final ? "true" : "false", st.page_size);
        for (unsigned o = 0; o <= top; o++)
            fprintf(f, "%s%zu", o ? "," : "", st.free_blocks[o]);
        fprintf(f, "],\"counters\":{");
        for (size_t i = 0; i < sizeof c / sizeof c[0]; i++)
            fprintf(f, "%s\"%s\":%llu", i ? "," : "", c[i].name, c[i].v);
        fprintf(f, "}}");
        fflush(f);
        return;
    }
    /* /proc/buddyinfo: "Node 0, zone   Normal  n0 n1 ... n10", free blocks
     * per order; here with a header line of orders. */
    fprintf(f, "\n%s zone '%s' at %.1f s%s (pages of %zu bytes)\n", run, zname, secs, final ? ", end of run" : "",
            st.page_size);
    fprintf(f, "%-22s", "order");
    for (unsigned o = 0; o <= top; o++)
        fprintf(f, " %6u", o);
    fprintf(f, "\n%-22s", "free blocks");
    for (unsigned o = 0; o <= top; o++)
        fprintf(f, " %6zu", st.free_blocks[o]);
    fprintf(f, "\n");
    /* Counters as /proc/vmstat has them: name and value. */
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++)
        fprintf(f, "%-22s %llu\n", c[i].name, c[i].v);
    fflush(f);
}

void tool_stats_emit(struct labyrinth_zone *zone, const char *run, double secs, bool final)
{
    if (!tool_stats_req.on)
        return;
    if (tool_stats_req.json && tool_stats_req.emitted)
        fputc(',', stdout);
    tool_zone_snapshot(stdout, zone, run, secs, final, tool_stats_req.json);
    if (tool_stats_req.json)
        fputc('\n', stdout);
    fflush(stdout);
    tool_stats_req.emitted++;
}

bool tool_parse_quality(const char *s, unsigned allowed, unsigned *q)
{
    static const struct {
        const char *name;
        unsigned bits;
    } names[] = {{"zero", LABYRINTH_QUALITY_ZERO},
                 {"poison", LABYRINTH_QUALITY_POISON},
                 {"cl_align", LABYRINTH_QUALITY_CL_ALIGN},
                 {"track", LABYRINTH_QUALITY_TRACK},
                 {"all", LABYRINTH_QUALITY_ALL},
                 {"none", 0}};
    char buf[128];
    if (!*s || strlen(s) >= sizeof buf)
        return false;
    snprintf(buf, sizeof buf, "%s", s);
    *q = 0;
    unsigned words = 0;
    bool none = false;
    for (char *save, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        unsigned i = 0;
        while (i < sizeof names / sizeof names[0] && strcmp(t, names[i].name))
            i++;
        if (i == sizeof names / sizeof names[0])
            return false;
        /* 'all' means the allowed flags (demo has no track). */
        unsigned bits = !strcmp(t, "all") ? allowed : names[i].bits;
        if (bits & ~allowed)
            return false;
        *q |= bits;
        none |= !strcmp(t, "none");
        words++;
    }
    /* "none,zero" says two contradictory things: none stands alone. */
    return words > 0 && !(none && words > 1) && s[strlen(s) - 1] != ',' && s[0] != ',' && !strstr(s, ",,");
}
