// weave::SharedView<T> and its aliases Int8View ... Float64View: typed views
// over a SharedArrayBuffer, as JS's Int32Array etc. over a SharedArrayBuffer.
//
// A view holds a handle to its buffer (so the memory lives as long as any
// view does), a byte offset (a multiple of sizeof(T)) and either a fixed
// length or — over a growable buffer when no length is given — a length that
// tracks the buffer's (Node's length-tracking typed arrays). Views are small
// values: copy them freely. Any thread may use any view, concurrently.
//
// Element access is bounds-checked against the current length: an index out
// of range throws std::out_of_range naming the view type, the index and the
// length, and touches no memory. load()/store() are JS's plain (unordered)
// element reads and writes: relaxed atomic accesses, so concurrent use is
// neither a C++ data race nor torn, but orders nothing. For ordering and
// read-modify-write, use weave::atomics (atomics/atomics.h) on integer views.
//
// Errors at construction (Node's RangeError): a byte_offset that is not a
// multiple of sizeof(T) throws std::invalid_argument; an offset or length
// that does not fit in the buffer throws std::out_of_range. Both name the
// argument and the allowed range.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <type_traits>
#include <utility>

#include "atomics/shared_array_buffer.h"

namespace weave {
namespace internal {

template <class T>
inline constexpr bool kIsViewElement =
    std::is_same_v<T, std::int8_t> || std::is_same_v<T, std::uint8_t> ||
    std::is_same_v<T, std::int16_t> || std::is_same_v<T, std::uint16_t> ||
    std::is_same_v<T, std::int32_t> || std::is_same_v<T, std::uint32_t> ||
    std::is_same_v<T, std::int64_t> || std::is_same_v<T, std::uint64_t> ||
    std::is_same_v<T, float> || std::is_same_v<T, double>;

// "weave::Int32View" etc., for error messages.
template <class T>
constexpr const char* view_name() noexcept {
  if constexpr (std::is_same_v<T, std::int8_t>) return "weave::Int8View";
  if constexpr (std::is_same_v<T, std::uint8_t>) return "weave::Uint8View";
  if constexpr (std::is_same_v<T, std::int16_t>) return "weave::Int16View";
  if constexpr (std::is_same_v<T, std::uint16_t>) return "weave::Uint16View";
  if constexpr (std::is_same_v<T, std::int32_t>) return "weave::Int32View";
  if constexpr (std::is_same_v<T, std::uint32_t>) return "weave::Uint32View";
  if constexpr (std::is_same_v<T, std::int64_t>) return "weave::Int64View";
  if constexpr (std::is_same_v<T, std::uint64_t>) return "weave::Uint64View";
  if constexpr (std::is_same_v<T, float>) return "weave::Float32View";
  if constexpr (std::is_same_v<T, double>) return "weave::Float64View";
}

// Throwers, out of line so the checks inline as a compare and a cold call.
[[noreturn]] void throw_index_out_of_range(const char* view, std::size_t index, std::size_t length);
[[noreturn]] void throw_misaligned_offset(const char* view, std::size_t byte_offset,
                                          std::size_t element_size);
[[noreturn]] void throw_offset_out_of_range(const char* view, std::size_t byte_offset,
                                            std::size_t byte_length);
[[noreturn]] void throw_length_out_of_range(const char* view, std::size_t length,
                                            std::size_t max_length);
[[noreturn]] void throw_length_not_multiple(const char* view, std::size_t bytes,
                                            std::size_t element_size);

}  // namespace internal

template <class T>
class SharedView {
  static_assert(internal::kIsViewElement<T>,
                "weave::SharedView: T must be one of int8_t..uint64_t, float or double");
  static_assert(std::atomic_ref<T>::required_alignment <= sizeof(T),
                "weave::SharedView: elements must be naturally aligned for atomic access");

 public:
  using value_type = T;
  static constexpr std::size_t kElementSize = sizeof(T);

  // A view from byte_offset to the end of the buffer. Over a growable buffer
  // it tracks the buffer's length as it grows; over a fixed one,
  // byte_length - byte_offset must be a multiple of sizeof(T).
  // Any thread. Never blocks. Never allocates.
  explicit SharedView(SharedArrayBuffer buffer, std::size_t byte_offset = 0)
      : buffer_(std::move(buffer)), byte_offset_(byte_offset) {
    check_offset();
    if (buffer_.growable()) {
      tracking_ = true;
    } else {
      const std::size_t rest = buffer_.byte_length() - byte_offset_;
      if (rest % sizeof(T) != 0) {
        internal::throw_length_not_multiple(internal::view_name<T>(), rest, sizeof(T));
      }
      length_ = rest / sizeof(T);
    }
  }

  // A view of `length` elements from byte_offset; they must fit in the
  // buffer's current length. Any thread. Never blocks. Never allocates.
  SharedView(SharedArrayBuffer buffer, std::size_t byte_offset, std::size_t length)
      : buffer_(std::move(buffer)), byte_offset_(byte_offset), length_(length) {
    check_offset();
    const std::size_t max_length = (buffer_.byte_length() - byte_offset_) / sizeof(T);
    if (length > max_length) {
      internal::throw_length_out_of_range(internal::view_name<T>(), length, max_length);
    }
  }

  // Elements in the view now (a length-tracking view follows grow()).
  // Any thread. Never blocks. Never allocates.
  [[nodiscard]] std::size_t length() const noexcept {
    // A growable buffer never shrinks, so byte_length() >= byte_offset_.
    return tracking_ ? (buffer_.byte_length() - byte_offset_) / sizeof(T) : length_;
  }
  [[nodiscard]] std::size_t byte_length() const noexcept { return length() * sizeof(T); }
  [[nodiscard]] std::size_t byte_offset() const noexcept { return byte_offset_; }
  [[nodiscard]] bool length_tracking() const noexcept { return tracking_; }
  [[nodiscard]] const SharedArrayBuffer& buffer() const noexcept { return buffer_; }

  // The address of element `index`, or std::out_of_range if index >=
  // length(). Any thread. Never blocks. Never allocates (except the
  // exception's message).
  [[nodiscard]] T* at(std::size_t index) const {
    const std::size_t n = length();
    if (index >= n) internal::throw_index_out_of_range(internal::view_name<T>(), index, n);
    return reinterpret_cast<T*>(buffer_.data() + byte_offset_) + index;
  }

  // JS's plain element read: relaxed (no ordering; not torn).
  // Any thread. Never blocks. Never allocates.
  [[nodiscard]] T load(std::size_t index) const {
    // relaxed: a plain JS element access orders nothing; atomics:: orders.
    return std::atomic_ref<T>(*at(index)).load(std::memory_order_relaxed);
  }

  // JS's plain element write: relaxed (no ordering; not torn).
  // Any thread. Never blocks. Never allocates.
  void store(std::size_t index, T value) const {
    // relaxed: as load().
    std::atomic_ref<T>(*at(index)).store(value, std::memory_order_relaxed);
  }

 private:
  void check_offset() const {
    if (byte_offset_ % sizeof(T) != 0) {
      internal::throw_misaligned_offset(internal::view_name<T>(), byte_offset_, sizeof(T));
    }
    const std::size_t bytes = buffer_.byte_length();
    if (byte_offset_ > bytes) {
      internal::throw_offset_out_of_range(internal::view_name<T>(), byte_offset_, bytes);
    }
  }

  SharedArrayBuffer buffer_;
  std::size_t byte_offset_ = 0;
  std::size_t length_ = 0;  // unused when tracking_
  bool tracking_ = false;
};

using Int8View = SharedView<std::int8_t>;
using Uint8View = SharedView<std::uint8_t>;
using Int16View = SharedView<std::int16_t>;
using Uint16View = SharedView<std::uint16_t>;
using Int32View = SharedView<std::int32_t>;
using Uint32View = SharedView<std::uint32_t>;
using Int64View = SharedView<std::int64_t>;
using Uint64View = SharedView<std::uint64_t>;
using Float32View = SharedView<float>;
using Float64View = SharedView<double>;

}  // namespace weave
