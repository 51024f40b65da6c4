// The command line: --version, --help, --check on good and bad files, and usage errors.
#include <algorithm>
#include <cctype>

#include "tests/integration/harness.h"

namespace tandem::it {
namespace {

constexpr int kUsageError = 2;

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// 1-based number of the first line of `text` that contains `needle`, or 0.
int lineOf(const std::string& text, const std::string& needle) {
  size_t at = text.find(needle);
  if (at == std::string::npos) {
    return 0;
  }
  return 1 + static_cast<int>(std::count(text.begin(), text.begin() + at, '\n'));
}

std::string replaceOnce(std::string text, const std::string& from, const std::string& to) {
  size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << "test setup: '" << from << "' not in the config";
  if (at != std::string::npos) {
    text.replace(at, from.size(), to);
  }
  return text;
}

// A complete, valid config: one frontend, one checked backend with two servers.
ConfigSpec validSpec() {
  ConfigSpec spec = ConfigSpec::simpleTcp({{"s1", 10001}, {"s2", 10002, 2, true}});
  spec.backend().check = CheckSpec{};
  spec.backend().on_marked_down = "shutdown-sessions";
  return spec;
}

class CliTest : public ::testing::Test {
 protected:
  // Runs --check on `text` and expects exit 1 with "FILE:LINE:" naming the line that holds
  // `bad_line` and an error that mentions `key`.
  void expectRejected(const std::string& text, const std::string& bad_line,
                      const std::string& key) {
    std::string path = dir_.write("bad.toml", text);
    int line = lineOf(text, bad_line);
    ASSERT_GT(line, 0) << "test setup: '" << bad_line << "' not in the config";
    RunResult r = runTandem({"--check", "-c", path});
    ASSERT_TRUE(r.status.has_value()) << "--check did not finish";
    EXPECT_TRUE(r.status->exited && r.status->code == 1) << r.status->str() << "\n" << r.err;
    std::string where = path + ":" + std::to_string(line) + ":";
    EXPECT_NE(r.err.find(where), std::string::npos) << "want '" << where << "' in: " << r.err;
    EXPECT_NE(r.err.find(key), std::string::npos) << "want key '" << key << "' in: " << r.err;
    EXPECT_EQ(r.out.find("is valid"), std::string::npos) << r.out;
  }

  TempDir dir_;
};

TEST_F(CliTest, VersionPrintsNameAndVersion) {
  RunResult r = runTandem({"--version"});
  ASSERT_TRUE(r.status.has_value());
  EXPECT_TRUE(r.status->ok()) << r.status->str();
  EXPECT_NE(r.out.find("tandem 0.1.0"), std::string::npos) << r.out;
}

TEST_F(CliTest, HelpPrintsUsageAndExitsZero) {
  RunResult r = runTandem({"--help"});
  ASSERT_TRUE(r.status.has_value());
  EXPECT_TRUE(r.status->ok()) << r.status->str();
  std::string text = lower(r.out + r.err);
  EXPECT_NE(text.find("usage"), std::string::npos) << text;
  EXPECT_NE(text.find("-c"), std::string::npos) << text;
  EXPECT_NE(text.find("--check"), std::string::npos) << text;
}

TEST_F(CliTest, CheckAcceptsValidFile) {
  std::string path = dir_.write("good.toml", validSpec().toml());
  RunResult r = runTandem({"--check", "-c", path});
  ASSERT_TRUE(r.status.has_value());
  EXPECT_TRUE(r.status->ok()) << r.status->str() << "\n" << r.err;
  EXPECT_NE((r.out + r.err).find("configuration " + path + " is valid"), std::string::npos)
      << r.out << r.err;
}

TEST_F(CliTest, CheckRejectsUnknownKey) {
  std::string text = replaceOnce(validSpec().toml(), "[global]\n", "[global]\nbogus_key = 1\n");
  expectRejected(text, "bogus_key", "bogus_key");
}

TEST_F(CliTest, CheckRejectsUnknownKeyInServer) {
  std::string text =
      replaceOnce(validSpec().toml(), "name = \"s2\"\n", "name = \"s2\"\nwieght = 2\n");
  expectRejected(text, "wieght", "wieght");
}

TEST_F(CliTest, CheckRejectsWeightOutOfRange) {
  std::string text = replaceOnce(validSpec().toml(), "weight = 2\n", "weight = 300\n");
  expectRejected(text, "weight = 300", "weight");
}

TEST_F(CliTest, CheckRejectsUnknownBackend) {
  std::string text =
      replaceOnce(validSpec().toml(), "backend = \"be\"\n", "backend = \"nowhere\"\n");
  expectRejected(text, "backend = \"nowhere\"", "backend");
}

TEST_F(CliTest, CheckRejectsBadDuration) {
  std::string text =
      replaceOnce(validSpec().toml(), "interval = \"100ms\"\n", "interval = \"soon\"\n");
  expectRejected(text, "interval = \"soon\"", "interval");
}

TEST_F(CliTest, CheckRejectsUnknownBalance) {
  std::string text =
      replaceOnce(validSpec().toml(), "balance = \"roundrobin\"\n", "balance = \"fastest\"\n");
  expectRejected(text, "balance = \"fastest\"", "balance");
}

TEST_F(CliTest, CheckRejectsWrongType) {
  std::string text = replaceOnce(validSpec().toml(), "retries = 3\n", "retries = \"three\"\n");
  expectRejected(text, "retries = \"three\"", "retries");
}

TEST_F(CliTest, CheckRejectsTomlSyntaxError) {
  std::string text = replaceOnce(validSpec().toml(), "[[frontend]]\n", "[[frontend]\n");
  std::string path = dir_.write("broken.toml", text);
  RunResult r = runTandem({"--check", "-c", path});
  ASSERT_TRUE(r.status.has_value());
  EXPECT_TRUE(r.status->exited && r.status->code == 1) << r.status->str();
  std::string where = path + ":" + std::to_string(lineOf(text, "[[frontend]")) + ":";
  EXPECT_NE(r.err.find(where), std::string::npos) << "want '" << where << "' in: " << r.err;
}

TEST_F(CliTest, CheckRejectsMissingFile) {
  std::string path = (dir_.path() / "absent.toml").string();
  RunResult r = runTandem({"--check", "-c", path});
  ASSERT_TRUE(r.status.has_value());
  EXPECT_TRUE(r.status->exited && r.status->code == 1) << r.status->str();
  EXPECT_NE(r.err.find(path), std::string::npos) << r.err;
}

TEST_F(CliTest, StartWithBadConfigExitsOne) {
  ConfigSpec spec = validSpec();
  std::string text = replaceOnce(spec.toml(), "weight = 2\n", "weight = -1\n");
  std::string path = dir_.write("bad.toml", text);
  RunResult r = runTandem({"-c", path});
  ASSERT_TRUE(r.status.has_value()) << "started despite a bad config";
  EXPECT_TRUE(r.status->exited && r.status->code == 1) << r.status->str();
  EXPECT_NE(r.err.find(path + ":" + std::to_string(lineOf(text, "weight = -1")) + ":"),
            std::string::npos)
      << r.err;
}

TEST_F(CliTest, UnknownOptionIsUsageError) {
  RunResult r = runTandem({"--no-such-option"});
  ASSERT_TRUE(r.status.has_value());
  EXPECT_TRUE(r.status->exited && r.status->code == kUsageError) << r.status->str();
  EXPECT_FALSE(r.err.empty()) << "a usage error should say what is wrong";
}

TEST_F(CliTest, MissingConfigArgumentIsUsageError) {
  RunResult r = runTandem({"-c"});
  ASSERT_TRUE(r.status.has_value());
  EXPECT_TRUE(r.status->exited && r.status->code == kUsageError) << r.status->str();
}

TEST_F(CliTest, StrayArgumentIsUsageError) {
  std::string path = dir_.write("good.toml", validSpec().toml());
  RunResult r = runTandem({"--check", "-c", path, "extra"});
  ASSERT_TRUE(r.status.has_value());
  EXPECT_TRUE(r.status->exited && r.status->code == kUsageError) << r.status->str();
}

}  // namespace
}  // namespace tandem::it
