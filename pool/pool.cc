// weave::Pool. How it is put together:
//
//   run() ──► queue (moodycamel, records by pointer) ──► worker's PoolSource
//     │                                                   (a hot LoopSource on
//     └─ wakes one parked worker, if any                   the worker's loop)
//
// - The caller enqueues a TaskRecord and, only if a worker is parked, wakes
//   one (the idle list). Workers take tasks straight from the queue inside
//   their own loop's turn; a worker that just ran tasks stays hot (polled
//   every turn and while spinning) and registers as idle only when its loop
//   is about to park. The handshake is the loop's hot-source protocol: the
//   caller's enqueue + light_barrier + load of the sleeper count against the
//   worker's idle registration + the loop's heavy_barrier + its check of the
//   queue (atomics/internal/barrier.h): a post never pays a fence.
// - The supervisor, a thread of the pool's own running an EventLoop, owns
//   the Worker objects: their error and exit events, growth, retirement,
//   replacement, timeouts and cancel grace periods. Nothing on a task's path
//   goes through it unless the task has a timeout or is cancelled while
//   running.
// - A record's state word decides every race (pool/internal/task_record.h);
// - Counting costs the workers no locked instruction: run() adds to
//   the task ids it hands out; each worker counts what it started, finished (counted before
//   the future is ready, for the metrics) and released (after, for drain())
//   in counters only it writes; the rare settles elsewhere (cancelled in the
//   queue, a dead or stuck worker's tasks) use shared atomics. drain() adds
//   itself to `waiters` and sums; a worker checks `waiters` after releasing
//   a task, behind light_barrier() against drain's heavy_barrier(). Only a
//   bounded max_queue keeps a shared count of unsettled tasks (`bounded`).
#include "pool/pool.h"

#include <concurrentqueue/concurrentqueue.h>
#include <pthread.h>

#include <algorithm>
#include <cassert>
#include <climits>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <thread>

#include "atomics/atomics.h"
#include "base/deadline.h"
#include "atomics/internal/barrier.h"
#include "atomics/internal/cache_line.h"
#include "atomics/internal/counter.h"
#include "atomics/internal/futex.h"
#include "atomics/internal/spin_lock.h"
#include "channel/status.h"
#include "loop/internal/clock.h"
#include "loop/internal/sources.h"
#include "pool/internal/histogram.h"
#include "pool/internal/inspect.h"
#include "pool/internal/ticks.h"
#include "base/internal/scope_exit.h"
#include "workers/arena.h"
#include "workers/internal/pool_hooks.h"

namespace weave {

namespace internal {

double ns_per_tick() noexcept {
#if defined(__x86_64__)
  static const double factor = [] {
    // 0.5 ms against steady_clock: the error is two clock reads (~50 ns)
    // in 0.5 ms, 0.01%.
    const auto t0 = Clock::now();
    const std::uint64_t k0 = ticks();
    auto t1 = t0;
    while (t1 - t0 < std::chrono::microseconds(500)) t1 = Clock::now();
    const std::uint64_t k1 = ticks();
    const double ns = std::chrono::duration<double, std::nano>(t1 - t0).count();
    return k1 > k0 ? ns / static_cast<double>(k1 - k0) : 1.0;
  }();
  return factor;
#else
  return 1.0;
#endif
}

namespace {

struct Counts {
  std::atomic<std::uint64_t> completed{0};
  std::atomic<std::uint64_t> failed{0};
  std::atomic<std::uint64_t> cancelled{0};
  std::atomic<std::uint64_t> timed_out{0};
};

}  // namespace

// Thrown inside a named task's body when its result cannot be cloned.
struct ResultCloneError {
  Status status;
};

// --- records -----------------------------------------------------------------------

TaskRecord::~TaskRecord() = default;

bool TaskRecord::wait(std::optional<std::chrono::nanoseconds> timeout) const {
  for (int i = 0; i < 512; ++i) {
    if (settled()) return true;
    cpu_relax();
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

namespace {
std::unique_ptr<TaskError> cancelled_error(TaskErrc why) {
  return make_task_error(why, why == TaskErrc::kTimedOut ? "weave::Pool: the task timed out"
                                                         : "weave::Pool: the task was cancelled");
}
}  // namespace

// --- the pool's core ------------------------------------------------------------------

// One worker of the pool, shared by the supervisor (which owns its Worker)
// and the worker's thread (whose loop runs `source`).
struct alignas(kFalseSharingSpan) WorkerSlot {
  PoolCore* pool = nullptr;
  int number = 0;

  // --- the worker's thread -------------------------------------------------------------
  std::optional<moodycamel::ConsumerToken> token;
  // The source on the worker's loop, which owns it (a shared_ptr here
  // would be a cycle: the source holds the slot).
  class PoolSource* source = nullptr;
  LoopCore* loop_core = nullptr;  // set before the slot can be listed idle
  // Single-writer counters and histograms, read by metrics().
  Counts counts;
  std::atomic<std::uint64_t> started{0};
  std::atomic<std::uint64_t> finished{0};  // settled by this worker, counted before publishing
  std::atomic<std::uint64_t> released{0};  // the same, counted after publishing
  Histogram run_time;
  Histogram wait_time;
  std::atomic<std::int64_t> last_active_ns{0};

  // --- guarded by `mu` (any thread) ----------------------------------------------------
  // Taken by the worker to start and finish a task, by cancellers and by the
  // supervisor: never held across user code, except the task's own
  // std::stop_callbacks, which a cancellation runs under it.
  SpinLock mu;
  // The tasks this worker started and has not finished (deferred ones
  // included). Only the worker adds or removes (and the supervisor takes the
  // list once the worker's thread has ended), so the worker reads its size
  // without the lock: how many of its slots are taken, derived, never a
  // second count that could drift from the list.
  std::vector<TaskRecordRef> in_flight;
  // The stop source of tasks run one at a time; replaced after a cancellation.
  std::stop_source stop;
  std::stop_token stop_token;  // of `stop`; the worker reads it unlocked

  // --- flags (any thread) --------------------------------------------------------------
  std::atomic<bool> abandoned{false};
  std::atomic<bool> retiring{false};
  // Written under the pool's idle lock; read without it as a hint.
  std::atomic<bool> listed_idle{false};
  // The worker is inside PoolSource::dispatch (it may start a task): its
  // side of the handshake with finish_shutdown(), which lets a worker go
  // rather than join it unless this is false and nothing is in flight.
  std::atomic<bool> dispatching{false};

  // --- the supervisor ------------------------------------------------------------------
  std::optional<Worker> worker;
  std::optional<WorkerError> error;
  // Set by the worker's thread as it starts; read by the supervisor after
  // it saw the worker's tasks (or its exit).
  std::atomic<int> thread_id{0};
};

// The pool's accounting, stated once. Every counter only grows. Let
//   A  = accepted()          tasks accepted by run() (ids handed out, less
//                            those refused at the door or waiting there)
//   S  = sum of started      started by a worker (slots, retired, abandoned)
//   F  = sum of finished     settled by the worker that ran them
//   SQ = settled_queued      settled before any worker started them
//                            (cancelled, evicted, timed out, refused after
//                            admission, dequeued during destroy())
//   SR = settled_running     settled while running, by someone else (a dead
//                            or abandoned worker's tasks)
//   R  = sum of released + released_elsewhere: settled and published
//   O  = completed + failed + cancelled + timed_out (all Counts) + evicted,
//        where evicted = rejected - refused (kQueueFull settled after
//        admission)
// At every moment:
//   A = S + SQ + queued          (queued: accepted, waiting for a worker, >= 0)
//   S = F + SR + running         (running: started and not settled, >= 0)
//   R <= F + SQ + SR = O         (a settle is counted before it is published)
// At quiescence (nothing queued, running or being settled; nobody in run()):
//   A = S + SQ,  S = F + SR,  R = F + SQ + SR = O = A,
//   no slot has a task in flight, and `bounded` is 0.
// check_quiescent() checks the quiescent form; debug builds run it as the
// core is destroyed, and the tests call it through PoolInspector.
class PoolCore : public std::enable_shared_from_this<PoolCore> {
 public:
  explicit PoolCore(PoolOptions o);
  ~PoolCore() {
    // Nothing should be left, but a task that slipped in after destroy()
    // still settles: its caller may be waiting on it.
    TaskRecord* rec = nullptr;
    while (queue.try_dequeue(rec)) {
      try {
        (void)settle_queued(*rec, cancelled_error(TaskErrc::kCancelled));
      } catch (...) {
      }
      rec->release();
    }
#ifndef NDEBUG
    // The one moment the pool is quiescent for sure: no run() in progress
    // (the Pool is gone), no worker thread left (each holds the core).
    const std::string report = check_quiescent();
    if (!report.empty()) {
      std::fprintf(stderr, "weave::Pool: accounting invariants broken: %s\n", report.c_str());
      assert(false && "weave::Pool: accounting invariants broken (see stderr)");
    }
#endif
  }

  // --- submission (any thread) ----------------------------------------------------------
  // `prepare` (may be null) runs once the task is admitted, before it is
  // queued: a named task clones its args there, so a refused task detaches
  // nothing. A failed Status fails the task with kDataClone.
  void submit(const TaskRecordRef& rec, RunOptions& options,
              const std::function<Status()>* prepare);
  // submit() once the task is admitted: may throw (out of memory), with
  // `holds_queue_ref` saying whether the queue's reference is still the
  // caller's to give back.
  void enqueue_admitted(const TaskRecordRef& rec, RunOptions& options,
                        const std::function<Status()>* prepare, Clock::time_point submitted,
                        bool& holds_queue_ref);
  // Settles a task that is not accepted (closed, full, unknown name, a
  // transfer list it cannot take): counted as rejected, not as submitted.
  void refuse_at_door(TaskRecord& rec, std::unique_ptr<TaskError> error) noexcept;
  // Gives `rec` its id (next_id: also the count of tasks accepted, see the
  // invariants), unless it has one.
  void take_id(TaskRecord& rec) noexcept;
  // Admission (closed, max_queue and queue_full): true if `rec` is accepted;
  // otherwise it has been refused or settled.
  bool admit(const TaskRecordRef& rec, RunOptions& options, Clock::time_point submitted);
  void wake_or_grow() noexcept;

  // --- settling ------------------------------------------------------------------------
  // Settles `rec` (from any thread other than a worker finishing its own task)
  // and accounts for it. False if it had settled already.
  bool settle_elsewhere(TaskRecord& rec, std::unique_ptr<TaskError> error, int thread_id = 0,
                        Histogram* run_hist = nullptr);
  // Settles `rec` only if no worker has started it.
  bool settle_queued(TaskRecord& rec, std::unique_ptr<TaskError> error);
  // Every settle of an accepted task: wins the record (false if another
  // thread did), counts the outcome (`counts`: the worker's own when
  // by_worker, else shared), records the run time, runs on_finish, then
  // publishes and lets drain() and kWait callers go.
  // only_queued: settle it only if it has not started (a cancellation in
  // the queue must not settle a task a worker just took).
  bool conclude(TaskRecord& rec, std::unique_ptr<TaskError> error, Counts& counts, int thread_id,
                WorkerSlot* worker, Histogram* run_hist, bool only_queued = false,
                std::uint64_t end = 0) noexcept;
  void cancel_queued_all();

  // --- idle workers --------------------------------------------------------------------
  void list_idle(WorkerSlot& slot) noexcept;
  void unlist_idle(WorkerSlot& slot) noexcept;

  // --- supervisor thread ---------------------------------------------------------------
  void spawn();
  void handle_exit(const std::shared_ptr<WorkerSlot>& slot, int code);
  void abandon(const std::shared_ptr<WorkerSlot>& slot, TaskRecord* cancelled);
  void check_idle();
  void begin_shutdown();
  void finish_shutdown();
  void request_spawn() noexcept;
  bool post_to_supervisor(Task task) noexcept;

  void wait_idle(std::optional<Clock::time_point> deadline);
  // now + d, or nullopt for a forever `d` (base/deadline.h).
  static std::optional<Clock::time_point> deadline_in(Clock::duration d) noexcept {
    const Clock::time_point t = deadline_after(Clock::now(), d);
    if (is_forever(t)) return std::nullopt;
    return t;
  }
  // The accounting invariants at quiescence (see above this class): "" if
  // they hold, else what differs. The caller makes sure that the pool is
  // quiescent (drained, nobody submitting). Takes slots_mu.
  std::string check_quiescent();
  PoolMetrics metrics();
  // The three sums, under slots_mu.
  struct Tally {
    std::uint64_t started = 0;
    std::uint64_t finished = 0;
    std::uint64_t released = 0;
  };
  Tally tally_locked() const;
  void fold_locked(const WorkerSlot& slot);
  // Tasks accepted and not yet published (drain's condition). Takes slots_mu.
  std::uint64_t unreleased();
  // Tasks waiting for a worker, from `accepted()` read before the tally;
  // queue_size() takes slots_mu for the tally.
  std::size_t queued(std::uint64_t acc, const Tally& t) const noexcept;
  std::size_t queue_size();

  const PoolOptions opt;
  const std::size_t min_threads;
  const std::size_t max_threads;
  const std::size_t concurrency;
  const Clock::time_point started_at = Clock::now();
  const double ns_per = ns_per_tick();  // see pool/internal/ticks.h

  // What run() writes: its own line.
  alignas(kFalseSharingSpan) moodycamel::ConcurrentQueue<TaskRecord*> queue;
  // One producer token per submitting thread (an explicit producer enqueues
  // faster than the implicit per-thread lookup). Owned here, after `queue`,
  // so they go before it; a thread finds its own through a small
  // thread-local cache keyed by `serial`.
  moodycamel::ProducerToken& producer_token();
  std::mutex tokens_mu;
  std::map<std::thread::id, std::unique_ptr<moodycamel::ProducerToken>> tokens;
  const std::uint64_t serial;
  // Task ids, one per run(): also the count of tasks accepted, with
  // `refused` (given an id, then refused at the door) taken off.
  alignas(kFalseSharingSpan) std::atomic<std::uint64_t> next_id{1};
  std::atomic<std::uint64_t> refused{0};
  std::atomic<std::uint64_t> at_door{0};  // blocked in run() under kWait
  [[nodiscard]] std::uint64_t accepted() const noexcept {
    const std::uint64_t ids = next_id.load(std::memory_order_seq_cst) - 1;
    const std::uint64_t no =
        refused.load(std::memory_order_seq_cst) + at_door.load(std::memory_order_seq_cst);
    return ids > no ? ids - no : 0;
  }
  // Unsettled tasks, kept only when max_queue is bounded (admission).
  alignas(kFalseSharingSpan) std::atomic<std::int64_t> bounded{0};
  // Workers parked with their source armed, and the lock of the list.
  alignas(kFalseSharingSpan) std::atomic<int> sleepers{0};
  SpinLock idle_mu;
  std::vector<WorkerSlot*> idle;
  // Read on every run(): live workers and the flags, rarely written.
  alignas(kFalseSharingSpan) std::atomic<std::int64_t> live{0};
  std::atomic<bool> closed{false};
  std::atomic<bool> destroying{false};
  std::atomic<bool> spawn_requested{false};

  // Blocked in drain() or at max_queue under kWait.
  std::atomic<int> waiters{0};
  std::mutex wait_mu;
  std::condition_variable wait_cv;

  // Settled by something other than the task's worker: before it started
  // (cancelled, evicted, timed out in the queue) or while it ran (its worker
  // died or was abandoned); and of those, how many are published.
  Counts other_counts;
  std::atomic<std::uint64_t> settled_queued{0};
  std::atomic<std::uint64_t> settled_running{0};
  std::atomic<std::uint64_t> released_elsewhere{0};
  std::atomic<std::uint64_t> rejected{0};
  std::atomic<std::uint64_t> workers_started{0};
  std::atomic<std::uint64_t> workers_retired{0};
  std::atomic<std::uint64_t> workers_replaced{0};

  // The supervisor's: its loop, and what it owns. slots_mu guards the slot
  // lists for readers on other threads (metrics, cancellers); the
  // supervisor alone changes them.
  LoopHandle supervisor;
  KeepAlive supervisor_keep_alive;  // released by finish_shutdown
  std::thread supervisor_thread;
  std::mutex slots_mu;
  std::vector<std::shared_ptr<WorkerSlot>> slots;
  std::vector<std::pair<std::shared_ptr<WorkerSlot>, std::future<std::optional<int>>>> abandoned;
  Counts retired_counts;  // of slots that are gone (their counters folded in)
  Histogram::Totals retired_run_time;
  Histogram::Totals retired_wait_time;
  std::uint64_t retired_started = 0;
  std::uint64_t retired_finished = 0;
  std::uint64_t retired_released = 0;
  Histogram elsewhere_run_time;  // supervisor only: tasks cancelled past grace
  Timer idle_timer;
  int next_number = 1;
};

namespace {

std::size_t hardware_threads() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : n;
}

[[noreturn]] void invalid(const std::string& what) {
  throw std::invalid_argument("weave::Pool: " + what);
}

PoolOptions validated(PoolOptions o) {
  const std::size_t max = o.max_threads.value_or(hardware_threads());
  if (max < 1 || max > PoolOptions::kMaxThreads) {
    invalid("options.max_threads must be between 1 and " +
            std::to_string(PoolOptions::kMaxThreads) + "; got " + std::to_string(max));
  }
  const std::size_t min = o.min_threads.value_or(std::min(max, hardware_threads()));
  if (min > max) {
    invalid("options.min_threads (" + std::to_string(min) + ") must be at most max_threads (" +
            std::to_string(max) + ")");
  }
  if (o.concurrent_tasks_per_worker < 1 ||
      o.concurrent_tasks_per_worker > PoolOptions::kMaxConcurrentTasks) {
    invalid("options.concurrent_tasks_per_worker must be between 1 and " +
            std::to_string(PoolOptions::kMaxConcurrentTasks) + "; got " +
            std::to_string(o.concurrent_tasks_per_worker));
  }
  // Duration options: from 1 ms up; anything from ~100 years up is
  // weave::kForever (base/deadline.h), the spelling for "never".
  auto check_duration = [](Clock::duration& d, const char* name, const char* forever) {
    if (d < std::chrono::milliseconds(1)) {
      invalid(std::string("options.") + name + " must be at least 1 ms, or weave::kForever (" +
              forever + "); got " + std::to_string(d.count()) + " ns");
    }
    if (is_forever(d)) d = kForever;
  };
  check_duration(o.idle_timeout, "idle_timeout", "never retire");
  check_duration(o.cancel_grace, "cancel_grace", "never replace a worker");
  if (o.name.size() + 16 > WorkerOptions::kMaxNameBytes || o.name.find('\0') != std::string::npos) {
    invalid("options.name must be at most " + std::to_string(WorkerOptions::kMaxNameBytes - 16) +
            " bytes with no NUL byte");
  }
  const ResourceLimits& r = o.resource_limits;
  if (r.max_arena_bytes > ResourceLimits::kMaxArenaBytes ||
      (r.stack_size_bytes != 0 && (r.stack_size_bytes < ResourceLimits::kMinStackBytes ||
                                   r.stack_size_bytes > ResourceLimits::kMaxStackBytes))) {
    invalid("options.resource_limits are out of range (see weave::ResourceLimits)");
  }
  if (Result<Value> c = structured_clone(o.worker_data); !c) {
    invalid("options.worker_data cannot be cloned: " + c.status().message());
  }
  o.min_threads = min;
  o.max_threads = max;
  return o;
}

}  // namespace

namespace {
std::atomic<std::uint64_t> g_pool_serial{1};

// The producer tokens the calling thread used last, by pool serial.
struct TokenCache {
  static constexpr int kEntries = 4;
  std::uint64_t serial[kEntries] = {};
  moodycamel::ProducerToken* token[kEntries] = {};
  int next = 0;
};
thread_local TokenCache tl_tokens;
}  // namespace

PoolCore::PoolCore(PoolOptions o)
    : opt(validated(std::move(o))),
      min_threads(*opt.min_threads),
      max_threads(*opt.max_threads),
      concurrency(opt.concurrent_tasks_per_worker),
      serial(g_pool_serial.fetch_add(1, std::memory_order_relaxed)) {}

moodycamel::ProducerToken& PoolCore::producer_token() {
  TokenCache& c = tl_tokens;
  for (int i = 0; i < TokenCache::kEntries; ++i) {
    if (c.serial[i] == serial) return *c.token[i];
  }
  moodycamel::ProducerToken* t = nullptr;
  {
    std::lock_guard<std::mutex> lock(tokens_mu);
    auto& slot = tokens[std::this_thread::get_id()];
    if (!slot) slot = std::make_unique<moodycamel::ProducerToken>(queue);
    t = slot.get();
  }
  const int i = c.next;
  c.next = (c.next + 1) % TokenCache::kEntries;
  c.serial[i] = serial;
  c.token[i] = t;
  return *t;
}

// The worker's side: a hot source on its loop that takes tasks from the queue.
class PoolSource final : public LoopSource {
 public:
  PoolSource(std::shared_ptr<PoolCore> pool, std::shared_ptr<WorkerSlot> slot)
      : pool_(std::move(pool)), slot_(std::move(slot)) {}

  void dispatch(EventLoop& loop) override;
  Readiness poll() noexcept override {
    const bool ready = has_room() && pool_->queue.size_approx() > 0 &&
                       !slot_->abandoned.load(std::memory_order_relaxed);
    return ready ? Readiness::kReady : Readiness::kIdle;
  }
  void arm_begin() noexcept override {
    if (has_room()) pool_->list_idle(*slot_);
  }
  bool arm_end() noexcept override {
    if (!has_room() || pool_->queue.size_approx() == 0) return true;
    pool_->unlist_idle(*slot_);
    return false;
  }
  void on_loop_destroyed() noexcept override { pool_->unlist_idle(*slot_); }

  // A deferred task of this worker settled: a slot may be free again.
  void slot_freed(EventLoop& loop) { internal::LoopSources::mark_hot(loop, this); }
  // Runs a task taken from the queue (owning the queue's reference).
  // `cursor`: ticks() as the previous task ended, or zero; set to when
  // this one ended.
  void run_one(TaskRecord* rec, std::uint64_t& cursor);
  // Settles a task of this worker and takes it off the in-flight list;
  // returns the time it ended.
  std::uint64_t finish(TaskRecord& rec, std::unique_ptr<TaskError> error,
                       const std::stop_token& token);
  [[nodiscard]] const std::shared_ptr<WorkerSlot>& slot() const noexcept { return slot_; }
  [[nodiscard]] const std::shared_ptr<PoolCore>& pool() const noexcept { return pool_; }

 private:
  [[nodiscard]] bool has_room() const noexcept {
    return slot_->in_flight.size() < pool_->concurrency;
  }

  std::shared_ptr<PoolCore> pool_;
  std::shared_ptr<WorkerSlot> slot_;
};

void PoolCore::list_idle(WorkerSlot& slot) noexcept {
  std::lock_guard<SpinLock> lock(idle_mu);
  if (slot.listed_idle.load(std::memory_order_relaxed) ||
      slot.retiring.load(std::memory_order_relaxed)) {
    return;
  }
  slot.listed_idle.store(true, std::memory_order_relaxed);
  idle.push_back(&slot);
  sleepers.store(static_cast<int>(idle.size()), std::memory_order_relaxed);
}

void PoolCore::unlist_idle(WorkerSlot& slot) noexcept {
  std::lock_guard<SpinLock> lock(idle_mu);
  if (!slot.listed_idle.load(std::memory_order_relaxed)) return;
  slot.listed_idle.store(false, std::memory_order_relaxed);
  std::erase(idle, &slot);
  sleepers.store(static_cast<int>(idle.size()), std::memory_order_relaxed);
}

void PoolCore::wake_or_grow() noexcept {
  // The fast side of the handshake with list_idle + the loop's heavy
  // barrier + arm_end (see the top of this file).
  light_barrier();
  if (sleepers.load(std::memory_order_relaxed) > 0) {
    std::lock_guard<SpinLock> lock(idle_mu);
    if (!idle.empty()) {
      WorkerSlot* s = idle.back();
      idle.pop_back();
      s->listed_idle.store(false, std::memory_order_relaxed);
      sleepers.store(static_cast<int>(idle.size()), std::memory_order_relaxed);
      // Under the lock: a worker unlists itself under it before its loop
      // (and the source) can go away.
      s->loop_core->schedule(s->source);
      return;
    }
  }
  if (static_cast<std::size_t>(live.load(std::memory_order_relaxed)) < max_threads) {
    request_spawn();
  }
}

void PoolCore::request_spawn() noexcept {
  if (spawn_requested.load(std::memory_order_relaxed) ||
      spawn_requested.exchange(true, std::memory_order_acq_rel)) {
    return;
  }
  if (!post_to_supervisor([self = shared_from_this()] {
        self->spawn_requested.store(false, std::memory_order_release);
        if (self->destroying.load(std::memory_order_acquire)) return;
        const auto n = static_cast<std::size_t>(self->live.load(std::memory_order_relaxed));
        if (n < self->max_threads && (n < self->min_threads || self->queue.size_approx() > 0)) {
          self->spawn();
        }
      })) {
    spawn_requested.store(false, std::memory_order_release);
  }
}

bool PoolCore::post_to_supervisor(Task task) noexcept {
  try {
    return supervisor.post(std::move(task));
  } catch (...) {
    return false;  // out of memory: the supervisor's periodic check catches up
  }
}

void PoolCore::refuse_at_door(TaskRecord& rec, std::unique_ptr<TaskError> error) noexcept {
  take_id(rec);
  (void)rec.settle(std::move(error));
  rec.drop_payload();
  rec.release();  // the queue's reference: never queued
  rejected.fetch_add(1, std::memory_order_relaxed);
  refused.fetch_add(1, std::memory_order_seq_cst);
}

void PoolCore::take_id(TaskRecord& rec) noexcept {
  if (rec.id() == 0) rec.set_id(next_id.fetch_add(1, std::memory_order_relaxed));
}

void PoolCore::submit(const TaskRecordRef& rec, RunOptions& options,
                      const std::function<Status()>* prepare) {
  // The id first: from here on the task counts as accepted until refused,
  // and every path below either refuses or settles it, exceptions included.
  take_id(*rec);
  rec->queued_ticks = ticks();
  // kForever (or anything at least ~100 years): no limit, as if unset.
  if (options.timeout && is_forever(*options.timeout)) options.timeout.reset();
  // Deadlines are on steady_clock; read only when the task has one.
  const Clock::time_point submitted = options.timeout ? Clock::now() : Clock::time_point{};
  bool admitted = false;
  bool holds_queue_ref = true;  // the queue's reference, until handed over or given back
  try {
    if (!admit(rec, options, submitted)) return;
    // Accepted: every path settles the task through conclude(), an
    // exception included (out of memory cloning the args, making the stop
    // callback or a producer token): run() never throws for a task.
    admitted = true;
    enqueue_admitted(rec, options, prepare, submitted, holds_queue_ref);
  } catch (...) {
    std::string what = "weave::Pool: run() failed";
    try {
      throw;
    } catch (const std::exception& e) {
      what += ": ";
      what += e.what();
    } catch (...) {
    }
    std::unique_ptr<TaskError> error =
        make_task_error(TaskErrc::kThrew, std::move(what), current_exception_type_name());
    if (!admitted) {
      refuse_at_door(*rec, std::move(error));
      return;
    }
    (void)settle_queued(*rec, std::move(error));
    if (holds_queue_ref) rec->release();
  }
}

bool PoolCore::admit(const TaskRecordRef& rec, RunOptions& options, Clock::time_point submitted) {
  auto refuse = [&](TaskErrc errc, const std::string& message) {
    refuse_at_door(*rec, make_task_error(errc, message));
    return false;
  };
  if (closed.load(std::memory_order_acquire)) {
    return refuse(TaskErrc::kPoolClosed, "weave::Pool: the pool is closed");
  }
  // Admission: at most max_threads x concurrency running plus max_queue waiting.
  if (opt.max_queue != PoolOptions::kUnbounded) {
    const auto limit = static_cast<std::int64_t>(
        std::min<std::size_t>(opt.max_queue, (std::size_t{1} << 40)) + max_threads * concurrency);
    std::int64_t n = bounded.load(std::memory_order_relaxed);
    for (;;) {
      if (n < limit) {
        if (bounded.compare_exchange_weak(n, n + 1, std::memory_order_acq_rel)) break;
        continue;
      }
      QueueFullAction action = opt.queue_full;
      if (opt.on_queue_full) {
        const auto waiting = static_cast<std::size_t>(
            std::max<std::int64_t>(0, n - static_cast<std::int64_t>(max_threads * concurrency)));
        try {
          action =
              opt.on_queue_full(QueueFullInfo{rec->id(), rec->name(), waiting, opt.max_queue});
        } catch (...) {
          action = QueueFullAction::kReject;  // a throwing callback refuses the task
        }
      }
      if (action == QueueFullAction::kReject) {
        return refuse(TaskErrc::kQueueFull, "weave::Pool: the queue is full (max_queue = " +
                                                std::to_string(opt.max_queue) + ")");
      }
      if (action == QueueFullAction::kDropOldest) {
        TaskRecord* old = nullptr;
        bool evicted = false;
        while (!evicted && queue.try_dequeue(old)) {
          evicted = settle_queued(*old, make_task_error(TaskErrc::kQueueFull,
                                                        "weave::Pool: evicted from a full "
                                                        "queue by a newer task"));
          old->release();
        }
        if (!evicted) {
          return refuse(TaskErrc::kQueueFull,
                        "weave::Pool: the queue is full and no task is waiting to evict");
        }
        n = bounded.load(std::memory_order_relaxed);
        continue;
      }
      // kWait: until a settle makes room, the pool closes or the task is
      // cancelled. Meanwhile it is not counted as accepted.
      at_door.fetch_add(1, std::memory_order_seq_cst);
      waiters.fetch_add(1, std::memory_order_seq_cst);
      {
        std::unique_lock<std::mutex> lock(wait_mu);
        wait_cv.wait_for(lock, std::chrono::milliseconds(50), [&] {
          return bounded.load(std::memory_order_seq_cst) < limit ||
                 closed.load(std::memory_order_acquire) || options.signal.stop_requested() ||
                 (options.timeout && Clock::now() - submitted >= *options.timeout);
        });
      }
      waiters.fetch_sub(1, std::memory_order_relaxed);
      at_door.fetch_sub(1, std::memory_order_seq_cst);
      if (closed.load(std::memory_order_acquire)) {
        return refuse(TaskErrc::kPoolClosed, "weave::Pool: the pool closed while run() waited");
      }
      const bool stopped = options.signal.stop_requested();
      if (stopped || (options.timeout && Clock::now() - submitted >= *options.timeout)) {
        // Accepted and cancelled at once, as if it had waited in the queue.
        bounded.fetch_add(1, std::memory_order_acq_rel);
        (void)settle_queued(*rec,
                            cancelled_error(stopped ? TaskErrc::kCancelled : TaskErrc::kTimedOut));
        rec->release();  // the queue's reference: never queued
        return false;
      }
      n = bounded.load(std::memory_order_relaxed);
    }
  }

  return true;
}

void PoolCore::enqueue_admitted(const TaskRecordRef& rec, RunOptions& options,
                                const std::function<Status()>* prepare,
                                Clock::time_point submitted, bool& holds_queue_ref) {
  auto give_back_queue_ref = [&] {
    holds_queue_ref = false;
    rec->release();  // never queued
  };
  if (prepare) {
    if (Status st = (*prepare)(); !st) {
      (void)settle_queued(*rec,
                          make_task_error(TaskErrc::kDataClone,
                                          "weave::Pool: the args cannot be sent: " + st.message()));
      return give_back_queue_ref();
    }
  }
  if (opt.hooks.on_queue) {
    try {
      opt.hooks.on_queue(TaskEvent{rec->id(), rec->name()});
    } catch (...) {
    }
  }
  if (options.signal.stop_possible()) {
    // The callback holds no reference (the record owns it: a cycle
    // otherwise), so it takes one first; at zero the record is being
    // destroyed, and release() is waiting for this callback to return.
    TaskRecord* raw = rec.get();
    rec->signal_callback = std::make_unique<std::stop_callback<std::function<void()>>>(
        options.signal, std::function<void()>([pool = shared_from_this(), raw] {
          if (!raw->try_add_ref()) return;
          PoolCore& p = *pool;
          // If this is the last reference, the record, and this callback
          // with it, go as `ref` does: nothing runs after it.
          const TaskRecordRef ref(raw);
          (void)cancel_task(p, ref, TaskErrc::kCancelled);
        }));
    if (rec->settled()) return give_back_queue_ref();  // the signal was already requested
  }
  if (options.timeout) {
    rec->timed = true;
    const Clock::time_point due = deadline_after(submitted, *options.timeout);
    TaskRecordRef ref = rec;
    if (!post_to_supervisor([pool = shared_from_this(), ref = std::move(ref), due]() mutable {
          if (ref->settled()) return;
          // (The record through a raw pointer: the assignment's right side,
          // which takes `ref`, runs first.)
          TaskRecord* raw = ref.get();
          raw->timeout_timer =
              EventLoop::current().set_timeout(due - Clock::now(), [pool, ref = std::move(ref)] {
                (void)cancel_task(*pool, ref, TaskErrc::kTimedOut);
              });
          // The supervisor's life is its keep-alive's, not its timers'.
          raw->timeout_timer.unref();
        })) {
      // The supervisor is gone (destroy() ran meanwhile): settle below.
    }
  }
  moodycamel::ProducerToken& token = producer_token();
  if (!queue.enqueue(token, rec.get())) {
    (void)settle_queued(
        *rec, make_task_error(TaskErrc::kThrew, "weave::Pool: out of memory", "std::bad_alloc"));
    return give_back_queue_ref();
  }
  holds_queue_ref = false;  // the queue has it now
  // destroy() may have drained the queue just before this enqueue: its
  // store of `destroying`, heavy_barrier() and cancel_queued_all() against
  // this enqueue, light_barrier() and load. Either it sees the task, or
  // this sees it destroying.
  light_barrier();
  if (destroying.load(std::memory_order_relaxed)) {
    cancel_queued_all();
    return;
  }
  wake_or_grow();
}

bool PoolCore::conclude(TaskRecord& rec, std::unique_ptr<TaskError> error, Counts& counts,
                        int thread_id, WorkerSlot* worker, Histogram* run_hist, bool only_queued,
                        std::uint64_t end) noexcept {
  const int claimed = rec.claim(only_queued);
  if (claimed < 0) return false;
  const auto from = static_cast<std::uint32_t>(claimed) & TaskRecord::kPhaseMask;
  const bool by_worker = worker != nullptr;
  if (by_worker && (claimed & TaskRecord::kCancelRequested) && !(error && error->cancelled())) {
    // A cancel() that succeeded before this claim decides the outcome,
    // whatever the task returned: cancel() said true.
    const auto why = static_cast<TaskErrc>(rec.cancel_reason.load(std::memory_order_acquire));
    error =
        cancelled_error(why == TaskErrc::kTimedOut ? TaskErrc::kTimedOut : TaskErrc::kCancelled);
  }
  // Counted before the outcome is published: once a future is ready, the
  // metrics and the on_finish hook include it.
  const TaskError* e = error.get();
  std::atomic<std::uint64_t>& c = !e                                  ? counts.completed
                                  : e->errc() == TaskErrc::kCancelled ? counts.cancelled
                                  : e->errc() == TaskErrc::kTimedOut  ? counts.timed_out
                                  : e->errc() == TaskErrc::kQueueFull ? rejected
                                                                      : counts.failed;
  // A worker's own counters have one writer; the shared ones take an RMW.
  if (by_worker && &c != &rejected) {
    bump(c);
  } else {
    c.fetch_add(1, std::memory_order_relaxed);
  }
  if (by_worker) {
    bump(worker->finished);
  } else if (from == TaskRecord::kRunning) {
    settled_running.fetch_add(1, std::memory_order_relaxed);
  } else {
    settled_queued.fetch_add(1, std::memory_order_relaxed);
  }
  const bool started = from == TaskRecord::kRunning;
  if (started && end == 0) end = ticks();
  if (started && run_hist) run_hist->record(ticks_to_ns(rec.started_ticks, end, ns_per));
  if (opt.hooks.on_finish) {
    TaskEvent ev{rec.id(), rec.name()};
    ev.thread_id = thread_id;
    if (started) {
      ev.wait_time =
          std::chrono::nanoseconds(ticks_to_ns(rec.queued_ticks, rec.started_ticks, ns_per));
      ev.run_time = std::chrono::nanoseconds(ticks_to_ns(rec.started_ticks, end, ns_per));
    }
    ev.error = e;
    try {
      opt.hooks.on_finish(ev);
    } catch (...) {
    }
  }
  const bool timed = rec.timed;
  rec.publish(std::move(error));
  if (timed) {
    TaskRecordRef ref(&rec);
    rec.add_ref();
    (void)post_to_supervisor([ref = std::move(ref)] { ref->timeout_timer.cancel(); });
  }
  // Released after publishing: drain() returning means every future is
  // ready. Then the fast side of the handshake with wait_idle(): a store,
  // light_barrier(), a load of `waiters` (an RMW on the shared paths).
  if (by_worker) {
    // release: drain() acquires the count (tally_locked), and must see what
    // the task wrote, not only that it ended.
    bump(worker->released, 1, std::memory_order_release);
  } else {
    released_elsewhere.fetch_add(1, std::memory_order_seq_cst);
  }
  if (opt.max_queue != PoolOptions::kUnbounded) {
    bounded.fetch_sub(1, std::memory_order_seq_cst);  // room for a kWait caller
  }
  light_barrier();
  if (waiters.load(std::memory_order_relaxed) > 0) {
    std::lock_guard<std::mutex> lock(wait_mu);
    wait_cv.notify_all();
  }
  return true;
}

bool PoolCore::settle_elsewhere(TaskRecord& rec, std::unique_ptr<TaskError> error, int thread_id,
                                Histogram* run_hist) {
  return conclude(rec, std::move(error), other_counts, thread_id, nullptr, run_hist);
}

bool PoolCore::settle_queued(TaskRecord& rec, std::unique_ptr<TaskError> error) {
  if (!conclude(rec, std::move(error), other_counts, 0, nullptr, nullptr, /*only_queued=*/true)) {
    return false;
  }
  rec.drop_payload();  // it will never run: free its callable and args now
  return true;
}

void PoolCore::cancel_queued_all() {
  TaskRecord* rec = nullptr;
  while (queue.try_dequeue(rec)) {
    (void)settle_queued(*rec, cancelled_error(TaskErrc::kCancelled));
    rec->release();
  }
}

// --- the worker's side ----------------------------------------------------------------

void PoolSource::dispatch(EventLoop& loop) {
  WorkerSlot& s = *slot_;
  PoolCore& p = *pool_;
  if (s.listed_idle.load(std::memory_order_relaxed)) {
    p.unlist_idle(s);  // woken some other way than through the idle list
  }
  // The fast side of the handshake with finish_shutdown(): this store,
  // light_barrier(), the loads of `destroying` (in run_one) against its
  // heavy_barrier() and load of `dispatching`. Either it sees this worker
  // dispatching, or every task this batch takes settles as cancelled.
  s.dispatching.store(true, std::memory_order_relaxed);
  ScopeExit done{[&s]() noexcept { s.dispatching.store(false, std::memory_order_release); }};
  light_barrier();
  // One clock read per task: a task's start is the previous one's end.
  std::uint64_t cursor = 0;
  // A bounded batch, so the loop's timers and other sources get their turn.
  for (int budget = 256; budget > 0; --budget) {
    if (s.abandoned.load(std::memory_order_relaxed) || !has_room()) return;
    TaskRecord* rec = nullptr;
    if (!p.queue.try_dequeue(*s.token, rec)) {
      if (cursor != 0) s.last_active_ns.store(now_ns(), std::memory_order_relaxed);
      internal::LoopSources::mark_hot(loop, this);  // dry: stay hot, polled until the loop parks
      return;
    }
    run_one(rec, cursor);
  }
  internal::LoopSources::mark_hot(loop, this);  // more may wait: back after the loop's other work
}

void PoolSource::run_one(TaskRecord* rec, std::uint64_t& cursor) {
  WorkerSlot& s = *slot_;
  PoolCore& p = *pool_;
  if (p.destroying.load(std::memory_order_relaxed)) {
    // destroy() is under way: a task taken now never starts (its stop
    // source might never be requested, and the worker is about to end).
    (void)p.settle_queued(*rec, cancelled_error(TaskErrc::kCancelled));
    rec->release();  // the queue's reference
    return;
  }
  rec->slot = &s;
  const bool own_stop = p.concurrency > 1;
  if (own_stop) rec->stop = std::stop_source();
  if (!rec->try_start()) {  // cancelled while queued: settled already
    rec->release();         // the queue's reference
    return;
  }
  bump(s.started);
  rec->started_ticks = cursor != 0 ? cursor : ticks();
  s.wait_time.record(ticks_to_ns(rec->queued_ticks, rec->started_ticks, p.ns_per));
  {
    // The queue's reference moves to the in-flight list: no count change.
    std::lock_guard<SpinLock> lock(s.mu);
    s.in_flight.emplace_back(rec);
  }
  if (p.opt.hooks.on_start) {
    TaskEvent ev{rec->id(), rec->name()};
    ev.thread_id = s.thread_id.load(std::memory_order_relaxed);
    ev.wait_time =
        std::chrono::nanoseconds(ticks_to_ns(rec->queued_ticks, rec->started_ticks, p.ns_per));
    try {
      p.opt.hooks.on_start(ev);
    } catch (...) {
    }
  }
  std::stop_token own_token;
  if (own_stop) own_token = rec->stop.get_token();
  const std::stop_token& token = own_stop ? own_token : s.stop_token;
  TaskContext ctx(*rec, token, &s);
  std::unique_ptr<TaskError> error;
  try {
    rec->invoke(ctx);
  } catch (const ArenaOutOfMemory&) {
    throw;  // the worker dies; the supervisor fails its tasks with its error
  } catch (const weave::atomics::WaitInterrupted&) {
    throw;  // the worker is being terminated
  } catch (const ResultCloneError& e) {
    error =
        make_task_error(TaskErrc::kDataClone,
                        "weave::Pool: the task's result cannot be cloned: " + e.status.message());
  } catch (const std::exception& e) {
    error = make_task_error(TaskErrc::kThrew, e.what(), current_exception_type_name());
  } catch (...) {
    if (worker_exit_in_progress()) throw;  // this_worker::exit(): the worker ends
    error = make_task_error(TaskErrc::kThrew, "", current_exception_type_name());
  }
  if (ctx.deferred() && !error) {  // its TaskCompletion finishes it
    cursor = 0;
    return;
  }
  cursor = finish(*rec, std::move(error), token);
}

std::uint64_t PoolSource::finish(TaskRecord& rec, std::unique_ptr<TaskError> error,
                                 const std::stop_token& token) {
  WorkerSlot& s = *slot_;
  PoolCore& p = *pool_;
  const bool cancel_asked = rec.cancel_requested() || token.stop_requested();
  if (cancel_asked) {
    const auto why = static_cast<TaskErrc>(rec.cancel_reason.load(std::memory_order_acquire));
    error =
        cancelled_error(why == TaskErrc::kTimedOut ? TaskErrc::kTimedOut : TaskErrc::kCancelled);
  }
  const std::uint64_t end = ticks();
  (void)p.conclude(rec, std::move(error), s.counts, s.thread_id.load(std::memory_order_relaxed), &s,
                   &s.run_time, /*only_queued=*/false, end);
  TaskRecordRef keep;
  {
    std::lock_guard<SpinLock> lock(s.mu);
    auto it = std::find_if(s.in_flight.begin(), s.in_flight.end(),
                           [&](const TaskRecordRef& r) { return r.get() == &rec; });
    // Not there: this worker finished the task before (a deferred task that
    // threw, whose completion reports later). Its slot was freed then, and
    // the stop source below may belong to another task by now.
    if (it == s.in_flight.end()) return end;
    keep = std::move(*it);
    s.in_flight.erase(it);
    // Not once destroy() is under way: its request on the worker's source
    // must stay for any task that still starts.
    if (p.concurrency == 1 && s.stop.stop_requested() &&
        !p.destroying.load(std::memory_order_acquire)) {
      // The next task gets a fresh token: this one stays requested. (Under
      // the lock a canceller requests it under, and only while the task is
      // still running, i.e. before the claim above: no request can land on
      // the next task.)
      s.stop = std::stop_source();
      s.stop_token = s.stop.get_token();
    }
  }
  return end;
}

// --- the supervisor ---------------------------------------------------------------------

namespace {

std::unique_ptr<TaskError> died_error(const WorkerSlot& slot, int code) {
  if (slot.error) {
    return make_task_error(TaskErrc::kWorkerDied, slot.error->message, slot.error->type_name,
                           slot.error->code);
  }
  return make_task_error(TaskErrc::kWorkerDied,
                         "weave::Pool: the worker exited with code " + std::to_string(code));
}

// Runs on the worker's thread: the source on its loop, and the idle check.
void worker_entry(const std::shared_ptr<PoolCore>& pool, const std::shared_ptr<WorkerSlot>& slot) {
  EventLoop& loop = EventLoop::current();
  slot->thread_id.store(weave::thread_id(), std::memory_order_relaxed);
  slot->token.emplace(pool->queue);
  auto source = std::make_shared<PoolSource>(pool, slot);
  slot->source = source.get();
  slot->loop_core = &internal::LoopSources::core(loop);
  slot->last_active_ns.store(now_ns(), std::memory_order_relaxed);
  internal::LoopSources::add(loop, source, /*refed=*/true);
  internal::LoopSources::mark_hot(loop, source.get());
  if (pool->min_threads == pool->max_threads || is_forever(pool->opt.idle_timeout)) return;
  // Retirement: checked a few times per idle_timeout; unref'd, so it never
  // keeps the worker up by itself.
  const auto period = std::max<Clock::duration>(
      std::chrono::milliseconds(1),
      std::min<Clock::duration>(pool->opt.idle_timeout / 4, std::chrono::milliseconds(250)));
  auto timer = std::make_shared<Timer>();
  *timer = loop.set_interval(period, [pool, slot, timer, raw = source.get()] {
    PoolCore& p = *pool;
    WorkerSlot& s = *slot;
    if (!s.in_flight.empty() || s.abandoned.load(std::memory_order_relaxed)) return;
    const auto idle_for =
        std::chrono::nanoseconds(now_ns() - s.last_active_ns.load(std::memory_order_relaxed));
    if (idle_for < p.opt.idle_timeout) return;
    {
      // Under slots_mu, as metrics() reads them: a snapshot never shows the
      // worker gone from `threads` but not yet counted as retired.
      std::lock_guard<std::mutex> lock(p.slots_mu);
      std::int64_t n = p.live.load(std::memory_order_relaxed);
      do {
        if (n <= static_cast<std::int64_t>(p.min_threads)) return;
      } while (!p.live.compare_exchange_weak(n, n - 1, std::memory_order_acq_rel));
      s.retiring.store(true, std::memory_order_release);
      p.workers_retired.fetch_add(1, std::memory_order_relaxed);
    }
    p.unlist_idle(s);
    timer->cancel();
    internal::LoopSources::remove(EventLoop::current(),
                                  raw);  // nothing refed is left: the worker ends
    // A task queued while this worker was leaving must still find one.
    if (p.queue.size_approx() > 0) p.request_spawn();
  });
  timer->unref();
}

}  // namespace

void PoolCore::spawn() {
  auto slot = std::make_shared<WorkerSlot>();
  slot->pool = this;
  slot->number = next_number++;
  slot->stop_token = slot->stop.get_token();
  WorkerOptions wo;
  wo.name = opt.name + "-" + std::to_string(slot->number);
  wo.worker_data = opt.worker_data;
  wo.resource_limits = opt.resource_limits;
  wo.env = opt.env;
  // Listed before its thread exists: its counters are in metrics() from its
  // first task on, and cancellers find it.
  {
    std::lock_guard<std::mutex> lock(slots_mu);
    slots.push_back(slot);
  }
  live.fetch_add(1, std::memory_order_acq_rel);
  try {
    slot->worker.emplace([pool = shared_from_this(), slot] { worker_entry(pool, slot); },
                         std::move(wo));
  } catch (...) {
    live.fetch_sub(1, std::memory_order_acq_rel);
    std::lock_guard<std::mutex> lock(slots_mu);
    std::erase(slots, slot);
    throw;
  }
  workers_started.fetch_add(1, std::memory_order_relaxed);
  WorkerSlot* raw = slot.get();
  slot->worker->on_error([raw](const WorkerError& e) { raw->error = e; });
  // Weak: the slot owns the Worker that owns this handler.
  slot->worker->on_exit([this, weak = std::weak_ptr<WorkerSlot>(slot)](int code) {
    if (std::shared_ptr<WorkerSlot> s = weak.lock()) handle_exit(s, code);
  });
}

void PoolCore::handle_exit(const std::shared_ptr<WorkerSlot>& slot, int code) {
  std::vector<TaskRecordRef> orphans;
  {
    std::lock_guard<SpinLock> lock(slot->mu);
    orphans = std::move(slot->in_flight);
  }
  const bool retired = slot->retiring.load(std::memory_order_acquire);
  const bool stopping = destroying.load(std::memory_order_acquire);
  if (!retired) live.fetch_sub(1, std::memory_order_acq_rel);
  for (TaskRecordRef& r : orphans) {
    (void)settle_elsewhere(
        *r, stopping ? cancelled_error(TaskErrc::kCancelled) : died_error(*slot, code),
        slot->thread_id.load(std::memory_order_relaxed));
  }
  // The Worker is destroyed here, inside its own exit handler: allowed (the
  // handler and the Worker's state live until it returns).
  std::optional<Worker> gone = std::move(slot->worker);
  slot->worker.reset();
  {
    std::lock_guard<std::mutex> lock(slots_mu);
    fold_locked(*slot);
    std::erase(slots, slot);
  }
  if (!retired && !stopping) {
    workers_replaced.fetch_add(1, std::memory_order_relaxed);
    try {
      spawn();
    } catch (...) {
      // No thread could be made: the periodic check tries again.
    }
  }
}

void PoolCore::abandon(const std::shared_ptr<WorkerSlot>& slot, TaskRecord* cancelled) {
  if (slot->abandoned.exchange(true, std::memory_order_acq_rel)) return;
  if (!slot->retiring.load(std::memory_order_acquire)) live.fetch_sub(1, std::memory_order_acq_rel);
  unlist_idle(*slot);
  std::vector<TaskRecordRef> stuck;
  {
    std::lock_guard<SpinLock> lock(slot->mu);
    stuck = slot->in_flight;
  }
  const bool stopping = destroying.load(std::memory_order_acquire);
  for (TaskRecordRef& r : stuck) {
    const auto why = static_cast<TaskErrc>(r->cancel_reason.load(std::memory_order_acquire));
    std::unique_ptr<TaskError> e =
        (r.get() == cancelled || stopping)
            ? cancelled_error(why == TaskErrc::kTimedOut ? TaskErrc::kTimedOut
                                                         : TaskErrc::kCancelled)
            : make_task_error(TaskErrc::kWorkerDied,
                              "weave::Pool: the worker was replaced: another of its tasks ignored "
                              "its stop token",
                              "", "ERR_WORKER_REPLACED");
    (void)settle_elsewhere(*r, std::move(e), slot->thread_id.load(std::memory_order_relaxed),
                           &elsewhere_run_time);
  }
  if (!slot->worker) return;  // it had already ended
  std::future<std::optional<int>> ended = abandon_worker(std::move(*slot->worker));
  slot->worker.reset();
  {
    std::lock_guard<std::mutex> lock(slots_mu);
    std::erase(slots, slot);
    abandoned.emplace_back(slot, std::move(ended));
  }
  if (!stopping) {
    workers_replaced.fetch_add(1, std::memory_order_relaxed);
    try {
      spawn();
    } catch (...) {
    }
  }
}

void PoolCore::check_idle() {
  {
    std::lock_guard<std::mutex> lock(slots_mu);
    std::erase_if(abandoned, [this](auto& a) {
      if (a.second.wait_for(std::chrono::seconds(0)) != std::future_status::ready) return false;
      fold_locked(*a.first);  // its thread has ended: its counters are final
      return true;
    });
  }
  if (destroying.load(std::memory_order_acquire)) return;
  const auto n = static_cast<std::size_t>(live.load(std::memory_order_relaxed));
  if (n < min_threads || (n < max_threads && queue.size_approx() > 0 && sleepers.load() == 0)) {
    try {
      spawn();
    } catch (...) {
    }
  }
}

void PoolCore::begin_shutdown() {
  // Every running task: asked to stop (its outcome is then "cancelled").
  std::vector<std::stop_source> stops;
  {
    std::lock_guard<std::mutex> lock(slots_mu);
    for (const auto& slot : slots) {
      std::lock_guard<SpinLock> l(slot->mu);
      for (const TaskRecordRef& r : slot->in_flight) {
        int none = 0;
        r->cancel_reason.compare_exchange_strong(none, static_cast<int>(TaskErrc::kCancelled));
        (void)r->request_cancel();
        if (r->stop.stop_possible()) stops.push_back(r->stop);
      }
      stops.push_back(slot->stop);
    }
  }
  for (std::stop_source& st : stops) st.request_stop();
}

void PoolCore::finish_shutdown() {
  idle_timer.cancel();
  std::vector<std::shared_ptr<WorkerSlot>> all;
  {
    std::lock_guard<std::mutex> lock(slots_mu);
    all = slots;
  }
  // The slow side of the handshake with dispatch(): `destroying` was
  // stored before this ran; a worker not seen dispatching now starts no task.
  heavy_barrier();
  // A hot worker passes through dispatch() on every loop turn, briefly: give
  // it a moment to be seen outside it.
  const Clock::time_point settle_by =
      deadline_after(Clock::now(), std::min<Clock::duration>(opt.cancel_grace, std::chrono::milliseconds(50)));
  for (const auto& slot : all) {
    // Provably idle, or let go: joining a worker that may be inside a task
    // could wait for as long as the task ignores its token. Busy: a task of
    // it is still unsettled after the grace period (a settled one may still
    // be on the list for a moment: its worker is finishing it), or it stays
    // inside dispatch(), where it may be starting one.
    bool busy = false;
    for (;;) {
      {
        std::lock_guard<SpinLock> lock(slot->mu);
        busy = std::any_of(slot->in_flight.begin(), slot->in_flight.end(),
                           [](const TaskRecordRef& r) { return !r->settled(); });
      }
      if (busy || !slot->dispatching.load(std::memory_order_acquire)) break;
      if (Clock::now() >= settle_by) {
        busy = true;
        break;
      }
      std::this_thread::yield();
    }
    if (busy) {
      abandon(slot, nullptr);  // stuck past the grace period: let it go
    } else {
      slot->worker.reset();  // terminates and joins: it is idle
    }
  }
  supervisor_keep_alive.reset();
}

PoolCore::Tally PoolCore::tally_locked() const {
  Tally t{retired_started, retired_finished, retired_released};
  auto add = [&](const WorkerSlot& s) {
    t.started += s.started.load(std::memory_order_relaxed);
    t.finished += s.finished.load(std::memory_order_relaxed);
    t.released += s.released.load(std::memory_order_acquire);  // see conclude()
  };
  for (const auto& s : slots) add(*s);
  for (const auto& a : abandoned) add(*a.first);
  return t;
}

void PoolCore::fold_locked(const WorkerSlot& slot) {
  Counts& c = retired_counts;
  c.completed.fetch_add(slot.counts.completed.load(std::memory_order_relaxed));
  c.failed.fetch_add(slot.counts.failed.load(std::memory_order_relaxed));
  c.cancelled.fetch_add(slot.counts.cancelled.load(std::memory_order_relaxed));
  c.timed_out.fetch_add(slot.counts.timed_out.load(std::memory_order_relaxed));
  retired_started += slot.started.load(std::memory_order_relaxed);
  retired_finished += slot.finished.load(std::memory_order_relaxed);
  retired_released += slot.released.load(std::memory_order_acquire);  // see conclude()
  slot.run_time.add_to(retired_run_time);
  slot.wait_time.add_to(retired_wait_time);
}

std::size_t PoolCore::queued(std::uint64_t acc, const Tally& t) const noexcept {
  // Accepted and neither started nor settled in the queue.
  const std::uint64_t gone = t.started + settled_queued.load(std::memory_order_relaxed);
  return static_cast<std::size_t>(acc > gone ? acc - gone : 0);
}

std::size_t PoolCore::queue_size() {
  const std::uint64_t acc = accepted();  // first, as in metrics()
  std::lock_guard<std::mutex> lock(slots_mu);
  return queued(acc, tally_locked());
}

std::uint64_t PoolCore::unreleased() {
  // `accepted` first: a task accepted after it is not counted as released
  // either, so the difference never goes below zero.
  const std::uint64_t acc = accepted();
  std::lock_guard<std::mutex> lock(slots_mu);
  const std::uint64_t done =
      tally_locked().released + released_elsewhere.load(std::memory_order_seq_cst);
  return acc > done ? acc - done : 0;
}

void PoolCore::wait_idle(std::optional<Clock::time_point> deadline) {
  // The slow side of the handshake with conclude(): register, then a heavy
  // barrier, then every check sees what a worker released before it looked
  // at `waiters` (or that worker sees us and notifies under wait_mu).
  waiters.fetch_add(1, std::memory_order_seq_cst);
  heavy_barrier();
  {
    std::unique_lock<std::mutex> lock(wait_mu);
    auto idle_now = [&] { return unreleased() == 0; };
    if (deadline) {
      wait_cv.wait_until(lock, *deadline, idle_now);
    } else {
      wait_cv.wait(lock, idle_now);
    }
  }
  waiters.fetch_sub(1, std::memory_order_relaxed);
}

PoolMetrics PoolCore::metrics() {
  PoolMetrics m;
  Histogram::Totals run = {}, wait = {};
  Counts* parts[2] = {&other_counts, &retired_counts};
  // `accepted` first, the settled counts after: each task counted as settled
  // was accepted before, so no difference below goes negative.
  const std::uint64_t acc = accepted();
  Tally t;
  {
    std::lock_guard<std::mutex> lock(slots_mu);
    run = retired_run_time;
    wait = retired_wait_time;
    t = tally_locked();
    auto add_slot = [&](const WorkerSlot& s) {
      m.completed += s.counts.completed.load(std::memory_order_relaxed);
      m.failed += s.counts.failed.load(std::memory_order_relaxed);
      m.cancelled += s.counts.cancelled.load(std::memory_order_relaxed);
      m.timed_out += s.counts.timed_out.load(std::memory_order_relaxed);
      s.run_time.add_to(run);
      s.wait_time.add_to(wait);
    };
    for (const auto& s : slots) add_slot(*s);
    for (const auto& a : abandoned) {
      add_slot(*a.first);
      if (a.second.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
        ++m.abandoned_threads;
      }
    }
    elsewhere_run_time.add_to(run);
    // With the retirements (see the idle check), under the same lock.
    m.threads = static_cast<std::size_t>(std::max<std::int64_t>(0, live.load()));
    m.workers_retired = workers_retired.load(std::memory_order_relaxed);
  }
  for (Counts* c : parts) {
    m.completed += c->completed.load(std::memory_order_relaxed);
    m.failed += c->failed.load(std::memory_order_relaxed);
    m.cancelled += c->cancelled.load(std::memory_order_relaxed);
    m.timed_out += c->timed_out.load(std::memory_order_relaxed);
  }
  m.rejected = rejected.load(std::memory_order_relaxed);
  m.submitted = acc;
  // Started and not settled.
  const std::uint64_t running_settled = settled_running.load(std::memory_order_relaxed);
  m.running = static_cast<std::size_t>(
      t.started > t.finished + running_settled ? t.started - t.finished - running_settled : 0);
  m.queue_size = queued(acc, t);
  m.workers_started = workers_started.load(std::memory_order_relaxed);
  m.workers_replaced = workers_replaced.load(std::memory_order_relaxed);
  auto summary = [](const Histogram::Totals& t) {
    DurationSummary d;
    d.count = t.count;
    if (t.count == 0) return d;
    d.mean = std::chrono::nanoseconds(t.sum / t.count);
    d.min = std::chrono::nanoseconds(t.min);
    d.max = std::chrono::nanoseconds(t.max);
    d.p50 = std::chrono::nanoseconds(t.quantile(0.50));
    d.p90 = std::chrono::nanoseconds(t.quantile(0.90));
    d.p99 = std::chrono::nanoseconds(t.quantile(0.99));
    return d;
  };
  m.run_time = summary(run);
  m.wait_time = summary(wait);
  const double elapsed = std::chrono::duration<double>(Clock::now() - started_at).count();
  const double busy = static_cast<double>(run.sum) * 1e-9;
  m.utilization =
      elapsed > 0 ? std::clamp(busy / (elapsed * static_cast<double>(max_threads)), 0.0, 1.0) : 0;
  return m;
}

std::string PoolCore::check_quiescent() {
  const std::uint64_t a = accepted();
  Tally t;
  Counts* parts[2] = {&other_counts, &retired_counts};
  std::uint64_t outcomes = 0;
  std::size_t in_flight = 0;
  {
    std::lock_guard<std::mutex> lock(slots_mu);
    t = tally_locked();
    auto add = [&](WorkerSlot& s) {
      outcomes += s.counts.completed.load() + s.counts.failed.load() + s.counts.cancelled.load() +
                  s.counts.timed_out.load();
      std::lock_guard<SpinLock> l(s.mu);
      in_flight += s.in_flight.size();
    };
    for (const auto& s : slots) add(*s);
    for (const auto& ab : abandoned) add(*ab.first);
  }
  for (Counts* c : parts) {
    outcomes += c->completed.load() + c->failed.load() + c->cancelled.load() + c->timed_out.load();
  }
  const std::uint64_t sq = settled_queued.load();
  const std::uint64_t sr = settled_running.load();
  const std::uint64_t r = t.released + released_elsewhere.load();
  const std::uint64_t evicted = rejected.load() - refused.load();
  std::string out;
  auto expect = [&out](bool ok, const std::string& what) {
    if (!ok) out += (out.empty() ? "" : "; ") + what;
  };
  auto n = [](std::uint64_t v) { return std::to_string(v); };
  expect(a == t.started + sq, "accepted " + n(a) + " != started " + n(t.started) +
                                  " + settled_queued " + n(sq));
  expect(t.started == t.finished + sr, "started " + n(t.started) + " != finished " +
                                           n(t.finished) + " + settled_running " + n(sr));
  expect(r == t.finished + sq + sr, "released " + n(r) + " != finished + settled_queued + "
                                                            "settled_running " +
                                        n(t.finished + sq + sr));
  expect(outcomes + evicted == a,
         "outcomes " + n(outcomes) + " + evicted " + n(evicted) + " != accepted " + n(a));
  expect(in_flight == 0, n(in_flight) + " tasks still in flight");
  expect(bounded.load() == 0, "bounded = " + std::to_string(bounded.load()));
  expect(at_door.load() == 0, n(at_door.load()) + " callers still in run()");
  return out;
}

// --- cancellation ----------------------------------------------------------------------

bool cancel_task(PoolCore& pool, const TaskRecordRef& ref, TaskErrc errc) {
  TaskRecord& rec = *ref;
  for (;;) {
    const std::uint32_t phase = rec.phase();
    if (phase == TaskRecord::kQueued) {
      if (pool.settle_queued(rec, cancelled_error(errc))) return true;
      continue;  // it started (or settled) meanwhile
    }
    if (phase != TaskRecord::kRunning) return false;
    int none = 0;
    if (!rec.cancel_reason.compare_exchange_strong(none, static_cast<int>(errc),
                                                   std::memory_order_acq_rel)) {
      return false;  // a cancellation is already under way
    }
    if (!rec.request_cancel()) return false;  // it settled meanwhile
    break;
  }
  // The task's stop source: its own, or its worker's (copied under the
  // locks, requested outside them: request_stop runs the task's callbacks).
  std::shared_ptr<WorkerSlot> slot;
  {
    std::lock_guard<std::mutex> lock(pool.slots_mu);
    if (rec.settled()) return true;
    for (const auto& s : pool.slots) {
      if (s.get() == rec.slot) slot = s;
    }
  }
  if (rec.stop.stop_possible()) {
    rec.stop.request_stop();  // the task's own (several per worker)
  } else if (slot) {
    // The worker's shared source, requested under its lock and only while
    // the task is unsettled: the worker settles before it takes the lock to
    // swap in a fresh source, so a later task never sees this request.
    std::lock_guard<SpinLock> l(slot->mu);
    if (rec.phase() == TaskRecord::kRunning) slot->stop.request_stop();
  }
  // No grace timer without a worker to replace, or with a grace of kForever.
  if (!slot || is_forever(pool.opt.cancel_grace)) return true;
  (void)pool.post_to_supervisor(
      [pool = pool.shared_from_this(), slot = std::move(slot), ref]() mutable {
        EventLoop::current()
            .set_timeout(pool->opt.cancel_grace,
                         [pool, slot, ref] {
                           if (ref->settled()) return;
                           pool->abandon(slot, ref.get());
                         })
            .unref();
      });
  return true;
}

}  // namespace internal

// --- TaskContext / TaskCompletion -----------------------------------------------------

TaskCompletion TaskContext::defer() {
  if (deferred_) throw std::logic_error("weave::TaskContext::defer: called twice for one task");
  if (!rec_.returns_value()) {
    throw std::logic_error(
        "weave::TaskContext::defer: only tasks whose result is a weave::Value can defer");
  }
  deferred_ = true;
  rec_.add_ref();
  internal::PoolSource& src = *slot_->source;
  return TaskCompletion(internal::TaskRecordRef(&rec_), token_, src.slot());
}

TaskCompletion& TaskCompletion::operator=(TaskCompletion&& o) noexcept {
  if (this != &o) {
    if (rec_)
      finish(internal::make_task_error(TaskErrc::kNotCompleted,
                                       "weave::TaskCompletion: dropped without settling"));
    rec_ = std::move(o.rec_);
    token_ = std::move(o.token_);
    slot_ = std::move(o.slot_);
  }
  return *this;
}

TaskCompletion::~TaskCompletion() {
  if (!rec_) return;
  // Destroyed with the loop of a worker that is ending (it died, or was let
  // go): the pool settles the task with the worker's own error instead.
  if (internal::worker_ending()) return;
  if (std::uncaught_exceptions() > 0) {
    // Dropped while an exception unwinds, which may be about to end the
    // worker: decide on the loop's next turn, when that is known.
    try {
      EventLoop::current().post(
          [c = TaskCompletion(std::move(rec_), std::move(token_), std::move(slot_))]() mutable {
            if (internal::worker_ending()) c.rec_ = internal::TaskRecordRef();
          });
      return;
    } catch (...) {
    }
  }
  try {
    finish(internal::make_task_error(TaskErrc::kNotCompleted,
                                     "weave::TaskCompletion: dropped without settling"));
  } catch (...) {
  }
}

void TaskCompletion::resolve(Value result, std::vector<ArrayBuffer> transfer) {
  if (!rec_) return;
  Result<Value> cloned = structured_clone(result, transfer);
  if (!cloned) {
    finish(internal::make_task_error(
        TaskErrc::kDataClone,
        "weave::Pool: the task's result cannot be cloned: " + cloned.status().message()));
    return;
  }
  *static_cast<std::optional<Value>*>(rec_->result_slot()) = std::move(*cloned);
  finish(nullptr);
}

void TaskCompletion::reject(std::exception_ptr error) {
  if (!rec_) return;
  try {
    if (error) std::rethrow_exception(error);
    finish(internal::make_task_error(TaskErrc::kThrew, "rejected without an exception"));
  } catch (const std::exception& e) {
    finish(internal::make_task_error(TaskErrc::kThrew, e.what(),
                                     internal::current_exception_type_name()));
  } catch (...) {
    finish(
        internal::make_task_error(TaskErrc::kThrew, "", internal::current_exception_type_name()));
  }
}

void TaskCompletion::finish(std::unique_ptr<TaskError> error) {
  internal::TaskRecordRef rec = std::move(rec_);
  std::shared_ptr<internal::WorkerSlot> slot = std::move(slot_);
  internal::PoolSource& src = *slot->source;
  (void)src.finish(*rec, std::move(error), token_);
  slot->last_active_ns.store(internal::now_ns(), std::memory_order_relaxed);
  src.slot_freed(EventLoop::current());
}

// --- registry --------------------------------------------------------------------------

namespace {
struct TaskRegistry {
  std::mutex mu;
  std::map<std::string, TaskFunction, std::less<>> tasks;
};
TaskRegistry& task_registry() {
  static TaskRegistry r;
  return r;
}
}  // namespace

bool register_task(std::string_view name, TaskFunction fn) {
  if (name.empty() || !fn) return false;
  TaskRegistry& r = task_registry();
  std::lock_guard<std::mutex> lock(r.mu);
  return r.tasks.emplace(std::string(name), fn).second;
}

TaskFunction find_task(std::string_view name) noexcept {
  TaskRegistry& r = task_registry();
  std::lock_guard<std::mutex> lock(r.mu);
  auto it = r.tasks.find(name);
  return it == r.tasks.end() ? nullptr : it->second;
}

// --- Pool ------------------------------------------------------------------------------

namespace {

// A task found by name: its body clones the args in (prepare) and the result out.
class NamedTaskRecord final : public internal::TaskRecord {
 public:
  NamedTaskRecord(std::string_view name, TaskFunction fn) : TaskRecord(name), fn_(fn) {}
  void invoke(TaskContext& ctx) override {
    Value r = fn_(ctx, std::move(args_));
    args_ = Value();
    if (ctx.deferred()) return;
    Result<Value> out = structured_clone(r, ctx.result_transfer());
    if (!out) throw internal::ResultCloneError{out.status()};
    result_.emplace(std::move(*out));
  }
  void drop_payload() noexcept override { args_ = Value(); }
  void* result_slot() noexcept override { return &result_; }
  [[nodiscard]] bool returns_value() const noexcept override { return true; }
  Value& args() noexcept { return args_; }

 private:
  TaskFunction fn_;
  Value args_;
  std::optional<Value> result_;
};

// The registered name's own storage (stable for the program's life).
std::pair<std::string_view, TaskFunction> lookup_task(std::string_view name) noexcept {
  TaskRegistry& r = task_registry();
  std::lock_guard<std::mutex> lock(r.mu);
  auto it = r.tasks.find(name);
  if (it == r.tasks.end()) return {{}, nullptr};
  return {it->first, it->second};
}

}  // namespace

Pool::Pool(PoolOptions options) : core_(std::make_shared<internal::PoolCore>(std::move(options))) {
  std::promise<void> ready;
  std::future<void> started = ready.get_future();
  core_->supervisor_thread = std::thread([core = core_, &ready] {
    char name[16] = {};
    std::snprintf(name, sizeof name, "%s-sup", core->opt.name.substr(0, 11).c_str());
    pthread_setname_np(pthread_self(), name);
    EventLoop& loop = EventLoop::current();
    core->supervisor = loop.handle();
    core->supervisor_keep_alive = loop.handle().keep_alive();
    try {
      for (std::size_t i = 0; i < core->min_threads; ++i) core->spawn();
    } catch (...) {
      core->destroying.store(true);
      for (const auto& slot : core->slots) slot->worker.reset();
      core->slots.clear();
      core->supervisor_keep_alive.reset();
      ready.set_exception(std::current_exception());
      return;
    }
    core->idle_timer =
        loop.set_interval(std::chrono::milliseconds(250), [c = core.get()] { c->check_idle(); });
    core->idle_timer.unref();
    ready.set_value();
    // A throwing supervisor callback (a bug) must not end the supervisor.
    for (;;) {
      try {
        if (!loop.run()) break;
      } catch (...) {
      }
    }
  });
  try {
    started.get();
  } catch (...) {
    core_->supervisor_thread.join();
    throw;
  }
}

Pool::~Pool() { destroy(); }

void Pool::destroy() {
  internal::PoolCore& c = *core_;
  const bool first = !c.destroying.exchange(true, std::memory_order_seq_cst);
  close();
  if (!first) return;
  // The slow side of the handshake with a run() that passed the closed
  // check (see enqueue_admitted): it sees `destroying`, or this sees its task.
  internal::heavy_barrier();
  c.cancel_queued_all();
  (void)c.post_to_supervisor([core = core_] { core->begin_shutdown(); });
  c.wait_idle(c.deadline_in(c.opt.cancel_grace));
  (void)c.post_to_supervisor([core = core_] { core->finish_shutdown(); });
  if (c.supervisor_thread.joinable()) c.supervisor_thread.join();
}

void Pool::close() noexcept {
  core_->closed.store(true, std::memory_order_seq_cst);
  if (core_->waiters.load(std::memory_order_seq_cst) > 0) {
    std::lock_guard<std::mutex> lock(core_->wait_mu);
    core_->wait_cv.notify_all();
  }
}

bool Pool::closed() const noexcept { return core_->closed.load(std::memory_order_acquire); }

void Pool::drain() { core_->wait_idle(std::nullopt); }

bool Pool::drain_for(Clock::duration d) {
  core_->wait_idle(core_->deadline_in(d));
  return core_->unreleased() == 0;
}

PoolMetrics Pool::metrics() const { return core_->metrics(); }

std::size_t Pool::threads_approx() const noexcept {
  return static_cast<std::size_t>(std::max<std::int64_t>(0, core_->live.load()));
}

std::size_t Pool::queue_size_approx() const noexcept { return core_->queue_size(); }

const PoolOptions& Pool::options() const noexcept { return core_->opt; }

void Pool::submit_record(const internal::TaskRecordRef& rec, RunOptions& options) {
  core_->submit(rec, options, nullptr);
}

TaskFuture<Value> Pool::run(std::string_view task, Value args, RunOptions options) {
  auto [name, fn] = lookup_task(task);
  auto* named = new NamedTaskRecord(name, fn);
  internal::TaskRecordRef rec(named);
  auto fail_now = [&](TaskErrc errc, const std::string& message) {
    core_->refuse_at_door(*rec, internal::make_task_error(errc, message));
    return TaskFuture<Value>(core_.get(), std::move(rec));
  };
  if (!fn) {
    return fail_now(TaskErrc::kNotFound,
                    "weave::Pool::run: no task is registered as \"" + std::string(task) + "\"");
  }
  if (!options.transfer.ports.empty()) {
    return fail_now(TaskErrc::kDataClone,
                    "weave::Pool::run: ports cannot be transferred to a task");
  }
  if (!options.transfer.shared_buffers.empty()) {
    return fail_now(TaskErrc::kDataClone,
                    "weave::Pool::run: a SharedArrayBuffer is not transferable (pass it in the "
                    "args to share it)");
  }
  const std::function<Status()> prepare = [&]() -> Status {
    Result<Value> cloned = structured_clone(args, options.transfer.buffers);
    if (!cloned) return cloned.status();
    named->args() = std::move(*cloned);
    return Status();
  };
  core_->submit(rec, options, &prepare);
  return TaskFuture<Value>(core_.get(), std::move(rec));
}

namespace internal {

std::string PoolInspector::accounting_report(Pool& pool) { return pool.core_->check_quiescent(); }

std::size_t PoolInspector::producer_tokens(Pool& pool) {
  std::lock_guard<std::mutex> lock(pool.core_->tokens_mu);
  return pool.core_->tokens.size();
}

}  // namespace internal

}  // namespace weave
