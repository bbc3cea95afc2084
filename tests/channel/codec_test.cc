#include "channel/codec.h"

#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "atomics/shared_array_buffer.h"
#include "channel/array_buffer.h"
#include "channel/status.h"
#include "channel/value.h"
#include "tests/test_util.h"

// --- types with codecs, at global scope as WEAVE_CODEC requires -------------------------

struct Person {
  std::string name;
  std::int32_t age = 0;
  std::optional<std::string> email;
};
WEAVE_CODEC(Person, name, age, email);

struct Team {
  std::string title;
  Person lead;
  std::vector<Person> members;
  std::map<std::string, std::int32_t> scores;
  std::optional<Person> deputy;
  std::unordered_map<std::string, std::vector<double>> series;
};
WEAVE_CODEC(Team, title, lead, members, scores, deputy, series);

namespace app {
struct Point {
  double x = 0;
  double y = 0;
};
}  // namespace app
WEAVE_CODEC(app::Point, x, y);

struct Empty {};
WEAVE_CODEC(Empty);

struct Wide {
  int f01 = 0, f02 = 0, f03 = 0, f04 = 0, f05 = 0, f06 = 0, f07 = 0, f08 = 0, f09 = 0, f10 = 0;
  int f11 = 0, f12 = 0, f13 = 0, f14 = 0, f15 = 0, f16 = 0, f17 = 0, f18 = 0, f19 = 0, f20 = 0;
};
WEAVE_CODEC(Wide, f01, f02, f03, f04, f05, f06, f07, f08, f09, f10, f11, f12, f13, f14, f15, f16,
            f17, f18, f19, f20);

struct Max32 {
  int m00 = 0, m01 = 0, m02 = 0, m03 = 0, m04 = 0, m05 = 0, m06 = 0, m07 = 0;
  int m08 = 0, m09 = 0, m10 = 0, m11 = 0, m12 = 0, m13 = 0, m14 = 0, m15 = 0;
  int m16 = 0, m17 = 0, m18 = 0, m19 = 0, m20 = 0, m21 = 0, m22 = 0, m23 = 0;
  int m24 = 0, m25 = 0, m26 = 0, m27 = 0, m28 = 0, m29 = 0, m30 = 0, m31 = 0;
};
WEAVE_CODEC(Max32, m00, m01, m02, m03, m04, m05, m06, m07, m08, m09, m10, m11, m12, m13, m14, m15,
            m16, m17, m18, m19, m20, m21, m22, m23, m24, m25, m26, m27, m28, m29, m30,
            m31);  // the documented maximum

struct Tree {
  std::string label;
  std::vector<Tree> children;
};
WEAVE_CODEC(Tree, label, children);

struct WithValue {
  weave::Value any;
  int n = 0;
};
WEAVE_CODEC(WithValue, any, n);

enum class Color : std::uint8_t { kRed = 1, kGreen = 2, kBlue = 200 };
enum Signed : std::int16_t { kMinus = -5, kPlus = 5 };

// A user specialization beats the built-in enum codec.
enum class Named { kOn, kOff };
template <>
struct weave::Codec<Named> {
  static Value encode(const Named& n) { return Value(n == Named::kOn ? "on" : "off"); }
  static Result<Named> decode(const Value& v) {
    const std::string* s = v.if_string();
    if (s && *s == "on") return Named::kOn;
    if (s && *s == "off") return Named::kOff;
    return Status(ErrorCode::kTypeMismatch, "expected \"on\" or \"off\"");
  }
};

// Not default-constructible: decodable inside tuples, pairs and arrays anyway.
struct Meters {
  explicit Meters(double v) : value(v) {}
  double value;
};
template <>
struct weave::Codec<Meters> {
  static Value encode(const Meters& m) { return Value(m.value); }
  static Result<Meters> decode(const Value& v) {
    auto d = Codec<double>::decode(v);
    if (!d) return d.status();
    return Meters(*d);
  }
};

// A struct that carries shared memory in a message.
struct Region {
  weave::SharedArrayBuffer memory;
  int slot = 0;
};
WEAVE_CODEC(Region, memory, slot);

struct NoCodec {};

namespace weave {
namespace {

// --- concepts --------------------------------------------------------------------------

static_assert(Encodable<int>);
static_assert(Encodable<std::uint64_t>);
static_assert(Encodable<char>);
static_assert(Encodable<Value>);
static_assert(Encodable<Person>);
static_assert(Encodable<std::vector<Person>>);
static_assert(Encodable<std::map<std::string, std::optional<Team>>>);
static_assert(Encodable<std::tuple<int, std::string, Person>>);
static_assert(Encodable<Color>);
static_assert(Encodable<std::chrono::milliseconds>);
static_assert(Encodable<SharedArrayBuffer>);
static_assert(Encodable<Region>);
static_assert(!Encodable<NoCodec>);
static_assert(!Encodable<std::vector<NoCodec>>);
static_assert(!Encodable<std::optional<NoCodec>>);
static_assert(!Encodable<std::map<int, int>>, "only string keys map to an Object");
static_assert(!Encodable<std::string_view>, "string_view encodes but cannot decode");
static_assert(internal::HasEncoder<std::string_view>);
static_assert(!Encodable<long double>);
static_assert(internal::fields_distinct({"a", "b", "c"}));
static_assert(!internal::fields_distinct({"a", "b", "a"}));
static_assert(internal::fields_distinct({}));

class CodecTest : public testing::CleanShutdownTest {};

template <class T>
T round_trip(const T& v) {
  Result<T> r = from_value<T>(to_value(v));
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return r.ok() ? std::move(r).value() : T{};
}

template <class T>
Status decode_error(const Value& v) {
  Result<T> r = from_value<T>(v);
  EXPECT_FALSE(r.ok()) << "decoded " << v.to_string() << " unexpectedly";
  return r.status();
}

// --- scalars ---------------------------------------------------------------------------

TEST_F(CodecTest, ValueRoundTripsUnchanged) {
  const Value v(Object{{"a", Array{1, "x", kNull}}, {"b", 2.5}});
  EXPECT_EQ(round_trip(v), v);
  EXPECT_EQ(to_value(v), v);
}

TEST_F(CodecTest, BoolRoundTrips) {
  EXPECT_TRUE(round_trip(true));
  EXPECT_FALSE(round_trip(false));
  EXPECT_TRUE(to_value(true).is_bool());
}

template <class I>
void expect_integer_round_trips() {
  using L = std::numeric_limits<I>;
  for (I i : {L::min(), static_cast<I>(L::min() + 1), I{0}, I{1}, static_cast<I>(L::max() - 1),
              L::max()}) {
    const Value v = to_value(i);
    EXPECT_TRUE(v.is_int()) << internal::integer_name<I>();
    EXPECT_EQ(round_trip(i), i) << internal::integer_name<I>();
  }
}

TEST_F(CodecTest, EveryIntegerTypeRoundTripsItsWholeRange) {
  expect_integer_round_trips<std::int8_t>();
  expect_integer_round_trips<std::uint8_t>();
  expect_integer_round_trips<std::int16_t>();
  expect_integer_round_trips<std::uint16_t>();
  expect_integer_round_trips<std::int32_t>();
  expect_integer_round_trips<std::uint32_t>();
  expect_integer_round_trips<std::int64_t>();
  expect_integer_round_trips<std::uint64_t>();
  expect_integer_round_trips<char>();
  expect_integer_round_trips<signed char>();
  expect_integer_round_trips<unsigned char>();
  expect_integer_round_trips<wchar_t>();
  expect_integer_round_trips<char8_t>();
  expect_integer_round_trips<char16_t>();
  expect_integer_round_trips<char32_t>();
  expect_integer_round_trips<short>();
  expect_integer_round_trips<long>();
  expect_integer_round_trips<long long>();
  expect_integer_round_trips<unsigned long>();
  expect_integer_round_trips<unsigned long long>();
}

TEST_F(CodecTest, Uint64RoundTripsBitExactThroughInt64) {
  constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();
  const Value v = to_value(kMax);
  ASSERT_TRUE(v.is_int());
  EXPECT_EQ(*v.if_int(), -1);  // the bit pattern, as Value documents
  EXPECT_EQ(from_value<std::uint64_t>(v).value(), kMax);
  for (std::uint64_t u : {std::uint64_t{1} << 63, (std::uint64_t{1} << 63) + 1,
                          std::uint64_t{0xdeadbeefcafef00d}, kMax - 1}) {
    EXPECT_EQ(round_trip(u), u);
  }
}

TEST_F(CodecTest, NegativeIntDecodesIntoUint64AsItsBitPattern) {
  // The documented price of the bit-exact round trip.
  EXPECT_EQ(from_value<std::uint64_t>(Value(-1)).value(),
            std::numeric_limits<std::uint64_t>::max());
}

TEST_F(CodecTest, NegativeToNarrowerUnsignedIsOutOfRange) {
  Status s = decode_error<std::uint32_t>(Value(-1));
  EXPECT_EQ(s.code(), ErrorCode::kOutOfRange);
  EXPECT_EQ(s.message(), "-1 is out of range for uint32_t [0, 4294967295]");
  EXPECT_EQ(decode_error<std::uint8_t>(Value(-1)).code(), ErrorCode::kOutOfRange);
  EXPECT_EQ(decode_error<std::uint16_t>(Value(-70000)).code(), ErrorCode::kOutOfRange);
}

TEST_F(CodecTest, NegativeDoubleToUint64IsOutOfRange) {
  Status s = decode_error<std::uint64_t>(Value(-1.0));
  EXPECT_EQ(s.code(), ErrorCode::kOutOfRange);
  EXPECT_EQ(s.message(), "-1 is out of range for uint64_t [0, 18446744073709551615]");
}

TEST_F(CodecTest, IntegerOutOfRangeNamesTheType) {
  Status s = decode_error<std::uint8_t>(Value(300));
  EXPECT_EQ(s.code(), ErrorCode::kOutOfRange);
  EXPECT_EQ(s.message(), "300 is out of range for uint8_t [0, 255]");

  s = decode_error<std::int8_t>(Value(-129));
  EXPECT_EQ(s.code(), ErrorCode::kOutOfRange);
  EXPECT_EQ(s.message(), "-129 is out of range for int8_t [-128, 127]");

  s = decode_error<std::int32_t>(Value(std::int64_t{1} << 31));
  EXPECT_EQ(s.code(), ErrorCode::kOutOfRange);
  EXPECT_EQ(s.message(), "2147483648 is out of range for int32_t [-2147483648, 2147483647]");

  EXPECT_EQ(decode_error<std::int16_t>(Value(40000)).code(), ErrorCode::kOutOfRange);
  EXPECT_EQ(decode_error<std::uint16_t>(Value(65536)).code(), ErrorCode::kOutOfRange);
  EXPECT_EQ(decode_error<char>(Value(1000)).code(), ErrorCode::kOutOfRange);
  EXPECT_EQ(from_value<std::int32_t>(Value(-2147483648LL)).value(),
            std::numeric_limits<std::int32_t>::min());
}

TEST_F(CodecTest, IntegerDecodesFromIntegralDouble) {
  EXPECT_EQ(from_value<std::int32_t>(Value(42.0)).value(), 42);
  EXPECT_EQ(from_value<std::int8_t>(Value(-128.0)).value(), -128);
  EXPECT_EQ(from_value<std::uint8_t>(Value(255.0)).value(), 255);
  EXPECT_EQ(from_value<std::int64_t>(Value(-9223372036854775808.0)).value(),
            std::numeric_limits<std::int64_t>::min());
  EXPECT_EQ(from_value<std::uint64_t>(Value(9223372036854775808.0)).value(),
            std::uint64_t{1} << 63);
  EXPECT_EQ(from_value<std::int64_t>(Value(-0.0)).value(), 0);
}

TEST_F(CodecTest, IntegerFromDoubleOutsideRangeIsOutOfRange) {
  EXPECT_EQ(decode_error<std::uint8_t>(Value(256.0)).code(), ErrorCode::kOutOfRange);
  EXPECT_EQ(decode_error<std::int8_t>(Value(-129.0)).code(), ErrorCode::kOutOfRange);
  // 2^63 and 2^64 are the first doubles past int64 and uint64.
  Status s = decode_error<std::int64_t>(Value(9223372036854775808.0));
  EXPECT_EQ(s.code(), ErrorCode::kOutOfRange);
  EXPECT_EQ(s.message(),
            "9223372036854775808 is out of range for int64_t "
            "[-9223372036854775808, 9223372036854775807]");
  EXPECT_EQ(decode_error<std::uint64_t>(Value(18446744073709551616.0)).code(),
            ErrorCode::kOutOfRange);
  EXPECT_EQ(decode_error<std::int32_t>(Value(std::numeric_limits<double>::infinity())).code(),
            ErrorCode::kOutOfRange);
  EXPECT_EQ(decode_error<std::int32_t>(Value(-std::numeric_limits<double>::infinity())).code(),
            ErrorCode::kOutOfRange);
}

TEST_F(CodecTest, IntegerFromFractionalOrNanDoubleIsTypeMismatch) {
  Status s = decode_error<std::int32_t>(Value(1.5));
  EXPECT_EQ(s.code(), ErrorCode::kTypeMismatch);
  EXPECT_EQ(s.message(), "expected int32_t, got non-integral double 1.5");
  EXPECT_EQ(decode_error<std::int64_t>(Value(std::nan(""))).code(), ErrorCode::kTypeMismatch);
}

TEST_F(CodecTest, FloatingPointRoundTripsAndDecodesFromInt) {
  EXPECT_EQ(round_trip(1.25), 1.25);
  EXPECT_EQ(round_trip(-0.5f), -0.5f);
  EXPECT_EQ(round_trip(std::numeric_limits<double>::max()), std::numeric_limits<double>::max());
  EXPECT_EQ(round_trip(std::numeric_limits<double>::infinity()),
            std::numeric_limits<double>::infinity());
  EXPECT_TRUE(std::isnan(round_trip(std::nan(""))));
  EXPECT_TRUE(to_value(1.0f).is_double());
  EXPECT_EQ(from_value<double>(Value(7)).value(), 7.0);
  EXPECT_EQ(from_value<float>(Value(-3)).value(), -3.0f);
}

TEST_F(CodecTest, DoubleBeyondFloatRangeIsOutOfRange) {
  Status s = decode_error<float>(Value(1e300));
  EXPECT_EQ(s.code(), ErrorCode::kOutOfRange);
  EXPECT_EQ(s.message(), "1e+300 is out of range for float");
  EXPECT_TRUE(
      std::isinf(from_value<float>(Value(std::numeric_limits<double>::infinity())).value()));
}

TEST_F(CodecTest, StringRoundTripsAndStringViewEncodes) {
  EXPECT_EQ(round_trip(std::string()), "");
  EXPECT_EQ(round_trip(std::string("héllo, world: a longer string")),
            "héllo, world: a longer string");
  const std::string_view sv = "view";
  EXPECT_EQ(to_value(sv), Value("view"));
}

// Durations travel as nanoseconds, so the unit survives (issue 12: the
// count of the sender's own unit used to travel, and milliseconds{1500}
// decoded as seconds was 1500 s). This replaces the test that pinned the old
// encoding (DurationsTravelAsCountsOfTheirOwnPeriod).
TEST_F(CodecTest, DurationsTravelAsNanosecondsSoTheUnitSurvives) {
  using namespace std::chrono_literals;
  EXPECT_EQ(to_value(1500ms), Value(1'500'000'000));
  EXPECT_EQ(to_value(3s), Value(3'000'000'000));
  EXPECT_EQ(to_value(std::chrono::nanoseconds(-7)), Value(-7));
  EXPECT_EQ(from_value<std::chrono::milliseconds>(to_value(2s)).value(), 2000ms);
  EXPECT_EQ(from_value<std::chrono::seconds>(to_value(2000ms)).value(), 2s);
  EXPECT_EQ(from_value<std::chrono::microseconds>(to_value(1500ms)).value(), 1'500'000us);
  EXPECT_EQ(round_trip(std::chrono::nanoseconds(-7)), std::chrono::nanoseconds(-7));
  EXPECT_EQ(round_trip(std::chrono::hours(5)), std::chrono::hours(5));
  EXPECT_EQ(round_trip(std::chrono::minutes(-90)), std::chrono::minutes(-90));
}

TEST_F(CodecTest, DecodingIntoACoarserUnitRefusesInsteadOfRounding) {
  using namespace std::chrono_literals;
  const Status s = decode_error<std::chrono::seconds>(to_value(1500ms));
  EXPECT_EQ(s.code(), ErrorCode::kOutOfRange);
  EXPECT_EQ(s.message(), "1500000000 ns is not a whole number of s (refused rather than rounded)");
  EXPECT_EQ(decode_error<std::chrono::milliseconds>(to_value(std::chrono::nanoseconds(1))).code(),
            ErrorCode::kOutOfRange);
  // A floating or finer target keeps the fraction.
  EXPECT_EQ(from_value<std::chrono::duration<double>>(to_value(1500ms)).value().count(), 1.5);
  using FloatMillis = std::chrono::duration<double, std::milli>;
  EXPECT_EQ(from_value<FloatMillis>(to_value(1500us)).value().count(), 1.5);
}

TEST_F(CodecTest, DurationsBeyondInt64NanosecondsSaturateAndForeverRoundTrips) {
  using namespace std::chrono;
  EXPECT_EQ(round_trip(nanoseconds::max()), nanoseconds::max());
  EXPECT_EQ(round_trip(milliseconds::max()), milliseconds::max());
  EXPECT_EQ(round_trip(seconds::max()), seconds::max());
  EXPECT_EQ(round_trip(hours::min()), hours::min());
  EXPECT_EQ(to_value(hours::max()), Value(std::numeric_limits<std::int64_t>::max()));
  // Any saturated count reads as the target's max(): 3,000,000 h is past
  // int64 nanoseconds (about 292 years).
  EXPECT_EQ(from_value<hours>(to_value(hours(3'000'000))).value(), hours::max());
  EXPECT_EQ(from_value<seconds>(to_value(nanoseconds::max())).value(), seconds::max());
  // A count that fits nanoseconds but not the target's rep is refused.
  using Seconds32 = duration<std::int32_t>;
  EXPECT_EQ(from_value<Seconds32>(to_value(seconds(5))).value(), Seconds32(5));
  EXPECT_EQ(decode_error<Seconds32>(to_value(seconds(5'000'000'000))).code(),
            ErrorCode::kOutOfRange);
}

TEST_F(CodecTest, DurationsDecodeFromIntegralDoublesAndRefuseOtherTypes) {
  using namespace std::chrono_literals;
  EXPECT_EQ(from_value<std::chrono::seconds>(Value(2e9)).value(), 2s);
  EXPECT_EQ(decode_error<std::chrono::seconds>(Value("3s")).message(),
            "expected int64_t, got string");
  const std::chrono::duration<double> half(0.5);
  EXPECT_EQ(to_value(half), Value(5e8));
  EXPECT_EQ(round_trip(half), half);
  EXPECT_EQ(from_value<std::chrono::milliseconds>(to_value(half)).value(), 500ms);
}

// Node clones a Date; a system_clock time point travels as nanoseconds since
// the Unix epoch and round-trips exactly.
TEST_F(CodecTest, SystemClockTimePointsRoundTripAsNanosecondsSinceTheEpoch) {
  using namespace std::chrono;
  const auto now = system_clock::now();
  EXPECT_EQ(round_trip(now), now);
  const system_clock::time_point epoch_plus(1500ms);
  EXPECT_EQ(to_value(epoch_plus), Value(1'500'000'000));
  using SecondsPoint = time_point<system_clock, seconds>;
  EXPECT_EQ(round_trip(SecondsPoint(seconds(1'700'000'000))), SecondsPoint(seconds(1'700'000'000)));
  EXPECT_EQ(decode_error<SecondsPoint>(to_value(epoch_plus)).code(), ErrorCode::kOutOfRange);
  EXPECT_EQ(round_trip(system_clock::time_point::max()), system_clock::time_point::max());
  static_assert(Encodable<system_clock::time_point>);
}

TEST_F(CodecTest, EnumsTravelAsTheirUnderlyingInteger) {
  EXPECT_EQ(to_value(Color::kBlue), Value(200));
  EXPECT_EQ(round_trip(Color::kGreen), Color::kGreen);
  EXPECT_EQ(round_trip(kMinus), kMinus);
  EXPECT_EQ(to_value(kMinus), Value(-5));
  Status s = decode_error<Color>(Value(256));
  EXPECT_EQ(s.code(), ErrorCode::kOutOfRange);
  EXPECT_EQ(s.message(), "256 is out of range for uint8_t [0, 255]");
}

TEST_F(CodecTest, UserSpecializationOverridesBuiltInEnumCodec) {
  EXPECT_EQ(to_value(Named::kOff), Value("off"));
  EXPECT_EQ(round_trip(Named::kOn), Named::kOn);
  EXPECT_EQ(decode_error<Named>(Value(0)).code(), ErrorCode::kTypeMismatch);
}

// --- buffers and errors ------------------------------------------------------------------

TEST_F(CodecTest, ArrayBufferEncodesAndDecodesSharingTheBytes) {
  ArrayBuffer b = ArrayBuffer::copy_of("abc");
  const Value v = to_value(b);
  ASSERT_TRUE(v.is_array_buffer());
  EXPECT_TRUE(v.if_array_buffer()->same_buffer(b));
  Result<ArrayBuffer> back = from_value<ArrayBuffer>(v);
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(back->same_buffer(b));
  EXPECT_EQ(back->to_string(), "abc");
}

TEST_F(CodecTest, TypedArrayRoundTripsAsTheSameView) {
  TypedArray t = TypedArray::allocate(ViewKind::kInt32, 3);
  (*t.span<std::int32_t>())[1] = -9;
  const Value v = to_value(t);
  ASSERT_TRUE(v.is_typed_array());
  Result<TypedArray> back = from_value<TypedArray>(v);
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(back->same_view(t));
  EXPECT_EQ(back->at<std::int32_t>(1).value(), -9);
}

TEST_F(CodecTest, SharedArrayBufferRoundTripsAsTheSameMemory) {
  const SharedArrayBuffer sab(16);
  const Value v = to_value(sab);
  ASSERT_TRUE(v.is_shared_array_buffer());
  EXPECT_EQ(*v.if_shared_array_buffer(), sab);
  const SharedArrayBuffer back = round_trip(sab);
  EXPECT_EQ(back, sab);
  sab.data()[0] = std::byte{7};
  EXPECT_EQ(back.data()[0], std::byte{7}) << "a copy of the handle, not of the bytes";
}

TEST_F(CodecTest, SharedArrayBufferInsideAStructRoundTripsAsTheSameMemory) {
  const Region r{SharedArrayBuffer(8), 3};
  const Value v = to_value(r);
  EXPECT_EQ(v.to_string(), R"({"memory":SharedArrayBuffer(8),"slot":3})");
  const Region back = round_trip(r);
  EXPECT_EQ(back.memory, r.memory);
  EXPECT_EQ(back.slot, 3);
}

TEST_F(CodecTest, SharedArrayBufferDecodeRefusesOtherTypesByName) {
  const Status s = decode_error<SharedArrayBuffer>(Value(ArrayBuffer::create(8)));
  EXPECT_EQ(s.code(), ErrorCode::kTypeMismatch);
  EXPECT_NE(s.message().find("expected SharedArrayBuffer, got ArrayBuffer"), std::string::npos)
      << s.message();
  const Status t = decode_error<ArrayBuffer>(Value(SharedArrayBuffer(8)));
  EXPECT_NE(t.message().find("got SharedArrayBuffer"), std::string::npos) << t.message();
}

TEST_F(CodecTest, ErrorValueRoundTrips) {
  const ErrorValue e{"TypeError", "x is not a function", "at f (a.js:1:1)"};
  EXPECT_EQ(round_trip(e), e);
  EXPECT_TRUE(to_value(e).is_error());
}

// --- containers --------------------------------------------------------------------------

TEST_F(CodecTest, VectorsRoundTripAsArrays) {
  const std::vector<int> ints{1, -2, 3};
  EXPECT_EQ(to_value(ints), Value(Array{1, -2, 3}));
  EXPECT_EQ(round_trip(ints), ints);
  EXPECT_EQ(round_trip(std::vector<int>{}), std::vector<int>{});
  const std::vector<bool> bools{true, false, true};
  EXPECT_EQ(round_trip(bools), bools);
  const std::vector<std::vector<std::string>> nested{{"a"}, {}, {"b", "c"}};
  EXPECT_EQ(round_trip(nested), nested);
}

TEST_F(CodecTest, ArrayAndObjectAliasesRoundTrip) {
  const Array a{1, "two", Object{{"k", 3}}};
  EXPECT_EQ(to_value(a), Value(a));
  EXPECT_EQ(round_trip(a), a);
  const Object o{{"x", 1}, {"y", Array{}}};
  EXPECT_EQ(round_trip(o), o);
  EXPECT_EQ(decode_error<Object>(Value(a)).message(), "expected object, got array");
}

TEST_F(CodecTest, StdArrayRoundTripsAndRequiresItsLength) {
  const std::array<double, 3> a{1.5, 2, -3};
  EXPECT_EQ(round_trip(a), a);
  EXPECT_EQ(round_trip(std::array<int, 0>{}), (std::array<int, 0>{}));
  Status s = decode_error<std::array<int, 3>>(Value(Array{1, 2}));
  EXPECT_EQ(s.code(), ErrorCode::kTypeMismatch);
  EXPECT_EQ(s.message(), "expected array of 3 elements, got 2");
  EXPECT_EQ((decode_error<std::array<int, 1>>(Value(Array{1, 2})).code()),
            ErrorCode::kTypeMismatch);
  EXPECT_EQ((decode_error<std::array<int, 3>>(Value(Array{1, "2", 3})).message()),
            "[1]: expected int32_t, got string");
}

TEST_F(CodecTest, LargeStdArrayRoundTrips) {
  std::array<std::uint8_t, 4096> big{};
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<std::uint8_t>(i * 7);
  EXPECT_EQ(round_trip(big), big);
}

TEST_F(CodecTest, MapsRoundTripAsObjects) {
  const std::map<std::string, int> m{{"b", 2}, {"a", 1}};
  const Value v = to_value(m);
  ASSERT_TRUE(v.is_object());
  EXPECT_EQ(v.to_string(), R"({"a":1,"b":2})");  // std::map's key order
  EXPECT_EQ(round_trip(m), m);

  const std::unordered_map<std::string, std::string> u{{"x", "1"}, {"y", "2"}};
  EXPECT_EQ(round_trip(u), u);
  EXPECT_EQ(round_trip(std::map<std::string, int>{}), (std::map<std::string, int>{}));
}

TEST_F(CodecTest, OptionalIsNullWhenEmpty) {
  EXPECT_EQ(to_value(std::optional<int>()), Value(kNull));
  EXPECT_EQ(to_value(std::optional<int>(4)), Value(4));
  EXPECT_EQ(round_trip(std::optional<int>(4)), 4);
  EXPECT_EQ(round_trip(std::optional<int>()), std::nullopt);
  EXPECT_EQ(from_value<std::optional<int>>(Value()).value(), std::nullopt);  // undefined
  EXPECT_EQ(decode_error<std::optional<int>>(Value("4")).message(), "expected int32_t, got string");
}

TEST_F(CodecTest, PairsAndTuplesRoundTripAsArrays) {
  const std::pair<std::string, int> p{"a", 1};
  EXPECT_EQ(to_value(p), Value(Array{"a", 1}));
  EXPECT_EQ(round_trip(p), p);
  const std::tuple<int, std::string, bool, std::vector<int>> t{1, "s", true, {2, 3}};
  EXPECT_EQ(round_trip(t), t);
  EXPECT_EQ(round_trip(std::tuple<>()), std::tuple<>());
  EXPECT_EQ((decode_error<std::pair<int, int>>(Value(Array{1, 2, 3})).message()),
            "expected array of 2 elements, got 3");
  EXPECT_EQ((decode_error<std::tuple<int, std::string>>(Value(Array{1, 2})).message()),
            "[1]: expected string, got int");
}

TEST_F(CodecTest, TupleElementsNeedNotBeDefaultConstructible) {
  const std::tuple<Meters, int> t{Meters(2.5), 1};
  auto back = from_value<std::tuple<Meters, int>>(to_value(t));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(std::get<0>(*back).value, 2.5);
  auto arr = from_value<std::array<Meters, 2>>(Value(Array{1, 2.5}));
  ASSERT_TRUE(arr.ok());
  EXPECT_EQ((*arr)[1].value, 2.5);
  auto pair = from_value<std::pair<Meters, Meters>>(Value(Array{1, 2}));
  ASSERT_TRUE(pair.ok());
  EXPECT_EQ(pair->second.value, 2.0);
}

TEST_F(CodecTest, ContainerErrorsSayWhereTheyWere) {
  Status s = decode_error<std::vector<int>>(Value(Array{1, 2, "three"}));
  EXPECT_EQ(s.code(), ErrorCode::kTypeMismatch);
  EXPECT_EQ(s.message(), "[2]: expected int32_t, got string");

  s = decode_error<std::map<std::string, std::uint8_t>>(Value(Object{{"ok", 1}, {"big", 999}}));
  EXPECT_EQ(s.code(), ErrorCode::kOutOfRange);  // the inner code is kept
  EXPECT_EQ(s.message(), R"(["big"]: 999 is out of range for uint8_t [0, 255])");

  s = decode_error<std::vector<std::vector<int>>>(Value(Array{Array{}, Array{1, 1.5}}));
  EXPECT_EQ(s.message(), "[1]: [1]: expected int32_t, got non-integral double 1.5");
}

// --- type mismatch messages ----------------------------------------------------------------

TEST_F(CodecTest, WrongValueTypeSaysWhatWasExpectedAndFound) {
  struct Case {
    Status status;
    const char* message;
  };
  const Case cases[] = {
      {decode_error<std::string>(Value(5)), "expected string, got int"},
      {decode_error<bool>(Value(1)), "expected bool, got int"},
      {decode_error<std::int32_t>(Value("5")), "expected int32_t, got string"},
      {decode_error<std::uint64_t>(Value(true)), "expected uint64_t, got bool"},
      {decode_error<double>(Value(kNull)), "expected double, got null"},
      {decode_error<float>(Value()), "expected float, got undefined"},
      {decode_error<std::vector<int>>(Value(Object{})), "expected array, got object"},
      {decode_error<std::map<std::string, int>>(Value(Array{})), "expected object, got array"},
      {decode_error<ArrayBuffer>(Value(TypedArray::allocate(ViewKind::kInt32, 1))),
       "expected ArrayBuffer, got Int32Array"},
      {decode_error<TypedArray>(Value(ArrayBuffer::create(4))),
       "expected TypedArray, got ArrayBuffer"},
      {decode_error<ErrorValue>(Value("boom")), "expected error, got string"},
      {decode_error<std::string>(Value(ErrorValue{})), "expected string, got error"},
      {decode_error<std::string>(Value(1.5)), "expected string, got double"},
      {decode_error<std::tuple<int>>(Value("x")), "expected array, got string"},
      {decode_error<std::string>(Value(TypedArray::allocate(ViewKind::kDataView, 1))),
       "expected string, got DataView"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(c.status.code(), ErrorCode::kTypeMismatch) << c.message;
    EXPECT_EQ(c.status.message(), c.message);
  }
}

// --- WEAVE_CODEC ---------------------------------------------------------------------------

Team sample_team() {
  Team t;
  t.title = "core";
  t.lead = Person{"Ada", 36, "ada@example.com"};
  t.members = {Person{"Bob", 25, std::nullopt}, Person{"Cy", 41, "cy@example.com"}};
  t.scores = {{"q1", 10}, {"q2", -3}};
  t.deputy = std::nullopt;
  t.series = {{"temps", {20.5, 21}}};
  return t;
}

void expect_same_person(const Person& a, const Person& b) {
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.age, b.age);
  EXPECT_EQ(a.email, b.email);
}

TEST_F(CodecTest, StructEncodesAsObjectInDeclarationOrder) {
  const Value v = to_value(Person{"Ada", 36, std::nullopt});
  EXPECT_EQ(v.to_string(), R"({"name":"Ada","age":36,"email":null})");
  EXPECT_EQ(to_value(app::Point{1.5, -2}).to_string(), R"({"x":1.5,"y":-2})");
  EXPECT_EQ(to_value(Empty{}), Value(Object{}));
}

TEST_F(CodecTest, NestedStructRoundTrips) {
  const Team t = sample_team();
  const Value v = to_value(t);
  ASSERT_TRUE(v.is_object());
  EXPECT_EQ(v.find("lead")->find("name")->to_string(), R"("Ada")");
  EXPECT_EQ(v.find("members")->at(1)->find("age")->to_string(), "41");
  EXPECT_TRUE(v.find("deputy")->is_null());

  Result<Team> back = from_value<Team>(v);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(back->title, t.title);
  expect_same_person(back->lead, t.lead);
  ASSERT_EQ(back->members.size(), 2u);
  expect_same_person(back->members[0], t.members[0]);
  expect_same_person(back->members[1], t.members[1]);
  EXPECT_EQ(back->scores, t.scores);
  EXPECT_FALSE(back->deputy.has_value());
  EXPECT_EQ(back->series, t.series);

  Team with_deputy = t;
  with_deputy.deputy = Person{"Dee", 30, std::nullopt};
  Result<Team> back2 = from_value<Team>(to_value(with_deputy));
  ASSERT_TRUE(back2.ok());
  ASSERT_TRUE(back2->deputy.has_value());
  expect_same_person(*back2->deputy, *with_deputy.deputy);
}

TEST_F(CodecTest, StructWithSixteenPlusFieldsRoundTrips) {
  Wide w;
  w.f01 = 1;
  w.f10 = 10;
  w.f16 = 16;
  w.f20 = 20;
  const Value v = to_value(w);
  ASSERT_TRUE(v.is_object());
  EXPECT_EQ(v.if_object()->size(), 20u);
  EXPECT_EQ(v.if_object()->begin()->first, "f01");
  EXPECT_EQ((v.if_object()->end() - 1)->first, "f20");
  Result<Wide> back = from_value<Wide>(v);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->f01, 1);
  EXPECT_EQ(back->f10, 10);
  EXPECT_EQ(back->f16, 16);
  EXPECT_EQ(back->f20, 20);
  EXPECT_EQ(back->f02, 0);
}

TEST_F(CodecTest, StructWithThirtyTwoFieldsRoundTrips) {
  Max32 m;
  m.m00 = 1;
  m.m31 = 32;
  const Value v = to_value(m);
  EXPECT_EQ(v.if_object()->size(), 32u);
  Result<Max32> back = from_value<Max32>(v);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->m00, 1);
  EXPECT_EQ(back->m31, 32);
}

TEST_F(CodecTest, RecursiveStructRoundTrips) {
  Tree t{"root", {Tree{"a", {}}, Tree{"b", {Tree{"c", {}}}}}};
  const Value v = to_value(t);
  EXPECT_EQ(v.to_string(), R"({"label":"root","children":[{"label":"a","children":[]},)"
                           R"({"label":"b","children":[{"label":"c","children":[]}]}]})");
  Result<Tree> back = from_value<Tree>(v);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->children[1].children[0].label, "c");
}

TEST_F(CodecTest, MissingFieldIsTypeMismatchNamingIt) {
  Status s = decode_error<Person>(Value(Object{{"name", "Ada"}}));
  EXPECT_EQ(s.code(), ErrorCode::kTypeMismatch);
  EXPECT_EQ(s.message(), "Person: missing field 'age'");
  s = decode_error<app::Point>(Value(Object{{"x", 1}}));
  EXPECT_EQ(s.message(), "app::Point: missing field 'y'");
}

TEST_F(CodecTest, MissingOptionalFieldReadsAsUndefined) {
  // As in JS, an absent key reads as undefined: optional fields become nullopt.
  Result<Person> p = from_value<Person>(Value(Object{{"name", "Ada"}, {"age", 36}}));
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  EXPECT_EQ(p->email, std::nullopt);
  Result<WithValue> w = from_value<WithValue>(Value(Object{{"n", 2}}));
  ASSERT_TRUE(w.ok());
  EXPECT_TRUE(w->any.is_undefined());
}

TEST_F(CodecTest, ExtraKeysAreIgnoredAndOrderDoesNotMatter) {
  Result<Person> p =
      from_value<Person>(Value(Object{{"extra", Array{}}, {"age", 36.0}, {"name", "Ada"}}));
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  EXPECT_EQ(p->name, "Ada");
  EXPECT_EQ(p->age, 36);
}

TEST_F(CodecTest, FieldErrorIsPrefixedWithTypeAndField) {
  Status s = decode_error<Person>(Value(Object{{"name", "Ada"}, {"age", "old"}}));
  EXPECT_EQ(s.code(), ErrorCode::kTypeMismatch);
  EXPECT_EQ(s.message(), "Person.age: expected int32_t, got string");

  s = decode_error<Person>(Value(Object{{"name", "Ada"}, {"age", 1LL << 40}}));
  EXPECT_EQ(s.code(), ErrorCode::kOutOfRange);
  EXPECT_EQ(s.message(),
            "Person.age: 1099511627776 is out of range for int32_t [-2147483648, 2147483647]");
}

TEST_F(CodecTest, NestedFieldErrorsChainTheirPrefixes) {
  Value v = to_value(sample_team());
  v.if_object()->get("members")->if_array()->at(1).if_object()->set("age", "x");
  Status s = decode_error<Team>(v);
  EXPECT_EQ(s.message(), "Team.members: [1]: Person.age: expected int32_t, got string");

  v = to_value(sample_team());
  v.if_object()->get("lead")->if_object()->erase("name");
  EXPECT_EQ(decode_error<Team>(v).message(), "Team.lead: Person: missing field 'name'");

  v = to_value(sample_team());
  v.if_object()->set("scores", Object{{"q1", "ten"}});
  EXPECT_EQ(decode_error<Team>(v).message(),
            R"(Team.scores: ["q1"]: expected int32_t, got string)");
}

TEST_F(CodecTest, StructFromNonObjectIsTypeMismatch) {
  Status s = decode_error<Person>(Value(3));
  EXPECT_EQ(s.code(), ErrorCode::kTypeMismatch);
  EXPECT_EQ(s.message(), "Person: expected object, got int");
  EXPECT_EQ(decode_error<Empty>(Value(Array{})).message(), "Empty: expected object, got array");
  EXPECT_TRUE(from_value<Empty>(Value(Object{{"anything", 1}})).ok());
}

TEST_F(CodecTest, ContainersOfStructsRoundTrip) {
  const std::map<std::string, std::vector<app::Point>> m{
      {"path", {app::Point{0, 0}, app::Point{1, 2}}}, {"empty", {}}};
  Result<std::map<std::string, std::vector<app::Point>>> back =
      from_value<std::map<std::string, std::vector<app::Point>>>(to_value(m));
  ASSERT_TRUE(back.ok());
  ASSERT_EQ(back->at("path").size(), 2u);
  EXPECT_EQ(back->at("path")[1].y, 2);
  EXPECT_TRUE(back->at("empty").empty());

  const std::optional<std::vector<Person>> people = std::vector<Person>{{"A", 1, std::nullopt}};
  auto p = from_value<std::optional<std::vector<Person>>>(to_value(people));
  ASSERT_TRUE(p.ok());
  ASSERT_TRUE(p->has_value());
  EXPECT_EQ((**p)[0].name, "A");
}

}  // namespace
}  // namespace weave
