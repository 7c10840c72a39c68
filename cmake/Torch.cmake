# LibTorch from the pinned PyPI wheel, unpacked by scripts/bootstrap.sh.
#
# CPU (default): an imported target over libtorch_cpu + libc10 only. We do not
# call find_package(Torch) here: the wheel is a CUDA build, and its CMake config
# would go looking for a CUDA toolkit that a CPU machine need not have.
# CUDA (-DDYLORA_CUDA=ON): the wheel's own TorchConfig, linking libtorch_cuda too.
set(DYLORA_TORCH_DIR "${DYLORA_DEPS_DIR}/libtorch")
if(NOT EXISTS "${DYLORA_TORCH_DIR}/lib/libtorch_cpu.so")
  message(FATAL_ERROR "LibTorch not found in ${DYLORA_TORCH_DIR}: run scripts/bootstrap.sh")
endif()

add_library(dylora_torch INTERFACE)
target_link_libraries(dylora_torch INTERFACE Threads::Threads)
target_compile_options(dylora_torch INTERFACE -pthread)
if(DYLORA_CUDA)
  set(Torch_DIR "${DYLORA_TORCH_DIR}/share/cmake/Torch")
  find_package(Torch REQUIRED CONFIG)
  target_link_libraries(dylora_torch INTERFACE ${TORCH_LIBRARIES})
  target_compile_definitions(dylora_torch INTERFACE DYLORA_WITH_CUDA=1)
else()
  target_link_libraries(dylora_torch INTERFACE
    "${DYLORA_TORCH_DIR}/lib/libtorch_cpu.so"
    "${DYLORA_TORCH_DIR}/lib/libc10.so")
endif()
# SYSTEM: warnings in LibTorch's headers are not ours to fix. The bundled
# protobuf/fmt headers were left out by the bootstrap, so this directory cannot
# shadow Debian's.
target_include_directories(dylora_torch SYSTEM INTERFACE
  "${DYLORA_TORCH_DIR}/include"
  "${DYLORA_TORCH_DIR}/include/torch/csrc/api/include")
# The wheel is built with the C++11 ABI (torch >= 2.7), like Debian's libraries.
target_compile_definitions(dylora_torch INTERFACE _GLIBCXX_USE_CXX11_ABI=1)
# Find libtorch (and the CUDA runtime sonames it names) next to itself at run time.
set(CMAKE_BUILD_RPATH "${DYLORA_TORCH_DIR}/lib")
set(CMAKE_INSTALL_RPATH "$ORIGIN/../lib")

# One precompiled header for every target that uses LibTorch: the heavy
# headers are parsed once per build instead of once per file.
add_library(dylora_torch_pch OBJECT "${PROJECT_SOURCE_DIR}/cmake/torch_pch.cc")
target_link_libraries(dylora_torch_pch PUBLIC dylora_torch)
target_precompile_headers(dylora_torch_pch PUBLIC
  "${PROJECT_SOURCE_DIR}/cmake/torch_pch.h")

# dylora_use_torch_pch(<target>): reuse the shared precompiled header.
function(dylora_use_torch_pch target)
  target_precompile_headers(${target} REUSE_FROM dylora_torch_pch)
endfunction()
