// A test's client of a streamed NDJSON response (GET /v1/events,
// GET /v1/vms/{id}/egress), over the in-process server's socket.
#pragma once

#include <string>
#include <vector>

#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

namespace agentvm::api::testing {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using nlohmann::json;

// One GET of an NDJSON stream whose body is read as it streams in.
class NdjsonStream {
 public:
  NdjsonStream(const std::string& socket_path, const std::string& target) : socket_(io_) {
    socket_.connect(asio::local::stream_protocol::endpoint(socket_path));
    http::request<http::empty_body> request{http::verb::get, target, 11};
    request.set(http::field::host, "localhost");
    http::write(socket_, request);
    parser_.body_limit(1 << 20);
    http::read_header(socket_, buffer_, parser_);
  }

  int status() const { return parser_.get().result_int(); }
  std::string content_type() const { return std::string(parser_.get()[http::field::content_type]); }

  // The next `n` lines of the body (fewer if it ends first), parsed.
  std::vector<json> Lines(std::size_t n) {
    std::vector<json> lines;
    while (lines.size() < n) {
      std::string& body = parser_.get().body();
      auto newline = body.find('\n');
      if (newline != std::string::npos) {
        lines.push_back(json::parse(body.substr(0, newline)));
        body.erase(0, newline + 1);
        continue;
      }
      if (parser_.is_done()) break;
      beast::error_code ec;
      http::read_some(socket_, buffer_, parser_, ec);
      if (ec) break;
    }
    return lines;
  }

  // The rest of the body once the server ends it.
  std::string Rest() {
    beast::error_code ec;
    while (!parser_.is_done() && !ec) http::read_some(socket_, buffer_, parser_, ec);
    return parser_.get().body();
  }

 private:
  asio::io_context io_;
  asio::local::stream_protocol::socket socket_;
  beast::flat_buffer buffer_;
  http::response_parser<http::string_body> parser_;
};

}  // namespace agentvm::api::testing
