#include "cli/cli_args.h"

#include <gtest/gtest.h>

namespace agentvm::cli {
namespace {

std::optional<std::string> NoEnv(const std::string&) { return std::nullopt; }

std::expected<CliCommand, UsageError> Parse(std::vector<std::string> args,
                                            std::string env_socket = "") {
  return ParseCli(args, env_socket, NoEnv);
}

TEST(CliArgsTest, RunWithEveryOption) {
  auto command = Parse({"run", "--image", "tiny2", "--cpus=2", "--memory", "512", "--timeout",
                        "1.5", "--env", "A=1", "-e", "B=x=y", "--workdir", "/src", "-i", "--",
                        "sh", "-c", "echo hi --image"});
  ASSERT_TRUE(command) << command.error().message;
  EXPECT_EQ(command->kind, CommandKind::kRun);
  EXPECT_EQ(command->vm.image, "tiny2");
  EXPECT_EQ(command->vm.cpus, 2);
  EXPECT_EQ(command->vm.memory_mib, 512);
  EXPECT_DOUBLE_EQ(command->exec.timeout_sec, 1.5);
  EXPECT_EQ(command->exec.env.at("A"), "1");
  EXPECT_EQ(command->exec.env.at("B"), "x=y");
  EXPECT_EQ(command->exec.workdir, "/src");
  EXPECT_TRUE(command->exec.forward_stdin);
  EXPECT_EQ(command->exec.argv, (std::vector<std::string>{"sh", "-c", "echo hi --image"}));
  EXPECT_EQ(command->socket_path, kDefaultSocket);
}

TEST(CliArgsTest, RunDefaultsAndCommandWithoutSeparator) {
  auto command = Parse({"run", "ls", "-la", "--help"});
  ASSERT_TRUE(command);
  EXPECT_EQ(command->vm.image, "tiny");
  EXPECT_EQ(command->vm.cpus, 1);
  EXPECT_EQ(command->vm.memory_mib, 256);
  EXPECT_EQ(command->exec.timeout_sec, 0);
  EXPECT_EQ(command->vm.boot, BootMode::kAuto);
  // Options after the command belong to the command.
  EXPECT_EQ(command->exec.argv, (std::vector<std::string>{"ls", "-la", "--help"}));
}

TEST(CliArgsTest, NetworkOptions) {
  auto plain = Parse({"run", "--", "true"});
  ASSERT_TRUE(plain);
  EXPECT_FALSE(plain->vm.network.mode) << "no --net: agentvmd's default";
  EXPECT_TRUE(plain->vm.network.allow_tcp_ports.empty());
  EXPECT_FALSE(plain->vm.network.bandwidth_bytes_per_sec);

  auto run = Parse({"run", "--net", "nat-filtered", "--allow-port", "8080", "--allow-port=5432",
                    "--allow-cidr", "203.0.113.0/24", "--allow-cidr=10.0.0.0/08", "--bandwidth",
                    "10M", "--", "true"});
  ASSERT_TRUE(run) << run.error().message;
  EXPECT_EQ(run->vm.network.mode, NetworkMode::kNatFiltered);
  EXPECT_EQ(run->vm.network.allow_tcp_ports, (std::vector<std::uint16_t>{8080, 5432}));
  EXPECT_EQ(run->vm.network.allow_cidrs,
            (std::vector<std::string>{"203.0.113.0/24", "10.0.0.0/8"}));
  EXPECT_EQ(run->vm.network.bandwidth_bytes_per_sec, 10'000'000u);

  auto create = Parse({"create", "--net=bridge", "--bridge", "br-lab"});
  ASSERT_TRUE(create) << create.error().message;
  EXPECT_EQ(create->vm.network.mode, NetworkMode::kBridge);
  EXPECT_EQ(create->vm.network.bridge, "br-lab");
  EXPECT_EQ(Parse({"create", "--bandwidth", "250k"})->vm.network.bandwidth_bytes_per_sec, 250'000u);

  auto isolated = Parse({"create", "--net", "isolated"});
  ASSERT_TRUE(isolated);
  EXPECT_EQ(isolated->vm.network.mode, NetworkMode::kIsolated);

  // Without --net the whitelist is agentvmd's default mode's business.
  auto ports_only = Parse({"run", "--allow-port", "8080", "--", "true"});
  ASSERT_TRUE(ports_only);
  EXPECT_FALSE(ports_only->vm.network.mode);

  for (auto [text, bytes] : {std::pair<std::string, std::uint64_t>{"4096", 4096},
                             {"5K", 5000}, {"1G", 1'000'000'000}, {"100G", 100'000'000'000}}) {
    auto parsed = Parse({"create", "--bandwidth", text});
    ASSERT_TRUE(parsed) << text << ": " << parsed.error().message;
    EXPECT_EQ(parsed->vm.network.bandwidth_bytes_per_sec, bytes) << text;
  }
  // Options after the command belong to the command.
  auto after = Parse({"run", "curl", "--net", "x"});
  ASSERT_TRUE(after);
  EXPECT_FALSE(after->vm.network.mode);
}

TEST(CliArgsTest, NetworkOptionErrorsComeBeforeAnyRequest) {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const Case cases[] = {
      {{"run", "--net", "nat", "--", "ls"}, "--net expects nat-filtered, isolated or bridge, not \"nat\""},
      {{"run", "--net"}, "option --net needs a value"},
      {{"run", "--allow-port", "http", "--", "ls"}, "--allow-port expects a TCP port (1-65535), not \"http\""},
      {{"run", "--allow-port", "0", "--", "ls"}, "--allow-port expects a TCP port (1-65535), not \"0\""},
      {{"run", "--allow-port", "65536", "--", "ls"}, "not \"65536\""},
      {{"run", "--allow-port", "-1", "--", "ls"}, "not \"-1\""},
      {{"run", "--allow-port", "80.5", "--", "ls"}, "not \"80.5\""},
      {{"run", "--allow-port", "53", "--", "ls"}, "--allow-port: port 53 is refused: DNS goes only to the daemon's resolver"},
      {{"run", "--allow-port", "8080", "--allow-port", "8080", "--", "ls"}, "--allow-port: port 8080 is listed twice"},
      {{"run", "--allow-cidr", "10.0.0.1/8", "--", "ls"}, "--allow-cidr: \"10.0.0.1/8\" has host bits set (did you mean 10.0.0.0/8?)"},
      {{"run", "--allow-cidr", "example.com", "--", "ls"}, "--allow-cidr: \"example.com\" is not an IPv4 subnet"},
      {{"run", "--allow-cidr", "10.0.0.0/8\x1b[2J", "--", "ls"}, "\"10.0.0.0/8\\x1b[2J\""},
      {{"run", "--allow-cidr", "10.0.0.0/8", "--allow-cidr", "10.2.0.0/16", "--", "ls"}, "--allow-cidr: 10.0.0.0/8 and 10.2.0.0/16 overlap"},
      {{"run", "--net", "isolated", "--allow-port", "8080", "--", "ls"}, "--allow-port is refused when --net is isolated: only nat-filtered has a whitelist"},
      {{"create", "--net", "bridge", "--bridge", "br0", "--allow-cidr", "10.0.0.0/8"}, "--allow-cidr is refused when --net is bridge"},
      {{"create", "--net", "bridge"}, "--bridge is required when --net is bridge"},
      {{"create", "--bridge", "br0"}, "--bridge is only allowed when --net is bridge"},
      {{"create", "--net", "bridge", "--bridge", "br/0"}, "invalid --bridge \"br/0\""},
      {{"create", "--net", "bridge", "--bridge", "bridge-name-too-long"}, "invalid --bridge"},
      {{"create", "--bandwidth", "fast"}, "--bandwidth expects bytes per second, optionally with a suffix k, M or G"},
      {{"create", "--bandwidth", "10MB"}, "not \"10MB\""},
      {{"create", "--bandwidth", "1.5M"}, "not \"1.5M\""},
      {{"create", "--bandwidth", "-1"}, "--bandwidth expects bytes per second"},
      {{"create", "--bandwidth", "100"}, "--bandwidth must be between 4096 and 100000000000 bytes per second, not 100"},
      {{"create", "--bandwidth", "101G"}, "--bandwidth must be between 4096 and 100000000000 bytes per second, not 101000000000"},
      {{"create", "--bandwidth", "99999999999999999999"}, "--bandwidth must be between 4096 and 100000000000"},
      {{"create", "--bandwidth", "18446744073709551615G"}, "--bandwidth must be between 4096"},
      {{"create", "--net", "isolated", "--bandwidth", "1M"}, "--bandwidth is refused when --net is isolated"},
      {{"create", "--net", "bridge", "--bridge", "br0", "--bandwidth", "1M"}, "--bandwidth is refused when --net is bridge: only nat-filtered limits bandwidth"},
      {{"exec", "vm-1", "--net", "isolated", "--", "ls"}, "unknown option --net"},
  };
  std::vector<std::string> many = {"run"};
  for (int port = 1000; port < 1065; ++port) {
    many.push_back("--allow-port");
    many.push_back(std::to_string(port));
  }
  many.insert(many.end(), {"--", "ls"});
  auto too_many = Parse(many);
  ASSERT_FALSE(too_many);
  EXPECT_EQ(too_many.error().message, "--allow-port lists 65 ports; at most 64 are allowed");
  for (const auto& c : cases) {
    auto result = Parse(c.args);
    std::string joined;
    for (const auto& arg : c.args) joined += arg + " ";
    ASSERT_FALSE(result) << joined;
    EXPECT_NE(result.error().message.find(c.message), std::string::npos)
        << joined << "-> " << result.error().message;
    EXPECT_EQ(result.error().command, c.args[0]) << joined;
  }
}

TEST(CliArgsTest, SocketFromFlagBeatsEnvironment) {
  EXPECT_EQ(Parse({"ls"}, "/env.sock")->socket_path, "/env.sock");
  EXPECT_EQ(Parse({"--socket", "/flag.sock", "ls"}, "/env.sock")->socket_path, "/flag.sock");
  EXPECT_EQ(Parse({"ls", "--socket=/late.sock"})->socket_path, "/late.sock");
}

TEST(CliArgsTest, EnvWithoutValueIsInherited) {
  auto lookup = [](const std::string& name) -> std::optional<std::string> {
    if (name == "HOME") return "/home/me";
    return std::nullopt;
  };
  auto command = ParseCli({"run", "--env", "HOME", "--", "env"}, "", lookup);
  ASSERT_TRUE(command);
  EXPECT_EQ(command->exec.env.at("HOME"), "/home/me");
  auto missing = ParseCli({"run", "--env", "NOPE", "--", "env"}, "", lookup);
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("NOPE"), std::string::npos);
}

TEST(CliArgsTest, ExecTakesTheIdThenTheCommand) {
  auto command = Parse({"exec", "vm-1", "--timeout", "3", "--", "make", "test"});
  ASSERT_TRUE(command) << command.error().message;
  EXPECT_EQ(command->kind, CommandKind::kExec);
  EXPECT_EQ(command->ids, (std::vector<std::string>{"vm-1"}));
  EXPECT_EQ(command->exec.timeout_sec, 3);
  EXPECT_EQ(command->exec.argv, (std::vector<std::string>{"make", "test"}));

  auto without_separator = Parse({"exec", "--env", "X=1", "vm-1", "true"});
  ASSERT_TRUE(without_separator);
  EXPECT_EQ(without_separator->ids.front(), "vm-1");
  EXPECT_EQ(without_separator->exec.argv, (std::vector<std::string>{"true"}));
}

TEST(CliArgsTest, TerminalUserAndDetachFlags) {
  auto lookup = [](const std::string& name) -> std::optional<std::string> {
    if (name == "TERM") return "xterm-256color";
    return std::nullopt;
  };
  auto it = ParseCli({"exec", "-it", "-u", "agent", "vm-1", "--", "bash"}, "", lookup);
  ASSERT_TRUE(it) << it.error().message;
  EXPECT_TRUE(it->exec.forward_stdin);
  EXPECT_TRUE(it->exec.tty);
  EXPECT_FALSE(it->exec.detach);
  EXPECT_EQ(it->exec.user, "agent");
  EXPECT_EQ(it->exec.env.at("TERM"), "xterm-256color");  // the remote terminal draws for this one

  auto spelled = ParseCli({"run", "--interactive", "--tty", "--user=1000", "-e", "TERM=dumb", "--", "sh"}, "", lookup);
  ASSERT_TRUE(spelled) << spelled.error().message;
  EXPECT_TRUE(spelled->exec.forward_stdin && spelled->exec.tty);
  EXPECT_EQ(spelled->exec.user, "1000");
  EXPECT_EQ(spelled->exec.env.at("TERM"), "dumb");  // --env wins

  auto piped = ParseCli({"exec", "-i", "vm-1", "sha256sum"}, "", lookup);
  ASSERT_TRUE(piped);
  EXPECT_FALSE(piped->exec.tty);
  EXPECT_FALSE(piped->exec.env.contains("TERM"));  // no terminal, no terminal type

  auto detached = Parse({"exec", "--detach", "vm-1", "--", "sleep", "100"});
  ASSERT_TRUE(detached);
  EXPECT_TRUE(detached->exec.detach);
  EXPECT_TRUE(Parse({"exec", "-d", "vm-1", "true"})->exec.detach);

  // After the command starts, its flags are its own.
  auto own = Parse({"exec", "vm-1", "ls", "-it"});
  ASSERT_TRUE(own);
  EXPECT_FALSE(own->exec.tty);
  EXPECT_EQ(own->exec.argv, (std::vector<std::string>{"ls", "-it"}));
}

TEST(CliArgsTest, ShellIsALoginShellOnATerminal) {
  auto shell = Parse({"shell", "-u", "root", "vm-1"});
  ASSERT_TRUE(shell) << shell.error().message;
  EXPECT_EQ(shell->kind, CommandKind::kShell);
  EXPECT_EQ(shell->ids, (std::vector<std::string>{"vm-1"}));
  EXPECT_TRUE(shell->exec.tty);
  EXPECT_TRUE(shell->exec.forward_stdin);
  EXPECT_EQ(shell->exec.user, "root");
  ASSERT_FALSE(shell->exec.argv.empty());
  EXPECT_TRUE(RelaysCommandStatus(CommandKind::kShell));
}

TEST(CliArgsTest, OtherCommands) {
  auto create = Parse({"create", "--memory", "1024"});
  ASSERT_TRUE(create);
  EXPECT_EQ(create->kind, CommandKind::kCreate);
  EXPECT_EQ(create->vm.memory_mib, 1024);

  auto list = Parse({"ls", "--json"});
  ASSERT_TRUE(list);
  EXPECT_EQ(list->kind, CommandKind::kList);
  EXPECT_TRUE(list->json);

  auto remove = Parse({"rm", "-f", "vm-1", "vm-2"});
  ASSERT_TRUE(remove);
  EXPECT_EQ(remove->kind, CommandKind::kRemove);
  EXPECT_TRUE(remove->force);
  EXPECT_EQ(remove->ids, (std::vector<std::string>{"vm-1", "vm-2"}));

  EXPECT_EQ(Parse({"inspect", "vm-1"})->kind, CommandKind::kInspect);
  EXPECT_EQ(Parse({"logs", "vm-1"})->kind, CommandKind::kLogs);
  EXPECT_EQ(Parse({"stop", "vm-1"})->ids.front(), "vm-1");
}

TEST(CliArgsTest, BootMode) {
  EXPECT_EQ(Parse({"run", "--boot", "cold", "--", "true"})->vm.boot, BootMode::kCold);
  EXPECT_EQ(Parse({"run", "--boot=restore", "true"})->vm.boot, BootMode::kRestore);
  EXPECT_EQ(Parse({"create", "--boot", "auto"})->vm.boot, BootMode::kAuto);
  // After the command's first word, --boot is the command's.
  auto late = Parse({"run", "true", "--boot", "cold"});
  ASSERT_TRUE(late);
  EXPECT_EQ(late->vm.boot, BootMode::kAuto);
  EXPECT_EQ(late->exec.argv, (std::vector<std::string>{"true", "--boot", "cold"}));
}

TEST(CliArgsTest, ReleaseAndPools) {
  auto release = Parse({"release", "vm-1", "vm-2"});
  ASSERT_TRUE(release);
  EXPECT_EQ(release->kind, CommandKind::kRelease);
  EXPECT_EQ(release->ids, (std::vector<std::string>{"vm-1", "vm-2"}));

  auto pools = Parse({"pools"});
  ASSERT_TRUE(pools);
  EXPECT_EQ(pools->kind, CommandKind::kPools);
  EXPECT_FALSE(pools->json);
  EXPECT_TRUE(Parse({"pools", "--json"})->json);
}

TEST(CliArgsTest, SnapshotCommands) {
  struct Case {
    std::vector<std::string> args;
    SnapshotAction action;
    std::string name;
  };
  const Case cases[] = {
      {{"snapshot", "save", "vm-1", "before-upgrade"}, SnapshotAction::kSave, "before-upgrade"},
      {{"snapshot", "ls", "vm-1"}, SnapshotAction::kList, ""},
      {{"snapshot", "list", "vm-1"}, SnapshotAction::kList, ""},
      {{"snapshot", "restore", "vm-1", "S_1.2"}, SnapshotAction::kRestore, "S_1.2"},
      {{"snapshot", "rm", "vm-1", "s1"}, SnapshotAction::kRemove, "s1"},
      {{"--socket", "/tmp/s", "snapshot", "--socket", "/tmp/t", "rm", "vm-1", "s1"},
       SnapshotAction::kRemove, "s1"},
  };
  for (const auto& c : cases) {
    auto command = Parse(c.args);
    ASSERT_TRUE(command) << c.args[1] << ": " << command.error().message;
    EXPECT_EQ(command->kind, CommandKind::kSnapshot);
    EXPECT_EQ(command->snapshot_action, c.action);
    EXPECT_EQ(command->ids, std::vector<std::string>{"vm-1"});
    EXPECT_EQ(command->snapshot_name, c.name);
  }
  EXPECT_TRUE(Parse({"snapshot", "ls", "vm-1", "--json"})->json);
  EXPECT_EQ(Parse({"snapshot", "rm", "vm-1", "s1", "--socket", "/x"})->socket_path, "/x");
}

TEST(CliArgsTest, CopyDirections) {
  auto in = Parse({"cp", "./notes:v2.txt", "vm-1:/tmp/notes.txt"});
  ASSERT_TRUE(in) << in.error().message;
  EXPECT_TRUE(in->copy.to_vm);
  EXPECT_EQ(in->copy.local, "./notes:v2.txt");
  EXPECT_EQ(in->copy.vm_id, "vm-1");
  EXPECT_EQ(in->copy.guest_path, "/tmp/notes.txt");

  auto out = Parse({"cp", "vm-1:/etc/hostname", "-"});
  ASSERT_TRUE(out);
  EXPECT_FALSE(out->copy.to_vm);
  EXPECT_EQ(out->copy.local, "-");
  EXPECT_EQ(out->copy.guest_path, "/etc/hostname");

  EXPECT_FALSE(Parse({"cp", "a", "b"}));
  EXPECT_FALSE(Parse({"cp", "vm-1:/a", "vm-2:/b"}));
  EXPECT_FALSE(Parse({"cp", "a", "vm-1:relative"}));
  EXPECT_FALSE(Parse({"cp", "a"}));
}

TEST(CliArgsTest, HelpEverywhere) {
  auto top = Parse({"--help"});
  ASSERT_TRUE(top);
  EXPECT_EQ(top->kind, CommandKind::kHelp);
  EXPECT_EQ(top->help_topic, "");

  for (std::string name : {"run", "create", "ls", "inspect", "exec", "cp", "logs", "stop", "rm",
                           "release", "pools", "snapshot"}) {
    auto help = Parse({name, "-h"});
    ASSERT_TRUE(help) << name;
    EXPECT_EQ(help->kind, CommandKind::kHelp) << name;
    EXPECT_EQ(help->help_topic, name);
    EXPECT_NE(HelpText(name).find("Usage: agentvm " + name), std::string::npos) << name;
  }
  EXPECT_EQ(Parse({"help", "cp"})->help_topic, "cp");
  EXPECT_EQ(Parse({"snapshot", "save", "--help"})->help_topic, "snapshot");
  EXPECT_EQ(Parse({"help", "snapshot"})->help_topic, "snapshot");
  EXPECT_NE(HelpText("run").find("--boot MODE"), std::string::npos);
  EXPECT_NE(HelpText("create").find("--boot MODE"), std::string::npos);
  for (std::string name : {"release", "pools", "snapshot"}) {
    EXPECT_NE(HelpText("").find("  " + name + " "), std::string::npos) << name;
  }
  EXPECT_NE(HelpText("").find("Commands:"), std::string::npos);
}

TEST(CliArgsTest, UsageErrorsNameTheProblemAndTheCommand) {
  struct Case {
    std::vector<std::string> args;
    std::string message;
    std::string command;
  };
  const Case cases[] = {
      {{}, "missing a command", ""},
      {{"frobnicate"}, "unknown command \"frobnicate\"", ""},
      {{"--bogus", "ls"}, "unknown option --bogus", ""},
      {{"run"}, "missing the command to run", "run"},
      {{"run", "--"}, "missing the command to run", "run"},
      {{"run", "--cpus", "two", "--", "ls"}, "--cpus expects a whole number", "run"},
      {{"run", "--memory"}, "option --memory needs a value", "run"},
      // The API's own limits and name rule, before any request is sent.
      {{"run", "--cpus", "0", "--", "ls"}, "--cpus must be between 1 and 64, not 0", "run"},
      {{"create", "--cpus", "65"}, "--cpus must be between 1 and 64, not 65", "create"},
      {{"create", "--memory", "32"}, "--memory must be between 64 and 65536, not 32", "create"},
      {{"create", "--image", "../etc"}, "invalid image name \"../etc\"", "create"},
      {{"run", "--timeout", "-1", "--", "ls"}, "--timeout expects a number of seconds", "run"},
      {{"run", "--env", "1BAD=x", "--", "ls"}, "invalid environment variable name", "run"},
      {{"run", "--json", "--", "ls"}, "unknown option --json", "run"},
      {{"exec", "vm-1"}, "missing the command to run", "exec"},
      {{"exec"}, "missing the VM id", "exec"},
      {{"exec", "-d", "-i", "vm-1", "cat"}, "-d runs the command on its own: it cannot take -i or -t", "exec"},
      {{"exec", "-dt", "vm-1", "top"}, "-d runs the command on its own: it cannot take -i or -t", "exec"},
      {{"run", "-d", "--", "sleep", "9"}, "run removes its VM when the command ends", "run"},
      {{"exec", "-u", "bad user", "vm-1", "id"}, "--user expects a user name or uid", "exec"},
      {{"exec", "-u"}, "option -u needs a value", "exec"},
      {{"shell"}, "missing the VM id", "shell"},
      {{"shell", "vm-1", "bash"}, "unexpected argument \"bash\"", "shell"},
      {{"inspect"}, "missing the VM id", "inspect"},
      {{"inspect", "a", "b"}, "unexpected argument \"b\"", "inspect"},
      {{"rm"}, "missing the VM id", "rm"},
      {{"ls", "extra"}, "unexpected argument \"extra\"", "ls"},
      {{"list", "--force"}, "unknown option --force", "ls"},
      {{"--socket"}, "option --socket needs a value", ""},
      {{"run", "--boot", "warm", "--", "ls"}, "--boot expects auto, restore or cold, not \"warm\"", "run"},
      {{"create", "--boot"}, "option --boot needs a value", "create"},
      {{"exec", "--boot", "cold", "vm-1", "ls"}, "unknown option --boot", "exec"},
      {{"release"}, "missing the VM id", "release"},
      {{"release", "--force", "vm-1"}, "unknown option --force", "release"},
      {{"pools", "tiny"}, "unexpected argument \"tiny\"", "pools"},
      {{"snapshot"}, "missing what to do: save, ls, restore or rm", "snapshot"},
      {{"snapshot", "take", "vm-1", "s1"}, "unknown snapshot command \"take\"", "snapshot"},
      {{"snapshot", "save"}, "missing the VM id", "snapshot"},
      {{"snapshot", "save", "vm-1"}, "missing the snapshot name", "snapshot"},
      {{"snapshot", "ls", "vm-1", "s1"}, "unexpected argument \"s1\"", "snapshot"},
      {{"snapshot", "rm", "vm-1", "s1", "s2"}, "unexpected argument \"s2\"", "snapshot"},
      {{"snapshot", "save", "vm-1", ".."}, "invalid snapshot name \"..\"", "snapshot"},
      {{"snapshot", "save", "vm-1", "a/b"}, "invalid snapshot name", "snapshot"},
      {{"snapshot", "restore", "vm-1", ""}, "invalid snapshot name \"\"", "snapshot"},
      {{"snapshot", "rm", "vm-1", std::string(65, 'n')}, "invalid snapshot name", "snapshot"},
      {{"snapshot", "rm", "vm-1", "-rf"}, "unknown option -rf", "snapshot"},
      {{"snapshot", "save", "vm-1", "s1", "--json"}, "--json is only for snapshot ls", "snapshot"},
      {{"snapshot", "ls", "vm-1", "-f"}, "unknown option -f", "snapshot"},
  };
  for (const auto& c : cases) {
    auto result = Parse(c.args);
    std::string joined;
    for (const auto& arg : c.args) joined += arg + " ";
    ASSERT_FALSE(result) << joined;
    EXPECT_NE(result.error().message.find(c.message), std::string::npos)
        << joined << "-> " << result.error().message;
    EXPECT_EQ(result.error().command, c.command) << joined;
  }
}

}  // namespace
}  // namespace agentvm::cli
