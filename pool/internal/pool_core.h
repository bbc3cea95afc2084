// The pool's core: what the Pool facade, the admission path, the workers'
// sources and the supervisor share (WorkerSlot, PoolCore), and the
// accounting invariants. Private to //pool (and its tests, through
// pool/internal/inspect.h).
//
// How the pool is put together:
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
//   replacement, the timeouts' one timer and cancel grace periods. Nothing
//   on a task's path goes through it unless the task is cancelled while
//   running, or its timeout is the earliest yet (a timed task is listed by
//   deadline under a lock; see "deadlines" below).
// - A record's state word decides every race (pool/internal/task_record.h);
// - Counting costs the workers no locked instruction: run() adds to
//   the task ids it hands out; each worker counts what it started, finished (counted before
//   the future is ready, for the metrics) and released (after, for drain())
//   in counters only it writes; the rare settles elsewhere (cancelled in the
//   queue, a dead or stuck worker's tasks) use shared atomics. drain() adds
//   itself to `waiters` and sums; a worker checks `waiters` after releasing
//   a task, behind light_barrier() against drain's heavy_barrier(). Only a
//   bounded max_queue keeps a shared count of unsettled tasks (`bounded`).
#pragma once

#include <concurrentqueue/concurrentqueue.h>

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "atomics/internal/cache_line.h"
#include "atomics/internal/spin_lock.h"
#include "base/deadline.h"
#include "channel/status.h"
#include "loop/event_loop.h"
#include "pool/internal/histogram.h"
#include "pool/internal/task_record.h"
#include "pool/internal/ticks.h"
#include "pool/pool.h"
#include "workers/worker.h"

namespace weave::internal {

// Outcome counters: a worker's own (one writer) or shared.
struct Counts {
  std::atomic<std::uint64_t> completed{0};
  std::atomic<std::uint64_t> failed{0};
  std::atomic<std::uint64_t> cancelled{0};
  std::atomic<std::uint64_t> timed_out{0};
};

// Thrown inside a named task's body when its result cannot be cloned.
struct ResultCloneError {
  Status status;
};

class PoolSource;

// The next PoolCore's serial (keys the submitting threads' token caches).
extern std::atomic<std::uint64_t> g_pool_serial;

// One worker of the pool, shared by the supervisor (which owns its Worker)
// and the worker's thread (whose loop runs `source`).
struct alignas(kFalseSharingSpan) WorkerSlot {
  int number = 0;

  // --- the worker's thread -------------------------------------------------------------
  std::optional<moodycamel::ConsumerToken> token;
  // The source on the worker's loop, which owns it (a shared_ptr here
  // would be a cycle: the source holds the slot).
  class PoolSource* source = nullptr;
  LoopCore* loop_core = nullptr;  // set before the slot can be listed idle
  // The task whose invoke() is on the stack, and its in-flight reference if
  // it was settled meanwhile (see run_one).
  TaskRecord* invoking = nullptr;
  TaskRecordRef invoking_keep;
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
//   no slot has an unsettled task in flight, no deadline is listed, and
//   `bounded` is 0.
// check_quiescent() checks the quiescent form; debug builds run it as the
// core is destroyed, and the tests call it through PoolInspector.
class PoolCore : public std::enable_shared_from_this<PoolCore> {
 public:
  explicit PoolCore(PoolOptions o);
  // Settles anything still queued; checks the accounting (debug builds).
  ~PoolCore();

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

  // --- deadlines (RunOptions::timeout) ---------------------------------------------------
  // Timed tasks by deadline, earliest first, each holding a reference: one
  // supervisor timer armed for the earliest, instead of a timer and two
  // supervisor posts per task. add_deadline (run()'s thread) posts to the
  // supervisor only for a new earliest deadline; remove_deadline (whoever
  // settles) takes the lock and erases, O(log n); expire_deadlines (the
  // supervisor) cancels what is due (kTimedOut) and re-arms.
  void add_deadline(const TaskRecordRef& rec);
  void remove_deadline(TaskRecord& rec) noexcept;
  void expire_deadlines();
  std::size_t pending_deadlines() {
    std::lock_guard<std::mutex> lock(deadlines_mu);
    return deadlines.size();
  }
  std::mutex deadlines_mu;
  std::map<std::pair<Clock::time_point, TaskRecord*>, TaskRecordRef> deadlines;
  Clock::time_point deadline_armed = Clock::time_point::max();  // under deadlines_mu
  Timer deadline_timer;                                         // supervisor thread only

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
  // Gives back the calling thread's token (as the thread ends). A new
  // token reuses the queue's inactive producers, so the queue's producer
  // list is bounded by the threads submitting at once.
  void release_producer_token() noexcept;
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

}  // namespace weave::internal
