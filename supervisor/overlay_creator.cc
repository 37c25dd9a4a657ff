#include "supervisor/overlay_creator.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <string_view>
#include <vector>

#include "common/unique_fd.h"
#include "supervisor/child_process.h"

namespace agentvm {
namespace {

// Every qcow2 file starts with these four bytes.
constexpr std::string_view kQcow2Magic("QFI\xfb", 4);

Result<std::string> ReadSmallFile(const std::string& path, std::size_t max_bytes) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Fail(ErrnoError("open " + path, errno));
  std::string bytes;
  char buffer[64 * 1024];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Fail(ErrnoError("read " + path, errno));
    if (n == 0) return bytes;
    bytes.append(buffer, static_cast<std::size_t>(n));
    if (bytes.size() > max_bytes) return Fail(ErrorCode::kInternal, path + " is larger than an empty overlay");
  }
}

Result<void> WriteNewFile(const std::string& path, std::string_view bytes) {
  // 0644 like qemu-img; the jail hands the file to the VM's uid.
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (!fd) return Fail(ErrnoError("create " + path, errno));
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd.get(), bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::unlink(path.c_str());
      return Fail(ErrnoError("write " + path, err));
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return {};
}

}  // namespace

OverlayCreator::OverlayCreator(boost::asio::any_io_executor executor, std::string qemu_img_binary)
    : executor_(std::move(executor)), qemu_img_binary_(std::move(qemu_img_binary)) {}

boost::asio::awaitable<Result<void>> OverlayCreator::Create(std::string backing, std::uint64_t size_bytes,
                                                            std::string overlay, std::string log_path) {
  if (size_bytes == 0) co_return Fail(ErrorCode::kInternal, "overlay over " + backing + ": no disk size");
  if (const Template* known = Find(backing, size_bytes)) co_return WriteNewFile(overlay, known->bytes);

  // -u: qemu-img does not open the backing file, so it runs unjailed yet
  // reads nothing but its arguments (docs/security.md). Built before
  // co_await: g++ 12 miscompiles braced lists inside co_await.
  std::vector<std::string> argv = {qemu_img_binary_, "create", "-q", "-f", "qcow2", "-F", "qcow2", "-u",
                                   "-b", backing, overlay, std::to_string(size_bytes)};
  ++qemu_img_runs_;
  auto made = co_await RunToCompletion(executor_, std::move(argv), std::move(log_path));
  if (!made) co_return made;
  // The overlay is made; a template that cannot be kept only costs the
  // next overlay another qemu-img.
  if (auto bytes = ReadSmallFile(overlay, kMaxTemplateBytes); bytes && bytes->starts_with(kQcow2Magic)) {
    Remember(Template{.backing = std::move(backing), .size_bytes = size_bytes, .bytes = std::move(*bytes)});
  }
  co_return Result<void>{};
}

const OverlayCreator::Template* OverlayCreator::Find(const std::string& backing, std::uint64_t size_bytes) const {
  for (const Template& known : templates_) {
    if (known.backing == backing && known.size_bytes == size_bytes) return &known;
  }
  return nullptr;
}

void OverlayCreator::Remember(Template made) {
  if (Find(made.backing, made.size_bytes)) return;  // two first overlays made at once
  templates_.push_front(std::move(made));
  if (templates_.size() > kMaxTemplates) templates_.pop_back();
}

}  // namespace agentvm
