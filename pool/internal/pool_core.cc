// PoolCore's construction (the options checked) and destruction.
#include "pool/internal/pool_core.h"

#include <algorithm>
#include <cassert>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <thread>

#include "base/deadline.h"
#include "pool/internal/ticks.h"

namespace weave::internal {

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
  // The Worker's own check: it names the field and its range.
  o.resource_limits.validate("weave::Pool: options.resource_limits");
  if (Result<Value> c = structured_clone(o.worker_data); !c) {
    invalid("options.worker_data cannot be cloned: " + c.status().message());
  }
  o.min_threads = min;
  o.max_threads = max;
  return o;
}

}  // namespace

// Each core's serial keys the submitting threads' token caches (admission.cc).
std::atomic<std::uint64_t> g_pool_serial{1};

PoolCore::PoolCore(PoolOptions o)
    : opt(validated(std::move(o))),
      min_threads(*opt.min_threads),
      max_threads(*opt.max_threads),
      concurrency(opt.concurrent_tasks_per_worker),
      serial(g_pool_serial.fetch_add(1, std::memory_order_relaxed)) {}

PoolCore::~PoolCore() {
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

}  // namespace weave::internal
