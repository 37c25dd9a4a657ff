#include "supervisor/config.h"

#include <yaml-cpp/yaml.h>

#include "netsetup/ipv4.h"
#include "netsetup/net_names.h"
#include "supervisor/vm_service.h"

namespace agentvm {
namespace {

template <class T>
Result<T> Scalar(const YAML::Node& node, const std::string& key) {
  try {
    return node.as<T>();
  } catch (const YAML::Exception&) {
    return Fail(ErrorCode::kInvalidArgument, "config key '" + key + "' has the wrong type");
  }
}

}  // namespace

Result<void> ApplyConfigFile(const std::string& path, DaemonConfig& config) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    return Fail(ErrorCode::kNotFound, "config " + path + ": cannot be read");
  } catch (const YAML::Exception& e) {
    return Fail(ErrorCode::kInvalidArgument, "config " + path + ": " + e.what());
  }
  if (root.IsNull()) return {};
  if (!root.IsMap()) return Fail(ErrorCode::kInvalidArgument, "config " + path + ": top level must be a mapping");

  for (const auto& entry : root) {
    const std::string key = entry.first.as<std::string>();
    const YAML::Node& value = entry.second;
    auto set_string = [&](std::string& field) -> Result<void> {
      auto v = Scalar<std::string>(value, key);
      if (!v) return Fail(v.error());
      field = *v;
      return {};
    };
    auto set_int = [&](int& field) -> Result<void> {
      auto v = Scalar<int>(value, key);
      if (!v) return Fail(v.error());
      field = *v;
      return {};
    };
    auto set_seconds = [&](std::chrono::seconds& field) -> Result<void> {
      auto v = Scalar<int>(value, key);
      if (!v) return Fail(v.error());
      field = std::chrono::seconds(*v);
      return {};
    };

    auto set_ports = [&](std::vector<std::uint16_t>& field) -> Result<void> {
      if (!value.IsSequence()) {
        return Fail(ErrorCode::kInvalidArgument, "config key '" + key + "' must be a list of ports");
      }
      field.clear();
      for (const auto& item : value) {
        auto port = Scalar<int>(item, key);
        if (!port) return Fail(port.error());
        if (*port < 1 || *port > 65535) {
          return Fail(ErrorCode::kInvalidArgument, "config key '" + key + "': " + std::to_string(*port) +
                                                       " is not a port (1..65535)");
        }
        field.push_back(static_cast<std::uint16_t>(*port));
      }
      return {};
    };

    Result<void> applied;
    if (key == "socket") applied = set_string(config.socket_path);
    else if (key == "state_dir") applied = set_string(config.state_dir);
    else if (key == "image_dir") applied = set_string(config.image_dir);
    else if (key == "run_dir") applied = set_string(config.run_dir);
    else if (key == "accel") applied = set_string(config.accel);
    else if (key == "qemu") applied = set_string(config.qemu_binary);
    else if (key == "qemu_img") applied = set_string(config.qemu_img_binary);
    else if (key == "log_level") applied = set_string(config.log_level);
    else if (key == "agent_timeout_sec") applied = set_seconds(config.agent_timeout);
    else if (key == "stop_grace_sec") applied = set_seconds(config.stop_grace);
    else if (key == "default_cpus") applied = set_int(config.default_cpus);
    else if (key == "default_memory_mib") applied = set_int(config.default_memory_mib);
    else if (key == "default_network") applied = set_string(config.default_network);
    else if (key == "bridge") applied = set_string(config.bridge);
    else if (key == "subnet") applied = set_string(config.subnet);
    else if (key == "dns_upstream") applied = set_string(config.dns_upstream);
    else if (key == "allowed_tcp_ports") applied = set_ports(config.allowed_tcp_ports);
    else return Fail(ErrorCode::kInvalidArgument, "config " + path + ": unknown key '" + key + "'");
    if (!applied) return Fail(applied.error().Wrap("config " + path));
  }
  return {};
}

Result<void> ValidateConfig(const DaemonConfig& config) {
  for (const auto& [name, dir] : {std::pair{"socket", config.socket_path}, {"state_dir", config.state_dir},
                                  {"image_dir", config.image_dir}, {"run_dir", config.run_dir}}) {
    if (dir.empty() || dir[0] != '/') {
      return Fail(ErrorCode::kInvalidArgument, std::string(name) + " must be an absolute path, not '" + dir + "'");
    }
  }
  // Per-VM sockets live at <run_dir>/vms/<id>/agent.sock (ids are 15
  // characters) and must fit sockaddr_un's 108 bytes.
  if (config.run_dir.size() + std::string_view("/vms/vm-0123456789ab/agent.sock").size() >= 108) {
    return Fail(ErrorCode::kInvalidArgument,
                "run_dir '" + config.run_dir + "' is too long for unix socket paths (keep it under 76 bytes)");
  }
  if (config.accel != "auto" && config.accel != "kvm" && config.accel != "tcg") {
    return Fail(ErrorCode::kInvalidArgument, "accel must be auto, kvm or tcg, not '" + config.accel + "'");
  }
  if (config.agent_timeout.count() < 1 || config.stop_grace.count() < 0) {
    return Fail(ErrorCode::kInvalidArgument, "agent_timeout_sec must be >= 1 and stop_grace_sec >= 0");
  }
  if (config.default_cpus < 1 || config.default_cpus > 64 || config.default_memory_mib < 64) {
    return Fail(ErrorCode::kInvalidArgument, "default_cpus must be 1..64 and default_memory_mib >= 64");
  }
  return ValidateNetworkConfig(config);
}

Result<void> ValidateNetworkConfig(const DaemonConfig& config) {
  auto mode = NetworkModeFromName(config.default_network);
  if (!mode || *mode == NetworkMode::kBridge) {
    // bridge mode needs a per-VM bridge name, so it cannot be the default.
    return Fail(ErrorCode::kInvalidArgument,
                "default_network must be nat-filtered or isolated, not '" + config.default_network + "'");
  }
  if (!net::IsValidLinkName(config.bridge)) {
    return Fail(ErrorCode::kInvalidArgument, "bridge '" + config.bridge + "' is not a valid interface name");
  }
  auto subnet = net::Ipv4Subnet::Parse(config.subnet);
  if (!subnet) return Fail(subnet.error().Wrap("subnet"));
  if (subnet->prefix_length > 30 || subnet->prefix_length < 8) {
    return Fail(ErrorCode::kInvalidArgument, "subnet " + config.subnet + " must be between /8 and /30");
  }
  if (!config.dns_upstream.empty()) {
    if (auto upstream = net::Ipv4Endpoint::Parse(config.dns_upstream, 53); !upstream) {
      return Fail(upstream.error().Wrap("dns_upstream"));
    }
  }
  for (std::uint16_t port : config.allowed_tcp_ports) {
    if (port == 53) {
      return Fail(ErrorCode::kInvalidArgument, "allowed_tcp_ports must not contain 53: DNS goes to the daemon's resolver");
    }
  }
  return {};
}

}  // namespace agentvm
