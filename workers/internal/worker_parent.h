// WorkerParent: a Worker's state on its parent thread — the event state
// machine (online, message, messageerror, error, exit), the handlers, the
// keep-alive and the join. Private to //workers.
//
// Threading: created, used and destroyed on the parent thread only. Tasks
// from the worker's thread hold a weak_ptr and lock it only on the parent's
// thread (they run on the parent's loop).
#pragma once

#include <pthread.h>

#include <functional>
#include <memory>

#include "channel/message_port.h"
#include "channel/status.h"
#include "loop/event_loop.h"
#include "workers/internal/worker_thread.h"
#include "workers/worker_options.h"

namespace weave::internal {

class WorkerParent : public std::enable_shared_from_this<WorkerParent> {
 public:
  using MessageHandler = std::function<Status(MessageEvent&)>;
  using ErrorHandler = std::function<void(const WorkerError&)>;

  WorkerParent(std::shared_ptr<WorkerShared> s, LoopHandle parent_loop)
      : shared(std::move(s)), loop(std::move(parent_loop)), owner(pthread_self()) {}

  // The events, run by the tasks the worker posts to the parent's loop.
  void handle_online();
  // With no on_error handler: raise_unhandled_error (an uncaught exception
  // of this thread, as in Node).
  void handle_error(const WorkerError& error);
  void handle_exit(int code);
  void update_keep_alive();
  // No more events; the thread is asked to stop and joined, or with
  // `detach` let go instead (abandon_worker).
  void shut_down(bool detach = false) noexcept;
  [[nodiscard]] bool on_owner_thread() const noexcept {
    return pthread_equal(owner, pthread_self());
  }
  // Worker::has_ref(): ref'd, and the exit event not over yet.
  [[nodiscard]] bool has_ref() const noexcept { return refed && !exit_over && !detached; }

  const std::shared_ptr<WorkerShared> shared;
  const LoopHandle loop;  // the parent's
  const pthread_t owner;
  MessagePort port;  // the parent's end of the channel to the worker
  KeepAlive keep_alive;
  pthread_t thread{};
  bool started = false;
  bool joined = false;
  bool refed = true;
  bool online = false;
  bool exit_seen = false;     // the exit task ran: the thread is joined
  bool exit_emitted = false;  // on_exit was called
  bool exit_over = false;     // on_exit returned (or threw)
  bool detached = false;      // the Worker is gone: no more events
  // Shared, so that a handler that replaces itself keeps running safely.
  std::shared_ptr<std::function<void()>> on_online;
  std::shared_ptr<MessageHandler> on_message;
  std::shared_ptr<MessageHandler> retired_on_message;  // replaced while it ran
  bool delivering = false;
  std::shared_ptr<ErrorHandler> on_messageerror;
  std::shared_ptr<ErrorHandler> on_error;
  std::shared_ptr<std::function<void(int)>> on_exit;

 private:
  void deliver(MessageEvent& event);
  // Delivers every message still in the port; the worker posted them before
  // the error or exit being handled.
  void drain();
  void join() noexcept;
  template <class Fn>
  void repost(Fn fn) noexcept;
};

}  // namespace weave::internal
