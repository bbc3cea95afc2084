// weave::Value: the structured-clone value that messages carry — Node's
// structured clone types as a C++ value type.
//
//   undefined, null, bool, 64-bit integer, double, UTF-8 string,
//   ArrayBuffer (bytes), TypedArray (typed view over a buffer),
//   SharedArrayBuffer (memory shared between threads, atomics/),
//   Array (ordered values), Object (string keys in insertion order),
//   ErrorValue (name, message, stack text).
//
// Arrays, objects, strings and errors have value semantics: copying a Value
// copies them. ArrayBuffers (and the views over them) have reference
// semantics, as in JS: copies of a Value share the same bytes. Posting a value
// clones it (see channel/message_port.h), so nothing the sender does after the
// post reaches the receiver — except through a SharedArrayBuffer, which
// structured clone shares rather than copies (as Node does): the receiver's
// handle is the same memory. A SharedArrayBuffer cannot be transferred (it is
// never detached) and cannot be serialized (channel/wire.h).
//
// Size: a Value is 48 bytes; scalars and strings of up to 15 bytes live inline
// (no heap allocation), so small messages cost none.
//
// Strings hold UTF-8 by contract. Posting within a process does not re-check
// it; the wire format (channel/wire.h) does, both ways.
//
// Depth: cloning and the wire format refuse values nested deeper than
// kMaxCloneDepth. No walk over a Value recurses on the native stack — clone,
// serialize, deserialize, copy, ==, to_string and the destructor all keep an
// explicit stack (a few hundred bytes inline, then heap) — so a value of any
// accepted depth is safe on the smallest stack a Worker may have (64 KiB),
// and a Value built by hand deeper than kMaxCloneDepth can still be copied,
// compared, rendered and destroyed (it is refused only by clone and the
// wire format). Destroying a value never allocates.
//
// Functions are not values: a lambda, a function or a function pointer does
// not convert to Value (a compile error naming weave::Value), nor does any
// pointer other than a C string (char* and const char*).
//
// Threading: a Value belongs to one thread at a time, like any C++ value.
#pragma once

#include <concepts>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "atomics/shared_array_buffer.h"
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
  friend class Value;  // its destructor takes deep values apart in place
  Entries entries_;
};

namespace internal {
// A callable that is not a Value: a pointer to member, or a class with a
// (non-template) call operator — a captureless lambda, which would otherwise
// reach Value(bool) through its conversion to a function pointer. Value's
// constructor from one is deleted. (Functions and function pointers are
// refused by the deleted Value(T*).)
template <class F, class D = std::remove_cvref_t<F>>
concept NotAValueCallable = std::is_member_pointer_v<D> ||
    (std::is_class_v<D>&& requires { &D::operator(); });
}  // namespace internal

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
    // Last, so the earlier enumerators keep their values.
    kSharedArrayBuffer,
  };

  Value() noexcept {}  // undefined
  Value(Undefined) noexcept {}
  Value(Null) noexcept : type_(Type::kNull) {}
  Value(std::nullptr_t) noexcept : type_(Type::kNull) {}
  Value(bool b) noexcept : type_(Type::kBool), b_(b) {}
  // Any integer. Unsigned values above INT64_MAX keep their bit pattern (and
  // Codec<std::uint64_t> reads them back exactly).
  template <std::integral I>
  requires(!std::same_as<I, bool> && !std::same_as<I, char>) Value(I i)
  noexcept : type_(Type::kInt), i_(static_cast<std::int64_t>(i)) {}
  Value(double d) noexcept : type_(Type::kDouble), d_(d) {}
  Value(float f) noexcept : type_(Type::kDouble), d_(static_cast<double>(f)) {}
  Value(std::string s) noexcept : type_(Type::kString) { ::new (&s_) std::string(std::move(s)); }
  Value(std::string_view s) : Value(std::string(s)) {}
  // A null `s` makes a null Value.
  Value(const char* s) {
    if (s) {
      ::new (&s_) std::string(s);
      type_ = Type::kString;
    } else {
      type_ = Type::kNull;
    }
  }
  // A non-const C string is a string too (it would otherwise hit the deleted
  // pointer overload below).
  Value(char* s) : Value(static_cast<const char*>(s)) {}
  // Any other pointer would silently become a bool: refuse it.
  template <class T>
  Value(T*) = delete;
  // weave::Value: a function is not a value (JS cannot clone one either); a
  // lambda would otherwise become `true` through its function pointer.
  template <class Function>
  requires internal::NotAValueCallable<Function> Value(Function&&)
  = delete;
  Value(ArrayBuffer b) noexcept : type_(Type::kArrayBuffer) {
    ::new (&ab_) ArrayBuffer(std::move(b));
  }
  Value(TypedArray t) noexcept : type_(Type::kTypedArray) { ::new (&ta_) TypedArray(std::move(t)); }
  // Shares `b`'s memory (copying the handle; no bytes are copied).
  Value(const SharedArrayBuffer& b) noexcept : type_(Type::kSharedArrayBuffer) {
    ::new (&sab_) SharedArrayBuffer(b);
  }
  Value(Array a) noexcept : type_(Type::kArray) { ::new (&arr_) Array(std::move(a)); }
  Value(Object o) noexcept : type_(Type::kObject) { ::new (&obj_) Object(std::move(o)); }
  Value(ErrorValue e) : type_(Type::kError), err_(new ErrorValue(std::move(e))) {}

  Value(const Value& o) { copy_from(o); }
  // Scalars move as plain copies; the rest move their one alternative.
  Value(Value&& o) noexcept { move_from(std::move(o)); }
  Value& operator=(const Value& o) {
    if (this != &o) {
      Value copy(o);
      destroy();
      move_from(std::move(copy));
    }
    return *this;
  }
  Value& operator=(Value&& o) noexcept {
    if (this != &o) {
      destroy();
      move_from(std::move(o));
    }
    return *this;
  }
  ~Value() { destroy(); }

  [[nodiscard]] Type type() const noexcept { return type_; }
  [[nodiscard]] bool is_undefined() const noexcept { return type() == Type::kUndefined; }
  [[nodiscard]] bool is_null() const noexcept { return type() == Type::kNull; }
  [[nodiscard]] bool is_bool() const noexcept { return type() == Type::kBool; }
  [[nodiscard]] bool is_int() const noexcept { return type() == Type::kInt; }
  [[nodiscard]] bool is_double() const noexcept { return type() == Type::kDouble; }
  [[nodiscard]] bool is_number() const noexcept { return is_int() || is_double(); }
  [[nodiscard]] bool is_string() const noexcept { return type() == Type::kString; }
  [[nodiscard]] bool is_array_buffer() const noexcept { return type() == Type::kArrayBuffer; }
  [[nodiscard]] bool is_typed_array() const noexcept { return type() == Type::kTypedArray; }
  [[nodiscard]] bool is_shared_array_buffer() const noexcept {
    return type() == Type::kSharedArrayBuffer;
  }
  [[nodiscard]] bool is_array() const noexcept { return type() == Type::kArray; }
  [[nodiscard]] bool is_object() const noexcept { return type() == Type::kObject; }
  [[nodiscard]] bool is_error() const noexcept { return type() == Type::kError; }

  // Pointer to the held alternative, or nullptr if it holds another type.
  // Never allocates.
  [[nodiscard]] const bool* if_bool() const noexcept { return is_bool() ? &b_ : nullptr; }
  [[nodiscard]] const std::int64_t* if_int() const noexcept { return is_int() ? &i_ : nullptr; }
  [[nodiscard]] const double* if_double() const noexcept { return is_double() ? &d_ : nullptr; }
  [[nodiscard]] const std::string* if_string() const noexcept {
    return is_string() ? &s_ : nullptr;
  }
  [[nodiscard]] std::string* if_string() noexcept { return is_string() ? &s_ : nullptr; }
  [[nodiscard]] const ArrayBuffer* if_array_buffer() const noexcept {
    return is_array_buffer() ? &ab_ : nullptr;
  }
  [[nodiscard]] ArrayBuffer* if_array_buffer() noexcept {
    return is_array_buffer() ? &ab_ : nullptr;
  }
  [[nodiscard]] const TypedArray* if_typed_array() const noexcept {
    return is_typed_array() ? &ta_ : nullptr;
  }
  [[nodiscard]] TypedArray* if_typed_array() noexcept { return is_typed_array() ? &ta_ : nullptr; }
  [[nodiscard]] const SharedArrayBuffer* if_shared_array_buffer() const noexcept {
    return is_shared_array_buffer() ? &sab_ : nullptr;
  }
  [[nodiscard]] SharedArrayBuffer* if_shared_array_buffer() noexcept {
    return is_shared_array_buffer() ? &sab_ : nullptr;
  }
  [[nodiscard]] const Array* if_array() const noexcept { return is_array() ? &arr_ : nullptr; }
  [[nodiscard]] Array* if_array() noexcept { return is_array() ? &arr_ : nullptr; }
  [[nodiscard]] const Object* if_object() const noexcept { return is_object() ? &obj_ : nullptr; }
  [[nodiscard]] Object* if_object() noexcept { return is_object() ? &obj_ : nullptr; }
  [[nodiscard]] const ErrorValue* if_error() const noexcept { return is_error() ? err_ : nullptr; }

  // A number as double (ints converted), if it is one.
  [[nodiscard]] std::optional<double> as_number() const noexcept;

  // obj["key"] / arr[i] shorthands: nullptr when absent or not that type.
  [[nodiscard]] const Value* find(std::string_view key) const noexcept;
  [[nodiscard]] const Value* at(std::size_t index) const noexcept;

  // Structural equality: buffers compare by bytes, a SharedArrayBuffer by
  // identity (same memory: its bytes may change under any thread), doubles
  // by value (NaN equals NaN, so a cloned value equals its source), objects
  // entry by entry in order (so key order matters, as it does when the value
  // is iterated).
  friend bool operator==(const Value& a, const Value& b);

  // A JSON-like rendering for logs, tests and demos. Allocates.
  [[nodiscard]] std::string to_string() const;

  // Visits the held alternative (ErrorValue as const ErrorValue&).
  template <class F>
  decltype(auto) visit(F&& f) const;

 private:
  static bool is_scalar(Type t) noexcept { return t <= Type::kDouble; }
  // Every alternative but the scalars owns something: copy/move/destroy it.
  // Copies and destroys recurse natively for the first few levels (the
  // common shallow message, at full speed) and switch to an explicit stack
  // below internal::kNativeWalkDepth levels (value.cc).
  void copy_from(const Value& o) { copy_at(o, 0); }
  void copy_at(const Value& o, std::size_t depth);
  // A scalar (the common small message) moves inline as a tag and one word;
  // everything else goes through move_owned().
  void move_from(Value&& o) noexcept {
    type_ = o.type_;
    if (is_scalar(type_)) [[likely]] {
      // The payload's bytes, whichever scalar (or none) is active.
      std::memcpy(static_cast<void*>(&i_), static_cast<const void*>(&o.i_), sizeof i_);
    } else {
      move_owned(std::move(o));
    }
  }
  void move_owned(Value&& o) noexcept;
  void destroy() noexcept {
    if (is_scalar(type_)) return;
    destroy_owned();
  }
  void destroy_owned(std::size_t depth = 0) noexcept;
  // Takes a nest of arrays and objects apart without recursion and without
  // allocating (see value.cc).
  void destroy_deep() noexcept;

  // A tagged union rather than std::variant: a scalar (the common small
  // message) then moves as a plain copy, without the out-of-line visitor
  // std::variant needs for a type with non-trivial alternatives.
  Type type_ = Type::kUndefined;
  union {
    bool b_;
    std::int64_t i_ = 0;  // so a scalar without a payload (undefined, null) moves defined bytes
    double d_;
    std::string s_;
    ArrayBuffer ab_;
    TypedArray ta_;
    SharedArrayBuffer sab_;
    Array arr_;
    Object obj_;
    ErrorValue* err_;  // owned; errors are rare and large, so boxed
  };
};

inline std::size_t Object::size() const noexcept { return entries_.size(); }
inline bool Object::empty() const noexcept { return entries_.empty(); }
inline Object::Entries::const_iterator Object::begin() const noexcept { return entries_.begin(); }
inline Object::Entries::const_iterator Object::end() const noexcept { return entries_.end(); }
inline Object::Entries::iterator Object::begin() noexcept { return entries_.begin(); }
inline Object::Entries::iterator Object::end() noexcept { return entries_.end(); }
inline void Object::reserve(std::size_t n) { entries_.reserve(n); }

static_assert(sizeof(Value) <= 48,
              "weave::Value: must stay 48 bytes so small messages stay inline");
static_assert(std::is_nothrow_move_constructible_v<Value>,
              "weave::Value: must be nothrow move-constructible for the message queues");

template <class F>
decltype(auto) Value::visit(F&& f) const {
  switch (type_) {
    case Type::kUndefined:
      return f(kUndefined);
    case Type::kNull:
      return f(kNull);
    case Type::kBool:
      return f(b_);
    case Type::kInt:
      return f(i_);
    case Type::kDouble:
      return f(d_);
    case Type::kString:
      return f(s_);
    case Type::kArrayBuffer:
      return f(ab_);
    case Type::kTypedArray:
      return f(ta_);
    case Type::kSharedArrayBuffer:
      return f(sab_);
    case Type::kArray:
      return f(arr_);
    case Type::kObject:
      return f(obj_);
    case Type::kError:
      break;
  }
  return f(*err_);
}

// Node's structuredClone(value, { transfer }): a deep copy of `value` that
// shares nothing with it but its SharedArrayBuffers, which the result shares
// (same memory, as in Node). Buffers listed in `transfer` are moved (not
// copied) into the result and detached in `value`. A SharedArrayBuffer cannot
// be listed here (the span holds ArrayBuffers only); Transfer, which can list
// one, refuses it (channel/message_port.h). Errors, with nothing changed:
// kDataCloneError for a buffer listed twice, a detached buffer listed or
// reachable, or nesting deeper than kMaxCloneDepth.
// Owner thread only. Never blocks. Allocates.
inline constexpr std::size_t kMaxCloneDepth = 1000;
Result<Value> structured_clone(const Value& value, std::span<ArrayBuffer> transfer = {});

}  // namespace weave
