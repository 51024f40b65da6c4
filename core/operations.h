// What an operator may do to a running Tandem: the actions behind the admin page, its HTTP
// API and the runtime UNIX socket. admin/ calls these; main implements them over the health
// checks and the writer election (admin/ and health/ do not include each other).
//
// Every call happens on the control thread. Each returns false and fills *why with a
// one-line reason when it changes nothing ("server web/web9 not found" is the caller's
// job; these see resolved objects). `who` names the operator in the log line each change
// writes: "admin alice@127.0.0.1", "socket".
#pragma once

#include <string>

#include "core/model.h"

namespace tandem {

class Operations {
 public:
  virtual ~Operations() = default;

  // READY, DRAIN (no new sessions except persistent ones, current ones continue) or MAINT
  // (no new sessions at all).
  virtual bool setAdminState(Server& server, AdminState state, const std::string& who,
                             std::string* why) = 0;
  // 0..256; 0 takes no new traffic.
  virtual bool setWeight(Server& server, int weight, const std::string& who, std::string* why) = 0;
  // Disabled: no active checks run and the server counts as UP (HAProxy's disable health).
  // Enabled again: checks resume from the current state. False for a server without checks.
  virtual bool setHealthEnabled(Server& server, bool enabled, const std::string& who,
                                std::string* why) = 0;
  // role = "writer" backends: move the writer role to `server` now.
  virtual bool setWriter(Backend& backend, Server& server, const std::string& who,
                         std::string* why) = 0;
};

}  // namespace tandem
