// weave::EventLoop: one loop per thread that uses weave (the main thread
// included), in the shape of Node's event loop: timers, immediates, tasks
// posted from other threads and message sources (ports, channels; later file
// descriptors), all run on the loop's own thread, until nothing referenced is
// left.
//
// Threading: an EventLoop belongs to the thread that created it through
// EventLoop::current(); every member is "Owner thread only" unless its comment
// says "Any thread". Other threads reach a loop through a LoopHandle.
// The loop is destroyed when its thread exits; handles outlive it safely.
//
// Memory ordering: every write made before LoopHandle::post(task) is visible
// to `task` when it runs; every write made before a message is posted is
// visible to the handler that receives it (see channel/message_port.h).
//
// Waiting: an idle loop spins for a few microseconds, then parks on a futex
// without using a core. A post from another thread wakes it only if it is
// actually parked, so a busy loop pays no system call per message.
//
// Exceptions: an exception that escapes a callback propagates out of run();
// the loop stays consistent and run() may be called again. (Workers catch it
// and turn it into an `error` event.)
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <queue>
#include <unordered_map>
#include <vector>

#include "loop/internal/loop_core.h"
#include "loop/internal/task.h"

namespace weave {
namespace internal {
struct LoopSources;
}  // namespace internal

using Clock = std::chrono::steady_clock;
using Task = internal::Task;

class EventLoop;

// A timer, interval or immediate created by one loop. A cheap copyable handle;
// copies name the same timer. Owner thread only.
class Timer {
 public:
  Timer() = default;

  // Cancels it (clearTimeout/clearInterval/clearImmediate). Cancelling twice,
  // or after it fired, does nothing. Owner thread only. Never blocks.
  void cancel();
  // ref(): keeps the loop alive while pending (the default). unref(): does not.
  // Owner thread only. Never blocks. Never allocates.
  Timer& ref();
  Timer& unref();
  [[nodiscard]] bool has_ref() const;
  // True while it can still fire (an interval until cancelled).
  [[nodiscard]] bool active() const;
  [[nodiscard]] std::uint64_t id() const noexcept { return id_; }

 private:
  friend class EventLoop;
  Timer(EventLoop* loop, std::uint64_t id) : loop_(loop), id_(id) {}
  EventLoop* loop_ = nullptr;
  std::uint64_t id_ = 0;
};

// Keeps a loop alive while it exists, from any thread (a worker uses one to
// keep its parent's loop running). Movable RAII token. Any thread.
class KeepAlive {
 public:
  KeepAlive() = default;
  explicit KeepAlive(std::shared_ptr<internal::LoopCore> core);
  KeepAlive(KeepAlive&&) noexcept = default;
  KeepAlive& operator=(KeepAlive&& o) noexcept;
  KeepAlive(const KeepAlive&) = delete;
  KeepAlive& operator=(const KeepAlive&) = delete;
  ~KeepAlive() { reset(); }
  void reset();
  [[nodiscard]] bool holds() const noexcept { return core_ != nullptr; }

 private:
  std::shared_ptr<internal::LoopCore> core_;
};

// A reference to some thread's loop that any thread may use and keep; it stays
// valid after that thread and its loop are gone (posting then returns false).
class LoopHandle {
 public:
  LoopHandle() = default;
  explicit LoopHandle(std::shared_ptr<internal::LoopCore> core) : core_(std::move(core)) {}

  // Runs `task` on the loop's thread, after tasks posted earlier by the same
  // thread. Returns false (and drops nothing of the caller's: the task is
  // destroyed unrun) when the loop has ended. A queued task keeps the loop
  // alive until it ran. Any thread. Never blocks. Allocates (queue blocks, and
  // the task if it is larger than Task::kInlineBytes).
  bool post(Task task) const;
  // Makes run() return after the current callback. Any thread. Never blocks.
  void stop() const;
  // Keeps the loop alive until the token is reset. Any thread. Never blocks.
  [[nodiscard]] KeepAlive keep_alive() const;
  // True when this handle names the calling thread's loop. Any thread.
  [[nodiscard]] bool is_current() const noexcept;
  // The loop's turns and time parked so far (see EventLoop::turns); zero for
  // an empty handle. Any thread. Never blocks. Never allocates.
  [[nodiscard]] std::uint64_t turns_approx() const noexcept {
    return core_ ? core_->turns_approx() : 0;
  }
  [[nodiscard]] Clock::duration idle_time_approx() const noexcept {
    return core_ ? Clock::duration(core_->idle_time_approx()) : Clock::duration{};
  }
  [[nodiscard]] bool valid() const noexcept { return core_ != nullptr; }
  [[nodiscard]] internal::LoopCore* core() const noexcept { return core_.get(); }

  friend bool operator==(const LoopHandle& a, const LoopHandle& b) { return a.core_ == b.core_; }

 private:
  std::shared_ptr<internal::LoopCore> core_;
};

class EventLoop {
 public:
  enum class RunMode {
    kDefault,  // until nothing referenced is left, or stop()
    kOnce,     // turns until one ran a callback (a source's dispatch counts),
               // parking in between
    kNoWait,   // one turn; never parks
  };

  // The calling thread's loop, created on first use. Any thread (each gets its
  // own). Allocates on first use.
  static EventLoop& current();

  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Runs the loop. Returns true if referenced work remains (after kOnce,
  // kNoWait or stop()), false when the loop ran dry. Must not be called from
  // inside one of this loop's callbacks. Owner thread only. May block.
  bool run(RunMode mode = RunMode::kDefault);
  // Makes run() return after the current callback. Owner thread only.
  void stop() noexcept;
  // True while something referenced is pending. Owner thread only.
  [[nodiscard]] bool alive() const noexcept;

  // setTimeout / setInterval / setImmediate. `delay` below zero counts as 0.
  // Each turn runs, in this order: the timers due at its start (those due
  // together in the order they were set), tasks posted from other threads,
  // message sources, then the immediates queued before the immediate phase
  // began (in order; ones queued by them wait for the next turn).
  // Owner thread only. Never blocks. Allocates.
  Timer set_timeout(Clock::duration delay, Task fn);
  Timer set_interval(Clock::duration period, Task fn);
  Timer set_immediate(Task fn);

  // Runs `fn` on this loop; same as handle().post(fn). Any thread.
  bool post(Task fn) const { return handle().post(std::move(fn)); }
  // A handle other threads may keep. Any thread.
  [[nodiscard]] LoopHandle handle() const { return LoopHandle(core_); }

  // Counters for utilization: loop turns, and time spent parked in the
  // kernel (the short spin before parking counts as busy). Other threads read
  // them through LoopHandle. Owner thread only. Never blocks. Never allocates.
  [[nodiscard]] std::uint64_t turns() const noexcept { return core_->turns_approx(); }
  [[nodiscard]] Clock::duration idle_time() const noexcept { return core_->idle_time_approx(); }

  ~EventLoop();

 private:
  friend class Timer;
  friend struct internal::LoopSources;  // weave's own sources: loop/internal/sources.h
  // For weave's own sources, through internal::LoopSources (see there).
  void add_source(std::shared_ptr<internal::LoopSource> source, bool refed);
  void remove_source(internal::LoopSource* source) noexcept;
  void set_source_ref(internal::LoopSource* source, bool refed);
  void mark_hot(internal::LoopSource* source) {
    source->idle_polls_ = 0;
    if (!source->hot_) add_hot(source);  // once: then every dispatch stays here
  }
  struct TimerRec {
    Task fn;
    Clock::duration period{};  // > 0 for intervals
    Clock::time_point due{};
    std::uint64_t seq = 0;  // ordering among equal deadlines
    bool repeat = false;
    bool immediate = false;
    bool refed = true;
    bool running = false;
  };
  struct HeapEntry {
    Clock::time_point due;
    std::uint64_t seq;
    std::uint64_t id;
    bool operator>(const HeapEntry& o) const { return due != o.due ? due > o.due : seq > o.seq; }
  };
  struct SourceRec {
    std::shared_ptr<internal::LoopSource> source;
    bool refed = false;
  };

  EventLoop();
  Timer add_timer(Clock::duration delay, Task fn, bool repeat, bool immediate);
  void cancel_timer(std::uint64_t id);
  void set_timer_ref(std::uint64_t id, bool refed);
  void run_timers();
  void run_immediates();
  void run_ready_sources();
  void run_hot_sources();
  // Arms the hot sources that poll() had nothing for in `min_idle_polls`
  // polls or more; false if one of them found work while being armed.
  bool arm_hot_sources(std::uint32_t min_idle_polls);
  bool poll_hot_sources() noexcept;
  // Dispatches a registered source; it stays alive through the call even if
  // the call unregisters it (see dispatch_keep_).
  void dispatch_source(internal::LoopSource* source);
  void park(bool may_block);
  void add_hot(internal::LoopSource* source);
  // Checked between callbacks: inline, a plain load of a word of our own and
  // one of the core's.
  bool should_stop() noexcept {
    if (!stop_ && core_->take_stop_request()) [[unlikely]] {
      stop_ = true;
    }
    return stop_;
  }

  std::shared_ptr<internal::LoopCore> core_;
  std::unordered_map<std::uint64_t, TimerRec> timers_;
  std::priority_queue<HeapEntry, std::vector<HeapEntry>, std::greater<>> heap_;
  std::vector<std::uint64_t> immediates_;
  std::unordered_map<internal::LoopSource*, SourceRec> sources_;
  std::vector<internal::LoopSource*> ready_;  // scratch for one turn
  // The source being dispatched, and its owning reference if the dispatch
  // unregistered it: released when the dispatch returns. Saves two atomic
  // reference-count updates per dispatch.
  internal::LoopSource* dispatching_ = nullptr;
  std::shared_ptr<internal::LoopSource> dispatch_keep_;
  // Hot sources (registered in sources_); a removed one leaves a nullptr,
  // and hot_holes_ says one may be there.
  std::vector<internal::LoopSource*> hot_;
  bool hot_holes_ = false;
  // Removed while still on the ready stack; freed after the next take.
  std::vector<std::shared_ptr<internal::LoopSource>> retired_;
  std::uint64_t next_timer_id_ = 1;
  std::uint64_t next_seq_ = 0;
  std::int64_t refs_ = 0;  // refed pending timers + immediates + refed sources
  bool running_ = false;
  bool stop_ = false;
  std::uint64_t callbacks_ = 0;
};

// Node-style shorthands for the calling thread's loop.
inline Timer set_timeout(Clock::duration d, Task fn) {
  return EventLoop::current().set_timeout(d, std::move(fn));
}
inline Timer set_interval(Clock::duration d, Task fn) {
  return EventLoop::current().set_interval(d, std::move(fn));
}
inline Timer set_immediate(Task fn) { return EventLoop::current().set_immediate(std::move(fn)); }
// Runs the calling thread's loop until nothing referenced is left.
inline void run_loop() { EventLoop::current().run(); }

}  // namespace weave
