// Pins down weave::MessageChannel / weave::MessagePort (channel/message_port.h):
// delivery (FIFO, exactly once, also across a port's move between threads),
// clone and transfer semantics, the DataCloneError cases, close, ref/unref and
// handler behaviour. Every test ends with its threads joined and the live port
// count back at its baseline.
//
// Loops run on std::threads the test joins (each thread has its own
// EventLoop), never on the main thread, whose loop would outlive the test.
#include "channel/message_port.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "atomics/atomics.h"
#include "atomics/shared_array_buffer.h"
#include "atomics/shared_view.h"
#include "channel/array_buffer.h"
#include "channel/codec.h"
#include "channel/status.h"
#include "channel/value.h"
#include "loop/event_loop.h"
#include "tests/channel/port_test_util.h"
#include "tests/test_util.h"

// A codec type that carries a buffer: posted with a transfer list.
struct Chunk {
  std::int64_t id = 0;
  weave::ArrayBuffer bytes;
};
WEAVE_CODEC(Chunk, id, bytes);

namespace weave {
namespace {

using ::weave::testing::CleanShutdownTest;
using ::weave::testing::StartBarrier;

using MessagePortTest = ::weave::testing::PortLeakCheckedTest;

using ::weave::testing::int_of;

std::vector<std::int64_t> iota(std::int64_t n) {
  std::vector<std::int64_t> out;
  out.reserve(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) out.push_back(i);
  return out;
}

using ::weave::testing::detached_buffer;

// A value nested `levels` arrays deep around an int.
Value nested(std::size_t levels) {
  Value v(1);
  for (std::size_t i = 0; i < levels; ++i) {
    Array a;
    a.push_back(std::move(v));
    v = Value(std::move(a));
  }
  return v;
}

using ::weave::testing::run_loop_on_this_thread;

// --- synchronous delivery ---------------------------------------------------------

TEST_F(MessagePortTest, PostThenReceiveMessageOnPortReturnsItThenNothing) {
  MessageChannel ch;
  EXPECT_FALSE(receive_message_on_port(ch.port2).has_value());

  ASSERT_TRUE(ch.port1.post_message("hello").ok());
  ASSERT_TRUE(ch.port1.post_message(42).ok());
  EXPECT_EQ(ch.port2.pending_approx(), 2u);

  auto first = receive_message_on_port(ch.port2);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->data, Value("hello"));
  EXPECT_TRUE(first->ports.empty());
  auto second = receive_message_on_port(ch.port2);
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->data, Value(42));
  EXPECT_FALSE(receive_message_on_port(ch.port2).has_value());
  EXPECT_EQ(ch.port2.pending_approx(), 0u);
  // Nothing went the other way; the other direction works the same.
  EXPECT_FALSE(receive_message_on_port(ch.port1).has_value());
  ASSERT_TRUE(ch.port2.post_message(7).ok());
  auto back = receive_message_on_port(ch.port1);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->data, Value(7));
  EXPECT_FALSE(receive_message_on_port(ch.port1).has_value());
}

TEST_F(MessagePortTest, ReceiveMessageOnPortOnAnEmptyPortReturnsNothing) {
  MessagePort empty;
  EXPECT_FALSE(empty.valid());
  EXPECT_FALSE(receive_message_on_port(empty).has_value());
  EXPECT_EQ(empty.pending_approx(), 0u);
}

// --- FIFO across threads ----------------------------------------------------------

// One producer thread, one consumer on its own loop: 10^6 messages arrive in
// post order, none lost, none duplicated; every plain write the producer made
// before a post is visible to the handler that receives it (TSan checks the
// happens-before edge through `written`).
TEST_F(MessagePortTest, FifoWithoutLossOrDuplicateOverAMillionMessagesBetweenThreads) {
  constexpr std::int64_t kCount = 1'000'000;
  MessageChannel ch;
  std::vector<std::int64_t> written(kCount, 0);  // plain memory, no atomics
  StartBarrier start(2);
  std::int64_t received = 0;
  std::int64_t out_of_order = 0;
  std::int64_t not_visible = 0;
  bool close_event = false;
  std::int64_t failed_posts = 0;

  std::thread consumer([&, p = std::move(ch.port2)]() mutable {
    p.on_message([&](MessageEvent& e) {
      const std::int64_t v = int_of(e.data);
      if (v != received) ++out_of_order;
      if (v >= 0 && v < kCount && written[static_cast<std::size_t>(v)] != 3 * v + 1) ++not_visible;
      if (++received == kCount) p.close();
    });
    p.on_close([&] { close_event = true; });
    start.arrive_and_wait();
    run_loop_on_this_thread();
  });
  std::thread producer([&, p = std::move(ch.port1)]() mutable {
    start.arrive_and_wait();
    for (std::int64_t i = 0; i < kCount; ++i) {
      written[static_cast<std::size_t>(i)] = 3 * i + 1;
      if (!p.post_message(i).ok()) ++failed_posts;
    }
    // Leaving destroys the port, which closes the channel: everything posted
    // is still delivered first.
  });
  producer.join();
  consumer.join();

  EXPECT_EQ(failed_posts, 0);
  EXPECT_EQ(received, kCount);
  EXPECT_EQ(out_of_order, 0);
  EXPECT_EQ(not_visible, 0);
  EXPECT_TRUE(close_event);
}

// A receiver that keeps finding messages lets the next batch build before it
// takes again (channel/internal/inbox.h). Here the second take of a burst is
// short, which starts such a wait: a message posted afterwards must still be
// delivered by later turns of a loop that never parks (kNoWait), and by one
// kOnce run, with nothing else posted. Order and count are checked throughout.
TEST_F(MessagePortTest, AMessageAfterABurstIsDeliveredWithoutAnotherPost) {
  std::vector<std::int64_t> got;
  std::int64_t no_wait_turns = 0;
  std::thread receiver([&] {
    MessageChannel ch;
    ch.port2.on_message([&](MessageEvent& e) { got.push_back(int_of(e.data)); });
    EventLoop& loop = EventLoop::current();
    std::int64_t next = 0;
    auto post = [&](std::int64_t n) {
      for (std::int64_t i = 0; i < n; ++i) ASSERT_TRUE(ch.port1.post_message(next++).ok());
    };
    auto turns_until = [&](std::size_t count) {
      std::int64_t turns = 0;
      for (; got.size() < count && turns < 1'000'000; ++turns) (void)loop.run(EventLoop::RunMode::kNoWait);
      return turns;
    };
    post(40);  // more than one take: the second one is short
    (void)turns_until(40);
    post(1);
    no_wait_turns = turns_until(41);
    post(1);
    (void)loop.run(EventLoop::RunMode::kOnce);
    ch.port2.on_message(nullptr);
  });
  receiver.join();
  EXPECT_EQ(got, iota(42));
  EXPECT_LT(no_wait_turns, 1'000'000);
}

// --- clone and transfer -----------------------------------------------------------

TEST_F(MessagePortTest, PostedValueIsACopyTheSenderCannotChangeAfterwards) {
  MessageChannel ch;
  const std::string long_text(100, 'x');  // beyond the inline string size
  ArrayBuffer bytes = ArrayBuffer::copy_of("abc");
  Value sent(Object{{"name", "alice"},
                    {"list", Array{1, 2, 3}},
                    {"text", long_text},
                    {"bytes", bytes},
                    {"nested", Object{{"k", "v"}}}});
  const Value expected(Object{{"name", "alice"},
                              {"list", Array{1, 2, 3}},
                              {"text", long_text},
                              {"bytes", ArrayBuffer::copy_of("abc")},
                              {"nested", Object{{"k", "v"}}}});
  ASSERT_TRUE(ch.port1.post_message(sent).ok());

  // Every kind of mutation the sender can make after the post.
  Object& o = *sent.if_object();
  o.set("name", "bob");
  o.get("list")->if_array()->at(0) = Value(100);
  o.get("list")->if_array()->push_back(Value(4));
  (*o.get("text")->if_string())[0] = 'y';
  bytes.bytes()[0] = std::byte{'z'};
  o.get("nested")->if_object()->set("k2", "added");
  o.set("extra", true);

  auto got = receive_message_on_port(ch.port2);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->data, expected) << got->data.to_string();
  ArrayBuffer* rb = got->data.if_object()->get("bytes")->if_array_buffer();
  ASSERT_NE(rb, nullptr);
  EXPECT_FALSE(rb->same_buffer(bytes));
  EXPECT_NE(rb->data(), bytes.data());
  EXPECT_FALSE(bytes.detached()) << "a buffer not in the transfer list is copied, not moved";
  // And the other way: the receiver's copy is its own.
  rb->bytes()[1] = std::byte{'Q'};
  EXPECT_EQ(bytes.to_string(), "zbc");
}

TEST_F(MessagePortTest, ABufferReachedTwiceArrivesAsOneBuffer) {
  MessageChannel ch;
  ArrayBuffer b = ArrayBuffer::copy_of("shared");
  ASSERT_TRUE(ch.port1.post_message(Value(Array{b, Object{{"again", b}}})).ok());
  auto got = receive_message_on_port(ch.port2);
  ASSERT_TRUE(got.has_value());
  const Array& a = *got->data.if_array();
  const ArrayBuffer* first = a[0].if_array_buffer();
  const ArrayBuffer* second = a[1].find("again")->if_array_buffer();
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  EXPECT_TRUE(first->same_buffer(*second));
  EXPECT_FALSE(first->same_buffer(b));
  EXPECT_EQ(first->to_string(), "shared");
}

// Transferred on another thread's loop: the receiver holds the very same bytes
// (zero copy), and every handle and view at the sender is detached.
TEST_F(MessagePortTest, TransferredBufferArrivesWithoutCopyAndDetachesTheSender) {
  MessageChannel ch;
  ArrayBuffer buf = ArrayBuffer::copy_of("payload bytes");
  ArrayBuffer alias = buf;  // another handle to the same buffer
  const std::byte* old_data = buf.data();
  auto view = TypedArray::create(ViewKind::kUint8, buf, 2, 4);
  ASSERT_TRUE(view.ok());

  const std::byte* received_data = nullptr;
  const std::byte* received_view_data = nullptr;
  std::size_t received_length = 0;
  std::string received_text;
  bool view_shares_buffer = false;
  std::thread receiver([&, p = std::move(ch.port2)]() mutable {
    p.on_message([&](MessageEvent& e) {
      Object* o = e.data.if_object();
      Value* bv = o ? o->get("buf") : nullptr;
      Value* vv = o ? o->get("view") : nullptr;
      ArrayBuffer* b = bv ? bv->if_array_buffer() : nullptr;
      TypedArray* v = vv ? vv->if_typed_array() : nullptr;
      if (b && v) {
        received_data = b->data();
        received_length = b->byte_length();
        received_text = b->to_string();
        view_shares_buffer = v->buffer().same_buffer(*b);
        auto s = v->span<std::uint8_t>();
        if (s.ok()) received_view_data = reinterpret_cast<const std::byte*>(s->data());
      }
      p.close();
    });
    run_loop_on_this_thread();
  });
  Status s =
      ch.port1.post_message(Value(Object{{"buf", buf}, {"view", *view}}), Transfer().add(buf));
  EXPECT_TRUE(s.ok()) << s.to_string();
  // Detached at the sender, through every handle and view.
  EXPECT_TRUE(buf.detached());
  EXPECT_TRUE(alias.detached());
  EXPECT_EQ(buf.byte_length(), 0u);
  EXPECT_TRUE(buf.bytes().empty());
  EXPECT_EQ(buf.checked_bytes().code(), ErrorCode::kDetached);
  EXPECT_EQ(view->length(), 0u);
  receiver.join();

  EXPECT_EQ(received_data, old_data) << "the transferred buffer was copied";
  EXPECT_EQ(received_length, 13u);
  EXPECT_EQ(received_text, "payload bytes");
  EXPECT_TRUE(view_shares_buffer);
  EXPECT_EQ(received_view_data, old_data + 2);
}

// --- SharedArrayBuffer: shared, never copied ------------------------------------------

// Posted to another thread, at the top level and nested in arrays and objects,
// a SharedArrayBuffer arrives as the same memory: what the sender wrote before
// the post, the receiver reads; what the receiver writes, the sender reads.
TEST_F(MessagePortTest, SharedArrayBufferArrivesAsTheSameMemoryAndWritesAreSeenBothWays) {
  MessageChannel ch;
  const SharedArrayBuffer sab(4 * sizeof(std::int32_t));
  const Int32View view(sab);
  atomics::store(view, 0, 7);  // before the post: the receiver must see it

  std::vector<const std::byte*> received;  // data() of every handle that arrived
  std::int32_t seen_before = -1;
  std::thread receiver([&, p = std::move(ch.port2)]() mutable {
    p.on_message([&](MessageEvent& e) {
      const SharedArrayBuffer* top = e.data.find("top")->if_shared_array_buffer();
      const SharedArrayBuffer* in_array = e.data.find("list")->at(1)->if_shared_array_buffer();
      const SharedArrayBuffer* in_object =
          e.data.find("list")->at(2)->find("deep")->at(0)->if_shared_array_buffer();
      for (const SharedArrayBuffer* b : {top, in_array, in_object}) {
        received.push_back(b ? b->data() : nullptr);
      }
      if (top && in_array && in_object) {
        seen_before = atomics::load(Int32View(*top), 0);
        // Through each received handle: the sender reads all three.
        atomics::store(Int32View(*top), 1, 11);
        atomics::store(Int32View(*in_array), 2, 22);
        atomics::store(Int32View(*in_object), 3, 33);
      }
      p.close();
    });
    run_loop_on_this_thread();
  });
  const Value message(Object{{"top", sab}, {"list", Array{1, sab, Object{{"deep", Array{sab}}}}}});
  ASSERT_TRUE(ch.port1.post_message(message).ok());
  receiver.join();  // orders the receiver's writes before the reads below

  ASSERT_EQ(received.size(), 3u);
  for (const std::byte* d : received) EXPECT_EQ(d, sab.data()) << "a SharedArrayBuffer was copied";
  EXPECT_EQ(seen_before, 7);
  EXPECT_EQ(atomics::load(view, 1), 11);
  EXPECT_EQ(atomics::load(view, 2), 22);
  EXPECT_EQ(atomics::load(view, 3), 33);
}

// Alone (the scalar fast path, by move and by copy) and beside a transferred
// buffer: shared each time, while the listed ArrayBuffer moves.
TEST_F(MessagePortTest, SharedArrayBufferIsSharedOnEveryPostPath) {
  MessageChannel ch;
  const SharedArrayBuffer sab(8);
  ArrayBuffer moved = ArrayBuffer::copy_of("moved");
  const Value copy_me(sab);
  ASSERT_TRUE(ch.port1.post_message(Value(sab)).ok());
  ASSERT_TRUE(ch.port1.post_message(copy_me).ok());
  ASSERT_TRUE(ch.port1.post_message(Value(Array{sab, moved}), Transfer().add(moved)).ok());
  EXPECT_TRUE(moved.detached());
  EXPECT_EQ(sab.use_count_approx(), 5) << "sab, copy_me and one handle per queued message";

  for (int i = 0; i < 3; ++i) {
    auto e = receive_message_on_port(ch.port2);
    ASSERT_TRUE(e.has_value());
    const Value& v = i < 2 ? e->data : *e->data.at(0);
    ASSERT_TRUE(v.is_shared_array_buffer()) << e->data.to_string();
    EXPECT_EQ(*v.if_shared_array_buffer(), sab);
    if (i == 2) {
      EXPECT_EQ(e->data.at(1)->if_array_buffer()->to_string(), "moved");
    }
  }
  EXPECT_EQ(sab.use_count_approx(), 2) << "delivered messages released their handles";
}

// --- DataCloneError: nothing sent, nothing detached, ports kept ---------------------

// Every failing case below posts with a transfer list that also holds a good
// buffer (`witness`) and a good port (`side.port1`), listed before the bad
// entry, to prove that a failed post detaches and takes nothing.
class CloneErrorTest : public MessagePortTest {
 protected:
  void SetUp() override {
    MessagePortTest::SetUp();  // counts ports before `side` exists
    side_.emplace();
  }
  void TearDown() override {
    side_.reset();
    MessagePortTest::TearDown();
  }

  ArrayBuffer witness = ArrayBuffer::copy_of("witness");
  const std::byte* witness_data = witness.data();

  Transfer transfer_with_witnesses() {
    Transfer t;
    t.add(witness);
    t.add(std::move(side_->port1));
    return t;
  }

  // Posts through `sender`, expects kDataCloneError, and proves that
  // `receiver` got nothing, the witness buffer is intact, the transfer list
  // still owns its ports (t.ports[0] is the side port, still usable), and
  // `sender` still works.
  void expect_rejected(MessagePort& sender, MessagePort& receiver, const Value& value,
                       Transfer& t) {
    Status s = sender.post_message(value, std::move(t));
    EXPECT_FALSE(s.ok());
    EXPECT_EQ(s.code(), ErrorCode::kDataCloneError) << s.to_string();
    EXPECT_FALSE(s.message().empty());

    EXPECT_EQ(receiver.pending_approx(), 0u);
    EXPECT_FALSE(receive_message_on_port(receiver).has_value()) << "a failed post sent something";

    EXPECT_FALSE(witness.detached()) << "a failed post detached a buffer";
    EXPECT_EQ(witness.data(), witness_data);
    EXPECT_EQ(witness.to_string(), "witness");

    ASSERT_FALSE(t.ports.empty()) << "a failed post took the transfer list's ports";
    MessagePort& kept = t.ports[0];
    EXPECT_TRUE(kept.valid());
    EXPECT_FALSE(kept.closed());
    EXPECT_TRUE(kept.post_message("still mine").ok());
    auto via_side = receive_message_on_port(side_->port2);
    ASSERT_TRUE(via_side.has_value());
    EXPECT_EQ(via_side->data, Value("still mine"));

    // The channel still works, and what comes next is the first thing seen.
    EXPECT_TRUE(sender.post_message("after").ok());
    auto next = receive_message_on_port(receiver);
    ASSERT_TRUE(next.has_value());
    EXPECT_EQ(next->data, Value("after"));
  }

 private:
  std::optional<MessageChannel> side_;
};

TEST_F(CloneErrorTest, BufferListedTwiceIsRejected) {
  MessageChannel ch;
  ArrayBuffer twice = ArrayBuffer::copy_of("twice");
  Transfer t = transfer_with_witnesses();
  t.add(twice).add(twice);
  expect_rejected(ch.port1, ch.port2, Value(twice), t);
  EXPECT_FALSE(twice.detached());
  EXPECT_EQ(t.ports.size(), 1u);
  EXPECT_EQ(t.buffers.size(), 3u);
}

// Node: DataCloneError, "SharedArrayBuffer ... is not transferable".
TEST_F(CloneErrorTest, SharedArrayBufferInTheTransferListIsRejected) {
  MessageChannel ch;
  const SharedArrayBuffer sab(8);
  const Value value(Object{{"s", sab}, {"w", witness}});
  Transfer t = transfer_with_witnesses();
  t.add(sab);
  const Status s = ch.port1.post_message(value, std::move(t));
  EXPECT_EQ(s.code(), ErrorCode::kDataCloneError);
  EXPECT_NE(s.message().find("SharedArrayBuffer"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("not transferable"), std::string::npos) << s.message();
  expect_rejected(ch.port1, ch.port2, value, t);  // and nothing was sent or detached
  EXPECT_EQ(t.buffers.size(), 1u);
  EXPECT_EQ(t.shared_buffers.size(), 1u);
  EXPECT_EQ(sab.use_count_approx(), 3) << "sab, the value and the transfer list; nothing queued";
}

TEST_F(CloneErrorTest, DetachedBufferInTheTransferListIsRejected) {
  MessageChannel ch;
  Transfer t = transfer_with_witnesses();
  t.add(detached_buffer());
  expect_rejected(ch.port1, ch.port2, Value(Object{{"w", witness}}), t);
}

TEST_F(CloneErrorTest, DetachedBufferInTheValueIsRejected) {
  MessageChannel ch;
  Transfer t = transfer_with_witnesses();
  expect_rejected(ch.port1, ch.port2, Value(Object{{"w", witness}, {"gone", detached_buffer()}}),
                  t);
}

TEST_F(CloneErrorTest, DetachedBufferInTheValueIsRejectedWithoutATransferList) {
  MessageChannel ch;
  Status s = ch.port1.post_message(Value(Array{1, detached_buffer()}));
  EXPECT_EQ(s.code(), ErrorCode::kDataCloneError) << s.to_string();
  EXPECT_FALSE(receive_message_on_port(ch.port2).has_value());
}

TEST_F(CloneErrorTest, EmptyPortInTheTransferListIsRejected) {
  MessageChannel ch;
  Transfer t = transfer_with_witnesses();
  t.add(MessagePort());
  expect_rejected(ch.port1, ch.port2, Value("v"), t);
  EXPECT_EQ(t.ports.size(), 2u);
}

TEST_F(CloneErrorTest, PostingAPortThroughItselfIsRejected) {
  MessageChannel ch;
  Transfer t = transfer_with_witnesses();
  t.add(std::move(ch.port1));
  MessagePort& self = t.ports[1];  // the sender is inside its own transfer list
  expect_rejected(self, ch.port2, Value("v"), t);
  ASSERT_EQ(t.ports.size(), 2u);
  EXPECT_TRUE(t.ports[1].valid());
  EXPECT_FALSE(t.ports[1].closed());
}

TEST_F(CloneErrorTest, PostingTheEntangledPeerIsRejected) {
  MessageChannel ch;
  Transfer t = transfer_with_witnesses();
  t.add(std::move(ch.port2));
  MessagePort& peer = t.ports[1];  // the receiver is in the sender's transfer list
  expect_rejected(ch.port1, peer, Value("v"), t);
  ASSERT_EQ(t.ports.size(), 2u);
  EXPECT_FALSE(t.ports[1].closed());
}

TEST_F(CloneErrorTest, PortClosedHereInTheTransferListIsRejected) {
  MessageChannel ch;
  MessageChannel other;
  other.port1.close();
  Transfer t = transfer_with_witnesses();
  t.add(std::move(other.port1));
  expect_rejected(ch.port1, ch.port2, Value("v"), t);
  ASSERT_EQ(t.ports.size(), 2u);
  EXPECT_TRUE(t.ports[1].valid());
}

TEST_F(CloneErrorTest, PortWhosePeerClosedInTheTransferListIsRejected) {
  MessageChannel ch;
  MessageChannel other;
  other.port2.close();
  ASSERT_TRUE(other.port1.closed());
  Transfer t = transfer_with_witnesses();
  t.add(std::move(other.port1));
  expect_rejected(ch.port1, ch.port2, Value("v"), t);
  ASSERT_EQ(t.ports.size(), 2u);
  EXPECT_TRUE(t.ports[1].valid());
}

TEST_F(CloneErrorTest, NestingDeeperThanTheLimitIsRejected) {
  MessageChannel ch;
  Transfer t = transfer_with_witnesses();
  expect_rejected(ch.port1, ch.port2, nested(kMaxCloneDepth + 1), t);
}

TEST_F(MessagePortTest, NestingExactlyToTheLimitIsAccepted) {
  MessageChannel ch;
  ASSERT_TRUE(ch.port1.post_message(nested(kMaxCloneDepth)).ok());
  auto got = receive_message_on_port(ch.port2);
  ASSERT_TRUE(got.has_value());
  const Value* v = &got->data;
  std::size_t depth = 0;
  while (v->is_array()) {
    v = v->at(0);
    ASSERT_NE(v, nullptr);
    ++depth;
  }
  EXPECT_EQ(depth, kMaxCloneDepth);
  EXPECT_EQ(*v, Value(1));
}

// --- ports in messages ------------------------------------------------------------

TEST_F(MessagePortTest, TransferredPortArrivesOpenAndEntangledWithItsPeer) {
  MessageChannel ch;
  MessageChannel inner;
  Status s = ch.port1.post_message("take this", Transfer().add(std::move(inner.port1)));
  ASSERT_TRUE(s.ok()) << s.to_string();
  auto got = receive_message_on_port(ch.port2);
  ASSERT_TRUE(got.has_value());
  ASSERT_EQ(got->ports.size(), 1u);
  MessagePort& moved = got->ports[0];
  EXPECT_TRUE(moved.valid());
  EXPECT_FALSE(moved.closed()) << "transferring a port closed it";
  EXPECT_FALSE(inner.port2.closed()) << "transferring a port closed its peer";
  EXPECT_TRUE(moved.post_message("through the moved port").ok());
  auto via = receive_message_on_port(inner.port2);
  ASSERT_TRUE(via.has_value());
  EXPECT_EQ(via->data, Value("through the moved port"));
  EXPECT_TRUE(inner.port2.post_message("and back").ok());
  auto back = receive_message_on_port(moved);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->data, Value("and back"));
}

TEST_F(MessagePortTest, TransferredPortKeepsTheMessagesQueuedForIt) {
  MessageChannel ch;
  MessageChannel inner;
  ASSERT_TRUE(inner.port1.post_message(1).ok());
  ASSERT_TRUE(inner.port1.post_message(2).ok());
  ASSERT_TRUE(ch.port1.post_message(Value(), Transfer().add(std::move(inner.port2))).ok());
  ASSERT_TRUE(inner.port1.post_message(3).ok());
  auto got = receive_message_on_port(ch.port2);
  ASSERT_TRUE(got.has_value());
  ASSERT_EQ(got->ports.size(), 1u);
  std::vector<std::int64_t> seen;
  while (auto m = receive_message_on_port(got->ports[0])) seen.push_back(int_of(m->data));
  EXPECT_EQ(seen, (std::vector<std::int64_t>{1, 2, 3}));
}

// A port that arrives in MessageEvent::ports on another thread's loop is
// usable there: the handler answers through it.
TEST_F(MessagePortTest, PortReceivedInAMessageEventCanPostBack) {
  MessageChannel ch;
  MessageChannel reply;
  Status reply_status(ErrorCode::kClosed, "not run");
  std::size_t ports_seen = 0;
  std::thread responder([&, p = std::move(ch.port2)]() mutable {
    p.on_message([&](MessageEvent& e) {
      ports_seen = e.ports.size();
      if (!e.ports.empty()) {
        MessagePort back = std::move(e.ports[0]);
        reply_status = back.post_message(Value(Object{{"pong", int_of(*e.data.find("ping"))}}));
      }
      p.close();
    });
    run_loop_on_this_thread();
  });
  Status s =
      ch.port1.post_message(Value(Object{{"ping", 41}}), Transfer().add(std::move(reply.port1)));
  EXPECT_TRUE(s.ok()) << s.to_string();
  responder.join();

  EXPECT_EQ(ports_seen, 1u);
  EXPECT_TRUE(reply_status.ok()) << reply_status.to_string();
  auto answer = receive_message_on_port(reply.port2);
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->data, Value(Object{{"pong", 41}}));
  // The responder dropped the port when its handler returned: that closed it.
  EXPECT_TRUE(reply.port2.closed());
}

// Thread A posts 0..K-1 on port1 while port2 moves: thread B receives the
// first half on its loop, then posts port2 (from inside port2's own handler)
// over another channel to thread C, which receives the rest on its loop.
// Overall every message arrives exactly once, in order.
TEST_F(MessagePortTest, PortMovedToAThirdThreadMidStreamDeliversEveryMessageOnceInOrder) {
  constexpr std::int64_t kK = 20'000;
  MessageChannel ch;
  MessageChannel carrier;
  StartBarrier start(3);
  std::atomic<bool> done{false};
  std::vector<std::int64_t> got_b;
  std::vector<std::int64_t> got_c;
  std::int64_t failed_posts = 0;
  Status hand_over(ErrorCode::kClosed, "not posted");
  std::size_t ports_in_carrier_message = 0;
  bool c_close_event = false;
  bool arrived_open = false;

  std::thread a([&, p = std::move(ch.port1)]() mutable {
    start.arrive_and_wait();
    for (std::int64_t i = 0; i < kK; ++i) {
      if (!p.post_message(i).ok()) ++failed_posts;
    }
    // Stay open until C is done, so that the only close is C's.
    done.wait(false);
  });
  std::thread b([&, p = std::move(ch.port2), out = std::move(carrier.port1)]() mutable {
    p.on_message([&](MessageEvent& e) {
      got_b.push_back(int_of(e.data));
      if (got_b.size() == static_cast<std::size_t>(kK / 2)) {
        hand_over = out.post_message("yours", Transfer().add(std::move(p)));
      }
    });
    start.arrive_and_wait();
    run_loop_on_this_thread();
  });
  std::thread c([&, in = std::move(carrier.port2)]() mutable {
    MessagePort p;
    auto finish = [&] {
      done.store(true);
      done.notify_all();
    };
    in.on_message([&](MessageEvent& e) {
      ports_in_carrier_message = e.ports.size();
      in.close();
      if (e.ports.empty()) {
        finish();
        return;
      }
      p = std::move(e.ports[0]);
      arrived_open = !p.closed();  // only C closes it
      p.on_message([&](MessageEvent& m) {
        got_c.push_back(int_of(m.data));
        // got_b is complete: B wrote it before posting the carrier message.
        if (got_b.size() + got_c.size() == static_cast<std::size_t>(kK)) p.close();
      });
      p.on_close([&] {
        c_close_event = true;
        finish();
      });
    });
    start.arrive_and_wait();
    run_loop_on_this_thread();
  });
  a.join();
  b.join();
  c.join();

  EXPECT_EQ(failed_posts, 0);
  EXPECT_TRUE(hand_over.ok()) << hand_over.to_string();
  EXPECT_EQ(ports_in_carrier_message, 1u);
  EXPECT_TRUE(arrived_open);
  EXPECT_TRUE(c_close_event);
  EXPECT_EQ(got_b.size(), static_cast<std::size_t>(kK / 2));
  std::vector<std::int64_t> all = got_b;
  all.insert(all.end(), got_c.begin(), got_c.end());
  EXPECT_EQ(all, iota(kK));
}

// A port whose handler was set on thread B (so B's loop has it scheduled for
// a first dispatch) and that B then posts to thread C before B's loop ran:
// C's loop must deliver its queued messages. Each step is synchronous, so one
// turn of C's loop must be enough.
TEST_F(MessagePortTest, PortMovedBeforeItsOldLoopDispatchedItDeliversOnTheNewLoop) {
  MessageChannel ch;
  MessageChannel carrier;
  ASSERT_TRUE(ch.port1.post_message(1).ok());
  ASSERT_TRUE(ch.port1.post_message(2).ok());
  Status hand_over(ErrorCode::kClosed, "not posted");
  std::thread b([&, p = std::move(ch.port2), out = std::move(carrier.port1)]() mutable {
    p.on_message([](MessageEvent&) {});
    hand_over = out.post_message(Value(), Transfer().add(std::move(p)));
  });
  b.join();
  EXPECT_TRUE(hand_over.ok()) << hand_over.to_string();

  std::vector<std::int64_t> got;
  bool arrived_closed = true;
  std::thread c([&, in = std::move(carrier.port2)]() mutable {
    auto e = receive_message_on_port(in);
    if (!e || e->ports.size() != 1) return;
    MessagePort p = std::move(e->ports[0]);
    arrived_closed = p.closed();
    p.on_message([&](MessageEvent& m) { got.push_back(int_of(m.data)); });
    for (int turn = 0; turn < 3 && got.size() < 2; ++turn) {
      (void)EventLoop::current().run(EventLoop::RunMode::kNoWait);
    }
    p.close();
  });
  c.join();
  EXPECT_FALSE(arrived_closed);
  EXPECT_EQ(got, (std::vector<std::int64_t>{1, 2}));
}

// --- close ------------------------------------------------------------------------

// The peer posts, then closes, while the receiver's loop runs on another
// thread: every message comes first, then exactly one close event.
TEST_F(MessagePortTest, QueuedMessagesAreDeliveredBeforeThePeersCloseEvent) {
  constexpr std::int64_t kCount = 1000;
  MessageChannel ch;
  StartBarrier start(2);
  std::vector<std::int64_t> events;  // message values; -1 marks the close event
  std::thread receiver([&, p = std::move(ch.port2)]() mutable {
    p.on_message([&](MessageEvent& e) { events.push_back(int_of(e.data)); });
    p.on_close([&] { events.push_back(-1); });
    start.arrive_and_wait();
    run_loop_on_this_thread();
  });
  std::thread sender([&, p = std::move(ch.port1)]() mutable {
    start.arrive_and_wait();
    for (std::int64_t i = 0; i < kCount; ++i) EXPECT_TRUE(p.post_message(i).ok());
    p.close();
  });
  sender.join();
  receiver.join();

  std::vector<std::int64_t> expected = iota(kCount);
  expected.push_back(-1);
  EXPECT_EQ(events, expected);
}

TEST_F(MessagePortTest, PostAfterCloseReturnsClosedOnBothSidesWithoutThrowing) {
  MessageChannel ch;
  ch.port1.close();
  EXPECT_NO_THROW(ch.port1.close());  // idempotent
  EXPECT_TRUE(ch.port1.closed());
  EXPECT_TRUE(ch.port2.closed());
  Status here(ErrorCode::kOk, "");
  Status there(ErrorCode::kOk, "");
  EXPECT_NO_THROW(here = ch.port1.post_message(1));
  EXPECT_NO_THROW(there = ch.port2.post_message(2));
  EXPECT_FALSE(here.ok());
  EXPECT_EQ(here.code(), ErrorCode::kClosed) << here.to_string();
  EXPECT_FALSE(there.ok());
  EXPECT_EQ(there.code(), ErrorCode::kClosed) << there.to_string();
  EXPECT_EQ(ch.port2.post_message(Value(Object{{"big", Array{1, 2, 3}}})).code(),
            ErrorCode::kClosed);
  EXPECT_FALSE(receive_message_on_port(ch.port1).has_value());
  EXPECT_FALSE(receive_message_on_port(ch.port2).has_value());
}

// A moved-in value goes straight into the queue: it arrives whole, and a
// refused post leaves it with the caller, untouched.
TEST_F(MessagePortTest, MovedInValueArrivesWholeAndARefusedPostLeavesItWithTheCaller) {
  const std::string text = "longer than any small-string buffer, so it owns heap memory";
  MessageChannel ch;
  Value sent(text);
  ASSERT_TRUE(ch.port1.post_message(std::move(sent)).ok());
  Value copied(text);
  ASSERT_TRUE(ch.port1.post_message(copied).ok());
  EXPECT_EQ(copied, Value(text));  // posted by copy: the caller keeps it
  for (int i = 0; i < 2; ++i) {
    auto got = receive_message_on_port(ch.port2);
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->data, Value(text));
  }

  ch.port2.close();  // the receiver goes: the next posts are refused
  Value refused(text);
  EXPECT_EQ(ch.port1.post_message(std::move(refused)).code(), ErrorCode::kClosed);
  EXPECT_EQ(refused, Value(text));
  Value refused_int(7);
  EXPECT_EQ(ch.port1.post_message(std::move(refused_int)).code(), ErrorCode::kClosed);
  EXPECT_EQ(refused_int, Value(7));
}

TEST_F(MessagePortTest, PostOnAnEmptyPortReturnsClosed) {
  MessagePort empty;
  EXPECT_TRUE(empty.closed());
  EXPECT_EQ(empty.post_message(1).code(), ErrorCode::kClosed);
  EXPECT_EQ(empty.post_message(1, Transfer()).code(), ErrorCode::kClosed);
  EXPECT_NO_THROW(empty.close());
}

TEST_F(MessagePortTest, MessagesAcceptedBeforeCloseStayReceivable) {
  MessageChannel ch;
  ASSERT_TRUE(ch.port1.post_message(1).ok());
  ASSERT_TRUE(ch.port1.post_message(2).ok());
  ch.port2.close();  // the receiver closes: what was accepted is still its to take
  EXPECT_EQ(ch.port1.post_message(3).code(), ErrorCode::kClosed);
  std::vector<std::int64_t> seen;
  while (auto m = receive_message_on_port(ch.port2)) seen.push_back(int_of(m->data));
  EXPECT_EQ(seen, (std::vector<std::int64_t>{1, 2}));
}

// The receiver closes from its handler after `close_after` messages while a
// producer thread posts as fast as it can. Each post either returned ok and
// was delivered before the close event, or returned kClosed: received equals
// the number of ok posts. The close is triggered by a message count, not time.
class CloseRaceTest : public MessagePortTest, public ::testing::WithParamInterface<std::int64_t> {};

TEST_P(CloseRaceTest, EveryAcceptedPostIsDeliveredBeforeTheCloseEvent) {
  const std::int64_t close_after = GetParam();
  MessageChannel ch;
  StartBarrier start(2);
  std::int64_t ok_posts = 0;
  Status last(ErrorCode::kOk, "");
  bool threw = false;
  std::int64_t received = 0;
  std::int64_t out_of_order = 0;
  std::int64_t received_at_close_event = -1;
  std::thread producer([&, p = std::move(ch.port1)]() mutable {
    start.arrive_and_wait();
    try {
      for (;;) {
        last = p.post_message(ok_posts);
        if (!last.ok()) break;
        ++ok_posts;
      }
    } catch (...) {
      threw = true;
    }
  });
  std::thread consumer([&, p = std::move(ch.port2)]() mutable {
    p.on_message([&](MessageEvent& e) {
      if (int_of(e.data) != received) ++out_of_order;
      if (++received == close_after) p.close();
    });
    p.on_close([&] { received_at_close_event = received; });
    start.arrive_and_wait();
    run_loop_on_this_thread();
  });
  producer.join();
  consumer.join();

  EXPECT_FALSE(threw);
  EXPECT_EQ(last.code(), ErrorCode::kClosed) << last.to_string();
  EXPECT_GE(ok_posts, close_after);
  EXPECT_EQ(received, ok_posts) << "an accepted message was lost or an extra one delivered";
  EXPECT_EQ(received_at_close_event, ok_posts)
      << "the close event came before the last accepted message";
  EXPECT_EQ(out_of_order, 0);
}

INSTANTIATE_TEST_SUITE_P(CloseAfter, CloseRaceTest, ::testing::Values(1, 100, 10'000));

TEST_F(MessagePortTest, DestroyingAPortClosesThePeer) {
  MessageChannel ch;
  {
    MessagePort gone = std::move(ch.port1);
    EXPECT_FALSE(ch.port2.closed());
  }
  EXPECT_TRUE(ch.port2.closed());
  EXPECT_EQ(ch.port2.post_message(1).code(), ErrorCode::kClosed);
}

// The peer's thread posts a last message and destroys its port while the
// receiver's loop runs: the message, then the close event, then run() returns.
TEST_F(MessagePortTest, DestroyingAPortRunsThePeersCloseHandler) {
  MessageChannel ch;
  StartBarrier start(2);
  std::vector<std::int64_t> events;  // -1 marks the close event
  std::thread receiver([&, p = std::move(ch.port2)]() mutable {
    p.on_message([&](MessageEvent& e) { events.push_back(int_of(e.data)); });
    p.on_close([&] { events.push_back(-1); });
    start.arrive_and_wait();
    run_loop_on_this_thread();
  });
  std::thread sender([&, p = std::move(ch.port1)]() mutable {
    start.arrive_and_wait();
    EXPECT_TRUE(p.post_message(5).ok());
    MessagePort dropped = std::move(p);
  });
  sender.join();
  receiver.join();
  EXPECT_EQ(events, (std::vector<std::int64_t>{5, -1}));
}

// "A port destroyed with undelivered messages drops them": a port that
// travelled inside one of them is dropped with it, so its peer sees the
// channel closed and both endpoints are freed, while the sender is still open.
TEST_F(MessagePortTest, DestroyingAPortDropsItsUndeliveredMessagesAndThePortsInThem) {
  MessageChannel ch;
  MessageChannel inner;
  const std::size_t before = live_port_count_approx();
  ASSERT_TRUE(ch.port1.post_message("carrying", Transfer().add(std::move(inner.port1))).ok());
  { MessagePort dropped = std::move(ch.port2); }  // never received it
  EXPECT_TRUE(inner.port2.closed()) << "the port inside a dropped message is still open";
  EXPECT_EQ(inner.port2.post_message(1).code(), ErrorCode::kClosed);
  EXPECT_EQ(live_port_count_approx(), before - 2)
      << "the destroyed port, or the port inside its undelivered message, is still alive";
}

TEST_F(MessagePortTest, MoveAssigningOverAPortClosesTheChannelItHeld) {
  MessageChannel first;
  MessageChannel second;
  first.port1 = std::move(second.port1);
  EXPECT_TRUE(first.port2.closed());
  EXPECT_FALSE(second.port2.closed());
  ASSERT_TRUE(first.port1.post_message("via the new channel").ok());
  auto got = receive_message_on_port(second.port2);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->data, Value("via the new channel"));
}

// --- ref / unref ------------------------------------------------------------------

TEST_F(MessagePortTest, UnrefdPortWithAHandlerDoesNotKeepTheLoopAlive) {
  MessageChannel ch;
  bool run_returned = false;
  bool alive_after_ref = false;
  bool has_ref_after_unref = true;
  std::thread t([&, p = std::move(ch.port2)]() mutable {
    p.on_message([](MessageEvent&) {});
    p.unref();
    has_ref_after_unref = p.has_ref();
    (void)EventLoop::current().run();  // nothing referenced: returns at once
    run_returned = true;
    p.ref();
    alive_after_ref = EventLoop::current().run(EventLoop::RunMode::kNoWait);
    p.close();
    (void)EventLoop::current().run();  // the close event unreferences it
  });
  t.join();
  EXPECT_FALSE(has_ref_after_unref);
  EXPECT_TRUE(run_returned);
  EXPECT_TRUE(alive_after_ref);
}

// run() returns only after the peer closed: the close flag is set before
// close() and must be seen once run() is back.
TEST_F(MessagePortTest, RefdPortWithAHandlerKeepsTheLoopAliveUntilClosed) {
  MessageChannel ch;
  std::atomic<bool> first_message{false};
  std::atomic<bool> peer_closing{false};
  bool alive_before_run = false;
  bool closed_when_run_returned = false;
  bool close_event = false;
  std::thread t([&, p = std::move(ch.port2)]() mutable {
    p.on_message([&](MessageEvent&) {
      first_message.store(true);
      first_message.notify_all();
    });
    p.on_close([&] { close_event = true; });
    EXPECT_TRUE(p.has_ref());
    alive_before_run = EventLoop::current().run(EventLoop::RunMode::kNoWait);
    (void)EventLoop::current().run();
    closed_when_run_returned = peer_closing.load();
  });
  EXPECT_TRUE(ch.port1.post_message("are you there").ok());
  first_message.wait(false);  // the loop is running and has the port
  peer_closing.store(true);
  ch.port1.close();
  t.join();
  EXPECT_TRUE(alive_before_run);
  EXPECT_TRUE(closed_when_run_returned) << "run() returned while a referenced port was open";
  EXPECT_TRUE(close_event);
}

// --- handlers ---------------------------------------------------------------------

TEST_F(MessagePortTest, SettingANullHandlerStopsDeliveryAndKeepsMessagesForReceive) {
  std::vector<std::int64_t> handled;
  std::vector<std::int64_t> received;
  bool alive_without_handler = true;
  std::thread t([&] {
    MessageChannel ch;
    ASSERT_TRUE(ch.port1.post_message(0).ok());
    ch.port2.on_message([&](MessageEvent& e) { handled.push_back(int_of(e.data)); });
    (void)EventLoop::current().run(EventLoop::RunMode::kNoWait);  // delivers 0
    ch.port2.on_message(nullptr);
    ASSERT_TRUE(ch.port1.post_message(1).ok());
    ASSERT_TRUE(ch.port1.post_message(2).ok());
    // No handler: the port no longer keeps the loop alive, and delivers nothing.
    alive_without_handler = EventLoop::current().run();
    while (auto m = receive_message_on_port(ch.port2)) received.push_back(int_of(m->data));
  });
  t.join();
  EXPECT_EQ(handled, (std::vector<std::int64_t>{0}));
  EXPECT_FALSE(alive_without_handler);
  EXPECT_EQ(received, (std::vector<std::int64_t>{1, 2}));
}

TEST_F(MessagePortTest, HandlerThatThrowsLeavesRunAndLaterMessagesComeOnTheNextRun) {
  std::vector<std::int64_t> handled;
  bool first_run_threw = false;
  std::string what;
  bool second_run_threw = false;
  std::thread t([&] {
    MessageChannel ch;
    for (int i = 0; i < 4; ++i) ASSERT_TRUE(ch.port1.post_message(i).ok());
    ch.port2.on_message([&](MessageEvent& e) {
      const std::int64_t v = int_of(e.data);
      handled.push_back(v);
      if (v == 1) throw std::runtime_error("handler failed on 1");
      if (v == 3) ch.port2.close();
    });
    try {
      (void)EventLoop::current().run();
    } catch (const std::runtime_error& e) {
      first_run_threw = true;
      what = e.what();
    }
    try {
      (void)EventLoop::current().run();  // 2 and 3, then the close ends it
    } catch (...) {
      second_run_threw = true;
    }
  });
  t.join();
  EXPECT_TRUE(first_run_threw);
  EXPECT_EQ(what, "handler failed on 1");
  EXPECT_FALSE(second_run_threw);
  EXPECT_EQ(handled, (std::vector<std::int64_t>{0, 1, 2, 3}))
      << "a message was lost or delivered twice around the throw";
}

TEST_F(MessagePortTest, HandlerCanReplaceItselfAndTheNextMessageGoesToTheNewOne) {
  std::vector<std::string> handled;
  std::thread t([&] {
    MessageChannel ch;
    for (int i = 0; i < 4; ++i) ASSERT_TRUE(ch.port1.post_message(i).ok());
    ch.port2.on_message([&](MessageEvent& e) {
      handled.push_back("A" + std::to_string(int_of(e.data)));
      ch.port2.on_message([&](MessageEvent& e2) {
        handled.push_back("B" + std::to_string(int_of(e2.data)));
        if (int_of(e2.data) == 3) ch.port2.close();
      });
    });
    (void)EventLoop::current().run();
  });
  t.join();
  EXPECT_EQ(handled, (std::vector<std::string>{"A0", "B1", "B2", "B3"}));
}

// A handler runs to its end with its own state (captures that own heap
// memory, so that ASan catches a handler freed while it runs) after it
// replaced itself (twice: the second time it drops a handler that never
// ran), after it dropped itself, and after it destroyed its own port.
TEST_F(MessagePortTest, AHandlerThatReplacesDropsOrDestroysItsPortRunsToTheEndWithItsState) {
  std::vector<std::string> seen;
  std::thread t([&] {
    auto ch = std::make_unique<MessageChannel>();
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(ch->port1.post_message(i).ok());
    auto name = [](char c) { return std::string(40, c); };  // beyond the small-string buffer
    ch->port2.on_message([&, own = name('a')](MessageEvent& e) {
      ch->port2.on_message([&, own_b = name('b')](MessageEvent&) { seen.push_back(own_b); });
      ch->port2.on_message([&, own_c = name('c')](MessageEvent& e2) {
        ch->port2.on_message(nullptr);
        seen.push_back(own_c + std::to_string(int_of(e2.data)));
      });
      seen.push_back(own + std::to_string(int_of(e.data)));
    });
    (void)EventLoop::current().run();  // until the handler is dropped
    ch->port2.on_message([&, own_d = name('d')](MessageEvent& e) {
      ch.reset();  // destroys both ports, this handler's among them
      seen.push_back(own_d + std::to_string(int_of(e.data)));
    });
    (void)EventLoop::current().run();
  });
  t.join();
  EXPECT_EQ(seen, (std::vector<std::string>{std::string(40, 'a') + "0", std::string(40, 'c') + "1",
                                            std::string(40, 'd') + "2"}));
}

// A port bound to thread T's loop outlives T (T's loop is destroyed while the
// port is still bound): messages keep queuing, and the next thread that takes
// the port over delivers them on its own loop.
TEST_F(MessagePortTest, PortOutlivingItsLoopsThreadDeliversOnTheNextThreadsLoop) {
  MessageChannel ch;
  std::vector<std::int64_t> on_t;
  std::vector<std::int64_t> on_u;
  ASSERT_TRUE(ch.port1.post_message(1).ok());
  std::thread t([&] {
    ch.port2.on_message([&](MessageEvent& e) { on_t.push_back(int_of(e.data)); });
    (void)EventLoop::current().run(EventLoop::RunMode::kNoWait);  // delivers 1
  });
  t.join();  // T's loop is gone; port2 was still bound to it
  EXPECT_FALSE(ch.port2.closed());
  ASSERT_TRUE(ch.port1.post_message(2).ok());
  ASSERT_TRUE(ch.port1.post_message(3).ok());
  std::thread u([&] {
    ch.port2.on_message([&](MessageEvent& e) {
      on_u.push_back(int_of(e.data));
      if (int_of(e.data) == 3) ch.port2.close();
    });
    run_loop_on_this_thread();
  });
  u.join();
  EXPECT_EQ(on_t, (std::vector<std::int64_t>{1}));
  EXPECT_EQ(on_u, (std::vector<std::int64_t>{2, 3}));
}

// --- codecs -----------------------------------------------------------------------

TEST_F(MessagePortTest, CodecTypeWithATransferListMovesItsBufferWithoutACopy) {
  MessageChannel ch;
  Chunk chunk{7, ArrayBuffer::copy_of(std::string_view("payload"))};
  const std::byte* address = chunk.bytes.data();
  ASSERT_TRUE(ch.port1.post_message(chunk, Transfer().add(chunk.bytes)).ok());
  EXPECT_TRUE(chunk.bytes.detached());  // the sender's handle went with it

  auto e = receive_message_on_port(ch.port2);
  ASSERT_TRUE(e.has_value());
  Result<Chunk> got = e->get<Chunk>();
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  EXPECT_EQ(got->id, 7);
  EXPECT_EQ(got->bytes.data(), address);  // same memory: transferred, not copied
  EXPECT_EQ(got->bytes.to_string(), "payload");
}

TEST_F(MessagePortTest, MessageEventGetDecodesThroughTheCodec) {
  MessageChannel ch;
  ASSERT_TRUE(ch.port1.post_message(std::string("text")).ok());
  ASSERT_TRUE(ch.port1.post_message(std::int64_t{-1234567890123}).ok());
  // Not convertible to Value: goes through the Codec overload of post_message.
  ASSERT_TRUE(ch.port1.post_message(std::vector<std::int64_t>{1, 2, 3}).ok());

  auto s = receive_message_on_port(ch.port2);
  ASSERT_TRUE(s.has_value());
  Result<std::string> str = s->get<std::string>();
  ASSERT_TRUE(str.ok()) << str.status().to_string();
  EXPECT_EQ(*str, "text");
  EXPECT_EQ(s->get<std::int64_t>().code(), ErrorCode::kTypeMismatch);

  auto i = receive_message_on_port(ch.port2);
  ASSERT_TRUE(i.has_value());
  Result<std::int64_t> n = i->get<std::int64_t>();
  ASSERT_TRUE(n.ok()) << n.status().to_string();
  EXPECT_EQ(*n, -1234567890123);
  EXPECT_EQ(i->get<std::string>().code(), ErrorCode::kTypeMismatch);

  auto v = receive_message_on_port(ch.port2);
  ASSERT_TRUE(v.has_value());
  auto vec = v->get<std::vector<std::int64_t>>();
  ASSERT_TRUE(vec.ok()) << vec.status().to_string();
  EXPECT_EQ(*vec, (std::vector<std::int64_t>{1, 2, 3}));
}

// --- loop sources outliving their port ----------------------------------------------
//
// These run in a child process (a death test that expects a clean exit) so
// that a use-after-free, which aborts the process under ASan, fails only the
// test that found it.

// A port whose handler was set is scheduled for a first dispatch on the loop;
// destroying it before that turn must not leave the loop a dangling source.
void destroy_port_before_its_first_dispatch() {
  std::thread t([] {
    {
      MessageChannel ch;
      ch.port2.on_message([](MessageEvent&) {});
    }
    (void)EventLoop::current().run(EventLoop::RunMode::kNoWait);
  });
  t.join();
  std::exit(0);
}

TEST_F(MessagePortTest, DestroyingAPortBeforeItsLoopDispatchedItIsSafe) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(destroy_port_before_its_first_dispatch(), ::testing::ExitedWithCode(0), "");
}

// A handler drops its own port (close + destroy) while another port keeps the
// loop running; the loop's next turns must not touch the destroyed port.
void destroy_port_inside_its_handler_and_keep_running() {
  int code = 0;
  std::thread t([&code] {
    MessageChannel a;
    MessageChannel b;
    std::optional<MessagePort> dropped(std::move(a.port2));
    int b_messages = 0;
    dropped->on_message([&](MessageEvent&) { dropped.reset(); });
    b.port2.on_message([&](MessageEvent&) {
      if (++b_messages == 2) b.port2.close();
    });
    (void)a.port1.post_message(1);
    (void)b.port1.post_message(1);
    (void)EventLoop::current().run(EventLoop::RunMode::kNoWait);
    (void)b.port1.post_message(2);
    (void)EventLoop::current().run();
    if (b_messages != 2 || dropped.has_value()) code = 3;
  });
  t.join();
  std::exit(code);
}

TEST_F(MessagePortTest, DestroyingAPortInsideItsHandlerWhileTheLoopRunsOnIsSafe) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(destroy_port_inside_its_handler_and_keep_running(), ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace weave
