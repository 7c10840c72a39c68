// Where tests find their inputs. Paths come from CMake (tests/CMakeLists.txt).
#pragma once

#include <filesystem>
#include <string>

#include <stdlib.h>

namespace dylora::testing {

// The repository root (fixtures live in tests/fixtures).
inline std::string SourceDir() { return DYLORA_TEST_SOURCE_DIR; }
inline std::string FixturesDir() { return SourceDir() + "/tests/fixtures"; }
// ../shared/data: real GLUE/NLG files, read-only.
inline std::string DataDir() { return DYLORA_TEST_DATA_DIR; }
// The real all-MiniLM-L6-v2 unpacked by scripts/bootstrap.sh.
inline std::string ModelDir() { return DYLORA_TEST_MODEL_DIR; }

// A fresh, empty directory for a test's outputs, removed by the destructor.
class ScopedTempDir {
 public:
  ScopedTempDir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "dylora-test-XXXXXX").string();
    path_ = ::mkdtemp(pattern.data()) ? pattern : "";
  }
  ~ScopedTempDir() {
    std::error_code ignored;
    if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
  }
  ScopedTempDir(const ScopedTempDir&) = delete;
  ScopedTempDir& operator=(const ScopedTempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace dylora::testing
