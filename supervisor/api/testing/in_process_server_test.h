// Fixture for tests that drive a real ApiServer over its unix socket: the
// server serves a FakeVmService from its own io thread, in a temp dir removed
// after the test. Header-only, shared by the API's and the CLI's tests.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <future>
#include <memory>
#include <string>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <gtest/gtest.h>

#include "supervisor/api/api_server.h"
#include "supervisor/api/testing/fake_vm_service.h"

namespace agentvm::api::testing {

class InProcessServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/agentvm-api-test-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    options_.socket_path = dir_ + "/agentvm.sock";
  }

  void TearDown() override {
    StopServer();
    std::filesystem::remove_all(dir_);
  }

  void StartServer() {
    server_ = std::make_unique<ApiServer>(io_, fake_, options_);
    auto started = server_->Start();
    ASSERT_TRUE(started) << started.error().message;
    thread_ = std::thread([this] { io_.run(); });
  }

  void StopServer() {
    if (!thread_.joinable()) return;
    OnIo([this] { server_->Stop(); });
    io_.stop();
    thread_.join();
    server_.reset();
  }

  // A running VM `id` in the fake, for tests that exec in it.
  void AddRunningVm(const std::string& id) {
    OnIo([this, id] {
      VmInfo vm;
      vm.id = id;
      vm.state = VmState::kRunning;
      fake_.vms[vm.id] = vm;
    });
  }

  // Runs `f` on the server's thread, where the fake's state lives, and waits.
  template <class F>
  void OnIo(F f) {
    std::promise<void> done;
    boost::asio::post(io_, [&] {
      f();
      done.set_value();
    });
    done.get_future().wait();
  }

  std::string dir_;
  ApiOptions options_;
  FakeVmService fake_;
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_ =
      boost::asio::make_work_guard(io_);
  std::unique_ptr<ApiServer> server_;
  std::thread thread_;
};

}  // namespace agentvm::api::testing
