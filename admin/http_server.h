// The admin HTTP listener ([admin] listen): the page, the stats CSV and JSON, Prometheus
// /metrics, the page's API and POST /api/command, on the control thread's loop. The routes,
// the credentials and the CSRF guard are those of admin/API.md.
//
//   AdminHttpServer server(control_loop, config.admin,
//                          {runtime, operations, process, &rates, access_log});
//   std::string error;
//   if (!server.start(*config.admin.listen, &error)) { ... }  // "127.0.0.1:8081: address..."
//   ...
//   server.stop([] { /* listener and every connection closed */ });
//
// HTTP/1.1 with keep-alive and pipelining (one response in flight per connection: the next
// request is parsed only once the previous response is written, so a client that never
// reads holds one response, not a queue). Every input is bounded:
//   - request head (request line and headers) over kMaxHeadBytes, or over kMaxHeaders
//     fields: 431, then close;
//   - body over kMaxBodyBytes (by Content-Length, or as chunks arrive): 413, then close;
//   - anything llhttp cannot parse: 400, then close;
//   - kRequestTimeoutMs from the end of the previous response (or the accept) to the end of
//     the next request, and for writing a response: then 408 (a request had begun) or a
//     plain close;
//   - at most kMaxConnections open connections; a further one is accepted and closed.
// After a response that ends the connection, the write side is shut down and what the
// client still sends is read and dropped for up to kLingerMs, so that the client reads the
// response instead of a reset.
//
// Credentials are compared in constant time; refused actions are logged at warning, at most
// one line a second (with a count of the lines left out).
#pragma once

#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "admin/stats.h"
#include "core/access_log.h"
#include "core/address.h"
#include "core/config.h"
#include "core/model.h"
#include "core/operations.h"
#include "core/uv_handle.h"

namespace tandem {

// One parsed request, as the router sees it.
struct AdminRequest {
  std::string method;                                        // "GET", "HEAD", "POST", ...
  std::string target;                                        // as sent: "/api/logs?after=3"
  std::vector<std::pair<std::string, std::string>> headers;  // in arrival order
  std::string body;
  std::string peer_ip;  // "127.0.0.1", "::1"

  // The first value of a header (names ignore case), or nullptr.
  const std::string* header(std::string_view name) const;
  int headerCount(std::string_view name) const;
};

struct AdminResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::vector<std::pair<std::string, std::string>> headers;  // beyond the common ones
  std::string body;
};

// The status line's words for the statuses this server sends ("Not Found").
const char* adminStatusText(int status);

// Byte-wise equality whose time depends only on the lengths: every byte of the longer input
// is compared, without an early exit at the first difference.
bool constantTimeEquals(std::string_view a, std::string_view b);

// RFC 4648 base64 (standard alphabet, padding required); nullopt when `text` is not.
std::optional<std::string> decodeBase64(std::string_view text);

// The body of POST /api/command: one JSON object with a string member "command" (other
// members are ignored, whatever their type). Returns the command with its escapes decoded,
// or nullopt with *error saying what is wrong ("expected a JSON object"). Nesting deeper
// than 32 levels is refused, so hostile input cannot exhaust the stack.
std::optional<std::string> parseCommandJson(std::string_view body, std::string* error);

// The CSRF guard of admin/API.md for a POST: nullopt when the request may act, or why not.
std::optional<std::string> csrfRefusal(const AdminRequest& request);

// The action credentials of [admin]: `token` (Bearer) and `users` (Basic).
class AdminAuth {
 public:
  explicit AdminAuth(const AdminConfig& config);

  // Whether any credential is configured (without one, every action is refused).
  bool configured() const { return !token_.empty() || !users_.empty(); }
  // The operator's name for the log: "token" for the Bearer token, the user's name for
  // Basic credentials; nullopt when `authorization` (the header's value) is wrong or of
  // another scheme. Every configured user is compared, whichever matches.
  std::optional<std::string> identify(std::string_view authorization) const;

 private:
  std::string token_;
  std::vector<AdminUser> users_;
};

class AdminHttpServer {
 public:
  static constexpr size_t kMaxHeadBytes = 16 * 1024;
  static constexpr int kMaxHeaders = 100;
  static constexpr size_t kMaxBodyBytes = 64 * 1024;
  static constexpr size_t kMaxConnections = 256;
  static constexpr uint64_t kRequestTimeoutMs = 30000;
  static constexpr uint64_t kLingerMs = 2000;

  // What the routes read and act on; everything must outlive the server. `rates` and
  // `access_log` may be null.
  struct Sources {
    Runtime& runtime;
    Operations& operations;
    const ProcessInfo& process;
    const RateTracker* rates = nullptr;
    const AccessLog* access_log = nullptr;
  };

  AdminHttpServer(uv_loop_t* loop, const AdminConfig& config, Sources sources);
  ~AdminHttpServer();
  AdminHttpServer(const AdminHttpServer&) = delete;
  AdminHttpServer& operator=(const AdminHttpServer&) = delete;

  // Resolves, binds and listens. False with *error ("127.0.0.1:8081: address already in
  // use") when the address cannot be had; stop() then releases what was opened.
  bool start(const HostPort& address, std::string* error);
  // Closes the listener and every connection; done runs on the loop once all are closed.
  void stop(std::function<void()> done);

  // The response to one complete request: routing, credentials, CSRF guard, the action.
  AdminResponse handle(const AdminRequest& request);

  // The port bound by start() (the one the kernel chose when asked for port 0); 0 before.
  uint16_t port() const;
  size_t connectionCount() const { return connections_.size(); }
  // Test hook: the request timeout, normally kRequestTimeoutMs.
  void setRequestTimeoutMs(uint64_t ms) { request_timeout_ms_ = ms; }

 private:
  class Connection;
  friend class Connection;

  static void onConnection(uv_stream_t* listener, int status);
  void acceptOne();
  void onConnectionClosed(Connection* connection);
  void maybeFinishStop();

  AdminResponse route(const AdminRequest& request, std::string_view path, std::string_view query);
  std::optional<AdminResponse> checkRead(const AdminRequest& request, std::string_view path);
  AdminResponse runAction(const AdminRequest& request, std::string_view path);
  AdminResponse logs(std::string_view path, std::string_view query);
  StatsView view() const;
  void warnRefused(const AdminRequest& request, std::string_view path, std::string_view why);

  uv_loop_t* loop_;
  AdminConfig config_;
  Sources sources_;
  AdminAuth auth_;
  uint64_t request_timeout_ms_ = kRequestTimeoutMs;
  std::vector<char> read_buffer_;  // every connection reads here (one thread), then copies
  UvHandle<uv_tcp_t> listener_;
  std::unordered_map<Connection*, std::unique_ptr<Connection>> connections_;
  bool stopping_ = false;
  bool listener_closed_ = false;
  std::function<void()> stop_done_;
  // Refused-attempt warnings: at most one line a second.
  uint64_t last_refusal_log_ms_ = 0;
  uint64_t refusals_unlogged_ = 0;
};

}  // namespace tandem
