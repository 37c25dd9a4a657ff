#include "protocol/frame.h"

#include <limits>
#include <utility>

namespace agentvm::protocol {
namespace {

void PutU32(std::string* out, std::uint32_t v) {
  out->push_back(static_cast<char>((v >> 24) & 0xff));
  out->push_back(static_cast<char>((v >> 16) & 0xff));
  out->push_back(static_cast<char>((v >> 8) & 0xff));
  out->push_back(static_cast<char>(v & 0xff));
}

std::uint32_t GetU32(const char* p) {
  auto b = [p](int i) { return static_cast<std::uint32_t>(static_cast<unsigned char>(p[i])); };
  return (b(0) << 24) | (b(1) << 16) | (b(2) << 8) | b(3);
}

std::string DumpHeader(const nlohmann::json& header) {
  // Strings that are not valid UTF-8 (a filename, an argv from a shell) must
  // not make encoding throw; they travel with U+FFFD instead.
  return header.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

Frame MakeFrame(std::string_view type, std::uint32_t stream, nlohmann::json fields,
                std::string payload) {
  Frame frame;
  frame.type = std::string(type);
  frame.stream = stream;
  frame.header = fields.is_object() ? std::move(fields) : nlohmann::json::object();
  frame.header["type"] = frame.type;
  frame.header["stream"] = stream;
  frame.payload = std::move(payload);
  return frame;
}

void AppendFrame(std::string* out, const Frame& frame) {
  std::string header = DumpHeader(frame.header);
  out->reserve(out->size() + kFramePrefixBytes + header.size() + frame.payload.size());
  PutU32(out, static_cast<std::uint32_t>(header.size()));
  PutU32(out, static_cast<std::uint32_t>(frame.payload.size()));
  out->append(header);
  out->append(frame.payload);
}

std::string EncodeFrame(const Frame& frame) {
  std::string out;
  AppendFrame(&out, frame);
  return out;
}

bool EncodedFits(std::string_view encoded) {
  return encoded.size() >= kFramePrefixBytes &&
         encoded.size() - kFramePrefixBytes <= kMaxFrameBytes;
}

bool NestsDeeperThan(std::string_view json, int max_depth) {
  int depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : json) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > max_depth) return true;
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return false;
}

std::variant<Frame, DecodeError> ParseHeader(std::string_view header_text) {
  auto invalid = [](std::string message) {
    return DecodeError{"invalid_argument", "malformed frame header: " + std::move(message)};
  };
  if (NestsDeeperThan(header_text, kMaxHeaderDepth)) {
    return invalid("nested deeper than " + std::to_string(kMaxHeaderDepth) + " levels");
  }
  nlohmann::json header = nlohmann::json::parse(header_text, nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded()) return invalid("not JSON");
  if (!header.is_object()) return invalid("not a JSON object");
  auto type = header.find("type");
  if (type == header.end() || !type->is_string()) return invalid("no string \"type\"");
  auto stream = header.find("stream");
  if (stream == header.end() || !stream->is_number_integer()) {
    return invalid("no integer \"stream\"");
  }
  // Parsed non-negative integers are number_unsigned; anything else is < 0.
  if (!stream->is_number_unsigned() ||
      stream->get<std::uint64_t>() > std::numeric_limits<std::uint32_t>::max()) {
    return invalid("\"stream\" is not a uint32");
  }
  Frame frame;
  frame.type = type->get<std::string>();
  frame.stream = static_cast<std::uint32_t>(stream->get<std::uint64_t>());
  frame.header = std::move(header);
  return frame;
}

FrameDecoder::FrameDecoder(std::size_t max_frame_bytes, std::size_t max_header_bytes)
    : max_frame_bytes_(max_frame_bytes), max_header_bytes_(max_header_bytes) {}

void FrameDecoder::Feed(std::string_view bytes) {
  if (discard_left_ > 0 && buffered() == 0) {
    // Skip a refused frame's bytes without ever buffering them.
    std::size_t skip =
        static_cast<std::size_t>(std::min<std::uint64_t>(discard_left_, bytes.size()));
    discard_left_ -= skip;
    bytes.remove_prefix(skip);
  }
  if (bytes.empty()) return;
  if (consumed_ > 0 && consumed_ >= buffer_.size() / 2) {
    buffer_.erase(0, consumed_);
    consumed_ = 0;
    // A peer that never lets the buffer run empty still gives back a large
    // frame's capacity.
    if (buffer_.capacity() > kDecoderKeepBytes && buffer_.size() < kDecoderKeepBytes / 2) {
      buffer_.shrink_to_fit();
    }
  }
  buffer_.append(bytes);
}

void FrameDecoder::Consume(std::size_t n) {
  consumed_ += n;
  if (consumed_ == buffer_.size()) {
    if (buffer_.capacity() > kDecoderKeepBytes) {
      std::string().swap(buffer_);
    } else {
      buffer_.clear();
    }
    consumed_ = 0;
  }
}

DecodeError FrameDecoder::Refuse(std::uint64_t total, std::string message) {
  Consume(kFramePrefixBytes);
  discard_left_ = total;
  // Drop what is already here now so a caller that stops calling Next()
  // does not hold on to up to a frame's worth of garbage.
  std::size_t skip = static_cast<std::size_t>(std::min<std::uint64_t>(discard_left_, buffered()));
  discard_left_ -= skip;
  Consume(skip);
  return DecodeError{"too_large", std::move(message)};
}

void FrameDecoder::Reset() {
  buffer_.clear();
  consumed_ = 0;
  discard_left_ = 0;
}

std::optional<DecodeEvent> FrameDecoder::Next() {
  if (discard_left_ > 0) {
    std::size_t skip = static_cast<std::size_t>(std::min<std::uint64_t>(discard_left_, buffered()));
    discard_left_ -= skip;
    Consume(skip);
    if (discard_left_ > 0) return std::nullopt;
  }
  if (buffered() < kFramePrefixBytes) return std::nullopt;
  const char* p = buffer_.data() + consumed_;
  std::uint64_t header_len = GetU32(p);
  std::uint64_t payload_len = GetU32(p + 4);
  std::uint64_t total = header_len + payload_len;
  if (total > max_frame_bytes_) {
    return DecodeEvent(Refuse(total, "frame of " + std::to_string(total) +
                                         " bytes exceeds the limit of " +
                                         std::to_string(max_frame_bytes_) + " bytes"));
  }
  if (header_len > max_header_bytes_) {
    return DecodeEvent(Refuse(total, "frame header of " + std::to_string(header_len) +
                                         " bytes exceeds the limit of " +
                                         std::to_string(max_header_bytes_) + " bytes"));
  }
  if (buffered() < kFramePrefixBytes + total) {
    buffer_.reserve(consumed_ + kFramePrefixBytes + total);
    return std::nullopt;
  }
  std::string_view header_text(p + kFramePrefixBytes, header_len);
  auto parsed = ParseHeader(header_text);
  if (auto* error = std::get_if<DecodeError>(&parsed)) {
    Consume(kFramePrefixBytes + total);
    return DecodeEvent(std::move(*error));
  }
  Frame frame = std::move(std::get<Frame>(parsed));
  frame.payload.assign(p + kFramePrefixBytes + header_len, payload_len);
  Consume(kFramePrefixBytes + total);
  return DecodeEvent(std::move(frame));
}

}  // namespace agentvm::protocol
