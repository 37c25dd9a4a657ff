#include "supervisor/api/api_server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <filesystem>

#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "common/logging.h"
#include "common/spawn.h"
#include "common/unique_fd.h"
#include "supervisor/api/http_connection.h"
#include "supervisor/api/server_context.h"

namespace agentvm::api {
namespace {

namespace asio = boost::asio;
using asio::local::stream_protocol;

// True when something accepts connections on the unix socket at `path`.
bool SocketAnswers(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return false;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  path.copy(address.sun_path, sizeof(address.sun_path) - 1);
  return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
}

Result<void> CreateParentDirectory(const std::string& path) {
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (parent.empty()) return {};
  std::error_code ec;
  if (std::filesystem::is_directory(parent, ec)) return {};
  // Component by component, so every directory created gets 0755 (less the
  // umask) rather than whatever create_directories would pick.
  std::filesystem::path partial;
  for (const auto& part : parent) {
    partial /= part;
    if (::mkdir(partial.c_str(), 0755) != 0 && errno != EEXIST) {
      return Fail(ErrnoError("create directory " + partial.string(), errno));
    }
  }
  return {};
}

}  // namespace

struct ApiServer::State {
  State(asio::io_context& io, VmService& service, ApiOptions options)
      : context(std::make_shared<ServerContext>(service, std::move(options))), acceptor(io) {}

  std::shared_ptr<ServerContext> context;
  stream_protocol::acceptor acceptor;
  bool listening = false;
  ino_t socket_inode = 0;  // of the socket file Start created
};

namespace {

asio::awaitable<void> AcceptLoop(std::shared_ptr<ApiServer::State> state);

}  // namespace

ApiServer::ApiServer(asio::io_context& io, VmService& service, ApiOptions options)
    : io_(io), state_(std::make_shared<State>(io, service, std::move(options))) {}

ApiServer::~ApiServer() { Stop(); }

const ApiOptions& ApiServer::options() const { return state_->context->options; }

Result<void> ApiServer::Start() {
  auto log = Logger("api");
  const std::string& path = options().socket_path;
  if (state_->listening) return Fail(ErrorCode::kConflict, "API server already started");
  if (path.empty() || path.size() >= sizeof(sockaddr_un{}.sun_path)) {
    return Fail(ErrorCode::kInvalidArgument,
                "socket path must be 1-" + std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) +
                    " bytes: " + path);
  }
  if (auto ok = CreateParentDirectory(path); !ok) return Fail(ok.error());
  if (!options().audit_log_path.empty() && !state_->context->audit) {
    auto audit = AuditLog::Open(options().audit_log_path);
    if (!audit) return Fail(audit.error());
    state_->context->audit = std::move(*audit);
    state_->context->service.Events().SetRecorder(
        [audit = state_->context->audit](const Event& event) { audit->WriteEvent(event); });
  }

  struct stat existing{};
  if (::lstat(path.c_str(), &existing) == 0) {
    if (!S_ISSOCK(existing.st_mode)) {
      return Fail(ErrorCode::kConflict, path + " exists and is not a socket; not replacing it");
    }
    if (SocketAnswers(path)) {
      return Fail(ErrorCode::kConflict,
                  "another server (agentvmd?) is already listening on " + path);
    }
    log->info("removing stale socket {}", path);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return Fail(ErrnoError("remove stale socket " + path, errno));
    }
  }

  boost::system::error_code ec;
  auto& acceptor = state_->acceptor;
  acceptor.open(stream_protocol(), ec);
  if (!ec) acceptor.bind(stream_protocol::endpoint(path), ec);
  if (ec) {
    acceptor.close();
    return Fail(ErrnoError("bind " + path, ec.value()));
  }
  // Nobody can connect between bind and listen (connect gets ECONNREFUSED),
  // so the socket is never reachable with the umask's looser mode.
  struct stat created{};
  if (::chmod(path.c_str(), options().socket_mode) != 0 || ::lstat(path.c_str(), &created) != 0) {
    int err = errno;
    acceptor.close();
    ::unlink(path.c_str());
    return Fail(ErrnoError("set mode of " + path, err));
  }
  acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    acceptor.close();
    ::unlink(path.c_str());
    return Fail(ErrnoError("listen on " + path, ec.value()));
  }
  state_->socket_inode = created.st_ino;
  state_->listening = true;
  SpawnDetached(io_, AcceptLoop(state_), "accept loop", log);
  log->info("listening on {} (mode {:o})", path, options().socket_mode);
  return {};
}

void ApiServer::Stop() {
  if (!state_->listening) return;
  state_->listening = false;
  boost::system::error_code ignored;
  state_->acceptor.close(ignored);
  // Copied first: a close callback may (later) erase its own entry.
  auto connections = state_->context->connections;
  for (auto& [number, close] : connections) close();

  // Leave alone a socket that is no longer ours (another daemon replaced it).
  const std::string& path = options().socket_path;
  struct stat current{};
  if (::lstat(path.c_str(), &current) == 0 && current.st_ino == state_->socket_inode) {
    ::unlink(path.c_str());
  }
  Logger("api")->info("stopped listening on {}", path);
}

namespace {

// Closes the connection that has waited longest for a request header, to
// make room; false when every open connection is serving a request. Its
// entries go now, so the count is right before its coroutine ends.
bool EvictLongestWaiting(ServerContext& context) {
  auto oldest = std::min_element(context.waiting_since.begin(), context.waiting_since.end(),
                                 [](const auto& a, const auto& b) { return a.second < b.second; });
  if (oldest == context.waiting_since.end()) return false;
  const std::uint64_t number = oldest->first;
  context.waiting_since.erase(oldest);
  auto entry = context.connections.find(number);
  if (entry == context.connections.end()) return true;  // ending already
  std::function<void()> close = std::move(entry->second);
  context.connections.erase(entry);
  Logger("api")->info("connections full: closing connection {}, idle the longest", number);
  close();
  return true;
}

asio::awaitable<void> AcceptLoop(std::shared_ptr<ApiServer::State> state) {
  auto log = Logger("api");
  auto executor = co_await asio::this_coro::executor;
  while (state->listening) {
    boost::system::error_code ec;
    stream_protocol::socket socket =
        co_await state->acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (!state->listening || ec == asio::error::operation_aborted) break;
    if (ec) {
      // EMFILE and friends: back off instead of spinning on the error.
      log->warn("accept failed: {}", ec.message());
      asio::steady_timer pause(executor, std::chrono::milliseconds(100));
      co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    if (state->context->connections.size() >= state->context->options.max_connections &&
        !EvictLongestWaiting(*state->context)) {
      log->warn("refusing a connection: {} already open, each serving a request",
                state->context->connections.size());
      continue;  // `socket` closes here
    }
    SpawnConnection(state->context, std::move(socket));
  }
}

}  // namespace

}  // namespace agentvm::api
