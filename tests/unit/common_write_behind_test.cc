#include "common/write_behind.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

namespace agentvm {
namespace {

using namespace std::chrono_literals;

// A guest that takes a moment per piece, recording what it was asked.
struct SlowGuest {
  struct Piece {
    std::uint64_t offset;
    bool truncate;
    std::size_t size;
  };
  std::vector<Piece> pieces;
  int in_flight = 0;
  int most_in_flight = 0;
  std::optional<std::uint64_t> fail_at;

  WriteBehind::WriteFn Fn() {
    return [this](std::string piece, std::uint64_t offset, bool truncate) -> boost::asio::awaitable<Result<void>> {
      pieces.push_back({offset, truncate, piece.size()});
      most_in_flight = std::max(most_in_flight, ++in_flight);
      boost::asio::steady_timer pause(co_await boost::asio::this_coro::executor, 2ms);
      co_await pause.async_wait(boost::asio::use_awaitable);
      --in_flight;
      if (fail_at && offset == *fail_at) co_return Fail(ErrorCode::kInternal, "No space left on device");
      co_return Result<void>{};
    };
  }
};

// Writes `count` pieces of `size` bytes, then finishes: the first failure.
boost::asio::awaitable<Result<void>> Upload(SlowGuest& guest, int count, std::size_t size) {
  auto executor = co_await boost::asio::this_coro::executor;
  WriteBehind writer(executor, guest.Fn(), "test upload");
  for (int i = 0; i < count; ++i) {
    auto written = co_await writer.Write(std::string(size, 'x'));
    if (!written) co_return written;
  }
  co_return co_await writer.Finish();
}

Result<void> RunUpload(SlowGuest& guest, int count, std::size_t size) {
  boost::asio::io_context io;
  auto result = boost::asio::co_spawn(io, Upload(guest, count, size), boost::asio::use_future);
  io.run();
  return result.get();
}

TEST(WriteBehindTest, PiecesGoInOrderTwoAtATimeAndOnlyTheFirstTruncates) {
  SlowGuest guest;
  ASSERT_TRUE(RunUpload(guest, 6, 100).has_value());
  ASSERT_EQ(guest.pieces.size(), 6u);
  for (std::size_t i = 0; i < guest.pieces.size(); ++i) {
    EXPECT_EQ(guest.pieces[i].offset, i * 100);
    EXPECT_EQ(guest.pieces[i].truncate, i == 0);
  }
  EXPECT_EQ(guest.most_in_flight, 2) << "the next piece goes while the last is written, never more";
}

TEST(WriteBehindTest, AnEmptyFileIsOneTruncatingPiece) {
  SlowGuest guest;
  ASSERT_TRUE(RunUpload(guest, 1, 0).has_value());
  ASSERT_EQ(guest.pieces.size(), 1u);
  EXPECT_TRUE(guest.pieces[0].truncate);
}

TEST(WriteBehindTest, AFailedPieceStopsTheUploadWithItsError) {
  SlowGuest guest;
  guest.fail_at = 100;
  Result<void> outcome = RunUpload(guest, 6, 100);
  ASSERT_FALSE(outcome.has_value());
  EXPECT_EQ(outcome.error().message, "No space left on device");
  EXPECT_LE(guest.pieces.size(), 3u) << "at most the piece behind the failed one was sent after it";
}

}  // namespace
}  // namespace agentvm
