// Writes the fuzz targets' seed corpus: one valid encoding of every value
// kind (and of the combinations the decoder treats specially: buffer
// references, views of every kind, large objects with the hash-set key
// check, deep nesting, multi-byte UTF-8, varint edges), one file each, into
// every directory given on the command line. scripts/fuzz.sh --make-corpus
// runs it into fuzz/corpus/<target>/; the files are checked in.
#include <cstdint>
#include <cstdio>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "channel/array_buffer.h"
#include "channel/value.h"
#include "channel/wire.h"

namespace {

using namespace weave;

Value nest(std::size_t n) {
  Value v(1);
  for (std::size_t i = 0; i < n; ++i) v = Value(Array{std::move(v)});
  return v;
}

TypedArray view(ViewKind k, ArrayBuffer b, std::size_t offset, std::size_t length) {
  auto t = TypedArray::create(k, std::move(b), offset, length);
  if (!t) {
    std::fprintf(stderr, "make_corpus: %s\n", t.status().to_string().c_str());
    std::exit(1);
  }
  return *t;
}

std::vector<std::pair<std::string, Value>> seeds() {
  std::vector<std::pair<std::string, Value>> s;
  s.emplace_back("undefined", Value());
  s.emplace_back("null", Value(kNull));
  s.emplace_back("false", Value(false));
  s.emplace_back("true", Value(true));
  s.emplace_back("int_zero", Value(0));
  s.emplace_back("int_small", Value(-3));
  s.emplace_back("int_max", Value(std::numeric_limits<std::int64_t>::max()));
  s.emplace_back("int_min", Value(std::numeric_limits<std::int64_t>::min()));
  s.emplace_back("double", Value(0.1));
  s.emplace_back("double_neg_zero", Value(-0.0));
  s.emplace_back("double_nan", Value(std::numeric_limits<double>::quiet_NaN()));
  s.emplace_back("double_inf", Value(-std::numeric_limits<double>::infinity()));
  s.emplace_back("string_empty", Value(""));
  s.emplace_back("string_ascii", Value("hello, weave"));
  s.emplace_back("string_utf8", Value("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xEF\xBF\xBF"));
  s.emplace_back("string_long", Value(std::string(200, 'x')));  // a two-byte length
  s.emplace_back("buffer_empty", Value(ArrayBuffer()));
  s.emplace_back("buffer", Value(ArrayBuffer::copy_of("bytes\x00\xFF")));
  ArrayBuffer shared = ArrayBuffer::create(64);
  s.emplace_back("buffer_twice", Value(Array{shared, shared}));
  Array views;
  for (std::uint8_t k = 0; k < kViewKindCount; ++k) {
    const auto kind = static_cast<ViewKind>(k);
    views.push_back(view(kind, shared, 8, 2));
  }
  s.emplace_back("views_every_kind", Value(views));
  s.emplace_back("view_own_buffer", Value(view(ViewKind::kInt32, ArrayBuffer::create(16), 4, 3)));
  s.emplace_back("array_empty", Value(Array{}));
  s.emplace_back("array_mixed", Value(Array{1, "two", 3.0, kNull, Value(), true}));
  s.emplace_back("object_empty", Value(Object{}));
  s.emplace_back("object", Value(Object{{"a", 1}, {"b", Object{{"c", Array{2, 3}}}}}));
  Object big;
  for (int i = 0; i < 20; ++i) big.set("k" + std::to_string(i), i);  // past the linear key scan
  s.emplace_back("object_large", Value(big));
  s.emplace_back("error", Value(ErrorValue{"TypeError", "bad thing", "at f (x.js:1:2)"}));
  s.emplace_back("nest_20", nest(20));
  s.emplace_back("nest_max", nest(kMaxCloneDepth));
  Object deep_obj;
  deep_obj.set("x", nest(30));
  s.emplace_back("everything", Value(Object{{"deep", deep_obj},
                                            {"buf", shared},
                                            {"view", view(ViewKind::kFloat64, shared, 16, 4)},
                                            {"err", ErrorValue{"Error", "m", ""}},
                                            {"list", Array{Object{}, Array{}, ""}}}));
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: make_corpus DIR...\n");
    return 2;
  }
  for (const auto& [name, value] : seeds()) {
    auto bytes = serialize(value);
    if (!bytes) {
      std::fprintf(stderr, "make_corpus: %s: %s\n", name.c_str(),
                   bytes.status().to_string().c_str());
      return 1;
    }
    for (int i = 1; i < argc; ++i) {
      const std::string path = std::string(argv[i]) + "/" + name;
      std::FILE* f = std::fopen(path.c_str(), "wb");
      if (!f || std::fwrite(bytes->data(), 1, bytes->size(), f) != bytes->size() ||
          std::fclose(f) != 0) {
        std::fprintf(stderr, "make_corpus: cannot write %s\n", path.c_str());
        return 1;
      }
    }
  }
  return 0;
}
