// The scheduler state of a thread of this process, read from /proc: how a
// test or a benchmark knows, without sleeping, that a thread is asleep in the
// kernel (parked in its loop). Not testonly, so the benchmarks use it too.
#pragma once

#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

namespace weave::proc {

inline pid_t current_tid() { return static_cast<pid_t>(::syscall(SYS_gettid)); }

// The scheduler state of thread `tid` of this process: 'R' running, 'S' asleep
// in the kernel, ...; 0 if it is gone. Allocates nothing, so polling it does
// not contend with the observed thread for the allocator.
inline char thread_state(pid_t tid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/self/task/%d/stat", static_cast<int>(tid));
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[512];
  const ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
  // "tid (comm) S ...": comm may hold spaces and parentheses, so use the last ')'.
  const char* paren = std::strrchr(buf, ')');
  if (paren == nullptr || paren[1] == '\0' || paren[2] == '\0') return 0;
  return paren[2];
}

}  // namespace weave::proc
