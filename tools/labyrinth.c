/*
 * labyrinth - the command-line tool.  Subcommands:
 *   demo    the seed's scenario: a fast context allocates packet pages with
 *           the seed's macro and hands them to a worker that frees them.
 *   bench   the benchmark patterns against labyrinth and its peers.
 *   stress  the torture test: threads, signal storms, payload and
 *           invariant checks.
 *   info    what the machine offers (huge pages, physical addresses, rseq,
 *           cores).
 *   stats   info, then a demo or stress run with the zone's free blocks per
 *           order and counters.
 * Exit codes: 0 healthy, 1 a failure was found, 2 bad usage.
 */
#include "tool.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f,
            "usage: labyrinth <command> [options]\n"
            "\n"
            "commands:\n"
            "  demo      run the seed's scenario (a fast context allocates packet pages\n"
            "            with the seed's macro, a worker frees them) with a live status\n"
            "            line and a report\n"
            "  bench     the benchmark patterns (LIFO, burst, handoff, latency) against\n"
            "            labyrinth and its peers: a table, --json, --plot\n"
            "  stress    the torture test: threads, signal storms, random orders and\n"
            "            quality flags, payload and invariant checks\n"
            "  info      what this machine offers: huge pages, physical addresses,\n"
            "            rseq, cores\n"
            "  stats     info, then a demo or stress run with the zone's free blocks\n"
            "            per order and counters\n"
            "  version   print the version\n"
            "  help      this text\n"
            "\n"
            "The seed is the brief labyrinth was written from; its macro is the one-call\n"
            "ATOMIC page allocation labyrinth_void_allocpage_gfpatomic_extra_quality(),\n"
            "its scenario the packet hand-off that demo runs.\n"
            "\n"
            "'labyrinth <command> --help' describes a command's options; man labyrinth.\n"
            "Exit status: 0 healthy, 1 a failure was found, 2 bad usage.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return TOOL_USAGE;
    }
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {
        {"demo", tool_demo}, {"bench", tool_bench}, {"stress", tool_stress},
        {"info", tool_info}, {"stats", tool_stats},
    };
    const char *cmd = argv[1];
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (!strcmp(cmd, cmds[i].name)) {
            /* getopt's messages start with argv[0]: "labyrinth demo: ..." */
            static char name[64];
            snprintf(name, sizeof name, "labyrinth %s", cmds[i].name);
            argv[1] = name;
            return cmds[i].fn(argc - 1, argv + 1);
        }
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("labyrinth %d.%d.%d\n", LABYRINTH_VERSION_MAJOR, LABYRINTH_VERSION_MINOR,
               LABYRINTH_VERSION_PATCH);
        return TOOL_OK;
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        if (argc > 3) {
            fprintf(stderr, "labyrinth: help takes one command at most, not '%s'\n", argv[3]);
            return TOOL_USAGE;
        }
        if (argc > 2) {
            for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
                if (!strcmp(argv[2], cmds[i].name)) {
                    static char name[64];
                    snprintf(name, sizeof name, "labyrinth %s", cmds[i].name);
                    char *av[] = {name, (char *)"--help", NULL};
                    return cmds[i].fn(2, av);
                }
            if (strcmp(argv[2], "help") && strcmp(argv[2], "version")) {
                fprintf(stderr,
                        "labyrinth: no help for '%s': it is not a command (demo, bench, stress, info, stats, "
                        "version, help)\n",
                        argv[2]);
                return TOOL_USAGE;
            }
        }
        usage(stdout);
        return TOOL_OK;
    }
    fprintf(stderr, "labyrinth: unknown command '%s'\n", cmd);
    usage(stderr);
    return TOOL_USAGE;
}
