// A post whose queue cannot grow (kOutOfMemory): nothing is sent, nothing is
// lost, and what the caller handed in comes back to it — also for a port
// that is posted from inside its own handler and retried. Allocation
// failure is injected with ScopedQueueAllocFailure (channel/internal/
// queue_alloc.h), which fails the message queues' allocations on the
// calling thread only.
#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "channel/array_buffer.h"
#include "channel/broadcast_channel.h"
#include "channel/internal/queue_alloc.h"
#include "channel/message_port.h"
#include "channel/status.h"
#include "channel/value.h"
#include "loop/event_loop.h"
#include "tests/channel/port_test_util.h"
#include "tests/test_util.h"

namespace weave {
namespace {

using internal::ScopedQueueAllocFailure;
using ::weave::testing::int_of;
using ::weave::testing::run_loop_on_this_thread;
using ::weave::testing::StartBarrier;
using OutOfMemoryTest = ::weave::testing::PortLeakCheckedTest;

constexpr int kEnough = 100'000;  // far more posts than a queue holds without growing

// Posts ints 0, 1, ... on `port` until one is refused; returns how many were
// accepted. The refusal must be kOutOfMemory.
std::int64_t post_until_full(MessagePort& port) {
  for (std::int64_t i = 0; i < kEnough; ++i) {
    Status s = port.post_message(i);
    if (!s.ok()) {
      EXPECT_EQ(s.code(), ErrorCode::kOutOfMemory) << s.to_string();
      return i;
    }
  }
  ADD_FAILURE() << "the queue kept growing with its allocations failing";
  return kEnough;
}

std::vector<std::int64_t> drain(MessagePort& port) {
  std::vector<std::int64_t> got;
  while (auto m = receive_message_on_port(port)) got.push_back(int_of(m->data));
  return got;
}

std::vector<std::int64_t> iota(std::int64_t from, std::int64_t to) {
  std::vector<std::int64_t> out;
  for (std::int64_t i = from; i < to; ++i) out.push_back(i);
  return out;
}

const std::string kLongText = "longer than any small-string buffer, so it owns heap memory";

TEST_F(OutOfMemoryTest, APostTheQueueCannotTakeSendsNothingAndLaterPostsFollowInOrder) {
  MessageChannel ch;
  std::int64_t accepted = 0;
  {
    ScopedQueueAllocFailure failing;
    accepted = post_until_full(ch.port1);
    // Still full: refused again, and a moved-in value stays with the caller.
    Value text(kLongText);
    Status s = ch.port1.post_message(std::move(text));
    EXPECT_EQ(s.code(), ErrorCode::kOutOfMemory);
    EXPECT_EQ(error_code_name(s.code()), "OutOfMemoryError");
    EXPECT_EQ(text, Value(kLongText)) << "a refused post must leave the value with the caller";
    Value boxed(Array{1, 2});
    EXPECT_EQ(ch.port1.post_message(boxed).code(), ErrorCode::kOutOfMemory);
  }
  EXPECT_GT(accepted, 0) << "the queue's first block needs no allocation";
  EXPECT_FALSE(ch.port1.closed()) << "running out of memory does not close the port";
  for (std::int64_t i = accepted; i < accepted + 100; ++i) {
    ASSERT_TRUE(ch.port1.post_message(i).ok());
  }
  EXPECT_EQ(drain(ch.port2), iota(0, accepted + 100)) << "lost, duplicated or reordered";
}

TEST_F(OutOfMemoryTest, ATransferThatFailsLeavesTheBufferAttachedAndReturnsThePort) {
  MessageChannel ch;
  MessageChannel inner;
  ASSERT_TRUE(inner.port1.post_message(41).ok());
  ArrayBuffer buf = ArrayBuffer::copy_of("payload bytes");
  const std::byte* data = buf.data();
  {
    ScopedQueueAllocFailure failing;
    (void)post_until_full(ch.port1);
    Transfer t;
    t.add(buf).add(std::move(inner.port2));
    Status s = ch.port1.post_message(Value(Object{{"buf", buf}}), std::move(t));
    ASSERT_EQ(s.code(), ErrorCode::kOutOfMemory) << s.to_string();
    EXPECT_FALSE(buf.detached());
    EXPECT_EQ(buf.data(), data);
    EXPECT_EQ(buf.to_string(), "payload bytes");
    ASSERT_EQ(t.ports.size(), 1u) << "the port must come back in the transfer list";
    inner.port2 = std::move(t.ports[0]);
  }
  EXPECT_FALSE(inner.port2.closed());
  // The port still works where it is, and it can be sent once memory is back.
  ASSERT_TRUE(inner.port1.post_message(42).ok());
  (void)drain(ch.port2);
  ASSERT_TRUE(ch.port1
                  .post_message(Value(Object{{"buf", buf}}),
                                Transfer().add(buf).add(std::move(inner.port2)))
                  .ok());
  EXPECT_TRUE(buf.detached());
  auto got = receive_message_on_port(ch.port2);
  ASSERT_TRUE(got.has_value());
  ArrayBuffer* arrived = got->data.if_object()->get("buf")->if_array_buffer();
  ASSERT_NE(arrived, nullptr);
  EXPECT_EQ(arrived->data(), data) << "the buffer was copied";
  ASSERT_EQ(got->ports.size(), 1u);
  EXPECT_EQ(drain(got->ports[0]), (std::vector<std::int64_t>{41, 42}));
}

// A handler posts its own port away, the post fails for memory, and it
// tries again (twice) until memory is back. The message it is running for
// must stay intact throughout (it lives in the port's stash, which the port
// leaves behind), and the messages after it must reach the new owner in
// order.
TEST_F(OutOfMemoryTest, AHandlerThatRetriesPostingItsOwnPortKeepsItsMessageAndTheOrder) {
  MessageChannel src;      // the port whose handler runs: src.port2
  MessageChannel carrier;  // it travels through carrier.port1
  Value first(Object{{"text", kLongText}});
  ASSERT_TRUE(src.port1.post_message(first).ok());
  for (std::int64_t i = 1; i <= 4; ++i) ASSERT_TRUE(src.port1.post_message(i).ok());

  std::vector<ErrorCode> attempts;
  bool message_intact = false;
  std::thread owner([&] {
    MessagePort port = std::move(src.port2);
    MessagePort* self = &port;
    port.on_message([&](MessageEvent& e) {
      if (!attempts.empty()) return;  // only the first message moves the port
      {
        ScopedQueueAllocFailure failing;
        (void)post_until_full(carrier.port1);
        for (int i = 0; i < 2; ++i) {
          Transfer t;
          t.add(std::move(*self));
          Status s = carrier.port1.post_message(Value("port"), std::move(t));
          attempts.push_back(s.code());
          ASSERT_EQ(t.ports.size(), 1u);
          *self = std::move(t.ports[0]);
        }
      }
      attempts.push_back(
          carrier.port1.post_message(Value("port"), Transfer().add(std::move(*self))).code());
      message_intact = e.data == Value(Object{{"text", kLongText}});
    });
    run_loop_on_this_thread();
  });
  owner.join();
  EXPECT_EQ(attempts, (std::vector<ErrorCode>{ErrorCode::kOutOfMemory, ErrorCode::kOutOfMemory,
                                              ErrorCode::kOk}));
  EXPECT_TRUE(message_intact) << "the running handler's message changed under it";

  std::optional<MessageEvent> moved;
  while (auto m = receive_message_on_port(carrier.port2)) {
    if (!m->ports.empty()) moved = std::move(m);
  }
  ASSERT_TRUE(moved.has_value());
  ASSERT_EQ(moved->ports.size(), 1u);
  ASSERT_TRUE(src.port1.post_message(5).ok());
  EXPECT_EQ(drain(moved->ports[0]), iota(1, 6)) << "the messages after the move";
}

// The receiver does not run its loop until the sender is done, so its queue
// only fills.
TEST_F(OutOfMemoryTest, ABroadcastTheReceiverCannotTakeIsReportedAndLaterOnesFollowInOrder) {
  BroadcastChannel a("out-of-memory-test");
  std::vector<std::int64_t> got;
  StartBarrier joined(2);
  StartBarrier posted(2);
  std::thread receiver([&] {
    BroadcastChannel b("out-of-memory-test");
    std::int64_t total = -1;
    b.on_message([&](MessageEvent& e) {
      const std::int64_t v = int_of(e.data);
      if (v < 0) {
        total = -v;  // the last message: how many came before it
      } else {
        got.push_back(v);
      }
      if (total >= 0 && static_cast<std::int64_t>(got.size()) >= total) b.close();
    });
    joined.arrive_and_wait();
    posted.arrive_and_wait();
    run_loop_on_this_thread();
  });
  joined.arrive_and_wait();
  // The first post makes this thread's producer in b's queue (an allocation).
  ASSERT_TRUE(a.post_message(0).ok());
  std::int64_t accepted = 1;
  {
    ScopedQueueAllocFailure failing;
    for (; accepted < kEnough; ++accepted) {
      Status s = a.post_message(accepted);
      if (!s.ok()) {
        EXPECT_EQ(s.code(), ErrorCode::kOutOfMemory);
        EXPECT_NE(s.to_string().find("1 of 1"), std::string::npos) << s.to_string();
        break;
      }
    }
  }
  EXPECT_LT(accepted, kEnough) << "the queue kept growing with its allocations failing";
  EXPECT_GT(accepted, 1) << "the queue's first block needs no allocation";
  for (std::int64_t i = accepted; i < accepted + 10; ++i) ASSERT_TRUE(a.post_message(i).ok());
  ASSERT_TRUE(a.post_message(-(accepted + 10)).ok());
  posted.arrive_and_wait();
  receiver.join();
  EXPECT_EQ(got, iota(0, accepted + 10)) << "lost, duplicated or reordered";
}

}  // namespace
}  // namespace weave
