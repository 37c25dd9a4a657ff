#include <gtest/gtest.h>

#include <string>

#include "protocol/messages.h"
#include "guest-images/agent/testing/over_the_wire.h"

namespace agentvm::protocol {
namespace {

Frame WithHeader(std::string_view type, nlohmann::json fields) {
  return MakeFrame(type, 1, std::move(fields));
}

TEST(MessagesTest, ExecRoundTrip) {
  ExecRequest request;
  request.argv = {"/bin/sh", "-c", "echo hi"};
  request.env = {{"FOO", "bar"}, {"EMPTY", ""}};
  request.cwd = "/tmp";
  request.timeout = std::chrono::milliseconds(1500);
  std::string stdin_bytes("a\0b\xff", 4);
  Frame frame = OverTheWire(ExecFrame(3, request, stdin_bytes, false));
  EXPECT_EQ(frame.type, kTypeExec);
  EXPECT_EQ(frame.stream, 3u);
  auto start = ParseExec(frame);
  ASSERT_TRUE(start.has_value()) << start.error();
  EXPECT_EQ(start->request.argv, request.argv);
  EXPECT_EQ(start->request.env, request.env);
  EXPECT_EQ(start->request.cwd, "/tmp");
  EXPECT_EQ(start->request.timeout, std::chrono::milliseconds(1500));
  EXPECT_EQ(start->request.stdin_data, stdin_bytes);
  EXPECT_FALSE(start->stdin_eof);
}

TEST(MessagesTest, ExecDefaults) {
  auto start = ParseExec(WithHeader(kTypeExec, {{"argv", {"true"}}}));
  ASSERT_TRUE(start.has_value()) << start.error();
  EXPECT_TRUE(start->request.env.empty());
  EXPECT_EQ(start->request.cwd, "");
  EXPECT_EQ(start->request.timeout.count(), 0);
  EXPECT_TRUE(start->stdin_eof);
}

TEST(MessagesTest, ExecRejectsMalformedFields) {
  for (const nlohmann::json& fields : {
           nlohmann::json::object(),
           nlohmann::json{{"argv", "ls"}},
           nlohmann::json{{"argv", nlohmann::json::array()}},
           nlohmann::json{{"argv", {"ls", 3}}},
           nlohmann::json{{"argv", {"ls"}}, {"env", {{"A", 1}}}},
           nlohmann::json{{"argv", {"ls"}}, {"env", {"A=1"}}},
           nlohmann::json{{"argv", {"ls"}}, {"cwd", 5}},
           nlohmann::json{{"argv", {"ls"}}, {"timeout_ms", -1}},
           nlohmann::json{{"argv", {"ls"}}, {"timeout_ms", "10"}},
           nlohmann::json{{"argv", {"ls"}}, {"stdin_eof", 1}},
       }) {
    auto start = ParseExec(WithHeader(kTypeExec, fields));
    EXPECT_FALSE(start.has_value()) << fields.dump();
    if (!start) {
      EXPECT_EQ(start.error().rfind("exec: ", 0), 0u) << start.error();
    }
  }
}

TEST(MessagesTest, StdinAndSignal) {
  auto chunk = ParseStdin(OverTheWire(StdinFrame(4, std::string("x\0y", 3), true)));
  ASSERT_TRUE(chunk.has_value());
  EXPECT_EQ(chunk->data, std::string("x\0y", 3));
  EXPECT_TRUE(chunk->eof);
  auto signal = ParseSignal(OverTheWire(SignalFrame(4, 15)));
  ASSERT_TRUE(signal.has_value());
  EXPECT_EQ(*signal, 15);
  EXPECT_FALSE(ParseSignal(WithHeader(kTypeSignal, {{"signal", 0}})).has_value());
  EXPECT_FALSE(ParseSignal(WithHeader(kTypeSignal, {{"signal", "TERM"}})).has_value());
  EXPECT_FALSE(ParseSignal(WithHeader(kTypeSignal, nlohmann::json::object())).has_value());
}

TEST(MessagesTest, ExitRoundTrips) {
  ExecResult code;
  code.exit_code = 7;
  auto parsed = ParseExit(OverTheWire(ExitFrame(1, code)));
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->exit_code, 7);
  EXPECT_FALSE(parsed->signal.has_value());
  EXPECT_FALSE(parsed->timed_out);
  EXPECT_EQ(parsed->ShellStatus(), 7);

  ExecResult killed;
  killed.signal = 9;
  killed.timed_out = true;
  Frame frame = OverTheWire(ExitFrame(1, killed));
  EXPECT_TRUE(frame.header["code"].is_null());
  parsed = ParseExit(frame);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_FALSE(parsed->exit_code.has_value());
  EXPECT_EQ(parsed->signal, 9);
  EXPECT_TRUE(parsed->timed_out);
  EXPECT_EQ(parsed->ShellStatus(), 124);
}

TEST(MessagesTest, FileRequestsRoundTrip) {
  WriteFileRequest write{"/tmp/f", 0600, 1u << 20, true};
  Frame frame = OverTheWire(WriteFileFrame(2, write, std::string("\0\1\2", 3)));
  auto parsed = ParseWriteFile(frame);
  ASSERT_TRUE(parsed.has_value()) << parsed.error();
  EXPECT_EQ(parsed->path, "/tmp/f");
  EXPECT_EQ(parsed->mode, 0600u);
  EXPECT_EQ(parsed->offset, 1u << 20);
  EXPECT_TRUE(parsed->truncate);
  EXPECT_EQ(frame.payload, std::string("\0\1\2", 3));

  auto no_mode = ParseWriteFile(WithHeader(kTypeWriteFile, {{"path", "/x"}}));
  ASSERT_TRUE(no_mode.has_value());
  EXPECT_FALSE(no_mode->mode.has_value());
  EXPECT_FALSE(no_mode->truncate);
  EXPECT_FALSE(
      ParseWriteFile(WithHeader(kTypeWriteFile, {{"path", "/x"}, {"mode", 070000}})).has_value());
  EXPECT_FALSE(ParseWriteFile(WithHeader(kTypeWriteFile, nlohmann::json::object())).has_value());

  auto read = ParseReadFile(OverTheWire(ReadFileFrame(5, {"/etc/hostname", 10, 20})));
  ASSERT_TRUE(read.has_value());
  EXPECT_EQ(read->path, "/etc/hostname");
  EXPECT_EQ(read->offset, 10u);
  EXPECT_EQ(read->length, 20u);
  auto read_default = ParseReadFile(WithHeader(kTypeReadFile, {{"path", "/x"}}));
  ASSERT_TRUE(read_default.has_value());
  EXPECT_EQ(read_default->length, kFileChunkBytes);
}

TEST(MessagesTest, RepliesRoundTrip) {
  auto version = ParsePong(OverTheWire(PongFrame(1)));
  ASSERT_TRUE(version.has_value());
  EXPECT_EQ(*version, kProtocolVersion);

  auto pid = ParseStarted(OverTheWire(StartedFrame(1, 1234)));
  ASSERT_TRUE(pid.has_value());
  EXPECT_EQ(*pid, 1234);

  Frame out = OverTheWire(OutputFrame(1, OutputStream::kStderr, "oops"));
  EXPECT_EQ(out.type, kTypeStderr);
  EXPECT_EQ(out.payload, "oops");

  auto size = ParseOk(OverTheWire(OkFrame(1, 99)));
  ASSERT_TRUE(size.has_value());
  EXPECT_EQ(*size, 99u);
  auto no_size = ParseOk(OverTheWire(OkFrame(1)));
  ASSERT_TRUE(no_size.has_value());
  EXPECT_FALSE(no_size->has_value());

  Frame data = OverTheWire(DataFrame(1, {3 << 20, 0755, true}, std::string("\0z", 2)));
  auto info = ParseData(data);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->size, 3u << 20);
  EXPECT_EQ(info->mode, 0755u);
  EXPECT_TRUE(info->eof);
  EXPECT_EQ(data.payload, std::string("\0z", 2));

  auto error =
      ParseError(OverTheWire(ErrorFrame(1, kCodeNotFound, "exec nope: No such file or directory")));
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->code, "not_found");
  EXPECT_EQ(error->message, "exec nope: No such file or directory");
}

}  // namespace
}  // namespace agentvm::protocol
