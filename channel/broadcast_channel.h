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
// Without a handler, messages wait for receive_message_on_channel().
//
// No close event: an instance closes only by its own close() or destruction
// (there is no peer whose close could reach it), so there is nothing for an
// on_close to report; Node's BroadcastChannel has none either.
//
// Threading: as for MessagePort (channel/message_port.h). An instance is
// bound from its first on_message() to that thread's loop until it closes or
// that loop is destroyed; bound, it belongs to that thread; unbound (no
// handler ever set), it may move to another thread with happens-before.
// Every member is "Owner thread only"; in debug builds a bound instance used
// on another thread aborts with a message naming weave::BroadcastChannel and
// this rule. Memory ordering: every write made before post_message(m) is
// visible to each receiver once it has received m.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

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

  // The name it joined; empty for a moved-from instance. Valid while the
  // instance holds it (not across a move). Never blocks. Never allocates.
  [[nodiscard]] std::string_view name() const noexcept;

  // Sends a clone of `value` to every other open instance of this name. ok,
  // or kClosed after close(), or kDataCloneError (nothing sent), or
  // kOutOfMemory when some instances' queues could not grow (they did not get
  // it; the others did). Owner thread only. May block, briefly: it takes the
  // process-wide registry's lock to find the receivers, and each receiver's
  // queue lock while another thread posts to it. Allocates (a clone per
  // receiver, and the list of receivers).
  Status post_message(const Value& value);
  template <class T>
  requires(!std::is_convertible_v<const T&, Value> && Encodable<T>) Status
      post_message(const T& value) {
    return post_message(to_value(value));
  }

  // Starts delivery on the calling thread's loop, binding the instance to it;
  // nullptr stops it (messages then wait for receive_message_on_channel).
  // A handler refs the instance again, as for MessagePort::on_message. Owner
  // thread only. Allocates.
  void on_message(MessagePort::MessageHandler handler);
  // Leaves the channel. Idempotent. Owner thread only.
  void close();
  [[nodiscard]] bool closed() const noexcept;

  // As for MessagePort: a referenced instance with a handler keeps its loop
  // alive (default); an unreferenced one does not (Node's ref()/unref()).
  // Owner thread only. Never blocks.
  BroadcastChannel& ref();
  BroadcastChannel& unref();
  // Whether it keeps its loop alive now: open, referenced, with a handler.
  // Owner thread only. Never blocks.
  [[nodiscard]] bool has_ref() const noexcept;

  // The next message waiting for this instance, or nothing (closed, or none
  // waiting): the synchronous receive, like receive_message_on_port. Works
  // with or without a handler. Owner thread only. Never blocks. Never
  // allocates.
  friend std::optional<MessageEvent> receive_message_on_channel(BroadcastChannel& channel);

 private:
  std::shared_ptr<internal::BroadcastSub> sub_;
};

std::optional<MessageEvent> receive_message_on_channel(BroadcastChannel& channel);

}  // namespace weave
