// The README's first program: a consumer thread with its own event loop
// answers messages from the main thread over a MessageChannel.
#include <cstdio>
#include <thread>

#include "channel/message_port.h"
#include "loop/event_loop.h"

int main() {
  weave::MessageChannel ch;
  std::thread worker([port = std::move(ch.port2)]() mutable {
    port.on_message([&](weave::MessageEvent& e) {
      auto n = e.get<std::int64_t>();
      if (!n) return port.close();  // not a number: we are done
      (void)port.post_message(*n * *n);
    });
    weave::run_loop();  // runs until the port closes
  });
  std::int64_t sum = 0;
  ch.port1.on_message([&](weave::MessageEvent& e) { sum += *e.get<std::int64_t>(); });
  ch.port1.on_close([] { std::puts("worker closed its port"); });
  for (std::int64_t i = 1; i <= 10; ++i) (void)ch.port1.post_message(i);
  (void)ch.port1.post_message("done");
  weave::run_loop();  // until the channel closed and every reply arrived
  worker.join();
  std::printf("sum of squares 1..10 = %lld\n", static_cast<long long>(sum));
  return sum == 385 ? 0 : 1;
}
