#include "loop/event_loop.h"

#include <algorithm>
#include <atomic>
#include <cassert>
#include <optional>
#include <utility>

#include "atomics/internal/barrier.h"
#include "base/internal/scope_exit.h"
#include "loop/internal/loop_core.h"

namespace weave {

using internal::ScopeExit;

namespace {
// A hot source that had nothing for this many polls in a row is armed even
// though the loop is busy, so a loop that talked to many ports once does not
// poll all of them forever. Arming costs a heavy barrier, shared by every
// source armed at once.
constexpr std::uint32_t kIdlePollsBeforeArm = 64;

// The owning pointer, and a plain copy of it for Timer's checks: a trivial
// thread_local, readable even from thread_local destructors that run after the
// loop's.
thread_local std::unique_ptr<EventLoop> tls_loop;
constinit thread_local EventLoop* tls_live_loop = nullptr;

// Serials for Timer: 0 is "no loop".
std::atomic<std::uint64_t> g_next_loop_serial{1};
}  // namespace

// --- Timer ---------------------------------------------------------------------

void Timer::cancel() {
  if (EventLoop* loop = EventLoop::live_loop(loop_serial_)) loop->cancel_timer(id_);
}
Timer& Timer::ref() {
  if (EventLoop* loop = EventLoop::live_loop(loop_serial_)) loop->set_timer_ref(id_, true);
  return *this;
}
Timer& Timer::unref() {
  if (EventLoop* loop = EventLoop::live_loop(loop_serial_)) loop->set_timer_ref(id_, false);
  return *this;
}
bool Timer::has_ref() const {
  EventLoop* loop = EventLoop::live_loop(loop_serial_);
  if (!loop) return false;
  auto it = loop->timers_.find(id_);
  return it != loop->timers_.end() && it->second.refed;
}
bool Timer::active() const {
  EventLoop* loop = EventLoop::live_loop(loop_serial_);
  return loop && loop->timers_.count(id_) != 0;
}

// --- KeepAlive / LoopHandle ------------------------------------------------------

KeepAlive::KeepAlive(std::shared_ptr<internal::LoopCore> core) : core_(std::move(core)) {
  if (core_) core_->add_external_ref();
}
KeepAlive& KeepAlive::operator=(KeepAlive&& o) noexcept {
  if (this != &o) {
    reset();
    core_ = std::move(o.core_);
  }
  return *this;
}
void KeepAlive::reset() {
  if (core_) core_->release_external_ref();
  core_.reset();
}

bool LoopHandle::post(Task task) const { return core_ && core_->post(std::move(task)); }
void LoopHandle::stop() const {
  if (core_) core_->request_stop();
}
KeepAlive LoopHandle::keep_alive() const { return KeepAlive(core_); }
bool LoopHandle::is_current() const noexcept { return core_ && core_->owned_by_current_thread(); }
std::uint64_t LoopHandle::turns_approx() const noexcept {
  return core_ ? core_->turns_approx() : 0;
}
Clock::duration LoopHandle::idle_time_approx() const noexcept {
  return core_ ? Clock::duration(core_->idle_time_approx()) : Clock::duration{};
}

// --- EventLoop -------------------------------------------------------------------

EventLoop& EventLoop::current() {
  if (!tls_loop) {
    tls_loop.reset(new EventLoop());
    tls_live_loop = tls_loop.get();
  }
  return *tls_loop;
}

EventLoop* EventLoop::live_loop(std::uint64_t serial) noexcept {
  EventLoop* loop = tls_live_loop;
  return loop != nullptr && serial != 0 && loop->serial_ == serial && !loop->ending_ ? loop
                                                                                     : nullptr;
}

EventLoop::EventLoop()
    : core_(std::make_shared<internal::LoopCore>()),
      serial_(g_next_loop_serial.fetch_add(1, std::memory_order_relaxed)) {  // unique: no order
  core_->bind_to_current_thread();
}

EventLoop::~EventLoop() {
  // From here on Timers are inert: a destructor run below that cancels one
  // does not touch the tables being torn down.
  ending_ = true;
  // Tasks posted and not run are destroyed unrun (see event_loop.h).
  core_->shut_down();
  // Sources still registered (ports whose owners outlive the thread) are
  // released here; their inboxes stay valid for the peers, who will see them
  // as unbound and keep queuing until the port is destroyed. Pending
  // asynchronous waits are sources too: they withdraw and drop their
  // callbacks unrun.
  auto sources = std::move(sources_);
  sources_.clear();
  hot_.clear();
  for (auto& [raw, rec] : sources) rec.source->on_loop_destroyed();
  sources.clear();
  heap_.clear();
  immediates_.clear();
  auto timers = std::move(timers_);
  timers_.clear();
  timers.clear();  // destroys pending callbacks unrun
  if (tls_live_loop == this) tls_live_loop = nullptr;
}

bool EventLoop::alive() const noexcept {
  return refs_ > 0 || core_->has_pending_tasks() || core_->has_external_refs();
}

void EventLoop::stop() noexcept { stop_ = true; }

bool EventLoop::should_stop() noexcept {
  if (!stop_ && core_->take_stop_request()) [[unlikely]] {
    stop_ = true;
  }
  return stop_;
}

std::uint64_t EventLoop::turns() const noexcept { return core_->turns_approx(); }
Clock::duration EventLoop::idle_time() const noexcept { return core_->idle_time_approx(); }

Timer EventLoop::add_timer(Clock::duration delay, Task fn, bool repeat, bool immediate) {
  const std::uint64_t id = next_timer_id_;
  auto [it, inserted] = timers_.try_emplace(id);
  assert(inserted);
  TimerRec& rec = it->second;
  rec.fn = std::move(fn);
  rec.period = delay;
  rec.id = id;
  rec.repeat = repeat;
  rec.immediate = immediate;
  rec.seq = next_seq_;
  try {
    if (immediate) {
      immediates_.push_back(id);
    } else {
      rec.due = deadline_after(Clock::now(), delay);
      heap_push(&rec);
    }
  } catch (...) {
    timers_.erase(it);  // out of memory: nothing was added
    throw;
  }
  ++next_timer_id_;
  ++next_seq_;
  ++refs_;
  return Timer(serial_, id);
}

Timer EventLoop::set_immediate(Task fn) { return add_timer({}, std::move(fn), false, true); }

void EventLoop::cancel_timer(std::uint64_t id) noexcept {
  auto it = timers_.find(id);
  if (it == timers_.end()) return;
  if (it->second.refed) --refs_;
  // Out of the heap now (an immediate's id is dropped from its list when it
  // comes up, within a turn).
  if (it->second.heap_index != kNotInHeap) heap_remove(it->second.heap_index);
  timers_.erase(it);
}

void EventLoop::set_timer_ref(std::uint64_t id, bool refed) noexcept {
  auto it = timers_.find(id);
  if (it == timers_.end() || it->second.refed == refed) return;
  it->second.refed = refed;
  refs_ += refed ? 1 : -1;
}

// --- The timer heap ------------------------------------------------------------------
// A binary min-heap in a vector, as libuv's: every move of an entry updates
// its record's heap_index, so a cancelled timer leaves in O(log n) instead of
// waiting in the heap until its deadline.

void EventLoop::heap_place(std::size_t i, const HeapEntry& e) noexcept {
  heap_[i] = e;
  e.rec->heap_index = i;
}

void EventLoop::sift_up(std::size_t i) noexcept {
  const HeapEntry e = heap_[i];
  while (i > 0) {
    const std::size_t parent = (i - 1) / 2;
    if (!e.before(heap_[parent])) break;
    heap_place(i, heap_[parent]);
    i = parent;
  }
  heap_place(i, e);
}

void EventLoop::sift_down(std::size_t i) noexcept {
  const std::size_t n = heap_.size();
  const HeapEntry e = heap_[i];
  for (;;) {
    std::size_t child = 2 * i + 1;
    if (child >= n) break;
    if (child + 1 < n && heap_[child + 1].before(heap_[child])) ++child;
    if (!heap_[child].before(e)) break;
    heap_place(i, heap_[child]);
    i = child;
  }
  heap_place(i, e);
}

void EventLoop::heap_push(TimerRec* rec) {
  heap_.push_back(HeapEntry{rec->due, rec->seq, rec});  // may throw: nothing changed
  sift_up(heap_.size() - 1);
}

void EventLoop::heap_remove(std::size_t i) noexcept {
  heap_[i].rec->heap_index = kNotInHeap;
  const HeapEntry last = heap_.back();
  heap_.pop_back();
  if (i < heap_.size()) {
    heap_place(i, last);
    if (i > 0 && last.before(heap_[(i - 1) / 2])) {
      sift_up(i);
    } else {
      sift_down(i);
    }
  }
  // A burst of timers that were all cancelled gives its memory back.
  // (libstdc++'s shrink_to_fit swallows a failed allocation.)
  if (heap_.capacity() > 1024 && heap_.size() < heap_.capacity() / 4) heap_.shrink_to_fit();
}

void EventLoop::run_timers() {
  if (heap_.empty()) return;
  const auto now = Clock::now();
  // Only timers due at the start of the phase run now; an interval re-armed
  // with a zero period waits for the next turn instead of spinning here.
  const std::uint64_t seq_limit = next_seq_;
  while (!heap_.empty() && heap_.front().due <= now && heap_.front().seq < seq_limit &&
         !should_stop()) {
    TimerRec& rec = *heap_.front().rec;
    heap_remove(0);
    const std::uint64_t id = rec.id;
    Task fn = std::move(rec.fn);
    if (!rec.repeat) {
      // A timeout is done once it fires: drop it before the call, so that the
      // callback sees it inactive and a throw leaves nothing behind.
      if (rec.refed) --refs_;
      timers_.erase(id);
      ++callbacks_;
      fn();
      continue;
    }
    ScopeExit rearm{[&] {
      auto again = timers_.find(id);
      if (again == timers_.end()) return;  // cancelled from inside
      TimerRec& r = again->second;
      r.fn = std::move(fn);
      r.seq = next_seq_++;
      r.due = deadline_after(Clock::now(), r.period);
      heap_push(&r);
    }};
    ++callbacks_;
    fn();
  }
}

void EventLoop::run_immediates() {
  if (immediates_.empty()) return;
  std::vector<std::uint64_t> batch;
  batch.swap(immediates_);
  std::size_t i = 0;
  // If a callback throws, the ones not yet run stay queued, in order.
  ScopeExit requeue{[&] {
    if (i < batch.size()) {
      immediates_.insert(immediates_.begin(), batch.begin() + static_cast<std::ptrdiff_t>(i),
                         batch.end());
    }
  }};
  while (i < batch.size()) {
    if (should_stop()) return;
    const std::uint64_t id = batch[i++];
    auto it = timers_.find(id);
    if (it == timers_.end()) continue;  // cleared
    Task fn = std::move(it->second.fn);
    if (it->second.refed) --refs_;
    timers_.erase(it);
    ++callbacks_;
    fn();
  }
}

void EventLoop::add_source(std::shared_ptr<internal::LoopSource> source, bool refed) {
  internal::LoopSource* raw = source.get();
  // Each source is either registered or retired (below) until the next
  // take: with room for all of them, remove_source never allocates.
  const std::size_t room = sources_.size() + retired_.size() + 1;
  if (retired_.capacity() < room) retired_.reserve(std::max(room, 2 * retired_.capacity()));
  auto [it, inserted] = sources_.try_emplace(raw);
  if (!inserted) {
    set_source_ref(raw, refed);
    return;
  }
  it->second.source = std::move(source);
  it->second.refed = refed;
  if (refed) ++refs_;
}

void EventLoop::remove_source(internal::LoopSource* source) noexcept {
  auto it = sources_.find(source);
  if (it == sources_.end()) return;
  if (it->second.refed) --refs_;
  // Still on the core's ready stack (scheduled, not yet taken): the stack
  // holds a raw pointer, so keep the source alive until the next take.
  if (source->queued_.load(std::memory_order_acquire)) {
    retired_.push_back(std::move(it->second.source));
  }
  if (source == dispatching_) dispatch_keep_ = it->second.source;
  if (source->hot_) {
    source->hot_ = false;
    // Nulled, not erased: the hot pass may be iterating the list.
    *std::find(hot_.begin(), hot_.end(), source) = nullptr;
    hot_holes_ = true;
  }
  sources_.erase(it);
}

void EventLoop::mark_hot(internal::LoopSource* source) {
  source->idle_polls_ = 0;
  if (!source->hot_) add_hot(source);  // once: then every dispatch stays here
}

void EventLoop::add_hot(internal::LoopSource* source) {
  if (!sources_.count(source)) return;
  source->hot_ = true;
  hot_.push_back(source);
}

void EventLoop::run_hot_sources() {
  if (hot_holes_) {
    std::erase(hot_, nullptr);
    hot_holes_ = false;
  }
  bool idle_ones = false;
  // By index: a dispatch may add to the list (mark_hot) or null entries.
  for (std::size_t i = 0; i < hot_.size(); ++i) {
    if (should_stop()) return;
    internal::LoopSource* s = hot_[i];
    if (!s) continue;
    const internal::Readiness r = s->poll();
    if (r == internal::Readiness::kIdle) {
      idle_ones |= ++s->idle_polls_ >= kIdlePollsBeforeArm;
      continue;
    }
    // A gathering source is busy, not idle: arming it would make its
    // producers pay a read-modify-write per post.
    s->idle_polls_ = 0;
    if (r == internal::Readiness::kReady) dispatch_source(s);  // on the list, so registered
  }
  // A source that found work while being armed stays hot; the next turn
  // polls it.
  if (idle_ones) (void)arm_hot_sources(kIdlePollsBeforeArm);
}

bool EventLoop::poll_hot_sources() noexcept {
  for (internal::LoopSource* s : hot_) {
    if (s && s->poll() == internal::Readiness::kReady) return true;
  }
  return false;
}

bool EventLoop::arm_hot_sources(std::uint32_t min_idle_polls) {
  std::erase(hot_, nullptr);
  hot_holes_ = false;
  bool any = false;
  for (internal::LoopSource* s : hot_) {
    if (s->idle_polls_ < min_idle_polls) continue;
    s->arm_begin();
    any = true;
  }
  if (!any) return true;
  // One barrier for all: each producer either sees its source armed, or
  // its post is seen by arm_end().
  internal::heavy_barrier();
  bool quiet = true;
  for (internal::LoopSource*& s : hot_) {
    if (s->idle_polls_ < min_idle_polls) continue;
    if (s->arm_end()) {
      s->hot_ = false;
      s = nullptr;
    } else {
      s->idle_polls_ = 0;
      quiet = false;
    }
  }
  std::erase(hot_, nullptr);
  return quiet;
}

void EventLoop::set_source_ref(internal::LoopSource* source, bool refed) {
  auto it = sources_.find(source);
  if (it == sources_.end() || it->second.refed == refed) return;
  it->second.refed = refed;
  refs_ += refed ? 1 : -1;
}

void EventLoop::run_ready_sources() {
  ready_.clear();
  core_->take_ready([this](internal::LoopSource* s) { ready_.push_back(s); });
  // Retired sources are off the stack now; ready_ may still name them, but
  // they are no longer in sources_, so they are skipped without a touch.
  retired_.clear();
  std::size_t i = 0;
  // Not dispatched this turn (stop, or a dispatch threw): back for the next one.
  ScopeExit requeue{[&] {
    for (std::size_t j = i; j < ready_.size(); ++j) {
      if (sources_.count(ready_[j])) core_->schedule(ready_[j]);
    }
    ready_.clear();
  }};
  while (i < ready_.size()) {
    if (should_stop()) return;
    internal::LoopSource* s = ready_[i++];
    if (!sources_.count(s)) continue;  // removed since it was scheduled
    dispatch_source(s);
  }
}

void EventLoop::dispatch_source(internal::LoopSource* source) {
  dispatching_ = source;
  ScopeExit done{[this] {
    dispatching_ = nullptr;
    dispatch_keep_.reset();  // may destroy the source, now that it returned
  }};
  ++callbacks_;
  source->dispatch(*this);
}

void EventLoop::park(bool may_block) {
  std::optional<std::chrono::nanoseconds> timeout;
  if (!may_block || !immediates_.empty() || core_->has_pending_tasks()) {
    timeout = std::chrono::nanoseconds(0);
  } else if (!heap_.empty() && !is_forever(heap_.front().due)) {
    // The nearest timer bounds the wait (the heap holds no cancelled ones);
    // a timer that never fires bounds nothing.
    const auto left = heap_.front().due - Clock::now();
    timeout = std::chrono::duration_cast<std::chrono::nanoseconds>(
        left < Clock::duration::zero() ? Clock::duration::zero() : left);
  }
  if (timeout && timeout->count() == 0) return;
  auto poll = [](void* self) noexcept { return static_cast<EventLoop*>(self)->poll_hot_sources(); };
  auto arm = [](void* self) noexcept { return static_cast<EventLoop*>(self)->arm_hot_sources(0); };
  core_->count_idle(core_->park(timeout, poll, arm, this));
}

bool EventLoop::run(RunMode mode) {
  assert(!running_ && "weave::EventLoop::run: must not be called from inside a callback");
  assert(core_->owned_by_current_thread() && "weave::EventLoop::run: owner thread only");
  running_ = true;
  ScopeExit done{[this] { running_ = false; }};
  stop_ = false;
  for (;;) {
    core_->count_turn();
    const std::uint64_t callbacks_before = callbacks_;
    // The empty checks are inline: most turns of a busy port find no timer
    // and no immediate.
    if (!heap_.empty()) run_timers();
    if (!should_stop() && core_->has_pending_tasks()) {
      callbacks_ += core_->run_tasks([this] { return !should_stop(); });
    }
    if (!should_stop()) run_ready_sources();
    if (!should_stop()) run_hot_sources();
    if (!should_stop() && !immediates_.empty()) run_immediates();
    if (should_stop()) {
      stop_ = false;
      return alive();
    }
    const bool more = alive();
    if (mode == RunMode::kNoWait) return more;
    if (!more) return false;
    // kOnce: return after a turn that ran something; until then, wait. A
    // wait may end with nothing to run yet (a timer not quite due, a port
    // still gathering a batch): then wait again.
    if (mode == RunMode::kOnce && callbacks_ != callbacks_before) return more;
    park(true);
  }
}

}  // namespace weave
