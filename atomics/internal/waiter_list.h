// weave::internal waiter list: the ECMAScript memory model's WaiterList under
// Atomics.wait / Atomics.notify, keyed by the address waited on.
//
// A fixed table of kWaiterShards shards, each a mutex and an intrusive FIFO
// list (doubly linked, so a timed-out waiter unlinks itself in O(1)). An
// address hashes to one shard; its waiters are the nodes in that shard's list
// with that address, in arrival order. A waiter's node lives on its own stack
// for the duration of the wait, and the waiter blocks on its own futex word
// (Waiter::state), so notify wakes exactly the threads it chose, in FIFO
// order — a bare futex on the shared word wakes in an unspecified order.
//
// No lost wake-up: wait_on_address compares the value and enqueues the node
// under the shard lock, and notify_address scans under the same lock, so a
// notify either finds the waiter or happened wholly before the compare (and
// then the compare sees any value stored before that notify).
//
// Node lifetime: the notifier unlinks a node, sets its state and calls
// futex_wake while holding the shard lock; a waiter that sees its state
// change takes and releases the lock once before returning, so no notifier
// touches a node after its owner's stack frame is gone.
//
// Interruption (Worker::terminate()): a thread may install a WaitInterruptor
// (set_thread_interruptor). interrupt() marks it pending — every later wait
// on that thread returns kInterrupted at once — and wakes the wait in
// progress, if any, by notify's own path for that one node (unlink, mark,
// wake, under the shard lock). The waiter publishes its node in the
// interruptor (under the interruptor's mutex) before it takes the shard lock,
// and re-checks `pending` under the shard lock, so an interrupt that lands
// before the node is linked is seen by the waiter, and one that lands after
// finds the node linked: never lost. Lock order: interruptor, then shard; a
// waiter never holds both.
//
// Asynchronous waiters (Atomics.waitAsync, loop/atomics_async.h): an
// AsyncWaiter's node joins the same FIFO list; instead of a futex word, a
// notify that picks it calls its on_notified() under the shard lock (which
// schedules the waiter on its event loop without allocating). Its owner keeps
// it alive while it is linked; notify's scan is the same for both kinds.
//
// Threading: every function here is safe from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>

#include "atomics/internal/cache_line.h"

namespace weave::internal {

enum class WaitOutcome : std::uint8_t {
  kOk,           // woken by notify
  kNotEqual,     // the value differed; never enqueued
  kTimedOut,     // the deadline passed first
  kInterrupted,  // the thread's WaitInterruptor fired (Worker::terminate())
};

struct Shard;
class AsyncWaiter;

// A node on a shard's FIFO list. A blocking waiter's lives on its stack; an
// AsyncWaiter's inside it.
struct Waiter {
  const void* addr = nullptr;
  Waiter* prev = nullptr;
  Waiter* next = nullptr;
  bool linked = false;  // on its shard's list; under the shard lock
  // Written by the waker under the shard lock; a blocking waiter parks on it.
  std::atomic<std::uint32_t> state{0};
  AsyncWaiter* async = nullptr;  // set for an asynchronous waiter
};

// An asynchronous waiter (Atomics.waitAsync): it joins the FIFO list like a
// blocking one, but nothing blocks on it. A notify that picks it unlinks it
// and calls on_notified() — under the shard lock, on the notifier's thread,
// so it must be quick, must not block and must not call back into the list
// (post the completion somewhere instead). Owned by its creator, who keeps it
// alive while it is linked.
class AsyncWaiter {
 public:
  virtual ~AsyncWaiter() = default;
  virtual void on_notified() noexcept = 0;

 private:
  friend WaitOutcome enqueue_async(void*, std::size_t, std::uint64_t, AsyncWaiter*) noexcept;
  friend bool cancel_async(AsyncWaiter*) noexcept;
  friend struct Shard;
  Waiter node_;
};

// Compares like wait_on_address and, if equal, links `w` (kOk: it will get
// on_notified(), unless cancelled); kNotEqual otherwise, not linked.
// Any thread. Never blocks (beyond the shard lock). Never allocates.
WaitOutcome enqueue_async(void* addr, std::size_t width, std::uint64_t expected,
                          AsyncWaiter* w) noexcept;
// Unlinks `w` if it is still linked: true if this call did (no
// on_notified() will come), false if a notify took it first (it came or is
// coming). Any thread. Never blocks (beyond the shard lock). Never allocates.
bool cancel_async(AsyncWaiter* w) noexcept;

// One thread's interruption point for waits (see the top). Owned by whoever
// may interrupt the thread (a worker's shared state); installed on the
// thread with set_thread_interruptor. interrupt(): Any thread. Never blocks
// (beyond two short locks). Never allocates.
class WaitInterruptor {
 public:
  void interrupt() noexcept;
  [[nodiscard]] bool pending() const noexcept { return pending_.load(std::memory_order_seq_cst); }

 private:
  friend WaitOutcome wait_on_address(void*, std::size_t, std::uint64_t,
                                     const std::chrono::steady_clock::time_point*) noexcept;
  std::atomic<bool> pending_{false};
  std::mutex mu_;              // guards the two below
  Waiter* current_ = nullptr;  // the wait in progress on the thread, if any
  Shard* shard_ = nullptr;
};

// Installs `interruptor` for the calling thread's waits (nullptr removes it).
// The interruptor must outlive the thread's waits. Never blocks.
void set_thread_interruptor(WaitInterruptor* interruptor) noexcept;

// Compares `width` (4 or 8) bytes at `addr`, read with a seq_cst atomic load,
// to `expected`; if equal, blocks until notified or `deadline` (nullptr: no
// deadline; steady clock). `addr` must be naturally aligned.
// Any thread. May block. Never allocates.
WaitOutcome wait_on_address(void* addr, std::size_t width, std::uint64_t expected,
                            const std::chrono::steady_clock::time_point* deadline) noexcept;

// Wakes up to `count` waiters on `addr`, oldest first; returns how many.
// Any thread. Never blocks (beyond the shard lock). Never allocates.
std::size_t notify_address(const void* addr, std::size_t count) noexcept;

// Waiters enqueued on `addr` right now (racy; for tests).
// Any thread. Never blocks (beyond the shard lock). Never allocates.
std::size_t waiter_count_on_address_approx(const void* addr) noexcept;

}  // namespace weave::internal
