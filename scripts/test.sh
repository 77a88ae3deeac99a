#!/usr/bin/env bash
# Sets up glimpse (scripts/setup.sh), runs the whole test suite through CTest, then the unit tests
# again in a build with AddressSanitizer and UndefinedBehaviorSanitizer.
#
#   scripts/test.sh [--no-sanitize]
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
sanitize=1
[ "${1:-}" = "--no-sanitize" ] && sanitize=0

"$root/scripts/setup.sh"
ctest --test-dir "$root/build/release" --output-on-failure -j "$(nproc)"

if [ "$sanitize" = 1 ]; then
  "$root/scripts/setup.sh" --skip-packages --build-dir "$root/build/asan" --build-type RelWithDebInfo \
    --sanitize
  # libtorch is not instrumented: container-overflow checks would misfire on vectors it fills,
  # and its static registries are never freed by design. The unit tests run in one process:
  # loading libtorch under ASan takes seconds, once per process.
  ASAN_OPTIONS=detect_leaks=0:detect_container_overflow=0 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$root/build/asan/bin/glimpse_tests" --gtest_filter='-*Golden*:*Slow*'
  echo "sanitizers: unit tests passed under AddressSanitizer and UndefinedBehaviorSanitizer"
fi
