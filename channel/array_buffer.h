// weave::ArrayBuffer and weave::TypedArray: byte buffers that messages copy
// or transfer, and typed views over them (Node's ArrayBuffer, Uint8Array,
// Int32Array, Float64Array, BigInt64Array, DataView, ...).
//
// An ArrayBuffer is a handle with reference semantics, like a JS reference:
// copies of the handle name the same bytes. Posting a value copies the bytes,
// unless the buffer is in the transfer list: then the receiver gets the very
// same memory and every handle to the sender's buffer becomes detached
// (byte_length() 0, bytes() empty, checked_bytes() a kDetached error).
//
// Threading: a buffer (all its handles and views) belongs to one thread at a
// time; handing it to another thread is what post_message does. The
// reference count is atomic, so a handle may be destroyed on any thread.
//
// Copies alias (review 3.3 item 8): copying an ArrayBuffer, a TypedArray or
// a Value that holds one copies a handle, not the bytes, and every handle
// shares the buffer's length, detached and untransferable state, which are
// plain (non-atomic) fields. So a handle copied into something that runs on
// another thread — a lambda given to a pool or a worker, a struct shared by
// pointer — is a data race as soon as either thread writes the bytes,
// transfers or detaches the buffer, or marks it untransferable, and even a
// read of the bytes races with a transfer on the other side. The rule: pass
// a buffer to another thread only by posting it (structured clone copies it;
// a transfer moves it and detaches every handle here), or serialize it, or
// use a SharedArrayBuffer (atomics/) for memory that is meant to be shared.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <type_traits>

#include "channel/status.h"

namespace weave {

namespace internal {
struct BufferAccess;
struct BufferStorage {
  std::unique_ptr<std::byte[]> data;
  std::size_t length = 0;
  bool detached = false;
  bool untransferable = false;  // mark_as_untransferable(); never cleared
};
}  // namespace internal

class ArrayBuffer {
 public:
  // A new, empty (0-byte, not detached) buffer. Allocates.
  ArrayBuffer();
  // `length` zero-filled bytes. Allocates.
  static ArrayBuffer create(std::size_t length);
  // A copy of `bytes`. Allocates.
  static ArrayBuffer copy_of(std::span<const std::byte> bytes);
  static ArrayBuffer copy_of(std::string_view bytes);
  // Takes ownership of `data[0, length)` without copying. Allocates (the handle).
  static ArrayBuffer adopt(std::unique_ptr<std::byte[]> data, std::size_t length);

  // 0 once detached. Never allocates.
  [[nodiscard]] std::size_t byte_length() const noexcept { return s_->length; }
  [[nodiscard]] bool detached() const noexcept { return s_->detached; }
  // The bytes; empty once detached. Never allocates.
  [[nodiscard]] std::span<std::byte> bytes() noexcept { return {s_->data.get(), s_->length}; }
  [[nodiscard]] std::span<const std::byte> bytes() const noexcept {
    return {s_->data.get(), s_->length};
  }
  [[nodiscard]] std::byte* data() noexcept { return s_->data.get(); }
  [[nodiscard]] const std::byte* data() const noexcept { return s_->data.get(); }
  // The bytes, or a kDetached error naming the rule. Never allocates on success.
  [[nodiscard]] Result<std::span<std::byte>> checked_bytes();
  // The bytes as text (for tests and demos). Allocates.
  [[nodiscard]] std::string to_string() const;
  // A copy of [begin, end) clamped to the buffer, like ArrayBuffer.slice. Allocates.
  [[nodiscard]] ArrayBuffer slice(std::size_t begin, std::size_t end) const;

  // True when both handles name the same buffer (JS identity). Never allocates.
  [[nodiscard]] bool same_buffer(const ArrayBuffer& o) const noexcept { return s_ == o.s_; }
  // Same length and bytes (detached buffers equal each other).
  friend bool operator==(const ArrayBuffer& a, const ArrayBuffer& b) noexcept;

 private:
  // weave's own cloning reaches the storage through internal::BufferAccess
  // (channel/internal/buffer_access.h).
  friend struct internal::BufferAccess;
  explicit ArrayBuffer(std::shared_ptr<internal::BufferStorage> s) : s_(std::move(s)) {}
  std::shared_ptr<internal::BufferStorage> s_;  // never null
};

// Node's worker_threads.markAsUntransferable(buffer): from now on, listing
// `buffer` (any handle to it) in a transfer list makes the post — or
// structured_clone — fail with kDataCloneError, with nothing sent and nothing
// detached. Posting it without listing it still copies it; the copy is not
// marked. There is no way back, as in Node. Owner thread only. Never blocks.
// Never allocates.
void mark_as_untransferable(ArrayBuffer& buffer) noexcept;
// Node's isMarkedAsUntransferable. Owner thread only. Never blocks. Never allocates.
[[nodiscard]] bool is_marked_as_untransferable(const ArrayBuffer& buffer) noexcept;

// The element kinds of JS typed arrays, plus DataView (bytes, any alignment).
enum class ViewKind : std::uint8_t {
  kInt8 = 0,
  kUint8,
  kUint8Clamped,
  kInt16,
  kUint16,
  kInt32,
  kUint32,
  kFloat32,
  kFloat64,
  kBigInt64,
  kBigUint64,
  kDataView,
};
inline constexpr std::uint8_t kViewKindCount = 12;

// Bytes per element (1 for DataView). Never allocates.
std::size_t element_size(ViewKind kind) noexcept;
std::string_view view_kind_name(ViewKind kind) noexcept;

// The ViewKind that holds C++ element type T (uint8_t maps to kUint8).
template <class T>
constexpr std::optional<ViewKind> view_kind_of() {
  if constexpr (std::is_same_v<T, std::int8_t>)
    return ViewKind::kInt8;
  else if constexpr (std::is_same_v<T, std::uint8_t>)
    return ViewKind::kUint8;
  else if constexpr (std::is_same_v<T, std::int16_t>)
    return ViewKind::kInt16;
  else if constexpr (std::is_same_v<T, std::uint16_t>)
    return ViewKind::kUint16;
  else if constexpr (std::is_same_v<T, std::int32_t>)
    return ViewKind::kInt32;
  else if constexpr (std::is_same_v<T, std::uint32_t>)
    return ViewKind::kUint32;
  else if constexpr (std::is_same_v<T, float>)
    return ViewKind::kFloat32;
  else if constexpr (std::is_same_v<T, double>)
    return ViewKind::kFloat64;
  else if constexpr (std::is_same_v<T, std::int64_t>)
    return ViewKind::kBigInt64;
  else if constexpr (std::is_same_v<T, std::uint64_t>)
    return ViewKind::kBigUint64;
  else
    return std::nullopt;
}

// A typed window [byte_offset, byte_offset + length * element_size) over an
// ArrayBuffer, shared with every other view over that buffer. Once the buffer
// is detached the view reads as empty.
class TypedArray {
 public:
  // Like `new Int32Array(buffer, byte_offset, length)`: kOutOfRange when the
  // offset is not a multiple of the element size or the window does not fit;
  // without a length, the view runs to the end of the buffer (which must then
  // be a whole number of elements). kDetached for a detached buffer.
  static Result<TypedArray> create(ViewKind kind, ArrayBuffer buffer, std::size_t byte_offset = 0,
                                   std::optional<std::size_t> length = std::nullopt);
  // A view over a new zero-filled buffer of `length` elements. Allocates
  // (std::bad_alloc, like any allocation, when that is impossibly large).
  static TypedArray allocate(ViewKind kind, std::size_t length);

  [[nodiscard]] ViewKind kind() const noexcept { return kind_; }
  [[nodiscard]] const ArrayBuffer& buffer() const noexcept { return buffer_; }
  [[nodiscard]] ArrayBuffer& buffer() noexcept { return buffer_; }
  [[nodiscard]] std::size_t byte_offset() const noexcept {
    return buffer_.detached() ? 0 : byte_offset_;
  }
  // Elements (0 once the buffer is detached).
  [[nodiscard]] std::size_t length() const noexcept { return buffer_.detached() ? 0 : length_; }
  [[nodiscard]] std::size_t byte_length() const noexcept { return length() * element_size(kind_); }

  // The elements as a span of T; kTypeMismatch when T is not this view's
  // element type (use std::byte for a DataView), kDetached when detached.
  template <class T>
  [[nodiscard]] Result<std::span<T>> span() {
    if (buffer_.detached())
      return Status(ErrorCode::kDetached, "TypedArray: the buffer is detached");
    if constexpr (std::is_same_v<T, std::byte>) {
      if (kind_ != ViewKind::kDataView) return mismatch();
      return std::span<T>(buffer_.data() + byte_offset_, length_);
    } else {
      constexpr auto k = view_kind_of<T>();
      static_assert(k.has_value(), "weave::TypedArray::span: T must be a typed-array element type");
      if (kind_ != *k && !(kind_ == ViewKind::kUint8Clamped && *k == ViewKind::kUint8)) {
        return mismatch();
      }
      return std::span<T>(reinterpret_cast<T*>(buffer_.data() + byte_offset_), length_);
    }
  }
  // Read-only elements, with the same checks.
  template <class T>
  [[nodiscard]] Result<std::span<const T>> span() const {
    auto s = const_cast<TypedArray*>(this)->span<T>();
    if (!s) return s.status();
    return std::span<const T>(*s);
  }
  // Element i, bounds-checked: kOutOfRange past the end (never a stray read).
  template <class T>
  [[nodiscard]] Result<T> at(std::size_t i) const {
    auto s = span<T>();
    if (!s) return s.status();
    if (i >= s->size()) return Status(ErrorCode::kOutOfRange, "TypedArray: index out of range");
    return (*s)[i];
  }

  // Same kind, offset, length and buffer identity.
  [[nodiscard]] bool same_view(const TypedArray& o) const noexcept {
    return kind_ == o.kind_ && byte_offset_ == o.byte_offset_ && length_ == o.length_ &&
           buffer_.same_buffer(o.buffer_);
  }
  // Same kind and the same bytes in the window.
  friend bool operator==(const TypedArray& a, const TypedArray& b) noexcept;

 private:
  friend struct TypedArrayAccess;
  TypedArray(ViewKind kind, ArrayBuffer buffer, std::size_t byte_offset, std::size_t length)
      : buffer_(std::move(buffer)), byte_offset_(byte_offset), length_(length), kind_(kind) {}
  Status mismatch() const;

  ArrayBuffer buffer_;
  std::size_t byte_offset_ = 0;
  std::size_t length_ = 0;
  ViewKind kind_ = ViewKind::kUint8;
};

}  // namespace weave
