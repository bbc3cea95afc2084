// What a pool task is made of, seen from both ends: TaskError (why a task
// failed), TaskFuture<T> (the caller's handle on one task), TaskContext (what
// the task itself sees on its worker) and TaskCompletion (for a task that
// finishes later, on its worker's loop).
//
// Threading: a TaskFuture may be used from any thread, one at a time (like
// std::future); cancel() and ready() may race with anything. A TaskContext
// and a TaskCompletion belong to the worker thread running the task.
//
// Memory ordering: every write the task made before it returned (or before
// TaskCompletion::resolve) is visible to whoever sees its future ready; every
// write the caller made before Pool::run is visible to the task.
#pragma once

#include <cassert>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <functional>
#include <future>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "base/deadline.h"
#include "channel/array_buffer.h"
#include "channel/value.h"
#include "pool/internal/task_record.h"

namespace weave {

class Pool;

namespace internal {
class PoolSource;
class NamedTaskRecord;
// True on a worker thread of `pool` (debug checks against a task blocking on
// its own pool). Any thread. Never blocks. Never allocates.
[[nodiscard]] bool on_worker_of(const PoolCore* pool) noexcept;
}  // namespace internal

// How a task ended when it did not return a result.
enum class TaskErrc {
  kThrew,        // the task threw; the worker lives on
  kCancelled,    // cancel(), the run's stop token, close-with-cancel or destroy()
  kTimedOut,     // RunOptions::timeout passed (a cancellation by the clock)
  kQueueFull,    // refused at max_queue (QueueFullAction::kReject), or evicted (kDropOldest)
  kPoolClosed,   // run() after close() or destroy()
  kWorkerDied,   // the worker ended under the task (arena cap, an exception in its loop, exit())
  kNotFound,     // no task registered under the name
  kDataClone,    // the args or the result could not be cloned or transferred
  kNotCompleted  // a deferred task dropped its TaskCompletion without settling it
};

// The error a failed task's future throws from get(). code() is a Node-style
// string: "ERR_TASK_THREW", "ABORT_ERR" (cancelled), "ERR_TASK_TIMEOUT",
// "ERR_QUEUE_FULL", "ERR_POOL_CLOSED", the dead worker's own code
// ("ERR_WORKER_OUT_OF_MEMORY", "ERR_UNCAUGHT_EXCEPTION", "ERR_WORKER_EXITED"),
// "ERR_TASK_NOT_FOUND", "ERR_DATA_CLONE", "ERR_TASK_NOT_COMPLETED".
// type_name() is the demangled type of what the task threw (kThrew, and
// kWorkerDied when an exception killed the worker); what() its message.
class TaskError : public std::runtime_error {
 public:
  TaskError(TaskErrc errc, std::string code, std::string type_name, const std::string& message)
      : std::runtime_error(message),
        errc_(errc),
        code_(std::move(code)),
        type_name_(std::move(type_name)) {}

  [[nodiscard]] TaskErrc errc() const noexcept { return errc_; }
  [[nodiscard]] const std::string& code() const noexcept { return code_; }
  [[nodiscard]] const std::string& type_name() const noexcept { return type_name_; }
  // Cancelled or timed out: the outcome a caller asked for (or its deadline).
  [[nodiscard]] bool cancelled() const noexcept {
    return errc_ == TaskErrc::kCancelled || errc_ == TaskErrc::kTimedOut;
  }

 private:
  TaskErrc errc_;
  std::string code_;
  std::string type_name_;
};

// The caller's handle on one task (Piscina's promise). Move-only. Dropping it
// does not cancel the task: the task still runs, its result is discarded.
template <class T>
class TaskFuture {
 public:
  TaskFuture() = default;
  TaskFuture(TaskFuture&&) noexcept = default;
  TaskFuture& operator=(TaskFuture&&) noexcept = default;

  // False for a default-made or moved-from future: on one, id(), ready(),
  // wait*(), get() and then() throw std::future_error(no_state), as
  // std::future's do (error() returns nullptr, cancel() false). Never blocks.
  [[nodiscard]] bool valid() const noexcept { return static_cast<bool>(rec_); }
  // The task's id, the one tracing hooks and TaskContext::id() report.
  [[nodiscard]] std::uint64_t id() const { return state().id(); }
  // Settled: get() will not block. Any thread. Never blocks. Never allocates.
  [[nodiscard]] bool ready() const { return state().settled(); }
  // Waits until it settles. Not from a task of the same pool (it may never
  // settle while this worker waits: a debug assertion). May block. Never
  // allocates.
  void wait() const { blocking_state().wait(std::nullopt); }
  // Waits at most `d` / until `t`; true once settled. A `d` of weave::kForever
  // (anything from ~100 years, base/deadline.h) or a `t` of time_point::max()
  // waits without a limit; one at or below zero only checks. May block.
  template <class Rep, class Period>
  bool wait_for(std::chrono::duration<Rep, Period> d) const {
    if (!(d > std::chrono::duration<Rep, Period>::zero()))
      return state().wait(std::chrono::nanoseconds(0));
    internal::TaskRecord& rec = blocking_state();
    if (is_forever(d)) return rec.wait(std::nullopt);
    return rec.wait(std::chrono::ceil<std::chrono::nanoseconds>(d));
  }
  template <class Clock, class Duration>
  bool wait_until(std::chrono::time_point<Clock, Duration> t) const {
    if (t == std::chrono::time_point<Clock, Duration>::max()) {
      return blocking_state().wait(std::nullopt);
    }
    const auto now = Clock::now();
    if (t <= now) return wait_for(std::chrono::nanoseconds(0));
    return wait_for(t - now);
  }
  // Waits, then returns the result (moved out) or throws the TaskError.
  // Once: a second get() throws std::future_error(no_state) (the result is
  // gone); id(), ready() and error() stay usable. May block.
  T get() {
    wait();
    if (taken_) throw std::future_error(std::future_errc::no_state);
    taken_ = true;
    if (const TaskError* e = rec_->error()) throw *e;
    if constexpr (!std::is_void_v<T>) return rec_->template take_result<T>();
  }
  // After ready(): the error, or nullptr when the task succeeded (or the
  // future has no task). Never blocks.
  [[nodiscard]] const TaskError* error() const noexcept {
    return rec_ && rec_->settled() ? rec_->error() : nullptr;
  }
  // Asks for the task to be cancelled (Piscina's abort). A queued task leaves
  // the queue and settles cancelled here and now; it never runs. A running
  // task's stop token is requested and the future settles cancelled when the
  // task returns — or when PoolOptions::cancel_grace passes, its worker then
  // being replaced. True if this call decided the outcome; false if the task
  // had settled (or a cancellation was already under way). Any thread. Never
  // blocks. Allocates (a timer, for a running task). Not concurrently with
  // the Pool's destructor (after it, every task has settled: false).
  bool cancel() { return rec_ && internal::cancel_task(*pool_, rec_, TaskErrc::kCancelled); }
  // Node's `await`: runs `fn(future)` — settled, so get() does not block —
  // on the calling thread's event loop once the task settles, keeping that
  // loop alive until then. Consumes the future. Any thread (with a loop it
  // runs). Never blocks. Allocates.
  void then(std::function<void(TaskFuture)> fn) && {
    (void)state();  // no_state on an empty future
    internal::TaskRecordRef rec = rec_;
    rec->on_settled([f = std::move(*this), fn = std::move(fn)]() mutable { fn(std::move(f)); });
  }

 private:
  friend class Pool;
  template <class>
  friend class TaskFuture;
  TaskFuture(internal::PoolCore* pool, internal::TaskRecordRef rec)
      : pool_(pool), rec_(std::move(rec)) {}
  [[nodiscard]] internal::TaskRecord& state() const {
    if (!valid()) throw std::future_error(std::future_errc::no_state);
    return *rec_;
  }
  [[nodiscard]] internal::TaskRecord& blocking_state() const {
    internal::TaskRecord& rec = state();
    assert((rec.settled() || !internal::on_worker_of(pool_)) &&
           "weave::TaskFuture: a task waits on a task of its own pool (it may deadlock)");
    return rec;
  }
  // For cancel() only, which touches it only while the task is unsettled,
  // and every task settles before the pool's core goes.
  internal::PoolCore* pool_ = nullptr;
  internal::TaskRecordRef rec_;
  bool taken_ = false;  // get() ran
};

// What a task sees while it runs, on its worker's thread. Every member:
// Owner thread only (the worker's, during the task). Never blocks. Only
// transfer() and defer() allocate.
class TaskContext {
 public:
  // The task's id (as in TaskFuture::id and the tracing hooks).
  [[nodiscard]] std::uint64_t id() const noexcept { return rec_.id(); }
  // The registered name; "" for a callable task.
  [[nodiscard]] std::string_view name() const noexcept { return rec_.name(); }
  // Requested when the task is cancelled or times out, or the pool is
  // destroyed. Long computations poll it or register a std::stop_callback.
  [[nodiscard]] std::stop_token stop_token() const noexcept { return token_; }
  [[nodiscard]] bool stop_requested() const noexcept { return token_.stop_requested(); }
  // Moves `buffer` into the caller's result instead of copying it (Piscina's
  // move()): the caller gets the same memory, this handle is detached. Only
  // for buffers that the returned Value holds. Never blocks. Allocates.
  void transfer(const ArrayBuffer& buffer) { result_transfer_.push_back(buffer); }
  // The task finishes later: its return value is ignored and the returned
  // completion settles it, on this worker's loop (a timer, a message, an
  // atomics::wait_async). Until then it takes one of the worker's
  // PoolOptions::concurrent_tasks_per_worker slots, and the worker may start
  // other tasks in the others. Throws std::logic_error when called twice for
  // one task, or in a task whose result is not a weave::Value (only a Value
  // can be stored later). Allocates.
  [[nodiscard]] class TaskCompletion defer();

 private:
  // Made by the pool's worker only; the result's transfer list is read by a
  // named task's record.
  friend class internal::PoolSource;
  friend class internal::NamedTaskRecord;
  TaskContext(internal::TaskRecord& rec, const std::stop_token& token,
              internal::WorkerSlot* slot) noexcept
      : rec_(rec), token_(token), slot_(slot) {}
  std::vector<ArrayBuffer>& result_transfer() noexcept { return result_transfer_; }
  [[nodiscard]] bool deferred() const noexcept { return deferred_; }

  internal::TaskRecord& rec_;
  const std::stop_token& token_;
  internal::WorkerSlot* slot_;
  std::vector<ArrayBuffer> result_transfer_;
  bool deferred_ = false;
};

// Settles a deferred task (TaskContext::defer) later, on the worker's loop.
// Move-only; destroying it unsettled fails the task with kNotCompleted.
// Owner thread only (the worker's). Never blocks.
class TaskCompletion {
 public:
  TaskCompletion() = default;
  TaskCompletion(TaskCompletion&&) noexcept = default;
  TaskCompletion& operator=(TaskCompletion&& o) noexcept;
  ~TaskCompletion();

  // The task's result: cloned for the caller, `transfer` buffers moved. A
  // value that cannot be cloned fails the task with kDataClone. Allocates.
  void resolve(Value result, std::vector<ArrayBuffer> transfer = {});
  // Fails the task as if it had thrown the exception (kThrew, its type and
  // message). Allocates.
  void reject(std::exception_ptr error);
  [[nodiscard]] bool valid() const noexcept { return static_cast<bool>(rec_); }
  // The task's stop token (see TaskContext::stop_token).
  [[nodiscard]] std::stop_token stop_token() const noexcept { return token_; }

 private:
  friend class TaskContext;
  TaskCompletion(internal::TaskRecordRef rec, std::stop_token token,
                 std::shared_ptr<internal::WorkerSlot> slot)
      : rec_(std::move(rec)), token_(std::move(token)), slot_(std::move(slot)) {}
  void finish(std::unique_ptr<TaskError> error);
  internal::TaskRecordRef rec_;
  std::stop_token token_;
  std::shared_ptr<internal::WorkerSlot> slot_;
};

// A named task: registered once per program (WEAVE_TASK or register_task),
// run by name with Pool::run(name, args). Args arrive cloned (or with their
// listed buffers moved); the returned Value is cloned back to the caller
// (its buffers listed with TaskContext::transfer move instead). A name, not a
// pointer, so that a pool in another process can find it too.
using TaskFunction = Value (*)(TaskContext& ctx, Value args);

// Registers `fn` under `name`. False (the first kept) if the name is taken or
// empty. Any thread. May block (briefly). Allocates.
bool register_task(std::string_view name, TaskFunction fn);
// The task registered under `name`, or nullptr. Any thread. May block (briefly).
[[nodiscard]] TaskFunction find_task(std::string_view name) noexcept;

}  // namespace weave

// Defines and registers a named task, at namespace scope, once per name:
//
//   WEAVE_TASK(square, ctx, args) {
//     std::int64_t n = *args.if_int();
//     return n * n;
//   }
//   weave::TaskFuture<weave::Value> f = pool.run("square", 12);
#define WEAVE_TASK(name, ctx, args)                                                        \
  static ::weave::Value weave_task_##name(::weave::TaskContext& ctx, ::weave::Value args); \
  [[maybe_unused]] static const bool weave_task_registered_##name =                        \
      ::weave::register_task(#name, &weave_task_##name);                                   \
  static ::weave::Value weave_task_##name([[maybe_unused]] ::weave::TaskContext& ctx,      \
                                          [[maybe_unused]] ::weave::Value args)
