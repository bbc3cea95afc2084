// Google Benchmark suite for weave::Value's walks — structured clone, copy,
// serialize, deserialize — each beside a hand-written baseline of the same
// shape (STYLE.md: every figure reads as a ratio to the limit).
//
// The message: an ordinary small object, the shape a task or an event
// carries:
//   {"id": 42, "name": "job-17", "ok": true, "score": 0.5,
//    "tags": [1, 2, 3, 4], "pos": {"x": 1.5, "y": -2.5}}
//
// BM_CloneValue vs BM_CloneValue_Baseline: structured_clone(v) with no
//   transfer list. Baseline: building the same value again by hand from the
//   source's fields (every allocation a clone must make, nothing else): the
//   honest bare limit of a deep copy.
// BM_CopyValue: Value's copy constructor (a deep copy too, with no transfer
//   bookkeeping). Same baseline.
// BM_SerializeValue vs BM_SerializeValue_Baseline: serialize_to() into a
//   reused buffer. Baseline: appending the same bytes by hand (tags and
//   lengths known in advance) to a reused buffer.
// BM_DeserializeValue: deserialize() of those bytes (its baseline is the
//   clone baseline: the same allocations).
// BM_CloneDeep/<depth>: a chain of nested one-element arrays (no target: it
//   shows what a level costs, the case the explicit stacks are for).
#include <benchmark/benchmark.h>

#include <cstring>
#include <vector>

#include "channel/value.h"
#include "channel/wire.h"

namespace weave {
namespace {

Value message() {
  return Object{
      {"id", 42},     {"name", "job-17"},          {"ok", true},
      {"score", 0.5}, {"tags", Array{1, 2, 3, 4}}, {"pos", Object{{"x", 1.5}, {"y", -2.5}}}};
}

// The same shape rebuilt by hand from the source.
Value rebuild(const Value& v) {
  const Object& o = *v.if_object();
  auto it = o.begin();
  Object out;
  out.reserve(6);
  out.append_unchecked(it->first, *it->second.if_int());
  ++it;
  out.append_unchecked(it->first, *it->second.if_string());
  ++it;
  out.append_unchecked(it->first, *it->second.if_bool());
  ++it;
  out.append_unchecked(it->first, *it->second.if_double());
  ++it;
  const Array& tags = *it->second.if_array();
  Array t;
  t.reserve(tags.size());
  for (const Value& e : tags) t.push_back(Value(*e.if_int()));
  out.append_unchecked(it->first, std::move(t));
  ++it;
  const Object& pos = *it->second.if_object();
  Object p;
  p.reserve(2);
  for (const auto& [k, e] : pos) p.append_unchecked(k, *e.if_double());
  out.append_unchecked(it->first, std::move(p));
  return out;
}

void BM_CloneValue(benchmark::State& state) {
  const Value v = message();
  for (auto _ : state) {
    auto c = structured_clone(v);
    benchmark::DoNotOptimize(c);
  }
}
BENCHMARK(BM_CloneValue);

void BM_CloneValue_Baseline(benchmark::State& state) {
  const Value v = message();
  for (auto _ : state) {
    Value c = rebuild(v);
    benchmark::DoNotOptimize(c);
  }
}
BENCHMARK(BM_CloneValue_Baseline);

void BM_CopyValue(benchmark::State& state) {
  const Value v = message();
  for (auto _ : state) {
    Value c(v);
    benchmark::DoNotOptimize(c);
  }
}
BENCHMARK(BM_CopyValue);

void BM_SerializeValue(benchmark::State& state) {
  const Value v = message();
  std::vector<std::byte> out;
  out.reserve(256);
  for (auto _ : state) {
    out.clear();
    Status s = serialize_to(v, out);
    benchmark::DoNotOptimize(s);
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_SerializeValue);

void put(std::vector<std::byte>& out, const void* p, std::size_t n) {
  const auto* b = static_cast<const std::byte*>(p);
  out.insert(out.end(), b, b + n);
}
void put(std::vector<std::byte>& out, char c) { out.push_back(static_cast<std::byte>(c)); }
void put_key(std::vector<std::byte>& out, const std::string& k) {
  put(out, static_cast<char>(k.size()));
  put(out, k.data(), k.size());
}
void put_double(std::vector<std::byte>& out, double d) {
  put(out, 'N');
  put(out, &d, 8);  // little-endian host
}

void BM_SerializeValue_Baseline(benchmark::State& state) {
  const Value v = message();
  std::vector<std::byte> out;
  out.reserve(256);
  for (auto _ : state) {
    out.clear();
    const Object& o = *v.if_object();
    auto it = o.begin();
    put(out, static_cast<char>(kWireMagic));
    put(out, static_cast<char>(kWireVersion));
    put(out, 'o');
    put(out, static_cast<char>(o.size()));
    put_key(out, it->first);
    put(out, 'I');
    put(out, static_cast<char>(*it->second.if_int() * 2));  // zigzag of a small int
    ++it;
    put_key(out, it->first);
    put(out, 'S');
    put_key(out, *it->second.if_string());
    ++it;
    put_key(out, it->first);
    put(out, *it->second.if_bool() ? 'T' : 'F');
    ++it;
    put_key(out, it->first);
    put_double(out, *it->second.if_double());
    ++it;
    put_key(out, it->first);
    const Array& tags = *it->second.if_array();
    put(out, 'A');
    put(out, static_cast<char>(tags.size()));
    for (const Value& e : tags) {
      put(out, 'I');
      put(out, static_cast<char>(*e.if_int() * 2));
    }
    ++it;
    put_key(out, it->first);
    const Object& pos = *it->second.if_object();
    put(out, 'o');
    put(out, static_cast<char>(pos.size()));
    for (const auto& [k, e] : pos) {
      put_key(out, k);
      put_double(out, *e.if_double());
    }
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_SerializeValue_Baseline);

void BM_DeserializeValue(benchmark::State& state) {
  const auto bytes = serialize(message());
  if (!bytes) {
    state.SkipWithError("serialize failed");
    return;
  }
  for (auto _ : state) {
    auto v = deserialize(*bytes);
    benchmark::DoNotOptimize(v);
  }
}
BENCHMARK(BM_DeserializeValue);

void BM_CloneDeep(benchmark::State& state) {
  Value v;
  for (std::int64_t i = 0; i < state.range(0); ++i) {
    Array a;
    a.push_back(std::move(v));
    v = Value(std::move(a));
  }
  for (auto _ : state) {
    auto c = structured_clone(v);
    benchmark::DoNotOptimize(c);
  }
}
BENCHMARK(BM_CloneDeep)->Arg(10)->Arg(999);

}  // namespace
}  // namespace weave
