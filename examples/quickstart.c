/* quickstart.c - labyrinth in one page: a zone, a page taken in a signal
 * handler with the seed's macro, filled, and freed by the main thread.
 * README.md shows how to build it against an installed labyrinth. */
#define _POSIX_C_SOURCE 200809L
#include <labyrinth.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

static struct labyrinth_zone *zone;
static void *volatile page; /* set by the handler */

/* A signal handler may not wait, take a lock or call malloc(); this
 * allocation does none of them, and returns NULL at once if the reserve
 * is spent. */
static void on_signal(int sig)
{
    (void)sig;
    page = labyrinth_void_allocpage_gfpatomic_extra_quality(zone, LABYRINTH_QUALITY_ZERO);
}

int main(void)
{
    struct labyrinth_zone_config cfg;
    memset(&cfg, 0, sizeof cfg); /* zero fields are defaults */
    cfg.name = "quickstart";
    cfg.pages = 256;             /* 1 MiB of 4 KiB pages */
    zone = labyrinth_zone_create(&cfg);
    if (!zone) {
        fprintf(stderr, "quickstart: labyrinth_zone_create: %s\n", labyrinth_strerror(errno));
        return 1;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    raise(SIGUSR1); /* the handler runs before raise() returns */

    if (!page) {
        fprintf(stderr, "quickstart: no page: the reserve is spent\n");
        labyrinth_zone_destroy(zone);
        return 1;
    }
    strcpy(page, "hello from a signal handler");
    printf("quickstart: %s, page %p\n", (char *)page, page);

    /* Any thread may free it; a bad free is refused with its errno. */
    int rc = labyrinth_free_pages(zone, page, 0);
    if (rc != 0)
        fprintf(stderr, "quickstart: labyrinth_free_pages: %s\n", labyrinth_strerror(rc));

    struct labyrinth_zone_stats st;
    labyrinth_zone_stats(zone, &st);
    printf("quickstart: %zu of %zu pages free, %zu in use\n", st.free_pages, st.total_pages, st.in_use_pages);
    labyrinth_zone_destroy(zone); /* reports pages still in use */
    return rc == 0 && st.in_use_pages == 0 ? 0 : 1;
}
