#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "protocol/frame.h"
#include "protocol/messages.h"

namespace agentvm::protocol {
namespace {

std::string AllBytes() {
  std::string bytes;
  for (int round = 0; round < 3; ++round) {
    for (int b = 0; b < 256; ++b) bytes.push_back(static_cast<char>(b));
  }
  bytes.append(std::string(10, '\0'));
  return bytes;
}

// Decodes everything fed so far; decode errors are recorded as frames of
// type "!<code>" so tests can compare sequences.
std::vector<Frame> Drain(FrameDecoder& decoder) {
  std::vector<Frame> frames;
  while (auto event = decoder.Next()) {
    if (auto* error = std::get_if<DecodeError>(&*event)) {
      Frame marker;
      marker.type = "!" + error->code;
      frames.push_back(marker);
    } else {
      frames.push_back(std::get<Frame>(std::move(*event)));
    }
  }
  return frames;
}

std::string Prefix(std::uint32_t header_len, std::uint32_t payload_len) {
  std::string p;
  for (std::uint32_t v : {header_len, payload_len}) {
    p.push_back(static_cast<char>(v >> 24));
    p.push_back(static_cast<char>(v >> 16));
    p.push_back(static_cast<char>(v >> 8));
    p.push_back(static_cast<char>(v));
  }
  return p;
}

std::string RawFrame(const std::string& header, const std::string& payload = "") {
  return Prefix(static_cast<std::uint32_t>(header.size()),
                static_cast<std::uint32_t>(payload.size())) +
         header + payload;
}

TEST(FrameTest, EncodesLengthsBigEndianThenHeaderThenPayload) {
  Frame frame = MakeFrame("stdout", 7, nlohmann::json::object(), "xyz");
  std::string bytes = EncodeFrame(frame);
  std::string header = frame.header.dump();
  ASSERT_EQ(bytes.size(), 8 + header.size() + 3);
  EXPECT_EQ(bytes.substr(0, 8), Prefix(static_cast<std::uint32_t>(header.size()), 3));
  EXPECT_EQ(nlohmann::json::parse(bytes.substr(8, header.size())),
            nlohmann::json({{"type", "stdout"}, {"stream", 7}}));
  EXPECT_EQ(bytes.substr(8 + header.size()), "xyz");
}

TEST(FrameTest, RoundTripsBinaryPayloadWithNuls) {
  Frame frame = MakeFrame("write_file", 42, {{"path", "/tmp/x"}, {"offset", 0}}, AllBytes());
  FrameDecoder decoder;
  decoder.Feed(EncodeFrame(frame));
  auto frames = Drain(decoder);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].type, "write_file");
  EXPECT_EQ(frames[0].stream, 42u);
  EXPECT_EQ(frames[0].header["path"], "/tmp/x");
  EXPECT_EQ(frames[0].payload, AllBytes());
  EXPECT_EQ(decoder.buffered(), 0u);
}

TEST(FrameTest, DecodesTheSameFramesWhereverTheBytesAreSplit) {
  std::vector<Frame> sent = {
      MakeFrame("ping", 0),
      MakeFrame("stdout", 1, nlohmann::json::object(), AllBytes()),
      MakeFrame("exit", 4294967295u, {{"code", 7}, {"signal", nullptr}}),
      MakeFrame("stderr", 2, nlohmann::json::object(), std::string(1, '\0')),
  };
  std::string wire;
  for (const Frame& f : sent) AppendFrame(&wire, f);

  for (std::size_t split = 0; split <= wire.size(); ++split) {
    FrameDecoder decoder;
    decoder.Feed(std::string_view(wire).substr(0, split));
    auto frames = Drain(decoder);
    decoder.Feed(std::string_view(wire).substr(split));
    auto rest = Drain(decoder);
    frames.insert(frames.end(), rest.begin(), rest.end());
    ASSERT_EQ(frames.size(), sent.size()) << "split at " << split;
    for (std::size_t i = 0; i < sent.size(); ++i) {
      EXPECT_EQ(frames[i].type, sent[i].type) << "split at " << split;
      EXPECT_EQ(frames[i].stream, sent[i].stream);
      EXPECT_EQ(frames[i].header, sent[i].header);
      EXPECT_EQ(frames[i].payload, sent[i].payload);
    }
  }

  FrameDecoder bytewise;
  std::vector<Frame> frames;
  for (char c : wire) {
    bytewise.Feed(std::string_view(&c, 1));
    auto got = Drain(bytewise);
    frames.insert(frames.end(), got.begin(), got.end());
  }
  ASSERT_EQ(frames.size(), sent.size());
  EXPECT_EQ(frames[1].payload, AllBytes());
}

TEST(FrameTest, AcceptsAFrameExactlyAtTheLimitAndRefusesOneByteMore) {
  std::string header = MakeFrame("stdout", 3).header.dump();
  std::string at_limit = RawFrame(header, std::string(kMaxFrameBytes - header.size(), 'a'));
  EXPECT_TRUE(EncodedFits(at_limit));
  std::string over = RawFrame(header, std::string(kMaxFrameBytes - header.size() + 1, 'b'));
  EXPECT_FALSE(EncodedFits(over));

  FrameDecoder decoder;
  decoder.Feed(at_limit);
  decoder.Feed(over);
  decoder.Feed(EncodeFrame(MakeFrame("ping", 9)));
  auto frames = Drain(decoder);
  ASSERT_EQ(frames.size(), 3u);
  EXPECT_EQ(frames[0].type, "stdout");
  EXPECT_EQ(frames[0].payload.size(), kMaxFrameBytes - header.size());
  EXPECT_EQ(frames[1].type, "!too_large");
  EXPECT_EQ(frames[2].type, "ping");
  EXPECT_EQ(frames[2].stream, 9u);
}

TEST(FrameTest, SkipsAnOversizedFrameWithoutBufferingItAndResyncs) {
  FrameDecoder decoder;
  const std::uint32_t payload_len = kMaxFrameBytes + 1024 * 1024;
  decoder.Feed(Prefix(20, payload_len));
  auto first = decoder.Next();
  ASSERT_TRUE(first.has_value());
  auto* error = std::get_if<DecodeError>(&*first);
  ASSERT_NE(error, nullptr);
  EXPECT_EQ(error->code, "too_large");
  EXPECT_NE(error->message.find("limit"), std::string::npos);

  // The declared bytes arrive in chunks; none of them is kept.
  std::string chunk(1024 * 1024, '\xff');
  std::size_t left = 20 + payload_len;
  while (left > 0) {
    std::size_t n = std::min(left, chunk.size());
    decoder.Feed(std::string_view(chunk).substr(0, n));
    EXPECT_FALSE(decoder.Next().has_value());
    EXPECT_EQ(decoder.buffered(), 0u);
    left -= n;
  }
  decoder.Feed(EncodeFrame(MakeFrame("ping", 5)));
  auto frames = Drain(decoder);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].type, "ping");
  EXPECT_EQ(frames[0].stream, 5u);
}

TEST(FrameTest, LengthsWhoseSumOverflows32BitsAreTooLarge) {
  FrameDecoder decoder;
  decoder.Feed(Prefix(0xffffffffu, 0xffffffffu));
  auto frames = Drain(decoder);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].type, "!too_large");
}

TEST(FrameTest, MalformedHeadersAreRefusedAndTheNextFrameStillDecodes) {
  const std::vector<std::string> bad = {
      "",  // H = 0
      "not json",
      "[1,2]",
      "\"ping\"",
      R"({"stream":1})",  // no type
      R"({"type":5,"stream":1})",
      R"({"type":"ping"})",  // no stream
      R"({"type":"ping","stream":"1"})",
      R"({"type":"ping","stream":-1})",
      R"({"type":"ping","stream":4294967296})",
      R"({"type":"ping","stream":1.5})",
      R"({"type":"ping","stream":1)",  // truncated
  };
  for (const std::string& header : bad) {
    FrameDecoder decoder;
    decoder.Feed(RawFrame(header, "payload"));
    decoder.Feed(EncodeFrame(MakeFrame("ping", 3)));
    auto frames = Drain(decoder);
    ASSERT_EQ(frames.size(), 2u) << header;
    EXPECT_EQ(frames[0].type, "!invalid_argument") << header;
    EXPECT_EQ(frames[1].type, "ping") << header;
  }
}

TEST(FrameTest, NonUtf8StringsEncodeInsteadOfThrowing) {
  Frame frame = MakeFrame("error", 1, {{"message", std::string("bad \xff\xfe name")}});
  std::string wire;
  ASSERT_NO_THROW(wire = EncodeFrame(frame));
  FrameDecoder decoder;
  decoder.Feed(wire);
  auto frames = Drain(decoder);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].type, "error");
}

TEST(FrameTest, ResetDropsPartialInput) {
  FrameDecoder decoder;
  std::string wire = EncodeFrame(MakeFrame("ping", 1));
  decoder.Feed(std::string_view(wire).substr(0, 5));
  decoder.Reset();
  decoder.Feed(wire);
  auto frames = Drain(decoder);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].type, "ping");
}

}  // namespace
}  // namespace agentvm::protocol
