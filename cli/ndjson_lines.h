// NdjsonLines: a streamed NDJSON body (GET /v1/events, GET
// /v1/vms/{id}/egress) cut into its lines as its bytes arrive, each handed
// on without its '\n' (empty lines skipped). A line is a few hundred bytes;
// one that grows past `max_line` means the stream is not what it should be
// and is not collected without bound.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

#include "common/error.h"

namespace agentvm::cli {

class NdjsonLines {
 public:
  using OnLine = std::function<Result<void>(std::string_view line)>;
  static constexpr std::size_t kMaxLine = 1 << 20;

  // `what` names a line in the error ("an event line").
  NdjsonLines(std::string what, OnLine on_line, std::size_t max_line = kMaxLine)
      : what_(std::move(what)), on_line_(std::move(on_line)), max_line_(max_line) {}

  // The next bytes of the body: every line they complete goes to on_line;
  // its first error stops there and is returned.
  Result<void> Feed(std::string_view bytes);
  // The end of the body: a last line without its '\n'.
  Result<void> Finish();

 private:
  std::string what_;
  OnLine on_line_;
  std::size_t max_line_;
  std::string pending_;  // the start of a line whose end has not come yet
};

}  // namespace agentvm::cli
