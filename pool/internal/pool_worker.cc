// The worker's side: taking and running tasks (PoolSource), the worker's
// entry and retirement, and deferred tasks (TaskContext::defer,
// TaskCompletion).
#include "pool/internal/pool_worker.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <mutex>

#include "atomics/atomics.h"
#include "atomics/internal/barrier.h"
#include "atomics/internal/counter.h"
#include "base/internal/scope_exit.h"
#include "loop/internal/clock.h"
#include "pool/internal/ticks.h"
#include "workers/arena.h"
#include "workers/internal/pool_hooks.h"

namespace weave {
namespace internal {

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
  // A deferred task may be settled inside invoke() (its completion resolved
  // or dropped there): finish() then parks the in-flight reference here
  // instead of dropping it, so the record outlives invoke()'s own tail.
  TaskRecordRef settled_inside;
  s.invoking = rec;
  ScopeExit invoked{[&s, &settled_inside]() noexcept {
    s.invoking = nullptr;
    settled_inside = std::move(s.invoking_keep);
  }};
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
  s.invoking = nullptr;
  settled_inside = std::move(s.invoking_keep);  // released as this returns
  if (ctx.deferred() && !error) {               // its TaskCompletion finishes it
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
    // Inside the task's own invoke(): run_one drops it once invoke() is done.
    if (s.invoking == &rec) s.invoking_keep = std::move(keep);
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

// Runs on the worker's thread: the source on its loop, and the idle check.
namespace {
// The pool whose worker this thread is (set as the worker starts).
thread_local const PoolCore* tl_worker_pool = nullptr;
}  // namespace

bool on_worker_of(const PoolCore* pool) noexcept {
  return pool != nullptr && tl_worker_pool == pool;
}

void worker_entry(const std::shared_ptr<PoolCore>& pool, const std::shared_ptr<WorkerSlot>& slot) {
  EventLoop& loop = EventLoop::current();
  tl_worker_pool = pool.get();
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

}  // namespace internal

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

}  // namespace weave
