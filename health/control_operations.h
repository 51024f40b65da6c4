// The operator's actions (core/operations.h) over the running health checks and the writer
// election: what the admin page, POST /api/command and the runtime socket end up calling.
//
//   ControlOperations operations(runtime, checker, election);
//   std::string why;
//   operations.setAdminState(server, AdminState::kDrain, "socket", &why);
//
// Each change writes one log line in HAProxy's words, naming the operator:
//   "server web/web1 is going DRAIN by socket. 1 active and 0 backup servers left."
// A call that changes nothing (already in that state) returns true and logs nothing.
// Everything runs on the control thread, the loop the Checker and the WriterElection use.
#pragma once

#include <string>

#include "core/model.h"
#include "core/operations.h"
#include "health/checker.h"
#include "health/writer_election.h"

namespace tandem {

class ControlOperations : public Operations {
 public:
  ControlOperations(Runtime& runtime, Checker& checker, WriterElection& election);

  bool setAdminState(Server& server, AdminState state, const std::string& who,
                     std::string* why) override;
  bool setWeight(Server& server, int weight, const std::string& who, std::string* why) override;
  bool setHealthEnabled(Server& server, bool enabled, const std::string& who,
                        std::string* why) override;
  bool setWriter(Backend& backend, Server& server, const std::string& who,
                 std::string* why) override;

 private:
  Checker& checker_;
  WriterElection& election_;
};

}  // namespace tandem
