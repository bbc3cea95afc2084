#include "channel/array_buffer.h"

#include <algorithm>
#include <limits>
#include <new>
#include <string>

#include "channel/internal/buffer_access.h"

namespace weave {

ArrayBuffer::ArrayBuffer() : s_(std::make_shared<internal::BufferStorage>()) {}

ArrayBuffer ArrayBuffer::create(std::size_t length) {
  auto s = std::make_shared<internal::BufferStorage>();
  if (length) s->data = std::make_unique<std::byte[]>(length);  // value-initialised: zeros
  s->length = length;
  return ArrayBuffer(std::move(s));
}

ArrayBuffer ArrayBuffer::copy_of(std::span<const std::byte> bytes) {
  auto s = std::make_shared<internal::BufferStorage>();
  if (!bytes.empty()) {
    s->data = std::make_unique_for_overwrite<std::byte[]>(bytes.size());
    std::memcpy(s->data.get(), bytes.data(), bytes.size());
  }
  s->length = bytes.size();
  return ArrayBuffer(std::move(s));
}

ArrayBuffer ArrayBuffer::copy_of(std::string_view bytes) {
  return copy_of(std::as_bytes(std::span<const char>(bytes.data(), bytes.size())));
}

ArrayBuffer ArrayBuffer::adopt(std::unique_ptr<std::byte[]> data, std::size_t length) {
  auto s = std::make_shared<internal::BufferStorage>();
  s->data = std::move(data);
  s->length = s->data ? length : 0;
  return ArrayBuffer(std::move(s));
}

Result<std::span<std::byte>> ArrayBuffer::checked_bytes() {
  if (s_->detached) {
    return Status(ErrorCode::kDetached,
                  "ArrayBuffer: the buffer was transferred away and is detached");
  }
  return bytes();
}

std::string ArrayBuffer::to_string() const {
  return std::string(reinterpret_cast<const char*>(data()), byte_length());
}

ArrayBuffer ArrayBuffer::slice(std::size_t begin, std::size_t end) const {
  const std::size_t n = byte_length();
  end = std::min(end, n);
  begin = std::min(begin, end);
  return copy_of(bytes().subspan(begin, end - begin));
}

bool operator==(const ArrayBuffer& a, const ArrayBuffer& b) noexcept {
  if (a.detached() != b.detached()) return false;
  const auto x = a.bytes();
  const auto y = b.bytes();
  return x.size() == y.size() && (x.empty() || std::memcmp(x.data(), y.data(), x.size()) == 0);
}

void mark_as_untransferable(ArrayBuffer& buffer) noexcept {
  internal::BufferAccess::storage(buffer)->untransferable = true;
}

bool is_marked_as_untransferable(const ArrayBuffer& buffer) noexcept {
  return internal::BufferAccess::storage(buffer)->untransferable;
}

std::size_t element_size(ViewKind kind) noexcept {
  switch (kind) {
    case ViewKind::kInt8:
    case ViewKind::kUint8:
    case ViewKind::kUint8Clamped:
    case ViewKind::kDataView:
      return 1;
    case ViewKind::kInt16:
    case ViewKind::kUint16:
      return 2;
    case ViewKind::kInt32:
    case ViewKind::kUint32:
    case ViewKind::kFloat32:
      return 4;
    case ViewKind::kFloat64:
    case ViewKind::kBigInt64:
    case ViewKind::kBigUint64:
      return 8;
  }
  return 1;
}

std::string_view view_kind_name(ViewKind kind) noexcept {
  switch (kind) {
    case ViewKind::kInt8:
      return "Int8Array";
    case ViewKind::kUint8:
      return "Uint8Array";
    case ViewKind::kUint8Clamped:
      return "Uint8ClampedArray";
    case ViewKind::kInt16:
      return "Int16Array";
    case ViewKind::kUint16:
      return "Uint16Array";
    case ViewKind::kInt32:
      return "Int32Array";
    case ViewKind::kUint32:
      return "Uint32Array";
    case ViewKind::kFloat32:
      return "Float32Array";
    case ViewKind::kFloat64:
      return "Float64Array";
    case ViewKind::kBigInt64:
      return "BigInt64Array";
    case ViewKind::kBigUint64:
      return "BigUint64Array";
    case ViewKind::kDataView:
      return "DataView";
  }
  return "?";
}

Result<TypedArray> TypedArray::create(ViewKind kind, ArrayBuffer buffer, std::size_t byte_offset,
                                      std::optional<std::size_t> length) {
  if (static_cast<std::uint8_t>(kind) >= kViewKindCount) {
    return Status(ErrorCode::kInvalidArgument, "TypedArray: unknown view kind");
  }
  if (buffer.detached()) {
    return Status(ErrorCode::kDetached, "TypedArray: cannot view a detached ArrayBuffer");
  }
  const std::size_t es = element_size(kind);
  const std::size_t total = buffer.byte_length();
  if (byte_offset % es != 0) {
    return Status(ErrorCode::kOutOfRange, std::string(view_kind_name(kind)) +
                                              ": start offset must be a multiple of " +
                                              std::to_string(es));
  }
  if (byte_offset > total) {
    return Status(ErrorCode::kOutOfRange,
                  std::string(view_kind_name(kind)) + ": start offset is outside the buffer");
  }
  std::size_t n;
  if (length) {
    if (*length > (total - byte_offset) / es) {
      return Status(ErrorCode::kOutOfRange,
                    std::string(view_kind_name(kind)) + ": length runs past the end of the buffer");
    }
    n = *length;
  } else {
    if ((total - byte_offset) % es != 0) {
      return Status(ErrorCode::kOutOfRange,
                    std::string(view_kind_name(kind)) +
                        ": buffer length minus offset must be a multiple of " + std::to_string(es));
    }
    n = (total - byte_offset) / es;
  }
  return TypedArray(kind, std::move(buffer), byte_offset, n);
}

TypedArray TypedArray::allocate(ViewKind kind, std::size_t length) {
  if (static_cast<std::uint8_t>(kind) >= kViewKindCount) kind = ViewKind::kUint8;
  if (length > std::numeric_limits<std::size_t>::max() / element_size(kind)) {
    throw std::bad_array_new_length();
  }
  return TypedArray(kind, ArrayBuffer::create(length * element_size(kind)), 0, length);
}

Status TypedArray::mismatch() const {
  return Status(ErrorCode::kTypeMismatch, std::string("TypedArray: element type does not match ") +
                                              std::string(view_kind_name(kind_)));
}

bool operator==(const TypedArray& a, const TypedArray& b) noexcept {
  if (a.kind() != b.kind() || a.length() != b.length()) return false;
  const auto n = a.byte_length();
  return n == 0 || std::memcmp(a.buffer().data() + a.byte_offset(),
                               b.buffer().data() + b.byte_offset(), n) == 0;
}

}  // namespace weave
