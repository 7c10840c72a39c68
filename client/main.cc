// dylora-client: the command-line client of dylora-serve.
//
//   dylora-client [--server HOST:PORT] [--timeout-s S] [--tls-ca PEM]
//                 [--token-file FILE] COMMAND ...
//   infer    --adapter NAME [--rank N | --profile P | --policy POLICY]
//            [--file FILE] [--batch N] [--kserve] [--json] [TEXT... | -]
//   sweep    --adapter NAME --task TASK [--data FILE] [--ranks 1-8]
//            [--limit N] [--batch 32] [--kserve] [--json | --csv]
//   bench    --adapter NAME [--concurrency C] [--requests N | --duration-s S]
//            [--rank-mix 1-8] [--texts-per-request B] [--file FILE] [--kserve]
//            [--json]
//   adapters [--json]
//   load     NAME PATH [--prewarm 8]      (admin: bearer token from
//   --token-file) unload   NAME                         (admin) health
//   [--service NAME]
//
// Exit codes (stable; scripts and the Docker HEALTHCHECK rely on them):
//   0  ok (health: SERVING)
//   1  the server refused or failed a request (health: not SERVING)
//   2  usage error: bad flags, unreadable input files
//   3  server unreachable (UNAVAILABLE): "cannot reach HOST:PORT (UNAVAILABLE):
//   ..." 4  an RPC ran past --timeout-s (DEADLINE_EXCEEDED)
#include <iostream>
#include <string>
#include <vector>

#include "client/cli.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return dylora::client::RunClientCommandLine(args, std::cin, std::cout,
                                              std::cerr);
}
