// Everything the admin side runs on the control thread, bundled for main: the per-second
// rate sampling (RateTracker on a 1 s timer), the HTTP listener ([admin] listen) and the
// runtime UNIX socket ([admin] socket), all reading the same Runtime and acting through the
// same Operations.
//
//   AdminService admin(control_loop, runtime, operations, process_info, access_log);
//   std::string error;
//   if (!admin.start(&error)) { TLOG_ERROR("%s", error.c_str()); return 1; }
//   ...                                      // the loop runs
//   admin.stop([] { /* every admin handle closed */ });
//
// admin/ reaches the health checks only through core/operations.h (main passes the
// implementation), so it includes neither health/ nor proxy/.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "admin/commands.h"
#include "admin/http_server.h"
#include "admin/stats.h"
#include "admin/unix_socket.h"
#include "core/access_log.h"
#include "core/model.h"
#include "core/operations.h"
#include "core/uv_handle.h"

namespace tandem {

class AdminService {
 public:
  // `access_log` may be null (no access log: the page shows no access lines). Everything
  // passed must outlive the service.
  AdminService(uv_loop_t* loop, Runtime& runtime, Operations& operations, ProcessInfo process,
               const AccessLog* access_log);
  ~AdminService();
  AdminService(const AdminService&) = delete;
  AdminService& operator=(const AdminService&) = delete;

  // Binds the HTTP listener and the UNIX socket that [admin] asks for and starts sampling.
  // False with *error naming what could not be had ("admin listen 127.0.0.1:8081: address
  // already in use"); call stop() then too, to release what had been opened.
  bool start(std::string* error);
  // Closes the listener, the socket and the timer; done runs on the loop once all are closed.
  void stop(std::function<void()> done);

  // "http://127.0.0.1:8081/" for the start-up line; empty without an HTTP listener.
  std::string url() const;

  // The runtime commands as the UNIX socket runs them (who = "socket").
  CommandResult runSocketCommand(std::string_view line);

 private:
  static void onSample(uv_timer_t* timer);
  void finishStopStep();

  uv_loop_t* loop_;
  Runtime& runtime_;
  Operations& operations_;
  ProcessInfo process_;
  const AccessLog* access_log_;
  RateTracker rates_;
  UvHandle<uv_timer_t> sample_timer_;
  std::unique_ptr<AdminHttpServer> http_;
  std::unique_ptr<RuntimeSocket> socket_;
  int stop_pending_ = 0;
  std::function<void()> stop_done_;
};

}  // namespace tandem
