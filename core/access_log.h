// The HTTP access log: one line per request, in HAProxy's httplog layout or as one JSON
// object, written to stdout, to a file (appended to) or nowhere ([global] access_log and
// log_format).
//
//   127.0.0.1:41234 [03/Dec/2026:13:01:02.345] web-in web/web1 0/0/1/3/4 200 187 - - ----
//     1/1/0/0/0 0/0 "GET /index.php HTTP/1.1"          (one line, wrapped here)
//
// Workers never wait for the destination and take no lock per request. Each worker owns an
// AccessLog::Buffer: add() formats into a per-worker string; flush() hands the batch to the
// writer thread under one short lock. The writer thread makes the write(2) calls. When the
// destination falls more than 8 MiB behind, new batches are dropped and counted instead of
// queued without bound, with at most one warning a second saying how many.
//
//   AccessLog log(config.global);      // throws std::runtime_error if the file cannot open
//   auto buffer = log.makeBuffer();    // once per worker, on that worker
//   buffer->add(record);               // per request
//   buffer->flush();                   // from a ~100 ms timer (add() also flushes past 64 KiB)
//   log.stop();                        // at shutdown: writes what is pending, joins the thread
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/duration.h"

namespace tandem {

// HAProxy's five httplog timers, in ms; -1 means the step did not happen (no server was
// chosen, the connection failed, no response came...).
struct AccessLogTimers {
  int64_t request = -1;   // TR: from the first byte to the end of the request head
  int64_t queue = -1;     // Tw: waiting in a queue for a server slot
  int64_t connect = -1;   // Tc: the TCP connect to the server, retries included
  int64_t response = -1;  // Tr: from the request sent to the response head received
  int64_t active = -1;    // Ta: from the first byte of the request to the last byte sent
};

// What one request leaves in the access log (HAProxy's httplog fields). Built by the HTTP
// session when the response ends (or the request fails) and passed to Buffer::add().
struct AccessLogRecord {
  std::string client_ip;  // "127.0.0.1", "::1" (without brackets, as HAProxy prints it)
  int client_port = 0;
  std::chrono::system_clock::time_point accept_date;  // printed in UTC, to the millisecond
  std::string frontend;
  std::string backend;  // empty: none chosen yet; printed as the frontend's name (HAProxy)
  std::string server;   // empty: none; printed as "<NOSRV>"
  AccessLogTimers timers;
  int status = -1;          // the status sent to the client; -1: none was sent
  uint64_t bytes_sent = 0;  // to the client, headers included
  // HAProxy's four letters: who ended the session, in which phase, and the persistence
  // cookie's state on the request and the response: "----", "CD--", "sH--", "SC--", "--NI".
  std::string termination_state = "----";
  int actconn = 0;            // connections open on the whole process
  int feconn = 0;             // on the frontend
  int beconn = 0;             // on the backend
  int srv_conn = 0;           // on the server
  int retries = 0;            // connection retries for this request
  bool redispatched = false;  // a retry went to another server: printed "+N"
  int srv_queue = 0;
  int backend_queue = 0;
  // "GET /path HTTP/1.1" as the client sent it (hostile input). Only the first
  // kMaxRequestLine bytes are logged; empty: no valid request line, printed "<BADREQ>".
  std::string request_line;
  std::string request_id;  // X-Request-Id; in the JSON form only (httplog has no field)
};

// HAProxy's default tune.http.logurilen.
inline constexpr size_t kMaxRequestLine = 1024;

// One line, without its newline, in HAProxy 2.6's httplog layout:
//   %ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc %ac/%fc/%bc/%sc/%rc %sq/%bq
//   %hr %hs %{+Q}r
// Tandem captures no cookies (%CC %CS print "-") and no headers (%hr %hs print nothing,
// and HAProxy then writes no extra space). In the request line, bytes below 0x20, from 0x7F
// up, '"' and '#' become #XX (hex), as HAProxy writes them, so no client can break a line.
std::string formatHttplog(const AccessLogRecord& record);
void appendHttplog(std::string& out, const AccessLogRecord& record);

// One JSON object, without its newline, with the same fields and values (backend and
// server shown as in httplog, "<NOSRV>" included; an empty request line stays ""):
//   {"client_ip":"127.0.0.1","client_port":41234,"accept_date":"2026-12-03T13:01:02.345Z",
//    "frontend":"web-in","backend":"web","server":"web1","timers":{"request_ms":0,
//    "queue_ms":0,"connect_ms":1,"response_ms":3,"active_ms":4},"status":200,"bytes":187,
//    "termination_state":"----","actconn":1,"feconn":1,"beconn":0,"srv_conn":0,"retries":0,
//    "redispatched":false,"srv_queue":0,"backend_queue":0,
//    "request":"GET /index.php HTTP/1.1","request_id":"..."}
// Strings escape '"' and '\\', control bytes and DEL as \u00XX, and each byte that does not
// begin a valid UTF-8 sequence as \ufffd, so every line parses whatever the client sent.
std::string formatJson(const AccessLogRecord& record);
void appendJson(std::string& out, const AccessLogRecord& record);

// The writer's bounds; tests shrink them.
struct AccessLogLimits {
  size_t max_pending_bytes = size_t{8} << 20;  // handed over but not yet written
  size_t flush_bytes = size_t{64} << 10;       // Buffer::add() flushes by itself past this
  size_t recent_lines = 200;                   // kept for the admin page
  // How long stop() keeps trying to write to a destination that accepts nothing (a pipe
  // nobody reads) before it drops the rest, so that shutdown cannot hang on the log.
  Millis stop_timeout = Millis(2000);
};

class AccessLog {
  class Writer;  // the queue, the thread and the file; in access_log.cpp

 public:
  // One worker's lines waiting to be handed over. Not thread-safe: one per worker. It may
  // outlive its AccessLog: lines flushed after stop() are counted as dropped.
  class Buffer {
   public:
    ~Buffer();  // flushes

    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;

    // Formats and appends one line; no lock, no system call unless it flushes past
    // AccessLogLimits::flush_bytes. Does nothing when the log is "off".
    void add(const AccessLogRecord& record);
    // Hands the lines added so far to the writer thread: one lock, never waits for I/O.
    void flush();
    size_t pendingBytes() const { return text_.size(); }

   private:
    friend class AccessLog;
    Buffer(std::shared_ptr<Writer> writer, LogFormat format, size_t flush_bytes);

    std::shared_ptr<Writer> writer_;  // null when access_log = "off"
    LogFormat format_;
    size_t flush_bytes_;
    std::string text_;
    size_t lines_ = 0;
  };

  // Opens global.access_log ("stdout", "off", or a file path opened for append) and starts
  // the writer thread. Throws std::runtime_error("access_log PATH: REASON") when the file
  // cannot be opened.
  explicit AccessLog(const GlobalConfig& global, const AccessLogLimits& limits = {});
  ~AccessLog();  // stop()

  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  bool enabled() const { return writer_ != nullptr; }
  std::unique_ptr<Buffer> makeBuffer();

  // Writes what was flushed before the call (giving up after AccessLogLimits::stop_timeout
  // if the destination accepts nothing), joins the writer thread and closes the file.
  // Safe to call twice and from any thread.
  void stop();

  // Lines lost: dropped past max_pending_bytes, to a write error, or flushed after stop().
  uint64_t droppedLines() const;
  // The last `max` lines written (at most AccessLogLimits::recent_lines), oldest first,
  // without newlines. Thread-safe.
  std::vector<std::string> recentLines(size_t max) const;

 private:
  LogFormat format_;
  AccessLogLimits limits_;
  std::shared_ptr<Writer> writer_;  // null when access_log = "off"
};

}  // namespace tandem
