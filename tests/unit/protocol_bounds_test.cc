// What a hostile peer can make the decoder hold or parse: header size and
// depth caps, buffers given back after large frames, exit statuses out of
// range.
#include <gtest/gtest.h>

#include <string>

#include "protocol/frame.h"
#include "protocol/messages.h"

namespace agentvm::protocol {
namespace {

std::string Prefix(std::uint32_t header_len, std::uint32_t payload_len) {
  std::string p;
  for (std::uint32_t v : {header_len, payload_len}) {
    for (int shift : {24, 16, 8, 0}) p.push_back(static_cast<char>(v >> shift));
  }
  return p;
}

std::string RawFrame(const std::string& header, const std::string& payload = "") {
  return Prefix(static_cast<std::uint32_t>(header.size()), static_cast<std::uint32_t>(payload.size())) +
         header + payload;
}

// The refusal Next() returned, or nullopt for a frame or nothing.
std::optional<DecodeError> ErrorOf(std::optional<DecodeEvent> event) {
  if (!event || !std::holds_alternative<DecodeError>(*event)) return std::nullopt;
  return std::get<DecodeError>(*event);
}

TEST(FrameBoundsTest, AHeaderOverItsCapIsRefusedFromItsPrefixAndSkipped) {
  FrameDecoder decoder(kMaxFrameBytes, /*max_header_bytes=*/1024);
  const std::string big_header = R"({"type":"ping","stream":1,"pad":")" + std::string(4000, 'x') + "\"}";
  // Only the prefix has arrived: refused before any of the header is buffered.
  decoder.Feed(Prefix(static_cast<std::uint32_t>(big_header.size()), 0));
  auto error = ErrorOf(decoder.Next());
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->code, "too_large");
  EXPECT_NE(error->message.find("header of " + std::to_string(big_header.size()) + " bytes"), std::string::npos);
  decoder.Feed(big_header);
  EXPECT_EQ(decoder.buffered(), 0u);
  decoder.Feed(EncodeFrame(MakeFrame("pong", 2)));
  auto next = decoder.Next();
  ASSERT_TRUE(next && std::holds_alternative<Frame>(*next));
  EXPECT_EQ(std::get<Frame>(*next).type, "pong");
}

TEST(FrameBoundsTest, AHeaderExactlyAtItsCapDecodes) {
  std::string header = R"({"type":"ping","stream":1,"pad":""})";
  header.insert(header.size() - 2, std::string(1024 - header.size(), 'x'));
  ASSERT_EQ(header.size(), 1024u);
  FrameDecoder decoder(kMaxFrameBytes, 1024);
  decoder.Feed(RawFrame(header, "payload is not the header"));
  auto next = decoder.Next();
  ASSERT_TRUE(next && std::holds_alternative<Frame>(*next));
}

TEST(FrameBoundsTest, DeeplyNestedHeadersAreRefusedWithoutParsing) {
  const int too_deep = 100000;
  std::string deep = R"({"type":"ping","stream":1,"x":)" + std::string(too_deep, '[') +
                     std::string(too_deep, ']') + "}";
  FrameDecoder decoder;
  decoder.Feed(RawFrame(deep) + EncodeFrame(MakeFrame("pong", 3)));
  auto error = ErrorOf(decoder.Next());
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->code, "invalid_argument");
  EXPECT_NE(error->message.find("nested deeper than"), std::string::npos);
  auto next = decoder.Next();
  ASSERT_TRUE(next && std::holds_alternative<Frame>(*next));
  EXPECT_EQ(std::get<Frame>(*next).stream, 3u);
}

TEST(FrameBoundsTest, DepthCountsBracketsOutsideStringsOnly) {
  EXPECT_FALSE(NestsDeeperThan(R"({"a":"[[[[[[{{{{\"[[["})", 2));
  EXPECT_FALSE(NestsDeeperThan(R"({"a":[{"b":[]}]})", 4));
  EXPECT_TRUE(NestsDeeperThan(R"({"a":[{"b":[]}]})", 3));
  // Exactly at the cap parses.
  std::string at_cap = R"({"type":"ping","stream":1,"x":)" + std::string(kMaxHeaderDepth - 1, '[') +
                       std::string(kMaxHeaderDepth - 1, ']') + "}";
  auto parsed = ParseHeader(at_cap);
  EXPECT_TRUE(std::holds_alternative<Frame>(parsed));
}

TEST(FrameBoundsTest, BufferCapacityShrinksAfterALargeFrame) {
  FrameDecoder decoder;
  decoder.Feed(EncodeFrame(MakeFrame("stdout", 1, nlohmann::json::object(), std::string(8 << 20, 'o'))));
  auto big = decoder.Next();
  ASSERT_TRUE(big && std::holds_alternative<Frame>(*big));
  EXPECT_EQ(std::get<Frame>(*big).payload.size(), 8u << 20);
  EXPECT_LE(decoder.capacity(), kDecoderKeepBytes);
}

TEST(FrameBoundsTest, BufferShrinksEvenWhenItNeverRunsEmpty) {
  FrameDecoder decoder;
  const std::string small = EncodeFrame(MakeFrame("pong", 1));
  // A large frame followed by the first half of a small one, then the rest
  // of it together with the start of another: the buffer is never empty.
  decoder.Feed(EncodeFrame(MakeFrame("stdout", 1, nlohmann::json::object(), std::string(4 << 20, 'o'))) +
               small.substr(0, 5));
  while (decoder.Next()) {
  }
  decoder.Feed(small.substr(5) + small.substr(0, 5));
  while (decoder.Next()) {
  }
  decoder.Feed(small.substr(5) + small.substr(0, 5));
  while (decoder.Next()) {
  }
  EXPECT_GT(decoder.buffered(), 0u);
  EXPECT_LE(decoder.capacity(), kDecoderKeepBytes);
}

Frame ExitWith(nlohmann::json fields) {
  return MakeFrame(kTypeExit, 1, std::move(fields));
}

TEST(ExitBoundsTest, OutOfRangeCodesAndSignalsAreRefused) {
  for (int code : {-1, 256, 2147483647}) {
    EXPECT_FALSE(ParseExit(ExitWith({{"code", code}})).has_value()) << code;
  }
  for (int signal : {0, -9, 65, 2147483647}) {
    EXPECT_FALSE(ParseExit(ExitWith({{"signal", signal}})).has_value()) << signal;
  }
  auto killed = ParseExit(ExitWith({{"signal", 64}}));
  ASSERT_TRUE(killed.has_value());
  EXPECT_EQ(killed->ShellStatus(), 192);
  auto exited = ParseExit(ExitWith({{"code", 255}}));
  ASSERT_TRUE(exited.has_value());
  EXPECT_EQ(exited->ShellStatus(), 255);
}

TEST(ExitBoundsTest, ShellStatusNeverOverflows) {
  ExecResult huge_signal;
  huge_signal.signal = 2147483647;
  EXPECT_EQ(huge_signal.ShellStatus(), 255);
  ExecResult negative_code;
  negative_code.exit_code = -5;
  EXPECT_EQ(negative_code.ShellStatus(), 255);
}

}  // namespace
}  // namespace agentvm::protocol
