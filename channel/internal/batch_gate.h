// When a receiving end that keeps finding messages takes its next batch: the
// policy of batch building, apart from the queue so that it can be tested
// with a clock of its own.
//
// A consumer that keeps up with a streaming producer takes a few messages at
// a time, right behind it, and every take moves the queue's index line
// (which the producer writes on every post) between the two cores: both
// slow down. So when a take comes straight after another one that found
// messages (streaming) and is not full, the gate holds the next take for a
// short wait, in nanoseconds of a steady clock, while a batch builds.
//
// The wait adapts after each one: if it gathered more than the take before
// it and the take is still short, it doubles (up to kMaxWait); if the take
// is full, it halves; if it gathered no more than before (the sender is
// slower than the wait, or waits for us), it drops to 0, and the next short
// take starts again from kMinWait — so a stream that gains nothing is held
// kMinWait every other take at most. A new streak starts from the level the
// last one ended with (the sender is likely the same).
//
// A take that finds nothing ends the streak, so a lone message or a reply is
// never held; and the owner resets the gate whenever it stops polling: its
// loop arms the end before parking, or the end loses its handler or its
// loop. So a message is held at most kMaxWait behind a stream, by the clock,
// however the loop's turns are spaced.
//
// Single-threaded (the receiving end's owner). Never blocks, never allocates.
#pragma once

#include <algorithm>
#include <cstdint>

namespace weave::internal {

class BatchGate {
 public:
  // The shortest wait (where waiting starts) and the longest, in nanoseconds.
  static constexpr std::int64_t kMinWait = 64;
  static constexpr std::int64_t kMaxWait = 2048;

  // True while the next take must wait. `now` (a callable returning
  // nanoseconds) is read only while a wait runs; a wait that is due ends here.
  template <class Now>
  [[nodiscard]] bool holding(Now&& now) noexcept {
    if (until_ == 0) return false;
    if (now() < until_) return true;
    until_ = 0;
    return false;
  }

  // A take found `n` of at most `batch` messages. Starts the next wait when
  // the stream calls for one; `now` is read only then.
  template <class Now>
  void after_take(std::uint32_t n, std::uint32_t batch, Now&& now) noexcept {
    if (n == 0) {
      streaming_ = false;
      waited_ = false;
      return;
    }
    if (waited_) {
      waited_ = false;
      if (n <= last_take_) {
        wait_ = 0;
      } else if (n >= batch) {
        wait_ /= 2;
      } else {
        wait_ = std::min(wait_ * 2, kMaxWait);
      }
    } else if (streaming_ && n < batch && wait_ == 0) {
      wait_ = kMinWait;
    }
    if (streaming_ && n < batch && wait_ != 0) {
      until_ = now() + wait_;
      waited_ = true;
    }
    last_take_ = n;
    streaming_ = true;
  }

  // The owner stopped dispatching: no wait runs, and the next take starts a
  // new streak.
  void reset() noexcept { *this = BatchGate(); }

  // The current wait length, for tests.
  [[nodiscard]] std::int64_t wait() const noexcept { return wait_; }

 private:
  std::int64_t until_ = 0;  // the running wait ends here; 0: none runs
  std::int64_t wait_ = 0;   // the next wait's length
  std::uint32_t last_take_ = 0;
  bool waited_ = false;     // the take to come ends a wait
  bool streaming_ = false;  // the last take found messages
};

}  // namespace weave::internal
