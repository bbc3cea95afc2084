#include "channel/array_buffer.h"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include <gtest/gtest.h>

#include "channel/status.h"
#include "channel/value.h"
#include "tests/test_util.h"

namespace weave {
namespace {

class ArrayBufferTest : public testing::CleanShutdownTest {};
class TypedArrayTest : public testing::CleanShutdownTest {};

bool all_zero(std::span<const std::byte> bytes) {
  for (std::byte b : bytes) {
    if (b != std::byte{0}) return false;
  }
  return true;
}

// Detaches `b` the only way there is: transferring it away.
void detach(ArrayBuffer& b) {
  ArrayBuffer list[] = {b};
  ASSERT_TRUE(structured_clone(Value(), list).ok());
  ASSERT_TRUE(b.detached());
}

// --- ArrayBuffer -------------------------------------------------------------------------

TEST_F(ArrayBufferTest, DefaultIsEmptyAndAttached) {
  ArrayBuffer b;
  EXPECT_EQ(b.byte_length(), 0u);
  EXPECT_FALSE(b.detached());
  EXPECT_TRUE(b.bytes().empty());
  ASSERT_TRUE(b.checked_bytes().ok());
  EXPECT_TRUE(b.checked_bytes()->empty());
}

TEST_F(ArrayBufferTest, CreateZeroFills) {
  for (std::size_t n : {1u, 7u, 64u, 4096u}) {
    ArrayBuffer b = ArrayBuffer::create(n);
    EXPECT_EQ(b.byte_length(), n);
    EXPECT_EQ(b.bytes().size(), n);
    EXPECT_FALSE(b.detached());
    EXPECT_TRUE(all_zero(b.bytes())) << n;
  }
  EXPECT_EQ(ArrayBuffer::create(0).byte_length(), 0u);
}

TEST_F(ArrayBufferTest, CopyOfCopiesTheBytes) {
  std::byte src[4] = {std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4}};
  ArrayBuffer b = ArrayBuffer::copy_of(std::span<const std::byte>(src));
  EXPECT_NE(b.data(), src);
  src[0] = std::byte{99};
  EXPECT_EQ(b.byte_length(), 4u);
  EXPECT_EQ(b.bytes()[0], std::byte{1});
  EXPECT_EQ(b.bytes()[3], std::byte{4});

  const ArrayBuffer text = ArrayBuffer::copy_of(std::string_view("hello"));
  EXPECT_EQ(text.to_string(), "hello");
  EXPECT_EQ(ArrayBuffer::copy_of(std::string_view()).byte_length(), 0u);
}

TEST_F(ArrayBufferTest, AdoptTakesOwnershipWithoutCopying) {
  auto data = std::make_unique<std::byte[]>(8);
  data[5] = std::byte{42};
  const std::byte* raw = data.get();
  ArrayBuffer b = ArrayBuffer::adopt(std::move(data), 8);
  EXPECT_EQ(b.data(), raw);
  EXPECT_EQ(b.byte_length(), 8u);
  EXPECT_EQ(b.bytes()[5], std::byte{42});
  // ASan would report a leak or double free if ownership were not taken.
}

TEST_F(ArrayBufferTest, AdoptOfNullIsEmpty) {
  ArrayBuffer b = ArrayBuffer::adopt(nullptr, 16);
  EXPECT_EQ(b.byte_length(), 0u);
  EXPECT_TRUE(b.bytes().empty());
}

TEST_F(ArrayBufferTest, HandlesShareTheBytes) {
  ArrayBuffer a = ArrayBuffer::create(4);
  ArrayBuffer b = a;  // a JS reference, not a copy
  EXPECT_TRUE(a.same_buffer(b));
  b.bytes()[2] = std::byte{7};
  EXPECT_EQ(a.bytes()[2], std::byte{7});
  EXPECT_FALSE(a.same_buffer(ArrayBuffer::create(4)));
}

TEST_F(ArrayBufferTest, EqualityComparesBytes) {
  EXPECT_EQ(ArrayBuffer::copy_of(std::string_view("abc")),
            ArrayBuffer::copy_of(std::string_view("abc")));
  EXPECT_NE(ArrayBuffer::copy_of(std::string_view("abc")),
            ArrayBuffer::copy_of(std::string_view("abd")));
  EXPECT_NE(ArrayBuffer::copy_of(std::string_view("ab")),
            ArrayBuffer::copy_of(std::string_view("abc")));
  EXPECT_EQ(ArrayBuffer(), ArrayBuffer::create(0));
}

TEST_F(ArrayBufferTest, DetachedBuffersEqualEachOtherButNotEmptyOnes) {
  ArrayBuffer a = ArrayBuffer::create(3);
  ArrayBuffer b = ArrayBuffer::create(5);
  detach(a);
  detach(b);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, ArrayBuffer());
}

TEST_F(ArrayBufferTest, SliceCopiesAndClamps) {
  const ArrayBuffer b = ArrayBuffer::copy_of(std::string_view("abcdefgh"));
  EXPECT_EQ(b.slice(2, 5).to_string(), "cde");
  EXPECT_EQ(b.slice(2, 100).to_string(), "cdefgh");
  EXPECT_EQ(b.slice(0, 8).to_string(), "abcdefgh");
  EXPECT_EQ(b.slice(5, 2).byte_length(), 0u);
  EXPECT_EQ(b.slice(100, 200).byte_length(), 0u);
  EXPECT_FALSE(b.slice(100, 200).detached());

  ArrayBuffer s = b.slice(0, 3);
  EXPECT_FALSE(s.same_buffer(b));
  s.bytes()[0] = std::byte{'X'};
  EXPECT_EQ(b.to_string(), "abcdefgh");
}

TEST_F(ArrayBufferTest, DetachedBufferReadsAsEmpty) {
  ArrayBuffer b = ArrayBuffer::copy_of(std::string_view("data"));
  ArrayBuffer other_handle = b;
  detach(b);
  for (ArrayBuffer* h : {&b, &other_handle}) {
    EXPECT_TRUE(h->detached());
    EXPECT_EQ(h->byte_length(), 0u);
    EXPECT_TRUE(h->bytes().empty());
    EXPECT_EQ(h->to_string(), "");
    Result<std::span<std::byte>> checked = h->checked_bytes();
    ASSERT_FALSE(checked.ok());
    EXPECT_EQ(checked.code(), ErrorCode::kDetached);
    EXPECT_EQ(h->slice(0, 4).byte_length(), 0u);
  }
}

// --- element kinds -------------------------------------------------------------------------

TEST_F(TypedArrayTest, ElementSizesAndNamesMatchJs) {
  struct Row {
    ViewKind kind;
    std::size_t size;
    const char* name;
  };
  const Row rows[] = {
      {ViewKind::kInt8, 1, "Int8Array"},         {ViewKind::kUint8, 1, "Uint8Array"},
      {ViewKind::kUint8Clamped, 1, "Uint8ClampedArray"},
      {ViewKind::kInt16, 2, "Int16Array"},       {ViewKind::kUint16, 2, "Uint16Array"},
      {ViewKind::kInt32, 4, "Int32Array"},       {ViewKind::kUint32, 4, "Uint32Array"},
      {ViewKind::kFloat32, 4, "Float32Array"},   {ViewKind::kFloat64, 8, "Float64Array"},
      {ViewKind::kBigInt64, 8, "BigInt64Array"}, {ViewKind::kBigUint64, 8, "BigUint64Array"},
      {ViewKind::kDataView, 1, "DataView"},
  };
  static_assert(std::size(rows) == kViewKindCount);
  for (const Row& r : rows) {
    EXPECT_EQ(element_size(r.kind), r.size) << r.name;
    EXPECT_EQ(view_kind_name(r.kind), r.name);
  }
  static_assert(view_kind_of<std::uint8_t>() == ViewKind::kUint8);
  static_assert(view_kind_of<std::int64_t>() == ViewKind::kBigInt64);
  static_assert(view_kind_of<double>() == ViewKind::kFloat64);
  static_assert(!view_kind_of<char>().has_value());
}

// --- TypedArray::create --------------------------------------------------------------------

TEST_F(TypedArrayTest, CreateWithoutLengthRunsToTheEnd) {
  ArrayBuffer b = ArrayBuffer::create(16);
  Result<TypedArray> t = TypedArray::create(ViewKind::kInt32, b);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->length(), 4u);
  EXPECT_EQ(t->byte_offset(), 0u);
  EXPECT_EQ(t->byte_length(), 16u);
  EXPECT_EQ(t->kind(), ViewKind::kInt32);
  EXPECT_TRUE(t->buffer().same_buffer(b));

  t = TypedArray::create(ViewKind::kInt32, b, 8);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->length(), 2u);
  EXPECT_EQ(t->byte_offset(), 8u);

  t = TypedArray::create(ViewKind::kFloat64, b, 16);  // offset at the end: empty view
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->length(), 0u);
}

TEST_F(TypedArrayTest, CreateWithLengthTakesThatWindow) {
  ArrayBuffer b = ArrayBuffer::create(16);
  Result<TypedArray> t = TypedArray::create(ViewKind::kUint16, b, 4, 3);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->length(), 3u);
  EXPECT_EQ(t->byte_length(), 6u);
  EXPECT_EQ(t->byte_offset(), 4u);
  EXPECT_TRUE(TypedArray::create(ViewKind::kUint16, b, 4, 6).ok());  // exactly to the end
  EXPECT_TRUE(TypedArray::create(ViewKind::kUint16, b, 0, 0).ok());
}

TEST_F(TypedArrayTest, CreateRejectsMisalignedOffset) {
  ArrayBuffer b = ArrayBuffer::create(16);
  Result<TypedArray> t = TypedArray::create(ViewKind::kInt32, b, 2);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.code(), ErrorCode::kOutOfRange);
  EXPECT_EQ(t.status().message(), "Int32Array: start offset must be a multiple of 4");
  EXPECT_EQ(TypedArray::create(ViewKind::kFloat64, b, 4, 1).code(), ErrorCode::kOutOfRange);
  // Byte-sized kinds and DataView take any offset.
  EXPECT_TRUE(TypedArray::create(ViewKind::kUint8, b, 3).ok());
  EXPECT_TRUE(TypedArray::create(ViewKind::kDataView, b, 5, 3).ok());
}

TEST_F(TypedArrayTest, CreateRejectsWindowOutsideTheBuffer) {
  ArrayBuffer b = ArrayBuffer::create(16);
  EXPECT_EQ(TypedArray::create(ViewKind::kUint8, b, 17).code(), ErrorCode::kOutOfRange);
  EXPECT_EQ(TypedArray::create(ViewKind::kInt32, b, 20).code(), ErrorCode::kOutOfRange);
  Result<TypedArray> t = TypedArray::create(ViewKind::kInt32, b, 8, 3);
  EXPECT_EQ(t.code(), ErrorCode::kOutOfRange);
  EXPECT_EQ(t.status().message(), "Int32Array: length runs past the end of the buffer");
  EXPECT_EQ(TypedArray::create(ViewKind::kUint8, b, 0, 17).code(), ErrorCode::kOutOfRange);
  // A length that would overflow offset + length * size is still refused.
  EXPECT_EQ(TypedArray::create(ViewKind::kFloat64, b, 8, SIZE_MAX / 4).code(),
            ErrorCode::kOutOfRange);
}

TEST_F(TypedArrayTest, CreateWithoutLengthRejectsARemainder) {
  ArrayBuffer b = ArrayBuffer::create(10);
  Result<TypedArray> t = TypedArray::create(ViewKind::kInt32, b);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.code(), ErrorCode::kOutOfRange);
  EXPECT_EQ(t.status().message(),
            "Int32Array: buffer length minus offset must be a multiple of 4");
  EXPECT_EQ(TypedArray::create(ViewKind::kInt16, b, 4).value().length(), 3u);
  EXPECT_EQ(TypedArray::create(ViewKind::kFloat64, b, 8).code(), ErrorCode::kOutOfRange);
}

TEST_F(TypedArrayTest, CreateOverDetachedBufferIsDetachedError) {
  ArrayBuffer b = ArrayBuffer::create(8);
  detach(b);
  Result<TypedArray> t = TypedArray::create(ViewKind::kUint8, b);
  EXPECT_EQ(t.code(), ErrorCode::kDetached);
  EXPECT_EQ(TypedArray::create(ViewKind::kUint8, b, 0, 0).code(), ErrorCode::kDetached);
}

TEST_F(TypedArrayTest, CreateRejectsUnknownKind) {
  EXPECT_EQ(TypedArray::create(static_cast<ViewKind>(kViewKindCount), ArrayBuffer::create(8))
                .code(),
            ErrorCode::kInvalidArgument);
}

TEST_F(TypedArrayTest, AllocateMakesAZeroFilledBufferOfWholeElements) {
  TypedArray t = TypedArray::allocate(ViewKind::kFloat64, 3);
  EXPECT_EQ(t.length(), 3u);
  EXPECT_EQ(t.byte_length(), 24u);
  EXPECT_EQ(t.buffer().byte_length(), 24u);
  EXPECT_TRUE(all_zero(t.buffer().bytes()));
  EXPECT_EQ(TypedArray::allocate(ViewKind::kInt8, 0).length(), 0u);
}

// --- span<T>() and at<T>() -----------------------------------------------------------------

TEST_F(TypedArrayTest, SpanChecksTheElementType) {
  TypedArray i32 = TypedArray::allocate(ViewKind::kInt32, 2);
  ASSERT_TRUE(i32.span<std::int32_t>().ok());
  EXPECT_EQ(i32.span<std::int32_t>()->size(), 2u);
  Result<std::span<std::uint32_t>> wrong = i32.span<std::uint32_t>();
  EXPECT_EQ(wrong.code(), ErrorCode::kTypeMismatch);
  EXPECT_EQ(wrong.status().message(), "TypedArray: element type does not match Int32Array");
  EXPECT_EQ(i32.span<float>().code(), ErrorCode::kTypeMismatch);
  EXPECT_EQ(i32.span<std::byte>().code(), ErrorCode::kTypeMismatch);

  TypedArray f64 = TypedArray::allocate(ViewKind::kFloat64, 1);
  EXPECT_TRUE(f64.span<double>().ok());
  EXPECT_EQ(f64.span<std::int64_t>().code(), ErrorCode::kTypeMismatch);
  TypedArray big = TypedArray::allocate(ViewKind::kBigUint64, 1);
  EXPECT_TRUE(big.span<std::uint64_t>().ok());
}

TEST_F(TypedArrayTest, Uint8ClampedReadsAsUint8) {
  TypedArray c = TypedArray::allocate(ViewKind::kUint8Clamped, 4);
  Result<std::span<std::uint8_t>> s = c.span<std::uint8_t>();
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->size(), 4u);
  (*s)[3] = 255;
  EXPECT_EQ(c.at<std::uint8_t>(3).value(), 255);
  EXPECT_EQ(c.span<std::int8_t>().code(), ErrorCode::kTypeMismatch);
  // ...but a plain Uint8Array is not a DataView.
  EXPECT_EQ(TypedArray::allocate(ViewKind::kUint8, 1).span<std::byte>().code(),
            ErrorCode::kTypeMismatch);
}

TEST_F(TypedArrayTest, DataViewReadsAsBytesOnly) {
  ArrayBuffer b = ArrayBuffer::copy_of(std::string_view("abcdef"));
  TypedArray dv = TypedArray::create(ViewKind::kDataView, b, 1, 3).value();
  Result<std::span<std::byte>> s = dv.span<std::byte>();
  ASSERT_TRUE(s.ok());
  ASSERT_EQ(s->size(), 3u);
  EXPECT_EQ((*s)[0], std::byte{'b'});
  EXPECT_EQ(dv.at<std::byte>(2).value(), std::byte{'d'});
  EXPECT_EQ(dv.span<std::uint8_t>().code(), ErrorCode::kTypeMismatch);
}

TEST_F(TypedArrayTest, AtIsBoundsChecked) {
  TypedArray t = TypedArray::allocate(ViewKind::kInt16, 3);
  (*t.span<std::int16_t>())[2] = -300;
  EXPECT_EQ(t.at<std::int16_t>(2).value(), -300);
  Result<std::int16_t> past = t.at<std::int16_t>(3);
  ASSERT_FALSE(past.ok());
  EXPECT_EQ(past.code(), ErrorCode::kOutOfRange);
  EXPECT_EQ(t.at<std::int16_t>(SIZE_MAX).code(), ErrorCode::kOutOfRange);
  EXPECT_EQ(t.at<std::uint16_t>(0).code(), ErrorCode::kTypeMismatch);

  // The window, not the buffer, bounds the index.
  ArrayBuffer b = ArrayBuffer::create(16);
  TypedArray w = TypedArray::create(ViewKind::kUint8, b, 4, 2).value();
  EXPECT_TRUE(w.at<std::uint8_t>(1).ok());
  EXPECT_EQ(w.at<std::uint8_t>(2).code(), ErrorCode::kOutOfRange);
}

TEST_F(TypedArrayTest, ViewsOverOneBufferSeeEachOthersWrites) {
  ArrayBuffer b = ArrayBuffer::create(8);
  TypedArray words = TypedArray::create(ViewKind::kUint32, b).value();
  TypedArray bytes = TypedArray::create(ViewKind::kUint8, b).value();
  TypedArray tail = TypedArray::create(ViewKind::kUint16, b, 4).value();

  const std::uint32_t word = 0xa1b2c3d4;
  (*words.span<std::uint32_t>())[1] = word;
  std::uint8_t expect[4];
  std::memcpy(expect, &word, 4);
  for (std::size_t i = 0; i < 4; ++i) EXPECT_EQ(bytes.at<std::uint8_t>(4 + i).value(), expect[i]);
  std::uint16_t half;
  std::memcpy(&half, &word, 2);
  EXPECT_EQ(tail.at<std::uint16_t>(0).value(), half);

  (*bytes.span<std::uint8_t>())[0] = 0x11;
  EXPECT_EQ(words.at<std::uint32_t>(0).value() & 0xffu, 0x11u);
  EXPECT_EQ(b.bytes()[0], std::byte{0x11});
}

TEST_F(TypedArrayTest, ViewAfterDetachHasLengthZero) {
  ArrayBuffer b = ArrayBuffer::create(16);
  TypedArray t = TypedArray::create(ViewKind::kInt32, b, 4, 2).value();
  detach(b);
  EXPECT_EQ(t.length(), 0u);
  EXPECT_EQ(t.byte_length(), 0u);
  EXPECT_EQ(t.byte_offset(), 0u);
  EXPECT_TRUE(t.buffer().detached());
  EXPECT_EQ(t.span<std::int32_t>().code(), ErrorCode::kDetached);
  EXPECT_EQ(t.at<std::int32_t>(0).code(), ErrorCode::kDetached);
}

TEST_F(TypedArrayTest, SameViewIsIdentityEqualityIsBytes) {
  ArrayBuffer b = ArrayBuffer::copy_of(std::string_view("abab"));
  TypedArray first = TypedArray::create(ViewKind::kUint8, b, 0, 2).value();
  TypedArray second = TypedArray::create(ViewKind::kUint8, b, 2, 2).value();
  TypedArray again = TypedArray::create(ViewKind::kUint8, b, 0, 2).value();
  EXPECT_EQ(first, second);  // same bytes
  EXPECT_FALSE(first.same_view(second));
  EXPECT_TRUE(first.same_view(again));
  EXPECT_NE(first, TypedArray::create(ViewKind::kInt8, b, 0, 2).value());  // other kind
}

}  // namespace
}  // namespace weave
