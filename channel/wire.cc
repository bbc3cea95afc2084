#include "channel/wire.h"

#include <algorithm>
#include <bit>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "channel/internal/buffer_access.h"
#include "channel/internal/clone.h"

namespace weave {
namespace {

// ---- tags --------------------------------------------------------------------------

enum Tag : std::uint8_t {
  kTagUndefined = '_',
  kTagNull = '0',
  kTagFalse = 'F',
  kTagTrue = 'T',
  kTagInt = 'I',
  kTagDouble = 'N',
  kTagString = 'S',
  kTagBuffer = 'B',
  kTagBufferRef = 'R',
  kTagView = 'V',
  kTagArray = 'A',
  kTagObject = 'o',
  kTagError = 'E',
};

constexpr std::size_t kMaxVarintBytes = 10;
// The fewest bytes an array element (a tag) and an object entry (a 1-byte key
// length and a tag) can take: a declared count must fit in what remains.
constexpr std::size_t kMinArrayElementBytes = 1;
constexpr std::size_t kMinObjectEntryBytes = 2;
// Objects up to this size look for repeated keys by a linear scan; bigger ones
// use a hash set, so a million-key object costs O(n), not O(n²).
constexpr std::size_t kLinearKeyScanLimit = 16;
// An array or object reserves room for at most this many items up front,
// then grows as items are actually read: a declared count costs only its
// own bytes until the items arrive (a Value is 48 bytes, an object entry 80,
// so reserving the whole count would cost up to 48x the input before a
// single item was checked — review 2.1).
constexpr std::size_t kInitialReserve = 16;

std::uint64_t zigzag_encode(std::int64_t n) noexcept {
  return (static_cast<std::uint64_t>(n) << 1) ^ static_cast<std::uint64_t>(n >> 63);
}

std::int64_t zigzag_decode(std::uint64_t u) noexcept {
  return static_cast<std::int64_t>((u >> 1) ^ (~(u & 1) + 1));
}

// ---- UTF-8 -------------------------------------------------------------------------

constexpr std::size_t kValidUtf8 = std::numeric_limits<std::size_t>::max();

// The offset of the first byte that does not start a well-formed UTF-8
// sequence (Unicode Table 3-7: no overlongs, no surrogates, nothing above
// U+10FFFF, no truncated sequence), or kValidUtf8.
std::size_t find_invalid_utf8(const unsigned char* p, std::size_t n) noexcept {
  std::size_t i = 0;
  while (i < n) {
    // ASCII fast path, eight bytes at a time (memcpy: no unaligned loads).
    if (n - i >= 8) {
      std::uint64_t w;
      std::memcpy(&w, p + i, 8);
      if ((w & 0x8080808080808080ull) == 0) {
        i += 8;
        continue;
      }
    }
    const unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t trail;
    unsigned char lo = 0x80;  // allowed range of the first continuation byte
    unsigned char hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      trail = 1;
    } else if (c == 0xE0) {
      trail = 2;
      lo = 0xA0;  // no overlong 3-byte forms
    } else if (c == 0xED) {
      trail = 2;
      hi = 0x9F;  // no surrogates
    } else if (c >= 0xE1 && c <= 0xEF) {
      trail = 2;
    } else if (c == 0xF0) {
      trail = 3;
      lo = 0x90;  // no overlong 4-byte forms
    } else if (c >= 0xF1 && c <= 0xF3) {
      trail = 3;
    } else if (c == 0xF4) {
      trail = 3;
      hi = 0x8F;  // nothing above U+10FFFF
    } else {
      return i;  // 0x80..0xC1 (stray continuation, overlong 2-byte) or 0xF5..0xFF
    }
    if (n - i - 1 < trail) return i;
    if (p[i + 1] < lo || p[i + 1] > hi) return i;
    for (std::size_t k = 2; k <= trail; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return i;
    }
    i += trail + 1;
  }
  return kValidUtf8;
}

std::size_t find_invalid_utf8(std::string_view s) noexcept {
  return find_invalid_utf8(reinterpret_cast<const unsigned char*>(s.data()), s.size());
}

std::string hex_byte(std::uint8_t b) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02X", static_cast<unsigned>(b));
  return buf;
}

// ---- serialize ---------------------------------------------------------------------

Status clone_error(std::string message) {
  return Status(ErrorCode::kDataCloneError, "serialize: " + std::move(message));
}

class Writer {
 public:
  explicit Writer(std::vector<std::byte>& out) : out_(out) {}

  void header() {
    byte(kWireMagic);
    byte(kWireVersion);
  }

  // At most internal::kNativeWalkDepth native levels; below that the arrays
  // and objects being written are an explicit stack (a few inline, then
  // heap), so any accepted depth is safe on a small thread stack. The root
  // is at depth 0, a container's items one deeper; an item deeper than
  // kMaxCloneDepth is refused before it is written.
  Status value(const Value& v, std::size_t depth = 0) {
    if (depth > kMaxCloneDepth) return internal::too_deep_error("serialize: ");
    if (!is_container(v)) return leaf(v);
    if (depth >= internal::kNativeWalkDepth) return deep(v, depth);
    // The first levels recurse natively: an ordinary message is shallow.
    if (Status s = open(v); !s) return s;
    if (const Array* a = v.if_array()) {
      for (const Value& e : *a) {
        if (Status s = value(e, depth + 1); !s) return s;
      }
    } else {
      for (const auto& [k, e] : *v.if_object()) {
        if (Status s = string(k, "an object key"); !s) return s;
        if (Status s = value(e, depth + 1); !s) return s;
      }
    }
    return Status();
  }

 private:
  // The container `root`, at depth `base`, and everything below it, with an
  // explicit stack.
  Status deep(const Value& root, std::size_t base) {
    if (Status s = open(root); !s) return s;
    struct Frame {
      const Value* v;
      std::size_t next;
    };
    internal::SmallStack<Frame, 16> stack;
    stack.push(&root, std::size_t{0});
    while (!stack.empty()) {
      Frame& f = stack.back();
      const Value* item = nullptr;
      if (const Array* a = f.v->if_array()) {
        if (f.next == a->size()) {
          stack.pop();
          continue;
        }
        item = &(*a)[f.next++];
      } else {
        const Object& o = *f.v->if_object();
        if (f.next == o.size()) {
          stack.pop();
          continue;
        }
        const auto& [k, e] = *(o.begin() + static_cast<std::ptrdiff_t>(f.next++));
        if (Status s = string(k, "an object key"); !s) return s;
        item = &e;
      }
      if (base + stack.size() > kMaxCloneDepth) return internal::too_deep_error("serialize: ");
      if (!is_container(*item)) {
        if (Status s = leaf(*item); !s) return s;
        continue;
      }
      if (Status s = open(*item); !s) return s;
      stack.push(item, std::size_t{0});  // invalidates f
    }
    return Status();
  }

  void byte(std::uint8_t b) { out_.push_back(static_cast<std::byte>(b)); }

  void varint(std::uint64_t u) {
    while (u >= 0x80) {
      byte(static_cast<std::uint8_t>(u | 0x80));
      u >>= 7;
    }
    byte(static_cast<std::uint8_t>(u));
  }

  Status string(std::string_view s, const char* what) {
    if (const std::size_t bad = find_invalid_utf8(s); bad != kValidUtf8) {
      return clone_error(std::string(what) + " is not valid UTF-8 (byte " + std::to_string(bad) +
                         " of " + std::to_string(s.size()) + ")");
    }
    varint(s.size());
    const auto* p = reinterpret_cast<const std::byte*>(s.data());
    out_.insert(out_.end(), p, p + s.size());
    return Status();
  }

  // A 'B' definition the first time this message reaches the buffer, an 'R'
  // reference to its id after that.
  Status buffer(const ArrayBuffer& b) {
    if (b.detached()) return clone_error("an ArrayBuffer is detached and could not be cloned");
    const auto [it, first] =
        ids_.try_emplace(internal::BufferAccess::storage(b).get(), ids_.size());
    if (first) {
      byte(kTagBuffer);
      varint(b.byte_length());
      const auto bytes = b.bytes();
      out_.insert(out_.end(), bytes.begin(), bytes.end());
    } else {
      byte(kTagBufferRef);
      varint(it->second);
    }
    return Status();
  }

  Status view(const TypedArray& t) {
    const ArrayBuffer& b = t.buffer();
    if (b.detached()) {
      return clone_error(std::string(view_kind_name(t.kind())) +
                         " views a detached ArrayBuffer and could not be cloned");
    }
    // Views are built by TypedArray::create and buffers never shrink, so this
    // holds; checked anyway because deserialize would refuse the bytes.
    const std::size_t es = element_size(t.kind());
    if (t.byte_offset() > b.byte_length() ||
        t.length() > (b.byte_length() - t.byte_offset()) / es) {
      return clone_error(std::string(view_kind_name(t.kind())) +
                         " runs past the end of its buffer");
    }
    byte(kTagView);
    byte(static_cast<std::uint8_t>(t.kind()));
    if (Status s = buffer(b); !s) return s;
    varint(t.byte_offset());
    varint(t.length());
    return Status();
  }

  static bool is_container(const Value& v) noexcept { return v.is_array() || v.is_object(); }

  // Everything but an array or object, whole.
  Status leaf(const Value& v) {
    switch (v.type()) {
      case Value::Type::kUndefined:
        byte(kTagUndefined);
        return Status();
      case Value::Type::kNull:
        byte(kTagNull);
        return Status();
      case Value::Type::kBool:
        byte(*v.if_bool() ? kTagTrue : kTagFalse);
        return Status();
      case Value::Type::kInt:
        byte(kTagInt);
        varint(zigzag_encode(*v.if_int()));
        return Status();
      case Value::Type::kDouble: {
        byte(kTagDouble);
        const auto bits = std::bit_cast<std::uint64_t>(*v.if_double());
        for (int i = 0; i < 8; ++i) byte(static_cast<std::uint8_t>(bits >> (8 * i)));
        return Status();
      }
      case Value::Type::kString:
        byte(kTagString);
        return string(*v.if_string(), "a string");
      case Value::Type::kArrayBuffer:
        return buffer(*v.if_array_buffer());
      case Value::Type::kTypedArray:
        return view(*v.if_typed_array());
      case Value::Type::kSharedArrayBuffer:
        // v8.serialize without a host delegate refuses it too: bytes cannot
        // carry shared memory to another process, and a copy would silently
        // stop being shared. The format has no tag for it.
        return clone_error(
            "a SharedArrayBuffer could not be cloned: shared memory cannot cross processes (post "
            "it through a MessagePort, or serialize a copy of its bytes as an ArrayBuffer)");
      case Value::Type::kError: {
        const ErrorValue& e = *v.if_error();
        byte(kTagError);
        if (Status s = string(e.name, "an error's name"); !s) return s;
        if (Status s = string(e.message, "an error's message"); !s) return s;
        return string(e.stack, "an error's stack");
      }
      case Value::Type::kArray:
      case Value::Type::kObject:
        break;  // written by value()
    }
    return clone_error("unknown Value type");
  }

  // An array's or object's tag and count (an object's keys checked for
  // repeats first); its items follow.
  Status open(const Value& v) {
    if (const Array* a = v.if_array()) {
      byte(kTagArray);
      varint(a->size());
      return Status();
    }
    return object_header(*v.if_object());
  }

  Status object_header(const Object& o) {
    // Object::set never makes a repeated key, but append_unchecked can, and
    // deserialize refuses one: catch it here, where the caller can fix it.
    if (o.size() <= kLinearKeyScanLimit) {
      for (auto i = o.begin(); i != o.end(); ++i) {
        for (auto j = o.begin(); j != i; ++j) {
          if (i->first == j->first) return repeated_key(i->first);
        }
      }
    } else {
      std::unordered_set<std::string_view> seen;
      seen.reserve(o.size());
      for (const auto& [k, e] : o) {
        if (!seen.insert(k).second) return repeated_key(k);
      }
    }
    byte(kTagObject);
    varint(o.size());
    return Status();
  }

  static Status repeated_key(std::string_view key) {
    const bool printable = find_invalid_utf8(key) == kValidUtf8 && key.size() <= 64;
    return clone_error("an object has the key " +
                       (printable ? "\"" + std::string(key) + "\"" : std::string("(unprintable)")) +
                       " twice (made with Object::append_unchecked?)");
  }

  std::vector<std::byte>& out_;
  // Buffers already written in this message -> their ids.
  std::unordered_map<const internal::BufferStorage*, std::uint64_t> ids_;
};

// ---- deserialize -------------------------------------------------------------------

// An array or object whose items are still being read. The reader keeps an
// explicit stack of these instead of recursing, so even a hostile nest of
// container tags costs heap (capped by kMaxCloneDepth), not native stack.
struct Frame {
  Value container;           // an Array or an Object
  std::uint64_t left = 0;    // items not started yet
  std::size_t min_item = 0;  // bytes each of them needs at least
  std::string key;           // object: key of the entry being read
  // object, when large: keys seen so far, as views into the input.
  std::unique_ptr<std::unordered_set<std::string_view>> seen;
};

class Reader {
 public:
  explicit Reader(std::span<const std::byte> in)
      : begin_(in.data()), pos_(in.data()), end_(in.data() + in.size()) {}

  Result<Value> run() {
    if (Status s = header(); !s) return s;
    Value done;
    for (;;) {
      // Start the next item: the root, or the next one of the innermost
      // open container.
      if (!stack_.empty()) {
        Frame& f = stack_.back();
        --f.left;
        reserved_ -= f.min_item;
        if (f.container.is_object()) {
          if (Status s = key(f); !s) return s;
        }
      }
      if (stack_.size() > kMaxCloneDepth) {
        return malformed("value nests deeper than " + std::to_string(kMaxCloneDepth) + " levels");
      }
      auto item = this->item();
      if (!item) return item.status();
      Value v;
      if (*item) {
        v = std::move(**item);
      } else if (stack_.back().left > 0) {
        continue;  // a container opened: read its first item
      } else {
        // An empty container: complete at once.
        v = std::move(stack_.back().container);
        stack_.pop_back();
      }
      // Hand the finished value to its container; close every container that
      // this completes.
      for (;;) {
        if (stack_.empty()) {
          done = std::move(v);
          break;
        }
        Frame& f = stack_.back();
        if (Object* o = f.container.if_object()) {
          o->append_unchecked(std::move(f.key), std::move(v));
        } else {
          f.container.if_array()->push_back(std::move(v));
        }
        if (f.left > 0) break;
        v = std::move(f.container);
        stack_.pop_back();
      }
      if (stack_.empty()) break;
    }
    if (pos_ != end_) {
      return malformed(std::to_string(end_ - pos_) + " trailing bytes after the value");
    }
    return done;
  }

 private:
  std::size_t offset() const noexcept { return static_cast<std::size_t>(pos_ - begin_); }
  std::size_t remaining() const noexcept { return static_cast<std::size_t>(end_ - pos_); }
  // Bytes the current item may use: what remains, less what the unread items
  // of the open containers need at least.
  std::size_t available() const noexcept {
    return remaining() > reserved_ ? remaining() - reserved_ : 0;
  }

  Status malformed(const std::string& what) const { return malformed_at(what, offset()); }
  static Status malformed_at(const std::string& what, std::size_t at) {
    return Status(ErrorCode::kMalformedInput,
                  "deserialize: " + what + " at byte " + std::to_string(at));
  }

  Status header() {
    if (remaining() == 0) return malformed("empty input, expected the 2-byte header");
    const auto magic = static_cast<std::uint8_t>(*pos_);
    if (magic != kWireMagic) {
      return malformed("bad magic byte " + hex_byte(magic) + " (weave wire data starts with " +
                       hex_byte(kWireMagic) + ")");
    }
    ++pos_;
    if (remaining() == 0) return malformed("input ends inside the 2-byte header");
    const auto version = static_cast<std::uint8_t>(*pos_);
    if (version != kWireVersion) {
      return malformed("unsupported wire version " + std::to_string(version) +
                       " (this build reads version " + std::to_string(kWireVersion) + ")");
    }
    ++pos_;
    return Status();
  }

  Result<std::uint8_t> u8(const char* what) {
    if (pos_ == end_) return malformed(std::string("input ends where ") + what + " should be");
    return static_cast<std::uint8_t>(*pos_++);
  }

  // Strict LEB128: at most 10 bytes, nothing past bit 63, minimal. The
  // error names the field as what + suffix (joined only on error: reading a
  // string must not allocate a message it will not need).
  Result<std::uint64_t> varint(const char* what, const char* suffix = "") {
    const std::size_t at = offset();
    std::uint64_t u = 0;
    for (std::size_t i = 0; i < kMaxVarintBytes; ++i) {
      if (pos_ == end_) {
        return malformed(std::string("input ends inside ") + what + suffix +
                         " (a varint starting at byte " + std::to_string(at) + ")");
      }
      const auto b = static_cast<std::uint8_t>(*pos_);
      if (i == kMaxVarintBytes - 1 && b > 1) {
        return malformed_at(std::string(what) + suffix + " overflows 64 bits or runs over 10 bytes",
                            at);
      }
      ++pos_;
      u |= static_cast<std::uint64_t>(b & 0x7F) << (7 * i);
      if ((b & 0x80) == 0) {
        if (b == 0 && i > 0) {
          return malformed_at(
              std::string(what) + suffix + " is not minimally encoded (ends in 0x00)", at);
        }
        return u;
      }
    }
    return malformed_at(std::string(what) + suffix + " runs over 10 bytes", at);  // not reached
  }

  // A declared length or count of items of at least `unit_bytes` each,
  // checked against what the input can still hold.
  Result<std::size_t> length(const char* what, const char* suffix, std::size_t unit_bytes) {
    const std::size_t at = offset();
    auto n = varint(what, suffix);
    if (!n) return n.status();
    const std::size_t room = available() / unit_bytes;
    if (*n > room) {
      return malformed_at(std::string(what) + suffix + " " + std::to_string(*n) +
                              " is more than the remaining input can hold (room for " +
                              std::to_string(room) + ")",
                          at);
    }
    return static_cast<std::size_t>(*n);
  }

  Result<std::string_view> utf8(const char* what) {
    const std::size_t at = offset();
    auto n = length(what, "'s byte length", 1);
    if (!n) return n.status();
    const auto* p = reinterpret_cast<const unsigned char*>(pos_);
    if (const std::size_t bad = find_invalid_utf8(p, *n); bad != kValidUtf8) {
      return malformed_at(
          std::string(what) + " is not valid UTF-8 (byte " + std::to_string(offset() + bad) + ")",
          at);
    }
    pos_ += *n;
    return std::string_view(reinterpret_cast<const char*>(p), *n);
  }

  Result<std::string> string(const char* what) {
    auto s = utf8(what);
    if (!s) return s.status();
    return std::string(*s);
  }

  // An object entry's key, checked for repeats.
  Status key(Frame& f) {
    const std::size_t at = offset();
    reserved_ += 1;  // the entry's value still needs its tag
    auto k = utf8("an object key");
    reserved_ -= 1;
    if (!k) return k.status();
    const Object& o = *f.container.if_object();
    const bool repeated = f.seen ? !f.seen->insert(*k).second : o.contains(*k);
    if (repeated) return malformed_at("repeated object key", at);
    f.key.assign(*k);
    return Status();
  }

  // One item. A scalar, string, buffer, view or error comes back as a Value;
  // an array or object is pushed on the stack instead (nullopt).
  Result<std::optional<Value>> item() {
    const std::size_t at = offset();
    auto tag = u8("a tag");
    if (!tag) return tag.status();
    switch (*tag) {
      case kTagUndefined:
        return std::optional<Value>(Value());
      case kTagNull:
        return std::optional<Value>(Value(kNull));
      case kTagFalse:
        return std::optional<Value>(Value(false));
      case kTagTrue:
        return std::optional<Value>(Value(true));
      case kTagInt: {
        auto u = varint("an int");
        if (!u) return u.status();
        return std::optional<Value>(Value(zigzag_decode(*u)));
      }
      case kTagDouble: {
        if (remaining() < 8) return malformed("input ends inside a double (8 bytes)");
        std::uint64_t bits = 0;
        for (int i = 0; i < 8; ++i) {
          bits |= static_cast<std::uint64_t>(static_cast<std::uint8_t>(pos_[i])) << (8 * i);
        }
        pos_ += 8;
        return std::optional<Value>(Value(std::bit_cast<double>(bits)));
      }
      case kTagString: {
        auto s = string("a string");
        if (!s) return s.status();
        return std::optional<Value>(Value(std::move(*s)));
      }
      case kTagBuffer:
      case kTagBufferRef: {
        auto b = buffer(*tag, at);
        if (!b) return b.status();
        return std::optional<Value>(Value(std::move(*b)));
      }
      case kTagView: {
        auto t = view(at);
        if (!t) return t.status();
        return std::optional<Value>(Value(std::move(*t)));
      }
      case kTagArray: {
        auto n = length("an array", "'s element count", kMinArrayElementBytes);
        if (!n) return n.status();
        Array a;
        a.reserve(std::min(*n, kInitialReserve));
        open(Value(std::move(a)), *n, kMinArrayElementBytes);
        return std::optional<Value>();
      }
      case kTagObject: {
        auto n = length("an object", "'s entry count", kMinObjectEntryBytes);
        if (!n) return n.status();
        Object o;
        o.reserve(std::min(*n, kInitialReserve));
        open(Value(std::move(o)), *n, kMinObjectEntryBytes);
        if (*n > kLinearKeyScanLimit) {
          // Grows with the keys read, like the object itself.
          stack_.back().seen = std::make_unique<std::unordered_set<std::string_view>>();
        }
        return std::optional<Value>();
      }
      case kTagError: {
        ErrorValue e;
        auto name = string("an error's name");
        if (!name) return name.status();
        auto message = string("an error's message");
        if (!message) return message.status();
        auto stack = string("an error's stack");
        if (!stack) return stack.status();
        e.name = std::move(*name);
        e.message = std::move(*message);
        e.stack = std::move(*stack);
        return std::optional<Value>(Value(std::move(e)));
      }
      default:
        return malformed_at("unknown tag " + hex_byte(*tag), at);
    }
  }

  void open(Value container, std::size_t count, std::size_t min_item) {
    Frame f;
    f.container = std::move(container);
    f.left = count;
    f.min_item = min_item;
    reserved_ += count * min_item;  // <= available(): checked by length()
    stack_.push_back(std::move(f));
  }

  // The body of a 'B' (a new buffer, next id) or an 'R' (a buffer defined
  // earlier in this message).
  Result<ArrayBuffer> buffer(std::uint8_t tag, std::size_t at) {
    if (tag == kTagBuffer) {
      auto n = length("an ArrayBuffer", "'s byte length", 1);
      if (!n) return n.status();
      ArrayBuffer b = ArrayBuffer::copy_of(std::span<const std::byte>(pos_, *n));
      pos_ += *n;
      buffers_.push_back(b);
      return b;
    }
    auto id = varint("an ArrayBuffer reference");
    if (!id) return id.status();
    if (*id >= buffers_.size()) {
      return malformed_at("reference to ArrayBuffer " + std::to_string(*id) + ", but only " +
                              std::to_string(buffers_.size()) + " are defined before it",
                          at);
    }
    return buffers_[static_cast<std::size_t>(*id)];
  }

  Result<TypedArray> view(std::size_t at) {
    auto kind = u8("a view's kind");
    if (!kind) return kind.status();
    if (*kind >= kViewKindCount) {
      return malformed_at("view kind " + std::to_string(*kind) + " is out of range (< " +
                              std::to_string(kViewKindCount) + ")",
                          offset() - 1);
    }
    const std::size_t buffer_at = offset();
    auto tag = u8("a view's buffer");
    if (!tag) return tag.status();
    if (*tag != kTagBuffer && *tag != kTagBufferRef) {
      return malformed_at("a view's buffer has tag " + hex_byte(*tag) + " (expected 'B' or 'R')",
                          buffer_at);
    }
    auto b = buffer(*tag, buffer_at);
    if (!b) return b.status();
    auto byte_offset = varint("a view's byte offset");
    if (!byte_offset) return byte_offset.status();
    auto count = varint("a view's length");
    if (!count) return count.status();
    const std::size_t size = b->byte_length();
    if (*byte_offset > size || *count > size) {
      return malformed_at("view runs past the end of its " + std::to_string(size) + "-byte buffer",
                          at);
    }
    auto t = TypedArray::create(static_cast<ViewKind>(*kind), std::move(*b),
                                static_cast<std::size_t>(*byte_offset),
                                static_cast<std::size_t>(*count));
    if (!t) return malformed_at("bad view (" + t.status().message() + ")", at);
    return std::move(*t);
  }

  const std::byte* begin_;
  const std::byte* pos_;
  const std::byte* end_;
  // Bytes that the unread items of the open containers need at least; every
  // declared count and length must fit in what remains beyond them, so the
  // open containers together never reserve more slots than there are bytes.
  std::size_t reserved_ = 0;
  std::vector<Frame> stack_;
  std::vector<ArrayBuffer> buffers_;  // by id
};

}  // namespace

Status serialize_to(const Value& value, std::vector<std::byte>& out) {
  const std::size_t old_size = out.size();
  // Restores `out` on every failure, including an allocation that throws.
  struct Rollback {
    std::vector<std::byte>& out;
    std::size_t size;
    bool armed = true;
    ~Rollback() {
      if (armed) out.resize(size);
    }
  } rollback{out, old_size};
  Writer w(out);
  w.header();
  Status s = w.value(value, 0);
  if (s) rollback.armed = false;
  return s;
}

Result<std::vector<std::byte>> serialize(const Value& value) {
  std::vector<std::byte> out;
  out.reserve(64);
  if (Status s = serialize_to(value, out); !s) return s;
  return out;
}

Result<Value> deserialize(std::span<const std::byte> bytes) { return Reader(bytes).run(); }

}  // namespace weave
