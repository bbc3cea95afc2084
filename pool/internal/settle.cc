// Settling an accepted task, wherever that happens (conclude and its
// wrappers), and cancellation.
#include <memory>
#include <mutex>

#include "atomics/internal/barrier.h"
#include "atomics/internal/counter.h"
#include "base/deadline.h"
#include "pool/internal/pool_core.h"
#include "pool/internal/ticks.h"

namespace weave::internal {

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
  // Off the deadline list (under its lock, no supervisor post), before
  // publishing: whoever sees the future ready sees the list without it.
  if (rec.timed) remove_deadline(rec);
  rec.publish(std::move(error));
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

void PoolCore::add_deadline(const TaskRecordRef& rec) {
  bool earliest = false;
  {
    std::lock_guard<std::mutex> lock(deadlines_mu);
    deadlines.emplace(std::make_pair(rec->deadline, rec.get()), rec);
    if (rec->deadline < deadline_armed) {
      deadline_armed = rec->deadline;
      earliest = true;
    }
  }
  // Only a new earliest deadline costs a post: the supervisor re-arms its
  // one timer. (If the supervisor is gone, destroy() settles the task.)
  if (earliest) (void)post_to_supervisor([self = shared_from_this()] { self->expire_deadlines(); });
}

void PoolCore::remove_deadline(TaskRecord& rec) noexcept {
  TaskRecordRef gone;  // released after the lock
  std::lock_guard<std::mutex> lock(deadlines_mu);
  auto it = deadlines.find(std::make_pair(rec.deadline, &rec));
  if (it == deadlines.end()) return;  // expired (being cancelled), or never listed
  gone = std::move(it->second);
  deadlines.erase(it);
}

void PoolCore::expire_deadlines() {
  std::vector<TaskRecordRef> expired;
  Clock::time_point next = Clock::time_point::max();
  const Clock::time_point now = Clock::now();
  {
    std::lock_guard<std::mutex> lock(deadlines_mu);
    while (!deadlines.empty() && deadlines.begin()->first.first <= now) {
      expired.push_back(std::move(deadlines.begin()->second));
      deadlines.erase(deadlines.begin());
    }
    if (!deadlines.empty()) next = deadlines.begin()->first.first;
    deadline_armed = next;
  }
  for (const TaskRecordRef& r : expired) (void)cancel_task(*this, r, TaskErrc::kTimedOut);
  deadline_timer.cancel();
  if (next != Clock::time_point::max()) {
    deadline_timer = EventLoop::current().set_timeout(next - now, [this] { expire_deadlines(); });
    // The supervisor's life is its keep-alive's, not its timers'.
    deadline_timer.unref();
  }
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

}  // namespace weave::internal
