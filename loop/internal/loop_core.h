// The cross-thread part of an event loop: its wake word, its ready list of
// sources and its queue of posted tasks. Everything here may be used from any
// thread; the EventLoop that owns the core drains it on its own thread.
#pragma once

#include <concurrentqueue/concurrentqueue.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>

#include "atomics/internal/cache_line.h"
#include "loop/internal/task.h"

namespace weave {
class EventLoop;
}

namespace weave::internal {

class LoopCore;

// What a hot source's poll() found.
enum class Readiness : std::uint8_t {
  kIdle,       // nothing to do: counts toward arming the source
  kReady,      // dispatch() would make progress now
  kGathering,  // work is coming in, and the source lets more of it gather
               // before it takes it (a port's batch building): neither
               // ready nor idle, so the loop keeps polling without arming
};

// Something a loop dispatches after another thread scheduled it: a port's
// inbox, a broadcast subscription, later a file descriptor. The loop that the
// source is registered with holds a strong reference to it; a producer
// schedules it through LoopCore::schedule only while it knows the source is
// still registered (the source's owner unregisters under the same lock the
// producers take, see channel/internal/inbox.h).
//
// Hot sources. A source that was just dispatched is likely to get more work
// soon (a port in a conversation, a stream). Rather than arming it for a
// wake-up — which makes its producers pay an atomic read-modify-write per
// post to learn whether to schedule it — the source asks to stay hot
// (EventLoop::mark_hot): the loop polls it every turn and while spinning
// before a park, and its producers only enqueue. Before the loop really
// parks (or once a hot source has been idle for a while) the loop arms its
// hot sources: arm_begin() on each, one heavy_barrier() for all (see
// atomics/internal/barrier.h), then arm_end() on each; a source whose
// arm_end() finds work stays hot and the loop does not park.
class LoopSource {
 public:
  virtual ~LoopSource() = default;
  // Called on the loop's thread, once per schedule (several schedules may be
  // merged into one call) and whenever poll() says so. Drains what the
  // source has for this turn.
  virtual void dispatch(EventLoop& loop) = 0;
  // Called on the loop's thread when the loop is destroyed (its thread exits)
  // while the source is still registered: forget the loop.
  virtual void on_loop_destroyed() noexcept {}
  // --- hot sources (loop thread only; never block, never allocate) ------------
  // Whether dispatch() would make progress now.
  virtual Readiness poll() noexcept { return Readiness::kIdle; }
  // Step 1 of arming: from now on producers signal (schedule) the source.
  virtual void arm_begin() noexcept {}
  // Step 2, after a heavy barrier: true when nothing arrived meanwhile (the
  // source is armed and leaves the hot list); false when work is waiting.
  virtual bool arm_end() noexcept { return true; }

 private:
  friend class LoopCore;
  friend class weave::EventLoop;
  // Intrusive link in the core's ready stack; queued_ keeps a source in it at
  // most once, so a flood of schedules costs one push.
  std::atomic<bool> queued_{false};
  LoopSource* next_ = nullptr;
  // On the owning loop's hot list (loop thread only), and for how many
  // consecutive polls it had nothing.
  bool hot_ = false;
  std::uint32_t idle_polls_ = 0;
};

class LoopCore {
 public:
  LoopCore() : tasks_(kInitialTaskCapacity) {}
  LoopCore(const LoopCore&) = delete;
  LoopCore& operator=(const LoopCore&) = delete;
  ~LoopCore();

  // Puts `s` on the ready stack (once, however often it is called before the
  // loop takes it) and wakes the loop if it is parked. Any thread. Never
  // blocks. Never allocates.
  void schedule(LoopSource* s) noexcept;
  // Queues a task to run on the loop. False once the loop has ended;
  // std::bad_alloc (nothing queued) when the queue cannot grow. Any thread.
  // Never blocks. Allocates.
  bool post(Task task);
  // Wakes the loop if parked, otherwise makes its next park return at once.
  // Any thread. Never blocks. Never allocates.
  void notify() noexcept;
  void request_stop() noexcept;
  void add_external_ref() noexcept { external_refs_.fetch_add(1, std::memory_order_relaxed); }
  void release_external_ref() noexcept;

  // --- owner thread only ---------------------------------------------------

  // Takes every scheduled source, oldest first, clearing their queued_ flags.
  template <class Fn>
  void take_ready(Fn&& visit);
  // Runs queued tasks; returns how many ran.
  template <class KeepGoing>
  std::size_t run_tasks(KeepGoing&& keep_going);
  // Spins briefly, then parks until notify() or the timeout. Returns at once
  // if a notify() arrived since the last park. While spinning it calls
  // `poll(ctx)` now and then and returns as soon as that says work is there;
  // before parking it calls `arm(ctx)`, which returns false to cancel the
  // park (work arrived while arming). Returns the time spent parked in the
  // kernel (the spin counts as busy).
  using PollFn = bool (*)(void* ctx) noexcept;
  std::chrono::nanoseconds park(std::optional<std::chrono::nanoseconds> timeout, PollFn poll,
                                PollFn arm, void* ctx) noexcept;
  bool take_stop_request() noexcept {
    // A plain load first: checked between callbacks, usually false.
    return stop_requested_.load(std::memory_order_relaxed) &&
           stop_requested_.exchange(false, std::memory_order_acq_rel);
  }
  [[nodiscard]] bool has_pending_tasks() const noexcept {
    return pending_tasks_.load(std::memory_order_acquire) > 0;
  }
  [[nodiscard]] bool has_external_refs() const noexcept {
    return external_refs_.load(std::memory_order_acquire) > 0;
  }
  // Marks the core dead (post() fails from now on) and destroys, unrun, the
  // tasks that made it in before: the loop has ended, and no user code runs
  // at thread exit (see loop/event_loop.h). It waits for posters that passed
  // the dead check to finish enqueuing: a short spin, then sched_yield — which
  // under SCHED_FIFO, with such a poster preempted on the same core by this
  // thread, would spin for good (weave does not support SCHED_FIFO threads).
  // Called by the owning EventLoop's destructor. Never blocks (see above).
  void shut_down() noexcept;
  [[nodiscard]] bool owned_by_current_thread() const noexcept;
  void bind_to_current_thread() noexcept;

  // Counters for tests and metrics (relaxed; any thread): how often a
  // producer had to make a wake-up system call, and how often a source was
  // pushed onto the ready stack. A busy loop that is never parked costs no
  // wake-ups; a flood of messages to one armed port costs one push.
  [[nodiscard]] std::uint64_t futex_wakes_approx() const noexcept {
    return futex_wakes_.load(std::memory_order_relaxed);
  }
  [[nodiscard]] std::uint64_t ready_pushes_approx() const noexcept {
    return ready_pushes_.load(std::memory_order_relaxed);
  }
  // Loop turns and time parked in the kernel, for utilization. Written by the
  // owner only (a relaxed load + store: one writer), read by any thread; a
  // reader may see one counter a turn ahead of the other.
  [[nodiscard]] std::uint64_t turns_approx() const noexcept {
    return turns_.load(std::memory_order_relaxed);
  }
  [[nodiscard]] std::chrono::nanoseconds idle_time_approx() const noexcept {
    return std::chrono::nanoseconds(idle_ns_.load(std::memory_order_relaxed));
  }
  void count_turn() noexcept {
    turns_.store(turns_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  void count_idle(std::chrono::nanoseconds d) noexcept {
    idle_ns_.store(idle_ns_.load(std::memory_order_relaxed) + d.count(), std::memory_order_relaxed);
  }

 private:
  static constexpr std::uint32_t kRunning = 0;
  static constexpr std::uint32_t kSleeping = 1;
  static constexpr std::uint32_t kNotified = 2;

  // What a producer writes to hand work over — the ready stack, the wake
  // word and the two counters — shares one cache line: a schedule pulls that
  // line once, not once per field. What the owner reads every turn (pending
  // tasks, keep-alives, stop) sits on its own line, so producers do not
  // disturb it.
  alignas(kFalseSharingSpan) std::atomic<LoopSource*> ready_head_{nullptr};
  std::atomic<std::uint32_t> wake_state_{kRunning};
  std::atomic<std::uint64_t> futex_wakes_{0};
  std::atomic<std::uint64_t> ready_pushes_{0};
  alignas(kFalseSharingSpan) std::atomic<std::int64_t> pending_tasks_{0};
  std::atomic<std::int64_t> external_refs_{0};
  std::atomic<bool> stop_requested_{false};
  std::atomic<bool> dead_{false};
  std::atomic<std::uint64_t> turns_{0};
  std::atomic<std::int64_t> idle_ns_{0};
  const void* owner_tag_ = nullptr;
  // One block to start, not moodycamel's default six: an idle worker's loop
  // then costs ~2 KiB here instead of ~13 KiB; the queue grows on demand.
  static constexpr std::size_t kInitialTaskCapacity =
      moodycamel::ConcurrentQueueDefaultTraits::BLOCK_SIZE;
  moodycamel::ConcurrentQueue<Task> tasks_;
};

static_assert(alignof(LoopCore) >= 64,
              "weave::LoopCore: the producer-written and owner-read lines must "
              "not share a line");

template <class Fn>
void LoopCore::take_ready(Fn&& visit) {
  // acquire: pairs with the release CAS in schedule(), so the source's state
  // written before it was scheduled is visible here.
  // A plain load first: most turns find the stack empty, and an exchange
  // (an RMW) per turn would cost every turn a locked instruction.
  if (ready_head_.load(std::memory_order_relaxed) == nullptr) return;
  LoopSource* head = ready_head_.exchange(nullptr, std::memory_order_acquire);
  // The stack is newest-first; reverse it so sources run in schedule order.
  LoopSource* prev = nullptr;
  while (head) {
    LoopSource* next = head->next_;
    head->next_ = prev;
    prev = head;
    head = next;
  }
  while (prev) {
    LoopSource* next = prev->next_;
    prev->next_ = nullptr;
    // Cleared before dispatch: a schedule during dispatch re-queues it. An
    // RMW, not a store: a schedule merged into this one (it found queued_
    // set) wrote state too, and this acquire makes that visible to dispatch.
    prev->queued_.exchange(false, std::memory_order_acq_rel);
    visit(prev);
    prev = next;
  }
}

template <class KeepGoing>
std::size_t LoopCore::run_tasks(KeepGoing&& keep_going) {
  std::size_t ran = 0;
  Task task;
  // Bounded by what is pending now, so a task that posts more cannot starve
  // timers and messages.
  const auto budget = pending_tasks_.load(std::memory_order_acquire);
  while (static_cast<std::int64_t>(ran) < budget && keep_going() && tasks_.try_dequeue(task)) {
    ++ran;
    Task run = std::move(task);
    // Counted down before running so that a throwing task is not left pending.
    pending_tasks_.fetch_sub(1, std::memory_order_acq_rel);
    run();
  }
  return ran;
}

}  // namespace weave::internal
