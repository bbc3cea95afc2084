// weave::Pool, the facade: construction (the supervisor thread), shutdown,
// and run() for named tasks. The machinery is in pool/internal/ (its map at
// the top of pool/internal/pool_core.h).
#include "pool/pool.h"

#include <pthread.h>

#include <cassert>
#include <cstdio>
#include <future>
#include <memory>
#include <string>
#include <thread>

#include "atomics/internal/barrier.h"
#include "pool/internal/named_task.h"
#include "pool/internal/pool_core.h"

namespace weave {

using internal::lookup_task;
using internal::NamedTaskRecord;

Pool::Pool(PoolOptions options) : core_(std::make_shared<internal::PoolCore>(std::move(options))) {
  std::promise<void> ready;
  std::future<void> started = ready.get_future();
  // The promise moves into the thread: set_value() may still be waking this
  // thread when the constructor returns.
  core_->supervisor_thread = std::thread([core = core_, ready = std::move(ready)]() mutable {
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

void Pool::drain() {
  assert(!internal::on_worker_of(core_.get()) &&
         "weave::Pool::drain: called from a task of this pool (it would wait for itself)");
  core_->wait_idle(std::nullopt);
}

bool Pool::drain_for(Clock::duration d) {
  assert(!internal::on_worker_of(core_.get()) &&
         "weave::Pool::drain_for: called from a task of this pool (it would wait for itself)");
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

}  // namespace weave
