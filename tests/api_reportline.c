/*
 * api_reportline.c - what a refusal's line tells a reader (issue 16.9):
 * the default handler names the caller's object and offset (which
 * `addr2line -f -e object offset` turns into a function and a line), from
 * a signal handler too, and a wrong-order free gives the block's real
 * order.  The default handler writes to stderr: the test points fd 2 at a
 * file while it makes the refusals, then reads the lines back.
 */
#define _GNU_SOURCE
#include "check.h"

#include <errno.h>
#include <labyrinth.h>
#include <signal.h>
#include <stdint.h>
#include <unistd.h>

static struct labyrinth_zone *gz;
static void *gpage;
static volatile int handler_rc;

/* A refusal made from a signal handler: the same line, its caller named
 * without any call that is unsafe there. */
static void on_signal(int sig)
{
    (void)sig;
    handler_rc = labyrinth_free_pages(gz, gpage, 1);
}

static char captured[8192];
static char user_msg[512];

static void on_report(const struct labyrinth_report *rep, void *arg)
{
    (void)arg;
    snprintf(user_msg, sizeof user_msg, "%s", rep->message ? rep->message : "");
}

/* Run fn with fd 2 pointed at a file; its output lands in captured. */
static void capture(void (*fn)(void))
{
    char path[] = "/tmp/lb_reportline_XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    unlink(path);
    fflush(stderr);
    int saved = dup(2);
    REQUIRE(saved >= 0);
    REQUIRE(dup2(fd, 2) == 2);
    fn();
    fflush(stderr);
    REQUIRE(dup2(saved, 2) == 2);
    close(saved);
    ssize_t n = pread(fd, captured, sizeof captured - 1, 0);
    close(fd);
    captured[n > 0 ? n : 0] = 0;
}

static uintptr_t call_site_lo;
static int rc_order0, rc_order1, rc_order40;

static __attribute__((noinline)) void refusals(void)
{
    __asm__ __volatile__("" ::: "memory");
    call_site_lo = (uintptr_t)&refusals;
    rc_order0 = labyrinth_free_pages(gz, gpage, 0);
    rc_order1 = labyrinth_free_pages(gz, gpage, 1);
    rc_order40 = labyrinth_free_pages(gz, gpage, 40);
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    REQUIRE(sigaction(SIGUSR1, &sa, NULL) == 0);
    raise(SIGUSR1);
}

/* The line that holds needle, or NULL. */
static const char *line_with(const char *needle, char *out, size_t cap)
{
    const char *p = strstr(captured, needle);
    if (!p)
        return NULL;
    const char *b = p;
    while (b > captured && b[-1] != '\n')
        b--;
    const char *e = strchr(p, '\n');
    size_t n = e ? (size_t)(e - b) : strlen(b);
    n = n < cap - 1 ? n : cap - 1;
    memcpy(out, b, n);
    out[n] = 0;
    return out;
}

/* "caller 0xADDR (OBJECT+0xOFF)": the object is this program, and the
 * address, less the offset, is the same base for every line. */
static uintptr_t check_caller(const char *line, const char *self)
{
    const char *c = strstr(line, " caller 0x");
    CHECK(c != NULL);
    if (!c)
        return 0;
    unsigned long long addr = strtoull(c + 8, NULL, 16);
    char want[128];
    snprintf(want, sizeof want, " (%s+0x", self);
    const char *o = strstr(c, want);
    if (!o) {
        fprintf(stderr, "FAIL: no '%s' in: %s\n", want, line);
        __atomic_fetch_add(&check_failures, 1, __ATOMIC_RELAXED);
        return 0;
    }
    unsigned long long off = strtoull(o + strlen(want), NULL, 16);
    CHECK(addr > off);
    /* The call is inside refusals() (or the handler it raised). */
    CHECK((addr >= call_site_lo && addr < call_site_lo + 4096) ||
          (addr >= (uintptr_t)&on_signal && addr < (uintptr_t)&on_signal + 4096));
    return (uintptr_t)(addr - off);
}

int main(int argc, char **argv)
{
    (void)argc;
    const char *self = strrchr(argv[0], '/');
    self = self ? self + 1 : argv[0];
    struct labyrinth_zone_config c;
    memset(&c, 0, sizeof c);
    c.name = "lines";
    c.pages = 64;
    c.max_order = 4;
    gz = labyrinth_zone_create(&c);
    REQUIRE(gz != NULL);
    gpage = labyrinth_alloc_pages(gz, LABYRINTH_GFP_KERNEL, 2, 0);
    REQUIRE(gpage != NULL);
    capture(refusals);
    CHECK_EQ(rc_order0, -ERANGE);
    CHECK_EQ(rc_order1, -ERANGE);
    CHECK_EQ(rc_order40, -ERANGE);
    CHECK_EQ(handler_rc, -ERANGE);

    char l[600];
    const char *l0 = line_with("order 0) refused", l, sizeof l);
    CHECK(l0 != NULL);
    uintptr_t base0 = 0, base1 = 0, base2 = 0;
    if (l0) {
        CHECK(strstr(l0, "allocated as order 2") != NULL);
        base0 = check_caller(l0, self);
    }
    char m[600];
    const char *l1 = line_with("order 1) refused", m, sizeof m);
    /* Two order-1 lines: the thread's and the handler's. */
    CHECK(l1 != NULL);
    if (l1) {
        CHECK(strstr(l1, "allocated as order 2") != NULL);
        base1 = check_caller(l1, self);
        const char *second = strstr(strstr(captured, "order 1) refused") + 1, "order 1) refused");
        CHECK(second != NULL);
        if (second) {
            char n2[600];
            const char *b = second;
            while (b > captured && b[-1] != '\n')
                b--;
            const char *e = strchr(second, '\n');
            size_t k = e ? (size_t)(e - b) : strlen(b);
            k = k < sizeof n2 - 1 ? k : sizeof n2 - 1;
            memcpy(n2, b, k);
            n2[k] = 0;
            base2 = check_caller(n2, self);
        }
    }
    char o[600];
    const char *l40 = line_with("order 40) refused", o, sizeof o);
    CHECK(l40 != NULL);
    if (l40) {
        CHECK(strstr(l40, "order above the zone's max_order 4") != NULL);
        CHECK(strstr(l40, "allocated as order") == NULL);
    }
    CHECK(base0 != 0 && base0 == base1 && base1 == base2);

    /* A user handler gets the same message (the real order in it). */
    labyrinth_zone_set_report_handler(gz, on_report, NULL);
    CHECK_EQ(labyrinth_free_pages(gz, gpage, 3), -ERANGE);
    CHECK(strstr(user_msg, "free_pages(") != NULL);
    CHECK(strstr(user_msg, "order 3) refused") != NULL);
    CHECK(strstr(user_msg, "allocated as order 2 (ERANGE)") != NULL);
    labyrinth_zone_set_report_handler(gz, NULL, NULL);
    CHECK_EQ(labyrinth_free_pages(gz, gpage, 2), 0);
    printf("api_reportline: lines seen:\n%s", captured);
    labyrinth_zone_destroy(gz);
    return check_done("api_reportline");
}
