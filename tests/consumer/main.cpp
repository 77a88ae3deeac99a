// Writes and reads back a safetensors file through the installed library.
#include <cstdio>
#include <cstring>
#include <string>

#include "glimpse/core/safetensors.h"
#include "glimpse/version.h"

int main(int argc, char** argv) {
  const std::string path = argc > 1 ? argv[1] : "consumer.safetensors";
  const float values[3] = {1.5f, -2.0f, 3.25f};
  glimpse::core::write_safetensors(
      path, {{"x", {glimpse::core::DType::F32, {3}, values, sizeof(values)}}});
  const auto file = glimpse::core::SafetensorsFile::open(path);
  const auto view = file.view("x");
  if (view.nbytes != sizeof(values) || std::memcmp(view.data, values, sizeof(values)) != 0) {
    std::fprintf(stderr, "round trip through the installed glimpse failed\n");
    return 1;
  }
  std::printf("glimpse %s (headers %s): ok\n", glimpse::version(), GLIMPSE_VERSION);
  return 0;
}
