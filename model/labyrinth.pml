/*
 * labyrinth.pml - the lock-free core of labyrinth's order-0 path, in
 * Promela, for exhaustive checking with spin (docs/reliability.md, "The
 * model": every step below is mapped to its C code there).
 *
 * Modelled: the depot (Treiber stacks of full and empty magazines with a
 * tagged head), the magazines of three levels (capacity one page), the
 * reserve (a Treiber stack of pages linked through their descriptors), the
 * ownership of order-0 pages (the owner frees with plain stores, other
 * contexts queue {page, generation} batches onto the owner's inbox, the
 * owner validates them when it takes its inbox), the retry cap of every pop.
 *
 * Contexts: thread T0 (level 0), thread T1 (level 2, another thread cache)
 * and a signal handler H that interrupts T0 at any point (T0 makes no step
 * while H runs) and uses T0's level 1, as lb_enter() gives it.
 *
 * Checked (spin -a; pan -a? no: safety, exhaustive):
 *   - no page handed out twice   assert at every hand-out (live[p] == 0)
 *   - no page lost                at the end every page is in exactly one
 *                                 place: held, a magazine, the reserve
 *   - double frees always found   every free of an allocation already freed
 *                                 is refused at once or reported by the
 *                                 owner's validation (dfree == detected)
 *   - a good free is never refused
 *   - no deadlock                 pan's invalid end states
 *   - bounded ATOMIC path         every pop gives up after CAP failed CAS;
 *                                 an ATOMIC allocation makes at most BOUND
 *                                 shared-memory steps
 *
 * Not modelled (see docs/reliability.md): the buddy and its try-lock, the
 * pending stack, spare magazines, magazines of more than one page, the
 * recent-free table, thread-cache release and re-claim (where the
 * generation counter restarted before the fix of KB2), the warden, memory ordering
 * weaker than sequential consistency.
 *
 * -DFALLBACK gives a smaller pool, so a remote free can find no magazine
 * for its batch; it then frees the page through the page's own queue link
 * (remote.c: F1 CAS the descriptor ALLOC -> QUEUED, F2 claim the link, F3
 * push the page on its owner's queue; the owner takes its queue before its
 * inbox: O1 take all, O2 clear the link, O3 read the descriptor: ours,
 * another level's (forward it), or a stale entry).  Until the queue
 * replaced it, that path was a CAS ALLOC -> CACHED, and spin found its
 * race with the owner's own plain free in 14,845 states.  A double free
 * racing with the owner's own free is either found (O3 sees the stale
 * entry: detected) or, when the page was freed through the queue again
 * before the owner took it, absorbed without a report (absorbed): the
 * check is dfree == detected + absorbed, and absorbed only ever counts
 * such overwritten queue entries (the ghost qstale).
 */

#define NP   3      /* pages                                              */
#define NL   3      /* levels: 0 = T0, 1 = H (T0's level 1), 2 = T1       */
#ifdef FALLBACK
#define NM   4      /* magazines: too few for every batch                 */
#else
#define NM   6      /* magazines: slack for every batch                   */
#endif
#define NIL  255
#define CAP  2      /* LB_RETRY_CAP (1024), scaled down                   */
#ifndef BOUND
#define BOUND 9     /* steps of one ATOMIC allocation: tight (8 fails)  */
#endif
#define NOOWNER 254

#define S_CACHED   1
#define S_RESERVED 2
#define S_ALLOC    3
#define S_QUEUED   4

#define QLAST  100  /* qlink: on a queue, its last page                   */
#define QCLAIM 101  /* qlink: claimed by its pusher                      */

/* Descriptors: one word per page (state, owner, generation). */
byte dstate[NP], downer[NP], dgen[NP];
byte rlink[NP];                 /* reserve link, in the descriptor        */
byte qlink[NP];                 /* queue link (region's qlink[]): 0 none,
                                   else next page + 1, QLAST, QCLAIM      */
byte qhead[NL];                 /* each level's queue: page + 1, 0 empty  */
byte qstale[NP];                /* ghost: QUEUED states the owner's plain
                                   store overwrote while the page's entry
                                   was on a queue (double frees owed)     */
byte absorbed;                  /* ghost: such double frees absorbed      */

/* Ghosts. */
byte live[NP];                  /* allocation id holding the page, 0 none */
byte aid;                       /* last allocation id                     */
byte dfree, detected;           /* double frees made, and found           */
byte maxsteps;

/* Magazines (one slot): a page, or a queued free {page, generation}. */
byte mpage[NM], mgen[NM], mnext[NM];
byte loaded[NL];
/* Stack heads {tag, top}: full and empty magazines, the reserve, inboxes. */
byte f_top, f_tag, e_top, e_tag, r_top, r_tag;
byte in_top[NL], in_tag[NL];
byte lgen[NL];                  /* per-level allocation counter (generation) */

bit in_handler, t0_done, t1_done, h_done;
byte box = NIL, box_aid;        /* T0 hands a page to T1 (the seed's hand-off) */

/* One CAS of a stack head: compares tag and top together, as the 64-bit
 * {tag, index + 1} word; a failure reloads the expected value. */
inline cas_head(top, tag, otop, otag, ntop, ok)
{
    atomic {
        if
        :: (top == otop && tag == otag) -> top = ntop; tag = (tag + 1) % 16; ok = 1
        :: else -> otop = top; otag = tag; ok = 0
        fi
    }
}

/* lb_magstack_pop: capped at CAP failed CAS. */
inline mag_pop(top, tag, m)
{
    m = NIL; tries = 0;
    atomic { otop = top; otag = tag };
    do
    :: otop == NIL -> break
    :: otop != NIL && tries >= CAP -> break
    :: otop != NIL && tries < CAP ->
        cand = otop;
        nxt = mnext[cand];          /* may be stale: the tag catches it */
        steps++;
        cas_head(top, tag, otop, otag, nxt, ok);
        if
        :: ok -> m = cand; break
        :: else -> tries++
        fi
    od
}

/* The same pop without the cap: the default model assumes a remote free
 * always gets its batch magazine (see FALLBACK). */
inline mag_pop_nocap(top, tag, m)
{
    m = NIL;
    atomic { otop = top; otag = tag };
    do
    :: otop == NIL -> break
    :: otop != NIL ->
        cand = otop;
        nxt = mnext[cand];
        steps++;
        cas_head(top, tag, otop, otag, nxt, ok);
        if
        :: ok -> m = cand; break
        :: else -> skip
        fi
    od
}

/* lb_magstack_push: not capped (lock-free; must not lose the magazine). */
inline mag_push(top, tag, m)
{
    atomic { otop = top; otag = tag };
    do
    :: mnext[m] = otop;
       steps++;
       cas_head(top, tag, otop, otag, m, ok);
       if
       :: ok -> break
       :: else -> skip
       fi
    od
}

/* lb_pstack_pop on the reserve. */
inline res_pop(p)
{
    p = NIL; tries = 0;
    atomic { otop = r_top; otag = r_tag };
    do
    :: otop == NIL -> break
    :: otop != NIL && tries >= CAP -> break
    :: otop != NIL && tries < CAP ->
        cand = otop;
        nxt = rlink[cand];
        steps++;
        cas_head(r_top, r_tag, otop, otag, nxt, ok);
        if
        :: ok -> p = cand; break
        :: else -> tries++
        fi
    od
}

/* lb_cache_reserve_put / lb_pstack_push_chain (one page). */
inline res_push(p)
{
    atomic { otop = r_top; otag = r_tag };
    do
    :: dstate[p] = S_RESERVED; rlink[p] = otop;
       steps++;
       cas_head(r_top, r_tag, otop, otag, p, ok);
       if
       :: ok -> break
       :: else -> skip
       fi
    od
}

/* A page this context owns (CACHED) goes to its level: the loaded
 * magazine, else (full) exchange it at the depot, else the reserve
 * (lb_zone_free0_slow; the buddy and pending stack stand behind the
 * reserve in the C code). */
inline put_own(c, p)
{
    m = loaded[c];
    if
    :: mpage[m] == NIL -> mpage[m] = p
    :: else ->
        mag_pop(e_top, e_tag, m2);
        if
        :: m2 != NIL -> mag_push(f_top, f_tag, m); loaded[c] = m2; mpage[m2] = p
        :: else -> res_push(p)
        fi
    fi
}

/* F2 + F3 (remote.c:lb_queue_claim_push, lb_queue_push): claim page
 * qp's link, and if that won, push it on level qo's queue. */
inline claim_push(qp, qo)
{
    atomic {
        if
        :: qlink[qp] == 0 -> qlink[qp] = QCLAIM; ok = 1
        :: else -> ok = 0
        fi
    };
    if
    :: ok ->
        otop = qhead[qo];
        do
        :: qlink[qp] = (otop == 0 -> QLAST : otop);
           atomic {
               if
               :: qhead[qo] == otop -> qhead[qo] = qp + 1; ok = 1
               :: else -> otop = qhead[qo]; ok = 0
               fi
           };
           if
           :: ok -> break
           :: else -> skip
           fi
        od
    :: else -> skip
    fi
}

/* O1..O3 (remote.c:lb_level_take_queue): level c takes its whole queue. */
inline take_queue(c)
{
    atomic { q2 = qhead[c]; qhead[c] = 0 };
    do
    :: q2 == 0 -> break
    :: else ->
        q = q2 - 1;
        nxt = qlink[q];
        assert(nxt != 0 && nxt != QCLAIM);
        q2 = (nxt == QLAST -> 0 : nxt);
        qlink[q] = 0;
        if
        :: dstate[q] == S_QUEUED && downer[q] == c ->
            atomic { absorbed = absorbed + qstale[q];
#ifdef PROBE_ABSORB
                     assert(qstale[q] == 0);  /* reachability probe */
#endif
                     qstale[q] = 0; dstate[q] = S_CACHED };
            put_own(c, q)
        :: dstate[q] == S_QUEUED && downer[q] != c ->
            wo = downer[q];
#ifdef PROBE_FORWARD
            assert(0);  /* reachability probe */
#endif
            claim_push(q, wo)
        :: else ->
            /* stale: only an overwritten QUEUED leaves one */
            atomic { assert(qstale[q] > 0); detected = detected + qstale[q]; qstale[q] = 0;
#ifdef PROBE_DETECT
                     assert(0);  /* reachability probe */
#endif
            }
        fi
    od
}

/* The owner's plain store of CACHED over a page it owns; if a freer's F1
 * made it QUEUED in between, that free is lost (a double free owed). */
inline owner_store_cached(q)
{
    atomic {
        if
        :: dstate[q] == S_QUEUED -> qstale[q]++;
#ifdef PROBE_STALE
            assert(0);  /* reachability probe (model/check.sh probes) */
#endif
        :: else -> skip
        fi;
        dstate[q] = S_CACHED
    }
}

/* lb_level_take_inbox_bounded + lb_level_validate: at most two batches,
 * after the queue (level.c:lb_level_refill_pop). */
inline take_inbox(c)
{
#ifdef FALLBACK
    take_queue(c);
#endif
    k = 0;
    do
    :: k < 2 && in_top[c] != NIL ->
        mag_pop(in_top[c], in_tag[c], b);
        if
        :: b == NIL -> break
        :: else ->
            q = mpage[b];
            steps++;
            if
            :: dstate[q] == S_ALLOC && downer[q] == c && dgen[q] == mgen[b] ->
                owner_store_cached(q);     /* plain store: we own it */
                mpage[b] = NIL;
                put_own(c, q)
            :: else ->
                detected++;                /* late: a double free */
                mpage[b] = NIL
            fi;
            mag_push(e_top, e_tag, b);
            k++
        fi
    :: else -> break
    od
}

/* An ATOMIC order-0 allocation at level c (lb_zone_alloc_loop with a
 * level, lb_level_refill_pop, lb_zone_try_block): magazine, inbox, depot,
 * reserve; NULL when all are empty.  p = page or NIL, a = allocation id. */
inline alloc_atomic(c, p, a)
{
    steps = 0; p = NIL; a = 0;
    m = loaded[c];
    if
    :: mpage[m] == NIL -> take_inbox(c)
    :: else -> skip
    fi;
    m = loaded[c];
    if
    :: mpage[m] != NIL -> p = mpage[m]; mpage[m] = NIL
    :: else ->
        mag_pop(f_top, f_tag, m2);
        if
        :: m2 != NIL ->
            mag_push(e_top, e_tag, m); loaded[c] = m2;
            p = mpage[m2]; mpage[m2] = NIL
        :: else -> skip
        fi
    fi;
    if
    :: p != NIL ->
        /* from our magazines: owned by this level, next generation */
        atomic {
            lgen[c]++;
            dstate[p] = S_ALLOC; downer[p] = c; dgen[p] = lgen[c];
            assert(live[p] == 0);          /* never handed out twice */
            aid++; live[p] = aid; a = aid
        }
    :: else ->
        res_pop(p);
        if
        :: p != NIL ->
            atomic {
                dstate[p] = S_ALLOC; downer[p] = NOOWNER; dgen[p] = 0;
                assert(live[p] == 0);
                aid++; live[p] = aid; a = aid
            }
        :: else -> skip                     /* NULL: every supply empty */
        fi
    fi;
    assert(steps <= BOUND);
    if :: steps > maxsteps -> maxsteps = steps :: else -> skip fi
}

/* The free's commit point: a free of allocation a of page p. */
inline commit(p, a)
{
    if
    :: live[p] == a -> live[p] = 0
    :: live[p] != a && live[p] != 0 ->
        /* A late second free of an older allocation reached the page's
         * new allocation: frees go by address, so no allocator can tell
         * it from the new holder's own free.  It takes effect; the new
         * holder's free will be the double free. */
        live[p] = 0
    :: else -> dfree++                      /* that allocation was freed already */
    fi
}

/* labyrinth_free_pages of page p (allocation a) from level c. */
inline free_page(c, p, a)
{
    atomic { ws = dstate[p]; wo = downer[p]; wg = dgen[p] };   /* one load of the word */
    if
    :: ws == S_ALLOC && wo == c ->
        /* our own page: plain store (free.c fast path) */
        atomic { commit(p, a); owner_store_cached(p) };
        put_own(c, p)
    :: ws == S_ALLOC && wo != c && wo != NOOWNER ->
        /* another level's page: a batch for its inbox (lb_level_remote_free) */
#ifdef FALLBACK
        mag_pop(e_top, e_tag, b);
#else
        mag_pop_nocap(e_top, e_tag, b);
#endif
#ifdef FALLBACK
        if
        :: b != NIL ->
#else
        assert(b != NIL);                   /* the pool keeps slack for batches */
#endif
            atomic { mpage[b] = p; mgen[b] = wg; commit(p, a) };
            mag_push(in_top[wo], in_tag[wo], b)
#ifdef FALLBACK
        :: else ->
            /* no magazine: F1, the queue's CAS (lb_zone_free_remote) */
            atomic {
                if
                :: dstate[p] == ws && downer[p] == wo && dgen[p] == wg ->
                    dstate[p] = S_QUEUED; commit(p, a); ok = 1
                :: else -> ok = 0
                fi
            };
            if
            :: ok -> claim_push(p, wo)
            :: else -> atomic { assert(live[p] != a); dfree++; detected++ }
            fi
        fi
#endif
    :: ws == S_ALLOC && wo == NOOWNER ->
        /* an unowned page (from the reserve): one CAS decides */
        atomic {
            if
            :: dstate[p] == S_ALLOC && downer[p] == NOOWNER -> dstate[p] = S_CACHED; commit(p, a); ok = 1
            :: else -> ok = 0
            fi
        };
        if
        :: ok -> put_own(c, p)
        :: else -> atomic { assert(live[p] != a); dfree++; detected++ }
        fi
    :: else ->
        /* not allocated: refused at once (-EALREADY) */
        atomic { assert(live[p] != a); dfree++; detected++ }
    fi
}

proctype T0() provided (!in_handler)
{
    byte otop, otag, nxt, cand, tries, m, m2, b, q, q2, k, p, a, steps, ws, wo, wg;
    bit ok;
    alloc_atomic(0, p, a);
    if
    :: p != NIL -> atomic { box_aid = a; box = p }   /* hand it to T1 */
    :: else -> skip
    fi;
    alloc_atomic(0, p, a);
    if
    :: p != NIL -> free_page(0, p, a)
    :: else -> skip
    fi;
    t0_done = 1
}

proctype T1()
{
    byte otop, otag, nxt, cand, tries, m, m2, b, q, q2, k, p, a, steps, ws, wo, wg;
    bit ok;
    (box != NIL || t0_done);
    if
    :: box != NIL ->
        p = box; a = box_aid;
        free_page(2, p, a);
        if
        :: free_page(2, p, a)           /* the same thread frees it again */
        :: skip
        fi
    :: else -> skip
    fi;
    alloc_atomic(2, p, a);
    if
    :: p != NIL -> free_page(2, p, a)
    :: else -> skip
    fi;
    t1_done = 1
}

/* The handler: interrupts T0 at any point, runs to completion at level 1. */
proctype H()
{
    byte otop, otag, nxt, cand, tries, m, m2, b, q, q2, k, p, a, steps, ws, wo, wg;
    bit ok;
    if
    :: atomic { !t0_done -> in_handler = 1 };
        alloc_atomic(1, p, a);
        if
        :: p != NIL -> free_page(1, p, a)
        :: else -> skip
        fi;
        if
        :: box != NIL -> p = box; a = box_aid; free_page(1, p, a)   /* frees T0's page too */
        :: skip
        fi;
        in_handler = 0
    :: t0_done -> skip
    fi;
    h_done = 1
}

/* After everyone: each level takes its inbox (as at thread exit), then
 * every page is in exactly one place and every double free was found. */
proctype Final()
{
    byte otop, otag, nxt, cand, tries, m, m2, b, q, q2, k, p, a, steps, ws, wo, wg, c, n;
    bit ok;
    (t0_done && t1_done && h_done);
    /* Twice round: a queue may forward a page to a level already done. */
    c = 0;
    do
    :: c < 2 * NL -> take_inbox(c % NL); take_inbox(c % NL); c++
    :: else -> break
    od;
    byte seen[NP];
    /* magazines: loaded and depot (full and empty stacks) */
    m = 0;
    do
    :: m < NM ->
        if
        :: mpage[m] != NIL -> assert(dstate[mpage[m]] == S_CACHED); seen[mpage[m]]++
        :: else -> skip
        fi;
        m++
    :: else -> break
    od;
    q = r_top; n = 0;
    do
    :: q != NIL -> assert(dstate[q] == S_RESERVED); seen[q]++; q = rlink[q]; n++; assert(n <= NP)
    :: else -> break
    od;
    p = 0;
    do
    :: p < NP ->
        if
        :: live[p] != 0 -> assert(dstate[p] == S_ALLOC); seen[p]++
        :: else -> skip
        fi;
        assert(seen[p] == 1);               /* none lost, none in two places */
        p++
    :: else -> break
    od;
    /* every double free found, but those absorbed by the queue */
    assert(dfree == detected + absorbed);
#ifndef FALLBACK
    assert(absorbed == 0);
#endif
    c = 0;
    do
    :: c < NL -> assert(in_top[c] == NIL); assert(qhead[c] == 0); c++
    :: else -> break
    od
}

init {
    atomic {
        byte i;
        i = 0;
        do
        :: i < NM -> mpage[i] = NIL; mnext[i] = NIL; i++
        :: else -> break
        od;
        i = 0;
        do
        :: i < NL -> in_top[i] = NIL; i++
        :: else -> break
        od;
        /* magazines 0..2 loaded at levels 0..2; T1's holds page 2 */
        loaded[0] = 0; loaded[1] = 1; loaded[2] = 2;
        mpage[2] = 2; dstate[2] = S_CACHED;
        /* depot: magazine 3 full (page 1); the rest empty */
        mpage[3] = 1; dstate[1] = S_CACHED;
        mnext[3] = NIL; f_top = 3;
        e_top = NIL;
        i = 4;
        do
        :: i < NM -> mnext[i] = e_top; e_top = i; i++
        :: else -> break
        od;
        /* reserve: page 0 */
        dstate[0] = S_RESERVED; rlink[0] = NIL; r_top = 0;
        run T0(); run T1(); run H(); run Final()
    }
}
