#include "admin/http_server.h"

#include <arpa/inet.h>
#include <llhttp.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <ctime>

#include "admin/commands.h"
#include "admin/metrics.h"
#include "admin/page.h"
#include "core/log.h"

namespace tandem {
namespace {

constexpr size_t kReadBufferSize = 64 * 1024;
constexpr size_t kDefaultLogRecords = 200;
constexpr int kMaxJsonDepth = 32;
constexpr size_t kMaxLoggedCommand = 200;

constexpr std::string_view kAllowGet = "GET, HEAD";
constexpr std::string_view kAllowPost = "POST";
constexpr std::string_view kContentSecurityPolicy =
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:";

char asciiLower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return asciiLower(x) == asciiLower(y);
         });
}

std::string_view trimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

int64_t wallClockMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// RFC 9110's IMF-fixdate, "Sun, 06 Nov 1994 08:49:37 GMT", without the locale's help.
std::string httpDate() {
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[40];
  snprintf(buf, sizeof(buf), "%s, %02d %s %04d %02d:%02d:%02d GMT", kDays[tm.tm_wday % 7],
           tm.tm_mday, kMonths[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
           tm.tm_sec);
  return buf;
}

// Hostile text for a log line: bytes outside printable ASCII become \xHH, and it is cut.
std::string printable(std::string_view text, size_t max) {
  std::string out;
  for (char ch : text.substr(0, max)) {
    auto c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c < 0x7f) {
      out += ch;
    } else {
      char buf[8];
      snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    }
  }
  if (text.size() > max) {
    out += "...";
  }
  return out;
}

AdminResponse textResponse(int status, std::string body) {
  AdminResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

AdminResponse jsonResponse(int status, std::string body) {
  AdminResponse r;
  r.status = status;
  r.content_type = "application/json";
  r.body = std::move(body);
  return r;
}

// Errors of the /api/ routes are JSON, as the page reads them; the others are text.
AdminResponse errorResponse(std::string_view path, int status, const std::string& why) {
  if (path.starts_with("/api/")) {
    return jsonResponse(status, "{\"ok\": false, \"output\": " + jsonQuote(why + "\n") + "}");
  }
  return textResponse(status,
                      std::to_string(status) + " " + adminStatusText(status) + ": " + why + "\n");
}

AdminResponse methodNotAllowed(std::string_view path, std::string_view allow) {
  AdminResponse r = errorResponse(path, 405, "use " + std::string(allow));
  r.headers.emplace_back("Allow", std::string(allow));
  return r;
}

AdminResponse unauthorized(std::string_view path, const std::string& why) {
  AdminResponse r = errorResponse(path, 401, why);
  r.headers.emplace_back("WWW-Authenticate", "Basic realm=\"tandem\"");
  return r;
}

std::string serializeResponse(const AdminResponse& r, bool head_only, bool close) {
  std::string out;
  out.reserve(256 + (head_only ? 0 : r.body.size()));
  out += "HTTP/1.1 " + std::to_string(r.status) + " " + adminStatusText(r.status) + "\r\n";
  out += "Date: " + httpDate() + "\r\n";
  out += "Content-Type: " + r.content_type + "\r\n";
  out += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
  out += "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n";
  for (const auto& [name, value] : r.headers) {
    out += name + ": " + value + "\r\n";
  }
  if (close) {
    out += "Connection: close\r\n";
  }
  out += "\r\n";
  if (!head_only) {
    out += r.body;
  }
  return out;
}

// "after=17&max=50": the value of `key`, or nullopt when absent.
std::optional<std::string_view> queryValue(std::string_view query, std::string_view key) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    size_t eq = pair.find('=');
    if (pair.substr(0, eq) == key) {
      return eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    }
    if (amp == std::string_view::npos) {
      break;
    }
    query.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

bool parseUnsigned(std::string_view text, uint64_t* out) {
  if (text.empty()) {
    return false;
  }
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && end == text.data() + text.size();
}

// --- JSON ------------------------------------------------------------------------------------

// Just enough JSON to read one object's members: strings with every escape, and any other
// value skipped after checking its grammar.
class JsonReader {
 public:
  explicit JsonReader(std::string_view text) : text_(text) {}

  std::optional<std::string> commandMember(std::string* error) {
    std::optional<std::string> command;
    skipSpace();
    if (!take('{')) {
      return failWith(error, "expected a JSON object");
    }
    skipSpace();
    if (!take('}')) {
      for (;;) {
        std::string key;
        skipSpace();
        if (peek() != '"' || !readString(&key)) {
          return failWith(error, problem_.empty() ? "expected a member name" : problem_);
        }
        skipSpace();
        if (!take(':')) {
          return failWith(error, "expected ':' after a member name");
        }
        skipSpace();
        if (key == "command") {
          std::string value;
          if (command) {
            return failWith(error, "\"command\" is given twice");
          }
          if (peek() != '"') {
            return failWith(error, "\"command\" must be a string");
          }
          if (!readString(&value)) {
            return failWith(error, problem_);
          }
          command = std::move(value);
        } else if (!skipValue(1)) {
          return failWith(error, problem_.empty() ? "invalid JSON value" : problem_);
        }
        skipSpace();
        if (take('}')) {
          break;
        }
        if (!take(',')) {
          return failWith(error, "expected ',' or '}' in the object");
        }
      }
    }
    skipSpace();
    if (pos_ != text_.size()) {
      return failWith(error, "unexpected text after the JSON object");
    }
    if (!command) {
      return failWith(error, "the object has no \"command\" member");
    }
    return command;
  }

 private:
  static std::optional<std::string> failWith(std::string* error, std::string why) {
    if (error != nullptr) {
      *error = std::move(why);
    }
    return std::nullopt;
  }

  char peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
  bool atEnd() const { return pos_ >= text_.size(); }
  bool take(char c) {
    if (!atEnd() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  void skipSpace() {
    while (!atEnd() && (peek() == ' ' || peek() == '\t' || peek() == '\n' || peek() == '\r')) {
      ++pos_;
    }
  }
  bool fail(const char* why) {
    problem_ = why;
    return false;
  }

  bool readHex4(uint32_t* out) {
    if (text_.size() - pos_ < 4) {
      return fail("truncated \\u escape");
    }
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      char c = text_[pos_++];
      v <<= 4;
      if (c >= '0' && c <= '9') {
        v |= static_cast<uint32_t>(c - '0');
      } else if (asciiLower(c) >= 'a' && asciiLower(c) <= 'f') {
        v |= static_cast<uint32_t>(asciiLower(c) - 'a' + 10);
      } else {
        return fail("invalid \\u escape");
      }
    }
    *out = v;
    return true;
  }

  static void appendUtf8(uint32_t cp, std::string* out) {
    if (cp < 0x80) {
      *out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      *out += static_cast<char>(0xc0 | (cp >> 6));
      *out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      *out += static_cast<char>(0xe0 | (cp >> 12));
      *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      *out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
      *out += static_cast<char>(0xf0 | (cp >> 18));
      *out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
      *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      *out += static_cast<char>(0x80 | (cp & 0x3f));
    }
  }

  // \uXXXX, with a surrogate pair read as one code point.
  bool readUnicodeEscape(std::string* out) {
    uint32_t cp = 0;
    if (!readHex4(&cp)) {
      return false;
    }
    if (cp >= 0xdc00 && cp <= 0xdfff) {
      return fail("unpaired low surrogate in a \\u escape");
    }
    if (cp >= 0xd800 && cp <= 0xdbff) {
      uint32_t low = 0;
      if (!take('\\') || !take('u') || !readHex4(&low) || low < 0xdc00 || low > 0xdfff) {
        return fail("unpaired high surrogate in a \\u escape");
      }
      cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
    }
    appendUtf8(cp, out);
    return true;
  }

  // At the opening quote; `out` may be null (the string is only checked).
  bool readString(std::string* out) {
    std::string ignored;
    std::string& s = out != nullptr ? *out : ignored;
    ++pos_;  // the quote
    for (;;) {
      if (atEnd()) {
        return fail("unterminated string");
      }
      char c = text_[pos_++];
      if (c == '"') {
        return true;
      }
      if (static_cast<unsigned char>(c) < 0x20) {
        return fail("control character in a string");
      }
      if (c != '\\') {
        s += c;
        continue;
      }
      if (atEnd()) {
        return fail("unterminated string");
      }
      char e = text_[pos_++];
      switch (e) {
        case '"':
        case '\\':
        case '/':
          s += e;
          break;
        case 'b':
          s += '\b';
          break;
        case 'f':
          s += '\f';
          break;
        case 'n':
          s += '\n';
          break;
        case 'r':
          s += '\r';
          break;
        case 't':
          s += '\t';
          break;
        case 'u':
          if (!readUnicodeEscape(&s)) {
            return false;
          }
          break;
        default:
          return fail("invalid escape in a string");
      }
    }
  }

  bool skipDigits() {
    size_t start = pos_;
    while (!atEnd() && peek() >= '0' && peek() <= '9') {
      ++pos_;
    }
    return pos_ > start;
  }

  // -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
  bool skipNumber() {
    take('-');
    if (take('0')) {
      // no further integer digits after a leading zero
    } else if (!skipDigits()) {
      return fail("invalid number");
    }
    if (take('.') && !skipDigits()) {
      return fail("invalid number");
    }
    if (take('e') || take('E')) {
      if (!take('+')) {
        take('-');
      }
      if (!skipDigits()) {
        return fail("invalid number");
      }
    }
    return true;
  }

  bool skipLiteral(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) {
      return fail("invalid JSON value");
    }
    pos_ += word.size();
    return true;
  }

  bool skipContainer(int depth, char close) {
    ++pos_;  // the opening bracket
    skipSpace();
    if (take(close)) {
      return true;
    }
    for (;;) {
      skipSpace();
      if (close == '}') {
        if (peek() != '"' || !readString(nullptr)) {
          return problem_.empty() ? fail("expected a member name") : false;
        }
        skipSpace();
        if (!take(':')) {
          return fail("expected ':' after a member name");
        }
        skipSpace();
      }
      if (!skipValue(depth + 1)) {
        return false;
      }
      skipSpace();
      if (take(close)) {
        return true;
      }
      if (!take(',')) {
        return fail("expected ',' between values");
      }
    }
  }

  bool skipValue(int depth) {
    if (depth > kMaxJsonDepth) {
      return fail("JSON nested too deeply");
    }
    switch (peek()) {
      case '"':
        return readString(nullptr);
      case '{':
        return skipContainer(depth, '}');
      case '[':
        return skipContainer(depth, ']');
      case 't':
        return skipLiteral("true");
      case 'f':
        return skipLiteral("false");
      case 'n':
        return skipLiteral("null");
      default:
        return skipNumber();
    }
  }

  std::string_view text_;
  size_t pos_ = 0;
  std::string problem_;
};

// The media type of a Content-Type value, lower-cased, without parameters.
std::string mediaType(std::string_view value) {
  std::string_view type = trimOws(value.substr(0, value.find(';')));
  std::string out(type);
  std::transform(out.begin(), out.end(), out.begin(), asciiLower);
  return out;
}

// "http://HOST" or "https://HOST" where HOST is the Host header's value.
bool originMatchesHost(std::string_view origin, std::string_view host) {
  for (std::string_view scheme : {"http://", "https://"}) {
    if (origin.size() > scheme.size() &&
        equalsIgnoreCase(origin.substr(0, scheme.size()), scheme)) {
      return !host.empty() && equalsIgnoreCase(origin.substr(scheme.size()), host);
    }
  }
  return false;
}

}  // namespace

// --- request, response and security helpers --------------------------------------------------

const std::string* AdminRequest::header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (equalsIgnoreCase(n, name)) {
      return &v;
    }
  }
  return nullptr;
}

int AdminRequest::headerCount(std::string_view name) const {
  return static_cast<int>(std::count_if(headers.begin(), headers.end(), [&](const auto& h) {
    return equalsIgnoreCase(h.first, name);
  }));
}

const char* adminStatusText(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 413:
      return "Content Too Large";
    case 431:
      return "Request Header Fields Too Large";
    case 503:
      return "Service Unavailable";
    default:
      return status < 500 ? "Bad Request" : "Internal Server Error";
  }
}

bool constantTimeEquals(std::string_view a, std::string_view b) {
  size_t n = std::max(a.size(), b.size());
  // volatile keeps the compiler from turning the loop into an early-exit comparison.
  volatile unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    auto x = static_cast<unsigned char>(i < a.size() ? a[i] : 0);
    auto y = static_cast<unsigned char>(i < b.size() ? b[i] : 0);
    diff = static_cast<unsigned char>(diff | (x ^ y));
  }
  return diff == 0;
}

std::optional<std::string> decodeBase64(std::string_view text) {
  if (text.size() % 4 != 0) {
    return std::nullopt;
  }
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') {
      return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
      return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
      return c - '0' + 52;
    }
    return c == '+' ? 62 : c == '/' ? 63 : -1;
  };
  size_t padding = 0;
  while (padding < 2 && padding < text.size() && text[text.size() - 1 - padding] == '=') {
    ++padding;
  }
  std::string out;
  uint32_t bits = 0;
  int nbits = 0;
  for (size_t i = 0; i < text.size() - padding; ++i) {
    int v = value(text[i]);
    if (v < 0) {
      return std::nullopt;
    }
    bits = (bits << 6) | static_cast<uint32_t>(v);
    nbits += 6;
    if (nbits >= 8) {
      nbits -= 8;
      out += static_cast<char>((bits >> nbits) & 0xff);
    }
  }
  return out;
}

std::optional<std::string> parseCommandJson(std::string_view body, std::string* error) {
  return JsonReader(body).commandMember(error);
}

std::optional<std::string> csrfRefusal(const AdminRequest& request) {
  for (std::string_view name : {"Content-Type", "X-Tandem-Action", "Origin", "Sec-Fetch-Site"}) {
    if (request.headerCount(name) > 1) {
      return std::string(name) + " is given more than once";
    }
  }
  const std::string* type = request.header("Content-Type");
  if (type == nullptr || mediaType(*type) != "application/json") {
    return std::string("Content-Type must be application/json");
  }
  const std::string* action = request.header("X-Tandem-Action");
  if (action == nullptr || *action != "1") {
    return std::string("the X-Tandem-Action: 1 header is missing");
  }
  if (const std::string* site = request.header("Sec-Fetch-Site")) {
    if (!equalsIgnoreCase(*site, "same-origin") && !equalsIgnoreCase(*site, "none")) {
      return "cross-site request (Sec-Fetch-Site: " + printable(*site, 40) + ")";
    }
  }
  if (const std::string* origin = request.header("Origin")) {
    const std::string* host = request.header("Host");
    if (host == nullptr || !originMatchesHost(*origin, *host)) {
      return "cross-site request (Origin: " + printable(*origin, 100) + ")";
    }
  }
  return std::nullopt;
}

AdminAuth::AdminAuth(const AdminConfig& config) : token_(config.token), users_(config.users) {}

std::optional<std::string> AdminAuth::identify(std::string_view authorization) const {
  std::string_view value = trimOws(authorization);
  size_t space = value.find(' ');
  if (space == std::string_view::npos) {
    return std::nullopt;
  }
  std::string_view scheme = value.substr(0, space);
  std::string_view credentials = trimOws(value.substr(space + 1));
  if (equalsIgnoreCase(scheme, "Bearer")) {
    if (!token_.empty() && constantTimeEquals(credentials, token_)) {
      return std::string("token");
    }
    return std::nullopt;
  }
  if (!equalsIgnoreCase(scheme, "Basic")) {
    return std::nullopt;
  }
  std::optional<std::string> decoded = decodeBase64(credentials);
  if (!decoded) {
    return std::nullopt;
  }
  size_t colon = decoded->find(':');
  if (colon == std::string::npos) {
    return std::nullopt;
  }
  std::string_view name = std::string_view(*decoded).substr(0, colon);
  std::string_view password = std::string_view(*decoded).substr(colon + 1);
  // Every user is compared in full, so the time taken says nothing about which one exists.
  bool any = false;
  size_t which = 0;
  for (size_t i = 0; i < users_.size(); ++i) {
    bool match =
        constantTimeEquals(name, users_[i].name) & constantTimeEquals(password, users_[i].password);
    which = match ? i : which;
    any = any || match;
  }
  if (!any) {
    return std::nullopt;
  }
  return users_[which].name;
}

// --- one connection ------------------------------------------------------------------------

class AdminHttpServer::Connection {
 public:
  explicit Connection(AdminHttpServer& server) : server_(server) {
    llhttp_init(&parser_, HTTP_REQUEST, &settings());
    parser_.data = this;
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Accepts the pending connection. With `serve` false (over the connection limit) the
  // caller closes it at once. False if libuv could not accept it.
  bool open(uv_stream_t* listener, bool serve) {
    if (tcp_.init(uv_tcp_init, server_.loop_) != 0) {
      return false;
    }
    tcp_.get()->data = this;
    if (uv_accept(listener, tcp_.stream()) != 0) {
      return false;
    }
    if (!serve) {
      return true;
    }
    sockaddr_storage peer{};
    int len = sizeof(peer);
    if (uv_tcp_getpeername(tcp_.get(), reinterpret_cast<sockaddr*>(&peer), &len) == 0) {
      peer_ip_ = formatSockaddr(reinterpret_cast<sockaddr*>(&peer));
      // formatSockaddr gives "ip:port" or "[ip]:port": keep the address only.
      size_t colon = peer_ip_.rfind(':');
      peer_ip_ = peer_ip_.substr(0, colon);
      if (peer_ip_.size() >= 2 && peer_ip_.front() == '[') {
        peer_ip_ = peer_ip_.substr(1, peer_ip_.size() - 2);
      }
    }
    uv_tcp_nodelay(tcp_.get(), 1);
    if (timer_.init(uv_timer_init, server_.loop_) != 0) {
      return false;
    }
    timer_.get()->data = this;
    restartTimer(server_.request_timeout_ms_);
    startReading();
    return true;
  }

  void close() {
    if (closing_) {
      return;
    }
    closing_ = true;
    timer_.close();
    tcp_.close([this] { server_.onConnectionClosed(this); });
  }

 private:
  enum class Phase { kHead, kBody, kComplete };

  struct WriteRequest {
    uv_write_t req{};
    std::string bytes;
    Connection* connection = nullptr;
  };

  static const llhttp_settings_t& settings() {
    static const llhttp_settings_t s = [] {
      llhttp_settings_t x;
      llhttp_settings_init(&x);
      x.on_message_begin = onMessageBegin;
      x.on_url = onUrl;
      x.on_header_field = onHeaderField;
      x.on_header_value = onHeaderValue;
      x.on_headers_complete = onHeadersComplete;
      x.on_body = onBody;
      x.on_message_complete = onMessageComplete;
      return x;
    }();
    return s;
  }
  static Connection& self(llhttp_t* p) { return *static_cast<Connection*>(p->data); }

  // llhttp callbacks: 0 goes on, HPE_PAUSED returns to process(), -1 fails with
  // error_status_.
  static int onMessageBegin(llhttp_t* p) {
    self(p).resetRequest();
    return 0;
  }
  static int onUrl(llhttp_t* p, const char* at, size_t len) {
    Connection& c = self(p);
    for (size_t i = 0; i < len; ++i) {
      auto ch = static_cast<unsigned char>(at[i]);
      if (ch <= 0x20 || ch >= 0x7f) {
        return c.refuse(400, "invalid character in the request target");
      }
    }
    c.request_.target.append(at, len);
    return 0;
  }
  static int onHeaderField(llhttp_t* p, const char* at, size_t len) {
    Connection& c = self(p);
    if (!c.field_open_) {
      if (c.request_.headers.size() >= static_cast<size_t>(kMaxHeaders)) {
        return c.refuse(431, "too many header fields");
      }
      c.request_.headers.emplace_back();
      c.field_open_ = true;
    }
    c.request_.headers.back().first.append(at, len);
    return 0;
  }
  static int onHeaderValue(llhttp_t* p, const char* at, size_t len) {
    Connection& c = self(p);
    c.field_open_ = false;
    c.request_.headers.back().second.append(at, len);
    return 0;
  }
  static int onHeadersComplete(llhttp_t* p) {
    Connection& c = self(p);
    if (p->http_major != 1) {
      return c.refuse(400, "unsupported HTTP version");
    }
    if ((p->flags & F_CONTENT_LENGTH) != 0 && p->content_length > kMaxBodyBytes) {
      return c.refuse(413, "request body too large");
    }
    for (auto& header : c.request_.headers) {
      header.second = std::string(trimOws(header.second));
    }
    const std::string* expect = c.request_.header("Expect");
    c.expect_continue_ = expect != nullptr && equalsIgnoreCase(*expect, "100-continue");
    c.phase_ = Phase::kBody;
    return HPE_PAUSED;
  }
  static int onBody(llhttp_t* p, const char* at, size_t len) {
    Connection& c = self(p);
    if (c.request_.body.size() + len > kMaxBodyBytes) {
      return c.refuse(413, "request body too large");
    }
    c.request_.body.append(at, len);
    return 0;
  }
  static int onMessageComplete(llhttp_t* p) {
    self(p).phase_ = Phase::kComplete;
    return HPE_PAUSED;
  }

  int refuse(int status, const char* reason) {
    error_status_ = status;
    error_reason_ = reason;
    return -1;
  }

  void resetRequest() {
    phase_ = Phase::kHead;
    head_bytes_ = 0;
    field_open_ = false;
    expect_continue_ = false;
    request_.method.clear();
    request_.target.clear();
    request_.headers.clear();
    request_.body.clear();
  }

  // --- reading and parsing ---

  void startReading() {
    if (!reading_ && !closing_) {
      reading_ = uv_read_start(tcp_.stream(), &Connection::onAlloc, &Connection::onRead) == 0;
    }
  }
  void stopReading() {
    if (reading_) {
      uv_read_stop(tcp_.stream());
      reading_ = false;
    }
  }

  static void onAlloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
    auto* c = static_cast<Connection*>(handle->data);
    buf->base = c->server_.read_buffer_.data();
    buf->len = c->server_.read_buffer_.size();
  }

  static void onRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
    auto* c = static_cast<Connection*>(stream->data);
    if (nread < 0) {
      c->onReadEnd();
      return;
    }
    if (c->lingering_ || c->closing_) {
      return;  // what a client sends after the last response is dropped
    }
    c->in_.append(buf->base, static_cast<size_t>(nread));
    c->process();
  }

  // EOF or a read error: a response being written is still finished, then the connection
  // closes; otherwise (idle, or a request cut short) it closes now.
  void onReadEnd() {
    stopReading();
    if (responding_ && !lingering_) {
      close_after_write_ = true;
      peer_done_ = true;
      return;
    }
    close();
  }

  // Feeds the buffered input to llhttp until it is used up or a response is under way.
  void process() {
    while (!closing_ && !responding_ && !lingering_ &&
           (consumed_ < in_.size() || resume_pending_)) {
      resume_pending_ = false;
      const char* data = in_.data() + consumed_;
      size_t avail = in_.size() - consumed_;
      bool in_head = phase_ == Phase::kHead;
      // In the head llhttp sees at most one byte past the limit, so an endless head costs no
      // more than the limit before it is refused.
      size_t n = in_head ? std::min(avail, kMaxHeadBytes + 1 - head_bytes_) : avail;
      llhttp_errno_t err = llhttp_execute(&parser_, data, n);
      size_t used = err == HPE_OK ? n : static_cast<size_t>(llhttp_get_error_pos(&parser_) - data);
      consumed_ += used;
      if (in_head) {
        head_bytes_ += used;
      }
      if (err != HPE_OK && err != HPE_PAUSED) {
        if (error_status_ == 0) {
          const char* reason = llhttp_get_error_reason(&parser_);
          refuse(400, reason != nullptr ? reason : llhttp_errno_name(err));
        }
        fail(error_status_, error_reason_);
        break;
      }
      if (in_head && head_bytes_ > kMaxHeadBytes) {
        fail(431, "request head too large");
        break;
      }
      if (err == HPE_PAUSED) {
        llhttp_resume(&parser_);
        if (phase_ == Phase::kComplete) {
          dispatch();
          continue;
        }
        // Paused at the end of the head: llhttp reaches the end of a message without body
        // only when run once more, even with no further byte.
        resume_pending_ = true;
        if (expect_continue_) {
          expect_continue_ = false;
          write("HTTP/1.1 100 Continue\r\n\r\n");
        }
      }
    }
    in_.erase(0, consumed_);
    consumed_ = 0;
    if (!responding_ && !lingering_) {
      startReading();
    }
  }

  void dispatch() {
    request_.method = llhttp_method_name(static_cast<llhttp_method_t>(parser_.method));
    request_.peer_ip = peer_ip_;
    bool keep_alive = llhttp_should_keep_alive(&parser_) != 0 && parser_.upgrade == 0;
    AdminResponse response = server_.handle(request_);
    bool close = !keep_alive || server_.stopping_;
    respond(serializeResponse(response, request_.method == "HEAD", close), close);
    resetRequest();
  }

  // Answers an unusable request and ends the connection.
  void fail(int status, std::string_view reason) {
    TLOG_DEBUG("admin: %d for a request from %s: %.*s", status, peer_ip_.c_str(),
               static_cast<int>(reason.size()), reason.data());
    AdminResponse r = textResponse(status, std::to_string(status) + " " + adminStatusText(status) +
                                               ": " + std::string(reason) + "\n");
    respond(serializeResponse(r, false, true), true);
  }

  // --- writing ---

  void respond(std::string bytes, bool last) {
    responding_ = true;
    close_after_write_ = close_after_write_ || last;
    stopReading();
    // The client has kRequestTimeoutMs to take the response.
    restartTimer(server_.request_timeout_ms_);
    write(std::move(bytes));
  }

  void write(std::string bytes) {
    auto* w = new WriteRequest;
    w->bytes = std::move(bytes);
    w->connection = this;
    w->req.data = w;
    uv_buf_t buf = uv_buf_init(w->bytes.data(), static_cast<unsigned>(w->bytes.size()));
    int rc = uv_write(&w->req, tcp_.stream(), &buf, 1, &Connection::onWrite);
    if (rc != 0) {
      delete w;
      close();
    }
  }

  static void onWrite(uv_write_t* req, int status) {
    auto* w = static_cast<WriteRequest*>(req->data);
    Connection* c = w->connection;
    delete w;
    if (status == UV_ECANCELED) {
      return;  // the connection is closing (or gone): touch nothing
    }
    if (status != 0) {
      c->close();
      return;
    }
    c->afterWrite();
  }

  void afterWrite() {
    if (closing_ || !responding_ || uv_stream_get_write_queue_size(tcp_.stream()) > 0) {
      return;  // a 100 Continue went out, or more of the response is queued
    }
    responding_ = false;
    if (close_after_write_) {
      linger();
      return;
    }
    restartTimer(server_.request_timeout_ms_);
    process();
  }

  // Sends FIN and drops what the client still sends, until it closes or kLingerMs pass.
  void linger() {
    lingering_ = true;
    restartTimer(kLingerMs);
    if (peer_done_) {
      close();
      return;
    }
    auto* req = new uv_shutdown_t;
    req->data = this;
    if (uv_shutdown(req, tcp_.stream(), &Connection::onShutdown) != 0) {
      delete req;
      close();
      return;
    }
    startReading();
  }

  static void onShutdown(uv_shutdown_t* req, int status) {
    auto* c = static_cast<Connection*>(req->data);
    delete req;
    if (status != 0 && status != UV_ECANCELED) {
      c->close();
    }
  }

  // --- time ---

  void restartTimer(uint64_t ms) {
    if (timer_.isOpen()) {
      uv_timer_start(timer_.get(), &Connection::onTimer, ms, 0);
    }
  }

  static void onTimer(uv_timer_t* timer) {
    auto* c = static_cast<Connection*>(timer->data);
    bool request_begun = c->head_bytes_ > 0 || c->phase_ != Phase::kHead || !c->in_.empty();
    if (c->lingering_ || c->responding_ || !request_begun) {
      c->close();
      return;
    }
    c->fail(408, "the request did not arrive in time");
  }

  AdminHttpServer& server_;
  UvHandle<uv_tcp_t> tcp_;
  UvHandle<uv_timer_t> timer_;
  llhttp_t parser_{};
  std::string peer_ip_;
  std::string in_;       // received, not yet parsed (parsing pauses while responding)
  size_t consumed_ = 0;  // of in_, during process()
  Phase phase_ = Phase::kHead;
  size_t head_bytes_ = 0;
  bool field_open_ = false;  // a header name is being received
  bool expect_continue_ = false;
  bool resume_pending_ = false;  // llhttp paused at the end of a head: run it again
  AdminRequest request_;
  int error_status_ = 0;
  const char* error_reason_ = "";
  bool reading_ = false;
  bool responding_ = false;  // a response is being written; parsing waits
  bool close_after_write_ = false;
  bool peer_done_ = false;  // the client closed its side
  bool lingering_ = false;
  bool closing_ = false;
};

// --- the server --------------------------------------------------------------------------------

AdminHttpServer::AdminHttpServer(uv_loop_t* loop, const AdminConfig& config, Sources sources)
    : loop_(loop),
      config_(config),
      sources_(sources),
      auth_(config),
      read_buffer_(kReadBufferSize) {}

AdminHttpServer::~AdminHttpServer() = default;

bool AdminHttpServer::start(const HostPort& address, std::string* error) {
  sockaddr_storage addr{};
  std::string why;
  if (!resolveHostPort(address, &addr, &why)) {
    *error = address.str() + ": " + why;
    return false;
  }
  int rc = listener_.init(uv_tcp_init, loop_);
  if (rc == 0) {
    listener_.get()->data = this;
    rc = uv_tcp_bind(listener_.get(), reinterpret_cast<const sockaddr*>(&addr), 0);
  }
  if (rc == 0) {
    rc = uv_listen(listener_.stream(), 128, &AdminHttpServer::onConnection);
  }
  if (rc != 0) {
    *error = address.str() + ": " + uv_strerror(rc);
    return false;  // stop() closes the handle
  }
  return true;
}

uint16_t AdminHttpServer::port() const {
  if (!listener_.isOpen()) {
    return 0;
  }
  sockaddr_storage addr{};
  int len = sizeof(addr);
  if (uv_tcp_getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return 0;
  }
  if (addr.ss_family == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&addr)->sin6_port);
  }
  return ntohs(reinterpret_cast<const sockaddr_in*>(&addr)->sin_port);
}

void AdminHttpServer::stop(std::function<void()> done) {
  stopping_ = true;
  stop_done_ = std::move(done);
  listener_.close([this] {
    listener_closed_ = true;
    maybeFinishStop();
  });
  std::vector<Connection*> open;
  for (auto& [raw, owned] : connections_) {
    open.push_back(raw);
  }
  for (Connection* c : open) {
    c->close();
  }
  maybeFinishStop();
}

void AdminHttpServer::maybeFinishStop() {
  if (stopping_ && listener_closed_ && connections_.empty() && stop_done_) {
    auto done = std::move(stop_done_);
    stop_done_ = nullptr;
    done();
  }
}

void AdminHttpServer::onConnection(uv_stream_t* listener, int status) {
  auto* self = static_cast<AdminHttpServer*>(listener->data);
  if (status != 0) {
    TLOG_WARN("admin: accept failed: %s", uv_strerror(status));
    return;
  }
  self->acceptOne();
}

void AdminHttpServer::acceptOne() {
  // Over the limit the connection is still accepted (so it leaves the kernel's queue) and
  // closed at once, which a client sees as a reset or EOF instead of a hang.
  bool serve = !stopping_ && connections_.size() < kMaxConnections;
  auto owned = std::make_unique<Connection>(*this);
  Connection* c = owned.get();
  connections_.emplace(c, std::move(owned));
  if (!c->open(listener_.stream(), serve) || !serve) {
    c->close();
  }
}

void AdminHttpServer::onConnectionClosed(Connection* connection) {
  connections_.erase(connection);
  maybeFinishStop();
}

StatsView AdminHttpServer::view() const {
  return StatsView{sources_.runtime, sources_.process, sources_.rates, wallClockMs()};
}

AdminResponse AdminHttpServer::handle(const AdminRequest& request) {
  std::string_view target = request.target;
  // absolute-form ("http://host/path"), which HTTP/1.1 servers must accept.
  for (std::string_view scheme : {"http://", "https://"}) {
    if (target.size() >= scheme.size() &&
        equalsIgnoreCase(target.substr(0, scheme.size()), scheme)) {
      size_t slash = target.find('/', scheme.size());
      target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
      break;
    }
  }
  size_t question = target.find('?');
  std::string_view path = target.substr(0, question);
  std::string_view query =
      question == std::string_view::npos ? std::string_view() : target.substr(question + 1);
  return route(request, path, query);
}

AdminResponse AdminHttpServer::route(const AdminRequest& request, std::string_view path,
                                     std::string_view query) {
  if (path == "/api/command") {
    return runAction(request, path);
  }
  enum class Page { kHealth, kPage, kCsv, kJson, kMetrics, kState, kLogs };
  Page page;
  if (path == "/healthz") {
    page = Page::kHealth;
  } else if (path == "/") {
    page = Page::kPage;
  } else if (path == "/stats;csv" || path == "/stats.csv" || path == "/;csv") {
    page = Page::kCsv;
  } else if (path == "/stats.json") {
    page = Page::kJson;
  } else if (path == "/metrics") {
    page = Page::kMetrics;
  } else if (path == "/api/state") {
    page = Page::kState;
  } else if (path == "/api/logs") {
    page = Page::kLogs;
  } else {
    return errorResponse(path, 404, "no such page");
  }
  if (request.method != "GET" && request.method != "HEAD") {
    return methodNotAllowed(path, kAllowGet);
  }
  if (page == Page::kHealth) {
    return textResponse(200, "ok");
  }
  if (std::optional<AdminResponse> refused = checkRead(request, path)) {
    return std::move(*refused);
  }
  switch (page) {
    case Page::kPage: {
      AdminResponse r = textResponse(200, std::string(adminPageHtml()));
      r.content_type = "text/html; charset=utf-8";
      r.headers.emplace_back("Content-Security-Policy", std::string(kContentSecurityPolicy));
      r.headers.emplace_back("X-Frame-Options", "DENY");
      r.headers.emplace_back("Referrer-Policy", "same-origin");
      return r;
    }
    case Page::kCsv:
      return textResponse(200, renderStatsCsv(view()));
    case Page::kJson:
      return jsonResponse(200, renderStatsJson(view()));
    case Page::kMetrics: {
      AdminResponse r = textResponse(200, renderMetrics(view()));
      r.content_type = "text/plain; version=0.0.4; charset=utf-8";
      return r;
    }
    case Page::kState:
      return jsonResponse(200, renderOverviewJson(view(), config_.refresh.count()));
    case Page::kLogs:
      return logs(path, query);
    case Page::kHealth:
      break;
  }
  return errorResponse(path, 404, "no such page");
}

// read_auth = true: the read-only views need the same credentials as actions.
std::optional<AdminResponse> AdminHttpServer::checkRead(const AdminRequest& request,
                                                        std::string_view path) {
  if (!config_.read_auth) {
    return std::nullopt;
  }
  const std::string* authorization = request.header("Authorization");
  if (authorization == nullptr || request.headerCount("Authorization") != 1 ||
      !auth_.identify(*authorization)) {
    return unauthorized(path, "credentials required");
  }
  return std::nullopt;
}

AdminResponse AdminHttpServer::logs(std::string_view path, std::string_view query) {
  uint64_t after = 0;
  uint64_t max = kDefaultLogRecords;
  std::optional<std::string_view> after_text = queryValue(query, "after");
  std::optional<std::string_view> max_text = queryValue(query, "max");
  if ((after_text && !parseUnsigned(*after_text, &after)) ||
      (max_text && !parseUnsigned(*max_text, &max))) {
    return errorResponse(path, 400, "after and max must be non-negative integers");
  }
  max = std::min<uint64_t>(max, kLogRingSize);
  std::vector<std::string> access;
  if (sources_.access_log != nullptr) {
    access = sources_.access_log->recentLines(max);
  }
  return jsonResponse(200, renderLogsJson(after, max, access));
}

AdminResponse AdminHttpServer::runAction(const AdminRequest& request, std::string_view path) {
  if (request.method != "POST") {
    return methodNotAllowed(path, kAllowPost);
  }
  if (!auth_.configured()) {
    warnRefused(request, path, "no credentials are configured");
    return errorResponse(path, 403,
                         "actions are disabled: [admin] has no token, token_file or users");
  }
  if (std::optional<std::string> why = csrfRefusal(request)) {
    warnRefused(request, path, *why);
    return errorResponse(path, 403, *why);
  }
  const std::string* authorization = request.header("Authorization");
  if (authorization == nullptr) {
    warnRefused(request, path, "no credentials");
    return unauthorized(path, "credentials required");
  }
  std::optional<std::string> name;
  if (request.headerCount("Authorization") == 1) {
    name = auth_.identify(*authorization);
  }
  if (!name) {
    warnRefused(request, path, "wrong credentials");
    return unauthorized(path, "wrong credentials");
  }
  std::string error;
  std::optional<std::string> command = parseCommandJson(request.body, &error);
  if (!command) {
    return errorResponse(path, 400, "bad request body: " + error);
  }
  if (std::any_of(command->begin(), command->end(),
                  [](char c) { return static_cast<unsigned char>(c) < 0x20; })) {
    return errorResponse(path, 400, "the command must be one line without control characters");
  }
  std::string who = "admin " + *name + "@" + request.peer_ip;
  TLOG_INFO("admin command by %s: \"%s\"", who.c_str(),
            printable(*command, kMaxLoggedCommand).c_str());
  StatsView stats = view();
  CommandContext context{sources_.runtime, sources_.operations, stats, who};
  CommandResult result = runCommand(*command, context);
  return jsonResponse(result.ok ? 200 : 400, std::string("{\"ok\": ") +
                                                 (result.ok ? "true" : "false") +
                                                 ", \"output\": " + jsonQuote(result.output) + "}");
}

void AdminHttpServer::warnRefused(const AdminRequest& request, std::string_view path,
                                  std::string_view why) {
  uint64_t now = uv_now(loop_);
  if (last_refusal_log_ms_ != 0 && now - last_refusal_log_ms_ < 1000) {
    ++refusals_unlogged_;
    return;
  }
  std::string more;
  if (refusals_unlogged_ > 0) {
    more = " (" + std::to_string(refusals_unlogged_) + " more refused since the last line)";
  }
  TLOG_WARN("admin: refused %s %s from %s: %.*s%s", printable(request.method, 20).c_str(),
            std::string(path).c_str(), request.peer_ip.c_str(), static_cast<int>(why.size()),
            why.data(), more.c_str());
  last_refusal_log_ms_ = now == 0 ? 1 : now;
  refusals_unlogged_ = 0;
}

}  // namespace tandem
