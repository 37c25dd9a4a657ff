#include "supervisor/vm_network.h"

#include <nlohmann/json.hpp>

#include "common/logging.h"
#include "netsetup/conntrack.h"
#include "netsetup/firewall.h"
#include "netsetup/links.h"
#include "netsetup/net_names.h"
#include "netsetup/nflog_socket.h"
#include "netsetup/tap.h"
#include "supervisor/api/json_codec.h"
#include "supervisor/api/network_validation.h"
#include "netsetup/dns_forwarder.h"
#include "netsetup/egress_by_name.h"
#include "supervisor/vm_paths.h"

namespace agentvm {
namespace {

std::shared_ptr<spdlog::logger> Log() { return Logger("network"); }

constexpr char kResolvConf[] = "/etc/resolv.conf";

// Forgets the connections of an address that has left its VM (see
// netsetup/conntrack.h). Logged, not failed: the VM is going either way, and
// lease rotation keeps the address unused for a while anyway.
void ForgetConnectionsOf(const std::string& vm_id, net::Ipv4Address address) {
  auto forgot = net::ForgetConnections(address);
  if (!forgot) {
    Log()->error("{}: forget the connections of {}: {}", vm_id, address.ToString(), forgot.error().message);
  } else if (*forgot > 0) {
    Log()->info("{}: forgot {} tracked connection(s) of {}", vm_id, *forgot, address.ToString());
  }
}

// Bridge mode has no lease; the MAC still has to be stable and unique, so it
// reuses the hash that names the tap ("avm-" + 11 hex digits).
std::string MacForTap(const std::string& tap) {
  std::string mac = "02";
  for (std::size_t i = 4; i + 1 < tap.size() && mac.size() < 17; i += 2) mac += ":" + tap.substr(i, 2);
  return mac;
}

}  // namespace

NetAttachment::NetAttachment(std::weak_ptr<VmNetwork> owner, std::string vm_id, NetworkInfo info)
    : owner_(std::move(owner)), vm_id_(std::move(vm_id)), info_(std::move(info)) {}

NetAttachment::~NetAttachment() {
  if (auto owner = owner_.lock()) owner->Detach(*this);
}

int NetAttachment::tap_fd() const { return tap_ ? tap_->fd() : -1; }

std::string NetAttachment::KernelArgs() const {
  switch (info_.mode) {
    case NetworkMode::kNatFiltered:
      return "agentvm.ip=" + info_.address + "/" + std::to_string(prefix_length_) +
             " agentvm.gw=" + info_.gateway + " agentvm.dns=" + info_.dns;
    case NetworkMode::kBridge: return "agentvm.net=dhcp";
    case NetworkMode::kIsolated: return "";
  }
  return "";
}

std::optional<protocol::GuestNetwork> NetAttachment::GuestConfig() const {
  if (info_.mode != NetworkMode::kNatFiltered) return std::nullopt;
  return protocol::GuestNetwork{
      .address = info_.address + "/" + std::to_string(prefix_length_),
      .gateway = info_.gateway,
      .dns = info_.dns,
      .mac = info_.mac,
  };
}

VmNetwork::VmNetwork(boost::asio::any_io_executor executor, const DaemonConfig& config, StateStore& store)
    : executor_(std::move(executor)),
      config_(config),
      store_(store),
      // ValidateConfig() has checked both.
      subnet_(net::Ipv4Subnet::Parse(config.subnet).value_or(net::Ipv4Subnet{})),
      gateway_(subnet_.At(1).value_or(net::Ipv4Address{})),
      leases_(store, subnet_, gateway_) {}

VmNetwork::~VmNetwork() { Shutdown(); }

Result<void> VmNetwork::RemoveLeftovers(bool keep_bridge) {
  auto owned = store_.ListOwnedLinks();
  if (!owned) return Fail(owned.error());
  for (const std::string& name : *owned) {
    auto exists = net::LinkExists(name);
    if (keep_bridge && name == config_.bridge && exists && *exists) {
      Log()->info("keeping bridge {} of an earlier agentvmd: its VMs are adopted", name);
      adopt_bridge_ = true;
      continue;
    }
    if (exists && *exists) {
      Log()->warn("removing bridge {} left by an earlier agentvmd", name);
      if (auto deleted = net::DeleteLink(name); !deleted) return Fail(deleted.error());
    }
    if (auto forgot = store_.DeleteOwnedLink(name); !forgot) return Fail(forgot.error());
  }
  if (!owned->empty()) {
    if (auto removed = net::Firewall::RemoveTables(); !removed) return Fail(removed.error());
  }
  return {};
}

Result<void> VmNetwork::EnsureStarted() {
  if (started_) return {};
  auto upstream = DnsUpstream();
  if (!upstream) return Fail(upstream.error().Wrap("DNS upstream"));

  // Recorded before it exists, so a crash between the two still gets cleaned up.
  auto exists = net::LinkExists(config_.bridge);
  if (!exists) return Fail(exists.error());
  if (*exists && !adopt_bridge_) {
    return Fail(ErrorCode::kConflict, "bridge " + config_.bridge +
                                          " exists and was not made by agentvmd; remove it or configure "
                                          "another `bridge`");
  }
  if (auto recorded = store_.AddOwnedLink(config_.bridge); !recorded) return Fail(recorded.error());
  auto created = net::EnsureBridge(config_.bridge, gateway_, subnet_.prefix_length);
  if (!created) return Fail(created.error().Wrap("bridge " + config_.bridge));
  created_bridge_ = *created || adopt_bridge_;
  started_ = true;  // from here on Shutdown() undoes what exists
  if (auto rest = StartFilteringAndDns(*upstream); !rest) {
    Shutdown();
    return Fail(rest.error());
  }
  Log()->info("network up: bridge {} {}/{}, DNS {} -> {}", config_.bridge, gateway_.ToString(),
              subnet_.prefix_length, gateway_.ToString(), upstream->address().to_string());
  return {};
}

Result<boost::asio::ip::udp::endpoint> VmNetwork::DnsUpstream() const {
  if (config_.dns_upstream.empty()) return UpstreamFromResolvConf(kResolvConf);
  auto parsed = net::Ipv4Endpoint::Parse(config_.dns_upstream, 53);
  if (!parsed) return Fail(parsed.error());
  return boost::asio::ip::udp::endpoint(boost::asio::ip::address_v4(parsed->address.value), parsed->port);
}

Result<void> VmNetwork::StartFilteringAndDns(const boost::asio::ip::udp::endpoint& upstream) {
  if (auto forwarding = net::EnableIpv4Forwarding(); !forwarding) return Fail(forwarding.error());
  // Bound before the rule that logs to it exists, so no message is lost
  // and a group another process holds fails the start, loudly.
  const auto group = static_cast<std::uint16_t>(config_.egress_log_group);
  auto nflog = net::NflogSocket::Open(executor_, group, [this](const net::NflogPacket& packet) { RecordRefused(packet); });
  if (!nflog) return Fail(nflog.error().Wrap("egress log"));
  nflog_ = std::move(*nflog);
  net::FirewallConfig firewall{
      .bridge = config_.bridge,
      .subnet = subnet_,
      .gateway = gateway_,
      .allowed_tcp_ports = config_.allowed_tcp_ports,
      .reject_refused = config_.reject_refused_connections,
      .max_connections_per_vm = static_cast<std::uint32_t>(config_.max_connections_per_vm),
      .refused_log_group = group,
  };
  auto made = net::Firewall::Create(firewall);
  if (!made) return Fail(made.error().Wrap("nftables"));
  firewall_ = std::move(*made);
  egress_ = std::make_unique<net::EgressByName>(*firewall_);
  egress_->SetQuestionSink([this](const net::DnsQuestionRecord& question) { RecordQuestion(question); });

  DnsForwarderOptions dns{
      .listen = boost::asio::ip::udp::endpoint(boost::asio::ip::address_v4(gateway_.value), 53),
      .upstream = upstream,
  };
  dns.policy = egress_.get();
  dns_ = std::make_unique<DnsForwarder>(executor_, dns);
  if (auto listening = dns_->Start(); !listening) return Fail(listening.error().Wrap("DNS forwarder"));
  return {};
}

Result<std::unique_ptr<NetAttachment>> VmNetwork::Attach(const std::string& vm_id,
                                                         const NetworkRequest& request) {
  NetworkInfo info;
  info.mode = request.mode.value_or(
      NetworkModeFromName(config_.default_network).value_or(NetworkMode::kNatFiltered));
  const bool filtered = info.mode == NetworkMode::kNatFiltered;
  // The API checked these against the mode the request named; only a mode
  // left to the daemon's default can still clash, so say which default.
  const std::string which = request.mode ? "" : " (this daemon's default network mode is " +
                                                    std::string(NetworkModeName(info.mode)) + ")";
  if (!filtered && (!request.allow_tcp_ports.empty() || !request.allow_cidrs.empty() ||
                    !EnforcedDomains(request).empty())) {
    return Fail(ErrorCode::kInvalidArgument,
                "allow_tcp_ports, allow_cidrs, allow_domains and presets need network mode nat-filtered" + which);
  }
  if (!filtered && request.bandwidth_bytes_per_sec) {
    return Fail(ErrorCode::kInvalidArgument, "a bandwidth limit needs network mode nat-filtered" + which);
  }
  if ((info.mode == NetworkMode::kBridge) != !request.bridge.empty()) {
    return Fail(ErrorCode::kInvalidArgument, "a bridge name is required in bridge mode and only there" + which);
  }
  std::unique_ptr<NetAttachment> attachment(new NetAttachment(weak_from_this(), vm_id, std::move(info)));
  attachment->prefix_length_ = subnet_.prefix_length;
  if (attachment->info_.mode == NetworkMode::kIsolated) return attachment;

  auto attached = filtered ? AttachFiltered(*attachment, request) : AttachBridged(*attachment, request);
  if (!attached) return Fail(attached.error());
  return attachment;
}

Result<void> VmNetwork::AttachFiltered(NetAttachment& attachment, const NetworkRequest& request) {
  if (auto started = EnsureStarted(); !started) return Fail(started.error());
  NetworkInfo& info = attachment.info_;
  // Checked before anything is leased; AddRules parses them again.
  for (const std::string& text : request.allow_cidrs) {
    if (auto cidr = net::Ipv4Subnet::Parse(text); !cidr) return Fail(cidr.error().Wrap("allow_cidrs"));
  }
  auto address = leases_.Acquire(attachment.vm_id_);
  if (!address) return Fail(address.error());
  info.address = address->ToString();
  info.gateway = gateway_.ToString();
  info.dns = gateway_.ToString();
  info.mac = net::MacForAddress(*address);
  info.bridge = config_.bridge;
  info.tap = net::TapNameForVm(attachment.vm_id_);
  info.allow_tcp_ports = request.allow_tcp_ports;
  info.allow_cidrs = request.allow_cidrs;
  info.allow_domains = request.allow_domains;
  info.presets = request.presets;
  info.preset_domains = request.preset_domains;
  info.bandwidth_bytes_per_sec = request.bandwidth_bytes_per_sec;

  auto tap = net::Tap::Create(info.tap, config_.bridge, /*isolated_port=*/true);
  if (!tap) {
    (void)leases_.Release(attachment.vm_id_);
    return Fail(tap.error().Wrap("tap " + info.tap));
  }
  attachment.tap_ = std::make_unique<net::Tap>(std::move(*tap));
  if (auto added = AddRules(attachment, *address); !added) {
    attachment.tap_.reset();
    (void)leases_.Release(attachment.vm_id_);
    return Fail(added.error());
  }
  Log()->info("{}: tap {} address {} mac {}", attachment.vm_id_, info.tap, info.address, info.mac);
  return {};
}

namespace {

// The firewall's view of a nat-filtered VM's network; `info` checked already.
Result<net::VmNetRules> RulesFor(const NetworkInfo& info, net::Ipv4Address address) {
  std::vector<net::Ipv4Subnet> cidrs;
  for (const std::string& text : info.allow_cidrs) {
    auto cidr = net::Ipv4Subnet::Parse(text);
    if (!cidr) return Fail(cidr.error().Wrap("allow_cidrs"));
    cidrs.push_back(*cidr);
  }
  return net::VmNetRules{
      .tap = info.tap,
      .address = address,
      .extra_tcp_ports = info.allow_tcp_ports,
      .extra_cidrs = std::move(cidrs),
      .bytes_per_second = info.bandwidth_bytes_per_sec,
      .by_name = !EnforcedDomains(info).empty(),
  };
}

}  // namespace

Result<void> VmNetwork::AddRules(NetAttachment& attachment, net::Ipv4Address address) {
  const NetworkInfo& info = attachment.info_;
  auto rules = RulesFor(info, address);
  if (!rules) return Fail(rules.error());
  if (auto added = firewall_->AddVm(*rules); !added) return Fail(added.error().Wrap("firewall"));
  attachment.has_rules_ = true;
  egress_logs_[address] = std::make_unique<net::VmEgressLog>(
      VmPaths::For(config_.run_dir, config_.state_dir, attachment.vm_id_).runtime_dir / "egress.jsonl");
  // Also for an adopted VM: without its list it would resolve nothing.
  if (rules->by_name) egress_->SetList(address, EnforcedDomains(info));
  return {};
}

Result<void> NetAttachment::Update(const NetworkUpdate& update) {
  auto owner = owner_.lock();
  if (!owner) return Fail(ErrorCode::kUnavailable, "the network is shutting down");
  return owner->Update(*this, update);
}

Result<void> VmNetwork::Update(NetAttachment& attachment, const NetworkUpdate& update) {
  const NetworkInfo& now = attachment.info_;
  if (now.mode != NetworkMode::kNatFiltered || !attachment.has_rules_ || !firewall_) {
    return Fail(ErrorCode::kInvalidArgument, "only a nat-filtered VM's egress policy can change (this one is " +
                                                 std::string(NetworkModeName(now.mode)) + ")");
  }
  NetworkInfo next = ApplyNetworkUpdate(now, update);
  // Checked as one list: the cap is on the names the VM may resolve.
  const std::vector<std::string> next_domains = EnforcedDomains(next);
  const std::vector<std::string> now_domains = EnforcedDomains(now);
  const NetworkRequest as_created{.mode = NetworkMode::kNatFiltered,
                                  .allow_tcp_ports = next.allow_tcp_ports,
                                  .allow_cidrs = next.allow_cidrs,
                                  .allow_domains = next_domains,
                                  .bandwidth_bytes_per_sec = next.bandwidth_bytes_per_sec};
  if (auto valid = api::ValidateNetworkRequest(as_created); !valid) return Fail(valid.error());
  auto address = net::Ipv4Address::Parse(now.address);
  if (!address) return Fail(address.error().Wrap("recorded address"));
  auto rules = RulesFor(next, *address);
  if (!rules) return Fail(rules.error());

  // Narrowing the list first takes back what only removed names taught, so
  // no moment allows more than the old or the new policy; a list that starts
  // only after the firewall filters by name.
  const bool had_list = !now_domains.empty();
  if (had_list && rules->by_name) egress_->SetList(*address, next_domains);
  if (auto updated = firewall_->UpdateVm(*rules); !updated) {
    if (had_list) egress_->SetList(*address, now_domains);
    return Fail(updated.error().Wrap("firewall"));
  }
  if (had_list && !rules->by_name) egress_->Remove(*address);
  if (!had_list && rules->by_name) egress_->SetList(*address, next_domains);
  Log()->info("{}: egress policy now {} ports, {} CIDRs, {} names, {}", attachment.vm_id_,
              next.allow_tcp_ports.size(), next.allow_cidrs.size(), next_domains.size(),
              next.bandwidth_bytes_per_sec ? std::to_string(*next.bandwidth_bytes_per_sec) + " B/s" : "no limit");
  attachment.info_ = std::move(next);
  return {};
}

Result<std::unique_ptr<NetAttachment>> VmNetwork::Readopt(const std::string& vm_id, const NetworkInfo& info) {
  std::unique_ptr<NetAttachment> attachment(new NetAttachment(weak_from_this(), vm_id, info));
  attachment->prefix_length_ = subnet_.prefix_length;
  // A bridge-mode tap sits on the operator's bridge, unfiltered: nothing to rebuild.
  if (info.mode != NetworkMode::kNatFiltered) return attachment;
  if (auto started = EnsureStarted(); !started) return Fail(started.error());
  auto address = net::Ipv4Address::Parse(info.address);
  if (!address) return Fail(address.error().Wrap("recorded address"));
  if (auto added = AddRules(*attachment, *address); !added) return Fail(added.error());
  Log()->info("{}: adopted tap {} address {}", vm_id, info.tap, info.address);
  return attachment;
}

Result<void> VmNetwork::AttachBridged(NetAttachment& attachment, const NetworkRequest& request) {
  if (!net::IsValidLinkName(request.bridge)) {
    return Fail(ErrorCode::kInvalidArgument, "invalid bridge name");
  }
  if (request.bridge == config_.bridge) {
    // An unfiltered, non-isolated port on our bridge would reach every VM.
    return Fail(ErrorCode::kInvalidArgument,
                "bridge mode cannot use agentvmd's own bridge " + request.bridge + "; use nat-filtered");
  }
  auto exists = net::LinkExists(request.bridge);
  if (!exists) return Fail(exists.error());
  if (!*exists) return Fail(ErrorCode::kNotFound, "no such bridge: " + request.bridge);
  NetworkInfo& info = attachment.info_;
  info.bridge = request.bridge;
  info.tap = net::TapNameForVm(attachment.vm_id_);
  info.mac = MacForTap(info.tap);
  auto tap = net::Tap::Create(info.tap, request.bridge, /*isolated_port=*/false);
  if (!tap) return Fail(tap.error().Wrap("tap " + info.tap));
  attachment.tap_ = std::make_unique<net::Tap>(std::move(*tap));
  Log()->warn("{}: tap {} on operator bridge {}, unfiltered", attachment.vm_id_, info.tap, info.bridge);
  return {};
}

void VmNetwork::Detach(NetAttachment& attachment) {
  if (attachment.has_rules_ && firewall_) {
    auto address = net::Ipv4Address::Parse(attachment.info_.address);
    if (address) {
      if (egress_) egress_->Remove(*address);
      egress_logs_.erase(*address);
      if (auto removed = firewall_->RemoveVm(attachment.info_.tap, *address); !removed) {
        Log()->error("{}: remove firewall entries: {}", attachment.vm_id_, removed.error().message);
      }
      // After the rules went, so nothing re-creates them. A stopped VM keeps
      // its address, but its flows died with its network stack.
      ForgetConnectionsOf(attachment.vm_id_, *address);
    }
  }
  attachment.has_rules_ = false;
  attachment.tap_.reset();
}

Result<void> VmNetwork::ReleaseLease(const std::string& vm_id) {
  auto released = leases_.Release(vm_id);
  if (!released) return Fail(released.error());
  // Again here: a VM that failed under an earlier daemon was never detached.
  if (*released) ForgetConnectionsOf(vm_id, **released);
  return {};
}

std::uint64_t VmNetwork::DroppedConnections(const NetworkInfo& info) const {
  if (!firewall_ || info.mode != NetworkMode::kNatFiltered) return 0;
  auto address = net::Ipv4Address::Parse(info.address);
  if (!address) return 0;
  auto dropped = firewall_->DroppedPackets(*address);
  return dropped ? *dropped : 0;
}

void VmNetwork::Shutdown() {
  if (!started_) return;
  started_ = false;
  nflog_.reset();
  dns_.reset();
  egress_.reset();
  firewall_.reset();  // deletes our tables
  if (created_bridge_) {
    if (auto deleted = net::DeleteLink(config_.bridge); !deleted) {
      Log()->error("remove bridge {}: {}", config_.bridge, deleted.error().message);
    } else if (auto forgot = store_.DeleteOwnedLink(config_.bridge); !forgot) {
      Log()->error("{}", forgot.error().message);
    }
    created_bridge_ = false;
  }
  Log()->info("network down");
}

std::string NetworkInfoToRecord(const NetworkInfo& info) {
  NetworkInfo recorded = info;
  recorded.dropped_connections = 0;  // live counters, not state
  recorded.dns_queries.clear();
  return api::NetworkInfoToJson(recorded).dump();
}

NetworkInfo NetworkInfoFromRecord(const std::string& record) {
  auto parsed = api::NetworkInfoFromJson(nlohmann::json::parse(record, nullptr, /*allow_exceptions=*/false));
  // A record we cannot read still lists the VM, as one without a network.
  return parsed ? std::move(*parsed) : NetworkInfo{};
}

}  // namespace agentvm
