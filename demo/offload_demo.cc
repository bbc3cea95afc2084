// weave's main demo: a weave::Pool of N Workers (N = hardware threads, at
// least 2) takes a CPU-bound job off the main thread, whose event loop keeps a
// timer ticking meanwhile. Every figure it prints is measured in the run.
//
//   [pool]     constructs the pool; how long until its N workers exist.
//   [offload]  CRC-32 of 128 1 MiB buffers (at least 8 per worker), one pool
//              task per buffer, the buffer transferred in (zero-copy) and back
//              with the result, each result taken on the main loop as it
//              settles (TaskFuture::then). Compared with one thread; results
//              checked; the main loop's timer ticks and worst gap reported.
//   [tasks]    100,000 tiny tasks through the pool: throughput, and the
//              pool's own wait/run-time percentiles.
//   [cancel]   a running task cancelled through its stop token, a queued one
//              cancelled before it ran, a task that throws: their outcomes.
//   [stream]   a million small messages main -> a Worker, checked in order.
//   [latency]  round trips of a small value main <-> a Worker.
//   [exit]     the pool destroyed (its workers joined), every Worker exited
//              with code 0; nothing is left running.
//
// Any failure (a worker's error event or non-zero exit, a wrong result, a
// wait that does not end) prints "offload_demo: FAILED: ..." and returns 1.
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "channel/array_buffer.h"
#include "channel/codec.h"
#include "channel/message_port.h"
#include "channel/value.h"
#include "demo/crc32.h"
#include "loop/event_loop.h"
#include "pool/pool.h"
#include "workers/worker.h"

namespace {

// What the stream worker reports once it has seen every message.
struct StreamReport {
  std::int64_t received = 0;
  bool in_order = false;
};

}  // namespace

WEAVE_CODEC(StreamReport, received, in_order);

namespace {

using weave::ArrayBuffer;
using weave::MessageEvent;
using weave::Worker;
using weave::WorkerOptions;
using Clock = std::chrono::steady_clock;

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }
double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// --- the job ----------------------------------------------------------------------

using weave::demo::crc32;  // the job (demo/crc32.h)

// `count` buffers of `bytes` pseudo-random bytes (splitmix64).
std::vector<ArrayBuffer> random_buffers(int count, std::size_t bytes) {
  std::vector<ArrayBuffer> buffers;
  std::uint64_t state = 42;
  for (int i = 0; i < count; ++i) {
    ArrayBuffer b = ArrayBuffer::create(bytes);
    for (std::size_t j = 0; j + 8 <= bytes; j += 8) {
      std::uint64_t z = (state += 0x9e3779b97f4a7c15ull);
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      z ^= z >> 31;
      std::memcpy(b.data() + j, &z, 8);
    }
    buffers.push_back(std::move(b));
  }
  return buffers;
}

// --- the workers' side ------------------------------------------------------------

// A post that failed throws: in a worker that becomes its `error` event (and
// exit code 1); on the main thread it fails the demo.
void post_or_throw(const weave::Status& sent, const char* what) {
  if (!sent) throw std::runtime_error(std::string(what) + ": " + sent.to_string());
}

// [stream]: receives 0, 1, 2, ... and checks the order; after worker_data's
// "count" of them it reports, closes its port and so exits with code 0.
void stream_worker() {
  const weave::Value* count = weave::worker_data().find("count");
  if (!count || !count->if_int()) throw std::invalid_argument("stream worker: no integer count");
  weave::parent_port()->on_message(
      [count = *count->if_int(), next = std::int64_t{0}, in_order = true](MessageEvent& e) mutable {
        in_order = in_order && e.data.if_int() && *e.data.if_int() == next;
        if (++next < count) return;
        post_or_throw(weave::parent_port()->post_message(StreamReport{next, in_order}),
                      "stream worker");
        weave::parent_port()->close();
      });
}

// [latency]: sends every message back; null closes its port (exit code 0).
void echo_worker() {
  weave::parent_port()->on_message([](MessageEvent& e) {
    if (e.data.is_null()) return weave::parent_port()->close();
    post_or_throw(weave::parent_port()->post_message(std::move(e.data)), "echo worker");
  });
}

// [offload]: one buffer's CRC-32, on a pool worker. The buffer arrived
// transferred (the caller's handle is detached) and goes back the same way.
WEAVE_TASK(crc32_buffer, ctx, args) {
  const weave::Value* index = args.find("index");
  weave::Value* buffer = args.if_object() ? args.if_object()->get("buffer") : nullptr;
  if (!index || !buffer || !buffer->if_array_buffer()) {
    throw std::invalid_argument("crc32_buffer: wants {index, buffer}");
  }
  ArrayBuffer& b = *buffer->if_array_buffer();
  const std::uint32_t crc = crc32(b.bytes());
  ctx.transfer(b);
  return weave::Object{
      {"index", *index}, {"crc", std::int64_t{crc}}, {"buffer", b}, {"thread", weave::thread_id()}};
}

// --- the main thread's side -------------------------------------------------------

// The workers the demo started, and those whose exit event came with code 0.
struct Roster {
  std::vector<std::string> started;
  std::vector<std::string> exited;
};

// A Worker and what its events told the main thread. An error event, a
// message that does not decode or an exit code other than 0 throws out of
// the main loop and fails the demo.
struct DemoWorker {
  DemoWorker(Worker::Entry entry, WorkerOptions options, Roster& roster)
      : worker(std::move(entry), std::move(options)) {
    roster.started.push_back(worker.name());
    worker.on_online([this] { online_at = Clock::now(); });
    worker.on_messageerror([name = worker.name()](const weave::WorkerError& e) {
      throw std::runtime_error("a message from worker " + name + " did not decode: " + e.message);
    });
    worker.on_error([name = worker.name()](const weave::WorkerError& e) {
      throw std::runtime_error("worker " + name + " failed: " + e.code + ", " + e.type_name + ": " +
                               e.message);
    });
    worker.on_exit([this, &roster](int code) {
      exit_code = code;
      if (code != 0) {
        throw std::runtime_error("worker " + worker.name() + " exited with code " +
                                 std::to_string(code));
      }
      roster.exited.push_back(worker.name());
    });
  }
  DemoWorker(const DemoWorker&) = delete;  // the handlers point at this object
  DemoWorker& operator=(const DemoWorker&) = delete;

  Worker worker;
  std::optional<Clock::time_point> online_at;
  std::optional<int> exit_code;
};

// Runs the main thread's loop until `done()` holds. Throws if the loop runs
// dry first (nothing left that could make it hold) or after a minute; an
// exception from an event handler comes out of here too.
void run_until(const char* what, const std::function<bool()>& done) {
  weave::EventLoop& loop = weave::EventLoop::current();
  bool late = false;
  struct CancelOnExit {
    weave::Timer timer;
    ~CancelOnExit() { timer.cancel(); }
  } deadline{loop.set_timeout(std::chrono::minutes(1), [&late] { late = true; })};
  deadline.timer.unref();  // the deadline alone does not keep the loop alive
  while (!done()) {
    if (late) throw std::runtime_error(std::string("gave up after a minute waiting for ") + what);
    if (!loop.run(weave::EventLoop::RunMode::kOnce) && !done()) {
      throw std::runtime_error(std::string("the main loop ran dry waiting for ") + what);
    }
  }
}

// Options with a name and worker_data, set member by member: g++ 12 -Wextra
// warns about every member a designated initializer leaves out.
WorkerOptions options(std::string name, weave::Value worker_data = {}) {
  WorkerOptions o;
  o.name = std::move(name);
  o.worker_data = std::move(worker_data);
  return o;
}

const char* yes_no(bool b) { return b ? "yes" : "NO"; }

std::unique_ptr<weave::Pool> start_pool(unsigned n) {
  weave::PoolOptions o;
  o.name = "crc32";
  o.min_threads = n;
  o.max_threads = n;
  const auto t0 = Clock::now();
  auto pool = std::make_unique<weave::Pool>(std::move(o));
  const auto t1 = Clock::now();
  std::printf("[pool]     a pool of %zu workers constructed in %.2f ms (Node: ~22 ms per Worker)\n",
              pool->threads_approx(), ms(t1 - t0));
  if (pool->threads_approx() != n) throw std::runtime_error("pool: not every worker started");
  return pool;
}

void stream(std::int64_t n, Roster& roster) {
  DemoWorker w(stream_worker, options("stream", weave::Object{{"count", n}}), roster);
  std::optional<StreamReport> report;
  w.worker.on_message<StreamReport>([&](StreamReport r) { report = r; });
  run_until("the stream worker to come online", [&] { return w.online_at.has_value(); });

  const auto t0 = Clock::now();
  for (std::int64_t i = 0; i < n; ++i) post_or_throw(w.worker.post_message(i), "stream");
  run_until("the stream worker's report", [&] { return report.has_value(); });
  const double s = seconds(Clock::now() - t0);
  run_until("the stream worker to exit", [&] { return w.exit_code.has_value(); });

  std::printf(
      "[stream]   %lld messages main -> worker in %.3f s: %.1f M msg/s; received %lld, in "
      "order: %s\n",
      static_cast<long long>(n), s, n / s / 1e6, static_cast<long long>(report->received),
      yes_no(report->in_order));
  if (report->received != n || !report->in_order) {
    throw std::runtime_error("stream: the worker did not receive every message in order");
  }
}

void latency(std::int64_t rounds, Roster& roster) {
  DemoWorker w(echo_worker, options("echo"), roster);
  std::int64_t answered = 0;
  bool echoed = true;  // every reply is the value just sent
  Clock::time_point t0, t1;
  w.worker.on_message([&](MessageEvent& e) {
    echoed = echoed && e.data.if_int() && *e.data.if_int() == answered;
    if (++answered == rounds) {
      t1 = Clock::now();
      post_or_throw(w.worker.post_message(nullptr), "latency");  // closes the echo worker
      return;
    }
    post_or_throw(w.worker.post_message(answered), "latency");
  });
  run_until("the echo worker to come online", [&] { return w.online_at.has_value(); });

  t0 = Clock::now();
  post_or_throw(w.worker.post_message(std::int64_t{0}), "latency");
  run_until("the echo worker to exit", [&] { return w.exit_code.has_value(); });

  std::printf(
      "[latency]  %lld round trips main <-> worker: %.2f us each (Node's worker_threads: "
      "~20-50 us)\n",
      static_cast<long long>(rounds), seconds(t1 - t0) / rounds * 1e6);
  if (answered != rounds || !echoed) {
    throw std::runtime_error("latency: a reply was missing or not the value sent");
  }
}

void offload(weave::Pool& pool, int chunks, std::size_t chunk_bytes) {
  const int n = static_cast<int>(pool.threads_approx());
  std::vector<ArrayBuffer> buffers = random_buffers(chunks, chunk_bytes);
  std::vector<const std::byte*> sent_at(chunks);
  for (int i = 0; i < chunks; ++i) sent_at[i] = buffers[i].data();

  // The same job on this thread: the time to beat, and the expected results.
  std::vector<std::uint32_t> expected(chunks);
  const auto t1 = Clock::now();
  for (int i = 0; i < chunks; ++i) expected[i] = crc32(buffers[i].bytes());
  const double single = seconds(Clock::now() - t1);

  std::vector<std::optional<std::uint32_t>> got(chunks);
  std::vector<ArrayBuffer> came_back(chunks);
  std::vector<int> per_thread;  // results by worker thread id
  std::vector<int> thread_ids;
  int received = 0;
  Clock::time_point last_result;

  // The main loop's own work while it waits: a 1 ms interval timer.
  const auto t2 = Clock::now();
  int ticks = 0;
  Clock::time_point last_tick = t2;
  Clock::duration worst_gap{};
  weave::Timer ticker = weave::set_interval(std::chrono::milliseconds(1), [&] {
    const auto now = Clock::now();
    worst_gap = std::max(worst_gap, now - last_tick);
    last_tick = now;
    ++ticks;
  });

  // One task per buffer; the buffer moves to the worker and back.
  for (int i = 0; i < chunks; ++i) {
    weave::RunOptions ro;
    ro.transfer.add(buffers[i]);
    pool.run("crc32_buffer", weave::Object{{"index", i}, {"buffer", buffers[i]}}, std::move(ro))
        .then([&](weave::TaskFuture<weave::Value> f) {
          const weave::Value r = f.get();  // throws the task's error, failing the demo
          const weave::Value* index = r.find("index");
          const weave::Value* crc = r.find("crc");
          const weave::Value* buffer = r.find("buffer");
          const weave::Value* thread = r.find("thread");
          if (!index || !index->if_int() || *index->if_int() < 0 || *index->if_int() >= chunks ||
              !crc || !crc->if_int() || !buffer || !buffer->if_array_buffer() || !thread ||
              !thread->if_int() || got[*index->if_int()]) {
            throw std::runtime_error("offload: an unexpected result: " + r.to_string());
          }
          const auto at = *index->if_int();
          got[at] = static_cast<std::uint32_t>(*crc->if_int());
          came_back[at] = *buffer->if_array_buffer();
          const int id = static_cast<int>(*thread->if_int());
          auto it = std::find(thread_ids.begin(), thread_ids.end(), id);
          if (it == thread_ids.end()) {
            thread_ids.push_back(id);
            per_thread.push_back(0);
            it = thread_ids.end() - 1;
          }
          ++per_thread[it - thread_ids.begin()];
          last_result = Clock::now();
          ++received;
        });
  }
  const bool detached = std::all_of(buffers.begin(), buffers.end(),
                                    [](const ArrayBuffer& b) { return b.detached(); });

  run_until("the offload results", [&] { return received == chunks; });
  worst_gap = std::max(worst_gap, Clock::now() - last_tick);
  ticker.cancel();
  const double parallel = seconds(last_result - t2);

  int matching = 0, same_memory = 0;
  for (int i = 0; i < chunks; ++i) {
    matching += got[i] == expected[i];
    same_memory += came_back[i].data() == sent_at[i] && came_back[i].byte_length() == chunk_bytes;
  }
  const auto [fewest, most] = std::minmax_element(per_thread.begin(), per_thread.end());
  const std::string spread = *fewest == *most
                                 ? std::to_string(*most)
                                 : std::to_string(*fewest) + " to " + std::to_string(*most);
  std::printf(
      "[offload]  CRC-32 of %d x %zu KiB random buffers, one pool task each, transferred in and "
      "back, not copied\n",
      chunks, chunk_bytes / 1024);
  std::printf(
      "           %d workers %.3f s vs one thread %.3f s: speed-up %.2fx; results match: "
      "%s (%d of %d)\n",
      n, parallel, single, single / parallel, yes_no(matching == chunks), matching, chunks);
  std::printf("           tasks per worker: %s over %zu workers\n", spread.c_str(),
              thread_ids.size());
  std::printf(
      "           same memory came back: %d of %d buffers (detached on the main thread "
      "meanwhile: %s)\n",
      same_memory, chunks, yes_no(detached));
  std::printf(
      "           the main loop stayed responsive: %d ticks of its 1 ms timer while it "
      "waited, worst gap %.1f ms\n",
      ticks, ms(worst_gap));
  if (matching != chunks || same_memory != chunks || !detached) {
    throw std::runtime_error("offload: results differ, or a buffer was copied instead of moved");
  }
}

void tiny_tasks(weave::Pool& pool, int count) {
  std::vector<weave::TaskFuture<std::int64_t>> futures;
  futures.reserve(count);
  const auto t0 = Clock::now();
  for (int i = 0; i < count; ++i) {
    futures.push_back(pool.run([i] { return std::int64_t{i} * 2 + 1; }));
  }
  std::int64_t sum = 0;
  for (auto& f : futures) sum += f.get();
  const double s = seconds(Clock::now() - t0);
  const std::int64_t want = std::int64_t{count} * count;  // 1 + 3 + ... + (2n - 1)
  const weave::PoolMetrics m = pool.metrics();
  auto us = [](Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); };
  std::printf(
      "[tasks]    %d tiny tasks in %.3f s: %.2f M tasks/s; sum correct: %s; wait p50 %.1f us "
      "p99 %.1f us, run p50 %.2f us\n",
      count, s, count / s / 1e6, yes_no(sum == want), us(m.wait_time.p50), us(m.wait_time.p99),
      us(m.run_time.p50));
  if (sum != want) throw std::runtime_error("tasks: wrong results");
}

void cancellation(weave::Pool& pool) {
  // A task that runs until its stop token is requested, and one that throws.
  std::atomic<bool> started{false};
  weave::TaskFuture<int> running = pool.run([&started](std::stop_token stop) {
    started.store(true);
    while (!stop.stop_requested()) std::this_thread::yield();
    return 0;
  });
  while (!started.load()) std::this_thread::yield();
  const bool asked = running.cancel();
  const weave::TaskError* e1 = (running.wait(), running.error());

  weave::RunOptions ro;
  ro.timeout = std::chrono::milliseconds(20);
  weave::TaskFuture<int> slow = pool.run(
      [](std::stop_token stop) {
        while (!stop.stop_requested()) std::this_thread::yield();
        return 0;
      },
      std::move(ro));
  slow.wait();
  const weave::TaskError* e2 = slow.error();

  weave::TaskFuture<int> throws =
      pool.run([]() -> int { throw std::out_of_range("index 7 is past the end"); });
  throws.wait();
  const weave::TaskError* e3 = throws.error();

  std::printf("[cancel]   running task cancelled: %s (%s); timed out after 20 ms: %s (%s)\n",
              yes_no(asked && e1 && e1->errc() == weave::TaskErrc::kCancelled),
              e1 ? e1->code().c_str() : "-", yes_no(e2 && e2->errc() == weave::TaskErrc::kTimedOut),
              e2 ? e2->code().c_str() : "-");
  std::printf("           a task that threw: %s: %s (the worker lives on)\n",
              e3 ? e3->type_name().c_str() : "-", e3 ? e3->what() : "-");
  if (!asked || !e1 || e1->errc() != weave::TaskErrc::kCancelled || !e2 ||
      e2->errc() != weave::TaskErrc::kTimedOut || !e3 || e3->type_name() != "std::out_of_range") {
    throw std::runtime_error("cancel: an outcome was not the expected one");
  }
}

void stop_pool(std::unique_ptr<weave::Pool>& pool) {
  const weave::PoolMetrics m = pool->metrics();
  std::printf(
      "[metrics]  %llu tasks: %llu completed, %llu failed, %llu cancelled, %llu timed out; "
      "workers started %llu, replaced %llu; utilization %.0f%%\n",
      static_cast<unsigned long long>(m.submitted), static_cast<unsigned long long>(m.completed),
      static_cast<unsigned long long>(m.failed), static_cast<unsigned long long>(m.cancelled),
      static_cast<unsigned long long>(m.timed_out),
      static_cast<unsigned long long>(m.workers_started),
      static_cast<unsigned long long>(m.workers_replaced), m.utilization * 100);
  pool->close();
  pool->drain();
  pool.reset();  // joins its workers
}

void check_exits(const Roster& roster) {
  std::string names;
  for (const std::string& name : roster.exited) names += (names.empty() ? "" : ", ") + name;
  const bool idle = !weave::EventLoop::current().alive();
  const std::size_t ports = weave::live_port_count_approx();
  std::printf(
      "[exit]     %zu of %zu workers exited with code 0 (%s); main loop idle: %s, ports "
      "open: %zu\n",
      roster.exited.size(), roster.started.size(), names.c_str(), yes_no(idle), ports);
  if (roster.exited.size() != roster.started.size() || !idle || ports != 0) {
    throw std::runtime_error("exit: a worker, a port or the main loop is still running");
  }
}

}  // namespace

int main() {
  try {
    weave::EventLoop::current();  // the main thread's loop, made before anything is timed
    const unsigned n = std::max(2u, std::thread::hardware_concurrency());
    std::printf("weave offload demo: %u hardware threads\n", std::thread::hardware_concurrency());
    Roster roster;
    std::unique_ptr<weave::Pool> pool = start_pool(n);
    offload(*pool, std::max(128, 8 * static_cast<int>(n)), std::size_t{1} << 20);
    tiny_tasks(*pool, 100'000);
    cancellation(*pool);
    stop_pool(pool);
    stream(1'000'000, roster);
    latency(100'000, roster);
    check_exits(roster);
    return 0;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "offload_demo: FAILED: %s\n", e.what());
    return 1;
  }
}
