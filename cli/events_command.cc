#include "cli/events_command.h"

#include <string>
#include <string_view>

#include "cli/api_client.h"
#include "cli/cli_format.h"
#include "cli/write_all.h"

namespace agentvm::cli {
namespace {

constexpr int kFailed = 1;

// An event line is a few hundred bytes; a longer one means the stream is
// not what it should be, and is not collected without bound.
constexpr std::size_t kMaxEventLine = 1 << 20;

}  // namespace

int Events(const CliCommand& command, ApiClient& client, const CliContext& context) {
  std::string pending;  // the start of a line whose end has not come yet
  auto print_line = [&](std::string_view line) -> Result<void> {
    if (line.empty()) return {};
    std::string text;
    if (command.json) {
      text = std::string(line) + "\n";
    } else {
      auto formatted = FormatEventLine(line);
      if (!formatted) return Fail(formatted.error());
      text = std::move(*formatted);
    }
    if (!WriteAll(context.out_fd, text)) return Fail(ErrorCode::kUnavailable, "cannot write the events out");
    return {};
  };
  auto sink = [&](std::string_view bytes) -> Result<void> {
    pending.append(bytes);
    std::size_t start = 0;
    for (std::size_t newline; (newline = pending.find('\n', start)) != std::string::npos; start = newline + 1) {
      if (auto ok = print_line(std::string_view(pending).substr(start, newline - start)); !ok) return ok;
    }
    pending.erase(0, start);
    if (pending.size() > kMaxEventLine) return Fail(ErrorCode::kInternal, "agentvmd sent an event line over 1 MiB");
    return {};
  };
  auto streamed = client.StreamEvents(EventsQueryParams(command.events), sink);
  if (streamed && !pending.empty()) streamed = print_line(pending);  // a last line without its '\n'
  if (command.events.follow) {
    // Only agentvmd ends a followed stream (it is stopping: it closes the
    // connection, or ends the stream), or a failure does.
    WriteAll(context.err_fd, "agentvm: the event stream ended: " +
                                 (streamed ? std::string("agentvmd closed it") : streamed.error().message) + "\n");
    return kFailed;
  }
  if (!streamed) {
    WriteAll(context.err_fd, "agentvm: " + streamed.error().message + "\n");
    return kFailed;
  }
  return 0;
}

}  // namespace agentvm::cli
