// The runtime API: HAProxy's stats-socket commands, one line in, text out. The UNIX socket
// and POST /api/command both go through runCommand(), on the control thread.
//
//   show info | show stat | show servers state [B] | show writer B | help
//   enable server B/S | disable server B/S
//   set server B/S state ready|drain|maint | set server B/S weight N | set weight B/S N
//   enable health B/S | disable health B/S | set writer B/S
//
// Errors are one line, in HAProxy's words where it has them ("No such server."), and change
// nothing.
#pragma once

#include <string>
#include <string_view>

#include "admin/stats.h"
#include "core/model.h"
#include "core/operations.h"

namespace tandem {

struct CommandContext {
  Runtime& runtime;
  Operations& operations;
  const StatsView& view;
  std::string who;  // for the log lines of changes: "socket", "admin alice@127.0.0.1"
};

struct CommandResult {
  bool ok = true;
  std::string output;  // HAProxy-style text; ends with "\n" unless empty
};

CommandResult runCommand(std::string_view line, CommandContext& context);

}  // namespace tandem
