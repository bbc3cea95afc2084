// One pool task's shared state: what the caller's TaskFuture, the queue, the
// worker running it and a canceller all point at. Private to //pool.
//
// The state word decides every race: a task moves kQueued -> kRunning ->
// kSettled, or kQueued -> kSettled (cancelled, evicted, refused); each move
// is a compare-exchange, so exactly one thread starts a task and exactly one
// settles it. Flag bits ride along: kCancelRequested (a running task was
// asked to stop), kWaiter (someone sleeps on the word: wake them), kThen (a
// continuation is installed: post it).
//
// Memory ordering: the settling thread writes the result or error, then
// publishes kSettled with release; readers check it with acquire.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <utility>

#include "channel/value.h"
#include "loop/event_loop.h"

namespace weave {
class TaskError;
enum class TaskErrc;
class TaskContext;
}  // namespace weave

namespace weave::internal {

class PoolCore;
struct WorkerSlot;

class TaskRecord {
 public:
  static constexpr std::uint32_t kQueued = 0;
  static constexpr std::uint32_t kRunning = 1;
  static constexpr std::uint32_t kSettled = 2;
  static constexpr std::uint32_t kSettling = 3;  // the winner is writing the outcome
  static constexpr std::uint32_t kPhaseMask = 3;
  static constexpr std::uint32_t kCancelRequested = 4;
  static constexpr std::uint32_t kWaiter = 8;
  static constexpr std::uint32_t kThen = 16;

  // Starts with two references: the caller's future and the queue's (a
  // task that is never queued gives the second back), and no id: the pool
  // gives it one as run() accepts or refuses it.
  explicit TaskRecord(std::string_view name) noexcept : name_(name) {}
  TaskRecord(const TaskRecord&) = delete;
  TaskRecord& operator=(const TaskRecord&) = delete;
  virtual ~TaskRecord();

  [[nodiscard]] std::uint64_t id() const noexcept { return id_; }
  // By the pool, before the record is shared with another thread.
  void set_id(std::uint64_t id) noexcept { id_ = id; }
  [[nodiscard]] std::string_view name() const noexcept { return name_; }
  [[nodiscard]] std::uint32_t phase() const noexcept {
    return state_.load(std::memory_order_acquire) & kPhaseMask;
  }
  [[nodiscard]] bool settled() const noexcept { return phase() == kSettled; }
  // Blocks until settled or the timeout; true once settled. Spins briefly,
  // then sleeps on the state word.
  bool wait(std::optional<std::chrono::nanoseconds> timeout) const;
  // nullptr when it succeeded (read after settled()).
  [[nodiscard]] const TaskError* error() const noexcept { return error_.get(); }
  template <class T>
  T take_result() {
    return std::move(**static_cast<std::optional<T>*>(result_slot()));
  }
  // Runs `fn` on the calling thread's loop once settled (see TaskFuture::then).
  void on_settled(Task fn);

  // --- the pool's side ------------------------------------------------------------------
  // Runs the task body on the worker thread. Stores the result (or lets an
  // exception out, for the pool to turn into an error); does not settle.
  virtual void invoke(TaskContext& ctx) = 0;
  // Destroys the callable and its arguments early (the task will not run).
  virtual void drop_payload() noexcept = 0;
  // Where the typed result lives: a std::optional<R> (nullptr for void).
  virtual void* result_slot() noexcept = 0;
  // R is weave::Value (so a deferred completion can store its result).
  [[nodiscard]] virtual bool returns_value() const noexcept = 0;

  // kQueued -> kRunning; false if it was settled first (cancelled in the queue).
  bool try_start() noexcept;
  // Settling in two steps, so the pool can count the outcome before anyone
  // sees it: claim() wins the right to settle and returns the state word it
  // took the task from (its phase, kQueued or kRunning, and its flags: a
  // kCancelRequested there decides a running task's outcome), or -1 if
  // someone else settled or is settling; publish() then stores the outcome (nullptr: the stored
  // result), wakes waiters and posts the continuation.
  // With only_queued, a task that has started is not claimed (-1).
  int claim(bool only_queued = false) noexcept;
  void publish(std::unique_ptr<TaskError> error) noexcept;
  // claim() + publish().
  bool settle(std::unique_ptr<TaskError> error) noexcept {
    if (claim() < 0) return false;
    publish(std::move(error));
    return true;
  }
  // Sets kCancelRequested on a running task; false if it is not running or
  // a cancellation was requested before.
  bool request_cancel() noexcept;
  [[nodiscard]] bool cancel_requested() const noexcept {
    return (state_.load(std::memory_order_acquire) & kCancelRequested) != 0;
  }

  void add_ref() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  // add_ref() unless the count already reached zero (the record is being
  // destroyed: its signal callback may still be running, see release()).
  // For a holder of a raw pointer that owns no reference. True if it took one.
  [[nodiscard]] bool try_add_ref() noexcept {
    std::uint32_t n = refs_.load(std::memory_order_relaxed);
    do {
      if (n == 0) return false;
    } while (!refs_.compare_exchange_weak(n, n + 1, std::memory_order_relaxed));
    return true;
  }
  void release() noexcept {
    // acq_rel: the last owner sees every write the others made.
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      // First, while the whole record still exists: the callback may be
      // running on another thread, and this waits for it.
      signal_callback.reset();
      delete this;
    }
  }

  // Set by the pool: times for the metrics, the worker running it, why a
  // cancellation was asked (kCancelled or kTimedOut), the caller's signal.
  std::uint64_t queued_ticks = 0;   // internal::ticks() at run()
  std::uint64_t started_ticks = 0;  // when a worker started it
  WorkerSlot* slot = nullptr;       // written by the worker before try_start()
  std::atomic<int> cancel_reason{0};
  std::unique_ptr<std::stop_callback<std::function<void()>>> signal_callback;
  // The task's own stop source when its worker runs several at once
  // (otherwise the worker's shared one); written before try_start().
  std::stop_source stop{std::nostopstate};
  // RunOptions::timeout: the deadline, listed in the pool's deadlines
  // (internal/pool_core.h) while unsettled. Written before the record is
  // shared with another thread.
  Clock::time_point deadline{};
  bool timed = false;

 private:
  mutable std::atomic<std::uint32_t> state_{kQueued};
  std::atomic<std::uint32_t> refs_{2};
  std::uint64_t id_ = 0;
  const std::string_view name_;  // static storage (the task registry), or ""
  std::unique_ptr<TaskError> error_;
  // The continuation (then()), allocated only when one is installed:
  // written before kThen is set, read after it is seen.
  struct Continuation {
    Task fn;
    LoopHandle loop;
    KeepAlive keep_alive;
  };
  std::unique_ptr<Continuation> then_;
};

// An owning pointer to a TaskRecord (intrusive count).
class TaskRecordRef {
 public:
  TaskRecordRef() = default;
  // Adopts one reference.
  explicit TaskRecordRef(TaskRecord* r) noexcept : r_(r) {}
  TaskRecordRef(const TaskRecordRef& o) noexcept : r_(o.r_) {
    if (r_) r_->add_ref();
  }
  TaskRecordRef(TaskRecordRef&& o) noexcept : r_(std::exchange(o.r_, nullptr)) {}
  TaskRecordRef& operator=(TaskRecordRef o) noexcept {
    std::swap(r_, o.r_);
    return *this;
  }
  ~TaskRecordRef() {
    if (r_) r_->release();
  }
  TaskRecord* operator->() const noexcept { return r_; }
  TaskRecord& operator*() const noexcept { return *r_; }
  [[nodiscard]] TaskRecord* get() const noexcept { return r_; }
  // Gives up ownership without releasing.
  TaskRecord* release() noexcept { return std::exchange(r_, nullptr); }
  explicit operator bool() const noexcept { return r_ != nullptr; }

 private:
  TaskRecord* r_ = nullptr;
};

// The record of a task whose body is `Fn` and whose result is R.
template <class R, class Fn>
class TypedTaskRecord final : public TaskRecord {
 public:
  TypedTaskRecord(std::string_view name, Fn fn) : TaskRecord(name), fn_(std::move(fn)) {}
  void invoke(TaskContext& ctx) override {
    if constexpr (std::is_void_v<R>) {
      (*fn_)(ctx);
    } else {
      result_.emplace((*fn_)(ctx));
    }
    fn_.reset();
  }
  void drop_payload() noexcept override { fn_.reset(); }
  [[nodiscard]] bool returns_value() const noexcept override { return std::is_same_v<R, Value>; }
  void* result_slot() noexcept override {
    if constexpr (std::is_void_v<R>) {
      return nullptr;
    } else {
      return &result_;
    }
  }

 private:
  std::optional<Fn> fn_;
  struct Nothing {};
  [[no_unique_address]] std::conditional_t<std::is_void_v<R>, Nothing, std::optional<R>> result_;
};

class TaskRecordRef;
// Cancels (errc kCancelled or kTimedOut) a task of `pool`; see
// TaskFuture::cancel. The caller holds a reference (`rec`), so the record
// outlives the call and any grace timer it arms. Any thread.
bool cancel_task(PoolCore& pool, const TaskRecordRef& rec, TaskErrc errc);
// A TaskError for `errc` (its code string chosen here), with a message.
std::unique_ptr<TaskError> make_task_error(TaskErrc errc, std::string message,
                                           std::string type_name = {}, std::string code = {});
// The error of a task cancelled (kCancelled) or timed out (kTimedOut).
std::unique_ptr<TaskError> cancelled_error(TaskErrc why);

}  // namespace weave::internal
