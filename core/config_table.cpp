#include "core/config_table.h"

#include <algorithm>

namespace tandem {

namespace {

// The check that only a missing or out-of-range number made parseDuration refuse the text, so
// that "40d" is reported as too long rather than as "not a duration".
bool hasDurationShape(std::string_view text) {
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') {
    ++digits;
  }
  std::string_view unit = text.substr(digits);
  return digits > 0 && (unit == "ms" || unit == "s" || unit == "m" || unit == "h" || unit == "d");
}

std::string durationProblem(std::string_view text) {
  if (hasDurationShape(text)) {
    return quoted(text) + " is too long (at most 30d)";
  }
  return quoted(text) + " is not a duration (use ms, s, m, h or d, e.g. \"250ms\")";
}

}  // namespace

int lineOf(const toml::node& node) {
  return static_cast<int>(node.source().begin.line);
}

std::string quoted(std::string_view text) {
  return "\"" + std::string(text) + "\"";
}

std::string describeType(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a floating-point number";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

ConfigTable::ConfigTable(const toml::table& table, std::string file, std::string path,
                         std::initializer_list<std::string_view> known_keys)
    : table_(table), file_(std::move(file)), path_(std::move(path)), known_keys_(known_keys) {}

std::string ConfigTable::keyPath(std::string_view key) const {
  if (path_.empty()) {
    return std::string(key);
  }
  return path_ + "." + std::string(key);
}

void ConfigTable::rejectUnknownKeys() const {
  const toml::key* first = nullptr;
  for (auto&& [key, value] : table_) {
    bool known = std::find(known_keys_.begin(), known_keys_.end(), key.str()) != known_keys_.end();
    if (!known && (first == nullptr || key.source().begin < first->source().begin)) {
      first = &key;
    }
  }
  if (first == nullptr) {
    return;
  }
  std::string allowed;
  for (std::string_view key : known_keys_) {
    allowed += (allowed.empty() ? "" : ", ") + std::string(key);
  }
  throw ConfigError(file_, static_cast<int>(first->source().begin.line), keyPath(first->str()),
                    "unknown key (expected one of: " + allowed + ")");
}

const toml::node& ConfigTable::require(std::string_view key) const {
  const toml::node* node = find(key);
  if (node == nullptr) {
    failMissing(key);
  }
  return *node;
}

bool ConfigTable::readInt(std::string_view key, int64_t min, int64_t max, int* out) const {
  const toml::node* node = find(key);
  if (node == nullptr) {
    return false;
  }
  const toml::value<int64_t>* value = node->as_integer();
  if (value == nullptr) {
    failWrongType(key, *node, "an integer");
  }
  int64_t number = value->get();
  if (number < min || number > max) {
    fail(key, *node,
         std::to_string(number) + " is out of range " + std::to_string(min) + ".." +
             std::to_string(max));
  }
  *out = static_cast<int>(number);
  return true;
}

bool ConfigTable::readBool(std::string_view key, bool* out) const {
  const toml::node* node = find(key);
  if (node == nullptr) {
    return false;
  }
  if (!node->is_boolean()) {
    failWrongType(key, *node, "a boolean (true or false)");
  }
  *out = node->as_boolean()->get();
  return true;
}

bool ConfigTable::readString(std::string_view key, std::string* out) const {
  const toml::node* node = find(key);
  if (node == nullptr) {
    return false;
  }
  if (!node->is_string()) {
    failWrongType(key, *node, "a string");
  }
  *out = node->as_string()->get();
  return true;
}

bool ConfigTable::readDuration(std::string_view key, Millis* out) const {
  const toml::node* node = find(key);
  if (node == nullptr) {
    return false;
  }
  if (!node->is_string()) {
    failWrongType(key, *node, "a duration string such as \"2s\"");
  }
  const std::string& text = node->as_string()->get();
  std::optional<Millis> duration = parseDuration(text);
  if (!duration) {
    fail(key, *node, durationProblem(text));
  }
  *out = *duration;
  return true;
}

bool ConfigTable::readPositiveDuration(std::string_view key, Millis* out) const {
  Millis duration;
  if (!readDuration(key, &duration)) {
    return false;
  }
  if (duration.count() == 0) {
    fail(key, require(key), quoted(require(key).as_string()->get()) + " must be greater than zero");
  }
  *out = duration;
  return true;
}

bool ConfigTable::readToken(std::string_view key, bool (*allowed)(char), std::string_view what,
                            std::string* out) const {
  std::string text;
  if (!readString(key, &text)) {
    return false;
  }
  if (text.empty() || !std::all_of(text.begin(), text.end(), allowed)) {
    fail(key, require(key), quoted(text) + " " + std::string(what));
  }
  *out = std::move(text);
  return true;
}

void ConfigTable::fail(std::string_view key, const toml::node& at, std::string message) const {
  throw ConfigError(file_, lineOf(at), keyPath(key), std::move(message));
}

void ConfigTable::failWrongType(std::string_view key, const toml::node& at,
                                std::string_view expected) const {
  fail(key, at, "expected " + std::string(expected) + ", found " + describeType(at));
}

void ConfigTable::failMissing(std::string_view key) const {
  throw ConfigError(file_, line(), keyPath(key), "missing required key");
}

}  // namespace tandem
