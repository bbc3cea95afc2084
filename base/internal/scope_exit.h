// internal::ScopeExit: runs a callable when the scope ends (normally or by an
// exception), unless release()d first. The one scope guard of the library.
//
//   ScopeExit undo{[&] { rollback(); }};
//   ...                 // may throw: rollback() runs
//   undo.release();     // committed
//
// Threading: a local object; owner thread only. Never blocks. Never allocates.
#pragma once

#include <type_traits>
#include <utility>

namespace weave::internal {

template <class F>
class [[nodiscard]] ScopeExit {
  static_assert(std::is_nothrow_move_constructible_v<F>,
                "weave::internal::ScopeExit: F must be nothrow move-constructible");

 public:
  explicit ScopeExit(F fn) noexcept : fn_(std::move(fn)) {}
  ScopeExit(const ScopeExit&) = delete;
  ScopeExit& operator=(const ScopeExit&) = delete;
  // The callable runs during unwinding too; it must not throw then.
  ~ScopeExit() noexcept(noexcept(std::declval<F&>()())) {
    if (armed_) fn_();
  }
  // The callable will not run.
  void release() noexcept { armed_ = false; }

 private:
  F fn_;
  bool armed_ = true;
};
template <class F>
ScopeExit(F) -> ScopeExit<F>;

}  // namespace weave::internal
