#include "channel/value.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <unordered_map>

#include "channel/internal/clone.h"

namespace weave {

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

bool operator==(const Object& a, const Object& b) { return a.entries_ == b.entries_; }

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
  switch (a.type()) {
    case Value::Type::kUndefined:
    case Value::Type::kNull: return true;
    case Value::Type::kBool: return a.b_ == b.b_;
    case Value::Type::kInt: return a.i_ == b.i_;
    case Value::Type::kDouble: return a.d_ == b.d_ || (std::isnan(a.d_) && std::isnan(b.d_));
    case Value::Type::kString: return a.s_ == b.s_;
    case Value::Type::kArrayBuffer: return a.ab_ == b.ab_;
    case Value::Type::kTypedArray: return a.ta_ == b.ta_;
    case Value::Type::kSharedArrayBuffer:
      return a.sab_ == b.sab_;  // same memory
    case Value::Type::kArray: return a.arr_ == b.arr_;
    case Value::Type::kObject: return a.obj_ == b.obj_;
    case Value::Type::kError: return *a.err_ == *b.err_;
  }
  return false;
}

void Value::move_owned(Value&& o) noexcept {
  switch (type_) {
    case Type::kUndefined:
    case Type::kNull:
    case Type::kBool:
    case Type::kInt:
    case Type::kDouble: break;  // moved inline by move_from
    case Type::kString: ::new (&s_) std::string(std::move(o.s_)); break;
    case Type::kArrayBuffer: ::new (&ab_) ArrayBuffer(std::move(o.ab_)); break;
    case Type::kTypedArray: ::new (&ta_) TypedArray(std::move(o.ta_)); break;
    // A SharedArrayBuffer has no move: this copies the handle (an atomic
    // increment), and the source keeps a valid handle until destroyed.
    case Type::kSharedArrayBuffer: ::new (&sab_) SharedArrayBuffer(o.sab_); break;
    case Type::kArray: ::new (&arr_) Array(std::move(o.arr_)); break;
    case Type::kObject: ::new (&obj_) Object(std::move(o.obj_)); break;
    case Type::kError:
      err_ = o.err_;
      o.type_ = Type::kUndefined;  // the error moved out whole
      break;
  }
}

void Value::copy_from(const Value& o) {
  switch (o.type_) {
    case Type::kUndefined:
    case Type::kNull: break;
    case Type::kBool: b_ = o.b_; break;
    case Type::kInt: i_ = o.i_; break;
    case Type::kDouble: d_ = o.d_; break;
    case Type::kString: ::new (&s_) std::string(o.s_); break;
    case Type::kArrayBuffer: ::new (&ab_) ArrayBuffer(o.ab_); break;
    case Type::kTypedArray: ::new (&ta_) TypedArray(o.ta_); break;
    case Type::kSharedArrayBuffer:
      ::new (&sab_) SharedArrayBuffer(o.sab_);
      break;
    case Type::kArray: ::new (&arr_) Array(o.arr_); break;
    case Type::kObject: ::new (&obj_) Object(o.obj_); break;
    case Type::kError: err_ = new ErrorValue(*o.err_); break;
  }
  type_ = o.type_;  // last: a throwing copy leaves this undefined
}

void Value::destroy_owned() noexcept {
  switch (type_) {
    case Type::kString: s_.~basic_string(); break;
    case Type::kArrayBuffer: ab_.~ArrayBuffer(); break;
    case Type::kTypedArray: ta_.~TypedArray(); break;
    case Type::kSharedArrayBuffer:
      sab_.~SharedArrayBuffer();
      break;
    case Type::kArray: arr_.~Array(); break;
    case Type::kObject: obj_.~Object(); break;
    case Type::kError: delete err_; break;
    default: break;
  }
  type_ = Type::kUndefined;
}

namespace {

void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (const char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
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

void render(std::string& out, const Value& v) {
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
    } else if constexpr (std::is_same_v<T, Array>) {
      out += '[';
      for (std::size_t i = 0; i < x.size(); ++i) {
        if (i) out += ',';
        render(out, x[i]);
      }
      out += ']';
    } else if constexpr (std::is_same_v<T, Object>) {
      out += '{';
      bool first = true;
      for (const auto& [k, val] : x) {
        if (!first) out += ',';
        first = false;
        append_json_string(out, k);
        out += ':';
        render(out, val);
      }
      out += '}';
    } else {
      static_assert(std::is_same_v<T, ErrorValue>);
      out += x.name + ": " + x.message;
    }
  });
}

}  // namespace

std::string Value::to_string() const {
  std::string out;
  render(out, *this);
  return out;
}

// --- structured clone --------------------------------------------------------------

namespace internal {
namespace {

Status clone_error(std::string message) {
  return Status(ErrorCode::kDataCloneError, std::move(message));
}

class Cloner {
 public:
  explicit Cloner(TransferPlan& plan) : plan_(plan) {}

  Status add_transfer(const ArrayBuffer& b) {
    const auto& s = b.storage();
    if (s->detached) return clone_error("an ArrayBuffer in the transfer list is already detached");
    if (map_.find(s.get())) return clone_error("an ArrayBuffer is listed twice in the transfer list");
    auto dst = std::make_shared<BufferStorage>();
    map_.add(s.get(), dst);
    plan_.moves.emplace_back(s, dst);
    return Status();
  }

  Result<Value> clone(const Value& v, std::size_t depth) {
    if (depth > kMaxCloneDepth) {
      return clone_error("value nests deeper than " + std::to_string(kMaxCloneDepth) + " levels");
    }
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
      case Value::Type::kArray: {
        const Array& a = *v.if_array();
        Array out;
        out.reserve(a.size());
        for (const Value& e : a) {
          auto c = clone(e, depth + 1);
          if (!c) return c;
          out.push_back(std::move(*c));
        }
        return Value(std::move(out));
      }
      case Value::Type::kObject: {
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
      default:
        return v;  // scalars, strings and errors copy as values
    }
  }

 private:
  // Aliasing is kept: a buffer reached twice is cloned once.
  Result<ArrayBuffer> buffer(const ArrayBuffer& b) {
    const auto& s = b.storage();
    if (const auto* known = map_.find(s.get())) return ArrayBuffer(*known);
    if (s->detached) return clone_error("an ArrayBuffer is detached and could not be cloned");
    ArrayBuffer copy = ArrayBuffer::copy_of(b.bytes());
    map_.add(s.get(), copy.storage());
    return copy;
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

Result<Value> clone_value(const Value& value, std::span<ArrayBuffer> transfer, TransferPlan& plan) {
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
