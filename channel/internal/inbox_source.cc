#include "channel/internal/inbox_source.h"

#include <cstdio>
#include <cstdlib>
#include <utility>

#include "base/internal/scope_exit.h"
#include "loop/internal/sources.h"

namespace weave::internal {

// --- LoopBinding -------------------------------------------------------------------

void LoopBinding::dispatch(EventLoop& loop) {
  if (!owner_) return;
  // The handler may destroy the port, which detaches us: detach() then parks
  // the owner in zombie_ until here, rather than this call holding a
  // reference of its own (two atomic updates per dispatch).
  dispatching_ = true;
  ScopeExit done{[this]() noexcept {
    dispatching_ = false;
    zombie_.reset();
  }};
  owner_->dispatch(loop);
}

Readiness LoopBinding::poll() noexcept { return owner_ ? owner_->poll() : Readiness::kIdle; }
void LoopBinding::arm_begin() noexcept {
  if (owner_) owner_->arm_begin();
}
bool LoopBinding::arm_end() noexcept { return !owner_ || owner_->arm_end(); }

void LoopBinding::on_loop_destroyed() noexcept {
  if (owner_) owner_->on_loop_destroyed();
  owner_.reset();
}

// --- InboxSource: binding and handlers -----------------------------------------------

void InboxSource::wrong_thread(const char* op) const noexcept {
  std::fprintf(stderr,
               "%s: %s on a thread that does not own the %s: a bound %s belongs to its loop's "
               "thread (the one that set its handler) and changes threads only by being posted; "
               "an unbound %s (no handler ever set) may move to another thread with "
               "happens-before\n",
               kind_.type, op, kind_.noun, kind_.noun, kind_.noun);
  std::abort();
}

void InboxSource::bind_if_needed() {
  if (loop_) return;  // on its own thread: check_thread() came first
  EventLoop& loop = EventLoop::current();
  // What may throw (std::bad_alloc) comes first: then the port is as before.
  auto binding = std::make_shared<LoopBinding>(shared_from_this());
  LoopSources::add(loop, binding, false);
  loop_ = &loop;
  owner_thread_ = std::this_thread::get_id();
  binding_ = std::move(binding);
  inbox_.bind(&LoopSources::core(loop), binding_.get());
  update_ref();
  // Deliver whatever is already queued on the next turn (then the port is hot).
  LoopSources::core(loop).schedule(binding_.get());
}

void InboxSource::update_ref() {
  if (!loop_) return;
  LoopSources::set_ref(*loop_, binding_.get(), has_ref());
}

void InboxSource::set_message_handler(Handler h) {
  check_thread("on_message");
  auto fresh = h ? std::make_shared<Handler>(std::move(h)) : nullptr;
  release_message_handler();
  on_message_ = std::move(fresh);
  // As Node's first 'message' listener does: a handler refs the end again.
  if (on_message_) refed_ = true;
  if (on_message_ || on_close_) bind_if_needed();
  update_ref();
  if (loop_) LoopSources::core(*loop_).schedule(binding_.get());
}

void InboxSource::set_close_handler(CloseHandler h) {
  check_thread("on_close");
  on_close_ = h ? std::make_shared<CloseHandler>(std::move(h)) : nullptr;
  if (on_close_) bind_if_needed();
}

void InboxSource::set_ref(bool refed) {
  check_thread(refed ? "ref" : "unref");
  refed_ = refed;
  update_ref();
}

void InboxSource::unbind_from_loop() noexcept {
  release_message_handler();
  on_close_.reset();
  if (!loop_) return;
  // Unbind first: once this returns no producer can schedule us any more.
  inbox_.unbind();
  EventLoop* loop = loop_;
  loop_ = nullptr;
  owner_thread_ = std::thread::id();
  std::shared_ptr<LoopBinding> binding = std::move(binding_);
  binding->detach();
  LoopSources::remove(*loop, binding.get());  // retired there if still on its stack
}

void InboxSource::on_loop_destroyed() noexcept {
  inbox_.unbind();
  loop_ = nullptr;
  owner_thread_ = std::thread::id();
  binding_.reset();
  release_message_handler();
  on_close_.reset();
}

void InboxSource::poke() {
  if (loop_) LoopSources::core(*loop_).schedule(binding_.get());
}

bool InboxSource::take(Message& out) {
  if (stash_pos_ < stash_len_) {
    out = std::move(stash_[stash_pos_++]);
  } else if (!inbox_.take(token_, out)) {
    return false;
  }
  // The last message taken by hand may complete a close: let the loop emit it.
  if (loop_ && finished()) poke();
  return true;
}

// --- InboxSource: dispatch ---------------------------------------------------------

namespace {
// The source whose handler is running on this thread. If that handler
// transfers the very port it is called for, the port belongs to another
// thread as soon as the post returns, and dispatch must not touch it again.
struct DispatchFrame {
  const InboxSource* source;
  bool moved_away = false;
  // The running handler, kept alive here if it is replaced or dropped while
  // it runs (see release_message_handler): dispatch holds only a plain
  // pointer to it, which costs no reference count per message.
  std::shared_ptr<InboxSource::Handler> running_handler;
};
thread_local DispatchFrame* tl_frame = nullptr;
}  // namespace

void InboxSource::release_message_handler() noexcept {
  gate_.reset();  // a streak belongs to the handler that saw it
  DispatchFrame* f = tl_frame;
  // The first release during a handler's call is the running handler
  // itself (any later one is a handler set since, not running).
  if (f && f->source == this && !f->running_handler) {
    f->running_handler = std::move(on_message_);
  } else {
    on_message_.reset();
  }
}

void InboxSource::note_transferred() noexcept {
  if (tl_frame && tl_frame->source == this) tl_frame->moved_away = true;
}

void InboxSource::dispatch(EventLoop& loop) {
  // The loop holds a reference to this source for the whole call, so a
  // handler may destroy the port that owns it.
  if (loop_ != &loop) return;  // scheduled before it moved or unbound
  inbox_.disarm();             // we are looking: producers need not signal
  int n = 0;
  while (on_message_ && loop_ == &loop) {
    if (stash_pos_ == stash_len_) {
      if (n >= kBudget) {
        LoopSources::core(loop).schedule(binding_.get());  // more next turn; other sources go first
        return;
      }
      if (!stash_) stash_ = std::make_unique<Message[]>(kBatch);  // once per port
      // The gate holds a take only once this dispatch delivered something:
      // a dispatch (a producer's signal, a close) always takes what waits.
      if ((n != 0 && gate_.holding(now_ns)) || !refill()) {
        // Dry, or letting a batch build: stay hot, so the next posts cost
        // their producer no signal; the loop arms the inbox before it parks.
        LoopSources::mark_hot(loop, binding_.get());
        break;
      }
    }
    // The message leaves the stash for the handler's call only: whatever the
    // handler does not move out of it (buffers, ports) is released when the
    // call ends, normally or by an exception. Declared before the frame, so
    // that ports dropped with it close after the frame is gone.
    Message msg(std::move(stash_[stash_pos_++]));
    ++n;
    Handler& handler = *on_message_;  // kept alive by the frame if replaced
    DispatchFrame frame{this, false, nullptr};
    DispatchFrame* const outer = std::exchange(tl_frame, &frame);
    ScopeExit restore_frame{[outer]() noexcept { tl_frame = outer; }};
    // If the handler throws, the exception leaves run(); the rest of the
    // messages wait for the next turn rather than being dropped. Either way
    // a port handed to another thread inside the handler is not touched.
    ScopeExit resume_next_turn{[this, &loop, &frame]() noexcept {
      if (!frame.moved_away && loop_ == &loop) LoopSources::core(loop).schedule(binding_.get());
    }};
    handler(msg);
    resume_next_turn.release();
    if (frame.moved_away) return;  // handed to another thread: hands off
  }
  if (loop_ != &loop || close_emitted_) return;
  // The close event comes after every accepted message was delivered (or,
  // with no message handler, as soon as the channel closed: the messages stay
  // for receive_message_on_port).
  if (inbox_.closed() && (!on_message_ || finished())) {
    close_emitted_ = true;
    std::shared_ptr<CloseHandler> c = on_close_;
    unbind_from_loop();  // nothing more will be dispatched
    if (c) (*c)();
  }
}

}  // namespace weave::internal
