// The commands of agentvm, in one table: the parser finds a command's kind
// here, `agentvm --help` lists the summaries from it, and whether a command
// relays its guest command's exit status is read from it. Adding a command
// is a row here, a case in the parser (cli_args.cc), its usage text
// (cli_help.cc) and its runner (commands.cc); the last two are exhaustive
// switches over CommandKind, so the compiler points at a forgotten one.
#pragma once

#include <span>
#include <string_view>

#include "cli/cli_args.h"

namespace agentvm::cli {

struct CommandInfo {
  std::string_view name;
  CommandKind kind;
  // Its line in `agentvm --help`; empty for an alias or `help` itself.
  std::string_view summary;
  // The command's exit status is the guest command's; agentvm's own
  // failures then exit 125 (as docker does) so the two cannot be confused.
  bool relays_status = false;
};

// Every command, in the order `agentvm --help` lists them.
std::span<const CommandInfo> Commands();

// The command called `name` (aliases included), or nullptr.
const CommandInfo* FindCommand(std::string_view name);

// The main entry of `kind`: its name as help and errors spell it.
const CommandInfo& CommandOf(CommandKind kind);

}  // namespace agentvm::cli
