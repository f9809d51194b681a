/*
 * labyrinth - the command-line tool.  Subcommands:
 *   demo   the seed's scenario: a fast context allocates packet pages with
 *          the seed's macro and hands them to a worker that frees them.
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
            "            with the seed's macro, a worker frees them) and report\n"
            "  version   print the version\n"
            "  help      this text\n"
            "\n"
            "'labyrinth <command> --help' describes a command's options.\n"
            "Exit status: 0 healthy, 1 a failure was found, 2 bad usage.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "demo"))
        return tool_demo(argc - 1, argv + 1);
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("labyrinth %d.%d.%d\n", LABYRINTH_VERSION_MAJOR, LABYRINTH_VERSION_MINOR,
               LABYRINTH_VERSION_PATCH);
        return 0;
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "labyrinth: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
