#include "common/unique_fd.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include <gtest/gtest.h>

namespace agentvm {
namespace {

bool IsOpen(int fd) { return ::fcntl(fd, F_GETFD) >= 0; }

int OpenDevNull() { return ::open("/dev/null", O_RDONLY | O_CLOEXEC); }

TEST(UniqueFdTest, ClosesWhenTheOwnerGoes) {
  int raw = OpenDevNull();
  ASSERT_GE(raw, 0);
  {
    UniqueFd fd(raw);
    EXPECT_TRUE(fd.valid());
    EXPECT_EQ(fd.get(), raw);
  }
  EXPECT_FALSE(IsOpen(raw));
}

TEST(UniqueFdTest, MovingHandsOverOwnership) {
  UniqueFd first(OpenDevNull());
  const int raw = first.get();
  UniqueFd second = std::move(first);
  EXPECT_FALSE(first);
  EXPECT_EQ(second.get(), raw);

  UniqueFd third(OpenDevNull());
  const int replaced = third.get();
  third = std::move(second);  // the fd it held is closed
  EXPECT_EQ(third.get(), raw);
  EXPECT_FALSE(IsOpen(replaced));
  EXPECT_TRUE(IsOpen(raw));
}

TEST(UniqueFdTest, ReleaseGivesUpWithoutClosingAndResetCloses) {
  UniqueFd fd(OpenDevNull());
  const int raw = fd.release();
  EXPECT_FALSE(fd.valid());
  EXPECT_TRUE(IsOpen(raw));
  fd.reset(raw);
  fd.reset();
  EXPECT_FALSE(IsOpen(raw));
}

TEST(UniqueFdTest, DuplicateIsCloseOnExec) {
  UniqueFd original(::open("/dev/null", O_RDONLY));
  UniqueFd copy = UniqueFd::Duplicate(original.get());
  ASSERT_TRUE(copy);
  EXPECT_NE(copy.get(), original.get());
  EXPECT_EQ(::fcntl(copy.get(), F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);

  errno = 0;
  EXPECT_FALSE(UniqueFd::Duplicate(-1));
  EXPECT_EQ(errno, EBADF);
}

}  // namespace
}  // namespace agentvm
