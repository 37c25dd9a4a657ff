#include "supervisor/api/encoding.h"
#include "supervisor/api/json_codec.h"
#include "supervisor/api/request_validation.h"

#include <algorithm>
#include <string>

#include <gtest/gtest.h>

namespace agentvm::api {
namespace {

using namespace std::string_literals;

TEST(ApiEncodingTest, PercentDecode) {
  EXPECT_EQ(PercentDecode("a%20b%2fc+d").value(), "a b/c+d");
  EXPECT_EQ(PercentDecode("%00").value(), "\0"s);
  EXPECT_FALSE(PercentDecode("%"));
  EXPECT_FALSE(PercentDecode("%4"));
  EXPECT_FALSE(PercentDecode("%g0"));
  EXPECT_EQ(PercentDecode(PercentEncode("/tmp/a b?c&d=é")).value(), "/tmp/a b?c&d=é");
  EXPECT_EQ(PercentEncode("/tmp/a b"), "/tmp/a%20b");
}

TEST(ApiEncodingTest, Utf8Validation) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain ascii\n"));
  EXPECT_TRUE(IsValidUtf8("é ✓ 😀"));
  EXPECT_TRUE(IsValidUtf8("\0"s));
  EXPECT_FALSE(IsValidUtf8("\xff"));
  EXPECT_FALSE(IsValidUtf8("\xc3"));          // truncated
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));      // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));  // surrogate
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));  // above U+10FFFF
}

TEST(ApiEncodingTest, Base64RoundTrip) {
  EXPECT_EQ(Base64Encode(""), "");
  EXPECT_EQ(Base64Encode("f"), "Zg==");
  EXPECT_EQ(Base64Encode("fo"), "Zm8=");
  EXPECT_EQ(Base64Encode("foo"), "Zm9v");
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  EXPECT_EQ(Base64Decode(Base64Encode(all)).value(), all);
  EXPECT_FALSE(Base64Decode("Zg="));
  EXPECT_FALSE(Base64Decode("Z=g="));
  EXPECT_FALSE(Base64Decode("Zg==Zg=="));
  EXPECT_FALSE(Base64Decode("Z!=="));
}

TEST(ApiCodecTest, VmInfoRoundTrip) {
  VmInfo info;
  info.id = "vm-7";
  info.image = "tiny";
  info.state = VmState::kFailed;
  info.cpus = 2;
  info.memory_mib = 512;
  info.channel = "virtio-serial";
  info.accel = "tcg";
  info.reason = "qemu exited with signal 9";
  info.created_at = 1700000000;
  auto json = VmInfoToJson(info);
  EXPECT_EQ(json["state"], "failed");
  EXPECT_TRUE(json["pid"].is_null());
  auto back = VmInfoFromJson(json);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->id, "vm-7");
  EXPECT_EQ(back->state, VmState::kFailed);
  EXPECT_EQ(back->reason, info.reason);
  EXPECT_EQ(back->created_at, info.created_at);
  EXPECT_FALSE(back->pid);

  auto list = VmListFromJson(VmListToJson({info, info}));
  ASSERT_TRUE(list);
  EXPECT_EQ(list->size(), 2u);
  EXPECT_FALSE(VmInfoFromJson(nlohmann::json{{"id", "x"}, {"state", "dancing"}}));
}

TEST(ApiCodecTest, ErrorsRoundTripThroughTheirBody) {
  Error error{ErrorCode::kConflict, "VM vm-1 is running"};
  std::string body = ErrorBody(error);
  EXPECT_EQ(nlohmann::json::parse(body)["code"], "conflict");
  Error back = ErrorFromResponse(409, body);
  EXPECT_EQ(back.code, ErrorCode::kConflict);
  EXPECT_EQ(back.message, error.message);

  EXPECT_EQ(ErrorFromResponse(404, "<html>").code, ErrorCode::kNotFound);
  EXPECT_EQ(HttpStatusFor(ErrorCode::kTimeout), 504);
  EXPECT_EQ(HttpStatusFor(ErrorCode::kUnavailable), 503);
  EXPECT_EQ(HttpStatusFor(ErrorCode::kTooLarge), 413);
  // A message that is not UTF-8 still serializes.
  EXPECT_NO_THROW(ErrorBody(Error{ErrorCode::kNotFound, "no such file: /\xff"}));
}

TEST(ApiCodecTest, ExecEventsRoundTripAnyBytes) {
  const std::string text = "hello ✓\n";
  const std::string binary = "\xff\xfe\x00\x80"s;
  auto text_line = ExecOutputEvent(protocol::OutputStream::kStdout, text);
  auto binary_line = ExecOutputEvent(protocol::OutputStream::kStderr, binary);
  ASSERT_EQ(text_line.back(), '\n');
  EXPECT_NE(text_line.find("\"data\""), std::string::npos);
  EXPECT_NE(binary_line.find("\"data_b64\""), std::string::npos);
  EXPECT_EQ(std::count(text_line.begin(), text_line.end(), '\n'), 1) << "one event per line";

  auto text_event = ParseExecEvent(text_line);
  ASSERT_TRUE(text_event);
  EXPECT_EQ(text_event->type, ExecEvent::Type::kStdout);
  EXPECT_EQ(text_event->data, text);
  auto binary_event = ParseExecEvent(binary_line);
  ASSERT_TRUE(binary_event);
  EXPECT_EQ(binary_event->type, ExecEvent::Type::kStderr);
  EXPECT_EQ(binary_event->data, binary);
}

TEST(ApiCodecTest, ExitAndErrorEvents) {
  protocol::ExecResult timed_out;
  timed_out.signal = 9;
  timed_out.timed_out = true;
  auto line = ExecExitEvent(timed_out);
  auto json = nlohmann::json::parse(line);
  EXPECT_EQ(json["type"], "exit");
  EXPECT_TRUE(json["exit_code"].is_null());
  EXPECT_EQ(json["signal"], 9);
  EXPECT_EQ(json["status"], 124);
  auto event = ParseExecEvent(line);
  ASSERT_TRUE(event);
  EXPECT_EQ(event->result.ShellStatus(), 124);

  auto error = ParseExecEvent(ExecErrorEvent(Error{ErrorCode::kUnavailable, "guest went away"}));
  ASSERT_TRUE(error);
  EXPECT_EQ(error->type, ExecEvent::Type::kError);
  EXPECT_EQ(error->error.code, ErrorCode::kUnavailable);
  EXPECT_EQ(error->error.message, "guest went away");

  EXPECT_FALSE(ParseExecEvent("not json"));
  EXPECT_FALSE(ParseExecEvent(R"({"type":"dance"})"));
}

TEST(ApiCodecTest, RequestBodiesParseBackOnTheServerSide) {
  protocol::ExecRequest request;
  request.argv = {"cat"};
  request.stdin_data = "\xff\x01"s;
  request.timeout = std::chrono::milliseconds(1500);
  request.env = {{"HOME", "/root"}};
  request.cwd = "/tmp";
  std::string body = ExecRequestToJson(request);
  EXPECT_NE(body.find("stdin_b64"), std::string::npos);
  auto parsed = ParseExecBody(body);
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->argv, request.argv);
  EXPECT_EQ(parsed->stdin_data, request.stdin_data);
  EXPECT_EQ(parsed->timeout, request.timeout);
  EXPECT_EQ(parsed->env, request.env);
  EXPECT_EQ(parsed->cwd, request.cwd);

  CreateVmRequest create{"tiny", 2, 512};
  auto created = ParseCreateVmBody(CreateVmRequestToJson(create));
  ASSERT_TRUE(created);
  EXPECT_EQ(created->cpus, 2);
  EXPECT_EQ(created->memory_mib, 512);
}

}  // namespace
}  // namespace agentvm::api
