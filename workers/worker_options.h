// What a Worker is built with and what it reports: WorkerOptions and its
// ResourceLimits and EnvMode; WorkerError (what an `error` or `messageerror`
// event carries) and UnhandledWorkerError (that error, thrown when nobody
// listens); WorkerStats and LoopUtilization (its counters). Included by
// workers/worker.h; see there for the Worker itself.
//
// Threading: plain values. Each object may be used by one thread at a time;
// copies may go to any thread. ResourceLimits::validate is Any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include "channel/message_port.h"
#include "channel/value.h"
#include "loop/event_loop.h"

namespace weave {

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

  // The one check of these limits (Worker and Pool both use it): throws
  // std::invalid_argument naming the field and its allowed range, as
  // "<option_name>.stack_size_bytes must be 0 (the default) or between 65536
  // and 1073741824; got 4096". `option_name` is how the caller's user spells
  // the option, e.g. "weave::Pool: options.resource_limits". Any thread.
  // Never blocks. Allocates (only to throw).
  void validate(std::string_view option_name) const;
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
  // If the Worker's constructor throws, the transfer list is left as it was:
  // its buffers attached, its ports open and usable by the caller.
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

// An `error` event that no on_error handler took, thrown (as Node makes an
// unlistened 'error' event an uncaught exception) on the worker that owns the
// Worker, from the loop callback that emitted the event. Unless that worker's
// this_worker::on_uncaught_exception handler takes it, the worker ends with
// exit code 1 and its own parent's `error` event carries error() unchanged —
// the innermost worker's code, type name and message. what() is the message.
// Never thrown on a thread that is not a worker (see workers/worker.h).
class UnhandledWorkerError : public std::runtime_error {
 public:
  explicit UnhandledWorkerError(WorkerError error)
      : std::runtime_error(error.message), error_(std::move(error)) {}
  [[nodiscard]] const WorkerError& error() const noexcept { return error_; }

 private:
  WorkerError error_;
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

}  // namespace weave
