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

#include <cerrno>
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

}  // namespace
}  // namespace weave
