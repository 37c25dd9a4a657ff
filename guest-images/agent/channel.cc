#include "guest-images/agent/channel.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "guest-images/agent/log.h"
#include "protocol/frame.h"

namespace agentvm::guest {
namespace {

std::optional<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\0')) s.pop_back();
  return s;
}

}  // namespace

std::optional<std::string> CmdlineValue(std::string_view cmdline, std::string_view key) {
  std::optional<std::string> value;
  std::size_t pos = 0;
  while (pos < cmdline.size()) {
    std::size_t start = cmdline.find_first_not_of(" \t\n", pos);
    if (start == std::string_view::npos) break;
    std::size_t end = cmdline.find_first_of(" \t\n", start);
    if (end == std::string_view::npos) end = cmdline.size();
    std::string_view word = cmdline.substr(start, end - start);
    if (word.size() > key.size() && word.substr(0, key.size()) == key && word[key.size()] == '=') {
      value = std::string(word.substr(key.size() + 1));  // the last one wins, as in the kernel
    }
    pos = end;
  }
  return value;
}

std::optional<std::string> FindVirtioPort(const std::string& class_dir, std::string_view name) {
  DIR* dir = ::opendir(class_dir.c_str());
  if (!dir) return std::nullopt;
  std::optional<std::string> found;
  while (dirent* entry = ::readdir(dir)) {
    std::string port = entry->d_name;
    if (port == "." || port == "..") continue;
    auto port_name = ReadFile(class_dir + "/" + port + "/name");
    if (port_name && Trim(*port_name) == name) {
      found = "/dev/" + port;
      break;
    }
  }
  ::closedir(dir);
  return found;
}

std::expected<UniqueFd, std::string> OpenSerialPort(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY));
  if (!fd) return std::unexpected("open " + path + ": " + std::strerror(errno));
  return fd;
}

std::expected<UniqueFd, std::string> ListenVsock(std::uint32_t port) {
  UniqueFd fd(::socket(AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return std::unexpected(std::string("vsock socket: ") + std::strerror(errno));
  sockaddr_vm addr{};
  addr.svm_family = AF_VSOCK;
  addr.svm_cid = VMADDR_CID_ANY;
  addr.svm_port = port;
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return std::unexpected("vsock bind port " + std::to_string(port) + ": " + std::strerror(errno));
  }
  if (::listen(fd.get(), 4) != 0) {
    return std::unexpected(std::string("vsock listen: ") + std::strerror(errno));
  }
  return fd;
}

std::expected<Channel, std::string> DiscoverChannel(const DiscoveryPaths& paths,
                                                    std::chrono::milliseconds give_up) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  auto last_log = start - std::chrono::hours(1);
  while (true) {
    std::optional<std::string> mode;
    if (auto cmdline = ReadFile(paths.cmdline)) mode = CmdlineValue(*cmdline, "agentvm.channel");
    std::string why;
    if (mode && *mode != "serial" && *mode != "vsock") {
      return std::unexpected("unknown agentvm.channel=" + *mode + " (want serial or vsock)");
    }
    if (!mode || *mode == "serial") {
      if (auto port = FindVirtioPort(paths.virtio_ports, protocol::kVirtioPortName)) {
        auto fd = OpenSerialPort(*port);
        if (fd) return Channel{ChannelKind::kSerial, std::move(*fd), *port};
        why = fd.error();
      } else {
        why = "no virtio port named " + std::string(protocol::kVirtioPortName) + " in " +
              paths.virtio_ports;
      }
    }
    if (!mode || *mode == "vsock") {
      auto fd = ListenVsock(protocol::kGuestVsockPort);
      if (fd) {
        return Channel{ChannelKind::kVsock, std::move(*fd),
                       "vsock port " + std::to_string(protocol::kGuestVsockPort)};
      }
      why += (why.empty() ? "" : "; ") + fd.error();
    }
    auto now = Clock::now();
    if (now - start >= give_up) return std::unexpected(why);
    if (now - last_log >= std::chrono::seconds(10)) {
      LogInfo("waiting for the control channel: " + why);
      last_log = now;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

}  // namespace agentvm::guest
