#include "channel/value.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "atomics/shared_array_buffer.h"
#include "channel/array_buffer.h"
#include "channel/status.h"
#include "tests/test_util.h"

namespace weave {
namespace {

class ValueTest : public testing::CleanShutdownTest {};
class StructuredCloneTest : public testing::CleanShutdownTest {};

ArrayBuffer bytes_of(std::string_view s) { return ArrayBuffer::copy_of(s); }

// A view that must exist; the test fails (not crashes) otherwise.
TypedArray view(ViewKind kind, const ArrayBuffer& b, std::size_t offset = 0,
                std::optional<std::size_t> length = std::nullopt) {
  Result<TypedArray> t = TypedArray::create(kind, b, offset, length);
  EXPECT_TRUE(t.ok()) << t.status().to_string();
  return t.ok() ? *t : TypedArray::allocate(kind, 0);
}

// `n` arrays around an int: the int sits at depth n (the root is depth 0).
Value nest(std::size_t n) {
  Value v(0);
  for (std::size_t i = 0; i < n; ++i) v = Value(Array{std::move(v)});
  return v;
}

// Detaches `b` by transferring it away.
void detach(ArrayBuffer& b) {
  ArrayBuffer list[] = {b};
  ASSERT_TRUE(structured_clone(Value(), list).ok());
  ASSERT_TRUE(b.detached());
}

// --- the value model -------------------------------------------------------------------

TEST_F(ValueTest, StaysWithin48Bytes) {
  static_assert(sizeof(Value) <= 48);
  EXPECT_LE(sizeof(Value), 48u);
}

TEST_F(ValueTest, DefaultIsUndefined) {
  const Value v;
  EXPECT_TRUE(v.is_undefined());
  EXPECT_EQ(v.type(), Value::Type::kUndefined);
  EXPECT_EQ(v, Value(kUndefined));
}

TEST_F(ValueTest, EachTypeAnswersOnlyItsOwnPredicate) {
  const std::vector<Value> values = {
      Value(),
      Value(kNull),
      Value(true),
      Value(42),
      Value(1.5),
      Value("text"),
      Value(ArrayBuffer::create(2)),
      Value(TypedArray::allocate(ViewKind::kUint8, 2)),
      Value(Array{1}),
      Value(Object{{"k", 1}}),
      Value(ErrorValue{"TypeError", "bad", ""}),
      Value(SharedArrayBuffer(8)),
  };
  for (std::size_t i = 0; i < values.size(); ++i) {
    const Value& v = values[i];
    EXPECT_EQ(static_cast<std::size_t>(v.type()), i);
    const bool preds[] = {v.is_undefined(),    v.is_null(),        v.is_bool(),
                          v.is_int(),          v.is_double(),      v.is_string(),
                          v.is_array_buffer(), v.is_typed_array(), v.is_array(),
                          v.is_object(),       v.is_error(),       v.is_shared_array_buffer()};
    for (std::size_t j = 0; j < std::size(preds); ++j) {
      EXPECT_EQ(preds[j], i == j) << "value " << i << " predicate " << j;
    }
    EXPECT_EQ(v.if_bool() != nullptr, v.is_bool());
    EXPECT_EQ(v.if_int() != nullptr, v.is_int());
    EXPECT_EQ(v.if_double() != nullptr, v.is_double());
    EXPECT_EQ(v.if_string() != nullptr, v.is_string());
    EXPECT_EQ(v.if_array_buffer() != nullptr, v.is_array_buffer());
    EXPECT_EQ(v.if_typed_array() != nullptr, v.is_typed_array());
    EXPECT_EQ(v.if_array() != nullptr, v.is_array());
    EXPECT_EQ(v.if_object() != nullptr, v.is_object());
    EXPECT_EQ(v.if_error() != nullptr, v.is_error());
    EXPECT_EQ(v.if_shared_array_buffer() != nullptr, v.is_shared_array_buffer());
    EXPECT_EQ(v.is_number(), v.is_int() || v.is_double());
  }
}

TEST_F(ValueTest, AccessorsReturnTheHeldValue) {
  EXPECT_EQ(*Value(true).if_bool(), true);
  EXPECT_EQ(*Value(-7).if_int(), -7);
  EXPECT_EQ(*Value(2.5).if_double(), 2.5);
  EXPECT_EQ(*Value(2.5f).if_double(), 2.5);
  EXPECT_EQ(*Value("abc").if_string(), "abc");
  EXPECT_EQ(*Value(std::string_view("sv")).if_string(), "sv");
  EXPECT_EQ(*Value(std::string(100, 'x')).if_string(), std::string(100, 'x'));
  EXPECT_TRUE(Value(nullptr).is_null());
  EXPECT_EQ(Value(ArrayBuffer::create(3)).if_array_buffer()->byte_length(), 3u);
  EXPECT_EQ(Value(TypedArray::allocate(ViewKind::kInt16, 4)).if_typed_array()->length(), 4u);
  EXPECT_EQ(Value(Array{1, 2}).if_array()->size(), 2u);
  EXPECT_EQ(Value(ErrorValue{"RangeError", "m", "s"}).if_error()->name, "RangeError");
  EXPECT_EQ(ErrorValue{}.name, "Error");

  Value s("short");
  s.if_string()->append("er");
  EXPECT_EQ(*s.if_string(), "shorter");
}

TEST_F(ValueTest, IntegersOfEveryWidthBecomeInt64) {
  EXPECT_EQ(*Value(std::int8_t{-8}).if_int(), -8);
  EXPECT_EQ(*Value(std::uint16_t{65535}).if_int(), 65535);
  EXPECT_EQ(*Value(std::uint32_t{4294967295u}).if_int(), 4294967295LL);
  EXPECT_EQ(*Value(std::numeric_limits<std::int64_t>::min()).if_int(),
            std::numeric_limits<std::int64_t>::min());
  // Unsigned values above INT64_MAX keep their bit pattern.
  EXPECT_EQ(*Value(std::numeric_limits<std::uint64_t>::max()).if_int(), -1);
}

TEST_F(ValueTest, AsNumberConvertsIntsAndRejectsOthers) {
  EXPECT_EQ(Value(3).as_number(), 3.0);
  EXPECT_EQ(Value(0.25).as_number(), 0.25);
  EXPECT_EQ(Value("3").as_number(), std::nullopt);
  EXPECT_EQ(Value(true).as_number(), std::nullopt);
}

TEST_F(ValueTest, FindAndAtAreNullWhenAbsentOrWrongType) {
  const Value o(Object{{"a", 1}, {"b", Array{"x", "y"}}});
  ASSERT_NE(o.find("a"), nullptr);
  EXPECT_EQ(*o.find("a"), Value(1));
  EXPECT_EQ(o.find("zzz"), nullptr);
  EXPECT_EQ(o.at(0), nullptr);
  const Value* b = o.find("b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(*b->at(1), Value("y"));
  EXPECT_EQ(b->at(2), nullptr);
  EXPECT_EQ(b->find("a"), nullptr);
  EXPECT_EQ(Value(5).find("a"), nullptr);
}

TEST_F(ValueTest, MovedValuesAreNothrow) {
  static_assert(std::is_nothrow_move_constructible_v<Value>);
  Value a(Array{1, 2, 3});
  Value b(std::move(a));
  EXPECT_EQ(b, Value(Array{1, 2, 3}));
}

// Scalars move inline (a tag and one word), everything else through the
// owned path: each kind arrives whole by construction and by assignment,
// also over a value that owned something.
TEST_F(ValueTest, EveryKindMovesWholeByConstructionAndAssignment) {
  const std::vector<Value> kinds = {
      Value(),
      Value(nullptr),
      Value(true),
      Value(false),
      Value(std::int64_t{-1} << 62),
      Value(-0.5),
      Value("a string too long for the small-string buffer"),
      Value(ArrayBuffer::copy_of(std::string_view("seven b"))),
      Value(Array{1, "two", 3.0}),
      Value(Object{{"k", Array{nullptr}}}),
      Value(ErrorValue{"TypeError", "bad", "at x"}),
      Value(view(ViewKind::kUint16, ArrayBuffer::copy_of(std::string_view("abcdefgh")), 2, 3)),
      Value(SharedArrayBuffer(8)),  // equal by identity: the moved handle is the same memory
  };
  for (const Value& kind : kinds) {
    SCOPED_TRACE(kind.to_string());
    Value source = kind;
    Value moved(std::move(source));
    EXPECT_EQ(moved, kind);
    Value target(Object{{"owned", "before"}});
    target = std::move(moved);
    EXPECT_EQ(target, kind);
  }
}

// --- Object ------------------------------------------------------------------------------

std::vector<std::string> keys(const Object& o) {
  std::vector<std::string> out;
  for (const auto& [k, v] : o) out.push_back(k);
  return out;
}

TEST_F(ValueTest, ObjectKeepsInsertionOrder) {
  Object o;
  o.set("zeta", 1).set("alpha", 2).set("mid", 3);
  EXPECT_EQ(keys(o), (std::vector<std::string>{"zeta", "alpha", "mid"}));
  EXPECT_EQ(o.size(), 3u);
  EXPECT_FALSE(o.empty());
  EXPECT_EQ(Value(o).to_string(), R"({"zeta":1,"alpha":2,"mid":3})");
}

TEST_F(ValueTest, ObjectSetOnExistingKeyKeepsItsPosition) {
  Object o{{"a", 1}, {"b", 2}, {"c", 3}};
  o.set("a", "replaced");
  EXPECT_EQ(keys(o), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(*o.get("a"), Value("replaced"));
  EXPECT_EQ(o.size(), 3u);
}

TEST_F(ValueTest, ObjectInitializerListWithRepeatedKeyKeepsFirstPositionLastValue) {
  const Object o{{"a", 1}, {"b", 2}, {"a", 3}};
  EXPECT_EQ(keys(o), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(*o.get("a"), Value(3));
}

TEST_F(ValueTest, ObjectGetContainsErase) {
  Object o{{"a", 1}, {"b", 2}, {"c", 3}};
  EXPECT_TRUE(o.contains("b"));
  EXPECT_EQ(o.get("nope"), nullptr);
  EXPECT_TRUE(o.erase("b"));
  EXPECT_FALSE(o.erase("b"));
  EXPECT_FALSE(o.contains("b"));
  EXPECT_EQ(keys(o), (std::vector<std::string>{"a", "c"}));
  *o.get("c") = Value("changed");
  EXPECT_EQ(*o.get("c"), Value("changed"));
  EXPECT_TRUE(Object().empty());
}

// --- equality ------------------------------------------------------------------------------

TEST_F(ValueTest, EqualityIsStructural) {
  EXPECT_EQ(Value(Array{1, "a", Object{{"k", kNull}}}), Value(Array{1, "a", Object{{"k", kNull}}}));
  EXPECT_NE(Value(Array{1, 2}), Value(Array{1, 3}));
  EXPECT_NE(Value(Array{1, 2}), Value(Array{1, 2, 3}));
  EXPECT_NE(Value(Object{{"a", 1}}), Value(Object{{"b", 1}}));
  EXPECT_NE(Value(1), Value("1"));
  EXPECT_NE(Value(kNull), Value());
  EXPECT_EQ(Value(ErrorValue{"E", "m", "s"}), Value(ErrorValue{"E", "m", "s"}));
  EXPECT_NE(Value(ErrorValue{"E", "m", "s"}), Value(ErrorValue{"E", "m", "other stack"}));
}

TEST_F(ValueTest, IntAndDoubleAreDifferentTypes) {
  EXPECT_NE(Value(1), Value(1.0));
}

TEST_F(ValueTest, NanEqualsNanSoClonesCompareEqual) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(Value(nan), Value(nan));
  EXPECT_EQ(Value(Array{nan}), Value(Array{nan}));
  EXPECT_EQ(Value(Object{{"x", nan}}), Value(Object{{"x", nan}}));
  EXPECT_NE(Value(nan), Value(0.0));
  EXPECT_EQ(Value(0.0), Value(-0.0));
}

TEST_F(ValueTest, BuffersCompareByBytes) {
  const ArrayBuffer a = bytes_of("abcd");
  const ArrayBuffer b = bytes_of("abcd");
  ASSERT_FALSE(a.same_buffer(b));
  EXPECT_EQ(Value(a), Value(b));
  EXPECT_NE(Value(a), Value(bytes_of("abce")));
  EXPECT_NE(Value(a), Value(bytes_of("abc")));
  // Views: same kind and bytes in the window, whatever the buffer.
  const ArrayBuffer big = bytes_of("xxabcd");
  EXPECT_EQ(Value(view(ViewKind::kUint8, a)), Value(view(ViewKind::kUint8, big, 2)));
  EXPECT_NE(Value(view(ViewKind::kUint8, a)), Value(view(ViewKind::kInt8, a)));
}

// --- to_string -----------------------------------------------------------------------------

TEST_F(ValueTest, ToStringRendersJsonLike) {
  EXPECT_EQ(Value().to_string(), "undefined");
  EXPECT_EQ(Value(kNull).to_string(), "null");
  EXPECT_EQ(Value(true).to_string(), "true");
  EXPECT_EQ(Value(false).to_string(), "false");
  EXPECT_EQ(Value(-42).to_string(), "-42");
  EXPECT_EQ(Value(1.5).to_string(), "1.5");
  EXPECT_EQ(Value(2.0).to_string(), "2");
  EXPECT_EQ(Value("hi").to_string(), R"("hi")");
  EXPECT_EQ(Value("q\"b\\n\nt\t\x01").to_string(), R"("q\"b\\n\nt\t\u0001")");
  EXPECT_EQ(Value(ArrayBuffer::create(4)).to_string(), "ArrayBuffer(4)");
  EXPECT_EQ(Value(TypedArray::allocate(ViewKind::kInt32, 3)).to_string(), "Int32Array(3)");
  EXPECT_EQ(Value(TypedArray::allocate(ViewKind::kDataView, 5)).to_string(), "DataView(5)");
  EXPECT_EQ(Value(Array{}).to_string(), "[]");
  EXPECT_EQ(Value(Object{}).to_string(), "{}");
  EXPECT_EQ(Value(Array{1, "a", Array{kNull}, Object{{"k", false}}}).to_string(),
            R"([1,"a",[null],{"k":false}])");
  EXPECT_EQ(Value(ErrorValue{"TypeError", "x is not a function", "at f"}).to_string(),
            "TypeError: x is not a function");
}

TEST_F(ValueTest, SharedArrayBufferHoldsAHandleToTheSameMemory) {
  const SharedArrayBuffer sab(16);
  Value v(sab);
  ASSERT_TRUE(v.is_shared_array_buffer());
  EXPECT_EQ(*v.if_shared_array_buffer(), sab);
  EXPECT_EQ(v.if_shared_array_buffer()->data(), sab.data());
  EXPECT_EQ(sab.use_count_approx(), 2);

  // Copies and moves of the Value share the memory; nothing is copied.
  Value copy = v;
  Value moved = std::move(copy);
  EXPECT_EQ(moved.if_shared_array_buffer()->data(), sab.data());
  v = Value();
  moved = Value();
  copy = Value();
  EXPECT_EQ(sab.use_count_approx(), 1) << "every handle a Value took was released";
}

TEST_F(ValueTest, SharedArrayBuffersCompareByIdentityNotBytes) {
  const SharedArrayBuffer a(8);
  const SharedArrayBuffer b(8);  // same length, same (zero) bytes, other memory
  EXPECT_EQ(Value(a), Value(a));
  EXPECT_EQ(Value(a), Value(SharedArrayBuffer(a)));
  EXPECT_NE(Value(a), Value(b));
  EXPECT_NE(Value(a), Value(ArrayBuffer::create(8)));
  EXPECT_EQ(Value(Array{a, Object{{"s", a}}}), Value(Array{a, Object{{"s", a}}}));
  EXPECT_NE(Value(Array{a}), Value(Array{b}));
}

TEST_F(ValueTest, ToStringShowsSharedArrayBuffers) {
  EXPECT_EQ(Value(SharedArrayBuffer(16)).to_string(), "SharedArrayBuffer(16)");
  EXPECT_EQ(Value(Array{SharedArrayBuffer(0)}).to_string(), "[SharedArrayBuffer(0)]");
  SharedArrayBuffer g(4, {.max_byte_length = 64});
  const Value v(g);
  g.grow(32);
  EXPECT_EQ(v.to_string(), "SharedArrayBuffer(32)") << "the current length, as Node shows it";
}

TEST_F(ValueTest, ToStringShowsDetachedBuffers) {
  ArrayBuffer b = ArrayBuffer::create(8);
  const TypedArray t = view(ViewKind::kUint16, b);
  detach(b);
  EXPECT_EQ(Value(b).to_string(), "ArrayBuffer(detached)");
  EXPECT_EQ(Value(t).to_string(), "Uint16Array(0)");
}

// --- structured_clone ----------------------------------------------------------------------

TEST_F(StructuredCloneTest, CloneEqualsTheSource) {
  const Value v(Object{{"n", 1},
                       {"d", std::numeric_limits<double>::quiet_NaN()},
                       {"s", std::string(64, 's')},
                       {"e", ErrorValue{"RangeError", "r", "stack"}},
                       {"a", Array{kNull, kUndefined, true}},
                       {"b", bytes_of("bytes")},
                       {"t", TypedArray::allocate(ViewKind::kFloat64, 2)}});
  Result<Value> c = structured_clone(v);
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(*c, v);
  EXPECT_EQ(c->to_string(), v.to_string());
}

TEST_F(StructuredCloneTest, CloneSharesNothingWithTheSource) {
  ArrayBuffer buf = bytes_of("abcd");
  Value src(Object{{"list", Array{1, Array{2}}},
                   {"obj", Object{{"k", "v"}}},
                   {"str", std::string(40, 'x')},
                   {"buf", buf},
                   {"view", view(ViewKind::kUint8, buf, 1, 2)}});
  Result<Value> c = structured_clone(src);
  ASSERT_TRUE(c.ok());
  const std::string before = c->to_string();

  // Mutate everything reachable from the source.
  Object& o = *src.if_object();
  o.get("list")->if_array()->push_back(3);
  o.get("list")->if_array()->at(1).if_array()->at(0) = Value(99);
  o.get("obj")->if_object()->set("k", "changed").set("new", 1);
  o.get("str")->if_string()->assign("mutated");
  buf.bytes()[0] = std::byte{'Z'};
  (*o.get("view")->if_typed_array()->span<std::uint8_t>())[0] = 'Q';

  EXPECT_EQ(c->to_string(), before);
  const Value& cl = *c;
  EXPECT_EQ(*cl.find("list"), Value(Array{1, Array{2}}));
  EXPECT_EQ(*cl.find("obj"), Value(Object{{"k", "v"}}));
  EXPECT_EQ(*cl.find("str")->if_string(), std::string(40, 'x'));
  EXPECT_EQ(cl.find("buf")->if_array_buffer()->to_string(), "abcd");
  EXPECT_FALSE(cl.find("buf")->if_array_buffer()->same_buffer(buf));
  TypedArray cv = *cl.find("view")->if_typed_array();
  EXPECT_EQ(cv.at<std::uint8_t>(0).value(), 'b');
  EXPECT_EQ(cv.byte_offset(), 1u);
  EXPECT_EQ(cv.length(), 2u);
  EXPECT_EQ(buf.to_string(), "ZQcd");
}

TEST_F(StructuredCloneTest, AliasedBuffersStayAliasedInTheClone) {
  ArrayBuffer buf = ArrayBuffer::create(8);
  const Value src(Array{view(ViewKind::kUint8, buf), view(ViewKind::kInt32, buf, 4), buf});
  Result<Value> c = structured_clone(src);
  ASSERT_TRUE(c.ok());
  const Array& a = *c->if_array();
  TypedArray u8 = *a[0].if_typed_array();
  TypedArray i32 = *a[1].if_typed_array();
  const ArrayBuffer& b = *a[2].if_array_buffer();
  EXPECT_TRUE(u8.buffer().same_buffer(i32.buffer()));
  EXPECT_TRUE(u8.buffer().same_buffer(b));
  EXPECT_FALSE(b.same_buffer(buf));
  EXPECT_EQ(b.byte_length(), 8u);
  // One buffer: a write through one clone view shows through the other.
  (*i32.span<std::int32_t>())[0] = 0x01020304;
  std::int32_t expect = 0x01020304;
  std::uint8_t first;
  std::memcpy(&first, &expect, 1);
  EXPECT_EQ(u8.at<std::uint8_t>(4).value(), first);
  EXPECT_EQ(buf.bytes()[4], std::byte{0});  // the source is untouched
}

TEST_F(StructuredCloneTest, TransferMovesTheMemoryAndDetachesTheSource) {
  ArrayBuffer buf = bytes_of("transfer me");
  const std::byte* old_data = buf.data();
  TypedArray t = view(ViewKind::kUint8, buf, 2, 4);
  const Value src(Object{{"buf", buf}, {"view", t}});
  ArrayBuffer list[] = {buf};

  Result<Value> c = structured_clone(src, list);
  ASSERT_TRUE(c.ok()) << c.status().to_string();

  const ArrayBuffer& moved = *c->find("buf")->if_array_buffer();
  EXPECT_EQ(moved.data(), old_data);  // the very same memory, not a copy
  EXPECT_EQ(moved.to_string(), "transfer me");
  TypedArray cv = *c->find("view")->if_typed_array();
  EXPECT_TRUE(cv.buffer().same_buffer(moved));
  EXPECT_EQ(cv.byte_offset(), 2u);
  EXPECT_EQ(cv.length(), 4u);
  EXPECT_EQ(cv.at<std::uint8_t>(0).value(), 'a');

  // Every handle to the source buffer is detached, including the one in `src`.
  for (ArrayBuffer handle : {buf, list[0], *src.find("buf")->if_array_buffer()}) {
    EXPECT_TRUE(handle.detached());
    EXPECT_EQ(handle.byte_length(), 0u);
    EXPECT_TRUE(handle.bytes().empty());
    EXPECT_EQ(handle.data(), nullptr);
    EXPECT_EQ(handle.checked_bytes().code(), ErrorCode::kDetached);
  }
  // Views over it read as empty.
  EXPECT_EQ(t.length(), 0u);
  EXPECT_EQ(t.byte_length(), 0u);
  EXPECT_EQ(t.byte_offset(), 0u);
  EXPECT_EQ(t.span<std::uint8_t>().code(), ErrorCode::kDetached);
  EXPECT_EQ(src.find("view")->if_typed_array()->length(), 0u);
}

TEST_F(StructuredCloneTest, TransferredBufferNotInTheValueIsStillDetached) {
  // Node: structuredClone(1, {transfer: [buf]}) detaches buf.
  ArrayBuffer buf = bytes_of("gone");
  ArrayBuffer list[] = {buf};
  Result<Value> c = structured_clone(Value(1), list);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(*c, Value(1));
  EXPECT_TRUE(buf.detached());
  EXPECT_EQ(buf.byte_length(), 0u);
}

TEST_F(StructuredCloneTest, SameBufferListedTwiceFailsAndDetachesNothing) {
  ArrayBuffer buf = bytes_of("keep");
  const std::byte* data = buf.data();
  const ArrayBuffer other_handle = buf;  // another handle to the same buffer
  ArrayBuffer list[] = {buf, other_handle};
  Result<Value> c = structured_clone(Value(Array{buf}), list);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.code(), ErrorCode::kDataCloneError);
  EXPECT_FALSE(buf.detached());
  EXPECT_EQ(buf.data(), data);
  EXPECT_EQ(buf.to_string(), "keep");
}

TEST_F(StructuredCloneTest, DetachedBufferInTransferListFailsAndDetachesNothingElse) {
  ArrayBuffer dead = bytes_of("x");
  detach(dead);
  ArrayBuffer live = bytes_of("live");
  ArrayBuffer list[] = {live, dead};
  Result<Value> c = structured_clone(Value(Array{live}), list);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.code(), ErrorCode::kDataCloneError);
  EXPECT_FALSE(live.detached());
  EXPECT_EQ(live.to_string(), "live");
}

TEST_F(StructuredCloneTest, DetachedBufferInTheValueFailsAndDetachesNothing) {
  ArrayBuffer dead = ArrayBuffer::create(4);
  const TypedArray dead_view = view(ViewKind::kUint8, dead);
  detach(dead);
  ArrayBuffer live = bytes_of("live");
  ArrayBuffer list[] = {live};

  Result<Value> c = structured_clone(Value(Object{{"live", live}, {"dead", dead}}), list);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.code(), ErrorCode::kDataCloneError);
  EXPECT_FALSE(live.detached());
  EXPECT_EQ(live.to_string(), "live");

  // A view over a detached buffer fails the same way.
  c = structured_clone(Value(Array{dead_view}), list);
  EXPECT_EQ(c.code(), ErrorCode::kDataCloneError);
  EXPECT_FALSE(live.detached());
}

TEST_F(StructuredCloneTest, NestingDeeperThanTheLimitFailsAndDetachesNothing) {
  ArrayBuffer buf = bytes_of("still here");
  ArrayBuffer list[] = {buf};
  Result<Value> c = structured_clone(nest(kMaxCloneDepth + 1), list);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.code(), ErrorCode::kDataCloneError);
  EXPECT_FALSE(buf.detached());
  EXPECT_EQ(buf.to_string(), "still here");

  Value deep(Object{{"buf", buf}, {"deep", nest(kMaxCloneDepth + 5)}});
  EXPECT_EQ(structured_clone(deep, list).code(), ErrorCode::kDataCloneError);
  EXPECT_FALSE(buf.detached());
}

TEST_F(StructuredCloneTest, NestingAtTheLimitClones) {
  const Value v = nest(kMaxCloneDepth);  // the innermost int at depth kMaxCloneDepth
  Result<Value> c = structured_clone(v);
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(*c, v);
}

TEST_F(StructuredCloneTest, SharedArrayBufferIsSharedNotCopied) {
  const SharedArrayBuffer sab(16);
  const Value src(Object{{"top", sab}, {"nested", Array{Object{{"deep", Array{sab}}}}}});
  Result<Value> c = structured_clone(src);
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(*c, src);

  const SharedArrayBuffer* top = c->find("top")->if_shared_array_buffer();
  const SharedArrayBuffer* deep =
      c->find("nested")->at(0)->find("deep")->at(0)->if_shared_array_buffer();
  ASSERT_NE(top, nullptr);
  ASSERT_NE(deep, nullptr);
  EXPECT_EQ(*top, sab);
  EXPECT_EQ(*deep, sab);
  // Same memory: a write through the source is read through the clone's handle.
  sab.data()[3] = std::byte{0x5A};
  EXPECT_EQ(top->data()[3], std::byte{0x5A});
  EXPECT_EQ(deep->data()[3], std::byte{0x5A});
}

TEST_F(StructuredCloneTest, SharedArrayBufferBesideATransferIsSharedAndOnlyTheListedBufferMoves) {
  const SharedArrayBuffer sab(8);
  ArrayBuffer buf = bytes_of("moved");
  ArrayBuffer list[] = {buf};
  Result<Value> c = structured_clone(Value(Array{sab, buf}), list);
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_TRUE(buf.detached());
  EXPECT_EQ(c->at(1)->if_array_buffer()->to_string(), "moved");
  EXPECT_EQ(*c->at(0)->if_shared_array_buffer(), sab);
}

TEST_F(StructuredCloneTest, EmptyAndZeroLengthBuffersCloneAndTransfer) {
  ArrayBuffer empty;
  ArrayBuffer list[] = {empty};
  Result<Value> c = structured_clone(Value(Array{empty, ArrayBuffer::create(0)}), list);
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(empty.detached());
  EXPECT_EQ(c->at(0)->if_array_buffer()->byte_length(), 0u);
  EXPECT_FALSE(c->at(0)->if_array_buffer()->detached());
}

}  // namespace
}  // namespace weave
