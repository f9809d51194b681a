/*
 * outbox_steal.pml - the warden steals an idle freer's partial outboxes
 * (src/remote.h, "Stealing idle outboxes"; src/remote.c lb_out_begin_slow,
 * lb_cache_steal_idle; src/free.c, src/tcache.c lb_cache_release), checked
 * exhaustively by spin under x86-TSO store buffering (model/check.sh).
 *
 * The problem: a freer of other threads' pages appends {page} entries to
 * an outbox magazine of its level and pushes the magazine onto the owner's
 * inbox only when full; a freer that goes idle strands its partial batch.
 * The fix: the warden takes an idle level's partial outboxes, guarded by an
 * asymmetric Dekker pair per level (busy, steal), whose only hardware
 * fence is the warden's membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED).
 *
 * Steps (brief's F/W names = the C comment's B/S names = labels here):
 *   freer (the level's own context)       warden (normal context)
 *   F1 = B1  busy = 1, relaxed   f1:      W1 = S1  steal = 1, relaxed  w1:
 *   F2 = B2  compiler fence      (none)   W2 = S2  membarrier          w2:
 *   F3 = B3  s = steal, acquire  f3:      W3 = S3,S4 b = busy, acquire;
 *   F4 = B4  s == 1: CAS 1 -> 0  f4:               b == 1: CAS 1->0, skip  w3:
 *   F5 = B5  s == 2: busy = 0,   f5:      W4 = S5  CAS steal 1 -> 2    w4:
 *            batch of one                 W5 = S6  push the outbox,    w5:
 *   F6 = B6  use the outbox,     f6:               out_mag = NULL
 *            busy = 0, release   f6end:   W6 = S6  steal = 0, release  w6:
 *   exit     lb_cache_release: begin_wait (F1..F5 until not 2), flush the
 *            outbox itself, busy = 0                               fexit:
 *
 * Memory model.  The freer runs on x86-TSO: each of its plain/release
 * stores (busy, out_mag, the magazine's count and slots) goes into a FIFO
 * store buffer (sb_*) and reaches memory later, one entry at a time, at any
 * point (proctype Drain).  The freer's loads forward from its own buffer
 * (ld).  A locked instruction (the CAS of F4, the CAS that pushes a
 * magazine onto the inbox) drains the buffer first.  F2 is only a compiler
 * fence: nothing (program order is kept, the buffer is not drained).  W2
 * drains the freer's buffer atomically at the point where the warden calls
 * it (the IPI's full fence runs on the freer somewhere during the call;
 * since the warden makes no other step during the call, "at one point" is
 * the same).  -DPROBE_NO_MEMBARRIER makes W2 do nothing.  The warden itself
 * is sequentially consistent: its W1 is followed by a full fence (before
 * membarrier), its W4 is a locked CAS, its W5 stores are ordered before its
 * W6 release in TSO, and the freer reads the warden's outbox writes only
 * after seeing steal 0 (W6) or succeeding at F4, so a warden store buffer
 * would add no behaviour the freer could observe.  -DSC makes the freer
 * sequentially consistent too (then even PROBE_NO_MEMBARRIER passes: the
 * bug the membarrier prevents is a store-buffer one).
 *
 * Modelled: one level (one freer context) freeing NF pages, all to one
 * owner, through one outbox slot with magazines of CAP entries (NF = 4,
 * CAP = 2: full pushes, partial steals and batches of one all happen);
 * fresh magazines (never reused, so a late write into a pushed magazine is
 * a lost page, not a hidden one); the owner's inbox as a set of pushed
 * magazines, which the owner takes whole and consumes at any time; NW
 * warden runs at any time during the frees, each with the racy pre-check
 * "the outbox is non-empty" (the idle heuristic, remote_frees unchanged, is
 * any choice: runs happen at every point); then the freer either goes idle
 * (blocked in its event loop: it makes no step, its buffer drains) or
 * exits (lb_cache_release: begin_wait, flush, busy = 0).
 *
 * Abstracted away: page generations and the owner's validation (every
 * entry here is good; labyrinth.pml checks validation), the lock-free
 * stack of the inbox (one atomic push / take-all; labyrinth.pml checks the
 * stack), several outbox slots and destinations (the guard is per level,
 * so they share one busy/steal pair and the warden moves them all in W5),
 * the Bloom filters (freer-private; the warden clears them in W5 under the
 * same exclusion as out_mag), several levels (independent pairs; the one
 * membarrier for all levels the C makes only serves each pair), signal
 * nesting (a handler uses another level), the "no magazine" fallbacks,
 * memory ordering weaker than TSO (ARM: the membarrier IPI is a full fence
 * there too; the C11 orderings are argued in docs, not here).
 *
 * Checked:
 *   - mutual exclusion: the warden never reads or moves the outbox while
 *     the freer is between its first outbox access in F6 and its busy = 0
 *     (ghost in_f6, asserted at each W5 step), nor while one of the
 *     freer's outbox stores is still in its store buffer (the warden would
 *     read a stale outbox); and the freer never touches the outbox while
 *     the warden is in W5 (ghost in_w5);
 *   - no magazine pushed twice, none pushed while it is the outbox;
 *   - steal is 0 after every warden run (no request left behind);
 *   - conservation: when the freer and the warden are done (buffer
 *     drained), every page is in exactly one of: consumed by the owner, a
 *     magazine on the inbox, the outbox; a final warden run then finds the
 *     level idle and steals the outbox (the fix delivers), and after the
 *     owner's last take every page was consumed exactly once;
 *   - no invalid end state (deadlock).
 * Probes (model/check.sh; each must FAIL, showing the search gets there):
 *   -DPROBE_NO_MEMBARRIER  W2 does nothing: mutual exclusion fails (TSO)
 *   -DPROBE_STOLEN         assert(0) when W5 moves a non-empty partial batch
 *   -DPROBE_FREER_SEES_2   assert(0) when the freer takes F5 (s == 2)
 * Other options, run by hand (each documents a finding of this model's
 * first run, 2026-12-04, against the C as first written):
 * -DFAIL_IS_2 (any failure of the F4 CAS goes to F5, as if it had read 2:
 * passes; the C now uses the outbox when the failure reads 0, as the
 * default model does), -DCHECK_FAIL_SEES_2 (assert the first C's
 * LB_DEBUG_CHECK(s == 2) after that failure: it FAILS, the CAS can read 0;
 * the TSan flavour hit that check in stress_outbox before it was mended),
 * -DSNAPSHOT (the warden pushes the magazine its pre-check saw instead of
 * reloading out_mag in W5: FAILS, a duplicate; the C reloads), -DSETTLE (a
 * third user of the outbox outside the guard, labyrinth_zone_destroy's
 * lb_zone_settle while the warden still runs: FAILS, a magazine pushed
 * twice; the C's settle now turns steals off under the warden's mutex
 * first), -DSC.
 */

#ifndef NF
#define NF   4          /* pages freed (remote frees), 1..NF               */
#endif
#define CAP  2          /* magazine capacity                               */
#define NM   NF         /* magazines: each gets a page when it is created  */
#ifndef NW
#define NW   2          /* warden runs while the freer works               */
#endif
#define SB   8          /* store buffer entries: enough that it never fills */

/* The freer's memory words, by address (the store buffer holds addresses):
 * busy, out_mag (0 = NULL, else magazine 1..NM), each magazine's count and
 * slots. */
#define A_BUSY     0
#define A_OBMAG    1
#define A_CNT(m)   (1 + (m))                          /* m = 1..NM */
#define A_SLOT(m,i) (NM + 2 + ((m) - 1) * CAP + (i))
#define NA         (NM + 2 + NM * CAP)

byte mem[NA];
byte steal;                     /* written only by CAS (freer) and the warden */
byte sb_a[SB], sb_v[SB], sb_n;  /* the freer's store buffer, oldest first   */

bit  on_inbox[NM + 1];          /* pushed and not yet taken                 */
bit  taken[NM + 1];             /* taken by the owner                       */
byte n_inbox;                   /* magazines on the inbox                   */
byte consumed[NF + 1];          /* times each page reached the owner        */
byte next_mag = 1;              /* fresh magazines                          */

bit  in_f6, in_w5;              /* ghosts: inside the two critical sections */
bit  freer_done, warden_done, exited;
#ifdef SETTLE
bit  settle_done;
#define SETTLED settle_done
#else
#define SETTLED 1
#endif

/* ---- The freer's TSO store buffer ---- */
inline st(a, v)
{
#ifdef SC
    mem[a] = v
#else
    atomic { sb_n < SB -> sb_a[sb_n] = a; sb_v[sb_n] = v; sb_n++ }
#endif
}

/* The oldest entry reaches memory (atomic by the caller). */
inline drain_one()
{
    mem[sb_a[0]] = sb_v[0];
    j = 1;
    do
    :: j < sb_n -> sb_a[j - 1] = sb_a[j]; sb_v[j - 1] = sb_v[j]; j++
    :: else -> break
    od;
    j = 0;
    sb_n--;
    sb_a[sb_n] = 0; sb_v[sb_n] = 0      /* canonical state */
}

inline drain_all()
{
    do
    :: sb_n > 0 -> drain_one()
    :: else -> break
    od
}

/* A load by the freer: its newest buffered store to a, else memory. */
inline ld(a, v)
{
    atomic {
        v = mem[a];
        j = 0;
        do
        :: j < sb_n -> if :: sb_a[j] == a -> v = sb_v[j] :: else -> skip fi; j++
        :: else -> break
        od;
        j = 0
    }
}

/* Any store to the outbox words still buffered (a warden would read stale
 * memory). */
inline outbox_buffered(r)
{
    r = 0;
    j = 0;
    do
    :: j < sb_n -> if :: sb_a[j] != A_BUSY -> r = 1 :: else -> skip fi; j++
    :: else -> break
    od;
    j = 0
}

/* Push magazine m onto the owner's inbox: one atomic step (the stack's
 * CAS).  The freer's push is a locked instruction: it drains the freer's
 * buffer first (push); the warden's does not touch it (push_w). */
inline push_w(m)
{
    atomic {
        assert(m >= 1 && m <= NM && !on_inbox[m] && !taken[m]);  /* pushed once */
        on_inbox[m] = 1; n_inbox++
    }
}
inline push(m)
{
    atomic { drain_all(); push_w(m) }
}

/* The owner takes its whole inbox and consumes every entry. */
inline take_inbox()
{
    k = 1;
    do
    :: k <= NM ->
        if
        :: on_inbox[k] ->
            j = 0;
            do
            :: j < mem[A_CNT(k)] -> consumed[mem[A_SLOT(k, j)]]++; j++
            :: else -> break
            od;
            on_inbox[k] = 0; n_inbox--; taken[k] = 1
        :: else -> skip
        fi;
        k++
    :: else -> break
    od;
    j = 0; k = 0
}

/* Memory drains at any time. */
active proctype Drain()
{
    byte j;
end:
    do
    :: atomic { sb_n > 0 -> drain_one() }
    od
}

/* The owner: takes its inbox at any time. */
active proctype Owner()
{
    byte j, k;
end:
    do
    :: atomic { n_inbox > 0 -> take_inbox() }
    od
}

/* F1..F4 (lb_out_begin): s = 0 go on, s = 2 the warden is taking the
 * outbox (after F5's busy = 0). */
inline out_begin(s)
{
    st(A_BUSY, 1);                      /* F1 */
    /* F2: a compiler fence: nothing here */
    s = steal;                          /* F3, acquire */
    if                                  /* F4 */
    :: s == 1 ->
        atomic {
            drain_all();                        /* a locked instruction */
            if
            :: steal == 1 -> steal = 0; s = 0
            :: else ->
#ifdef CHECK_FAIL_SEES_2
                assert(steal == 2);             /* the C's LB_DEBUG_CHECK */
#endif
#ifdef FAIL_IS_2
                s = 2
#else
                s = steal
#endif
            fi
        }
    :: else -> skip
    fi;
    if                                  /* F5 */
    :: s == 2 ->
#ifdef PROBE_FREER_SEES_2
        assert(0);
#endif
        st(A_BUSY, 0)
    :: else -> skip
    fi
}

proctype Freer()
{
    byte e = 1, s, m, c, j;
    do
    :: e <= NF ->
        out_begin(s);
        if
        :: s == 2 ->
            /* F5: a batch of one, straight onto the owner's inbox */
            atomic {
                m = next_mag; next_mag++;
                mem[A_SLOT(m, 0)] = e; mem[A_CNT(m)] = 1;   /* a fresh magazine */
                push(m)
            }
        :: else ->
f6:         in_f6 = 1;
            assert(!in_w5);
            ld(A_OBMAG, m);
            if
            :: m == 0 -> m = next_mag; next_mag++; st(A_OBMAG, m)
            :: else -> skip
            fi;
            ld(A_CNT(m), c);
            assert(!in_w5);
            st(A_SLOT(m, c), e);
            st(A_CNT(m), c + 1);
            if
            :: c + 1 == CAP -> assert(!in_w5); push(m); st(A_OBMAG, 0)
            :: else -> skip
            fi;
            assert(!in_w5);
f6end:      atomic { in_f6 = 0; st(A_BUSY, 0) }     /* release: a store in TSO */
        fi;
        e++; s = 0; m = 0; c = 0
    :: else -> break
    od;
    if
    :: skip     /* idle: blocked in its event loop, alive, no more steps */
    :: /* exits: lb_cache_release, begin_wait, then its own flush */
fexit:  do
        :: out_begin(s);
           if
           :: s == 2 -> (steal != 2)       /* lb_os_yield until the warden is done */
           :: else -> break
           fi
        od;
        in_f6 = 1;
        assert(!in_w5);
        ld(A_OBMAG, m);
        if
        :: m != 0 -> push(m); st(A_OBMAG, 0)
        :: else -> skip
        fi;
        assert(!in_w5);
        atomic { in_f6 = 0; st(A_BUSY, 0) };
        exited = 1
    fi;
    freer_done = 1
}

/* W5's exclusion, asserted at each of its steps. */
inline w5_check()
{
    outbox_buffered(ob_stale);
    assert(!in_f6 && !ob_stale);        /* mutual exclusion (warden side) */
    ob_stale = 0
}

/* One warden run on the level (lb_cache_steal_idle).  pre: the magazine
 * the racy pre-check saw. */
inline warden_run(final)
{
    pre = mem[A_OBMAG];                 /* relaxed hint: batches waiting? */
    if
    :: pre != 0 ->
w1:     steal = 1;
w2:
#ifndef PROBE_NO_MEMBARRIER
        atomic { drain_all() };         /* every thread runs a full fence */
#endif
w3:     b = mem[A_BUSY];
        if
        :: b == 1 -> atomic { if :: steal == 1 -> steal = 0 :: else -> skip fi }
        :: else ->
w4:         atomic {
                if
                :: steal == 1 -> steal = 2; ok = 1; in_w5 = 1
                :: else -> ok = 0
                fi
            };
            if
            :: ok ->
w5:             w5_check();
#ifdef SNAPSHOT
                m = pre;
#else
                m = mem[A_OBMAG];
#endif
                if
                :: m != 0 ->
                    w5_check();
                    assert(m != mem[A_OBMAG] || (mem[A_CNT(m)] >= 1 && mem[A_CNT(m)] < CAP));
#ifdef PROBE_STOLEN
                    if
                    :: mem[A_CNT(m)] >= 1 && mem[A_CNT(m)] < CAP -> assert(0)
                    :: else -> skip
                    fi;
#endif
                    /* lb_level_flush_one: Bloom filter cleared, out_mag
                     * = NULL, then the push */
                    mem[A_OBMAG] = 0;
                    w5_check();
                    push_w(m);
                :: else -> skip
                fi;
w6:             atomic { in_w5 = 0; steal = 0 }
            :: else -> skip
            fi
        fi;
        assert(steal == 0)              /* no request left behind */
    :: else -> skip
    fi;
    b = 0; m = 0; pre = 0; ok = 0       /* dead from here: one state */
}

proctype Warden()
{
    byte b, m, pre, n, j, k;
    bit ob_stale;
    bit ok;
    n = 0;
    do
    :: n < NW -> warden_run(0); n++
    :: n < NW -> break                  /* fewer runs */
    :: else -> break
    od;
    warden_done = 1
}

/* When both are done: the buffer drains (the idle freer's stores reach
 * memory), each page is in exactly one place; the next warden run takes
 * the idle level's outbox; the owner's last take gets every page once. */
proctype Final()
{
    byte b, m, pre, j, k, p, where;
    bit ob_stale;
    bit ok;
    (freer_done && warden_done && SETTLED);
    atomic { drain_all() };
    assert(mem[A_BUSY] == 0 && steal == 0);
    atomic {                            /* the owner takes nothing meanwhile */
    p = 1;
    do
    :: p <= NF ->
        where = consumed[p];
        k = 1;
        do
        :: k <= NM ->
            if
            :: k < next_mag && (on_inbox[k] || k == mem[A_OBMAG]) ->
                j = 0;
                do
                :: j < mem[A_CNT(k)] -> if :: mem[A_SLOT(k, j)] == p -> where++ :: else -> skip fi; j++
                :: else -> break
                od
            :: else -> skip
            fi;
            k++
        :: else -> break
        od;
        assert(where == 1);             /* consumed, waiting in the inbox or the outbox: once */
        p++
    :: else -> break
    od;
    }; /* atomic */
    assert(!exited || mem[A_OBMAG] == 0);
    warden_run(1);                      /* the freer is idle: the run takes the outbox */
    assert(mem[A_OBMAG] == 0);
    atomic { take_inbox() };
    p = 1;
    do
    :: p <= NF -> assert(consumed[p] == 1); p++
    :: else -> break
    od
}

#ifdef SETTLE
/* labyrinth_zone_destroy's lb_zone_settle: flushes every level's outboxes
 * with no guard, while the warden still runs (it is stopped later, in
 * lb_zone_destroy).  With an idle (alive) freer. */
proctype Settle()
{
    byte m;
    (freer_done && sb_n == 0);          /* the user's frees happen before destroy */
    if
    :: !exited ->
        m = mem[A_OBMAG];
        if
        :: m != 0 -> push_w(m); mem[A_OBMAG] = 0
        :: else -> skip
        fi
    :: else -> skip
    fi;
    settle_done = 1
}
#endif

init {
    atomic {
        run Freer(); run Warden(); run Final()
#ifdef SETTLE
        ; run Settle()
#endif
    }
}
