// One HTTP/1.1 client connection: requests parsed strictly, each sent to a server over a
// pooled keep-alive connection, bodies streamed raw both ways with backpressure.
//
// The exchange of one request, step by step:
//   onClientData()     bytes from the client go to in_; processClient() parses the head
//   onRequestHead()    validated head: rewrite it, choose a server (cookie, then balancer)
//   acquireUpstream()  an idle pooled connection to that server, or a new one
//   sendRequestHead()  the rewritten head, then the body as it arrives (raw, framing kept)
//   onServerData()     response head (1xx forwarded, 101 starts a tunnel), then raw body
//   onResponseEnd()    access log, connection back to the pool, next pipelined request
//
// Failures that may be retried (connect failed; a reused connection closed before any
// response byte; an idempotent request without body reset) go to retryOrFail(); the others
// end in an error response (400, 408, 431, 502, 503, 504) or, once a response has started,
// in a close. The session deletes itself after its last handle closes.
#pragma once

#include <uv.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "core/model.h"
#include "core/uv_handle.h"
#include "proxy/http_message.h"
#include "proxy/http_parser.h"
#include "proxy/session.h"
#include "proxy/upstream_pool.h"

namespace tandem {

class Worker;

class HttpSession final : public Session {
 public:
  // Queued bytes above which reading from the other side pauses (see TcpSession).
  static constexpr size_t kHighWater = 256 * 1024;
  static constexpr size_t kLowWater = 64 * 1024;
  // After an error response, how long unread client bytes are drained before closing, so
  // that the response is not destroyed by a reset.
  static constexpr uint64_t kLingerMs = 1000;

  HttpSession(Worker& worker, Frontend& frontend, std::unique_ptr<UvHandle<uv_tcp_t>> client);

  void start() override;
  void close() override;
  void checkShutdown() override;
  void retryQueued() override;
  bool queued() const override { return phase_ == Phase::kQueued; }
  void onStopping() override;

 private:
  enum class Phase {
    kIdle,        // keep-alive: no byte of the next request yet
    kHead,        // reading a request head
    kQueued,      // head read, every eligible server full: waiting for a slot
    kConnecting,  // head read, connecting to the chosen server
    kExchange,    // request going up and/or response coming down
    kTunnel,      // after 101 Switching Protocols: raw bytes both ways
    kLingering,   // error response sent: draining the client before closing
    kClosing,
  };
  struct WriteReq;
  struct Side {
    size_t queued = 0;         // bytes written, not yet completed
    uint64_t last_active = 0;  // uv_now() of the last read or completed write
    bool reading = false;
  };

  ~HttpSession() override;

  // Client side.
  static void onAlloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
  static void onClientRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  void onClientData(const char* data, size_t len);
  void onClientEof();
  void processClient();
  void processClientOnce();
  bool parseHead();
  bool forwardRequestBody();
  void onRequestHead();
  void updateClientReading();

  // Choosing and reaching a server.
  bool pickServer();
  void assign(Server* server);
  void releaseServer();
  void releaseBackend();
  void acquireUpstream();
  void connectUpstream();
  static void onConnect(uv_connect_t* req, int status);
  void attachUpstream(UpstreamConn* conn);
  void sendRequestHead();
  void closeUpstream();
  void shutdownUpstream();
  void retryOrFail(const char* why, bool connect_failure);
  bool retryAllowed(bool connect_failure) const;
  void noteServerError();
  void noteServerSuccess();

  // Server side.
  static void onServerRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  void onServerData(const char* data, size_t len);
  void onServerEof(int status);
  bool onResponseHead(const char* rest, size_t rest_len);
  void onResponseEnd();
  void updateServerReading();
  void startTunnel(const char* rest, size_t rest_len);

  // Writing, errors, timers, closing.
  void writeClient(const char* data, size_t len);
  void writeServer(const char* data, size_t len);
  void write(bool to_client, const char* data, size_t len);
  static void onWrite(uv_write_t* req, int status);
  void onWritten(bool to_client, uint32_t generation, size_t len, int status);
  void sendError(int status, const char* termination);
  void finishClient();
  static void onLingerShutdown(uv_shutdown_t* req, int status);
  void armTimer(uint64_t ms);
  static void onTimer(uv_timer_t* timer);
  void onTimeout();
  void onExchangeTimeout(uint64_t now);
  void logExchange(int status);
  void resetExchange();
  void onHandleClosed();

  Worker& worker_;
  Frontend& frontend_;
  Backend& backend_;
  Phase phase_ = Phase::kIdle;
  std::unique_ptr<UvHandle<uv_tcp_t>> client_tcp_;
  UvHandle<uv_timer_t> timer_;
  int open_handles_ = 0;
  bool stopping_ = false;
  bool client_eof_ = false;
  bool in_process_ = false;     // processClient() is on the stack
  bool process_again_ = false;  // ... and was asked to run once more
  bool shutdown_sent_ = false;
  std::string client_ip_;
  int client_port_ = 0;

  std::string in_;  // client bytes not yet parsed or forwarded
  HttpParser request_parser_;
  HttpHead request_;
  std::string request_head_out_;  // the rewritten head, kept until a response starts
  std::string request_id_;
  bool keep_client_alive_ = true;
  bool request_done_ = false;     // the whole request went up
  uint64_t body_bytes_sent_ = 0;  // request body bytes forwarded (retries need 0)

  Server* server_ = nullptr;
  std::vector<const Server*> tried_;
  int retries_left_ = 0;
  int retries_done_ = 0;
  bool redispatched_ = false;
  bool backend_counted_ = false;  // this request is counted in backend cur_conns
  UpstreamConn* up_ = nullptr;
  uint32_t up_generation_ = 0;  // bumped per attached upstream: stale write callbacks
  bool force_fresh_ = false;    // a reused connection failed: the retry connects anew
  bool up_reusable_ = true;

  std::unique_ptr<HttpParser> response_parser_;
  bool response_started_ = false;    // any response byte arrived
  bool response_head_sent_ = false;  // the final response head went to the client
  bool response_until_close_ = false;
  bool interim_ = false;  // the response head being parsed is a 1xx
  int status_ = -1;

  Side client_;
  Side server_side_;

  // Timers of the current request, for the access log (uv_now() ms; 0: not reached).
  std::chrono::system_clock::time_point accept_date_;
  uint64_t t_start_ = 0;      // first byte of the request (or accept)
  uint64_t t_head_ = 0;       // head complete
  uint64_t t_assigned_ = 0;   // server chosen
  uint64_t t_connected_ = 0;  // connection ready
  uint64_t t_response_ = 0;   // response head received
  uint64_t bytes_to_client_ = 0;
  std::string termination_ = "--";
};

}  // namespace tandem
