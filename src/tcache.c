/*
 * tcache.c - layer 5: thread caches (tcache.h): TLS slots, the thread-exit
 * hook, thread ids, claim and release.
 */
#include "zone.h"
#include "remote.h"

LB_OS_CTX_DEFINE(struct lb_tls, lb_tls);

/* Which cache owns each TLS slot; guarded by lb_tls_mutex (normal context:
 * zone creation and destruction, thread exit). */
static struct {
    uint64_t         serial;
    struct lb_cache *cache;
} lb_tls_owner[LB_TLS_ZONES];

static lb_os_mutex lb_tls_mutex;

static lb_atomic_u32 lb_tls_mutex_ready;

/* The wrap flavour starts 40 ids below the wrap (cache.h, "The wrap flavour"). */
#ifdef LABYRINTH_WRAP
static lb_atomic_u32 lb_next_thread_id = { 0u - 40u };
#else
static lb_atomic_u32 lb_next_thread_id;
#endif

static void lb_tls_exit(void *arg);

static void lb_tls_mutex_once(void)
{
    /* Zone creation is normal context; the first creations may race. */
    static lb_atomic_u32 init_lock;
    if (lb_load_acq_u32(&lb_tls_mutex_ready))
        return;
    uint32_t z = 0;
    while (!lb_cas_acq_u32(&init_lock, &z, 1)) {
        z = 0;
        lb_os_yield();
    }
    if (!lb_load_rlx_u32(&lb_tls_mutex_ready)) {
        lb_os_mutex_init(&lb_tls_mutex, LB_MUTEX_TLS);
        lb_os_thread_exit_hook_init(lb_tls_exit);
        /* Release: the mutex is initialised before anyone sees ready. */
        lb_store_rel_u32(&lb_tls_mutex_ready, 1);
    }
    lb_store_rel_u32(&init_lock, 0);
}

bool lb_cache_tls_register(struct lb_cache *c)
{
    lb_tls_mutex_once();
    lb_os_mutex_lock(&lb_tls_mutex);
    c->tls_slot = LB_TLS_ZONES;
    for (unsigned i = 0; i < LB_TLS_ZONES; i++) {
        if (!lb_tls_owner[i].cache) {
            lb_tls_owner[i].cache = c;
            lb_tls_owner[i].serial = c->serial;
            c->tls_slot = i;
            break;
        }
    }
    lb_os_mutex_unlock(&lb_tls_mutex);
    return c->tls_slot < LB_TLS_ZONES;
}

void lb_cache_tls_unregister(struct lb_cache *c)
{
    if (c->tls_slot >= LB_TLS_ZONES)
        return;
    lb_os_mutex_lock(&lb_tls_mutex);
    lb_tls_owner[c->tls_slot].cache = NULL;
    lb_tls_owner[c->tls_slot].serial = 0;
    lb_os_mutex_unlock(&lb_tls_mutex);
    /* Once: destruction unregisters first (waiting out any exit hook
     * under way: it holds the mutex) and again at the end. */
    c->tls_slot = LB_TLS_ZONES;
}

void lb_cache_tls_fork_prepare(void)
{
    lb_tls_mutex_once();
    /* Held across fork(): no exit hook or slot change is half done in the
     * child's copy of lb_tls_owner. */
    lb_os_mutex_lock(&lb_tls_mutex);
}

void lb_cache_tls_fork_parent(void) { lb_os_mutex_unlock(&lb_tls_mutex); }

void lb_cache_tls_fork_child(void)
{
    /* The child's one thread (the one that forked; the mutex, taken in
     * prepare, is made anew rather than unlocked).  Every slot's cache is
     * the parent's, in memory the child does not have (MADV_DONTFORK). */
    for (unsigned i = 0; i < LB_TLS_ZONES; i++) {
        lb_tls_owner[i].cache = NULL;
        lb_tls_owner[i].serial = 0;
    }
    /* The forking thread's entries name those caches: detached as the
     * exit hook does, serial before pointer (a handler between finds no
     * cache; this thread is at depth 0, fork is not a labyrinth call). */
    lb_ctx()->cur_serial = 0;
    lb_signal_fence();
    for (unsigned i = 0; i < LB_TLS_ZONES; i++) {
        lb_ctx()->z[i].serial = 0;
        lb_signal_fence(); /* the serial is gone before the pointer */
        lb_ctx()->z[i].tc = NULL;
    }
    lb_os_mutex_init(&lb_tls_mutex, LB_MUTEX_TLS);
}

/* Runs in an exiting thread that used a zone: give its caches back. */
static void lb_tls_exit(void *arg)
{
    (void)arg;
    /* Entered: a signal arriving from here on runs at depth 1 or more, so
     * it cannot claim (claims run at depth 0) and cannot use level 0, the
     * level the thread's own code left (KB6). */
    uint32_t d = lb_enter();
    /* No claim after this hook: a labyrinth call from a pthread-key
     * destructor that runs after this one, or from a signal, takes the
     * shared path instead of claiming a cache no hook would release. */
    lb_ctx()->armed = LB_EXIT_HOOK_RAN;
    /* Detach every entry before releasing, as lb_cache_release_self does:
     * a handler then finds no cache of ours, never one being emptied or
     * already given to another thread. */
    struct lb_tls_zone held[LB_TLS_ZONES];
    lb_ctx()->cur_serial = 0;
    lb_signal_fence();
    for (unsigned i = 0; i < LB_TLS_ZONES; i++) {
        held[i] = lb_ctx()->z[i];
        lb_ctx()->z[i].serial = 0;
        lb_signal_fence(); /* the serial is gone before the pointer */
        lb_ctx()->z[i].tc = NULL;
    }
    lb_os_mutex_lock(&lb_tls_mutex);
    for (unsigned i = 0; i < LB_TLS_ZONES; i++)
        if (held[i].serial && lb_tls_owner[i].serial == held[i].serial && lb_tls_owner[i].cache)
            lb_cache_release(lb_tls_owner[i].cache, held[i].tc);
    lb_os_mutex_unlock(&lb_tls_mutex);
    lb_leave(d);
}

void lb_cache_release_ctx(struct lb_tls *t, uint32_t id)
{
    /* t is not in use: the context is gone (a kernel: the CPU is dead,
     * and the hotplug core's hand-shake with it ordered its last stores
     * before this call).  Detach first, as lb_tls_exit does, so that the
     * context, when it comes back, claims anew. */
    struct lb_tls_zone held[LB_TLS_ZONES];
    t->cur_serial = 0;
    t->cur_lvl = NULL;
    for (unsigned i = 0; i < LB_TLS_ZONES; i++) {
        held[i] = t->z[i];
        t->z[i].serial = 0;
        t->z[i].tc = NULL;
    }
    /* Acquire: pairs with the release store in lb_tls_mutex_once; not
     * ready means no zone was ever registered, so t holds no cache. */
    if (!lb_load_acq_u32(&lb_tls_mutex_ready))
        return;
    /* Under the mutex a zone cannot be destroyed (it unregisters first),
     * and its slot names it by serial. */
    lb_os_mutex_lock(&lb_tls_mutex);
    for (unsigned i = 0; i < LB_TLS_ZONES; i++) {
        struct lb_tcache *tc = held[i].tc;
        /* Relaxed: only t's context stores its id there (the acquire CAS
         * of its claim, which is ordered before us as t's other stores). */
        if (held[i].serial && lb_tls_owner[i].serial == held[i].serial && lb_tls_owner[i].cache && tc &&
            lb_load_rlx_u32(&tc->owner) == id)
            lb_cache_release(lb_tls_owner[i].cache, tc);
    }
    lb_os_mutex_unlock(&lb_tls_mutex);
}

struct lb_level *lb_tls_level_slow(const struct lb_cache *c, uint32_t d)
{
    if (d >= LB_LEVELS || c->tls_slot >= LB_TLS_ZONES)
        return NULL;
    const struct lb_tls_zone *e = &lb_ctx()->z[c->tls_slot];
    if (e->serial != c->serial)
        return NULL;
    if (d == 0) {
        /* Entered at depth 0: no labyrinth call of this thread is under
         * way, so the current-zone entry can change. */
        lb_ctx()->cur_serial = 0;
        lb_signal_fence();
        lb_ctx()->cur_lvl = e->tc->lvl;
        lb_signal_fence();
        lb_ctx()->cur_serial = c->tls_key;
    }
    return &e->tc->lvl[d];
}

void lb_cache_thread_id_test_set(uint32_t last)
{
    lb_store_rlx_u32(&lb_next_thread_id, last); /* tests only: no thread is taking an id */
}

uint32_t lb_cache_thread_id(void)
{
    /* A kernel names contexts by CPU (any context, no state). */
    uint32_t id = lb_os_ctx_id();
    if (id)
        return id;
    id = lb_ctx()->thread_id;
    if (LB_UNLIKELY(!id) && lb_ctx()->id_word) {
        /* A handler that interrupted the assignment below between its two
         * stores: the word names the id the thread chose (all 32 bits of
         * it, issue 11.5), which it adopts, so that the thread's word and
         * id agree afterwards (the review of 11.5: keeping its own id here
         * left the thread's word naming the handler's id, and every record
         * of the seed macro's fast path with it). */
        id = lb_id_of_word(lb_ctx()->id_word);
        lb_ctx()->thread_id = id;
        return id;
    }
    if (LB_UNLIKELY(!id)) {
        /* Relaxed: ids only need to be unique.  A handler interrupting this
         * before the word's store takes its own id and the thread then
         * stores its own pair; both ids are unique, which is all a
         * tracking record needs. */
        /* After 2^32 ids the counter wraps: 0 means "none yet" and
         * LB_OWNER_WARDEN marks a cache the warden holds, so neither may
         * name a thread (finding 11.7).  Uniqueness is then lost for ids
         * 2^32 apart, which a tracking record can live with; a cache's
         * owner is compared only while that thread lives. */
        do
            id = lb_add_rlx_u32(&lb_next_thread_id, 1) + 1;
        while (LB_UNLIKELY(id == 0 || id == LB_OWNER_WARDEN));
        /* The word first: a handler that finds the id finds the word
         * (same thread, program order; the fence keeps the compiler's). */
        lb_ctx()->id_word = lb_id_word(id);
        lb_signal_fence();
        lb_ctx()->thread_id = id;
    }
    return id;
}

struct lb_tcache *lb_cache_claim(struct lb_cache *c)
{
    if (c->tls_slot >= LB_TLS_ZONES || lb_ctx()->armed == LB_EXIT_HOOK_RAN)
        return NULL;
    uint32_t me = lb_cache_thread_id();
    for (uint32_t i = 0; i < c->ntcaches; i++) {
        struct lb_tcache *tc = &c->tcaches[i];
        uint32_t zero = 0;
        if (lb_load_rlx_u32(&tc->owner))
            continue;
        /* Acquire: pairs with the release in lb_cache_release, so the
         * magazines the last owner left are seen as it left them. */
        if (!lb_cas_acq_u32(&tc->owner, &zero, me))
            continue;
        lb_add_rlx_u32(&c->threads, 1);
        struct lb_tls_zone *e = &lb_ctx()->z[c->tls_slot];
        e->tc = tc;
        lb_signal_fence(); /* tc is in place before the serial says so */
        e->serial = c->serial;
        /* The current-zone entry changes in three steps, each ordered
         * against a handler by a compiler fence: no zone, then the level,
         * then the zone.  A handler in between never pairs the previous
         * zone's serial with this cache's levels (KB10).  Claims run at
         * depth 0: see lb_tls_level_cur. */
        lb_ctx()->cur_serial = 0;
        lb_signal_fence();
        lb_ctx()->cur_lvl = tc->lvl;
        lb_signal_fence();
        lb_ctx()->cur_serial = c->tls_key;
        if (!lb_ctx()->armed) {
            lb_ctx()->armed = 1;
            lb_os_thread_exit_arm(lb_ctx());
        }
        return tc;
    }
    return NULL;
}

void lb_cache_release(struct lb_cache *c, struct lb_tcache *tc)
{
    LB_DEBUG_CHECK(lb_load_rlx_u32(&tc->owner) != 0); /* the caller holds tc */
    /* Each level's guard is held from here to the end (remote.h): the
     * warden, which may have looked before we let go, must not take
     * outboxes that we flush and retire. */
    for (unsigned d = 0; d < LB_LEVELS; d++) {
        lb_out_begin_wait(tc, d);
        lb_level_flush_outboxes(c, &tc->lvl[d]);
    }
    /* Some of those batches may have gone to caches no thread holds: give
     * their pages back now rather than at the warden's next tick. */
    lb_cache_reap(c);
    struct lb_mag *chains[LB_LEVELS];
    uint64_t dummy;
    for (unsigned d = 0; d < LB_LEVELS; d++) {
        lb_level_take_queue(c, &tc->lvl[d], &tc->lvl[d]); /* emptied below */
        chains[d] = lb_level_take_inbox(c, &tc->lvl[d], &dummy);
    }
    lb_spin_lock(&c->buddy->lock);
    for (unsigned d = 0; d < LB_LEVELS; d++) {
        lb_chain_to_buddy(c, chains[d]);
        lb_level_empty(c, &tc->lvl[d]);
        lb_level_retire(c, &tc->lvl[d]);
    }
    lb_spin_unlock(&c->buddy->lock);
    lb_add_rlx_u32(&c->threads, (uint32_t)-1);
    /* Release: the emptied magazines and zeroed counters are visible to
     * the next owner (pairs with the acquire CAS in lb_cache_claim); and
     * pages freed to us since the take above mark the tcache an orphan
     * (remote.c, "orphans"). */
    for (unsigned d = 0; d < LB_LEVELS; d++)
        lb_out_end(tc, d);
    lb_tcache_unown(c, tc);
}

void lb_cache_release_self(struct lb_cache *c)
{
    if (c->tls_slot >= LB_TLS_ZONES)
        return;
    struct lb_tls_zone *e = &lb_ctx()->z[c->tls_slot];
    if (e->serial != c->serial)
        return;
    struct lb_tcache *tc = e->tc;
    e->serial = 0;
    if (lb_ctx()->cur_serial == c->tls_key)
        lb_ctx()->cur_serial = 0;
    lb_signal_fence();
    e->tc = NULL;
    lb_cache_release(c, tc);
}
