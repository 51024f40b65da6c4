#include "proxy/http_message.h"

#include <algorithm>
#include <array>
#include <random>
#include <vector>

namespace tandem {
namespace {

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

// Calls f(element) for each element of a comma-separated list, trimmed, empty ones skipped.
template <typename F>
void forEachListElement(std::string_view list, F f) {
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view element = trimOws(list.substr(0, comma));
    if (!element.empty()) {
      f(element);
    }
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
  }
}

// The hop-by-hop headers of one head: the fixed ones (RFC 9110 7.6.1) and those its
// Connection headers name.
class HopByHop {
 public:
  HopByHop(const HttpHead& h, bool keep_upgrade) : keep_upgrade_(keep_upgrade) {
    for (const HttpHeader& header : h.headers) {
      if (equalsIgnoreCase(header.name, "connection")) {
        forEachListElement(header.value, [this](std::string_view t) { named_.push_back(t); });
      }
    }
  }

  bool contains(std::string_view name) const {
    if (equalsIgnoreCase(name, "upgrade")) {
      return !keep_upgrade_;
    }
    if (isFixed(name)) {
      return true;
    }
    // Connection may not remove what frames the body (which is forwarded raw) nor Host:
    // `Connection: content-length` must not turn a request into another one.
    if (isFraming(name) || equalsIgnoreCase(name, "host")) {
      return false;
    }
    return std::any_of(named_.begin(), named_.end(),
                       [name](std::string_view n) { return equalsIgnoreCase(n, name); });
  }

 private:
  static bool isFixed(std::string_view name) {
    static constexpr std::array<std::string_view, 5> kFixed = {"connection", "keep-alive",
                                                               "proxy-connection", "te", "trailer"};
    return std::any_of(kFixed.begin(), kFixed.end(),
                       [name](std::string_view f) { return equalsIgnoreCase(f, name); });
  }
  static bool isFraming(std::string_view name) {
    return equalsIgnoreCase(name, "content-length") || equalsIgnoreCase(name, "transfer-encoding");
  }

  bool keep_upgrade_;
  std::vector<std::string_view> named_;
};

void appendHeader(std::string& out, std::string_view name, std::string_view value) {
  out.append(name).append(": ").append(value).append("\r\n");
}

void appendVersion(std::string& out, const HttpHead& h) {
  out.append("HTTP/");
  out.push_back(static_cast<char>('0' + h.version_major));
  out.push_back('.');
  out.push_back(static_cast<char>('0' + h.version_minor));
}

size_t headSizeHint(const HttpHead& h) {
  size_t n = h.method.size() + h.target.size() + h.reason.size() + 128;
  for (const HttpHeader& header : h.headers) {
    n += header.name.size() + header.value.size() + 4;
  }
  return n;
}

// The last X-Forwarded-For header forwarded, the one the client address is appended to
// (several are one list, in order). One that Connection names is not forwarded.
const HttpHeader* lastForwardedFor(const HttpHead& h, const HopByHop& hop) {
  auto it = std::find_if(h.headers.rbegin(), h.headers.rend(), [&hop](const HttpHeader& header) {
    return equalsIgnoreCase(header.name, "x-forwarded-for") && !hop.contains(header.name);
  });
  return it == h.headers.rend() ? nullptr : &*it;
}

struct ErrorPage {
  int status;
  std::string_view reason;
  std::string_view sentence;
};

constexpr std::array<ErrorPage, 9> kErrorPages = {{
    {400, "Bad Request", "Your browser sent a request that this server could not understand."},
    {403, "Forbidden", "Access to this resource is denied."},
    {405, "Method Not Allowed", "This method is not allowed for the requested resource."},
    {408, "Request Timeout", "Your browser did not send a complete request in time."},
    {431, "Request Header Fields Too Large",
     "The request line and headers are larger than this server accepts."},
    {500, "Internal Server Error", "The server met an unexpected condition."},
    {502, "Bad Gateway", "The server returned an invalid or incomplete response."},
    {503, "Service Unavailable", "No server is available to handle this request."},
    {504, "Gateway Timeout", "The server did not respond in time."},
}};

}  // namespace

std::string serializeRequestHead(const HttpHead& h, const RequestRewrite& rw) {
  std::string out;
  out.reserve(headSizeHint(h) + rw.client_ip.size() + rw.request_id.size());
  out.append(h.method).append(" ").append(h.target).append(" ");
  appendVersion(out, h);
  out.append("\r\n");

  HopByHop hop(h, rw.keep_upgrade);
  const HttpHeader* xff = rw.client_ip.empty() ? nullptr : lastForwardedFor(h, hop);
  for (const HttpHeader& header : h.headers) {
    if (hop.contains(header.name) || equalsIgnoreCase(header.name, "x-forwarded-proto") ||
        (!rw.request_id.empty() && equalsIgnoreCase(header.name, "x-request-id"))) {
      continue;
    }
    if (&header == xff && !header.value.empty()) {
      out.append(header.name).append(": ").append(header.value).append(", ");
      out.append(rw.client_ip).append("\r\n");
    } else if (&header == xff) {
      appendHeader(out, header.name, rw.client_ip);
    } else {
      appendHeader(out, header.name, header.value);
    }
  }
  if (xff == nullptr && !rw.client_ip.empty()) {
    appendHeader(out, "X-Forwarded-For", rw.client_ip);
  }
  appendHeader(out, "X-Forwarded-Proto", rw.forwarded_proto);
  if (!rw.request_id.empty()) {
    appendHeader(out, "X-Request-Id", rw.request_id);
  }
  if (rw.keep_upgrade) {
    appendHeader(out, "Connection", "upgrade");
  }
  out.append("\r\n");
  return out;
}

std::string serializeResponseHead(const HttpHead& h, const ResponseRewrite& rw) {
  std::string out;
  out.reserve(headSizeHint(h) + rw.set_cookie.size());
  out.append("HTTP/1.1 ").append(std::to_string(h.status)).append(" ").append(h.reason);
  out.append("\r\n");

  bool switching = h.status == 101;
  HopByHop hop(h, switching);
  for (const HttpHeader& header : h.headers) {
    if (!hop.contains(header.name)) {
      appendHeader(out, header.name, header.value);
    }
  }
  if (switching) {
    appendHeader(out, "Connection", "upgrade");
  } else if (h.status >= 200) {
    if (!rw.set_cookie.empty()) {
      appendHeader(out, "Set-Cookie", rw.set_cookie);
    }
    if (rw.close) {
      appendHeader(out, "Connection", "close");
    } else if (rw.client_http10) {
      appendHeader(out, "Connection", "keep-alive");
    }
  }
  out.append("\r\n");
  return out;
}

std::string errorResponse(int status) {
  auto it = std::find_if(kErrorPages.begin(), kErrorPages.end(),
                         [status](const ErrorPage& p) { return p.status == status; });
  const ErrorPage& page = it != kErrorPages.end() ? *it : kErrorPages[5];  // 500
  std::string code = std::to_string(page.status);
  std::string body = "<html><body><h1>";
  body.append(code).append(" ").append(page.reason).append("</h1>\n<p>");
  body.append(page.sentence).append("</p>\n</body></html>\n");

  std::string out = "HTTP/1.1 ";
  out.append(code).append(" ").append(page.reason).append("\r\n");
  out.append("Content-Type: text/html\r\n");
  out.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
  out.append("Cache-Control: no-cache\r\n");
  out.append("Connection: close\r\n\r\n");
  out.append(body);
  return out;
}

std::optional<std::string_view> findHeader(const HttpHead& h, std::string_view name) {
  for (const HttpHeader& header : h.headers) {
    if (equalsIgnoreCase(header.name, name)) {
      return std::string_view(header.value);
    }
  }
  return std::nullopt;
}

std::optional<std::string_view> findCookie(const HttpHead& h, std::string_view cookie_name) {
  for (const HttpHeader& header : h.headers) {
    if (!equalsIgnoreCase(header.name, "cookie")) {
      continue;
    }
    std::string_view rest = header.value;
    while (!rest.empty()) {
      size_t semi = rest.find(';');
      std::string_view pair = trimOws(rest.substr(0, semi));
      rest = semi == std::string_view::npos ? std::string_view() : rest.substr(semi + 1);
      size_t eq = pair.find('=');
      if (eq != std::string_view::npos && trimOws(pair.substr(0, eq)) == cookie_name) {
        return trimOws(pair.substr(eq + 1));
      }
    }
  }
  return std::nullopt;
}

bool isIdempotent(std::string_view method) {
  static constexpr std::array<std::string_view, 6> kIdempotent = {"GET",    "HEAD",    "PUT",
                                                                  "DELETE", "OPTIONS", "TRACE"};
  return std::find(kIdempotent.begin(), kIdempotent.end(), method) != kIdempotent.end();
}

std::string_view pathOf(std::string_view target) {
  if (!target.empty() && target.front() != '/' && target != "*") {
    // absolute-form, "scheme://authority/path?query": skip to the path.
    size_t authority = target.find("://");
    if (authority != std::string_view::npos) {
      target.remove_prefix(authority + 3);
      size_t path = target.find_first_of("/?#");
      if (path == std::string_view::npos || target[path] != '/') {
        return "/";
      }
      target.remove_prefix(path);
    }
  }
  return target.substr(0, target.find_first_of("?#"));
}

RequestIdGenerator::RequestIdGenerator()
    : prefix_((static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}()) {}

RequestIdGenerator::RequestIdGenerator(uint64_t prefix) : prefix_(prefix) {}

std::string RequestIdGenerator::next() {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id(32, '0');
  uint64_t counter = counter_++;
  for (int i = 0; i < 16; ++i) {
    id[15 - i] = kHex[(prefix_ >> (4 * i)) & 0xf];
    id[31 - i] = kHex[(counter >> (4 * i)) & 0xf];
  }
  return id;
}

}  // namespace tandem
