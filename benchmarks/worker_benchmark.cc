// Google Benchmark suite for weave's Worker, each library figure next to its
// raw baseline in the same binary, so every number reads as a ratio to the
// limit (see STYLE.md). The harness (pinning, the loop's waiting protocol
// copied for the baselines, the bare-queue echo) is benchmarks/bench_util.h,
// shared with port_benchmark.
//
// BM_WorkerStartOnline vs BM_WorkerStartOnline_Baseline: a worker's whole
//   short life. Library: construct a Worker whose entry listens on its parent
//   port (so it stays up), run the parent's EventLoop (kOnce) until the
//   `online` handler ran, terminate(), run the loop until the `exit` handler
//   ran — the parent joins the thread before it emits `exit`, so every
//   iteration ends with the thread joined. Baseline: a bare std::thread that
//   signals it runs, the creator waiting for it as the loop waits (spin
//   ~20 us on a wake word, then futex_wait; WakeWord), then join. The library
//   pays on top: the worker's loop and arena, the channel to it, a copy of
//   the environment, the online and exit tasks, and waking the worker to
//   stop it. Nothing is pinned in this pair: a new thread inherits its
//   creator's CPU mask, so pinning the creator would put both on one core.
//   Target: library <= 2x baseline time. (Node: ~22 ms.)
//
// BM_WorkerRoundTrip vs BM_WorkerRoundTrip_Baseline: latency of one round
//   trip between a parent and its worker. Library: the worker's entry sets
//   parent_port()->on_message to post every value straight back; the parent
//   posts an int64 weave::Value with Worker::post_message and runs its loop
//   (kOnce) until its Worker::on_message handler ran — port_benchmark's
//   PortClient::round_trip, with the Worker in between. Baseline: the same
//   as BM_PortPingPong_Baseline — two bare moodycamel queues of weave::Value
//   and an echo thread, both sides waiting as the loop does (RawEcho<Value>).
//   The parent runs on the first CPU, the worker (its entry pins its own
//   thread) or echo thread on the second. Target: library <= 1.5x baseline.
//
// BM_WorkerIdleFootprint vs BM_WorkerIdleFootprint_Baseline: the memory one
//   idle worker holds. A fresh child process (this binary, re-run with
//   WEAVE_BENCH_FOOTPRINT_CHILD set, so nothing an earlier benchmark freed
//   is reused and hides the growth) starts kIdleWorkers workers that only
//   listen on their parent port, waits until all are online and every one's
//   thread sleeps in the kernel (parked in its loop) twice in a row, then
//   measures; then terminates and joins them all. Baseline: kIdleWorkers
//   bare std::threads blocked in futex_wait, measured the same way.
//   Counters, per worker:
//     bytes_per_worker: growth of the process's anonymous resident memory
//       (/proc/self/statm resident - shared: code pages that first use maps
//       in are not memory a worker holds) minus the resident pages of the
//       threads' stack mappings (pthread_getattr_np's range, counted with
//       mincore; glibc keeps the thread descriptor and static TLS there too).
//     stack_bytes_per_worker: those resident stack bytes.
//     heap_bytes_per_worker: growth of the bytes in live malloc blocks
//       (mallinfo2 uordblks + hblkhd), what the allocations ask for; the
//       rest of bytes_per_worker is malloc's page granularity and per-thread
//       arenas.
//   Counters print "k" for KiB (1024). Kernel memory (task struct, kernel
//   stack) is in neither figure. The time column is how long the child took
//   until all of them ran (the workers' `online` seen by the parent; the
//   threads' first store seen); it has no target.
//   Target: bytes_per_worker <= 64 KiB. (Node: ~7.5 MiB.)
//
// The time pairs run with UseRealTime() (two threads take part). Every
// thread is joined and every Worker destroyed before its benchmark returns.
//
// Run (one line):
//   bazel run -c opt //benchmarks:worker_benchmark -- --benchmark_repetitions=5
//     --benchmark_enable_random_interleaving=true --benchmark_report_aggregates_only=true
// or scripts/bench.sh, which runs port_benchmark too. On a shared machine the
// figures swing by 2x or more between runs; for comparable numbers run the
// binary under SCHED_FIFO (root):
//   chrt -f 1 bazel-bin/benchmarks/worker_benchmark ...

#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "atomics/internal/futex.h"
#include "benchmarks/bench_util.h"
#include "channel/message_port.h"
#include "channel/value.h"
#include "loop/event_loop.h"
#include "tests/thread_state.h"
#include "workers/worker.h"

extern char** environ;

namespace weave {
namespace {

using bench::die;
using bench::kBenchCpu;
using bench::kPeerCpu;
using bench::PinScope;
using bench::RawEcho;
using bench::WakeWord;
using RunMode = EventLoop::RunMode;

// Runs the calling thread's loop one turn at a time until `done` is true.
void run_until(const bool& done) {
  EventLoop& loop = EventLoop::current();
  while (!done) (void)loop.run(RunMode::kOnce);
}

// --- 1. start, online, terminate, join ---------------------------------------------

// A worker that stays up until terminated: it listens on its parent port.
void listen_on_parent_port() {
  parent_port()->on_message([](MessageEvent&) {});
}

void BM_WorkerStartOnline(benchmark::State& state) {
  for (auto _ : state) {
    bool online = false;
    bool exited = false;
    Worker w(&listen_on_parent_port);
    w.on_online([&online] { online = true; });
    w.on_exit([&exited](int) { exited = true; });
    run_until(online);
    (void)w.terminate();
    run_until(exited);  // emitted after the parent joined the thread
  }
  state.SetItemsProcessed(state.iterations());  // workers started and joined
}
BENCHMARK(BM_WorkerStartOnline)->UseRealTime();

void BM_WorkerStartOnline_Baseline(benchmark::State& state) {
  for (auto _ : state) {
    WakeWord wake;
    std::atomic<bool> running{false};
    std::thread t([&] {
      // release: pairs with the creator's acquire load.
      running.store(true, std::memory_order_release);
      wake.notify();
    });
    while (!running.load(std::memory_order_acquire)) wake.park();
    t.join();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_WorkerStartOnline_Baseline)->UseRealTime();

// The three phases' mean times per start, as counters: the library's and the
// baseline's rows report them the same way.
void report_start_phases(benchmark::State& state, std::chrono::nanoseconds construct,
                         std::chrono::nanoseconds online_wait, std::chrono::nanoseconds stop) {
  const auto n = static_cast<double>(state.iterations());
  state.counters["construct_ns"] = static_cast<double>(construct.count()) / n;
  state.counters["online_ns"] = static_cast<double>(online_wait.count()) / n;
  state.counters["stop_ns"] = static_cast<double>(stop.count()) / n;
}

// Where a start's time goes: the same life as BM_WorkerStartOnline, with a
// clock read between its phases. Counters, mean ns per worker:
//   construct: the Worker constructor (allocations, pthread_create);
//   online: from the constructor's return until the `online` handler ran
//     (the thread's start, its loop, the hop to the parent);
//   stop: from terminate() until the `exit` handler ran (the wake, the
//     worker's teardown, the exit hop and the join).
// The baseline's phases: std::thread's constructor; until the thread's first
// store is seen; join. No target: it explains the pair above.
void BM_WorkerStartPhases(benchmark::State& state) {
  using SteadyClock = std::chrono::steady_clock;
  std::chrono::nanoseconds construct{}, online_wait{}, stop{};
  for (auto _ : state) {
    bool online = false;
    bool exited = false;
    const auto t0 = SteadyClock::now();
    Worker w(&listen_on_parent_port);
    const auto t1 = SteadyClock::now();
    w.on_online([&online] { online = true; });
    w.on_exit([&exited](int) { exited = true; });
    run_until(online);
    const auto t2 = SteadyClock::now();
    (void)w.terminate();
    run_until(exited);
    const auto t3 = SteadyClock::now();
    construct += t1 - t0;
    online_wait += t2 - t1;
    stop += t3 - t2;
  }
  report_start_phases(state, construct, online_wait, stop);
}
BENCHMARK(BM_WorkerStartPhases)->UseRealTime();

void BM_WorkerStartPhases_Baseline(benchmark::State& state) {
  using SteadyClock = std::chrono::steady_clock;
  std::chrono::nanoseconds construct{}, online_wait{}, stop{};
  for (auto _ : state) {
    WakeWord wake;
    std::atomic<bool> running{false};
    const auto t0 = SteadyClock::now();
    std::thread t([&] {
      // release: pairs with the creator's acquire load.
      running.store(true, std::memory_order_release);
      wake.notify();
    });
    const auto t1 = SteadyClock::now();
    while (!running.load(std::memory_order_acquire)) wake.park();
    const auto t2 = SteadyClock::now();
    t.join();
    const auto t3 = SteadyClock::now();
    construct += t1 - t0;
    online_wait += t2 - t1;
    stop += t3 - t2;
  }
  report_start_phases(state, construct, online_wait, stop);
}
BENCHMARK(BM_WorkerStartPhases_Baseline)->UseRealTime();

// --- 2. round trip ------------------------------------------------------------------

// Posts every value straight back on the parent port, as port_benchmark's
// PortEcho does.
void echo_on_parent_port() {
  (void)bench::pin_this_thread(kPeerCpu);  // for the rest of the thread's life
  parent_port()->on_message([](MessageEvent& e) {
    Status s = parent_port()->post_message(e.data);
    // kClosed is expected once the parent has let go of the worker.
    if (!s.ok() && s.code() != ErrorCode::kClosed) die("worker echo: post failed");
  });
}

void BM_WorkerRoundTrip(benchmark::State& state) {
  PinScope pin(kBenchCpu);
  bool online = false;
  bool exited = false;
  bool got = false;
  Value reply;
  Worker w(&echo_on_parent_port);
  w.on_online([&online] { online = true; });
  w.on_message([&](MessageEvent& e) {
    reply = std::move(e.data);
    got = true;
  });
  w.on_exit([&exited](int) { exited = true; });
  run_until(online);
  std::int64_t i = 0;
  for (auto _ : state) {
    got = false;
    if (!w.post_message(Value(i)).ok()) die("round trip: post_message failed");
    run_until(got);
    if (*reply.if_int() != i) die("round trip: wrong reply");
    ++i;
  }
  (void)w.terminate();
  run_until(exited);
  state.SetItemsProcessed(state.iterations());  // round trips
}
BENCHMARK(BM_WorkerRoundTrip)->UseRealTime();

// The same bare baseline as BM_PortPingPong_Baseline.
void BM_WorkerRoundTrip_Baseline(benchmark::State& state) {
  bench::raw_echo_round_trips(state, "round trip baseline: wrong reply");
}
BENCHMARK(BM_WorkerRoundTrip_Baseline)->UseRealTime();

// --- 3. idle footprint --------------------------------------------------------------

constexpr int kIdleWorkers = 100;
constexpr const char* kChildEnv = "WEAVE_BENCH_FOOTPRINT_CHILD";
constexpr std::string_view kWorkers = "workers";
constexpr std::string_view kThreads = "threads";

// What a measured thread tells the measuring one about itself.
struct ThreadInfo {
  std::atomic<bool> ready{false};
  pid_t tid = 0;
  pthread_t self{};
};

// On the measured thread. Makes no allocation, so a bare thread gets no
// malloc arena of its own from being measured.
void report_self(ThreadInfo& info) {
  info.tid = proc::current_tid();
  info.self = pthread_self();
  // release: publishes tid and self to the measuring thread's acquire.
  info.ready.store(true, std::memory_order_release);
}

using proc::thread_state;

// Waits until every thread reported itself and then sleeps in the kernel on
// two checks 5 ms apart: for an idle worker, parked in its loop (a worker
// also sleeps briefly on a contended malloc lock while starting, hence the
// second look).
void wait_until_all_parked(const std::unique_ptr<ThreadInfo[]>& infos) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  for (int calm = 0; calm < 2;) {
    if (std::chrono::steady_clock::now() > deadline) die("footprint: threads never parked");
    bool all = true;
    for (int i = 0; i < kIdleWorkers && all; ++i) {
      all = infos[i].ready.load(std::memory_order_acquire) && thread_state(infos[i].tid) == 'S';
    }
    calm = all ? calm + 1 : 0;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

// The process's anonymous resident bytes and the bytes in live malloc blocks.
struct MemorySnapshot {
  long anon_bytes = 0;
  long heap_bytes = 0;
};

MemorySnapshot snapshot_memory() {
  MemorySnapshot m;
  std::FILE* f = std::fopen("/proc/self/statm", "re");
  long size = 0, resident = 0, shared = 0;
  if (!f || std::fscanf(f, "%ld %ld %ld", &size, &resident, &shared) != 3) die("cannot read statm");
  std::fclose(f);
  m.anon_bytes = (resident - shared) * sysconf(_SC_PAGESIZE);
  const struct mallinfo2 mi = mallinfo2();
  m.heap_bytes = static_cast<long>(mi.uordblks + mi.hblkhd);
  return m;
}

// Resident bytes of the stack mapping of the live thread `t`.
long resident_stack_bytes(pthread_t t) {
  pthread_attr_t attr;
  if (pthread_getattr_np(t, &attr) != 0) die("pthread_getattr_np failed");
  void* lo = nullptr;
  std::size_t size = 0;
  pthread_attr_getstack(&attr, &lo, &size);
  pthread_attr_destroy(&attr);
  const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<std::uintptr_t>(lo) / page * page;
  const auto end = reinterpret_cast<std::uintptr_t>(lo) + size;
  std::vector<unsigned char> in_core((end - begin + page - 1) / page);
  if (mincore(reinterpret_cast<void*>(begin), end - begin, in_core.data()) != 0) {
    die("mincore failed");
  }
  long bytes = 0;
  for (unsigned char c : in_core) bytes += (c & 1) ? static_cast<long>(page) : 0;
  return bytes;
}

// What a child measured, for all kIdleWorkers threads together.
struct Footprint {
  long anon_growth = 0;
  long stack_bytes = 0;
  long heap_growth = 0;
  double seconds = 0;  // from the first start until all of them run
};

// Measures once everything is up, before anything is torn down.
Footprint measure(const MemorySnapshot& before, const std::unique_ptr<ThreadInfo[]>& infos,
                  std::chrono::steady_clock::duration start_time) {
  Footprint f;
  f.seconds = std::chrono::duration<double>(start_time).count();
  const MemorySnapshot after = snapshot_memory();
  f.anon_growth = after.anon_bytes - before.anon_bytes;
  f.heap_growth = after.heap_bytes - before.heap_bytes;
  for (int i = 0; i < kIdleWorkers; ++i) f.stack_bytes += resident_stack_bytes(infos[i].self);
  return f;
}

Footprint idle_workers() {
  // Made once per process, not per worker: the parent's loop and env().
  EventLoop& loop = EventLoop::current();
  (void)env();
  auto infos = std::make_unique<ThreadInfo[]>(kIdleWorkers);
  std::vector<Worker> workers;
  workers.reserve(kIdleWorkers);
  int online = 0;
  int exited = 0;
  const MemorySnapshot before = snapshot_memory();
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kIdleWorkers; ++i) {
    Worker& w = workers.emplace_back([info = &infos[i]] {
      listen_on_parent_port();
      report_self(*info);
    });
    w.on_online([&online] { ++online; });
    w.on_exit([&exited](int) { ++exited; });
  }
  while (online < kIdleWorkers) (void)loop.run(RunMode::kOnce);
  const auto start_time = std::chrono::steady_clock::now() - start;
  wait_until_all_parked(infos);
  const Footprint f = measure(before, infos, start_time);
  for (Worker& w : workers) (void)w.terminate();
  while (exited < kIdleWorkers) (void)loop.run(RunMode::kOnce);
  workers.clear();
  return f;
}

Footprint idle_threads() {
  auto infos = std::make_unique<ThreadInfo[]>(kIdleWorkers);
  std::vector<std::thread> threads;
  threads.reserve(kIdleWorkers);
  std::atomic<std::uint32_t> released{0};
  const MemorySnapshot before = snapshot_memory();
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kIdleWorkers; ++i) {
    threads.emplace_back([info = &infos[i], &released] {
      report_self(*info);
      // acquire: pairs with the release store that lets them go.
      while (released.load(std::memory_order_acquire) == 0) internal::futex_wait(released, 0);
    });
  }
  for (int i = 0; i < kIdleWorkers; ++i) {
    while (!infos[i].ready.load(std::memory_order_acquire)) std::this_thread::yield();
  }
  const auto start_time = std::chrono::steady_clock::now() - start;
  wait_until_all_parked(infos);
  const Footprint f = measure(before, infos, start_time);
  released.store(1, std::memory_order_release);
  internal::futex_wake(released, INT_MAX);
  for (std::thread& t : threads) t.join();
  return f;
}

// The child process's main: one measurement, printed as one line on stdout.
int footprint_child(std::string_view mode) {
  Footprint f;
  if (mode == kWorkers) {
    f = idle_workers();
  } else if (mode == kThreads) {
    f = idle_threads();
  } else {
    die("footprint child: unknown mode");
  }
  std::printf("%ld %ld %ld %.9f\n", f.anon_growth, f.stack_bytes, f.heap_growth, f.seconds);
  return std::fflush(stdout) == 0 ? 0 : 1;
}

// Runs this binary again as a footprint child in `mode` and reads its line.
Footprint run_footprint_child(std::string_view mode) {
  char exe[4096];
  const ssize_t len = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (len <= 0) die("footprint: cannot find /proc/self/exe");
  exe[len] = '\0';
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) die("footprint: pipe failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);  // dup2 clears CLOEXEC
  const std::string child_var = std::string(kChildEnv) + "=" + std::string(mode);
  std::vector<char*> envp;
  for (char** e = environ; *e; ++e) envp.push_back(*e);
  envp.push_back(const_cast<char*>(child_var.c_str()));
  envp.push_back(nullptr);
  char* argv[] = {exe, nullptr};
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, exe, &actions, nullptr, argv, envp.data());
  posix_spawn_file_actions_destroy(&actions);
  ::close(fds[1]);
  if (rc != 0) die("footprint: posix_spawn failed");
  std::string out;
  char buf[256];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) die("footprint: read failed");
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) die("footprint: waitpid failed");
  }
  Footprint f;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
      std::sscanf(out.c_str(), "%ld %ld %ld %lf", &f.anon_growth, &f.stack_bytes, &f.heap_growth,
                  &f.seconds) != 4) {
    die("footprint: the child failed");
  }
  return f;
}

void report_footprint(benchmark::State& state, std::string_view mode) {
  Footprint f;
  for (auto _ : state) {
    f = run_footprint_child(mode);
    state.SetIterationTime(f.seconds);
  }
  const auto per_worker = [](long bytes) {
    return benchmark::Counter(static_cast<double>(bytes) / kIdleWorkers,
                              benchmark::Counter::kDefaults, benchmark::Counter::kIs1024);
  };
  state.counters["bytes_per_worker"] = per_worker(f.anon_growth - f.stack_bytes);
  state.counters["stack_bytes_per_worker"] = per_worker(f.stack_bytes);
  state.counters["heap_bytes_per_worker"] = per_worker(f.heap_growth);
}

void BM_WorkerIdleFootprint(benchmark::State& state) { report_footprint(state, kWorkers); }
BENCHMARK(BM_WorkerIdleFootprint)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);

void BM_WorkerIdleFootprint_Baseline(benchmark::State& state) { report_footprint(state, kThreads); }
BENCHMARK(BM_WorkerIdleFootprint_Baseline)
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace weave

// BENCHMARK_MAIN(), except that a footprint child measures and exits instead.
int main(int argc, char** argv) {
  if (const char* mode = std::getenv(weave::kChildEnv)) return weave::footprint_child(mode);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
