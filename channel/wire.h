// weave's wire format: Node's v8.serialize / v8.deserialize for weave values.
// serialize() turns a Value (channel/value.h) into compact, versioned bytes
// that can cross processes and machines; deserialize() turns them back.
//
//   auto bytes = serialize(Object{{"n", 1}, {"s", "hi"}});   // Result<vector<byte>>
//   auto value = deserialize(*bytes);                          // Result<Value>
//
// What round-trips: every Value exactly — ints and doubles bit for bit (-0.0
// and NaN payloads included), strings byte for byte, object key order, and
// ArrayBuffer identity within one message (two views over one buffer still
// share one buffer after deserialize). Not kept: identity across messages,
// and detached buffers (serialize refuses them, as structured clone does).
// Not carried at all: SharedArrayBuffer — shared memory cannot cross
// processes, so serialize refuses it (as v8.serialize does without a host
// delegate) and deserialize never produces one.
//
// deserialize() treats its input as hostile. Every tag, length, count, offset
// and string is checked; anything malformed or truncated is a kMalformedInput
// Status whose message says what is wrong and at which byte offset — never a
// crash, never a read outside the input, never unbounded recursion (nesting is
// capped at kMaxCloneDepth), and never an allocation the input read so far
// does not justify: a declared count or length must fit in the bytes that
// remain (after the bytes already promised to enclosing containers), a byte
// length is copied only from bytes that are there, and an array or object
// reserves room for a few items only, then grows as its items are actually
// read. So memory follows what was decoded — at most about 2 x 48 bytes per
// item read (a Value is 48 bytes) — never a declared count. Fuzzed with
// libFuzzer (fuzz/, scripts/fuzz.sh) under ASan, UBSan and a malloc limit.
//
// The encoding is canonical: each Value has exactly one encoding, and
// deserialize accepts only that one. So for any input that deserializes,
// serialize(deserialize(bytes)) gives back `bytes` unchanged.
//
// Threading: plain functions with no shared state; any thread may call them
// on a Value it owns.
//
// ---- Format, version 1 -----------------------------------------------------
//
//   message   = magic version item
//   magic     = 0xF7                      (kWireMagic)
//   version   = 0x01                      (kWireVersion; any other is rejected)
//
// Every item starts with a one-byte tag (ASCII, so hex dumps read):
//
//   '_' 0x5F  undefined
//   '0' 0x30  null
//   'F' 0x46  false
//   'T' 0x54  true
//   'I' 0x49  int:     varint(zigzag(int64))
//   'N' 0x4E  double:  8 bytes, the IEEE-754 bits little-endian (bit exact)
//   'S' 0x53  string:  str
//   'B' 0x42  ArrayBuffer, first occurrence in this message:
//                      varint(byte length) + the bytes. It takes the next
//                      buffer id: 0 for the first 'B', 1 for the second, ...
//   'R' 0x52  ArrayBuffer seen before in this message: varint(id), which must
//                      name a buffer already defined by a 'B'
//   'V' 0x56  typed view: kind byte (ViewKind, < kViewKindCount)
//                      + buffer ('B' or 'R' item as above, no other tag)
//                      + varint(byte offset) + varint(length in elements);
//                      checked as TypedArray::create(kind, buffer, offset,
//                      length) checks it: aligned offset, window inside.
//   'A' 0x41  array:   varint(count) + count items
//   'o' 0x6F  object:  varint(count) + count × (str key, item); keys in
//                      insertion order; a repeated key is malformed
//   'E' 0x45  error:   str name + str message + str stack
//
//   str    = varint(byte length) + that many bytes of strict UTF-8: no
//            overlong forms, no surrogates (U+D800..U+DFFF), nothing above
//            U+10FFFF, no truncated sequences. No terminator.
//   varint = unsigned LEB128: 7 bits per byte, least significant group
//            first, high bit set on every byte but the last. Strict: at most
//            10 bytes, no bits beyond 64 (the 10th byte is 0 or 1), and
//            minimal (a multi-byte varint may not end in a 0x00 byte).
//   zigzag = (n << 1) ^ (n >> 63), so small magnitudes of either sign are short.
//
// Depth: the root item is at depth 0 and the items of an array or object at
// depth d are at depth d + 1; an item deeper than kMaxCloneDepth is refused on
// both sides (the same rule as structured_clone).
// Nothing may follow the root item: trailing bytes are malformed.
//
// Example: Object{{"a", 1}} is F7 01 6F 01 01 61 49 02.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "channel/status.h"
#include "channel/value.h"

namespace weave {

inline constexpr std::uint8_t kWireMagic = 0xF7;
inline constexpr std::uint8_t kWireVersion = 1;

// Node's v8.serialize for weave values: compact, versioned bytes that can
// cross processes and machines. Errors (kDataCloneError): a SharedArrayBuffer
// anywhere in the value, a detached ArrayBuffer (or a view over one), a string, object key or error
// field that is not valid UTF-8, an object with a repeated key (only possible through
// Object::append_unchecked), nesting deeper than kMaxCloneDepth.
// Any thread. Never blocks. Allocates.
[[nodiscard]] Result<std::vector<std::byte>> serialize(const Value& value);

// Like serialize(), but appends to `out` (reuse one buffer across messages).
// On error — or if an allocation throws — `out` holds what it held before.
// Any thread. Never blocks. Allocates.
[[nodiscard]] Status serialize_to(const Value& value, std::vector<std::byte>& out);

// Parses bytes made by serialize(). Every tag, length, count, offset and
// UTF-8 string is checked: malformed or truncated input returns
// kMalformedInput with a message saying what and at which byte offset —
// never a crash, never a read out of bounds, never an allocation larger than
// the input justifies. The result shares no memory with `bytes`.
// Any thread. Never blocks. Allocates.
[[nodiscard]] Result<Value> deserialize(std::span<const std::byte> bytes);

}  // namespace weave
