# Compiler settings: warnings, sanitizers and ccache.

find_program(GLIMPSE_CCACHE ccache)
if(GLIMPSE_CCACHE AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
  # The sloppiness settings let ccache cache sources compiled with a precompiled header.
  set(CMAKE_CXX_COMPILER_LAUNCHER
      ${CMAKE_COMMAND} -E env CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
      ${GLIMPSE_CCACHE})
  message(STATUS "glimpse: compiling through ccache (${GLIMPSE_CCACHE})")
endif()

add_library(glimpse_warnings INTERFACE)
target_compile_options(glimpse_warnings INTERFACE -Wall -Wextra -Wno-unused-parameter)

if(GLIMPSE_SANITIZE)
  set(GLIMPSE_SANITIZER_FLAGS -fsanitize=address,undefined -fno-omit-frame-pointer
                              -fno-sanitize-recover=undefined)
  add_compile_options(${GLIMPSE_SANITIZER_FLAGS})
  add_link_options(${GLIMPSE_SANITIZER_FLAGS})
  message(STATUS "glimpse: AddressSanitizer and UndefinedBehaviorSanitizer on")
endif()

# The precompiled header holds ATen (about 290 MB): it cuts a torch-using source from ~11 s to
# ~4 s, but costs a torch-free source ~2.5 s to load. Sources that mention neither ATen nor torch
# compile without it.
function(glimpse_skip_pch_for_light_sources)
  foreach(src ${ARGN})
    file(READ ${src} text)
    if(NOT text MATCHES "ATen/|torch/|glimpse/core/tensor\\.h|glimpse/model/")
      set_source_files_properties(${src} PROPERTIES SKIP_PRECOMPILE_HEADERS ON)
    endif()
  endforeach()
endfunction()

# Executables reuse the library's header; they must compile with -fPIC as it was built.
function(glimpse_reuse_pch target)
  target_precompile_headers(${target} REUSE_FROM glimpse)
  target_compile_options(${target} PRIVATE -fPIC)
  glimpse_skip_pch_for_light_sources(${ARGN})
endfunction()
