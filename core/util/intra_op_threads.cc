#include "core/util/intra_op_threads.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>

namespace dylora {
namespace {

// Looked up at run time: the OpenMP runtime and MKL are LibTorch's
// (libgomp and the MKL inside libtorch_cpu), not libraries we link, and a
// LibTorch build without MKL simply has no mkl_set_num_threads_local.
template <typename Fn>
Fn Lookup(const char* name) {
  return reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, name));
}

}  // namespace

void SetThisThreadsIntraOpThreads(int threads) {
  // LibTorch sets a thread's count from the default the first time the
  // thread asks for it; let it do that first, or it would undo ours.
  (void)at::get_num_threads();
  static const auto omp_set_num_threads =
      Lookup<void (*)(int)>("omp_set_num_threads");
  // MKL's C entry point (mkl_service.h maps mkl_set_num_threads_local to
  // it; the lower-case symbol is the Fortran one, which takes a pointer).
  static const auto mkl_set_num_threads_local =
      Lookup<int (*)(int)>("MKL_Set_Num_Threads_Local");
  if (omp_set_num_threads != nullptr) omp_set_num_threads(threads);
  if (mkl_set_num_threads_local != nullptr) mkl_set_num_threads_local(threads);
}

}  // namespace dylora
