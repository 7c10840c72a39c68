// A real dylora-serve inside the test process: the real MiniLM backbone, a
// loopback port picked by the OS, real gRPC channels and stubs. Adapters are
// random (nonzero lora_B, so every rank computes something different) and
// written to a temp directory in the PEFT/DyLoRA layout, then loaded
// through the same path a deployment uses.
#pragma once

#include <ATen/ATen.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <memory>
#include <string>
#include <utility>

#include "gtest/gtest.h"
#include "server/app/grpc_server.h"
#include "tests/server/test_adapters.h"
#include "tests/test_paths.h"

namespace dylora::testing {

// Options for a small, fast test server on 127.0.0.1 with free ports.
inline serving::ServerOptions TestServerOptions() {
  serving::ServerOptions options;
  options.runtime.model = ModelDir();
  options.runtime.backbone_name = "minilm";
  options.runtime.threads = 1;
  options.runtime.batcher.max_queue_delay = absl::Milliseconds(1);
  options.runtime.batcher.workers = 2;
  options.host = "127.0.0.1";
  options.port = 0;
  options.metrics_host = "127.0.0.1";
  options.metrics_port = -1;  // tests that scrape turn it on (port 0)
  options.drain_timeout = absl::Seconds(10);
  options.runtime.profiles.Add("phone", 2).IgnoreError();
  options.runtime.profiles.Add("edge", 4).IgnoreError();
  options.runtime.profiles.Add("datacenter", 16).IgnoreError();
  return options;
}

class TestServer {
 public:
  explicit TestServer(serving::ServerOptions options = TestServerOptions()) {
    auto server = serving::DyloraServer::Start(std::move(options));
    EXPECT_TRUE(server.ok()) << server.status();
    if (!server.ok()) return;
    server_ = std::move(*server);
    channel_ =
        grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()),
                            grpc::InsecureChannelCredentials());
  }

  bool ok() const { return server_ != nullptr; }
  serving::DyloraServer& server() { return *server_; }
  std::shared_ptr<grpc::Channel> channel() const { return channel_; }
  const std::string& adapter_dir() const { return adapter_dir_.path(); }

  // Writes a random adapter and loads it as `name`; returns its directory.
  std::string AddAdapter(const std::string& name, uint64_t seed,
                         std::optional<HeadKind> head = std::nullopt) {
    const std::string path =
        WriteRandomAdapter(server_->runtime().encoder(), adapter_dir_.path(),
                           name + "-" + std::to_string(seed), seed, head);
    auto loaded = server_->runtime().LoadAdapter(name, path, {});
    EXPECT_TRUE(loaded.ok()) << loaded.status();
    return path;
  }

 private:
  ScopedTempDir adapter_dir_;
  std::unique_ptr<serving::DyloraServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

}  // namespace dylora::testing
