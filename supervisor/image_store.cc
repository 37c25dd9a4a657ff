#include "supervisor/image_store.h"

#include <fstream>

#include <nlohmann/json.hpp>

#include "supervisor/names.h"

namespace agentvm {

Result<Image> ImageStore::Find(const std::string& name) const {
  if (!IsValidImageName(name)) {
    return Fail(ErrorCode::kInvalidArgument, "invalid image name (want [a-z0-9][a-z0-9._-]*, at most 64)");
  }
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
    };
  } catch (const nlohmann::json::exception& e) {
    return Fail(ErrorCode::kInternal, "image '" + name + "': image.json: " + e.what());
  }
  for (const auto& path : {image.kernel, image.initrd, image.rootfs}) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) {
      return Fail(ErrorCode::kNotFound, "image '" + name + "' is incomplete: missing " + path.string());
    }
  }
  return image;
}

}  // namespace agentvm
