// ThreadSanitizer suppressions for the demo: the same as the tests' (see
// tests/tsan_suppressions.cc for why): moodycamel::ConcurrentQueue's block
// reuse is ordered by fences that TSan does not model, a known false
// positive, suppressed only where the producer's enqueue is one side of the
// race. That target is testonly, so a binary cannot link it; this copy must
// stay in step with it.
#if defined(__SANITIZE_THREAD__)
extern "C" const char* __tsan_default_suppressions() {
  return "race:moodycamel::ConcurrentQueue<*>::ExplicitProducer::enqueue\n"
         "race:moodycamel::ConcurrentQueue<*>::ImplicitProducer::enqueue\n";
}
#endif
