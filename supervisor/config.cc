#include "supervisor/config.h"

#include <algorithm>
#include <charconv>
#include <set>

#include <boost/asio/ip/address.hpp>
#include <yaml-cpp/yaml.h>

#include "netsetup/egress_presets.h"
#include "netsetup/firewall_config.h"
#include "netsetup/ipv4.h"
#include "netsetup/net_names.h"
#include "supervisor/names.h"
#include "supervisor/vm_types.h"

namespace agentvm {
namespace {

constexpr int kMaxPoolTotal = 64;

constexpr int kMaxFillParallelism = 16;

constexpr char kPoolKeys[] =
    "image, cpus, memory_mib, network, min_ready, max_total, ttl_sec, fill_parallelism";

std::unexpected<Error> Invalid(std::string message) {
  return Fail(ErrorCode::kInvalidArgument, std::move(message));
}

template <class T>
Result<T> Scalar(const YAML::Node& node, const std::string& key) {
  try {
    return node.as<T>();
  } catch (const YAML::Exception&) {
    return Fail(ErrorCode::kInvalidArgument, "config key '" + key + "' has the wrong type");
  }
}

// Sets the PoolConfig field `key` from `value` through the setters given,
// which report a wrong type in their own words. False for an unknown key.
template <class SetString, class SetInt>
Result<bool> SetPoolField(PoolConfig& pool, std::string_view key, SetString set_string,
                          SetInt set_int) {
  Result<void> set;
  int seconds = 0;
  if (key == "image") set = set_string(pool.image);
  else if (key == "network") set = set_string(pool.network);
  else if (key == "cpus") set = set_int(pool.cpus);
  else if (key == "memory_mib") set = set_int(pool.memory_mib);
  else if (key == "min_ready") set = set_int(pool.min_ready);
  else if (key == "max_total") set = set_int(pool.max_total);
  else if (key == "fill_parallelism") set = set_int(pool.fill_parallelism);
  else if (key == "ttl_sec") {
    set = set_int(seconds);
    if (set) pool.ttl = std::chrono::seconds(seconds);
  } else {
    return false;
  }
  if (!set) return Fail(set.error());
  return true;
}

Result<PoolConfig> PoolFromYaml(const YAML::Node& node, const std::string& where) {
  if (!node.IsMap()) {
    return Invalid("config key '" + where + "' must be a mapping with keys among " + kPoolKeys);
  }
  PoolConfig pool;
  for (const auto& entry : node) {
    const std::string key = entry.first.as<std::string>();
    const std::string name = where + "." + key;
    auto set_string = [&](std::string& field) -> Result<void> {
      auto v = Scalar<std::string>(entry.second, name);
      if (!v) return Fail(v.error());
      field = *v;
      return {};
    };
    auto set_int = [&](int& field) -> Result<void> {
      auto v = Scalar<int>(entry.second, name);
      if (!v) return Fail(v.error());
      field = *v;
      return {};
    };
    auto known = SetPoolField(pool, key, set_string, set_int);
    if (!known) return Fail(known.error());
    if (!*known) return Invalid("unknown key '" + name + "' (a pool has " + kPoolKeys + ")");
  }
  return pool;
}

Result<void> ValidatePools(const DaemonConfig& config) {
  if (config.health_check_interval.count() < 1) return Invalid("health_check_interval_sec must be >= 1");
  for (std::size_t i = 0; i < config.pools.size(); ++i) {
    const PoolConfig& pool = config.pools[i];
    const std::string where = "pools[" + std::to_string(i) + "]";
    if (auto valid = ValidateImageName(pool.image); !valid) return Fail(valid.error().Wrap(where));
    auto mode = NetworkModeFromName(pool.network);
    if (!mode || *mode == NetworkMode::kBridge) {
      // A bridge VM attaches to a bridge its request names, so no ready VM
      // can match it in advance.
      return Invalid(where + ": network must be nat-filtered or isolated, not '" + pool.network + "'");
    }
    // A pool's VMs are made like any other, so its profile is held to the
    // sizes of a create request (vm_types.h).
    if (pool.cpus < kMinCpus || pool.cpus > kMaxCpus) {
      return Invalid(where + ": cpus must be between " + std::to_string(kMinCpus) + " and " +
                     std::to_string(kMaxCpus) + ", not " + std::to_string(pool.cpus));
    }
    if (pool.memory_mib < kMinMemoryMib || pool.memory_mib > kMaxMemoryMib) {
      return Invalid(where + ": memory_mib must be between " + std::to_string(kMinMemoryMib) + " and " +
                     std::to_string(kMaxMemoryMib) + ", not " + std::to_string(pool.memory_mib));
    }
    if (pool.max_total < 1 || pool.max_total > kMaxPoolTotal) {
      return Invalid(where + ": max_total must be between 1 and " + std::to_string(kMaxPoolTotal) + ", not " +
                     std::to_string(pool.max_total));
    }
    if (pool.min_ready < 0 || pool.min_ready > pool.max_total) {
      return Invalid(where + ": min_ready must be between 0 and max_total (" + std::to_string(pool.max_total) +
                     "), not " + std::to_string(pool.min_ready));
    }
    if (pool.ttl.count() < 1) return Invalid(where + ": ttl_sec must be >= 1");
    if (pool.fill_parallelism < 0 || pool.fill_parallelism > kMaxFillParallelism) {
      return Invalid(where + ": fill_parallelism must be between 0 (by cores) and " +
                     std::to_string(kMaxFillParallelism) + ", not " + std::to_string(pool.fill_parallelism));
    }
    for (std::size_t j = 0; j < i; ++j) {
      const PoolConfig& other = config.pools[j];
      if (other.image == pool.image && other.cpus == pool.cpus && other.memory_mib == pool.memory_mib &&
          other.network == pool.network) {
        return Invalid(where + " has the same image, cpus, memory_mib and network as pools[" +
                       std::to_string(j) + "]: a create could not tell them apart");
      }
    }
  }
  return {};
}

// `jail: off` / `jail: on`, or a map of JailConfig's keys.
Result<void> JailFromYaml(const YAML::Node& node, JailConfig& jail) {
  if (node.IsScalar()) {
    auto on = Scalar<bool>(node, "jail");
    if (!on) return Invalid("config key 'jail' must be on, off or a mapping");
    jail.enabled = *on;
    return {};
  }
  if (!node.IsMap()) return Invalid("config key 'jail' must be on, off or a mapping");
  for (const auto& entry : node) {
    const std::string key = entry.first.as<std::string>();
    const std::string name = "jail." + key;
    if (key == "enabled") {
      auto v = Scalar<bool>(entry.second, name);
      if (!v) return Fail(v.error());
      jail.enabled = *v;
      continue;
    }
    if (key == "cgroup_name") {
      auto v = Scalar<std::string>(entry.second, name);
      if (!v) return Fail(v.error());
      jail.cgroup_name = *v;
      continue;
    }
    int* field = key == "uid_base"              ? &jail.uid_base
                 : key == "gid_base"            ? &jail.gid_base
                 : key == "slots"               ? &jail.slots
                 : key == "memory_overhead_mib" ? &jail.memory_overhead_mib
                 : key == "tcg_overhead_mib"    ? &jail.tcg_overhead_mib
                 : key == "pids_max"            ? &jail.pids_max
                 : key == "cpu_weight"          ? &jail.cpu_weight
                 : key == "nofile"              ? &jail.nofile
                 : key == "virtiofsd_memory_mib" ? &jail.virtiofsd_memory_mib
                                                : nullptr;
    if (!field) return Invalid("unknown key '" + name + "'");
    auto v = Scalar<int>(entry.second, name);
    if (!v) return Fail(v.error());
    *field = *v;
  }
  return {};
}

Result<void> ValidateJail(const JailConfig& jail) {
  if (jail.uid_base < 1 || jail.gid_base < 1 || jail.slots < 1 ||
      static_cast<long long>(std::max(jail.uid_base, jail.gid_base)) + jail.slots > 0x7fffffffLL) {
    return Invalid("jail: uid_base and gid_base must be >= 1 (never root) and base + slots fit in 31 bits");
  }
  if (jail.cgroup_name.empty() || jail.cgroup_name.find('/') != std::string::npos || jail.cgroup_name[0] == '.') {
    return Invalid("jail.cgroup_name must be one path component, not '" + jail.cgroup_name + "'");
  }
  if (jail.memory_overhead_mib < 0 || jail.tcg_overhead_mib < 0 || jail.pids_max < 16 || jail.nofile < 64 ||
      jail.cpu_weight < 1 || jail.cpu_weight > 10000 || jail.virtiofsd_memory_mib < 64) {
    return Invalid(
        "jail: overheads must be >= 0, pids_max >= 16, nofile >= 64, cpu_weight 1..10000, virtiofsd_memory_mib >= 64");
  }
  return {};
}

}  // namespace

Result<PoolConfig> ParsePoolSpec(std::string_view spec) {
  PoolConfig pool;
  if (spec.empty()) return pool;
  std::set<std::string, std::less<>> seen;
  while (true) {
    auto comma = spec.find(',');
    std::string_view item = spec.substr(0, comma);
    auto eq = item.find('=');
    if (item.empty()) return Invalid("empty item (two ',' in a row, or one at an end)");
    if (eq == std::string_view::npos) return Invalid("'" + std::string(item) + "' is not key=value");
    std::string key(item.substr(0, eq));
    std::string value(item.substr(eq + 1));
    if (!seen.insert(key).second) return Invalid("'" + key + "' is given twice");
    auto set_string = [&](std::string& field) -> Result<void> {
      field = value;
      return {};
    };
    auto set_int = [&](int& field) -> Result<void> {
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), field);
      if (ec != std::errc() || end != value.data() + value.size()) {
        return Invalid(key + " expects a whole number, not '" + value + "'");
      }
      return {};
    };
    auto known = SetPoolField(pool, key, set_string, set_int);
    if (!known) return Fail(known.error());
    if (!*known) return Invalid("unknown key '" + key + "' (expected " + kPoolKeys + ")");
    if (comma == std::string_view::npos) break;
    spec.remove_prefix(comma + 1);
  }
  return pool;
}

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

    auto set_pools = [&](std::vector<PoolConfig>& field) -> Result<void> {
      field.clear();
      if (value.IsNull()) return {};  // "pools:" with nothing under it
      if (!value.IsSequence()) {
        return Invalid("config key '" + key + "' must be a list of pools (mappings with keys among " +
                       kPoolKeys + ")");
      }
      for (std::size_t i = 0; i < value.size(); ++i) {
        auto pool = PoolFromYaml(value[i], key + "[" + std::to_string(i) + "]");
        if (!pool) return Fail(pool.error());
        field.push_back(std::move(*pool));
      }
      return {};
    };
    auto set_paths = [&](std::vector<std::string>& field) -> Result<void> {
      field.clear();
      if (value.IsNull()) return {};  // "mount_roots:" with nothing under it
      if (!value.IsSequence()) return Invalid("config key '" + key + "' must be a list of absolute paths");
      for (const auto& item : value) {
        auto path = Scalar<std::string>(item, key);
        if (!path) return Fail(path.error());
        if (path->empty() || (*path)[0] != '/') {
          return Invalid("config key '" + key + "': '" + *path + "' is not an absolute path");
        }
        field.push_back(*path);
      }
      return {};
    };
    auto set_presets = [&](std::map<std::string, std::vector<std::string>>& field) -> Result<void> {
      field.clear();
      if (value.IsNull()) return {};  // "egress_presets:" with nothing under it
      if (!value.IsMap()) {
        return Invalid("config key '" + key + "' must map preset names to lists of domain names");
      }
      for (const auto& preset : value) {
        const std::string name = preset.first.as<std::string>();
        const std::string where = key + "." + name;
        if (!preset.second.IsSequence()) return Invalid("config key '" + where + "' must be a list of domain names");
        if (field.contains(name)) return Invalid("config key '" + where + "' is defined twice");
        std::vector<std::string>& domains = field[name];
        for (const auto& item : preset.second) {
          auto domain = Scalar<std::string>(item, where);
          if (!domain) return Fail(domain.error());
          domains.push_back(*domain);
        }
      }
      return {};  // names, lists and limits: ValidateNetworkConfig
    };
    auto set_bool = [&](bool& field) -> Result<void> {
      auto v = Scalar<bool>(value, key);
      if (!v) return Fail(v.error());
      field = *v;
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
    else if (key == "audit_log") applied = set_string(config.audit_log);
    else if (key == "metrics_listen") applied = set_string(config.metrics_listen);
    else if (key == "agent_timeout_sec") applied = set_seconds(config.agent_timeout);
    else if (key == "stop_grace_sec") applied = set_seconds(config.stop_grace);
    else if (key == "default_cpus") applied = set_int(config.default_cpus);
    else if (key == "default_memory_mib") applied = set_int(config.default_memory_mib);
    else if (key == "console_memory_kib") applied = set_int(config.console_memory_kib);
    else if (key == "console_file_kib") applied = set_int(config.console_file_kib);
    else if (key == "default_network") applied = set_string(config.default_network);
    else if (key == "bridge") applied = set_string(config.bridge);
    else if (key == "subnet") applied = set_string(config.subnet);
    else if (key == "dns_upstream") applied = set_string(config.dns_upstream);
    else if (key == "allowed_tcp_ports") applied = set_ports(config.allowed_tcp_ports);
    else if (key == "reject_refused_connections") applied = set_bool(config.reject_refused_connections);
    else if (key == "max_connections_per_vm") applied = set_int(config.max_connections_per_vm);
    else if (key == "egress_log_group") applied = set_int(config.egress_log_group);
    else if (key == "egress_presets") applied = set_presets(config.egress_presets);
    else if (key == "golden_snapshots") applied = set_bool(config.golden_snapshots);
    else if (key == "memory_templates") applied = set_string(config.memory_templates);
    else if (key == "keep_vms_on_exit") applied = set_bool(config.keep_vms_on_exit);
    else if (key == "health_check_interval_sec") applied = set_seconds(config.health_check_interval);
    else if (key == "pools") applied = set_pools(config.pools);
    else if (key == "jail") applied = JailFromYaml(value, config.jail);
    else if (key == "mount_roots") applied = set_paths(config.mount_roots);
    else if (key == "virtiofsd") applied = set_string(config.virtiofsd_binary);
    else if (key == "virtiofs_cache") applied = set_string(config.virtiofs_cache);
    else if (key == "mount_owner") {
      std::string text;
      applied = set_string(text);
      if (applied && text.empty()) {
        config.mount_owner.reset();  // the caller's
      } else if (applied) {
        auto owner = ParseUserIds(text);
        if (owner) config.mount_owner = *owner;
        else applied = Fail(owner.error().Wrap("config key 'mount_owner'"));
      }
    }
    else return Fail(ErrorCode::kInvalidArgument, "config " + path + ": unknown key '" + key + "'");
    if (!applied) return Fail(applied.error().Wrap("config " + path));
  }
  return {};
}

Result<UserIds> ParseUserIds(std::string_view text) {
  auto number = [](std::string_view digits) -> std::optional<std::uint32_t> {
    std::uint32_t value = 0;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() || value > 0x7fffffffU) {
      return std::nullopt;
    }
    return value;
  };
  const std::size_t colon = text.find(':');
  auto uid = number(text.substr(0, colon));
  auto gid = colon == std::string_view::npos ? std::nullopt : number(text.substr(colon + 1));
  if (!uid || !gid) {
    return Fail(ErrorCode::kInvalidArgument, "expected UID:GID (two numbers, e.g. 1000:1000), not '" +
                                                 std::string(text) + "'");
  }
  return UserIds{.uid = *uid, .gid = *gid};
}

Result<MetricsListenAddress> ParseMetricsListen(const std::string& text) {
  auto invalid = [&] {
    return Fail(ErrorCode::kInvalidArgument,
                "metrics_listen must be ADDRESS:PORT (127.0.0.1:9464, [::1]:9464), not '" + text + "'");
  };
  const std::size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) return invalid();
  std::string host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string::npos) {
    return invalid();  // an IPv6 address needs its brackets
  }
  boost::system::error_code ec;
  boost::asio::ip::make_address(host, ec);
  if (ec) return invalid();
  const std::string port_text = text.substr(colon + 1);
  unsigned port = 0;
  auto [end, parse_ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (parse_ec != std::errc() || end != port_text.data() + port_text.size() || port == 0 || port > 65535) {
    return invalid();
  }
  return MetricsListenAddress{.host = std::move(host), .port = static_cast<std::uint16_t>(port)};
}

Result<void> ValidateConfig(const DaemonConfig& config) {
  for (const auto& [name, dir] : {std::pair{"socket", config.socket_path}, {"state_dir", config.state_dir},
                                  {"image_dir", config.image_dir}, {"run_dir", config.run_dir}}) {
    if (dir.empty() || dir[0] != '/') {
      return Fail(ErrorCode::kInvalidArgument, std::string(name) + " must be an absolute path, not '" + dir + "'");
    }
  }
  if (config.memory_templates != "cow" && config.memory_templates != "copy") {
    return Fail(ErrorCode::kInvalidArgument,
                "memory_templates must be cow or copy, not '" + config.memory_templates + "'");
  }
  if (config.virtiofs_cache != "auto" && config.virtiofs_cache != "always" && config.virtiofs_cache != "none") {
    return Fail(ErrorCode::kInvalidArgument,
                "virtiofs_cache must be auto, always or none, not '" + config.virtiofs_cache + "'");
  }
  if (!config.metrics_listen.empty()) {
    if (auto address = ParseMetricsListen(config.metrics_listen); !address) return Fail(address.error());
  }
  if (!config.audit_log.empty() && config.audit_log[0] != '/') {
    return Fail(ErrorCode::kInvalidArgument, "audit_log must be an absolute path, not '" + config.audit_log + "'");
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
  if (config.default_cpus < kMinCpus || config.default_cpus > kMaxCpus) {
    return Invalid("default_cpus must be between " + std::to_string(kMinCpus) + " and " + std::to_string(kMaxCpus));
  }
  if (config.default_memory_mib < kMinMemoryMib || config.default_memory_mib > kMaxMemoryMib) {
    return Invalid("default_memory_mib must be between " + std::to_string(kMinMemoryMib) + " and " +
                   std::to_string(kMaxMemoryMib));
  }
  // Up to 64 MiB each: these are per VM, on the daemon's heap and in tmpfs.
  if (config.console_memory_kib < 4 || config.console_memory_kib > 65536 || config.console_file_kib < 8 ||
      config.console_file_kib > 65536) {
    return Fail(ErrorCode::kInvalidArgument, "console_memory_kib must be 4..65536 and console_file_kib 8..65536");
  }
  if (auto network = ValidateNetworkConfig(config); !network) return network;
  if (auto jail = ValidateJail(config.jail); !jail) return jail;
  return ValidatePools(config);
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
  if (config.max_connections_per_vm < 1 ||
      static_cast<std::uint32_t>(config.max_connections_per_vm) > net::kMaxConnectionsPerVmCeiling) {
    return Fail(ErrorCode::kInvalidArgument, "max_connections_per_vm must be 1.." +
                                                 std::to_string(net::kMaxConnectionsPerVmCeiling) + ", not " +
                                                 std::to_string(config.max_connections_per_vm));
  }
  if (config.egress_log_group < 0 || config.egress_log_group > 65535) {
    return Fail(ErrorCode::kInvalidArgument,
                "egress_log_group must be 0..65535, not " + std::to_string(config.egress_log_group));
  }
  if (auto presets = net::EgressPresets::Make(config.egress_presets); !presets) return Fail(presets.error());
  return {};
}

}  // namespace agentvm
