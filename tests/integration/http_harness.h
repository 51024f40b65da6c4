// HTTP side of the integration harness: real `php -S` web servers running tests/app, a strict
// little HTTP/1.1 reader for both ends (client responses, server requests), raw-socket HTTP
// servers for what PHP cannot produce, and a bounded load generator.
//
//   class MyHttpTest : public HttpTest {};
//   TEST_F(MyHttpTest, Hello) {
//     PhpServer web1("web1");
//     ASSERT_TRUE(web1.start());
//     ConfigSpec spec = httpSpec({{"web1", web1.port()}});
//     ASSERT_NO_FATAL_FAILURE(startTandem(spec));
//     Socket c = connectTo(spec.frontendPort());
//     std::optional<HttpResponse> r = roundTrip(c, getRequest("/"));
//     ASSERT_TRUE(r);
//     EXPECT_EQ(r->body, "web1");
//   }
//
// Like the rest of the harness, every read takes a deadline and failure is a value
// (std::nullopt), so tests assert instead of hanging.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "tests/integration/harness.h"

namespace tandem::it {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

// A case-insensitive view of a header list (HTTP field names ignore case).
struct Headers {
  HeaderList fields;

  // The first value of `name`, or nullopt.
  std::optional<std::string> get(std::string_view name) const;
  int count(std::string_view name) const;
  bool has(std::string_view name) const { return count(name) > 0; }
};

bool equalsIgnoreCase(std::string_view a, std::string_view b);

// ---------------------------------------------------------------------------------------
// Client side

struct HttpResponse {
  int status = 0;
  std::string head;  // status line and header lines exactly as received, up to the blank line
  Headers headers;
  std::string body;  // decoded when the response was chunked
  bool chunked = false;

  bool closes() const;  // the response carries `Connection: close`
};

// Reads one response from `sock`, consuming exactly its bytes so that the next response
// (pipelining, keep-alive) stays in the socket. `head_request`: the request was HEAD, so
// no body follows whatever the headers say. nullopt on timeout, EOF or malformed framing.
std::optional<HttpResponse> readResponse(Socket& sock, milliseconds timeout = kIoTimeout,
                                         bool head_request = false);

// "GET path HTTP/1.1" with Host and the given extra header lines ("Name: value\r\n" each).
std::string getRequest(const std::string& path, const std::string& extra_headers = "");
// A request with a Content-Length body.
std::string postRequest(const std::string& path, const std::string& body,
                        const std::string& extra_headers = "");
// A request whose body is chunked: chunk sizes cycle through `sizes`.
std::string chunkedPostRequest(const std::string& path, const std::string& body,
                               const std::vector<size_t>& sizes);

// Sends `request` (from a second thread, so that a large body cannot deadlock against a
// response already streaming back) and reads one response.
std::optional<HttpResponse> roundTrip(Socket& sock, const std::string& request,
                                      milliseconds timeout = kIoTimeout, bool head_request = false);

// One request on a new connection to 127.0.0.1:port; the connection is then closed.
std::optional<HttpResponse> fetch(uint16_t port, const std::string& request,
                                  milliseconds timeout = kIoTimeout);

// The body that tests/app's /big sends: byte i is i % 251.
std::string bigPattern(size_t bytes);

// ---------------------------------------------------------------------------------------
// Server side: raw HTTP servers on TestServer.

struct HttpRequest {
  std::string method;
  std::string target;
  std::string version;
  std::string head;  // request line and header lines as received, up to the blank line
  Headers headers;
  std::string body;  // decoded when chunked
};

// What one raw server received, across all its connections. Thread-safe.
class ServerLog {
 public:
  void addBytes(const std::string& bytes);
  void addRequest(const HttpRequest& request);
  std::string bytes() const;  // every byte received, in arrival order per connection
  std::vector<HttpRequest> requests() const;
  size_t requestCount() const;

 private:
  mutable std::mutex mu_;
  std::string bytes_;
  std::vector<HttpRequest> requests_;
};

// Builds the raw response for one request. An empty string closes the connection without
// answering.
using Responder = std::function<std::string(const HttpRequest&)>;

// Serves requests on a keep-alive connection until the client closes, the responder returns
// "" or a response carrying `Connection: close`. Answers `Expect: 100-continue` with a 100
// before reading the body. Everything received goes to `log` (may be null), including bytes
// that do not parse as a request.
Handler httpHandler(Responder respond, std::shared_ptr<ServerLog> log = nullptr);
// Reads a request head, then answers `reply` verbatim and closes.
Handler rawReplyHandler(std::string reply, std::shared_ptr<ServerLog> log = nullptr);
// Reads a request head and never answers; returns when the peer closes.
Handler silentHandler(std::shared_ptr<ServerLog> log = nullptr);
// Answers 101 Switching Protocols to the first request, then echoes raw bytes.
Handler upgradeEchoHandler(std::shared_ptr<ServerLog> log = nullptr);

// "HTTP/1.1 <status> <reason>" with Content-Length, Content-Type text/plain, `extra` header
// lines, and the body.
std::string textResponse(int status, const std::string& body, const std::string& extra = "");
// A 200 whose chunked body has chunk sizes cycling through `sizes`, then `trailers` (header
// lines) after the last chunk.
std::string chunkedResponse(const std::string& body, const std::vector<size_t>& sizes,
                            const std::string& trailers = "");
// Answers every request with 200 and the request target as the body.
Responder targetResponder();

// ---------------------------------------------------------------------------------------
// PHP web servers

// `php -S 127.0.0.1:PORT tests/app/router.php` with PHP_CLI_SERVER_WORKERS=4 and
// WEB_NAME=name, in its own process group so that kill() takes its workers too. The port
// is fixed at construction, so a restarted server comes back where tandem expects it.
class PhpServer {
 public:
  explicit PhpServer(std::string name, std::map<std::string, std::string> env = {});
  ~PhpServer();
  PhpServer(const PhpServer&) = delete;
  PhpServer& operator=(const PhpServer&) = delete;

  const std::string& name() const { return name_; }
  uint16_t port() const { return port_; }
  // Starts php and waits until GET /health answers with the name: true, or false on timeout
  // or if php exited (the reason is in log()).
  bool start();
  // SIGKILL to php and its workers; returns once the port no longer listens.
  void kill();
  // The status that /health answers with from now on.
  void setHealth(int status);
  std::string log() const;

 private:
  bool waitReady(Clock::time_point deadline);
  bool exited();

  std::string name_;
  std::map<std::string, std::string> env_;
  uint16_t port_;
  TempDir dir_;  // session files, the health file, php's log
  pid_t pid_ = -1;
};

// The app's router, found from this source file's place in the tree.
std::string phpRouterPath();

// ---------------------------------------------------------------------------------------
// Load

struct LoadResult {
  int ok = 0;
  int failed = 0;
  std::vector<std::string> failures;  // the first few, for the failure message
  std::map<std::string, int> bodies;  // body -> count, over successful requests
};

// `threads` clients each sending keep-alive GETs of `path` until `duration` passes or
// `max_per_thread` requests are done. A request fails when its response is not a 200 or
// does not arrive (kIoTimeout). A client reconnects when tandem closes its connection
// between requests.
class GetLoad {
 public:
  GetLoad(uint16_t port, std::string path, int threads, milliseconds duration, int max_per_thread);
  ~GetLoad();
  GetLoad(const GetLoad&) = delete;
  GetLoad& operator=(const GetLoad&) = delete;

  // Joins the clients (they end by themselves) and sums their results.
  LoadResult wait();

 private:
  void client(LoadResult* out);

  uint16_t port_;
  std::string path_;
  int max_per_thread_;
  Clock::time_point deadline_;
  std::vector<LoadResult> results_;
  std::vector<std::thread> threads_;
};

// ---------------------------------------------------------------------------------------
// Small helpers

// Parses one JSON object, flattening nested objects and arrays into "a.b" / "a.0" keys.
// Strings are unescaped, other scalars kept as written. nullopt when `text` is not one
// JSON object.
std::optional<std::map<std::string, std::string>> parseJsonObject(std::string_view text);

// The lines of `text` that contain `needle`.
std::vector<std::string> linesWith(const std::string& text, const std::string& needle);

// Fixture: the IntegrationTest with HTTP defaults.
class HttpTest : public IntegrationTest {
 protected:
  // One HTTP frontend "fe" on a free port in front of HTTP backend "be", without checks.
  static ConfigSpec httpSpec(std::vector<ServerSpec> servers);
};

}  // namespace tandem::it
