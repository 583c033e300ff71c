/*
 * Promela model of aioco's CoMutex (locks/co_mutex.cc): the lock-free
 * "responsibility hand-off" protocol of OSv's lfmutex / QEMU's CoMutex.
 *
 * What is modelled, step for step with co_mutex.cc:
 *   lock():   CAS locked 0 -> 1; optional bounded spin that retries the CAS
 *             while locked == 1; fetch_add(locked); slow path: push the wait
 *             record, read handoff, take the token with a CAS, pop, wake or
 *             own, else wait to be woken (ownership handed over).
 *   unlock(): fetch_sub(locked); loop { pop -> wake; publish a fresh token;
 *             no record queued -> stop; CAS token back fails -> stop }.
 *   CoWake(co): modelled as setting woken[co]; a waiting process blocks
 *             until it is set (a yielded coroutine resumes only when woken).
 *
 * Memory model: the model is sequentially consistent. The implementation's
 * cross-variable orderings that matter (push vs. handoff read; token store
 * vs. from_push read) are enforced by seq_cst fences on both sides, and
 * every other protocol variable is touched by seq_cst RMWs or under the
 * wake-up responsibility, so SC executions are the ones to check. The
 * spinning hint (ctx_) and holder_ are diagnostics and are not modelled.
 *
 * The wait-record stack push (a CAS loop) is modelled as one atomic step;
 * the pop's exchange of from_push is atomic, and the reversal into to_pop is
 * a sequence of non-atomic steps so that concurrent poppers would interleave
 * and trip the single-consumer assertion.
 *
 * Checked properties (run_model.sh):
 *   safety:   mutual exclusion (assert in the critical section); PopWaiter()
 *             only with handoff == 0 and by one party at a time; while a
 *             token is outstanding to_pop is empty (the reason HasWaiters()
 *             need only read from_push; checked in every state by the
 *             Invariant process); no lost waiter (no invalid end state:
 *             every process finishes its ITERS rounds, and the final state
 *             is free with empty queues).
 *   liveness: with -DLIVE the processes loop forever; non-progress cycles
 *             (-l) under weak fairness (-f): the critical section is entered
 *             infinitely often; and the LTL property `starve` (process 0,
 *             hence by symmetry every process, enters the critical section
 *             infinitely often) under weak fairness: FIFO hand-off gives
 *             starvation freedom.
 *
 * Mutants (run_model.sh checks that each is caught): MUTANT_NO_TAKEBACK
 * (the unlocker never takes its token back), MUTANT_NO_STEAL (lockers
 * ignore tokens).
 *
 * Tokens. The safety runs let tokens wrap after SEQ_MAX values, so a token
 * can be re-issued while a stale copy is still held (ABA): safety holds even
 * then (taking somebody else's token just takes that responsibility). ABA
 * does break starvation freedom: an unlocker whose "take my token back" CAS
 * keeps succeeding on other unlockers' reissued tokens can loop forever
 * while the others progress. The code's 32-bit sequence makes that need
 * 2^32 unlocks inside one unlock's few instructions, so the liveness runs
 * model tokens as unique among those outstanding (token = pid + 1: only one
 * unlock per process can be in flight).
 */

#ifndef N
#define N 3            /* processes (coroutines in different contexts) */
#endif
#ifndef ITERS
#define ITERS 2        /* lock/unlock rounds per process (safety run) */
#endif
#ifndef SEQ_MAX
#define SEQ_MAX 2      /* tokens wrap 1..SEQ_MAX (the code uses 32 bits) */
#endif
#ifndef SPIN
#define SPIN 1         /* extra fast-path CAS attempts while spinning */
#endif

#define NONE 255

byte locked = 0;          /* holders + pending lockers */
byte fp_head = NONE;      /* from_push: LIFO stack of pids */
byte tp_head = NONE;      /* to_pop: FIFO of pids */
byte next[N];             /* wait record links (one record per process) */
byte handoff = 0;         /* token, 0 = none */
byte sequence = 0;        /* last token issued */
bool woken[N];            /* CoWake() delivered, not yet consumed */

byte in_cs = 0;           /* processes inside the critical section */
byte popping = 0;         /* parties inside PopWaiter() */
bool entered[N];          /* ghost: set on each critical section entry */
byte finished = 0;        /* processes done with their rounds */

/* PopWaiter(): result in `w` (NONE if nothing queued). Two steps: entry,
 * then the whole pop, so that a second party entering PopWaiter() while one
 * is inside trips the single-consumer assertion. The reversal of from_push
 * into to_pop touches only the popper's state, so one atomic step models it. */
inline pop_waiter(w, rev, tmp) {
  atomic { assert(handoff == 0 && popping == 0); popping++ };
  d_step {
    if
    :: tp_head == NONE ->
         rev = fp_head; fp_head = NONE;
         do
         :: rev != NONE ->
              tmp = next[rev]; next[rev] = tp_head; tp_head = rev; rev = tmp
         :: else -> break
         od
    :: else -> skip
    fi;
    if
    :: tp_head == NONE -> w = NONE
    :: else -> w = tp_head; tp_head = next[w]; next[w] = NONE
    fi;
    rev = 0; tmp = 0;
    popping--
  }
}

inline wake(p) {
  assert(!woken[p]);
  woken[p] = true
}

proctype Locker(byte me) {
  byte waiters, old, w, rev, tmp, our, spins, round;
  bool won;

#ifdef LIVE
end_idle:
  do
  :: true ->
#else
  round = 0;
  do
  :: round < ITERS ->
#endif
     /* ---- lock() ---- */
     atomic {
       if
       :: locked == 0 -> locked = 1; waiters = 0
       :: else -> waiters = locked
       fi
     };
     spins = 0;
     do
     :: waiters == 1 && spins < SPIN ->
          spins++;
          atomic {
            waiters = locked;
            if
            :: waiters == 0 -> locked = 1
            :: else -> skip
            fi
          }
     :: else -> break
     od;
     if
     :: waiters != 0 -> atomic { waiters = locked; locked++ }
     :: else -> skip
     fi;
     if
     :: waiters == 0 -> skip                    /* owner */
     :: else ->
          /* LockSlowPath() */
          atomic { next[me] = fp_head; fp_head = me };
          /* seq_cst fence */
          old = handoff;
          won = false;
          if
#ifdef MUTANT_NO_STEAL
          :: false ->
#else
          :: old != 0 && fp_head != NONE ->     /* HasWaiters() */
#endif
               atomic {
                 if
                 :: handoff == old ->
                      /* The token was outstanding, so nobody has popped
                       * since the failed pop that published it. */
                      assert(tp_head == NONE);
                      handoff = 0; won = true
                 :: else -> skip
                 fi
               }
          :: else -> skip
          fi;
          if
          :: won ->
               pop_waiter(w, rev, tmp);
               assert(w != NONE);
               if
               :: w == me -> skip                /* owner */
               :: else -> wake(w); woken[me] -> woken[me] = false
               fi
          :: else ->
               woken[me] -> woken[me] = false    /* yield until handed */
          fi
     fi;

     skip;
     d_step { waiters = 0; old = 0; w = 0; spins = 0; won = false };

     /* ---- critical section ---- */
progress_cs:
     atomic { in_cs++; assert(in_cs == 1); entered[me] = true };
     atomic { in_cs--; entered[me] = false };

     /* ---- unlock() ---- */
     atomic { waiters = locked; locked-- };
     if
     :: waiters == 1 -> skip
     :: else ->
          do
          :: true ->
               pop_waiter(w, rev, tmp);
               if
               :: w != NONE -> wake(w); break
               :: else ->
#ifdef LIVE
                    our = me + 1;
#else
                    sequence = (sequence % SEQ_MAX) + 1;
                    our = sequence;
#endif
                    handoff = our;
                    /* seq_cst fence */
                    if
#ifdef MUTANT_NO_TAKEBACK
                    :: true -> break
#endif
                    :: fp_head == NONE -> break     /* late locker takes it */
                    :: else ->
                         atomic {
                           if
                           :: handoff == our ->
                                assert(tp_head == NONE);
                                handoff = 0; won = true
                           :: else -> won = false
                           fi
                         };
                         if
                         :: !won -> break           /* a locker took it */
                         :: else -> skip            /* pop again */
                         fi
                    fi
               fi
          od
     fi;
     skip;
     d_step { waiters = 0; w = 0; our = 0; won = false };
#ifndef LIVE
     round++
  :: else -> break
#endif
  od;
  finished++
}

init {
  byte i;
  atomic {
    i = 0;
    do
    :: i < N -> next[i] = NONE; i++
    :: else -> break
    od;
    i = 0;
    do
    :: i < N -> run Locker(i); i++
    :: else -> break
    od
  }
#ifndef LIVE
  ;
  (finished == N);
  /* Everybody finished: the mutex is free and nothing is queued. */
  assert(locked == 0 && fp_head == NONE && tp_head == NONE && in_cs == 0);
  i = 0;
  do
  :: i < N -> assert(!woken[i]); i++
  :: else -> break
  od
#endif
}

#ifndef LIVE
/* Checked in every reachable state (the process may run at any point). */
active proctype Invariant() {
  assert(handoff == 0 || tp_head == NONE)
}
#endif

#ifdef LIVE
/* Starvation freedom for process 0 (symmetric for the others). */
ltl starve { []<> entered[0] }
#endif
