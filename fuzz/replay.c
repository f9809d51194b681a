/*
 * replay.c - runs fuzz_model.c without libFuzzer, in every build flavour.
 *
 *   fuzz_replay [--modes both|contexts|threads] [PATH...] [--random N [SEED]]
 *
 * Each PATH is an input file or a directory of them (every regular file,
 * in name order): fuzz/regressions/ holds every input that ever found a
 * bug, so each becomes a regression test.  --random N adds N inputs made
 * from a fixed seed (deterministic), so the model itself runs in every
 * flavour even when no regression input exists.  Each input runs in its own
 * child process; a model violation aborts that child after printing what
 * disagreed, the input is named, and the run fails at the end.
 *
 * Each input runs in both of fuzz_model.c's modes (--modes both, the
 * default): as libFuzzer runs it (workers as saved contexts in one thread,
 * the full check every 128 steps) and the slow, literal way (real worker
 * threads, LB_FUZZ_THREADS=real, and the full check after every step,
 * LB_FUZZ_CHECK_EVERY=1).  Both must pass; an input that fails only one
 * way names the mode.
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
static unsigned modes = 3; /* bit 0: contexts, bit 1: real threads */

/* Each input in a child process, so one failing input (a known bug kept
 * as a regression) does not hide what the others would find. */
static void run_mode(const char *what, const uint8_t *buf, size_t n, unsigned mode)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(1);
    }
    if (pid == 0) {
        if (mode == 2) {
            setenv("LB_FUZZ_THREADS", "real", 1);
            setenv("LB_FUZZ_CHECK_EVERY", "1", 1);
        }
        LLVMFuzzerTestOneInput(buf, n);
        fflush(stderr);
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        failed++;
        fprintf(stderr, "replay: FAILED: %s (%s)\n", what,
                mode == 2 ? "real threads, full check every step" : "contexts, as libFuzzer runs it");
    }
}

static void run_one(const char *what, const uint8_t *buf, size_t n)
{
    ran++;
    for (unsigned mode = 1; mode <= 2; mode <<= 1)
        if (modes & mode)
            run_mode(what, buf, n, mode);
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
        if (!strcmp(argv[i], "--modes") && i + 1 < argc) {
            const char *m = argv[++i];
            modes = !strcmp(m, "contexts") ? 1 : !strcmp(m, "threads") ? 2 : !strcmp(m, "both") ? 3 : 0;
            if (!modes) {
                fprintf(stderr, "fuzz_replay: --modes both, contexts or threads\n");
                return 2;
            }
        } else if (!strcmp(argv[i], "--random") && i + 1 < argc) {
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
    printf("fuzz_replay: %u inputs replayed against the model (%s), %u runs failed\n", ran,
           modes == 3 ? "both modes" : modes == 1 ? "contexts" : "real threads", failed);
    return ran && !failed ? 0 : 1;
}
