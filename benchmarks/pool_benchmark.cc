// Google Benchmark suite for weave's Pool (pool/pool.h), each library figure
// next to its raw baseline in the same binary, so every number reads as a
// ratio to the limit (see STYLE.md).
//
// BM_PoolTinyTasks/threads:N vs BM_PoolTinyTasks_Baseline/threads:N: the
//   throughput of tiny tasks. One iteration = kTinyTasks tasks submitted one
//   by one from the benchmark thread, then every result collected and their
//   sum checked. Library: a Pool of exactly N workers (min_threads =
//   max_threads = N), made before the timed loop and warmed up (its workers
//   online); each task is a callable `[x] { return x * 2 + 1; }` given to
//   Pool::run, whose TaskFuture<std::uint64_t> is kept; after submitting them
//   all the benchmark thread get()s every future, in order. Baseline: "the
//   simplest fixed pool": N bare std::threads popping std::function<void()>
//   from one moodycamel::BlockingConcurrentQueue with wait_dequeue
//   (ConsumerToken each; the benchmark thread enqueues with a ProducerToken);
//   each task computes the same x * 2 + 1 and stores it in its own slot of a
//   preallocated vector (the result is delivered, as a future's would be),
//   then counts down an atomic counter; the last one notifies, and the
//   benchmark thread waits with std::atomic::wait until it reached zero,
//   then sums the slots. The baseline's std::function holds its 24-byte
//   capture on the heap (libstdc++ stores 16 bytes inline), one allocation
//   per task, as the pool allocates one task record per task. items/s =
//   tasks. Target: library >= 1.0x baseline items/s.
//
// BM_PoolOffloadSpeedup/threads:N vs BM_PoolOffloadSpeedup_Baseline: a
//   CPU-bound job, the CRC-32 of each of the kChunks 512 KiB chunks of a
//   32 MiB pseudo-random buffer (table-driven, one byte at a time), every
//   chunk's CRC checked against the one computed at startup. Library: each
//   chunk is one callable task on a Pool of exactly N workers (made before
//   the timed loop), the benchmark thread get()s the kChunks futures.
//   Baseline: the same chunks, one after another on the benchmark thread.
//   bytes/s = buffer bytes. The library's "speedup" counter is the
//   single-thread time (the baseline's loop body, kReferenceRuns runs on the
//   benchmark thread right before the timed loop, their mean) divided by the
//   library's time per iteration. Target: speedup close to N on an
//   otherwise idle machine (each task is ~1 ms, so the pool's own cost is
//   noise); at N = 1 it shows what offloading costs.
//
// All of them run with UseRealTime() (the work is done by other threads).
// Pools, threads and buffers are made before the timed loop; every thread is
// joined and every Pool destroyed before its benchmark returns. A wrong
// result or a failed task aborts the binary (bench::die): a benchmark that
// saw a wrong result must not report a figure.
//
// CPU placement: nothing is pinned, in library and baseline alike. A pool's
// workers inherit the CPU mask of the thread that constructs the Pool, so
// pinning the benchmark thread would put every worker on its CPU; and with
// N workers on N CPUs plus a submitting thread, some threads share a CPU
// either way. The scheduler places them.
//
// Run (one line):
//   bazel run -c opt //benchmarks:pool_benchmark -- --benchmark_repetitions=5
//     --benchmark_enable_random_interleaving=true --benchmark_report_aggregates_only=true
// or scripts/bench.sh, which runs the other benchmarks too. On a shared
// machine the figures swing by 2x or more between runs; for comparable
// numbers run the binary under SCHED_FIFO (root):
//   chrt -f 1 bazel-bin/benchmarks/pool_benchmark ...

#include <benchmark/benchmark.h>
#include <concurrentqueue/blockingconcurrentqueue.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "benchmarks/bench_util.h"
#include "demo/crc32.h"
#include "pool/pool.h"
#include "pool/task.h"

namespace weave {
namespace {

using bench::die;

// Waits for `f` and returns its result; a failed task aborts, naming `what`
// and the task's error.
template <class T>
T get_or_die(TaskFuture<T>& f, const char* what) {
  try {
    return f.get();
  } catch (const TaskError& e) {
    const std::string msg =
        std::string(what) + ": task failed: " + e.code() + " (" + e.type_name() + ") " + e.what();
    die(msg.c_str());
  }
}

// Exactly n workers. (Assigned, not designated-initialized: -Wextra warns
// about every member a designated initializer leaves out.)
PoolOptions fixed_pool(std::size_t n) {
  PoolOptions o;
  o.name = "bench";
  o.min_threads = n;
  o.max_threads = n;
  return o;
}

// --- 1. tiny tasks ------------------------------------------------------------------

constexpr std::size_t kTinyTasks = 100'000;

constexpr std::uint64_t tiny(std::uint64_t x) { return x * 2 + 1; }
// The sum of tiny(x) for x in [0, n): 2 * n(n-1)/2 + n = n^2.
constexpr std::uint64_t kTinySum = std::uint64_t{kTinyTasks} * kTinyTasks;

void BM_PoolTinyTasks(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  Pool pool(fixed_pool(n));
  std::vector<TaskFuture<std::uint64_t>> futures;
  futures.reserve(kTinyTasks);
  // Warm-up: every worker online and through its first tasks.
  for (std::uint64_t x = 0; x < 1000; ++x) futures.push_back(pool.run([x] { return tiny(x); }));
  for (std::uint64_t x = 0; x < 1000; ++x) {
    if (get_or_die(futures[x], "tiny tasks warm-up") != tiny(x)) {
      die("tiny tasks: wrong warm-up result");
    }
  }
  futures.clear();
  for (auto _ : state) {
    for (std::uint64_t x = 0; x < kTinyTasks; ++x) {
      futures.push_back(pool.run([x] { return tiny(x); }));
    }
    std::uint64_t sum = 0;
    for (TaskFuture<std::uint64_t>& f : futures) sum += get_or_die(f, "tiny tasks");
    if (sum != kTinySum) die("tiny tasks: wrong sum");
    futures.clear();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kTinyTasks));
}
BENCHMARK(BM_PoolTinyTasks)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// The simplest fixed pool: N threads on one blocking queue of std::function.
class BareThreadPool {
 public:
  explicit BareThreadPool(std::size_t n) : producer_(queue_) {
    for (std::size_t i = 0; i < n; ++i) {
      threads_.emplace_back([this] {
        moodycamel::ConsumerToken tok(queue_);
        std::function<void()> task;
        for (;;) {
          queue_.wait_dequeue(tok, task);
          if (!task) return;  // the empty function: stop
          task();
        }
      });
    }
  }
  ~BareThreadPool() {
    for (std::size_t i = 0; i < threads_.size(); ++i) queue_.enqueue(producer_, nullptr);
    for (std::thread& t : threads_) t.join();
  }
  BareThreadPool(const BareThreadPool&) = delete;
  BareThreadPool& operator=(const BareThreadPool&) = delete;

  // The constructing thread only (it owns the producer token).
  void submit(std::function<void()> task) { queue_.enqueue(producer_, std::move(task)); }

 private:
  moodycamel::BlockingConcurrentQueue<std::function<void()>> queue_;
  moodycamel::ProducerToken producer_;
  std::vector<std::thread> threads_;
};

// Submits `count` tiny tasks writing into `results`, waits until all ran and
// returns the sum of the results.
std::uint64_t run_bare_tiny_tasks(BareThreadPool& pool, std::vector<std::uint64_t>& results,
                                  std::size_t count) {
  std::atomic<std::uint32_t> remaining{static_cast<std::uint32_t>(count)};
  for (std::uint64_t x = 0; x < count; ++x) {
    pool.submit([x, slot = &results[x], left = &remaining] {
      *slot = tiny(x);
      // acq_rel: the last one sees every slot written; pairs with the acquire below.
      if (left->fetch_sub(1, std::memory_order_acq_rel) == 1) left->notify_one();
    });
  }
  for (std::uint32_t r; (r = remaining.load(std::memory_order_acquire)) != 0;) {
    remaining.wait(r, std::memory_order_acquire);
  }
  std::uint64_t sum = 0;
  for (std::size_t i = 0; i < count; ++i) sum += results[i];
  return sum;
}

void BM_PoolTinyTasks_Baseline(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  std::vector<std::uint64_t> results(kTinyTasks);
  BareThreadPool pool(n);
  // Warm-up, as for the library.
  if (run_bare_tiny_tasks(pool, results, 1000) != 1000 * 1000) die("tiny tasks baseline: warm-up");
  for (auto _ : state) {
    if (run_bare_tiny_tasks(pool, results, kTinyTasks) != kTinySum) {
      die("tiny tasks baseline: wrong sum");
    }
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kTinyTasks));
}
BENCHMARK(BM_PoolTinyTasks_Baseline)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// --- 2. offload speed-up ------------------------------------------------------------

constexpr std::size_t kBufferBytes = std::size_t{32} << 20;
constexpr std::size_t kChunks = 64;
constexpr std::size_t kChunkBytes = kBufferBytes / kChunks;
constexpr int kReferenceRuns = 3;

// CRC-32 (IEEE 802.3, as zlib's crc32), one byte at a time: the demo's job.
std::uint32_t crc32(const unsigned char* p, std::size_t n) {
  return demo::crc32(std::span<const unsigned char>(p, n));
}

// The buffer and every chunk's CRC, made once per process.
struct OffloadJob {
  std::vector<unsigned char> data;
  std::array<std::uint32_t, kChunks> crcs{};

  OffloadJob() : data(kBufferBytes) {
    static constexpr unsigned char kCheck[] = "123456789";
    if (crc32(kCheck, 9) != 0xCBF43926u) die("offload: crc32 is wrong");
    std::uint64_t s = 0x9E3779B97F4A7C15u;  // splitmix64
    for (std::size_t i = 0; i < kBufferBytes; i += 8) {
      std::uint64_t z = (s += 0x9E3779B97F4A7C15u);
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
      z ^= z >> 31;
      for (int b = 0; b < 8; ++b) data[i + b] = static_cast<unsigned char>(z >> (8 * b));
    }
    for (std::size_t c = 0; c < kChunks; ++c) crcs[c] = crc32(chunk(c), kChunkBytes);
  }
  [[nodiscard]] const unsigned char* chunk(std::size_t c) const {
    return data.data() + c * kChunkBytes;
  }
};

const OffloadJob& offload_job() {
  static const OffloadJob job;
  return job;
}

// The job on the calling thread: the baseline's loop body.
void offload_on_this_thread(const OffloadJob& job) {
  for (std::size_t c = 0; c < kChunks; ++c) {
    if (crc32(job.chunk(c), kChunkBytes) != job.crcs[c]) die("offload baseline: wrong crc");
  }
}

// The job through `pool`: one task per chunk.
void offload_on_pool(Pool& pool, const OffloadJob& job,
                     std::array<TaskFuture<std::uint32_t>, kChunks>& futures) {
  for (std::size_t c = 0; c < kChunks; ++c) {
    futures[c] = pool.run([p = job.chunk(c)] { return crc32(p, kChunkBytes); });
  }
  for (std::size_t c = 0; c < kChunks; ++c) {
    if (get_or_die(futures[c], "offload") != job.crcs[c]) die("offload: wrong crc");
  }
}

void BM_PoolOffloadSpeedup(benchmark::State& state) {
  using Seconds = std::chrono::duration<double>;
  const OffloadJob& job = offload_job();
  const auto n = static_cast<std::size_t>(state.range(0));
  Pool pool(fixed_pool(n));
  std::array<TaskFuture<std::uint32_t>, kChunks> futures;
  offload_on_pool(pool, job, futures);  // warm-up: the workers online
  // The single-thread reference, measured here so it sees the same machine.
  Seconds reference{};
  for (int i = 0; i < kReferenceRuns; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    offload_on_this_thread(job);
    reference += std::chrono::steady_clock::now() - t0;
  }
  reference /= kReferenceRuns;
  Seconds pooled{};
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    offload_on_pool(pool, job, futures);
    pooled += std::chrono::steady_clock::now() - t0;
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * kBufferBytes));
  if (state.iterations() > 0 && pooled.count() > 0) {
    state.counters["speedup"] =
        reference.count() / (pooled.count() / static_cast<double>(state.iterations()));
  }
}
BENCHMARK(BM_PoolOffloadSpeedup)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

void BM_PoolOffloadSpeedup_Baseline(benchmark::State& state) {
  const OffloadJob& job = offload_job();
  offload_on_this_thread(job);  // warm-up, as for the library
  for (auto _ : state) offload_on_this_thread(job);
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * kBufferBytes));
}
BENCHMARK(BM_PoolOffloadSpeedup_Baseline)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace weave
