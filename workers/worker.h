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
// What it defines: Worker and its options, events and counters; the calls a
// worker makes about itself (parent_port, worker_data, thread_id, this_worker::
// exit, stop_token, arena); per-thread environment data and environment
// variables (Env); WEAVE_WORKER_ENTRY for entry points found by name.
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
// callback of the worker's loop (the worker then ends with exit code 1); last `exit(code)`, after
// every message the worker posted was delivered and its thread has been joined. Messages travel on
// the port; online, error and exit are tasks the worker posts to the parent's loop after its
// earlier posts, and the parent drains the port before it emits error or exit, so the order holds
// whatever the timing.
//
// Exceptions: user code never takes the process down. An exception escaping
// the worker's entry or any callback on its loop becomes an `error` event
// (type name and what()), ArenaOutOfMemory one with code
// "ERR_WORKER_OUT_OF_MEMORY". An exception thrown by an event handler on the
// parent propagates out of the parent's run(), as from any loop callback; the
// event it interrupted is resumed by the next run().
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

namespace weave {

class Worker;

namespace internal {
class WorkerParent;
struct WorkerAccess;  // workers/internal/pool_hooks.h
}  // namespace internal

// Limits on a worker's resources (Node's resourceLimits).
struct ResourceLimits {
  // The most bytes the worker's arena may hand out at once; 0 = unlimited.
  // At most kMaxArenaBytes.
  std::size_t max_arena_bytes = 0;
  // The thread's stack; 0 = the system default. Otherwise between
  // kMinStackBytes and kMaxStackBytes, rounded up to whole pages.
  std::size_t stack_size_bytes = 0;

  static constexpr std::size_t kMaxArenaBytes = std::size_t{1} << 40;   // 1 TiB
  static constexpr std::size_t kMinStackBytes = std::size_t{64} << 10;  // 64 KiB
  static constexpr std::size_t kMaxStackBytes = std::size_t{1} << 30;   // 1 GiB
};

// The worker's environment variables (see Env): its own copy of the parent's,
// taken at construction, or the parent's very object (Node's SHARE_ENV).
enum class EnvMode { kCopy, kShare };

struct WorkerOptions {
  // Reported by worker_name() and set as the thread's name (truncated to 15
  // bytes; "worker-<id>" when empty). At most kMaxNameBytes, no NUL byte.
  std::string name;
  // Cloned (structured clone) into the worker at construction; the worker
  // reads it with worker_data(). Buffers listed in transfer_list move instead
  // (same memory in the worker, detached here); ports listed there arrive in
  // worker_data_ports(). A SharedArrayBuffer in it is shared: the worker's
  // handle is the same memory (listing one in transfer_list is refused).
  Value worker_data;
  Transfer transfer_list;
  ResourceLimits resource_limits;
  EnvMode env = EnvMode::kCopy;
  // false: as if unref() were called right after construction.
  bool ref = true;

  static constexpr std::size_t kMaxNameBytes = 256;
};

// What an `error` or `messageerror` event carries.
struct WorkerError {
  // "ERR_UNCAUGHT_EXCEPTION" (an exception escaped the worker's code),
  // "ERR_WORKER_OUT_OF_MEMORY" (its arena limit was hit), or
  // "ERR_WORKER_MESSAGE_DECODE" (messageerror: a message did not decode).
  std::string code;
  // The exception's demangled type ("std::runtime_error", "int"), or for a
  // messageerror the kind of the decode Status ("TypeError").
  std::string type_name;
  // what() for a std::exception, the Status message for a messageerror.
  std::string message;
};

// Counters of one worker, readable while it runs.
struct WorkerStats {
  std::uint64_t messages_in = 0;   // posts to the worker accepted (Worker::post_message)
  std::uint64_t messages_out = 0;  // messages from the worker delivered to the parent
  std::size_t arena_bytes = 0;     // ArenaStats::bytes_in_use
  std::size_t arena_peak_bytes = 0;
  std::size_t arena_reserved_bytes = 0;
  std::uint64_t loop_turns = 0;  // turns of the worker's loop so far
};

// Node's performance.eventLoopUtilization() for a worker: since its loop was
// made, how long it sat parked waiting (idle) and how long it was not
// (active: the entry, callbacks, the short spin before parking).
struct LoopUtilization {
  Clock::duration idle{};
  Clock::duration active{};
  double utilization = 0;  // active / (idle + active); 0 before the loop exists
};

class Worker {
 public:
  using Entry = std::function<void()>;

  // Starts a worker that runs `entry`. Throws std::invalid_argument, naming
  // the option and its allowed range, for: an empty entry, a bad name, stack
  // size or arena limit, or a worker_data / transfer_list that cannot be
  // cloned (the DataCloneError's message) — then nothing started and no
  // buffer in the transfer list was detached. std::system_error if the
  // thread cannot be created, std::bad_alloc if memory runs out (nothing
  // started either way). The calling thread becomes the owner (the
  // parent). May block (creating the thread). Allocates.
  explicit Worker(Entry entry, WorkerOptions options = {});
  // Same, with an entry registered by WEAVE_WORKER_ENTRY(name); an unknown
  // name is an std::invalid_argument naming it.
  explicit Worker(std::string_view entry_name, WorkerOptions options = {});
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
  // (the default). unref(): it does not. Owner thread only. Never blocks.
  // Never allocates.
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
  void start(Entry entry, WorkerOptions options);
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

// --- the calling thread -----------------------------------------------------------
// Each answers for the calling thread: a worker, or the main thread (any
// thread that is not a weave worker answers as the main thread does).

// The worker's end of the channel to its parent; nullptr outside a worker.
// Owner thread only (the worker's). Never blocks. Never allocates.
[[nodiscard]] MessagePort* parent_port() noexcept;
// The worker's clone of WorkerOptions::worker_data; undefined outside a
// worker. Owner thread only. Never blocks. Never allocates.
[[nodiscard]] const Value& worker_data() noexcept;
// The ports from WorkerOptions::transfer_list, in order, for the worker to
// take; empty outside a worker. Owner thread only. Never blocks. Never
// allocates.
[[nodiscard]] std::vector<MessagePort>& worker_data_ports() noexcept;
// 0 on the main thread; the Worker's thread_id() in a worker. Any thread.
// Never blocks. Never allocates.
[[nodiscard]] int thread_id() noexcept;
// WorkerOptions::name in a worker; "" on the main thread. Any thread. Never
// blocks. Never allocates.
[[nodiscard]] std::string_view worker_name() noexcept;
// False in a worker. Any thread. Never blocks. Never allocates.
[[nodiscard]] bool is_main_thread() noexcept;

// Node's setEnvironmentData / getEnvironmentData: per-thread values, cloned
// into every Worker this thread starts afterwards (a worker gets its parent's
// set as it was at construction). Setting undefined removes the key. A value
// that cannot be cloned is a kDataCloneError and changes nothing. Owner
// thread only. Never blocks. Allocates.
[[nodiscard]] Status set_environment_data(std::string key, Value value);
// A clone of the value under `key`, or std::nullopt. Owner thread only.
// Never blocks. Allocates.
[[nodiscard]] std::optional<Value> get_environment_data(std::string_view key);

// Environment variables as Node's process.env sees them: the main thread's is
// a snapshot of `environ` taken at first use; a worker's is a copy of its
// parent's made at construction (EnvMode::kCopy) or the parent's object
// itself (EnvMode::kShare). Changing one never calls setenv(): the process
// environment is not thread-safe to change. Every member: Any thread (a
// mutex inside). May block (briefly, on that mutex). Allocates.
//
// A kCopy worker's Env shares its parent's variables until either side
// changes one (copy on write), so starting a worker copies no strings.
class Env {
 public:
  using Map = std::map<std::string, std::string, std::less<>>;
  Env() : vars_(std::make_shared<const Map>()) {}
  explicit Env(Map vars) : vars_(std::make_shared<const Map>(std::move(vars))) {}

  // A new Env with the same variables, sharing them until one side writes.
  [[nodiscard]] std::shared_ptr<Env> fork() const;

  [[nodiscard]] std::optional<std::string> get(std::string_view name) const;
  void set(std::string name, std::string value);
  // True if it was set.
  bool unset(std::string_view name);
  [[nodiscard]] Map snapshot() const;

 private:
  mutable std::mutex mu_;
  // Never changed in place: a write installs a changed copy, so a fork may
  // keep reading the old one.
  std::shared_ptr<const Map> vars_;
};

// The calling thread's environment variables. Any thread. Never blocks.
// Allocates on first use.
[[nodiscard]] Env& env();

namespace this_worker {

// Ends the calling worker with `code` (Node's process.exit in a worker). It
// unwinds the worker's stack with an exception of an internal type that is
// not a std::exception; destructors run on the way out. Code that catches
// everything (catch (...)) without rethrowing swallows the unwinding, but not
// the exit: the worker still ends with `code` at its next loop turn or when
// its entry returns. Must not be called from a destructor. Outside a worker
// it is std::exit(code), as process.exit is on Node's main thread. Owner
// thread only. Never blocks. Allocates (the exception).
[[noreturn]] void exit(int code);
// Requested by Worker::terminate(): long computations poll it (or register a
// std::stop_callback, which then runs on the terminating thread). Outside a
// worker, a token that is never requested. Any thread (answers for the
// caller). Never blocks. Never allocates.
[[nodiscard]] std::stop_token stop_token() noexcept;
[[nodiscard]] bool stop_requested() noexcept;
// The worker's arena (workers/arena.h), capped by max_arena_bytes; outside a
// worker, std::pmr::new_delete_resource(). Never allocates.
[[nodiscard]] std::pmr::memory_resource* arena() noexcept;
// Its counters; zeros outside a worker. Never blocks. Never allocates.
[[nodiscard]] ArenaStats arena_stats() noexcept;

}  // namespace this_worker

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
