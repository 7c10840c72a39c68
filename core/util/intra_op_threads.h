// LibTorch's intra-op threads, per calling thread.
//
// Why per thread: LibTorch's CPU kernels run on OpenMP (its bundled
// libgomp). Every thread that runs a parallel region keeps a team of pool
// threads for the life of the process, and once the process holds more of
// them than it has CPUs, libgomp stops letting idle team members spin:
// every parallel region then pays futex wake-ups. dylora-serve's encoder
// loaded on the main thread, merges ran on the merger's thread and batches
// on a worker, so on 2 cores a batch of one sentence took 13.8 ms served
// against 8.1 ms in a single-threaded benchmark (measured; a chain of
// MiniLM's linears at 25 rows: 4.9 ms, 7.7 ms with one more idle team).
// So a server makes one thread LibTorch's default (at::set_num_threads(1):
// the calling thread and every thread that first runs LibTorch code later)
// and gives the cores to its batch workers alone.
#pragma once

namespace dylora {

// The calling thread's intra-op threads (OpenMP, and MKL's own setting,
// where LibTorch has MKL), leaving the default for other threads as it
// is. `threads` > 0. at::get_num_threads() on this thread returns it after.
void SetThisThreadsIntraOpThreads(int threads);

}  // namespace dylora
