#!/usr/bin/env bash
# Installs glimpse's build and run-time dependencies from Debian packages, then configures and
# builds glimpse. Safe to run again: packages already present are not reinstalled, and the build
# is incremental.
#
#   scripts/setup.sh [--build-dir DIR] [--build-type TYPE] [--sanitize] [--no-tests]
#                    [--skip-packages]
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir="$root/build/release"
build_type=Release
sanitize=OFF
tests=ON
install_packages=1
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build_dir=$2; shift 2 ;;
    --build-type) build_type=$2; shift 2 ;;
    --sanitize) sanitize=ON; shift ;;
    --no-tests) tests=OFF; shift ;;
    --skip-packages) install_packages=0; shift ;;
    *) echo "setup.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
done

# Exactly what glimpse needs. libopenblas0-openmp matters at run time: without it Debian's libtorch
# runs fp32 matmuls on the reference BLAS (measured: 6 GFLOP/s against 100 with OpenBLAS).
packages=(
  build-essential cmake ninja-build pkg-config ccache
  libtorch-dev libopenblas0-openmp
  libopencv-dev libjpeg62-turbo-dev libpng-dev
  libavformat-dev libavcodec-dev libavutil-dev libswscale-dev
  nlohmann-json3-dev libgtest-dev libpcre2-dev libutf8proc-dev libcli11-dev libsentencepiece-dev
  openmpi-bin libopenmpi-dev
)

if [ "$install_packages" = 1 ]; then
  missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    echo "setup.sh: installing ${missing[*]}"
    $sudo apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${missing[@]}"
  fi
fi

cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE="$build_type" \
  -DGLIMPSE_SANITIZE="$sanitize" -DGLIMPSE_BUILD_TESTS="$tests"
cmake --build "$build_dir" -j "$(nproc)"
