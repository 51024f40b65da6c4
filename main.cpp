// tandem: the process entry point. Loads the configuration, binds the listening sockets,
// starts the workers and runs the control loop (health checks, the admin interface,
// signals) on the main thread.
#include <getopt.h>
#include <signal.h>
#include <unistd.h>
#include <uv.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "admin/service.h"
#include "admin/stats.h"
#include "core/access_log.h"
#include "core/config.h"
#include "core/dns.h"
#include "core/log.h"
#include "core/model.h"
#include "core/uv_handle.h"
#include "core/version.h"
#include "health/checker.h"
#include "health/control_operations.h"
#include "health/writer_election.h"
#include "proxy/listener.h"
#include "proxy/worker.h"

namespace tandem {
namespace {

constexpr int kExitUsage = 2;

void printUsage(FILE* out) {
  fprintf(out,
          "Usage: tandem -c FILE [--check]\n"
          "\n"
          "A layer-4/layer-7 load balancer.\n"
          "\n"
          "  -c, --config FILE  the TOML configuration to run (required)\n"
          "      --check        validate the configuration and exit: 0 valid, 1 invalid\n"
          "  -v, --version      print the version and exit\n"
          "  -h, --help         print this help and exit\n"
          "\n"
          "Signals: SIGTERM or SIGINT stop accepting, let open sessions finish for up to\n"
          "[global] hard_stop_after, then exit 0. A second signal closes them at once.\n");
}

struct Options {
  std::string config_path;
  bool check_only = false;
};

// Returns -1 to go on, or the exit code when the arguments say to stop here.
int parseArgs(int argc, char** argv, Options* opts) {
  static const option kLong[] = {{"config", required_argument, nullptr, 'c'},
                                 {"check", no_argument, nullptr, 'k'},
                                 {"version", no_argument, nullptr, 'v'},
                                 {"help", no_argument, nullptr, 'h'},
                                 {nullptr, 0, nullptr, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "c:vh", kLong, nullptr)) != -1) {
    switch (c) {
      case 'c':
        opts->config_path = optarg;
        break;
      case 'k':
        opts->check_only = true;
        break;
      case 'v':
        printf("tandem %s\n", TANDEM_VERSION);
        return 0;
      case 'h':
        printUsage(stdout);
        return 0;
      default:
        printUsage(stderr);
        return kExitUsage;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "tandem: unexpected argument \"%s\"\n", argv[optind]);
    printUsage(stderr);
    return kExitUsage;
  }
  if (opts->config_path.empty()) {
    fprintf(stderr, "tandem: a configuration file is required (-c FILE)\n");
    printUsage(stderr);
    return kExitUsage;
  }
  return -1;
}

int workerCount(const Config& config) {
  if (config.global.threads > 0) {
    return config.global.threads;
  }
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

// Binds every listen address once per worker (SO_REUSEPORT). fds[w][f] are worker w's
// sockets for frontend f. Returns false after logging the first failure.
bool bindAll(const Runtime& rt, int workers, std::vector<std::vector<std::vector<int>>>* fds) {
  fds->assign(workers, {});
  for (int w = 0; w < workers; ++w) {
    for (const auto& fe : rt.frontends()) {
      std::vector<int> mine;
      for (const HostPort& hp : fe->cfg().listen) {
        std::string error;
        int fd = bindListenSocket(hp, &error);
        if (fd < 0) {
          TLOG_ERROR("frontend %s: cannot listen on %s", fe->name().c_str(), error.c_str());
          return false;
        }
        mine.push_back(fd);
      }
      (*fds)[w].push_back(std::move(mine));
    }
  }
  return true;
}

void closeAll(const std::vector<std::vector<std::vector<int>>>& fds) {
  for (const auto& worker : fds) {
    for (const auto& frontend : worker) {
      for (int fd : frontend) {
        ::close(fd);
      }
    }
  }
}

ProcessInfo processInfo(const Options& opts, int nworkers) {
  ProcessInfo info;
  info.pid = static_cast<int>(getpid());
  info.start_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
  info.threads = nworkers;
  info.version = TANDEM_VERSION;
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) == 0) {
    info.node = host;
  }
  info.config_path = opts.config_path;
  return info;
}

// The control thread: health checks, the admin interface and signals on the main thread's
// loop, and the steps of a graceful stop.
class Control {
 public:
  Control(Runtime& rt, std::vector<std::unique_ptr<Worker>>& workers, const AccessLog* access_log,
          ProcessInfo process)
      : rt_(rt), workers_(workers), checker_(&loop_.loop, rt), election_(&loop_.loop, rt) {
    rt.setPassiveFailureHook(
        [this](Server& s, const std::string& reason) { checker_.requestMarkDown(s, reason); });
    if (rt.config().admin.enabled) {
      operations_ = std::make_unique<ControlOperations>(rt, checker_, election_);
      admin_ = std::make_unique<AdminService>(&loop_.loop, rt, *operations_, std::move(process),
                                              access_log);
    }
  }

  // Binds the admin listener and the runtime socket ([admin]) before the workers start, so
  // that an address in use stops Tandem before it takes any traffic. False after logging
  // why; nothing is left open then.
  bool startAdmin() {
    if (!admin_) {
      return true;
    }
    std::string error;
    if (!admin_->start(&error)) {
      TLOG_ERROR("%s", error.c_str());
      admin_->stop(nullptr);
      uv_run(&loop_.loop, UV_RUN_DEFAULT);  // runs the close callbacks
      return false;
    }
    if (rt_.config().admin.listen) {
      TLOG_NOTICE("admin interface on %s", admin_->url().c_str());
    }
    return true;
  }

  int run() {
    for (auto* sig : {&sigterm_, &sigint_}) {
      sig->init(uv_signal_init, &loop_.loop);
      sig->get()->data = this;
    }
    uv_signal_start(sigterm_.get(), &Control::onSignal, SIGTERM);
    uv_signal_start(sigint_.get(), &Control::onSignal, SIGINT);
    dns_.start();
    checker_.start();
    election_.start();
    uv_run(&loop_.loop, UV_RUN_DEFAULT);
    return 0;
  }

 private:
  static void onSignal(uv_signal_t* handle, int signum) {
    static_cast<Control*>(handle->data)->onStopSignal(signum);
  }

  void onStopSignal(int signum) {
    if (stopping_) {
      TLOG_NOTICE("received %s again: closing open sessions now", strsignal(signum));
      hardStop();
      return;
    }
    stopping_ = true;
    int64_t open = 0;
    for (const auto& fe : rt_.frontends()) {
      open += fe->counters.cur_conns.load();
    }
    TLOG_NOTICE("received %s: listeners closed, %lld open sessions may finish within %s",
                strsignal(signum), static_cast<long long>(open),
                formatDuration(rt_.config().global.hard_stop_after).c_str());
    for (auto& w : workers_) {
      w->requestStop();
    }
    hard_stop_.init(uv_timer_init, &loop_.loop);
    hard_stop_.get()->data = this;
    uv_timer_start(hard_stop_.get(), &Control::onHardStop,
                   rt_.config().global.hard_stop_after.count(), 0);
    poll_.init(uv_timer_init, &loop_.loop);
    poll_.get()->data = this;
    uv_timer_start(poll_.get(), &Control::onPoll, 20, 20);
  }

  static void onHardStop(uv_timer_t* t) {
    auto* self = static_cast<Control*>(t->data);
    TLOG_NOTICE("hard_stop_after reached: closing the sessions still open");
    self->hardStop();
  }

  void hardStop() {
    for (auto& w : workers_) {
      w->requestForceClose();
    }
  }

  static void onPoll(uv_timer_t* t) { static_cast<Control*>(t->data)->pollWorkers(); }

  // Once every worker's loop has ended, stop the checks and close the control handles so
  // that this loop ends too.
  void pollWorkers() {
    for (auto& w : workers_) {
      if (!w->finished()) {
        return;
      }
    }
    poll_.close();
    hard_stop_.close();
    sigterm_.close();
    sigint_.close();
    if (admin_) {
      admin_->stop(nullptr);  // kept until now: operators watch the drain on the page
    }
    election_.stop();
    dns_.stop(nullptr);
    checker_.stop([] { TLOG_NOTICE("all sessions closed, exiting"); });
  }

  Runtime& rt_;
  std::vector<std::unique_ptr<Worker>>& workers_;
  // Initialised before checker_ (members are built in declaration order), closed last.
  struct Loop {
    uv_loop_t loop{};
    Loop() { uv_loop_init(&loop); }
    ~Loop() { uv_loop_close(&loop); }
  } loop_;
  Checker checker_;
  WriterElection election_;
  DnsRefresher dns_{&loop_.loop, rt_};  // looks up server host names (core/dns.h)
  // Only with an [admin] table. Declared after what they use, so destroyed before it.
  std::unique_ptr<ControlOperations> operations_;
  std::unique_ptr<AdminService> admin_;
  UvHandle<uv_signal_t> sigterm_;
  UvHandle<uv_signal_t> sigint_;
  UvHandle<uv_timer_t> hard_stop_;
  UvHandle<uv_timer_t> poll_;
  bool stopping_ = false;
};

int runTandem(const Options& opts) {
  Config config;
  try {
    config = loadConfigFile(opts.config_path);
  } catch (const ConfigError& e) {
    fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  if (opts.check_only) {
    printf("configuration %s is valid\n", opts.config_path.c_str());
    return 0;
  }
  setLogLevel(config.global.log_level);
  signal(SIGPIPE, SIG_IGN);

  Runtime rt(std::move(config));
  std::unique_ptr<AccessLog> access_log;
  try {
    access_log = std::make_unique<AccessLog>(rt.config().global);
  } catch (const std::runtime_error& e) {
    TLOG_ERROR("%s", e.what());
    return 1;
  }
  int nworkers = workerCount(rt.config());
  std::vector<std::vector<std::vector<int>>> fds;
  if (!bindAll(rt, nworkers, &fds)) {
    return 1;
  }
  std::vector<std::unique_ptr<Worker>> workers;
  Control control(rt, workers, access_log.get(), processInfo(opts, nworkers));
  if (!control.startAdmin()) {
    closeAll(fds);
    return 1;
  }
  for (int i = 0; i < nworkers; ++i) {
    workers.push_back(std::make_unique<Worker>(rt, i, std::move(fds[i]), access_log.get()));
  }
  rt.setShutdownHook([&workers] {
    for (auto& w : workers) {
      w->requestShutdownCheck();
    }
  });
  for (auto& w : workers) {
    w->start();
  }
  for (const auto& fe : rt.frontends()) {
    std::string addrs;
    for (const HostPort& hp : fe->cfg().listen) {
      addrs += (addrs.empty() ? "" : ", ") + hp.str();
    }
    TLOG_NOTICE("frontend %s listening on %s (backend %s)", fe->name().c_str(), addrs.c_str(),
                fe->backend().name().c_str());
  }
  TLOG_NOTICE("tandem %s started with %d worker threads, pid %d", TANDEM_VERSION, nworkers,
              static_cast<int>(getpid()));
  int rc = control.run();
  for (auto& w : workers) {
    w->join();
  }
  rt.setShutdownHook(nullptr);
  rt.setPassiveFailureHook(nullptr);
  workers.clear();  // flushes their access-log buffers
  access_log->stop();
  return rc;
}

}  // namespace
}  // namespace tandem

int main(int argc, char** argv) {
  tandem::Options opts;
  int rc = tandem::parseArgs(argc, argv, &opts);
  if (rc >= 0) {
    return rc;
  }
  return tandem::runTandem(opts);
}
