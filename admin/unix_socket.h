// The runtime API's UNIX socket ([admin] socket), HAProxy's stats socket: scripts that
// drive HAProxy with `echo "show stat" | socat stdio /run/haproxy.sock` keep working.
//
//   RuntimeSocket sock(control_loop, "/run/tandem.sock",
//                      [&](std::string_view command) { return runCommand(command, context); });
//   std::string error;
//   if (!sock.start(&error)) { ... }   // "another process is listening on /run/tandem.sock"
//   ...
//   sock.stop([] { /* every handle closed, the socket file unlinked */ });
//
// Protocol, as HAProxy 2.6 answers (checked against it):
//
//   $ echo "get weight web/web1; set weight web/web1 300" | socat stdio /run/tandem.sock
//   10 (initial 10)
//
//   Absolute weight can only be between 0 and 256 inclusive.
//
//   $
//
// The client sends a line; its commands, separated by ';', run in order, each one's output
// followed by an empty line (a command without output answers just "\n"). Then the
// connection closes; lines that arrived together with the first are answered too. `run`
// gets one command at a time, without the ';'. `prompt` switches to interactive mode: the
// separator becomes "\n> " and the connection stays open until `quit`, EOF or the idle
// timeout. A last line without its newline still runs at EOF (HAProxy drops it).
//
// Safety: the socket file is created with mode 0600 (only the user Tandem runs as may send
// commands; the socket has no other authentication). A stale file left by a crashed process
// is removed at start, but if a live process accepts connections there start() refuses.
// A line longer than kMaxLine gets an error line and the connection is closed; at most
// kMaxConnections are served at once (further ones are closed at once); a connection idle
// for kIdleTimeoutMs is closed.
//
// Everything runs on the loop's thread (the control thread); `run` is called there too.
#pragma once

#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "admin/commands.h"
#include "core/uv_handle.h"

namespace tandem {

class RuntimeSocket {
 public:
  using RunFn = std::function<CommandResult(std::string_view line)>;

  static constexpr size_t kMaxLine = 64 * 1024;
  static constexpr size_t kMaxConnections = 64;
  static constexpr uint64_t kIdleTimeoutMs = 30000;

  RuntimeSocket(uv_loop_t* loop, std::string path, RunFn run);
  ~RuntimeSocket();
  RuntimeSocket(const RuntimeSocket&) = delete;
  RuntimeSocket& operator=(const RuntimeSocket&) = delete;

  // Binds and listens. False with *error (one line) if the path is in use by a live
  // process, cannot be bound, or the mode cannot be set.
  bool start(std::string* error);
  // Closes the listener and every connection and unlinks the socket file; done runs on the
  // loop once every handle is closed. Calls after the first only run done when finished.
  void stop(std::function<void()> done);

  const std::string& path() const { return path_; }
  size_t connectionCount() const { return connections_.size(); }

  // Test hook: the idle timeout, normally kIdleTimeoutMs.
  void setIdleTimeoutMs(uint64_t ms) { idle_timeout_ms_ = ms; }

 private:
  class Connection;
  friend class Connection;

  static void onConnection(uv_stream_t* server, int status);
  void accept();
  void onConnectionClosed(Connection* connection);
  void closeServer();
  void maybeFinishStop();

  uv_loop_t* loop_;
  std::string path_;
  RunFn run_;
  uint64_t idle_timeout_ms_ = kIdleTimeoutMs;
  UvHandle<uv_pipe_t> server_;
  std::list<std::unique_ptr<Connection>> connections_;
  bool listening_ = false;
  bool stopping_ = false;
  bool server_closed_ = false;
  std::vector<std::function<void()>> stop_done_;
};

}  // namespace tandem
