// Typed reads from one table of the TOML configuration, with errors that name the file, the
// line of the offending value and its key path. Used by config_loader.cpp only.
//
//   ConfigTable t(table, "tandem.toml", "backend[web]", {"name", "retries"});
//   t.rejectUnknownKeys();                           // "backend[web].retires: unknown key ..."
//   t.readInt("retries", 0, 100, &backend.retries);  // absent: backend.retries keeps its default
//
// Every read checks the TOML type exactly (an integer field never accepts 2.0 or "2") and the
// allowed range, so that no value is ever silently converted or replaced by a default.
#pragma once

#include <toml++/toml.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "core/duration.h"

namespace tandem {

// One word an enum-valued key accepts, e.g. {"leastconn", Balance::kLeastConn}.
template <typename E>
struct ConfigWord {
  const char* name;
  E value;
};

int lineOf(const toml::node& node);
std::string quoted(std::string_view text);
// "an integer", "a string", ...: the words used in "expected X, found Y".
std::string describeType(const toml::node& node);

class ConfigTable {
 public:
  ConfigTable(const toml::table& table, std::string file, std::string path,
              std::initializer_list<std::string_view> known_keys);

  const toml::table& table() const { return table_; }
  const std::string& file() const { return file_; }
  const std::string& path() const { return path_; }
  // Renames the table in later errors, e.g. from "frontend[0]" to "frontend[web]".
  void setPath(std::string path) { path_ = std::move(path); }
  int line() const { return lineOf(table_); }
  std::string keyPath(std::string_view key) const;

  // Throws for the first key (in file order) that is not one of the known keys.
  void rejectUnknownKeys() const;

  const toml::node* find(std::string_view key) const { return table_.get(key); }
  const toml::node& require(std::string_view key) const;

  // Each returns false when the key is absent and leaves *out unchanged.
  bool readInt(std::string_view key, int64_t min, int64_t max, int* out) const;
  bool readBool(std::string_view key, bool* out) const;
  bool readString(std::string_view key, std::string* out) const;
  bool readDuration(std::string_view key, Millis* out) const;
  // For timeouts and intervals, where zero would mean "give up at once" or "spin".
  bool readPositiveDuration(std::string_view key, Millis* out) const;
  template <typename E, size_t N>
  bool readWord(std::string_view key, const ConfigWord<E> (&words)[N], E* out) const;
  // A non-empty string made only of characters that `allowed` accepts. `what` names the
  // thing and its rule in the error: "is not a valid cookie name (use letters, ...)".
  bool readToken(std::string_view key, bool (*allowed)(char), std::string_view what,
                 std::string* out) const;

  // `at` is the offending value, whose line the error names.
  [[noreturn]] void fail(std::string_view key, const toml::node& at, std::string message) const;
  [[noreturn]] void failWrongType(std::string_view key, const toml::node& at,
                                  std::string_view expected) const;
  // For what is missing: the error names the line of this table.
  [[noreturn]] void failMissing(std::string_view key) const;

 private:
  const toml::table& table_;
  std::string file_;
  std::string path_;
  std::vector<std::string_view> known_keys_;
};

template <typename E, size_t N>
bool ConfigTable::readWord(std::string_view key, const ConfigWord<E> (&words)[N], E* out) const {
  std::string text;
  if (!readString(key, &text)) {
    return false;
  }
  std::string allowed;
  for (const ConfigWord<E>& word : words) {
    if (text == word.name) {
      *out = word.value;
      return true;
    }
    allowed += (allowed.empty() ? "" : ", ") + std::string(word.name);
  }
  fail(key, require(key), quoted(text) + " is not one of: " + allowed);
}

}  // namespace tandem
