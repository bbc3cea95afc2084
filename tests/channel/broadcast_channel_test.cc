// Pins down weave::BroadcastChannel (channel/broadcast_channel.h): every other
// open instance of a name receives each message exactly once, the poster never
// its own, per-sender order is kept, names are isolated, a closed instance
// receives nothing more, a value that cannot be cloned reaches nobody.
//
// Loops run on std::threads the test joins (each thread has its own
// EventLoop), never on the main thread, whose loop would outlive the test.
// Every test uses its own channel names.
#include "channel/broadcast_channel.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "channel/array_buffer.h"
#include "channel/codec.h"
#include "channel/message_port.h"
#include "channel/status.h"
#include "channel/value.h"
#include "loop/event_loop.h"
#include "tests/channel/port_test_util.h"
#include "tests/test_util.h"

namespace weave {
namespace {

using RunMode = EventLoop::RunMode;
using ::weave::testing::CleanShutdownTest;
using ::weave::testing::StartBarrier;

using BroadcastChannelTest = ::weave::testing::PortLeakCheckedTest;

using ::weave::testing::int_of;

std::string string_of(const Value& v) {
  const std::string* s = v.if_string();
  return s ? *s : "<not a string>";
}

using ::weave::testing::detached_buffer;

// Runs the calling thread's loop turn by turn (never parking) until `done()`
// or `max_turns` turns, then one more turn to let anything unexpected arrive.
// Posts between instances on one thread are synchronous, so one turn
// delivers them; the bound only keeps a failing test from spinning forever.
template <class Done>
void run_turns_until(Done done, int max_turns = 100) {
  for (int i = 0; i < max_turns && !done(); ++i) (void)EventLoop::current().run(RunMode::kNoWait);
  (void)EventLoop::current().run(RunMode::kNoWait);
}

// --- fan-out across threads -------------------------------------------------------

// N instances of one name on N threads; each posts K messages, then runs its
// loop until it has 2K... (N-1)K: each other instance's K, in that sender's
// order, and none of its own. All instances exist before anyone posts.
class BroadcastFanOutTest : public BroadcastChannelTest,
                            public ::testing::WithParamInterface<int> {};

TEST_P(BroadcastFanOutTest, EveryOtherInstanceReceivesEachMessageExactlyOnceInSenderOrder) {
  const int n = GetParam();
  constexpr std::int64_t kK = 2000;
  const std::string name = "fan-out-" + std::to_string(n);
  StartBarrier joined(n);
  // received[r][s]: the seqs instance r got from sender s, in arrival order.
  std::vector<std::vector<std::vector<std::int64_t>>> received(
      static_cast<std::size_t>(n),
      std::vector<std::vector<std::int64_t>>(static_cast<std::size_t>(n)));
  std::vector<std::int64_t> malformed(static_cast<std::size_t>(n), 0);
  std::vector<std::int64_t> failed_posts(static_cast<std::size_t>(n), 0);
  std::vector<std::thread> threads;
  for (int id = 0; id < n; ++id) {
    threads.emplace_back([&, id] {
      BroadcastChannel bc(name);
      auto& mine = received[static_cast<std::size_t>(id)];
      std::int64_t count = 0;
      const std::int64_t expected = (n - 1) * kK;
      bc.on_message([&](MessageEvent& e) {
        const std::int64_t from = e.data.find("from") ? int_of(*e.data.find("from")) : -1;
        const std::int64_t seq = e.data.find("seq") ? int_of(*e.data.find("seq")) : -1;
        if (from < 0 || from >= n || seq < 0) {
          ++malformed[static_cast<std::size_t>(id)];
        } else {
          mine[static_cast<std::size_t>(from)].push_back(seq);
        }
        if (++count == expected) bc.close();
      });
      joined.arrive_and_wait();
      for (std::int64_t i = 0; i < kK; ++i) {
        if (!bc.post_message(Value(Object{{"from", id}, {"seq", i}})).ok()) {
          ++failed_posts[static_cast<std::size_t>(id)];
        }
      }
      (void)EventLoop::current().run();
    });
  }
  for (auto& t : threads) t.join();

  std::vector<std::int64_t> all(kK);
  for (std::int64_t i = 0; i < kK; ++i) all[static_cast<std::size_t>(i)] = i;
  for (int r = 0; r < n; ++r) {
    EXPECT_EQ(malformed[static_cast<std::size_t>(r)], 0);
    EXPECT_EQ(failed_posts[static_cast<std::size_t>(r)], 0);
    for (int s = 0; s < n; ++s) {
      const auto& got = received[static_cast<std::size_t>(r)][static_cast<std::size_t>(s)];
      if (r == s) {
        EXPECT_TRUE(got.empty()) << "instance " << r << " received " << got.size()
                                 << " of its own messages";
      } else {
        EXPECT_EQ(got, all) << "instance " << r << " from sender " << s
                            << ": lost, duplicated or reordered";
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Instances, BroadcastFanOutTest, ::testing::Values(2, 3, 4));

// --- routing on one thread ----------------------------------------------------------

TEST_F(BroadcastChannelTest, InstancesOnTheSameThreadReceiveEachOthersMessages) {
  std::vector<std::string> got_a;
  std::vector<std::string> got_b;
  bool alive_after_close = true;
  std::thread t([&] {
    BroadcastChannel a("same-thread");
    BroadcastChannel b("same-thread");
    EXPECT_EQ(a.name(), "same-thread");
    a.on_message([&](MessageEvent& e) { got_a.push_back(string_of(e.data)); });
    b.on_message([&](MessageEvent& e) { got_b.push_back(string_of(e.data)); });
    EXPECT_TRUE(a.post_message("from a").ok());
    EXPECT_TRUE(b.post_message("from b").ok());
    EXPECT_TRUE(a.post_message("again from a").ok());
    run_turns_until([&] { return got_a.size() >= 1 && got_b.size() >= 2; });
    a.close();
    b.close();
    alive_after_close = EventLoop::current().run();
  });
  t.join();
  EXPECT_EQ(got_a, (std::vector<std::string>{"from b"}));
  EXPECT_EQ(got_b, (std::vector<std::string>{"from a", "again from a"}));
  EXPECT_FALSE(alive_after_close) << "a closed instance kept the loop alive";
}

TEST_F(BroadcastChannelTest, DifferentNamesAreIsolated) {
  std::vector<std::string> got_a2;
  std::vector<std::string> got_b2;
  std::vector<std::string> got_a1;
  std::vector<std::string> got_b1;
  std::thread t([&] {
    BroadcastChannel a1("isolated-a");
    BroadcastChannel a2("isolated-a");
    BroadcastChannel b1("isolated-b");
    BroadcastChannel b2("isolated-b");
    a1.on_message([&](MessageEvent& e) { got_a1.push_back(string_of(e.data)); });
    a2.on_message([&](MessageEvent& e) { got_a2.push_back(string_of(e.data)); });
    b1.on_message([&](MessageEvent& e) { got_b1.push_back(string_of(e.data)); });
    b2.on_message([&](MessageEvent& e) { got_b2.push_back(string_of(e.data)); });
    EXPECT_TRUE(a1.post_message("to a").ok());
    EXPECT_TRUE(b1.post_message("to b").ok());
    run_turns_until([&] { return !got_a2.empty() && !got_b2.empty(); });
  });
  t.join();
  EXPECT_EQ(got_a2, (std::vector<std::string>{"to a"}));
  EXPECT_EQ(got_b2, (std::vector<std::string>{"to b"}));
  EXPECT_TRUE(got_a1.empty());
  EXPECT_TRUE(got_b1.empty());
}

TEST_F(BroadcastChannelTest, EachReceiverGetsItsOwnCopy) {
  std::string y_saw;
  std::string z_saw;
  std::string sender_has;
  std::thread t([&] {
    BroadcastChannel x("own-copy");
    BroadcastChannel y("own-copy");
    BroadcastChannel z("own-copy");
    ArrayBuffer bytes = ArrayBuffer::copy_of("abc");
    // y writes into its copy first; z, dispatched after y, must not see it.
    y.on_message([&](MessageEvent& e) {
      ArrayBuffer* b = e.data.if_array_buffer();
      if (!b) return;
      b->bytes()[0] = std::byte{'Y'};
      y_saw = b->to_string();
    });
    z.on_message([&](MessageEvent& e) {
      const ArrayBuffer* b = e.data.if_array_buffer();
      z_saw = b ? b->to_string() : "<not a buffer>";
    });
    EXPECT_TRUE(x.post_message(Value(bytes)).ok());
    bytes.bytes()[1] = std::byte{'X'};  // after the post: reaches nobody
    run_turns_until([&] { return !y_saw.empty() && !z_saw.empty(); });
    sender_has = bytes.to_string();
  });
  t.join();
  EXPECT_EQ(y_saw, "Ybc");
  EXPECT_EQ(z_saw, "abc");
  EXPECT_EQ(sender_has, "aXc");
}

TEST_F(BroadcastChannelTest, MessagesPostedBeforeTheHandlerIsSetAreDeliveredOnceItIs) {
  std::vector<std::int64_t> got;
  std::thread t([&] {
    BroadcastChannel x("late-handler");
    BroadcastChannel y("late-handler");
    for (int i = 0; i < 3; ++i) EXPECT_TRUE(x.post_message(i).ok());
    y.on_message([&](MessageEvent& e) { got.push_back(int_of(e.data)); });
    run_turns_until([&] { return got.size() >= 3; });
  });
  t.join();
  EXPECT_EQ(got, (std::vector<std::int64_t>{0, 1, 2}));
}

TEST_F(BroadcastChannelTest, AnInstanceDoesNotReceiveWhatWasPostedBeforeItJoined) {
  std::vector<std::int64_t> got;
  std::thread t([&] {
    BroadcastChannel x("joined-late");
    EXPECT_TRUE(x.post_message(1).ok());  // nobody listening: still ok
    BroadcastChannel y("joined-late");
    y.on_message([&](MessageEvent& e) { got.push_back(int_of(e.data)); });
    EXPECT_TRUE(x.post_message(2).ok());
    run_turns_until([&] { return !got.empty(); });
  });
  t.join();
  EXPECT_EQ(got, (std::vector<std::int64_t>{2}));
}

TEST_F(BroadcastChannelTest, PostMessageEncodesThroughTheCodec) {
  std::vector<std::int64_t> got;
  std::thread t([&] {
    BroadcastChannel x("codec");
    BroadcastChannel y("codec");
    y.on_message([&](MessageEvent& e) {
      auto v = e.get<std::vector<std::int64_t>>();
      if (v.ok()) got = *v;
    });
    EXPECT_TRUE(x.post_message(std::vector<std::int64_t>{4, 5, 6}).ok());
    run_turns_until([&] { return !got.empty(); });
  });
  t.join();
  EXPECT_EQ(got, (std::vector<std::int64_t>{4, 5, 6}));
}

// --- close ------------------------------------------------------------------------

TEST_F(BroadcastChannelTest, PostAfterCloseReturnsClosed) {
  BroadcastChannel a("post-after-close");
  BroadcastChannel b("post-after-close");
  EXPECT_FALSE(a.closed());
  a.close();
  EXPECT_NO_THROW(a.close());  // idempotent
  EXPECT_TRUE(a.closed());
  Status s(ErrorCode::kOk, "");
  EXPECT_NO_THROW(s = a.post_message("late"));
  EXPECT_EQ(s.code(), ErrorCode::kClosed) << s.to_string();
  EXPECT_FALSE(b.closed()) << "closing one instance closed another";
  EXPECT_TRUE(b.post_message("still open").ok());
}

TEST_F(BroadcastChannelTest, MovedFromInstanceIsClosedAndTheMovedToOneWorks) {
  std::vector<std::string> got;
  std::thread t([&] {
    BroadcastChannel a("moved");
    BroadcastChannel b("moved");
    BroadcastChannel moved(std::move(a));
    EXPECT_TRUE(a.closed());  // NOLINT(bugprone-use-after-move): pinned behaviour
    EXPECT_EQ(a.post_message("x").code(), ErrorCode::kClosed);
    b.on_message([&](MessageEvent& e) { got.push_back(string_of(e.data)); });
    EXPECT_TRUE(moved.post_message("via moved").ok());
    run_turns_until([&] { return !got.empty(); });
  });
  t.join();
  EXPECT_EQ(got, (std::vector<std::string>{"via moved"}));
}

// y closes; what x posts afterwards reaches z but not y.
TEST_F(BroadcastChannelTest, AClosedInstanceReceivesNothingMore) {
  std::vector<std::int64_t> got_y;
  std::vector<std::int64_t> got_z;
  std::thread t([&] {
    BroadcastChannel x("closed-receives-nothing");
    BroadcastChannel y("closed-receives-nothing");
    BroadcastChannel z("closed-receives-nothing");
    y.on_message([&](MessageEvent& e) { got_y.push_back(int_of(e.data)); });
    z.on_message([&](MessageEvent& e) { got_z.push_back(int_of(e.data)); });
    EXPECT_TRUE(x.post_message(1).ok());
    run_turns_until([&] { return !got_y.empty() && !got_z.empty(); });
    y.close();
    EXPECT_TRUE(x.post_message(2).ok());
    run_turns_until([&] { return got_z.size() >= 2; });
  });
  t.join();
  EXPECT_EQ(got_y, (std::vector<std::int64_t>{1}));
  EXPECT_EQ(got_z, (std::vector<std::int64_t>{1, 2}));
}

// close() stops delivery at once: what was queued but not yet delivered is
// dropped, as in Node.
TEST_F(BroadcastChannelTest, CloseDropsWhatWasNotYetDelivered) {
  std::vector<std::int64_t> got_y;
  std::vector<std::int64_t> got_z;
  std::thread t([&] {
    BroadcastChannel x("close-drops");
    BroadcastChannel y("close-drops");
    BroadcastChannel z("close-drops");
    y.on_message([&](MessageEvent& e) { got_y.push_back(int_of(e.data)); });
    z.on_message([&](MessageEvent& e) { got_z.push_back(int_of(e.data)); });
    EXPECT_TRUE(x.post_message(1).ok());
    EXPECT_TRUE(x.post_message(2).ok());
    y.close();  // before its loop delivered anything
    run_turns_until([&] { return got_z.size() >= 2; });
  });
  t.join();
  EXPECT_TRUE(got_y.empty());
  EXPECT_EQ(got_z, (std::vector<std::int64_t>{1, 2}));
}

// A receiver on another thread closes from its handler on the first message
// while 100 are queued: it gets exactly one.
TEST_F(BroadcastChannelTest, CloseFromTheHandlerStopsDeliveryAtOnce) {
  constexpr int kQueued = 100;
  StartBarrier joined(2);
  StartBarrier posted(2);
  std::vector<std::int64_t> got;
  bool alive_after = true;
  std::thread receiver([&] {
    BroadcastChannel y("close-in-handler");
    y.on_message([&](MessageEvent& e) {
      got.push_back(int_of(e.data));
      y.close();
    });
    joined.arrive_and_wait();
    posted.arrive_and_wait();
    alive_after = EventLoop::current().run();
  });
  std::thread sender([&] {
    BroadcastChannel x("close-in-handler");
    joined.arrive_and_wait();
    for (int i = 0; i < kQueued; ++i) EXPECT_TRUE(x.post_message(i).ok());
    posted.arrive_and_wait();
  });
  sender.join();
  receiver.join();
  EXPECT_EQ(got, (std::vector<std::int64_t>{0}));
  EXPECT_FALSE(alive_after);
}

// --- clone errors -----------------------------------------------------------------

TEST_F(BroadcastChannelTest, ValueThatCannotBeClonedReachesNobody) {
  std::vector<std::string> got_y;
  std::vector<std::string> got_z;
  Status detached(ErrorCode::kOk, "");
  Status too_deep(ErrorCode::kOk, "");
  std::thread t([&] {
    BroadcastChannel x("clone-error");
    BroadcastChannel y("clone-error");
    BroadcastChannel z("clone-error");
    y.on_message([&](MessageEvent& e) {
      got_y.push_back(e.data.is_string() ? string_of(e.data) : e.data.to_string());
    });
    z.on_message([&](MessageEvent& e) {
      got_z.push_back(e.data.is_string() ? string_of(e.data) : e.data.to_string());
    });
    detached = x.post_message(Value(Object{{"ok", 1}, {"gone", detached_buffer()}}));
    Value deep(1);
    for (std::size_t i = 0; i <= kMaxCloneDepth; ++i) deep = Value(Array{std::move(deep)});
    too_deep = x.post_message(deep);
    EXPECT_TRUE(x.post_message("sentinel").ok());
    run_turns_until([&] { return !got_y.empty() && !got_z.empty(); });
  });
  t.join();
  EXPECT_EQ(detached.code(), ErrorCode::kDataCloneError) << detached.to_string();
  EXPECT_EQ(too_deep.code(), ErrorCode::kDataCloneError) << too_deep.to_string();
  // Had a failed post reached anyone, it would have come before the sentinel.
  EXPECT_EQ(got_y, (std::vector<std::string>{"sentinel"}));
  EXPECT_EQ(got_z, (std::vector<std::string>{"sentinel"}));
}

TEST_F(BroadcastChannelTest, ValueThatCannotBeClonedIsAnErrorEvenWithNoListener) {
  BroadcastChannel alone("clone-error-alone");
  EXPECT_EQ(alone.post_message(Value(Array{detached_buffer()})).code(), ErrorCode::kDataCloneError);
}

// --- ref / unref ------------------------------------------------------------------

TEST_F(BroadcastChannelTest, UnrefdInstanceWithAHandlerDoesNotKeepTheLoopAlive) {
  bool alive_unrefd = true;
  bool alive_refd = false;
  std::thread t([&] {
    BroadcastChannel bc("unref");
    bc.on_message([](MessageEvent&) {});
    bc.unref();
    alive_unrefd = EventLoop::current().run();  // returns at once
    bc.ref();
    alive_refd = EventLoop::current().run(RunMode::kNoWait);
    bc.close();
  });
  t.join();
  EXPECT_FALSE(alive_unrefd);
  EXPECT_TRUE(alive_refd);
}

TEST_F(BroadcastChannelTest, HasRefReportsWhetherTheInstanceKeepsItsLoopAlive) {
  bool fresh = true;
  bool with_handler = false;
  bool unrefd = true;
  bool handler_after_unref = false;
  bool alive_after_unref_and_handler = false;
  bool null_handler = true;
  bool after_close = true;
  std::thread t([&] {
    BroadcastChannel bc("has-ref");
    fresh = bc.has_ref();
    bc.on_message([](MessageEvent&) {});
    with_handler = bc.has_ref();
    bc.unref();
    unrefd = bc.has_ref();
    bc.on_message([](MessageEvent&) {});  // refs it again, as in Node
    handler_after_unref = bc.has_ref();
    alive_after_unref_and_handler = EventLoop::current().run(RunMode::kNoWait);
    bc.on_message(nullptr);
    null_handler = bc.has_ref();
    bc.on_message([](MessageEvent&) {});
    bc.close();
    after_close = bc.has_ref();
  });
  t.join();
  EXPECT_FALSE(fresh);
  EXPECT_TRUE(with_handler);
  EXPECT_FALSE(unrefd);
  EXPECT_TRUE(handler_after_unref);
  EXPECT_TRUE(alive_after_unref_and_handler);
  EXPECT_FALSE(null_handler);
  EXPECT_FALSE(after_close);
  EXPECT_FALSE(BroadcastChannel("has-ref").has_ref());
}

// --- synchronous receive ------------------------------------------------------------

TEST_F(BroadcastChannelTest, ReceiveMessageOnChannelReturnsEachWaitingMessageInOrderThenNothing) {
  BroadcastChannel a("sync-receive");
  BroadcastChannel b("sync-receive");
  EXPECT_FALSE(receive_message_on_channel(b).has_value());
  for (int i = 0; i < 40; ++i) ASSERT_TRUE(a.post_message(i).ok());
  for (int i = 0; i < 40; ++i) {
    auto e = receive_message_on_channel(b);
    ASSERT_TRUE(e.has_value()) << "message " << i;
    EXPECT_EQ(int_of(e->data), i);
    EXPECT_TRUE(e->ports.empty());
  }
  EXPECT_FALSE(receive_message_on_channel(b).has_value());
  EXPECT_FALSE(receive_message_on_channel(a).has_value()) << "the poster received its own message";
}

// A handler delivers some; what the handler has not seen yet can be taken by
// hand, and neither sees a message twice.
TEST_F(BroadcastChannelTest, ReceiveMessageOnChannelBesideAHandlerSeesEachMessageOnce) {
  std::vector<std::int64_t> handled;
  std::vector<std::int64_t> taken;
  std::thread t([&] {
    BroadcastChannel a("sync-beside-handler");
    BroadcastChannel b("sync-beside-handler");
    for (int i = 0; i < 6; ++i) ASSERT_TRUE(a.post_message(i).ok());
    b.on_message([&](MessageEvent& e) {
      handled.push_back(int_of(e.data));
      if (handled.size() == 2) {
        while (auto m = receive_message_on_channel(b)) taken.push_back(int_of(m->data));
      }
    });
    run_turns_until([&] { return handled.size() + taken.size() == 6; });
  });
  t.join();
  EXPECT_EQ(handled, (std::vector<std::int64_t>{0, 1}));
  EXPECT_EQ(taken, (std::vector<std::int64_t>{2, 3, 4, 5}));
}

TEST_F(BroadcastChannelTest, ReceiveMessageOnAClosedOrMovedFromChannelReturnsNothing) {
  BroadcastChannel a("sync-closed");
  BroadcastChannel b("sync-closed");
  ASSERT_TRUE(a.post_message(1).ok());
  BroadcastChannel c(std::move(b));
  EXPECT_FALSE(receive_message_on_channel(b).has_value());  // NOLINT(bugprone-use-after-move)
  c.close();  // drops what it had not delivered, as in Node
  EXPECT_FALSE(receive_message_on_channel(c).has_value());
}

TEST_F(BroadcastChannelTest, NameIsKeptAcrossAMoveAndEmptyWhenMovedFrom) {
  BroadcastChannel a("the name");
  EXPECT_EQ(a.name(), "the name");
  BroadcastChannel b(std::move(a));
  EXPECT_EQ(b.name(), "the name");
  EXPECT_TRUE(a.name().empty());  // NOLINT(bugprone-use-after-move): pinned behaviour
}

// --- loop sources outliving their instance ------------------------------------------
//
// In a child process (a death test that expects a clean exit), so that a
// use-after-free, which aborts the process under ASan, fails only this test.

void destroy_instance_before_its_first_dispatch() {
  std::thread t([] {
    {
      BroadcastChannel bc("destroyed-early");
      bc.on_message([](MessageEvent&) {});
    }
    (void)EventLoop::current().run(RunMode::kNoWait);
  });
  t.join();
  std::exit(0);
}

TEST_F(BroadcastChannelTest, DestroyingAnInstanceBeforeItsLoopDispatchedItIsSafe) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(destroy_instance_before_its_first_dispatch(), ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace weave
