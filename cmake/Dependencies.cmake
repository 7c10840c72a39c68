# Every dependency but LibTorch comes from Debian's packages
# (scripts/bootstrap.sh installs them).
# -pthread everywhere: gRPC and CLI11 add it, and the shared precompiled
# header must be built with the same flags as every file that uses it.
set(THREADS_PREFER_PTHREAD_FLAG ON)
find_package(Threads REQUIRED)
find_package(absl CONFIG REQUIRED)
find_package(nlohmann_json CONFIG REQUIRED)
find_package(spdlog CONFIG REQUIRED)
find_package(CLI11 CONFIG REQUIRED)
find_package(Protobuf REQUIRED)
find_package(gRPC CONFIG REQUIRED)
find_package(prometheus-cpp CONFIG REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(UTF8PROC REQUIRED IMPORTED_TARGET libutf8proc)
find_program(DYLORA_GRPC_CPP_PLUGIN grpc_cpp_plugin REQUIRED)
if(DYLORA_BUILD_TESTS)
  find_package(GTest CONFIG REQUIRED)
endif()
if(DYLORA_BUILD_BENCHMARKS)
  find_package(benchmark CONFIG REQUIRED)
endif()
