// `agentvm events [-f] [--vm ID] [--type T]... [--since SEQ] [--json]`: the
// daemon's events (GET /v1/events), one line each as they arrive: as text
// (cli_format.h FormatEventLine) or, with --json, the NDJSON lines as sent.
// With -f the stream runs until the user interrupts it (SIGINT's default
// action ends the process; nothing is left to clean up) or agentvmd ends it.
#pragma once

#include "cli/cli.h"
#include "cli/cli_args.h"

namespace agentvm::cli {

class ApiClient;

int Events(const CliCommand& command, ApiClient& client, const CliContext& context);

}  // namespace agentvm::cli
