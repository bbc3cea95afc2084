// The supervisor's side: the Worker objects (spawn, exit, replacement,
// abandonment past cancel_grace), growth and the periodic check, and the two
// steps of shutdown.
#include <algorithm>
#include <chrono>
#include <future>
#include <mutex>
#include <thread>

#include "atomics/internal/barrier.h"
#include "base/deadline.h"
#include "pool/internal/pool_core.h"
#include "pool/internal/pool_worker.h"
#include "workers/internal/pool_hooks.h"

namespace weave::internal {

namespace {

std::unique_ptr<TaskError> died_error(const WorkerSlot& slot, int code) {
  if (slot.error) {
    return make_task_error(TaskErrc::kWorkerDied, slot.error->message, slot.error->type_name,
                           slot.error->code);
  }
  return make_task_error(TaskErrc::kWorkerDied,
                         "weave::Pool: the worker exited with code " + std::to_string(code));
}

}  // namespace

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

void PoolCore::spawn() {
  auto slot = std::make_shared<WorkerSlot>();
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
  deadline_timer.cancel();
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
  const Clock::time_point settle_by = deadline_after(
      Clock::now(), std::min<Clock::duration>(opt.cancel_grace, std::chrono::milliseconds(50)));
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

}  // namespace weave::internal
