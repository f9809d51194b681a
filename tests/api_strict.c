/*
 * api_strict.c - LABYRINTH_ZONE_STRICT: a misuse aborts after its report.
 * Each case runs in a forked child whose stderr is read back: a double free
 * (and other refused frees, a bad allocation, a use-after-free found by
 * VERIFY) ends in SIGABRT with the report line on stderr; a handler set on
 * the zone is called before the abort; proper use, leaks and notices do not
 * abort; the same misuse in a non-STRICT zone is refused and returns.
 * (A failed CL_ALIGN assertion cannot be provoked through the API: every
 * block is page-aligned.)  Public header only.
 */
#include "api_util.h"

#include <signal.h>
#include <sys/wait.h>

struct outcome {
    int exited, code, signaled, sig;
    char err[8192];
};

/* Run fn(arg) in a child with stderr to a pipe; its exit or signal and
 * what it wrote. */
static void run_child(void (*fn)(void *), void *arg, struct outcome *o)
{
    memset(o, 0, sizeof *o);
    int fds[2];
    REQUIRE(pipe(fds) == 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        close(fds[1]);
        signal(SIGABRT, SIG_DFL);
        fn(arg);
        _exit(0);
    }
    close(fds[1]);
    size_t len = 0;
    for (;;) {
        ssize_t r = read(fds[0], o->err + len, sizeof o->err - 1 - len);
        if (r <= 0)
            break;
        len += (size_t)r;
        if (len == sizeof o->err - 1)
            break;
    }
    o->err[len] = 0;
    close(fds[0]);
    int st = 0;
    REQUIRE(waitpid(pid, &st, 0) == pid);
    o->exited = WIFEXITED(st);
    o->code = o->exited ? WEXITSTATUS(st) : -1;
    o->signaled = WIFSIGNALED(st);
    o->sig = o->signaled ? WTERMSIG(st) : 0;
}

/* The line of o->err that starts with prefix, copied to line (or ""). */
static int find_line(const char *text, const char *prefix, char *line, size_t cap)
{
    const char *s = text;
    while (*s) {
        const char *e = strchr(s, '\n');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (strncmp(s, prefix, strlen(prefix)) == 0) {
            size_t k = n < cap - 1 ? n : cap - 1;
            memcpy(line, s, k);
            line[k] = 0;
            return 1;
        }
        s += n + (e != NULL);
    }
    line[0] = 0;
    return 0;
}

static struct labyrinth_zone *strict_zone(const char *name, unsigned flags)
{
    struct labyrinth_zone_config c;
    memset(&c, 0, sizeof c);
    c.name = name;
    c.pages = 64;
    c.flags = LABYRINTH_ZONE_STRICT | LABYRINTH_ZONE_NO_WARDEN | flags;
    struct labyrinth_zone *z = labyrinth_zone_create(&c);
    if (!z)
        _exit(90);
    return z;
}

static void say_addr(void *p)
{
    /* The child tells the parent the address on stderr, before the misuse. */
    char b[64];
    int n = snprintf(b, sizeof b, "ADDR %p\n", p);
    if (write(2, b, (size_t)n) < 0)
        _exit(91);
}

static void double_free(void *arg)
{
    unsigned order = (unsigned)(uintptr_t)arg;
    struct labyrinth_zone *z = strict_zone("strict-df", 0);
    void *p = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, order, 0);
    if (!p || labyrinth_free_pages(z, p, order) != 0)
        _exit(92);
    say_addr(p);
    labyrinth_free_pages(z, p, order); /* aborts */
    _exit(0);
}

static void foreign_free(void *arg)
{
    (void)arg;
    static char buf[8192];
    struct labyrinth_zone *z = strict_zone("strict-foreign", 0);
    void *p = (void *)(((uintptr_t)buf + 4095) & ~(uintptr_t)4095);
    say_addr(p);
    labyrinth_free_pages(z, p, 0);
    _exit(0);
}

static void wrong_order(void *arg)
{
    (void)arg;
    struct labyrinth_zone *z = strict_zone("strict-order", 0);
    void *p = labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, 1, 0);
    if (!p)
        _exit(92);
    say_addr(p);
    labyrinth_free_pages(z, p, 2);
    _exit(0);
}

static void bad_alloc(void *arg)
{
    (void)arg;
    struct labyrinth_zone *z = strict_zone("strict-args", 0);
    say_addr(NULL);
    labyrinth_alloc_pages(z, LABYRINTH_GFP_BIT_GROW, 0, 0); /* contradictory gfp */
    _exit(0);
}

static void use_after_free(void *arg)
{
    (void)arg;
    struct labyrinth_zone *z = strict_zone("strict-uaf", LABYRINTH_ZONE_VERIFY);
    void *p = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0);
    if (!p || labyrinth_free_pages(z, p, 0) != 0)
        _exit(92);
    TEST_TOUCH_FREED(p, 4096);
    ((volatile char *)p)[10] = 1;
    say_addr(p);
    for (int i = 0; i < 64; i++) /* aborts when p is handed out again */
        if (!labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0))
            break;
    _exit(0);
}

static void handler_then_abort_fn(const struct labyrinth_report *rep, void *arg)
{
    (void)arg;
    char b[128];
    int n = snprintf(b, sizeof b, "HANDLER kind=%d err=%d\n", (int)rep->kind, rep->err);
    if (write(2, b, (size_t)n) < 0)
        _exit(93);
}

static void handler_then_abort(void *arg)
{
    (void)arg;
    struct labyrinth_zone *z = strict_zone("strict-handler", 0);
    labyrinth_zone_set_report_handler(z, handler_then_abort_fn, NULL);
    void *p = labyrinth_alloc_pages(z, LABYRINTH_GFP_NOWAIT, 0, 0);
    if (!p || labyrinth_free_pages(z, p, 0) != 0)
        _exit(92);
    say_addr(p);
    labyrinth_free_pages(z, p, 0);
    _exit(0);
}

/* Proper use of a STRICT zone, a leak and a NULL free: no abort. */
static void proper_use(void *arg)
{
    (void)arg;
    struct labyrinth_zone *z = strict_zone("strict-ok", 0);
    for (int i = 0; i < 100; i++) {
        void *p = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, (unsigned)i % 3, LABYRINTH_QUALITY_ZERO);
        if (!p || labyrinth_free_pages(z, p, (unsigned)i % 3) != 0)
            _exit(94);
    }
    if (labyrinth_free_pages(z, NULL, 0) != 0)
        _exit(95);
    void *m = labyrinth_void_allocpage_gfpatomic_extra_quality(z, LABYRINTH_QUALITY_CL_ALIGN);
    void *leak = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0);
    if (!m || !leak || labyrinth_free_pages(z, m, 0) != 0)
        _exit(96);
    labyrinth_zone_destroy(z); /* a leak report is not misuse */
    _exit(0);
}

/* The same double free in a zone that is not STRICT: refused, returns. */
static void not_strict(void *arg)
{
    (void)arg;
    struct labyrinth_zone_config c;
    memset(&c, 0, sizeof c);
    c.name = "lenient";
    c.pages = 64;
    c.flags = LABYRINTH_ZONE_NO_WARDEN;
    struct labyrinth_zone *z = labyrinth_zone_create(&c);
    if (!z)
        _exit(90);
    void *p = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0);
    if (!p || labyrinth_free_pages(z, p, 0) != 0)
        _exit(92);
    say_addr(p);
    _exit(labyrinth_free_pages(z, p, 0) == -EALREADY ? 0 : 97);
}

/* A misuse case: SIGABRT, and a report line naming the zone (and the
 * address, when there is one). */
static void expect_abort(void (*fn)(void *), void *arg, const char *zone, const char *what)
{
    CASE_BEGIN();
    struct outcome o;
    run_child(fn, arg, &o);
    CHECK(o.signaled);
    CHECK_EQ(o.sig, SIGABRT);
    char addr_line[128], report[512], prefix[128];
    CHECK(find_line(o.err, "ADDR ", addr_line, sizeof addr_line));
    snprintf(prefix, sizeof prefix, "labyrinth: zone '%s'", zone);
    CHECK(find_line(o.err, prefix, report, sizeof report));
    const char *addr = addr_line + 5;
    if (strcmp(addr, "(nil)") != 0)
        CHECK(strstr(report, addr) != NULL);
    if (check_failures != case_failures_)
        fprintf(stderr, "  child %s %d; its stderr:\n%s\n", o.signaled ? "signal" : "exit",
                o.signaled ? o.sig : o.code, o.err);
    CASE_END(what);
}

int main(void)
{
    expect_abort(double_free, (void *)(uintptr_t)0, "strict-df", "order-0 double free");
    expect_abort(double_free, (void *)(uintptr_t)2, "strict-df", "order-2 double free");
    expect_abort(foreign_free, NULL, "strict-foreign", "foreign pointer");
    expect_abort(wrong_order, NULL, "strict-order", "wrong order");
    expect_abort(bad_alloc, NULL, "strict-args", "contradictory gfp");
    expect_abort(use_after_free, NULL, "strict-uaf", "use after free under VERIFY");

    /* The default report line: one line, the double free named. */
    {
        struct outcome o;
        run_child(double_free, (void *)(uintptr_t)0, &o);
        char report[512];
        CHECK(find_line(o.err, "labyrinth: zone 'strict-df'", report, sizeof report));
        CHECK(strstr(report, "double free") != NULL || strstr(report, "EALREADY") != NULL);
    }

    /* A handler set on the zone is called once, then the abort. */
    {
        struct outcome o;
        run_child(handler_then_abort, NULL, &o);
        CHECK(o.signaled && o.sig == SIGABRT);
        char line[256], want[64];
        snprintf(want, sizeof want, "HANDLER kind=%d err=%d", (int)LABYRINTH_REPORT_BAD_FREE, -EALREADY);
        CHECK(find_line(o.err, "HANDLER", line, sizeof line));
        CHECK(strcmp(line, want) == 0);
        const char *second = strstr(o.err, "HANDLER");
        CHECK(second && strstr(second + 1, "HANDLER") == NULL);
    }

    /* No abort without misuse, nor without STRICT. */
    {
        struct outcome o;
        run_child(proper_use, NULL, &o);
        CHECK(o.exited);
        CHECK_EQ(o.code, 0);
        if (!o.exited || o.code)
            fprintf(stderr, "  proper use in a STRICT zone: stderr:\n%s\n", o.err);
        run_child(not_strict, NULL, &o);
        CHECK(o.exited);
        CHECK_EQ(o.code, 0);
        char report[512];
        CHECK(find_line(o.err, "labyrinth: zone 'lenient'", report, sizeof report));
    }
    return check_done("api_strict");
}
