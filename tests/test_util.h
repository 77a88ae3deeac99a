#pragma once

// Helpers shared by the tests: where the fixtures are, temporary folders, running the CLI.

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

namespace glimpse::test {

// ../shared/fixtures (or $GLIMPSE_FIXTURES). Empty when absent; golden tests then skip, unless
// GLIMPSE_REQUIRE_FIXTURES=1 (set by .ci/run), which makes a missing folder a failure.
std::string fixtures_dir();

// Skips (or fails, see above) the current test when the fixtures are absent.
#define GLIMPSE_REQUIRE_FIXTURES()                                     \
  do {                                                                 \
    if (::glimpse::test::fixtures_dir().empty()) {                     \
      if (::glimpse::test::fixtures_required()) {                      \
        FAIL() << "fixtures not found and GLIMPSE_REQUIRE_FIXTURES=1"; \
      }                                                                \
      GTEST_SKIP() << "fixtures not found (set GLIMPSE_FIXTURES)";     \
    }                                                                  \
  } while (0)

bool fixtures_required();

// A fresh folder under the system temp dir, removed when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

struct CommandResult {
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;
  std::string out;  // stdout and stderr, merged
};

// Runs the built `glimpse` binary with the given arguments (shell-quoted here).
CommandResult run_cli(const std::vector<std::string>& args);

// The last non-empty line of a command's output: where --json commands print their object.
std::string last_line(const std::string& out);

}  // namespace glimpse::test
