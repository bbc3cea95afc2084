// weave::Pool: run CPU-bound work on a pool of weave Workers (Node's
// Piscina, for C++), with a bounded queue, cancellation, timeouts, metrics
// and tracing hooks.
//
//   WEAVE_TASK(fib, ctx, args) { return fib_of(*args.if_int()); }
//
//   weave::Pool pool;                                  // one worker per hardware thread
//   weave::TaskFuture<weave::Value> a = pool.run("fib", 30);
//   weave::TaskFuture<std::uint64_t> b = pool.run([] { return crc_of(buf); });
//   std::printf("%lld %llu\n", (long long)*a.get().if_int(), (unsigned long long)b.get());
//
// What it defines: Pool, its options, RunOptions, metrics and hooks. Tasks,
// futures and errors are in pool/task.h.
//
// Tasks. A named task (WEAVE_TASK, register_task) takes and returns weave
// Values: the args are cloned into the worker, or their buffers listed in
// RunOptions::transfer move without a copy (detached here); the result is
// cloned back, or moved for the buffers the task lists. A callable task
// (any `R()`, `R(std::stop_token)` or `R(TaskContext&)`) is moved to the
// worker and its R moved back: it stays in this process, like std::async.
// Its captures are destroyed on the worker (a captured MessagePort bound to
// the caller's thread must not be). R must not hold memory of the worker's
// arena, which goes with the worker: a type whose allocator is a std::pmr
// one is refused at compile time (a Value, or plain std:: types, are fine).
// Tasks run on weave Workers: this_worker::arena(), stop_token(), timers and
// atomics::wait_async work there, and an exception thrown by a task fails
// only that task (kThrew, with its type and message) — the worker lives on.
//
// Workers. The pool starts min_threads workers at once and grows up to
// max_threads while tasks wait; a worker above min_threads that stays idle
// for idle_timeout retires. A worker that dies under a task (its arena cap,
// an exception escaping a callback on its loop, this_worker::exit) fails
// that task (kWorkerDied, with the worker's error) and is replaced, so the
// pool keeps its size. The workers' events are handled by a supervisor
// thread the pool owns, so nothing here needs the caller to run a loop.
//
// Queue. Tasks wait in one FIFO queue (per submitting thread; across threads
// in about the order of submission) until a worker slot is free. max_queue
// bounds how many may wait beyond what the pool could start now (free slots
// of live workers, plus workers it may still start); at the bound,
// queue_full decides: wait for room, reject, evict a waiting task (the
// oldest of one submitting thread's),
// or ask a callback.
//
// Cancellation. Every task can be cancelled: TaskFuture::cancel(), the stop
// token in RunOptions::signal, RunOptions::timeout (then the error is
// kTimedOut), destroy(). A waiting task leaves the queue at once and never
// runs. A running task's stop token is requested; if it has not returned
// within cancel_grace its worker is replaced (the stuck thread is let go and
// ends when the task returns) and the task fails as cancelled; no other task
// is lost. Either way the future settles with kCancelled or kTimedOut.
//
// Shutdown. close() refuses new tasks and lets queued ones run; drain()
// waits until nothing is queued or running; destroy() (and the destructor)
// cancels everything, gives running tasks cancel_grace to return, and never
// waits longer than that.
//
// Threading: every member is "Any thread", except that the destructor must
// not race with other calls. Hooks and a queue_full callback run on the
// threads named at their fields. The pool creates its threads as a Worker
// does (no thread is started by anything but construction and growth).
//
// Memory ordering: every write made before run() is visible to the task;
// every write the task made before it returned is visible to whoever sees
// its future ready (TaskFuture::get, ready, then).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <memory_resource>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "channel/message_port.h"
#include "channel/value.h"
#include "pool/task.h"
#include "workers/worker.h"

namespace weave {

namespace internal {
struct PoolInspector;

// A type whose allocator_type is a std::pmr one (its memory may come from a
// worker's arena, see Pool::run).
template <class A>
inline constexpr bool is_pmr_allocator = false;
template <class U>
inline constexpr bool is_pmr_allocator<std::pmr::polymorphic_allocator<U>> = true;
template <class T, class = void>
inline constexpr bool uses_pmr_allocator = false;
template <class T>
inline constexpr bool uses_pmr_allocator<T, std::void_t<typename T::allocator_type>> =
    is_pmr_allocator<typename T::allocator_type>;
}  // namespace internal

// What run() does when max_queue tasks already wait.
enum class QueueFullAction {
  kWait,        // block the caller until there is room (or the task is cancelled,
                // times out, or the pool closes)
  kReject,      // the new task fails at once with kQueueFull (Piscina's default)
  kDropOldest,  // a waiting task fails with kQueueFull and the new one is queued: the
                // oldest of one submitting thread's tasks (the queue is FIFO per
                // thread), not necessarily the oldest of all
};

// What a queue_full callback is told.
struct QueueFullInfo {
  std::uint64_t task_id;
  std::string_view task_name;  // "" for a callable task
  std::size_t queue_size;      // tasks waiting now
  std::size_t max_queue;
};

// One phase of a task, for the tracing hooks.
struct TaskEvent {
  std::uint64_t task_id;
  std::string_view task_name;        // "" for a callable task
  int thread_id = 0;                 // the worker's (on_start, on_finish); 0 before
  Clock::duration wait_time{};       // queued until started (on_start, on_finish)
  Clock::duration run_time{};        // started until settled (on_finish)
  const TaskError* error = nullptr;  // on_finish: why it failed, nullptr if it succeeded
};

// Callbacks that tie a task's life together in a host's tracing (what
// AsyncResource gives Piscina). Each is optional, gets the task's id, must
// be quick and must not throw (an exception is swallowed) or call back into
// the pool's blocking members.
struct PoolHooks {
  // The task was accepted: on the thread that called run(), before run()
  // returns.
  std::function<void(const TaskEvent&)> on_queue;
  // It is about to run: on its worker's thread.
  std::function<void(const TaskEvent&)> on_start;
  // It settled (result, error or cancellation): on the thread that settled
  // it — its worker, a canceller, or the pool's supervisor.
  std::function<void(const TaskEvent&)> on_finish;
};

struct PoolOptions {
  // Workers are named "<name>-<n>". At most WorkerOptions::kMaxNameBytes - 16.
  std::string name = "pool";
  // Live workers: at least min_threads, at most max_threads. Unset: the
  // hardware thread count (for min_threads, capped at max_threads).
  // max_threads between 1 and kMaxThreads; min_threads at most max_threads.
  std::optional<std::size_t> min_threads;
  std::optional<std::size_t> max_threads;
  // A worker above min_threads that had no task for this long retires.
  // At least 1 ms; weave::kForever (or anything from ~100 years): never.
  Clock::duration idle_timeout = std::chrono::seconds(1);
  // Tasks one worker holds at once: more than 1 only helps tasks that
  // defer() (wait on their loop). Between 1 and kMaxConcurrentTasks.
  std::size_t concurrent_tasks_per_worker = 1;
  // Tasks that may wait beyond what the pool can start now (see the top).
  std::size_t max_queue = kUnbounded;
  QueueFullAction queue_full = QueueFullAction::kReject;
  // If set, asked on run()'s thread each time the queue is full; its answer
  // replaces queue_full for that task.
  std::function<QueueFullAction(const QueueFullInfo&)> on_queue_full;
  // How long a running task has to return after its stop token was
  // requested before its worker is replaced. At least 1 ms; weave::kForever
  // (or anything from ~100 years): never (then destroy() waits for such a
  // task too).
  Clock::duration cancel_grace = std::chrono::milliseconds(100);
  // For every worker: its limits (an arena cap ends the worker that passes
  // it, see above), worker_data (cloned into each; no transfer list) and env.
  ResourceLimits resource_limits;
  Value worker_data;
  EnvMode env = EnvMode::kCopy;
  PoolHooks hooks;

  static constexpr std::size_t kUnbounded = std::numeric_limits<std::size_t>::max();
  static constexpr std::size_t kMaxThreads = 1024;
  static constexpr std::size_t kMaxConcurrentTasks = 1024;
};

// Per-call options.
struct RunOptions {
  // Piscina's `signal`: a stop request on it cancels the task.
  std::stop_token signal;
  // Cancels the task this long after run() (queued or running); it then
  // fails with kTimedOut. Unset or weave::kForever (anything from ~100
  // years, base/deadline.h): no limit. At or below zero: at once.
  std::optional<Clock::duration> timeout;
  // Buffers of a named task's args to move rather than copy (detached here
  // once accepted). Only Transfer::buffers is accepted: ports (a task's
  // ports would outlive it on a worker it does not own) and shared buffers
  // (pass those in the args) fail the task with kDataClone. Typed Transfer,
  // not std::vector<ArrayBuffer>, so that the list a program builds for
  // post_message fits here too.
  Transfer transfer;
};

// Percentiles of a duration histogram: log-linear buckets, 16 per power of
// two, so each figure is the upper bound of its bucket: at most 1/16 (6.25%)
// above the true value (exact below 32 ns).
struct DurationSummary {
  std::uint64_t count = 0;
  Clock::duration mean{};
  Clock::duration min{};
  Clock::duration max{};
  Clock::duration p50{};
  Clock::duration p90{};
  Clock::duration p99{};
};

// A snapshot of the pool. Counters are exact for some recent moment each, not
// all for the same one; a task is in them by the time its future is ready.
struct PoolMetrics {
  std::size_t threads = 0;      // live workers
  std::size_t queue_size = 0;   // accepted tasks not yet started
  std::size_t running = 0;      // started, not settled
  std::uint64_t submitted = 0;  // accepted by run()
  std::uint64_t completed = 0;  // settled with a result
  std::uint64_t failed = 0;     // settled with an error other than cancelled/timed out
  std::uint64_t cancelled = 0;  // settled cancelled (not timed out)
  std::uint64_t timed_out = 0;
  std::uint64_t rejected = 0;  // refused by run() (queue full, closed, unknown name, a
                               // transfer list it cannot take) or evicted at max_queue
  std::uint64_t workers_started = 0;
  std::uint64_t workers_retired = 0;   // idle above min_threads
  std::uint64_t workers_replaced = 0;  // died, or stuck past cancel_grace
  std::size_t abandoned_threads = 0;   // stuck threads let go that have not ended yet
  DurationSummary run_time;            // tasks that ran (started to settled)
  DurationSummary wait_time;           // tasks that started (queued to started)
  // Piscina's utilization: run time of all tasks / (time since the pool
  // started x max_threads), between 0 and 1.
  double utilization = 0;
};

class Pool {
 public:
  // Starts min_threads workers (not waiting for them to come online) and the
  // supervisor thread. Throws std::invalid_argument naming the option and its
  // range for bad options, std::system_error if a thread cannot be created.
  // May block. Allocates.
  explicit Pool(PoolOptions options = {});
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;
  // destroy(). Returns within about cancel_grace even if tasks ignore their
  // stop tokens (unless cancel_grace is kForever). May block.
  ~Pool();

  // Runs the task registered as `task` with `args`. Never throws for the
  // task's own outcome: a future already settled comes back for an unknown
  // name (kNotFound), args that cannot be cloned (kDataClone: nothing
  // detached), a full queue (kReject, kQueueFull) or a closed pool
  // (kPoolClosed). Any thread. Never blocks, except under kWait. Allocates.
  TaskFuture<Value> run(std::string_view task, Value args = {}, RunOptions options = {});

  // Runs a callable: `fn()`, `fn(std::stop_token)` or `fn(TaskContext&)`.
  // The future's type is what it returns. Same outcomes as above.
  template <class F>
  requires(!std::is_convertible_v<F, std::string_view>) auto run(F&& fn, RunOptions options = {});

  // Waits until no task is queued or running (tasks other threads submit
  // meanwhile count too). Not from a task of this pool (a debug assertion;
  // so are TaskFuture::wait/get on a task of the pool and a kWait run()
  // there). May block.
  void drain();
  // Same, at most `d`; true if it became idle.
  bool drain_for(Clock::duration d);
  // Refuses new tasks (kPoolClosed) from now on; queued and running tasks
  // carry on. close() then drain() is a graceful shutdown. Idempotent. Any
  // thread. Never blocks.
  void close() noexcept;
  // close(), cancels every queued and running task, and ends the workers,
  // waiting at most cancel_grace for tasks that ignore their stop tokens
  // (their threads are let go). Idempotent. May block.
  void destroy();
  [[nodiscard]] bool closed() const noexcept;

  // Any thread. May block (briefly: the lock of the worker list; the
  // counters and histograms are read without stopping anyone). Allocates
  // nothing but the result.
  [[nodiscard]] PoolMetrics metrics() const;
  // Live workers / tasks waiting: racy by nature. Any thread. threads_approx
  // never blocks; queue_size_approx may, briefly (as metrics()).
  [[nodiscard]] std::size_t threads_approx() const noexcept;
  [[nodiscard]] std::size_t queue_size_approx() const noexcept;
  [[nodiscard]] const PoolOptions& options() const noexcept;

 private:
  friend struct internal::PoolInspector;  // tests only: pool/internal/inspect.h
  template <class R>
  TaskFuture<R> submit(internal::TaskRecordRef rec, RunOptions& options) {
    submit_record(rec, options);
    return TaskFuture<R>(core_.get(), std::move(rec));
  }
  void submit_record(const internal::TaskRecordRef& rec, RunOptions& options);

  std::shared_ptr<internal::PoolCore> core_;
};

// --- implementation -----------------------------------------------------------------

template <class F>
requires(!std::is_convertible_v<F, std::string_view>) auto Pool::run(F&& fn, RunOptions options) {
  using Fn = std::decay_t<F>;
  static_assert(std::is_move_constructible_v<Fn>,
                "weave::Pool::run: the callable must be move-constructible");
  auto body = [f = Fn(std::forward<F>(fn))](TaskContext& ctx) mutable {
    if constexpr (std::is_invocable_v<Fn&, TaskContext&>) {
      return f(ctx);
    } else if constexpr (std::is_invocable_v<Fn&, std::stop_token>) {
      return f(ctx.stop_token());
    } else {
      static_assert(std::is_invocable_v<Fn&>,
                    "weave::Pool::run: the callable must take (), (std::stop_token) or "
                    "(weave::TaskContext&)");
      return f();
    }
  };
  using R = std::decay_t<decltype(body(std::declval<TaskContext&>()))>;
  static_assert(std::is_void_v<R> || std::is_move_constructible_v<R>,
                "weave::Pool::run: the callable's result must be move-constructible");
  static_assert(!internal::uses_pmr_allocator<R>,
                "weave::Pool::run: the callable's result uses a std::pmr allocator, whose memory "
                "may be the worker's arena (freed with the worker): return a plain std:: type or "
                "a weave::Value");
  internal::TaskRecordRef rec(
      new internal::TypedTaskRecord<R, decltype(body)>("", std::move(body)));
  return submit<R>(std::move(rec), options);
}

}  // namespace weave
