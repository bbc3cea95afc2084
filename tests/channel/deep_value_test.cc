// Deep values on small stacks (issue 12, review D6): every walk over a Value
// — structured clone (through a port), serialize, deserialize, ==,
// to_string, copy, destroy — at the accepted depth (kMaxCloneDepth), on a
// thread whose whole stack is 64 KiB, the smallest a Worker may have
// (ResourceLimits::kMinStackBytes). The value is built, used and destroyed on
// that thread; the results are checked on the test's thread, so the gtest
// macros (which need stack of their own on failure) never run there.
#include <gtest/gtest.h>
#include <pthread.h>

#include <algorithm>
#include <climits>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "channel/array_buffer.h"
#include "channel/message_port.h"
#include "channel/status.h"
#include "channel/value.h"
#include "channel/wire.h"
#include "tests/channel/port_test_util.h"

namespace weave {
namespace {

class DeepValueTest : public testing::PortLeakCheckedTest {};

constexpr std::size_t kSmallStack = std::size_t{64} << 10;

// Runs `body` on a new pthread whose stack is `stack_bytes` (at least
// PTHREAD_STACK_MIN) and joins it. False if the thread could not start.
bool run_on_small_stack(std::size_t stack_bytes, const std::function<void()>& body) {
  pthread_attr_t attr;
  if (pthread_attr_init(&attr) != 0) return false;
  const std::size_t size = std::max<std::size_t>(stack_bytes, PTHREAD_STACK_MIN);
  bool ok = pthread_attr_setstacksize(&attr, size) == 0;
  pthread_t t;
  auto trampoline = [](void* p) -> void* {
    (*static_cast<const std::function<void()>*>(p))();
    return nullptr;
  };
  ok = ok && pthread_create(&t, &attr, trampoline,
                            const_cast<void*>(static_cast<const void*>(&body))) == 0;
  pthread_attr_destroy(&attr);
  if (ok) pthread_join(t, nullptr);
  return ok;
}

// `levels` nested one-element arrays around an int: the int sits at depth
// `levels` (the root is depth 0), so levels == kMaxCloneDepth is the deepest
// value clone and the wire format accept.
Value nested_arrays(std::size_t levels) {
  Value v(7);
  for (std::size_t i = 0; i < levels; ++i) {
    Array a;
    a.push_back(std::move(v));
    v = Value(std::move(a));
  }
  return v;
}

// The same with one-entry objects {"k": ...}, and a buffer at the bottom so
// the clone has a buffer to map and the wire format one to define.
Value nested_objects(std::size_t levels) {
  Value v(ArrayBuffer::copy_of("bottom"));
  for (std::size_t i = 0; i < levels; ++i) {
    Object o;
    o.append_unchecked("k", std::move(v));
    v = Value(std::move(o));
  }
  return v;
}

// How deep `v` goes along its first children, counted without recursion.
std::size_t depth_of(const Value& v) {
  std::size_t d = 0;
  const Value* p = &v;
  for (;;) {
    if (const Array* a = p->if_array(); a && !a->empty()) {
      p = &a->front();
    } else if (const Object* o = p->if_object(); o && !o->empty()) {
      p = &o->begin()->second;
    } else {
      return d;
    }
    ++d;
  }
}

std::string expected_array_text(std::size_t levels) {
  return std::string(levels, '[') + "7" + std::string(levels, ']');
}

// What the small-stack thread saw, checked afterwards.
struct Walks {
  bool built = false;
  std::size_t depth = 0;
  bool copy_equal = false;
  bool assigned_equal = false;
  bool text_ok = false;
  bool cloned_equal = false;
  bool posted = false;
  bool received_equal = false;
  bool serialized = false;
  bool deserialized_equal = false;
  bool reserialized_same = false;
  bool done = false;
  std::string error;
};

Walks walk_everything(Value (*make)(std::size_t), std::size_t levels, bool check_text) {
  Walks w;
  Value v = make(levels);
  w.built = true;
  w.depth = depth_of(v);
  {
    const Value copy(v);
    w.copy_equal = copy == v;
    Value assigned;
    assigned = copy;
    w.assigned_equal = assigned == v;
  }  // both destroyed here
  if (check_text)
    w.text_ok = v.to_string() == expected_array_text(levels);
  else
    w.text_ok = !v.to_string().empty();
  if (auto c = structured_clone(v)) {
    w.cloned_equal = *c == v;
  } else {
    w.error = c.status().to_string();
  }
  {
    MessageChannel ch;
    if (Status s = ch.port1.post_message(v); s) {
      w.posted = true;
      std::optional<MessageEvent> e = receive_message_on_port(ch.port2);
      w.received_equal = e && e->data == v;
    } else {
      w.error = s.to_string();
    }
  }
  if (auto bytes = serialize(v)) {
    w.serialized = true;
    if (auto back = deserialize(*bytes)) {
      w.deserialized_equal = *back == v;
      auto again = serialize(*back);
      w.reserialized_same = again && *again == *bytes;
    } else {
      w.error = back.status().to_string();
    }
  } else {
    w.error = bytes.status().to_string();
  }
  w.done = true;
  return w;  // v, and everything made from it, destroyed on this thread
}

void expect_all_walks(const Walks& w, std::size_t levels) {
  EXPECT_TRUE(w.done) << w.error;
  EXPECT_EQ(w.depth, levels);
  EXPECT_TRUE(w.copy_equal);
  EXPECT_TRUE(w.assigned_equal);
  EXPECT_TRUE(w.text_ok);
  EXPECT_TRUE(w.cloned_equal) << w.error;
  EXPECT_TRUE(w.posted) << w.error;
  EXPECT_TRUE(w.received_equal);
  EXPECT_TRUE(w.serialized) << w.error;
  EXPECT_TRUE(w.deserialized_equal) << w.error;
  EXPECT_TRUE(w.reserialized_same);
}

TEST_F(DeepValueTest, ArrayAtTheCloneDepthIsSafeOnA64KiBStack) {
  Walks w;
  ASSERT_TRUE(run_on_small_stack(kSmallStack, [&] {
    w = walk_everything(nested_arrays, kMaxCloneDepth, /*check_text=*/true);
  }));
  expect_all_walks(w, kMaxCloneDepth);
}

TEST_F(DeepValueTest, ObjectAtTheCloneDepthIsSafeOnA64KiBStack) {
  Walks w;
  ASSERT_TRUE(run_on_small_stack(kSmallStack, [&] {
    w = walk_everything(nested_objects, kMaxCloneDepth, /*check_text=*/false);
  }));
  expect_all_walks(w, kMaxCloneDepth);
}

// A wire message at the deepest accepted nesting, decoded on the small stack
// and then used there: deserialize was already iterative, what it returns
// must be usable too (review 2.1, "the result is deep").
TEST_F(DeepValueTest, DeserializedDeepValueIsUsableOnA64KiBStack) {
  auto bytes = serialize(nested_arrays(kMaxCloneDepth));
  ASSERT_TRUE(bytes.ok()) << bytes.status().to_string();
  bool equal = false, reserialized = false, cloned = false;
  ASSERT_TRUE(run_on_small_stack(kSmallStack, [&] {
    auto v = deserialize(*bytes);
    if (!v) return;
    equal = *v == nested_arrays(kMaxCloneDepth);
    auto again = serialize(*v);
    reserialized = again && *again == *bytes;
    cloned = structured_clone(*v).ok();
  }));
  EXPECT_TRUE(equal);
  EXPECT_TRUE(reserialized);
  EXPECT_TRUE(cloned);
}

// One level past the limit: refused with the clone error by the port, by
// structured_clone and by serialize, with nothing sent, nothing detached and
// the value untouched.
TEST_F(DeepValueTest, OneLevelPastTheCloneDepthIsRefusedWithNothingLost) {
  Status post, clone, wire;
  bool nothing_received = false, still_attached = false, value_intact = false;
  ASSERT_TRUE(run_on_small_stack(kSmallStack, [&] {
    Value v = nested_arrays(kMaxCloneDepth + 1);
    ArrayBuffer b = ArrayBuffer::copy_of("kept");
    MessageChannel ch;
    post = ch.port1.post_message(v, Transfer().add(b));
    nothing_received = !receive_message_on_port(ch.port2).has_value();
    still_attached = !b.detached() && b.to_string() == "kept";
    ArrayBuffer list[] = {b};
    if (auto c = structured_clone(v, list)) {
      clone = Status();
    } else {
      clone = c.status();
    }
    still_attached = still_attached && !b.detached();
    if (auto s = serialize(v)) {
      wire = Status();
    } else {
      wire = s.status();
    }
    value_intact = depth_of(v) == kMaxCloneDepth + 1;
  }));
  EXPECT_EQ(post.code(), ErrorCode::kDataCloneError) << post.to_string();
  EXPECT_EQ(clone.code(), ErrorCode::kDataCloneError) << clone.to_string();
  EXPECT_EQ(wire.code(), ErrorCode::kDataCloneError) << wire.to_string();
  EXPECT_NE(post.message().find("deeper than 1000"), std::string::npos) << post.to_string();
  EXPECT_TRUE(nothing_received);
  EXPECT_TRUE(still_attached);
  EXPECT_TRUE(value_intact);
}

// Hand-built values have no depth limit: copying, comparing, rendering and
// destroying one far deeper than the clone limit uses heap, not stack.
TEST_F(DeepValueTest, HandBuiltValueFarPastTheLimitCopiesComparesAndDestroysOnA64KiBStack) {
  constexpr std::size_t kLevels = 100'000;
  bool equal = false, text = false, depth = false;
  ASSERT_TRUE(run_on_small_stack(kSmallStack, [&] {
    Value v = nested_arrays(kLevels);
    Value copy = v;
    equal = copy == v;
    text = v.to_string().size() == 2 * kLevels + 1;
    depth = depth_of(copy) == kLevels;
  }));
  EXPECT_TRUE(equal);
  EXPECT_TRUE(text);
  EXPECT_TRUE(depth);
}

}  // namespace
}  // namespace weave
