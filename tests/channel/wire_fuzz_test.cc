// Randomized property tests for channel/wire.h, deterministic (fixed seeds):
// random Value trees — every type, random UTF-8, random double bit patterns,
// buffers shared between several views — must round-trip exactly, keep buffer
// identity and re-serialize to the same bytes; random byte strings must never
// crash deserialize (run under --config=asan). Complements the hand-written
// cases in wire_test.cc.
//
// This is NOT fuzzing, despite the file's name (kept so the quick suite's
// target does not move): it is a few tens of thousands of random inputs with
// no coverage guidance, and it never reaches deep nesting, large counts or
// most view and reference combinations. The coverage-guided fuzzing
// (libFuzzer, 10^7 executions, ASan/UBSan, a malloc limit) is fuzz/, run by
// scripts/fuzz.sh; what it finds is pinned in wire_test.cc.
#include <bit>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "channel/wire.h"
#include "tests/test_util.h"

namespace weave {
namespace {

using Bytes = std::vector<std::byte>;

void append_utf8(std::string& s, std::uint32_t cp) {
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    s += static_cast<char>(0xE0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    s += static_cast<char>(0xF0 | (cp >> 18));
    s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

class RandomValues {
 public:
  explicit RandomValues(std::uint64_t seed) : rng_(seed) {}

  // A fresh tree. Buffers come from a small pool, so the same buffer often
  // appears several times (bare and under views) within one value.
  Value make() {
    pool_.clear();
    for (int i = 0, n = static_cast<int>(below(4)); i < n; ++i) {
      ArrayBuffer b = ArrayBuffer::create(below(65));
      for (std::byte& x : b.bytes()) x = static_cast<std::byte>(rng_());
      pool_.push_back(b);
    }
    return value(0);
  }

  std::uint64_t below(std::uint64_t n) { return rng_() % n; }
  std::mt19937_64& rng() { return rng_; }

 private:
  Value value(int depth) {
    switch (below(depth > 5 ? 9 : 15)) {
      case 0: return kUndefined;
      case 1: return kNull;
      case 2: return below(2) == 0;
      case 3: return integer();
      case 4: return std::bit_cast<double>(rng_());  // any bits: NaN payloads, -0, subnormals
      case 5: return text(below(3) == 0 ? 40 : 6);
      case 6: return ErrorValue{text(8), text(20), below(2) ? text(60) : ""};
      case 7:
        if (pool_.empty()) return 0.5;
        return pool_[below(pool_.size())];
      case 8: return view();
      case 9:
      case 10:
      case 11: {
        Array a;
        for (int i = 0, n = static_cast<int>(below(6)); i < n; ++i) a.push_back(value(depth + 1));
        return a;
      }
      default: {
        Object o;
        for (int i = 0, n = static_cast<int>(below(6)); i < n; ++i) {
          o.set(below(4) == 0 ? text(3) : "k" + std::to_string(below(8)), value(depth + 1));
        }
        return o;
      }
    }
  }

  std::int64_t integer() {
    const std::uint64_t bits = rng_();
    switch (below(4)) {
      case 0: return static_cast<std::int64_t>(bits);
      case 1: return static_cast<std::int64_t>(bits % 200) - 100;
      default: return static_cast<std::int64_t>(bits >> below(64)) * (below(2) ? 1 : -1);
    }
  }

  // Up to max_chars code points from every UTF-8 length class, never a surrogate.
  std::string text(std::uint64_t max_chars) {
    std::string s;
    for (std::uint64_t i = 0, n = below(max_chars + 1); i < n; ++i) {
      std::uint32_t cp;
      switch (below(5)) {
        case 0: cp = static_cast<std::uint32_t>(0x80 + below(0x800 - 0x80)); break;
        case 1: cp = static_cast<std::uint32_t>(0xE000 + below(0x10000 - 0xE000)); break;
        case 2: cp = static_cast<std::uint32_t>(0x10000 + below(0x110000 - 0x10000)); break;
        default: cp = static_cast<std::uint32_t>(below(0x80)); break;
      }
      append_utf8(s, cp);
    }
    return s;
  }

  Value view() {
    if (pool_.empty()) return kNull;
    const ArrayBuffer& b = pool_[below(pool_.size())];
    const auto kind = static_cast<ViewKind>(below(kViewKindCount));
    const std::size_t es = element_size(kind);
    const std::size_t slots = b.byte_length() / es;
    const std::size_t first = below(slots + 1);
    const std::size_t length = below(slots - first + 1);
    auto t = TypedArray::create(kind, b, first * es, length);
    EXPECT_TRUE(t.ok()) << t.status().to_string();
    return t.ok() ? Value(std::move(*t)) : Value(kNull);
  }

  std::mt19937_64 rng_;
  std::vector<ArrayBuffer> pool_;
};

// Every buffer in `v`, in serialization order (a view's buffer included).
void collect_buffers(const Value& v, std::vector<const ArrayBuffer*>& out) {
  if (auto* b = v.if_array_buffer()) out.push_back(b);
  if (auto* t = v.if_typed_array()) out.push_back(&t->buffer());
  if (auto* a = v.if_array()) {
    for (const Value& e : *a) collect_buffers(e, out);
  }
  if (auto* o = v.if_object()) {
    for (const auto& [k, e] : *o) collect_buffers(e, out);
  }
}

TEST(WireRandomTest, RandomValuesRoundTripWithIdentityAndCanonicalBytes) {
  RandomValues gen(0x5EED0001);
  for (int i = 0; i < 3000; ++i) {
    const Value v = gen.make();
    auto bytes = serialize(v);
    ASSERT_TRUE(bytes.ok()) << bytes.status().to_string() << " for " << v.to_string();
    auto back = deserialize(*bytes);
    ASSERT_TRUE(back.ok()) << back.status().to_string() << " for " << v.to_string();
    ASSERT_EQ(*back, v) << v.to_string() << " came back as " << back->to_string();

    // Bit-exact (doubles included): the same bytes again.
    auto again = serialize(*back);
    ASSERT_TRUE(again.ok());
    ASSERT_EQ(*again, *bytes) << v.to_string();

    // The same sharing pattern: buffer i and j are one buffer after the trip
    // exactly when they were one before — and none is shared with the source.
    std::vector<const ArrayBuffer*> before;
    std::vector<const ArrayBuffer*> after;
    collect_buffers(v, before);
    collect_buffers(*back, after);
    ASSERT_EQ(before.size(), after.size());
    for (std::size_t a = 0; a < before.size(); ++a) {
      ASSERT_FALSE(after[a]->same_buffer(*before[a]));
      for (std::size_t b = 0; b < a; ++b) {
        ASSERT_EQ(after[a]->same_buffer(*after[b]), before[a]->same_buffer(*before[b]))
            << "buffers " << b << " and " << a << " in " << v.to_string();
      }
    }
  }
}

TEST(WireRandomTest, EveryTruncationOfRandomValuesIsMalformed) {
  RandomValues gen(0x5EED0002);
  int checked = 0;
  while (checked < 200) {
    auto bytes = serialize(gen.make());
    ASSERT_TRUE(bytes.ok());
    if (bytes->size() > 400) continue;
    ++checked;
    for (std::size_t n = 0; n < bytes->size(); ++n) {
      auto r = deserialize(std::span<const std::byte>(bytes->data(), n));
      ASSERT_FALSE(r.ok()) << "a prefix of " << n << " of " << bytes->size() << " bytes parsed";
      ASSERT_EQ(r.code(), ErrorCode::kMalformedInput);
    }
  }
}

TEST(WireRandomTest, RandomBytesAreRejectedOrCanonical) {
  // Short random bodies after a valid header, biased towards tag bytes and
  // small counts so that parsing gets past the first byte.
  static constexpr std::uint8_t kAlphabet[] = {'_', '0', 'F', 'T',  'I',  'N',  'S',  'B',
                                               'R', 'V', 'A', 'o',  'E',  0,    1,    2,
                                               3,   4,   8,   0x7F, 0x80, 0xC3, 0xA9, 0xFF};
  RandomValues gen(0x5EED0003);
  int accepted = 0;
  constexpr int kInputs = 50000;
  for (int i = 0; i < kInputs; ++i) {
    Bytes in = {std::byte{kWireMagic}, std::byte{kWireVersion}};
    for (std::uint64_t n = gen.below(24); n > 0; --n) {
      in.push_back(static_cast<std::byte>(
          gen.below(4) == 0 ? gen.below(256) : kAlphabet[gen.below(sizeof kAlphabet)]));
    }
    auto r = deserialize(in);
    if (!r.ok()) {
      ASSERT_EQ(r.code(), ErrorCode::kMalformedInput);
      continue;
    }
    ++accepted;
    auto again = serialize(*r);
    ASSERT_TRUE(again.ok()) << again.status().to_string();
    ASSERT_EQ(*again, in);
  }
  EXPECT_GT(accepted, 100);
  std::printf("%d of %d random inputs were valid encodings\n", accepted, kInputs);
}

}  // namespace
}  // namespace weave
