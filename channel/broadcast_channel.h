// weave::BroadcastChannel: Node's BroadcastChannel — one-to-many messaging by
// name within the process. Every other open instance with the same name
// receives each message exactly once, on its own thread's loop; the poster
// does not receive its own message.
//
//   BroadcastChannel a("jobs"), b("jobs");
//   b.on_message([](MessageEvent& e) { ... });
//   a.post_message("hello");   // b's handler runs on b's loop
//
// Values are cloned per receiver (no transfer list, as in Node). Messages from
// one sending thread arrive in the order they were posted. An instance
// receives what was posted while it was open; close() (or destruction) stops
// delivery at once and drops what it had not yet delivered, as in Node.
//
// Threading: an instance belongs to the thread that created it. Every member
// is "Owner thread only". Memory ordering: every write made before
// post_message(m) is visible to each receiver once it has received m.
#pragma once

#include <memory>
#include <string>

#include "channel/message_port.h"

namespace weave {

namespace internal {
class BroadcastSub;
}

class BroadcastChannel {
 public:
  // Joins the channel called `name`. Allocates.
  explicit BroadcastChannel(std::string name);
  BroadcastChannel(BroadcastChannel&&) noexcept;
  BroadcastChannel& operator=(BroadcastChannel&&) noexcept;
  BroadcastChannel(const BroadcastChannel&) = delete;
  BroadcastChannel& operator=(const BroadcastChannel&) = delete;
  ~BroadcastChannel();

  [[nodiscard]] const std::string& name() const noexcept;

  // Sends a clone of `value` to every other open instance of this name. ok,
  // or kClosed after close(), or kDataCloneError (nothing sent), or
  // kOutOfMemory when some instances' queues could not grow (they did not get
  // it; the others did). Owner thread only. Never blocks. Allocates.
  Status post_message(const Value& value);
  template <class T>
    requires(!std::is_convertible_v<const T&, Value> && Encodable<T>)
  Status post_message(const T& value) {
    return post_message(to_value(value));
  }

  // Starts delivery on the calling thread's loop; nullptr stops it.
  // Owner thread only. Allocates.
  void on_message(MessagePort::MessageHandler handler);
  // Leaves the channel. Idempotent. Owner thread only.
  void close();
  [[nodiscard]] bool closed() const noexcept;

  // As for MessagePort: a referenced instance with a handler keeps its loop alive.
  BroadcastChannel& ref();
  BroadcastChannel& unref();

 private:
  std::shared_ptr<internal::BroadcastSub> sub_;
};

}  // namespace weave
