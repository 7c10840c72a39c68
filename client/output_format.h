// How a report is printed: an aligned table for people, JSON or CSV for
// scripts.
#pragma once

namespace dylora::client {

enum class OutputFormat { kTable, kJson, kCsv };

}  // namespace dylora::client
