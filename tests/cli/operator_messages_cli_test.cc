// What an operator reads and what the audit trail records around logins and long steps, with the
// real binary on a fresh SoftHSM token: a wrong PIN says only what the token reports; a PIN that
// cannot be read is no login failure; `init` announces a key generation in the token before it
// starts and draws a progress display on a terminal only; `sa rotate` states the real wait.
#include <algorithm>
#include <filesystem>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/test_env.h"

namespace kubehsm::testing {
namespace {

namespace fs = std::filesystem;

class OperatorMessagesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    token_ = std::make_unique<SoftHsmToken>("msg-test");
    token_->WriteKubehsmConfig();
  }
  ProcessResult Kubehsm(std::vector<std::string> args, const std::map<std::string, std::string>& extra_env = {}) {
    args.insert(args.begin(), KubehsmBinary().string());
    auto env = token_->ChildEnv();
    env.insert(extra_env.begin(), extra_env.end());
    return RunProcess(args, env);
  }
  // The events of the audit trail, in order.
  std::vector<std::string> AuditEvents() const {
    std::vector<std::string> out;
    const fs::path log = token_->dir() / "audit.log";
    if (!fs::exists(log)) return out;
    std::istringstream in(ReadTestFile(log));
    for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line)["event"]);
    return out;
  }
  static std::string ShellQuote(const std::string& s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
  }

  TempDir dir_;
  std::unique_ptr<SoftHsmToken> token_;
};

TEST_F(OperatorMessagesTest, WrongPinSaysOnlyWhatTheTokenReports) {
  // SoftHSM states no attempt limit and never locks; after a wrong PIN it sets only
  // CKF_USER_PIN_COUNT_LOW ("a wrong PIN was entered since the last successful login").
  for (int attempt = 1; attempt <= 2; ++attempt) {
    SCOPED_TRACE(attempt);
    ProcessResult r = Kubehsm({"--pin-source", "env:WRONG_PIN", "keys", "list"}, {{"WRONG_PIN", "00000000"}});
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find("wrong PIN for token 'msg-test'"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("few attempts remain"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("locks"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("the token reports a wrong PIN since the last successful login (CKF_USER_PIN_COUNT_LOW"),
              std::string::npos)
        << r.err;
  }
  // A wrong PIN is a login failure in the audit trail, once per attempt.
  const auto events = AuditEvents();
  EXPECT_EQ(std::count(events.begin(), events.end(), "login-failure"), 2);
  EXPECT_EQ(Kubehsm({"keys", "list"}).exit_code, 0);
}

TEST_F(OperatorMessagesTest, PromptWithoutTerminalIsAPinSourceErrorNotALoginFailure) {
  // setsid: no controlling terminal, so /dev/tty cannot be opened.
  std::vector<std::string> args = {"setsid", "-w", KubehsmBinary().string(), "--pin-source", "prompt", "keys", "list"};
  ProcessResult r = RunProcess(args, token_->ChildEnv());
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("no terminal to prompt for the PIN"), std::string::npos) << r.err;
  const auto events = AuditEvents();
  EXPECT_EQ(std::count(events.begin(), events.end(), "login-failure"), 0);
  EXPECT_EQ(std::count(events.begin(), events.end(), "pin-source-error"), 1);
  EXPECT_EQ(Kubehsm({"keys", "list"}).exit_code, 0);
}

TEST_F(OperatorMessagesTest, InitAnnouncesTheTokenKeyGenerationAndDrawsNoProgressWithoutATerminal) {
  const fs::path pki = dir_.path() / "pki";
  ProcessResult r =
      Kubehsm({"init", "phase", "sa", "--cert-dir", pki.string(), "--encryption-algorithm", "ECDSA-P256"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const auto announce = r.out.find("[certs] Creating the \"sa\" key in the token (ecdsa-p256)\n");
  const auto done = r.out.find("[certs] Generating \"sa\" key and public key");
  ASSERT_NE(announce, std::string::npos) << r.out;
  ASSERT_NE(done, std::string::npos) << r.out;
  EXPECT_LT(announce, done);
  // stdout is a pipe here: no carriage returns, no escape sequences, no "... Ns".
  EXPECT_EQ(r.out.find('\r'), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find('\033'), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("  ... "), std::string::npos) << r.out;
}

TEST_F(OperatorMessagesTest, InitDrawsAnElapsedTimeDisplayOnATerminal) {
  const fs::path pki = dir_.path() / "pki";
  // script(1) runs the command on a pseudo-terminal and copies what it draws to our pipe.
  const std::string cmd = ShellQuote(KubehsmBinary().string()) + " init phase sa --cert-dir " +
                          ShellQuote(pki.string()) + " --encryption-algorithm ECDSA-P256";
  ProcessResult r = RunProcess({"script", "-q", "-e", "-c", cmd, "/dev/null"}, token_->ChildEnv());
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const auto announce = r.out.find("[certs] Creating the \"sa\" key in the token (ecdsa-p256)");
  const auto display = r.out.find("\r  ... 0s");
  const auto erased = r.out.find("\r\033[K");
  const auto done = r.out.find("[certs] Generating \"sa\" key and public key");
  ASSERT_NE(announce, std::string::npos) << r.out;
  ASSERT_NE(display, std::string::npos) << r.out;
  ASSERT_NE(erased, std::string::npos) << r.out;
  ASSERT_NE(done, std::string::npos) << r.out;
  EXPECT_LT(announce, display);
  EXPECT_LT(display, erased);
  EXPECT_LT(erased, done);
}

TEST_F(OperatorMessagesTest, RotateStatesTheRefreshIntervalRuleNotAnHour) {
  ProcessResult r = Kubehsm({"sa", "rotate", "--type", "ecdsa-p256"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.find("at least 60 minutes"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("once per refresh interval"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--refresh-hint-seconds serve advertises, 60 s by default"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("then run: kubehsm sa activate --key="), std::string::npos) << r.out;
}

}  // namespace
}  // namespace kubehsm::testing
