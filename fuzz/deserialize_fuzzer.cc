// libFuzzer target: weave::deserialize on hostile bytes (channel/wire.h).
// Every input either is refused with kMalformedInput, or decodes to a value
// that serializes back to exactly the input (canonical encoding), clones
// (structured_clone), copies, compares equal to its clone and its copy, and
// renders with to_string. ASan/UBSan/LeakSanitizer and -malloc_limit_mb
// (scripts/fuzz.sh) catch the rest: no stray read, no UB, no leak, and no
// allocation the input does not justify.
#include <cstddef>
#include <cstdint>

#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace weave;
  Result<Value> v = fuzz::decode_and_check(fuzz::as_bytes(data, size));
  if (!v) return 0;
  fuzz::check(*v == *v, "a decoded value is not equal to itself");
  Result<Value> c = structured_clone(*v);
  if (!c) fuzz::fail("structured_clone refused a decoded value", c.status());
  fuzz::check(*c == *v, "a clone is not equal to its source");
  const Value copy = *v;
  fuzz::check(copy == *v, "a copy is not equal to its source");
  fuzz::check(!v->to_string().empty(), "to_string rendered nothing");
  return 0;
}
