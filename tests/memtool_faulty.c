/*
 * memtool_faulty.c - a small faulty program for tests/memtools.sh: a memory
 * tool must report its misuse of labyrinth pages as it would for malloc.
 *   ok         allocate, use, free: no report
 *   uaf-write  write into a page after freeing it
 *   uaf-read   read a page after freeing it
 *   leak       lose the only pointer to a page and exit
 */
#include <labyrinth.h>
#include <stdio.h>
#include <string.h>

static volatile char sink;

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "ok";
    struct labyrinth_zone_config cfg = {0};
    cfg.name = "faulty";
    cfg.pages = 256;
    cfg.flags = LABYRINTH_ZONE_NO_WARDEN;
    struct labyrinth_zone *z = labyrinth_zone_create(&cfg);
    if (!z)
        return 3;
    /* A first page that stays in use: the zone's own pointers reach it,
     * so the page under test is not the region's first. */
    char *anchor = labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, 0, 0);
    char *p = labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, 0, 0);
    if (!anchor || !p)
        return 4;
    memset(p, 1, 4096);
    if (!strcmp(mode, "leak")) {
        p = NULL; /* lost */
        labyrinth_free_pages(z, anchor, 0);
        return 0; /* no destroy: the tool reports the lost page */
    }
    labyrinth_free_pages(z, p, 0);
    if (!strcmp(mode, "uaf-write"))
        p[10] = 2;
    else if (!strcmp(mode, "uaf-read"))
        sink = p[10];
    labyrinth_free_pages(z, anchor, 0);
    labyrinth_zone_destroy(z);
    return 0;
}
