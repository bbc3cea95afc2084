#include "channel/message_port.h"

#include <atomic>
#include <cassert>
#include <new>
#include <utility>

#include "channel/internal/clone.h"
#include "channel/internal/inbox.h"
#include "channel/internal/inbox_source.h"
#include "channel/internal/port_access.h"

namespace weave {
namespace internal {

// --- Endpoint ----------------------------------------------------------------------

namespace {
std::atomic<std::size_t> g_live_ports{0};
}

struct ChannelState {
  Inbox inbox[2];
};

namespace {
Status closed_status() { return Status(ErrorCode::kClosed, "MessagePort is closed"); }
Status no_memory_status() {
  return Status(ErrorCode::kOutOfMemory, "MessagePort: out of memory: the message was not sent");
}
Status clone_error(const char* what) { return Status(ErrorCode::kDataCloneError, what); }

bool is_inline_scalar(const Value& v) {
  switch (v.type()) {
    case Value::Type::kArrayBuffer:
    case Value::Type::kTypedArray:
    case Value::Type::kArray:
    case Value::Type::kObject:
      return false;
    default:
      // Scalars, strings, errors, and a SharedArrayBuffer: its clone is a
      // copy of the handle (shared memory), which the fast path makes anyway.
      return true;
  }
}
}  // namespace

constexpr EndKind kPortKind{"weave::MessagePort", "port"};

class Endpoint final : public InboxSource {
 public:
  Endpoint(std::shared_ptr<ChannelState> chan, int side)
      : InboxSource(chan->inbox[side], kPortKind),
        chan_(chan),
        out_(chan->inbox[1 - side]),
        side_(side),
        out_token_(out_.queue()) {
    // The token's producer is allocated here; the queue reports a failure
    // only through valid().
    if (!out_token_.valid()) throw std::bad_alloc();
    g_live_ports.fetch_add(1, std::memory_order_relaxed);
  }
  ~Endpoint() override {
    close();
    unbind_from_loop();  // normally already done by ~MessagePort
    in().unbind();
    // Undelivered messages (and the ports inside them) go with this end;
    // the queue itself lives on while the peer does.
    in().abandon(token_);
    g_live_ports.fetch_sub(1, std::memory_order_relaxed);
  }

  Inbox& out() noexcept { return out_; }
  Inbox& in() noexcept { return chan_->inbox[side_]; }
  bool entangled_with(const Endpoint& o) const noexcept { return chan_ == o.chan_; }

  bool closed() noexcept {
    if (!closed_ && out().closed_approx()) closed_ = true;  // the peer closed
    return closed_;
  }

  void close() noexcept {
    if (closed_local_) return;
    closed_local_ = true;
    closed_ = true;
    // Our posts so far reach the peer, then its close event; its posts
    // counted so far reach us, later ones fail.
    out().close_from_producer();
    in().close_from_consumer();
    poke();
  }

  // Inlined into MessagePort::post_message: the scalar fast path is a few
  // instructions plus the enqueue, with no call frames of its own (on a
  // streaming producer every extra store delays the queue's).
  template <class V>
  [[gnu::always_inline]] Status post(V&& value, Transfer* transfer) {
    if (!transfer) {
      // Only this side's own flag here: a close by the peer is reported by
      // the reservation itself, and reading the shared word first would cost
      // every post a cache miss. (With a transfer list, the list is checked
      // before the close: post_cloned.)
      if (closed_) return closed_status();
      if (is_inline_scalar(value)) {
        // Nothing to walk, nothing to transfer: the queue's slot is built
        // from the value itself. A copy (which may allocate, for a string) is
        // made before anything is reserved.
        if constexpr (std::is_lvalue_reference_v<V>) {
          return post_data(Value(value));
        } else {
          return post_data(std::move(value));
        }
      }
    }
    return post_cloned(value, transfer);
  }
  // A message without ports; `data` is untouched unless it was sent.
  [[gnu::always_inline]] Status post_data(Value&& data) {
    const Inbox::Reservation r = out_.reserve();
    if (!r.accepted) return refused();
    if (!out_.publish(&out_token_, std::move(data), r)) [[unlikely]] {
      return no_memory_status();
    }
    return Status();
  }
  [[gnu::noinline]] Status post_cloned(const Value& value, Transfer* transfer);
  // Everything about `transfer` that can make a post fail with
  // kDataCloneError, checked in Node's order: before the value is encoded or
  // walked, and before the channel's state is looked at. Changes nothing.
  Status check_transfer(Transfer& transfer);
  Status refused();

 private:
  // The ports and the SharedArrayBuffers of the list (the cheap part).
  Status check_transfer_ports(const Transfer& transfer);

  // The sending side, read on every post from the producer's thread: its own
  // line, away from this end's consumer fields (InboxSource).
  alignas(kFalseSharingSpan) std::shared_ptr<ChannelState> chan_;
  Inbox& out_;  // chan_->inbox[1 - side_]
  int side_;
  moodycamel::ProducerToken out_token_;  // destroyed before chan_ (declared after)
  bool closed_ = false;                  // this side can post no more
  bool closed_local_ = false;            // close() ran here
};

Status Endpoint::refused() {
  closed_ = true;  // the peer closed first: nothing was sent
  return closed_status();
}

Status Endpoint::check_transfer_ports(const Transfer& transfer) {
  if (!transfer.shared_buffers.empty()) {
    // Node's DataCloneError for a SharedArrayBuffer in the transfer list.
    return clone_error(
        "a SharedArrayBuffer in the transfer list is not transferable (it is shared: post it "
        "without listing it)");
  }
  for (std::size_t i = 0; i < transfer.ports.size(); ++i) {
    const auto& p = PortAccess::endpoint(transfer.ports[i]);
    if (!p) return clone_error("a MessagePort in the transfer list is empty (moved from)");
    p->check_thread("post_message (a port in the transfer list)");
    if (p.get() == this) return clone_error("Transfer list contains source port");
    if (entangled_with(*p)) return clone_error("Transfer list contains the source port's peer");
    if (p->closed()) return clone_error("a MessagePort in the transfer list is closed");
    for (std::size_t j = 0; j < i; ++j) {
      if (PortAccess::endpoint(transfer.ports[j]) == p) {
        return clone_error("a MessagePort is listed twice in the transfer list");
      }
    }
  }
  return Status();
}

Status Endpoint::check_transfer(Transfer& transfer) {
  if (Status s = check_transfer_ports(transfer); !s) return s;
  if (transfer.buffers.empty()) return Status();
  // The buffers, by the clone's own rules (detached, listed twice), over an
  // empty value: the plan it builds is dropped unused.
  TransferPlan plan;
  auto checked = clone_value(Value(), transfer.buffers, plan);
  return checked ? Status() : checked.status();
}

Status Endpoint::post_cloned(const Value& value, Transfer* transfer) {
  if (transfer) {
    if (Status s = check_transfer_ports(*transfer); !s) return s;
    // Node checks the whole list before it looks at the channel: a bad list
    // on a closed channel is a DataCloneError too.
    if (closed()) {
      if (Status s = check_transfer(*transfer); !s) return s;
      return closed_status();
    }
  } else if (closed()) {
    return closed_status();  // before cloning anything big
  }
  Message m;
  TransferPlan plan;
  std::span<ArrayBuffer> buffers;
  if (transfer) buffers = transfer->buffers;
  // Checks the listed buffers, then walks the value.
  auto cloned = clone_value(value, buffers, plan);
  if (!cloned) return cloned.status();
  m.data = std::move(*cloned);
  // Everything that may allocate happens before the commit, so a
  // std::bad_alloc leaves the caller's buffers and ports as they were.
  // Counted first, committed after: a post refused by the peer's close
  // leaves the transfer list and its buffers exactly as they were.
  const Inbox::Reservation r = out().reserve();
  if (!r.accepted) return refused();
  commit_transfers(plan);
  if (transfer) {
    for (MessagePort& p : transfer->ports) {
      const auto& ep = PortAccess::endpoint(p);
      ep->unbind_from_loop();  // it will deliver on the receiver's loop
      ep->note_transferred();  // its own handler may be the one posting it
    }
    m.ports = std::move(transfer->ports);
    transfer->ports.clear();
  }
  if (!out().publish(&out_token_, std::move(m), r)) [[unlikely]] {
    // Nothing was sent: the buffers are attached again and the ports go
    // back to the transfer list (open, but without their handlers).
    undo_transfers(plan);
    if (transfer) transfer->ports = std::move(m.ports);
    return no_memory_status();
  }
  return Status();
}

}  // namespace internal

// --- MessagePort -------------------------------------------------------------------

MessagePort::MessagePort() noexcept = default;
MessagePort::MessagePort(std::shared_ptr<internal::Endpoint> ep) noexcept : ep_(std::move(ep)) {}
MessagePort::MessagePort(MessagePort&& o) noexcept : ep_(std::move(o.ep_)) {}

MessagePort& MessagePort::operator=(MessagePort&& o) noexcept {
  if (this != &o) {
    MessagePort old(std::move(*this));
    ep_ = std::move(o.ep_);
  }
  return *this;
}

MessagePort::~MessagePort() {
  if (!ep_) return;
  ep_->check_thread("~MessagePort");
  ep_->close();
  ep_->unbind_from_loop();
}

Status MessagePort::post_message(const Value& value) {
  if (!ep_) return internal::closed_status();
  ep_->check_thread("post_message");
  return ep_->post(value, nullptr);
}

Status MessagePort::post_message(Value&& value) {
  if (!ep_) return internal::closed_status();
  ep_->check_thread("post_message");
  return ep_->post(std::move(value), nullptr);
}

Status MessagePort::post_message(const Value& value, Transfer&& transfer) {
  if (!ep_) return internal::closed_status();
  ep_->check_thread("post_message");
  return ep_->post(value, &transfer);
}

Status MessagePort::check_transfer_list(Transfer& transfer) {
  if (!ep_) return Status();  // the post reports kClosed
  ep_->check_thread("post_message");
  return ep_->check_transfer(transfer);
}

void MessagePort::on_message(MessageHandler handler) {
  if (ep_) ep_->set_message_handler(std::move(handler));
}

void MessagePort::on_close(CloseHandler handler) {
  if (ep_) ep_->set_close_handler(std::move(handler));
}

void MessagePort::close() {
  if (!ep_) return;
  ep_->check_thread("close");
  ep_->close();
}

MessagePort& MessagePort::ref() {
  if (ep_) ep_->set_ref(true);
  return *this;
}
MessagePort& MessagePort::unref() {
  if (ep_) ep_->set_ref(false);
  return *this;
}
bool MessagePort::has_ref() const noexcept {
  if (!ep_) return false;
  ep_->check_thread("has_ref");
  return ep_->has_ref();
}
bool MessagePort::closed() const noexcept {
  if (!ep_) return true;
  ep_->check_thread("closed");
  return ep_->closed();
}
std::size_t MessagePort::pending_approx() const noexcept {
  if (!ep_) return 0;
  ep_->check_thread("pending_approx");
  return ep_->pending();
}

std::optional<MessageEvent> receive_message_on_port(MessagePort& port) {
  if (!port.ep_) return std::nullopt;
  port.ep_->check_thread("receive_message_on_port");
  MessageEvent ev;
  if (!port.ep_->take(ev)) return std::nullopt;
  return ev;
}

MessageChannel::MessageChannel() {
  auto chan = std::make_shared<internal::ChannelState>();
  port1 = internal::PortAccess::make(std::make_shared<internal::Endpoint>(chan, 0));
  port2 = internal::PortAccess::make(std::make_shared<internal::Endpoint>(chan, 1));
}

std::size_t live_port_count_approx() noexcept {
  return internal::g_live_ports.load(std::memory_order_relaxed);
}

}  // namespace weave
