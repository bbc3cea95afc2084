// Google Benchmark suite for weave's MessagePort, each library figure next to
// its raw baseline in the same binary, so every number reads as a ratio to
// the limit (see STYLE.md).
//
// BM_PortPingPong vs BM_PortPingPong_Baseline: latency of one round trip.
//   Library: the benchmark thread owns port1 and runs its own EventLoop
//   (on_message + run(RunMode::kOnce) until the reply arrived); an echo thread
//   owns port2, whose on_message posts every value back, on its EventLoop.
//   Payload: an int64 weave::Value. Baseline: two bare moodycamel queues of
//   weave::Value (the same 48-byte payload the port carries, so the figure
//   isolates the port/loop machinery, not the value type) with the loop's
//   waiting protocol copied: spin ~20 us on a wake word, then futex_wait;
//   a sender futex_wakes only when the peer is actually parked.
//   Target: library <= 1.5x baseline time.
//
// BM_PortLoopHop vs BM_PortLoopHop_Baseline: what one message costs in
//   instructions, with no second core involved (so the figure is steady where
//   the two-thread ones swing with the host): on one thread, post an int64
//   Value on port1, then turn the loop (kNoWait) until port2's handler got
//   it. Baseline: enqueue with a ProducerToken and try_dequeue with a
//   ConsumerToken on one bare moodycamel queue of weave::Value. A ping-pong's
//   round trip pays the difference twice on top of the cache-line transfers
//   both pay. No target: it says where the ping-pong's overhead is.
//
// BM_PortThroughput vs BM_PortThroughput_Baseline: one producer streaming
//   small values to one consumer. One iteration = kBatch int64 Values posted
//   and all of them received (and summed) before the iteration ends.
//   Library: the producer posts on port1; the consumer thread receives them
//   with on_message on its EventLoop. Baseline: a bare moodycamel queue of
//   weave::Value (same payload, same reason as above), ProducerToken on the
//   producer, a consumer spinning on try_dequeue_bulk with a ConsumerToken.
//   BM_PortThroughput_Baseline_Int64 is the same with a plain int64_t
//   payload: the absolute limit, for reference (no library counterpart).
//   Target: library >= 0.5x baseline items/s.
//
// BM_TransferBuffer/<size> vs BM_CopyBuffer/<size>: one ArrayBuffer round
//   trip. The benchmark thread posts its buffer, in the transfer list
//   (TransferBuffer) or not (CopyBuffer: the port copies it); the echo thread
//   transfers what it received straight back. So both variants pay the same
//   constant for the way back and differ only in transfer vs copy on the way
//   out. No buffer is created in the timed loop by the benchmark itself: with
//   transfer the same memory goes back and forth; with copy the source stays
//   with the sender and each copy (allocated by the port) is freed by the
//   sender when it comes back — the price a copy really has. Transfer time
//   must stay flat as the size grows; copy grows with it.
//   The *_Baseline variants do the same over the bare queues of the first
//   pair: a transfer is a moved std::unique_ptr<std::byte[]>, a copy is
//   allocate + memcpy by the sender.
//
// All of them run with UseRealTime() (two threads take part). Threads start
// and channels are created before the timed loop; every thread is joined
// before the benchmark function returns.
//
// CPU pinning (benchmarks/bench_util.h, shared with worker_benchmark): the
// benchmark thread runs on the first CPU of the process's affinity mask and
// its peer thread on the second (restored afterwards), for library and
// baseline alike. Unpinned, on a busy 2-core machine the scheduler often
// puts both threads on one core; then every wait burns its whole 20 us spin
// before parking and a round trip measures ~2 x 20 us of spinning plus two
// context switches, for library and baseline alike. Set WEAVE_BENCH_NO_PIN=1
// to leave placement to the scheduler. With fewer than two CPUs available
// nothing is pinned.
//
// Run: bazel run -c opt //benchmarks:port_benchmark -- --benchmark_min_time=0.2
// On a shared machine other processes share the two cores and the figures
// swing by 2x or more between runs; for comparable numbers run the binary
// under SCHED_FIFO (root): chrt -f 1 bazel-bin/benchmarks/port_benchmark ...
// (the kernel's RT throttling still leaves others 5% of each core).

#include <benchmark/benchmark.h>
#include <concurrentqueue/concurrentqueue.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <thread>
#include <type_traits>
#include <utility>

#include "benchmarks/bench_util.h"
#include "channel/array_buffer.h"
#include "channel/message_port.h"
#include "channel/value.h"
#include "loop/event_loop.h"

namespace weave {
namespace {

using bench::cpu_relax;
using bench::die;
using bench::kBenchCpu;
using bench::kPeerCpu;
using bench::PinScope;
using bench::RawEcho;
using RunMode = EventLoop::RunMode;

// Messages per iteration of the throughput pair.
constexpr std::int64_t kBatch = 100'000;

// --- the library's echo thread --------------------------------------------------
//
// Owns port2 of a MessageChannel and posts every message back on it: values
// by clone, an ArrayBuffer by transfer. Its loop ends when the benchmark
// thread closes port1. Constructed and joined on the benchmark thread.
class PortEcho {
 public:
  PortEcho() {
    echo_ = std::thread([port = std::move(channel_.port2)]() mutable {
      PinScope pin(kPeerCpu);
      port.on_message([&port](MessageEvent& e) {
        Status s;
        if (ArrayBuffer* b = e.data.if_array_buffer()) {
          ArrayBuffer buf = *b;  // same storage; the transfer detaches e.data's too
          s = port.post_message(e.data, Transfer().add(std::move(buf)));
        } else {
          s = port.post_message(e.data);
        }
        // kClosed is expected once the benchmark thread has closed port1.
        if (!s.ok() && s.code() != ErrorCode::kClosed) die("echo post failed");
      });
      EventLoop::current().run();  // until port1 closes
    });
  }
  ~PortEcho() {
    channel_.port1 = MessagePort();  // closes the channel: the echo loop ends
    echo_.join();
  }
  PortEcho(const PortEcho&) = delete;
  PortEcho& operator=(const PortEcho&) = delete;

  MessagePort& port() noexcept { return channel_.port1; }

 private:
  MessageChannel channel_;
  std::thread echo_;
};

// One round trip on the benchmark thread's loop: post `v` (with `transfer`),
// then run the loop one turn at a time until the reply's handler ran.
class PortClient {
 public:
  explicit PortClient(MessagePort& port) : port_(port) {
    port_.on_message([this](MessageEvent& e) {
      reply_ = std::move(e.data);
      got_ = true;
    });
  }
  ~PortClient() { port_.on_message(nullptr); }
  PortClient(const PortClient&) = delete;
  PortClient& operator=(const PortClient&) = delete;

  Value round_trip(const Value& v, std::optional<Transfer> transfer = std::nullopt) {
    got_ = false;
    Status s = transfer ? port_.post_message(v, std::move(*transfer)) : port_.post_message(v);
    if (!s.ok()) die("post_message failed");
    while (!got_) (void)loop_.run(RunMode::kOnce);
    return std::move(reply_);
  }

 private:
  MessagePort& port_;
  EventLoop& loop_ = EventLoop::current();
  Value reply_;
  bool got_ = false;
};

// --- 1. ping-pong ---------------------------------------------------------------

void BM_PortPingPong(benchmark::State& state) {
  PinScope pin(kBenchCpu);
  PortEcho echo;
  PortClient client(echo.port());
  std::int64_t i = 0;
  for (auto _ : state) {
    Value r = client.round_trip(Value(i));
    if (*r.if_int() != i) die("ping-pong: wrong reply");
    ++i;
  }
  state.SetItemsProcessed(state.iterations());  // round trips
}
BENCHMARK(BM_PortPingPong)->UseRealTime();

void BM_PortPingPong_Baseline(benchmark::State& state) {
  bench::raw_echo_round_trips(state, "ping-pong baseline: wrong reply");
}
BENCHMARK(BM_PortPingPong_Baseline)->UseRealTime();

void BM_PortLoopHop(benchmark::State& state) {
  PinScope pin(kBenchCpu);
  MessageChannel ch;
  std::int64_t got = -1;
  ch.port2.on_message([&got](MessageEvent& e) { got = *e.data.if_int(); });
  EventLoop& loop = EventLoop::current();
  std::int64_t i = 0;
  for (auto _ : state) {
    if (!ch.port1.post_message(Value(i)).ok()) die("loop hop: post failed");
    while (got != i) (void)loop.run(RunMode::kNoWait);
    ++i;
  }
  ch.port2.on_message(nullptr);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PortLoopHop);

void BM_PortLoopHop_Baseline(benchmark::State& state) {
  PinScope pin(kBenchCpu);
  moodycamel::ConcurrentQueue<Value> q;
  moodycamel::ProducerToken producer(q);
  moodycamel::ConsumerToken consumer(q);
  Value out;
  std::int64_t i = 0;
  for (auto _ : state) {
    q.enqueue(producer, Value(i));
    while (!q.try_dequeue(consumer, out)) {
    }
    if (*out.if_int() != i) die("loop hop baseline: wrong value");
    ++i;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PortLoopHop_Baseline);

// --- 2. throughput --------------------------------------------------------------

// The consumer publishes its count once per batch: the producer waits for it
// at the end of an iteration, and a per-message store would bounce the line.
struct alignas(64) Progress {
  std::atomic<std::int64_t> received{0};
};

// Spins, yielding now and then so that a peer sharing the core can run.
void wait_for(const Progress& p, std::int64_t target) {
  for (int i = 1; p.received.load(std::memory_order_acquire) < target; ++i) {
    cpu_relax();
    if ((i & 1023) == 0) std::this_thread::yield();
  }
}

void BM_PortThroughput(benchmark::State& state) {
  PinScope pin(kBenchCpu);
  MessageChannel ch;
  Progress progress;
  std::int64_t sum = 0;  // written by the consumer once, read after join
  std::thread consumer([&progress, &sum, port = std::move(ch.port2)]() mutable {
    PinScope pin(kPeerCpu);
    std::int64_t n = 0;
    std::int64_t local_sum = 0;  // on this thread's stack: no false sharing with the producer
    port.on_message([&](MessageEvent& e) {
      local_sum += *e.data.if_int();
      if (++n % kBatch == 0) progress.received.store(n, std::memory_order_release);
    });
    EventLoop::current().run();  // until port1 closes
    sum = local_sum;
  });
  std::int64_t sent = 0;
  for (auto _ : state) {
    for (std::int64_t k = 0; k < kBatch; ++k) {
      if (!ch.port1.post_message(Value(sent++)).ok()) die("throughput: post failed");
    }
    wait_for(progress, sent);
  }
  ch.port1.close();  // port1 has no handler, so nothing to dispatch here
  consumer.join();
  if (sum != sent * (sent - 1) / 2) die("throughput: sum mismatch");
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_PortThroughput)->UseRealTime();

template <class T>
void RawThroughput(benchmark::State& state) {
  PinScope pin(kBenchCpu);
  moodycamel::ConcurrentQueue<T> q;
  Progress progress;
  std::atomic<bool> stop{false};
  std::int64_t sum = 0;  // written by the consumer once, read after join
  std::thread consumer([&] {
    PinScope pin(kPeerCpu);
    moodycamel::ConsumerToken tok(q);
    T items[256];  // as many as a port's dispatch takes per turn
    std::int64_t n = 0;
    std::int64_t local_sum = 0;  // as in the library twin
    for (int idle = 1;; ++idle) {
      const std::size_t got = q.try_dequeue_bulk(tok, items, 256);
      if (got == 0) {
        if (stop.load(std::memory_order_acquire)) {
          sum = local_sum;
          return;
        }
        cpu_relax();
        if ((idle & 1023) == 0) std::this_thread::yield();  // long idle: between batches
        continue;
      }
      idle = 0;
      for (std::size_t k = 0; k < got; ++k) {
        if constexpr (std::is_same_v<T, Value>) {
          local_sum += *items[k].if_int();
        } else {
          local_sum += items[k];
        }
        if (++n % kBatch == 0) progress.received.store(n, std::memory_order_release);
      }
    }
  });
  moodycamel::ProducerToken ptok(q);
  std::int64_t sent = 0;
  for (auto _ : state) {
    for (std::int64_t k = 0; k < kBatch; ++k) q.enqueue(ptok, T(sent++));
    wait_for(progress, sent);
  }
  stop.store(true, std::memory_order_release);
  consumer.join();
  if (sum != sent * (sent - 1) / 2) die("throughput baseline: sum mismatch");
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK_TEMPLATE(RawThroughput, Value)->Name("BM_PortThroughput_Baseline")->UseRealTime();
BENCHMARK_TEMPLATE(RawThroughput, std::int64_t)
    ->Name("BM_PortThroughput_Baseline_Int64")
    ->UseRealTime();

// --- 3. transfer vs copy ----------------------------------------------------------

void BufferSizes(benchmark::internal::Benchmark* b) {
  b->RangeMultiplier(8)->Range(64, 16 << 20)->UseRealTime();
}

void BM_TransferBuffer(benchmark::State& state) {
  PinScope pin(kBenchCpu);
  const auto size = static_cast<std::size_t>(state.range(0));
  PortEcho echo;
  PortClient client(echo.port());
  ArrayBuffer buf = ArrayBuffer::create(size);  // zero-filled: pages touched here
  for (auto _ : state) {
    Value r = client.round_trip(Value(buf), Transfer().add(buf));
    ArrayBuffer* back = r.if_array_buffer();
    if (!buf.detached() || !back || back->byte_length() != size) die("transfer: bad reply");
    buf = std::move(*back);  // the same memory, to send again
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(size));
}
BENCHMARK(BM_TransferBuffer)->Apply(BufferSizes);

void BM_CopyBuffer(benchmark::State& state) {
  PinScope pin(kBenchCpu);
  const auto size = static_cast<std::size_t>(state.range(0));
  PortEcho echo;
  PortClient client(echo.port());
  const ArrayBuffer buf = ArrayBuffer::create(size);
  for (auto _ : state) {
    Value r = client.round_trip(Value(buf));  // cloned: the port copies the bytes
    const ArrayBuffer* back = r.if_array_buffer();
    if (buf.detached() || !back || back->byte_length() != size || back->same_buffer(buf)) {
      die("copy: bad reply");
    }
    // `r` (the copy) is freed here, on the sender, inside the timed loop.
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(size));
}
BENCHMARK(BM_CopyBuffer)->Apply(BufferSizes);

// A buffer for the raw baselines: owned bytes and their length.
struct RawBuffer {
  std::unique_ptr<std::byte[]> data;
  std::size_t size = 0;
};

void BM_TransferBuffer_Baseline(benchmark::State& state) {
  PinScope pin(kBenchCpu);
  const auto size = static_cast<std::size_t>(state.range(0));
  RawEcho<RawBuffer> echo;
  RawBuffer buf{std::make_unique<std::byte[]>(size), size};
  for (auto _ : state) {
    echo.send(std::move(buf));
    buf = echo.receive();
  }
  if (buf.size != size) die("transfer baseline: bad reply");
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(size));
}
BENCHMARK(BM_TransferBuffer_Baseline)->Apply(BufferSizes);

void BM_CopyBuffer_Baseline(benchmark::State& state) {
  PinScope pin(kBenchCpu);
  const auto size = static_cast<std::size_t>(state.range(0));
  RawEcho<RawBuffer> echo;
  const auto src = std::make_unique<std::byte[]>(size);
  for (auto _ : state) {
    RawBuffer copy{std::make_unique_for_overwrite<std::byte[]>(size), size};
    std::memcpy(copy.data.get(), src.get(), size);
    echo.send(std::move(copy));
    RawBuffer back = echo.receive();
    benchmark::DoNotOptimize(back.data.get());
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(size));
}
BENCHMARK(BM_CopyBuffer_Baseline)->Apply(BufferSizes);

}  // namespace
}  // namespace weave
