// libFuzzer target: "a port receiving wire bytes". Bytes that deserialize
// are posted through a MessageChannel twice — once cloned, once with every
// ArrayBuffer in the value listed for transfer — and received with
// receive_message_on_port: each must arrive equal to the decoded value, and
// serialize to the input again. The transferred post must detach the
// sender's buffers. Bytes that do not deserialize must be refused with
// kMalformedInput (fuzz_util.h).
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "channel/message_port.h"
#include "fuzz/fuzz_util.h"

namespace {

using namespace weave;

// Every ArrayBuffer the value holds (directly or under a view), each once,
// found without recursion.
std::vector<ArrayBuffer> buffers_in(Value& root) {
  std::vector<ArrayBuffer> out;
  std::vector<Value*> todo{&root};
  auto add = [&](ArrayBuffer& b) {
    for (const ArrayBuffer& o : out) {
      if (o.same_buffer(b)) return;
    }
    out.push_back(b);
  };
  while (!todo.empty()) {
    Value* v = todo.back();
    todo.pop_back();
    if (ArrayBuffer* b = v->if_array_buffer()) add(*b);
    if (TypedArray* t = v->if_typed_array()) add(t->buffer());
    if (Array* a = v->if_array()) {
      for (Value& e : *a) todo.push_back(&e);
    }
    if (Object* o = v->if_object()) {
      for (auto& [k, e] : *o) todo.push_back(&e);
    }
  }
  return out;
}

void receive_equal(MessageChannel& ch, const Value& expected, std::span<const std::byte> input) {
  std::optional<MessageEvent> e = receive_message_on_port(ch.port2);
  fuzz::check(e.has_value(), "a posted message did not arrive");
  fuzz::check(e->data == expected, "the received value differs from the posted one");
  Result<std::vector<std::byte>> bytes = serialize(e->data);
  if (!bytes) fuzz::fail("the received value does not serialize", bytes.status());
  fuzz::check(
      bytes->size() == input.size() && std::equal(bytes->begin(), bytes->end(), input.begin()),
      "the received value serializes to other bytes");
  fuzz::check(!receive_message_on_port(ch.port2).has_value(), "one post arrived twice");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto input = fuzz::as_bytes(data, size);
  Result<Value> v = fuzz::decode_and_check(input);
  if (!v) return 0;
  MessageChannel ch;
  if (Status s = ch.port1.post_message(*v); !s) fuzz::fail("posting a decoded value failed", s);
  receive_equal(ch, *v, input);

  Result<Value> moved = deserialize(input);  // a second, independent copy to transfer
  if (!moved) fuzz::fail("deserialize is not deterministic", moved.status());
  std::vector<ArrayBuffer> buffers = buffers_in(*moved);
  Transfer t;
  for (ArrayBuffer& b : buffers) t.add(b);
  if (Status s = ch.port1.post_message(*moved, std::move(t)); !s) {
    fuzz::fail("posting a decoded value with its buffers transferred failed", s);
  }
  for (const ArrayBuffer& b : buffers)
    fuzz::check(b.detached(), "a transferred buffer stayed attached");
  receive_equal(ch, *v, input);
  return 0;
}
