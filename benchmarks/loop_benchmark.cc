// Google Benchmark suite for weave's event loop timers (loop/event_loop.h),
// each library figure next to its raw baseline in the same binary (STYLE.md).
//
// BM_TimerSetCancel vs BM_TimerSetCancel_Baseline: the per-request timeout
// pattern — arm a timer, then cancel it before it fires — with `range(0)`
// other timers (1 h away) already pending. Library: loop.set_timeout(1h, fn)
// then Timer::cancel() on the benchmark thread's own loop; fn is a small
// lambda (inline in the Task, no allocation of its own). The cancel removes
// the timer from the heap at once (O(log n)), so memory stays flat whatever
// the rate. Baseline: the bare limit of "put a deadline in a binary heap and
// take it out again": Clock::now(), a push of a {deadline, seq, id} entry
// onto a std::priority_queue holding the same number of other entries, and a
// pop of it (it is due first, so the pop takes it; the library removes from
// wherever the entry sits, and also keeps the record — callback, ref state —
// in a hash map keyed by the timer id, which the baseline does not).
//
// Single-threaded: no pinning needed.
//
// Run:
//   bazel run -c opt //benchmarks:loop_benchmark -- --benchmark_repetitions=5
//     --benchmark_report_aggregates_only=true

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <queue>
#include <vector>

#include "loop/event_loop.h"

namespace weave {
namespace {

using namespace std::chrono_literals;

void BM_TimerSetCancel(benchmark::State& state) {
  EventLoop& loop = EventLoop::current();
  std::vector<Timer> background;
  for (std::int64_t i = 0; i < state.range(0); ++i)
    background.push_back(loop.set_timeout(1h, [] {}));
  std::uint64_t fired = 0;
  for (auto _ : state) {
    Timer t = loop.set_timeout(1ms, [&fired] { ++fired; });
    t.cancel();
  }
  for (Timer& t : background) t.cancel();
  if (loop.run(EventLoop::RunMode::kNoWait) || fired != 0)
    state.SkipWithError("a cancelled timer remained");
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_TimerSetCancel)->Arg(0)->Arg(10'000);

void BM_TimerSetCancel_Baseline(benchmark::State& state) {
  struct Entry {
    Clock::time_point due;
    std::uint64_t seq;
    std::uint64_t id;
    bool operator>(const Entry& o) const { return due != o.due ? due > o.due : seq > o.seq; }
  };
  std::priority_queue<Entry, std::vector<Entry>, std::greater<>> heap;
  std::uint64_t seq = 0;
  const auto far = Clock::now() + 1h;
  for (std::int64_t i = 0; i < state.range(0); ++i) heap.push(Entry{far, seq++, seq});
  for (auto _ : state) {
    heap.push(Entry{Clock::now() + 1ms, seq++, seq});
    benchmark::DoNotOptimize(heap.top());
    heap.pop();
  }
  if (heap.size() != static_cast<std::size_t>(state.range(0))) state.SkipWithError("heap size");
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_TimerSetCancel_Baseline)->Arg(0)->Arg(10'000);

}  // namespace
}  // namespace weave
