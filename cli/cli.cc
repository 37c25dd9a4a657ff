#include "cli/cli.h"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <string_view>

#include "cli/api_client.h"
#include "cli/command_table.h"
#include "cli/commands.h"
#include "cli/interrupt.h"
#include "cli/write_all.h"

namespace agentvm::cli {
namespace {

constexpr int kUsage = 2;
constexpr int kAgentvmFailed = 125;

}  // namespace

int RunCli(const std::vector<std::string>& args, const CliContext& context) {
  EnvLookup lookup = context.lookup_env;
  if (!lookup) lookup = [](const std::string&) { return std::optional<std::string>(); };
  auto command = ParseCli(args, context.env_socket, lookup);
  if (!command) {
    const UsageError& error = command.error();
    std::string hint = error.command.empty() ? "agentvm --help"
                                             : "agentvm " + error.command + " --help";
    WriteAll(context.err_fd, "agentvm: " + error.message + "\nSee '" + hint + "'.\n");
    bool relays = error.command == "run" || error.command == "exec";
    return relays ? kAgentvmFailed : kUsage;
  }
  if (command->kind == CommandKind::kHelp) {
    if (!command->help_topic.empty() && !FindCommand(command->help_topic)) {
      WriteAll(context.err_fd, "agentvm: unknown command \"" + command->help_topic +
                                "\"\nSee 'agentvm --help'.\n");
      return kUsage;
    }
    WriteAll(context.out_fd, HelpText(command->help_topic));
    return 0;
  }

  ApiClient client(command->socket_path);
  InterruptScope interrupts(context.handle_signals && RelaysCommandStatus(command->kind));
  return RunCommand(*command, client, context, interrupts);
}

int RunCli(int argc, char** argv) {
  // A closed stdout (agentvm run ... | head) is seen as a write error, so run
  // still removes its VM.
  ::signal(SIGPIPE, SIG_IGN);
  std::vector<std::string> args(argv + 1, argv + argc);
  CliContext context;
  if (const char* socket = std::getenv("AGENTVM_SOCKET")) context.env_socket = socket;
  context.lookup_env = [](const std::string& name) -> std::optional<std::string> {
    if (const char* value = std::getenv(name.c_str())) return std::string(value);
    return std::nullopt;
  };
  context.handle_signals = true;
  return RunCli(args, context);
}

}  // namespace agentvm::cli
