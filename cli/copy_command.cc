// agentvm cp: a file, or with -r a directory tree, into or out of a VM.
// Everything streams: a file goes up and down in pieces, a tree as a tar
// stream made and taken apart on the fly (cli/tar_*.h), so neither the CLI
// nor agentvmd ever holds a whole file or tree.
#include "cli/copy_command.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <optional>

#include "cli/tar_extractor.h"
#include "cli/tar_writer.h"
#include "cli/write_all.h"
#include "common/unique_fd.h"

namespace agentvm::cli {
namespace {

namespace fs = std::filesystem;

constexpr std::size_t kReadBytes = 1 << 20;

// Hands everything `fd` holds to `send`, a piece at a time.
Result<void> SendFd(int fd, const std::string& what, const ApiClient::BodySink& send) {
  std::string buffer(kReadBytes, '\0');
  while (true) {
    ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Fail(ErrnoError("read " + what, errno));
    if (n == 0) return {};
    if (auto ok = send(std::string_view(buffer.data(), static_cast<std::size_t>(n))); !ok) return ok;
  }
}

ApiClient::BodySink WriteTo(int fd, std::string what) {
  return [fd, what = std::move(what)](std::string_view bytes) -> Result<void> {
    if (!WriteAll(fd, bytes)) return Fail(ErrnoError("write " + what, errno));
    return {};
  };
}

void WarnSkipped(const std::vector<std::string>& skipped, const CliContext& context) {
  for (const std::string& name : skipped) {
    WriteAll(context.err_fd, "agentvm: skipped " + name + ": not a file, directory or symlink\n");
  }
}

Result<void> CopyFileIn(const CopySpec& copy, ApiClient& client, const CliContext& context) {
  if (copy.local == "-") {
    return client.UploadFile(copy.vm_id, copy.guest_path, 0644,
                             [&](const ApiClient::BodySink& send) { return SendFd(context.in_fd, "stdin", send); });
  }
  UniqueFd fd(::open(copy.local.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Fail(ErrnoError(copy.local, errno));
  struct stat st {};
  ::fstat(fd.get(), &st);
  if (S_ISDIR(st.st_mode)) {
    return Fail(ErrorCode::kInvalidArgument, copy.local + " is a directory (cp -r copies directories)");
  }
  return client.UploadFile(copy.vm_id, copy.guest_path, st.st_mode & 07777,
                           [&](const ApiClient::BodySink& send) { return SendFd(fd.get(), copy.local, send); });
}

Result<void> CopyFileOut(const CopySpec& copy, ApiClient& client, const CliContext& context) {
  if (copy.local == "-") return client.DownloadFile(copy.vm_id, copy.guest_path, WriteTo(context.out_fd, "stdout"));
  fs::path target = copy.local;
  std::error_code ec;
  if (fs::is_directory(target, ec)) target /= fs::path(copy.guest_path).filename();
  // Opened at the first byte (or at the end, for an empty file), so a file
  // missing in the VM leaves nothing behind here.
  UniqueFd fd;
  auto open = [&]() -> Result<void> {
    if (fd) return {};
    fd = UniqueFd(::open(target.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666));
    if (!fd) return Fail(ErrnoError(target.string(), errno));
    return {};
  };
  auto done = client.DownloadFile(copy.vm_id, copy.guest_path, [&](std::string_view bytes) -> Result<void> {
    if (auto ok = open(); !ok) return ok;
    if (!WriteAll(fd.get(), bytes)) return Fail(ErrnoError("write " + target.string(), errno));
    return {};
  });
  if (!done) return done;
  if (auto ok = open(); !ok) return ok;
  // Closed by hand: a failing close can be the first sign of a lost write.
  if (::close(fd.release()) != 0) return Fail(ErrnoError("write " + target.string(), errno));
  return {};
}

Result<void> CopyTreeIn(const CopySpec& copy, ApiClient& client, const CliContext& context) {
  if (copy.local == "-") {
    return client.UploadTree(copy.vm_id, copy.guest_path,
                             [&](const ApiClient::BodySink& send) { return SendFd(context.in_fd, "stdin", send); });
  }
  std::optional<tar::WriteStats> stats;
  auto done = client.UploadTree(copy.vm_id, copy.guest_path, [&](const ApiClient::BodySink& send) -> Result<void> {
    auto written = tar::WriteTree(copy.local, send);
    if (!written) return Fail(written.error());
    stats = std::move(*written);
    return {};
  });
  if (stats) WarnSkipped(stats->skipped, context);
  return done;
}

Result<void> CopyTreeOut(const CopySpec& copy, ApiClient& client, const CliContext& context) {
  if (copy.local == "-") return client.DownloadTree(copy.vm_id, copy.guest_path, WriteTo(context.out_fd, "stdout"));
  std::error_code ec;
  const bool made = fs::create_directory(copy.local, ec);
  if (ec) return Fail(ErrnoError(copy.local, ec.value()));
  tar::Extractor extractor;
  auto done = extractor.Open(copy.local);
  if (done) {
    done = client.DownloadTree(copy.vm_id, copy.guest_path,
                               [&](std::string_view bytes) { return extractor.Feed(bytes); });
  }
  if (done) done = extractor.Finish();
  WarnSkipped(extractor.stats().skipped, context);
  // A directory made for a copy that brought nothing is not left behind.
  if (!done && made && fs::is_empty(copy.local, ec)) fs::remove(copy.local, ec);
  return done;
}

}  // namespace

Result<void> RunCopy(const CopySpec& copy, ApiClient& client, const CliContext& context) {
  if (copy.recursive) {
    return copy.to_vm ? CopyTreeIn(copy, client, context) : CopyTreeOut(copy, client, context);
  }
  return copy.to_vm ? CopyFileIn(copy, client, context) : CopyFileOut(copy, client, context);
}

}  // namespace agentvm::cli
