/*
 * workers.c - pinned worker threads that run one job at a time.
 */
#define _GNU_SOURCE
#include "workers.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

struct lbb_worker {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    void (*fn)(void *arg);
    void *arg;
    unsigned posted, done;
    bool quit;
    int cpu;
};

static struct lbb_worker lbb_w[LBB_MAX_WORKERS];
static unsigned lbb_nw;

/* This thread's peer contexts. */
static __thread struct {
    struct lbb_peer *peer;
    void *ctx;
} lbb_tl[LBB_MAX_PEERS];
static __thread unsigned lbb_ntl;

void *lbb_tctx(struct lbb_peer *p)
{
    for (unsigned i = 0; i < lbb_ntl; i++)
        if (lbb_tl[i].peer == p)
            return lbb_tl[i].ctx;
    void *ctx = p->thread_init(p);
    if (ctx && lbb_ntl < LBB_MAX_PEERS) {
        lbb_tl[lbb_ntl].peer = p;
        lbb_tl[lbb_ntl].ctx = ctx;
        lbb_ntl++;
    }
    return ctx;
}

static void lbb_tl_fini(void)
{
    while (lbb_ntl) {
        lbb_ntl--;
        struct lbb_peer *p = lbb_tl[lbb_ntl].peer;
        if (p->thread_fini)
            p->thread_fini(p, lbb_tl[lbb_ntl].ctx);
    }
}

struct lbb_fresh {
    void (*fn)(void *arg);
    void *arg;
};

static void *lbb_fresh_main(void *arg)
{
    struct lbb_fresh *f = arg;
    f->fn(f->arg);
    lbb_tl_fini();
    return NULL;
}

int lbb_run_fresh(void (*fn)(void *arg), void *arg)
{
    struct lbb_fresh f = {fn, arg};
    pthread_t t;
    int rc = pthread_create(&t, NULL, lbb_fresh_main, &f);
    if (rc)
        return rc;
    pthread_join(t, NULL);
    return 0;
}

static void *lbb_worker_main(void *arg)
{
    struct lbb_worker *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (w->posted == w->done && !w->quit)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->posted == w->done && w->quit)
            break;
        void (*fn)(void *) = w->fn;
        void *a = w->arg;
        pthread_mutex_unlock(&w->mu);
        fn(a);
        pthread_mutex_lock(&w->mu);
        w->done++;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    lbb_tl_fini();
    return NULL;
}

int lbb_workers_start(unsigned n, bool pin)
{
    cpu_set_t allowed;
    int cpus[LBB_MAX_WORKERS], ncpu = 0;
    CPU_ZERO(&allowed);
    if (sched_getaffinity(0, sizeof allowed, &allowed) == 0)
        for (int c = 0; c < CPU_SETSIZE && ncpu < (int)LBB_MAX_WORKERS; c++)
            if (CPU_ISSET(c, &allowed))
                cpus[ncpu++] = c;
    if (n > LBB_MAX_WORKERS)
        n = LBB_MAX_WORKERS;
    for (unsigned i = 0; i < n; i++) {
        struct lbb_worker *w = &lbb_w[i];
        memset(w, 0, sizeof *w);
        pthread_mutex_init(&w->mu, NULL);
        pthread_cond_init(&w->cv, NULL);
        w->cpu = -1;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        if (pin && ncpu > 0) {
            cpu_set_t one;
            CPU_ZERO(&one);
            w->cpu = cpus[i % (unsigned)ncpu];
            CPU_SET(w->cpu, &one);
            pthread_attr_setaffinity_np(&attr, sizeof one, &one);
        }
        int rc = pthread_create(&w->thread, &attr, lbb_worker_main, w);
        pthread_attr_destroy(&attr);
        if (rc) {
            fprintf(stderr, "labyrinth-bench: cannot start worker %u: %s\n", i, strerror(rc));
            return -1;
        }
        lbb_nw = i + 1;
    }
    return 0;
}

int lbb_worker_cpu(unsigned w) { return w < lbb_nw ? lbb_w[w].cpu : -1; }

void lbb_worker_post(unsigned i, void (*fn)(void *arg), void *arg)
{
    struct lbb_worker *w = &lbb_w[i];
    pthread_mutex_lock(&w->mu);
    while (w->posted != w->done)
        pthread_cond_wait(&w->cv, &w->mu);
    w->fn = fn;
    w->arg = arg;
    w->posted++;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

void lbb_worker_wait(unsigned i)
{
    struct lbb_worker *w = &lbb_w[i];
    pthread_mutex_lock(&w->mu);
    while (w->posted != w->done)
        pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
}

void lbb_workers_stop(void)
{
    for (unsigned i = 0; i < lbb_nw; i++) {
        struct lbb_worker *w = &lbb_w[i];
        pthread_mutex_lock(&w->mu);
        w->quit = true;
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->thread, NULL);
    }
    lbb_nw = 0;
}
