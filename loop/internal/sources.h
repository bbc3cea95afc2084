// internal::LoopSources: how weave's own message sources (ports, broadcast
// channels, the pool's worker source) register with a loop and reach its
// core. Not for users: EventLoop's public API is timers, immediates, posts
// and run(); a source is a protocol between a producer and one loop (see
// internal::LoopSource in loop/internal/loop_core.h).
//
// Threading: every function is Owner thread only (the loop's), except that
// core() may be kept and used from other threads as LoopCore allows.
//
// internal::LoopTesting, below: white-box counters for tests.
#pragma once

#include <cstddef>
#include <memory>

#include "loop/event_loop.h"
#include "loop/internal/loop_core.h"

namespace weave::internal {

struct LoopSources {
  // Registers a source that other threads may schedule through core(); the
  // loop keeps it alive until remove(). Owner thread only. Allocates (also the
  // room remove() will need).
  static void add(EventLoop& loop, std::shared_ptr<LoopSource> source, bool refed) {
    loop.add_source(std::move(source), refed);
  }
  // Unregisters it; the caller must already have made sure no producer will
  // schedule it again (see LoopSource). Owner thread only. Never allocates (a
  // port leaving inside a post must not fail half-way).
  static void remove(EventLoop& loop, LoopSource* source) noexcept { loop.remove_source(source); }
  // Whether a registered source keeps the loop alive. Owner thread only.
  static void set_ref(EventLoop& loop, LoopSource* source, bool refed) {
    loop.set_source_ref(source, refed);
  }
  // Puts a registered source on the hot list: polled every turn and while
  // spinning, armed before the loop parks (see LoopSource). Called by the
  // source's dispatch when it ran dry. Owner thread only.
  static void mark_hot(EventLoop& loop, LoopSource* source) { loop.mark_hot(source); }
  // The loop's cross-thread core (schedule, post). Owner thread only to get;
  // the reference is valid while the loop lives.
  static LoopCore& core(EventLoop& loop) noexcept { return *loop.core_; }
  // The same through a handle (nullptr for an empty one), valid while the
  // handle is. Any thread. Never blocks. Never allocates.
  static LoopCore* core(const LoopHandle& handle) noexcept { return handle.core_.get(); }
};

struct LoopTesting {
  // Entries in the loop's timer heap: pending timeouts and intervals, with no
  // cancelled ones left behind. Owner thread only. Never blocks. Never
  // allocates.
  [[nodiscard]] static std::size_t timer_heap_size(const EventLoop& loop) noexcept {
    return loop.heap_.size();
  }
  // Timer records held (timers, intervals, immediates not yet run or
  // cancelled). Owner thread only. Never blocks. Never allocates.
  [[nodiscard]] static std::size_t timer_count(const EventLoop& loop) noexcept {
    return loop.timers_.size();
  }
  // Registered sources (ports, pending asynchronous waits, ...). Owner thread
  // only. Never blocks. Never allocates.
  [[nodiscard]] static std::size_t source_count(const EventLoop& loop) noexcept {
    return loop.sources_.size();
  }
};

}  // namespace weave::internal
