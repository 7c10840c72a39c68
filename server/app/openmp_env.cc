#include "server/app/openmp_env.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include "absl/strings/numbers.h"

namespace dylora::serving {
namespace {
constexpr char kVariable[] = "OMP_NUM_THREADS";
}  // namespace

void ReexecWithOneOpenMpThreadByDefault(char** argv) {
  if (std::getenv(kVariable) != nullptr) return;
  if (setenv(kVariable, "1", /*overwrite=*/1) != 0) return;
  execv("/proc/self/exe", argv);
  // Still here: run on, with libgomp's default of one thread per CPU.
  const int error = errno;
  unsetenv(kVariable);
  spdlog::warn(
      "could not re-execute with {}=1 ({}); set it in the environment, or "
      "every thread that touches LibTorch keeps an OpenMP team of one thread "
      "per CPU and batches slow down",
      kVariable, std::strerror(error));
}

void WarnAboutOpenMpEnvironment() {
  const char* value = std::getenv(kVariable);
  int threads = 0;
  if (value == nullptr || (absl::SimpleAtoi(value, &threads) && threads <= 1))
    return;
  spdlog::warn(
      "{}={} gives every thread that touches LibTorch an OpenMP team of that "
      "size; dylora-serve sets its batch workers' threads itself (--threads), "
      "so leave {} unset or 1, or batches slow down once the teams outnumber "
      "the cores",
      kVariable, value, kVariable);
}

}  // namespace dylora::serving
