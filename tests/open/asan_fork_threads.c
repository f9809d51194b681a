/*
 * asan_fork_threads.c - not labyrinth's: gcc 12's AddressSanitizer runtime
 * (Debian 12's libasan8) deadlocks the child of a fork() now and then when
 * the child starts a thread while the parent's other threads were starting
 * and ending threads at the fork.  No labyrinth code here.
 *   gcc -O1 -g -fsanitize=address -pthread asan_fork_threads.c -o t && ./t 300
 * Seen on 2026-12-04: 5 of 300 children killed by their 5 s alarm under
 * ASan; 0 of 300 built without it.  Why api_fork's child starts no thread
 * under a sanitizer (docs/testing.md, "Sanitizers and fork").
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/wait.h>
#include <signal.h>
static volatile int stop;
static void *nothing(void *a) { return a; }
static void *churn(void *a) {
    while (!stop) { pthread_t t; if (pthread_create(&t, NULL, nothing, NULL) == 0) pthread_join(t, NULL); }
    return a;
}
static void *mallocer(void *a) {
    while (!stop) { void *p = malloc(4096); free(p); }
    return a;
}
int main(int argc, char **argv) {
    int forks = argc > 1 ? atoi(argv[1]) : 200;
    pthread_t c[3];
    pthread_create(&c[0], NULL, churn, NULL);
    pthread_create(&c[1], NULL, churn, NULL);
    pthread_create(&c[2], NULL, mallocer, NULL);
    int hung = 0;
    for (int i = 0; i < forks; i++) {
        pid_t p = fork();
        if (p == 0) {
            alarm(5);
            pthread_t t;
            pthread_create(&t, NULL, nothing, NULL);
            pthread_join(t, NULL);
            _exit(0);
        }
        int st; waitpid(p, &st, 0);
        if (WIFSIGNALED(st)) { hung++; printf("fork %d: child killed by signal %d\n", i, WTERMSIG(st)); }
    }
    stop = 1;
    for (int i = 0; i < 3; i++) pthread_join(c[i], NULL);
    printf("%d forks, %d children hung\n", forks, hung);
    return hung != 0;
}
