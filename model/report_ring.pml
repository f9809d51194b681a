/*
 * report_ring.pml - the report handler ring (src/api.c lb_set_report_handler,
 * src/report.c lb_zone_report; KB11, KB46), checked exhaustively by spin.
 *
 * W writers (changes of the handler) and one reader (a report), every
 * interleaving of their steps: a writer stalled between any two of its
 * steps is just an interleaving in which the others run.  The ring has R
 * slots (the code has 8; R = W - 1 here, so that the writers can wrap it
 * and crowd it, which is where KB46 lived).  Each change n writes the pair
 * (n, n), so a torn pair reads as two different numbers.
 *
 * Checked:
 *   - a read that succeeds gets a whole pair, of the ticket it was sent to
 *     (fn == arg == ticket);
 *   - it is never older than a change that returned before the read
 *     started (the one set before the report, or one being set);
 *   - the reader never gives up (the default handler) within W + 2 tries:
 *     each failed try needs another change to complete;
 *   - when every writer is done, the published slot holds the published
 *     pair (KB46: a resumed change overwrote it, and every later report
 *     went to the default handler);
 *   - a refused change (EBUSY) takes nothing: it publishes nothing.
 * -DOLD models the code before the fix (slot = ticket % R, no claim): it
 * must FAIL (model/check.sh runs it as a probe), which shows the search
 * reaches the interleaving that broke.
 */
#ifndef W
#define W 3
#endif
#define R (W - 1)
#define ROUNDS 2
#define TRIES (W + 2)

byte next = 0;                 /* report_next */
byte pub_t = 0, pub_s = 0;     /* report_cur: ticket << 3 | slot, one word */
byte seq[R], fn[R], arg[R];    /* the ring (zeroed: ticket 0, the default) */
byte max_returned = 0;         /* the newest change that has returned */
byte done = 0;                 /* writers finished */

proctype writer()
{
    byte n, round, k, v, pt, ps, my;
    bool claimed = false;
    atomic { next++; n = next }       /* relaxed add: a unique ticket */
#ifdef OLD
    my = n % R;
    seq[my] = 2 * n - 1;
    goto write;
#endif
    round = 0;
    do
    :: round < ROUNDS ->
        atomic { pt = pub_t; ps = pub_s }  /* relaxed load of report_cur */
        if
        :: pt > n -> goto returned          /* a later change is published */
        :: else -> skip
        fi;
        k = 0;
        do
        :: k < R && !claimed ->
            v = seq[k];
            if
            :: (v % 2 == 1) || (v / 2 > pt) || (k == ps) -> k++
            :: else ->
                atomic {                    /* acquire CAS of the sequence */
                    if
                    :: seq[k] == v -> seq[k] = 2 * n - 1; my = k; claimed = true
                    :: else -> k++
                    fi
                }
            fi
        :: else -> break
        od;
        if
        :: claimed -> goto write
        :: else -> round++
        fi
    :: else -> goto busy
    od;
write:
    fn[my] = n;                       /* release stores */
    arg[my] = n;
    seq[my] = 2 * n;                  /* release */
    atomic {                          /* the release CAS loop's effect */
        if
        :: pub_t < n -> pub_t = n; pub_s = my
        :: else -> skip
        fi
    }
returned:
    atomic {
        if
        :: n > max_returned -> max_returned = n
        :: else -> skip
        fi;
        done++
    };
    goto end;
busy:
    /* -EBUSY: nothing taken, nothing published. */
    atomic { done++ };
end:
    skip
}

proctype reader()
{
    byte start, t, s, s1, f, a, s2, tries = 0;
    start = max_returned;
    do
    :: tries < TRIES ->
        atomic { t = pub_t; s = pub_s }   /* acquire load of report_cur */
        s1 = seq[s];                      /* acquire */
        if
        :: s1 != 2 * t -> tries++
        :: else ->
            f = fn[s];                    /* acquire loads */
            a = arg[s];
            s2 = seq[s];
            if
            :: s2 == s1 ->
                assert(f == a && f == t); /* a whole pair, of its ticket */
                assert(t >= start);       /* never older than a returned change */
                break
            :: else -> tries++
            fi
        fi
    :: else ->
        assert(false)                     /* gave up: the default handler */
    od
}

/* Once every writer is done: the published slot holds its pair. */
proctype final()
{
    done == W;
    assert(seq[pub_s] == 2 * pub_t && fn[pub_s] == pub_t && arg[pub_s] == pub_t)
}

init {
    atomic {
        byte i = 0;
        do
        :: i < W -> run writer(); i++
        :: else -> break
        od;
        run reader();
        run final()
    }
}
