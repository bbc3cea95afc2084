// weave's main job for now: consumer threads with their own event loops,
// fed through MessageChannels, while the main thread's loop stays responsive.
//
//   1. stream: a million small messages to a consumer thread, in order;
//   2. latency: round trips of a small value between two loops;
//   3. offload: 1 MiB buffers transferred (zero-copy) to N consumer threads
//      that hash them and transfer them back, while a timer keeps ticking on
//      the main loop; compared with hashing on one thread.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <thread>
#include <vector>

#include "channel/message_port.h"
#include "loop/event_loop.h"

namespace {

using weave::ArrayBuffer;
using weave::MessageChannel;
using weave::MessageEvent;
using weave::MessagePort;
using weave::Object;
using weave::Transfer;
using weave::Value;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

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

void stream(std::int64_t n) {
  MessageChannel ch;
  std::thread consumer([port = std::move(ch.port2), n]() mutable {
    std::int64_t next = 0;
    bool in_order = true;
    port.on_message([&](MessageEvent& e) {
      in_order = in_order && e.data.if_int() && *e.data.if_int() == next;
      if (++next == n) {
        (void)port.post_message(Object{{"received", next}, {"in_order", in_order}});
        port.close();
      }
    });
    weave::run_loop();
  });
  const auto t0 = Clock::now();
  for (std::int64_t i = 0; i < n; ++i) (void)ch.port1.post_message(i);
  Value report;
  ch.port1.on_message([&](MessageEvent& e) { report = std::move(e.data); });
  weave::run_loop();
  const double s = seconds_since(t0);
  consumer.join();
  std::printf("[stream]   %lld messages main -> consumer thread in %.3f s: %.1f M msg/s; "
              "received %s, in order: %s\n",
              static_cast<long long>(n), s, n / s / 1e6, report.find("received")->to_string().c_str(),
              report.find("in_order")->to_string().c_str());
}

void latency(int rounds) {
  MessageChannel ch;
  std::thread echo([port = std::move(ch.port2)]() mutable {
    port.on_message([&](MessageEvent& e) {
      if (e.data.is_null()) return port.close();
      (void)port.post_message(e.data);
    });
    weave::run_loop();
  });
  int done = 0;
  const auto t0 = Clock::now();
  ch.port1.on_message([&](MessageEvent& e) {
    if (++done == rounds) {
      (void)ch.port1.post_message(nullptr);
      return;
    }
    (void)ch.port1.post_message(e.data);
  });
  (void)ch.port1.post_message(1);
  weave::run_loop();
  const double s = seconds_since(t0);
  echo.join();
  std::printf("[latency]  %d round trips main <-> consumer thread: %.2f us each "
              "(Node's worker_threads: ~20-50 us)\n",
              rounds, s / rounds * 1e6);
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
    (void)ports[i % workers].post_message(Object{{"id", i}, {"buf", bufs[i]}}, Transfer().add(bufs[i]));
  }
  weave::run_loop();
  const double parallel = seconds_since(t2);
  ticker.cancel();
  for (auto& t : threads) t.join();

  std::printf("[offload]  %d x %zu KiB buffers transferred zero-copy to %u consumer threads, hashed, "
              "transferred back\n",
              chunks, chunk_bytes / 1024, workers);
  std::printf("           %u threads %.3f s vs one thread %.3f s: speed-up %.2fx; results match: %s; "
              "same memory came back: %s\n",
              workers, parallel, single, single / parallel, got == expect ? "yes" : "NO",
              zero_copy ? "yes" : "NO");
  std::printf("           the main loop stayed responsive: %d timer ticks while it waited\n", ticks);
}

}  // namespace

int main() {
  std::printf("weave offload demo: %u hardware threads\n", std::thread::hardware_concurrency());
  stream(1'000'000);
  latency(100'000);
  offload(128, 1 << 20);
  return 0;
}
