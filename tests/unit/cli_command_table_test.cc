// The one table of agentvm's commands against what the parser and the help
// make of it.
#include "cli/command_table.h"
#include "cli/doctor_command.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>

namespace agentvm::cli {
namespace {

std::optional<std::string> NoEnv(const std::string&) { return std::nullopt; }

TEST(CliCommandTableTest, EveryCommandParsesHasUsageAndIsListedOnce) {
  std::set<std::string_view> names;
  const std::string overview = HelpText("");
  for (const CommandInfo& command : Commands()) {
    EXPECT_TRUE(names.insert(command.name).second) << command.name << " twice";
    EXPECT_EQ(FindCommand(command.name), &command);
    if (command.kind == CommandKind::kHelp) continue;
    // `agentvm NAME --help` asks for the command's own usage, under its main name.
    auto help = ParseCli({std::string(command.name), "--help"}, "", NoEnv);
    ASSERT_TRUE(help) << command.name;
    EXPECT_EQ(help->kind, CommandKind::kHelp);
    const std::string main_name(CommandOf(command.kind).name);
    EXPECT_EQ(help->help_topic, main_name);
    EXPECT_NE(HelpText(command.name).find("Usage: agentvm " + main_name), std::string::npos)
        << command.name;
    // Aliases stay out of the overview; every main name is in it with its summary.
    const std::string line = "\n  " + std::string(command.name) + " ";
    if (command.summary.empty()) {
      EXPECT_EQ(overview.find(line), std::string::npos) << command.name;
    } else {
      EXPECT_NE(overview.find(line), std::string::npos) << command.name;
      EXPECT_NE(overview.find(std::string(command.summary)), std::string::npos);
    }
  }
  EXPECT_EQ(FindCommand("lsx"), nullptr);
  EXPECT_EQ(CommandOf(CommandKind::kList).name, "ls");
}

TEST(CliCommandTableTest, EveryKindHasARow) {
  for (int kind = static_cast<int>(CommandKind::kHelp); kind <= static_cast<int>(CommandKind::kDoctor);
       ++kind) {
    bool found = false;
    for (const CommandInfo& command : Commands()) found |= static_cast<int>(command.kind) == kind;
    EXPECT_TRUE(found) << "CommandKind " << kind;
  }
}

TEST(CliCommandTableTest, OnlyCommandsThatRunAGuestCommandRelayItsStatus) {
  for (const CommandInfo& command : Commands()) {
    const bool runs_a_command = command.kind == CommandKind::kRun ||
                                command.kind == CommandKind::kExec ||
                                command.kind == CommandKind::kShell;
    EXPECT_EQ(RelaysCommandStatus(command.kind), runs_a_command) << command.name;
  }
}

TEST(CliCommandTableTest, DoctorHandsItsOptionsToTheAgentvmdBesideIt) {
  auto command = ParseCli({"doctor", "--config", "/etc/x.yaml", "--accel=kvm"}, "", NoEnv);
  ASSERT_TRUE(command);
  EXPECT_EQ(command->kind, CommandKind::kDoctor);
  // No agentvmd beside this agentvm: the one on PATH.
  EXPECT_EQ(DoctorArgv(*command, "/nonexistent/bin/agentvm"),
            (std::vector<std::string>{"agentvmd", "--doctor", "--config", "/etc/x.yaml", "--accel=kvm"}));
  // One beside it (as installed, or in a build's bin/): that one.
  const std::string dir = ::testing::TempDir() + "/doctor-argv-" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/agentvmd") << "#!/bin/sh\n";
  std::filesystem::permissions(dir + "/agentvmd", std::filesystem::perms::owner_all);
  EXPECT_EQ(DoctorArgv(*command, dir + "/agentvm")[0], dir + "/agentvmd");
  std::filesystem::remove_all(dir);
  auto help = ParseCli({"doctor", "--help"}, "", NoEnv);
  ASSERT_TRUE(help);
  EXPECT_EQ(help->kind, CommandKind::kHelp);
  EXPECT_EQ(help->help_topic, "doctor");
}

}  // namespace
}  // namespace agentvm::cli
