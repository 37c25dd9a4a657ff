// Makes VMs' writable qcow2 overlays. An empty overlay is a function of its
// backing file's path and its size alone (`qemu-img create -u` opens nothing
// else), so the first overlay of each (backing, size) is made by qemu-img and
// later ones are copies of its bytes: a restore does not wait for a process
// to start (qemu-img took 60-130 ms of a restore on a loaded 2-core host).
#pragma once

#include <cstdint>
#include <list>
#include <string>
#include <utility>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "common/error.h"

namespace agentvm {

class OverlayCreator {
 public:
  OverlayCreator(boost::asio::any_io_executor executor, std::string qemu_img_binary);

  // Creates `overlay` (which must not exist yet) over `backing` with a
  // virtual size of `size_bytes`; qemu-img's output goes to `log_path`.
  boost::asio::awaitable<Result<void>> Create(std::string backing, std::uint64_t size_bytes, std::string overlay,
                                              std::string log_path);

  // How many overlays qemu-img made (the rest were copies).
  std::uint64_t qemu_img_runs() const { return qemu_img_runs_; }

  // Kept per (backing, size); a host has a few images and goldens, so the
  // oldest of more than this many is forgotten.
  static constexpr std::size_t kMaxTemplates = 32;
  // An empty overlay is ~200 KiB; anything much larger is not one.
  static constexpr std::size_t kMaxTemplateBytes = 4 << 20;

 private:
  struct Template {
    std::string backing;
    std::uint64_t size_bytes = 0;
    std::string bytes;
  };
  const Template* Find(const std::string& backing, std::uint64_t size_bytes) const;
  void Remember(Template made);

  boost::asio::any_io_executor executor_;
  std::string qemu_img_binary_;
  std::list<Template> templates_;  // newest first
  std::uint64_t qemu_img_runs_ = 0;
};

}  // namespace agentvm
