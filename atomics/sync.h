// weave::SharedMutex, SharedSemaphore, SharedLatch, SharedBarrier:
// synchronisation objects that live IN a SharedArrayBuffer, so every thread
// (and, later, every worker) holding the same buffer can use them.
//
// Each type is a handle over (SharedArrayBuffer, byte_offset): the object's
// state is kByteLength bytes of the buffer at that offset, kAlignment-aligned.
// The handle holds a copy of the buffer handle (so the memory outlives it)
// and nothing else: copies of a handle, and handles built anywhere — on any
// thread — over the same buffer and offset, are the same object. Building a
// handle touches no state, so it never resets the object.
//
// Initial state: all-zero bytes are an unlocked mutex, a semaphore with count
// 0 and a latch with count 0 (open), so a fresh SharedArrayBuffer holds them
// ready to use. A semaphore's or latch's start count, and a barrier's number
// of parties (zero bytes are an unusable barrier: zero parties), are set by
// init(n) — a plain reset, to be called before any other thread can use the
// object (e.g. before the threads that use it are started; thread start
// orders it before them). init() while another thread uses the object is a
// programming error and is not detected.
//
// Errors: the constructor checks the offset against the buffer's current
// byte_length — not a multiple of kAlignment: std::invalid_argument; the
// object would not fit: std::out_of_range; both name the type and
// byte_offset. Misuse (unlock of an unlocked mutex, a latch counted below
// zero, a barrier used before init) is a debug-build assertion.
//
// Design: the classic futex designs, on weave::atomics (compare_exchange,
// exchange, add, seq_cst) and atomics::wait / notify on Int32 words: the
// 3-state mutex of Drepper's "Futexes Are Tricky" (0 free, 1 locked, 2 locked
// with maybe waiters; unlock pays a notify only in state 2), a counting
// semaphore with a waiter count (release pays a notify only when someone may
// sleep), a one-shot latch (the count reaching zero notifies all), and a
// reusable barrier with a generation counter. No one spins; an uncontended
// operation is one atomic read-modify-write. Wake-ups go oldest waiter first
// (atomics::notify is FIFO), but a thread arriving just then may still take
// the lock or a unit first: none of these is fair. Placement is the user's:
// objects that different threads hammer should sit on separate cache lines.
//
// Memory ordering: every operation is seq_cst, as Atomics are. Every write
// made before unlock() is visible to the next thread that lock()s; before
// release(), to the acquire() that takes one of its units; before
// count_down(), to every thread whose wait() then returns; before
// arrive_and_wait() in a phase, to every party once it returns from that
// phase.
//
// Timeouts (the _for forms) mean what base/deadline.h says: zero or less
// does not wait, kForever (~100 years or more, or a NaN) waits for good.
//
// Termination: in a weave worker being terminated (Worker::terminate()),
// every blocking call here — lock(), acquire(), wait(), arrive_and_wait()
// and the timed forms — throws atomics::WaitInterrupted instead of waiting
// (see atomics/atomics.h), and keeps throwing for the rest of that worker's
// life. The object's state stays consistent (a semaphore's sleeper count is
// given back). The hazard: a destructor that blocks on one of these (say, an
// RAII guard that lock()s a SharedMutex while unwinding from the first
// WaitInterrupted) throws from a destructor, which is std::terminate. In code
// a worker may run while being terminated, take these locks with try_lock()
// (or not at all) in destructors.
//
// Threading: every method may be called from any thread, on any handle.
// Handles are small values; none allocates after construction.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>

#include "atomics/shared_array_buffer.h"
#include "atomics/shared_view.h"
#include "base/deadline.h"

namespace weave {
namespace internal {

// A timeout as a steady-clock deadline (base/deadline.h): never earlier than
// now + timeout, zero or less is now, and kForever (~100 years or more, or a
// NaN) is time_point::max(), which the waits read as "no deadline".
using SyncDeadline = std::chrono::steady_clock::time_point;

template <class Rep, class Period>
SyncDeadline sync_deadline_after(const std::chrono::duration<Rep, Period>& timeout) {
  return deadline_after(std::chrono::steady_clock::now(), timeout);
}

// A steady-clock time point as a deadline: rounded up, never early; one past
// what the clock can hold is none (time_point::max()).
template <class Duration>
SyncDeadline sync_deadline_at(
    const std::chrono::time_point<std::chrono::steady_clock, Duration>& deadline) {
  using Dur = std::chrono::steady_clock::duration;
  if (std::chrono::duration<double>(deadline.time_since_epoch()) >=
      std::chrono::duration<double>(Dur::max())) {
    return SyncDeadline::max();
  }
  return std::chrono::ceil<Dur>(deadline);
}

// The Int32View of `byte_length` bytes at `byte_offset`, after checking the
// offset as the header comment says (messages name `type`).
Int32View sync_words(const char* type, SharedArrayBuffer buffer, std::size_t byte_offset,
                     std::size_t byte_length);

}  // namespace internal

// A mutex in shared memory. Meets the standard Lockable and TimedLockable
// requirements (the timed forms take steady-clock times), so std::lock_guard,
// std::unique_lock and std::scoped_lock work. Not recursive: lock() by the
// thread that holds it deadlocks. Ownership is not recorded in the region:
// any thread may unlock a locked mutex (as with a binary semaphore), which
// lets a lock be handed between threads or workers.
class SharedMutex {
 public:
  // One Int32: 0 unlocked, 1 locked, 2 locked and maybe waited on.
  static constexpr std::size_t kByteLength = 4;
  static constexpr std::size_t kAlignment = 4;

  // The mutex at `byte_offset` of `buffer` (zero bytes: unlocked).
  // Any thread. Never blocks. Allocates (an error message only).
  SharedMutex(SharedArrayBuffer buffer, std::size_t byte_offset);

  // Blocks until this thread holds the mutex. Any thread. May block. Never
  // allocates.
  void lock() const;

  // Takes the mutex if it is free now; false otherwise. Any thread. Never
  // blocks. Never allocates.
  [[nodiscard]] bool try_lock() const;

  // As lock(), but gives up after `timeout` and returns false — never before
  // it has passed. Any thread. May block. Never allocates.
  template <class Rep, class Period>
  [[nodiscard]] bool try_lock_for(const std::chrono::duration<Rep, Period>& timeout) const {
    return lock_until(internal::sync_deadline_after(timeout));
  }

  // As try_lock_for, until a steady-clock `deadline`. Any thread. May block.
  // Never allocates.
  template <class Duration>
  [[nodiscard]] bool try_lock_until(
      const std::chrono::time_point<std::chrono::steady_clock, Duration>& deadline) const {
    return lock_until(internal::sync_deadline_at(deadline));
  }

  // Releases the mutex and wakes one waiter, if any may wait. The mutex must
  // be locked (debug assertion). Any thread. Never blocks (beyond a short
  // internal lock when there are waiters). Never allocates.
  void unlock() const;

  // Where the mutex lives. Any thread. Never blocks. Never allocates.
  [[nodiscard]] const SharedArrayBuffer& buffer() const noexcept { return word_.buffer(); }
  [[nodiscard]] std::size_t byte_offset() const noexcept { return word_.byte_offset(); }

 private:
  bool lock_until(internal::SyncDeadline deadline) const;

  Int32View word_;
};

// A counting semaphore in shared memory (as std::counting_semaphore with a
// maximum of INT32_MAX). Zero bytes: count 0, no waiters.
class SharedSemaphore {
 public:
  // Two Int32s: the count, then how many threads may be asleep on it.
  static constexpr std::size_t kByteLength = 8;
  static constexpr std::size_t kAlignment = 4;
  static constexpr std::int32_t kMax = std::numeric_limits<std::int32_t>::max();

  // The semaphore at `byte_offset` of `buffer`. Any thread. Never blocks.
  // Allocates (an error message only).
  SharedSemaphore(SharedArrayBuffer buffer, std::size_t byte_offset);

  // Resets the count to `count` (0..kMax), with no waiters. Only before other
  // threads use the semaphore (see the header comment). Any thread. Never
  // blocks. Never allocates.
  void init(std::int32_t count) const;

  // Adds `n` (>= 0; count + n <= kMax: debug assertion) to the count and
  // wakes up to `n` waiters. Any thread. Never blocks (beyond a short
  // internal lock when there are waiters). Never allocates.
  void release(std::int32_t n = 1) const;

  // Blocks until the count is positive, then takes one. Any thread. May
  // block. Never allocates.
  void acquire() const;

  // Takes one if the count is positive now; false otherwise. Any thread.
  // Never blocks. Never allocates.
  [[nodiscard]] bool try_acquire() const;

  // As acquire(), but gives up after `timeout` and returns false — never
  // before it has passed. Any thread. May block. Never allocates.
  template <class Rep, class Period>
  [[nodiscard]] bool try_acquire_for(const std::chrono::duration<Rep, Period>& timeout) const {
    return acquire_until(internal::sync_deadline_after(timeout));
  }

  // The count now (racy: for tests and diagnostics). Any thread. Never
  // blocks. Never allocates.
  [[nodiscard]] std::int32_t count_approx() const;

  // Where the semaphore lives. Any thread. Never blocks. Never allocates.
  [[nodiscard]] const SharedArrayBuffer& buffer() const noexcept { return words_.buffer(); }
  [[nodiscard]] std::size_t byte_offset() const noexcept { return words_.byte_offset(); }

 private:
  bool acquire_until(internal::SyncDeadline deadline) const;

  Int32View words_;
};

// A one-shot latch in shared memory (as std::latch): count_down() lowers the
// count, and wait() returns once it is zero. Zero bytes: count 0 (open).
class SharedLatch {
 public:
  // One Int32: the count.
  static constexpr std::size_t kByteLength = 4;
  static constexpr std::size_t kAlignment = 4;

  // The latch at `byte_offset` of `buffer`. Any thread. Never blocks.
  // Allocates (an error message only).
  SharedLatch(SharedArrayBuffer buffer, std::size_t byte_offset);

  // Resets the count to `count` (>= 0). Only before other threads use the
  // latch (see the header comment). Any thread. Never blocks. Never
  // allocates.
  void init(std::int32_t count) const;

  // Lowers the count by `n` (>= 0, not below zero: debug assertion); the one
  // that makes it zero wakes every waiter. Any thread. Never blocks (beyond a
  // short internal lock at zero). Never allocates.
  void count_down(std::int32_t n = 1) const;

  // Whether the count is zero. Any thread. Never blocks. Never allocates.
  [[nodiscard]] bool try_wait() const;

  // Blocks until the count is zero. Any thread. May block. Never allocates.
  void wait() const;

  // count_down(n), then wait(). Any thread. May block. Never allocates.
  void arrive_and_wait(std::int32_t n = 1) const;

  // Where the latch lives. Any thread. Never blocks. Never allocates.
  [[nodiscard]] const SharedArrayBuffer& buffer() const noexcept { return word_.buffer(); }
  [[nodiscard]] std::size_t byte_offset() const noexcept { return word_.byte_offset(); }

 private:
  Int32View word_;
};

// A reusable barrier in shared memory for a fixed number of parties (as
// std::barrier without a completion function): each phase ends when
// `parties` calls to arrive_and_wait() have been made, and the next begins
// at once. Zero bytes are not usable (zero parties): call init() first.
class SharedBarrier {
 public:
  // Three Int32s: arrivals in this phase, the phase (generation) counter,
  // and the number of parties.
  static constexpr std::size_t kByteLength = 12;
  static constexpr std::size_t kAlignment = 4;

  // The barrier at `byte_offset` of `buffer`. Any thread. Never blocks.
  // Allocates (an error message only).
  SharedBarrier(SharedArrayBuffer buffer, std::size_t byte_offset);

  // Resets the barrier for `parties` (>= 1) parties, at phase 0. Only before
  // other threads use the barrier (see the header comment). Any thread.
  // Never blocks. Never allocates.
  void init(std::int32_t parties) const;

  // Arrives at the current phase and blocks until all parties have arrived
  // at it. Each party calls it once per phase. Any thread. May block. Never
  // allocates.
  void arrive_and_wait() const;

  // Completed phases so far, wrapping at 2^32 (racy: for tests and
  // diagnostics). Any thread. Never blocks. Never allocates.
  [[nodiscard]] std::uint32_t phase_approx() const;

  // Where the barrier lives. Any thread. Never blocks. Never allocates.
  [[nodiscard]] const SharedArrayBuffer& buffer() const noexcept { return words_.buffer(); }
  [[nodiscard]] std::size_t byte_offset() const noexcept { return words_.byte_offset(); }

 private:
  Int32View words_;
};

}  // namespace weave
