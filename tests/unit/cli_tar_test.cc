// The tar stream of `agentvm cp -r`: a host tree written and extracted back
// is the same tree (modes, mtimes, symlinks, empty directories, long names),
// GNU tar reads what we write and we read what it writes, and a hostile
// archive never touches anything outside the target.
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "cli/tar_extractor.h"
#include "cli/tar_format.h"
#include "cli/tar_writer.h"

namespace agentvm::cli::tar {
namespace {

namespace fs = std::filesystem;

class Scratch {
 public:
  Scratch() {
    char name[] = "/tmp/avm-tar-XXXXXX";
    path_ = ::mkdtemp(name);
  }
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

void WriteText(const fs::path& path, const std::string& text, mode_t mode = 0644) {
  std::ofstream(path) << text;
  ::chmod(path.c_str(), mode);
}

std::string ReadText(const fs::path& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string Archive(const fs::path& dir) {
  std::string out;
  auto stats = WriteTree(dir, [&](std::string_view bytes) -> Result<void> {
    out.append(bytes);
    return {};
  });
  EXPECT_TRUE(stats) << stats.error().message;
  return out;
}

// Feeds the archive in awkward pieces, as a network would.
Result<void> Extract(const std::string& archive, const fs::path& dir, Extractor& extractor) {
  if (auto ok = extractor.Open(dir); !ok) return ok;
  for (std::size_t at = 0; at < archive.size(); at += 777) {
    if (auto ok = extractor.Feed(std::string_view(archive).substr(at, 777)); !ok) return ok;
  }
  return extractor.Finish();
}

Result<void> Extract(const std::string& archive, const fs::path& dir) {
  Extractor extractor;
  return Extract(archive, dir, extractor);
}

std::string Entry(Header header, std::string_view data = {}) {
  header.size = data.size();
  std::string out = EncodeHeader(header);
  out.append(data);
  out.append(PaddingFor(data.size()), '\0');
  return out;
}

std::string End() { return std::string(2 * kBlockBytes, '\0'); }

TEST(TarTest, TreeRoundTripsWithModesTimesSymlinksAndEmptyDirectories) {
  Scratch src, dst;
  const fs::path& s = src.path();
  fs::create_directories(s / "sub/deeper");
  fs::create_directories(s / "empty");
  WriteText(s / "a.txt", "alpha\n");
  WriteText(s / "run.sh", "#!/bin/sh\n", 0750);
  WriteText(s / "sub/deeper/secret", "x", 0600);
  std::string big(3 << 20, 'b');
  big[12345] = '\0';
  WriteText(s / "sub/big.bin", big);
  std::string long_name(150, 'n');
  WriteText(s / "sub" / long_name, "long");
  fs::create_symlink("a.txt", s / "link");
  fs::create_symlink("/etc/" + std::string(120, 't'), s / "far");
  ::chmod((s / "sub/deeper").c_str(), 0700);
  timespec old[2] = {{0, UTIME_OMIT}, {1000000000, 0}};
  ::utimensat(AT_FDCWD, (s / "a.txt").c_str(), old, 0);
  ::utimensat(AT_FDCWD, (s / "empty").c_str(), old, 0);

  ASSERT_TRUE(Extract(Archive(s), dst.path()));
  const fs::path& d = dst.path();
  EXPECT_EQ(ReadText(d / "a.txt"), "alpha\n");
  EXPECT_EQ(ReadText(d / "sub/big.bin"), big);
  EXPECT_EQ(ReadText(d / "sub" / long_name), "long");
  EXPECT_EQ(fs::read_symlink(d / "link"), "a.txt");
  EXPECT_EQ(fs::read_symlink(d / "far"), "/etc/" + std::string(120, 't'));
  EXPECT_TRUE(fs::is_directory(d / "empty"));
  EXPECT_TRUE(fs::is_empty(d / "empty"));
  struct stat st {};
  ASSERT_EQ(::stat((d / "run.sh").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  ASSERT_EQ(::stat((d / "sub/deeper/secret").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  ASSERT_EQ(::stat((d / "sub/deeper").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  ASSERT_EQ(::stat((d / "a.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_mtime, 1000000000);
  ASSERT_EQ(::stat((d / "empty").c_str(), &st), 0);
  EXPECT_EQ(st.st_mtime, 1000000000);
}

TEST(TarTest, GnuTarReadsOursAndWeReadGnuTars) {
  Scratch src, dst, gnu_out;
  fs::create_directories(src.path() / "d" / std::string(120, 'x'));
  WriteText(src.path() / "d" / std::string(120, 'x') / "f", "deep", 0640);
  fs::create_symlink("d", src.path() / "l");
  // Ours -> GNU tar.
  fs::path ours = gnu_out.path() / "ours.tar";
  std::ofstream(ours) << Archive(src.path());
  std::string extract = "tar -xf " + ours.string() + " -C " + dst.path().string();
  ASSERT_EQ(std::system(extract.c_str()), 0);
  EXPECT_EQ(ReadText(dst.path() / "d" / std::string(120, 'x') / "f"), "deep");
  EXPECT_EQ(fs::read_symlink(dst.path() / "l"), "d");
  // GNU tar (with its ./ names and long-name records) -> ours.
  fs::path theirs = gnu_out.path() / "theirs.tar";
  std::string create = "tar -cf " + theirs.string() + " -C " + src.path().string() + " .";
  ASSERT_EQ(std::system(create.c_str()), 0);
  Scratch back;
  ASSERT_TRUE(Extract(ReadText(theirs), back.path()));
  EXPECT_EQ(ReadText(back.path() / "d" / std::string(120, 'x') / "f"), "deep");
  struct stat st {};
  ASSERT_EQ(::stat((back.path() / "d" / std::string(120, 'x') / "f").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
}

TEST(TarTest, HostileEntriesNeverLeaveTheTarget) {
  Scratch outside, dst;
  WriteText(outside.path() / "victim", "untouched");
  const std::string victim_dir = outside.path().string();

  // A symlink out, then a file written "through" it: the symlink stays a
  // symlink and the write is refused.
  std::string through = Entry({.name = "out", .link = victim_dir, .type = EntryType::kSymlink}) +
                        Entry({.name = "out/victim", .mode = 0644}, "pwned") + End();
  auto refused = Extract(through, dst.path());
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("symlink"), std::string::npos) << refused.error().message;
  EXPECT_EQ(fs::read_symlink(dst.path() / "out"), victim_dir);
  EXPECT_EQ(ReadText(outside.path() / "victim"), "untouched");

  // A file entry named like an existing symlink replaces the symlink, not
  // the file it points to.
  Scratch dst2;
  std::string replace = Entry({.name = "out", .link = victim_dir + "/victim", .type = EntryType::kSymlink}) +
                        Entry({.name = "out", .mode = 0644}, "mine") + End();
  ASSERT_TRUE(Extract(replace, dst2.path()));
  EXPECT_EQ(ReadText(dst2.path() / "out"), "mine");
  EXPECT_FALSE(fs::is_symlink(dst2.path() / "out"));
  EXPECT_EQ(ReadText(outside.path() / "victim"), "untouched");

  for (std::string name : {"../escape", "a/../../escape", "/abs/escape"}) {
    Scratch d;
    auto bad = Extract(Entry({.name = name, .mode = 0644}, "x") + End(), d.path());
    EXPECT_FALSE(bad) << name;
    EXPECT_FALSE(fs::exists(d.path().parent_path() / "escape"));
  }
  // A long name (GNU record) with .. is refused the same way.
  Scratch d3;
  EXPECT_FALSE(Extract(Entry({.name = std::string(120, 'a') + "/../../x", .mode = 0644}, "x") + End(), d3.path()));
}

TEST(TarTest, SetuidIsDroppedAndDevicesAreSkipped) {
  Scratch dst;
  std::string archive = Entry({.name = "suid", .mode = 04755}, "#!/bin/sh\n") +
                        Entry({.name = "null", .type = EntryType::kCharDevice, .mode = 0666}) +
                        Entry({.name = "fifo", .type = EntryType::kFifo, .mode = 0666}) + End();
  Extractor extractor;
  ASSERT_TRUE(Extract(archive, dst.path(), extractor));
  struct stat st {};
  ASSERT_EQ(::stat((dst.path() / "suid").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  EXPECT_FALSE(fs::exists(dst.path() / "null"));
  EXPECT_FALSE(fs::exists(dst.path() / "fifo"));
  EXPECT_EQ(extractor.stats().skipped, (std::vector<std::string>{"null", "fifo"}));
}

TEST(TarTest, CutShortOrGarbageIsAnError) {
  Scratch dst;
  std::string archive = Entry({.name = "f", .mode = 0644}, std::string(2000, 'f'));
  auto cut = Extract(archive.substr(0, 1000), dst.path());
  ASSERT_FALSE(cut);
  EXPECT_NE(cut.error().message.find("ended early"), std::string::npos);
  Scratch dst2;
  auto garbage = Extract(std::string(kBlockBytes, 'g'), dst2.path());
  ASSERT_FALSE(garbage);
  EXPECT_NE(garbage.error().message.find("checksum"), std::string::npos);
}

}  // namespace
}  // namespace agentvm::cli::tar
