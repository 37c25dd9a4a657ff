#include "supervisor/image_store.h"

#include <sys/stat.h>

#include <cerrno>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "protocol/exec_types.h"
#include "supervisor/file_digest.h"
#include "supervisor/names.h"

namespace agentvm {
namespace {

// The virtual size from a qcow2 header: the magic "QFI\xfb" at 0, the size
// as a big-endian 64-bit number at 24 (QEMU's docs/interop/qcow2.txt).
Result<std::uint64_t> Qcow2VirtualSize(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  unsigned char header[32] = {};
  if (!in.read(reinterpret_cast<char*>(header), sizeof header)) {
    return Fail(ErrorCode::kInternal, path.string() + " is too short for a qcow2 image");
  }
  if (header[0] != 'Q' || header[1] != 'F' || header[2] != 'I' || header[3] != 0xfb) {
    return Fail(ErrorCode::kInternal, path.string() + " is not a qcow2 image");
  }
  std::uint64_t size = 0;
  for (int i = 24; i < 32; ++i) size = (size << 8) | header[i];
  if (size == 0) return Fail(ErrorCode::kInternal, path.string() + ": a qcow2 image of size 0");
  return size;
}

}  // namespace

Result<Image> ImageStore::Find(const std::string& name) const {
  if (auto valid = ValidateImageName(name); !valid) return Fail(valid.error());
  const std::filesystem::path root = dir_ / name;
  std::ifstream in(root / "image.json");
  if (!in) {
    return Fail(ErrorCode::kNotFound, "unknown image '" + name + "' (no " + (root / "image.json").string() +
                                          "; build it with scripts/build-image " + name + ")");
  }
  nlohmann::json meta = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (meta.is_discarded() || !meta.is_object()) {
    return Fail(ErrorCode::kInternal, "image '" + name + "': image.json is not a JSON object");
  }
  auto file = [&](const char* key, const char* fallback) {
    std::string relative = meta.value(key, fallback);
    // Paths in image.json are relative to the image folder and stay inside it.
    if (relative.empty() || relative.find('/') != std::string::npos) relative = fallback;
    return root / relative;
  };
  Image image;
  try {
    image = Image{
        .name = name,
        .kernel = file("kernel", "vmlinuz"),
        .initrd = file("initrd", "initrd.img"),
        .rootfs = file("rootfs", "rootfs.qcow2"),
        .kernel_args = meta.value("kernel_args", "console=ttyS0 root=/dev/vda rw panic=-1"),
        .default_user = meta.value("default_user", "root"),
    };
  } catch (const nlohmann::json::exception& e) {
    return Fail(ErrorCode::kInternal, "image '" + name + "': image.json: " + e.what());
  }
  // Root's ids need no record; another user's must be in image.json.
  const bool root_default = image.default_user == "root";
  for (auto [key, field] : {std::pair{"default_uid", &image.default_uid}, std::pair{"default_gid", &image.default_gid}}) {
    auto it = meta.find(key);
    if (it == meta.end()) {
      if (root_default) *field = 0;
    } else if (it->is_number_unsigned() && it->get<std::uint64_t>() <= 0x7fffffffULL) {
      *field = it->get<std::uint32_t>();
    } else {
      return Fail(ErrorCode::kInternal, "image '" + name + "': image.json: " + key + " is not a uid/gid number");
    }
  }
  if (!protocol::IsValidExecUser(image.default_user)) {
    return Fail(ErrorCode::kInternal, "image '" + name + "': image.json: default_user \"" + image.default_user +
                                          "\" is not a user name");
  }
  for (const auto& path : {image.kernel, image.initrd, image.rootfs}) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) {
      return Fail(ErrorCode::kNotFound, "image '" + name + "' is incomplete: missing " + path.string());
    }
  }
  auto size = Qcow2VirtualSize(image.rootfs);
  if (!size) return Fail(size.error().Wrap("image '" + name + "'"));
  image.disk_bytes = *size;
  return image;
}


Result<std::string> ImageIdentity(const Image& image) {
  std::string identity = image.name;
  for (const std::filesystem::path& file : {image.kernel, image.initrd, image.rootfs}) {
    struct stat st {};
    if (::stat(file.c_str(), &st) != 0) return Fail(ErrnoError("stat " + file.string(), errno));
    identity += fmt::format("\n{}:{}:{}.{}", file.filename().string(), st.st_size, st.st_mtim.tv_sec,
                            st.st_mtim.tv_nsec);
  }
  return Hex64(Xxh64Of(identity));
}

}  // namespace agentvm
