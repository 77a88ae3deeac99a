#include "test_util.h"

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <random>
#include <sstream>

namespace glimpse::test {
namespace fs = std::filesystem;

std::string fixtures_dir() {
  const char* env = std::getenv("GLIMPSE_FIXTURES");
  const std::string dir = env && *env ? env : GLIMPSE_DEFAULT_FIXTURES;
  std::error_code ec;
  return fs::is_directory(dir, ec) ? dir : std::string();
}

bool fixtures_required() {
  const char* env = std::getenv("GLIMPSE_REQUIRE_FIXTURES");
  return env && std::string(env) == "1";
}

TempDir::TempDir() {
  std::random_device rd;
  for (int attempt = 0; attempt < 100; ++attempt) {
    path_ = fs::temp_directory_path() /
            ("glimpse-test-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
    if (fs::create_directory(path_)) return;
  }
  throw std::runtime_error("cannot create a temporary folder");
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

namespace {

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (const char c : s) {
    if (c == '\'') {
      q += "'\\''";
    } else {
      q += c;
    }
  }
  return q + "'";
}

}  // namespace

CommandResult run_cli(const std::vector<std::string>& args) {
  std::string cmd = shell_quote(GLIMPSE_CLI_PATH);
  for (const auto& a : args) cmd += " " + shell_quote(a);
  cmd += " 2>&1";
  CommandResult result;
  FILE* pipe = ::popen(cmd.c_str(), "r");
  if (pipe == nullptr) return result;
  std::array<char, 4096> buf{};
  std::size_t n = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0) result.out.append(buf.data(), n);
  const int status = ::pclose(pipe);
  if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.signal = WTERMSIG(status);
  }
  return result;
}

std::string last_line(const std::string& out) {
  std::string last;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty()) last = line;
  }
  return last;
}

}  // namespace glimpse::test
