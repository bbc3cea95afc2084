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
//
// Durations: a delay or period goes through weave::deadline_after
// (base/deadline.h): it saturates instead of overflowing, and kForever (or any
// duration of ~100 years or more, or a floating-point NaN) means "never fires"
// — such a timer, while refed, keeps the loop alive for good.
//
// The end of a loop: when its thread exits, the loop ends. Tasks posted to it
// that it never ran are destroyed unrun (on that thread), exactly as a post()
// after the end is refused and destroyed: no user code runs during thread
// exit. Pending timers and asynchronous waits are dropped the same way, and a
// Timer or AsyncWait kept past its loop is harmless (it reports inactive).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "base/deadline.h"
#include "loop/internal/task.h"

namespace weave {
namespace internal {
class LoopCore;
class LoopSource;
struct LoopSources;
struct LoopTesting;
}  // namespace internal

using Clock = std::chrono::steady_clock;
using Task = internal::Task;

class EventLoop;

// A timer, interval or immediate created by one loop. A cheap copyable handle;
// copies name the same timer. Owner thread only; once its loop has ended (or
// on another thread) every call is harmless: cancel() and ref() do nothing,
// has_ref() and active() are false.
class Timer {
 public:
  Timer() = default;

  // Cancels it (clearTimeout/clearInterval/clearImmediate) and frees what it
  // held at once. Cancelling twice, or after it fired, does nothing. Owner
  // thread only. Never blocks. Never allocates.
  void cancel();
  // ref(): keeps the loop alive while pending (the default). unref(): does not.
  // Owner thread only. Never blocks. Never allocates.
  Timer& ref();
  Timer& unref();
  // Owner thread only. Never blocks. Never allocates.
  [[nodiscard]] bool has_ref() const;
  // True while it can still fire (an interval until cancelled).
  // Owner thread only. Never blocks. Never allocates.
  [[nodiscard]] bool active() const;
  // Any thread. Never blocks. Never allocates.
  [[nodiscard]] std::uint64_t id() const noexcept { return id_; }

 private:
  friend class EventLoop;
  Timer(std::uint64_t loop_serial, std::uint64_t id) : loop_serial_(loop_serial), id_(id) {}
  // The loop it belongs to, by a process-unique serial rather than a pointer:
  // a Timer that outlives its loop finds no loop with that serial.
  std::uint64_t loop_serial_ = 0;
  std::uint64_t id_ = 0;
};

// Keeps a loop alive while it exists, from any thread (a worker uses one to
// keep its parent's loop running). Movable RAII token; made by
// LoopHandle::keep_alive(). Any thread.
class KeepAlive {
 public:
  KeepAlive() = default;
  KeepAlive(KeepAlive&&) noexcept = default;
  KeepAlive& operator=(KeepAlive&& o) noexcept;
  KeepAlive(const KeepAlive&) = delete;
  KeepAlive& operator=(const KeepAlive&) = delete;
  ~KeepAlive() { reset(); }
  // Releases the reference (once). Any thread. Never blocks. Never allocates.
  void reset();
  // Any thread. Never blocks. Never allocates.
  [[nodiscard]] bool holds() const noexcept { return core_ != nullptr; }

 private:
  friend class LoopHandle;
  explicit KeepAlive(std::shared_ptr<internal::LoopCore> core);
  std::shared_ptr<internal::LoopCore> core_;
};

// A reference to some thread's loop that any thread may use and keep; it stays
// valid after that thread and its loop are gone (posting then returns false).
// Made by EventLoop::handle().
class LoopHandle {
 public:
  LoopHandle() = default;

  // Runs `task` on the loop's thread, after tasks posted earlier by the same
  // thread. Returns false (and drops nothing of the caller's: the task is
  // destroyed unrun) when the loop has ended. A queued task keeps the loop
  // alive until it ran; if the loop's thread exits first, without running the
  // loop again, the task is destroyed unrun there (see the top). Any thread.
  // Never blocks. Allocates (queue blocks, and the task if it is larger than
  // Task::kInlineBytes).
  bool post(Task task) const;
  // Makes run() return after the current callback. Any thread. Never blocks.
  void stop() const;
  // Keeps the loop alive until the token is reset. Any thread. Never blocks.
  [[nodiscard]] KeepAlive keep_alive() const;
  // True when this handle names the calling thread's loop. Any thread.
  [[nodiscard]] bool is_current() const noexcept;
  // The loop's turns and time parked so far (see EventLoop::turns); zero for
  // an empty handle. Any thread. Never blocks. Never allocates.
  [[nodiscard]] std::uint64_t turns_approx() const noexcept;
  [[nodiscard]] Clock::duration idle_time_approx() const noexcept;
  // Any thread. Never blocks. Never allocates.
  [[nodiscard]] bool valid() const noexcept { return core_ != nullptr; }

  friend bool operator==(const LoopHandle& a, const LoopHandle& b) { return a.core_ == b.core_; }

 private:
  friend class EventLoop;
  friend struct internal::LoopSources;
  explicit LoopHandle(std::shared_ptr<internal::LoopCore> core) : core_(std::move(core)) {}
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

  // setTimeout / setInterval / setImmediate. `delay` at or below zero counts
  // as 0; kForever (see base/deadline.h: also ~100 years or more, or NaN)
  // never fires; other delays are rounded up to the clock's tick, never down.
  // Each turn runs, in this order: the timers due at its start (those due
  // together in the order they were set), tasks posted from other threads,
  // message sources, then the immediates queued before the immediate phase
  // began (in order; ones queued by them wait for the next turn).
  // Owner thread only. Never blocks. Allocates.
  template <class Rep, class Period>
  Timer set_timeout(std::chrono::duration<Rep, Period> delay, Task fn) {
    return add_timer(to_delay(delay), std::move(fn), false, false);
  }
  // Like Node, a zero or negative period repeats as fast as turns allow, but
  // at least one turn apart: timers due now run once per turn.
  template <class Rep, class Period>
  Timer set_interval(std::chrono::duration<Rep, Period> period, Task fn) {
    return add_timer(to_delay(period), std::move(fn), true, false);
  }
  Timer set_immediate(Task fn);

  // Runs `fn` on this loop; same as handle().post(fn). Any thread.
  bool post(Task fn) const { return handle().post(std::move(fn)); }
  // A handle other threads may keep. Any thread.
  [[nodiscard]] LoopHandle handle() const { return LoopHandle(core_); }

  // Counters for utilization: loop turns, and time spent parked in the
  // kernel (the short spin before parking counts as busy). Other threads read
  // them through LoopHandle. Owner thread only. Never blocks. Never allocates.
  [[nodiscard]] std::uint64_t turns() const noexcept;
  [[nodiscard]] Clock::duration idle_time() const noexcept;

  // Ends the loop (see the top): posted tasks not yet run, timers and
  // asynchronous waits are destroyed unrun. Runs at thread exit.
  ~EventLoop();

 private:
  friend class Timer;
  friend struct internal::LoopSources;  // weave's own sources: loop/internal/sources.h
  friend struct internal::LoopTesting;  // white-box counters for tests: same header
  // A delay as the loop's duration: saturating, forever for kForever or NaN.
  template <class Rep, class Period>
  static Clock::duration to_delay(std::chrono::duration<Rep, Period> d) noexcept {
    if (is_forever(d)) return kForever;
    if (!(d > std::chrono::duration<Rep, Period>::zero())) return Clock::duration::zero();
    return std::chrono::ceil<Clock::duration>(d);  // below the threshold: fits
  }
  // For weave's own sources, through internal::LoopSources (see there).
  void add_source(std::shared_ptr<internal::LoopSource> source, bool refed);
  void remove_source(internal::LoopSource* source) noexcept;
  void set_source_ref(internal::LoopSource* source, bool refed);
  void mark_hot(internal::LoopSource* source);

  static constexpr std::size_t kNotInHeap = static_cast<std::size_t>(-1);
  struct TimerRec {
    Task fn;
    Clock::duration period{};  // for intervals
    Clock::time_point due{};   // time_point::max(): never
    std::uint64_t id = 0;
    std::uint64_t seq = 0;  // ordering among equal deadlines
    // Where it sits in heap_, kept up to date by every heap move: a cancel
    // removes it in O(log n). kNotInHeap for immediates and for an interval
    // while its callback runs.
    std::size_t heap_index = kNotInHeap;
    bool repeat = false;
    bool immediate = false;
    bool refed = true;
  };
  // A binary min-heap on (due, seq), entries pointing at their records (the
  // records live in timers_, whose nodes never move).
  struct HeapEntry {
    Clock::time_point due;
    std::uint64_t seq;
    TimerRec* rec;
    bool before(const HeapEntry& o) const noexcept {
      return due != o.due ? due < o.due : seq < o.seq;
    }
  };
  struct SourceRec {
    std::shared_ptr<internal::LoopSource> source;
    bool refed = false;
  };

  EventLoop();
  // The calling thread's loop if it is the live loop with this serial.
  static EventLoop* live_loop(std::uint64_t serial) noexcept;
  Timer add_timer(Clock::duration delay, Task fn, bool repeat, bool immediate);
  void cancel_timer(std::uint64_t id) noexcept;
  void set_timer_ref(std::uint64_t id, bool refed) noexcept;
  void heap_push(TimerRec* rec);
  void heap_remove(std::size_t i) noexcept;
  void heap_place(std::size_t i, const HeapEntry& e) noexcept;
  void sift_up(std::size_t i) noexcept;
  void sift_down(std::size_t i) noexcept;
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
  // Checked between callbacks: a plain load of a word of our own and one of
  // the core's.
  bool should_stop() noexcept;

  std::shared_ptr<internal::LoopCore> core_;
  const std::uint64_t serial_;  // process-unique, for Timer (see there)
  bool ending_ = false;         // in ~EventLoop: Timers no longer reach it
  std::unordered_map<std::uint64_t, TimerRec> timers_;
  std::vector<HeapEntry> heap_;
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
template <class Rep, class Period>
Timer set_timeout(std::chrono::duration<Rep, Period> d, Task fn) {
  return EventLoop::current().set_timeout(d, std::move(fn));
}
template <class Rep, class Period>
Timer set_interval(std::chrono::duration<Rep, Period> d, Task fn) {
  return EventLoop::current().set_interval(d, std::move(fn));
}
inline Timer set_immediate(Task fn) { return EventLoop::current().set_immediate(std::move(fn)); }
// Runs the calling thread's loop until nothing referenced is left.
inline void run_loop() { EventLoop::current().run(); }

}  // namespace weave
