// What the pool reports: the counters' tallies, drain()'s wait, metrics(),
// the accounting check, and the tests' inspector.
#include <algorithm>
#include <chrono>
#include <mutex>
#include <string>

#include "atomics/internal/barrier.h"
#include "pool/internal/inspect.h"
#include "pool/internal/pool_core.h"

namespace weave {
namespace internal {

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
      // Settled ones may still be listed a moment: their worker is finishing them.
      in_flight += static_cast<std::size_t>(
          std::count_if(s.in_flight.begin(), s.in_flight.end(),
                        [](const TaskRecordRef& r) { return !r->settled(); }));
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
  expect(a == t.started + sq,
         "accepted " + n(a) + " != started " + n(t.started) + " + settled_queued " + n(sq));
  expect(t.started == t.finished + sr, "started " + n(t.started) + " != finished " + n(t.finished) +
                                           " + settled_running " + n(sr));
  expect(r == t.finished + sq + sr, "released " + n(r) +
                                        " != finished + settled_queued + "
                                        "settled_running " +
                                        n(t.finished + sq + sr));
  expect(outcomes + evicted == a,
         "outcomes " + n(outcomes) + " + evicted " + n(evicted) + " != accepted " + n(a));
  expect(in_flight == 0, n(in_flight) + " unsettled tasks in flight");
  const std::size_t listed = pending_deadlines();
  expect(listed == 0, std::to_string(listed) + " deadlines still listed");
  expect(bounded.load() == 0, "bounded = " + std::to_string(bounded.load()));
  expect(at_door.load() == 0, n(at_door.load()) + " callers still in run()");
  return out;
}

std::string PoolInspector::accounting_report(Pool& pool) { return pool.core_->check_quiescent(); }

std::size_t PoolInspector::pending_deadlines(Pool& pool) { return pool.core_->pending_deadlines(); }

std::size_t PoolInspector::producer_tokens(Pool& pool) {
  std::lock_guard<std::mutex> lock(pool.core_->tokens_mu);
  return pool.core_->tokens.size();
}

}  // namespace internal
}  // namespace weave
