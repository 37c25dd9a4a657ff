#include "cli/events_command.h"

#include <string>
#include <string_view>

#include "cli/api_client.h"
#include "cli/cli_format.h"
#include "cli/ndjson_lines.h"
#include "cli/write_all.h"

namespace agentvm::cli {
namespace {

constexpr int kFailed = 1;

}  // namespace

int Events(const CliCommand& command, ApiClient& client, const CliContext& context) {
  auto print_line = [&](std::string_view line) -> Result<void> {
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
  NdjsonLines lines("an event line", print_line);
  auto sink = [&](std::string_view bytes) { return lines.Feed(bytes); };
  auto streamed = client.StreamEvents(EventsQueryParams(command.events, command.follow), sink);
  if (streamed) streamed = lines.Finish();
  if (command.follow) {
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
