// weave::Status and weave::Result<T>: how expected failures travel in weave.
//
// The rule, once for the whole library: programming errors (wrong thread, a
// contract broken) are debug assertions; expected outcomes (closed, empty,
// timed out) and values that cannot be cloned or decoded are return values —
// a Status or a Result<T> naming the error kind and saying what went wrong.
// Nothing on the messaging path throws.
//
// Threading: plain values; no shared state.
#pragma once

#include <cassert>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace weave {

enum class ErrorCode : std::uint8_t {
  kOk = 0,
  kDataCloneError,   // a value or transfer list that cannot be cloned/transferred
  kClosed,           // the port or channel is closed
  kDetached,         // the ArrayBuffer was transferred away
  kMalformedInput,   // wire bytes that are not a valid weave value
  kTypeMismatch,     // a Value is not of the type asked for
  kOutOfRange,       // an index, offset or number outside its range
  kInvalidArgument,  // a bad option or argument
  kOutOfMemory,      // memory could not be allocated; nothing was sent (each
                     // call's contract says what else it left as it was)
};

// Node-style name of an error kind, e.g. "DataCloneError". Never allocates.
std::string_view error_code_name(ErrorCode code) noexcept;

// The error's message lives behind a shared pointer, so that an ok Status —
// what every post returns — is two words to build and a null check to
// destroy, and copies of an error share its text.
class [[nodiscard]] Status {
 public:
  Status() noexcept = default;  // ok
  Status(ErrorCode code, std::string message)
      : code_(code), message_(std::make_shared<const std::string>(std::move(message))) {}

  static Status ok_status() noexcept { return Status(); }
  [[nodiscard]] bool ok() const noexcept { return code_ == ErrorCode::kOk; }
  explicit operator bool() const noexcept { return ok(); }
  [[nodiscard]] ErrorCode code() const noexcept { return code_; }
  [[nodiscard]] const std::string& message() const noexcept {
    return message_ ? *message_ : empty_message();
  }
  // "DataCloneError: <message>", or "ok".
  [[nodiscard]] std::string to_string() const;

  friend bool operator==(const Status& a, ErrorCode c) noexcept { return a.code_ == c; }

 private:
  static const std::string& empty_message() noexcept;
  ErrorCode code_ = ErrorCode::kOk;
  std::shared_ptr<const std::string> message_;
};

// A T or the Status that says why there is none.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}      // NOLINT
  Result(Status error) : v_(std::in_place_index<1>, std::move(error)) {  // NOLINT
    assert(!std::get<1>(v_).ok() && "weave::Result: an error Result needs a non-ok Status");
  }

  [[nodiscard]] bool ok() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }
  // The value; must be ok() (asserted in debug builds).
  T& value() & {
    assert(ok() && "weave::Result::value: called on an error");
    return std::get<0>(v_);
  }
  const T& value() const& {
    assert(ok() && "weave::Result::value: called on an error");
    return std::get<0>(v_);
  }
  T&& value() && {
    assert(ok() && "weave::Result::value: called on an error");
    return std::get<0>(std::move(v_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  template <class U>
  T value_or(U&& fallback) const& {
    return ok() ? std::get<0>(v_) : static_cast<T>(std::forward<U>(fallback));
  }
  // The error; ok Status when there is a value.
  [[nodiscard]] Status status() const { return ok() ? Status() : std::get<1>(v_); }
  [[nodiscard]] ErrorCode code() const noexcept {
    return ok() ? ErrorCode::kOk : std::get<1>(v_).code();
  }

 private:
  std::variant<T, Status> v_;
};

}  // namespace weave
