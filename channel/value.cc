#include "channel/value.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <unordered_map>

#include "channel/internal/buffer_access.h"
#include "channel/internal/clone.h"

namespace weave {

// --- walking a Value without recursion -------------------------------------------------
//
// Every walk over a Value below keeps an explicit stack (internal::SmallStack:
// a few frames inline, then heap), so no depth of nesting costs native stack:
// a value at kMaxCloneDepth is safe on a 64 KiB worker stack, and a deeper
// hand-built one can still be copied, compared, rendered and destroyed.

namespace {

bool is_container(const Value& v) noexcept { return v.is_array() || v.is_object(); }

std::size_t child_count(const Value& v) noexcept {
  if (const Array* a = v.if_array()) return a->size();
  if (const Object* o = v.if_object()) return o->size();
  return 0;
}

const Value& child(const Value& v, std::size_t i) noexcept {
  if (const Array* a = v.if_array()) return (*a)[i];
  return (v.if_object()->begin() + static_cast<std::ptrdiff_t>(i))->second;
}

const std::string& key(const Value& v, std::size_t i) noexcept {
  return (v.if_object()->begin() + static_cast<std::ptrdiff_t>(i))->first;
}

// True when some child of `v` is itself an array or object: only then does a
// walk need a stack (a flat container is copied, compared or destroyed by
// its own loop, one level deep).
bool has_container_child(const Value& v) noexcept {
  if (const Array* a = v.if_array()) {
    for (const Value& e : *a) {
      if (is_container(e)) return true;
    }
  } else if (const Object* o = v.if_object()) {
    for (const auto& [k, e] : *o) {
      if (is_container(e)) return true;
    }
  }
  return false;
}

// An empty array or object with room for `v`'s children.
Value shell_of(const Value& v) {
  if (const Array* a = v.if_array()) {
    Array out;
    out.reserve(a->size());
    return Value(std::move(out));
  }
  Object out;
  out.reserve(v.if_object()->size());
  return Value(std::move(out));
}

// A container being rebuilt: its source, the next child to take, the copy.
struct BuildFrame {
  const Value* src;
  std::size_t next;
  Value out;
};

// Appends `v` as the copy of src's child `next`, and moves on to the next.
void attach(BuildFrame& f, Value v) {
  if (Array* a = f.out.if_array()) {
    a->push_back(std::move(v));
  } else {
    f.out.if_object()->append_unchecked(key(*f.src, f.next), std::move(v));
  }
  ++f.next;
}

// A deep copy of an array or object with nested containers. A flat child
// container is copied whole by Value's copy constructor (one level).
Value deep_copy(const Value& root) {
  internal::SmallStack<BuildFrame, 8> stack;
  stack.push(&root, std::size_t{0}, shell_of(root));
  for (;;) {
    BuildFrame& f = stack.back();
    if (f.next == child_count(*f.src)) {
      Value done = std::move(f.out);
      stack.pop();
      if (stack.empty()) return done;
      attach(stack.back(), std::move(done));
      continue;
    }
    const Value& c = child(*f.src, f.next);
    if (is_container(c) && has_container_child(c)) {
      stack.push(&c, std::size_t{0}, shell_of(c));  // invalidates f
      continue;
    }
    attach(f, Value(c));
  }
}

// Equality of two values of the same type that are not containers.
bool leaf_equal(const Value& a, const Value& b) noexcept {
  switch (a.type()) {
    case Value::Type::kUndefined:
    case Value::Type::kNull:
      return true;
    case Value::Type::kBool:
      return *a.if_bool() == *b.if_bool();
    case Value::Type::kInt:
      return *a.if_int() == *b.if_int();
    case Value::Type::kDouble: {
      const double x = *a.if_double(), y = *b.if_double();
      return x == y || (std::isnan(x) && std::isnan(y));
    }
    case Value::Type::kString:
      return *a.if_string() == *b.if_string();
    case Value::Type::kArrayBuffer:
      return *a.if_array_buffer() == *b.if_array_buffer();
    case Value::Type::kTypedArray:
      return *a.if_typed_array() == *b.if_typed_array();
    case Value::Type::kSharedArrayBuffer:
      return *a.if_shared_array_buffer() == *b.if_shared_array_buffer();  // same memory
    case Value::Type::kError:
      return *a.if_error() == *b.if_error();
    case Value::Type::kArray:
    case Value::Type::kObject:
      break;  // not leaves
  }
  return false;
}

}  // namespace

namespace internal {
Status too_deep_error(const char* prefix) {
  return Status(ErrorCode::kDataCloneError, std::string(prefix) + "value nests deeper than " +
                                                std::to_string(kMaxCloneDepth) + " levels");
}
}  // namespace internal

// --- Object ------------------------------------------------------------------------

Object::Object(std::initializer_list<std::pair<std::string, Value>> entries) {
  entries_.reserve(entries.size());
  for (const auto& [k, v] : entries) set(k, v);
}

Object& Object::set(std::string key, Value value) {
  if (Value* v = get(key)) {
    *v = std::move(value);
  } else {
    entries_.emplace_back(std::move(key), std::move(value));
  }
  return *this;
}

const Value* Object::get(std::string_view key) const noexcept {
  for (const auto& e : entries_) {
    if (e.first == key) return &e.second;
  }
  return nullptr;
}

Value* Object::get(std::string_view key) noexcept {
  for (auto& e : entries_) {
    if (e.first == key) return &e.second;
  }
  return nullptr;
}

bool Object::erase(std::string_view key) {
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    if (it->first == key) {
      entries_.erase(it);
      return true;
    }
  }
  return false;
}

void Object::append_unchecked(std::string key, Value value) {
  entries_.emplace_back(std::move(key), std::move(value));
}

bool operator==(const Object& a, const Object& b) {
  if (a.entries_.size() != b.entries_.size()) return false;
  for (std::size_t i = 0; i < a.entries_.size(); ++i) {
    if (a.entries_[i].first != b.entries_[i].first) return false;
    if (!(a.entries_[i].second == b.entries_[i].second)) return false;  // iterative
  }
  return true;
}

// --- Value -------------------------------------------------------------------------

std::optional<double> Value::as_number() const noexcept {
  if (auto* i = if_int()) return static_cast<double>(*i);
  if (auto* d = if_double()) return *d;
  return std::nullopt;
}

const Value* Value::find(std::string_view key) const noexcept {
  const Object* o = if_object();
  return o ? o->get(key) : nullptr;
}

const Value* Value::at(std::size_t index) const noexcept {
  const Array* a = if_array();
  return a && index < a->size() ? &(*a)[index] : nullptr;
}

bool operator==(const Value& a, const Value& b) {
  if (a.type() != b.type()) return false;
  if (!is_container(a)) return leaf_equal(a, b);
  if (child_count(a) != child_count(b)) return false;
  struct Frame {
    const Value* a;
    const Value* b;
    std::size_t next;
  };
  internal::SmallStack<Frame, 16> stack;
  stack.push(&a, &b, std::size_t{0});
  while (!stack.empty()) {
    Frame& f = stack.back();
    if (f.next == child_count(*f.a)) {
      stack.pop();
      continue;
    }
    const std::size_t i = f.next++;
    if (f.a->is_object() && key(*f.a, i) != key(*f.b, i)) return false;
    const Value& x = child(*f.a, i);
    const Value& y = child(*f.b, i);
    if (x.type() != y.type()) return false;
    if (!is_container(x)) {
      if (!leaf_equal(x, y)) return false;
      continue;
    }
    if (child_count(x) != child_count(y)) return false;
    if (child_count(x) > 0) stack.push(&x, &y, std::size_t{0});  // invalidates f
  }
  return true;
}

void Value::move_owned(Value&& o) noexcept {
  switch (type_) {
    case Type::kUndefined:
    case Type::kNull:
    case Type::kBool:
    case Type::kInt:
    case Type::kDouble:
      break;  // moved inline by move_from
    case Type::kString:
      ::new (&s_) std::string(std::move(o.s_));
      break;
    case Type::kArrayBuffer:
      ::new (&ab_) ArrayBuffer(std::move(o.ab_));
      break;
    case Type::kTypedArray:
      ::new (&ta_) TypedArray(std::move(o.ta_));
      break;
    // A SharedArrayBuffer has no move: this copies the handle (an atomic
    // increment), and the source keeps a valid handle until destroyed.
    case Type::kSharedArrayBuffer:
      ::new (&sab_) SharedArrayBuffer(o.sab_);
      break;
    case Type::kArray:
      ::new (&arr_) Array(std::move(o.arr_));
      break;
    case Type::kObject:
      ::new (&obj_) Object(std::move(o.obj_));
      break;
    case Type::kError:
      err_ = o.err_;
      o.type_ = Type::kUndefined;  // the error moved out whole
      break;
  }
}

void Value::copy_at(const Value& o, std::size_t depth) {
  switch (o.type_) {
    case Type::kUndefined:
    case Type::kNull:
      break;
    case Type::kBool:
      b_ = o.b_;
      break;
    case Type::kInt:
      i_ = o.i_;
      break;
    case Type::kDouble:
      d_ = o.d_;
      break;
    case Type::kString:
      ::new (&s_) std::string(o.s_);
      break;
    case Type::kArrayBuffer:
      ::new (&ab_) ArrayBuffer(o.ab_);
      break;
    case Type::kTypedArray:
      ::new (&ta_) TypedArray(o.ta_);
      break;
    case Type::kSharedArrayBuffer:
      ::new (&sab_) SharedArrayBuffer(o.sab_);
      break;
    case Type::kArray:
    case Type::kObject:
      if (depth >= internal::kNativeWalkDepth && has_container_child(o)) {
        // Deep: the rest is built with an explicit stack, then moved in.
        Value copy = deep_copy(o);
        move_from(std::move(copy));
        return;
      }
      // Sized up front (undefined elements), then each copied in place: no
      // capacity checks, no moves. A throwing copy leaves this undefined.
      if (o.type_ == Type::kArray) {
        const std::size_t n = o.arr_.size();
        ::new (&arr_) Array(n);
        try {
          for (std::size_t i = 0; i < n; ++i) arr_[i].copy_at(o.arr_[i], depth + 1);
        } catch (...) {
          arr_.~Array();
          throw;
        }
      } else {
        const std::size_t n = o.obj_.entries_.size();
        ::new (&obj_) Object();
        try {
          obj_.entries_.resize(n);
          for (std::size_t i = 0; i < n; ++i) {
            obj_.entries_[i].first = o.obj_.entries_[i].first;
            obj_.entries_[i].second.copy_at(o.obj_.entries_[i].second, depth + 1);
          }
        } catch (...) {
          obj_.~Object();
          throw;
        }
      }
      break;
    case Type::kError:
      err_ = new ErrorValue(*o.err_);
      break;
  }
  type_ = o.type_;  // last: a throwing copy leaves this undefined
}

void Value::destroy_owned(std::size_t depth) noexcept {
  switch (type_) {
    case Type::kString:
      s_.~basic_string();
      break;
    case Type::kArrayBuffer:
      ab_.~ArrayBuffer();
      break;
    case Type::kTypedArray:
      ta_.~TypedArray();
      break;
    case Type::kSharedArrayBuffer:
      sab_.~SharedArrayBuffer();
      break;
    case Type::kArray:
      if (depth < internal::kNativeWalkDepth) {
        for (Value& e : arr_) {
          if (!is_scalar(e.type_)) e.destroy_owned(depth + 1);
        }
      } else if (has_container_child(*this)) {
        destroy_deep();
      }
      arr_.~Array();  // of leaves only by now
      break;
    case Type::kObject:
      if (depth < internal::kNativeWalkDepth) {
        for (auto& [k, e] : obj_.entries_) {
          if (!is_scalar(e.type_)) e.destroy_owned(depth + 1);
        }
      } else if (has_container_child(*this)) {
        destroy_deep();
      }
      obj_.~Object();
      break;
    case Type::kError:
      delete err_;
      break;
    default:
      break;
  }
  type_ = Type::kUndefined;
}

// The children of *this are taken apart in place, without recursion and
// without allocating: the containers still to finish form a chain, each one
// holding the rest of the chain in the slot its last taken child left free
// (so a push_back never grows a vector). A child that is a leaf, or a
// container of leaves only, is destroyed at once (one level deep). What is
// left in *this is an empty array or object, destroyed by the caller.
void Value::destroy_deep() noexcept {
  // Moves the last child out of the array or object `from` into `into`;
  // false when `from` has none. Never allocates.
  auto pop_last = [](Value& from, Value& into) noexcept {
    if (Array* a = from.if_array()) {
      if (a->empty()) return false;
      into = std::move(a->back());
      a->pop_back();
      return true;
    }
    if (Object* o = from.if_object()) {
      if (o->entries_.empty()) return false;
      into = std::move(o->entries_.back().second);
      o->entries_.pop_back();
      return true;
    }
    return false;
  };
  Value cur = std::move(*this);
  Value chain;  // undefined: nothing below cur
  Value next;
  for (;;) {
    if (pop_last(cur, next)) {
      if (is_container(next) && has_container_child(next)) {
        // Descend: cur goes on the chain, in the slot `next` freed.
        if (Array* a = cur.if_array()) {
          a->push_back(std::move(chain));
        } else {
          cur.if_object()->entries_.emplace_back(std::string(), std::move(chain));
        }
        chain = std::move(cur);
        cur = std::move(next);
      }
      next = Value();  // a leaf or a flat container: one level deep
      continue;
    }
    // cur is empty: resume the container above it, whose last slot holds
    // the rest of the chain.
    if (chain.is_undefined()) return;
    cur = std::move(chain);
    const bool linked = pop_last(cur, chain);
    (void)linked;  // always: the link was pushed there on the way down
  }
}

namespace {

void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (const char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

// A value that is not an array or object.
void render_leaf(std::string& out, const Value& v) {
  v.visit([&](const auto& x) {
    using T = std::decay_t<decltype(x)>;
    if constexpr (std::is_same_v<T, Undefined>) {
      out += "undefined";
    } else if constexpr (std::is_same_v<T, Null>) {
      out += "null";
    } else if constexpr (std::is_same_v<T, bool>) {
      out += x ? "true" : "false";
    } else if constexpr (std::is_same_v<T, std::int64_t>) {
      out += std::to_string(x);
    } else if constexpr (std::is_same_v<T, double>) {
      if (std::isnan(x)) {
        out += "NaN";
      } else if (std::isinf(x)) {
        out += x > 0 ? "Infinity" : "-Infinity";
      } else {
        char buf[32];
        auto [end, ec] = std::to_chars(buf, buf + sizeof buf, x);  // shortest round-trip form
        out.append(buf, ec == std::errc() ? end : buf);
      }
    } else if constexpr (std::is_same_v<T, std::string>) {
      append_json_string(out, x);
    } else if constexpr (std::is_same_v<T, ArrayBuffer>) {
      out += x.detached() ? "ArrayBuffer(detached)"
                          : "ArrayBuffer(" + std::to_string(x.byte_length()) + ")";
    } else if constexpr (std::is_same_v<T, TypedArray>) {
      out += std::string(view_kind_name(x.kind())) + "(" + std::to_string(x.length()) + ")";
    } else if constexpr (std::is_same_v<T, SharedArrayBuffer>) {
      out += "SharedArrayBuffer(" + std::to_string(x.byte_length()) + ")";
    } else if constexpr (std::is_same_v<T, Array> || std::is_same_v<T, Object>) {
      out += "?";  // not reached: Value::to_string walks containers itself
    } else {
      static_assert(std::is_same_v<T, ErrorValue>);
      out += x.name + ": " + x.message;
    }
  });
}

}  // namespace

std::string Value::to_string() const {
  std::string out;
  if (!is_container(*this)) {
    render_leaf(out, *this);
    return out;
  }
  struct Frame {
    const Value* v;
    std::size_t next;
  };
  internal::SmallStack<Frame, 16> stack;
  out += is_array() ? '[' : '{';
  stack.push(this, std::size_t{0});
  while (!stack.empty()) {
    Frame& f = stack.back();
    const Value& c = *f.v;
    if (f.next == child_count(c)) {
      out += c.is_array() ? ']' : '}';
      stack.pop();
      continue;
    }
    const std::size_t i = f.next++;
    if (i) out += ',';
    if (c.is_object()) {
      append_json_string(out, key(c, i));
      out += ':';
    }
    const Value& x = child(c, i);
    if (is_container(x)) {
      out += x.is_array() ? '[' : '{';
      stack.push(&x, std::size_t{0});  // invalidates f
    } else {
      render_leaf(out, x);
    }
  }
  return out;
}

// --- structured clone --------------------------------------------------------------

namespace internal {
namespace {

Status clone_error(std::string message) {
  return Status(ErrorCode::kDataCloneError, std::move(message));
}

// One buffer of a transfer list, on its own: attached and not marked
// untransferable. (A duplicate needs the whole list: see callers.)
Status check_transferable(const ArrayBuffer& b) {
  if (b.detached()) return clone_error("an ArrayBuffer in the transfer list is already detached");
  if (is_marked_as_untransferable(b)) {
    return clone_error(
        "an ArrayBuffer in the transfer list is marked as untransferable "
        "(mark_as_untransferable): post it without listing it, and it is copied");
  }
  return Status();
}

Status duplicate_error() {
  return clone_error("an ArrayBuffer is listed twice in the transfer list");
}

class Cloner {
 public:
  explicit Cloner(TransferPlan& plan) : plan_(plan) {}

  Status add_transfer(const ArrayBuffer& b) {
    const auto& s = internal::BufferAccess::storage(b);
    if (Status bad = check_transferable(b); !bad) return bad;
    if (map_.find(s.get())) return duplicate_error();
    auto dst = std::make_shared<BufferStorage>();
    map_.add(s.get(), dst);
    plan_.moves.emplace_back(s, dst);
    return Status();
  }

  // Depth: the root is at depth 0 and a container's children one deeper; a
  // child deeper than kMaxCloneDepth is refused before it is looked at.
  Result<Value> clone(const Value& v, std::size_t depth) {
    if (depth > kMaxCloneDepth) return too_deep_error("");
    if (!is_container(v)) return leaf(v);
    if (depth >= kNativeWalkDepth) return clone_deep(v, depth);
    if (const Array* a = v.if_array()) {
      Array out;
      out.reserve(a->size());
      for (const Value& e : *a) {
        auto c = clone(e, depth + 1);
        if (!c) return c;
        out.push_back(std::move(*c));
      }
      return Value(std::move(out));
    }
    const Object& o = *v.if_object();
    Object out;
    out.reserve(o.size());
    for (const auto& [k, e] : o) {
      auto c = clone(e, depth + 1);
      if (!c) return c;
      out.append_unchecked(k, std::move(*c));
    }
    return Value(std::move(out));
  }

 private:
  // The container `root`, at depth `base`, and everything below it, with an
  // explicit stack.
  Result<Value> clone_deep(const Value& root, std::size_t base) {
    internal::SmallStack<BuildFrame, 8> stack;
    stack.push(&root, std::size_t{0}, shell_of(root));
    for (;;) {
      BuildFrame& f = stack.back();
      if (f.next == child_count(*f.src)) {
        Value done = std::move(f.out);
        stack.pop();
        if (stack.empty()) return done;
        attach(stack.back(), std::move(done));
        continue;
      }
      const Value& c = child(*f.src, f.next);
      if (base + stack.size() > kMaxCloneDepth) return too_deep_error("");  // c's depth
      if (is_container(c)) {
        stack.push(&c, std::size_t{0}, shell_of(c));  // invalidates f
        continue;
      }
      auto v = leaf(c);
      if (!v) return v.status();
      attach(f, std::move(*v));
    }
  }

 private:
  // Aliasing is kept: a buffer reached twice is cloned once.
  Result<ArrayBuffer> buffer(const ArrayBuffer& b) {
    const auto& s = internal::BufferAccess::storage(b);
    if (const auto* known = map_.find(s.get())) return internal::BufferAccess::make(*known);
    if (s->detached) return clone_error("an ArrayBuffer is detached and could not be cloned");
    ArrayBuffer copy = ArrayBuffer::copy_of(b.bytes());
    map_.add(s.get(), internal::BufferAccess::storage(copy));
    return copy;
  }

  // A value that is not an array or object.
  Result<Value> leaf(const Value& v) {
    switch (v.type()) {
      case Value::Type::kArrayBuffer: {
        auto b = buffer(*v.if_array_buffer());
        if (!b) return b.status();
        return Value(std::move(*b));
      }
      case Value::Type::kTypedArray: {
        const TypedArray& t = *v.if_typed_array();
        auto b = buffer(t.buffer());
        if (!b) return b.status();
        // Same offset and length over the cloned (or transferred) buffer. The
        // new storage of a transferred buffer is filled only at commit, so the
        // view is rebuilt from its parts rather than re-validated here.
        return Value(make_view(t, std::move(*b)));
      }
      case Value::Type::kSharedArrayBuffer:
        // Shared, not copied (Node's structured clone of a SharedArrayBuffer):
        // the clone holds another handle to the same memory.
        return Value(*v.if_shared_array_buffer());
      default:
        return v;  // scalars, strings and errors copy as values
    }
  }

  static TypedArray make_view(const TypedArray& t, ArrayBuffer b);

  // source storage -> clone's storage. Messages carry few buffers: a flat
  // vector searched linearly, switching to a hash map past kFlatMax.
  class BufferMap {
   public:
    static constexpr std::size_t kFlatMax = 16;
    const std::shared_ptr<BufferStorage>* find(const BufferStorage* key) const {
      if (!hashed_.empty()) {
        auto it = hashed_.find(key);
        return it == hashed_.end() ? nullptr : &it->second;
      }
      for (const auto& [k, v] : flat_) {
        if (k == key) return &v;
      }
      return nullptr;
    }
    void add(const BufferStorage* key, std::shared_ptr<BufferStorage> value) {
      if (hashed_.empty() && flat_.size() < kFlatMax) {
        flat_.emplace_back(key, std::move(value));
        return;
      }
      if (hashed_.empty()) {
        for (auto& [k, v] : flat_) hashed_.emplace(k, std::move(v));
        flat_.clear();
      }
      hashed_.emplace(key, std::move(value));
    }

   private:
    std::vector<std::pair<const BufferStorage*, std::shared_ptr<BufferStorage>>> flat_;
    std::unordered_map<const BufferStorage*, std::shared_ptr<BufferStorage>> hashed_;
  };

  TransferPlan& plan_;
  BufferMap map_;
};

}  // namespace
}  // namespace internal

// TypedArray's constructor is private; the cloner is the one place (besides
// TypedArray::create) that builds a view from parts it already validated.
struct TypedArrayAccess {
  static TypedArray make(const TypedArray& t, ArrayBuffer b) {
    return TypedArray(t.kind(), std::move(b), t.byte_offset_, t.length_);
  }
};

namespace internal {
namespace {
TypedArray Cloner::make_view(const TypedArray& t, ArrayBuffer b) {
  return TypedArrayAccess::make(t, std::move(b));
}
}  // namespace

Status check_transfer_list(std::span<const ArrayBuffer> transfer) {
  for (std::size_t i = 0; i < transfer.size(); ++i) {
    if (Status s = check_transferable(transfer[i]); !s) return s;
    for (std::size_t j = 0; j < i; ++j) {
      if (transfer[j].same_buffer(transfer[i])) return duplicate_error();
    }
  }
  return Status();
}

Result<Value> clone_value(const Value& value, std::span<ArrayBuffer> transfer, TransferPlan& plan) {
  // The whole list first (Node's order): a bad transfer list is the error
  // even when the value could not be cloned either.
  plan.moves.reserve(transfer.size());
  Cloner cloner(plan);
  for (const ArrayBuffer& b : transfer) {
    if (Status s = cloner.add_transfer(b); !s) {
      plan.moves.clear();
      return s;
    }
  }
  auto out = cloner.clone(value, 0);
  if (!out) plan.moves.clear();
  return out;
}

void commit_transfers(TransferPlan& plan) noexcept {
  for (auto& [src, dst] : plan.moves) {
    dst->data = std::move(src->data);
    dst->length = src->length;
    src->length = 0;
    src->detached = true;
  }
}

void undo_transfers(TransferPlan& plan) noexcept {
  for (auto& [src, dst] : plan.moves) {
    src->data = std::move(dst->data);
    src->length = dst->length;
    src->detached = false;
    dst->length = 0;
  }
}

}  // namespace internal

Result<Value> structured_clone(const Value& value, std::span<ArrayBuffer> transfer) {
  internal::TransferPlan plan;
  auto out = internal::clone_value(value, transfer, plan);
  if (out) internal::commit_transfers(plan);
  return out;
}

}  // namespace weave
