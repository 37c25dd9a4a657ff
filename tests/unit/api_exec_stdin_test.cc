// POST /v1/vms/{id}/exec?stdin=stream: the request body's first line is the
// exec request, the rest is the command's stdin, streamed as it arrives (a
// chunked body of any length), with the FakeVmService behind the server.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "supervisor/api/json_codec.h"
#include "supervisor/api/testing/in_process_server_test.h"

namespace agentvm::api {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using nlohmann::json;

// Sends a POST with a chunked body made of `pieces`, and reads the answer.
class StreamingClient {
 public:
  explicit StreamingClient(const std::string& path) : socket_(io_) {
    socket_.connect(asio::local::stream_protocol::endpoint(path));
  }

  http::response<http::string_body> Post(const std::string& target, const std::vector<std::string>& pieces) {
    std::string head = "POST " + target +
                       " HTTP/1.1\r\nHost: agentvm\r\nTransfer-Encoding: chunked\r\n"
                       "Content-Type: application/octet-stream\r\n\r\n";
    asio::write(socket_, asio::buffer(head));
    for (const std::string& piece : pieces) {
      char size[32];
      std::snprintf(size, sizeof size, "%zx\r\n", piece.size());
      asio::write(socket_, asio::buffer(std::string(size) + piece + "\r\n"));
    }
    asio::write(socket_, asio::buffer(std::string("0\r\n\r\n")));
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(boost::none);
    http::read(socket_, buffer, parser);
    return parser.release();
  }

 private:
  asio::io_context io_;
  asio::local::stream_protocol::socket socket_;
};

// What the NDJSON stream said on stdout, and the exit status.
std::pair<std::string, int> Decode(const std::string& body) {
  std::string out;
  int status = -1;
  std::size_t start = 0;
  while (start < body.size()) {
    std::size_t end = body.find('\n', start);
    auto event = ParseExecEvent(std::string_view(body).substr(start, end - start));
    start = end == std::string::npos ? body.size() : end + 1;
    if (!event) continue;
    if (event->type == ExecEvent::Type::kStdout) out += event->data;
    if (event->type == ExecEvent::Type::kExit) status = event->result.ShellStatus();
  }
  return {out, status};
}

class ApiExecStdinTest : public testing::InProcessServerTest {
 protected:
  void SetUp() override {
    InProcessServerTest::SetUp();
    StartServer();
    AddRunningVm("vm-1");
  }
  const std::string kTarget = "/v1/vms/vm-1/exec?stdin=stream";
};

TEST_F(ApiExecStdinTest, TheBodyAfterTheFirstLineIsStdin) {
  StreamingClient client(options_.socket_path);
  auto answer = client.Post(kTarget, {R"({"argv":["cat","exit:4"]})" "\nfirst ", "second ", "third"});
  ASSERT_EQ(answer.result_int(), 200) << answer.body();
  auto [out, status] = Decode(answer.body());
  EXPECT_EQ(out, "first second third");
  EXPECT_EQ(status, 4);
  OnIo([&] { EXPECT_TRUE(fake_.stdin_closed); });
}

TEST_F(ApiExecStdinTest, StdinManyWindowsLongStreamsThrough) {
  // 5 MB, five times the guest's stdin window, in 64 KiB pieces; the
  // request line arrives split too.
  std::vector<std::string> pieces = {R"({"argv":)", R"(["cat"]})" "\n"};
  std::string expected;
  for (int i = 0; i < 80; ++i) {
    std::string piece(64 * 1024, static_cast<char>('a' + i % 26));
    expected += piece;
    pieces.push_back(std::move(piece));
  }
  StreamingClient client(options_.socket_path);
  auto answer = client.Post(kTarget, pieces);
  ASSERT_EQ(answer.result_int(), 200);
  auto [out, status] = Decode(answer.body());
  EXPECT_EQ(out.size(), expected.size());
  EXPECT_TRUE(out == expected);
  EXPECT_EQ(status, 0);
}

TEST_F(ApiExecStdinTest, AMalformedFirstLineIsRefusedAndRunsNothing) {
  for (const std::vector<std::string>& body :
       {std::vector<std::string>{"not json\nstdin"}, std::vector<std::string>{R"({"argv":["cat"]})"},
        std::vector<std::string>{R"({"argv":["cat"],"stdin":"x"})" "\n"},
        std::vector<std::string>{R"({"argv":["cat"],"detach":true})" "\n"}}) {
    StreamingClient client(options_.socket_path);
    auto answer = client.Post(kTarget, body);
    EXPECT_EQ(answer.result_int(), 400) << body[0] << ": " << answer.body();
  }
  OnIo([&] { EXPECT_EQ(fake_.execs_finished(), 0); });
}

}  // namespace
}  // namespace agentvm::api
