#include "atomics/atomics.h"

namespace weave::atomics {

std::string_view to_string(WaitResult result) noexcept {
  switch (result) {
    case WaitResult::kOk:
      return "ok";
    case WaitResult::kNotEqual:
      return "not-equal";
    case WaitResult::kTimedOut:
      return "timed-out";
  }
  return "unknown";
}

namespace detail {

WaitResult to_wait_result(internal::WaitOutcome outcome) {
  switch (outcome) {
    case internal::WaitOutcome::kNotEqual:
      return WaitResult::kNotEqual;
    case internal::WaitOutcome::kTimedOut:
      return WaitResult::kTimedOut;
    case internal::WaitOutcome::kInterrupted:
      throw WaitInterrupted{};
    case internal::WaitOutcome::kOk:
      break;
  }
  return WaitResult::kOk;
}

}  // namespace detail
}  // namespace weave::atomics
