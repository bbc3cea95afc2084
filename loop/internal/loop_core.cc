#include "loop/internal/loop_core.h"

#include <algorithm>
#include <new>
#include <thread>

#include "atomics/internal/futex.h"
#include "atomics/internal/spin_policy.h"

namespace weave::internal {

namespace {
// Spin this long before parking (atomics/internal/spin_policy.h).
constexpr auto kSpinFor = kSpinBeforePark;
constexpr int kClockMask = kSpinPausesPerClockRead - 1;
thread_local const char tls_tag = 0;
}  // namespace

LoopCore::~LoopCore() = default;

bool LoopCore::owned_by_current_thread() const noexcept {
  return owner_tag_ == &tls_tag && !dead_.load(std::memory_order_acquire);
}
void LoopCore::bind_to_current_thread() noexcept { owner_tag_ = &tls_tag; }

void LoopCore::schedule(LoopSource* s) noexcept {
  // One push per batch: only the first schedule after a take_ready links it.
  if (s->queued_.exchange(true, std::memory_order_acq_rel)) {
    notify();  // already queued; make sure the loop looks
    return;
  }
  ready_pushes_.fetch_add(1, std::memory_order_relaxed);  // a counter only: no ordering
  LoopSource* head = ready_head_.load(std::memory_order_relaxed);
  do {
    s->next_ = head;
    // release: publishes s->next_ and everything the producer wrote before.
  } while (!ready_head_.compare_exchange_weak(head, s, std::memory_order_release,
                                              std::memory_order_relaxed));
  notify();
}

void LoopCore::notify() noexcept {
  // acq_rel: the release half publishes what the caller queued; the loop's
  // exchange in park() acquires it. Only a parked loop costs a system call.
  if (wake_state_.exchange(kNotified, std::memory_order_acq_rel) == kSleeping) {
    futex_wakes_.fetch_add(1, std::memory_order_relaxed);  // a counter only: no ordering
    futex_wake(wake_state_, 1);
  }
}

bool LoopCore::post(Task task) {
  // seq_cst pairs with shut_down(): either this post sees dead_, or
  // shut_down() sees the pending count and waits for the task to be queued.
  pending_tasks_.fetch_add(1, std::memory_order_seq_cst);
  if (dead_.load(std::memory_order_seq_cst)) {
    pending_tasks_.fetch_sub(1, std::memory_order_seq_cst);
    return false;
  }
  if (!tasks_.enqueue(std::move(task))) [[unlikely]] {
    // The queue could not grow: nothing was queued (the task is untouched).
    pending_tasks_.fetch_sub(1, std::memory_order_seq_cst);
    throw std::bad_alloc();
  }
  notify();
  return true;
}

void LoopCore::request_stop() noexcept {
  stop_requested_.store(true, std::memory_order_release);
  notify();
}

void LoopCore::release_external_ref() noexcept {
  // The last release wakes the loop so that it re-checks whether to exit.
  if (external_refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) notify();
}

std::chrono::nanoseconds LoopCore::park(std::optional<std::chrono::nanoseconds> timeout,
                                        PollFn poll, PollFn arm, void* ctx) noexcept {
  using std::chrono::steady_clock;
  // Spin first. The clock is read only every 64 pauses, so a wake-up that
  // comes quickly (the common case for a busy peer) costs no clock read; the
  // first read starts the spin budget, a few microseconds late at most.
  steady_clock::time_point spin_until{};
  for (int i = 0;; ++i) {
    if (wake_state_.load(std::memory_order_relaxed) == kNotified) {
      // acq_rel: acquires everything published before the latest notify().
      wake_state_.exchange(kRunning, std::memory_order_acq_rel);
      return std::chrono::nanoseconds(0);
    }
    // Hot sources: a post to one costs its producer no signal, so look.
    if (poll(ctx)) return std::chrono::nanoseconds(0);
    cpu_relax();
    if ((i & kClockMask) != kClockMask) continue;
    const auto now = steady_clock::now();
    if (i == kClockMask) {
      spin_until = now + kSpinFor;
      if (timeout) {
        if (*timeout <= kSpinFor) spin_until = now + *timeout;
        *timeout -= std::min<std::chrono::nanoseconds>(*timeout, kSpinFor);
      }
    } else if (now >= spin_until) {
      break;
    }
  }
  // A timer due within the spin has had its time: do not park for it.
  if (timeout && timeout->count() == 0) return std::chrono::nanoseconds(0);
  // From here on producers must signal: arm the hot sources. Work that came
  // in meanwhile cancels the park.
  if (!arm(ctx)) return std::chrono::nanoseconds(0);
  std::uint32_t expected = kRunning;
  std::chrono::nanoseconds idle{0};
  if (wake_state_.compare_exchange_strong(expected, kSleeping, std::memory_order_acq_rel)) {
    const auto start = steady_clock::now();
    futex_wait(wake_state_, kSleeping, timeout);
    idle = std::chrono::duration_cast<std::chrono::nanoseconds>(steady_clock::now() - start);
  }
  // Whether notified, timed out or woken spuriously: consume any notification.
  wake_state_.exchange(kRunning, std::memory_order_acq_rel);
  return idle;
}

void LoopCore::shut_down() noexcept {
  dead_.store(true, std::memory_order_seq_cst);
  // Posters that passed the dead_ check are about to enqueue: wait for each
  // of their tasks, and destroy it unrun, with the ones already queued. A
  // task's destructor that posts here again is refused (dead_ is set).
  Task task;
  for (int idle = 0; pending_tasks_.load(std::memory_order_seq_cst) > 0;) {
    if (tasks_.try_dequeue(task)) {
      pending_tasks_.fetch_sub(1, std::memory_order_acq_rel);
      task.reset();
      idle = 0;
    } else if (++idle < 128) {
      cpu_relax();
    } else {
      std::this_thread::yield();  // the poster may be preempted on our core
    }
  }
}

}  // namespace weave::internal
