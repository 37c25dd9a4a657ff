// Guest RAM as a copy-on-write template (docs/snapshots.md, "Memory
// templates"). A golden VM runs with its RAM on a memfd it shares with the
// daemon (GuestRamMemfd); after its state is saved, the daemon writes that
// RAM to the golden snapshot's `memory` file (WriteMemoryFile). Before the
// first restore, the store loads the file into a fresh memfd, verifying its
// checksum on the way, and seals it against every change
// (LoadMemoryTemplate). Each clone maps that memfd private: pages it only
// reads stay shared with every other clone; a page it writes becomes its own
// copy. No clone can change the template: the seals refuse write(),
// fallocate(), truncation and shared writable mappings to everyone, root
// included, and cannot be removed.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "common/error.h"
#include "common/unique_fd.h"
#include "supervisor/file_digest.h"

namespace agentvm {

// A sealed memfd holding one template's guest RAM. Immutable; shared by the
// store and every clone being launched from it (QEMU gets its own copy of
// the fd and keeps its mapping after this object is gone).
class MemoryTemplate {
 public:
  MemoryTemplate(UniqueFd fd, std::uint64_t size) : fd_(std::move(fd)), size_(size) {}

  int fd() const { return fd_.get(); }
  std::uint64_t size() const { return size_; }

 private:
  UniqueFd fd_;
  std::uint64_t size_;
};

// An empty memfd of `bytes` for a golden VM's RAM (QEMU maps it shared).
Result<UniqueFd> GuestRamMemfd(std::uint64_t bytes);

// A fresh, unsealed memfd holding a copy of `source` (zero pages left as
// holes), for a clone QEMU maps shared: vhost-user devices (virtiofs) need
// guest RAM that another process can map, which a private mapping of the
// template is not. It shares no pages with the template or other clones.
Result<UniqueFd> SharedCopyOfTemplate(const MemoryTemplate& source);

// Writes the memfd `ram` to a new file `path` (mode 0600), leaving pages of
// zeros as holes: most of a freshly booted guest's RAM was never touched.
// Returns the digest of the file's full contents (holes read as zeros).
Result<FileDigest> WriteMemoryFile(int ram, const std::filesystem::path& path);

// The file at `path` as a sealed memfd, if it is `size` bytes long and its
// XXH64 is `checksum` (FileDigest::checksum); otherwise an error saying
// which. Pages of zeros are left as holes in the memfd too.
Result<std::shared_ptr<const MemoryTemplate>> LoadMemoryTemplate(const std::filesystem::path& path,
                                                                 std::uint64_t size, const std::string& checksum);

}  // namespace agentvm
