#include "channel/message_port.h"

#include <atomic>
#include <cassert>
#include <new>
#include <utility>

#include "channel/internal/clone.h"
#include "channel/internal/inbox.h"
#include "loop/event_loop.h"
#include "loop/internal/sources.h"

namespace weave {
namespace internal {

// --- InboxSource -------------------------------------------------------------------

void InboxSource::bind_if_needed() {
  if (loop_) {
    assert(loop_ == &EventLoop::current() &&
           "weave::MessagePort: handlers must be set on the thread that owns the port");
    return;
  }
  EventLoop& loop = EventLoop::current();
  // What may throw (std::bad_alloc) comes first: then the port is as before.
  auto binding = std::make_shared<LoopBinding>(shared_from_this());
  internal::LoopSources::add(loop, binding, false);
  loop_ = &loop;
  binding_ = std::move(binding);
  inbox_.bind(&internal::LoopSources::core(loop), binding_.get());
  update_ref();
  // Deliver whatever is already queued on the next turn (then the port is hot).
  internal::LoopSources::core(loop).schedule(binding_.get());
}

void LoopBinding::dispatch(EventLoop& loop) {
  if (!owner_) return;
  // The handler may destroy the port, which detaches us: detach() then parks
  // the owner in zombie_ until here, rather than this call holding a
  // reference of its own (two atomic updates per dispatch).
  dispatching_ = true;
  struct Done {
    LoopBinding* b;
    ~Done() {
      b->dispatching_ = false;
      b->zombie_.reset();
    }
  } done{this};
  owner_->dispatch(loop);
}

Readiness LoopBinding::poll() noexcept { return owner_ ? owner_->poll() : Readiness::kIdle; }
void LoopBinding::arm_begin() noexcept {
  if (owner_) owner_->arm_begin();
}
bool LoopBinding::arm_end() noexcept { return !owner_ || owner_->arm_end(); }

void LoopBinding::on_loop_destroyed() noexcept {
  if (owner_) owner_->on_loop_destroyed();
  owner_.reset();
}

void InboxSource::update_ref() {
  if (!loop_) return;
  internal::LoopSources::set_ref(*loop_, binding_.get(), refed_ && on_message_ && !close_emitted_);
}

void InboxSource::set_message_handler(Handler h) {
  auto fresh = h ? std::make_shared<Handler>(std::move(h)) : nullptr;
  release_message_handler();
  on_message_ = std::move(fresh);
  if (on_message_ || on_close_) bind_if_needed();
  update_ref();
  if (loop_) internal::LoopSources::core(*loop_).schedule(binding_.get());
}

void InboxSource::set_close_handler(CloseHandler h) {
  on_close_ = h ? std::make_shared<CloseHandler>(std::move(h)) : nullptr;
  if (on_close_) bind_if_needed();
}

void InboxSource::set_ref(bool refed) {
  refed_ = refed;
  update_ref();
}

void InboxSource::unbind_from_loop() noexcept {
  release_message_handler();
  on_close_.reset();
  if (!loop_) return;
  // Unbind first: once this returns no producer can schedule us any more.
  inbox_.unbind();
  EventLoop* loop = loop_;
  loop_ = nullptr;
  std::shared_ptr<LoopBinding> binding = std::move(binding_);
  binding->detach();
  internal::LoopSources::remove(*loop, binding.get());  // retired there if still on its stack
}

void InboxSource::on_loop_destroyed() noexcept {
  inbox_.unbind();
  loop_ = nullptr;
  binding_.reset();
  release_message_handler();
  on_close_.reset();
}

void InboxSource::poke() {
  if (loop_) internal::LoopSources::core(*loop_).schedule(binding_.get());
}

bool InboxSource::take(Message& out) {
  if (stash_pos_ < stash_len_) {
    out = std::move(stash_[stash_pos_++]);
  } else if (!inbox_.take(token_, out)) {
    return false;
  }
  // The last message taken by hand may complete a close: let the loop emit it.
  if (loop_ && finished()) poke();
  return true;
}

namespace {
// The source whose handler is running on this thread. If that handler
// transfers the very port it is called for, the port belongs to another
// thread as soon as the post returns, and dispatch must not touch it again.
struct DispatchFrame {
  const InboxSource* source;
  bool moved_away = false;
  // The stash the running handler's message lives in, kept alive here if
  // the port leaves with a fresh one (see note_transferred).
  std::unique_ptr<MessageEvent[]> old_stash;
  // The running handler, kept alive here if it is replaced or dropped while
  // it runs (see release_message_handler): dispatch holds only a plain
  // pointer to it, which costs no reference count per message.
  std::shared_ptr<InboxSource::Handler> running_handler;
};
thread_local DispatchFrame* tl_frame = nullptr;
}  // namespace

void InboxSource::release_message_handler() noexcept {
  gate_.reset();  // a streak belongs to the handler that saw it
  DispatchFrame* f = tl_frame;
  // The first release during a handler's call is the running handler
  // itself (any later one is a handler set since, not running).
  if (f && f->source == this && !f->running_handler) {
    f->running_handler = std::move(on_message_);
  } else {
    on_message_.reset();
  }
}

std::unique_ptr<Message[]> InboxSource::prepare_transfer() const {
  if (!tl_frame || tl_frame->source != this || tl_frame->old_stash) return nullptr;
  return std::make_unique<Message[]>(kBatch);
}

void InboxSource::note_transferred(std::unique_ptr<Message[]>& fresh) noexcept {
  if (!tl_frame || tl_frame->source != this) return;
  tl_frame->moved_away = true;
  // An earlier post of this port from the same handler failed after it had
  // swapped the stash: the handler's message is already safe in the frame.
  if (tl_frame->old_stash) return;
  assert(fresh && "weave: note_transferred without the stash from prepare_transfer");
  // The running handler holds a reference into the stash, and the new owner
  // will refill the stash: the port leaves with the fresh one, holding the
  // messages not yet delivered, and the old one stays with this frame.
  const std::size_t left = stash_len_ - stash_pos_;
  for (std::size_t i = 0; i < left; ++i) fresh[i] = std::move(stash_[stash_pos_ + i]);
  tl_frame->old_stash = std::exchange(stash_, std::move(fresh));
  stash_pos_ = 0;
  stash_len_ = left;
}

void InboxSource::dispatch(EventLoop& loop) {
  // The loop holds a reference to this source for the whole call, so a
  // handler may destroy the port that owns it.
  if (loop_ != &loop) return;  // scheduled before it moved or unbound
  inbox_.disarm();             // we are looking: producers need not signal
  int n = 0;
  while (on_message_ && loop_ == &loop) {
    if (stash_pos_ == stash_len_) {
      if (n >= kBudget) {
        internal::LoopSources::core(loop).schedule(
            binding_.get());  // more next turn; other sources go first
        return;
      }
      if (!stash_) stash_ = std::make_unique<Message[]>(kBatch);  // once per port
      // The gate holds a take only once this dispatch delivered something:
      // a dispatch (a producer's signal, a close) always takes what waits.
      if ((n != 0 && gate_.holding(now_ns)) || !refill()) {
        // Dry, or letting a batch build: stay hot, so the next posts cost
        // their producer no signal; the loop arms the inbox before it parks.
        internal::LoopSources::mark_hot(loop, binding_.get());
        break;
      }
    }
    Message& msg = stash_[stash_pos_++];  // the handler may move from it
    ++n;
    Handler& handler = *on_message_;  // kept alive by the frame if replaced
    DispatchFrame frame{this, false, nullptr, nullptr};
    // If the handler throws, the exception leaves run(); the rest of the
    // messages wait for the next turn rather than being dropped. Either way
    // a port handed to another thread inside the handler is not touched.
    struct Guard {
      InboxSource* s;
      EventLoop& l;
      DispatchFrame& f;
      DispatchFrame* outer;
      bool done = false;
      ~Guard() {
        tl_frame = outer;
        if (!done && !f.moved_away && s->loop_ == &l)
          internal::LoopSources::core(l).schedule(s->binding_.get());
      }
    } guard{this, loop, frame, std::exchange(tl_frame, &frame)};
    handler(msg);
    guard.done = true;
    if (frame.moved_away) return;  // handed to another thread: hands off
  }
  if (loop_ != &loop || close_emitted_) return;
  // The close event comes after every accepted message was delivered (or,
  // with no message handler, as soon as the channel closed: the messages stay
  // for receive_message_on_port).
  if (inbox_.closed() && (!on_message_ || finished())) {
    close_emitted_ = true;
    std::shared_ptr<CloseHandler> c = on_close_;
    unbind_from_loop();  // nothing more will be dispatched
    if (c) (*c)();
  }
}

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

class Endpoint final : public InboxSource {
 public:
  Endpoint(std::shared_ptr<ChannelState> chan, int side)
      : InboxSource(chan->inbox[side]),
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
    // Only this side's own flag here: a close by the peer is reported by the
    // reservation itself, and reading the shared word first would cost every
    // post a cache miss.
    if (closed_) return closed_status();
    if (!transfer && is_inline_scalar(value)) {
      // Nothing to walk, nothing to transfer: the queue's slot is built from
      // the value itself. A copy (which may allocate, for a string) is made
      // before anything is reserved.
      if constexpr (std::is_lvalue_reference_v<V>) {
        return post_data(Value(value));
      } else {
        return post_data(std::move(value));
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
  Status refused();

 private:
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

Status Endpoint::post_cloned(const Value& value, Transfer* transfer) {
  if (closed()) return closed_status();  // before cloning anything big
  Message m;
  {
    if (transfer) {
      if (!transfer->shared_buffers.empty()) {
        // Node's DataCloneError for a SharedArrayBuffer in the transfer list.
        return clone_error(
            "a SharedArrayBuffer in the transfer list is not transferable (it is shared: post it "
            "without listing it)");
      }
      for (std::size_t i = 0; i < transfer->ports.size(); ++i) {
        const auto& p = transfer->ports[i].endpoint();
        if (!p) return clone_error("a MessagePort in the transfer list is empty (moved from)");
        if (p.get() == this) return clone_error("Transfer list contains source port");
        if (entangled_with(*p)) return clone_error("Transfer list contains the source port's peer");
        if (p->closed()) return clone_error("a MessagePort in the transfer list is closed");
        for (std::size_t j = 0; j < i; ++j) {
          if (transfer->ports[j].endpoint() == p) {
            return clone_error("a MessagePort is listed twice in the transfer list");
          }
        }
      }
    }
    TransferPlan plan;
    std::span<ArrayBuffer> buffers;
    if (transfer) buffers = transfer->buffers;
    auto cloned = clone_value(value, buffers, plan);
    if (!cloned) return cloned.status();
    m.data = std::move(*cloned);
    // Everything that may allocate happens before the commit, so a
    // std::bad_alloc leaves the caller's buffers and ports as they were.
    std::unique_ptr<Message[]> spare_stash;
    if (transfer) {
      for (MessagePort& p : transfer->ports) {
        if (auto s = p.endpoint()->prepare_transfer()) spare_stash = std::move(s);
      }
    }
    // Counted first, committed after: a post refused by the peer's close
    // leaves the transfer list and its buffers exactly as they were.
    const Inbox::Reservation r = out().reserve();
    if (!r.accepted) return refused();
    commit_transfers(plan);
    if (transfer) {
      for (MessagePort& p : transfer->ports) {
        p.endpoint()->unbind_from_loop();  // it will deliver on the receiver's loop
        p.endpoint()->note_transferred(spare_stash);
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
  ep_->close();
  ep_->unbind_from_loop();
}

Status MessagePort::post_message(const Value& value) {
  if (!ep_) return internal::closed_status();
  return ep_->post(value, nullptr);
}

Status MessagePort::post_message(Value&& value) {
  if (!ep_) return internal::closed_status();
  return ep_->post(std::move(value), nullptr);
}

Status MessagePort::post_message(const Value& value, Transfer&& transfer) {
  if (!ep_) return internal::closed_status();
  return ep_->post(value, &transfer);
}

void MessagePort::on_message(MessageHandler handler) {
  if (ep_) ep_->set_message_handler(std::move(handler));
}

void MessagePort::on_close(CloseHandler handler) {
  if (ep_) ep_->set_close_handler(std::move(handler));
}

void MessagePort::close() {
  if (ep_) ep_->close();
}

MessagePort& MessagePort::ref() {
  if (ep_) ep_->set_ref(true);
  return *this;
}
MessagePort& MessagePort::unref() {
  if (ep_) ep_->set_ref(false);
  return *this;
}
bool MessagePort::has_ref() const noexcept { return ep_ && ep_->has_ref(); }
bool MessagePort::closed() const noexcept { return !ep_ || ep_->closed(); }
std::size_t MessagePort::pending_approx() const noexcept { return ep_ ? ep_->pending() : 0; }

std::optional<MessageEvent> receive_message_on_port(MessagePort& port) {
  if (!port.ep_) return std::nullopt;
  MessageEvent ev;
  if (!port.ep_->take(ev)) return std::nullopt;
  return ev;
}

MessageChannel::MessageChannel() {
  auto chan = std::make_shared<internal::ChannelState>();
  port1 = MessagePort(std::make_shared<internal::Endpoint>(chan, 0));
  port2 = MessagePort(std::make_shared<internal::Endpoint>(chan, 1));
}

std::size_t live_port_count_approx() noexcept {
  return internal::g_live_ports.load(std::memory_order_relaxed);
}

}  // namespace weave
