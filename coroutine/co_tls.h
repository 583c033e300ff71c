// -----------------------------------------------------------------------------
// File: co_tls.h
// -----------------------------------------------------------------------------
//
// Coroutine-safe thread-local variables.
//
// A coroutine may yield on one thread and be entered again on another. The
// compiler does not know that: it treats the address of a `thread_local` (and
// often its value) as invariant within a function, so code like
//
//   thread_local int counter;
//   void Fn() { ++counter; Coroutine::Yield(); ++counter; }
//
// may update the first thread's `counter` after the coroutine moved. Link-time
// optimisation makes this more likely, not less. The macros below generate
// accessors that are never inlined and that hide the address and value from
// the optimiser, so every access re-evaluates the current thread's variable:
//
//   AIOCO_DEFINE_CO_TLS(int, counter)        // in one .cc file
//   AIOCO_DECLARE_CO_TLS(int, counter)       // in a header, if shared
//   AIOCO_DEFINE_STATIC_CO_TLS(int, counter) // file-local
//
//   get_counter()      -> the value for the calling thread
//   set_counter(v)     -> stores it
//   get_ptr_counter()  -> its address; valid only until the next yield
//
// For a non-copyable aggregate, AIOCO_DEFINE_STATIC_CO_TLS_OBJECT(type, var)
// generates get_ptr_var() only.
//
// The type must be constant-initialisable (a `constinit thread_local`) so
// that the accessors need no initialisation guard.
//
// Thread safety: each thread sees its own variable. Context: any, including
// coroutines that move between threads.

#ifndef AIOCO_COROUTINE_CO_TLS_H_
#define AIOCO_COROUTINE_CO_TLS_H_

// Launders a pointer through an empty asm statement: the compiler must assume
// the asm produced any value, so it cannot reuse a previously computed address.
#define AIOCO_CO_TLS_LAUNDER_(ptr) __asm__ volatile("" : "+r"(ptr))

#define AIOCO_DECLARE_CO_TLS(type, var) \
  type get_##var();                     \
  void set_##var(type v);               \
  type* get_ptr_##var()

// Defines the variable (with internal linkage) and its accessors (external
// linkage, matching AIOCO_DECLARE_CO_TLS).
#define AIOCO_DEFINE_CO_TLS(type, var) \
  namespace {                          \
  constinit thread_local type aioco_co_tls_storage_##var;        \
  }                                    \
  AIOCO_DEFINE_CO_TLS_ACCESSORS_(, type, var, aioco_co_tls_storage_##var)

// Defines the variable and accessors, all with internal linkage.
#define AIOCO_DEFINE_STATIC_CO_TLS(type, var) \
  constinit static thread_local type aioco_co_tls_storage_##var; \
  AIOCO_DEFINE_CO_TLS_ACCESSORS_(static, type, var,              \
                                 aioco_co_tls_storage_##var)

// Defines the variable and a get_ptr_var() accessor only, with internal
// linkage (for aggregates that cannot be copied by value).
#define AIOCO_DEFINE_STATIC_CO_TLS_OBJECT(type, var)                      \
  constinit static thread_local type aioco_co_tls_storage_##var;         \
  static __attribute__((noinline, noclone, used)) type* get_ptr_##var() { \
    type* p = &aioco_co_tls_storage_##var;                               \
    AIOCO_CO_TLS_LAUNDER_(p);                                             \
    return p;                                                             \
  }                                                                       \
  static_assert(true, "")

#define AIOCO_DEFINE_CO_TLS_ACCESSORS_(linkage, type, var, storage)   \
  linkage __attribute__((noinline, noclone, used)) type get_##var() { \
    type* p = &storage;                                               \
    AIOCO_CO_TLS_LAUNDER_(p);                                         \
    return *p;                                                        \
  }                                                                   \
  linkage __attribute__((noinline, noclone, used)) void set_##var(    \
      type v) {                                                       \
    type* p = &storage;                                               \
    AIOCO_CO_TLS_LAUNDER_(p);                                         \
    *p = v;                                                           \
  }                                                                   \
  linkage __attribute__((noinline, noclone, used)) type* get_ptr_##var() { \
    type* p = &storage;                                               \
    AIOCO_CO_TLS_LAUNDER_(p);                                         \
    return p;                                                         \
  }                                                                   \
  static_assert(true, "")

#endif  // AIOCO_COROUTINE_CO_TLS_H_
