// HAProxy's rise/fall rule for one server: when consecutive check results flip its state.
//
// A health counter runs from 0 to rise+fall-1; the server is UP while health >= rise.
// With rise 2 and fall 3 (health 0..4):
//
//   UP, health 4 --fail--> UP 3 --fail--> UP 2 --fail--> DOWN 0   (3 failures: fall)
//   DOWN, health 0 --ok--> DOWN 1 --ok--> UP 4                    (2 successes: rise)
//
// A success on the way down earns one step back (UP 3 --ok--> UP 4); a failure on the way
// up starts over (DOWN 1 --fail--> DOWN 0), as in HAProxy. A new server starts UP but
// unchecked, and its first result decides at once (a failure means DOWN, health 0; a
// success means UP, health max), so that a dead server takes no traffic for `fall` checks
// after start-up.
//
// Pure logic, no I/O:
//
//   RiseFall rf(cfg.rise, cfg.fall);
//   if (rf.onResult(connected) == RiseFall::Transition::kWentDown) { ... }
//   uv_timer_start(timer, cb, rf.nextInterval(cfg).count(), 0);
#pragma once

#include <string>

#include "core/config.h"
#include "core/duration.h"

namespace tandem {

class RiseFall {
 public:
  enum class Transition { kNone, kWentUp, kWentDown };

  // rise and fall are at least 1 (the config loader checks). A server known to be DOWN
  // before its first check (start_up false, e.g. its address did not resolve) starts at
  // health 0 and needs `rise` successes like any DOWN server.
  RiseFall(int rise, int fall, bool start_up = true);

  Transition onResult(bool ok);
  // DOWN at once, at health 0, whatever the progress (HAProxy's on-error mark-down): like
  // any DOWN server it then needs `rise` successes. kWentDown unless it was DOWN already.
  Transition markDown();

  bool up() const { return up_; }
  bool checked() const { return checked_; }
  int health() const { return health_; }
  int maxHealth() const { return rise_ + fall_ - 1; }

  // HAProxy's status words: "UP", "DOWN", or while moving "UP n/fall" (n more failures take
  // it DOWN) and "DOWN n/rise" (n successes seen so far). With fall 3, one failure after
  // full health shows "UP 2/3", the next "UP 1/3"; checked against HAProxy 2.6's stats.
  std::string progress() const;

  // How long to wait before the next check: `interval` at full health, `downinter` at
  // health 0 while DOWN, `fastinter` anywhere in between, so that a change is confirmed
  // (or dismissed) quickly.
  Millis nextInterval(const CheckConfig& cfg) const;

 private:
  Transition onFirstResult(bool ok);
  Transition onSuccess();
  Transition onFailure();

  int rise_;
  int fall_;
  int health_;
  bool up_;
  bool checked_;
};

}  // namespace tandem
