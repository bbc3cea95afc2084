// weave::Codec<T>: lets a C++ type be posted without hand-written glue at
// every call. A Codec turns a T into a weave::Value (channel/value.h) and back:
//
//   struct Point { double x = 0, y = 0; };
//   WEAVE_CODEC(Point, x, y);                  // at global namespace scope
//
//   port.post_message(Point{1, 2});            // sent as {"x":1,"y":2}
//   Result<Point> p = event.get<Point>();      // decoded by key
//
// Built in: Value, Array, Object, bool, every integer type, float, double,
// std::string (encode-only: std::string_view), std::vector, std::array,
// std::map / std::unordered_map with string keys (as an Object),
// std::optional (nullopt <-> null), std::pair and std::tuple (as an Array),
// ArrayBuffer, TypedArray, SharedArrayBuffer, ErrorValue, std::chrono::duration
// (as nanoseconds), std::chrono::system_clock::time_point and enums. Any other type: specialize
// weave::Codec<T> (static Value encode(const T&) and static Result<T> decode(const Value&)) or use
// WEAVE_CODEC.
//
// Decoding never throws and never trusts the Value: a Value of the wrong type
// is a kTypeMismatch Status ("expected string, got int"), a number that does
// not fit the target type is kOutOfRange ("300 is out of range for uint8_t
// [0, 255]"). An error inside a container or struct keeps its code and gains
// a prefix that says where it was: "Team.members: [1]: Person.age: expected
// int32_t, got string".
//
// Numbers follow the Value model: integers travel as int64 and doubles as
// double. An integer decodes from an int or from an integral double; a float
// or double decodes from either. std::uint64_t (and any 64-bit unsigned type)
// keeps its bit pattern in the int64, so every uint64 round-trips exactly; the
// price is that a negative int decodes into it as its two's-complement bits
// (-1 -> UINT64_MAX). Every narrower unsigned type rejects negatives.
//
// Threading: codecs are pure functions of their argument and hold no state,
// so any thread may encode or decode its own values. A user specialization
// must keep it that way. A specialization must be visible before the first
// use of Codec<T> or Encodable<T> for that T (as with any template).
#pragma once

#include <array>
#include <chrono>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "channel/array_buffer.h"
#include "channel/status.h"
#include "channel/value.h"

namespace weave {

// Specialize with
//   static Value encode(const T&);
//   static Result<T> decode(const Value&);
// `Enable` is for constrained partial specializations (void by default).
template <class T, class Enable = void>
struct Codec;

// T has a Codec that both encodes and decodes.
template <class T>
concept Encodable = requires(const T& t, const Value& v) {
  { Codec<T>::encode(t) } -> std::same_as<Value>;
  { Codec<T>::decode(v) } -> std::same_as<Result<T>>;
};

namespace internal {

// T has a Codec that at least encodes (std::string_view only encodes).
template <class T>
concept HasEncoder = requires(const T& t) {
  { Codec<T>::encode(t) } -> std::same_as<Value>;
};

}  // namespace internal

// `value` as a Value, through Codec<T>. Any thread. Never blocks. Allocates.
template <class T>
[[nodiscard]] Value to_value(const T& value) {
  static_assert(internal::HasEncoder<T>,
                "weave::to_value: T has no weave::Codec<T>; specialize it or use WEAVE_CODEC");
  if constexpr (internal::HasEncoder<T>)
    return Codec<T>::encode(value);
  else
    return Value();  // unreachable: the assertion above fired
}

// `value` decoded as a T, through Codec<T>: kTypeMismatch or kOutOfRange when
// it does not hold a T. Any thread. Never blocks. Allocates.
template <class T>
[[nodiscard]] Result<T> from_value(const Value& value) {
  static_assert(!std::is_same_v<std::remove_cv_t<T>, std::string_view>,
                "weave::from_value: cannot decode to std::string_view (it would point into the "
                "Value); decode to std::string");
  static_assert(std::is_same_v<std::remove_cv_t<T>, std::string_view> || Encodable<T>,
                "weave::from_value: T has no weave::Codec<T>; specialize it or use WEAVE_CODEC");
  if constexpr (Encodable<T>)
    return Codec<T>::decode(value);
  else
    return Status(ErrorCode::kTypeMismatch, "");  // unreachable: an assertion above fired
}

// --- helpers for codecs (also for user specializations) ------------------------------

// The JS-ish name of the type a Value holds: "undefined", "null", "bool",
// "int", "double", "string", "ArrayBuffer", "SharedArrayBuffer", the view
// kind of a TypedArray ("Int32Array", "DataView"), "array", "object", "error".
// Any thread. Never blocks. Never allocates.
[[nodiscard]] inline std::string_view value_type_name(const Value& v) noexcept {
  switch (v.type()) {
    case Value::Type::kUndefined:
      return "undefined";
    case Value::Type::kNull:
      return "null";
    case Value::Type::kBool:
      return "bool";
    case Value::Type::kInt:
      return "int";
    case Value::Type::kDouble:
      return "double";
    case Value::Type::kString:
      return "string";
    case Value::Type::kArrayBuffer:
      return "ArrayBuffer";
    case Value::Type::kTypedArray:
      return view_kind_name(v.if_typed_array()->kind());
    case Value::Type::kSharedArrayBuffer:
      return "SharedArrayBuffer";
    case Value::Type::kArray:
      return "array";
    case Value::Type::kObject:
      return "object";
    case Value::Type::kError:
      return "error";
  }
  return "?";
}

// kTypeMismatch "expected <expected>, got <type of got>".
// Any thread. Never blocks. Allocates.
[[nodiscard]] inline Status type_mismatch(std::string_view expected, const Value& got) {
  std::string m = "expected ";
  m += expected;
  m += ", got ";
  m += value_type_name(got);
  return Status(ErrorCode::kTypeMismatch, std::move(m));
}

namespace internal {

// `s` with `prefix` in front of its message; same code. Allocates.
inline Status prefixed(std::string_view prefix, const Status& s) {
  std::string m(prefix);
  m += s.message();
  return Status(s.code(), std::move(m));
}

inline std::string index_prefix(std::size_t i) { return "[" + std::to_string(i) + "]: "; }
inline std::string key_prefix(std::string_view key) {
  std::string p = "[\"";
  p += key;
  p += "\"]: ";
  return p;
}

template <class I>
constexpr const char* integer_name() {
  if constexpr (std::is_same_v<I, char>)
    return "char";
  else if constexpr (std::is_same_v<I, wchar_t>)
    return "wchar_t";
  else if constexpr (std::is_same_v<I, char8_t>)
    return "char8_t";
  else if constexpr (std::is_same_v<I, char16_t>)
    return "char16_t";
  else if constexpr (std::is_same_v<I, char32_t>)
    return "char32_t";
  else if constexpr (std::is_signed_v<I>) {
    if constexpr (sizeof(I) == 1)
      return "int8_t";
    else if constexpr (sizeof(I) == 2)
      return "int16_t";
    else if constexpr (sizeof(I) == 4)
      return "int32_t";
    else if constexpr (sizeof(I) == 8)
      return "int64_t";
    else
      return "signed integer";
  } else {
    if constexpr (sizeof(I) == 1)
      return "uint8_t";
    else if constexpr (sizeof(I) == 2)
      return "uint16_t";
    else if constexpr (sizeof(I) == 4)
      return "uint32_t";
    else if constexpr (sizeof(I) == 8)
      return "uint64_t";
    else
      return "unsigned integer";
  }
}

template <class I>
Status integer_out_of_range(const Value& v) {
  using L = std::numeric_limits<I>;
  std::string m = v.to_string();
  m += " is out of range for ";
  m += integer_name<I>();
  m += " [";
  if constexpr (std::is_signed_v<I>) {
    m += std::to_string(static_cast<long long>(L::min()));
    m += ", ";
    m += std::to_string(static_cast<long long>(L::max()));
  } else {
    m += "0, ";
    m += std::to_string(static_cast<unsigned long long>(L::max()));
  }
  m += "]";
  return Status(ErrorCode::kOutOfRange, std::move(m));
}

// kTypeMismatch "expected array of 3 elements, got 2".
inline Status length_mismatch(std::string_view expected, std::size_t want, std::size_t got) {
  return Status(ErrorCode::kTypeMismatch, "expected " + std::string(expected) + " of " +
                                              std::to_string(want) + " elements, got " +
                                              std::to_string(got));
}

// The first error among `parts` (Results), or ok.
template <class... Rs>
Status first_error(const Rs&... parts) {
  Status s;
  std::size_t i = 0;
  // Left-to-right fold: stops recording at the first error.
  ((s.ok() && !parts.ok() ? (void)(s = prefixed(index_prefix(i), parts.status())) : (void)0, ++i),
   ...);
  return s;
}

// Decodes an Array of exactly sizeof...(Ts) elements into std::tuple<Ts...>
// (elements need not be default-constructible).
template <class Tuple, class... Ts, std::size_t... I>
Result<Tuple> decode_tuple(const Value& v, std::string_view expected, std::index_sequence<I...>) {
  const Array* a = v.if_array();
  if (!a) return type_mismatch(expected, v);
  if (a->size() != sizeof...(Ts)) return length_mismatch(expected, sizeof...(Ts), a->size());
  std::tuple<Result<Ts>...> parts{Codec<Ts>::decode((*a)[I])...};
  if (Status s = first_error(std::get<I>(parts)...); !s.ok()) return s;
  return Tuple(std::move(std::get<I>(parts)).value()...);
}

// WEAVE_CODEC's decode of one field. A missing key reads as undefined, as in
// JS: a field whose codec accepts undefined (std::optional, Value) takes that;
// any other reports the missing field.
template <class F>
Status decode_field(const Object& o, std::string_view type, std::string_view field, F& out) {
  static_assert(Encodable<F>, "weave: WEAVE_CODEC: a field's type has no weave::Codec");
  const Value* v = o.get(field);
  if (!v) {
    if (Result<F> r = Codec<F>::decode(Value()); r.ok()) {
      out = std::move(r).value();
      return Status();
    }
    return Status(ErrorCode::kTypeMismatch,
                  std::string(type) + ": missing field '" + std::string(field) + "'");
  }
  Result<F> r = Codec<F>::decode(*v);
  if (!r.ok()) {
    return prefixed(std::string(type) + "." + std::string(field) + ": ", r.status());
  }
  out = std::move(r).value();
  return Status();
}

constexpr bool fields_distinct(std::initializer_list<std::string_view> names) {
  for (auto i = names.begin(); i != names.end(); ++i) {
    for (auto j = i + 1; j != names.end(); ++j) {
      if (*i == *j) return false;
    }
  }
  return true;
}

// T, once per index of a pack (a struct, not an alias, so the pack survives).
template <std::size_t, class T>
struct Repeat {
  using type = T;
};

}  // namespace internal

// --- built-in codecs -----------------------------------------------------------------
// Every encode and decode below: Any thread. Never blocks. Allocates (for
// scalars — bool, numbers, enums, durations — only to build an error Status).

template <>
struct Codec<Value> {
  static Value encode(const Value& v) { return v; }
  static Result<Value> decode(const Value& v) { return v; }
};

template <>
struct Codec<Array> {
  static Value encode(const Array& a) { return Value(a); }
  static Result<Array> decode(const Value& v) {
    if (const Array* a = v.if_array()) return *a;
    return type_mismatch("array", v);
  }
};

template <>
struct Codec<Object> {
  static Value encode(const Object& o) { return Value(o); }
  static Result<Object> decode(const Value& v) {
    if (const Object* o = v.if_object()) return *o;
    return type_mismatch("object", v);
  }
};

template <>
struct Codec<bool> {
  static Value encode(const bool& b) noexcept { return Value(b); }
  static Result<bool> decode(const Value& v) {
    if (const bool* b = v.if_bool()) return *b;
    return type_mismatch("bool", v);
  }
};

// Every integer type but bool (char types included), as an int. Decodes from
// an int in range, or from an integral double in range.
template <class I>
requires(std::integral<I> && !std::same_as<I, bool>) struct Codec<I> {
  static Value encode(const I& i) noexcept {
    // C++20 integer conversion is modular: a 64-bit unsigned keeps its bits.
    return Value(static_cast<std::int64_t>(i));
  }
  static Result<I> decode(const Value& v) {
    using L = std::numeric_limits<I>;
    if (const std::int64_t* p = v.if_int()) {
      const std::int64_t i = *p;
      if constexpr (std::is_unsigned_v<I> && sizeof(I) == sizeof(std::int64_t)) {
        return static_cast<I>(i);  // the bit pattern, as encode wrote it
      } else if constexpr (std::is_unsigned_v<I>) {
        if (i >= 0 && static_cast<std::uint64_t>(i) <= static_cast<std::uint64_t>(L::max())) {
          return static_cast<I>(i);
        }
      } else {
        if (i >= static_cast<std::int64_t>(L::min()) && i <= static_cast<std::int64_t>(L::max())) {
          return static_cast<I>(i);
        }
      }
      return internal::integer_out_of_range<I>(v);
    }
    if (const double* p = v.if_double()) {
      const double d = *p;
      if (!(std::trunc(d) == d)) {  // also NaN
        return Status(ErrorCode::kTypeMismatch, std::string("expected ") +
                                                    internal::integer_name<I>() +
                                                    ", got non-integral double " + v.to_string());
      }
      // [min, 2^digits) holds exactly the doubles that convert without UB.
      if (d >= static_cast<double>(L::min()) && d < std::ldexp(1.0, L::digits)) {
        return static_cast<I>(d);
      }
      return internal::integer_out_of_range<I>(v);
    }
    return type_mismatch(internal::integer_name<I>(), v);
  }
};

// float and double, as a double. Decode from an int or a double; a finite
// double beyond float's range is kOutOfRange for float (precision may round).
template <class F>
requires(std::same_as<F, float> || std::same_as<F, double>) struct Codec<F> {
  static Value encode(const F& f) noexcept { return Value(static_cast<double>(f)); }
  static Result<F> decode(const Value& v) {
    constexpr const char* kName = std::is_same_v<F, float> ? "float" : "double";
    if (const std::int64_t* i = v.if_int()) return static_cast<F>(*i);
    if (const double* d = v.if_double()) {
      if constexpr (std::is_same_v<F, float>) {
        if (std::isfinite(*d) && std::fabs(*d) > std::numeric_limits<float>::max()) {
          return Status(ErrorCode::kOutOfRange, v.to_string() + " is out of range for float");
        }
      }
      return static_cast<F>(*d);
    }
    return type_mismatch(kName, v);
  }
};

template <>
struct Codec<std::string> {
  static Value encode(const std::string& s) { return Value(s); }
  static Result<std::string> decode(const Value& v) {
    if (const std::string* s = v.if_string()) return *s;
    return type_mismatch("string", v);
  }
};

// Encode only: a decoded string_view would point into the Value. Decode to
// std::string instead (from_value<std::string_view> fails to compile, saying so).
template <>
struct Codec<std::string_view> {
  static Value encode(const std::string_view& s) { return Value(s); }
};

// Buffers and views keep reference semantics inside a Value (see
// channel/array_buffer.h): encode and decode share the bytes, they do not
// copy them. Posting copies or transfers them.
template <>
struct Codec<ArrayBuffer> {
  static Value encode(const ArrayBuffer& b) noexcept { return Value(b); }
  static Result<ArrayBuffer> decode(const Value& v) {
    if (const ArrayBuffer* b = v.if_array_buffer()) return *b;
    return type_mismatch("ArrayBuffer", v);
  }
};

template <>
struct Codec<TypedArray> {
  static Value encode(const TypedArray& t) noexcept { return Value(t); }
  static Result<TypedArray> decode(const Value& v) {
    if (const TypedArray* t = v.if_typed_array()) return *t;
    return type_mismatch("TypedArray", v);
  }
};

// A SharedArrayBuffer is a handle: encode and decode share the memory, and
// posting shares it too (it is never copied or transferred).
template <>
struct Codec<SharedArrayBuffer> {
  static Value encode(const SharedArrayBuffer& b) noexcept { return Value(b); }
  static Result<SharedArrayBuffer> decode(const Value& v) {
    if (const SharedArrayBuffer* b = v.if_shared_array_buffer()) return *b;
    return type_mismatch("SharedArrayBuffer", v);
  }
};

template <>
struct Codec<ErrorValue> {
  static Value encode(const ErrorValue& e) { return Value(e); }
  static Result<ErrorValue> decode(const Value& v) {
    if (const ErrorValue* e = v.if_error()) return *e;
    return type_mismatch("error", v);
  }
};

// An enum as its underlying integer. Decoding checks the integer's range, not
// that it names an enumerator (C++ cannot list them); specialize Codec<E>
// yourself to encode names or to reject unknown values.
template <class E>
requires std::is_enum_v<E>
struct Codec<E> {
  using Underlying = std::underlying_type_t<E>;
  static Value encode(const E& e) noexcept {
    return Codec<Underlying>::encode(static_cast<Underlying>(e));
  }
  static Result<E> decode(const Value& v) {
    Result<Underlying> r = Codec<Underlying>::decode(v);
    if (!r.ok()) return r.status();
    return static_cast<E>(*r);
  }
};

namespace internal {

// "ms", "s", ... for the std periods; "(num/den s)" otherwise. Allocates.
template <class Period>
std::string period_name() {
  if constexpr (std::is_same_v<Period, std::nano>)
    return "ns";
  else if constexpr (std::is_same_v<Period, std::micro>)
    return "us";
  else if constexpr (std::is_same_v<Period, std::milli>)
    return "ms";
  else if constexpr (std::is_same_v<Period, std::ratio<1>>)
    return "s";
  else if constexpr (std::is_same_v<Period, std::ratio<60>>)
    return "min";
  else if constexpr (std::is_same_v<Period, std::ratio<3600>>)
    return "h";
  else
    return "(" + std::to_string(Period::num) + "/" + std::to_string(Period::den) + " s)";
}

}  // namespace internal

// A duration as a number of nanoseconds, whatever its own unit, so that the
// receiver may decode it into any unit: milliseconds{1500} travels as
// 1500000000 and decodes as seconds only if that is exact. The rules:
//  - integer durations encode as an int (exact). Beyond int64 nanoseconds
//    (about ±292 years) the count saturates to INT64_MAX / INT64_MIN, which
//    every duration type decodes as its max() / min(): a "forever" stays
//    forever (D::max() round-trips for every D), and nothing else saturates.
//  - decoding into an integer duration refuses (kOutOfRange, never rounds)
//    a count that is not a whole number of the target's unit
//    ("1500000000 ns is not a whole number of s") or that does not fit its
//    rep; use a floating or finer target to keep fractions.
//  - floating durations encode as a double of nanoseconds and decode from an
//    int or a double (the usual double rounding).
// (Before issue 12 the count of the sender's own unit travelled, and a
// receiver with another unit silently read another duration.)
template <class Rep, class Period>
requires std::is_arithmetic_v<Rep> &&
    (!std::is_same_v<Rep, bool>)struct Codec<std::chrono::duration<Rep, Period>> {
  using D = std::chrono::duration<Rep, Period>;
  // One tick of D is R::num / R::den nanoseconds.
  using R = std::ratio_divide<Period, std::nano>;
  static constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  static constexpr std::int64_t kMin = std::numeric_limits<std::int64_t>::min();

  static Value encode(const D& d) {
    if constexpr (std::is_floating_point_v<Rep>) {
      return Value(static_cast<double>(d.count()) * static_cast<double>(R::num) /
                   static_cast<double>(R::den));
    } else {
      const Rep count = d.count();
      if constexpr (R::den == 1) {
        std::int64_t ns;
        if (__builtin_mul_overflow(count, R::num, &ns)) return Value(count < 0 ? kMin : kMax);
        return Value(ns);
      } else {
        // Finer than a nanosecond: exact when whole, a double otherwise.
        if (count % R::den == 0) {
          std::int64_t ns;
          if (!__builtin_mul_overflow(count / R::den, R::num, &ns)) return Value(ns);
        }
        return Value(static_cast<double>(count) * static_cast<double>(R::num) /
                     static_cast<double>(R::den));
      }
    }
  }

  static Result<D> decode(const Value& v) {
    if constexpr (std::is_floating_point_v<Rep>) {
      Result<double> ns = Codec<double>::decode(v);
      if (!ns.ok()) return ns.status();
      return D(static_cast<Rep>(*ns * static_cast<double>(R::den) / static_cast<double>(R::num)));
    } else {
      Result<std::int64_t> ns = Codec<std::int64_t>::decode(v);  // an int, or an integral double
      if (!ns.ok()) return ns.status();
      if (*ns == kMax) return D::max();  // saturated by encode: forever
      if (*ns == kMin) return D::min();
      // ticks = ns * den / num, exactly.
      std::int64_t scaled;
      if (__builtin_mul_overflow(*ns, R::den, &scaled)) return out_of_range(*ns);
      if (scaled % R::num != 0) {
        return Status(ErrorCode::kOutOfRange,
                      std::to_string(*ns) + " ns is not a whole number of " +
                          internal::period_name<Period>() + " (refused rather than rounded)");
      }
      const std::int64_t ticks = scaled / R::num;
      Result<Rep> r = Codec<Rep>::decode(Value(ticks));
      if (!r.ok()) return out_of_range(*ns);
      return D(*r);
    }
  }

 private:
  static Status out_of_range(std::int64_t ns) {
    return Status(ErrorCode::kOutOfRange,
                  std::to_string(ns) + " ns is out of range for a duration of " +
                      internal::integer_name<Rep>() + " " + internal::period_name<Period>());
  }
};

// A std::chrono::system_clock time point (Node clones a Date) as its
// duration since the Unix epoch, by the duration rules above: an int of
// nanoseconds since 1970-01-01 UTC (exact, so a time_point round-trips, for
// years 1678 to 2262). A JS Date holds milliseconds as a double: to read a
// Date's getTime() sent as a number, decode a
// std::chrono::duration<double, std::milli> and add it to the epoch.
template <class Duration>
requires Encodable<Duration>
struct Codec<std::chrono::time_point<std::chrono::system_clock, Duration>> {
  using T = std::chrono::time_point<std::chrono::system_clock, Duration>;
  static Value encode(const T& t) { return Codec<Duration>::encode(t.time_since_epoch()); }
  static Result<T> decode(const Value& v) {
    Result<Duration> d = Codec<Duration>::decode(v);
    if (!d.ok()) return d.status();
    return T(*d);
  }
};

// std::optional<T>: nullopt as null; null and undefined decode to nullopt.
template <class T>
requires Encodable<T>
struct Codec<std::optional<T>> {
  static Value encode(const std::optional<T>& o) { return o ? Codec<T>::encode(*o) : Value(kNull); }
  static Result<std::optional<T>> decode(const Value& v) {
    if (v.is_null() || v.is_undefined()) return std::optional<T>();
    Result<T> r = Codec<T>::decode(v);
    if (!r.ok()) return r.status();
    return std::optional<T>(std::move(r).value());
  }
};

// std::vector<T> as an Array.
template <class T, class A>
requires Encodable<T>
struct Codec<std::vector<T, A>> {
  static Value encode(const std::vector<T, A>& vec) {
    Array out;
    out.reserve(vec.size());
    for (const auto& e : vec) out.push_back(Codec<T>::encode(e));
    return Value(std::move(out));
  }
  static Result<std::vector<T, A>> decode(const Value& v) {
    const Array* a = v.if_array();
    if (!a) return type_mismatch("array", v);
    std::vector<T, A> out;
    out.reserve(a->size());
    for (std::size_t i = 0; i < a->size(); ++i) {
      Result<T> r = Codec<T>::decode((*a)[i]);
      if (!r.ok()) return internal::prefixed(internal::index_prefix(i), r.status());
      out.push_back(std::move(r).value());
    }
    return out;
  }
};

// std::array<T, N> as an Array of exactly N elements (another length is
// kTypeMismatch). T need not be default-constructible.
template <class T, std::size_t N>
requires Encodable<T>
struct Codec<std::array<T, N>> {
  static Value encode(const std::array<T, N>& arr) {
    Array out;
    out.reserve(N);
    for (const auto& e : arr) out.push_back(Codec<T>::encode(e));
    return Value(std::move(out));
  }
  static Result<std::array<T, N>> decode(const Value& v) {
    if constexpr (std::is_default_constructible_v<T>) {
      const Array* a = v.if_array();
      if (!a) return type_mismatch("array", v);
      if (a->size() != N) return internal::length_mismatch("array", N, a->size());
      std::array<T, N> out{};
      for (std::size_t i = 0; i < N; ++i) {
        Result<T> r = Codec<T>::decode((*a)[i]);
        if (!r.ok()) return internal::prefixed(internal::index_prefix(i), r.status());
        out[i] = std::move(r).value();
      }
      return out;
    } else {
      return decode_in_place(v, std::make_index_sequence<N>());
    }
  }

 private:
  // Through a tuple of Results, so every element is constructed from its
  // decoded value (meant for small N: the pack is N long).
  template <std::size_t... I>
  static Result<std::array<T, N>> decode_in_place(const Value& v, std::index_sequence<I...>) {
    auto t = internal::decode_tuple<std::tuple<typename internal::Repeat<I, T>::type...>,
                                    typename internal::Repeat<I, T>::type...>(
        v, "array", std::index_sequence<I...>());
    if (!t.ok()) return t.status();
    return std::array<T, N>{std::move(std::get<I>(*t))...};
  }
};

// std::map / std::unordered_map with std::string keys, as an Object (a
// std::map encodes in key order, an unordered_map in its iteration order).
template <class T, class C, class A>
requires Encodable<T>
struct Codec<std::map<std::string, T, C, A>> {
  using M = std::map<std::string, T, C, A>;
  static Value encode(const M& m) {
    Object out;
    out.reserve(m.size());
    for (const auto& [k, e] : m) out.append_unchecked(k, Codec<T>::encode(e));  // keys are unique
    return Value(std::move(out));
  }
  static Result<M> decode(const Value& v) {
    const Object* o = v.if_object();
    if (!o) return type_mismatch("object", v);
    M out;
    for (const auto& [k, e] : *o) {
      Result<T> r = Codec<T>::decode(e);
      if (!r.ok()) return internal::prefixed(internal::key_prefix(k), r.status());
      out.insert_or_assign(k, std::move(r).value());
    }
    return out;
  }
};

template <class T, class H, class Eq, class A>
requires Encodable<T>
struct Codec<std::unordered_map<std::string, T, H, Eq, A>> {
  using M = std::unordered_map<std::string, T, H, Eq, A>;
  static Value encode(const M& m) {
    Object out;
    out.reserve(m.size());
    for (const auto& [k, e] : m) out.append_unchecked(k, Codec<T>::encode(e));  // keys are unique
    return Value(std::move(out));
  }
  static Result<M> decode(const Value& v) {
    const Object* o = v.if_object();
    if (!o) return type_mismatch("object", v);
    M out;
    out.reserve(o->size());
    for (const auto& [k, e] : *o) {
      Result<T> r = Codec<T>::decode(e);
      if (!r.ok()) return internal::prefixed(internal::key_prefix(k), r.status());
      out.insert_or_assign(k, std::move(r).value());
    }
    return out;
  }
};

// std::pair and std::tuple as an Array of exactly their size.
template <class A, class B>
requires(Encodable<A>&& Encodable<B>) struct Codec<std::pair<A, B>> {
  static Value encode(const std::pair<A, B>& p) {
    Array out;
    out.reserve(2);
    out.push_back(Codec<A>::encode(p.first));
    out.push_back(Codec<B>::encode(p.second));
    return Value(std::move(out));
  }
  static Result<std::pair<A, B>> decode(const Value& v) {
    return internal::decode_tuple<std::pair<A, B>, A, B>(v, "array", std::index_sequence<0, 1>());
  }
};

template <class... Ts>
requires(Encodable<Ts>&&...) struct Codec<std::tuple<Ts...>> {
  static Value encode(const std::tuple<Ts...>& t) {
    Array out;
    out.reserve(sizeof...(Ts));
    std::apply([&](const Ts&... e) { (out.push_back(Codec<Ts>::encode(e)), ...); }, t);
    return Value(std::move(out));
  }
  static Result<std::tuple<Ts...>> decode(const Value& v) {
    return internal::decode_tuple<std::tuple<Ts...>, Ts...>(v, "array",
                                                            std::index_sequence_for<Ts...>());
  }
};

}  // namespace weave

// --- WEAVE_CODEC -----------------------------------------------------------------------
//
//   WEAVE_CODEC(Type, field1, field2, ...);
//
// Defines weave::Codec<Type> for a struct whose listed fields are public and
// have codecs themselves (built-ins, other WEAVE_CODEC types, containers of
// them). Use it at global namespace scope, after Type is complete, with a
// semicolon after it; Type may be qualified (app::Point). Types whose names
// contain a comma (templates) need an alias first. Up to 32 fields.
//
// Encodes as an Object whose keys are the field names, in the order listed.
// Decodes by key: extra keys are ignored; a missing key reads as undefined,
// as in JS, so a std::optional (or Value) field becomes nullopt (undefined)
// and any other field reports kTypeMismatch "Type: missing field 'x'"; a field
// that does not decode returns its error with "Type.x: " in front. Decoding
// starts from Type{} so Type must be default-constructible. Listing a field
// twice does not compile.
// The number of arguments, 1 to 32; TOO_MANY for 33 to 64.
#define WEAVE_INTERNAL_NARGS(...)                                                                  \
  WEAVE_INTERNAL_NARGS_(                                                                           \
      __VA_ARGS__, TOO_MANY, TOO_MANY, TOO_MANY, TOO_MANY, TOO_MANY, TOO_MANY, TOO_MANY, TOO_MANY, \
      TOO_MANY, TOO_MANY, TOO_MANY, TOO_MANY, TOO_MANY, TOO_MANY, TOO_MANY, TOO_MANY, TOO_MANY,    \
      TOO_MANY, TOO_MANY, TOO_MANY, TOO_MANY, TOO_MANY, TOO_MANY, TOO_MANY, TOO_MANY, TOO_MANY,    \
      TOO_MANY, TOO_MANY, TOO_MANY, TOO_MANY, TOO_MANY, TOO_MANY, 32, 31, 30, 29, 28, 27, 26, 25,  \
      24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1)
#define WEAVE_INTERNAL_NARGS_(_1, _2, _3, _4, _5, _6, _7, _8, _9, _10, _11, _12, _13, _14, _15, \
                              _16, _17, _18, _19, _20, _21, _22, _23, _24, _25, _26, _27, _28,  \
                              _29, _30, _31, _32, _33, _34, _35, _36, _37, _38, _39, _40, _41,  \
                              _42, _43, _44, _45, _46, _47, _48, _49, _50, _51, _52, _53, _54,  \
                              _55, _56, _57, _58, _59, _60, _61, _62, _63, _64, N, ...)         \
  N
// Past 32 fields the compiler names the limit (in whatever context the
// expansion lands, an undeclared identifier is an error that reads well).
#define WEAVE_INTERNAL_FE_TOO_MANY(M, T, ...) WEAVE_CODEC_supports_at_most_32_fields
#define WEAVE_INTERNAL_FE_1(M, T, x) M(T, x)
#define WEAVE_INTERNAL_FE_2(M, T, x, ...) M(T, x) WEAVE_INTERNAL_FE_1(M, T, __VA_ARGS__)
#define WEAVE_INTERNAL_FE_3(M, T, x, ...) M(T, x) WEAVE_INTERNAL_FE_2(M, T, __VA_ARGS__)
#define WEAVE_INTERNAL_FE_4(M, T, x, ...) M(T, x) WEAVE_INTERNAL_FE_3(M, T, __VA_ARGS__)
#define WEAVE_INTERNAL_FE_5(M, T, x, ...) M(T, x) WEAVE_INTERNAL_FE_4(M, T, __VA_ARGS__)
#define WEAVE_INTERNAL_FE_6(M, T, x, ...) M(T, x) WEAVE_INTERNAL_FE_5(M, T, __VA_ARGS__)
#define WEAVE_INTERNAL_FE_7(M, T, x, ...) M(T, x) WEAVE_INTERNAL_FE_6(M, T, __VA_ARGS__)
#define WEAVE_INTERNAL_FE_8(M, T, x, ...) M(T, x) WEAVE_INTERNAL_FE_7(M, T, __VA_ARGS__)
#define WEAVE_INTERNAL_FE_9(M, T, x, ...) M(T, x) WEAVE_INTERNAL_FE_8(M, T, __VA_ARGS__)
#define WEAVE_INTERNAL_FE_10(M, T, x, ...) M(T, x) WEAVE_INTERNAL_FE_9(M, T, __VA_ARGS__)
#define WEAVE_INTERNAL_FE_11(M, T, x, ...) M(T, x) WEAVE_INTERNAL_FE_10(M, T, __VA_ARGS__)
#define WEAVE_INTERNAL_FE_12(M, T, x, ...) M(T, x) WEAVE_INTERNAL_FE_11(M, T, __VA_ARGS__)
#define WEAVE_INTERNAL_FE_13(M, T, x, ...) M(T, x) WEAVE_INTERNAL_FE_12(M, T, __VA_ARGS__)
#define WEAVE_INTERNAL_FE_14(M, T, x, ...) M(T, x) WEAVE_INTERNAL_FE_13(M, T, __VA_ARGS__)
#define WEAVE_INTERNAL_FE_15(M, T, x, ...) M(T, x) WEAVE_INTERNAL_FE_14(M, T, __VA_ARGS__)
#define WEAVE_INTERNAL_FE_16(M, T, x, ...) M(T, x) WEAVE_INTERNAL_FE_15(M, T, __VA_ARGS__)
#define WEAVE_INTERNAL_FE_17(M, T, x, ...) M(T, x) WEAVE_INTERNAL_FE_16(M, T, __VA_ARGS__)
#define WEAVE_INTERNAL_FE_18(M, T, x, ...) M(T, x) WEAVE_INTERNAL_FE_17(M, T, __VA_ARGS__)
#define WEAVE_INTERNAL_FE_19(M, T, x, ...) M(T, x) WEAVE_INTERNAL_FE_18(M, T, __VA_ARGS__)
#define WEAVE_INTERNAL_FE_20(M, T, x, ...) M(T, x) WEAVE_INTERNAL_FE_19(M, T, __VA_ARGS__)
#define WEAVE_INTERNAL_FE_21(M, T, x, ...) M(T, x) WEAVE_INTERNAL_FE_20(M, T, __VA_ARGS__)
#define WEAVE_INTERNAL_FE_22(M, T, x, ...) M(T, x) WEAVE_INTERNAL_FE_21(M, T, __VA_ARGS__)
#define WEAVE_INTERNAL_FE_23(M, T, x, ...) M(T, x) WEAVE_INTERNAL_FE_22(M, T, __VA_ARGS__)
#define WEAVE_INTERNAL_FE_24(M, T, x, ...) M(T, x) WEAVE_INTERNAL_FE_23(M, T, __VA_ARGS__)
#define WEAVE_INTERNAL_FE_25(M, T, x, ...) M(T, x) WEAVE_INTERNAL_FE_24(M, T, __VA_ARGS__)
#define WEAVE_INTERNAL_FE_26(M, T, x, ...) M(T, x) WEAVE_INTERNAL_FE_25(M, T, __VA_ARGS__)
#define WEAVE_INTERNAL_FE_27(M, T, x, ...) M(T, x) WEAVE_INTERNAL_FE_26(M, T, __VA_ARGS__)
#define WEAVE_INTERNAL_FE_28(M, T, x, ...) M(T, x) WEAVE_INTERNAL_FE_27(M, T, __VA_ARGS__)
#define WEAVE_INTERNAL_FE_29(M, T, x, ...) M(T, x) WEAVE_INTERNAL_FE_28(M, T, __VA_ARGS__)
#define WEAVE_INTERNAL_FE_30(M, T, x, ...) M(T, x) WEAVE_INTERNAL_FE_29(M, T, __VA_ARGS__)
#define WEAVE_INTERNAL_FE_31(M, T, x, ...) M(T, x) WEAVE_INTERNAL_FE_30(M, T, __VA_ARGS__)
#define WEAVE_INTERNAL_FE_32(M, T, x, ...) M(T, x) WEAVE_INTERNAL_FE_31(M, T, __VA_ARGS__)

#define WEAVE_INTERNAL_CAT(a, b) WEAVE_INTERNAL_CAT_(a, b)
#define WEAVE_INTERNAL_CAT_(a, b) a##b
// M(T, field) for each field; needs at least one field.
#define WEAVE_INTERNAL_FOR_EACH(M, T, ...) \
  WEAVE_INTERNAL_CAT(WEAVE_INTERNAL_FE_, WEAVE_INTERNAL_NARGS(__VA_ARGS__))(M, T, __VA_ARGS__)

#define WEAVE_INTERNAL_FIELD_NAME(T, f) #f,
#define WEAVE_INTERNAL_FIELD_COUNT(T, f) +1
#define WEAVE_INTERNAL_FIELD_ENCODE(T, f) o.append_unchecked(#f, ::weave::to_value(v.f));
#define WEAVE_INTERNAL_FIELD_DECODE(T, f)                                                \
  if (::weave::Status s = ::weave::internal::decode_field(*o, #T, #f, out.f); !s.ok()) { \
    return s;                                                                            \
  }

#define WEAVE_CODEC(Type, ...)                                                                   \
  template <>                                                                                    \
  struct weave::Codec<Type> {                                                                    \
    static_assert(::weave::internal::fields_distinct({__VA_OPT__(                                \
                      WEAVE_INTERNAL_FOR_EACH(WEAVE_INTERNAL_FIELD_NAME, Type, __VA_ARGS__))}),  \
                  "weave: WEAVE_CODEC(" #Type ", ...): a field is listed twice");                \
    static ::weave::Value encode(const Type& v) {                                                \
      ::weave::Object o;                                                                         \
      o.reserve(                                                                                 \
          0 __VA_OPT__(WEAVE_INTERNAL_FOR_EACH(WEAVE_INTERNAL_FIELD_COUNT, Type, __VA_ARGS__))); \
      __VA_OPT__(WEAVE_INTERNAL_FOR_EACH(WEAVE_INTERNAL_FIELD_ENCODE, Type, __VA_ARGS__))        \
      (void)v;                                                                                   \
      return ::weave::Value(::std::move(o));                                                     \
    }                                                                                            \
    static ::weave::Result<Type> decode(const ::weave::Value& v) {                               \
      static_assert(::std::is_default_constructible_v<Type>,                                     \
                    "weave: WEAVE_CODEC(" #Type                                                  \
                    ", ...): the type must be "                                                  \
                    "default-constructible (decode fills in its fields)");                       \
      const ::weave::Object* o = v.if_object();                                                  \
      if (!o) {                                                                                  \
        return ::weave::internal::prefixed(#Type ": ", ::weave::type_mismatch("object", v));     \
      }                                                                                          \
      Type out{};                                                                                \
      __VA_OPT__(WEAVE_INTERNAL_FOR_EACH(WEAVE_INTERNAL_FIELD_DECODE, Type, __VA_ARGS__))        \
      return out;                                                                                \
    }                                                                                            \
  }
