// Pins down what a Worker's start promises when it fails (workers/worker.h,
// the constructor): nothing started, and the caller keeps its data — the
// buffers in options.transfer_list stay attached with their bytes and the
// ports in it stay open and usable (D9 of the 2026-12-07 review: the transfer
// used to be committed before pthread_create, which can fail with EAGAIN).
//
// Two ways to make the thread creation fail: the kernel refusing it for real
// (a forked child with RLIMIT_AS too small for the requested stack, so the
// limit cannot hurt the test runner), and a test-only hook that makes the
// next pthread_create report an error (workers/internal/testing_hooks.h).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <optional>
#include <string>
#include <system_error>
#include <utility>

#include "channel/array_buffer.h"
#include "channel/message_port.h"
#include "channel/value.h"
#include "loop/event_loop.h"
#include "tests/test_util.h"
#include "tests/workers/worker_test_util.h"
#include "workers/internal/testing_hooks.h"
#include "workers/worker.h"

namespace weave {
namespace {

using WorkerTest = ::weave::testing::WorkerTest;

// The process's virtual size in bytes (/proc/self/statm, first field).
long virtual_bytes() {
  std::ifstream statm("/proc/self/statm");
  long pages = 0;
  statm >> pages;
  return pages * sysconf(_SC_PAGESIZE);
}

// In a forked child: a Worker asking for a 1 GiB stack under an address-space
// limit 256 MiB above what the process maps is refused by the kernel (EAGAIN,
// as under pids.max or RLIMIT_NPROC). The child's exit status says what went
// wrong: 0 = the start failed with system_error and the caller kept its data.
int start_under_an_address_space_limit() {
  ArrayBuffer buf = ArrayBuffer::copy_of("kept bytes");
  MessageChannel side;
  WorkerOptions options;
  options.worker_data = Object{{"buf", buf}};
  options.transfer_list.add(buf).add(std::move(side.port2));
  options.resource_limits.stack_size_bytes = ResourceLimits::kMaxStackBytes;

  rlimit limit{};
  limit.rlim_cur = limit.rlim_max = static_cast<rlim_t>(virtual_bytes() + (256L << 20));
  if (setrlimit(RLIMIT_AS, &limit) != 0) return 20;
  bool refused = false;
  try {
    Worker w([] {}, std::move(options));
  } catch (const std::system_error& e) {
    refused = true;
    std::fprintf(stderr, "refused as expected: %s\n", e.what());
  } catch (...) {
    return 21;  // another error than system_error
  }
  if (!refused) return 22;  // the limit did not make the start fail
  if (buf.detached()) return 23;
  if (buf.to_string() != "kept bytes") return 24;
  if (options.transfer_list.ports.size() != 1) return 25;
  // The port the caller listed still works: a post on it reaches its peer.
  if (!options.transfer_list.ports[0].post_message("still mine").ok()) return 26;
  std::optional<MessageEvent> got = receive_message_on_port(side.port1);
  if (!got || got->data != Value("still mine")) return 27;
  return 0;
}

TEST_F(WorkerTest, ThreadCreationRefusedByTheKernelLeavesTheCallersTransferListIntact) {
#if defined(WEAVE_TSAN) || defined(WEAVE_ASAN)
  GTEST_SKIP() << "the sanitizers' shadow mappings make an address-space limit meaningless";
#endif
  const pid_t child = fork();
  ASSERT_NE(child, -1);
  if (child == 0) _exit(start_under_an_address_space_limit());
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "see start_under_an_address_space_limit for the code";
}

// Clears the injected failure whatever the test does.
struct FailureInjection {
  FailureInjection(int error, int count) {
    internal::fail_next_thread_creations_for_testing(error, count);
  }
  ~FailureInjection() { internal::fail_next_thread_creations_for_testing(0); }
};

TEST_F(WorkerTest, AFailedThreadCreationIsASystemErrorAndTheCallerKeepsItsBufferAndPort) {
  ArrayBuffer buf = ArrayBuffer::copy_of("kept bytes");
  MessageChannel side;
  WorkerOptions options;
  options.worker_data = Object{{"buf", buf}};
  options.transfer_list.add(buf).add(std::move(side.port2));
  {
    FailureInjection eagain(EAGAIN, 1);
    try {
      Worker w([] {}, std::move(options));
      FAIL() << "the start did not report the failed thread creation";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code().value(), EAGAIN);
      EXPECT_THAT(e.what(), ::testing::HasSubstr("cannot start the thread"));
    }
  }
  EXPECT_FALSE(buf.detached()) << "nothing started, so nothing may be transferred";
  EXPECT_EQ(buf.to_string(), "kept bytes");
  ASSERT_EQ(options.transfer_list.ports.size(), 1u) << "the caller's port was taken";
  ASSERT_TRUE(options.transfer_list.ports[0].post_message("still mine").ok());
  std::optional<MessageEvent> got = receive_message_on_port(side.port1);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->data, Value("still mine"));

  // The very same options start a worker once threads can be created again:
  // the buffer arrives as the same memory and the port works from there.
  const auto address = reinterpret_cast<std::uintptr_t>(buf.data());
  Worker w(
      [] {
        const ArrayBuffer* b = worker_data().find("buf")->if_array_buffer();
        MessagePort port = std::move(worker_data_ports().at(0));
        (void)port.post_message(Object{
            {"address", static_cast<std::int64_t>(reinterpret_cast<std::uintptr_t>(b->data()))},
            {"text", b->to_string()}});
      },
      std::move(options));
  EXPECT_TRUE(buf.detached()) << "a started worker took the buffer";
  std::optional<int> code;
  w.on_exit([&](int c) { code = c; });
  run_loop();
  EXPECT_EQ(code, 0);
  std::optional<MessageEvent> report = receive_message_on_port(side.port1);
  ASSERT_TRUE(report.has_value());
  EXPECT_EQ(static_cast<std::uintptr_t>(testing::int_of(*report->data.find("address"))), address);
  EXPECT_EQ(*report->data.find("text"), Value("kept bytes"));
}

TEST_F(WorkerTest, AStartRefusedAtTheCommitSendsItsParkedThreadAwayWithoutRunningTheEntry) {
  // The thread exists before worker_data is posted; a post that fails must
  // end it unstarted (the fixture checks that no thread is left).
  std::atomic<bool> ran{false};
  ArrayBuffer twice = ArrayBuffer::copy_of("twice");
  WorkerOptions options;
  options.worker_data = Value(twice);
  options.transfer_list.add(twice).add(twice);
  EXPECT_THROW(Worker([&ran] { ran = true; }, std::move(options)), std::invalid_argument);
  EXPECT_FALSE(ran.load());
  EXPECT_FALSE(twice.detached());
  EXPECT_EQ(options.transfer_list.buffers.size(), 2u);
}

TEST_F(WorkerTest, ManyFailedStartsInARowLeaveNoThreadPortOrKeepAliveBehind) {
  MessageChannel side;
  WorkerOptions options;
  options.transfer_list.add(std::move(side.port2));
  FailureInjection eagain(EAGAIN, 50);
  for (int i = 0; i < 50; ++i) {
    EXPECT_THROW(Worker([] {}, std::move(options)), std::system_error);
    ASSERT_EQ(options.transfer_list.ports.size(), 1u);
  }
  EXPECT_FALSE(side.port1.closed()) << "the peer of the caller's port must stay open";
}

}  // namespace
}  // namespace weave
