// The kubehsm binary as a user runs it: keys and token commands on a fresh SoftHSM token.
#include <gtest/gtest.h>
#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/test_env.h"

namespace kubehsm::testing {
namespace {

namespace fs = std::filesystem;

class KeysCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    token_ = std::make_unique<SoftHsmToken>("cli-test");
    token_->WriteKubehsmConfig();
  }
  ProcessResult Kubehsm(std::vector<std::string> args, std::map<std::string, std::string> extra_env = {}) {
    args.insert(args.begin(), KubehsmBinary().string());
    auto env = token_->ChildEnv();
    for (auto& [k, v] : extra_env) env[k] = v;
    return RunProcess(args, env);
  }
  // One line on stderr, prefixed "kubehsm:".
  static void ExpectOneErrorLine(const ProcessResult& r, const std::string& part) {
    EXPECT_EQ(r.err.rfind("kubehsm:", 0), 0u) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find(part), std::string::npos) << r.err;
  }
  std::unique_ptr<SoftHsmToken> token_;
};

TEST_F(KeysCliTest, GenerateListAndExportPublicKeyForEveryType) {
  for (const char* type : {"rsa-2048", "rsa-3072", "rsa-4096", "ecdsa-p256", "ecdsa-p384", "ecdsa-p521"}) {
    auto r = Kubehsm({"keys", "generate", "--label", std::string("k-") + type, "--type", type});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("sensitive, never extractable"), std::string::npos);
  }
  auto list = Kubehsm({"keys", "list", "-o", "json"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  for (const char* type : {"rsa-2048", "rsa-3072", "rsa-4096", "ecdsa-p256", "ecdsa-p384", "ecdsa-p521"}) {
    EXPECT_NE(list.out.find(std::string("\"label\": \"k-") + type + "\""), std::string::npos) << list.out;
  }
  EXPECT_EQ(list.out.find("\"extractable\": true"), std::string::npos);
  EXPECT_EQ(list.out.find("\"never_extractable\": false"), std::string::npos);
  auto text = Kubehsm({"keys", "list"});
  ASSERT_EQ(text.exit_code, 0);
  EXPECT_NE(text.out.find("NEVER-EXTRACTABLE"), std::string::npos);

  TempDir dir;
  auto pub = Kubehsm({"keys", "pubkey", "--label", "k-ecdsa-p384", "--out", (dir.path() / "p.pem").string()});
  ASSERT_EQ(pub.exit_code, 0) << pub.err;
  auto parsed = RunProcess({"openssl", "pkey", "-pubin", "-in", (dir.path() / "p.pem").string(), "-noout", "-text"});
  ASSERT_EQ(parsed.exit_code, 0) << parsed.err;
  EXPECT_NE(parsed.out.find("NIST CURVE: P-384"), std::string::npos) << parsed.out;
  auto stdout_pem = Kubehsm({"keys", "pubkey", "--label", "k-ecdsa-p384"});
  EXPECT_EQ(stdout_pem.out, ReadTestFile(dir.path() / "p.pem"));
  EXPECT_EQ(stdout_pem.out.rfind("-----BEGIN PUBLIC KEY-----\n", 0), 0u);
}

// token check: probes each key type through the real paths (generate, sign, verify, destroy),
// leaves no key behind, and gives a verdict; JSON output parses.
TEST_F(KeysCliTest, TokenCheckProbesKeyTypesAndLeavesNoKeys) {
  auto r = Kubehsm({"token", "check", "--type", "RSA-2048", "--type", "ECDSA-P256"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("PIN length: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("CKM_RSA_PKCS_KEY_PAIR_GEN"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("rsa-2048    supported     via CKM_SHA256_RSA_PKCS"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("ecdsa-p256  supported     via CKM_ECDSA"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("init, certs, sign-csr:  supported"), std::string::npos) << r.out;
  auto list = Kubehsm({"keys", "list", "-o", "json"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_EQ(list.out.find("kubehsm-check"), std::string::npos) << list.out;

  auto j = Kubehsm({"token", "check", "--type", "ECDSA-P384", "--encryption-algorithm", "ECDSA-P384", "-o", "json"});
  ASSERT_EQ(j.exit_code, 0) << j.err;
  auto parsed = RunProcess({"/usr/bin/python3", "-c",
                            "import json,sys; d=json.load(sys.stdin); "
                            "print(d['init']['supported'], d['probes'][0]['type'], d['probes'][0]['supported'])"},
                           {}, j.out);
  ASSERT_EQ(parsed.exit_code, 0) << parsed.err << j.out;
  EXPECT_EQ(parsed.out, "True ecdsa-p384 True\n");
}

TEST_F(KeysCliTest, TokenCheckAndInitArgsRefuseBadInput) {
  EXPECT_EQ(Kubehsm({"token", "check", "--type", "ed25519"}).exit_code, 1);
  auto r = Kubehsm({"--module-init-args", "pin=1234", "token", "check"});
  EXPECT_EQ(r.exit_code, 2);
  ExpectOneErrorLine(r, "PINs come only from a PIN source");
}

// PINs outside the token's ulMinPinLen..ulMaxPinLen (SoftHSM: 4..255) are refused before
// C_InitToken, and the free slot stays free.
TEST_F(KeysCliTest, TokenInitRefusesPinsTheTokenCannotTake) {
  TempDir dir;
  WriteTestFile(dir.path() / "so.pin", "12345678");
  WriteTestFile(dir.path() / "short.pin", "123");
  auto r = Kubehsm({"--pin-source", "file:" + (dir.path() / "short.pin").string(), "token", "init", "--label",
                    "second", "--so-pin-source", "file:" + (dir.path() / "so.pin").string()});
  EXPECT_EQ(r.exit_code, 2);
  ExpectOneErrorLine(r, "the user PIN has 3 characters; this token accepts 4 to 255");
  auto list = Kubehsm({"token", "list"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_EQ(list.out.find("second"), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("free (uninitialized)"), std::string::npos) << list.out;
}

TEST_F(KeysCliTest, DuplicateLabelFailsWithOneLine) {
  ASSERT_EQ(Kubehsm({"keys", "generate", "--label", "ca", "--type", "ecdsa-p256"}).exit_code, 0);
  auto r = Kubehsm({"keys", "generate", "--label", "ca", "--type", "ecdsa-p256"});
  EXPECT_EQ(r.exit_code, 2);
  ExpectOneErrorLine(r, "already has an object labelled 'ca'");
}

TEST_F(KeysCliTest, UnknownKeyIsOneClearError) {
  auto r = Kubehsm({"keys", "pubkey", "--label", "nope"});
  EXPECT_EQ(r.exit_code, 2);
  ExpectOneErrorLine(r, "no key labelled 'nope'");
}

TEST_F(KeysCliTest, UsageErrorsExitOne) {
  EXPECT_EQ(Kubehsm({"frobnicate"}).exit_code, 1);
  EXPECT_EQ(Kubehsm({"keys", "generate"}).exit_code, 1);  // --label missing
  auto bad_type = Kubehsm({"keys", "generate", "--label", "x", "--type", "dsa-1024"});
  EXPECT_EQ(bad_type.exit_code, 1);
  ExpectOneErrorLine(bad_type, "unknown key type 'dsa-1024'");
  EXPECT_EQ(Kubehsm({"--no-such-global", "keys", "list"}).exit_code, 1);
  EXPECT_EQ(Kubehsm({"keys", "list", "--bogus"}).exit_code, 1);
}

TEST_F(KeysCliTest, HelpOnEveryCommandExitsZero) {
  for (std::vector<std::string> cmd : std::vector<std::vector<std::string>>{{"--help"},
                                                                            {"keys", "--help"},
                                                                            {"keys", "generate", "--help"},
                                                                            {"keys", "list", "--help"},
                                                                            {"keys", "pubkey", "--help"},
                                                                            {"token", "--help"},
                                                                            {"token", "list", "--help"},
                                                                            {"token", "init", "--help"}}) {
    auto r = Kubehsm(cmd);
    EXPECT_EQ(r.exit_code, 0) << cmd.back() << ": " << r.err;
    EXPECT_NE(r.out.find("Usage"), std::string::npos) << r.out;
  }
}

TEST_F(KeysCliTest, MissingModuleIsOneClearError) {
  auto r = Kubehsm({"--module", "/nonexistent/module.so", "keys", "list"});
  EXPECT_EQ(r.exit_code, 2);
  ExpectOneErrorLine(r, "PKCS#11 module /nonexistent/module.so does not exist");
}

TEST_F(KeysCliTest, MissingTokenIsOneClearError) {
  auto r = Kubehsm({"--token", "pkcs11:token=absent", "keys", "list"});
  EXPECT_EQ(r.exit_code, 2);
  ExpectOneErrorLine(r, "no token matches pkcs11:token=absent");
}

TEST_F(KeysCliTest, MalformedTokenUriIsOneClearError) {
  auto r = Kubehsm({"keys", "list", "--token", "pkcs11:label=foo"});
  EXPECT_EQ(r.exit_code, 2);
  ExpectOneErrorLine(r, "unknown PKCS#11 URI path attribute 'label'");
}

// The PIN never appears in any output: not on success, not with --verbose, not on a wrong PIN, not
// when a user mistakenly passes it where a pin source or a URI belongs.
TEST_F(KeysCliTest, PinNeverAppearsInOutput) {
  const std::string pin = token_->user_pin();
  std::vector<ProcessResult> runs;
  runs.push_back(Kubehsm({"-v", "keys", "generate", "--label", "x", "--type", "ecdsa-p256"}));
  runs.push_back(Kubehsm({"-v", "keys", "list", "-o", "json"}));
  EXPECT_EQ(runs[0].exit_code, 0) << runs[0].err;
  runs.push_back(Kubehsm({"--pin-source", pin, "keys", "list"}));
  EXPECT_NE(runs.back().exit_code, 0);
  runs.push_back(Kubehsm({"--token", "pkcs11:token=cli-test?pin-value=" + pin, "keys", "list"}));
  EXPECT_NE(runs.back().exit_code, 0);
  EXPECT_NE(runs.back().err.find("pin-value"), std::string::npos);
  runs.push_back(Kubehsm({"--pin-source", "env:WRONG_PIN", "keys", "list"}, {{"WRONG_PIN", pin + "0"}}));
  EXPECT_EQ(runs.back().exit_code, 2);
  ExpectOneErrorLine(runs.back(), "wrong PIN for token 'cli-test'");
  for (const auto& r : runs) {
    EXPECT_EQ(r.out.find(pin), std::string::npos) << r.out;
    EXPECT_EQ(r.err.find(pin), std::string::npos) << r.err;
  }
  // After one wrong PIN the token still works with the right one.
  EXPECT_EQ(Kubehsm({"keys", "list"}).exit_code, 0);
}

TEST_F(KeysCliTest, PinFromEnvironmentAndFileDescriptor) {
  auto env = Kubehsm({"--pin-source", "env:MY_PIN", "keys", "list"}, {{"MY_PIN", token_->user_pin()}});
  EXPECT_EQ(env.exit_code, 0) << env.err;
  std::vector<std::string> args = {KubehsmBinary().string(), "--pin-source", "fd:0", "keys", "list"};
  auto fd = RunProcess(args, token_->ChildEnv(), token_->user_pin() + "\n");
  EXPECT_EQ(fd.exit_code, 0) << fd.err;
}

TEST_F(KeysCliTest, ConfigFileSearchOrder) {
  TempDir home;
  // No KUBEHSM_CONFIG: $XDG_CONFIG_HOME/kubehsm/kubehsm.conf is used.
  WriteTestFile(home.path() / "xdg/kubehsm/kubehsm.conf", ReadTestFile(token_->dir() / "kubehsm.conf"));
  auto xdg =
      RunProcess({KubehsmBinary().string(), "keys", "list"}, {{"SOFTHSM2_CONF", token_->conf_path().string()},
                                                              {"KUBEHSM_CONFIG", ""},
                                                              {"XDG_CONFIG_HOME", (home.path() / "xdg").string()}});
  EXPECT_EQ(xdg.exit_code, 0) << xdg.err;
  // --hsm-config beats KUBEHSM_CONFIG; a named but missing file is an error.
  auto missing = Kubehsm({"--hsm-config", "/nonexistent.conf", "keys", "list"});
  EXPECT_EQ(missing.exit_code, 2);
  ExpectOneErrorLine(missing, "config file /nonexistent.conf does not exist");
  // A config file with an unknown key is refused with its name.
  WriteTestFile(home.path() / "bad.conf", "modul = /x\n");
  auto bad = Kubehsm({"--hsm-config", (home.path() / "bad.conf").string(), "keys", "list"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("modul"), std::string::npos) << bad.err;
}

TEST_F(KeysCliTest, TokenListShowsTheToken) {
  auto r = Kubehsm({"token", "list"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("token=cli-test"), std::string::npos) << r.out;
}

// An unknown --type names every valid one (the user need not read --help to find them).
TEST_F(KeysCliTest, GenerateWithUnknownTypeListsTheValidTypes) {
  auto r = Kubehsm({"keys", "generate", "--label", "k", "--type", "ed25519"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  ExpectOneErrorLine(r,
                     "unknown key type 'ed25519' (valid: rsa-2048, rsa-3072, rsa-4096, ecdsa-p256, ecdsa-p384, "
                     "ecdsa-p521)");
  auto list = Kubehsm({"keys", "list", "-o", "json"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_EQ(list.out.find("\"label\": \"k\""), std::string::npos) << "nothing was generated: " << list.out;
}

// A module whose slots hold no token (SoftHSM behind the fault shim reporting every token
// absent) gets a sentence, not empty output.
TEST_F(KeysCliTest, TokenListSaysWhenTheModuleHasNoToken) {
  TempDir dir;
  WriteTestFile(dir.path() / "faults", "C_GetTokenInfo=CKR_TOKEN_NOT_PRESENT\n");
  auto r = Kubehsm({"--module", KUBEHSM_FAULT_PKCS11_PATH, "token", "list"},
                   {{"KUBEHSM_FAULT_CONTROL", (dir.path() / "faults").string()}});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.out.rfind(std::string("no slots with a token in module ") + KUBEHSM_FAULT_PKCS11_PATH, 0), 0u) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
}

}  // namespace
}  // namespace kubehsm::testing
