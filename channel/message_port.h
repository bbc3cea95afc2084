// weave::MessageChannel, weave::MessagePort: Node's port pair between threads.
//
//   MessageChannel ch;                       // ch.port1 <-> ch.port2
//   ch.port2.on_message([](MessageEvent& e) { use(e.data); });
//   ch.port1.post_message(Object{{"n", 1}}); // delivered on port2's loop
//
// Delivery: what one port posts, the other receives in post order, none lost,
// none duplicated — also across a transfer of either port to another thread.
// Posting never blocks. A port with an on_message handler delivers on the
// event loop of the thread that set the handler (EventLoop::current()); a
// port without one keeps its messages for receive_message_on_port(). A port
// receiving a stream may hold its next take for a moment while a batch
// builds: at most 2 microseconds by the clock, and never past the point
// where its loop would park (see channel/internal/batch_gate.h). A message
// never waits for another post, and a lone message or a reply (one that
// finds the stream paused) is not held at all. The MessageEvent a handler
// gets lives for that call only: what the handler does not move out of it
// (the value, transferred buffers, ports) is released when it returns or
// throws, so a port received and not kept is closed then and its peer sees
// its close event.
//
// Values are cloned when posted (channel/value.h): nothing the sender does
// afterwards reaches the receiver. Buffers in the transfer list move instead
// (same memory at the receiver, detached at the sender), and ports in it
// travel to the receiver, arriving in MessageEvent::ports. A SharedArrayBuffer
// in the value is shared, as in Node: the receiver's handle is the same
// memory (order accesses to it with weave::atomics, atomics/atomics.h).
//
// Close: close() on either side, or destroying a port, closes the channel.
// Every post that returned ok is delivered before the receiver's close event;
// every later post returns a kClosed Status (false) — never an exception,
// never a block, never a silent loss. A port destroyed with undelivered
// messages drops them: its owner chose to.
//
// Threading: a MessagePort belongs to one thread at a time. It is bound from
// the first on_message()/on_close() on a thread (to that thread's loop) until
// it is posted to another thread, emits its close event, or that thread's loop
// is destroyed (the thread ended). An UNBOUND port may move to another thread
// with happens-before — e.g. captured into a std::thread, as in the README's
// first program. A BOUND port belongs to its loop's thread and changes
// threads only by being posted (in a transfer list). Every member is "Owner
// thread only"; in debug builds a bound port used on another thread (posted,
// closed, destroyed, received on, its handlers or ref set) aborts with a
// message naming weave::MessagePort and this rule.
//
// Memory ordering: every write made before post_message(m) is visible to the
// receiver once it has received m.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "channel/codec.h"
#include "channel/status.h"
#include "channel/value.h"

namespace weave {

namespace internal {
class Endpoint;
struct PortAccess;
}  // namespace internal

class MessagePort;
class Transfer;

// What a handler receives: the cloned value and the ports that came with it.
struct MessageEvent {
  Value data;
  std::vector<MessagePort> ports;

  // The data decoded as T through its Codec. Allocates.
  template <class T>
  [[nodiscard]] Result<T> get() const {
    return from_value<T>(data);
  }
};

class MessagePort {
 public:
  using MessageHandler = std::function<void(MessageEvent&)>;
  using CloseHandler = std::function<void()>;

  // An empty port (moved-from, or not yet assigned); posting on it returns
  // kClosed.
  MessagePort() noexcept;
  MessagePort(MessagePort&&) noexcept;
  // Closes the port it held before taking `other`'s.
  MessagePort& operator=(MessagePort&& other) noexcept;
  MessagePort(const MessagePort&) = delete;
  MessagePort& operator=(const MessagePort&) = delete;
  // Closes the channel; no handler of this port runs afterwards.
  ~MessagePort();

  // Posts a clone of `value`. ok, or: kClosed (false) once this side or the
  // peer closed; kDataCloneError (nothing sent, nothing detached) for a value
  // that cannot be cloned; kOutOfMemory (nothing sent) when the queue cannot
  // grow. A failed allocation while cloning throws std::bad_alloc, with
  // nothing sent and nothing changed. Owner thread only. Never blocks.
  // Allocates (not for scalars and strings of up to 15 bytes, once the queue
  // has blocks).
  Status post_message(const Value& value);
  // Same; a scalar or string is moved rather than copied (containers are
  // still cloned: their buffers may be shared with the caller).
  Status post_message(Value&& value);
  // With a transfer list (see Transfer). Extra errors, all kDataCloneError with
  // nothing sent: a buffer listed twice or already detached; a
  // SharedArrayBuffer listed (not transferable); a port that is empty, closed,
  // this port or its peer. The list is checked before the value and before
  // the channel's state (Node's order): on a closed channel a bad list is
  // kDataCloneError, a good one kClosed. On any error — these, or kClosed
  // because the peer closed first — nothing is sent, detached or handed
  // over: `transfer` keeps its ports and its buffers stay attached.
  // kOutOfMemory (when the queue cannot grow): nothing is sent, the buffers
  // stay attached, and the listed ports come back in `transfer`, open, with
  // their handlers cleared (each left its loop; set them again to resume).
  // std::bad_alloc while cloning: nothing is sent and nothing changed.
  Status post_message(const Value& value, Transfer&& transfer);
  // Posts any type with a weave::Codec (see channel/codec.h), with or
  // without a transfer list (buffers the encoded value holds may be listed).
  template <class T>
  requires(!std::is_convertible_v<const T&, Value> && Encodable<T>) Status
      post_message(const T& value) {
    return post_message(to_value(value));
  }
  // The transfer list is checked first, as Node does: a bad one fails with
  // kDataCloneError before Codec<T>::encode runs (an exception the hook
  // throws leaves post_message, nothing sent, nothing detached).
  template <class T>
  requires(!std::is_convertible_v<const T&, Value> && Encodable<T>) Status
      post_message(const T& value, Transfer&& transfer) {
    if (Status s = check_transfer_list(transfer); !s) return s;
    return post_message(to_value(value), std::move(transfer));
  }

  // Sets the handler and starts delivery on the calling thread's loop (Node's
  // port.on('message')), binding the port to that loop. Replaces an earlier
  // handler; nullptr stops delivery (messages then wait) and the port no
  // longer keeps its loop alive. A handler refs the port again, as adding a
  // 'message' listener does in Node: call unref() after on_message() to keep
  // it unreferenced. Owner thread only. Allocates.
  void on_message(MessageHandler handler);
  // Runs once, on the loop, after the last accepted message was delivered and
  // the channel is closed. Owner thread only. Allocates.
  void on_close(CloseHandler handler);

  // Closes both sides of the channel. Idempotent. Owner thread only.
  void close();

  // A referenced port with a message handler keeps its loop alive (default);
  // an unreferenced one does not. Owner thread only. Never blocks.
  MessagePort& ref();
  MessagePort& unref();
  // Whether the port keeps its loop alive now, as Node's hasRef(): referenced,
  // with a message handler, and its close event not yet emitted. False for a
  // fresh port (no handler), after on_message(nullptr), inside the close
  // handler, and for an empty port. Owner thread only. Never blocks.
  [[nodiscard]] bool has_ref() const noexcept;

  // False for an empty port.
  [[nodiscard]] bool valid() const noexcept { return ep_ != nullptr; }
  explicit operator bool() const noexcept { return valid(); }
  // True once this side cannot post any more (closed here or by the peer).
  [[nodiscard]] bool closed() const noexcept;
  // Accepted messages not yet received.
  [[nodiscard]] std::size_t pending_approx() const noexcept;

  // Node's receiveMessageOnPort: the next message, or nothing. Works with or
  // without a handler. Owner thread only. Never blocks. Never allocates.
  friend std::optional<MessageEvent> receive_message_on_port(MessagePort& port);

 private:
  // weave's own layers reach the endpoint through channel/internal/port_access.h.
  friend struct internal::PortAccess;
  explicit MessagePort(std::shared_ptr<internal::Endpoint> ep) noexcept;
  // The transfer-list checks of a post (kDataCloneError), without posting.
  Status check_transfer_list(Transfer& transfer);
  std::shared_ptr<internal::Endpoint> ep_;
};

std::optional<MessageEvent> receive_message_on_port(MessagePort& port);

// The transfer list of a post: buffers to move instead of copy, and ports to
// hand over.
//   port.post_message(v, Transfer().add(buf).add(std::move(other_port)));
//
// A SharedArrayBuffer is not transferable (Node: DataCloneError,
// "SharedArrayBuffer ... is not transferable"): it is shared by posting it,
// and is never detached. add(SharedArrayBuffer) exists so that listing one is
// the same runtime error as in Node rather than a silent no-op or a puzzling
// overload failure: the post (or the Worker built with it) fails with
// kDataCloneError, nothing sent, nothing detached.
class Transfer {
 public:
  Transfer() = default;
  Transfer& add(ArrayBuffer buffer) & {
    buffers.push_back(std::move(buffer));
    return *this;
  }
  Transfer&& add(ArrayBuffer buffer) && { return std::move(add(std::move(buffer))); }
  // Always refused at the post (see above).
  Transfer& add(const SharedArrayBuffer& buffer) & {
    shared_buffers.push_back(buffer);
    return *this;
  }
  Transfer&& add(const SharedArrayBuffer& buffer) && { return std::move(add(buffer)); }
  Transfer& add(MessagePort&& port) & {
    ports.push_back(std::move(port));
    return *this;
  }
  Transfer&& add(MessagePort&& port) && { return std::move(add(std::move(port))); }

  std::vector<ArrayBuffer> buffers;
  std::vector<MessagePort> ports;
  // Only so a post can refuse them; any entry makes the post fail.
  std::vector<SharedArrayBuffer> shared_buffers;
};

// Two entangled ports. Allocates.
class MessageChannel {
 public:
  MessageChannel();
  MessagePort port1;
  MessagePort port2;
};

// Live channel endpoints in the process (for leak checks in tests). Any thread.
[[nodiscard]] std::size_t live_port_count_approx() noexcept;

}  // namespace weave
