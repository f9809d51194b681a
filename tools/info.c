/*
 * info.c - `labyrinth info`: what the machine offers the allocator (huge
 * pages, physical addresses, rseq, cores, the locked-memory limit); and
 * `labyrinth stats`: the same, then a demo or stress run with the zone's
 * free blocks per order and counters in a /proc/buddyinfo-like layout.
 */
#define _GNU_SOURCE
#include "tool.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#ifndef AT_RSEQ_FEATURE_SIZE
#define AT_RSEQ_FEATURE_SIZE 27
#endif

static void read_line_file(const char *path, char *out, size_t len)
{
    out[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    if (fgets(out, (int)len, f))
        out[strcspn(out, "\n")] = 0;
    fclose(f);
}

/* The pagemap entry of a page we own: bits 0-54 are the PFN, which the
 * kernel shows as zero without CAP_SYS_ADMIN. */
static void probe_pagemap(struct tool_machine *m)
{
    long ps = sysconf(_SC_PAGESIZE);
    int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        m->pagemap_pfn = -1;
        snprintf(m->pagemap_why, sizeof m->pagemap_why, "/proc/self/pagemap: %s", strerror(errno));
        return;
    }
    volatile char *page = mmap(NULL, (size_t)ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) {
        close(fd);
        m->pagemap_pfn = -1;
        snprintf(m->pagemap_why, sizeof m->pagemap_why, "mmap: %s", strerror(errno));
        return;
    }
    page[0] = 1; /* present */
    uint64_t entry = 0;
    off_t off = (off_t)((uintptr_t)page / (uintptr_t)ps * sizeof entry);
    ssize_t n = pread(fd, &entry, sizeof entry, off);
    close(fd);
    munmap((void *)page, (size_t)ps);
    if (n != (ssize_t)sizeof entry) {
        m->pagemap_pfn = -1;
        snprintf(m->pagemap_why, sizeof m->pagemap_why, "reading /proc/self/pagemap: %s",
                 n < 0 ? strerror(errno) : "short read");
        return;
    }
    uint64_t pfn = entry & ((1ull << 55) - 1);
    bool present = entry >> 63;
    m->pagemap_pfn = present && pfn ? 1 : 0;
    snprintf(m->pagemap_why, sizeof m->pagemap_why, "%s",
             m->pagemap_pfn ? "PFNs readable" : "PFNs read as zero (needs root or CAP_SYS_ADMIN)");
}

void tool_machine_read(struct tool_machine *m)
{
    memset(m, 0, sizeof *m);
    snprintf(m->cpu, sizeof m->cpu, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
        char *c = strchr(line, ':');
        if (c && !strncmp(line, "model name", 10)) {
            for (c++; *c == ' ' || *c == '\t'; c++) {
            }
            c[strcspn(c, "\n")] = 0;
            snprintf(m->cpu, sizeof m->cpu, "%s", c);
            break;
        }
    }
    if (f)
        fclose(f);
    m->cpus_online = sysconf(_SC_NPROCESSORS_ONLN);
    m->cpus_conf = sysconf(_SC_NPROCESSORS_CONF);
    cpu_set_t set;
    m->cpus_allowed = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : -1;
    struct utsname u;
    if (uname(&u) == 0)
        snprintf(m->kernel, sizeof m->kernel, "%.40s %.80s %.20s", u.sysname, u.release, u.machine);
    m->page_size = (size_t)sysconf(_SC_PAGESIZE);

    m->hugepages_total = m->hugepages_free = m->hugepage_kb = -1;
    f = fopen("/proc/meminfo", "r");
    while (f && fgets(line, sizeof line, f)) {
        long v;
        if (sscanf(line, "HugePages_Total: %ld", &v) == 1)
            m->hugepages_total = v;
        else if (sscanf(line, "HugePages_Free: %ld", &v) == 1)
            m->hugepages_free = v;
        else if (sscanf(line, "Hugepagesize: %ld kB", &v) == 1)
            m->hugepage_kb = v;
    }
    if (f)
        fclose(f);
    char thp[256];
    read_line_file("/sys/kernel/mm/transparent_hugepage/enabled", thp, sizeof thp);
    char *a = strchr(thp, '['), *b = a ? strchr(a, ']') : NULL;
    if (a && b)
        snprintf(m->thp, sizeof m->thp, "%.*s", (int)(b - a - 1), a + 1);
    else
        snprintf(m->thp, sizeof m->thp, "%s", thp[0] ? thp : "unknown");

    probe_pagemap(m);

    /* rseq: the kernel's feature size (Linux 6.3+ passes it in the
     * auxiliary vector), and glibc's registration (2.35+ exports the
     * registered area's size; 0 when it did not register). */
    errno = 0;
    m->rseq_feature_size = getauxval(AT_RSEQ_FEATURE_SIZE);
    const unsigned int *rs = (const unsigned int *)dlsym(RTLD_DEFAULT, "__rseq_size");
    if (rs) {
        m->rseq_size = *rs;
        m->rseq = *rs > 0 ? 1 : 0;
    } else {
        m->rseq = m->rseq_feature_size ? 1 : -1;
    }

    struct rlimit rl;
    if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0) {
        m->memlock_cur = rl.rlim_cur == RLIM_INFINITY ? ~0ull : (unsigned long long)rl.rlim_cur;
        m->memlock_max = rl.rlim_max == RLIM_INFINITY ? ~0ull : (unsigned long long)rl.rlim_max;
    }
}

static void fmt_limit(char *out, size_t len, unsigned long long v)
{
    if (v == ~0ull)
        snprintf(out, len, "unlimited");
    else
        snprintf(out, len, "%llu KiB", v / 1024);
}

static void machine_text(FILE *f, const struct tool_machine *m)
{
    char cur[64], max[64];
    fmt_limit(cur, sizeof cur, m->memlock_cur);
    fmt_limit(max, sizeof max, m->memlock_max);
    fprintf(f, "labyrinth %d.%d.%d on %s\n", LABYRINTH_VERSION_MAJOR, LABYRINTH_VERSION_MINOR,
            LABYRINTH_VERSION_PATCH, m->kernel);
    fprintf(f, "  cpu                  %s\n", m->cpu);
    fprintf(f, "  cores                %ld online, %ld configured, %ld usable by this process\n", m->cpus_online,
            m->cpus_conf, m->cpus_allowed);
    fprintf(f, "  page size            %zu bytes (library: %zu)\n", m->page_size, labyrinth_page_size());
    if (m->hugepages_total >= 0)
        fprintf(f, "  huge pages           %ld reserved, %ld free, of %ld KiB%s\n", m->hugepages_total,
                m->hugepages_free, m->hugepage_kb,
                m->hugepages_total > 0 ? " (LABYRINTH_ZONE_HUGE uses them)"
                                       : " (none reserved: LABYRINTH_ZONE_HUGE falls back to THP)");
    else
        fprintf(f, "  huge pages           unknown (no /proc/meminfo)\n");
    fprintf(f, "  transparent huge pg  %s\n", m->thp);
    fprintf(f, "  physical addresses   %s: %s\n",
            m->pagemap_pfn == 1 ? "readable" : m->pagemap_pfn == 0 ? "hidden" : "unavailable", m->pagemap_why);
    fprintf(f, "                       (LABYRINTH_ZONE_DMA zones %s)\n",
            m->pagemap_pfn == 1 ? "can be created" : "fail with EPERM or EIO here");
    if (m->rseq == 1)
        fprintf(f, "  rseq                 registered (glibc area %lu bytes, kernel feature size %lu)\n",
                m->rseq_size, m->rseq_feature_size);
    else if (m->rseq == 0)
        fprintf(f, "  rseq                 not registered by glibc (kernel feature size %lu)\n",
                m->rseq_feature_size);
    else
        fprintf(f, "  rseq                 unknown (glibc without __rseq_size, no AT_RSEQ_FEATURE_SIZE)\n");
    fprintf(f, "  locked memory limit  %s (hard %s)%s\n", cur, max,
            geteuid() == 0 ? ": root is not bound by it (CAP_IPC_LOCK)"
            : m->memlock_cur != ~0ull && m->memlock_cur < 16ull << 20
                ? ": a default zone (16 MiB) works unlocked, with a notice"
                : "");
}

void tool_machine_json(FILE *f, const struct tool_machine *m, const char *command)
{
    fputc('{', f);
    if (command)
        fprintf(f, "\"command\":\"%s\",", command);
    fprintf(f, "\"version\":\"%d.%d.%d\",\"kernel\":", LABYRINTH_VERSION_MAJOR, LABYRINTH_VERSION_MINOR,
            LABYRINTH_VERSION_PATCH);
    tool_json_str(f, m->kernel);
    fprintf(f, ",\"cpu\":");
    tool_json_str(f, m->cpu);
    fprintf(f, ",\"cores\":{\"online\":%ld,\"configured\":%ld,\"allowed\":%ld}", m->cpus_online, m->cpus_conf,
            m->cpus_allowed);
    fprintf(f, ",\"page_size\":%zu", m->page_size);
    fprintf(f, ",\"huge_pages\":{\"reserved\":%ld,\"free\":%ld,\"size_bytes\":", m->hugepages_total,
            m->hugepages_free);
    if (m->hugepage_kb >= 0)
        fprintf(f, "%lld", (long long)m->hugepage_kb * 1024);
    else
        fprintf(f, "null");
    fprintf(f, ",\"transparent\":");
    tool_json_str(f, m->thp);
    fprintf(f, "},\"physical_addresses\":{\"readable\":%s,\"detail\":", m->pagemap_pfn == 1 ? "true" : "false");
    tool_json_str(f, m->pagemap_why);
    fprintf(f, "},\"rseq\":{\"registered\":%s,\"glibc_size_bytes\":%lu,\"kernel_feature_size_bytes\":%lu}",
            m->rseq == 1 ? "true" : m->rseq == 0 ? "false" : "null", m->rseq_size, m->rseq_feature_size);
    fprintf(f, ",\"memlock\":{\"soft_bytes\":");
    if (m->memlock_cur == ~0ull)
        fprintf(f, "null");
    else
        fprintf(f, "%llu", m->memlock_cur);
    fprintf(f, ",\"hard_bytes\":");
    if (m->memlock_max == ~0ull)
        fprintf(f, "null");
    else
        fprintf(f, "%llu", m->memlock_max);
    fprintf(f, ",\"unlimited\":%s}}", m->memlock_cur == ~0ull ? "true" : "false");
}

/* ---- labyrinth info ------------------------------------------------------------ */

static void info_usage(FILE *f)
{
    fprintf(f, "usage: labyrinth info [options]\n"
               "  What this machine offers the allocator: cores, page size, huge pages\n"
               "  reserved and transparent huge pages, whether physical addresses can be\n"
               "  read (LABYRINTH_ZONE_DMA), whether glibc registered rseq, and the\n"
               "  locked-memory limit.\n"
               "options:\n"
               "  --json            one JSON object on stdout\n"
               "  --help            this text\n"
               "Exit status: 0, or 2 for bad usage.\n");
}

int tool_info(int argc, char **argv)
{
    bool json = false;
    static const struct option opts[] = {{"json", no_argument, 0, 'j'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        switch (c) {
        case 'j': json = true; break;
        case 'h': info_usage(stdout); return TOOL_OK;
        default: return tool_usage_hint("info");
        }
    }
    if (optind < argc) {
        fprintf(stderr, "labyrinth info: unexpected argument '%s'\n", argv[optind]);
        return TOOL_USAGE;
    }
    struct tool_machine m;
    tool_machine_read(&m);
    if (json) {
        tool_machine_json(stdout, &m, "info");
        fputc('\n', stdout);
    } else {
        machine_text(stdout, &m);
    }
    return TOOL_OK;
}

/* ---- labyrinth stats --------------------------------------------------------------- */

static void stats_usage(FILE *f)
{
    fprintf(f, "usage: labyrinth stats [options] [-- run options]\n"
               "  What the machine offers (as 'labyrinth info'), then a demo or stress run\n"
               "  with the zone's free blocks per order and its counters, laid out like\n"
               "  /proc/buddyinfo and /proc/vmstat, at intervals and at the end of the run\n"
               "  (before the zone is destroyed).  Options after '--' go to the run.\n"
               "options:\n"
               "  --run NAME        demo (default) or stress\n"
               "  --duration T      length of the run (e.g. 2s, 500ms; default 2s)\n"
               "  --interval T      also a snapshot every T, at least 100ms (default: only at\n"
               "                    the end)\n"
               "  --json            one JSON object on stdout: machine, snapshots, exit status\n"
               "  --help            this text\n"
               "Exit status: the run's: 0 healthy, 1 a failure was found, 2 bad usage.\n");
}

int tool_stats(int argc, char **argv)
{
    bool json = false;
    const char *run = "demo", *duration = "2s";
    uint64_t interval_us = 0, dur_us = 2000000;
    bool duration_set = false;
    static const struct option opts[] = {{"run", required_argument, 0, 'r'},
                                         {"duration", required_argument, 0, 'd'},
                                         {"interval", required_argument, 0, 'i'},
                                         {"json", no_argument, 0, 'j'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c, li = 0;
    optind = 0;
    while ((c = getopt_long(argc, argv, "+h", opts, &li)) != -1) {
        switch (c) {
        case 'r':
            if (strcmp(optarg, "demo") && strcmp(optarg, "stress"))
                return tool_bad_value("stats", "run", optarg, "'demo' or 'stress'");
            run = optarg;
            break;
        case 'd':
            if (!tool_parse_duration_us(optarg, &dur_us) || dur_us < 1000)
                return tool_bad_value("stats", "duration", optarg,
                                      "a duration from 1ms (a number with us, ms, s, m or h; at most 1h for "
                                      "demo, 168h for stress)");
            duration = optarg;
            duration_set = true;
            break;
        case 'i':
            if (!tool_parse_duration_us(optarg, &interval_us) || interval_us < 100000)
                return tool_bad_value("stats", "interval", optarg,
                                      "a duration of at least 100ms (a number with us, ms, s, m or h)");
            break;
        case 'j': json = true; break;
        case 'h': stats_usage(stdout); return TOOL_OK;
        default: return tool_usage_hint("stats");
        }
    }
    /* getopt stops at "--" (consumed) or at the first non-option ("+"). */
    if (optind < argc && (optind == 0 || strcmp(argv[optind - 1], "--") != 0)) {
        fprintf(stderr, "labyrinth stats: unexpected argument '%s' (run options go after '--')\n", argv[optind]);
        return TOOL_USAGE;
    }
    /* What the run is given after "--" must not contradict stats itself. */
    for (int i = optind; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--duration") || !strncmp(a, "--duration=", 11)) {
            const char *v = a[10] == '=' ? a + 11 : i + 1 < argc ? argv[i + 1] : "";
            if (duration_set) {
                fprintf(stderr,
                        "labyrinth stats: --duration %s given twice, to stats and to the run (after '--' it "
                        "would win); give it once\n",
                        v);
                return TOOL_USAGE;
            }
            if (!tool_parse_duration_us(v, &dur_us) || dur_us < 1000)
                return tool_bad_value("stats", "duration", v,
                                      "a duration from 1ms (a number with us, ms, s, m or h; at most 1h for "
                                      "demo, 168h for stress)");
            duration = v;
        } else if (!strcmp(a, "--json") || !strcmp(a, "--quiet") || !strcmp(a, "--stats") ||
                   !strcmp(a, "--help")) {
            fprintf(stderr,
                    "labyrinth stats: %s after '--' has no effect: under stats the run prints neither its status "
                    "nor its report%s\n",
                    a, !strcmp(a, "--json") ? " (give --json to stats, before '--')" : "");
            return TOOL_USAGE;
        }
    }
    if (interval_us && interval_us >= dur_us) {
        fprintf(stderr, "labyrinth stats: --interval is not shorter than the run (--duration %s): only the "
                        "end-of-run snapshot would be taken; leave --interval out for that\n", duration);
        return TOOL_USAGE;
    }
    int nfwd = argc - optind;
    char **av = calloc((size_t)nfwd + 4, sizeof *av);
    if (!av)
        return TOOL_FAIL;
    int n = 0;
    av[n++] = (char *)run;
    av[n++] = (char *)"--duration";
    av[n++] = (char *)duration;
    for (int i = optind; i < argc; i++)
        av[n++] = argv[i];
    av[n] = NULL;

    struct tool_machine m;
    tool_machine_read(&m);
    if (json) {
        fputs("{\"command\":\"stats\",\"machine\":", stdout);
        tool_machine_json(stdout, &m, NULL);
        fprintf(stdout, ",\"run\":\"%s\",\"duration_s\":%.3f,\"interval_s\":", run, dur_us / 1e6);
        if (interval_us)
            fprintf(stdout, "%.3f", interval_us / 1e6);
        else
            fputs("null", stdout);
        fputs(",\"snapshots\":[", stdout);
    } else {
        machine_text(stdout, &m);
        printf("\nrunning 'labyrinth %s --duration %s", run, duration);
        for (int i = optind; i < argc; i++)
            printf(" %s", argv[i]);
        if (interval_us)
            printf("': the zone every %.3g s and at the end\n", interval_us / 1e6);
        else
            printf("': the zone at the end\n");
    }
    fflush(stdout);
    tool_stats_req.on = true;
    tool_stats_req.json = json;
    tool_stats_req.quiet_run = true;
    tool_stats_req.interval_us = interval_us;
    tool_stats_req.emitted = 0;
    int rc = !strcmp(run, "demo") ? tool_demo(n, av) : tool_stress(n, av);
    free(av);
    if (json)
        printf("],\"exit_status\":%d,\"interrupted\":%s,\"healthy\":%s}\n", rc, rc > 128 ? "true" : "false",
               rc == TOOL_OK ? "true" : "false");
    else if (rc == TOOL_OK)
        printf("\nthe %s run was healthy\n", run);
    else if (rc == TOOL_FAIL)
        printf("\nthe %s run found a failure (exit status 1)\n", run);
    else if (rc > 128)
        printf("\nthe %s run was interrupted by %s (exit status %d); the snapshots cover the run so far\n", run,
               tool_signal_name(rc - 128), rc);
    return rc;
}
