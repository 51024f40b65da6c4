// A layer-7 check (`type = "http"`): the server is healthy when, over a fresh TCP
// connection, it answers one request with a status that the check's `expect` accepts, all
// within the check timeout. Only the response head is read; the body is never waited for.
//
// The request, with HOST the configured `host` or else the server's "ip:port":
//
//   GET /health.php HTTP/1.1\r\n
//   Host: HOST\r\n
//   User-Agent: tandem-check\r\n
//   Connection: close\r\n
//   \r\n
//
// One probe, each step a method; the outcomes use HAProxy's check_status words. The
// connect, the timeout and the close are TcpCheck's (the base class):
//   startProbe()          reset the response parser, then TcpCheck's connect
//   onConnectFailed()     L4CON with libuv's text, or SOCKERR (TcpCheck's)
//   onConnected()         write the request and start reading
//   onResponseBytes()     feed llhttp until the head is complete, then:
//     onHead()            L7OK  "Layer7 check passed: 200 OK"
//                         L7STS "Layer7 wrong status: 503 Service Unavailable"
//   onResponseInvalid()   L7RSP "Layer7 invalid response": not HTTP, closed before the head
//                         was complete, or a head over kMaxHeadBytes
//   onIoError()           SOCKERR with libuv's text: the connection broke after it was made
//                         (HAProxy reports I/O errors after the connect the same way)
//   onTimeout()           L4TOUT "connection timeout" while connecting, else L7TOUT
//                         "Layer7 timeout"
//   endProbe()            keep the result, close the socket; onSocketClosed() hands the
//                         result to Check::finishProbe()
//
// The connect and write requests may call back (with UV_ECANCELED) after a timeout, a
// close() or the destruction of this object, so both live on the heap: the connect with a
// pointer back to its owner, cleared when the owner stops waiting for it; the write with
// nothing that needs its owner (its outcome is left to the read side). Reads need no such
// care: libuv makes no read callback once the socket's close has begun.
#pragma once

#include <llhttp.h>
#include <uv.h>

#include <array>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>

#include "core/uv_handle.h"
#include "health/tcp_check.h"

namespace tandem {

class HttpCheck final : public TcpCheck {
 public:
  HttpCheck(uv_loop_t* loop, Server& server, const CheckConfig& cfg, TransitionFn on_transition);

  // The bytes sent by each probe to `server` (exposed for tests and for documentation).
  static std::string buildRequest(const CheckConfig& cfg, const Server& server);
  // True when `status` falls in one of cfg.expect's ranges.
  static bool expects(const CheckConfig& cfg, int status);

  // A status line and headers larger than this are not a health answer: L7RSP.
  static constexpr size_t kMaxHeadBytes = 16384;

 protected:
  void startProbe() override;
  void onConnected() override;
  void onTimeout() override;

 private:
  struct WriteRequest;

  void resetResponse();
  int sendRequest();
  static void onWrite(uv_write_t* req, int status);
  static void onAlloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
  static void onRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  void onResponseBytes(const char* data, size_t len);
  void onHead();
  void onResponseInvalid();
  void onIoError(int status);
  static int onStatusText(llhttp_t* parser, const char* at, size_t len);
  static int onHeadersComplete(llhttp_t* parser);

  llhttp_t parser_{};
  size_t head_bytes_ = 0;    // response bytes read so far in this probe
  std::string status_text_;  // the reason phrase, as far as received
  bool head_done_ = false;   // llhttp reached the end of the head
  std::array<char, 4096> read_buffer_{};
};

}  // namespace tandem
