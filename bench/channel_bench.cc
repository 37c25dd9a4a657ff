#include "bench/channel_bench.h"

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "bench/manual_vm.h"
#include "bench/processes.h"
#include "bench/stats.h"
#include "common/logging.h"
#include "common/write_behind.h"
#include "supervisor/exec_stream.h"

namespace agentvm::bench {
namespace {

namespace asio = boost::asio;
using Local = asio::local::stream_protocol;

struct Options {
  int mib = 50;
  int runs = 3;
  std::string image = "tiny";
  std::string image_dir = "/var/lib/agentvm/images";
};

constexpr char kGuestFile[] = "/tmp/agentvm-channel-bench";
constexpr char kGuestFileIn[] = "/tmp/agentvm-channel-bench-in";
constexpr std::uint64_t kFileChunk = 1 << 20;

std::string Dd(int mib, const std::string& to) {
  return "dd if=/dev/zero bs=1048576 count=" + std::to_string(mib) + " " + to + " 2>/dev/null";
}

// The guest's device node of the raw port, found by its name.
std::string RawPortScript(int mib) {
  return std::string("for p in /sys/class/virtio-ports/*; do [ \"$(cat $p/name)\" = ") + kRawPortName +
         " ] && exec " + Dd(mib, "of=/dev/${p##*/}") + "; done; exit 1";
}

protocol::ExecRequest Sh(const std::string& script) {
  protocol::ExecRequest request;
  request.argv = {"/bin/sh", "-c", script};
  return request;
}

Result<void> Succeeded(const Result<protocol::ExecResult>& result, const char* what) {
  if (!result) return Fail(result.error().Wrap(what));
  if (result->ShellStatus() != 0) {
    return Fail(ErrorCode::kInternal, std::string(what) + ": status " + std::to_string(result->ShellStatus()));
  }
  return {};
}

asio::awaitable<Result<Clock::duration>> Raw(ManualVm& vm, Local::socket& raw, int mib) {
  const std::uint64_t want = static_cast<std::uint64_t>(mib) << 20;
  const auto start = Clock::now();
  protocol::ExecRequest request = Sh(RawPortScript(mib));
  auto stream = co_await vm.agent().StartExec(std::move(request));
  if (!stream) co_return Fail(stream.error().Wrap("raw: start dd"));
  std::vector<char> buffer(1 << 20);
  std::uint64_t got = 0;
  boost::system::error_code ec;
  while (got < want && !ec) {
    got += co_await raw.async_read_some(asio::buffer(buffer), asio::redirect_error(asio::use_awaitable, ec));
  }
  const auto elapsed = Clock::now() - start;
  if (ec) co_return Fail(ErrorCode::kUnavailable, "raw: read: " + ec.message());
  while (co_await (*stream)->NextOutput()) {
  }
  if (auto ok = Succeeded((*stream)->result(), "raw: dd"); !ok) co_return Fail(ok.error());
  co_return elapsed;
}

asio::awaitable<Result<Clock::duration>> ExecOut(ManualVm& vm, int mib) {
  std::uint64_t got = 0;
  protocol::OutputSink count = [&got](protocol::OutputStream, std::string_view data) { got += data.size(); };
  const auto start = Clock::now();
  protocol::ExecRequest request = Sh(Dd(mib, ""));
  auto result = co_await vm.agent().Exec(std::move(request), std::move(count));
  const auto elapsed = Clock::now() - start;
  if (auto ok = Succeeded(result, "exec: dd"); !ok) co_return Fail(ok.error());
  if (got != static_cast<std::uint64_t>(mib) << 20) co_return Fail(ErrorCode::kInternal, "exec: short output");
  co_return elapsed;
}

asio::awaitable<Result<Clock::duration>> FileOut(ManualVm& vm, int mib) {
  const std::uint64_t want = static_cast<std::uint64_t>(mib) << 20;
  const auto start = Clock::now();
  std::uint64_t got = 0;
  while (got < want) {
    auto chunk = co_await vm.agent().ReadFileChunk(kGuestFile, got, kFileChunk);
    if (!chunk) co_return Fail(chunk.error().Wrap("file: read"));
    if (chunk->data.empty()) co_return Fail(ErrorCode::kInternal, "file: short");
    got += chunk->data.size();
  }
  co_return Clock::now() - start;
}

// Streamed stdin into `cat > /dev/null`, as `agentvm exec -i` sends it.
asio::awaitable<Result<Clock::duration>> StdinIn(ManualVm& vm, int mib) {
  protocol::ExecRequest request = Sh("cat > /dev/null");
  request.stream_stdin = true;
  std::string data(static_cast<std::size_t>(mib) << 20, 'x');
  const auto start = Clock::now();
  auto stream = co_await vm.agent().StartExec(std::move(request));
  if (!stream) co_return Fail(stream.error().Wrap("stdin: start cat"));
  auto sent = co_await (*stream)->WriteStdin(std::move(data), /*eof=*/true);
  if (!sent) co_return Fail(sent.error().Wrap("stdin"));
  while (co_await (*stream)->NextOutput()) {
  }
  const auto elapsed = Clock::now() - start;
  if (auto ok = Succeeded((*stream)->result(), "stdin: cat"); !ok) co_return Fail(ok.error());
  co_return elapsed;
}

// A file written 1 MiB at a time, two in flight, as `cp` in does.
asio::awaitable<Result<Clock::duration>> FileIn(ManualVm& vm, int mib) {
  const std::uint64_t want = static_cast<std::uint64_t>(mib) << 20;
  GuestChannel& agent = vm.agent();
  // Not inside the constructor call: g++ 12 miscompiles a co_await in an
  // expression that also holds a lambda.
  auto executor = co_await asio::this_coro::executor;
  WriteBehind writer(
      executor,
      [&agent](std::string piece, std::uint64_t offset, bool truncate) -> asio::awaitable<Result<void>> {
        co_return co_await agent.WriteFileChunk(kGuestFileIn, std::move(piece), offset, truncate, 0644);
      },
      "bench file write");
  const auto start = Clock::now();
  for (std::uint64_t offset = 0; offset < want; offset += kFileChunk) {
    auto written = co_await writer.Write(std::string(kFileChunk, 'y'));
    if (!written) co_return Fail(written.error().Wrap("file: write"));
  }
  auto finished = co_await writer.Finish();
  if (!finished) co_return Fail(finished.error().Wrap("file: write"));
  co_return Clock::now() - start;
}

double MegabytesPerSecond(int mib, double seconds) { return (static_cast<double>(mib) * 1048576 / 1e6) / seconds; }

asio::awaitable<int> Run(Options options) {
  auto image = ImageStore(options.image_dir).Find(options.image);
  if (!image) {
    std::cerr << "agentvm-bench channel: " << image.error().message << "\n";
    co_return 1;
  }
  WorkDir work("/tmp");
  // Named, not built inside co_await (g++ 12 miscompiles that).
  ManualVmOptions vm_options{.image = *image, .root = work.path(), .id = RandomVmId(), .with_raw_port = true};
  auto vm = co_await ManualVm::Boot(std::move(vm_options));
  if (!vm) {
    std::cerr << "agentvm-bench channel: " << vm.error().message << "\n";
    co_return 1;
  }
  Local::socket raw(co_await asio::this_coro::executor);
  boost::system::error_code ec;
  raw.connect(Local::endpoint((*vm)->raw_socket()), ec);
  if (ec) {
    std::cerr << "agentvm-bench channel: connect " << (*vm)->raw_socket() << ": " << ec.message() << "\n";
    co_return 1;
  }
  protocol::ExecRequest make_file = Sh(Dd(options.mib, std::string("of=") + kGuestFile));
  protocol::OutputSink discard = [](protocol::OutputStream, std::string_view) {};
  auto made = co_await (*vm)->agent().Exec(std::move(make_file), std::move(discard));
  if (auto ok = Succeeded(made, "make the file"); !ok) {
    std::cerr << "agentvm-bench channel: " << ok.error().message << "\n";
    co_return 1;
  }

  Samples raw_s, exec_s, file_s, stdin_s, file_in_s;
  for (int i = 0; i <= options.runs; ++i) {  // round 0 is a warm-up
    // One statement per co_await: g++ 12 miscompiles a co_await inside a
    // conditional expression that builds a temporary (a double free).
    auto r = co_await Raw(**vm, raw, options.mib);
    Result<Clock::duration> e = Fail(ErrorCode::kInternal, "not run");
    Result<Clock::duration> f = e, s = e, w = e;
    if (r) e = co_await ExecOut(**vm, options.mib);
    if (e) f = co_await FileOut(**vm, options.mib);
    if (f) s = co_await StdinIn(**vm, options.mib);
    if (s) w = co_await FileIn(**vm, options.mib);
    for (const auto* step : {&r, &e, &f, &s, &w}) {
      if (!*step) {
        std::cerr << "agentvm-bench channel: " << step->error().message << "\n";
        co_return 1;
      }
    }
    if (i == 0) continue;
    raw_s.Add(*r);
    exec_s.Add(*e);
    file_s.Add(*f);
    stdin_s.Add(*s);
    file_in_s.Add(*w);
    std::cerr << "  channel: round " << i << " of " << options.runs << "\n";
  }
  const double raw_mbs = MegabytesPerSecond(options.mib, raw_s.Median());
  const double exec_mbs = MegabytesPerSecond(options.mib, exec_s.Median());
  const double file_mbs = MegabytesPerSecond(options.mib, file_s.Median());
  const double stdin_mbs = MegabytesPerSecond(options.mib, stdin_s.Median());
  const double file_in_mbs = MegabytesPerSecond(options.mib, file_in_s.Median());
  std::printf("| %d MiB through one VM's channel, median of %d | MB/s | ÷ raw |\n|---|---:|---:|\n", options.mib,
              options.runs);
  std::printf("| raw virtio-serial port (`dd` into the port) | %.1f | 1 |\n", raw_mbs);
  std::printf("| exec stdout through our agent (`dd` to stdout) | %.1f | %.2f |\n", exec_mbs, exec_mbs / raw_mbs);
  std::printf("| file read through our agent (1 MiB chunks) | %.1f | %.2f |\n", file_mbs, file_mbs / raw_mbs);
  std::printf("| exec stdin streamed in (`cat > /dev/null`, ExecStream::WriteStdin) | %.1f | %.2f |\n", stdin_mbs,
              stdin_mbs / raw_mbs);
  std::printf("| file write through our agent (1 MiB chunks, two in flight, as `cp` in) | %.1f | %.2f |\n", file_in_mbs,
              file_in_mbs / raw_mbs);
  co_return 0;
}

}  // namespace

int ChannelMain(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--mib" && has_value) {
      options.mib = std::atoi(argv[++i]);
    } else if (arg == "--runs" && has_value) {
      options.runs = std::atoi(argv[++i]);
    } else if (arg == "--image" && has_value) {
      options.image = argv[++i];
    } else if (arg == "--image-dir" && has_value) {
      options.image_dir = argv[++i];
    } else if (arg == "-h" || arg == "--help") {
      std::cout << "agentvm-bench channel [--mib N (50)] [--runs N (3)] [--image NAME] [--image-dir DIR]:\n"
                   "the bare virtio-serial channel out of one VM against exec stdout, a file read, streamed exec\n"
                   "stdin and a file write through our agent, in turns; prints a markdown table\n";
      return 0;
    } else {
      std::cerr << "agentvm-bench channel: unknown argument " << arg << "\n";
      return 2;
    }
  }
  if (options.mib < 1 || options.runs < 1) {
    std::cerr << "agentvm-bench channel: --mib and --runs must be at least 1\n";
    return 2;
  }
  SetLogLevel("warn");
  return RunInterruptibly("agentvm-bench channel", [options] { return Run(options); });
}

}  // namespace agentvm::bench
