// Pins the costs the loop promises: a busy receiver costs producers no wake-up
// system call and no scheduling per message (messages are dispatched in
// batches), and a small message costs no heap allocation once the queue has
// warmed up.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <thread>

#include "channel/message_port.h"
#include "loop/event_loop.h"
#include "loop/internal/sources.h"
#include "tests/test_util.h"

namespace {

// Counts operator new calls made by the thread that enabled counting.
thread_local bool tl_counting = false;
thread_local std::uint64_t tl_allocations = 0;

}  // namespace

void* operator new(std::size_t n) {
  if (tl_counting) ++tl_allocations;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace weave {
namespace {

using BatchingTest = testing::CleanShutdownTest;

TEST_F(BatchingTest, BusyReceiverCostsProducersNoWakeupAndNoSchedulePerMessage) {
  constexpr std::int64_t kFlood = 10000;
  MessageChannel ch;
  std::atomic<bool> inside{false};
  std::atomic<bool> flood_posted{false};
  std::atomic<internal::LoopCore*> core{nullptr};
  std::int64_t received = 0;
  std::int64_t next = 0;
  bool in_order = true;

  std::thread consumer([&, port = std::move(ch.port2)]() mutable {
    core.store(&internal::LoopSources::core(EventLoop::current()));
    port.on_message([&](MessageEvent& e) {
      if (e.data.is_string()) {
        // The loop is busy in this handler while the flood is posted.
        inside.store(true);
        inside.notify_one();
        while (!flood_posted.load()) flood_posted.wait(false);
        return;
      }
      in_order = in_order && *e.data.if_int() == next;
      ++next;
      if (++received == kFlood) port.close();
    });
    EventLoop::current().run();
  });

  ASSERT_TRUE(ch.port1.post_message("hold the loop busy"));
  inside.wait(false);
  internal::LoopCore* c = core.load();
  const std::uint64_t wakes_before = c->futex_wakes_approx();
  const std::uint64_t pushes_before = c->ready_pushes_approx();
  for (std::int64_t i = 0; i < kFlood; ++i) ASSERT_TRUE(ch.port1.post_message(i));
  // Read before releasing the consumer: everything so far was posted while
  // the receiver was busy (not parked, not armed).
  const std::uint64_t wakes_after = c->futex_wakes_approx();
  const std::uint64_t pushes_after = c->ready_pushes_approx();
  flood_posted.store(true);
  flood_posted.notify_one();
  consumer.join();

  EXPECT_EQ(wakes_after, wakes_before) << "a post to a busy loop made a wake-up system call";
  EXPECT_EQ(pushes_after, pushes_before) << "a post to a busy port scheduled it again";
  EXPECT_EQ(received, kFlood);
  EXPECT_TRUE(in_order);
}

TEST_F(BatchingTest, SmallMessagesCostNoHeapAllocationOnceWarm) {
  std::uint64_t allocations = 0;
  std::int64_t delivered = 0;
  std::thread t([&] {
    MessageChannel ch;
    std::int64_t sum = 0;
    ch.port2.on_message([&](MessageEvent& e) {
      if (auto* i = e.data.if_int()) sum += *i;
      ++delivered;
    });
    auto round = [&](int n) {
      for (int i = 0; i < n; ++i) {
        (void)ch.port1.post_message(std::int64_t{i});
        (void)ch.port1.post_message(3.5);
        (void)ch.port1.post_message("fifteen bytes!!");  // 15 bytes: inline
        (void)ch.port2.post_message(true);
        (void)receive_message_on_port(ch.port1);
      }
      EventLoop::current().run(EventLoop::RunMode::kNoWait);
    };
    for (int i = 0; i < 20; ++i) round(100);  // warm-up: queue blocks, loop tables
    tl_counting = true;
    for (int i = 0; i < 20; ++i) round(100);
    tl_counting = false;
    allocations = tl_allocations;
    ch.port1.close();
    EventLoop::current().run();
    EXPECT_GT(sum, 0);
  });
  t.join();
  EXPECT_EQ(delivered, 2 * 20 * 100 * 3);
  EXPECT_EQ(allocations, 0u) << "small messages allocated on the hot path";
}

}  // namespace
}  // namespace weave
