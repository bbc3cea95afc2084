// TaskRecord (pool/internal/task_record.h): the state word's moves, waiting
// on it, continuations, and the task errors.
#include "pool/internal/task_record.h"

#include <climits>
#include <memory>
#include <optional>
#include <string>

#include "atomics/internal/futex.h"
#include "atomics/internal/spin_lock.h"
#include "atomics/internal/spin_policy.h"
#include "base/deadline.h"
#include "loop/event_loop.h"
#include "pool/task.h"

namespace weave::internal {

// --- records -----------------------------------------------------------------------

TaskRecord::~TaskRecord() = default;

bool TaskRecord::wait(std::optional<std::chrono::nanoseconds> timeout) const {
  // The library's one spin-then-park policy (atomics/internal/spin_policy.h):
  // a task that settles within the spin costs the waiter no system call.
  {
    const Clock::time_point spin_until = Clock::now() + kSpinBeforePark;
    for (int i = 1;; ++i) {
      if (settled()) return true;
      cpu_relax();
      if ((i & (kSpinPausesPerClockRead - 1)) == 0 && Clock::now() >= spin_until) break;
    }
  }
  // A forever timeout (or one whose deadline would overflow) waits without one.
  std::optional<Clock::time_point> deadline;
  if (timeout) {
    const Clock::time_point d = deadline_after(Clock::now(), *timeout);
    if (!is_forever(d)) deadline = d;
  }
  for (;;) {
    std::uint32_t s = state_.load(std::memory_order_acquire);
    if ((s & kPhaseMask) == kSettled) return true;
    if (!(s & kWaiter)) {
      if (!state_.compare_exchange_weak(s, s | kWaiter, std::memory_order_acq_rel)) continue;
      s |= kWaiter;
    }
    std::optional<std::chrono::nanoseconds> left;
    if (deadline) {
      const auto now = Clock::now();
      if (now >= *deadline) return settled();
      left = std::chrono::duration_cast<std::chrono::nanoseconds>(*deadline - now);
    }
    futex_wait(state_, s, left);
  }
}

bool TaskRecord::try_start() noexcept {
  std::uint32_t s = state_.load(std::memory_order_relaxed);
  do {
    if ((s & kPhaseMask) != kQueued) return false;
  } while (
      !state_.compare_exchange_weak(s, (s & ~kPhaseMask) | kRunning, std::memory_order_acq_rel));
  return true;
}

bool TaskRecord::request_cancel() noexcept {
  std::uint32_t s = state_.load(std::memory_order_relaxed);
  do {
    if ((s & kPhaseMask) != kRunning || (s & kCancelRequested)) return false;
  } while (!state_.compare_exchange_weak(s, s | kCancelRequested, std::memory_order_acq_rel));
  return true;
}

int TaskRecord::claim(bool only_queued) noexcept {
  std::uint32_t s = state_.load(std::memory_order_relaxed);
  do {
    const std::uint32_t phase = s & kPhaseMask;
    if (phase == kSettled || phase == kSettling) return -1;
    if (only_queued && phase != kQueued) return -1;
  } while (
      !state_.compare_exchange_weak(s, (s & ~kPhaseMask) | kSettling, std::memory_order_acq_rel));
  return static_cast<int>(s & (kPhaseMask | kCancelRequested));
}

void TaskRecord::publish(std::unique_ptr<TaskError> error) noexcept {
  error_ = std::move(error);
  // kSettling (3) -> kSettled (2); release publishes the outcome, and the
  // flags set meanwhile come back in `old`.
  const std::uint32_t old = state_.fetch_and(~std::uint32_t{1}, std::memory_order_acq_rel);
  if (old & kWaiter) futex_wake(state_, INT_MAX);
  if (old & kThen) {
    try {
      (void)then_->loop.post(std::move(then_->fn));
    } catch (...) {
      // Out of memory posting the continuation: it is dropped with its loop's
      // keep-alive below; the future itself is settled.
    }
    then_->keep_alive.reset();
  }
}

void TaskRecord::on_settled(Task fn) {
  then_ = std::make_unique<Continuation>();
  then_->fn = std::move(fn);
  then_->loop = EventLoop::current().handle();
  then_->keep_alive = then_->loop.keep_alive();
  std::uint32_t s = state_.load(std::memory_order_acquire);
  for (;;) {
    if ((s & kPhaseMask) == kSettled) {
      (void)then_->loop.post(std::move(then_->fn));
      then_->keep_alive.reset();
      return;
    }
    if (state_.compare_exchange_weak(s, s | kThen, std::memory_order_acq_rel)) return;
  }
}

std::unique_ptr<TaskError> make_task_error(TaskErrc errc, std::string message,
                                           std::string type_name, std::string code) {
  if (code.empty()) {
    switch (errc) {
      case TaskErrc::kThrew:
        code = "ERR_TASK_THREW";
        break;
      case TaskErrc::kCancelled:
        code = "ABORT_ERR";
        break;
      case TaskErrc::kTimedOut:
        code = "ERR_TASK_TIMEOUT";
        break;
      case TaskErrc::kQueueFull:
        code = "ERR_QUEUE_FULL";
        break;
      case TaskErrc::kPoolClosed:
        code = "ERR_POOL_CLOSED";
        break;
      case TaskErrc::kWorkerDied:
        code = "ERR_WORKER_EXITED";
        break;
      case TaskErrc::kNotFound:
        code = "ERR_TASK_NOT_FOUND";
        break;
      case TaskErrc::kDataClone:
        code = "ERR_DATA_CLONE";
        break;
      case TaskErrc::kNotCompleted:
        code = "ERR_TASK_NOT_COMPLETED";
        break;
    }
  }
  return std::make_unique<TaskError>(errc, std::move(code), std::move(type_name), message);
}

std::unique_ptr<TaskError> cancelled_error(TaskErrc why) {
  return make_task_error(why, why == TaskErrc::kTimedOut ? "weave::Pool: the task timed out"
                                                         : "weave::Pool: the task was cancelled");
}

}  // namespace weave::internal
