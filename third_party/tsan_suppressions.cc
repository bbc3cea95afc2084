// ThreadSanitizer suppressions for every weave binary that uses the queue
// (tests, the demo, benchmarks): link //third_party:tsan_suppressions.
//
// moodycamel::ConcurrentQueue hands a drained block back to its producer
// through relaxed loads plus std::atomic_thread_fence(acquire) (Block::
// is_empty), which ThreadSanitizer does not model (g++ says so with -Wtsan,
// silenced in .bazelrc). Every reuse of a queue block is then reported as a
// race between the consumer's dequeue (move out, destroy) and the producer's
// enqueue into the same slot; upstream calls it a false positive
// (cameron314/concurrentqueue issues 49 and 62). Suppressed only where the
// producer's enqueue is one side of the race.
#if defined(__SANITIZE_THREAD__)
extern "C" const char* __tsan_default_suppressions() {
  return "race:moodycamel::ConcurrentQueue<*>::ExplicitProducer::enqueue\n"
         "race:moodycamel::ConcurrentQueue<*>::ImplicitProducer::enqueue\n";
}
#endif
