// Structured clone in two phases, so that a failed post changes nothing:
// clone_value() validates the transfer list and builds the copy (transferred
// buffers get fresh, still-empty storage in the copy); commit_transfers() then
// moves the bytes and detaches the sources. Owner thread only.
#pragma once

#include <cstddef>
#include <memory>
#include <new>
#include <span>
#include <utility>
#include <vector>

#include "channel/value.h"

namespace weave::internal {

// The explicit stack of the walks over a Value (clone, copy, ==, to_string,
// serialize): the first N frames live inline — on the caller's stack, so an
// ordinary message costs no allocation for it — and deeper ones in a vector.
// back() after a push() may move: take references again after pushing.
template <class T, std::size_t N>
class SmallStack {
 public:
  SmallStack() noexcept {}
  SmallStack(const SmallStack&) = delete;
  SmallStack& operator=(const SmallStack&) = delete;
  ~SmallStack() {
    while (size_ > 0) pop();
  }

  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] T& back() noexcept { return size_ <= N ? *slot(size_ - 1) : spill_.back(); }

  // Allocates past N frames (std::bad_alloc leaves the stack as it was).
  template <class... A>
  T& push(A&&... a) {
    if (size_ < N) {
      T* p = ::new (static_cast<void*>(raw_ + size_ * sizeof(T))) T{std::forward<A>(a)...};
      ++size_;
      return *p;
    }
    spill_.push_back(T{std::forward<A>(a)...});
    ++size_;
    return spill_.back();
  }
  void pop() noexcept {
    if (size_ > N) {
      spill_.pop_back();
    } else {
      slot(size_ - 1)->~T();
    }
    --size_;
  }

 private:
  T* slot(std::size_t i) noexcept {
    return std::launder(reinterpret_cast<T*>(raw_ + i * sizeof(T)));
  }

  alignas(T) unsigned char raw_[N * sizeof(T)];
  std::size_t size_ = 0;
  std::vector<T> spill_;
};

// Walks over a Value recurse natively this many levels (an ordinary message
// is shallow, and plain recursion is the fastest walk), then continue below
// that with an explicit stack: whatever the depth, a walk never uses more
// than this many native frames. Kept small: an unoptimised ASan build spends
// about 4 KiB on a clone frame, and 16 levels overflowed a 64 KiB stack
// (deep_value_test under --config=asan); an ordinary message is at most a
// few levels deep, so it still walks natively at full speed.
inline constexpr std::size_t kNativeWalkDepth = 4;

// The error of every walk that meets a value nested deeper than
// kMaxCloneDepth. Allocates.
[[nodiscard]] Status too_deep_error(const char* prefix);

struct TransferPlan {
  // source storage -> storage the clone refers to; bytes move at commit.
  std::vector<std::pair<std::shared_ptr<BufferStorage>, std::shared_ptr<BufferStorage>>> moves;
};

// Checks a transfer list the way the post will (each buffer attached, not
// marked untransferable, listed once) without walking any value: so a caller
// that must run user code before the clone (a Codec encode hook) can report
// a bad transfer list first, as Node does. kDataCloneError; changes nothing.
[[nodiscard]] Status check_transfer_list(std::span<const ArrayBuffer> transfer);

// The whole transfer list is validated before the value is walked, so a bad
// list is reported in preference to an uncloneable value (Node's order).
Result<Value> clone_value(const Value& value, std::span<ArrayBuffer> transfer, TransferPlan& plan);
// Cannot fail: everything was checked by clone_value. Never allocates.
void commit_transfers(TransferPlan& plan) noexcept;
// Undoes a commit_transfers(plan) whose message could not be sent: the bytes
// go back to their sources, attached again. Never allocates.
void undo_transfers(TransferPlan& plan) noexcept;

}  // namespace weave::internal
