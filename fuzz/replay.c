/*
 * replay.c - runs fuzz_model.c without libFuzzer, in every build flavour.
 *
 *   fuzz_replay [PATH...] [--random N [SEED]]
 *
 * Each PATH is an input file or a directory of them (every regular file,
 * in name order): fuzz/regressions/ holds every input that ever found a
 * bug, so each becomes a regression test.  --random N adds N inputs made
 * from a fixed seed (deterministic), so the model itself runs in every
 * flavour even when no regression input exists.  Each input runs in its own
 * child process; a model violation aborts that child after printing what
 * disagreed, the input is named, and the run fails at the end.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned ran, failed;

/* Each input in a child process, so one failing input (a known bug kept
 * as a regression) does not hide what the others would find. */
static void run_one(const char *what, const uint8_t *buf, size_t n)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(1);
    }
    if (pid == 0) {
        LLVMFuzzerTestOneInput(buf, n);
        fflush(stderr);
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    ran++;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        failed++;
        fprintf(stderr, "replay: FAILED: %s\n", what);
    }
}

static void run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        exit(1);
    }
    static uint8_t buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    fprintf(stderr, "replay: %s (%zu bytes)\n", path, n);
    run_one(path, buf, n);
}

static int by_name(const struct dirent **a, const struct dirent **b) { return strcmp((*a)->d_name, (*b)->d_name); }

static void run_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        perror(path);
        exit(1);
    }
    if (!S_ISDIR(st.st_mode)) {
        run_file(path);
        return;
    }
    struct dirent **ents;
    int n = scandir(path, &ents, NULL, by_name);
    if (n < 0) {
        perror(path);
        exit(1);
    }
    for (int i = 0; i < n; i++) {
        char full[4096];
        snprintf(full, sizeof full, "%s/%s", path, ents[i]->d_name);
        struct stat fs;
        if (ents[i]->d_name[0] != '.' && stat(full, &fs) == 0 && S_ISREG(fs.st_mode))
            run_file(full);
        free(ents[i]);
    }
    free(ents);
}

static uint64_t rng;
static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

int main(int argc, char **argv)
{
    unsigned nrandom = 0;
    uint64_t seed = 0x6c61627972696e74ull;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--random") && i + 1 < argc) {
            nrandom = (unsigned)strtoul(argv[++i], NULL, 0);
            if (i + 1 < argc && argv[i + 1][0] != '-' && strspn(argv[i + 1], "0123456789") == strlen(argv[i + 1]))
                seed = strtoull(argv[++i], NULL, 0);
        } else {
            run_path(argv[i]);
        }
    }
    rng = seed | 1;
    static uint8_t buf[4096];
    for (unsigned k = 0; k < nrandom; k++) {
        size_t n = 16 + next() % (sizeof buf - 16);
        for (size_t i = 0; i < n; i++)
            buf[i] = (uint8_t)(next() >> 24);
        char what[96];
        snprintf(what, sizeof what, "random input %u (seed %#llx, %zu bytes)", k, (unsigned long long)seed, n);
        if (getenv("LB_FUZZ_TRACE"))
            fprintf(stderr, "replay: %s\n", what);
        run_one(what, buf, n);
    }
    printf("fuzz_replay: %u inputs replayed against the model, %u failed\n", ran, failed);
    return ran && !failed ? 0 : 1;
}
