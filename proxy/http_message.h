// What the HTTP session writes in place of the heads it parsed, its error pages, and small
// lookups in a parsed head. Pure functions over HttpHead (see http_parser.h), no I/O.
//
//   std::string id = findHeader(head, "X-Request-Id") ? "" : ids.next();
//   RequestRewrite rw{client_ip, id};  // views: id must outlive rw
//   std::string head_out = serializeRequestHead(head, rw);  // then the body, raw
//
// Bodies are forwarded unchanged, so the framing headers (Content-Length, Transfer-Encoding)
// are always written as received: a rewrite never changes where a message ends.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "proxy/http_parser.h"

namespace tandem {

struct RequestRewrite {
  std::string_view client_ip;  // appended to X-Forwarded-For; empty: X-Forwarded-For untouched
  // X-Request-Id to send, replacing the client's; empty: the client's is kept (or none sent).
  std::string_view request_id;
  std::string_view forwarded_proto = "http";  // X-Forwarded-Proto, replacing the client's
  // Forwarding an upgrade request (head.upgrade): Upgrade is kept and `Connection: upgrade`
  // sent; otherwise Upgrade is dropped with the other hop-by-hop headers.
  bool keep_upgrade = false;
};

// The request head for the server: `METHOD TARGET HTTP/x.y` with the client's version, the
// client's headers in their order without hop-by-hop ones (Connection and each header it
// names, Keep-Alive, Proxy-Connection, TE, Trailer, Upgrade), X-Forwarded-For extended in
// place (or added), then X-Forwarded-Proto, X-Request-Id when set, `Connection: upgrade` when
// keeping the upgrade.
std::string serializeRequestHead(const HttpHead& h, const RequestRewrite& rw);

struct ResponseRewrite {
  bool close = false;           // the client connection closes after this response
  bool client_http10 = false;   // the client spoke HTTP/1.0 (and is kept alive unless close)
  std::string_view set_cookie;  // a Set-Cookie value to add (persistence), empty: none
};

// The response head for the client, always as HTTP/1.1 (the body's framing means the same in
// 1.0 and 1.1, and clients then read keep-alive the 1.1 way), without hop-by-hop headers,
// then `Set-Cookie` when set, then `Connection: close`, or `Connection: keep-alive` for an
// HTTP/1.0 client kept alive. A 101 keeps Upgrade and gets `Connection: upgrade`; other 1xx
// responses get neither Set-Cookie nor Connection: rw is for the final response.
std::string serializeResponseHead(const HttpHead& h, const ResponseRewrite& rw);

// A complete response (head and small HTML body) for statuses Tandem produces itself: 400,
// 403, 405, 408, 431, 500, 502, 503, 504; any other status gives the 500 page. Every one
// closes the connection.
std::string errorResponse(int status);

// The value of the first header with this name (names compare case-insensitively).
std::optional<std::string_view> findHeader(const HttpHead& h, std::string_view name);

// The value of the first cookie with this name across all Cookie headers (cookie names
// compare case-sensitively), as sent (quotes kept).
std::optional<std::string_view> findCookie(const HttpHead& h, std::string_view cookie_name);

// GET, HEAD, PUT, DELETE, OPTIONS, TRACE (RFC 9110 9.2.2): safe to send twice.
bool isIdempotent(std::string_view method);

// The path of a request-target, without query or fragment: "/a/b?x=1" -> "/a/b". An
// absolute-form target gives its path ("http://h/a?x" -> "/a", "http://h" -> "/"); "*" -> "*".
std::string_view pathOf(std::string_view target);

// Request ids for X-Request-Id: 32 lowercase hex digits, a random 64-bit prefix drawn once
// per generator then a 64-bit counter. One generator per worker thread: no lock, no shared
// state, and two workers (or two Tandem instances) collide only if their prefixes do.
class RequestIdGenerator {
 public:
  RequestIdGenerator();                          // prefix from std::random_device
  explicit RequestIdGenerator(uint64_t prefix);  // tests: a fixed prefix

  std::string next();

 private:
  uint64_t prefix_;
  uint64_t counter_ = 0;
};

}  // namespace tandem
