// `-v` on every command family that opens a token: the real binary on a fresh SoftHSM token must
// say on stderr which config file, module, slot and token it used (and never the PIN), including
// when the login fails; stdout stays what it is without -v.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "tests/support/test_env.h"

namespace kubehsm::testing {
namespace {

namespace fs = std::filesystem;

class VerboseCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    token_ = std::make_unique<SoftHsmToken>("verbose-test");
    config_ = token_->WriteKubehsmConfig();
    // The slot SoftHSM gave the token, as `token list` prints it ("slot N: pkcs11:...token=verbose-test").
    auto list = Kubehsm({"token", "list"});
    ASSERT_EQ(list.exit_code, 0) << list.err;
    std::smatch m;
    ASSERT_TRUE(std::regex_search(list.out, m, std::regex("slot ([0-9]+): [^\n]*token=verbose-test"))) << list.out;
    slot_ = m[1];
  }
  ProcessResult Kubehsm(std::vector<std::string> args) {
    args.insert(args.begin(), KubehsmBinary().string());
    return RunProcess(args, token_->ChildEnv());
  }
  // The -v lines of a command that opened the token.
  void ExpectTokenReport(const ProcessResult& r) {
    EXPECT_NE(r.err.find("kubehsm: config file " + config_.string() + "\n"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("kubehsm: module " + token_->module_path() + "\n"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("kubehsm: token pkcs11:token=verbose-test, PIN from file:" + token_->user_pin_file().string() +
                         "\n"),
              std::string::npos)
        << r.err;
    EXPECT_NE(
        r.err.find("kubehsm: using slot " + slot_ + ": token 'verbose-test' (SoftHSM project SoftHSM v2, serial "),
        std::string::npos)
        << r.err;
    EXPECT_EQ(r.err.find(token_->user_pin()), std::string::npos) << "-v printed the PIN";
  }
  std::unique_ptr<SoftHsmToken> token_;
  fs::path config_;
  std::string slot_;
};

TEST_F(VerboseCliTest, KeysListNamesConfigModuleSlotAndToken) {
  ASSERT_EQ(Kubehsm({"keys", "generate", "--label", "k1", "--type", "ecdsa-p256"}).exit_code, 0);
  auto quiet = Kubehsm({"keys", "list"});
  ASSERT_EQ(quiet.exit_code, 0) << quiet.err;
  EXPECT_EQ(quiet.err, "");
  auto r = Kubehsm({"-v", "keys", "list"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectTokenReport(r);
  EXPECT_EQ(r.out, quiet.out) << "-v changes only stderr";
  // -v after the command word works the same.
  auto after = Kubehsm({"keys", "list", "-v"});
  ASSERT_EQ(after.exit_code, 0) << after.err;
  ExpectTokenReport(after);
}

TEST_F(VerboseCliTest, SaListNamesConfigModuleSlotAndToken) {
  ASSERT_EQ(Kubehsm({"sa", "rotate", "--type", "ecdsa-p256"}).exit_code, 0);
  auto r = Kubehsm({"-v", "sa", "list"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectTokenReport(r);
  EXPECT_NE(r.out.find("next"), std::string::npos) << r.out;
}

TEST_F(VerboseCliTest, TokenListNamesConfigAndModule) {
  auto r = Kubehsm({"token", "list", "--verbose"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("kubehsm: config file " + config_.string() + "\n"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("kubehsm: module " + token_->module_path() + "\n"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("slot " + slot_ + ": "), std::string::npos) << r.out;
}

TEST_F(VerboseCliTest, TokenListWithoutConfigFileSaysSo) {
  auto r =
      RunProcess({KubehsmBinary().string(), "-v", "token", "list"}, {{"SOFTHSM2_CONF", token_->conf_path().string()},
                                                                     {"KUBEHSM_CONFIG", ""},
                                                                     {"XDG_CONFIG_HOME", token_->dir().string()}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  if (fs::exists("/etc/kubehsm/kubehsm.conf")) {
    EXPECT_NE(r.err.find("kubehsm: config file /etc/kubehsm/kubehsm.conf\n"), std::string::npos) << r.err;
  } else {
    EXPECT_NE(r.err.find("kubehsm: no config file ("), std::string::npos) << r.err;
  }
  EXPECT_NE(r.err.find("kubehsm: module "), std::string::npos) << r.err;
}

TEST_F(VerboseCliTest, SignCsrNamesConfigModuleSlotAndToken) {
  const fs::path pki = token_->dir() / "pki";
  auto ca = Kubehsm({"init", "phase", "ca", "--cert-dir", pki.string(), "--encryption-algorithm", "ECDSA-P256"});
  ASSERT_EQ(ca.exit_code, 0) << ca.err;
  const fs::path csr = token_->dir() / "w1.csr";
  auto req = RunProcess({"openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                         "-keyout", (token_->dir() / "w1.key").string(), "-subj", "/O=system:nodes/CN=system:node:w1",
                         "-out", csr.string()});
  ASSERT_EQ(req.exit_code, 0) << req.err;
  const fs::path out = token_->dir() / "w1.crt";
  auto r = Kubehsm({"-v", "certs", "sign-csr", "--csr", csr.string(), "--profile", "kubelet-client", "--out",
                    out.string(), "--cert-dir", pki.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectTokenReport(r);
  auto verify = RunProcess({"openssl", "verify", "-CAfile", (pki / "ca.crt").string(), out.string()});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
}

TEST_F(VerboseCliTest, WrongPinNamesTheSlotAndTokenItFailedOn) {
  const std::string wrong = "99999" + token_->user_pin().substr(5) + "7";
  WriteTestFile(token_->dir() / "wrong.pin", wrong + "\n");
  const std::string source = "file:" + (token_->dir() / "wrong.pin").string();
  auto quiet = Kubehsm({"--pin-source", source, "keys", "list"});
  EXPECT_EQ(quiet.exit_code, 2);
  EXPECT_EQ(std::count(quiet.err.begin(), quiet.err.end(), '\n'), 1) << "without -v: one error line\n" << quiet.err;
  auto r = Kubehsm({"-v", "--pin-source", source, "keys", "list"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("kubehsm: token pkcs11:token=verbose-test, PIN from " + source + "\n"), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("kubehsm: using slot " + slot_ + ": token 'verbose-test'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("kubehsm: error: wrong PIN"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find(wrong), std::string::npos) << "-v printed the PIN";
  EXPECT_EQ(r.err.find(token_->user_pin()), std::string::npos) << "-v printed the PIN";
}

}  // namespace
}  // namespace kubehsm::testing
