// The HTTP/1.1 wire format for the tests: reading responses on the client side, reading
// requests on the server side, and the raw-socket HTTP servers built on TestServer.
// PHP servers, the load generator and JSON are in http_peers.cpp.
#include "tests/integration/http_harness.h"

#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>

namespace tandem::it {

namespace {

constexpr size_t kLargeRequest = 64 * 1024;
constexpr size_t kMaxLine = 1 << 20;
// Raw servers wait this long on a silent peer: far above any test's own deadline.
constexpr milliseconds kServerIdle{120000};

std::optional<milliseconds> timeLeft(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
  if (left.count() <= 0) {
    return std::nullopt;
  }
  return left;
}

std::string trimOws(std::string_view s) {
  size_t begin = s.find_first_not_of(" \t");
  if (begin == std::string_view::npos) {
    return "";
  }
  size_t end = s.find_last_not_of(" \t");
  return std::string(s.substr(begin, end - begin + 1));
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// "Name: value" (without CRLF). Strict: a name with whitespace or without a colon fails.
bool parseHeaderLine(const std::string& line, Headers* out) {
  size_t colon = line.find(':');
  if (colon == std::string::npos || colon == 0) {
    return false;
  }
  std::string name = line.substr(0, colon);
  if (name.find_first_of(" \t") != std::string::npos) {
    return false;
  }
  out->fields.emplace_back(name, trimOws(std::string_view(line).substr(colon + 1)));
  return true;
}

// True when the last coding of every Transfer-Encoding value is "chunked".
bool isChunked(const Headers& h) {
  std::optional<std::string> te;
  for (const auto& [name, value] : h.fields) {
    if (equalsIgnoreCase(name, "Transfer-Encoding")) {
      te = value;
    }
  }
  if (!te) {
    return false;
  }
  size_t comma = te->rfind(',');
  std::string last = trimOws(comma == std::string::npos ? *te : te->substr(comma + 1));
  return equalsIgnoreCase(last, "chunked");
}

std::optional<size_t> contentLength(const Headers& h) {
  std::optional<std::string> value = h.get("Content-Length");
  if (!value || value->empty() || value->find_first_not_of("0123456789") != std::string::npos) {
    return std::nullopt;
  }
  return static_cast<size_t>(std::strtoull(value->c_str(), nullptr, 10));
}

// "1a;ext=x" -> 26; nullopt unless the size is hex digits only.
std::optional<size_t> parseChunkSize(const std::string& line) {
  std::string size = trimOws(line.substr(0, line.find(';')));
  if (size.empty() || size.size() > 15 ||
      size.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) {
    return std::nullopt;
  }
  return static_cast<size_t>(std::strtoull(size.c_str(), nullptr, 16));
}

// The chunks of `body` (without the last, empty chunk), sizes cycling through `sizes`.
std::string chunkEncode(const std::string& body, const std::vector<size_t>& sizes) {
  std::string out;
  char hex[32];
  for (size_t at = 0, i = 0; at < body.size(); ++i) {
    size_t n = std::min(sizes[i % sizes.size()], body.size() - at);
    snprintf(hex, sizeof(hex), "%zx\r\n", n);
    out += hex + body.substr(at, n) + "\r\n";
    at += n;
  }
  return out;
}

const char* reasonPhrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 101:
      return "Switching Protocols";
    case 200:
      return "OK";
    case 204:
      return "No Content";
    case 304:
      return "Not Modified";
    case 404:
      return "Not Found";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Status";
  }
}

// ---------------------------------------------------------------------------------------
// Client side: reads through Socket's exact (peeking) calls, so nothing after the response
// leaves the socket.

std::optional<std::string> crlfLine(Socket& sock, Clock::time_point deadline) {
  std::optional<milliseconds> left = timeLeft(deadline);
  if (!left) {
    return std::nullopt;
  }
  std::optional<std::string> line = sock.readLine(*left);
  if (!line || line->empty() || line->back() != '\r') {
    return std::nullopt;  // timeout, EOF, or a bare LF: tandem must send CRLF
  }
  line->pop_back();
  return line;
}

bool parseStatusLine(const std::string& line, HttpResponse* r) {
  if (line.rfind("HTTP/1.", 0) != 0 || line.size() < 12 || line[8] != ' ' ||
      !std::isdigit(static_cast<unsigned char>(line[9])) ||
      !std::isdigit(static_cast<unsigned char>(line[10])) ||
      !std::isdigit(static_cast<unsigned char>(line[11]))) {
    return false;
  }
  r->status = std::atoi(line.substr(9, 3).c_str());
  return true;
}

bool readResponseHead(Socket& sock, Clock::time_point deadline, HttpResponse* r) {
  std::optional<std::string> status = crlfLine(sock, deadline);
  if (!status || !parseStatusLine(*status, r)) {
    return false;
  }
  r->head = *status + "\r\n";
  while (true) {
    std::optional<std::string> line = crlfLine(sock, deadline);
    if (!line) {
      return false;
    }
    r->head += *line + "\r\n";
    if (line->empty()) {
      return true;
    }
    if (!parseHeaderLine(*line, &r->headers)) {
      return false;
    }
  }
}

bool readClientChunks(Socket& sock, Clock::time_point deadline, std::string* body) {
  while (true) {
    std::optional<std::string> line = crlfLine(sock, deadline);
    std::optional<size_t> size = line ? parseChunkSize(*line) : std::nullopt;
    if (!size) {
      return false;
    }
    if (*size == 0) {
      break;
    }
    std::optional<milliseconds> left = timeLeft(deadline);
    std::optional<std::string> data = left ? sock.recvExact(*size, *left) : std::nullopt;
    std::optional<std::string> end = data ? crlfLine(sock, deadline) : std::nullopt;
    if (!end || !end->empty()) {
      return false;
    }
    *body += *data;
  }
  while (true) {  // trailer section
    std::optional<std::string> line = crlfLine(sock, deadline);
    if (!line) {
      return false;
    }
    if (line->empty()) {
      return true;
    }
  }
}

bool readResponseBody(Socket& sock, Clock::time_point deadline, bool head_request,
                      HttpResponse* r) {
  if (head_request || r->status / 100 == 1 || r->status == 204 || r->status == 304) {
    return true;
  }
  if (isChunked(r->headers)) {
    r->chunked = true;
    return readClientChunks(sock, deadline, &r->body);
  }
  std::optional<milliseconds> left = timeLeft(deadline);
  if (!left) {
    return false;
  }
  if (r->headers.has("Content-Length")) {
    std::optional<size_t> length = contentLength(r->headers);
    std::optional<std::string> body = length ? sock.recvExact(*length, *left) : std::nullopt;
    r->body = body.value_or("");
    return body.has_value();
  }
  std::optional<std::string> rest = sock.readToEof(*left);
  r->body = rest.value_or("");
  return rest.has_value();
}

// ---------------------------------------------------------------------------------------
// Server side: a buffered reader per connection that logs every byte as it arrives, so the
// log holds what tandem sent even when it does not parse.

class ConnReader {
 public:
  ConnReader(Socket& sock, ServerLog* log) : sock_(sock), log_(log) {}

  // The next line without its CRLF; nullopt at EOF or on a line not ending in CRLF.
  std::optional<std::string> line() {
    size_t nl;
    while ((nl = buf_.find('\n')) == std::string::npos) {
      if (buf_.size() > kMaxLine || !fill()) {
        return std::nullopt;
      }
    }
    std::string out = buf_.substr(0, nl);
    buf_.erase(0, nl + 1);
    if (out.empty() || out.back() != '\r') {
      return std::nullopt;
    }
    out.pop_back();
    return out;
  }

  std::optional<std::string> exact(size_t n) {
    while (buf_.size() < n) {
      if (!fill()) {
        return std::nullopt;
      }
    }
    std::string out = buf_.substr(0, n);
    buf_.erase(0, n);
    return out;
  }

  // Reads (and logs) until the peer closes.
  void drain() {
    while (fill()) {
    }
  }

  std::string takeBuffered() { return std::exchange(buf_, std::string()); }

 private:
  bool fill() {
    char chunk[16 * 1024];
    ssize_t n = sock_.recvSome(chunk, sizeof(chunk), kServerIdle);
    if (n <= 0) {
      return false;
    }
    std::string got(chunk, static_cast<size_t>(n));
    if (log_ != nullptr) {
      log_->addBytes(got);
    }
    buf_ += got;
    return true;
  }

  Socket& sock_;
  ServerLog* log_;
  std::string buf_;
};

bool parseRequestLine(const std::string& line, HttpRequest* r) {
  size_t sp1 = line.find(' ');
  size_t sp2 = sp1 == std::string::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string::npos) {
    return false;
  }
  r->method = line.substr(0, sp1);
  r->target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  r->version = line.substr(sp2 + 1);
  return r->version.rfind("HTTP/1.", 0) == 0;
}

std::optional<HttpRequest> readRequestHead(ConnReader& in) {
  std::optional<std::string> first = in.line();
  HttpRequest r;
  if (!first || !parseRequestLine(*first, &r)) {
    return std::nullopt;
  }
  r.head = *first + "\r\n";
  while (true) {
    std::optional<std::string> line = in.line();
    if (!line) {
      return std::nullopt;
    }
    r.head += *line + "\r\n";
    if (line->empty()) {
      return r;
    }
    if (!parseHeaderLine(*line, &r.headers)) {
      return std::nullopt;
    }
  }
}

bool readServerChunks(ConnReader& in, std::string* body) {
  while (true) {
    std::optional<std::string> line = in.line();
    std::optional<size_t> size = line ? parseChunkSize(*line) : std::nullopt;
    if (!size) {
      return false;
    }
    if (*size == 0) {
      break;
    }
    std::optional<std::string> data = in.exact(*size);
    std::optional<std::string> end = data ? in.line() : std::nullopt;
    if (!end || !end->empty()) {
      return false;
    }
    *body += *data;
  }
  while (true) {
    std::optional<std::string> line = in.line();
    if (!line) {
      return false;
    }
    if (line->empty()) {
      return true;
    }
  }
}

bool readRequestBody(ConnReader& in, HttpRequest* r) {
  if (isChunked(r->headers)) {
    return readServerChunks(in, &r->body);
  }
  if (!r->headers.has("Content-Length")) {
    return true;
  }
  std::optional<size_t> length = contentLength(r->headers);
  std::optional<std::string> body = length ? in.exact(*length) : std::nullopt;
  r->body = body.value_or("");
  return body.has_value();
}

bool closesConnection(const std::string& response) {
  std::string head = lower(response.substr(0, response.find("\r\n\r\n")));
  return head.find("\r\nconnection: close") != std::string::npos;
}

enum class Served { kNext, kClose, kBroken };

Served serveOne(ConnReader& in, Socket& sock, const Responder& respond, ServerLog* log) {
  std::optional<HttpRequest> req = readRequestHead(in);
  if (!req) {
    return Served::kBroken;
  }
  std::optional<std::string> expect = req->headers.get("Expect");
  if (expect && equalsIgnoreCase(*expect, "100-continue") &&
      !sock.sendAll("HTTP/1.1 100 Continue\r\n\r\n")) {
    return Served::kClose;
  }
  if (!readRequestBody(in, &*req)) {
    return Served::kBroken;
  }
  if (log != nullptr) {
    log->addRequest(*req);
  }
  std::string reply = respond(*req);
  if (reply.empty() || !sock.sendAll(reply)) {
    return Served::kClose;
  }
  return closesConnection(reply) ? Served::kClose : Served::kNext;
}

}  // namespace

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::optional<std::string> Headers::get(std::string_view name) const {
  for (const auto& [n, v] : fields) {
    if (equalsIgnoreCase(n, name)) {
      return v;
    }
  }
  return std::nullopt;
}

int Headers::count(std::string_view name) const {
  return static_cast<int>(std::count_if(fields.begin(), fields.end(), [&](const auto& field) {
    return equalsIgnoreCase(field.first, name);
  }));
}

bool HttpResponse::closes() const {
  std::optional<std::string> connection = headers.get("Connection");
  return connection && lower(*connection).find("close") != std::string::npos;
}

std::optional<HttpResponse> readResponse(Socket& sock, milliseconds timeout, bool head_request) {
  Clock::time_point deadline = Clock::now() + timeout;
  HttpResponse r;
  if (!readResponseHead(sock, deadline, &r) ||
      !readResponseBody(sock, deadline, head_request, &r)) {
    return std::nullopt;
  }
  return r;
}

std::string getRequest(const std::string& path, const std::string& extra_headers) {
  return "GET " + path + " HTTP/1.1\r\nHost: tandem.test\r\n" + extra_headers + "\r\n";
}

std::string postRequest(const std::string& path, const std::string& body,
                        const std::string& extra_headers) {
  return "POST " + path +
         " HTTP/1.1\r\nHost: tandem.test\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n" + extra_headers + "\r\n" + body;
}

std::string chunkedPostRequest(const std::string& path, const std::string& body,
                               const std::vector<size_t>& sizes) {
  return "POST " + path + " HTTP/1.1\r\nHost: tandem.test\r\nTransfer-Encoding: chunked\r\n\r\n" +
         chunkEncode(body, sizes) + "0\r\n\r\n";
}

std::optional<HttpResponse> roundTrip(Socket& sock, const std::string& request,
                                      milliseconds timeout, bool head_request) {
  if (request.size() <= kLargeRequest) {
    if (!sock.sendAll(request)) {
      return std::nullopt;
    }
    return readResponse(sock, timeout, head_request);
  }
  std::thread sender([&sock, &request] { sock.sendAll(request); });
  std::optional<HttpResponse> r = readResponse(sock, timeout, head_request);
  if (!r) {
    ::shutdown(sock.fd(), SHUT_RDWR);  // wakes a sender blocked on a full buffer
  }
  sender.join();
  return r;
}

std::optional<HttpResponse> fetch(uint16_t port, const std::string& request, milliseconds timeout) {
  Socket sock = connectTo(port);
  if (!sock.valid()) {
    return std::nullopt;
  }
  return roundTrip(sock, request, timeout);
}

std::string bigPattern(size_t bytes) {
  std::string out(bytes, '\0');
  for (size_t i = 0; i < bytes; ++i) {
    out[i] = static_cast<char>(i % 251);
  }
  return out;
}

void ServerLog::addBytes(const std::string& bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  bytes_ += bytes;
}

void ServerLog::addRequest(const HttpRequest& request) {
  std::lock_guard<std::mutex> lock(mu_);
  requests_.push_back(request);
}

std::string ServerLog::bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return bytes_;
}

std::vector<HttpRequest> ServerLog::requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

size_t ServerLog::requestCount() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_.size();
}

Handler httpHandler(Responder respond, std::shared_ptr<ServerLog> log) {
  return [respond, log](Socket& sock) {
    ConnReader in(sock, log.get());
    Served state;
    while ((state = serveOne(in, sock, respond, log.get())) == Served::kNext) {
    }
    if (state == Served::kBroken) {
      in.drain();  // keeps logging whatever else arrives, until tandem closes
    }
  };
}

Handler rawReplyHandler(std::string reply, std::shared_ptr<ServerLog> log) {
  return [reply, log](Socket& sock) {
    ConnReader in(sock, log.get());
    std::optional<HttpRequest> req = readRequestHead(in);
    if (req && log) {
      log->addRequest(*req);
    }
    if (req) {
      sock.sendAll(reply);
    }
  };
}

Handler silentHandler(std::shared_ptr<ServerLog> log) {
  return [log](Socket& sock) {
    ConnReader in(sock, log.get());
    std::optional<HttpRequest> req = readRequestHead(in);
    if (req && log) {
      log->addRequest(*req);
    }
    in.drain();
  };
}

Handler upgradeEchoHandler(std::shared_ptr<ServerLog> log) {
  return [log](Socket& sock) {
    ConnReader in(sock, log.get());
    std::optional<HttpRequest> req = readRequestHead(in);
    if (!req) {
      return;
    }
    if (log) {
      log->addRequest(*req);
    }
    std::string early = in.takeBuffered();  // tunnel bytes that came with the head
    if (sock.sendAll("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: "
                     "Upgrade\r\n\r\n") &&
        sock.sendAll(early)) {
      echoHandler()(sock);
    }
  };
}

std::string textResponse(int status, const std::string& body, const std::string& extra) {
  return "HTTP/1.1 " + std::to_string(status) + " " + reasonPhrase(status) +
         "\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" +
         extra + "\r\n" + body;
}

std::string chunkedResponse(const std::string& body, const std::vector<size_t>& sizes,
                            const std::string& trailers) {
  return "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
         "Transfer-Encoding: chunked\r\n\r\n" +
         chunkEncode(body, sizes) + "0\r\n" + trailers + "\r\n";
}

Responder targetResponder() {
  return [](const HttpRequest& r) { return textResponse(200, r.target); };
}

}  // namespace tandem::it
