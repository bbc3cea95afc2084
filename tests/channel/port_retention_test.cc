// A delivered message lives only as long as its handler's call (the review's
// D5): whatever the handler does not keep — the value, the buffers
// transferred with it, the ports that came with it — is released when the
// handler returns or throws, on a MessagePort and on a BroadcastChannel alike.
// A port received and ignored is closed then, so its peer sees `close`.
//
// Also the combinations around delivery: a handler that drops its own port or
// the port it just received, transfers into a port closed in the middle of a
// batch, and a close racing a post with a transfer list.
//
// Loops run on std::threads the test joins (each thread has its own
// EventLoop), never on the main thread, whose loop would outlive the test.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "channel/array_buffer.h"
#include "channel/broadcast_channel.h"
#include "channel/internal/buffer_access.h"
#include "channel/message_port.h"
#include "channel/value.h"
#include "loop/event_loop.h"
#include "tests/channel/port_test_util.h"
#include "tests/test_util.h"

namespace weave {
namespace {

using RunMode = EventLoop::RunMode;
using PortRetentionTest = ::weave::testing::PortLeakCheckedTest;
using ::weave::testing::int_of;
using ::weave::testing::kHangGuard;
using ::weave::testing::StartBarrier;

constexpr std::size_t kMiB = std::size_t{1} << 20;

// Runs turns of this thread's loop without waiting until `done` holds; false
// if it does not within kHangGuard (the test then fails instead of hanging).
template <class Pred>
bool turn_until(Pred done) {
  const auto deadline = std::chrono::steady_clock::now() + kHangGuard;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    (void)EventLoop::current().run(RunMode::kNoWait);
  }
  return true;
}

// The storage of the buffer a message carries, watched without keeping it.
std::weak_ptr<internal::BufferStorage> watch_buffer(const Value& v) {
  const ArrayBuffer* b = v.if_array_buffer();
  return b ? std::weak_ptr<internal::BufferStorage>(internal::BufferAccess::storage(*b))
           : std::weak_ptr<internal::BufferStorage>();
}

TEST_F(PortRetentionTest, APortReceivedAndIgnoredByAHandlerIsClosedSoItsPeerSeesClose) {
  std::size_t ports_in_message = 0;
  std::size_t live_during_handler = 0;
  std::size_t live_after_turn = 0;
  bool peer_saw_close = false;
  std::thread t([&] {
    MessageChannel a;  // carries the port
    MessageChannel b;  // b.port2 travels to a.port2's handler, which ignores it
    b.port1.on_close([&] { peer_saw_close = true; });
    a.port2.on_message([&](MessageEvent& e) {
      ports_in_message = e.ports.size();
      live_during_handler = live_port_count_approx();
    });
    ASSERT_TRUE(a.port1.post_message("here is a port", Transfer().add(std::move(b.port2))).ok());
    ASSERT_TRUE(turn_until([&] { return ports_in_message != 0; }));
    live_after_turn = live_port_count_approx();
    EXPECT_TRUE(turn_until([&] { return peer_saw_close; }))
        << "the dropped port's peer never saw close: the delivered message kept the port";
    a.port1.close();
  });
  t.join();
  EXPECT_EQ(ports_in_message, 1u);
  EXPECT_EQ(live_after_turn + 1, live_during_handler)
      << "the ignored port outlived the handler's call";
  EXPECT_TRUE(peer_saw_close);
}

TEST_F(PortRetentionTest, ATransferredBufferReceivedAndNotKeptIsFreedWhenTheHandlerReturns) {
  std::weak_ptr<internal::BufferStorage> received;
  bool alive_during_handler = false;
  bool alive_after_handler = true;
  std::thread t([&] {
    MessageChannel ch;
    ch.port2.on_message([&](MessageEvent& e) {
      received = watch_buffer(e.data);
      alive_during_handler = !received.expired();
    });
    ArrayBuffer big = ArrayBuffer::create(kMiB);
    ASSERT_TRUE(ch.port1.post_message(Value(big), Transfer().add(big)).ok());
    EXPECT_TRUE(big.detached());
    ASSERT_TRUE(turn_until([&] { return alive_during_handler; }));
    alive_after_handler = !received.expired();
    ch.port1.close();
    (void)EventLoop::current().run();
  });
  t.join();
  EXPECT_TRUE(alive_during_handler);
  EXPECT_FALSE(alive_after_handler) << "the 1 MiB buffer outlived the handler that dropped it";
}

TEST_F(PortRetentionTest, AMessageWhoseHandlerThrowsIsReleasedAsTheExceptionLeaves) {
  std::weak_ptr<internal::BufferStorage> received;
  std::size_t live_during_handler = 0;
  std::size_t live_after_throw = 0;
  bool threw = false;
  bool alive_after_throw = true;
  std::thread t([&] {
    MessageChannel a;
    MessageChannel b;
    a.port2.on_message([&](MessageEvent& e) {
      received = watch_buffer(e.data);
      live_during_handler = live_port_count_approx();
      throw std::runtime_error("the handler gives up");
    });
    ArrayBuffer big = ArrayBuffer::create(kMiB);
    ASSERT_TRUE(a.port1.post_message(Value(big), Transfer().add(big).add(std::move(b.port2))).ok());
    try {
      (void)EventLoop::current().run();
    } catch (const std::runtime_error&) {
      threw = true;
    }
    alive_after_throw = !received.expired();
    live_after_throw = live_port_count_approx();
    a.port1.close();
    (void)EventLoop::current().run();
  });
  t.join();
  EXPECT_TRUE(threw);
  EXPECT_FALSE(alive_after_throw) << "the buffer outlived the handler that threw";
  EXPECT_EQ(live_after_throw + 1, live_during_handler)
      << "the port outlived the handler that threw";
}

TEST_F(PortRetentionTest, ABroadcastMessageIsReleasedWhenTheHandlerReturns) {
  std::weak_ptr<internal::BufferStorage> received;
  bool alive_during_handler = false;
  bool alive_after_handler = true;
  std::thread t([&] {
    BroadcastChannel sender("retention");
    BroadcastChannel receiver("retention");
    receiver.on_message([&](MessageEvent& e) {
      received = watch_buffer(e.data);
      alive_during_handler = !received.expired();
    });
    ASSERT_TRUE(sender.post_message(Value(ArrayBuffer::create(kMiB))).ok());
    ASSERT_TRUE(turn_until([&] { return alive_during_handler; }));
    alive_after_handler = !received.expired();
  });
  t.join();
  EXPECT_TRUE(alive_during_handler);
  EXPECT_FALSE(alive_after_handler) << "the broadcast clone outlived the handler that dropped it";
}

TEST_F(PortRetentionTest, AHandlerThatDropsThePortItJustReceivedClosesItsPeerAtOnce) {
  bool peer_saw_close = false;
  bool dropped_in_handler = false;
  std::thread t([&] {
    MessageChannel a;
    MessageChannel b;
    b.port1.on_close([&] { peer_saw_close = true; });
    a.port2.on_message([&](MessageEvent& e) {
      ASSERT_EQ(e.ports.size(), 1u);
      e.ports.clear();  // closes it
      dropped_in_handler = b.port1.closed();
    });
    ASSERT_TRUE(a.port1.post_message(1, Transfer().add(std::move(b.port2))).ok());
    EXPECT_TRUE(turn_until([&] { return peer_saw_close; }));
    a.port1.close();
  });
  t.join();
  EXPECT_TRUE(dropped_in_handler);
  EXPECT_TRUE(peer_saw_close);
}

// A handler drops its own port, whose undelivered messages carry ports: those
// go with it (their peers see close) and the loop ends.
TEST_F(PortRetentionTest, AHandlerThatDropsItsOwnPortReleasesEveryMessageStillInIt) {
  constexpr int kMessages = 5;
  int peers_closed = 0;
  int delivered = 0;
  std::thread t([&] {
    auto ch = std::make_unique<MessageChannel>();
    std::vector<MessageChannel> carried(kMessages);
    for (auto& c : carried) c.port1.on_close([&] { ++peers_closed; });
    for (int i = 0; i < kMessages; ++i) {
      ASSERT_TRUE(ch->port1.post_message(i, Transfer().add(std::move(carried[i].port2))).ok());
    }
    ch->port2.on_message([&](MessageEvent&) {
      ++delivered;
      ch.reset();  // both ends, with the four messages still in the batch
    });
    EXPECT_TRUE(turn_until([&] { return peers_closed == kMessages; }));
  });
  t.join();
  EXPECT_EQ(delivered, 1);
  EXPECT_EQ(peers_closed, kMessages);
}

// The receiver closes its port in the middle of a batch of messages that carry
// buffers and ports: every accepted message is still delivered whole, in
// order, before the close event; a port the handler keeps stays usable.
TEST_F(PortRetentionTest, TransfersIntoAPortClosedMidBatchAreAllDeliveredWhole) {
  constexpr int kMessages = 8;
  std::vector<std::int64_t> order;
  std::vector<std::string> texts;
  std::vector<MessagePort> kept;
  bool close_event = false;
  std::thread t([&] {
    MessageChannel ch;
    std::vector<MessageChannel> carried(kMessages);
    for (int i = 0; i < kMessages; ++i) {
      ArrayBuffer b = ArrayBuffer::copy_of("buffer " + std::to_string(i));
      Object o{{"n", i}, {"bytes", Value(b)}};
      ASSERT_TRUE(
          ch.port1
              .post_message(Value(std::move(o)), Transfer().add(b).add(std::move(carried[i].port2)))
              .ok());
      EXPECT_TRUE(b.detached());
    }
    ch.port2.on_message([&](MessageEvent& e) {
      order.push_back(int_of(*e.data.find("n")));
      texts.push_back(e.data.find("bytes")->if_array_buffer()->to_string());
      for (MessagePort& p : e.ports) kept.push_back(std::move(p));
      if (order.size() == 3) ch.port2.close();
    });
    ch.port2.on_close([&] { close_event = true; });
    (void)EventLoop::current().run();
    // Each kept port still reaches its peer.
    for (int i = 0; i < kMessages; ++i) {
      ASSERT_TRUE(kept[i].post_message(i).ok());
      auto got = receive_message_on_port(carried[i].port1);
      ASSERT_TRUE(got.has_value());
      EXPECT_EQ(int_of(got->data), i);
    }
    kept.clear();
  });
  t.join();
  ASSERT_EQ(order.size(), static_cast<std::size_t>(kMessages));
  for (int i = 0; i < kMessages; ++i) {
    EXPECT_EQ(order[i], i);
    EXPECT_EQ(texts[i], "buffer " + std::to_string(i));
  }
  EXPECT_TRUE(close_event);
}

// A close races posts that carry a buffer and a port: each post either
// arrives whole at the receiver, or fails with the buffer attached again and
// the port back in the transfer list. Nothing is lost either way.
TEST_F(PortRetentionTest, ACloseRacingAPostWithATransferListLosesNothing) {
  constexpr int kRounds = 300 / ::weave::testing::kStressScale + 20;
  int sent = 0;
  int refused = 0;
  for (int round = 0; round < kRounds; ++round) {
    MessageChannel ch;
    MessageChannel carried;
    ArrayBuffer b = ArrayBuffer::copy_of("payload " + std::to_string(round));
    Transfer transfer;
    transfer.add(b).add(std::move(carried.port2));
    Status status;
    StartBarrier start(2);
    std::thread poster([&] {
      start.arrive_and_wait();
      status = ch.port1.post_message(Value(b), std::move(transfer));
    });
    std::thread closer([&] {
      start.arrive_and_wait();
      ch.port2.close();
    });
    poster.join();
    closer.join();
    if (status.ok()) {
      ++sent;
      EXPECT_TRUE(b.detached());
      auto got = receive_message_on_port(ch.port2);  // accepted before the close
      ASSERT_TRUE(got.has_value()) << "an accepted post was lost in round " << round;
      EXPECT_EQ(got->data.if_array_buffer()->to_string(), "payload " + std::to_string(round));
      ASSERT_EQ(got->ports.size(), 1u);
      ASSERT_TRUE(got->ports[0].post_message(round).ok());
    } else {
      ++refused;
      EXPECT_EQ(status.code(), ErrorCode::kClosed);
      EXPECT_FALSE(b.detached()) << "a refused post detached the buffer in round " << round;
      EXPECT_EQ(b.to_string(), "payload " + std::to_string(round));
      ASSERT_EQ(transfer.ports.size(), 1u) << "a refused post lost the port in round " << round;
      ASSERT_TRUE(transfer.ports[0].post_message(round).ok());
    }
    auto at_peer = receive_message_on_port(carried.port1);
    ASSERT_TRUE(at_peer.has_value());
    EXPECT_EQ(int_of(at_peer->data), round);
  }
  EXPECT_EQ(sent + refused, kRounds);
}

}  // namespace
}  // namespace weave
