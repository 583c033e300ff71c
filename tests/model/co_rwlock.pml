/*
 * Promela model of aioco's CoRwlock (locks/co_rwlock.cc): one atomic word
 * state_ = readers * R | W | Q, lock-free fast paths, and a slow path under
 * an internal mutex with a FIFO of tickets.
 *
 * What is modelled, step for step with co_rwlock.cc (numbers as in its
 * design note):
 *   RdLock():   1. CAS readers + 1 while W and Q are clear;
 *   WrLock():   1. CAS 0 -> W;
 *   Spin():     1b. up to SPIN retries of step 1, giving up once Q is set;
 *   LockSlowPath(): 2. take the mutex, retry step 1, else Enqueue() (the
 *               first ticket sets Q), GrantHead(), release the mutex, wake
 *               the granted ticket or return if it is our own, else yield
 *               until woken; 4. a woken reader takes the mutex and runs
 *               GrantHead() again (the reader chain);
 *   GrantHead(): 3. load state_, then in one RMW add the head ticket's
 *               share and clear Q if the queue empties, unlinking it;
 *   Unlock():   loads state_ and picks the read or write half by W;
 *               5. read: CAS readers - 1 unless the loaded word shows the
 *               last reader with Q set; then mutex, fetch_sub, GrantHead();
 *               6. write: CAS W -> 0 if the loaded word is exactly W, else
 *               mutex, fetch_sub W, GrantHead();
 *   Upgrade():  CAS R -> W as the sole reader with Q clear; else mutex,
 *               the same CAS while state_ == R, else queue a write ticket,
 *               fetch_sub our read share, GrantHead(), wait unless granted;
 *   Downgrade(): CAS W -> R with Q clear; else mutex, fetch_add(R - W),
 *               GrantHead() (never waits for a grant).
 *   CoWake(co) sets woken[co]; a coroutine yielded in WaitForGrant() blocks
 *   until it is set. The ticket marker (kTicketMarker) is marked[].
 *
 * Granularity. Every RMW on state_ is one atomic step. A load followed by a
 * CAS loop whose failure only reloads (RdLock(), Spin(), the retries under
 * the mutex) is one atomic step too: a failed CAS has no effect, so each
 * such loop acts at a single point. Where the code decides on an earlier
 * load (Unlock()'s load used by ReadUnlock()/WriteUnlock(), GrantHead()'s
 * load, Upgrade()/Downgrade()'s load) the load is a step of its own. Queue
 * updates are under the mutex and are merged with the state_ RMW of the
 * same function (Enqueue()'s fetch_or, GrantHead()'s fetch_add).
 *
 * CAS loops. ReadUnlock()'s CAS loop starts from Unlock()'s load, so the
 * safety runs model it literally (each CAS fails if the word changed since
 * the last load, and reloads). The liveness runs make it one step, like
 * the other loops: a CAS loop is lock-free, not wait-free. With the literal
 * loop Spin finds a cycle, allowed by weak fairness, in which process 0's
 * read unlock fails its CAS forever because process 1 takes and drops a
 * read lock between each of its loads and CASes (the word alternates
 * between 2 readers and 1; -DLIVE -DLITERAL_CAS_LOOP shows it). Hardware
 * CAS arbitration rules that out in practice; Promela's fairness cannot
 * express it.
 *
 * Memory model: sequentially consistent. All RMWs act on the single word
 * state_ (one modification order); head_/tail_ are guarded by the mutex.
 * The writer_ctx_ hint (a reader facing a writer of its own context skips
 * the spin) is not modelled: a failed spin attempt changes nothing, so the
 * schedules where the attempt fails at once already cover skipping it.
 *
 * The internal mutex (a CoMutex, model-checked by co_mutex.pml) is a plain
 * test-and-set lock in the safety runs (any grant order, a superset of
 * CoMutex's behaviour) and a FIFO ticket lock in the liveness runs
 * (co_mutex.pml shows CoMutex is starvation-free; a plain lock is not, and
 * would hide the property checked here).
 *
 * Checked properties (run_model.sh):
 *   safety:   in the critical section never a writer together with another
 *             writer or a reader; in every state (check_inv() after each
 *             step that changes them) state_'s reader count equals the number of read holders, W
 *             is set exactly when a writer holds, Q exactly when a ticket is
 *             queued; the code's own checks (Die() calls: Upgrade/Downgrade
 *             preconditions, a woken reader has a read grant, never granting
 *             the caller's own ticket in MaybeWakeOne(), marker claimed once
 *             and released once); a compatible GrantHead() answer is still
 *             compatible at its RMW; FIFO: a locker (reader, writer or
 *             upgrader) never gets the lock while a ticket that was queued
 *             when it arrived is still queued (ghost mask ahead[]); no lost
 *             wake-up: no invalid end state (every process finishes its
 *             rounds) and at the end the lock is free, the queue empty, no
 *             wake pending.
 *   liveness: with -DLIVE the processes loop forever; non-progress cycles
 *             (-l) under weak fairness (-f): operations keep completing;
 *             LTL `starve` under weak fairness: process 0 completes
 *             operations infinitely often (run with every operation for
 *             everybody, and for a writer against 2 readers, the case a
 *             reader-preferring lock fails). A lost wake-up that a later
 *             arrival repairs is no liveness failure; the end-state checks
 *             of the safety runs catch it.
 *
 * Mutants (run_model.sh checks that each is caught):
 *   MUTANT_READ_IGNORES_QUEUED  the reader fast path ignores Q (FIFO);
 *   MUTANT_LAST_READER_PLAIN    the last reader always leaves with a plain
 *                               CAS, without the hand-over (lost wake-up);
 *   MUTANT_DOWNGRADE_NO_GRANT   Downgrade() swaps W for a read share under
 *                               the mutex but grants nobody (the lost
 *                               wake-up of QEMU's CoQueue-based rwlock),
 *                               caught with DOWNGRADE_KEEPS.
 *
 * DOWNGRADE_KEEPS: process 0 starts holding the write lock, downgrades and
 * keeps the read lock to the end; the others only read. Queued readers
 * must then be let in by Downgrade()'s grant and the reader chain (step 4)
 * alone: elsewhere a later unlock would make up for a missing grant.
 */

#ifndef N
#define N 3            /* processes (coroutines in different contexts) */
#endif
#if N > 3
#error "check_inv() and the ahead[] masks count at most 3 processes"
#endif
#ifndef ITERS
#define ITERS 1        /* operations per process (safety runs) */
#endif
#ifndef SPIN
#define SPIN 1         /* fast-path retries in Spin() */
#endif
/* Operations each process may pick per round, a bit mask of OP_*, for
 * process 0, 1 and 2 (and up). */
#define OP_READ 1      /* RdLock(); Unlock() */
#define OP_WRITE 2     /* WrLock(); Unlock() */
#define OP_UPGRADE 4   /* RdLock(); Upgrade(); Unlock() */
#define OP_DOWNGRADE 8 /* WrLock(); Downgrade(); Unlock() */
#ifndef OPS0
#define OPS0 15
#endif
#ifndef OPS1
#define OPS1 15
#endif
#ifndef OPS2
#define OPS2 15
#endif
#define OPS_OF(p) (p == 0 -> OPS0 : (p == 1 -> OPS1 : OPS2))

/* Bits of state_, as in co_rwlock.h. */
#define W 1            /* kWriter */
#define Q 2            /* kQueued */
#define R 4            /* kReader */

#define NONE 255
#define RD 1           /* hold[]: a read share is counted in state_ */
#define WR 2           /* hold[]: the write lock is ours */

byte st = 0;           /* state_ */
byte q[N];             /* ticket FIFO (pids), q[0] is head_ */
byte qlen = 0;
bool tread[N];         /* ticket kind: true = read */
bool woken[N];         /* CoWake() delivered, not yet consumed */
bool marked[N];        /* kTicketMarker claimed */
#ifdef LIVE
byte mt_next = 0;      /* FIFO ticket lock for the internal mutex */
byte mt_serving = 0;
#else
byte mtx = NONE;       /* internal mutex: owner pid */
#endif

/* Ghost state. */
byte hold[3];          /* 0, RD or WR: what state_ counts for each process
                          (3 entries: check_inv() counts them all) */
byte ahead[N];         /* tickets (bit per pid) queued when it arrived */
byte in_r = 0;         /* readers in the critical section */
byte in_w = 0;         /* writers in the critical section */
bool opdone[N];        /* set when an operation completes */
byte finished = 0;

#ifdef LIVE
inline mutex_lock() {
  d_step { myt = mt_next; mt_next = (mt_next + 1) % N };
  mt_serving == myt;
  myt = 0
}
inline mutex_unlock() {
  mt_serving = (mt_serving + 1) % N
}
#else
inline mutex_lock() {
  d_step { mtx == NONE -> mtx = me }
}
inline mutex_unlock() {
  assert(mtx == me);
  mtx = NONE
}
#endif

/* The state_ invariant, checked after every step that changes state_,
 * hold[] or the queue, hence in every reachable state: the reader count is
 * the number of read holders, W is set exactly when a writer holds (then
 * alone), Q exactly when a ticket is queued. */
#define HOLDS(p, k) (hold[p] == k -> 1 : 0)
#define COUNT(k) (HOLDS(0, k) + HOLDS(1, k) + HOLDS(2, k))
inline check_inv() {
  assert(st / R == COUNT(RD));
  assert(((st & W) != 0) == (COUNT(WR) == 1) && COUNT(WR) <= 1);
  assert(COUNT(WR) == 0 || COUNT(RD) == 0);
  assert(((st & Q) != 0) == (qlen > 0))
}

#ifndef LIVE
/* Arrival of a locker: remember which tickets are queued ahead of it. */
inline arrive() {
  i = 0;
  ahead[me] = 0;
  do
  :: i < qlen -> ahead[me] = ahead[me] | (1 << q[i]); i++
  :: else -> break
  od;
  i = 0
}

/* `p` gets the lock (its share is already in state_): FIFO check. */
inline got_lock(p) {
  assert(ahead[p] == 0)
}

/* `p`'s ticket leaves the queue: it is no longer ahead of anybody. */
inline dequeued(p) {
  i = 0;
  do
  :: i < N -> ahead[i] = ahead[i] & ~(1 << p); i++
  :: else -> break
  od;
  i = 0
}
#else
/* The FIFO ghost is checked by the safety runs only. */
inline arrive() { skip }
inline got_lock(p) { skip }
inline dequeued(p) { skip }
#endif

/* ReadUnlock()'s test for step 5's slow half: the last reader leaving
 * while a ticket waits hands the lock over under the mutex. */
#ifdef MUTANT_LAST_READER_PLAIN
#define LAST_QUEUED(x) false
#else
#define LAST_QUEUED(x) (((x) & Q) != 0 && (x) / R == 1)
#endif

/* Lock-free acquire (step 1) when compatible and nobody is queued. */
inline try_acquire(read) {
  if
  :: read && (st & (W | Q)) == 0 ->
       st = st + R; hold[me] = RD; got_lock(me); ok = true; check_inv()
  :: !read && st == 0 ->
       st = W; hold[me] = WR; got_lock(me); ok = true; check_inv()
  :: else -> skip
  fi
}

/* Enqueue(): claims the marker, appends the ticket, the first sets Q. */
inline enqueue(read) {
  d_step {
    assert(!marked[me]);
    marked[me] = true;
    tread[me] = read;
    q[qlen] = me;
    qlen++;
    if
    :: qlen == 1 -> assert((st & Q) == 0); st = st | Q
    :: else -> assert((st & Q) != 0)
    fi;
    check_inv()
  }
}

/* GrantHead(): w = granted pid or NONE. */
inline grant_head(w) {
  if
  :: qlen == 0 -> w = NONE
  :: else ->
       ls = st;                       /* acquire load */
       d_step {
         w = q[0];
         if
         :: (tread[w] && (ls & W) == 0) || (!tread[w] && (ls | Q) == Q) ->
              /* Compatible when loaded, so still compatible now. */
              assert(tread[w] && (st & W) == 0 ||
                     !tread[w] && (st | Q) == Q);
              assert((st & Q) != 0 && hold[w] == 0);
              if
              :: tread[w] -> st = st + R; hold[w] = RD
              :: else -> st = st + W; hold[w] = WR
              fi;
              qlen--;
              if
              :: qlen == 0 -> st = st - Q
              :: else -> skip
              fi;
              i = 0;
              do
              :: i < qlen -> q[i] = q[i + 1]; i++
              :: else -> break
              od;
              q[qlen] = 0;
              i = 0;
              dequeued(w);
              got_lock(w);
              check_inv()
         :: else -> w = NONE
         fi;
         ls = 0
       }
  fi
}

/* ReleaseMarker(co) + CoWake(co). */
inline wake(p) {
  d_step {
    assert(marked[p] && hold[p] != 0 && !woken[p]);
    marked[p] = false;
    woken[p] = true;
    p = 0
  }
}

/* WaitForGrant(): yield until woken; ownership was set before the wake. */
inline wait_grant() {
  d_step { woken[me] -> woken[me] = false; assert(hold[me] != 0) }
}

/* MaybeWakeOne(): GrantHead(), release the mutex, wake the granted one. */
inline maybe_wake_one() {
  grant_head(w);
  mutex_unlock();
  if
  :: w != NONE -> assert(w != me); wake(w)
  :: else -> skip
  fi
}

/* After Enqueue(): GrantHead(), release the mutex, then either our own
 * ticket was granted, or wake the granted one and wait for our grant. */
inline grant_or_wait() {
  grant_head(w);
  mutex_unlock();
  if
  :: w == me ->
       d_step { assert(marked[me]); marked[me] = false; w = 0 }
  :: else ->
       if
       :: w != NONE -> wake(w)
       :: else -> skip
       fi;
       wait_grant()
  fi
}

/* Spin() then LockSlowPath(); ok is false on entry. */
inline lock_slow(read) {
  spins = 0;
  do
  :: !ok && spins < SPIN ->
       spins++;
       d_step {
         if
         :: (st & Q) != 0 -> spins = SPIN   /* somebody queued: join them */
         :: else -> try_acquire(read)
         fi
       }
  :: else -> spins = 0; break
  od;
  if
  :: ok -> skip
  :: else ->
       mutex_lock();
       d_step { try_acquire(read) };        /* step 1 again */
       if
       :: ok -> mutex_unlock()
       :: else ->
            enqueue(read);
            grant_or_wait();
            if
            :: read ->                      /* step 4: the reader chain */
                 mutex_lock();
                 assert((st & W) == 0 && st >= R);
                 maybe_wake_one()
            :: else -> skip
            fi
       fi
  fi
}

inline rd_lock() {
  d_step {
    arrive();
    if
#ifdef MUTANT_READ_IGNORES_QUEUED
    :: (st & W) == 0 ->
#else
    :: (st & (W | Q)) == 0 ->
#endif
         st = st + R; hold[me] = RD; got_lock(me); ok = true; check_inv()
    :: else -> ok = false
    fi
  };
  if
  :: !ok -> lock_slow(true)
  :: else -> skip
  fi
}

inline wr_lock() {
  d_step {
    arrive();
    if
    :: st == 0 -> st = W; hold[me] = WR; got_lock(me); ok = true; check_inv()
    :: else -> ok = false
    fi
  };
  if
  :: !ok -> lock_slow(false)
  :: else -> skip
  fi
}

inline unlock() {
  /* Relaxed load; exact for the caller's own lock kind. */
  d_step {
    ls = st;
    assert(hold[me] != 0);
    assert(((ls & W) != 0) == (hold[me] == WR));
    ok = false
  };
  if
  :: (ls & W) != 0 ->                       /* WriteUnlock() */
       d_step {
         if
         :: ls == W && st == W -> st = 0; hold[me] = 0; ok = true; check_inv()
         :: else -> skip
         fi;
         ls = 0
       };
       if
       :: !ok ->
            mutex_lock();
            d_step { st = st - W; hold[me] = 0; check_inv() };
            maybe_wake_one()
       :: else -> skip
       fi
  :: else ->                                /* ReadUnlock() */
#if defined(LIVE) && !defined(LITERAL_CAS_LOOP)
       /* The CAS loop as one step: see "CAS loops" above. */
       if
       :: LAST_QUEUED(ls) -> skip
       :: else ->
            d_step {
              if
              :: LAST_QUEUED(st) -> skip
              :: else -> st = st - R; hold[me] = 0; ok = true; check_inv()
              fi
            }
       fi;
#else
       do
       :: LAST_QUEUED(ls) -> break
       :: else ->
            d_step {
              if
              :: st == ls -> st = st - R; hold[me] = 0; ok = true; check_inv()
              :: else -> ls = st
              fi
            };
            if
            :: ok -> break
            :: else -> skip
            fi
       od;
#endif
       if
       :: !ok ->
            mutex_lock();
            d_step { st = st - R; hold[me] = 0; check_inv() };
            maybe_wake_one()
       :: else -> skip
       fi
  fi
}

inline upgrade() {
  d_step {
    arrive();
    ls = st;
    assert((ls & W) == 0 && ls >= R && hold[me] == RD);
    ok = false
  };
  d_step {
    if
    :: ls == R && st == R -> st = W; hold[me] = WR; got_lock(me); ok = true; check_inv()
    :: else -> skip
    fi;
    ls = 0
  };
  if
  :: !ok ->
       mutex_lock();
       d_step {
         if
         :: st == R -> st = W; hold[me] = WR; got_lock(me); ok = true; check_inv()
         :: else -> skip
         fi
       };
       if
       :: ok -> mutex_unlock()
       :: else ->
            enqueue(false);
            d_step { st = st - R; hold[me] = 0; check_inv() };
            grant_or_wait()
       fi
  :: else -> skip
  fi
}

inline downgrade() {
  d_step {
    ls = st;
    assert((ls & W) != 0 && hold[me] == WR);
    ok = false
  };
  d_step {
    if
    :: ls == W && st == W -> st = R; hold[me] = RD; ok = true; check_inv()
    :: else -> skip
    fi;
    ls = 0
  };
  if
  :: !ok ->
       mutex_lock();
       d_step { st = st + R - W; hold[me] = RD; check_inv() };
#ifdef MUTANT_DOWNGRADE_NO_GRANT
       mutex_unlock()
#else
       maybe_wake_one()
#endif
  :: else -> skip
  fi
}

/* Critical section: the mutual-exclusion assertions. The liveness runs
 * make it one step (the safety runs interleave inside it). */
#ifdef LIVE
inline read_cs() {
  d_step { in_r++; assert(in_w == 0 && hold[me] == RD); in_r-- }
}
inline write_cs() {
  d_step { in_w++; assert(in_w == 1 && in_r == 0 && hold[me] == WR); in_w-- }
}
#else
inline read_cs() {
  d_step { in_r++; assert(in_w == 0 && hold[me] == RD) };
  in_r--
}
inline write_cs() {
  d_step { in_w++; assert(in_w == 1 && in_r == 0 && hold[me] == WR) };
  in_w--
}
#endif

proctype Locker(byte me) {
  byte ls, w, spins, op, i, round, myt;
  bool ok;

#ifdef DOWNGRADE_KEEPS
  /* Process 0 starts with the write lock (set up by init), downgrades and
   * never unlocks: the readers queued behind it must still get in. */
  if
  :: me == 0 ->
       write_cs();
       downgrade();
       read_cs();
       goto finish
  :: else -> skip
  fi;
#endif
#ifdef LIVE
end_idle:
  do
  :: true ->
#else
  round = 0;
  do
  :: round < ITERS ->
#endif
     if
     :: (OPS_OF(me) & OP_READ) != 0 -> op = OP_READ
     :: (OPS_OF(me) & OP_WRITE) != 0 -> op = OP_WRITE
     :: (OPS_OF(me) & OP_UPGRADE) != 0 -> op = OP_UPGRADE
     :: (OPS_OF(me) & OP_DOWNGRADE) != 0 -> op = OP_DOWNGRADE
     fi;
     if
     :: op == OP_READ || op == OP_UPGRADE ->
          rd_lock();
          read_cs();
          if
          :: op == OP_UPGRADE -> upgrade(); write_cs()
          :: else -> skip
          fi
     :: else ->
          wr_lock();
          write_cs();
          if
          :: op == OP_DOWNGRADE -> downgrade(); read_cs()
          :: else -> skip
          fi
     fi;
     unlock();
     d_step { op = 0; ls = 0; w = 0; spins = 0; ok = false; ahead[me] = 0 };
progress_op:
     opdone[me] = true;
     opdone[me] = false;
#ifndef LIVE
     round++
  :: else -> break
#endif
  od;
finish:
  finished++
}

#ifdef DOWNGRADE_KEEPS
#define KEPT R         /* process 0 ends holding a read lock */
#else
#define KEPT 0
#endif

init {
  byte i;
  atomic {
#ifdef DOWNGRADE_KEEPS
    st = W;
    hold[0] = WR;
#endif
    i = 0;
    do
    :: i < N -> run Locker(i); i++
    :: else -> break
    od
  }
#ifndef LIVE
  ;
  (finished == N);
  /* Everybody finished: the lock is free (but for KEPT), nobody queued or
   * to be woken. */
  assert(st == KEPT && qlen == 0 && mtx == NONE && in_r == 0 && in_w == 0);
  i = 0;
  do
  :: i < N ->
       assert(!woken[i] && !marked[i]);
       assert(hold[i] == 0 || i == 0 && KEPT == R && hold[i] == RD);
       i++
  :: else -> break
  od
#endif
}

#ifdef LIVE
/* Starvation freedom for process 0 (OPS0 chooses its operations). */
ltl starve { []<> opdone[0] }
#endif
