// Self-test input for check_thread_safety.py: reads a guarded member without
// its mutex, which the analysis must report (the test expects failure).
#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

class Counter {
 public:
  int Read() const { return value_; }  // no lock: must be reported

 private:
  mutable absl::Mutex mu_;
  int value_ ABSL_GUARDED_BY(mu_) = 0;
};

int ReadCounter(const Counter& counter) { return counter.Read(); }
