// dylora-client's command line: global connection options, one subcommand
// (infer, sweep, bench, adapters, load, unload, health) and its flags,
// dispatched to the Run* functions. In the library so tests can drive the
// whole command line in-process; main.cc only forwards argv.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace dylora::client {

// `args` without the program name. Returns the exit code (client/exit_codes.h):
// --help prints to `out` and returns 0; a bad command line prints CLI11's
// message to `err` and returns 2.
int RunClientCommandLine(const std::vector<std::string>& args, std::istream& in,
                         std::ostream& out, std::ostream& err);

}  // namespace dylora::client
