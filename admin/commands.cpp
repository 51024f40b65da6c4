#include "admin/commands.h"

#include <charconv>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tandem {

namespace {

// The words of one command: split on blanks, as HAProxy's CLI does (no quoting).
std::vector<std::string_view> splitWords(std::string_view command) {
  std::vector<std::string_view> words;
  size_t i = 0;
  while (i < command.size()) {
    while (i < command.size() && (command[i] == ' ' || command[i] == '\t')) {
      ++i;
    }
    size_t start = i;
    while (i < command.size() && command[i] != ' ' && command[i] != '\t') {
      ++i;
    }
    if (i > start) {
      words.push_back(command.substr(start, i - start));
    }
  }
  return words;
}

bool parseInt(std::string_view text, long* value) {
  if (text.empty()) {
    return false;
  }
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *value);
  return ec == std::errc() && end == text.data() + text.size();
}

CommandResult okOutput(std::string output) {
  return CommandResult{true, std::move(output)};
}

CommandResult error(std::string line) {
  return CommandResult{false, std::move(line) + "\n"};
}

// One command with its arguments, and what it runs against.
struct Call {
  std::vector<std::string_view> args;  // after the command's own words
  CommandContext& context;
};

// ---------------------------------------------------------------------------------------
// Resolving names.

// "backend/server" to the server, or false and the HAProxy error line in *result.
Server* findServer(std::string_view arg, CommandContext& context, CommandResult* result) {
  size_t slash = arg.find('/');
  if (arg.empty() || slash == std::string_view::npos || slash == 0 || slash + 1 == arg.size()) {
    *result = error("Require 'backend/server'.");
    return nullptr;
  }
  Backend* backend = context.runtime.findBackend(std::string(arg.substr(0, slash)));
  if (backend == nullptr) {
    *result = error("No such backend.");
    return nullptr;
  }
  Server* server = backend->findServer(std::string(arg.substr(slash + 1)));
  if (server == nullptr) {
    *result = error("No such server.");
    return nullptr;
  }
  return server;
}

// An Operations call's outcome: nothing on success, the reason as the error line.
CommandResult operationResult(bool ok, const std::string& why) {
  if (ok) {
    return okOutput("");
  }
  return error(why.empty() ? "The operation failed." : why);
}

// ---------------------------------------------------------------------------------------
// The table of commands.

struct Command {
  std::vector<std::string_view> words;  // "set", "server"
  std::string_view usage;               // for help: the words and their arguments
  std::string_view description;
  std::function<CommandResult(Call&)> run;
};

const std::vector<Command>& commands();

std::string helpText() {
  std::string text;
  for (const Command& command : commands()) {
    std::string usage(command.usage);
    if (usage.size() < 40) {
      usage.resize(40, ' ');
    }
    text += "  " + usage + ": " + std::string(command.description) + "\n";
  }
  return text;
}

CommandResult unknownCommand() {
  return CommandResult{
      false, "Unknown command. Please enter one of the following commands only:\n" + helpText()};
}

CommandResult runHelp(Call&) {
  return okOutput(helpText());
}

// The UNIX socket handles these two itself (they act on the connection); over HTTP there is
// no connection to act on.
CommandResult runSocketOnly(Call&) {
  return error("'prompt' and 'quit' only apply to the runtime socket.");
}

CommandResult runShowInfo(Call& call) {
  return okOutput(renderShowInfo(call.context.view));
}

// ---------------------------------------------------------------------------------------
// show stat [{<iid>|<proxy>} <type> <sid>] [up|no-maint]
//
// HAProxy's filters, applied to the rendered rows: <iid> a proxy id or name (-1: all),
// <type> a sum of 1 (frontends), 2 (backends) and 4 (servers) (-1: all), <sid> a server id
// (-1: all; it only filters server rows). "up" keeps only UP servers, "no-maint" drops
// servers in maintenance.

struct StatFilter {
  bool bounded = false;
  std::string proxy;  // by name; empty: by iid
  long iid = -1;
  long types = -1;
  long sid = -1;
  bool only_up = false;
  bool no_maint = false;
};

// Splits one CSV row. Quoted fields ("a,b", with "" for a quote) are kept whole.
std::vector<std::string> splitCsv(std::string_view row) {
  std::vector<std::string> fields(1);
  bool quoted = false;
  for (size_t i = 0; i < row.size(); ++i) {
    char c = row[i];
    if (quoted) {
      if (c == '"' && i + 1 < row.size() && row[i + 1] == '"') {
        fields.back() += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        fields.back() += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      fields.emplace_back();
    } else {
      fields.back() += c;
    }
  }
  return fields;
}

struct CsvColumns {
  int pxname = -1;
  int svname = -1;
  int iid = -1;
  int sid = -1;
  int type = -1;
};

CsvColumns findColumns(std::string_view header) {
  if (header.substr(0, 2) == "# ") {
    header.remove_prefix(2);
  }
  CsvColumns columns;
  std::vector<std::string> names = splitCsv(header);
  for (size_t i = 0; i < names.size(); ++i) {
    int index = static_cast<int>(i);
    const std::string& name = names[i];
    if (name == "pxname") {
      columns.pxname = index;
    } else if (name == "svname") {
      columns.svname = index;
    } else if (name == "iid") {
      columns.iid = index;
    } else if (name == "sid") {
      columns.sid = index;
    } else if (name == "type") {
      columns.type = index;
    }
  }
  return columns;
}

long fieldNumber(const std::vector<std::string>& fields, int index) {
  long value = -1;
  if (index >= 0 && static_cast<size_t>(index) < fields.size()) {
    parseInt(fields[static_cast<size_t>(index)], &value);
  }
  return value;
}

std::string fieldText(const std::vector<std::string>& fields, int index) {
  if (index < 0 || static_cast<size_t>(index) >= fields.size()) {
    return "";
  }
  return fields[static_cast<size_t>(index)];
}

// CSV type 0 frontend, 1 backend, 2 server; the filter's bits 1, 2 and 4.
bool keepRow(const std::vector<std::string>& fields, const CsvColumns& columns,
             const StatFilter& filter, const Runtime& runtime) {
  long type = fieldNumber(fields, columns.type);
  if (filter.bounded) {
    if (filter.proxy.empty() ? (filter.iid != -1 && fieldNumber(fields, columns.iid) != filter.iid)
                             : fieldText(fields, columns.pxname) != filter.proxy) {
      return false;
    }
    if (filter.types != -1 && (type < 0 || type > 2 || (filter.types & (1L << type)) == 0)) {
      return false;
    }
    if (type == 2 && filter.sid != -1 && fieldNumber(fields, columns.sid) != filter.sid) {
      return false;
    }
  }
  if (type != 2 || (!filter.only_up && !filter.no_maint)) {
    return true;
  }
  const Backend* backend = runtime.findBackend(fieldText(fields, columns.pxname));
  const Server* server =
      backend == nullptr ? nullptr : backend->findServer(fieldText(fields, columns.svname));
  if (server == nullptr) {
    return true;
  }
  if (filter.no_maint && server->admin.load() == AdminState::kMaint) {
    return false;
  }
  return !filter.only_up || (server->up.load() && server->admin.load() != AdminState::kMaint);
}

std::string filterCsv(const std::string& csv, const StatFilter& filter, const Runtime& runtime) {
  std::string out;
  CsvColumns columns;
  size_t start = 0;
  bool header = true;
  while (start < csv.size()) {
    size_t end = csv.find('\n', start);
    if (end == std::string::npos) {
      end = csv.size();
    }
    std::string_view row(csv.data() + start, end - start);
    if (header) {
      columns = findColumns(row);
      header = false;
      out.append(row).append("\n");
    } else if (row.empty() || keepRow(splitCsv(row), columns, filter, runtime)) {
      out.append(row).append("\n");
    }
    start = end + 1;
  }
  return out;
}

CommandResult parseStatFilter(const std::vector<std::string_view>& args, const Runtime& runtime,
                              StatFilter* filter) {
  std::vector<std::string_view> numbers;
  for (std::string_view arg : args) {
    if (arg == "up") {
      filter->only_up = true;
    } else if (arg == "no-maint") {
      filter->no_maint = true;
    } else if (arg == "json" || arg == "typed" || arg == "desc") {
      return error("'show stat " + std::string(arg) +
                   "' is not supported; /stats.json on the admin listener has the same data.");
    } else {
      numbers.push_back(arg);
    }
  }
  if (numbers.empty()) {
    return okOutput("");
  }
  if (numbers.size() != 3) {
    return error("Require <iid|proxy> <type> <sid> (use -1 for all).");
  }
  filter->bounded = true;
  if (!parseInt(numbers[0], &filter->iid)) {
    filter->proxy = std::string(numbers[0]);
    bool known = runtime.findBackend(filter->proxy) != nullptr;
    for (const auto& frontend : runtime.frontends()) {
      known = known || frontend->name() == filter->proxy;
    }
    if (!known) {
      return error("No such proxy.");
    }
  }
  if (!parseInt(numbers[1], &filter->types) || !parseInt(numbers[2], &filter->sid)) {
    return error("<type> and <sid> must be integers (use -1 for all).");
  }
  return okOutput("");
}

CommandResult runShowStat(Call& call) {
  StatFilter filter;
  CommandResult parsed = parseStatFilter(call.args, call.context.runtime, &filter);
  if (!parsed.ok) {
    return parsed;
  }
  std::string csv = renderStatsCsv(call.context.view);
  if (!filter.bounded && !filter.only_up && !filter.no_maint) {
    return okOutput(std::move(csv));
  }
  return okOutput(filterCsv(csv, filter, call.context.runtime));
}

// ---------------------------------------------------------------------------------------
// show servers state, show writer

CommandResult runShowServersState(Call& call) {
  if (call.args.size() > 1) {
    return error("Usage: show servers state [<backend>]");
  }
  std::string backend = call.args.empty() ? "" : std::string(call.args[0]);
  if (!backend.empty() && call.context.runtime.findBackend(backend) == nullptr) {
    return error("Can't find backend.");
  }
  std::string out;
  std::string why;
  if (!renderServersState(call.context.view, backend, &out, &why)) {
    return error(why.empty() ? "Can't find backend." : why);
  }
  return okOutput(std::move(out));
}

// Why a server of a writer backend is not (or could not be) the writer.
std::string unfitReason(const Server& server) {
  if (!server.up.load()) {
    return "DOWN";
  }
  switch (server.admin.load()) {
    case AdminState::kMaint:
      return "in MAINT";
    case AdminState::kDrain:
      return "in DRAIN";
    case AdminState::kReady:
      break;
  }
  if (server.weight.load() == 0) {
    return "at weight 0";
  }
  if (server.replication_broken.load()) {
    return "replication broken";
  }
  return "fit, awaiting the election";
}

CommandResult runShowWriter(Call& call) {
  if (call.args.size() != 1) {
    return error("Require 'backend'.");
  }
  Backend* backend = call.context.runtime.findBackend(std::string(call.args[0]));
  if (backend == nullptr) {
    return error("No such backend.");
  }
  if (backend->cfg().role != Role::kWriter) {
    return error("Backend " + backend->name() + " has no writer role.");
  }
  Server* writer = backend->writer.load();
  if (writer != nullptr) {
    return okOutput(writer->fullName() + "\n");
  }
  std::string out = "No writer elected:";
  const char* separator = " ";
  for (const auto& server : backend->servers()) {
    out += separator + server->name() + " is " + unfitReason(*server);
    separator = ", ";
  }
  return okOutput(out + ".\n");
}

// ---------------------------------------------------------------------------------------
// Actions on one server.

CommandResult setAdmin(Call& call, Server& server, AdminState state) {
  std::string why;
  bool ok = call.context.operations.setAdminState(server, state, call.context.who, &why);
  return operationResult(ok, why);
}

// Commands whose single argument is "backend/server".
CommandResult withServer(Call& call, const std::function<CommandResult(Server&)>& run) {
  CommandResult result;
  Server* server = findServer(call.args.empty() ? "" : call.args[0], call.context, &result);
  if (server == nullptr) {
    return result;
  }
  if (call.args.size() > 1) {
    return error("Too many arguments after '" + server->fullName() + "'.");
  }
  return run(*server);
}

CommandResult runDisableServer(Call& call) {
  return withServer(call, [&](Server& s) { return setAdmin(call, s, AdminState::kMaint); });
}

CommandResult runEnableServer(Call& call) {
  return withServer(call, [&](Server& s) { return setAdmin(call, s, AdminState::kReady); });
}

CommandResult setHealth(Call& call, bool enabled) {
  return withServer(call, [&](Server& s) {
    std::string why;
    bool ok = call.context.operations.setHealthEnabled(s, enabled, call.context.who, &why);
    return operationResult(ok, why);
  });
}

CommandResult runDisableHealth(Call& call) {
  return setHealth(call, false);
}

CommandResult runEnableHealth(Call& call) {
  return setHealth(call, true);
}

CommandResult runSetWriter(Call& call) {
  return withServer(call, [&](Server& s) {
    std::string why;
    bool ok = call.context.operations.setWriter(s.backend(), s, call.context.who, &why);
    return operationResult(ok, why);
  });
}

// HAProxy's weight argument: "N" (0..256) or "N%" of the configured weight (capped at 256).
// Returns the new weight, or nothing and the error line in *result.
std::optional<int> parseWeight(std::string_view text, const Server& server, CommandResult* result) {
  bool relative = !text.empty() && text.back() == '%';
  std::string_view digits = relative ? text.substr(0, text.size() - 1) : text;
  long value = 0;
  if (!parseInt(digits, &value)) {
    *result = error("Invalid weight '" + std::string(text) + "': expected <weight> or <weight%>.");
    return std::nullopt;
  }
  if (!relative) {
    if (value < 0 || value > 256) {
      *result = error("Absolute weight can only be between 0 and 256 inclusive.");
      return std::nullopt;
    }
    return static_cast<int>(value);
  }
  if (value < 0) {
    *result = error("Relative weight must be positive.");
    return std::nullopt;
  }
  // 25600% of the largest weight is already past the cap: clamping first avoids overflow.
  long percent = value > 25600 ? 25600 : value;
  long weight = server.cfg().weight * percent / 100;
  return static_cast<int>(weight > 256 ? 256 : weight);
}

CommandResult setWeight(Call& call, Server& server, std::string_view text) {
  CommandResult result;
  std::optional<int> weight = parseWeight(text, server, &result);
  if (!weight) {
    return result;
  }
  std::string why;
  bool ok = call.context.operations.setWeight(server, *weight, call.context.who, &why);
  return operationResult(ok, why);
}

// set weight <bk>/<srv> <weight>[%]
CommandResult runSetWeight(Call& call) {
  CommandResult result;
  Server* server = findServer(call.args.empty() ? "" : call.args[0], call.context, &result);
  if (server == nullptr) {
    return result;
  }
  if (call.args.size() != 2) {
    return error("Require <weight> or <weight%>.");
  }
  return setWeight(call, *server, call.args[1]);
}

CommandResult runGetWeight(Call& call) {
  return withServer(call, [](Server& s) {
    return okOutput(std::to_string(s.weight.load()) + " (initial " +
                    std::to_string(s.cfg().weight) + ")\n");
  });
}

std::optional<AdminState> parseAdminState(std::string_view word) {
  if (word == "ready") {
    return AdminState::kReady;
  }
  if (word == "drain") {
    return AdminState::kDrain;
  }
  if (word == "maint") {
    return AdminState::kMaint;
  }
  return std::nullopt;
}

// set server <bk>/<srv> state ready|drain|maint
// set server <bk>/<srv> weight <weight>[%]
CommandResult runSetServer(Call& call) {
  CommandResult result;
  Server* server = findServer(call.args.empty() ? "" : call.args[0], call.context, &result);
  if (server == nullptr) {
    return result;
  }
  std::string_view what = call.args.size() > 1 ? call.args[1] : "";
  if (what == "state") {
    std::optional<AdminState> state =
        call.args.size() == 3 ? parseAdminState(call.args[2]) : std::nullopt;
    if (!state) {
      return error("'set server <srv> state' expects 'ready', 'drain' and 'maint'.");
    }
    return setAdmin(call, *server, *state);
  }
  if (what == "weight") {
    if (call.args.size() != 3) {
      return error("Require <weight> or <weight%>.");
    }
    return setWeight(call, *server, call.args[2]);
  }
  return error("usage: set server <backend>/<server> state | weight");
}

const std::vector<Command>& commands() {
  static const std::vector<Command> table = {
      {{"help"}, "help", "list the commands", runHelp},
      {{"prompt"}, "prompt", "toggle interactive mode with prompt", runSocketOnly},
      {{"quit"}, "quit", "disconnect", runSocketOnly},
      {{"show", "info"}, "show info", "report information about the running process", runShowInfo},
      {{"show", "stat"},
       "show stat [<iid|proxy> <type> <sid>] [up|no-maint]",
       "report counters for each proxy and server (CSV)",
       runShowStat},
      {{"show", "servers", "state"},
       "show servers state [<backend>]",
       "dump volatile server information (all or one backend)",
       runShowServersState},
      {{"show", "writer"},
       "show writer <backend>",
       "report the writer of a role = \"writer\" backend",
       runShowWriter},
      {{"disable", "server"},
       "disable server <bk>/<srv>",
       "put a server in maintenance (MAINT)",
       runDisableServer},
      {{"enable", "server"},
       "enable server <bk>/<srv>",
       "take a server out of maintenance (READY)",
       runEnableServer},
      {{"set", "server"},
       "set server <bk>/<srv> state|weight <v>",
       "set state ready|drain|maint, or weight <w>[%]",
       runSetServer},
      {{"set", "weight"},
       "set weight <bk>/<srv> <w>[%]",
       "change a server's weight (0..256, or % of its configured weight)",
       runSetWeight},
      {{"get", "weight"},
       "get weight <bk>/<srv>",
       "report a server's current weight",
       runGetWeight},
      {{"disable", "health"},
       "disable health <bk>/<srv>",
       "stop a server's health checks (it counts UP)",
       runDisableHealth},
      {{"enable", "health"},
       "enable health <bk>/<srv>",
       "resume a server's health checks",
       runEnableHealth},
      {{"set", "writer"},
       "set writer <bk>/<srv>",
       "move the writer role to this server",
       runSetWriter},
  };
  return table;
}

// The longest command whose words start the line ("show servers state" before "show").
const Command* findCommand(const std::vector<std::string_view>& words) {
  const Command* best = nullptr;
  for (const Command& command : commands()) {
    if (command.words.size() > words.size()) {
      continue;
    }
    bool match = true;
    for (size_t i = 0; i < command.words.size() && match; ++i) {
      match = words[i] == command.words[i];
    }
    if (match && (best == nullptr || command.words.size() > best->words.size())) {
      best = &command;
    }
  }
  return best;
}

CommandResult runOne(std::string_view text, CommandContext& context) {
  std::vector<std::string_view> words = splitWords(text);
  if (words.empty()) {
    return okOutput("");
  }
  const Command* command = findCommand(words);
  if (command == nullptr) {
    return unknownCommand();
  }
  Call call{std::vector<std::string_view>(words.begin() + command->words.size(), words.end()),
            context};
  return command->run(call);
}

}  // namespace

// Commands separated by ';' run in order, each whatever the previous one did, as HAProxy
// does; the result is ok only if all of them were.
CommandResult runCommand(std::string_view line, CommandContext& context) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) {
    line.remove_suffix(1);
  }
  CommandResult total;
  size_t start = 0;
  while (start <= line.size()) {
    size_t end = line.find(';', start);
    if (end == std::string_view::npos) {
      end = line.size();
    }
    CommandResult one = runOne(line.substr(start, end - start), context);
    total.ok = total.ok && one.ok;
    total.output += one.output;
    start = end + 1;
  }
  return total;
}

}  // namespace tandem
