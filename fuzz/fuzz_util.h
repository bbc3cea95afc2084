// What both fuzz targets check on every input that deserializes: the wire
// format's own promises (channel/wire.h), as properties. A broken promise
// aborts with a message, which libFuzzer reports as a crash.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <vector>

#include "channel/status.h"
#include "channel/value.h"
#include "channel/wire.h"

namespace weave::fuzz {

[[noreturn]] inline void fail(const char* what, const Status& s = Status()) {
  std::fprintf(stderr, "weave fuzz: broken promise: %s %s\n", what, s.to_string().c_str());
  std::abort();
}

inline void check(bool ok, const char* what) {
  if (!ok) fail(what);
}

inline std::span<const std::byte> as_bytes(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const std::byte*>(data), size};
}

// deserialize(input): refused with kMalformedInput, or a value whose
// serialization is the input itself (the encoding is canonical). Returns the
// value when there is one.
inline Result<Value> decode_and_check(std::span<const std::byte> input) {
  Result<Value> v = deserialize(input);
  if (!v) {
    if (v.code() != ErrorCode::kMalformedInput)
      fail("deserialize failed with a code other than kMalformedInput", v.status());
    if (v.status().message().empty()) fail("deserialize failed without a message");
    return v;
  }
  Result<std::vector<std::byte>> again = serialize(*v);
  if (!again) fail("serialize refused what deserialize produced", again.status());
  check(again->size() == input.size() && std::equal(again->begin(), again->end(), input.begin()),
        "serialize(deserialize(bytes)) != bytes (the encoding is not canonical)");
  return v;
}

}  // namespace weave::fuzz
