#include "channel/status.h"

namespace weave {

std::string_view error_code_name(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::kOk:
      return "ok";
    case ErrorCode::kDataCloneError:
      return "DataCloneError";
    case ErrorCode::kClosed:
      return "ClosedError";
    case ErrorCode::kDetached:
      return "DetachedError";
    case ErrorCode::kMalformedInput:
      return "MalformedInputError";
    case ErrorCode::kTypeMismatch:
      return "TypeError";
    case ErrorCode::kOutOfRange:
      return "RangeError";
    case ErrorCode::kInvalidArgument:
      return "InvalidArgumentError";
    case ErrorCode::kOutOfMemory:
      return "OutOfMemoryError";
  }
  return "UnknownError";
}

const std::string& Status::empty_message() noexcept {
  static const std::string empty;
  return empty;
}

std::string Status::to_string() const {
  if (ok()) return "ok";
  std::string s(error_code_name(code_));
  s += ": ";
  s += message();
  return s;
}

}  // namespace weave
