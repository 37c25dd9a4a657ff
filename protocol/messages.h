// Typed builders and parsers for the guest protocol's messages, so neither end
// touches header JSON by hand. docs/guest-protocol.md is the reference.
//
// Parsers return std::expected<T, std::string>: the string says what is wrong
// with the header, for an "invalid_argument" error reply or a log line.
#pragma once

#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <string_view>

#include "protocol/exec_types.h"
#include "protocol/frame.h"
#include "protocol/identity.h"

namespace agentvm::protocol {

template <class T>
using ParseResult = std::expected<T, std::string>;

// Frame types. Requests (host -> guest):
inline constexpr std::string_view kTypePing = "ping";
inline constexpr std::string_view kTypeExec = "exec";
inline constexpr std::string_view kTypeStdin = "stdin";
inline constexpr std::string_view kTypeSignal = "signal";
inline constexpr std::string_view kTypeWriteFile = "write_file";
inline constexpr std::string_view kTypeReadFile = "read_file";
inline constexpr std::string_view kTypeShutdown = "shutdown";
inline constexpr std::string_view kTypeConfigure = "configure";
inline constexpr std::string_view kTypeOutputAck = "output_ack";
inline constexpr std::string_view kTypeResize = "resize";
// Replies (guest -> host):
inline constexpr std::string_view kTypePong = "pong";
inline constexpr std::string_view kTypeStarted = "started";
inline constexpr std::string_view kTypeStdout = "stdout";
inline constexpr std::string_view kTypeStderr = "stderr";
inline constexpr std::string_view kTypeExit = "exit";
inline constexpr std::string_view kTypeOk = "ok";
inline constexpr std::string_view kTypeData = "data";
inline constexpr std::string_view kTypeStdinAck = "stdin_ack";
// Either direction:
inline constexpr std::string_view kTypeError = "error";

// Error codes: the names common/error.h's ErrorCodeName() gives, so the host
// maps them back to ErrorCode (this library does not depend on common/).
inline constexpr std::string_view kCodeInvalidArgument = "invalid_argument";
inline constexpr std::string_view kCodeNotFound = "not_found";
inline constexpr std::string_view kCodeConflict = "conflict";
inline constexpr std::string_view kCodeTimeout = "timeout";
inline constexpr std::string_view kCodeUnavailable = "unavailable";
inline constexpr std::string_view kCodeTooLarge = "too_large";
inline constexpr std::string_view kCodeInternal = "internal";

// File chunks: the host writes in chunks of this size; a read_file without a
// length returns at most this much; the guest never returns more than
// kMaxReadLength in one data frame.
inline constexpr std::uint64_t kFileChunkBytes = 1024 * 1024;
inline constexpr std::uint64_t kMaxReadLength = 8 * 1024 * 1024;
inline constexpr std::uint32_t kDefaultFileMode = 0644;

// Flow control of one exec, in both directions (docs/guest-protocol.md):
// - output: the guest has at most the exec's "output_window" bytes of
//   stdout+stderr payload sent and not yet acknowledged by the host's
//   "output_ack" frames; beyond that it stops reading the program's pipes,
//   so the program's own writes block. The host acknowledges what its
//   consumer has taken, so a slow reader slows the program down instead of
//   filling anybody's memory. No "output_window": no limit (tests, tools).
// - stdin: the host has at most kStdinWindowBytes of stdin payload (the exec
//   frame's included) sent and not yet acknowledged by the guest's
//   "stdin_ack" frames, which it sends as the program reads its stdin.
inline constexpr std::uint64_t kDefaultOutputWindow = 1024 * 1024;
inline constexpr std::uint64_t kMaxOutputWindow = 64 * 1024 * 1024;
inline constexpr std::uint64_t kStdinWindowBytes = 1024 * 1024;

// exec: header fields of ExecRequest; stdin_data travels as the payload.
struct ExecStart {
  ExecRequest request;    // request.stdin_data = the frame's payload
  bool stdin_eof = true;  // false: "stdin" frames follow
  std::optional<std::uint64_t> output_window;  // nullopt: output is not flow controlled
};

struct StdinChunk {
  std::string data;
  bool eof = false;
};

struct WriteFileRequest {
  std::string path;
  std::optional<std::uint32_t> mode;  // absent: 0644 on create, existing mode kept
  std::uint64_t offset = 0;
  bool truncate = false;
};

struct ReadFileRequest {
  std::string path;
  std::uint64_t offset = 0;
  std::uint64_t length = kFileChunkBytes;
};

// Header of a "data" reply; the bytes are the payload.
struct FileData {
  std::uint64_t size = 0;  // the file's size
  std::uint32_t mode = 0;  // permission bits
  bool eof = false;        // no bytes after this chunk
};

// A piece of a file as the host reads it: the reply's header and payload.
struct FileChunk {
  FileData info;
  std::string data;
};

struct ErrorReply {
  std::string code;
  std::string message;
};

// Builders. Payload-carrying builders copy `data` into the frame.
Frame PingFrame(std::uint32_t stream);
// request.stdin_data is ignored: pass the chunk.
Frame ExecFrame(std::uint32_t stream, const ExecRequest& request, std::string_view stdin_chunk,
                bool stdin_eof, std::optional<std::uint64_t> output_window = std::nullopt);
Frame StdinFrame(std::uint32_t stream, std::string_view data, bool eof);
Frame SignalFrame(std::uint32_t stream, int signal);
Frame WriteFileFrame(std::uint32_t stream, const WriteFileRequest& request, std::string_view data);
Frame ReadFileFrame(std::uint32_t stream, const ReadFileRequest& request);
Frame ShutdownFrame(std::uint32_t stream);
// identity.entropy travels as the payload.
Frame ConfigureFrame(std::uint32_t stream, const GuestIdentity& identity);
// The host's consumer took `bytes` more of the exec's output.
Frame OutputAckFrame(std::uint32_t stream, std::uint64_t bytes);
// The terminal of a tty exec changed size.
Frame ResizeFrame(std::uint32_t stream, TerminalSize size);

Frame PongFrame(std::uint32_t stream);
Frame StartedFrame(std::uint32_t stream, int pid);
Frame OutputFrame(std::uint32_t stream, OutputStream which, std::string_view data);
Frame ExitFrame(std::uint32_t stream, const ExecResult& result);
Frame OkFrame(std::uint32_t stream, std::optional<std::uint64_t> size = std::nullopt);
Frame DataFrame(std::uint32_t stream, const FileData& data, std::string_view bytes);
Frame ErrorFrame(std::uint32_t stream, std::string_view code, std::string_view message);
// The program took (or, its stdin being closed, the guest dropped) `bytes`
// more of the stdin sent for the exec.
Frame StdinAckFrame(std::uint32_t stream, std::uint64_t bytes);

// Parsers; each expects a frame of the matching type.
ParseResult<ExecStart> ParseExec(const Frame& frame);
ParseResult<StdinChunk> ParseStdin(const Frame& frame);
ParseResult<int> ParseSignal(const Frame& frame);
ParseResult<WriteFileRequest> ParseWriteFile(const Frame& frame);
ParseResult<ReadFileRequest> ParseReadFile(const Frame& frame);
// Also checks every value (CheckIdentity): a parsed identity is safe to apply.
ParseResult<GuestIdentity> ParseConfigure(const Frame& frame);
// "output_ack" and "stdin_ack": the byte count, at least 1.
ParseResult<std::uint64_t> ParseAck(const Frame& frame);
ParseResult<TerminalSize> ParseResize(const Frame& frame);

ParseResult<int> ParsePong(const Frame& frame);     // the protocol version
ParseResult<int> ParseStarted(const Frame& frame);  // the pid
ParseResult<ExecResult> ParseExit(const Frame& frame);
ParseResult<std::optional<std::uint64_t>> ParseOk(const Frame& frame);  // "size" if present
ParseResult<FileData> ParseData(const Frame& frame);
ParseResult<ErrorReply> ParseError(const Frame& frame);

}  // namespace agentvm::protocol
