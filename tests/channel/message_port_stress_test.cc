// Stress for weave::MessagePort (channel/message_port.h): ports hopping
// between threads while messages flow, close racing post (repeated), fan-in
// over a sweep of producer counts, and 10^5 ping-pong round trips. Each test
// checks a closed-form invariant: every message seen exactly once and in
// order, and received == accepted posts.
//
// Sized to stay well under a minute under ThreadSanitizer on two cores.
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "channel/message_port.h"
#include "channel/status.h"
#include "channel/value.h"
#include "loop/event_loop.h"
#include "tests/channel/port_test_util.h"
#include "tests/test_util.h"

namespace weave {
namespace {

using ::weave::testing::CleanShutdownTest;
using ::weave::testing::StartBarrier;

using MessagePortStressTest = ::weave::testing::PortLeakCheckedTest;

using ::weave::testing::int_of;

using ::weave::testing::run_loop_on_this_thread;

// --- ports hopping between threads while messages flow ------------------------------
//
// kChannels channels over `nodes` threads (swept), each with its own loop,
// fully connected by carrier channels (plus one from the main thread to each
// node). Both ends of every channel hop:
//  - the sending end ("tx") arrives at a node with the next sequence number,
//    posts a chunk of it, and moves on to another node, until all kMessages
//    are posted;
//  - the receiving end ("rx") arrives with the sequence number it expects
//    next, checks each message on that node's loop, and after a channel-
//    specific number of them posts itself (from inside its own handler) to
//    another node; after the last message it closes the channel.
// The expected sequence travels inside the hop message, so no state is
// shared: each channel must arrive exactly once and in order, whichever
// threads carried its two ends. Every channel ends in exactly one close event
// at its receiving end; the last one releases the nodes' loops.
class PortHoppingStressTest : public MessagePortStressTest,
                              public ::testing::WithParamInterface<int> {};

TEST_P(PortHoppingStressTest, PortsHoppingBetweenThreadsDeliverEveryMessageOnceInOrder) {
  const int nodes = GetParam();
  constexpr std::int64_t kChannels = 16;
  constexpr std::int64_t kMessages = 12'000;
  auto chunk = [](std::int64_t chan) { return 40 + (chan * 37) % 90; };      // tx stint
  auto rx_stint = [](std::int64_t chan) { return 25 + (chan * 53) % 110; };  // rx stint

  // links[from][to]: from's sending port to `to`; node `nodes` is the main thread.
  std::vector<std::vector<MessagePort>> outs(nodes + 1);
  std::vector<std::vector<MessagePort>> ins(nodes);
  for (int from = 0; from <= nodes; ++from) {
    outs[static_cast<std::size_t>(from)].resize(nodes);
    for (int to = 0; to < nodes; ++to) {
      if (from == to) continue;
      MessageChannel link;
      outs[static_cast<std::size_t>(from)][static_cast<std::size_t>(to)] = std::move(link.port1);
      ins[static_cast<std::size_t>(to)].push_back(std::move(link.port2));
    }
  }

  std::vector<KeepAlive> keep(nodes);  // slot i written by node i before `ready`
  StartBarrier ready(nodes + 1);
  std::atomic<std::int64_t> received{0};
  std::atomic<std::int64_t> out_of_order{0};
  std::atomic<std::int64_t> failed_posts{0};
  std::atomic<std::int64_t> failed_hops{0};
  std::atomic<std::int64_t> malformed_hops{0};
  std::atomic<std::int64_t> ended_early{0};
  std::atomic<std::int64_t> ended{0};
  std::atomic<std::int64_t> hops{0};
  // Called once per channel, when its receiving end closed (or could not
  // even be handed out); the last call releases the nodes' loops.
  auto end_channel = [&](bool complete) {
    if (!complete) ended_early.fetch_add(1, std::memory_order_relaxed);
    if (ended.fetch_add(1) + 1 == kChannels) {
      for (KeepAlive& k : keep) k.reset();
    }
  };

  auto node = [&](int id, std::vector<MessagePort> out, std::vector<MessagePort> in) {
    // Ports live here until the thread ends (never destroyed while the loop
    // runs); a map node's address is stable.
    std::map<std::int64_t, MessagePort> rx;
    std::vector<MessagePort> finished_tx;

    auto hop = [&](const char* kind, std::int64_t chan, std::int64_t next,
                   MessagePort port) -> bool {
      const int to = static_cast<int>((id + 1 + chan % (nodes - 1)) % nodes);  // never id
      Transfer t;
      t.add(std::move(port));
      Status s = out[static_cast<std::size_t>(to)].post_message(
          Value(Object{{"kind", kind}, {"chan", chan}, {"next", next}}), std::move(t));
      if (s.ok()) {
        hops.fetch_add(1, std::memory_order_relaxed);
        return true;
      }
      failed_hops.fetch_add(1, std::memory_order_relaxed);
      if (!t.ports.empty()) {
        if (std::string(kind) == "rx") {
          rx[chan] = std::move(t.ports[0]);  // still bound here; its close event comes here
        } else {
          finished_tx.push_back(std::move(t.ports[0]));
        }
      }
      return false;
    };

    auto on_tx = [&](std::int64_t chan, std::int64_t next, MessagePort port) {
      const std::int64_t end = std::min(next + chunk(chan), kMessages);
      for (std::int64_t i = next; i < end; ++i) {
        if (!port.post_message(i).ok()) failed_posts.fetch_add(1, std::memory_order_relaxed);
      }
      // The sending end stays open until the receiving end closes the channel.
      if (end == kMessages || !hop("tx", chan, end, std::move(port))) {
        if (port) finished_tx.push_back(std::move(port));
      }
    };

    auto on_rx = [&](std::int64_t chan, std::int64_t next, MessagePort port) {
      MessagePort& p = rx[chan];
      p = std::move(port);  // the entry is empty if the port passed here before
      struct State {
        std::int64_t next;
        std::int64_t stint = 0;
      };
      auto st = std::make_shared<State>(State{next});
      p.on_message([&, chan, st](MessageEvent& e) {
        if (int_of(e.data) != st->next) out_of_order.fetch_add(1, std::memory_order_relaxed);
        ++st->next;
        received.fetch_add(1, std::memory_order_relaxed);
        MessagePort& self = rx[chan];
        if (st->next == kMessages) {
          self.close();
        } else if (++st->stint == rx_stint(chan)) {
          st->stint = 0;
          (void)hop("rx", chan, st->next, std::move(self));
        }
      });
      p.on_close([&, st] { end_channel(st->next == kMessages); });
    };

    for (MessagePort& p : in) {
      p.on_message([&](MessageEvent& e) {
        const Value* kind = e.data.find("kind");
        const Value* chan = e.data.find("chan");
        const Value* next = e.data.find("next");
        if (!kind || !kind->is_string() || !chan || !next || e.ports.size() != 1) {
          malformed_hops.fetch_add(1, std::memory_order_relaxed);
          return;
        }
        if (*kind->if_string() == "tx") {
          on_tx(int_of(*chan), int_of(*next), std::move(e.ports[0]));
        } else {
          on_rx(int_of(*chan), int_of(*next), std::move(e.ports[0]));
        }
      });
      p.unref();  // carriers alone do not keep the node alive; `keep` does
    }
    keep[static_cast<std::size_t>(id)] = EventLoop::current().handle().keep_alive();
    ready.arrive_and_wait();
    run_loop_on_this_thread();
  };

  std::vector<std::thread> threads;
  for (int id = 0; id < nodes; ++id) {
    threads.emplace_back(node, id, std::move(outs[static_cast<std::size_t>(id)]),
                         std::move(ins[static_cast<std::size_t>(id)]));
  }
  ready.arrive_and_wait();
  std::vector<MessagePort>& from_main = outs[nodes];
  for (std::int64_t c = 0; c < kChannels; ++c) {
    MessageChannel ch;
    const auto tx_node = static_cast<std::size_t>(c % nodes);
    const auto rx_node = static_cast<std::size_t>((c + 1) % nodes);
    Status tx =
        from_main[tx_node].post_message(Value(Object{{"kind", "tx"}, {"chan", c}, {"next", 0}}),
                                        Transfer().add(std::move(ch.port1)));
    EXPECT_TRUE(tx.ok()) << tx.to_string();
    Status rx =
        from_main[rx_node].post_message(Value(Object{{"kind", "rx"}, {"chan", c}, {"next", 0}}),
                                        Transfer().add(std::move(ch.port2)));
    EXPECT_TRUE(rx.ok()) << rx.to_string();
    if (!rx.ok()) end_channel(false);  // no close event will ever count it
  }
  for (auto& t : threads) t.join();
  from_main.clear();

  EXPECT_EQ(ended.load(), kChannels);
  EXPECT_EQ(ended_early.load(), 0) << "a channel closed before all its messages arrived";
  EXPECT_EQ(received.load(), kChannels * kMessages);
  EXPECT_EQ(out_of_order.load(), 0);
  EXPECT_EQ(failed_posts.load(), 0);
  EXPECT_EQ(failed_hops.load(), 0);
  EXPECT_EQ(malformed_hops.load(), 0);
  EXPECT_GT(hops.load(), kChannels * 10) << "the ends did not hop much";
}

INSTANTIATE_TEST_SUITE_P(Nodes, PortHoppingStressTest, ::testing::Values(2, 4, 6));

// --- close racing post, many times --------------------------------------------------

// A producer posts as fast as it can until a post fails; the consumer closes
// after `close_after` messages (0: right away), by message count. Every post
// that returned ok must be delivered before the close (received == ok posts);
// the failing post returns kClosed. Repeated with fresh channels and threads,
// with the consumer on a loop handler and polling receive_message_on_port.
TEST_F(MessagePortStressTest, CloseRacingPostNeverLosesAnAcceptedMessage) {
  constexpr int kRounds = 1500;
  int bad_rounds = 0;
  for (int round = 0; round < kRounds; ++round) {
    const std::int64_t close_after = (round * 7) % 61;
    const bool use_handler = round % 2 == 0;
    MessageChannel ch;
    StartBarrier start(2);
    std::int64_t ok_posts = 0;
    ErrorCode last = ErrorCode::kOk;
    std::int64_t received = 0;
    std::int64_t out_of_order = 0;
    std::int64_t received_at_close_event = -1;
    std::thread producer([&, p = std::move(ch.port1)]() mutable {
      start.arrive_and_wait();
      for (;;) {
        Status s = p.post_message(ok_posts);
        if (!s.ok()) {
          last = s.code();
          break;
        }
        ++ok_posts;
      }
    });
    std::thread consumer([&, p = std::move(ch.port2)]() mutable {
      auto got = [&](const Value& v) {
        if (int_of(v) != received) ++out_of_order;
        ++received;
      };
      start.arrive_and_wait();
      if (close_after == 0) p.close();
      if (use_handler) {
        p.on_message([&](MessageEvent& e) {
          got(e.data);
          if (received == close_after) p.close();
        });
        p.on_close([&] { received_at_close_event = received; });
        run_loop_on_this_thread();
      } else {
        while (received < close_after) {
          if (auto m = receive_message_on_port(p)) got(m->data);
        }
        p.close();
        // Closed: exactly the accepted messages are left to take.
        while (auto m = receive_message_on_port(p)) got(m->data);
        received_at_close_event = received;
      }
    });
    producer.join();
    consumer.join();
    const bool ok = last == ErrorCode::kClosed && received == ok_posts &&
                    received_at_close_event == ok_posts && out_of_order == 0 &&
                    ok_posts >= close_after;
    if (!ok) {
      ++bad_rounds;
      ADD_FAILURE() << "round " << round << " (close after " << close_after << ", "
                    << (use_handler ? "handler" : "polling") << "): ok posts " << ok_posts
                    << ", received " << received << ", at close event " << received_at_close_event
                    << ", out of order " << out_of_order << ", last code "
                    << static_cast<int>(last);
    }
    if (bad_rounds > 5) break;  // enough to diagnose
  }
  EXPECT_EQ(bad_rounds, 0);
}

// The same race with a transfer list: each post carries a fresh port. A post
// that fails with kClosed (the consumer closed, possibly while the post was
// cloning its value) must leave the transfer list its port ("On error
// `transfer` keeps its ports"), open and usable; every accepted post is still
// delivered. The value is large enough that cloning it is most of each post,
// so the close often lands inside one.
TEST_F(MessagePortStressTest, PostFailingOnARacingCloseLeavesTheTransferListItsPorts) {
  constexpr int kRounds = 300;
  const Value payload(Array(256, Value("sixteen+ bytes..")));
  int bad_rounds = 0;
  for (int round = 0; round < kRounds; ++round) {
    const std::int64_t close_after = 1 + round % 17;
    MessageChannel ch;
    StartBarrier start(2);
    std::int64_t ok_posts = 0;
    ErrorCode last = ErrorCode::kOk;
    bool ports_kept = false;
    bool kept_port_works = false;
    std::int64_t received = 0;
    std::int64_t ports_received = 0;
    std::thread producer([&, p = std::move(ch.port1)]() mutable {
      start.arrive_and_wait();
      for (;;) {
        MessageChannel extra;
        Transfer t;
        t.add(std::move(extra.port1));
        Status s = p.post_message(payload, std::move(t));
        if (s.ok()) {
          ++ok_posts;
          continue;
        }
        last = s.code();
        ports_kept = t.ports.size() == 1 && t.ports[0].valid() && !t.ports[0].closed();
        if (ports_kept && t.ports[0].post_message("kept").ok()) {
          auto m = receive_message_on_port(extra.port2);
          kept_port_works = m.has_value() && m->data == Value("kept");
        }
        break;
      }
    });
    std::thread consumer([&, p = std::move(ch.port2)]() mutable {
      p.on_message([&](MessageEvent& e) {
        ++received;
        ports_received += static_cast<std::int64_t>(e.ports.size());
        if (received == close_after) p.close();
      });
      start.arrive_and_wait();
      run_loop_on_this_thread();
    });
    producer.join();
    consumer.join();
    const bool ok = last == ErrorCode::kClosed && ports_kept && kept_port_works &&
                    received == ok_posts && ports_received == ok_posts;
    if (!ok) {
      ++bad_rounds;
      ADD_FAILURE() << "round " << round << ": last code " << static_cast<int>(last)
                    << ", transfer kept its port " << ports_kept << " (usable " << kept_port_works
                    << "), ok posts " << ok_posts << ", received " << received << " with "
                    << ports_received << " ports";
    }
    if (bad_rounds > 5) break;  // enough to diagnose
  }
  EXPECT_EQ(bad_rounds, 0);
}

// --- fan-in over a sweep of producer counts -------------------------------------------

// P producer threads, each with its own channel to one consumer loop, post K
// messages each; the consumer sees each producer's K in order and the grand
// total is P*K. Each producer closes its channel when done; the consumer's
// loop ends after the last close event.
class FanInStressTest : public MessagePortStressTest, public ::testing::WithParamInterface<int> {};

TEST_P(FanInStressTest, EveryProducersMessagesArriveInOrderAndTheTotalsMatch) {
  const int producers = GetParam();
  constexpr std::int64_t kK = 20'000;
  std::vector<MessagePort> senders;
  std::vector<MessagePort> receivers;
  for (int i = 0; i < producers; ++i) {
    MessageChannel ch;
    senders.push_back(std::move(ch.port1));
    receivers.push_back(std::move(ch.port2));
  }
  StartBarrier start(producers + 1);
  std::vector<std::int64_t> next(static_cast<std::size_t>(producers), 0);
  std::int64_t out_of_order = 0;
  std::int64_t sum = 0;
  int close_events = 0;
  std::atomic<std::int64_t> failed_posts{0};

  std::thread consumer([&, ports = std::move(receivers)]() mutable {
    for (int i = 0; i < producers; ++i) {
      ports[static_cast<std::size_t>(i)].on_message([&, i](MessageEvent& e) {
        std::int64_t& n = next[static_cast<std::size_t>(i)];
        const std::int64_t v = int_of(e.data);
        if (v != n) ++out_of_order;
        ++n;
        sum += v;
      });
      ports[static_cast<std::size_t>(i)].on_close([&] { ++close_events; });
    }
    start.arrive_and_wait();
    run_loop_on_this_thread();
  });
  std::vector<std::thread> threads;
  for (int i = 0; i < producers; ++i) {
    threads.emplace_back([&, p = std::move(senders[static_cast<std::size_t>(i)])]() mutable {
      start.arrive_and_wait();
      for (std::int64_t v = 0; v < kK; ++v) {
        if (!p.post_message(v).ok()) failed_posts.fetch_add(1);
      }
      p.close();
    });
  }
  for (auto& t : threads) t.join();
  consumer.join();

  EXPECT_EQ(failed_posts.load(), 0);
  EXPECT_EQ(out_of_order, 0);
  EXPECT_EQ(close_events, producers);
  for (int i = 0; i < producers; ++i)
    EXPECT_EQ(next[static_cast<std::size_t>(i)], kK) << "producer " << i;
  EXPECT_EQ(sum, static_cast<std::int64_t>(producers) * (kK * (kK - 1) / 2));
}

INSTANTIATE_TEST_SUITE_P(Producers, FanInStressTest, ::testing::Values(1, 2, 4, 8));

// --- ping-pong ------------------------------------------------------------------------

// 10^5 round trips between two loops: each side answers the value it got plus
// one; the initiator closes after the last answer. Both sides see exactly
// their half of 0..2N-1, in order.
TEST_F(MessagePortStressTest, PingPongHundredThousandRoundTrips) {
  constexpr std::int64_t kRoundTrips = 100'000;
  MessageChannel ch;
  StartBarrier start(2);
  std::int64_t a_received = 0;
  std::int64_t b_received = 0;
  std::int64_t a_wrong = 0;
  std::int64_t b_wrong = 0;
  std::int64_t failed_posts = 0;
  bool a_closed = false;
  bool b_closed = false;
  std::thread a([&, p = std::move(ch.port1)]() mutable {
    p.on_message([&](MessageEvent& e) {
      const std::int64_t v = int_of(e.data);
      if (v != 2 * a_received + 1) ++a_wrong;
      ++a_received;
      if (a_received == kRoundTrips) {
        p.close();
      } else if (!p.post_message(v + 1).ok()) {
        ++failed_posts;
      }
    });
    p.on_close([&] { a_closed = true; });
    start.arrive_and_wait();
    if (!p.post_message(0).ok()) ++failed_posts;
    run_loop_on_this_thread();
  });
  std::int64_t b_failed_posts = 0;
  std::thread b([&, p = std::move(ch.port2)]() mutable {
    p.on_message([&](MessageEvent& e) {
      const std::int64_t v = int_of(e.data);
      if (v != 2 * b_received) ++b_wrong;
      ++b_received;
      if (!p.post_message(v + 1).ok()) ++b_failed_posts;
    });
    p.on_close([&] { b_closed = true; });
    start.arrive_and_wait();
    run_loop_on_this_thread();
  });
  a.join();
  b.join();

  EXPECT_EQ(a_received, kRoundTrips);
  EXPECT_EQ(b_received, kRoundTrips);
  EXPECT_EQ(a_wrong, 0);
  EXPECT_EQ(b_wrong, 0);
  EXPECT_EQ(failed_posts, 0);
  // B answers the last ping before A closes: its posts all succeed.
  EXPECT_EQ(b_failed_posts, 0);
  EXPECT_TRUE(a_closed);
  EXPECT_TRUE(b_closed);
}

}  // namespace
}  // namespace weave
