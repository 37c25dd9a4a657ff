// The audit log over the real server: one JSON line per call that changes
// something, with the caller's uid, and nothing of the request's body;
// size-based rotation keeps one old file.
#include "supervisor/api/audit_log.h"

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "supervisor/api/testing/in_process_server_test.h"

namespace agentvm::api {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using nlohmann::json;

// One request on its own connection; the answer's status.
int Call(const std::string& socket_path, http::verb method, const std::string& target, const std::string& body = "") {
  asio::io_context io;
  asio::local::stream_protocol::socket socket(io);
  socket.connect(asio::local::stream_protocol::endpoint(socket_path));
  http::request<http::string_body> request{method, target, 11};
  request.set(http::field::host, "localhost");
  request.body() = body;
  request.prepare_payload();
  http::write(socket, request);
  beast::flat_buffer buffer;
  http::response<http::string_body> response;
  http::read(socket, buffer, response);
  return response.result_int();
}

std::vector<std::string> LinesOf(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

class ApiAuditTest : public testing::InProcessServerTest {
 protected:
  void SetUp() override {
    InProcessServerTest::SetUp();
    audit_path_ = dir_ + "/log/audit.jsonl";
    options_.audit_log_path = audit_path_;
  }
  std::string audit_path_;
};

TEST_F(ApiAuditTest, OneLinePerChangingCallWithTheCallersUidAndNoBody) {
  StartServer();
  const std::string sock = options_.socket_path;
  EXPECT_EQ(Call(sock, http::verb::post, "/v1/vms", R"({"image":"tiny"})"), 201);
  EXPECT_EQ(Call(sock, http::verb::get, "/v1/vms"), 200);  // reads are not audited
  EXPECT_EQ(Call(sock, http::verb::post, "/v1/vms/vm-1/exec",
                 R"({"argv":["out:hi"],"env":{"API_TOKEN":"hunter2-secret"}})"),
            200);
  EXPECT_EQ(Call(sock, http::verb::put, "/v1/vms/vm-1/files?path=/etc/secret.conf", "file-contents-xyzzy"), 204);
  EXPECT_EQ(Call(sock, http::verb::delete_, "/v1/vms/vm-9"), 404);
  EXPECT_EQ(Call(sock, http::verb::delete_, "/v1/vms/vm-1?force=true"), 204);
  // A call's line is written once its answer is sent, so the client can
  // read the answer a moment before the line is there.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (LinesOf(audit_path_).size() < 5 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  StopServer();

  auto lines = LinesOf(audit_path_);
  ASSERT_EQ(lines.size(), 5u);
  std::vector<std::string> routes;
  for (const std::string& text : lines) {
    json line = json::parse(text);  // each line is one valid JSON object
    EXPECT_EQ(line["uid"], ::getuid());
    EXPECT_EQ(line["gid"], ::getgid());
    EXPECT_EQ(line["pid"], ::getpid());
    EXPECT_EQ(line["time"].get<std::string>().back(), 'Z');
    EXPECT_GE(line["duration_ms"], 0);
    routes.push_back(line["route"]);
    EXPECT_EQ(text.find("hunter2"), std::string::npos) << text;
    EXPECT_EQ(text.find("xyzzy"), std::string::npos) << text;
    EXPECT_EQ(text.find("secret.conf"), std::string::npos) << "the query string is not logged: " << text;
  }
  EXPECT_EQ(routes, (std::vector<std::string>{"create_vm", "exec", "put_file", "delete_vm", "delete_vm"}));
  json create = json::parse(lines[0]);
  EXPECT_EQ(create["method"], "POST");
  EXPECT_EQ(create["path"], "/v1/vms");
  EXPECT_EQ(create["status"], 201);
  EXPECT_EQ(create["outcome"], "ok");
  json missing = json::parse(lines[3]);
  EXPECT_EQ(missing["vm"], "vm-9");
  EXPECT_EQ(missing["status"], 404);
  EXPECT_EQ(missing["outcome"], "error");
  EXPECT_EQ(json::parse(lines[1])["vm"], "vm-1");
}

TEST_F(ApiAuditTest, EveryLifecycleEventIsALineToo) {
  StartServer();
  OnIo([&] {
    fake_.events.Publish("created", "vm-1", {{"image", "tiny"}});
    fake_.events.Publish("exec_finished", "vm-1", {{"exec", 2}, {"exit_code", 0}, {"ms", 40}});
    fake_.events.Publish("failed", "vm-1", {{"reason", "qemu exited"}});
  });
  StopServer();
  // A daemon that stopped its API still tells of the VMs it stops (no io
  // thread runs now: published from here).
  fake_.events.Publish("removed", "vm-1");
  auto lines = LinesOf(audit_path_);
  ASSERT_EQ(lines.size(), 4u);
  std::vector<std::string> types;
  for (const std::string& text : lines) {
    json line = json::parse(text);
    types.push_back(line["event"]);
    EXPECT_EQ(line["vm"], "vm-1");
    EXPECT_FALSE(line.contains("method")) << text;
    const std::string time = line["time"];
    EXPECT_EQ(time.size(), 24u) << time;  // 2026-12-04T21:22:29.123Z
    EXPECT_EQ(time.back(), 'Z') << time;
  }
  EXPECT_EQ(types, (std::vector<std::string>{"created", "exec_finished", "failed", "removed"}));
  json finished = json::parse(lines[1]);
  EXPECT_EQ(finished["seq"], 2);
  EXPECT_EQ(finished["exit_code"], 0);
  EXPECT_EQ(json::parse(lines[2])["reason"], "qemu exited");
}

TEST(AuditLogTest, RotatesBySizeKeepingOneOldFile) {
  char pattern[] = "/tmp/agentvm-audit-XXXXXX";
  const std::string dir = ::mkdtemp(pattern);
  const std::string path = dir + "/audit.jsonl";
  AuditRecord record{.time_ms = 0, .uid = 0, .gid = 0, .pid = 1, .method = "POST", .path = "/v1/vms",
                     .route = "create_vm", .vm = "vm-1", .status = 201, .duration_ms = 5};
  const std::size_t line = AuditLine(record).size();
  auto log = AuditLog::Open(path, /*max_bytes=*/line * 3);
  ASSERT_TRUE(log) << log.error().message;
  for (int i = 0; i < 7; ++i) (*log)->Write(record);
  // 7 lines, 3 per file: the current file holds the last 1, ".1" the 3 before.
  EXPECT_EQ(LinesOf(path).size(), 1u);
  EXPECT_EQ(LinesOf(path + ".1").size(), 3u);
  EXPECT_FALSE(std::filesystem::exists(path + ".2"));
  EXPECT_EQ(std::filesystem::status(path).permissions() & std::filesystem::perms::others_read,
            std::filesystem::perms::none);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace agentvm::api
