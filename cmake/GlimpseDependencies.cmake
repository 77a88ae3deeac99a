# Every dependency comes from a Debian package (scripts/setup.sh installs them).

find_package(Torch REQUIRED)               # libtorch-dev
# libtorch runs at::parallel_for through OpenMP, and the template is compiled into the caller:
# without -fopenmp every at::parallel_for in glimpse's own kernels would run on one thread.
find_package(OpenMP REQUIRED COMPONENTS CXX)
find_package(nlohmann_json 3.10 REQUIRED)  # nlohmann-json3-dev
find_package(CLI11 REQUIRED)               # libcli11-dev
find_package(OpenCV REQUIRED COMPONENTS core imgproc imgcodecs)  # libopencv-dev
# JPEG and PNG are decoded directly, so that their errors and warnings never reach stderr.
find_package(JPEG REQUIRED)                # libjpeg62-turbo-dev
find_package(PNG REQUIRED)                 # libpng-dev
find_package(PkgConfig REQUIRED)
pkg_check_modules(GLIMPSE_FFMPEG REQUIRED IMPORTED_TARGET libavformat libavcodec libavutil libswscale)
pkg_check_modules(GLIMPSE_PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)
pkg_check_modules(GLIMPSE_UTF8PROC REQUIRED IMPORTED_TARGET libutf8proc)
# libutf8proc.pc adds -DUTF8PROC_EXPORTS (a Windows dllexport switch). It would make the library's
# compile flags differ from the tests', so that they could not share the precompiled header.
set_property(TARGET PkgConfig::GLIMPSE_UTF8PROC PROPERTY INTERFACE_COMPILE_OPTIONS "")
# libsentencepiece bundles and exports its own protobuf-lite, which clashes with the libprotobuf
# that libtorch loads (a crash in static initialisation). It is linked only into a small plug-in
# that glimpse dlopens with RTLD_LOCAL | RTLD_DEEPBIND.
pkg_check_modules(GLIMPSE_SENTENCEPIECE REQUIRED IMPORTED_TARGET sentencepiece)
# Open MPI (openmpi-bin, libopenmpi-dev): only the command-line tool links it, so that `mpirun -n N
# glimpse eval` shards a data set across ranks; the library never initialises MPI.
set(MPI_CXX_SKIP_MPICXX ON)  # the C API from C++, not the deprecated C++ bindings
find_package(MPI REQUIRED COMPONENTS CXX)

if(GLIMPSE_BUILD_TESTS)
  find_package(GTest REQUIRED)             # libgtest-dev
endif()
