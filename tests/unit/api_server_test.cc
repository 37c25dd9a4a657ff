// ApiServer end to end in one process: a real unix socket, a real HTTP client
// (Beast, synchronous, on the test thread) and a FakeVmService behind the
// server on its own io_context thread.
#include "supervisor/api/api_server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "supervisor/api/json_codec.h"
#include "supervisor/api/testing/fake_vm_service.h"
#include "supervisor/api/testing/in_process_server_test.h"

namespace agentvm::api {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using nlohmann::json;
using namespace std::chrono_literals;
using namespace std::string_literals;
using Socket = asio::local::stream_protocol::socket;

struct Reply {
  int status = 0;
  std::string content_type;
  std::string allow;
  bool chunked = false;
  std::string body;
  json Json() const { return json::parse(body); }
};

// One keep-alive connection to the server.
class TestClient {
 public:
  explicit TestClient(const std::string& path) : socket_(io_) {
    socket_.connect(asio::local::stream_protocol::endpoint(path));
  }

  void Send(const std::string& method, const std::string& target, const std::string& body = "",
            const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    http::request<http::string_body> request;
    request.method_string(method);
    request.target(target);
    request.version(11);
    request.set(http::field::host, "localhost");
    for (const auto& [name, value] : headers) request.set(name, value);
    request.body() = body;
    request.prepare_payload();
    // A server that refuses a large body answers and closes before reading
    // it all: the write then fails, and the answer is what matters.
    beast::error_code ignored;
    http::write(socket_, request, ignored);
  }

  Reply Receive() {
    http::response_parser<http::string_body> parser;
    parser.body_limit(256 << 20);
    http::read(socket_, buffer_, parser);
    return ToReply(parser.get());
  }

  Reply Call(const std::string& method, const std::string& target, const std::string& body = "",
             const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    Send(method, target, body, headers);
    return Receive();
  }

  // Reads a streamed response, noting when each chunk arrived.
  struct Chunk {
    std::string data;
    std::chrono::steady_clock::time_point at;
  };
  Reply ReceiveChunks(std::vector<Chunk>& chunks, bool stop_after_first = false) {
    http::response_parser<http::string_body> parser;
    http::read_header(socket_, buffer_, parser);
    std::string current;
    bool stop = false;
    auto on_body = [&](std::uint64_t remain, beast::string_view data, beast::error_code&) {
      current.append(data.data(), data.size());
      if (remain == data.size()) {
        chunks.push_back({std::move(current), std::chrono::steady_clock::now()});
        current.clear();
        if (stop_after_first) stop = true;
      }
      return data.size();
    };
    parser.on_chunk_body(on_body);
    while (!parser.is_done() && !stop) http::read_some(socket_, buffer_, parser);
    return ToReply(parser.get());
  }

  Socket& socket() { return socket_; }

 private:
  static Reply ToReply(const http::response<http::string_body>& response) {
    Reply reply;
    reply.status = response.result_int();
    reply.content_type = std::string(response[http::field::content_type]);
    reply.allow = std::string(response[http::field::allow]);
    reply.chunked = response.chunked();
    reply.body = response.body();
    return reply;
  }

  asio::io_context io_;
  Socket socket_;
  beast::flat_buffer buffer_;
};

std::vector<json> NdjsonLines(const std::string& body) {
  std::vector<json> lines;
  std::size_t start = 0;
  while (start < body.size()) {
    auto end = body.find('\n', start);
    EXPECT_NE(end, std::string::npos) << "every event ends in a newline";
    if (end == std::string::npos) break;
    lines.push_back(json::parse(body.substr(start, end - start)));
    start = end + 1;
  }
  return lines;
}

class ApiServerTest : public testing::InProcessServerTest {
 protected:
  void SetUp() override {
    InProcessServerTest::SetUp();
    // A parent that does not exist yet: Start creates it.
    options_.socket_path = dir_ + "/run/agentvm.sock";
    options_.max_json_body_bytes = 4096;
    options_.max_body_bytes = 256 << 10;
  }

  // Adds a VM straight into the fake (no service call counted).
  std::string AddVm(VmState state = VmState::kRunning) {
    std::string id;
    OnIo([&] {
      VmInfo info;
      info.id = "vm-" + std::to_string(100 + fake_.vms.size());
      info.image = "tiny";
      info.state = state;
      fake_.vms[info.id] = info;
      id = info.id;
    });
    return id;
  }

};

TEST_F(ApiServerTest, CreatesTheSocketWithMode0660AndRemovesItOnStop) {
  StartServer();
  struct stat st{};
  ASSERT_EQ(::stat(options_.socket_path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0660u);
  StopServer();
  EXPECT_FALSE(std::filesystem::exists(options_.socket_path));
}

TEST_F(ApiServerTest, VmLifecycle) {
  StartServer();
  TestClient client(options_.socket_path);

  Reply created = client.Call("POST", "/v1/vms", R"({"image":"tiny","cpus":2,"memory_mib":512})");
  ASSERT_EQ(created.status, 201) << created.body;
  EXPECT_EQ(created.content_type, "application/json");
  std::string id = created.Json()["id"];
  EXPECT_EQ(created.Json()["state"], "running");
  EXPECT_EQ(created.Json()["cpus"], 2);

  Reply list = client.Call("GET", "/v1/vms");
  ASSERT_EQ(list.status, 200);
  ASSERT_EQ(list.Json()["vms"].size(), 1u);
  EXPECT_EQ(list.Json()["vms"][0]["id"], id);

  EXPECT_EQ(client.Call("GET", "/v1/vms/" + id).Json()["memory_mib"], 512);

  Reply refused = client.Call("DELETE", "/v1/vms/" + id);
  EXPECT_EQ(refused.status, 409);
  EXPECT_EQ(refused.Json()["code"], "conflict");

  Reply stopped = client.Call("POST", "/v1/vms/" + id + "/stop");
  ASSERT_EQ(stopped.status, 200);
  EXPECT_EQ(stopped.Json()["state"], "stopped");
  EXPECT_EQ(client.Call("POST", "/v1/vms/" + id + "/stop").status, 409);

  Reply deleted = client.Call("DELETE", "/v1/vms/" + id + "?force=true");
  EXPECT_EQ(deleted.status, 204);
  EXPECT_TRUE(deleted.body.empty());

  Reply gone = client.Call("GET", "/v1/vms/" + id);
  EXPECT_EQ(gone.status, 404);
  EXPECT_EQ(gone.Json()["code"], "not_found");
  EXPECT_EQ(gone.Json()["error"], "no such VM: " + id);
}

TEST_F(ApiServerTest, EmptyCreateBodyUsesDefaultsAndUnknownImageIs404) {
  StartServer();
  TestClient client(options_.socket_path);
  Reply created = client.Call("POST", "/v1/vms");
  ASSERT_EQ(created.status, 201) << created.body;
  EXPECT_EQ(created.Json()["image"], "tiny");
  EXPECT_EQ(created.Json()["memory_mib"], 256);

  Reply unknown = client.Call("POST", "/v1/vms", R"({"image":"nope"})");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(unknown.Json()["error"], "unknown image: nope");
}

TEST_F(ApiServerTest, HostileRequestsAreRefusedBeforeTheServiceAndTheServerKeepsServing) {
  StartServer();
  std::string id = AddVm();
  const std::string junk(4096, 'x');
  const std::pair<std::string, std::string> requests[] = {
      {"GET", "/v1/vms/%2e%2e"},
      {"GET", "/v1/vms/..%2F..%2Fetc%2Fpasswd"},
      {"GET", "/v1/vms/vm-1;rm%20-rf%20%2F"},
      {"GET", "/v1/vms/vm-1%00"},
      {"GET", "/v1/vms/" + junk},
      {"GET", "/v1/vms/" + id + "/files?path=../etc/shadow"},
      {"GET", "/v1/vms/" + id + "/files?path=/etc/%2e%2e/etc/shadow"},
      {"GET", "/v1/vms/" + id + "/files?path=/etc/passwd%00.txt"},
      {"GET", "/v1/vms/" + id + "/files?path=/" + junk + junk},
      {"GET", "/v1/vms/" + id + "/files"},
      {"DELETE", "/v1/vms/" + id + "?force=maybe"},
      {"GET", "/v1/vms?verbose=1"},
  };
  TestClient client(options_.socket_path);
  for (const auto& [method, target] : requests) {
    Reply reply = client.Call(method, target);
    EXPECT_EQ(reply.status, 400) << method << " " << target.substr(0, 60);
    EXPECT_EQ(reply.Json()["code"], "invalid_argument") << target.substr(0, 60);
    EXPECT_LT(reply.Json()["error"].get<std::string>().size(), 300u);
  }
  const std::string bodies[] = {
      "{",
      "[1,2]",
      R"({"image":"../../etc"})",
      R"({"image":"tiny;reboot"})",
      R"({"cpus":"lots"})",
      R"({"cpus":1000})",
      R"({"memory_mib":1})",
      R"({"image":"tiny","unexpected":true})",
      std::string(3000, '['),
  };
  for (const auto& body : bodies) {
    Reply reply = client.Call("POST", "/v1/vms", body);
    EXPECT_EQ(reply.status, 400) << body.substr(0, 40);
    EXPECT_EQ(reply.Json()["code"], "invalid_argument");
  }
  EXPECT_EQ(fake_.calls(), 0) << "validation must happen before the service is called";

  // Same connection, still serving.
  EXPECT_EQ(client.Call("GET", "/v1/vms").status, 200);
  EXPECT_EQ(TestClient(options_.socket_path).Call("GET", "/v1/vms/" + id).status, 200);
}

TEST_F(ApiServerTest, NetworkRequestRoundTripsAndBadOnesNeverReachTheService) {
  StartServer();
  TestClient client(options_.socket_path);
  Reply created = client.Call("POST", "/v1/vms", R"({"network":{"mode":"nat-filtered",
      "allow_tcp_ports":[8080],"allow_cidrs":["203.0.113.0/24"],"bandwidth_bytes_per_sec":1000000}})");
  ASSERT_EQ(created.status, 201) << created.body;
  auto network = created.Json()["network"];
  EXPECT_EQ(network["mode"], "nat-filtered");
  EXPECT_EQ(network["allow_tcp_ports"], nlohmann::json::array({8080}));
  EXPECT_EQ(network["allow_cidrs"], nlohmann::json::array({"203.0.113.0/24"}));
  EXPECT_EQ(network["bandwidth_bytes_per_sec"], 1000000);
  EXPECT_FALSE(network["address"].get<std::string>().empty());
  EXPECT_EQ(network["dropped_connections"], 0);
  std::string id = created.Json()["id"];
  EXPECT_EQ(client.Call("GET", "/v1/vms/" + id).Json()["network"], network);

  Reply isolated = client.Call("POST", "/v1/vms", R"({"network":{"mode":"isolated"}})");
  ASSERT_EQ(isolated.status, 201) << isolated.body;
  EXPECT_EQ(isolated.Json()["network"]["mode"], "isolated");
  EXPECT_EQ(isolated.Json()["network"]["address"], "");
  EXPECT_TRUE(isolated.Json()["network"]["bandwidth_bytes_per_sec"].is_null());

  int calls = fake_.calls();
  const std::string bodies[] = {
      R"({"network":{"allow_tcp_ports":[53]}})",
      R"({"network":{"allow_cidrs":["10.0.0.1/8"]}})",
      R"({"network":{"mode":"isolated","allow_tcp_ports":[8080]}})",
      R"({"network":{"mode":"bridge"}})",
      R"({"network":{"mode":"bridge","bridge":"../../x"}})",
      R"({"network":{"mode":"open"}})",
      R"({"network":{"allow_tcp_ports":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,
          24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,
          54,55,56,57,58,59,60,61,62,63,64,65,66]}})",
  };
  for (const auto& body : bodies) {
    Reply reply = client.Call("POST", "/v1/vms", body);
    EXPECT_EQ(reply.status, 400) << body;
    EXPECT_EQ(reply.Json()["code"], "invalid_argument");
    EXPECT_NE(reply.Json()["error"].get<std::string>().find("network"), std::string::npos)
        << reply.body;
  }
  EXPECT_EQ(fake_.calls(), calls) << "validation must happen before the service is called";
}

TEST_F(ApiServerTest, UnknownRoutesAre404AndWrongMethods405) {
  StartServer();
  TestClient client(options_.socket_path);
  Reply unknown = client.Call("GET", "/v1/nothing");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(unknown.Json()["code"], "not_found");

  Reply wrong = client.Call("PUT", "/v1/vms");
  EXPECT_EQ(wrong.status, 405);
  EXPECT_EQ(wrong.allow, "GET, POST");
  EXPECT_EQ(client.Call("GET", "/v1/vms").status, 200);
}

TEST_F(ApiServerTest, BodiesOverTheLimitGet413AndTheServerKeepsServing) {
  StartServer();
  std::string id = AddVm();
  {
    TestClient client(options_.socket_path);
    Reply reply = client.Call("POST", "/v1/vms", std::string(options_.max_json_body_bytes + 1, ' '));
    EXPECT_EQ(reply.status, 413);
    EXPECT_EQ(reply.Json()["code"], "too_large");
  }
  {
    TestClient client(options_.socket_path);
    Reply reply = client.Call("POST", "/v1/vms/" + id + "/exec",
                              std::string(options_.max_body_bytes + 1, ' '));
    EXPECT_EQ(reply.status, 413);
  }
  {
    // Chunked, so the size is only known while reading.
    TestClient client(options_.socket_path);
    http::request<http::string_body> request{http::verb::post, "/v1/vms/" + id + "/exec", 11};
    request.set(http::field::host, "localhost");
    request.chunked(true);
    request.body() = std::string(options_.max_body_bytes + 1, ' ');
    request.prepare_payload();
    beast::error_code ec;
    http::write(client.socket(), request, ec);  // the server may close before reading it all
    EXPECT_EQ(client.Receive().status, 413);
  }
  // File uploads stream: the body limit is not theirs.
  TestClient client(options_.socket_path);
  EXPECT_EQ(client.Call("PUT", "/v1/vms/" + id + "/files?path=/ok",
                        std::string(options_.max_body_bytes + 1, 'x'))
                .status,
            204);
}

TEST_F(ApiServerTest, HugeHeaderGets431) {
  options_.max_header_bytes = 4096;
  StartServer();
  TestClient client(options_.socket_path);
  Reply reply = client.Call("GET", "/v1/vms", "", {{"X-Junk", std::string(8192, 'j')}});
  EXPECT_EQ(reply.status, 431);
  EXPECT_EQ(TestClient(options_.socket_path).Call("GET", "/v1/vms").status, 200);
}

TEST_F(ApiServerTest, MalformedHttpGets400) {
  StartServer();
  TestClient client(options_.socket_path);
  asio::write(client.socket(), asio::buffer("NOT HTTP AT ALL\r\n\r\n"s));
  EXPECT_EQ(client.Receive().status, 400);
}

TEST_F(ApiServerTest, SlowClientIsDisconnected) {
  options_.header_timeout = 300ms;
  StartServer();
  TestClient client(options_.socket_path);
  asio::write(client.socket(), asio::buffer("GET /v1/vms HTTP/1.1\r\nHost: x\r\n"s));
  auto started = std::chrono::steady_clock::now();
  char byte;
  boost::system::error_code ec;
  asio::read(client.socket(), asio::buffer(&byte, 1), ec);
  EXPECT_EQ(ec, asio::error::eof);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
  EXPECT_EQ(TestClient(options_.socket_path).Call("GET", "/v1/vms").status, 200);
}

// Reads until the server closes the connection; true when it did so without
// sending anything (closed, not answered).
bool ClosedWithoutAnswer(TestClient& client) {
  char byte;
  boost::system::error_code ec;
  std::size_t n = asio::read(client.socket(), asio::buffer(&byte, 1), ec);
  return n == 0 && (ec == asio::error::eof || ec == asio::error::connection_reset);
}

// Opens a request whose body has not all come yet: the connection is busy
// serving it, not idle.
void StartSlowCreate(TestClient& client) {
  asio::write(client.socket(),
              asio::buffer("POST /v1/vms HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n{\"cpus\""s));
}

TEST_F(ApiServerTest, WhenFullTheLongestIdleConnectionMakesRoomNotABusyOne) {
  options_.max_connections = 3;
  StartServer();
  TestClient oldest_idle(options_.socket_path);
  std::this_thread::sleep_for(50ms);  // accepted and waiting, in this order
  TestClient busy(options_.socket_path);
  StartSlowCreate(busy);
  std::this_thread::sleep_for(50ms);
  TestClient newer_idle(options_.socket_path);
  std::this_thread::sleep_for(50ms);

  // A fourth client is served; the connection idle the longest made room.
  EXPECT_EQ(TestClient(options_.socket_path).Call("GET", "/v1/vms").status, 200);
  EXPECT_TRUE(ClosedWithoutAnswer(oldest_idle));
  // The busy request was not cut off: it finishes and gets its answer.
  asio::write(busy.socket(), asio::buffer(": 1, \"x\": 2}      "s));
  EXPECT_EQ(busy.Receive().status, 400);  // "x" is not a field
  // And the newer idle connection still works.
  EXPECT_EQ(newer_idle.Call("GET", "/v1/vms").status, 200);
}

TEST_F(ApiServerTest, WhenFullOfBusyConnectionsANewOneIsRefused) {
  options_.max_connections = 1;
  StartServer();
  TestClient busy(options_.socket_path);
  StartSlowCreate(busy);
  std::this_thread::sleep_for(50ms);
  TestClient refused(options_.socket_path);
  EXPECT_TRUE(ClosedWithoutAnswer(refused));
}

TEST_F(ApiServerTest, AConnectionThatSendsNoHeaderIsClosedAfterTheHeaderTimeout) {
  options_.header_timeout = 200ms;
  StartServer();
  TestClient silent(options_.socket_path);
  const auto started = std::chrono::steady_clock::now();
  EXPECT_TRUE(ClosedWithoutAnswer(silent));
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
}

TEST_F(ApiServerTest, ExecStreamsNdjsonInOrderWithBinaryIntact) {
  StartServer();
  std::string id = AddVm();
  TestClient client(options_.socket_path);
  json body = {{"argv", {"out:hello\n", "err:oops\n", "bin", "out:bye\n", "exit:7"}},
               {"env", {{"FOO", "bar"}}},
               {"cwd", "/tmp"},
               {"timeout_sec", 5}};
  Reply reply = client.Call("POST", "/v1/vms/" + id + "/exec", body.dump());
  ASSERT_EQ(reply.status, 200) << reply.body;
  EXPECT_EQ(reply.content_type, "application/x-ndjson");
  EXPECT_TRUE(reply.chunked);

  auto lines = NdjsonLines(reply.body);
  ASSERT_EQ(lines.size(), 5u) << reply.body;
  EXPECT_EQ(lines[0], json({{"type", "stdout"}, {"data", "hello\n"}}));
  EXPECT_EQ(lines[1], json({{"type", "stderr"}, {"data", "oops\n"}}));
  EXPECT_EQ(lines[2]["type"], "stdout");
  auto binary = ParseExecEvent(lines[2].dump());
  ASSERT_TRUE(binary);
  EXPECT_EQ(binary->data, "\xff\xfe\x00\x80"s);
  EXPECT_EQ(lines[3]["data"], "bye\n");
  EXPECT_EQ(lines[4],
            json({{"type", "exit"}, {"exit_code", 7}, {"signal", nullptr}, {"timed_out", false},
                  {"status", 7}}));

  ASSERT_TRUE(fake_.last_exec);
  EXPECT_EQ(fake_.last_exec->env.at("FOO"), "bar");
  EXPECT_EQ(fake_.last_exec->cwd, "/tmp");
  EXPECT_EQ(fake_.last_exec->timeout, 5s);

  // The connection is reusable after a stream.
  EXPECT_EQ(client.Call("GET", "/v1/vms").status, 200);
}

TEST_F(ApiServerTest, ExecOutputArrivesAsItIsProduced) {
  StartServer();
  std::string id = AddVm();
  TestClient client(options_.socket_path);
  client.Send("POST", "/v1/vms/" + id + "/exec",
              json{{"argv", {"out:first\n", "sleep:400", "out:second\n"}}}.dump());
  std::vector<TestClient::Chunk> chunks;
  Reply reply = client.ReceiveChunks(chunks);
  ASSERT_EQ(reply.status, 200);
  ASSERT_GE(chunks.size(), 2u);
  EXPECT_NE(chunks.front().data.find("first"), std::string::npos);
  EXPECT_EQ(chunks.front().data.find("second"), std::string::npos);
  EXPECT_GE(chunks.back().at - chunks.front().at, 300ms)
      << "the first output must not wait for the command to finish";
}

TEST_F(ApiServerTest, ExecTimeoutAndSignalStatuses) {
  StartServer();
  std::string id = AddVm();
  TestClient client(options_.socket_path);
  auto timed_out = NdjsonLines(
      client.Call("POST", "/v1/vms/" + id + "/exec", R"({"argv":["timeout"]})").body);
  ASSERT_EQ(timed_out.size(), 1u);
  EXPECT_EQ(timed_out[0]["timed_out"], true);
  EXPECT_EQ(timed_out[0]["status"], 124);

  auto killed = NdjsonLines(
      client.Call("POST", "/v1/vms/" + id + "/exec", R"({"argv":["signal:9"]})").body);
  ASSERT_EQ(killed.size(), 1u);
  EXPECT_TRUE(killed[0]["exit_code"].is_null());
  EXPECT_EQ(killed[0]["signal"], 9);
  EXPECT_EQ(killed[0]["status"], 137);
}

TEST_F(ApiServerTest, ExecErrorsBeforeOutputArePlainJsonAfterOutputAnErrorEvent) {
  StartServer();
  std::string stopped = AddVm(VmState::kStopped);
  std::string running = AddVm();
  TestClient client(options_.socket_path);

  Reply missing = client.Call("POST", "/v1/vms/vm-nope/exec", R"({"argv":["true"]})");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.content_type, "application/json");

  Reply conflict = client.Call("POST", "/v1/vms/" + stopped + "/exec", R"({"argv":["true"]})");
  EXPECT_EQ(conflict.status, 409);

  Reply bad = client.Call("POST", "/v1/vms/" + running + "/exec", R"({"argv":[]})");
  EXPECT_EQ(bad.status, 400);

  Reply failed = client.Call("POST", "/v1/vms/" + running + "/exec",
                             R"({"argv":["out:partial","fail:guest went away"]})");
  ASSERT_EQ(failed.status, 200);
  auto lines = NdjsonLines(failed.body);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0]["data"], "partial");
  EXPECT_EQ(lines[1], json({{"type", "error"}, {"error", "guest went away"}, {"code", "unavailable"}}));
}

TEST_F(ApiServerTest, AClientThatDisconnectsKillsItsCommandAndTheServerStaysUp) {
  StartServer();
  std::string id = AddVm();
  {
    TestClient client(options_.socket_path);
    // Silent after its first line: only watching the socket sees the client go.
    client.Send("POST", "/v1/vms/" + id + "/exec", json{{"argv", {"out:first\n", "until-signal"}}}.dump());
    std::vector<TestClient::Chunk> chunks;
    client.ReceiveChunks(chunks, /*stop_after_first=*/true);
    ASSERT_EQ(chunks.size(), 1u);
  }  // disconnects here
  EXPECT_EQ(TestClient(options_.socket_path).Call("GET", "/v1/vms").status, 200);
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (fake_.execs_finished() == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(fake_.execs_finished(), 1) << "the command outlived its client";
  OnIo([&] { EXPECT_EQ(fake_.exec_signals, std::vector<int>{9}); });
  EXPECT_EQ(TestClient(options_.socket_path).Call("GET", "/v1/vms").status, 200);
}

TEST_F(ApiServerTest, ADetachedExecIsAcceptedAtOnceAndRunsToItsEnd) {
  StartServer();
  std::string id = AddVm();
  Reply reply = TestClient(options_.socket_path)
                    .Call("POST", "/v1/vms/" + id + "/exec",
                          json{{"argv", {"sleep:200", "out:ignored", "exit:0"}}, {"detach", true}}.dump());
  EXPECT_EQ(reply.status, 202);
  EXPECT_EQ(reply.Json()["detached"], true);
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (fake_.execs_finished() == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(fake_.execs_finished(), 1);
  OnIo([&] { EXPECT_TRUE(fake_.exec_signals.empty()); });
}

TEST_F(ApiServerTest, FilesRoundTripBinaryWithMode) {
  StartServer();
  std::string id = AddVm();
  TestClient client(options_.socket_path);
  std::string data = "line\n\0\xff\xfe binary"s;
  Reply put = client.Call("PUT", "/v1/vms/" + id + "/files?path=/tmp/a%20file&mode=0600", data,
                          {{"Content-Type", "application/octet-stream"}});
  ASSERT_EQ(put.status, 204) << put.body;
  OnIo([&] { EXPECT_EQ(fake_.files[id]["/tmp/a file"].mode, 0600u); });

  Reply got = client.Call("GET", "/v1/vms/" + id + "/files?path=/tmp/a%20file");
  ASSERT_EQ(got.status, 200);
  EXPECT_EQ(got.content_type, "application/octet-stream");
  EXPECT_EQ(got.body, data);

  Reply missing = client.Call("GET", "/v1/vms/" + id + "/files?path=/nope");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.Json()["error"], "no such file: /nope");
}

// A chunk the guest fails to write ends the upload with its error; at
// most the one piece already in flight behind it is written after it.
TEST_F(ApiServerTest, AFailedChunkEndsAnUploadWithItsError) {
  StartServer();
  std::string id = AddVm();
  OnIo([&] { fake_.fail_file_write_at = protocol::kFileChunkBytes; });
  TestClient client(options_.socket_path);
  std::string data(6 * protocol::kFileChunkBytes, 'x');
  Reply put = client.Call("PUT", "/v1/vms/" + id + "/files?path=/full", data);
  EXPECT_EQ(put.status, 500);
  EXPECT_EQ(put.Json()["error"], "write /full: No space left on device");
  OnIo([&] { EXPECT_LE(fake_.file_chunks_written, 3); });
}

TEST_F(ApiServerTest, LargeFilesStreamInGuestSizedChunksBothWays) {
  StartServer();
  std::string id = AddVm();
  TestClient client(options_.socket_path);
  std::string data(3 * protocol::kFileChunkBytes + 5, '\0');
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7);
  http::request<http::string_body> request{http::verb::put, "/v1/vms/" + id + "/files?path=/big&mode=0640", 11};
  request.set(http::field::host, "localhost");
  request.chunked(true);
  request.body() = data;
  request.prepare_payload();
  http::write(client.socket(), request);
  ASSERT_EQ(client.Receive().status, 204);
  OnIo([&] {
    EXPECT_EQ(fake_.file_chunks_written, 4);
    EXPECT_EQ(fake_.files[id]["/big"].data, data);
    EXPECT_EQ(fake_.files[id]["/big"].mode, 0640u);
  });
  Reply got = client.Call("GET", "/v1/vms/" + id + "/files?path=/big");
  ASSERT_EQ(got.status, 200);
  EXPECT_EQ(got.body, data);

  // An empty upload still makes (or empties) the file.
  EXPECT_EQ(client.Call("PUT", "/v1/vms/" + id + "/files?path=/empty", "").status, 204);
  OnIo([&] { EXPECT_TRUE(fake_.files[id].contains("/empty")); });
  Reply empty = client.Call("GET", "/v1/vms/" + id + "/files?path=/empty");
  EXPECT_EQ(empty.status, 200);
  EXPECT_EQ(empty.body, "");
}

TEST_F(ApiServerTest, ArchivesRunTheGuestsTarWithTheBodyAsStdin) {
  StartServer();
  std::string id = AddVm();
  TestClient client(options_.socket_path);
  std::string tar(3 << 20, 't');
  Reply put = client.Call("PUT", "/v1/vms/" + id + "/archive?path=/work/tree%20x", tar,
                          {{"Content-Type", "application/x-tar"}});
  ASSERT_EQ(put.status, 204) << put.body;
  OnIo([&] {
    ASSERT_TRUE(fake_.last_exec);
    EXPECT_EQ(fake_.last_exec->argv.back(), "/work/tree x");
    EXPECT_NE(fake_.last_exec->argv.at(2).find("tar -x"), std::string::npos);
    // (The fake's command ends at once, taking no stdin; the vm tier copies
    // real trees through the guest's tar.)
    EXPECT_TRUE(fake_.last_exec->stream_stdin);
    EXPECT_EQ(fake_.last_exec->user, "") << "extracted as the default user, who then owns the files";
  });
  TestClient second(options_.socket_path);
  Reply got = second.Call("GET", "/v1/vms/" + id + "/archive?path=/work");
  ASSERT_EQ(got.status, 200);
  EXPECT_EQ(got.content_type, "application/x-tar");
  OnIo([&] {
    EXPECT_EQ(fake_.last_exec->argv, (std::vector<std::string>{"tar", "-c", "-f", "-", "-C", "/work", "."}));
    EXPECT_EQ(fake_.last_exec->user, "root") << "read as root, as a single file is";
  });
  EXPECT_EQ(second.Call("GET", "/v1/vms/" + id + "/archive?path=relative").status, 400);
  EXPECT_EQ(second.Call("GET", "/v1/vms/vm-nope/archive?path=/x").status, 404);
}

TEST_F(ApiServerTest, ExpectContinueUploadsWork) {
  StartServer();
  std::string id = AddVm();
  TestClient client(options_.socket_path);
  http::request<http::string_body> request{http::verb::put, "/v1/vms/" + id + "/files?path=/x",
                                           11};
  request.set(http::field::host, "localhost");
  request.set(http::field::expect, "100-continue");
  request.body() = "payload";
  request.prepare_payload();
  http::request_serializer<http::string_body> serializer{request};
  http::write_header(client.socket(), serializer);
  Reply interim = client.Receive();
  EXPECT_EQ(interim.status, 100);
  http::write(client.socket(), serializer);
  EXPECT_EQ(client.Receive().status, 204);
}

TEST_F(ApiServerTest, ConsoleIsPlainText) {
  StartServer();
  std::string id = AddVm();
  TestClient client(options_.socket_path);
  Reply console = client.Call("GET", "/v1/vms/" + id + "/console");
  ASSERT_EQ(console.status, 200);
  EXPECT_EQ(console.content_type, "text/plain");
  EXPECT_NE(console.body.find("agentvm-guest: ready"), std::string::npos);
  EXPECT_EQ(client.Call("GET", "/v1/vms/" + id + "/console?max_bytes=6").body, "ready\n");
}

TEST_F(ApiServerTest, CreateTakesABootModeAndReportsHowTheVmCameUp) {
  // Before the server runs, the fake is the test's alone.
  PoolInfo pool;
  pool.name = "tiny-1c-256m-isolated";
  pool.image = "tiny";
  pool.network = NetworkMode::kIsolated;
  pool.min_ready = 1;
  pool.max_total = 2;
  pool.ready = 1;
  fake_.pools.push_back(pool);
  StartServer();
  TestClient client(options_.socket_path);

  Reply pooled = client.Call("POST", "/v1/vms", R"({"network":{"mode":"isolated"}})");
  ASSERT_EQ(pooled.status, 201) << pooled.body;
  EXPECT_EQ(pooled.Json()["boot"], "pool");
  EXPECT_EQ(pooled.Json()["pool"], "tiny-1c-256m-isolated");
  EXPECT_EQ(pooled.Json()["restore_error"], "");

  Reply cold = client.Call("POST", "/v1/vms", R"({"boot":"cold","network":{"mode":"isolated"}})");
  ASSERT_EQ(cold.status, 201) << cold.body;
  EXPECT_EQ(cold.Json()["boot"], "cold");
  EXPECT_EQ(cold.Json()["pool"], "");
  OnIo([&] { EXPECT_EQ(fake_.last_create->boot, BootMode::kCold); });

  // The request carries who made it (SO_PEERCRED): a mount's owner.
  OnIo([&] {
    ASSERT_TRUE(fake_.last_create->caller);
    EXPECT_EQ(fake_.last_create->caller->uid, ::getuid());
    EXPECT_EQ(fake_.last_create->caller->gid, ::getgid());
  });

  int calls = fake_.calls();
  Reply bad = client.Call("POST", "/v1/vms", R"({"boot":"warm"})");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(bad.Json()["code"], "invalid_argument");
  EXPECT_EQ(bad.Json()["error"], R"(boot must be one of "auto", "restore", "cold"; got "warm")");
  EXPECT_EQ(fake_.calls(), calls);
}

TEST_F(ApiServerTest, ReleaseHandsAPooledVmBackAndPoolsShowIt) {
  // Before the server runs, the fake is the test's alone.
  PoolInfo pool;
  pool.name = "tiny-1c-256m-nat-filtered";
  pool.image = "tiny";
  pool.network = NetworkMode::kNatFiltered;
  pool.min_ready = 1;
  pool.max_total = 3;
  pool.ready = 1;
  pool.golden_ready = true;
  fake_.pools.push_back(pool);
  StartServer();
  TestClient client(options_.socket_path);

  Reply pools = client.Call("GET", "/v1/pools");
  ASSERT_EQ(pools.status, 200) << pools.body;
  EXPECT_EQ(pools.content_type, "application/json");
  ASSERT_EQ(pools.Json()["pools"].size(), 1u);
  json shown = pools.Json()["pools"][0];
  EXPECT_EQ(shown["name"], "tiny-1c-256m-nat-filtered");
  EXPECT_EQ(shown["network"], "nat-filtered");
  EXPECT_EQ(shown["ready"], 1);
  EXPECT_EQ(shown["golden_ready"], true);
  EXPECT_EQ(shown["last_error"], "");

  std::string id = client.Call("POST", "/v1/vms").Json()["id"];
  shown = client.Call("GET", "/v1/pools").Json()["pools"][0];
  EXPECT_EQ(shown["ready"], 0);
  EXPECT_EQ(shown["in_use"], 1);
  EXPECT_EQ(shown["taken"], 1);

  Reply released = client.Call("POST", "/v1/vms/" + id + "/release");
  EXPECT_EQ(released.status, 204) << released.body;
  EXPECT_TRUE(released.body.empty());
  EXPECT_EQ(client.Call("GET", "/v1/vms/" + id).status, 404);
  shown = client.Call("GET", "/v1/pools").Json()["pools"][0];
  EXPECT_EQ(shown["ready"], 1);
  EXPECT_EQ(shown["in_use"], 0);
  OnIo([&] { EXPECT_EQ(fake_.released, std::vector<std::string>{id}); });

  Reply again = client.Call("POST", "/v1/vms/" + id + "/release");
  EXPECT_EQ(again.status, 404);
  EXPECT_EQ(again.Json()["error"], "no such VM: " + id);

  // A running VM that came from no pool is released too (DELETE would want force).
  std::string cold = client.Call("POST", "/v1/vms", R"({"boot":"cold"})").Json()["id"];
  EXPECT_EQ(client.Call("POST", "/v1/vms/" + cold + "/release").status, 204);

  EXPECT_EQ(client.Call("GET", "/v1/pools?all=1").status, 400);
  EXPECT_EQ(client.Call("POST", "/v1/vms/" + id + "/release?force=true").status, 400);
}

TEST_F(ApiServerTest, NoPoolsIsAnEmptyList) {
  StartServer();
  Reply pools = TestClient(options_.socket_path).Call("GET", "/v1/pools");
  ASSERT_EQ(pools.status, 200);
  EXPECT_EQ(pools.body, "{\"pools\":[]}\n");
}

TEST_F(ApiServerTest, NamedSnapshotsSaveListRestoreDelete) {
  StartServer();
  std::string id = AddVm();
  TestClient client(options_.socket_path);
  ASSERT_EQ(client.Call("PUT", "/v1/vms/" + id + "/files?path=/work/notes", "before").status, 204);

  Reply saved = client.Call("POST", "/v1/vms/" + id + "/snapshots", R"({"name":"clean"})");
  ASSERT_EQ(saved.status, 201) << saved.body;
  EXPECT_EQ(saved.content_type, "application/json");
  EXPECT_EQ(saved.Json()["name"], "clean");
  EXPECT_GT(saved.Json()["vm_state_bytes"].get<std::uint64_t>(), 0u);
  EXPECT_GT(saved.Json()["created_at"].get<std::int64_t>(), 0);

  Reply duplicate = client.Call("POST", "/v1/vms/" + id + "/snapshots", R"({"name":"clean"})");
  EXPECT_EQ(duplicate.status, 409);
  EXPECT_EQ(duplicate.Json()["code"], "conflict");
  ASSERT_EQ(client.Call("POST", "/v1/vms/" + id + "/snapshots", R"({"name":"Second.2"})").status, 201);

  Reply list = client.Call("GET", "/v1/vms/" + id + "/snapshots");
  ASSERT_EQ(list.status, 200);
  ASSERT_EQ(list.Json()["snapshots"].size(), 2u);
  std::set<std::string> names;
  json listed = list.Json();
  for (const auto& snapshot : listed["snapshots"]) names.insert(snapshot["name"]);
  EXPECT_EQ(names, (std::set<std::string>{"clean", "Second.2"}));

  ASSERT_EQ(client.Call("PUT", "/v1/vms/" + id + "/files?path=/work/notes", "after").status, 204);
  Reply restored = client.Call("POST", "/v1/vms/" + id + "/snapshots/clean/restore");
  EXPECT_EQ(restored.status, 204) << restored.body;
  EXPECT_EQ(client.Call("GET", "/v1/vms/" + id + "/files?path=/work/notes").body, "before");

  Reply deleted = client.Call("DELETE", "/v1/vms/" + id + "/snapshots/clean");
  EXPECT_EQ(deleted.status, 204) << deleted.body;
  EXPECT_EQ(client.Call("GET", "/v1/vms/" + id + "/snapshots").Json()["snapshots"].size(), 1u);
  Reply gone = client.Call("DELETE", "/v1/vms/" + id + "/snapshots/clean");
  EXPECT_EQ(gone.status, 404);
  EXPECT_EQ(gone.Json()["code"], "not_found");
  EXPECT_EQ(client.Call("POST", "/v1/vms/" + id + "/snapshots/clean/restore").status, 404);
  EXPECT_EQ(client.Call("GET", "/v1/vms/vm-nope/snapshots").status, 404);

  std::string stopped = AddVm(VmState::kStopped);
  EXPECT_EQ(client.Call("POST", "/v1/vms/" + stopped + "/snapshots", R"({"name":"s"})").status, 409);
}

TEST_F(ApiServerTest, HostileSnapshotRequestsNeverReachTheService) {
  StartServer();
  std::string id = AddVm();
  const std::string base = "/v1/vms/" + id + "/snapshots";
  TestClient client(options_.socket_path);
  const std::pair<std::string, std::string> requests[] = {
      {"DELETE", base + "/.."},
      {"DELETE", base + "/%2e%2e"},
      {"POST", base + "/%2E%2E/restore"},
      {"POST", base + "/..%2F..%2Fetc%2Fpasswd/restore"},
      {"DELETE", base + "/a%2Fb"},
      {"DELETE", base + "/"},
      {"POST", base + "//restore"},
      {"DELETE", base + "/" + std::string(65, 's')},
      {"DELETE", base + "/-rf"},
      {"DELETE", base + "/a%00b"},
      {"POST", base + "/s1/restore?now=1"},
      {"DELETE", base + "/s1?force=true"},
      {"GET", base + "?all=1"},
      {"POST", "/v1/vms/%2e%2e/snapshots/s1/restore"},
      {"POST", "/v1/vms/%2e%2e/release"},
  };
  for (const auto& [method, target] : requests) {
    Reply reply = client.Call(method, target);
    EXPECT_EQ(reply.status, 400) << method << " " << target.substr(0, 80);
    EXPECT_EQ(reply.Json()["code"], "invalid_argument") << target.substr(0, 80);
    EXPECT_LT(reply.Json()["error"].get<std::string>().size(), 300u);
  }
  const std::string bodies[] = {
      "",
      "{",
      "[]",
      "{}",
      R"({"name":null})",
      R"({"name":7})",
      R"({"name":""})",
      R"({"name":".."})",
      R"({"name":"../../etc/passwd"})",
      R"({"name":"a/b"})",
      R"({"name":")" + std::string(65, 'n') + "\"}",
      R"({"name":"ok","extra":1})",
      std::string(3000, '{'),
  };
  for (const auto& body : bodies) {
    Reply reply = client.Call("POST", base, body);
    EXPECT_EQ(reply.status, 400) << body.substr(0, 40);
    EXPECT_EQ(reply.Json()["code"], "invalid_argument") << body.substr(0, 40);
  }
  Reply named = client.Call("DELETE", base + "/%2e%2e");
  EXPECT_EQ(named.Json()["error"],
            "invalid snapshot name \"..\": expected 1-64 characters of [A-Za-z0-9._-], not "
            "starting with '.' or '-', not all digits");
  EXPECT_EQ(fake_.calls(), 0) << "validation must happen before the service is called";

  // The longest valid name gets through to the service (which knows no such snapshot).
  EXPECT_EQ(client.Call("DELETE", base + "/" + std::string(64, 's')).status, 404);
}

TEST_F(ApiServerTest, NewRoutesRefuseWrongMethodsWithAllow) {
  StartServer();
  std::string id = AddVm();
  TestClient client(options_.socket_path);
  const std::tuple<std::string, std::string, std::string> cases[] = {
      {"POST", "/v1/pools", "GET"},
      {"DELETE", "/v1/pools", "GET"},
      {"GET", "/v1/vms/" + id + "/release", "POST"},
      {"DELETE", "/v1/vms/" + id + "/release", "POST"},
      {"PUT", "/v1/vms/" + id + "/snapshots", "GET, POST"},
      {"GET", "/v1/vms/" + id + "/snapshots/s1", "DELETE"},
      {"POST", "/v1/vms/" + id + "/snapshots/s1", "DELETE"},
      {"GET", "/v1/vms/" + id + "/snapshots/s1/restore", "POST"},
  };
  for (const auto& [method, target, allow] : cases) {
    Reply reply = client.Call(method, target);
    EXPECT_EQ(reply.status, 405) << method << " " << target;
    EXPECT_EQ(reply.allow, allow) << method << " " << target;
    EXPECT_EQ(reply.Json()["code"], "invalid_argument");
  }
  EXPECT_EQ(client.Call("GET", "/v1/pools/x").status, 404);
  EXPECT_EQ(client.Call("POST", "/v1/vms/" + id + "/snapshots/s1/load").status, 404);
  EXPECT_EQ(fake_.calls(), 0);
}

TEST_F(ApiServerTest, StartRefusesALiveSocketAndReplacesAStaleOne) {
  StartServer();
  testing::FakeVmService other_service;
  asio::io_context other_io;
  ApiServer second(other_io, other_service, options_);
  auto refused = second.Start();
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kConflict);
  EXPECT_NE(refused.error().message.find("already listening"), std::string::npos);
  StopServer();

  // A socket file nobody listens on (a daemon that was kill -9ed).
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  options_.socket_path.copy(address.sun_path, sizeof(address.sun_path) - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ::close(fd);
  ASSERT_TRUE(std::filesystem::exists(options_.socket_path));
  ApiServer third(other_io, other_service, options_);
  auto replaced = third.Start();
  EXPECT_TRUE(replaced) << replaced.error().message;
  third.Stop();
}

TEST_F(ApiServerTest, StartRefusesToReplaceARegularFile) {
  std::filesystem::create_directories(dir_ + "/run");
  std::ofstream(options_.socket_path) << "precious";
  ApiServer server(io_, fake_, options_);
  auto result = server.Start();
  ASSERT_FALSE(result);
  EXPECT_NE(result.error().message.find("not a socket"), std::string::npos);
  std::ifstream in(options_.socket_path);
  std::string content;
  in >> content;
  EXPECT_EQ(content, "precious");
}

}  // namespace
}  // namespace agentvm::api
