// Images on disk: <image-dir>/<name>/{image.json, vmlinuz, initrd.img,
// rootfs.qcow2}. Read-only to the daemon; built by scripts/build-image.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "common/error.h"

namespace agentvm {

struct Image {
  std::string name;
  std::filesystem::path kernel;
  std::filesystem::path initrd;
  std::filesystem::path rootfs;  // qcow2 base, never written
  std::uint64_t disk_bytes = 0;  // rootfs's virtual size (its qcow2 header): every overlay's
  std::string kernel_args;       // what the image needs; the VM adds its own
  // Who runs an exec that names no user ("agent" in the debian image).
  std::string default_user = "root";
  // That user's uid and gid in the guest (image.json default_uid and
  // default_gid; 0 for root): whose files in a mount are the owner's. None
  // for an image built before they were recorded.
  std::optional<std::uint32_t> default_uid;
  std::optional<std::uint32_t> default_gid;
};

class ImageStore {
 public:
  explicit ImageStore(std::filesystem::path dir) : dir_(std::move(dir)) {}

  // kInvalidArgument for a malformed name, kNotFound for an unknown image or
  // one whose files are missing, so a half-built image is never booted.
  Result<Image> Find(const std::string& name) const;

  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_;
};

// Identity of an image's files (name, size and mtime of kernel, initrd and
// rootfs): changes when the image is rebuilt or replaced.
Result<std::string> ImageIdentity(const Image& image);

}  // namespace agentvm
