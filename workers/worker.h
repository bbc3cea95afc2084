// weave::Worker: Node's worker_threads for C++ — a function run on a new
// thread that has its own event loop, talking to the thread that started it
// (its parent) through a MessagePort.
//
//   weave::Worker w([] {
//     weave::parent_port()->on_message([](weave::MessageEvent& e) {
//       (void)weave::parent_port()->post_message(*e.get<std::int64_t>() * 2);
//       weave::parent_port()->close();   // nothing else keeps the worker up
//     });
//   });
//   w.on_message([](weave::MessageEvent& e) { std::printf("%s\n", e.data.to_string().c_str()); });
//   w.on_exit([](int code) { std::printf("exit %d\n", code); });
//   (void)w.post_message(21);
//   weave::run_loop();                    // prints 42, then "exit 0"
//
// What it defines: Worker, and WEAVE_WORKER_ENTRY for entry points found by
// name. It includes what a user of Worker needs with it: its options, events
// and counters (workers/worker_options.h); the calls a worker makes about
// itself (parent_port, worker_data, thread_id, this_worker::exit,
// set_exit_code, on_uncaught_exception, stop_token, arena:
// workers/this_worker.h); per-thread environment data and environment
// variables (Env: workers/env.h).
//
// Life of a worker: the constructor validates the options and starts the
// thread. The thread makes its EventLoop (EventLoop::current() there), runs
// the entry, then runs its loop until nothing referenced is left — a worker
// that listens on its parent port stays up until that port closes, it calls
// this_worker::exit, or it is terminated. When it ends, its parent port closes
// and the memory of its arena is freed; messages it posted live on, since
// they were cloned or transferred out.
//
// Events, on the loop of the thread that constructed the Worker (the parent),
// in this order: `online` (the worker's loop exists and its entry is about to
// run; not emitted for a worker terminated before it got that far); then `message` for each message
// the worker posted on its parent port, in post order, with `messageerror` in place of one that
// could not be decoded (on_message<T>); then `error` if an exception escaped the entry or a
// callback of the worker's loop and no on_uncaught_exception handler took it (the worker then ends
// with exit code 1; 7 if that handler itself threw); last `exit(code)`, after
// every message the worker posted was delivered and its thread has been joined. Messages travel on
// the port; online, error and exit are tasks the worker posts to the parent's loop after its
// earlier posts, and the parent drains the port before it emits error or exit, so the order holds
// whatever the timing.
//
// Exceptions: user code never takes the process down. An exception escaping
// the worker's entry or any callback on its loop becomes an `error` event
// (type name and what()), ArenaOutOfMemory one with code
// "ERR_WORKER_OUT_OF_MEMORY"; this_worker::on_uncaught_exception sees it
// first and may keep the worker going (workers/this_worker.h). An exception
// thrown by an event handler on the parent propagates out of the parent's
// run(), as from any loop callback; the event it interrupted is resumed by
// the next run().
//
// An `error` event with no on_error handler is, as in Node, an uncaught
// exception of the thread that owns the Worker. On a worker (a nested
// Worker's error) it is thrown there as UnhandledWorkerError: that worker
// ends with exit code 1 and its parent sees the inner error unchanged. On a
// thread that is not a worker, where Node would end the process, weave does
// not — a library never kills its host: the error is written to stderr as
// one line `weave: unhandled error of worker <id> ("<name>"): <type>: <what> [<code>]`
// (or given to that thread's on_uncaught_exception handler), and the exit
// event still follows.
//
// At process exit: a Worker's destructor joins its thread, so only threads
// given up through the pool's abandonment (workers/internal/pool_hooks.h) or
// still running when the process ends can outlive their Worker. Such a
// thread may run user code while static destructors run; this_worker::exit
// on the main thread waits for every live worker, at most
// this_worker::kExitGrace, before std::exit.
//
// Threading, the library-wide default rule: an object that belongs to a
// worker may be used only on that worker's thread unless its comment says
// otherwise. A Worker belongs to its parent thread; its members are "Owner
// thread only" except thread_id, name, exit_code, running, stats and
// event_loop_utilization ("Any thread", while the Worker exists). The
// free functions answer for the calling thread. Env is the one class here
// that any thread may use.
//
// Memory ordering: every write made before the Worker is constructed is
// visible to its entry; every write a worker makes before post_message(m) is
// visible to the parent's on_message handler for m (and likewise parent to
// worker); every write the worker made before it ended is visible to the
// on_exit handler and to whoever sees terminate()'s future ready.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <memory_resource>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "channel/codec.h"
#include "channel/message_port.h"
#include "channel/status.h"
#include "channel/value.h"
#include "loop/event_loop.h"
#include "workers/arena.h"
#include "workers/env.h"
#include "workers/this_worker.h"
#include "workers/worker_options.h"

namespace weave {

class Worker;

namespace internal {
class WorkerParent;
struct WorkerAccess;  // workers/internal/pool_hooks.h
}  // namespace internal

class Worker {
 public:
  using Entry = std::function<void()>;

  // Starts a worker that runs `entry`. Throws std::invalid_argument, naming
  // the option and its allowed range, for: an empty entry, a bad name, stack
  // size or arena limit, or a worker_data / transfer_list that cannot be
  // cloned (the DataCloneError's message); std::system_error if the thread
  // cannot be created (EAGAIN under RLIMIT_NPROC or a cgroup's pids.max);
  // std::bad_alloc if memory runs out. Whichever it throws, nothing started
  // and `options` is left as it was: the buffers in its transfer list are
  // attached with their bytes and its ports open, for the caller to keep or
  // retry with (the transfer is committed only once the thread exists). It
  // takes the transfer list's ports only on success. The calling thread
  // becomes the owner (the parent). May block (creating the thread).
  // Allocates.
  explicit Worker(Entry entry, WorkerOptions&& options = {});
  // Same, with an entry registered by WEAVE_WORKER_ENTRY(name); an unknown
  // name is an std::invalid_argument naming it.
  explicit Worker(std::string_view entry_name, WorkerOptions&& options = {});
  Worker(Worker&&) noexcept;
  // Ends the worker this held first, as the destructor does. Owner thread
  // only. May block.
  Worker& operator=(Worker&&) noexcept;
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;
  // A worker still running is terminated and joined here, so no thread
  // outlives its Worker; no event handler runs afterwards. May block (until
  // the worker reaches a loop turn or a stop_requested() check).
  ~Worker();

  // Event handlers (Node's 'online', 'message', 'messageerror', 'error',
  // 'exit'), run on the parent's loop. Each replaces the handler set before;
  // nullptr removes it. Set them right after construction: events wait for
  // the parent's loop to run. Owner thread only. Never blocks. Allocates.
  Worker& on_online(std::function<void()> handler);
  Worker& on_message(std::function<void(MessageEvent&)> handler);
  // A message handler that receives the data decoded as T through its Codec;
  // a message that does not decode is a messageerror instead.
  template <class T>
  Worker& on_message(std::function<void(T)> handler);
  Worker& on_messageerror(std::function<void(const WorkerError&)> handler);
  Worker& on_error(std::function<void(const WorkerError&)> handler);
  Worker& on_exit(std::function<void(int exit_code)> handler);

  // Posts to the worker's parent port (see MessagePort::post_message):
  // kClosed once the worker ended, kDataCloneError or kOutOfMemory with
  // nothing sent. Posts made before the worker listens wait for it. Owner
  // thread only. Never blocks. Allocates.
  Status post_message(const Value& value);
  Status post_message(const Value& value, Transfer&& transfer);
  template <class T>
  requires(!std::is_convertible_v<const T&, Value> && Encodable<T>) Status
      post_message(const T& value) {
    return post_message(to_value(value));
  }
  template <class T>
  requires(!std::is_convertible_v<const T&, Value> && Encodable<T>) Status
      post_message(const T& value, Transfer&& transfer) {
    return post_message(to_value(value), std::move(transfer));
  }

  // Stops the worker at its next loop turn — waking it if it waits in its
  // loop — or when its code next checks this_worker::stop_requested(); a
  // worker stopped this way exits with code 1. The future holds the exit
  // code once the worker's thread has finished (it does not wait for the
  // parent's loop, so get() on the parent thread cannot deadlock on it), or
  // std::nullopt at once if the worker had already finished (Node resolves
  // with undefined then). A worker that neither returns to its loop nor
  // checks stop_requested() cannot be stopped. Owner thread only. May block
  // (briefly: a lock the worker's last step also takes; it never waits for
  // the worker to stop). Allocates.
  std::future<std::optional<int>> terminate();

  // ref(): the worker keeps the parent's loop alive until its exit event
  // (the default). unref(): it does not. has_ref(): ref'd and its exit event
  // not over yet — true inside the on_exit handler, as in Node, false after
  // it. Owner thread only. Never blocks. Never allocates.
  Worker& ref();
  Worker& unref();
  [[nodiscard]] bool has_ref() const noexcept;

  // Unique and increasing across the process; 0 is the main thread. Any
  // thread. Never blocks. Never allocates.
  [[nodiscard]] int thread_id() const noexcept;
  [[nodiscard]] const std::string& name() const noexcept;
  // The exit code once the worker's thread has finished, before or after the
  // exit event ran; std::nullopt while it runs. running(): started and not
  // yet finished (false for a moved-from Worker). Any thread. Never blocks.
  // Never allocates.
  [[nodiscard]] std::optional<int> exit_code() const noexcept;
  [[nodiscard]] bool running() const noexcept;
  // Counters, read without stopping the worker (relaxed: each is exact for
  // some recent moment, not all for the same one). Any thread. Never blocks.
  // Never allocates.
  [[nodiscard]] WorkerStats stats() const noexcept;
  [[nodiscard]] LoopUtilization event_loop_utilization() const noexcept;

 private:
  Worker& on_message_decoded(std::function<Status(MessageEvent&)> handler);
  void start(Entry entry, WorkerOptions& options);
  void shut_down() noexcept;
  friend struct internal::WorkerAccess;

  std::shared_ptr<internal::WorkerParent> p_;
};

template <class T>
Worker& Worker::on_message(std::function<void(T)> handler) {
  static_assert(Encodable<T>, "weave::Worker::on_message<T>: T needs a weave::Codec<T>");
  if (!handler) return on_message_decoded(nullptr);
  return on_message_decoded([h = std::move(handler)](MessageEvent& e) -> Status {
    Result<T> decoded = e.get<T>();
    if (!decoded) return decoded.status();
    h(std::move(*decoded));
    return Status();
  });
}

namespace internal {
using EntryFunction = void (*)();
// For WEAVE_WORKER_ENTRY. False (and the first registration kept) if the
// name is taken. Any thread. May block (briefly). Allocates.
bool register_worker_entry(std::string_view name, EntryFunction entry);
// The entry registered under `name`, or nullptr. Any thread. May block
// (briefly, on the registry's lock). Never allocates.
[[nodiscard]] EntryFunction find_worker_entry(std::string_view name) noexcept;
}  // namespace internal

}  // namespace weave

// Defines a worker entry point that Worker("name") finds by name (and that a
// later process mode can start in another process). At namespace scope, once
// per program for each name:
//
//   WEAVE_WORKER_ENTRY(resize_images) { weave::parent_port()->on_message(...); }
//   weave::Worker w("resize_images");
//
// A second definition of the same name is a programming error (asserted in
// debug builds; the first one is kept).
#define WEAVE_WORKER_ENTRY(name)                                                   \
  static void weave_worker_entry_##name();                                         \
  [[maybe_unused]] static const bool weave_worker_entry_registered_##name =        \
      ::weave::internal::register_worker_entry(#name, &weave_worker_entry_##name); \
  static void weave_worker_entry_##name()
