// One proxied TCP connection: a client accepted on a frontend, tunnelled to one server.
//
// Steps, each a method:
//   start()            choose a server (or wait in the queue while every server is full)
//   connectServer()    open the server connection, bounded by timeout_connect
//   onConnected()      on failure, retry the next eligible server up to `retries` times;
//                      on success, start copying both ways
//   onRead()/onWritten()  copy with backpressure: reading from one side stops while more
//                      than kHighWater bytes wait to be written to the other
//   onEof()            half-close: the peer's write side is shut once what is queued is sent
//   close()            closes every handle; the session deletes itself in the last close
//                      callback (deferred deletion: it may be closed from its own callbacks)
//
// A session lives its whole life on one worker's loop and is touched by no other thread.
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "core/model.h"
#include "core/uv_handle.h"
#include "proxy/session.h"

namespace tandem {

class Worker;

class TcpSession final : public Session {
 public:
  // Bytes queued for one side above which Tandem stops reading from the other side, and
  // the level under which it reads again. With 32 KiB reads a session holds at most about
  // 288 KiB per direction, whatever the speed difference between client and server.
  static constexpr size_t kHighWater = 256 * 1024;
  static constexpr size_t kLowWater = 64 * 1024;

  TcpSession(Worker& worker, Frontend& frontend, std::unique_ptr<UvHandle<uv_tcp_t>> client);

  void start() override;
  void checkShutdown() override;
  void retryQueued() override;
  bool queued() const override { return phase_ == Phase::kQueued; }
  void close() override;

 private:
  enum class Phase { kQueued, kConnecting, kStreaming, kClosing };

  // One direction's state: the side it reads from and how much waits to be written to the
  // other side.
  struct Side {
    UvHandle<uv_tcp_t>* tcp = nullptr;
    bool reading = false;
    bool eof = false;          // this side sent FIN
    bool shut = false;         // we shut this side's write direction
    size_t queued_bytes = 0;   // written to this side, not yet completed
    uint64_t last_active = 0;  // uv_now() of the last read from or write to this side
  };
  struct ServerConn;
  struct WriteReq;
  struct ShutdownReq;

  ~TcpSession() override;

  bool pickServer();
  Server* readerFallback();
  void assign(Server* server);
  void release();
  void connectServer();
  static void onConnect(uv_connect_t* req, int status);
  void onConnected(int status);
  void onConnectFailed(const char* why);
  void notePassiveFailure(Server& server, const char* why);
  void startStreaming();

  static void onAlloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
  static void onReadClient(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  static void onReadServer(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  void onRead(Side& from, Side& to, ssize_t nread, const uv_buf_t* buf);
  void forward(Side& to, char* data, size_t len);
  static void onWrite(uv_write_t* req, int status);
  void onWritten(Side& to, size_t len, int status);
  void onEof(Side& from, Side& to);
  static void onShutdown(uv_shutdown_t* req, int status);
  void updateReading(Side& from, const Side& to);
  void countBytes(bool from_client, size_t len);

  void armTimer(uint64_t timeout_ms);
  static void onTimer(uv_timer_t* timer);
  void onIdleCheck();
  void onHandleClosed();
  Side& peerOf(Side& side) { return &side == &client_ ? server_ : client_; }

  Worker& worker_;
  Frontend& frontend_;
  Backend& backend_;
  Phase phase_ = Phase::kQueued;
  std::unique_ptr<UvHandle<uv_tcp_t>> client_tcp_;
  ServerConn* conn_ = nullptr;  // current server connection; owned until its close callback
  UvHandle<uv_timer_t> timer_;
  Side client_;
  Side server_;
  Server* server_choice_ = nullptr;
  uint32_t server_epoch_ = 0;
  std::vector<const Server*> tried_;
  int retries_left_;
  uint64_t queued_since_ = 0;
  int open_handles_ = 0;
};

}  // namespace tandem
