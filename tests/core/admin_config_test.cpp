// The [admin] table: defaults, every key, and the errors an operator can make in it.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "core/config.h"

namespace tandem {
namespace {

using ::testing::HasSubstr;

constexpr const char* kTail = R"(
[[backend]]
name = "web"
[[backend.server]]
name = "w1"
address = "10.9.9.9:80"

[[frontend]]
name = "in"
listen = "127.0.0.1:9999"
backend = "web"
)";

void expectAdminError(const std::string& admin, int line, const std::string& key,
                      const std::string& fragment) {
  try {
    loadConfigString(admin + kTail, "t.toml");
    ADD_FAILURE() << "loaded without error:\n" << admin;
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.line(), line) << e.what();
    EXPECT_EQ(e.key(), key) << e.what();
    EXPECT_THAT(e.what(), HasSubstr(fragment));
  }
}

TEST(AdminConfigTest, AbsentTableRunsNoAdmin) {
  Config c = loadConfigString(kTail, "t.toml");
  EXPECT_FALSE(c.admin.enabled);
}

TEST(AdminConfigTest, EmptyTableTakesDefaults) {
  Config c = loadConfigString(std::string("[admin]\n") + kTail, "t.toml");
  EXPECT_TRUE(c.admin.enabled);
  ASSERT_TRUE(c.admin.listen.has_value());
  EXPECT_EQ(c.admin.listen->str(), "127.0.0.1:8081");
  EXPECT_EQ(c.admin.socket, "");
  EXPECT_EQ(c.admin.token, "");
  EXPECT_TRUE(c.admin.users.empty());
  EXPECT_FALSE(c.admin.read_auth);
  EXPECT_EQ(c.admin.refresh, Millis(2000));
}

TEST(AdminConfigTest, EveryKey) {
  Config c = loadConfigString(std::string(R"([admin]
listen = "0.0.0.0:9081"
socket = "/run/tandem.sock"
token = "s3cret"
users = ["alice:pw1", "bob:p:w:2"]
read_auth = true
refresh = "1s"
)") + kTail,
                              "t.toml");
  ASSERT_TRUE(c.admin.listen.has_value());
  EXPECT_EQ(c.admin.listen->str(), "0.0.0.0:9081");
  EXPECT_EQ(c.admin.socket, "/run/tandem.sock");
  EXPECT_EQ(c.admin.token, "s3cret");
  ASSERT_EQ(c.admin.users.size(), 2u);
  EXPECT_EQ(c.admin.users[0].name, "alice");
  EXPECT_EQ(c.admin.users[0].password, "pw1");
  EXPECT_EQ(c.admin.users[1].name, "bob");
  EXPECT_EQ(c.admin.users[1].password, "p:w:2");  // only the first colon separates
  EXPECT_TRUE(c.admin.read_auth);
  EXPECT_EQ(c.admin.refresh, Millis(1000));
}

TEST(AdminConfigTest, EmptyListenMeansSocketOnly) {
  Config c = loadConfigString(
      std::string("[admin]\nlisten = \"\"\nsocket = \"/tmp/t.sock\"\n") + kTail, "t.toml");
  EXPECT_FALSE(c.admin.listen.has_value());
  EXPECT_EQ(c.admin.socket, "/tmp/t.sock");
}

TEST(AdminConfigTest, TokenFileIsReadAndTrimmed) {
  std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("tandem-admin-cfg-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::string path = (dir / "token").string();
  std::ofstream(path) << "from-file\n";
  Config c = loadConfigString("[admin]\ntoken_file = \"" + path + "\"\n" + kTail, "t.toml");
  EXPECT_EQ(c.admin.token, "from-file");

  std::ofstream(path, std::ios::trunc) << "\n";
  expectAdminError("[admin]\ntoken_file = \"" + path + "\"\n", 2, "admin.token_file", "is empty");
  std::filesystem::remove_all(dir);
  expectAdminError("[admin]\ntoken_file = \"" + path + "\"\n", 2, "admin.token_file",
                   "No such file");
}

// A relative secret path is taken from the configuration file's directory, so that a config
// and its secrets travel together (deploy/tandem.toml and deploy/secrets/).
TEST(AdminConfigTest, RelativeTokenFileIsBesideTheConfig) {
  std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("tandem-admin-rel-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir / "secrets");
  std::ofstream(dir / "secrets" / "token") << "beside\n";
  std::string config = (dir / "tandem.toml").string();
  std::ofstream(config) << "[admin]\ntoken_file = \"secrets/token\"\n" << kTail;
  Config c = loadConfigFile(config);
  EXPECT_EQ(c.admin.token, "beside");
  std::filesystem::remove_all(dir);
}

TEST(AdminConfigTest, Errors) {
  expectAdminError("[admin]\nlistne = \"1.2.3.4:5\"\n", 2, "admin.listne", "unknown key");
  expectAdminError("[admin]\nlisten = \"nowhere\"\n", 2, "admin.listen", "");
  expectAdminError("[admin]\nlisten = 8081\n", 2, "admin.listen", "host:port");
  expectAdminError("[admin]\nsocket = \"\"\n", 2, "admin.socket", "empty");
  expectAdminError("[admin]\ntoken = \"\"\n", 2, "admin.token", "empty");
  expectAdminError("[admin]\ntoken = \"a\"\ntoken_file = \"/x\"\n", 3, "admin.token_file",
                   "not both");
  expectAdminError("[admin]\nusers = \"alice:pw\"\n", 2, "admin.users", "array");
  expectAdminError("[admin]\nusers = [\"alice\"]\n", 2, "admin.users", "name:password");
  expectAdminError("[admin]\nusers = [\":pw\"]\n", 2, "admin.users", "name:password");
  expectAdminError("[admin]\nusers = [\"a:1\", \"a:2\"]\n", 2, "admin.users", "duplicate user");
  expectAdminError("[admin]\nread_auth = true\n", 2, "admin.read_auth", "needs token");
  expectAdminError("[admin]\nrefresh = \"50ms\"\n", 2, "admin.refresh", "at least 200ms");
  expectAdminError("[admin]\nlisten = \"127.0.0.1:9999\"\n", 12, "frontend[in].listen",
                   "first used by admin at line 2");
}

}  // namespace
}  // namespace tandem
