// weave::Value: the structured-clone value that messages carry — Node's
// structured clone types as a C++ value type.
//
//   undefined, null, bool, 64-bit integer, double, UTF-8 string,
//   ArrayBuffer (bytes), TypedArray (typed view over a buffer),
//   Array (ordered values), Object (string keys in insertion order),
//   ErrorValue (name, message, stack text).
//
// Arrays, objects, strings and errors have value semantics: copying a Value
// copies them. ArrayBuffers (and the views over them) have reference
// semantics, as in JS: copies of a Value share the same bytes. Posting a value
// clones it (see channel/message_port.h), so nothing the sender does after the
// post reaches the receiver.
//
// Size: a Value is 48 bytes; scalars and strings of up to 15 bytes live inline
// (no heap allocation), so small messages cost none.
//
// Strings hold UTF-8 by contract. Posting within a process does not re-check
// it; the wire format (channel/wire.h) does, both ways.
//
// Depth: cloning and the wire format refuse values nested deeper than
// kMaxCloneDepth. A Value built by hand much deeper than that (~100k levels)
// can exhaust the stack when copied, compared or destroyed, like any
// recursive C++ structure.
//
// Threading: a Value belongs to one thread at a time, like any C++ value.
#pragma once

#include <concepts>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "channel/array_buffer.h"
#include "channel/status.h"

namespace weave {

struct Undefined {
  friend bool operator==(Undefined, Undefined) noexcept { return true; }
};
struct Null {
  friend bool operator==(Null, Null) noexcept { return true; }
};
inline constexpr Undefined kUndefined{};
inline constexpr Null kNull{};

// A JS Error crossing a thread: its name ("TypeError"), message and stack text.
struct ErrorValue {
  std::string name = "Error";
  std::string message;
  std::string stack;
  friend bool operator==(const ErrorValue&, const ErrorValue&) = default;
};

class Value;
using Array = std::vector<Value>;

// A JS object: string keys in insertion order. set() on an existing key keeps
// its position, as JS does. Lookups are linear: objects in messages are small.
class Object {
 public:
  Object() = default;
  Object(std::initializer_list<std::pair<std::string, Value>> entries);

  // Adds or replaces; returns *this for chaining. Allocates.
  Object& set(std::string key, Value value);
  // The value under `key`, or nullptr. Never allocates.
  [[nodiscard]] const Value* get(std::string_view key) const noexcept;
  [[nodiscard]] Value* get(std::string_view key) noexcept;
  [[nodiscard]] bool contains(std::string_view key) const noexcept { return get(key) != nullptr; }
  bool erase(std::string_view key);
  using Entries = std::vector<std::pair<std::string, Value>>;
  // Defined after Value (below): Value is still incomplete here.
  [[nodiscard]] std::size_t size() const noexcept;
  [[nodiscard]] bool empty() const noexcept;
  [[nodiscard]] Entries::const_iterator begin() const noexcept;
  [[nodiscard]] Entries::const_iterator end() const noexcept;
  [[nodiscard]] Entries::iterator begin() noexcept;
  [[nodiscard]] Entries::iterator end() noexcept;
  void reserve(std::size_t n);
  // Appends without looking for the key; the caller knows it is new. A
  // repeated key made this way is cloned as is, but serialize() refuses it.
  void append_unchecked(std::string key, Value value);

  friend bool operator==(const Object& a, const Object& b);

 private:
  Entries entries_;
};

class Value {
 public:
  enum class Type : std::uint8_t {
    kUndefined,
    kNull,
    kBool,
    kInt,
    kDouble,
    kString,
    kArrayBuffer,
    kTypedArray,
    kArray,
    kObject,
    kError,
  };

  Value() noexcept = default;  // undefined
  Value(Undefined) noexcept {}
  Value(Null) noexcept : v_(Null{}) {}
  Value(std::nullptr_t) noexcept : v_(Null{}) {}
  Value(bool b) noexcept : v_(b) {}
  // Any integer. Unsigned values above INT64_MAX keep their bit pattern (and
  // Codec<std::uint64_t> reads them back exactly).
  template <std::integral I>
    requires(!std::same_as<I, bool> && !std::same_as<I, char>)
  Value(I i) noexcept : v_(static_cast<std::int64_t>(i)) {}
  Value(double d) noexcept : v_(d) {}
  Value(float f) noexcept : v_(static_cast<double>(f)) {}
  Value(std::string s) noexcept : v_(std::move(s)) {}
  Value(std::string_view s) : v_(std::string(s)) {}
  // A null `s` makes a null Value.
  Value(const char* s) {
    if (s) v_ = std::string(s); else v_ = Null{};
  }
  // Any other pointer would silently become a bool: refuse it.
  template <class T>
  Value(T*) = delete;
  Value(ArrayBuffer b) noexcept : v_(std::move(b)) {}
  Value(TypedArray t) noexcept : v_(std::move(t)) {}
  Value(Array a) noexcept : v_(std::move(a)) {}
  Value(Object o) noexcept : v_(std::move(o)) {}
  Value(ErrorValue e) : v_(ErrorBox(std::move(e))) {}

  [[nodiscard]] Type type() const noexcept { return static_cast<Type>(v_.index()); }
  [[nodiscard]] bool is_undefined() const noexcept { return type() == Type::kUndefined; }
  [[nodiscard]] bool is_null() const noexcept { return type() == Type::kNull; }
  [[nodiscard]] bool is_bool() const noexcept { return type() == Type::kBool; }
  [[nodiscard]] bool is_int() const noexcept { return type() == Type::kInt; }
  [[nodiscard]] bool is_double() const noexcept { return type() == Type::kDouble; }
  [[nodiscard]] bool is_number() const noexcept { return is_int() || is_double(); }
  [[nodiscard]] bool is_string() const noexcept { return type() == Type::kString; }
  [[nodiscard]] bool is_array_buffer() const noexcept { return type() == Type::kArrayBuffer; }
  [[nodiscard]] bool is_typed_array() const noexcept { return type() == Type::kTypedArray; }
  [[nodiscard]] bool is_array() const noexcept { return type() == Type::kArray; }
  [[nodiscard]] bool is_object() const noexcept { return type() == Type::kObject; }
  [[nodiscard]] bool is_error() const noexcept { return type() == Type::kError; }

  // Pointer to the held alternative, or nullptr if it holds another type.
  // Never allocates.
  [[nodiscard]] const bool* if_bool() const noexcept { return std::get_if<bool>(&v_); }
  [[nodiscard]] const std::int64_t* if_int() const noexcept { return std::get_if<std::int64_t>(&v_); }
  [[nodiscard]] const double* if_double() const noexcept { return std::get_if<double>(&v_); }
  [[nodiscard]] const std::string* if_string() const noexcept { return std::get_if<std::string>(&v_); }
  [[nodiscard]] std::string* if_string() noexcept { return std::get_if<std::string>(&v_); }
  [[nodiscard]] const ArrayBuffer* if_array_buffer() const noexcept { return std::get_if<ArrayBuffer>(&v_); }
  [[nodiscard]] ArrayBuffer* if_array_buffer() noexcept { return std::get_if<ArrayBuffer>(&v_); }
  [[nodiscard]] const TypedArray* if_typed_array() const noexcept { return std::get_if<TypedArray>(&v_); }
  [[nodiscard]] TypedArray* if_typed_array() noexcept { return std::get_if<TypedArray>(&v_); }
  [[nodiscard]] const Array* if_array() const noexcept { return std::get_if<Array>(&v_); }
  [[nodiscard]] Array* if_array() noexcept { return std::get_if<Array>(&v_); }
  [[nodiscard]] const Object* if_object() const noexcept { return std::get_if<Object>(&v_); }
  [[nodiscard]] Object* if_object() noexcept { return std::get_if<Object>(&v_); }
  [[nodiscard]] const ErrorValue* if_error() const noexcept {
    auto* b = std::get_if<ErrorBox>(&v_);
    return b ? b->get() : nullptr;
  }

  // A number as double (ints converted), if it is one.
  [[nodiscard]] std::optional<double> as_number() const noexcept;

  // obj["key"] / arr[i] shorthands: nullptr when absent or not that type.
  [[nodiscard]] const Value* find(std::string_view key) const noexcept;
  [[nodiscard]] const Value* at(std::size_t index) const noexcept;

  // Structural equality: buffers compare by bytes, doubles by value (NaN
  // equals NaN, so a cloned value equals its source), objects entry by entry
  // in order (so key order matters, as it does when the value is iterated).
  friend bool operator==(const Value& a, const Value& b);

  // A JSON-like rendering for logs, tests and demos. Allocates.
  [[nodiscard]] std::string to_string() const;

  // Visits the held alternative (ErrorValue as const ErrorValue&).
  template <class F>
  decltype(auto) visit(F&& f) const;

 private:
  // Errors are rare and large: boxed, so they do not make every Value bigger.
  class ErrorBox {
   public:
    explicit ErrorBox(ErrorValue e) : p_(std::make_unique<ErrorValue>(std::move(e))) {}
    ErrorBox(const ErrorBox& o) : p_(std::make_unique<ErrorValue>(*o.p_)) {}
    ErrorBox(ErrorBox&&) noexcept = default;
    ErrorBox& operator=(const ErrorBox& o) {
      p_ = std::make_unique<ErrorValue>(*o.p_);
      return *this;
    }
    ErrorBox& operator=(ErrorBox&&) noexcept = default;
    const ErrorValue* get() const noexcept { return p_.get(); }
    friend bool operator==(const ErrorBox& a, const ErrorBox& b) { return *a.p_ == *b.p_; }

   private:
    std::unique_ptr<ErrorValue> p_;
  };

  std::variant<Undefined, Null, bool, std::int64_t, double, std::string, ArrayBuffer, TypedArray,
               Array, Object, ErrorBox>
      v_;
};

inline std::size_t Object::size() const noexcept { return entries_.size(); }
inline bool Object::empty() const noexcept { return entries_.empty(); }
inline Object::Entries::const_iterator Object::begin() const noexcept { return entries_.begin(); }
inline Object::Entries::const_iterator Object::end() const noexcept { return entries_.end(); }
inline Object::Entries::iterator Object::begin() noexcept { return entries_.begin(); }
inline Object::Entries::iterator Object::end() noexcept { return entries_.end(); }
inline void Object::reserve(std::size_t n) { entries_.reserve(n); }

static_assert(sizeof(Value) <= 48, "weave::Value: must stay 48 bytes so small messages stay inline");
static_assert(std::is_nothrow_move_constructible_v<Value>,
              "weave::Value: must be nothrow move-constructible for the message queues");

template <class F>
decltype(auto) Value::visit(F&& f) const {
  return std::visit(
      [&](const auto& x) -> decltype(auto) {
        if constexpr (std::is_same_v<std::decay_t<decltype(x)>, ErrorBox>) {
          return f(*x.get());
        } else {
          return f(x);
        }
      },
      v_);
}

// Node's structuredClone(value, { transfer }): a deep copy of `value` that
// shares nothing with it. Buffers listed in `transfer` are moved (not copied)
// into the result and detached in `value`. Errors, with nothing changed:
// kDataCloneError for a buffer listed twice, a detached buffer listed or
// reachable, or nesting deeper than kMaxCloneDepth.
// Owner thread only. Never blocks. Allocates.
inline constexpr std::size_t kMaxCloneDepth = 1000;
Result<Value> structured_clone(const Value& value, std::span<ArrayBuffer> transfer = {});

}  // namespace weave
