// One VM's tap device: opened through /dev/net/tun, enslaved to a bridge and
// up, its fd handed to QEMU (`-netdev tap,fd=N`).
//
// The tap is not persistent: the kernel removes it when the last fd on it
// closes (ours here, QEMU's copy), so a crashed daemon and a dead QEMU leave
// no tap behind without anyone cleaning up.
#pragma once

#include <string>

#include "common/error.h"
#include "common/unique_fd.h"

namespace agentvm::net {

class Tap {
 public:
  // Creates tap `name` with IFF_VNET_HDR (QEMU 7.2 probes the fd and then uses
  // virtio-net headers, which keeps offloads), enslaves it to `bridge` and
  // brings it up. `isolated_port` sets the bridge port flag "isolated": the
  // bridge then forwards nothing between two isolated ports, so VM-to-VM
  // traffic is cut at layer 2 by the kernel. Fails with kConflict when any
  // interface called `name` exists, leaving that one alone; with kNotFound
  // when there is no bridge `bridge`. On error nothing is left behind.
  static Result<Tap> Create(const std::string& name, const std::string& bridge, bool isolated_port);

  Tap(Tap&&) noexcept = default;
  Tap& operator=(Tap&&) noexcept = default;

  // Valid for the object's lifetime; QEMU gets a duplicate of it.
  int fd() const { return fd_.get(); }
  const std::string& name() const { return name_; }

 private:
  Tap(UniqueFd fd, std::string name) : fd_(std::move(fd)), name_(std::move(name)) {}

  UniqueFd fd_;
  std::string name_;
};

}  // namespace agentvm::net
