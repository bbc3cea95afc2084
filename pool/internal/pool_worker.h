// The worker's side of the pool: the hot LoopSource that takes tasks from
// the queue on a worker's loop, and the worker's entry. Private to //pool.
#pragma once

#include <cstdint>
#include <memory>
#include <stop_token>

#include "loop/event_loop.h"
#include "loop/internal/sources.h"
#include "pool/internal/pool_core.h"

namespace weave::internal {

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

// Runs on a new worker's thread: adds its source, and the idle check.
void worker_entry(const std::shared_ptr<PoolCore>& pool, const std::shared_ptr<WorkerSlot>& slot);

}  // namespace weave::internal
