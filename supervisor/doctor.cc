#include "supervisor/doctor.h"

#include <ifaddrs.h>
#include <arpa/inet.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <pwd.h>
#include <grp.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <filesystem>
#include <algorithm>

#include <fmt/format.h>

#include "netsetup/ipv4.h"
#include "netsetup/nft_transport.h"
#include "supervisor/accel.h"
#include "supervisor/image_store.h"
#include "supervisor/jail.h"
#include "supervisor/mount_policy.h"

namespace agentvm {
namespace {

namespace fs = std::filesystem;
using Level = DoctorFinding::Level;

// Free bytes on the filesystem that holds `path`, or would once it is made.
std::uint64_t FreeBytes(fs::path path) {
  std::error_code ignored;
  while (!path.empty() && !fs::exists(path, ignored) && path != path.root_path()) path = path.parent_path();
  struct statvfs stats {};
  if (::statvfs(path.c_str(), &stats) != 0) return 0;
  return static_cast<std::uint64_t>(stats.f_bavail) * stats.f_frsize;
}

std::vector<std::pair<std::string, std::string>> HostNetworks() {
  std::vector<std::pair<std::string, std::string>> networks;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return networks;
  for (ifaddrs* entry = list; entry; entry = entry->ifa_next) {
    if (!entry->ifa_addr || entry->ifa_addr->sa_family != AF_INET || !entry->ifa_netmask) continue;
    const std::uint32_t address = ntohl(reinterpret_cast<sockaddr_in*>(entry->ifa_addr)->sin_addr.s_addr);
    const std::uint32_t mask = ntohl(reinterpret_cast<sockaddr_in*>(entry->ifa_netmask)->sin_addr.s_addr);
    const int length = __builtin_popcount(mask);
    networks.emplace_back(entry->ifa_name,
                          net::Ipv4Address{address & mask}.ToString() + "/" + std::to_string(length));
  }
  ::freeifaddrs(list);
  return networks;
}

std::vector<std::string> AccountsInRange(const JailConfig& jail) {
  std::vector<std::string> found;
  auto in_range = [](long id, int base, int count) { return id >= base && id < static_cast<long>(base) + count; };
  ::setpwent();
  while (passwd* user = ::getpwent()) {
    if (in_range(user->pw_uid, jail.uid_base, jail.slots)) found.push_back("user " + std::string(user->pw_name));
  }
  ::endpwent();
  ::setgrent();
  while (group* entry = ::getgrent()) {
    if (in_range(entry->gr_gid, jail.gid_base, jail.slots)) found.push_back("group " + std::string(entry->gr_name));
  }
  ::endgrent();
  return found;
}

Result<void> ProbeNftables() {
  auto transport = net::OpenNftTransport();
  if (!transport) return Fail(transport.error());
  net::NftMessage request = net::MakeNftMessage(NFT_MSG_GETGEN, NFPROTO_UNSPEC, 0, "get generation", [](nlmsghdr*) {});
  auto reply = (*transport)->Query(request);
  if (!reply) return Fail(reply.error());
  return {};
}

bool Overlaps(const net::Ipv4Subnet& a, const net::Ipv4Subnet& b) {
  return a.Contains(b.network) || b.Contains(a.network);
}

std::string Gib(std::uint64_t bytes) { return fmt::format("{:.1f} GiB", static_cast<double>(bytes) / (1ull << 30)); }

}  // namespace

DoctorFacts ProbeDoctorFacts(const DaemonConfig& config) {
  DoctorFacts facts;
  facts.host = ProbeHost();
  facts.kvm_device_exists = ::access("/dev/kvm", F_OK) == 0;
  facts.root = ::geteuid() == 0;
  facts.qemu_version = QemuVersion(config.qemu_binary);
  facts.qemu_img_version = QemuVersion(config.qemu_img_binary);
  facts.cgroups = DetectCgroups();
  std::error_code ignored;
  ImageStore store(config.image_dir);
  for (const auto& entry : fs::directory_iterator(config.image_dir, ignored)) {
    const std::string name = entry.path().filename().string();
    if (store.Find(name)) facts.images.push_back(name);
  }
  std::sort(facts.images.begin(), facts.images.end());
  facts.nftables = ProbeNftables();
  facts.networks = HostNetworks();
  facts.jail_range_accounts = AccountsInRange(config.jail);
  facts.virtiofsd_runs = ::access(config.virtiofsd_binary.c_str(), X_OK) == 0;
  for (const std::string& root : config.mount_roots) {
    if (!IsMountedNosuid(root)) facts.suid_mount_roots.push_back(root);
  }
  facts.state_dir_free_bytes = FreeBytes(config.state_dir);
  facts.run_dir_free_bytes = FreeBytes(config.run_dir);
  return facts;
}

std::vector<DoctorFinding> Diagnose(const DaemonConfig& config, const DoctorFacts& facts) {
  std::vector<DoctorFinding> out;
  auto add = [&](Level level, std::string check, std::string detail, std::string fix = {}) {
    out.push_back(DoctorFinding{level, std::move(check), std::move(detail), std::move(fix)});
  };

  if (facts.root) {
    add(Level::kOk, "privileges", "running as root");
  } else {
    add(Level::kFail, "privileges", "not root: agentvmd makes bridges, taps, nftables rules and jails",
        "run agentvmd (and this check) as root");
  }

  auto accel = ChooseAccel(config.accel, facts.host);
  if (!accel) {
    add(Level::kFail, "accelerator", accel.error().message,
        "load kvm_intel or kvm_amd (or enable nested virtualization), or set accel: auto");
  } else if (accel->accel == Accel::kKvm) {
    add(Level::kOk, "accelerator", "KVM (/dev/kvm opens, the CPU has vmx/svm)");
  } else if (config.accel == "tcg") {
    add(Level::kOk, "accelerator", "TCG, as configured (accel: tcg)");
  } else {
    std::string why = !facts.kvm_device_exists ? "/dev/kvm does not exist"
                      : !facts.host.kvm_usable ? "/dev/kvm does not open read-write"
                                               : "the CPU shows neither vmx nor svm";
    add(Level::kWarn, "accelerator", "TCG (software emulation, ~10-20x slower): " + why,
        "enable virtualization in the firmware or the hypervisor (nested), then modprobe kvm_intel or kvm_amd");
  }

  if (ChooseChannel(facts.host) == ChannelKind::kVsock) {
    add(Level::kOk, "guest channel", "vhost-vsock (/dev/vhost-vsock)");
  } else {
    add(Level::kOk, "guest channel", "virtio-serial (/dev/vhost-vsock is absent; modprobe vhost_vsock to use vsock)");
  }

  if (facts.qemu_version) {
    add(Level::kOk, "qemu", *facts.qemu_version);
  } else {
    add(Level::kFail, "qemu", config.qemu_binary + ": " + facts.qemu_version.error().message,
        "apt install qemu-system-x86 (QEMU 7.2 or later), or set qemu: in the config");
  }
  if (facts.qemu_img_version) {
    add(Level::kOk, "qemu-img", *facts.qemu_img_version);
  } else {
    add(Level::kFail, "qemu-img", config.qemu_img_binary + ": " + facts.qemu_img_version.error().message,
        "apt install qemu-utils, or set qemu_img: in the config");
  }

  if (facts.images.empty()) {
    add(Level::kFail, "images", "no complete image in " + config.image_dir,
        "agentvm-build-image tiny --out " + config.image_dir);
  } else {
    std::string names;
    for (const std::string& name : facts.images) names += (names.empty() ? "" : ", ") + name;
    add(Level::kOk, "images", names + " in " + config.image_dir);
  }

  if (facts.nftables) {
    add(Level::kOk, "nftables", "nf_tables answers over netlink");
  } else {
    add(Level::kFail, "nftables", facts.nftables.error().message,
        "a kernel with nf_tables (modprobe nf_tables), and CAP_NET_ADMIN");
  }

  if (auto subnet = net::Ipv4Subnet::Parse(config.subnet)) {
    std::string clashes;
    for (const auto& [interface, network] : facts.networks) {
      if (interface == config.bridge) continue;  // agentvmd's own bridge, from a running daemon
      auto host_network = net::Ipv4Subnet::Parse(network);
      if (host_network && Overlaps(*subnet, *host_network)) {
        clashes += (clashes.empty() ? "" : ", ") + network + " on " + interface;
      }
    }
    if (clashes.empty()) {
      add(Level::kOk, "subnet", config.subnet + " is free on this host");
    } else {
      add(Level::kFail, "subnet", config.subnet + " overlaps " + clashes,
          "set subnet: to a range this host does not use, e.g. 10.213.0.0/16");
    }
  }

  if (!config.jail.enabled) {
    add(Level::kWarn, "jail", "off: every QEMU runs as root in the host's namespaces", "set jail: enabled: true");
  } else if (!facts.cgroups) {
    add(Level::kFail, "cgroups", facts.cgroups.error().message,
        "mount cgroup v2 at /sys/fs/cgroup, or the v1 memory, pids and cpu controllers under it");
  } else {
    const CgroupHost& cgroups = *facts.cgroups;
    add(Level::kOk, "cgroups", cgroups.version == CgroupVersion::kV2 ? "v2 at " + cgroups.v2_root
                                                                      : "v1 (memory, pids, cpu)");
  }
  if (config.jail.enabled) {
    const std::string range = std::to_string(config.jail.uid_base) + "-" +
                              std::to_string(config.jail.uid_base + config.jail.slots - 1);
    if (facts.jail_range_accounts.empty()) {
      add(Level::kOk, "jail ids", "uids/gids " + range + " belong to no account");
    } else {
      std::string names;
      for (const std::string& name : facts.jail_range_accounts) names += (names.empty() ? "" : ", ") + name;
      add(Level::kFail, "jail ids", "the jail's ids " + range + " are used by " + names,
          "set jail: uid_base/gid_base to a range no account uses");
    }
  }

  if (config.mount_roots.empty()) {
    add(Level::kOk, "mounts", "off (no mount_roots)");
  } else if (!facts.virtiofsd_runs) {
    add(Level::kFail, "mounts", config.virtiofsd_binary + " is not an executable",
        "apt install qemu-system-common (QEMU 7.2's virtiofsd), or set virtiofsd: in the config");
  } else if (!facts.suid_mount_roots.empty()) {
    std::string roots;
    for (const std::string& root : facts.suid_mount_roots) roots += (roots.empty() ? "" : ", ") + root;
    add(Level::kWarn, "mounts", "read-write mounts under " + roots + " are refused: not on a nosuid file system",
        "mount them nosuid (docs/workspaces.md), or mount only read-only from them");
  } else {
    add(Level::kOk, "mounts", "virtiofsd at " + config.virtiofsd_binary + "; every mount root is nosuid");
  }

  constexpr std::uint64_t kLowState = 5ull << 30;  // a debian image, a golden snapshot and a few overlays
  constexpr std::uint64_t kLowRun = 64ull << 20;   // sockets and capped console logs
  add(facts.state_dir_free_bytes < kLowState ? Level::kWarn : Level::kOk, "disk",
      Gib(facts.state_dir_free_bytes) + " free for " + config.state_dir,
      facts.state_dir_free_bytes < kLowState ? "free space: VM overlays and golden snapshots grow there" : "");
  add(facts.run_dir_free_bytes < kLowRun ? Level::kWarn : Level::kOk, "run dir",
      Gib(facts.run_dir_free_bytes) + " free for " + config.run_dir,
      facts.run_dir_free_bytes < kLowRun ? "give " + config.run_dir + " more room (tmpfs)" : "");
  return out;
}

std::string FormatDoctorReport(const std::vector<DoctorFinding>& findings) {
  std::string report;
  int failed = 0;
  int warned = 0;
  for (const DoctorFinding& finding : findings) {
    const char* level = finding.level == Level::kOk ? "ok  " : finding.level == Level::kWarn ? "warn" : "FAIL";
    failed += finding.level == Level::kFail;
    warned += finding.level == Level::kWarn;
    report += fmt::format("{}  {:<14} {}\n", level, finding.check, finding.detail);
    if (!finding.fix.empty()) report += fmt::format("{:21}fix: {}\n", "", finding.fix);
  }
  if (failed) {
    report += fmt::format("{} problem(s) to fix before agentvmd can run VMs here", failed);
  } else {
    report += "agentvmd can run VMs on this host";
  }
  report += warned ? fmt::format(" ({} warning(s))\n", warned) : "\n";
  return report;
}

int DoctorExitCode(const std::vector<DoctorFinding>& findings) {
  for (const DoctorFinding& finding : findings) {
    if (finding.level == Level::kFail) return 1;
  }
  return 0;
}

}  // namespace agentvm
