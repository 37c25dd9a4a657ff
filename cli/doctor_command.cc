#include "cli/doctor_command.h"

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "cli/write_all.h"

extern char** environ;

namespace agentvm::cli {

std::vector<std::string> DoctorArgv(const CliCommand& command, const std::string& self_exe) {
  std::string daemon = "agentvmd";
  if (!self_exe.empty()) {
    const std::string beside = (std::filesystem::path(self_exe).parent_path() / "agentvmd").string();
    if (::access(beside.c_str(), X_OK) == 0) daemon = beside;
  }
  std::vector<std::string> argv = {daemon, "--doctor"};
  argv.insert(argv.end(), command.daemon_args.begin(), command.daemon_args.end());
  return argv;
}

int Doctor(const CliCommand& command, const CliContext& context) {
  std::error_code ignored;
  const std::vector<std::string> args = DoctorArgv(command, std::filesystem::read_symlink("/proc/self/exe", ignored));
  std::vector<char*> argv;
  for (const std::string& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  ::posix_spawn_file_actions_init(&actions);
  ::posix_spawn_file_actions_adddup2(&actions, context.out_fd, STDOUT_FILENO);
  ::posix_spawn_file_actions_adddup2(&actions, context.err_fd, STDERR_FILENO);
  pid_t pid = 0;
  const int error = ::posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  ::posix_spawn_file_actions_destroy(&actions);
  if (error != 0) {
    WriteAll(context.err_fd, "agentvm: doctor runs " + args[0] + " --doctor, which could not start: " +
                                 std::strerror(error) + " (is agentvmd installed on this host?)\n");
    return 1;
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

}  // namespace agentvm::cli
