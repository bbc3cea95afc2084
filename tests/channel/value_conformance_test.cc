// Where weave's values must behave as Node's do (issue 12, conformance):
//  - a function is not a value: lambdas, functions, function and member
//    pointers do not convert to Value (compile-time checks below), while a
//    non-const char* is a string;
//  - the transfer list is checked whole before the value is walked, so a bad
//    list is the error even when the value is uncloneable too;
//  - mark_as_untransferable (worker_threads.markAsUntransferable).
// Nothing is sent and nothing detached in any failing case.
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>

#include "atomics/shared_array_buffer.h"
#include "channel/array_buffer.h"
#include "channel/internal/clone.h"
#include "channel/message_port.h"
#include "channel/status.h"
#include "channel/value.h"
#include "tests/channel/port_test_util.h"

namespace weave {
namespace {

// --- a function is not a value (compile time) ---------------------------------------

struct Member {
  int field = 0;
  void method() {}
};
void free_function() {}
inline constexpr auto kLambda = [] {};
inline constexpr auto kLambdaReturningInt = [] { return 1; };
inline constexpr auto kGenericLambda = [](auto) {};
struct Functor {
  void operator()() const {}
};

// Before the fix, a captureless lambda became `true` (lambda -> function
// pointer -> bool).
static_assert(!std::is_constructible_v<Value, decltype(kLambda)>,
              "a lambda must not convert to weave::Value");
static_assert(!std::is_constructible_v<Value, decltype([] {})>);
static_assert(!std::is_convertible_v<decltype(kLambda), Value>);
static_assert(!std::is_constructible_v<Value, decltype(kLambdaReturningInt)>);
static_assert(!std::is_constructible_v<Value, decltype(kGenericLambda)>);
static_assert(!std::is_constructible_v<Value, Functor>);
static_assert(!std::is_constructible_v<Value, void (*)()>);
static_assert(!std::is_constructible_v<Value, decltype(free_function)&>);
static_assert(!std::is_constructible_v<Value, decltype(&Member::field)>);
static_assert(!std::is_constructible_v<Value, decltype(&Member::method)>);
// Array::emplace_back(f) builds a Value from f: with no constructor, it
// cannot compile (vector::emplace_back is not SFINAE-friendly, so this is
// the check that stands for it).
static_assert(!std::is_constructible_v<Array::value_type, decltype(kLambda)>);
// Brace initialisation goes through the same constructors.
template <class F>
concept BraceConstructible = requires(F f) {
  Value{f};
};
static_assert(!BraceConstructible<decltype(kLambda)>);
// Other pointers stay refused, C strings of either constness are strings.
static_assert(!std::is_constructible_v<Value, int*>);
static_assert(!std::is_constructible_v<Value, void*>);
static_assert(std::is_constructible_v<Value, char*>);
static_assert(std::is_constructible_v<Value, const char*>);
static_assert(std::is_constructible_v<Value, const char (&)[4]>);
// What must keep working.
static_assert(std::is_constructible_v<Value, bool>);
static_assert(std::is_constructible_v<Value, std::nullptr_t>);
static_assert(std::is_constructible_v<Value, int>);
static_assert(std::is_constructible_v<Value, Array>);
static_assert(std::is_constructible_v<Value, ArrayBuffer>);

class ValueConversionTest : public testing::CleanShutdownTest {};

TEST_F(ValueConversionTest, NonConstCharPointerIsAString) {
  char text[] = "mutable";
  char* p = text;
  const Value v(p);
  ASSERT_TRUE(v.is_string());
  EXPECT_EQ(*v.if_string(), "mutable");
  char* null_text = nullptr;
  EXPECT_TRUE(Value(null_text).is_null());  // like a null const char*
  Array a;
  a.emplace_back(p);
  EXPECT_EQ(a.front(), Value("mutable"));
}

// --- the transfer list first ---------------------------------------------------------

class TransferOrderTest : public testing::PortLeakCheckedTest {
 protected:
  ArrayBuffer live_ = ArrayBuffer::copy_of("live");

  void expect_live_untouched() {
    EXPECT_FALSE(live_.detached());
    EXPECT_EQ(live_.to_string(), "live");
  }
};

Value nest(std::size_t n) {
  Value v(0);
  for (std::size_t i = 0; i < n; ++i) v = Value(Array{std::move(v)});
  return v;
}

bool mentions(const Status& s, const char* text) {
  return s.message().find(text) != std::string::npos;
}

TEST_F(TransferOrderTest, DetachedBufferInTheListWinsOverADetachedBufferInTheValue) {
  ArrayBuffer listed_dead = testing::detached_buffer();
  ArrayBuffer reached_dead = testing::detached_buffer();
  ArrayBuffer list[] = {live_, listed_dead};
  const Result<Value> c = structured_clone(Value(Array{reached_dead, live_}), list);
  EXPECT_EQ(c.code(), ErrorCode::kDataCloneError);
  EXPECT_TRUE(mentions(c.status(), "in the transfer list is already detached"))
      << c.status().to_string();
  expect_live_untouched();
}

TEST_F(TransferOrderTest, DetachedBufferInTheListWinsOverTooDeepAValue) {
  ArrayBuffer dead = testing::detached_buffer();
  ArrayBuffer list[] = {live_, dead};
  const Result<Value> c = structured_clone(nest(kMaxCloneDepth + 1), list);
  EXPECT_TRUE(mentions(c.status(), "in the transfer list is already detached"))
      << c.status().to_string();
  expect_live_untouched();
}

TEST_F(TransferOrderTest, DuplicateInTheListWinsOverTooDeepAValue) {
  ArrayBuffer list[] = {live_, ArrayBuffer::copy_of("x"), live_};
  const Result<Value> c = structured_clone(nest(kMaxCloneDepth + 1), list);
  EXPECT_TRUE(mentions(c.status(), "listed twice")) << c.status().to_string();
  expect_live_untouched();
}

TEST_F(TransferOrderTest, UntransferableInTheListWinsOverADetachedBufferInTheValue) {
  ArrayBuffer marked = ArrayBuffer::copy_of("marked");
  mark_as_untransferable(marked);
  ArrayBuffer list[] = {live_, marked};
  const Result<Value> c =
      structured_clone(Value(Object{{"dead", testing::detached_buffer()}}), list);
  EXPECT_TRUE(mentions(c.status(), "untransferable")) << c.status().to_string();
  expect_live_untouched();
  EXPECT_EQ(marked.to_string(), "marked");
}

// The last entry of the list is the bad one: the list is checked whole,
// not only the entries the value happens to reach first.
TEST_F(TransferOrderTest, BadEntryAtTheEndOfTheListWinsOverTheFirstBadValue) {
  ArrayBuffer dead = testing::detached_buffer();
  ArrayBuffer list[] = {live_, ArrayBuffer::copy_of("a"), ArrayBuffer::copy_of("b"), dead};
  const Result<Value> c =
      structured_clone(Value(Array{testing::detached_buffer(), nest(kMaxCloneDepth + 1)}), list);
  EXPECT_TRUE(mentions(c.status(), "in the transfer list")) << c.status().to_string();
  expect_live_untouched();
}

TEST_F(TransferOrderTest, ThroughAPortTheListStillWinsAndNothingIsSent) {
  MessageChannel ch;
  ArrayBuffer dead = testing::detached_buffer();
  const Status s = ch.port1.post_message(Value(Array{testing::detached_buffer()}),
                                         Transfer().add(live_).add(dead));
  EXPECT_EQ(s.code(), ErrorCode::kDataCloneError);
  EXPECT_TRUE(mentions(s, "in the transfer list is already detached")) << s.to_string();
  EXPECT_FALSE(receive_message_on_port(ch.port2).has_value());
  expect_live_untouched();

  ArrayBuffer marked = ArrayBuffer::copy_of("m");
  mark_as_untransferable(marked);
  const Status deep = ch.port1.post_message(nest(kMaxCloneDepth + 1), Transfer().add(marked));
  EXPECT_TRUE(mentions(deep, "untransferable")) << deep.to_string();
  EXPECT_FALSE(receive_message_on_port(ch.port2).has_value());
}

// A SharedArrayBuffer in the list is refused by the port before any buffer
// or value is looked at.
TEST_F(TransferOrderTest, SharedArrayBufferInTheListWinsThroughAPort) {
  MessageChannel ch;
  const SharedArrayBuffer sab(8);
  ArrayBuffer dead = testing::detached_buffer();
  const Status s = ch.port1.post_message(Value(Array{testing::detached_buffer()}),
                                         Transfer().add(live_).add(sab).add(dead));
  EXPECT_EQ(s.code(), ErrorCode::kDataCloneError);
  EXPECT_TRUE(mentions(s, "SharedArrayBuffer")) << s.to_string();
  EXPECT_FALSE(receive_message_on_port(ch.port2).has_value());
  expect_live_untouched();
}

TEST_F(TransferOrderTest, CheckTransferListReportsWhatThePostWouldWithoutWalkingAValue) {
  EXPECT_TRUE(internal::check_transfer_list({}).ok());
  ArrayBuffer ok_list[] = {live_, ArrayBuffer::copy_of("x")};
  EXPECT_TRUE(internal::check_transfer_list(ok_list).ok());
  ArrayBuffer twice[] = {live_, live_};
  EXPECT_TRUE(mentions(internal::check_transfer_list(twice), "listed twice"));
  ArrayBuffer dead[] = {testing::detached_buffer()};
  EXPECT_EQ(internal::check_transfer_list(dead).code(), ErrorCode::kDataCloneError);
  ArrayBuffer marked = ArrayBuffer::copy_of("m");
  mark_as_untransferable(marked);
  ArrayBuffer with_marked[] = {live_, marked};
  EXPECT_TRUE(mentions(internal::check_transfer_list(with_marked), "untransferable"));
  expect_live_untouched();
}

// --- mark_as_untransferable ----------------------------------------------------------

class UntransferableTest : public testing::PortLeakCheckedTest {};

TEST_F(UntransferableTest, MarkIsSeenThroughEveryHandleAndOnlyThere) {
  ArrayBuffer b = ArrayBuffer::copy_of("bytes");
  const ArrayBuffer other_handle = b;
  EXPECT_FALSE(is_marked_as_untransferable(b));
  mark_as_untransferable(b);
  mark_as_untransferable(b);  // idempotent
  EXPECT_TRUE(is_marked_as_untransferable(b));
  EXPECT_TRUE(is_marked_as_untransferable(other_handle));
  EXPECT_FALSE(is_marked_as_untransferable(ArrayBuffer::copy_of("bytes")));
  EXPECT_FALSE(is_marked_as_untransferable(b.slice(0, 2)));  // a new buffer
}

TEST_F(UntransferableTest, MarkedBufferInATransferListIsRefusedAndStaysAttached) {
  ArrayBuffer b = ArrayBuffer::copy_of("kept");
  mark_as_untransferable(b);
  const std::byte* data = b.data();
  ArrayBuffer list[] = {b};
  const Result<Value> c = structured_clone(Value(b), list);
  EXPECT_EQ(c.code(), ErrorCode::kDataCloneError);
  EXPECT_FALSE(b.detached());
  EXPECT_EQ(b.data(), data);
  EXPECT_EQ(b.to_string(), "kept");

  MessageChannel ch;
  const Status s = ch.port1.post_message(Value(b), Transfer().add(b));
  EXPECT_EQ(s.code(), ErrorCode::kDataCloneError);
  EXPECT_FALSE(receive_message_on_port(ch.port2).has_value());
  EXPECT_FALSE(b.detached());
  EXPECT_EQ(b.data(), data);
}

TEST_F(UntransferableTest, MarkedBufferIsStillClonedByCopy) {
  ArrayBuffer b = ArrayBuffer::copy_of("copied");
  mark_as_untransferable(b);
  const Result<Value> c = structured_clone(Value(b));
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  ASSERT_TRUE(c->is_array_buffer());
  EXPECT_EQ(c->if_array_buffer()->to_string(), "copied");
  EXPECT_FALSE(c->if_array_buffer()->same_buffer(b));
  EXPECT_FALSE(is_marked_as_untransferable(*c->if_array_buffer()));  // a new buffer

  MessageChannel ch;
  ASSERT_TRUE(ch.port1.post_message(Value(Array{b, b})).ok());
  std::optional<MessageEvent> e = receive_message_on_port(ch.port2);
  ASSERT_TRUE(e.has_value());
  const Value* first = e->data.at(0);
  const Value* second = e->data.at(1);
  ASSERT_TRUE(first && first->is_array_buffer() && second && second->is_array_buffer());
  EXPECT_EQ(first->if_array_buffer()->to_string(), "copied");
  EXPECT_TRUE(first->if_array_buffer()->same_buffer(*second->if_array_buffer()));  // aliasing kept
  EXPECT_FALSE(b.detached());
}

TEST_F(UntransferableTest, ViewOverAMarkedBufferTravelsByCopyButItsBufferCannotBeListed) {
  ArrayBuffer b = ArrayBuffer::create(8);
  mark_as_untransferable(b);
  auto view = TypedArray::create(ViewKind::kInt32, b);
  ASSERT_TRUE(view.ok());
  ArrayBuffer list[] = {b};
  EXPECT_EQ(structured_clone(Value(*view), list).code(), ErrorCode::kDataCloneError);
  EXPECT_FALSE(b.detached());
  const Result<Value> copy = structured_clone(Value(*view));
  ASSERT_TRUE(copy.ok());
  EXPECT_EQ(*copy, Value(*view));
}

}  // namespace
}  // namespace weave
