// Tests for channel/wire.h: every Value round-trips exactly, serialize refuses
// what cannot be cloned, and deserialize refuses every kind of malformed input
// with kMalformedInput (run under --config=asan to prove "never a crash, never
// a stray read").
#include "channel/wire.h"

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "tests/test_util.h"

namespace weave {
namespace {

using Bytes = std::vector<std::byte>;

Bytes raw(std::initializer_list<int> list) {
  Bytes out;
  for (int b : list) out.push_back(static_cast<std::byte>(b));
  return out;
}

// The header followed by `body`.
Bytes wire(std::initializer_list<int> body) {
  Bytes out = raw({kWireMagic, kWireVersion});
  for (int b : body) out.push_back(static_cast<std::byte>(b));
  return out;
}

Bytes append(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

Bytes text(std::string_view s) {
  Bytes out;
  for (char c : s) out.push_back(static_cast<std::byte>(c));
  return out;
}

Bytes encode(const Value& v) {
  auto r = serialize(v);
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return r.ok() ? *r : Bytes{};
}

Value round_trip(const Value& v) {
  const Bytes b = encode(v);
  auto r = deserialize(b);
  EXPECT_TRUE(r.ok()) << r.status().to_string() << " for " << v.to_string();
  return r.ok() ? std::move(*r) : Value();
}

// The first 64 bytes in hex, for failure messages.
std::string hex(const Bytes& b) {
  std::string s;
  char buf[4];
  for (std::size_t i = 0; i < b.size() && i < 64; ++i) {
    std::snprintf(buf, sizeof buf, "%02X ", static_cast<unsigned>(b[i]));
    s += buf;
  }
  if (b.size() > 64) s += "... (" + std::to_string(b.size()) + " bytes)";
  return s;
}

// deserialize(bytes) must fail with kMalformedInput, say where, and mention
// `needle`.
void expect_malformed(const Bytes& bytes, std::string_view needle = "") {
  auto r = deserialize(bytes);
  ASSERT_FALSE(r.ok()) << "accepted " << hex(bytes) << " as " << r->to_string().substr(0, 200);
  EXPECT_EQ(r.code(), ErrorCode::kMalformedInput) << r.status().to_string();
  EXPECT_NE(r.status().message().find("at byte "), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find(needle), std::string::npos)
      << "message \"" << r.status().message() << "\" does not mention \"" << needle << "\"";
}

ArrayBuffer patterned_buffer(std::size_t n) {
  ArrayBuffer b = ArrayBuffer::create(n);
  for (std::size_t i = 0; i < n; ++i) b.data()[i] = static_cast<std::byte>(i * 7 + 3);
  return b;
}

TypedArray view_of(ViewKind kind, ArrayBuffer b, std::size_t offset, std::size_t length) {
  auto t = TypedArray::create(kind, std::move(b), offset, length);
  EXPECT_TRUE(t.ok()) << t.status().to_string();
  return std::move(*t);
}

// Nested arrays: `levels` arrays around `leaf`.
Value nest(std::size_t levels, Value leaf) {
  Value v = std::move(leaf);
  for (std::size_t i = 0; i < levels; ++i) v = Array{std::move(v)};
  return v;
}

// A value that uses every tag: the seed for the truncation and mutation tests.
Value rich_value() {
  ArrayBuffer shared = patterned_buffer(32);
  Object inner{{"deep", Array{1, Array{2.5, Array{"three"}}}}, {"empty", Object{}}};
  return Object{
      {"undefined", kUndefined},
      {"null", kNull},
      {"t", true},
      {"f", false},
      {"ints", Array{0, -1, 1, 63, -64, 64, 300, std::numeric_limits<std::int64_t>::min(),
                     std::numeric_limits<std::int64_t>::max()}},
      {"doubles", Array{0.5, -0.0, std::numeric_limits<double>::infinity(),
                        std::numeric_limits<double>::quiet_NaN()}},
      {"strings", Array{"", "ascii", "héllo wörld", "日本語", "\xF0\x9F\x98\x80"}},
      {"buffer", shared},
      {"u8", view_of(ViewKind::kUint8, shared, 1, 5)},
      {"i32", view_of(ViewKind::kInt32, shared, 8, 4)},
      {"other", view_of(ViewKind::kFloat64, patterned_buffer(16), 8, 1)},
      {"again", shared},
      {"error", ErrorValue{"TypeError", "x is not a function", "at f (a.js:1:2)"}},
      {"inner", inner},
  };
}

// ---- round trips ---------------------------------------------------------------------

TEST(WireTest, RoundTripsEveryValueType) {
  const std::vector<Value> values = {
      kUndefined,
      kNull,
      true,
      false,
      0,
      42,
      -42,
      std::numeric_limits<std::int64_t>::min(),
      std::numeric_limits<std::int64_t>::max(),
      3.25,
      "",
      "a string",
      ArrayBuffer::copy_of(std::string_view("bytes")),
      TypedArray::allocate(ViewKind::kFloat32, 3),
      Array{1, "two", 3.0},
      Object{{"a", 1}, {"b", Array{}}},
      ErrorValue{"RangeError", "out of range", "stack"},
      rich_value(),
  };
  for (const Value& v : values) {
    const Value back = round_trip(v);
    EXPECT_EQ(back.type(), v.type()) << v.to_string();
    EXPECT_EQ(back, v) << v.to_string() << " came back as " << back.to_string();
  }
}

TEST(WireTest, EncodingMatchesTheDocumentedFormat) {
  // The example in wire.h, and one encoding per tag: this pins version 1.
  EXPECT_EQ(encode(Object{{"a", 1}}), wire({0x6F, 0x01, 0x01, 'a', 'I', 0x02}));
  EXPECT_EQ(encode(kUndefined), wire({'_'}));
  EXPECT_EQ(encode(kNull), wire({'0'}));
  EXPECT_EQ(encode(false), wire({'F'}));
  EXPECT_EQ(encode(true), wire({'T'}));
  EXPECT_EQ(encode(-1), wire({'I', 0x01}));
  EXPECT_EQ(encode(1.0), wire({'N', 0, 0, 0, 0, 0, 0, 0xF0, 0x3F}));
  EXPECT_EQ(encode("hi"), wire({'S', 0x02, 'h', 'i'}));
  EXPECT_EQ(encode(Array{kNull}), wire({'A', 0x01, '0'}));
  ArrayBuffer b = ArrayBuffer::copy_of(std::string_view("\x01\x02"));
  EXPECT_EQ(encode(Array{b, b}), wire({'A', 0x02, 'B', 0x02, 0x01, 0x02, 'R', 0x00}));
  EXPECT_EQ(encode(view_of(ViewKind::kUint16, b, 0, 1)),
            wire({'V', 0x04, 'B', 0x02, 0x01, 0x02, 0x00, 0x01}));
  EXPECT_EQ(encode(ErrorValue{"E", "m", ""}), wire({'E', 0x01, 'E', 0x01, 'm', 0x00}));
}

TEST(WireTest, IntsRoundTripAtEveryVarintBoundary) {
  std::vector<std::int64_t> ints = {0, std::numeric_limits<std::int64_t>::min(),
                                    std::numeric_limits<std::int64_t>::max()};
  for (int bit = 0; bit < 63; ++bit) {
    const std::int64_t p = std::int64_t{1} << bit;
    for (std::int64_t v : {p - 1, p, p + 1, -p, -p - 1, -p + 1}) ints.push_back(v);
  }
  for (std::int64_t i : ints) {
    const Value back = round_trip(i);
    ASSERT_TRUE(back.is_int()) << i;
    EXPECT_EQ(*back.if_int(), i);
  }
  // Zigzag keeps small magnitudes of either sign short.
  EXPECT_EQ(encode(63).size(), 4u);
  EXPECT_EQ(encode(-64).size(), 4u);
  EXPECT_EQ(encode(64).size(), 5u);
  EXPECT_EQ(encode(std::numeric_limits<std::int64_t>::min()).size(), 2u + 1u + 10u);
  // Unsigned values above INT64_MAX keep their bit pattern.
  const Value big = round_trip(std::numeric_limits<std::uint64_t>::max() - 5);
  EXPECT_EQ(static_cast<std::uint64_t>(*big.if_int()),
            std::numeric_limits<std::uint64_t>::max() - 5);
}

TEST(WireTest, DoublesKeepTheirExactBits) {
  const std::vector<std::uint64_t> patterns = {
      0x0000000000000000ull,  // +0
      0x8000000000000000ull,  // -0
      0x7FF0000000000000ull,  // +inf
      0xFFF0000000000000ull,  // -inf
      0x7FF8000000000000ull,  // quiet NaN
      0x7FF8000000000123ull,  // NaN with a payload
      0xFFFFFFFFFFFFFFFFull,  // negative NaN, all payload bits
      0x7FF0000000000001ull,  // signalling NaN
      0x0000000000000001ull,  // smallest subnormal
      0x7FEFFFFFFFFFFFFFull,  // DBL_MAX
      0x3FB999999999999Aull,  // 0.1
  };
  for (std::uint64_t bits : patterns) {
    const Value back = round_trip(std::bit_cast<double>(bits));
    ASSERT_TRUE(back.is_double());
    EXPECT_EQ(std::bit_cast<std::uint64_t>(*back.if_double()), bits) << std::hex << bits;
  }
  EXPECT_TRUE(std::signbit(*round_trip(-0.0).if_double()));
}

TEST(WireTest, StringsRoundTripByteForByte) {
  const std::vector<std::string> strings = {
      "",
      "a",
      std::string(15, 'x'),  // the longest inline string
      std::string(16, 'y'),  // the shortest heap string
      std::string("nul\0inside", 10),
      "héllo wörld",
      "日本語のテキスト",
      "\xF0\x9F\x98\x80 emoji",
      "\xC2\x80 \xDF\xBF \xE0\xA0\x80 \xED\x9F\xBF \xEE\x80\x80 \xEF\xBF\xBF \xF0\x90\x80\x80 "
      "\xF4\x8F\xBF\xBF",  // the edges of every UTF-8 length class
      std::string(100000, 'z'),
  };
  for (const std::string& s : strings) {
    const Value back = round_trip(s);
    ASSERT_TRUE(back.is_string());
    EXPECT_EQ(*back.if_string(), s);
    EXPECT_EQ(encode(s).size(), 2 + 1 + (s.size() < 128 ? 1 : 3) + s.size());
  }
}

TEST(WireTest, ArrayBuffersRoundTripEmptyAndLarge) {
  for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{4096}, std::size_t{1} << 20}) {
    ArrayBuffer b = patterned_buffer(n);
    const Value back = round_trip(b);
    ASSERT_TRUE(back.is_array_buffer());
    EXPECT_EQ(back.if_array_buffer()->byte_length(), n);
    EXPECT_FALSE(back.if_array_buffer()->detached());
    EXPECT_EQ(*back.if_array_buffer(), b);
    EXPECT_FALSE(back.if_array_buffer()->same_buffer(b)) << "the copy must not share memory";
  }
}

TEST(WireTest, EveryViewKindRoundTrips) {
  for (std::uint8_t k = 0; k < kViewKindCount; ++k) {
    const auto kind = static_cast<ViewKind>(k);
    const std::size_t es = element_size(kind);
    ArrayBuffer b = patterned_buffer(8 * es);
    for (auto [offset, length] :
         {std::pair<std::size_t, std::size_t>{0, 8}, {es, 3}, {8 * es, 0}}) {
      const TypedArray t = view_of(kind, b, offset, length);
      const Value back = round_trip(t);
      ASSERT_TRUE(back.is_typed_array()) << view_kind_name(kind);
      const TypedArray& u = *back.if_typed_array();
      EXPECT_EQ(u.kind(), kind);
      EXPECT_EQ(u.byte_offset(), offset);
      EXPECT_EQ(u.length(), length);
      EXPECT_EQ(u.buffer(), b) << "the whole buffer travels, not just the window";
      EXPECT_EQ(u, t);
    }
  }
}

TEST(WireTest, NestedContainersKeepKeyOrder) {
  Object o;
  for (const char* k : {"zeta", "alpha", "mu", "beta", ""}) o.set(k, std::string(k) + "!");
  o.set("nested", Object{{"y", Array{Array{}, Array{Object{{"q", kNull}}}}}, {"x", 1}});
  const Value back = round_trip(o);
  ASSERT_TRUE(back.is_object());
  std::vector<std::string> keys;
  for (const auto& [k, v] : *back.if_object()) keys.push_back(k);
  EXPECT_EQ(keys, (std::vector<std::string>{"zeta", "alpha", "mu", "beta", "", "nested"}));
  EXPECT_EQ(back, Value(o));
  const Object& nested = *back.find("nested")->if_object();
  EXPECT_EQ(nested.begin()->first, "y");
}

TEST(WireTest, LargeObjectsRoundTrip) {
  Object o;
  for (int i = 0; i < 1000; ++i) o.set("key" + std::to_string(999 - i), i);
  EXPECT_EQ(round_trip(o), Value(o));
}

TEST(WireTest, ErrorsRoundTrip) {
  const ErrorValue e{"TypeError", "cannot read property 'x' of undefined",
                     "TypeError: ...\n    at main (app.js:10:5)\n    at ünïcode.js:1:1"};
  const Value back = round_trip(e);
  ASSERT_TRUE(back.is_error());
  EXPECT_EQ(*back.if_error(), e);
  EXPECT_EQ(*round_trip(ErrorValue{}).if_error(), ErrorValue{});
}

// ---- buffer identity -----------------------------------------------------------------

TEST(WireTest, BufferAliasingIsPreserved) {
  ArrayBuffer shared = ArrayBuffer::create(16);
  ArrayBuffer twin = ArrayBuffer::create(16);  // equal bytes, different buffer
  const Value v =
      Array{view_of(ViewKind::kUint8, shared, 0, 16), view_of(ViewKind::kInt32, shared, 4, 2),
            shared, twin, Object{{"deep", view_of(ViewKind::kDataView, twin, 1, 3)}}};
  Value back = round_trip(v);
  Array& a = *back.if_array();
  TypedArray& bytes = *a[0].if_typed_array();
  TypedArray& ints = *a[1].if_typed_array();
  ArrayBuffer& buf = *a[2].if_array_buffer();
  ArrayBuffer& other = *a[3].if_array_buffer();
  const TypedArray& deep = *a[4].find("deep")->if_typed_array();
  EXPECT_TRUE(bytes.buffer().same_buffer(ints.buffer()));
  EXPECT_TRUE(bytes.buffer().same_buffer(buf));
  EXPECT_FALSE(buf.same_buffer(other));
  EXPECT_TRUE(deep.buffer().same_buffer(other));
  EXPECT_FALSE(buf.same_buffer(shared)) << "deserialize must copy, not share with the sender";

  // Write through one view, read through the other and the buffer.
  ASSERT_TRUE(ints.span<std::int32_t>().ok());
  (*ints.span<std::int32_t>())[1] = 0x01020304;
  std::int32_t through_bytes;
  std::memcpy(&through_bytes, bytes.span<std::uint8_t>()->data() + 8, 4);
  EXPECT_EQ(through_bytes, 0x01020304);
  EXPECT_EQ(std::memcmp(buf.data() + 8, &through_bytes, 4), 0);
  EXPECT_EQ(*other.data(), std::byte{0}) << "the twin buffer must stay separate";
}

// ---- serialize errors ----------------------------------------------------------------

TEST(WireTest, DetachedBufferIsADataCloneError) {
  ArrayBuffer b = ArrayBuffer::create(8);
  TypedArray view = view_of(ViewKind::kUint8, b, 0, 8);
  ArrayBuffer transfer[] = {b};
  ASSERT_TRUE(structured_clone(Value(b), transfer).ok());
  ASSERT_TRUE(b.detached());

  for (const Value& v : {Value(b), Value(view), Value(Array{1, Object{{"b", b}}})}) {
    auto r = serialize(v);
    ASSERT_FALSE(r.ok()) << v.to_string();
    EXPECT_EQ(r.code(), ErrorCode::kDataCloneError);
    EXPECT_NE(r.status().message().find("detached"), std::string::npos) << r.status().message();
  }
}

TEST(WireTest, SharedArrayBufferIsADataCloneErrorNamingIt) {
  // Shared memory cannot cross processes: refused wherever it sits, as
  // v8.serialize refuses it without a host delegate.
  const SharedArrayBuffer sab(16);
  for (const Value& v : {Value(sab), Value(Array{1, sab}), Value(Object{{"k", Array{sab}}}),
                         Value(Object{{"b", ArrayBuffer::create(4)}, {"s", sab}})}) {
    auto r = serialize(v);
    ASSERT_FALSE(r.ok()) << v.to_string();
    EXPECT_EQ(r.code(), ErrorCode::kDataCloneError);
    EXPECT_NE(r.status().message().find("SharedArrayBuffer"), std::string::npos)
        << r.status().message();
  }
  // serialize_to leaves its output as it was.
  Bytes out = raw({1, 2, 3});
  EXPECT_EQ(serialize_to(Value(Array{std::string(100, 'a'), sab}), out).code(),
            ErrorCode::kDataCloneError);
  EXPECT_EQ(out, raw({1, 2, 3}));
  EXPECT_EQ(sab.use_count_approx(), 1) << "serialize kept no handle";
}

TEST(WireTest, InvalidUtf8IsRejectedBySerialize) {
  const std::vector<std::string> bad = {
      "\x80",              // stray continuation byte
      "\xC0\x80",          // overlong NUL
      "\xC1\xBF",          // overlong 2-byte
      "\xE0\x80\xAF",      // overlong 3-byte
      "\xF0\x80\x80\xAF",  // overlong 4-byte
      "\xED\xA0\x80",      // U+D800, a surrogate
      "\xED\xBF\xBF",      // U+DFFF
      "\xF4\x90\x80\x80",  // U+110000
      "\xF5\x80\x80\x80",  // lead byte past U+10FFFF
      "\xFF",
      "\xE2\x82",  // truncated 3-byte sequence
      "ok so far \xE2\x82",
      "\xC3(",                 // bad continuation
      "abcdefgh\xF0\x9F\x98",  // truncated after the ASCII fast path
  };
  for (const std::string& s : bad) {
    for (const Value& v :
         {Value(s), Value(Object{{s, 1}}), Value(ErrorValue{"E", s, ""}),
          Value(ErrorValue{s, "", ""}), Value(ErrorValue{"E", "", s}), Value(Array{1, Array{s}})}) {
      auto r = serialize(v);
      ASSERT_FALSE(r.ok()) << hex(text(s));
      EXPECT_EQ(r.code(), ErrorCode::kDataCloneError);
      EXPECT_NE(r.status().message().find("UTF-8"), std::string::npos) << r.status().message();
    }
  }
}

TEST(WireTest, RepeatedKeyFromAppendUncheckedIsADataCloneError) {
  for (int n : {2, 40}) {  // the linear scan and the hash set
    Object o;
    for (int i = 0; i < n - 1; ++i) o.append_unchecked("k" + std::to_string(i), i);
    o.append_unchecked("k0", 99);
    auto r = serialize(o);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.code(), ErrorCode::kDataCloneError);
    EXPECT_NE(r.status().message().find("\"k0\""), std::string::npos) << r.status().message();
  }
}

TEST(WireTest, SerializeToAppendsAndLeavesOutputAloneOnError) {
  Bytes out = raw({1, 2, 3});
  ASSERT_TRUE(serialize_to(Value(7), out).ok());
  EXPECT_EQ(out, append(raw({1, 2, 3}), wire({'I', 14})));
  ASSERT_TRUE(serialize_to(Value("x"), out).ok());
  EXPECT_EQ(out, append(append(raw({1, 2, 3}), wire({'I', 14})), wire({'S', 1, 'x'})));

  const Bytes before = out;
  // Fails late, after many bytes were already written.
  const Value bad = Array{std::string(1000, 'a'), Object{{"k", "\xFF"}}};
  EXPECT_EQ(serialize_to(bad, out).code(), ErrorCode::kDataCloneError);
  EXPECT_EQ(out, before);
  EXPECT_EQ(serialize_to(nest(kMaxCloneDepth + 1, 1), out).code(), ErrorCode::kDataCloneError);
  EXPECT_EQ(out, before);
}

// ---- depth -----------------------------------------------------------------------------

TEST(WireTest, DepthLimitIsEnforcedOnSerializeLikeStructuredClone) {
  // The root is depth 0; kMaxCloneDepth arrays put the leaf at kMaxCloneDepth.
  const Value deepest = nest(kMaxCloneDepth, 1);
  const Value too_deep = nest(kMaxCloneDepth + 1, 1);
  EXPECT_TRUE(structured_clone(deepest).ok());
  EXPECT_EQ(structured_clone(too_deep).code(), ErrorCode::kDataCloneError);

  EXPECT_EQ(round_trip(deepest), deepest);
  auto r = serialize(too_deep);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), ErrorCode::kDataCloneError);
  EXPECT_NE(r.status().message().find("deeper"), std::string::npos);
  // An empty container at the limit has no items below it: allowed.
  EXPECT_TRUE(serialize(nest(kMaxCloneDepth, Array{})).ok());
  EXPECT_TRUE(serialize(nest(kMaxCloneDepth, Object{})).ok());
}

TEST(WireTest, DepthLimitIsEnforcedOnDeserialize) {
  auto nested_bytes = [](std::size_t levels, int container) {
    Bytes b = wire({});
    for (std::size_t i = 0; i < levels; ++i) {
      b.push_back(static_cast<std::byte>(container));
      b.push_back(std::byte{1});
      if (container == 'o') b.push_back(std::byte{0});  // the empty key ""
    }
    b.push_back(std::byte{'T'});
    return b;
  };
  for (int container : {'A', 'o'}) {
    auto ok = deserialize(nested_bytes(kMaxCloneDepth, container));
    ASSERT_TRUE(ok.ok()) << ok.status().to_string();
    EXPECT_EQ(encode(*ok), nested_bytes(kMaxCloneDepth, container));
    expect_malformed(nested_bytes(kMaxCloneDepth + 1, container), "deeper");
  }
}

TEST(WireTest, DeepNestingBombIsRejectedWithoutOverflowingTheStack) {
  // 100000 array tags: each is also read as the previous one's count (0x41 = 65).
  Bytes tags = wire({});
  tags.insert(tags.end(), 100000, std::byte{'A'});
  expect_malformed(tags);
  // 100000 one-element arrays: only the depth limit stops this one.
  Bytes ones = wire({});
  for (int i = 0; i < 100000; ++i) {
    ones.push_back(std::byte{'A'});
    ones.push_back(std::byte{1});
  }
  ones.push_back(std::byte{'_'});
  expect_malformed(ones, "deeper");
  // The same through objects and views inside them.
  Bytes objects = wire({});
  for (int i = 0; i < 100000; ++i) {
    for (int b : std::initializer_list<int>{'o', 1, 1, 'k'})
      objects.push_back(static_cast<std::byte>(b));
  }
  objects.push_back(std::byte{'_'});
  expect_malformed(objects, "deeper");
}

// ---- malformed input -------------------------------------------------------------------

TEST(WireTest, EmptyInputIsMalformed) {
  expect_malformed({}, "empty");
  expect_malformed(raw({kWireMagic}), "header");
  expect_malformed(wire({}), "tag");
}

TEST(WireTest, BadMagicIsMalformed) {
  expect_malformed(raw({0x00, kWireVersion, '_'}), "magic");
  expect_malformed(raw({0xFF, 0x0F, '_'}), "magic");  // V8's own header
  expect_malformed(text("{\"a\":1}"), "magic");
}

TEST(WireTest, UnknownVersionIsMalformed) {
  for (int version : {0, 2, 255}) expect_malformed(raw({kWireMagic, version, '_'}), "version");
}

TEST(WireTest, UnknownTagIsMalformed) {
  for (int tag : std::initializer_list<int>{0x00, 'a', 'Z', 'o' - 1, 0x80, 0xFF})
    expect_malformed(wire({tag}), "unknown tag");
  expect_malformed(wire({'A', 2, 'T', 'x'}), "at byte 5");
}

TEST(WireTest, EveryTruncationOfARichEncodingIsMalformed) {
  const Bytes full = encode(rich_value());
  ASSERT_GT(full.size(), 200u);
  ASSERT_TRUE(deserialize(full).ok());
  for (std::size_t n = 0; n < full.size(); ++n) {
    SCOPED_TRACE("prefix of " + std::to_string(n) + " bytes");
    expect_malformed(Bytes(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n)));
  }
}

TEST(WireTest, TrailingBytesAreMalformed) {
  expect_malformed(wire({'T', '_'}), "trailing");
  expect_malformed(append(encode(rich_value()), raw({0})), "trailing");
}

TEST(WireTest, VarintOverflowIsMalformed) {
  // The largest varint (INT64_MIN zigzagged) is fine.
  auto max = deserialize(wire({'I', 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}));
  ASSERT_TRUE(max.ok()) << max.status().to_string();
  EXPECT_EQ(*max->if_int(), std::numeric_limits<std::int64_t>::min());
  // A 65th bit, an 11th byte, a run that never ends.
  expect_malformed(wire({'I', 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02}),
                   "64 bits");
  expect_malformed(wire({'I', 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}),
                   "64 bits");
  Bytes endless = wire({'I'});
  endless.insert(endless.end(), 1000, std::byte{0xFF});
  expect_malformed(endless, "at byte 3");
  // Not minimal: the same value with a padding byte.
  expect_malformed(wire({'I', 0x80, 0x00}), "minimal");
  expect_malformed(wire({'S', 0x81, 0x00, 'a'}), "minimal");
  expect_malformed(wire({'A', 0x80, 0x80, 0x00}), "minimal");
}

TEST(WireTest, LengthPastTheEndIsMalformed) {
  expect_malformed(wire({'S', 5, 'a', 'b'}), "more than the remaining input");
  expect_malformed(wire({'B', 3, 1, 2}), "more than the remaining input");
  expect_malformed(wire({'E', 1, 'E', 9, 'm'}), "more than the remaining input");
  expect_malformed(wire({'A', 2, 'T'}), "more than the remaining input");
  expect_malformed(wire({'o', 1, 1, 'k'}), "more than the remaining input");
  expect_malformed(wire({'N', 0, 0, 0, 0, 0, 0, 0}), "double");
}

TEST(WireTest, HugeCountWithTinyInputIsMalformed) {
  // Counts and lengths of up to 2^64 - 1 in a handful of bytes: refused before
  // anything is reserved (ASan would abort on a multi-gigabyte allocation).
  const std::initializer_list<int> huge = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                                           0xFF, 0xFF, 0xFF, 0xFF, 0x01};
  for (int tag : {'A', 'o', 'S', 'B'}) {
    Bytes b = wire({tag});
    for (int x : huge) b.push_back(static_cast<std::byte>(x));
    expect_malformed(b, "more than the remaining input");
    expect_malformed(wire({tag, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F}), "more than the remaining input");
  }
  // Nested containers cannot each claim the same remaining bytes: the outer
  // array's 4 unread items need 4 of the 5 bytes left, so the inner count of 5
  // is refused where it is read.
  expect_malformed(wire({'A', 5, 'A', 5, '_', '_', '_', '_', '_'}), "at byte 5");
  // Whereas the honest version is fine.
  EXPECT_TRUE(deserialize(wire({'A', 2, 'A', 2, '_', '_', '_'})).ok());
}

TEST(WireTest, BadUtf8IsMalformed) {
  expect_malformed(wire({'S', 2, 0xC0, 0x80}), "UTF-8");
  expect_malformed(wire({'S', 3, 0xED, 0xA0, 0x80}), "UTF-8");
  expect_malformed(wire({'S', 4, 0xF4, 0x90, 0x80, 0x80}), "UTF-8");
  expect_malformed(wire({'S', 1, 0xE2}), "UTF-8");
  expect_malformed(wire({'o', 1, 2, 0xC0, 0x80, '_'}), "object key");
  expect_malformed(wire({'E', 1, 0xFF, 0, 0}), "error's name");
  expect_malformed(wire({'E', 0, 1, 0xFF, 0}), "error's message");
  expect_malformed(wire({'E', 0, 0, 1, 0xFF}), "error's stack");
}

TEST(WireTest, RepeatedObjectKeyIsMalformed) {
  expect_malformed(wire({'o', 2, 1, 'a', '_', 1, 'a', 'T'}), "repeated object key");
  expect_malformed(wire({'o', 2, 0, '_', 0, 'T'}), "repeated object key");
  // A big object (hash-set path) with the repeat at the very end.
  Bytes big = wire({'o', 40});
  for (int i = 0; i < 39; ++i) {
    for (int b : std::initializer_list<int>{2, 'k', 'A' + i, '_'})
      big.push_back(static_cast<std::byte>(b));
  }
  for (int b : std::initializer_list<int>{2, 'k', 'A' + 7, '_'})
    big.push_back(static_cast<std::byte>(b));
  expect_malformed(big, "repeated object key");
  big[big.size() - 2] = std::byte{'z'};
  EXPECT_TRUE(deserialize(big).ok());
}

TEST(WireTest, ViewKindOutOfRangeIsMalformed) {
  expect_malformed(wire({'V', kViewKindCount, 'B', 0, 0, 0}), "view kind");
  expect_malformed(wire({'V', 0xFF, 'B', 0, 0, 0}), "view kind");
  EXPECT_TRUE(deserialize(wire({'V', kViewKindCount - 1, 'B', 0, 0, 0})).ok());
}

TEST(WireTest, ViewOutOfBoundsIsMalformed) {
  // Uint8 over 4 bytes: offset 2 + 3 elements, offset 5, length 5.
  expect_malformed(wire({'V', 1, 'B', 4, 0, 0, 0, 0, 2, 3}), "bad view");
  expect_malformed(wire({'V', 1, 'B', 4, 0, 0, 0, 0, 5, 0}), "view");
  expect_malformed(wire({'V', 1, 'B', 4, 0, 0, 0, 0, 0, 5}), "view");
  // Float64 over 8 bytes, 2 elements.
  expect_malformed(wire({'V', 8, 'B', 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}), "bad view");
  // Huge offsets and lengths that would overflow offset + length * size.
  expect_malformed(wire({'V', 10, 'B',  8,    0,    0,    0,    0,    0,    0,    0,
                         0,   0,  0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F}),
                   "view");
  expect_malformed(wire({'V',  10,   'B',  8,    0,    0,    0,    0,    0,    0,    0, 0,
                         0xF8, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, 1}),
                   "view");
  // The exact fit is fine.
  EXPECT_TRUE(deserialize(wire({'V', 1, 'B', 4, 0, 0, 0, 0, 1, 3})).ok());
}

TEST(WireTest, MisalignedViewIsMalformed) {
  // Int32 at offset 2, Float64 at offset 4, Uint16 at offset 1.
  expect_malformed(wire({'V', 5, 'B', 8, 0, 0, 0, 0, 0, 0, 0, 0, 2, 1}), "multiple of 4");
  expect_malformed(wire({'V', 8, 'B', 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 1}),
                   "multiple of 8");
  expect_malformed(wire({'V', 4, 'B', 4, 0, 0, 0, 0, 1, 1}), "multiple of 2");
  // A DataView may start anywhere.
  EXPECT_TRUE(deserialize(wire({'V', 11, 'B', 4, 0, 0, 0, 0, 1, 3})).ok());
}

TEST(WireTest, ViewWithoutABufferIsMalformed) {
  expect_malformed(wire({'V', 1, 'S', 0, 0, 0}), "expected 'B' or 'R'");
  expect_malformed(wire({'V', 1, 'V', 1, 'B', 0, 0, 0, 0, 0}), "expected 'B' or 'R'");
}

TEST(WireTest, ReferenceToAnUndefinedBufferIsMalformed) {
  expect_malformed(wire({'R', 0}), "reference to ArrayBuffer 0");
  expect_malformed(wire({'A', 2, 'B', 0, 'R', 1}), "reference to ArrayBuffer 1");
  expect_malformed(wire({'V', 1, 'R', 0, 0, 0}), "reference to ArrayBuffer 0");
  expect_malformed(wire({'A', 2, 'R', 0, 'B', 0}), "reference");  // used before defined
  auto ok = deserialize(wire({'A', 3, 'B', 1, 7, 'B', 0, 'R', 0}));
  ASSERT_TRUE(ok.ok()) << ok.status().to_string();
  EXPECT_TRUE(ok->at(0)->if_array_buffer()->same_buffer(*ok->at(2)->if_array_buffer()));
}

// ---- mutation ----------------------------------------------------------------------------

// Deterministic mutations of valid encodings. Whatever deserialize accepts
// must re-serialize — and, the encoding being canonical, to the same bytes.
TEST(WireTest, MutatedInputIsRejectedOrReserializesToTheSameBytes) {
  ArrayBuffer b = patterned_buffer(24);
  const std::vector<Bytes> seeds = {
      encode(rich_value()),
      encode(Array{view_of(ViewKind::kUint16, b, 2, 3), b, view_of(ViewKind::kBigInt64, b, 8, 2)}),
      encode(Object{{"a", Object{{"b", Array{1, 2, Object{{"c", "d"}}}}}}, {"e", ErrorValue{}}}),
      encode(Array{-1, 1.5, "x", kNull, true}),
      wire({'A', 0}),
  };
  std::mt19937_64 rng(20240611);
  int accepted = 0;
  constexpr int kMutations = 20000;
  for (int i = 0; i < kMutations; ++i) {
    Bytes m = seeds[rng() % seeds.size()];
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits; ++e) {
      const std::size_t at = m.empty() ? 0 : rng() % m.size();
      switch (rng() % 5) {
        case 0:  // flip one bit
          if (!m.empty()) m[at] ^= static_cast<std::byte>(1u << (rng() % 8));
          break;
        case 1:  // overwrite with a random or interesting byte
          if (!m.empty()) {
            static constexpr std::uint8_t kInteresting[] = {0x00, 0x01, 0x7F, 0x80, 0xFF, 'A',
                                                            'o',  'B',  'R',  'V',  'S',  'E'};
            m[at] = static_cast<std::byte>(rng() % 2 ? rng() % 256
                                                     : kInteresting[rng() % sizeof kInteresting]);
          }
          break;
        case 2:  // insert
          m.insert(m.begin() + static_cast<std::ptrdiff_t>(at),
                   static_cast<std::byte>(rng() % 256));
          break;
        case 3:  // delete
          if (!m.empty()) m.erase(m.begin() + static_cast<std::ptrdiff_t>(at));
          break;
        case 4:  // truncate
          m.resize(at);
          break;
      }
    }
    auto r = deserialize(m);
    if (!r.ok()) {
      ASSERT_EQ(r.code(), ErrorCode::kMalformedInput) << hex(m);
      continue;
    }
    ++accepted;
    auto again = serialize(*r);
    ASSERT_TRUE(again.ok()) << again.status().to_string() << " for " << hex(m);
    ASSERT_EQ(*again, m) << "not canonical";
  }
  // Some mutations (a flipped bit inside a string or buffer) are still valid.
  EXPECT_GT(accepted, 0);
  EXPECT_LT(accepted, kMutations);
  std::printf("%d of %d mutations were still valid encodings\n", accepted, kMutations);
}

}  // namespace
}  // namespace weave
