// A BroadcastChannel's queue keeps nothing per sending thread: threads that
// come, post and go (a server churning threads) leave the receiver's queue no
// producer each (the review's note on implicit producers kept forever, which
// every poll of the receiver then walks). Counted through the queues' own
// allocator (channel/internal/queue_alloc.h).
#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <thread>
#include <vector>

#include "channel/broadcast_channel.h"
#include "channel/internal/queue_alloc.h"
#include "tests/channel/port_test_util.h"

namespace weave {
namespace {

using BroadcastProducersTest = ::weave::testing::PortLeakCheckedTest;
using ::weave::testing::int_of;

// The threads are alive together (a thread that ends lets the next one
// reuse its thread-local storage, and with it the queue's producer), and
// take turns with the one sender, which is unbound and so may move between
// threads with happens-before.
TEST_F(BroadcastProducersTest, ThreadsThatPostAndEndLeaveTheReceiversQueueNothingEach) {
  constexpr int kThreads = 64;
  BroadcastChannel receiver("churn");
  BroadcastChannel sender("churn");
  // Warm up: the receiver's queue has its first block and producer.
  ASSERT_TRUE(sender.post_message(-1).ok());
  ASSERT_TRUE(receive_message_on_channel(receiver).has_value());
  const std::size_t before = internal::queue_allocation_count_approx();
  std::atomic<int> turn{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      for (int t = turn.load(); t != i; t = turn.load()) turn.wait(t);
      EXPECT_TRUE(sender.post_message(i).ok());
      turn.store(i + 1);
      turn.notify_all();
      for (int t = turn.load(); t != kThreads; t = turn.load()) turn.wait(t);
    });
  }
  for (std::thread& t : threads) t.join();
  const std::size_t allocations = internal::queue_allocation_count_approx() - before;
  for (int i = 0; i < kThreads; ++i) {
    auto got = receive_message_on_channel(receiver);
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(int_of(got->data), i);
  }
  // The blocks that 64 messages need; never a producer per thread.
  EXPECT_LT(allocations, 16u) << allocations << " queue allocations for " << kThreads
                              << " sending threads";
}

}  // namespace
}  // namespace weave
