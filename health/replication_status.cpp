#include "health/replication_status.h"

#include <errmsg.h>
#include <mysqld_error.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <initializer_list>

namespace tandem {

namespace {

// Splits `text` at every `sep`, keeping empty parts (so that "1-1-1,,2-2-2" is refused).
std::vector<std::string_view> split(std::string_view text, char sep) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  for (size_t at = text.find(sep); at != std::string_view::npos; at = text.find(sep, start)) {
    parts.push_back(text.substr(start, at - start));
    start = at + 1;
  }
  parts.push_back(text.substr(start));
  return parts;
}

// Servers print GTID sets over several lines ("uuid:1-5,\nuuid:1-3"): whitespace is layout.
std::string_view trim(std::string_view text) {
  auto space = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
  while (!text.empty() && space(text.front())) {
    text.remove_prefix(1);
  }
  while (!text.empty() && space(text.back())) {
    text.remove_suffix(1);
  }
  return text;
}

// Only plain decimal digits: from_chars alone would also accept a leading '-' for signed types.
template <typename T>
std::optional<T> parseNumber(std::string_view text) {
  T value{};
  if (text.empty() || !std::isdigit(static_cast<unsigned char>(text.front()))) {
    return std::nullopt;
  }
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) {
    return std::nullopt;
  }
  return value;
}

// "1-2-57" -> domain 1, seq_no 57.
bool parseMariadbGtid(std::string_view text, uint32_t* domain, uint64_t* seq_no) {
  std::vector<std::string_view> parts = split(trim(text), '-');
  if (parts.size() != 3 || !parseNumber<uint32_t>(parts[1])) {
    return false;
  }
  std::optional<uint32_t> d = parseNumber<uint32_t>(parts[0]);
  std::optional<uint64_t> n = parseNumber<uint64_t>(parts[2]);
  if (!d || !n) {
    return false;
  }
  *domain = *d;
  *seq_no = *n;
  return true;
}

bool isUuidChar(char c) {
  return std::isxdigit(static_cast<unsigned char>(c)) != 0 || c == '-';
}

// MySQL 8.3 tags: a letter or '_', then letters, digits and '_'.
bool isTag(std::string_view text) {
  auto word = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_'; };
  return !text.empty() && !std::isdigit(static_cast<unsigned char>(text.front())) &&
         std::all_of(text.begin(), text.end(), word);
}

// "5" or "1-100".
std::optional<GtidInterval> parseInterval(std::string_view text) {
  size_t dash = text.find('-');
  std::optional<uint64_t> first = parseNumber<uint64_t>(text.substr(0, dash));
  std::optional<uint64_t> last =
      dash == std::string_view::npos ? first : parseNumber<uint64_t>(text.substr(dash + 1));
  if (!first || !last || *first > *last) {
    return std::nullopt;
  }
  return GtidInterval{*first, *last};
}

// Sorted, with overlapping and adjacent intervals merged: 1-3:4-6:5-9 becomes 1-9, so that
// containment needs only one covering interval.
void normalize(std::vector<GtidInterval>& intervals) {
  std::sort(intervals.begin(), intervals.end(),
            [](const GtidInterval& a, const GtidInterval& b) { return a.first < b.first; });
  std::vector<GtidInterval> merged;
  for (const GtidInterval& interval : intervals) {
    if (!merged.empty() && interval.first <= merged.back().last + 1) {
      merged.back().last = std::max(merged.back().last, interval.last);
    } else {
      merged.push_back(interval);
    }
  }
  intervals = std::move(merged);
}

// One element, "uuid:1-5:7" or "uuid:tag:1-3:other_tag:9": the intervals after a tag belong
// to "uuid:tag".
bool parseGtidSetElement(std::string_view text, MysqlGtidSet* set) {
  std::vector<std::string_view> parts = split(trim(text), ':');
  std::string uuid(parts[0]);
  if (parts.size() < 2 || uuid.empty() || !std::all_of(uuid.begin(), uuid.end(), isUuidChar)) {
    return false;
  }
  std::transform(uuid.begin(), uuid.end(), uuid.begin(),
                 [](char c) { return static_cast<char>(std::tolower(c)); });
  std::string key = uuid;
  for (size_t i = 1; i < parts.size(); ++i) {
    if (isTag(parts[i])) {
      key = uuid + ":" + std::string(parts[i]);
      continue;
    }
    std::optional<GtidInterval> interval = parseInterval(parts[i]);
    if (!interval) {
      return false;
    }
    (*set)[key].push_back(*interval);
  }
  return true;
}

bool covers(const std::vector<GtidInterval>& set, const GtidInterval& interval) {
  return std::any_of(set.begin(), set.end(), [&interval](const GtidInterval& e) {
    return e.first <= interval.first && interval.last <= e.last;
  });
}

// The first of `names` that the row has and is not NULL: each family spells the column its
// own way (Slave_IO_Running on MariaDB and MySQL before 8.0.22, Replica_IO_Running after).
std::optional<std::string> column(const StatusRow& row, std::initializer_list<const char*> names) {
  for (const char* name : names) {
    auto it = row.find(name);
    if (it != row.end() && it->second.has_value()) {
      return it->second;
    }
  }
  return std::nullopt;
}

std::string textColumn(const StatusRow& row, std::initializer_list<const char*> names) {
  return column(row, names).value_or("");
}

template <typename T>
std::optional<T> numberColumn(const StatusRow& row, std::initializer_list<const char*> names) {
  std::optional<std::string> text = column(row, names);
  return text ? parseNumber<T>(trim(*text)) : std::nullopt;
}

// "Error 1062: Error 'Duplicate entry ...'": the number first, as operators search for it.
std::string formatThreadError(int64_t error, const std::string& text) {
  if (error == 0) {
    return text;
  }
  return "Error " + std::to_string(error) + (text.empty() ? "" : ": " + text);
}

// "replication SQL thread stopped: Error 1062: ..." or "replication IO thread connecting";
// empty while the thread runs.
std::string threadProblem(const char* thread, const std::string& state, int64_t error,
                          const std::string& text) {
  if (state == "Yes") {
    return "";
  }
  std::string word = state == "No" || state.empty() ? "stopped" : state;
  std::transform(word.begin(), word.end(), word.begin(),
                 [](char c) { return static_cast<char>(std::tolower(c)); });
  std::string problem = "replication " + std::string(thread) + " thread " + word;
  std::string detail = formatThreadError(error, text);
  return detail.empty() ? problem : problem + ": " + detail;
}

void addProblem(std::string* problems, const std::string& problem) {
  if (!problem.empty()) {
    *problems += (problems->empty() ? "" : "; ") + problem;
  }
}

// The client library's own errors: 2000-2999 in both libmysqlclient and MariaDB
// Connector/C, and 5000-5999 in Connector/C only (CER_MIN_ERROR..CER_MAX_ERROR).
bool isClientError(unsigned error) {
  return (error >= 2000 && error <= 2999) || (error >= 5000 && error <= 5999);
}

// The client libraries put the system errno in the text only: "Can't connect to server on
// '10.0.0.1' (110)" and "Lost connection ... system error: 110".
bool mentionsTimeout(std::string_view message) {
  std::string code = std::to_string(ETIMEDOUT);
  return message.find("(" + code) != std::string_view::npos ||
         message.find("system error: " + code) != std::string_view::npos;
}

}  // namespace

std::optional<MariadbGtidPos> parseMariadbGtidPos(std::string_view text) {
  MariadbGtidPos pos;
  if (trim(text).empty()) {
    return pos;
  }
  for (std::string_view gtid : split(text, ',')) {
    uint32_t domain = 0;
    uint64_t seq_no = 0;
    if (!parseMariadbGtid(gtid, &domain, &seq_no) || !pos.emplace(domain, seq_no).second) {
      return std::nullopt;
    }
  }
  return pos;
}

std::optional<MysqlGtidSet> parseMysqlGtidSet(std::string_view text) {
  MysqlGtidSet set;
  if (trim(text).empty()) {
    return set;
  }
  for (std::string_view element : split(text, ',')) {
    if (!parseGtidSetElement(element, &set)) {
      return std::nullopt;
    }
  }
  for (auto& [key, intervals] : set) {
    normalize(intervals);
  }
  return set;
}

std::optional<bool> mariadbAppliedAll(std::string_view received, std::string_view applied) {
  std::optional<MariadbGtidPos> got = parseMariadbGtidPos(received);
  std::optional<MariadbGtidPos> done = parseMariadbGtidPos(applied);
  if (!got || !done) {
    return std::nullopt;
  }
  return std::all_of(got->begin(), got->end(), [&done](const auto& domain_seq) {
    auto it = done->find(domain_seq.first);
    return it != done->end() && it->second >= domain_seq.second;
  });
}

std::optional<bool> mysqlAppliedAll(std::string_view retrieved, std::string_view executed) {
  std::optional<MysqlGtidSet> got = parseMysqlGtidSet(retrieved);
  std::optional<MysqlGtidSet> done = parseMysqlGtidSet(executed);
  if (!got || !done) {
    return std::nullopt;
  }
  for (const auto& [key, intervals] : *got) {
    auto it = done->find(key);
    for (const GtidInterval& interval : intervals) {
      if (it == done->end() || !covers(it->second, interval)) {
        return false;
      }
    }
  }
  return true;
}

ReplicaStatus parseReplicaStatus(const StatusRow& row) {
  ReplicaStatus r;
  r.io_state = textColumn(row, {"Slave_IO_Running", "Replica_IO_Running"});
  r.sql_state = textColumn(row, {"Slave_SQL_Running", "Replica_SQL_Running"});
  r.lag_seconds = numberColumn<int64_t>(row, {"Seconds_Behind_Master", "Seconds_Behind_Source"});
  r.io_errno = numberColumn<int64_t>(row, {"Last_IO_Errno"}).value_or(0);
  r.io_error = textColumn(row, {"Last_IO_Error"});
  r.sql_errno = numberColumn<int64_t>(row, {"Last_SQL_Errno"}).value_or(0);
  r.sql_error = textColumn(row, {"Last_SQL_Error"});
  r.gtid_io_pos = textColumn(row, {"Gtid_IO_Pos"});
  r.retrieved_gtid_set = textColumn(row, {"Retrieved_Gtid_Set"});
  r.executed_gtid_set = textColumn(row, {"Executed_Gtid_Set"});
  r.read_file = textColumn(row, {"Master_Log_File", "Source_Log_File"});
  r.read_pos =
      numberColumn<uint64_t>(row, {"Read_Master_Log_Pos", "Read_Source_Log_Pos"}).value_or(0);
  r.exec_file = textColumn(row, {"Relay_Master_Log_File", "Relay_Source_Log_File"});
  r.exec_pos =
      numberColumn<uint64_t>(row, {"Exec_Master_Log_Pos", "Exec_Source_Log_Pos"}).value_or(0);
  return r;
}

bool isReplicationBroken(const ReplicaStatus& replica) {
  return (replica.io_state == "No" && replica.io_errno != 0) ||
         (replica.sql_state == "No" && replica.sql_errno != 0);
}

// MariaDB keeps Gtid_IO_Pos only with MASTER_USE_GTID, MySQL Retrieved_Gtid_Set only with
// gtid_mode=ON; without them the binary log coordinates answer the same question.
bool appliedAllReceived(const ServerVariables& vars, const ReplicaStatus& replica) {
  if (vars.mariadb && !replica.gtid_io_pos.empty()) {
    return mariadbAppliedAll(replica.gtid_io_pos, vars.gtid_slave_pos).value_or(false);
  }
  if (!vars.mariadb && !replica.retrieved_gtid_set.empty()) {
    const std::string& executed =
        replica.executed_gtid_set.empty() ? vars.gtid_executed : replica.executed_gtid_set;
    return mysqlAppliedAll(replica.retrieved_gtid_set, executed).value_or(false);
  }
  return replica.read_file == replica.exec_file && replica.read_pos == replica.exec_pos;
}

std::string replicationProblems(const ServerVariables& vars,
                                const std::optional<ReplicaStatus>& replica, Millis max_lag) {
  std::string problems;
  if (replica.has_value()) {
    addProblem(&problems,
               threadProblem("SQL", replica->sql_state, replica->sql_errno, replica->sql_error));
    addProblem(&problems,
               threadProblem("IO", replica->io_state, replica->io_errno, replica->io_error));
    std::optional<int64_t> lag = replica->lag_seconds;
    if (lag.has_value() && *lag * 1000 > max_lag.count()) {
      addProblem(&problems,
                 "lag " + std::to_string(*lag) + "s > max_lag " + formatDuration(max_lag));
    }
  }
  if (vars.read_only) {
    addProblem(&problems, "read_only=ON");
  }
  return problems;
}

ReplicationVerdict assessReplication(const ServerVariables& vars,
                                     const std::optional<ReplicaStatus>& replica, Millis max_lag) {
  ReplicationVerdict v;
  v.info.known = true;
  v.info.read_only = vars.read_only;
  v.info.gtid_executed = vars.gtid_executed;
  v.info.applied_all_received = true;  // nothing received: nothing left to apply
  v.reason = replicationProblems(vars, replica, max_lag);
  if (!replica.has_value()) {
    v.reason = v.reason.empty() ? "MySQL replication check passed: not a replica" : v.reason;
    return v;
  }
  v.info.is_replica = true;
  v.info.io_running = replica->io_state == "Yes";
  v.info.sql_running = replica->sql_state == "Yes";
  v.info.lag_seconds = replica->lag_seconds.value_or(-1);
  v.info.last_io_error = formatThreadError(replica->io_errno, replica->io_error);
  v.info.last_sql_error = formatThreadError(replica->sql_errno, replica->sql_error);
  v.info.gtid_received = vars.mariadb ? replica->gtid_io_pos : replica->retrieved_gtid_set;
  v.info.applied_all_received = appliedAllReceived(vars, *replica);
  v.broken = isReplicationBroken(*replica);
  v.lag_ms = replica->lag_seconds ? *replica->lag_seconds * 1000 : -1;
  if (v.reason.empty()) {
    std::string lag =
        replica->lag_seconds ? std::to_string(*replica->lag_seconds) + "s" : "unknown";
    v.reason = "MySQL replication check passed: lag " + lag;
  }
  return v;
}

const char* mysqlFailureStatus(unsigned error, std::string_view message) {
  bool timed_out = mentionsTimeout(message);
  switch (error) {
    case CR_CONNECTION_ERROR:
    case CR_CONN_HOST_ERROR:
    case CR_UNKNOWN_HOST:
      return timed_out ? "L4TOUT" : "L4CON";
    case CR_SERVER_LOST:
    case CR_SERVER_GONE_ERROR:
      return timed_out ? "L7TOUT" : "L7RSP";
    default:
      return isClientError(error) ? "L7RSP" : "L7STS";
  }
}

bool isAccessDenied(unsigned error) {
  return error == ER_ACCESS_DENIED_ERROR || error == ER_ACCESS_DENIED_NO_PASSWORD_ERROR;
}

}  // namespace tandem
