// dylora-client export: downloads an adapter cut to one rank (explicit, a
// device profile's, or a policy's) as a plain PEFT LoRA adapter directory,
// so a device fetches exactly the slice it runs.
#pragma once

#include <iosfwd>
#include <string>

#include "client/classifier.h"
#include "client/connection.h"

namespace dylora::client {

struct ExportOptions {
  ConnectionOptions connection;
  std::string adapter;
  RankChoice rank;  // at most one of rank / profile / policy
  // Receives adapter_config.json and adapter_model.safetensors, atomically
  // (created when missing; other files in it are kept).
  std::string output_dir;
  bool json = false;
};

int RunExport(const ExportOptions& options, std::ostream& out,
              std::ostream& err);

}  // namespace dylora::client
