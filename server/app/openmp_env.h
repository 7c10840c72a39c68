// dylora-serve's OpenMP default: one thread, for every thread of the
// process that touches LibTorch, except the batch workers, which set their
// own (--threads; core/util/intra_op_threads.h).
//
// Why the environment: a thread's OpenMP team size starts from libgomp's
// global default, which only OMP_NUM_THREADS sets, and libgomp reads it
// once, when it loads (before main). oneDNN and MKL size their teams from
// it on any thread LibTorch has not configured (the merger, gRPC threads
// loading an adapter), and every such team stays for the life of the
// process. With more team threads than CPUs, libgomp stops spinning and
// every parallel region pays futex wake-ups: on 2 cores that made fp32
// serving of one sentence at a time 1.9x slower (70 against 125
// sentences/s, measured with dylora-client bench at concurrency 1).
#pragma once

namespace dylora::serving {

// Call first thing in main, before any thread starts. When OMP_NUM_THREADS
// is unset, sets it to 1 and re-executes this binary (/proc/self/exe) with
// the same arguments; the process keeps its pid, file descriptors and
// signal mask. Returns when OMP_NUM_THREADS was already set (it is then
// honoured) or the re-exec failed (a warning says so).
void ReexecWithOneOpenMpThreadByDefault(char** argv);

// A warning, once logging is set up, when OMP_NUM_THREADS asks for more
// than one thread.
void WarnAboutOpenMpEnvironment();

}  // namespace dylora::serving
