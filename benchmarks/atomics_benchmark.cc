// Google Benchmark suite for weave's Atomics (atomics/atomics.h) on a
// SharedArrayBuffer, each library figure next to its raw baseline in the same
// binary, so every number reads as a ratio to the limit (see STYLE.md).
//
// BM_AtomicsWaitNotifyPingPong vs BM_AtomicsWaitNotifyPingPong_Baseline:
//   latency of one round trip of a turn bounced through one 32-bit word.
//   Library: element 0 of an Int32View over a SharedArrayBuffer. The
//   benchmark thread stores an odd value and notifies one waiter, then waits
//   with atomics::wait(view, 0, expected) until the value changed; the peer
//   thread waits the same way, stores the next (even) value and notifies
//   one. Baseline: the same protocol on a bare std::atomic<int> (its own
//   cache line) with C++20 wait / notify_one. The two wait differently, and
//   that is what the pair measures: weave's wait blocks in the kernel at once
//   (a shard lock, a FIFO node, a futex on the node's own word) and its
//   notify always takes the shard lock; libstdc++'s wait spins briefly (12
//   pauses, then 4 sched_yield) before its futex on the word itself, and its
//   notify_one skips the syscall when nobody waits. Target: library <= 1.2x
//   baseline time.
//
// BM_AtomicsAddContended vs BM_AtomicsAddContended_Baseline: two threads
//   (Google Benchmark's Threads(2)) each doing fetch-add of 1 on the same
//   64-bit word. Library: atomics::add(view, 0, 1) on element 0 of an
//   Int64View (each thread holds its own copy of the view, as users do).
//   Baseline: std::atomic<int64_t>::fetch_add(1) (seq_cst, as the library)
//   on a bare atomic on its own cache line. items/s is the sum over both
//   threads; after the timed loop thread 0 checks the word equals the total
//   number of adds. Target: library >= 0.9x baseline items/s.
//
// All of them run with UseRealTime() (two threads take part). Threads start
// and buffers are created before the timed loop; every thread is joined (or
// has left Google Benchmark's stop barrier) before the checks.
//
// CPU pinning (benchmarks/bench_util.h, as port_benchmark): the benchmark
// thread (thread 0) runs on the first CPU of the process's affinity mask and
// the peer (thread 1) on the second, for library and baseline alike.
// WEAVE_BENCH_NO_PIN=1 leaves placement to the scheduler.
//
// Run (one line):
//   bazel run -c opt //benchmarks:atomics_benchmark -- --benchmark_repetitions=5
//     --benchmark_enable_random_interleaving=true --benchmark_report_aggregates_only=true
// or scripts/bench.sh, which runs the other benchmarks too. On a shared
// machine the figures swing by 2x or more between runs; for comparable
// numbers run the binary under SCHED_FIFO (root):
//   chrt -f 1 bazel-bin/benchmarks/atomics_benchmark ...

#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdint>
#include <thread>

#include "atomics/atomics.h"
#include "atomics/shared_array_buffer.h"
#include "atomics/shared_view.h"
#include "benchmarks/bench_util.h"

namespace weave {
namespace {

using atomics::WaitResult;
using bench::die;
using bench::kBenchCpu;
using bench::kPeerCpu;
using bench::PinScope;

// --- 1. wait / notify ping-pong ------------------------------------------------
//
// The turn word holds an odd value when it is the peer's turn and an even one
// when it is the benchmark thread's; kStop ends the peer.
constexpr std::int32_t kStop = -1;

// Returns once view[0] != from. wait() returns kNotEqual when it already
// differs and kOk after a notify (which in this protocol follows a store);
// the loop re-checks anyway, as a waiter should.
void await_change(const Int32View& view, std::int32_t from) {
  while (atomics::load(view, 0) == from) (void)atomics::wait(view, 0, from);
}

void BM_AtomicsWaitNotifyPingPong(benchmark::State& state) {
  PinScope pin(kBenchCpu);
  const Int32View view(SharedArrayBuffer(sizeof(std::int32_t)));
  std::thread peer([view] {
    PinScope peer_pin(kPeerCpu);
    for (std::int32_t seen = 0;;) {
      await_change(view, seen);
      const std::int32_t v = atomics::load(view, 0);
      if (v == kStop) return;
      atomics::store(view, 0, v + 1);
      (void)atomics::notify(view, 0, 1);
      seen = v + 1;
    }
  });
  std::int32_t turn = 0;
  for (auto _ : state) {
    atomics::store(view, 0, turn + 1);
    (void)atomics::notify(view, 0, 1);
    await_change(view, turn + 1);
    turn += 2;
    if (atomics::load(view, 0) != turn) die("wait/notify ping-pong: wrong turn");
  }
  atomics::store(view, 0, kStop);
  (void)atomics::notify(view, 0, 1);
  peer.join();
  state.SetItemsProcessed(state.iterations());  // round trips
}
BENCHMARK(BM_AtomicsWaitNotifyPingPong)->UseRealTime();

// alignas: written by both threads on every turn; keep it off any line the
// harness touches.
struct alignas(64) TurnWord {
  std::atomic<int> value{0};
};

void BM_AtomicsWaitNotifyPingPong_Baseline(benchmark::State& state) {
  PinScope pin(kBenchCpu);
  TurnWord word;
  std::atomic<int>& a = word.value;
  std::thread peer([&a] {
    PinScope peer_pin(kPeerCpu);
    for (int seen = 0;;) {
      a.wait(seen);  // returns once a != seen
      const int v = a.load();
      if (v == kStop) return;
      a.store(v + 1);
      a.notify_one();
      seen = v + 1;
    }
  });
  int turn = 0;
  for (auto _ : state) {
    a.store(turn + 1);
    a.notify_one();
    a.wait(turn + 1);
    turn += 2;
    if (a.load() != turn) die("wait/notify ping-pong baseline: wrong turn");
  }
  a.store(kStop);
  a.notify_one();
  peer.join();
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_AtomicsWaitNotifyPingPong_Baseline)->UseRealTime();

// --- 2. contended add -----------------------------------------------------------
//
// Google Benchmark runs the function on both threads and holds them at a
// barrier when the timed loop starts and again when it ends: thread 0 resets
// the word before the first and checks it after the second.

const Int64View& add_view() {
  static const Int64View view(SharedArrayBuffer(sizeof(std::int64_t)));
  return view;
}

void BM_AtomicsAddContended(benchmark::State& state) {
  PinScope pin(state.thread_index());
  const Int64View view = add_view();  // each thread its own copy, as users hold views
  if (state.thread_index() == 0) atomics::store(view, 0, 0);
  for (auto _ : state) (void)atomics::add(view, 0, 1);
  if (state.thread_index() == 0 && atomics::load(view, 0) != state.iterations() * state.threads()) {
    die("contended add: lost or extra adds");
  }
  state.SetItemsProcessed(state.iterations());  // summed over the threads
}
BENCHMARK(BM_AtomicsAddContended)->Threads(2)->UseRealTime();

// alignas: both threads write it; its own cache line, as the library's
// element has its own page.
struct alignas(64) Counter {
  std::atomic<std::int64_t> value{0};
};
Counter g_counter;

void BM_AtomicsAddContended_Baseline(benchmark::State& state) {
  PinScope pin(state.thread_index());
  std::atomic<std::int64_t>& c = g_counter.value;
  if (state.thread_index() == 0) c.store(0);
  for (auto _ : state) (void)c.fetch_add(1);
  if (state.thread_index() == 0 && c.load() != state.iterations() * state.threads()) {
    die("contended add baseline: lost or extra adds");
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_AtomicsAddContended_Baseline)->Threads(2)->UseRealTime();

}  // namespace
}  // namespace weave
