// weave's main demo: the main thread's loop stays responsive while other
// threads do the work. Every figure it prints is measured in the run.
//
//   [stream]   a million small messages main -> a weave Worker, checked in
//              order, over the worker's parent port.
//   [latency]  round trips of a small value main <-> a Worker.
//   [offload]  1 MiB buffers transferred (zero-copy) to N consumer threads
//              that hash them and transfer them back, while a timer keeps
//              ticking on the main loop; compared with hashing on one thread.
//
// Any failure (a worker's error event or non-zero exit, a wrong result, a
// wait that does not end) prints "offload_demo: FAILED: ..." and returns 1.
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "channel/array_buffer.h"
#include "channel/codec.h"
#include "channel/message_port.h"
#include "channel/value.h"
#include "loop/event_loop.h"
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
using weave::MessageChannel;
using weave::MessageEvent;
using weave::MessagePort;
using weave::Object;
using weave::Transfer;
using weave::Value;
using weave::Worker;
using weave::WorkerOptions;
using Clock = std::chrono::steady_clock;

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }
double seconds_since(Clock::time_point t) { return seconds(Clock::now() - t); }

// CPU-bound work on a chunk: a few rounds of a 64-bit mix per word.
std::uint64_t hash_chunk(const std::byte* p, std::size_t n) {
  std::uint64_t h = 0x9e3779b97f4a7c15ull;
  for (std::size_t i = 0; i + 8 <= n; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, p + i, 8);
    for (int r = 0; r < 16; ++r) {
      w ^= w >> 31;
      w *= 0xbf58476d1ce4e5b9ull;
      w ^= w >> 29;
    }
    h = (h ^ w) * 0x94d049bb133111ebull;
  }
  return h;
}

// A consumer thread: answers {id, buf} with {id, hash, buf}, buffer moved back.
std::thread start_hasher(MessagePort port) {
  return std::thread([port = std::move(port)]() mutable {
    port.on_message([&](MessageEvent& e) {
      const Value* id = e.data.find("id");
      const Value* buf = e.data.find("buf");
      if (!id || !buf || !buf->if_array_buffer()) return port.close();
      ArrayBuffer b = *buf->if_array_buffer();
      const std::uint64_t h = hash_chunk(b.data(), b.byte_length());
      (void)port.post_message(Object{{"id", *id}, {"hash", h}, {"buf", b}}, Transfer().add(b));
    });
    weave::run_loop();
  });
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

// --- the main thread's side -------------------------------------------------------

// A Worker and what its events told the main thread. An error event, a
// message that does not decode or an exit code other than 0 throws out of
// the main loop and fails the demo.
struct DemoWorker {
  DemoWorker(Worker::Entry entry, WorkerOptions options)
      : worker(std::move(entry), std::move(options)) {
    worker.on_online([this] { online_at = Clock::now(); });
    worker.on_messageerror([name = worker.name()](const weave::WorkerError& e) {
      throw std::runtime_error("a message from worker " + name + " did not decode: " + e.message);
    });
    worker.on_error([name = worker.name()](const weave::WorkerError& e) {
      throw std::runtime_error("worker " + name + " failed: " + e.code + ", " + e.type_name + ": " +
                               e.message);
    });
    worker.on_exit([this](int code) {
      exit_code = code;
      if (code != 0) {
        throw std::runtime_error("worker " + worker.name() + " exited with code " +
                                 std::to_string(code));
      }
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

void stream(std::int64_t n) {
  DemoWorker w(stream_worker, options("stream", weave::Object{{"count", n}}));
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

void latency(std::int64_t rounds) {
  DemoWorker w(echo_worker, options("echo"));
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

void offload(int chunks, std::size_t chunk_bytes) {
  const unsigned workers = std::max(2u, std::thread::hardware_concurrency());
  std::vector<ArrayBuffer> bufs;
  std::uint64_t seed = 42;
  for (int i = 0; i < chunks; ++i) {
    ArrayBuffer b = ArrayBuffer::create(chunk_bytes);
    for (std::size_t j = 0; j + 8 <= chunk_bytes; j += 8) {
      seed = seed * 6364136223846793005ull + 1442695040888963407ull;
      std::memcpy(b.data() + j, &seed, 8);
    }
    bufs.push_back(b);
  }

  // One thread, for reference.
  std::vector<std::uint64_t> expect(chunks);
  const auto t1 = Clock::now();
  for (int i = 0; i < chunks; ++i) expect[i] = hash_chunk(bufs[i].data(), chunk_bytes);
  const double single = seconds_since(t1);

  std::vector<MessagePort> ports;
  std::vector<std::thread> threads;
  for (unsigned w = 0; w < workers; ++w) {
    MessageChannel ch;
    threads.push_back(start_hasher(std::move(ch.port2)));
    ports.push_back(std::move(ch.port1));
  }
  std::vector<std::uint64_t> got(chunks);
  std::vector<const std::byte*> sent_at(chunks);
  int answered = 0;
  bool zero_copy = true;
  int ticks = 0;
  auto ticker = weave::set_interval(std::chrono::milliseconds(5), [&] { ++ticks; });
  ticker.unref();  // the timer shows responsiveness; it does not keep the loop alive

  const auto t2 = Clock::now();
  for (unsigned w = 0; w < workers; ++w) {
    ports[w].on_message([&, w](MessageEvent& e) {
      const auto id = *e.data.find("id")->if_int();
      got[id] = static_cast<std::uint64_t>(*e.data.find("hash")->if_int());
      zero_copy = zero_copy && e.data.find("buf")->if_array_buffer()->data() == sent_at[id];
      if (++answered == chunks) {
        for (auto& p : ports) p.close();
      }
    });
  }
  for (int i = 0; i < chunks; ++i) {
    sent_at[i] = bufs[i].data();
    (void)ports[i % workers].post_message(Object{{"id", i}, {"buf", bufs[i]}},
                                          Transfer().add(bufs[i]));
  }
  weave::run_loop();
  const double parallel = seconds_since(t2);
  ticker.cancel();
  for (auto& t : threads) t.join();

  std::printf(
      "[offload]  %d x %zu KiB buffers transferred zero-copy to %u consumer threads, hashed, "
      "transferred back\n",
      chunks, chunk_bytes / 1024, workers);
  std::printf(
      "           %u threads %.3f s vs one thread %.3f s: speed-up %.2fx; results match: %s; "
      "same memory came back: %s\n",
      workers, parallel, single, single / parallel, got == expect ? "yes" : "NO",
      zero_copy ? "yes" : "NO");
  std::printf("           the main loop stayed responsive: %d timer ticks while it waited\n",
              ticks);
}

}  // namespace

int main() {
  try {
    weave::EventLoop::current();  // the main thread's loop, made before anything is timed
    std::printf("weave offload demo: %u hardware threads\n", std::thread::hardware_concurrency());
    stream(1'000'000);
    latency(100'000);
    offload(128, 1 << 20);
    return 0;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "offload_demo: FAILED: %s\n", e.what());
    return 1;
  }
}
