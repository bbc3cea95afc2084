// The threading rule of MessagePort and BroadcastChannel (message_port.h):
// an unbound end (no handler set, never bound to a loop) may move to another
// thread with happens-before, e.g. captured into a std::thread; a bound end
// belongs to its loop's thread and changes threads only by being posted.
// Breaking the rule is a debug-build assertion naming the type and the rule
// (the review's D14); these death tests pin it, and the legitimate moves
// around it keep working.
//
// The death tests bind the end on the child's main thread, whose loop lives
// until the child exits, and misuse it from a second thread.
#include <gtest/gtest.h>

#include <optional>
#include <thread>
#include <utility>

#include "channel/broadcast_channel.h"
#include "channel/message_port.h"
#include "loop/event_loop.h"
#include "tests/channel/port_test_util.h"
#include "tests/test_util.h"

namespace weave {
namespace {

using ::weave::testing::int_of;
using PortThreadRuleTest = ::weave::testing::PortLeakCheckedTest;

#ifdef NDEBUG
#define WEAVE_SKIP_WITHOUT_ASSERTS() GTEST_SKIP() << "the thread rule is checked in debug builds"
#else
#define WEAVE_SKIP_WITHOUT_ASSERTS() (void)0
#endif

constexpr const char* kPortRule =
    "weave::MessagePort: .* a bound port belongs to its loop's thread";
constexpr const char* kBroadcastRule =
    "weave::BroadcastChannel: .* a bound channel belongs to its loop's thread";

class PortThreadRuleDeathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WEAVE_SKIP_WITHOUT_ASSERTS();
    GTEST_FLAG_SET(death_test_style, "threadsafe");
  }
};

// A channel whose port2 is bound to the calling thread's loop.
struct BoundHere {
  MessageChannel ch;
  BoundHere() {
    ch.port2.on_message([](MessageEvent&) {});
  }
};

void post_through_a_bound_port_from_another_thread() {
  BoundHere b;
  std::thread([&] { (void)b.ch.port2.post_message(1); }).join();
}
TEST_F(PortThreadRuleDeathTest, PostingThroughABoundPortFromAnotherThreadAsserts) {
  EXPECT_DEATH(post_through_a_bound_port_from_another_thread(), kPortRule);
}

void close_a_bound_port_on_another_thread() {
  BoundHere b;
  std::thread([&] { b.ch.port2.close(); }).join();
}
TEST_F(PortThreadRuleDeathTest, ClosingABoundPortOnAnotherThreadAsserts) {
  EXPECT_DEATH(close_a_bound_port_on_another_thread(), kPortRule);
}

void destroy_a_bound_port_on_another_thread() {
  BoundHere b;
  // The capture moves the port on this thread; the lambda, and the port with
  // it, is destroyed on the new one.
  std::thread([p = std::move(b.ch.port2)] {}).join();
}
TEST_F(PortThreadRuleDeathTest, DestroyingABoundPortOnAnotherThreadAsserts) {
  EXPECT_DEATH(destroy_a_bound_port_on_another_thread(), kPortRule);
}

void receive_on_a_bound_port_from_another_thread() {
  BoundHere b;
  (void)b.ch.port1.post_message(1);
  std::thread([&] { (void)receive_message_on_port(b.ch.port2); }).join();
}
TEST_F(PortThreadRuleDeathTest, ReceivingOnABoundPortFromAnotherThreadAsserts) {
  EXPECT_DEATH(receive_on_a_bound_port_from_another_thread(), kPortRule);
}

void set_a_handler_on_a_bound_port_from_another_thread() {
  BoundHere b;
  std::thread([&] { b.ch.port2.on_message([](MessageEvent&) {}); }).join();
}
TEST_F(PortThreadRuleDeathTest, SettingAHandlerOnABoundPortFromAnotherThreadAsserts) {
  EXPECT_DEATH(set_a_handler_on_a_bound_port_from_another_thread(), kPortRule);
}

void unref_a_bound_port_from_another_thread() {
  BoundHere b;
  std::thread([&] { b.ch.port2.unref(); }).join();
}
TEST_F(PortThreadRuleDeathTest, UnrefingABoundPortFromAnotherThreadAsserts) {
  EXPECT_DEATH(unref_a_bound_port_from_another_thread(), kPortRule);
}

void post_on_a_bound_broadcast_channel_from_another_thread() {
  BroadcastChannel bc("thread rule");
  bc.on_message([](MessageEvent&) {});
  std::thread([&] { (void)bc.post_message(1); }).join();
}
TEST_F(PortThreadRuleDeathTest, PostingOnABoundBroadcastChannelFromAnotherThreadAsserts) {
  EXPECT_DEATH(post_on_a_bound_broadcast_channel_from_another_thread(), kBroadcastRule);
}

void close_a_bound_broadcast_channel_on_another_thread() {
  BroadcastChannel bc("thread rule");
  bc.on_message([](MessageEvent&) {});
  std::thread([&] { bc.close(); }).join();
}
TEST_F(PortThreadRuleDeathTest, ClosingABoundBroadcastChannelOnAnotherThreadAsserts) {
  EXPECT_DEATH(close_a_bound_broadcast_channel_on_another_thread(), kBroadcastRule);
}

// --- what the rule allows ------------------------------------------------------

// The README's first program: an unbound port captured into a std::thread,
// bound and used there, while its peer is used on this thread.
TEST_F(PortThreadRuleTest, AnUnboundPortMovedIntoAThreadIsUsedThere) {
  MessageChannel ch;
  std::int64_t got = -1;
  std::thread t([&got, p = std::move(ch.port2)]() mutable {
    p.on_message([&](MessageEvent& e) {
      got = int_of(e.data);
      (void)p.post_message(got * 2);
      p.close();
    });
    (void)EventLoop::current().run();
  });
  ASSERT_TRUE(ch.port1.post_message(21).ok());
  t.join();
  EXPECT_EQ(got, 21);
  auto reply = receive_message_on_port(ch.port1);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(int_of(reply->data), 42);
}

// A bound port changes threads by being posted: its old thread's handler
// posts it away, and the new owner binds and uses it.
TEST_F(PortThreadRuleTest, ABoundPortPostedToAnotherThreadIsUsedThere) {
  MessageChannel carrier;
  MessageChannel ch;
  std::int64_t on_u = -1;
  std::thread t([&] {
    ch.port2.on_message([&](MessageEvent& e) {
      // Bound here; hands itself to U through the carrier.
      (void)carrier.port1.post_message(int_of(e.data), Transfer().add(std::move(ch.port2)));
    });
    (void)EventLoop::current().run();
  });
  ASSERT_TRUE(ch.port1.post_message(1).ok());
  std::thread u([&] {
    std::optional<MessagePort> kept;
    carrier.port2.on_message([&](MessageEvent& e) {
      kept.emplace(std::move(e.ports.at(0)));
      kept->on_message([&](MessageEvent& e2) {
        on_u = int_of(e2.data);
        kept->close();
      });
      carrier.port2.close();
    });
    (void)EventLoop::current().run();
  });
  t.join();
  ASSERT_TRUE(ch.port1.post_message(2).ok());
  u.join();
  EXPECT_EQ(on_u, 2);
}

// A bound port whose thread ended (its loop is gone) is unbound again: any
// thread that gets it with happens-before may use it.
TEST_F(PortThreadRuleTest, APortWhoseLoopEndedMayBeUsedByTheNextThread) {
  MessageChannel ch;
  std::thread t([&] {
    ch.port2.on_message([](MessageEvent&) {});
    (void)EventLoop::current().run(EventLoop::RunMode::kNoWait);
  });
  t.join();
  ASSERT_TRUE(ch.port2.post_message(7).ok());
  auto got = receive_message_on_port(ch.port1);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(int_of(got->data), 7);
  ch.port2.close();
}

}  // namespace
}  // namespace weave
