#include "guest-images/agent/agent.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <exception>

#include "guest-images/agent/configure.h"
#include "guest-images/agent/file_ops.h"
#include "guest-images/agent/log.h"
#include "protocol/messages.h"

namespace agentvm::guest {
namespace {

// Backpressure: a process's pipes are not read while this much of its
// output waits for the host, nor any process's while all output together
// exceeds kTotalHighWater.
constexpr std::size_t kStreamHighWater = 1024 * 1024;
constexpr std::size_t kTotalHighWater = 8 * 1024 * 1024;
// Requests are read while replies queue up, or the two ends could deadlock
// writing to each other; only a host that never reads its replies gets
// stopped, here, so the guest does not run out of memory.
constexpr std::size_t kInputPauseBytes = 64 * 1024 * 1024;
constexpr std::size_t kChannelReadChunk = 256 * 1024;
// Read until EAGAIN, up to this much per wakeup. Not "until a short read":
// a virtio-serial read returns one 4 KiB port buffer at most, so that cost a
// poll round per 4 KiB of stdin or file data, and under TCG the rounds were
// the bottleneck. Not more: the programs' pipes need their turn, and stdin
// acks go out between wakeups, so a quarter of the host's stdin window keeps
// the host sending while the agent works.
constexpr std::size_t kChannelBytesPerWakeup = protocol::kStdinWindowBytes / 4;
constexpr std::chrono::milliseconds kShutdownFlushGrace{2000};
constexpr std::chrono::milliseconds kWaitpidPollInterval{20};
// How long a "started" frame may wait for its program's exit or output to
// go out with: most commands an agent runs end within it, and a program
// that runs longer learns nothing from a "started" 10 ms late.
constexpr std::chrono::milliseconds kStartedHold{10};

}  // namespace

struct Agent::PollTarget {
  enum Kind { kConnection, kListener, kStdin, kStdout, kStderr, kPidfd } kind;
  std::uint32_t stream = 0;
  int fd = -1;
};

Agent::Agent(Channel channel, AgentOptions options)
    : channel_(std::move(channel)), options_(std::move(options)) {
  // ReadChannel() reads until EAGAIN: a blocking channel would hang it.
  if (channel_.kind != ChannelKind::kVsock && channel_.fd) {
    int flags = ::fcntl(channel_.fd.get(), F_GETFL);
    if (flags >= 0) ::fcntl(channel_.fd.get(), F_SETFL, flags | O_NONBLOCK);
  }
  if (!options_.exec_cgroup_root.empty()) cgroups_ = ExecCgroups::Open(options_.exec_cgroup_root);
}

Agent::~Agent() = default;

int Agent::connection_fd() const {
  return channel_.kind == ChannelKind::kVsock ? connection_.get() : channel_.fd.get();
}

int Agent::Run() {
  // Writes to a closed channel or to a program's closed stdin must fail with
  // EPIPE, not kill the agent.
  ::signal(SIGPIPE, SIG_IGN);
  LogInfo("serving on " + channel_.description);
  std::vector<pollfd> fds;
  std::vector<PollTarget> targets;
  while (!stop_) {
    Clock::time_point now = Clock::now();
    if (shutdown_at_ && (output_.empty() || now >= *shutdown_at_)) {
      sessions_.clear();
      if (!options_.power_off) {
        LogInfo("shutdown requested: exiting");
        return 0;
      }
      LogInfo("shutdown requested: powering off");
      options_.power_off();
      LogWarn("power-off did not happen");
      return 1;
    }
    BuildPollSet(&fds, &targets);
    int n = ::poll(fds.data(), fds.size(), PollTimeoutMs(now));
    if (n < 0) {
      if (errno == EINTR) continue;
      LogWarn(std::string("poll: ") + std::strerror(errno));
      return 1;
    }
    for (std::size_t i = 0; i < fds.size() && !stop_; ++i) {
      if (fds[i].revents != 0) HandleEvent(targets[i], fds[i].revents);
    }
    ExpireTimeouts(Clock::now());
    AcknowledgeStdin();
    ReapAndFinish();
    SweepCgroups(Clock::now());
    FlushOutput();
  }
  return exit_status_;
}

void Agent::BuildPollSet(std::vector<pollfd>* fds, std::vector<PollTarget>* targets) {
  fds->clear();
  targets->clear();
  auto add = [&](int fd, short events, PollTarget target) {
    if (fd < 0) return;
    fds->push_back(pollfd{fd, events, 0});
    target.fd = fd;
    targets->push_back(target);
  };
  if (serial_retry_at_ && Clock::now() >= *serial_retry_at_) serial_retry_at_.reset();
  if (!serial_retry_at_) {
    short events = 0;
    if (!shutdown_at_ && output_.total_bytes() < kInputPauseBytes) events |= POLLIN;
    if (!output_.empty() && !HoldingOutput()) events |= POLLOUT;
    add(connection_fd(), events, {PollTarget::kConnection});
  }
  if (channel_.kind == ChannelKind::kVsock) add(channel_.fd.get(), POLLIN, {PollTarget::kListener});
  bool read_pipes = output_.total_bytes() < kTotalHighWater;
  for (const auto& [stream, session] : sessions_) {
    add(session->stdin_fd_to_poll(), POLLOUT, {PollTarget::kStdin, stream});
    if (read_pipes && output_.stream_bytes(stream) < kStreamHighWater) {
      add(session->stdout_fd_to_poll(), POLLIN, {PollTarget::kStdout, stream});
      add(session->stderr_fd_to_poll(), POLLIN, {PollTarget::kStderr, stream});
    }
    add(session->pidfd(), POLLIN, {PollTarget::kPidfd, stream});
  }
}

int Agent::PollTimeoutMs(Clock::time_point now) const {
  std::optional<Clock::time_point> wake = serial_retry_at_;
  auto earliest = [&wake](Clock::time_point t) {
    if (!wake || t < *wake) wake = t;
  };
  if (shutdown_at_) earliest(*shutdown_at_);
  if (next_cgroup_sweep_) earliest(*next_cgroup_sweep_);
  if (HoldingOutput()) earliest(*hold_until_);
  for (const auto& [stream, session] : sessions_) {
    if (auto deadline = session->deadline()) earliest(*deadline);
    if (!session->has_pidfd() && !session->reaped()) earliest(now + kWaitpidPollInterval);
  }
  if (!wake) return -1;
  if (*wake <= now) return 0;
  // Round up: waking a little early would just spin until the deadline.
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(*wake - now).count();
  return static_cast<int>(std::min<std::int64_t>(ms, 60 * 60 * 1000));
}

void Agent::HandleEvent(const PollTarget& target, short revents) {
  switch (target.kind) {
    case PollTarget::kConnection:
      if (target.fd != connection_fd()) return;
      if (revents & POLLNVAL) {
        LogWarn("channel fd is not open");
        stop_ = true;
        exit_status_ = 1;
        return;
      }
      if (channel_.kind == ChannelKind::kSerial && (revents & POLLHUP)) {
        Disconnected("host end of the port is not connected");
        return;
      }
      if (revents & (POLLIN | POLLHUP | POLLERR)) ReadChannel();
      if ((revents & POLLOUT) && target.fd == connection_fd()) FlushOutput();
      return;
    case PollTarget::kListener:
      AcceptConnection();
      return;
    default:
      break;
  }
  auto it = sessions_.find(target.stream);
  if (it == sessions_.end()) return;
  ExecSession& session = *it->second;
  switch (target.kind) {
    case PollTarget::kStdin:
      if (target.fd == session.stdin_fd_to_poll()) session.WriteStdin();
      break;
    case PollTarget::kStdout:
      if (target.fd == session.stdout_fd_to_poll())
        session.ReadOutput(protocol::OutputStream::kStdout, &output_);
      break;
    case PollTarget::kStderr:
      if (target.fd == session.stderr_fd_to_poll())
        session.ReadOutput(protocol::OutputStream::kStderr, &output_);
      break;
    case PollTarget::kPidfd:
      if (target.fd == session.pidfd()) session.TryReap();
      break;
    default:
      break;
  }
}

void Agent::ReadChannel() {
  char buf[kChannelReadChunk];
  for (std::size_t taken = 0; taken < kChannelBytesPerWakeup;) {
    int fd = connection_fd();
    if (fd < 0) return;
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      Disconnected(std::string("read: ") + std::strerror(errno));
      return;
    }
    if (n == 0) {
      Disconnected("the host closed the channel");
      return;
    }
    taken += static_cast<std::size_t>(n);
    if (!host_connected_) {
      host_connected_ = true;
      LogInfo("host connected");
    }
    decoder_.Feed(std::string_view(buf, static_cast<std::size_t>(n)));
    while (auto event = decoder_.Next()) {
      if (auto* error = std::get_if<protocol::DecodeError>(&*event)) {
        LogWarn("refused a frame: " + error->message);
        Reply(protocol::ErrorFrame(0, error->code, error->message));
      } else {
        HandleFrame(std::move(std::get<protocol::Frame>(*event)));
      }
    }
  }
}

void Agent::AcceptConnection() {
  UniqueFd fd(::accept4(channel_.fd.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
  if (!fd) {
    if (errno != EAGAIN && errno != EINTR) LogWarn(std::string("accept: ") + std::strerror(errno));
    return;
  }
  if (connection_) Disconnected("replaced by a new connection");
  connection_ = std::move(fd);
  host_connected_ = true;
  LogInfo("host connected");
}

void Agent::FlushOutput() {
  if (hold_until_) {
    if (HoldingOutput() && Clock::now() < *hold_until_) return;
    hold_until_.reset();
  }
  int fd = connection_fd();
  if (fd < 0 || output_.empty() || serial_retry_at_) return;
  if (int err = output_.Flush(fd); err != 0) {
    Disconnected(std::string("write: ") + std::strerror(err));
  }
}

void Agent::Disconnected(const std::string& why) {
  if (host_connected_) LogInfo("host disconnected: " + why);
  host_connected_ = false;
  decoder_.Reset();
  output_.Clear();
  hold_until_.reset();
  // Stream ids belong to the old connection; a new host could reuse them.
  sessions_.clear();
  switch (channel_.kind) {
    case ChannelKind::kFd:
      stop_ = true;
      exit_status_ = 0;
      break;
    case ChannelKind::kSerial:
      serial_retry_at_ = Clock::now() + options_.serial_backoff;
      break;
    case ChannelKind::kVsock:
      connection_.reset();
      break;
  }
  if (shutdown_at_) shutdown_at_ = Clock::now();
}

void Agent::Reply(const protocol::Frame& frame) { output_.Push(frame); }

void Agent::HandleFrame(protocol::Frame frame) {
  namespace p = protocol;
  if (shutdown_at_) return;
  if (VerboseLogging()) LogDebug("request " + frame.type + " on stream " + std::to_string(frame.stream));
  try {
    const std::string& type = frame.type;
    if (type == p::kTypePing) {
      Reply(p::PongFrame(frame.stream));
    } else if (type == p::kTypeExec) {
      HandleExec(frame);
    } else if (type == p::kTypeStdin || type == p::kTypeSignal || type == p::kTypeOutputAck ||
               type == p::kTypeResize) {
      auto it = sessions_.find(frame.stream);
      if (it == sessions_.end()) return;  // the process already ended: too late, not wrong
      if (type == p::kTypeStdin) {
        auto chunk = p::ParseStdin(frame);
        if (!chunk) return LogWarn(chunk.error());
        it->second->AddStdin(chunk->data, chunk->eof);
      } else if (type == p::kTypeOutputAck) {
        auto bytes = p::ParseAck(frame);
        if (!bytes) return LogWarn(bytes.error());
        it->second->AddOutputCredit(*bytes);
      } else if (type == p::kTypeResize) {
        auto size = p::ParseResize(frame);
        if (!size) return LogWarn(size.error());
        it->second->Resize(*size);
      } else {
        auto signal = p::ParseSignal(frame);
        if (!signal) return LogWarn(signal.error());
        it->second->Signal(*signal);
      }
    } else if (type == p::kTypeWriteFile) {
      auto request = p::ParseWriteFile(frame);
      if (!request)
        return Reply(p::ErrorFrame(frame.stream, p::kCodeInvalidArgument, request.error()));
      auto size = WriteFileChunk(*request, frame.payload);
      if (!size) return Reply(p::ErrorFrame(frame.stream, size.error().code, size.error().message));
      Reply(p::OkFrame(frame.stream, *size));
    } else if (type == p::kTypeReadFile) {
      auto request = p::ParseReadFile(frame);
      if (!request)
        return Reply(p::ErrorFrame(frame.stream, p::kCodeInvalidArgument, request.error()));
      auto chunk = ReadFileChunk(*request, OutputQueue::kHeadroom);
      if (!chunk)
        return Reply(p::ErrorFrame(frame.stream, chunk.error().code, chunk.error().message));
      output_.PushWithHeadroom(p::DataFrame(frame.stream, chunk->info, {}), std::move(chunk->bytes));
    } else if (type == p::kTypeShutdown) {
      HandleShutdown(frame);
    } else if (type == p::kTypeConfigure) {
      HandleConfigure(frame);
    } else if (type == p::kTypeError) {
      // Never answered: two peers must not trade errors about errors.
      auto error = p::ParseError(frame);
      LogWarn("host reported an error on stream " + std::to_string(frame.stream) + ": " +
              (error ? error->code + ": " + error->message : error.error()));
    } else {
      Reply(p::ErrorFrame(frame.stream, p::kCodeInvalidArgument,
                          "unknown request type \"" + type + "\""));
    }
  } catch (const std::exception& e) {
    Reply(p::ErrorFrame(frame.stream, p::kCodeInternal, frame.type + ": " + e.what()));
  }
}

void Agent::HandleExec(const protocol::Frame& frame) {
  namespace p = protocol;
  if (frame.stream == 0) {
    return Reply(p::ErrorFrame(0, p::kCodeInvalidArgument, "exec: stream 0 is the connection's"));
  }
  if (sessions_.contains(frame.stream)) {
    return Reply(p::ErrorFrame(frame.stream, p::kCodeConflict,
                               "exec: stream " + std::to_string(frame.stream) + " is in use"));
  }
  auto start = p::ParseExec(frame);
  if (!start) return Reply(p::ErrorFrame(frame.stream, p::kCodeInvalidArgument, start.error()));
  // An exec whose host streams stdin, or a terminal, is interactive: its
  // host waits for "started" to begin sending, so it goes at once.
  const bool interactive = !start->stdin_eof || start->request.tty;
  auto session = ExecSession::Start(frame.stream, std::move(*start), cgroups_.get());
  if (!session) {
    LogDebug("stream " + std::to_string(frame.stream) + ": " + session.error().message);
    return Reply(p::ErrorFrame(frame.stream, session.error().code, session.error().message));
  }
  const bool hold = !interactive && (output_.empty() || HoldingOutput());
  Reply(p::StartedFrame(frame.stream, (*session)->pid()));
  if (hold) {
    if (!hold_until_) hold_until_ = Clock::now() + kStartedHold;
    held_bytes_ = output_.total_bytes();
  }
  sessions_.emplace(frame.stream, std::move(*session));
}

void Agent::HandleShutdown(const protocol::Frame& frame) {
  LogInfo("shutdown requested by the host");
  Reply(protocol::OkFrame(frame.stream));
  shutdown_at_ = Clock::now() + kShutdownFlushGrace;
}

void Agent::HandleConfigure(const protocol::Frame& frame) {
  namespace p = protocol;
  // Checked before anything is applied: a bad field changes nothing.
  auto identity = p::ParseConfigure(frame);
  if (!identity)
    return Reply(p::ErrorFrame(frame.stream, p::kCodeInvalidArgument, identity.error()));
  if (!options_.system) {
    return Reply(p::ErrorFrame(frame.stream, p::kCodeUnavailable,
                               "configure: system changes are off for this agent (--fd without "
                               "--dry-run-system)"));
  }
  auto applied = ApplyIdentity(*identity, *options_.system);
  if (!applied) {
    LogWarn(applied.error().message);
    return Reply(p::ErrorFrame(frame.stream, applied.error().code, applied.error().message));
  }
  LogInfo("configured:" + std::string(identity->hostname ? " hostname" : "") +
          (identity->time_unix_ns ? " clock" : "") + (identity->entropy.empty() ? "" : " entropy") +
          (identity->network ? " network" : ""));
  Reply(p::OkFrame(frame.stream));
}

void Agent::ExpireTimeouts(Clock::time_point now) {
  for (auto& [stream, session] : sessions_) {
    if (auto deadline = session->deadline(); deadline && now >= *deadline)
      session->KillForTimeout();
  }
}

void Agent::SweepCgroups(Clock::time_point now) {
  // Retired cgroups go once their last background process has; looking
  // once a second is plenty and costs nothing while there are none.
  constexpr auto kSweepInterval = std::chrono::seconds(1);
  if (!cgroups_ || cgroups_->retired() == 0) {
    next_cgroup_sweep_.reset();
    return;
  }
  if (!next_cgroup_sweep_) {
    next_cgroup_sweep_ = now + kSweepInterval;  // Retire() has just tried
  } else if (now >= *next_cgroup_sweep_) {
    cgroups_->RemoveEmpty();
    next_cgroup_sweep_ = now + kSweepInterval;
  }
}

void Agent::AcknowledgeStdin() {
  for (auto& [stream, session] : sessions_) {
    if (std::uint64_t bytes = session->TakeStdinAck()) Reply(protocol::StdinAckFrame(stream, bytes));
  }
}

void Agent::ReapAndFinish() {
  std::vector<std::unique_ptr<ExecSession>> finished;
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    ExecSession& session = *it->second;
    if (!session.has_pidfd()) session.TryReap();
    if (session.reaped() && session.Finish(&output_)) {
      finished.push_back(std::move(it->second));
      it = sessions_.erase(it);
    } else {
      ++it;
    }
  }
  // The exit frames go out before the sessions' cgroups are retired.
  if (!finished.empty()) FlushOutput();
}

}  // namespace agentvm::guest
