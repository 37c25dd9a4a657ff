#include "guest-images/agent/configure.h"

#include "protocol/messages.h"

namespace agentvm::guest {
namespace {

std::unexpected<protocol::ErrorReply> StepFailed(std::string_view step, const std::string& why) {
  return std::unexpected(protocol::ErrorReply{std::string(protocol::kCodeInternal),
                                              "configure: " + std::string(step) + ": " + why});
}

std::string Joined(const std::vector<std::string>& args) {
  std::string text = "ip";
  for (const std::string& a : args) text += " " + a;
  return text;
}

}  // namespace

std::vector<std::vector<std::string>> NetworkCommands(const protocol::GuestNetwork& network) {
  const std::string dev(kGuestInterface);
  std::vector<std::vector<std::string>> commands;
  if (network.mac) {
    // Not every NIC takes a new MAC while up (IFF_LIVE_ADDR_CHANGE).
    commands.push_back({"link", "set", "dev", dev, "down"});
    commands.push_back({"link", "set", "dev", dev, "address", *network.mac});
  }
  if (network.mac || network.address) commands.push_back({"link", "set", "dev", dev, "up"});
  if (network.address) {
    commands.push_back({"-4", "addr", "flush", "dev", dev});
    commands.push_back({"addr", "add", *network.address, "dev", dev});
  }
  if (network.gateway) {
    commands.push_back({"route", "replace", "default", "via", *network.gateway, "dev", dev});
  }
  return commands;
}

AgentResult<void> ApplyIdentity(const protocol::GuestIdentity& identity, GuestSystem& system) {
  if (identity.time_unix_ns) {
    if (auto done = system.SetClock(*identity.time_unix_ns); !done) {
      return StepFailed("clock", done.error());
    }
  }
  if (!identity.entropy.empty()) {
    if (auto done = system.AddEntropy(identity.entropy); !done) {
      return StepFailed("entropy", done.error());
    }
  }
  if (identity.hostname) {
    if (auto done = system.SetHostname(*identity.hostname); !done) {
      return StepFailed("hostname", done.error());
    }
  }
  for (const auto& mount : identity.mounts) {
    if (auto done = system.MountVirtiofs(mount.tag, mount.target, mount.readonly); !done) {
      return StepFailed("mount", done.error());
    }
  }
  if (identity.network) {
    for (const auto& args : NetworkCommands(*identity.network)) {
      if (auto done = system.RunIp(args); !done) {
        return StepFailed("network", Joined(args) + ": " + done.error());
      }
    }
    if (identity.network->dns) {
      if (auto done = system.WriteResolvConf("nameserver " + *identity.network->dns + "\n");
          !done) {
        return StepFailed("dns", done.error());
      }
    }
  }
  return {};
}

}  // namespace agentvm::guest
