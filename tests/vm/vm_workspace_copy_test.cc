// Directories and large files in and out of a VM with `agentvm cp`: a tree
// of 2,000 files (a symlink, an empty directory, several modes) copied in
// and back out is identical; a 200 MB file streams both ways while
// agentvmd's memory stays bounded.
#include <sys/stat.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include <gtest/gtest.h>

#include "tests/support/daemon.h"

namespace agentvm::testing {
namespace {

namespace fs = std::filesystem;

// Every entry of a tree with its type and mode, one line each, sorted.
std::string Listing(const fs::path& dir) {
  auto listed = RunCommand({"sh", "-c", "cd '" + dir.string() + "' && find . -printf '%p %y %m\\n' | sort"});
  EXPECT_EQ(listed.exit_code, 0) << listed.err;
  return listed.out;
}

TEST(VmWorkspaceCopyTest, TwoThousandFilesInAndBackOutAreIdentical) {
  Daemon daemon;
  TempDir local("avm-cpr");
  const fs::path src = local.path() / "src";
  const fs::path back = local.path() / "back";
  const mode_t modes[] = {0644, 0755, 0600, 0640};
  for (int d = 0; d < 20; ++d) {
    fs::path dir = src / ("dir" + std::to_string(d)) / "sub";
    fs::create_directories(dir);
    for (int f = 0; f < 100; ++f) {
      fs::path file = dir / ("file" + std::to_string(f) + ".txt");
      std::ofstream(file) << "dir " << d << " file " << f << "\n" << std::string(f * 37, 'x');
      ::chmod(file.c_str(), modes[f % 4]);
    }
  }
  fs::create_directories(src / "empty");
  fs::create_symlink("dir0/sub/file0.txt", src / "link");
  fs::create_symlink("/etc/passwd", src / "absolute-link");
  fs::path long_dir = src / std::string(80, 'l') / std::string(80, 'm');
  fs::create_directories(long_dir);
  std::ofstream(long_dir / "deep.txt") << "a name over 100 bytes long";
  ::chmod((src / "dir3").c_str(), 0750);

  const std::string id = daemon.CreateVm();
  ASSERT_FALSE(id.empty());
  auto in = daemon.Cli({"cp", "-r", src.string(), id + ":/root/tree"});
  ASSERT_EQ(in.exit_code, 0) << in.err << daemon.Log();
  auto count = daemon.Cli({"exec", id, "--", "sh", "-c", "find /root/tree -type f | wc -l; readlink /root/tree/link"});
  EXPECT_EQ(count.out, "2001\ndir0/sub/file0.txt\n");

  auto out = daemon.Cli({"cp", "-r", id + ":/root/tree", back.string()});
  ASSERT_EQ(out.exit_code, 0) << out.err << daemon.Log();
  auto diff = RunCommand({"diff", "-r", "--no-dereference", src.string(), back.string()});
  EXPECT_EQ(diff.exit_code, 0) << diff.out << diff.err;
  EXPECT_EQ(Listing(back), Listing(src));
  EXPECT_EQ(fs::read_symlink(back / "absolute-link"), "/etc/passwd");

  // A missing directory in the VM is a clear error, and leaves nothing here.
  auto missing = daemon.Cli({"cp", "-r", id + ":/no/such/dir", (local.path() / "nothing").string()});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.err.find("No such file"), std::string::npos) << missing.err;
  EXPECT_FALSE(fs::exists(local.path() / "nothing"));
  EXPECT_EQ(daemon.Cli({"rm", "-f", id}).exit_code, 0);
}

TEST(VmWorkspaceCopyTest, A200MBFileStreamsBothWaysInBoundedMemory) {
  Daemon daemon;
  TempDir local("avm-cpbig");
  const fs::path in_file = local.path() / "in.bin";
  const fs::path out_file = local.path() / "out.bin";
  constexpr std::size_t kSize = 200u << 20;
  {
    std::ofstream file(in_file, std::ios::binary);
    std::mt19937_64 random(7);
    std::string block(1 << 20, '\0');
    for (std::size_t written = 0; written < kSize; written += block.size()) {
      for (std::size_t i = 0; i < block.size(); i += 8) {
        std::uint64_t value = random();
        std::memcpy(block.data() + i, &value, 8);
      }
      file << block;
    }
  }
  const std::string id = daemon.CreateVm();
  ASSERT_FALSE(id.empty());
  const long before = daemon.PeakRssKib();

  auto in = daemon.Cli({"cp", in_file.string(), id + ":/root/big.bin"});
  ASSERT_EQ(in.exit_code, 0) << in.err << daemon.Log();
  auto size = daemon.Cli({"exec", id, "--", "sh", "-c", "wc -c < /root/big.bin"});
  EXPECT_EQ(size.out, std::to_string(kSize) + "\n");
  auto out = daemon.Cli({"cp", id + ":/root/big.bin", out_file.string()});
  ASSERT_EQ(out.exit_code, 0) << out.err << daemon.Log();
  EXPECT_EQ(RunCommand({"cmp", in_file.string(), out_file.string()}).exit_code, 0);

  const long after = daemon.PeakRssKib();
  std::printf("agentvmd peak RSS: %ld KiB before, %ld KiB after copying 200 MB in and out\n", before, after);
  ASSERT_GT(before, 0);
  // The file is never held whole: what the copy may add is a few chunks.
  EXPECT_LT(after - before, 48 * 1024);
  EXPECT_EQ(daemon.Cli({"rm", "-f", id}).exit_code, 0);
}

}  // namespace
}  // namespace agentvm::testing
