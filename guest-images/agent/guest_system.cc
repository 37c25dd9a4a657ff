#include "guest-images/agent/guest_system.h"

#include <fcntl.h>
#include <linux/random.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "common/unique_fd.h"

namespace agentvm::guest {
namespace {

using Status = GuestSystem::Status;

constexpr std::chrono::milliseconds kIpTimeout{5000};
constexpr std::size_t kIpOutputLimit = 4096;
constexpr const char* kIpCandidates[] = {"/sbin/ip", "/bin/ip", "/usr/sbin/ip", "/usr/bin/ip"};

std::unexpected<std::string> Errno(std::string_view what, int err = errno) {
  return std::unexpected(std::string(what) + ": " + std::strerror(err));
}

Status WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Errno("write");
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return {};
}

// Readers see the old file or the new one, never a half-written one.
Status ReplaceFile(const std::string& path, std::string_view content) {
  std::string tmp = path + ".agentvm-new";
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644));
  if (!fd) return Errno(tmp);
  if (auto written = WriteAll(fd.get(), content); !written) {
    ::unlink(tmp.c_str());
    return std::unexpected(tmp + ": " + written.error());
  }
  if (::close(fd.release()) != 0 || ::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return Errno(path, err);
  }
  return {};
}

// True when /etc/hostname is a symlink to /proc/sys/kernel/hostname
// (guest-images/common/rootfs/etc/hostname), absolute or relative.
bool HostnameFileIsTheKernels() {
  char target[128];
  const ssize_t n = ::readlink("/etc/hostname", target, sizeof target - 1);
  if (n <= 0) return false;
  const std::string_view link(target, static_cast<std::size_t>(n));
  return link == "/proc/sys/kernel/hostname" || link == "../proc/sys/kernel/hostname";
}

std::string Trim(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

// mkdir -p: each missing component of the absolute `path`, mode 0755.
Status MakeDirs(const std::string& path) {
  for (std::size_t end = path.find('/', 1);; end = path.find('/', end + 1)) {
    const std::string dir = path.substr(0, end);
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return Errno("mkdir " + dir);
    if (end == std::string::npos) return {};
  }
}

class RealGuestSystem final : public GuestSystem {
 public:
  Status MountVirtiofs(const std::string& tag, const std::string& target, bool readonly) override {
    if (auto made = MakeDirs(target); !made) return made;
    // nodev: a device node the host side let through is no device here.
    const unsigned long flags = MS_NODEV | (readonly ? MS_RDONLY : 0);
    if (::mount(tag.c_str(), target.c_str(), "virtiofs", flags, nullptr) != 0) {
      return Errno("mount -t virtiofs " + tag + " " + target);
    }
    return {};
  }

  Status SetClock(std::int64_t unix_ns) override {
    timespec ts{static_cast<time_t>(unix_ns / 1000000000), static_cast<long>(unix_ns % 1000000000)};
    if (::clock_settime(CLOCK_REALTIME, &ts) != 0) return Errno("clock_settime");
    return {};
  }

  Status AddEntropy(std::string_view bytes) override {
    UniqueFd fd(::open("/dev/urandom", O_WRONLY | O_CLOEXEC));
    if (!fd) return Errno("/dev/urandom");
    // rand_pool_info ends in a flexible array of u32: build it in u32s.
    std::vector<std::uint32_t> buffer(sizeof(rand_pool_info) / 4 + (bytes.size() + 3) / 4);
    auto* info = reinterpret_cast<rand_pool_info*>(buffer.data());
    info->entropy_count = static_cast<int>(bytes.size() * 8);
    info->buf_size = static_cast<int>(bytes.size());
    std::memcpy(info->buf, bytes.data(), bytes.size());
    if (::ioctl(fd.get(), RNDADDENTROPY, info) != 0) return Errno("ioctl RNDADDENTROPY");
    if (::ioctl(fd.get(), RNDRESEEDCRNG) != 0) return Errno("ioctl RNDRESEEDCRNG");
    return {};
  }

  Status SetHostname(const std::string& name) override {
    if (::sethostname(name.data(), name.size()) != 0) return Errno("sethostname");
    // Our images link /etc/hostname to the kernel's name, so there is
    // nothing to write: creating and renaming a file on the root disk was
    // 60-110 ms of a restored clone's identity step under TCG (ext4 and its
    // journal, all untranslated code in a fresh clone). Other images keep a
    // file of their own.
    if (HostnameFileIsTheKernels()) return {};
    return ReplaceFile("/etc/hostname", name + "\n");
  }

  Status WriteResolvConf(const std::string& content) override {
    return ReplaceFile("/etc/resolv.conf", content);
  }

  // Runs ip with stdin from /dev/null and stdout+stderr captured for the
  // error message. Blocks the agent for as long as ip runs, at most kIpTimeout.
  Status RunIp(const std::vector<std::string>& args) override {
    const char* binary = nullptr;
    for (const char* candidate : kIpCandidates) {
      if (::access(candidate, X_OK) == 0) {
        binary = candidate;
        break;
      }
    }
    if (!binary)
      return std::unexpected(std::string("no ip command in /sbin, /bin, /usr/sbin, /usr/bin"));
    std::vector<std::string> argv_strings = {"ip"};
    argv_strings.insert(argv_strings.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& a : argv_strings) argv.push_back(a.data());
    argv.push_back(nullptr);
    char path_env[] = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";
    char* envp[] = {path_env, nullptr};

    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return Errno("pipe");
    UniqueFd read_end(pipe_fds[0]);
    UniqueFd write_end(pipe_fds[1]);
    posix_spawn_file_actions_t actions;
    ::posix_spawn_file_actions_init(&actions);
    ::posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    ::posix_spawn_file_actions_adddup2(&actions, write_end.get(), 1);
    ::posix_spawn_file_actions_adddup2(&actions, write_end.get(), 2);
    posix_spawnattr_t attr;
    ::posix_spawnattr_init(&attr);
    sigset_t defaults;
    ::sigemptyset(&defaults);
    ::sigaddset(&defaults, SIGPIPE);  // ignored in the agent; ignored dispositions are inherited
    ::posix_spawnattr_setsigdefault(&attr, &defaults);
    ::posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);
    pid_t pid = -1;
    int spawned = ::posix_spawn(&pid, binary, &actions, &attr, argv.data(), envp);
    ::posix_spawnattr_destroy(&attr);
    ::posix_spawn_file_actions_destroy(&actions);
    write_end.reset();
    if (spawned != 0) return Errno(binary, spawned);

    std::string output;
    bool timed_out = false;
    auto deadline = std::chrono::steady_clock::now() + kIpTimeout;
    while (true) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        timed_out = true;
        break;
      }
      pollfd p{read_end.get(), POLLIN, 0};
      int ready = ::poll(&p, 1, static_cast<int>(left.count()));
      if (ready < 0 && errno == EINTR) continue;
      if (ready <= 0) continue;
      char buf[512];
      ssize_t n = ::read(read_end.get(), buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      if (output.size() < kIpOutputLimit) output.append(buf, static_cast<std::size_t>(n));
    }
    if (timed_out) ::kill(pid, SIGKILL);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (timed_out) {
      return std::unexpected("did not finish within " + std::to_string(kIpTimeout.count()) + " ms");
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return {};
    std::string why = WIFEXITED(status) ? "exit status " + std::to_string(WEXITSTATUS(status))
                                        : "killed by signal " + std::to_string(WTERMSIG(status));
    output = Trim(std::move(output));
    return std::unexpected(output.empty() ? why : why + ": " + output);
  }
};

class RecordingGuestSystem final : public GuestSystem {
 public:
  Status MountVirtiofs(const std::string& tag, const std::string& target, bool readonly) override {
    return Record("mount " + tag + " " + target + (readonly ? " ro" : " rw"));
  }

  RecordingGuestSystem(std::string path, std::string fail_prefix)
      : path_(std::move(path)), fail_prefix_(std::move(fail_prefix)) {}

  Status SetClock(std::int64_t unix_ns) override {
    return Record("clock " + std::to_string(unix_ns));
  }

  Status AddEntropy(std::string_view bytes) override {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string line = "entropy " + std::to_string(bytes.size()) + " ";
    for (unsigned char c : bytes) {
      line.push_back(kHex[c >> 4]);
      line.push_back(kHex[c & 15]);
    }
    return Record(line);
  }

  Status SetHostname(const std::string& name) override { return Record("hostname " + name); }

  Status RunIp(const std::vector<std::string>& args) override {
    std::string line = "ip";
    for (const std::string& a : args) line += " " + a;
    return Record(line);
  }

  Status WriteResolvConf(const std::string& content) override {
    std::string line = "resolv.conf ";
    for (char c : content) {
      if (c == '\n') {
        line += "\\n";
      } else {
        line.push_back(c);
      }
    }
    return Record(line);
  }

 private:
  Status Record(const std::string& line) {
    if (!fail_prefix_.empty() && line.starts_with(fail_prefix_)) {
      return std::unexpected(std::string("injected failure"));
    }
    UniqueFd fd(::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644));
    if (!fd) return Errno(path_);
    return WriteAll(fd.get(), line + "\n");
  }

  std::string path_;
  std::string fail_prefix_;
};

}  // namespace

std::unique_ptr<GuestSystem> MakeRealGuestSystem() { return std::make_unique<RealGuestSystem>(); }

std::unique_ptr<GuestSystem> MakeRecordingGuestSystem(std::string path, std::string fail_prefix) {
  return std::make_unique<RecordingGuestSystem>(std::move(path), std::move(fail_prefix));
}

}  // namespace agentvm::guest
