#include "channel/broadcast_channel.h"

#include <mutex>
#include <unordered_map>
#include <vector>

#include "channel/internal/clone.h"
#include "channel/internal/inbox.h"
#include "channel/internal/inbox_source.h"

namespace weave {
namespace internal {

// Base-from-member: the inbox must exist before InboxSource takes a token on it.
struct InboxHolder {
  Inbox inbox{Inbox::kManyProducers};  // every other instance of the name posts here
};

class BroadcastSub final : private InboxHolder, public InboxSource {
 public:
  explicit BroadcastSub(std::string name)
      : InboxSource(inbox, EndKind{"weave::BroadcastChannel", "channel"}), name_(std::move(name)) {}
  ~BroadcastSub() override { inbox.unbind(); }

  const std::string& name() const noexcept { return name_; }
  bool closed() const noexcept { return closed_; }
  void mark_closed() noexcept {
    closed_ = true;
    inbox.close_from_consumer();
  }
  // From any sending thread; kClosed once this instance has closed.
  Inbox::Pushed deliver(Value v) { return inbox.push(nullptr, std::move(v)); }

 private:
  std::string name_;
  bool closed_ = false;
};

namespace {

// name -> open instances. Leaked on purpose: instances in thread_locals or
// statics may close after static destructors ran.
struct Registry {
  std::mutex mu;
  std::unordered_map<std::string, std::vector<std::shared_ptr<BroadcastSub>>> by_name;
};
Registry& registry() {
  static Registry* r = new Registry();
  return *r;
}

void join(const std::shared_ptr<BroadcastSub>& sub) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  r.by_name[sub->name()].push_back(sub);
}

void leave(const BroadcastSub* sub) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  auto it = r.by_name.find(sub->name());
  if (it == r.by_name.end()) return;
  auto& v = it->second;
  for (auto i = v.begin(); i != v.end(); ++i) {
    if (i->get() == sub) {
      v.erase(i);
      break;
    }
  }
  if (v.empty()) r.by_name.erase(it);
}

std::vector<std::shared_ptr<BroadcastSub>> others(const BroadcastSub* self) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  std::vector<std::shared_ptr<BroadcastSub>> out;
  auto it = r.by_name.find(self->name());
  if (it == r.by_name.end()) return out;
  out.reserve(it->second.size());
  for (const auto& s : it->second) {
    if (s.get() != self) out.push_back(s);
  }
  return out;
}

}  // namespace
}  // namespace internal

BroadcastChannel::BroadcastChannel(std::string name)
    : sub_(std::make_shared<internal::BroadcastSub>(std::move(name))) {
  internal::join(sub_);
}

BroadcastChannel::BroadcastChannel(BroadcastChannel&&) noexcept = default;

BroadcastChannel& BroadcastChannel::operator=(BroadcastChannel&& o) noexcept {
  if (this != &o) {
    close();
    sub_ = std::move(o.sub_);
  }
  return *this;
}

BroadcastChannel::~BroadcastChannel() { close(); }

std::string_view BroadcastChannel::name() const noexcept {
  return sub_ ? std::string_view(sub_->name()) : std::string_view();
}

bool BroadcastChannel::closed() const noexcept { return !sub_ || sub_->closed(); }

Status BroadcastChannel::post_message(const Value& value) {
  if (closed()) return Status(ErrorCode::kClosed, "BroadcastChannel is closed");
  sub_->check_thread("post_message");
  auto receivers = internal::others(sub_.get());
  if (receivers.empty()) {
    // Still report a value that cannot be cloned, as if someone listened.
    auto probe = structured_clone(value);
    return probe ? Status() : probe.status();
  }
  std::size_t starved = 0;
  for (std::size_t i = 0; i < receivers.size(); ++i) {
    // Each receiver gets its own copy; only the first clone can fail (the
    // value is the same each time), so a failure sends nothing.
    auto copy = structured_clone(value);
    if (!copy) return copy.status();
    // A receiver that closed meanwhile drops it, as in Node.
    if (receivers[i]->deliver(std::move(*copy)) == internal::Inbox::Pushed::kNoMemory) ++starved;
  }
  if (starved != 0) {
    return Status(ErrorCode::kOutOfMemory,
                  "BroadcastChannel: out of memory: " + std::to_string(starved) + " of " +
                      std::to_string(receivers.size()) + " instances did not get the message");
  }
  return Status();
}

void BroadcastChannel::on_message(MessagePort::MessageHandler handler) {
  if (closed()) return;
  sub_->set_message_handler(std::move(handler));
}

void BroadcastChannel::close() {
  if (!sub_ || sub_->closed()) return;
  sub_->check_thread("close");
  internal::leave(sub_.get());
  sub_->mark_closed();
  sub_->unbind_from_loop();
}

BroadcastChannel& BroadcastChannel::ref() {
  if (sub_) sub_->set_ref(true);
  return *this;
}
BroadcastChannel& BroadcastChannel::unref() {
  if (sub_) sub_->set_ref(false);
  return *this;
}
bool BroadcastChannel::has_ref() const noexcept { return !closed() && sub_->has_ref(); }

std::optional<MessageEvent> receive_message_on_channel(BroadcastChannel& channel) {
  // Closed: what had not been delivered was dropped (see close()).
  if (channel.closed()) return std::nullopt;
  channel.sub_->check_thread("receive_message_on_channel");
  MessageEvent ev;
  if (!channel.sub_->take(ev)) return std::nullopt;
  return ev;
}

}  // namespace weave
