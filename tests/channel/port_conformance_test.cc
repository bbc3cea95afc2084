// Where MessagePort follows Node's own tests (test/parallel/test-worker-message-
// port*.js): has_ref() reports whether the port keeps its loop alive, setting
// a handler refs the port as adding a 'message' listener does, and a post
// checks its transfer list before anything else — before a Codec's encode
// hook, and before noticing that the channel is closed — with nothing sent or
// detached when it fails.
#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <thread>
#include <utility>

#include "atomics/shared_array_buffer.h"
#include "channel/array_buffer.h"
#include "channel/codec.h"
#include "channel/message_port.h"
#include "channel/status.h"
#include "channel/value.h"
#include "loop/event_loop.h"
#include "tests/channel/port_test_util.h"
#include "tests/test_util.h"

// A type whose encode hook always throws: any error reported instead of the
// exception was found before the hook ran.
struct Unencodable {
  int n = 0;
};
template <>
struct weave::Codec<Unencodable> {
  static Value encode(const Unencodable&) { throw std::runtime_error("encode hook ran"); }
  static Result<Unencodable> decode(const Value&) { return Unencodable{}; }
};

namespace weave {
namespace {

using RunMode = EventLoop::RunMode;
using PortConformanceTest = ::weave::testing::PortLeakCheckedTest;
using ::weave::testing::detached_buffer;
using ::weave::testing::int_of;

// --- has_ref ------------------------------------------------------------------

TEST_F(PortConformanceTest, AFreshPortWithoutAHandlerHasNoRef) {
  MessageChannel ch;
  EXPECT_FALSE(ch.port1.has_ref());
  EXPECT_FALSE(ch.port2.has_ref());
  EXPECT_FALSE(MessagePort().has_ref());
}

TEST_F(PortConformanceTest, AHandlerRefsThePortAndANullHandlerUnrefsIt) {
  bool with_handler = false;
  bool alive_with_handler = false;
  bool after_null = true;
  bool alive_after_null = true;
  std::thread t([&] {
    MessageChannel ch;
    ch.port2.on_message([](MessageEvent&) {});
    with_handler = ch.port2.has_ref();
    alive_with_handler = EventLoop::current().run(RunMode::kNoWait);
    ch.port2.on_message(nullptr);
    after_null = ch.port2.has_ref();
    alive_after_null = EventLoop::current().run(RunMode::kNoWait);
  });
  t.join();
  EXPECT_TRUE(with_handler);
  EXPECT_TRUE(alive_with_handler);
  EXPECT_FALSE(after_null);
  EXPECT_FALSE(alive_after_null);
}

TEST_F(PortConformanceTest, InsideTheCloseHandlerThePortHasNoRef) {
  bool in_close_handler = true;
  bool close_ran = false;
  std::thread t([&] {
    MessageChannel ch;
    ch.port2.on_message([](MessageEvent&) {});
    ch.port2.on_close([&] {
      close_ran = true;
      in_close_handler = ch.port2.has_ref();
    });
    ch.port1.close();
    (void)EventLoop::current().run();
  });
  t.join();
  EXPECT_TRUE(close_ran);
  EXPECT_FALSE(in_close_handler);
}

// Node: port.unref(); port.on('message', f) refs the port again — a loop
// waiting for that port does not end early.
TEST_F(PortConformanceTest, SettingAHandlerAfterUnrefRefsThePortAgain) {
  bool refed_again = false;
  bool alive = false;
  std::int64_t got = -1;
  std::atomic<bool> ready{false};
  MessageChannel ch;
  std::thread t([&, p = std::move(ch.port2)]() mutable {
    p.unref();
    p.on_message([&](MessageEvent& e) {
      got = int_of(e.data);
      p.close();
    });
    refed_again = p.has_ref();
    alive = EventLoop::current().run(RunMode::kNoWait);  // nothing posted yet
    ready.store(true);
    ready.notify_all();
    (void)EventLoop::current().run();  // until the message comes
  });
  ready.wait(false);
  ASSERT_TRUE(ch.port1.post_message(5).ok());
  t.join();
  EXPECT_TRUE(refed_again);
  EXPECT_TRUE(alive) << "a loop waiting for a port with a handler would end early";
  EXPECT_EQ(got, 5);
}

TEST_F(PortConformanceTest, UnrefAfterTheHandlerKeepsThePortUnreferenced) {
  bool refed = true;
  std::thread t([&] {
    MessageChannel ch;
    ch.port2.on_message([](MessageEvent&) {});
    ch.port2.unref();
    refed = ch.port2.has_ref();
    EXPECT_FALSE(EventLoop::current().run(RunMode::kNoWait));
  });
  t.join();
  EXPECT_FALSE(refed);
}

// --- error precedence -----------------------------------------------------------

TEST_F(PortConformanceTest, ASharedArrayBufferInTheTransferListWinsOverTheEncodeHook) {
  MessageChannel ch;
  SharedArrayBuffer sab(16);
  Status s;
  EXPECT_NO_THROW(s = ch.port1.post_message(Unencodable{}, Transfer().add(sab)));
  EXPECT_EQ(s.code(), ErrorCode::kDataCloneError) << s.to_string();
  EXPECT_EQ(ch.port2.pending_approx(), 0u);
}

TEST_F(PortConformanceTest, ABufferListedTwiceWinsOverTheEncodeHook) {
  MessageChannel ch;
  ArrayBuffer b = ArrayBuffer::copy_of("twice");
  Status s;
  EXPECT_NO_THROW(s = ch.port1.post_message(Unencodable{}, Transfer().add(b).add(b)));
  EXPECT_EQ(s.code(), ErrorCode::kDataCloneError) << s.to_string();
  EXPECT_FALSE(b.detached());
  EXPECT_EQ(b.to_string(), "twice");
}

TEST_F(PortConformanceTest, ADetachedBufferInTheTransferListWinsOverTheEncodeHook) {
  MessageChannel ch;
  ArrayBuffer kept = ArrayBuffer::copy_of("kept");
  Status s;
  EXPECT_NO_THROW(
      s = ch.port1.post_message(Unencodable{}, Transfer().add(kept).add(detached_buffer())));
  EXPECT_EQ(s.code(), ErrorCode::kDataCloneError) << s.to_string();
  EXPECT_FALSE(kept.detached());
}

TEST_F(PortConformanceTest, ABadPortInTheTransferListWinsOverTheEncodeHook) {
  MessageChannel ch;
  Status s;
  EXPECT_NO_THROW(s = ch.port1.post_message(Unencodable{}, Transfer().add(std::move(ch.port2))));
  EXPECT_EQ(s.code(), ErrorCode::kDataCloneError) << s.to_string();
}

TEST_F(PortConformanceTest, AGoodTransferListLetsTheEncodeHookRun) {
  MessageChannel ch;
  ArrayBuffer b = ArrayBuffer::copy_of("fine");
  EXPECT_THROW((void)ch.port1.post_message(Unencodable{}, Transfer().add(b)), std::runtime_error);
  EXPECT_FALSE(b.detached());
}

// A detached buffer in the transfer list and a value that cannot be cloned:
// Node reports the transfer list (it is checked first).
TEST_F(PortConformanceTest, ADetachedBufferInTheTransferListWinsOverAnUnclonableValue) {
  MessageChannel ch;
  Status s = ch.port1.post_message(Value(detached_buffer()), Transfer().add(detached_buffer()));
  EXPECT_EQ(s.code(), ErrorCode::kDataCloneError);
  EXPECT_NE(s.message().find("transfer list"), std::string::npos) << s.to_string();
}

// Node serializes (and checks the transfer list) before it looks at the
// channel: a bad list on a closed channel is a DataCloneError, not kClosed.
class ClosedChannelTransferTest : public PortConformanceTest,
                                  public ::testing::WithParamInterface<bool> {
 protected:
  // Closed here (true) or by the peer (false).
  void close_channel(MessageChannel& ch) {
    if (GetParam()) {
      ch.port1.close();
    } else {
      ch.port2.close();
    }
  }
};

TEST_P(ClosedChannelTransferTest, ASharedArrayBufferListedIsADataCloneError) {
  MessageChannel ch;
  close_channel(ch);
  SharedArrayBuffer sab(8);
  EXPECT_EQ(ch.port1.post_message(Value(1), Transfer().add(sab)).code(),
            ErrorCode::kDataCloneError);
  Status typed;
  EXPECT_NO_THROW(typed = ch.port1.post_message(Unencodable{}, Transfer().add(sab)));
  EXPECT_EQ(typed.code(), ErrorCode::kDataCloneError);
}

TEST_P(ClosedChannelTransferTest, ABufferListedTwiceIsADataCloneErrorAndStaysAttached) {
  MessageChannel ch;
  close_channel(ch);
  ArrayBuffer b = ArrayBuffer::copy_of("twice");
  EXPECT_EQ(ch.port1.post_message(Value(b), Transfer().add(b).add(b)).code(),
            ErrorCode::kDataCloneError);
  EXPECT_FALSE(b.detached());
}

TEST_P(ClosedChannelTransferTest, ADetachedBufferListedIsADataCloneError) {
  MessageChannel ch;
  close_channel(ch);
  ArrayBuffer kept = ArrayBuffer::copy_of("kept");
  EXPECT_EQ(ch.port1.post_message(Value(1), Transfer().add(kept).add(detached_buffer())).code(),
            ErrorCode::kDataCloneError);
  EXPECT_FALSE(kept.detached());
}

TEST_P(ClosedChannelTransferTest, ABadPortListedIsADataCloneError) {
  MessageChannel ch;
  close_channel(ch);
  MessageChannel other;
  other.port1.close();
  Transfer t;
  t.add(std::move(other.port2));
  EXPECT_EQ(ch.port1.post_message(Value(1), std::move(t)).code(), ErrorCode::kDataCloneError);
}

TEST_P(ClosedChannelTransferTest, AGoodListIsRefusedAsClosedWithNothingDetachedOrLost) {
  MessageChannel ch;
  close_channel(ch);
  MessageChannel other;
  ArrayBuffer b = ArrayBuffer::copy_of("mine");
  Transfer t;
  t.add(b).add(std::move(other.port2));
  EXPECT_EQ(ch.port1.post_message(Value(b), std::move(t)).code(), ErrorCode::kClosed);
  EXPECT_FALSE(b.detached());
  EXPECT_EQ(b.to_string(), "mine");
  ASSERT_EQ(t.ports.size(), 1u);
  EXPECT_TRUE(t.ports[0].post_message(1).ok());
}

INSTANTIATE_TEST_SUITE_P(ClosedHereOrByThePeer, ClosedChannelTransferTest, ::testing::Bool());

}  // namespace
}  // namespace weave
