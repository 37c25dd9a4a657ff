// Framing of the guest control protocol (docs/guest-protocol.md):
//
//   u32 header length H (big-endian) | u32 payload length P (big-endian) |
//   H bytes of JSON object (the header) | P raw payload bytes
//
// H + P <= kMaxFrameBytes. Every header has "type" (string) and "stream"
// (uint32, 0 = connection level). The same code frames both directions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace agentvm::protocol {

inline constexpr std::size_t kFramePrefixBytes = 8;
// Limit on H + P; the 8-byte prefix is not counted.
inline constexpr std::size_t kMaxFrameBytes = 16 * 1024 * 1024;
// Nesting of a header's JSON beyond this is refused before parsing: no
// header needs more than 3 levels, and a deep one costs the parser.
inline constexpr int kMaxHeaderDepth = 32;
// A decoder keeps at most this much buffer capacity once a large frame is
// done, so one 16 MiB frame does not pin 16 MiB for the connection's life.
inline constexpr std::size_t kDecoderKeepBytes = 256 * 1024;
// 2: per-exec flow control (output_window, output_ack, stdin_ack).
inline constexpr int kProtocolVersion = 2;

// Where the guest listens / which port it opens.
inline constexpr std::uint32_t kGuestVsockPort = 1024;
inline constexpr std::string_view kVirtioPortName = "agentvm.0";

struct Frame {
  std::string type;
  std::uint32_t stream = 0;
  nlohmann::json header;  // the whole header object, "type" and "stream" included
  std::string payload;
};

// A frame whose "type" and "stream" are set in both the members and the header.
Frame MakeFrame(std::string_view type, std::uint32_t stream,
                nlohmann::json fields = nlohmann::json::object(), std::string payload = {});

// Bytes on the wire for `frame`. Never fails; the caller checks
// EncodedFits() when the size is not bounded by construction.
std::string EncodeFrame(const Frame& frame);
void AppendFrame(std::string* out, const Frame& frame);
// True when an encoded frame (prefix included) respects kMaxFrameBytes.
bool EncodedFits(std::string_view encoded);

// A frame the decoder refused: over the limit, a header over its own limit
// or nested deeper than kMaxHeaderDepth, or a header that is not a JSON
// object with a string "type" and a uint32 "stream". Its bytes are already
// discarded; the peer is owed {"type":"error","stream":0,code,message}.
struct DecodeError {
  std::string code;  // "too_large" or "invalid_argument"
  std::string message;
};

using DecodeEvent = std::variant<Frame, DecodeError>;

// Incremental decoder: Feed() bytes as they arrive, then call Next() until it
// returns nullopt. An oversized frame is reported as soon as its prefix is
// seen and its declared bytes are skipped without being buffered, so the
// stream stays in sync and memory stays bounded by the limit.
class FrameDecoder {
 public:
  // A frame whose header alone is over `max_header_bytes` is refused like
  // an oversized one (the host takes small headers only from a guest).
  explicit FrameDecoder(std::size_t max_frame_bytes = kMaxFrameBytes,
                        std::size_t max_header_bytes = kMaxFrameBytes);

  void Feed(std::string_view bytes);
  std::optional<DecodeEvent> Next();

  // Drops everything buffered (a new connection starts clean).
  void Reset();
  // Bytes buffered but not yet returned as frames.
  std::size_t buffered() const { return buffer_.size() - consumed_; }
  // Memory held for buffering; back under kDecoderKeepBytes once drained.
  std::size_t capacity() const { return buffer_.capacity(); }

 private:
  void Consume(std::size_t n);
  // Refuses the frame whose prefix is at the front: skips its `total` bytes.
  DecodeError Refuse(std::uint64_t total, std::string message);

  std::size_t max_frame_bytes_;
  std::size_t max_header_bytes_;
  std::string buffer_;
  std::size_t consumed_ = 0;        // prefix of buffer_ already decoded
  std::uint64_t discard_left_ = 0;  // bytes of a refused frame still to skip
};

// Whether `json` nests objects/arrays deeper than `max_depth`, found by a
// scan that does not parse (brackets inside strings do not count), so deep
// input never reaches the JSON library. Also the API's check on bodies.
bool NestsDeeperThan(std::string_view json, int max_depth);

// Parses a header object; used by the decoder and by tests.
std::variant<Frame, DecodeError> ParseHeader(std::string_view header_text);

}  // namespace agentvm::protocol
