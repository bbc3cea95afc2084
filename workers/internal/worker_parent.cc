// WorkerParent: the parent side of a Worker (see worker_parent.h).
#include "workers/internal/worker_parent.h"

#include <pthread.h>

#include <optional>
#include <string>
#include <utility>

#include "base/internal/scope_exit.h"

namespace weave::internal {

void WorkerParent::deliver(MessageEvent& event) {
  bump(shared->messages_out);
  // A raw pointer, not a reference count per message: a handler that
  // replaces itself (on_message inside on_message) parks the old one in
  // retired_on_message until this returns.
  MessageHandler* handler = on_message.get();
  if (!handler) return;
  delivering = true;
  ScopeExit done{[this]() noexcept {
    delivering = false;
    retired_on_message.reset();
  }};
  Status decoded = (*handler)(event);
  if (decoded.ok() || detached) return;
  if (std::shared_ptr<ErrorHandler> h = on_messageerror) {
    (*h)(WorkerError{"ERR_WORKER_MESSAGE_DECODE", std::string(error_code_name(decoded.code())),
                     decoded.message()});
  }
}

void WorkerParent::drain() {
  while (!detached) {
    std::optional<MessageEvent> event = receive_message_on_port(port);
    if (!event) return;
    deliver(*event);
  }
}

void WorkerParent::join() noexcept {
  if (!started || joined) return;
  pthread_join(thread, nullptr);
  joined = true;
}

template <class Fn>
void WorkerParent::repost(Fn fn) noexcept {
  // A handler threw in the middle of an event: the exception leaves the
  // parent's run(); the rest of the event runs on the next one.
  try {
    loop.post([weak = weak_from_this(), fn = std::move(fn)]() mutable {
      if (std::shared_ptr<WorkerParent> p = weak.lock()) fn(*p);
    });
  } catch (...) {
    // Out of memory while already unwinding: the rest of the event is lost;
    // the destructor still joins the thread.
  }
}

void WorkerParent::handle_online() {
  if (detached || online) return;
  online = true;
  // Messages are delivered from now on, so none comes before `online`.
  port.on_message([weak = weak_from_this()](MessageEvent& e) {
    if (std::shared_ptr<WorkerParent> p = weak.lock()) p->deliver(e);
  });
  if (std::shared_ptr<std::function<void()>> h = on_online) (*h)();
}

void WorkerParent::handle_error(const WorkerError& error) {
  if (detached) return;
  try {
    drain();
  } catch (...) {
    repost([error](WorkerParent& p) { p.handle_error(error); });
    throw;
  }
  if (detached) return;
  if (std::shared_ptr<ErrorHandler> h = on_error) {
    (*h)(error);
  } else {
    // Node: an 'error' event with no listener is an uncaught exception of
    // this thread. In a worker this throws; the exit event still follows
    // (unless this thread ends first and takes this Worker with it).
    raise_unhandled_error(error, *shared);
  }
}

void WorkerParent::handle_exit(int code) {
  if (detached || exit_emitted) return;
  if (!exit_seen) {
    // The thread posted this as its very last act: the join is immediate.
    join();
    exit_seen = true;
    update_keep_alive();
  }
  try {
    drain();
  } catch (...) {
    repost([code](WorkerParent& p) { p.handle_exit(code); });
    throw;
  }
  if (detached) return;
  exit_emitted = true;
  port = MessagePort();  // closed by the worker already; every message was delivered
  // has_ref() stays true while the handler runs, as Node's hasRef() does in
  // its 'exit' listener.
  ScopeExit over{[this]() noexcept { exit_over = true; }};
  if (std::shared_ptr<std::function<void(int)>> h = on_exit) (*h)(code);
}

void WorkerParent::update_keep_alive() {
  if (refed && !exit_seen && !detached) {
    if (!keep_alive.holds()) keep_alive = loop.keep_alive();
  } else {
    keep_alive.reset();
  }
}

void WorkerParent::shut_down(bool detach) noexcept {
  if (detached) return;
  detached = true;
  on_online.reset();
  // The Worker may be destroyed from inside its own message handler: that
  // handler lives on until deliver() returns.
  if (delivering) retired_on_message = std::move(on_message);
  on_message.reset();
  on_messageerror.reset();
  on_error.reset();
  on_exit.reset();
  request_terminate(*shared);
  if (detach && started && !joined) {
    // The thread holds its own references (WorkerShared, the loops' cores,
    // a weak one to this): it may outlive every object here.
    pthread_detach(thread);
    joined = true;
  } else {
    join();
  }
  keep_alive.reset();
  port = MessagePort();
}

}  // namespace weave::internal
