#include "netsetup/dns_forwarder.h"

#include <array>
#include <deque>
#include <fstream>
#include <map>
#include <optional>
#include <span>
#include <random>
#include <sstream>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "common/logging.h"
#include "common/spawn.h"
#include "netsetup/dns_message.h"
#include "netsetup/dns_policy.h"

namespace agentvm {
namespace asio = boost::asio;
using asio::ip::tcp;
using asio::ip::udp;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::size_t kHeaderSize = 12;
constexpr std::size_t kMaxQuerySize = 4096;
// Upstream may answer up to the EDNS size a guest advertised; take any datagram.
constexpr std::size_t kMaxReplySize = 65535;
// Every 16-bit id is then free or outstanding, so picking a free one ends.
constexpr std::size_t kMaxTableSize = 65536;

std::shared_ptr<spdlog::logger> Log() {
  static auto logger = Logger("dns");
  return logger;
}

bool IsQuery(const std::uint8_t* data, std::size_t size) {
  return size >= kHeaderSize && size <= kMaxQuerySize && (data[2] & 0x80) == 0;
}

bool IsResponse(const std::uint8_t* data, std::size_t size) {
  return size >= kHeaderSize && (data[2] & 0x80) != 0;
}

std::uint16_t IdOf(const std::uint8_t* data) {
  return static_cast<std::uint16_t>((data[0] << 8) | data[1]);
}

void SetId(std::uint8_t* data, std::uint16_t id) {
  data[0] = static_cast<std::uint8_t>(id >> 8);
  data[1] = static_cast<std::uint8_t>(id & 0xff);
}

bool Aborted(const boost::system::error_code& ec) {
  return ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor;
}

}  // namespace

struct DnsForwarder::State : std::enable_shared_from_this<State> {
  struct Query {
    std::uint16_t guest_id;
    udp::endpoint guest;
    Clock::time_point deadline;
    std::uint64_t serial;  // tells a reused id from the query that expired
    // A domain-filtered VM's query: its question, and the query up to the
    // end of it (guest's id) to build a SERVFAIL from.
    std::optional<net::DnsQuestion> question;
    std::vector<std::uint8_t> head;
  };
  struct Expiry {
    Clock::time_point deadline;
    std::uint16_t id;
    std::uint64_t serial;
  };
  class TcpSession;

  State(asio::any_io_executor executor, DnsForwarderOptions options)
      : options(std::move(options)),
        listen_socket(executor),
        upstream_socket(executor),
        acceptor(executor),
        expiry_timer(executor, Clock::time_point::max()),
        rng(std::random_device{}()) {}

  asio::any_io_executor executor() { return listen_socket.get_executor(); }

  DnsForwarderOptions options;
  udp::socket listen_socket;
  udp::socket upstream_socket;
  tcp::acceptor acceptor;
  asio::steady_timer expiry_timer;
  std::mt19937 rng;
  bool running = false;
  bool stopped = false;
  bool table_full_logged = false;

  std::unordered_map<std::uint16_t, Query> outstanding;
  // Outstanding queries per guest address (the per-VM quota).
  std::map<asio::ip::address, std::size_t> per_guest;
  // In deadline order (one fixed timeout), possibly naming answered queries.
  std::deque<Expiry> expiries;
  std::uint64_t next_serial = 0;
  std::unordered_set<TcpSession*> tcp_sessions;
  DnsForwarderStats stats;

  Result<void> Bind();
  void Close();
  void OnQuery(std::uint8_t* data, std::size_t size, const udp::endpoint& guest);
  void OnReply(std::uint8_t* data, std::size_t size, const udp::endpoint& from);
  void ExpireDue();
  std::uint16_t FreshId();
  // Takes the query out of `outstanding` and its guest's count.
  Query Finish(std::unordered_map<std::uint16_t, Query>::iterator it);
  const net::DomainList* ListFor(const asio::ip::address& guest) const;
  // Empty when a domain-filtered VM may ask `question`, else the verdict.
  static std::string Screen(const net::DomainList& list, const net::DnsQuestion& question);
  void Refuse(std::span<const std::uint8_t> query, const net::DnsQuestion& question, const udp::endpoint& guest,
              const std::string& verdict);
  // Learns the answer's addresses; false when the guest must get SERVFAIL.
  bool LearnFrom(std::span<const std::uint8_t> reply, const Query& query);
  void Send(std::span<const std::uint8_t> data, const udp::endpoint& guest);

  static asio::awaitable<void> GuestLoop(std::shared_ptr<State> self);
  static asio::awaitable<void> UpstreamLoop(std::shared_ptr<State> self);
  static asio::awaitable<void> ExpiryLoop(std::shared_ptr<State> self);
  static asio::awaitable<void> AcceptLoop(std::shared_ptr<State> self);
};

// One guest TCP connection relayed over its own upstream connection.
class DnsForwarder::State::TcpSession : public std::enable_shared_from_this<TcpSession> {
 public:
  TcpSession(std::shared_ptr<State> state, tcp::socket guest)
      : state_(std::move(state)),
        guest_(std::move(guest)),
        upstream_(state_->executor()),
        idle_(state_->executor()),
        last_activity_(Clock::now()) {
    state_->tcp_sessions.insert(this);
  }
  ~TcpSession() { state_->tcp_sessions.erase(this); }

  void Start() {
    SpawnDetached(state_->executor(), Watchdog(shared_from_this()), "tcp relay watchdog", Log());
    SpawnDetached(state_->executor(), GuestToUpstream(shared_from_this()), "tcp relay to upstream", Log());
  }

  void Close() {
    if (closed_) return;
    closed_ = true;
    boost::system::error_code ec;
    guest_.close(ec);
    upstream_.close(ec);
    idle_.cancel();
  }

 private:
  void Touch() { last_activity_ = Clock::now(); }

  static asio::awaitable<void> Watchdog(std::shared_ptr<TcpSession> self) {
    const auto idle = self->state_->options.tcp_idle_timeout;
    while (!self->closed_) {
      self->idle_.expires_at(self->last_activity_ + idle);
      boost::system::error_code ec;
      co_await self->idle_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      if (!self->closed_ && Clock::now() >= self->last_activity_ + idle) {
        Log()->debug("tcp relay idle for {} ms; closing", idle.count());
        self->Close();
      }
    }
  }

  static asio::awaitable<void> GuestToUpstream(std::shared_ptr<TcpSession> self) {
    boost::system::error_code ec;
    const tcp::endpoint upstream(self->state_->options.upstream.address(),
                                 self->state_->options.upstream.port());
    co_await self->upstream_.async_connect(upstream, asio::redirect_error(asio::use_awaitable, ec));
    if (ec || self->closed_) {
      if (ec && !self->closed_) Log()->warn("tcp relay: connect to upstream: {}", ec.message());
      self->Close();
      co_return;
    }
    self->Touch();
    SpawnDetached(self->state_->executor(), UpstreamToGuest(self), "tcp relay to guest", Log());

    std::vector<std::uint8_t> frame(2 + kMaxQuerySize);
    while (!self->closed_) {
      co_await asio::async_read(self->guest_, asio::buffer(frame.data(), 2),
                                asio::redirect_error(asio::use_awaitable, ec));
      if (ec == asio::error::eof && !self->closed_) {
        // The guest is done asking; let the answers still on their way arrive.
        self->upstream_.shutdown(tcp::socket::shutdown_send, ec);
        co_return;
      }
      if (ec) break;
      const std::size_t size = (std::size_t{frame[0]} << 8) | frame[1];
      if (size < kHeaderSize || size > kMaxQuerySize) break;
      co_await asio::async_read(self->guest_, asio::buffer(frame.data() + 2, size),
                                asio::redirect_error(asio::use_awaitable, ec));
      if (ec || !IsQuery(frame.data() + 2, size) || !net::ParseStandardQuery({frame.data() + 2, size})) break;
      self->Touch();
      co_await asio::async_write(self->upstream_, asio::buffer(frame.data(), 2 + size),
                                 asio::redirect_error(asio::use_awaitable, ec));
      if (ec) break;
    }
    self->Close();
  }

  static asio::awaitable<void> UpstreamToGuest(std::shared_ptr<TcpSession> self) {
    std::vector<std::uint8_t> buffer(16384);
    boost::system::error_code ec;
    while (!self->closed_) {
      const std::size_t n = co_await self->upstream_.async_read_some(
          asio::buffer(buffer), asio::redirect_error(asio::use_awaitable, ec));
      if (ec) break;
      self->Touch();
      co_await asio::async_write(self->guest_, asio::buffer(buffer.data(), n),
                                 asio::redirect_error(asio::use_awaitable, ec));
      if (ec) break;
    }
    self->Close();
  }

  std::shared_ptr<State> state_;
  tcp::socket guest_;
  tcp::socket upstream_;
  asio::steady_timer idle_;
  Clock::time_point last_activity_;
  bool closed_ = false;
};

Result<void> DnsForwarder::State::Bind() {
  boost::system::error_code ec;
  const auto fail = [&](const std::string& what) {
    Close();
    return Fail(ErrorCode::kUnavailable, "dns forwarder: " + what + ": " + ec.message());
  };
  listen_socket.open(options.listen.protocol(), ec);
  if (!ec) listen_socket.bind(options.listen, ec);
  if (ec) return fail("bind udp " + options.listen.address().to_string() + ":" +
                      std::to_string(options.listen.port()));
  // Replies are sent without waiting: a datagram the kernel cannot take now
  // is dropped, as the network would.
  listen_socket.non_blocking(true, ec);

  upstream_socket.open(options.upstream.protocol(), ec);
  if (!ec) upstream_socket.non_blocking(true, ec);
  if (ec) return fail("open upstream socket");

  if (options.serve_tcp) {
    const tcp::endpoint endpoint(options.listen.address(), listen_socket.local_endpoint().port());
    acceptor.open(endpoint.protocol(), ec);
    if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acceptor.bind(endpoint, ec);
    if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return fail("listen tcp " + endpoint.address().to_string() + ":" + std::to_string(endpoint.port()));
  }
  return {};
}

void DnsForwarder::State::Close() {
  boost::system::error_code ec;
  listen_socket.close(ec);
  upstream_socket.close(ec);
  acceptor.close(ec);
  expiry_timer.cancel();
  std::vector<TcpSession*> sessions(tcp_sessions.begin(), tcp_sessions.end());
  for (TcpSession* session : sessions) session->Close();
  outstanding.clear();
  per_guest.clear();
  expiries.clear();
}

DnsForwarder::State::Query DnsForwarder::State::Finish(std::unordered_map<std::uint16_t, Query>::iterator it) {
  Query query = std::move(it->second);
  outstanding.erase(it);
  auto count = per_guest.find(query.guest.address());
  if (count != per_guest.end() && --count->second == 0) per_guest.erase(count);
  return query;
}

std::uint16_t DnsForwarder::State::FreshId() {
  // Random rather than sequential: with the random source port it is what
  // keeps an off-path host from forging upstream's answers.
  std::uniform_int_distribution<int> any(0, 0xffff);
  for (;;) {
    const auto id = static_cast<std::uint16_t>(any(rng));
    if (!outstanding.contains(id)) return id;
  }
}

const net::DomainList* DnsForwarder::State::ListFor(const asio::ip::address& guest) const {
  if (options.policy == nullptr || !guest.is_v4()) return nullptr;
  return options.policy->ListFor(net::Ipv4Address{guest.to_v4().to_uint()});
}

std::string DnsForwarder::State::Screen(const net::DomainList& list, const net::DnsQuestion& question) {
  if (!list.Admits(question.name)) return "refused";
  constexpr std::uint16_t kClassIn = 1;
  switch (question.type) {
    case net::kDnsTypeA:
    case net::kDnsTypeAaaa:
    case net::kDnsTypeCname:
    case net::kDnsTypeHttps:
    case net::kDnsTypeSvcb:
      return question.klass == kClassIn ? "" : "refused-type";
    default: return "refused-type";
  }
}

void DnsForwarder::State::Send(std::span<const std::uint8_t> data, const udp::endpoint& guest) {
  boost::system::error_code ec;
  listen_socket.send_to(asio::buffer(data.data(), data.size()), guest, 0, ec);
  if (ec) {
    ++stats.dropped;
    Log()->debug("send to {}: {}", guest.address().to_string(), ec.message());
    return;
  }
  ++stats.answered;
}

void DnsForwarder::State::Refuse(std::span<const std::uint8_t> query, const net::DnsQuestion& question,
                                 const udp::endpoint& guest, const std::string& verdict) {
  ++stats.refused;
  const net::Ipv4Address vm{guest.address().to_v4().to_uint()};
  Log()->debug("{}: {} {} {}", vm.ToString(), verdict, net::DnsTypeName(question.type), question.name);
  options.policy->Record({.vm = vm, .name = question.name, .type = question.type, .verdict = verdict, .answers = {}});
  const std::vector<std::uint8_t> reply = net::ErrorReply(query, question, net::kDnsRcodeRefused);
  Send(reply, guest);
}

bool DnsForwarder::State::LearnFrom(std::span<const std::uint8_t> reply, const Query& query) {
  const net::DnsQuestion& question = *query.question;
  const net::Ipv4Address vm{query.guest.address().to_v4().to_uint()};
  net::DnsQuestionRecord record{.vm = vm, .name = question.name, .type = question.type, .verdict = "allowed",
                                .answers = net::AnswerAddresses(reply, question.name)};
  bool ok = true;
  if (!record.answers.empty()) {
    ok = options.policy->Learn(vm, question.name, record.answers).has_value();
    if (ok) {
      ++stats.learned;
    } else {
      record.verdict = "failed";
    }
  }
  options.policy->Record(record);
  return ok;
}

void DnsForwarder::State::OnQuery(std::uint8_t* data, std::size_t size, const udp::endpoint& guest) {
  if (!IsQuery(data, size)) {
    ++stats.dropped;
    Log()->debug("dropped a malformed query ({} bytes) from {}", size, guest.address().to_string());
    return;
  }
  std::optional<net::DnsQuestion> question = net::ParseStandardQuery({data, size});
  if (!question) {
    ++stats.dropped;  // not one standard question: nothing to answer, nothing to relay
    Log()->debug("dropped a non-standard query from {}", guest.address().to_string());
    return;
  }
  const net::DomainList* list = ListFor(guest.address());
  if (list == nullptr) {
    question.reset();  // relayed as it is, nothing to learn
  } else {
    if (!question->plain) {
      ++stats.dropped;
      return;
    }
    if (std::string verdict = Screen(*list, *question); !verdict.empty()) {
      Refuse({data, size}, *question, guest, verdict);
      return;
    }
  }
  if (outstanding.size() >= std::min(options.max_outstanding, kMaxTableSize)) {
    ++stats.dropped;
    if (!table_full_logged) {
      Log()->warn("{} queries waiting for upstream; dropping new ones", outstanding.size());
      table_full_logged = true;
    }
    return;
  }
  if (per_guest[guest.address()] >= options.max_outstanding_per_guest) {
    ++stats.dropped;
    Log()->debug("{} has {} queries waiting; dropping", guest.address().to_string(), per_guest[guest.address()]);
    return;
  }
  const std::uint16_t guest_id = IdOf(data);
  const std::uint16_t id = FreshId();
  SetId(data, id);
  boost::system::error_code ec;
  upstream_socket.send_to(asio::buffer(data, size), options.upstream, 0, ec);
  if (ec) {
    ++stats.dropped;
    Log()->debug("send to upstream: {}", ec.message());
    return;
  }
  ++stats.forwarded;
  const auto deadline = Clock::now() + options.query_timeout;
  const std::uint64_t serial = next_serial++;
  Query query{guest_id, guest, deadline, serial, std::move(question), {}};
  if (query.question) {
    query.head.assign(data, data + query.question->end);
    SetId(query.head.data(), guest_id);
  }
  outstanding[id] = std::move(query);
  ++per_guest[guest.address()];
  expiries.push_back(Expiry{deadline, id, serial});
  if (expiries.size() == 1) expiry_timer.cancel();  // the loop sleeps until a deadline exists
}

void DnsForwarder::State::OnReply(std::uint8_t* data, std::size_t size, const udp::endpoint& from) {
  if (from != options.upstream || !IsResponse(data, size)) {
    ++stats.dropped;
    Log()->debug("dropped a datagram ({} bytes) from {} on the upstream socket", size,
                 from.address().to_string());
    return;
  }
  auto it = outstanding.find(IdOf(data));
  if (it == outstanding.end()) {
    ++stats.dropped;  // late (expired) or never asked
    return;
  }
  SetId(data, it->second.guest_id);
  const Query query = Finish(it);
  if (outstanding.size() < options.max_outstanding) table_full_logged = false;
  if (query.question && options.policy != nullptr && !LearnFrom({data, size}, query)) {
    const std::vector<std::uint8_t> failure = net::ErrorReply(query.head, *query.question, net::kDnsRcodeServfail);
    Send(failure, query.guest);
    return;
  }
  Send({data, size}, query.guest);
}

void DnsForwarder::State::ExpireDue() {
  const auto now = Clock::now();
  while (!expiries.empty() && expiries.front().deadline <= now) {
    const Expiry expiry = expiries.front();
    expiries.pop_front();
    auto it = outstanding.find(expiry.id);
    if (it == outstanding.end() || it->second.serial != expiry.serial) continue;  // answered
    Finish(it);
    ++stats.expired;
  }
  if (outstanding.size() < options.max_outstanding) table_full_logged = false;
}

asio::awaitable<void> DnsForwarder::State::GuestLoop(std::shared_ptr<State> self) {
  std::vector<std::uint8_t> buffer(kMaxQuerySize + 1);  // a datagram filling it is too long
  udp::endpoint from;
  while (self->running) {
    boost::system::error_code ec;
    const std::size_t n = co_await self->listen_socket.async_receive_from(
        asio::buffer(buffer), from, asio::redirect_error(asio::use_awaitable, ec));
    if (!self->running || Aborted(ec)) break;
    if (ec) {
      Log()->debug("receive from guests: {}", ec.message());
      continue;
    }
    self->OnQuery(buffer.data(), n, from);
  }
}

asio::awaitable<void> DnsForwarder::State::UpstreamLoop(std::shared_ptr<State> self) {
  std::vector<std::uint8_t> buffer(kMaxReplySize);
  udp::endpoint from;
  while (self->running) {
    boost::system::error_code ec;
    const std::size_t n = co_await self->upstream_socket.async_receive_from(
        asio::buffer(buffer), from, asio::redirect_error(asio::use_awaitable, ec));
    if (!self->running || Aborted(ec)) break;
    if (ec) {
      Log()->debug("receive from upstream: {}", ec.message());
      continue;
    }
    self->OnReply(buffer.data(), n, from);
  }
}

asio::awaitable<void> DnsForwarder::State::ExpiryLoop(std::shared_ptr<State> self) {
  while (self->running) {
    self->ExpireDue();
    if (self->expiries.empty()) {
      self->expiry_timer.expires_at(Clock::time_point::max());
    } else {
      self->expiry_timer.expires_at(self->expiries.front().deadline);
    }
    boost::system::error_code ec;
    co_await self->expiry_timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

asio::awaitable<void> DnsForwarder::State::AcceptLoop(std::shared_ptr<State> self) {
  while (self->running) {
    boost::system::error_code ec;
    tcp::socket guest = co_await self->acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (!self->running || Aborted(ec)) break;
    if (ec) {
      Log()->debug("accept: {}", ec.message());
      continue;
    }
    const auto peer = guest.remote_endpoint(ec);
    if (ec || self->ListFor(peer.address()) != nullptr) {
      // A domain-filtered VM's queries are screened over UDP only.
      Log()->debug("closing a tcp connection from {}", ec ? std::string("?") : peer.address().to_string());
      guest.close(ec);
      continue;
    }
    if (self->tcp_sessions.size() >= self->options.max_tcp_connections) {
      Log()->debug("{} tcp relays open; refusing another", self->tcp_sessions.size());
      guest.close(ec);
      continue;
    }
    ++self->stats.tcp_connections;
    auto session = std::make_shared<TcpSession>(self, std::move(guest));
    session->Start();
  }
}

DnsForwarder::DnsForwarder(asio::any_io_executor executor, DnsForwarderOptions options)
    : state_(std::make_shared<State>(std::move(executor), std::move(options))) {}

DnsForwarder::~DnsForwarder() { Stop(); }

Result<void> DnsForwarder::Start() {
  if (state_->running || state_->stopped) return Fail(ErrorCode::kConflict, "dns forwarder: Start may be called once");
  if (auto bound = state_->Bind(); !bound) return bound;
  state_->running = true;
  const auto executor = state_->executor();
  SpawnDetached(executor, State::GuestLoop(state_), "guest loop", Log());
  SpawnDetached(executor, State::UpstreamLoop(state_), "upstream loop", Log());
  SpawnDetached(executor, State::ExpiryLoop(state_), "expiry loop", Log());
  if (state_->options.serve_tcp) SpawnDetached(executor, State::AcceptLoop(state_), "tcp accept loop", Log());
  const auto local = local_endpoint();
  Log()->info("forwarding {}:{} (udp{}) to {}:{}", local.address().to_string(), local.port(),
              state_->options.serve_tcp ? ", tcp" : "", state_->options.upstream.address().to_string(),
              state_->options.upstream.port());
  return {};
}

void DnsForwarder::Stop() {
  if (!state_->running) return;
  state_->running = false;
  state_->stopped = true;
  state_->Close();
  const auto& s = state_->stats;
  Log()->info("stopped: {} forwarded, {} answered, {} dropped, {} expired, {} tcp connections", s.forwarded,
              s.answered, s.dropped, s.expired, s.tcp_connections);
}

udp::endpoint DnsForwarder::local_endpoint() const {
  boost::system::error_code ec;
  auto endpoint = state_->listen_socket.local_endpoint(ec);
  return ec ? udp::endpoint() : endpoint;
}

DnsForwarderStats DnsForwarder::stats() const { return state_->stats; }

std::size_t DnsForwarder::outstanding() const { return state_->outstanding.size(); }

std::size_t DnsForwarder::tcp_connections_open() const { return state_->tcp_sessions.size(); }

Result<udp::endpoint> UpstreamFromResolvConf(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) return Fail(ErrorCode::kNotFound, "cannot read " + path.string());
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string keyword;
    std::string address;
    if (!(words >> keyword >> address) || keyword != "nameserver") continue;
    boost::system::error_code ec;
    const auto parsed = asio::ip::make_address(address, ec);
    if (ec) {
      Log()->warn("{}: ignoring nameserver '{}'", path.string(), address);
      continue;
    }
    return udp::endpoint(parsed, 53);
  }
  return Fail(ErrorCode::kNotFound, path.string() + " names no nameserver");
}

}  // namespace agentvm
