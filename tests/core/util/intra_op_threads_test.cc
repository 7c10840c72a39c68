#include "core/util/intra_op_threads.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <thread>

#include "gtest/gtest.h"

namespace dylora {
namespace {

// Runs `fn` on a fresh thread and returns what it returns.
template <typename Fn>
int OnNewThread(Fn fn) {
  int result = 0;
  std::thread t([&] { result = fn(); });
  t.join();
  return result;
}

TEST(IntraOpThreadsTest, ThisThreadsCountLeavesOtherThreadsAtTheDefault) {
  at::set_num_threads(1);
  EXPECT_EQ(at::get_num_threads(), 1);
  // A thread that opts in runs its own count, and keeps it; a thread
  // started afterwards still gets the default.
  EXPECT_EQ(OnNewThread([] {
              SetThisThreadsIntraOpThreads(2);
              const int first = at::get_num_threads();
              // LibTorch's kernels still work there (a parallel op).
              at::Tensor x = at::ones({1 << 16});
              EXPECT_EQ(x.sum().item<double>(), 1 << 16);
              return first == at::get_num_threads() ? first : -1;
            }),
            2);
  EXPECT_EQ(OnNewThread([] { return at::get_num_threads(); }), 1);
  EXPECT_EQ(at::get_num_threads(), 1);
  // The default moves every thread that has not chosen.
  at::set_num_threads(2);
  EXPECT_EQ(OnNewThread([] { return at::get_num_threads(); }), 2);
}

}  // namespace
}  // namespace dylora
