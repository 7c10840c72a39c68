// dylora-client infer: classify texts with one adapter and print one line
// per text (label, scores) under a header per request (rank used, rank
// source, execution path, timings), or JSON for scripts.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "client/classifier.h"
#include "client/connection.h"

namespace dylora::client {

// The server's default limit of texts per request.
inline constexpr int kDefaultMaxTextsPerRequest = 64;

struct InferOptions {
  ConnectionOptions connection;
  std::string adapter;             // required
  std::vector<std::string> texts;  // "-": stdin
  std::string file;                // one text per line; "-": stdin
  RankChoice rank;
  Protocol protocol = Protocol::kDyloraV1;
  int batch = 0;  // texts per request; 0: all, in requests of up to 64
  bool json = false;
};

// Returns the exit code (client/exit_codes.h); `in` is read for "-".
int RunInfer(const InferOptions& options, std::istream& in, std::ostream& out,
             std::ostream& err);

}  // namespace dylora::client
