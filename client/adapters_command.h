// dylora-client adapters | load | unload: what the server serves, and the
// admin RPCs that change it (bearer token from --token-file).
#pragma once

#include <iosfwd>
#include <string>

#include "client/connection.h"
#include "dylora/v1/dylora.pb.h"

namespace dylora::client {

struct ListAdaptersOptions {
  ConnectionOptions connection;
  bool json = false;
};

// Every adapter: r range, alpha, labels, version, merged ranks and its rank
// table (best and smallest-within-tolerance marked).
int RunListAdapters(const ListAdaptersOptions& options, std::ostream& out,
                    std::ostream& err);

struct LoadAdapterOptions {
  ConnectionOptions connection;
  std::string name;
  std::string path;     // on the server's file system
  std::string prewarm;  // rank list ("8", "2,4,8", "1-4"); empty: none
};

int RunLoadAdapter(const LoadAdapterOptions& options, std::ostream& out,
                   std::ostream& err);

struct UnloadAdapterOptions {
  ConnectionOptions connection;
  std::string name;
};

int RunUnloadAdapter(const UnloadAdapterOptions& options, std::ostream& out,
                     std::ostream& err);

// Human-readable description of one adapter (several lines, each ending in
// a newline); shared with sweep's header.
std::string DescribeAdapter(const dylora::v1::AdapterInfo& info);

}  // namespace dylora::client
