// The fault-injecting PKCS#11 shim (fault_pkcs11.cc) in front of a fresh SoftHSM token: through the
// kubehsm binary (`--module <shim>`), and in-process through the hsm layer.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ui.h>
#include <openssl/x509.h>

#include "common/ssl_ptr.h"
#include "hsm/hsm.h"
#include "tests/support/test_env.h"

namespace kubehsm::testing {
namespace {

namespace fs = std::filesystem;

const char kShimPath[] = KUBEHSM_FAULT_PKCS11_PATH;

// The shim's control file, always replaced atomically (temp file + rename) so the shim sees either
// the old or the new version and always notices the change (new inode).
class FaultControl final {
 public:
  explicit FaultControl(fs::path path) : path_(std::move(path)) {}
  void Set(const std::string& text) {
    const fs::path tmp = path_.string() + ".tmp";
    WriteTestFile(tmp, text);
    fs::rename(tmp, path_);
  }
  void Clear() { Set(""); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// ---------------------------------------------------------------------------------------------
// The kubehsm binary with --module <shim>.

class FaultCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    token_ = std::make_unique<SoftHsmToken>("fault-cli");
    token_->WriteKubehsmConfig();
  }
  ProcessResult Kubehsm(std::vector<std::string> args) {
    args.insert(args.begin(), {KubehsmBinary().string(), "--module", kShimPath});
    auto env = token_->ChildEnv();
    env["KUBEHSM_FAULT_REAL_MODULE"] = token_->module_path();
    env["KUBEHSM_FAULT_CONTROL"] = control_.path().string();
    return RunProcess(args, env);
  }
  // Exit code 2 and exactly one line on stderr, prefixed "kubehsm:", containing every part.
  static void ExpectOneErrorLine(const ProcessResult& r, const std::vector<std::string>& parts) {
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_EQ(r.err.rfind("kubehsm:", 0), 0u) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    for (const auto& p : parts) EXPECT_NE(r.err.find(p), std::string::npos) << "missing '" << p << "' in " << r.err;
  }
  bool ListHas(const std::string& label) {
    auto list = Kubehsm({"keys", "list", "-o", "json"});
    EXPECT_EQ(list.exit_code, 0) << list.err;
    return list.out.find("\"label\": \"" + label + "\"") != std::string::npos;
  }

  std::unique_ptr<SoftHsmToken> token_;
  TempDir dir_;
  FaultControl control_{dir_.path() / "faults"};
};

TEST_F(FaultCliTest, GenerateAndListPassThroughWithoutFaults) {
  ASSERT_FALSE(fs::exists(control_.path()));  // no file: no faults
  auto gen = Kubehsm({"keys", "generate", "--label", "ca", "--type", "ecdsa-p256"});
  ASSERT_EQ(gen.exit_code, 0) << gen.err;
  EXPECT_EQ(gen.err, "");
  EXPECT_NE(gen.out.find("sensitive, never extractable"), std::string::npos) << gen.out;

  control_.Set("# only a comment\n\n");  // comments and blank lines: no faults
  auto gen2 = Kubehsm({"keys", "generate", "--label", "sa", "--type", "rsa-2048"});
  ASSERT_EQ(gen2.exit_code, 0) << gen2.err;

  control_.Clear();  // empty file: no faults
  auto list = Kubehsm({"keys", "list"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_EQ(list.err, "");
  EXPECT_NE(list.out.find("ca"), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("sa"), std::string::npos) << list.out;
}

TEST_F(FaultCliTest, GenerateFailsWithDeviceErrorAndLeavesNoKey) {
  control_.Set("C_GenerateKeyPair=CKR_DEVICE_ERROR\n");
  auto r = Kubehsm({"keys", "generate", "--label", "ca", "--type", "ecdsa-p256"});
  ExpectOneErrorLine(r, {"C_GenerateKeyPair", "CKR_DEVICE_ERROR"});
  EXPECT_EQ(r.out, "");

  control_.Clear();
  EXPECT_FALSE(ListHas("ca"));
  // Nothing half-made holds the label either.
  auto again = Kubehsm({"keys", "generate", "--label", "ca", "--type", "ecdsa-p256"});
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_TRUE(ListHas("ca"));
}

TEST_F(FaultCliTest, HexValueInjectsTheSameReturnValue) {
  control_.Set("C_GenerateKeyPair = 0x30\n");  // 0x30 == CKR_DEVICE_ERROR; spaces are allowed
  auto r = Kubehsm({"keys", "generate", "--label", "ca", "--type", "ecdsa-p256"});
  ExpectOneErrorLine(r, {"C_GenerateKeyPair", "CKR_DEVICE_ERROR"});
}

TEST_F(FaultCliTest, SlotListDeviceErrorIsOneClearLine) {
  control_.Set("C_GetSlotList=CKR_DEVICE_ERROR\n");
  ExpectOneErrorLine(Kubehsm({"keys", "list"}), {"C_GetSlotList", "CKR_DEVICE_ERROR"});
  ExpectOneErrorLine(Kubehsm({"keys", "generate", "--label", "ca"}), {"C_GetSlotList", "CKR_DEVICE_ERROR"});
}

TEST_F(FaultCliTest, TokenNotPresentSaysNoTokenIsThere) {
  control_.Set("C_GetTokenInfo=CKR_TOKEN_NOT_PRESENT\n");
  ExpectOneErrorLine(Kubehsm({"keys", "list"}), {"no token matches", "fault-cli", "initialized tokens: none"});
}

TEST_F(FaultCliTest, WildcardDeviceRemovedFailsCleanly) {
  control_.Set("*=CKR_DEVICE_REMOVED\n");
  // C_Initialize/C_Finalize are exempt: the process gets as far as the first real call and exits
  // with an error, not a crash.
  ExpectOneErrorLine(Kubehsm({"keys", "list"}), {"CKR_DEVICE_REMOVED"});
}

TEST_F(FaultCliTest, NamedFunctionWinsOverWildcard) {
  control_.Set("*=CKR_DEVICE_REMOVED\nC_GetSlotList=CKR_FUNCTION_FAILED\n");
  ExpectOneErrorLine(Kubehsm({"keys", "list"}), {"C_GetSlotList", "CKR_FUNCTION_FAILED"});
}

TEST_F(FaultCliTest, MalformedLinesAreReportedNotSilentlyIgnored) {
  control_.Set("C_Sgin=CKR_DEVICE_ERROR\nC_Sign=CKR_NO_SUCH_THING\nC_Sign=CKR_DEVICE_ERROR:x\nnonsense\n");
  auto r = Kubehsm({"keys", "list"});
  EXPECT_EQ(r.exit_code, 0) << r.err;  // every line ignored: no fault
  EXPECT_NE(r.err.find(control_.path().string() + ":1: unknown function 'C_Sgin'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(":2: unknown return value 'CKR_NO_SUCH_THING'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(":3: bad call count 'x'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(":4: expected FUNCTION=CKR_VALUE"), std::string::npos) << r.err;
}

TEST_F(FaultCliTest, MissingRealModuleIsOneClearError) {
  auto env = token_->ChildEnv();
  env["KUBEHSM_FAULT_REAL_MODULE"] = (dir_.path() / "no-such-module.so").string();
  auto r = RunProcess({KubehsmBinary().string(), "--module", kShimPath, "keys", "list"}, env);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("kubehsm-fault-pkcs11: cannot load the real PKCS#11 module"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("C_GetFunctionList"), std::string::npos) << r.err;
}

// ---------------------------------------------------------------------------------------------
// In-process, through hsm::Hsm with module_path = the shim.

using hsm::Hsm;
using hsm::HsmOptions;
using hsm::KeyInfo;

std::string Sha256(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EXPECT_EQ(EVP_Digest(data.data(), data.size(), md, &n, EVP_sha256(), nullptr), 1);
  return std::string(reinterpret_cast<char*>(md), n);
}

class FaultHsmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    token_ = std::make_unique<SoftHsmToken>("fault-hsm");
    ::setenv("KUBEHSM_FAULT_REAL_MODULE", token_->module_path().c_str(), 1);
    ::setenv("KUBEHSM_FAULT_CONTROL", control_.path().c_str(), 1);
    HsmOptions o;
    o.module_path = kShimPath;
    o.token_uri = token_->token_uri();
    o.pin_source = "file:" + token_->user_pin_file().string();
    auto h = Hsm::Open(o);
    ASSERT_TRUE(h.ok()) << h.status().message();
    hsm_ = std::move(*h);
    auto key = hsm_->token().GenerateKeyPair("fault-key", KeyType::kEcP256);
    ASSERT_TRUE(key.ok()) << key.status().message();
    key_ = *key;
    auto der = hsm_->token().PublicKeyDer(key_);
    ASSERT_TRUE(der.ok()) << der.status().message();
    const auto* p = reinterpret_cast<const unsigned char*>(der->data());
    public_key_.reset(d2i_PUBKEY(nullptr, &p, static_cast<long>(der->size())));
    ASSERT_TRUE(public_key_);
  }
  void TearDown() override {
    hsm_.reset();
    token_.reset();
    ::unsetenv("KUBEHSM_FAULT_CONTROL");
    ::unsetenv("KUBEHSM_FAULT_REAL_MODULE");
  }

  Result<std::string> Sign(std::string_view message) {
    return hsm_->token().SignDigest(key_, "SHA256", Sha256(message));
  }
  // Verifies a raw r||s P-256 signature with plain OpenSSL (software public key).
  bool Verifies(std::string_view message, const std::string& raw_sig) {
    if (raw_sig.size() != 64) return false;
    const auto* r = reinterpret_cast<const unsigned char*>(raw_sig.data());
    EcdsaSigPtr sig(ECDSA_SIG_new());
    BIGNUM* br = BN_bin2bn(r, 32, nullptr);
    BIGNUM* bs = BN_bin2bn(r + 32, 32, nullptr);
    if (!sig || br == nullptr || bs == nullptr || ECDSA_SIG_set0(sig.get(), br, bs) != 1) {
      BN_free(br);
      BN_free(bs);
      return false;
    }
    unsigned char* der = nullptr;
    const int der_len = i2d_ECDSA_SIG(sig.get(), &der);
    EvpMdCtxPtr ctx(EVP_MD_CTX_new());
    const bool ok =
        der_len > 0 && ctx &&
        EVP_DigestVerifyInit_ex(ctx.get(), nullptr, "SHA256", nullptr, nullptr, public_key_.get(), nullptr) == 1 &&
        EVP_DigestVerify(ctx.get(), der, static_cast<size_t>(der_len),
                         reinterpret_cast<const unsigned char*>(message.data()), message.size()) == 1;
    OPENSSL_free(der);
    return ok;
  }
  void ExpectSignsAndVerifies(const std::string& message) {
    auto sig = Sign(message);
    ASSERT_TRUE(sig.ok()) << sig.status().message();
    EXPECT_TRUE(Verifies(message, *sig));
    EXPECT_FALSE(Verifies(message + "!", *sig));  // a changed message must fail
  }

  TempDir dir_;
  FaultControl control_{dir_.path() / "faults"};
  std::unique_ptr<SoftHsmToken> token_;
  std::unique_ptr<Hsm> hsm_;
  KeyInfo key_;
  EvpPkeyPtr public_key_;
};

TEST_F(FaultHsmTest, SignFailsUnavailableWhileSignFaultedAndRecoversWhenCleared) {
  ExpectSignsAndVerifies("before");
  control_.Set("C_Sign=CKR_DEVICE_ERROR\n");
  for (int i = 0; i < 3; ++i) {
    auto sig = Sign("during");
    ASSERT_FALSE(sig.ok());
    EXPECT_EQ(sig.status().code(), StatusCode::kUnavailable) << sig.status().message();
    EXPECT_NE(sig.status().message().find("C_Sign"), std::string::npos) << sig.status().message();
    EXPECT_NE(sig.status().message().find("CKR_DEVICE_ERROR"), std::string::npos) << sig.status().message();
  }
  control_.Clear();
  ExpectSignsAndVerifies("after");
}

TEST_F(FaultHsmTest, SignInitFaultedByHexValue) {
  control_.Set("C_SignInit=0x32\n");  // CKR_DEVICE_REMOVED
  auto sig = Sign("m");
  ASSERT_FALSE(sig.ok());
  EXPECT_EQ(sig.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(sig.status().message().find("C_SignInit"), std::string::npos) << sig.status().message();
  EXPECT_NE(sig.status().message().find("CKR_DEVICE_REMOVED"), std::string::npos) << sig.status().message();
  ::unlink(control_.path().c_str());  // removing the file also ends the faults
  ExpectSignsAndVerifies("m");
}

TEST_F(FaultHsmTest, CountedFaultFailsOnlyTheNextNCalls) {
  control_.Set("C_Sign=CKR_DEVICE_ERROR:2\n");
  EXPECT_EQ(Sign("1").status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(Sign("2").status().code(), StatusCode::kUnavailable);
  ExpectSignsAndVerifies("3");
  ExpectSignsAndVerifies("4");
  control_.Set("C_Sign=CKR_DEVICE_ERROR:1\n");  // a new version of the file re-arms the count
  EXPECT_EQ(Sign("5").status().code(), StatusCode::kUnavailable);
  ExpectSignsAndVerifies("6");
}

// Rewriting the file in place with the same size, within one filesystem timestamp tick, leaves
// inode, size and mtime unchanged: the shim compares the content of recently changed files.
TEST_F(FaultHsmTest, InPlaceSameSizeRewriteIsNoticed) {
  WriteTestFile(control_.path(), "C_Sign=0x30:1\n");
  EXPECT_EQ(Sign("1").status().code(), StatusCode::kUnavailable);
  ExpectSignsAndVerifies("2");
  WriteTestFile(control_.path(), "C_Sign=0x30:2\n");  // same inode, same size
  EXPECT_EQ(Sign("3").status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(Sign("4").status().code(), StatusCode::kUnavailable);
  ExpectSignsAndVerifies("5");
}

TEST_F(FaultHsmTest, CountIsSharedByAllThreads) {
  control_.Set("C_Sign=CKR_DEVICE_ERROR:10\n");
  std::atomic<int> failed{0}, bad_signatures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) {
        const std::string msg = "t" + std::to_string(t) + "-" + std::to_string(i);
        auto sig = Sign(msg);
        if (!sig.ok())
          ++failed;
        else if (!Verifies(msg, *sig))
          ++bad_signatures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failed.load(), 10);
  EXPECT_EQ(bad_signatures.load(), 0);
}

// A non-transient error returns the session to the pool: the shim must have ended the signing
// operation in SoftHSM (as PKCS#11 says a failed C_Sign does), or the next C_SignInit on the same
// session would be CKR_OPERATION_ACTIVE.
TEST_F(FaultHsmTest, FaultedSignEndsTheOperationSoTheSessionIsReusable) {
  control_.Set("C_Sign=CKR_FUNCTION_FAILED:1\n");
  auto sig = Sign("m");
  ASSERT_FALSE(sig.ok());
  EXPECT_EQ(sig.status().code(), StatusCode::kInternal) << sig.status().message();
  ExpectSignsAndVerifies("m");
}

TEST_F(FaultHsmTest, CheckHealthUnavailableWhileTokenNotPresent) {
  EXPECT_TRUE(hsm_->token().CheckHealth().ok());
  control_.Set("C_GetTokenInfo=CKR_TOKEN_NOT_PRESENT\n");
  Status s = hsm_->token().CheckHealth();
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.message();
  EXPECT_NE(s.message().find("CKR_TOKEN_NOT_PRESENT"), std::string::npos) << s.message();
  control_.Clear();
  EXPECT_TRUE(hsm_->token().CheckHealth().ok());
}

TEST_F(FaultHsmTest, LogoutDirectiveLogsOutOnceThenIsForgotten) {
  EXPECT_TRUE(hsm_->token().CheckHealth().ok());
  control_.Set("logout=1\n");
  Status s = hsm_->token().CheckHealth();
  EXPECT_EQ(s.code(), StatusCode::kUnauthenticated) << s.message();
  EXPECT_FALSE(Sign("m").ok());  // SoftHSM dropped the private key with the login

  // Log in again from the outside (login state is per application): the directive is spent, so
  // the login now sticks although the file still says logout=1.
  CK_FUNCTION_LIST* f = hsm_->module().fn();
  CK_SESSION_HANDLE s2 = CK_INVALID_HANDLE;
  ASSERT_EQ(f->C_OpenSession(hsm_->token().info().slot_id, CKF_SERIAL_SESSION, nullptr, nullptr, &s2), CKR_OK);
  std::string pin = token_->user_pin();
  ASSERT_EQ(f->C_Login(s2, CKU_USER, reinterpret_cast<CK_UTF8CHAR*>(pin.data()), pin.size()), CKR_OK);
  EXPECT_TRUE(hsm_->token().CheckHealth().ok());
  EXPECT_TRUE(hsm_->token().CheckHealth().ok());
  f->C_CloseSession(s2);
}

// Runs `fn` with the process's stdin from /dev/null and its stderr captured; returns the capture.
template <typename Fn>
std::string WithCapturedStderr(const std::filesystem::path& file, Fn fn) {
  fflush(stderr);
  const int saved_err = ::dup(2);
  const int saved_in = ::dup(0);
  const int out = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  const int null_in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  EXPECT_TRUE(saved_err >= 0 && saved_in >= 0 && out >= 0 && null_in >= 0);
  ::dup2(out, 2);
  ::dup2(null_in, 0);
  fn();
  fflush(stderr);
  ::dup2(saved_err, 2);
  ::dup2(saved_in, 0);
  for (int fd : {saved_err, saved_in, out, null_in}) ::close(fd);
  return ReadTestFile(file);
}

// pkcs11-provider 1.0 falls back to its own PIN prompt (OpenSSL's default UI, i.e. the terminal)
// when a key operation finds the token logged out; kubehsm serve would block a signing thread on
// it. The provider must fail the operation instead, silently, so kubehsm can re-open the token.
TEST_F(FaultHsmTest, ProviderNeverPromptsForAPinWhenTheTokenLostItsLogin) {
  auto pkey = hsm_->LoadPrivateKey(key_);
  ASSERT_TRUE(pkey.ok()) << pkey.status().message();
  auto sign = [&](std::string_view msg) {
    EvpMdCtxPtr ctx(EVP_MD_CTX_new());
    std::string sig(128, '\0');
    size_t len = sig.size();
    const bool ok = ctx &&
                    EVP_DigestSignInit_ex(ctx.get(), nullptr, "SHA256", hsm_->bridge().libctx(), nullptr, pkey->get(),
                                          nullptr) == 1 &&
                    EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                                   reinterpret_cast<const unsigned char*>(msg.data()), msg.size()) == 1;
    ERR_clear_error();
    return ok;
  };
  ASSERT_TRUE(sign("before"));
  control_.Set("logout=1\n");
  EXPECT_EQ(hsm_->token().CheckHealth().code(), StatusCode::kUnauthenticated);
  bool signed_after_logout = true;
  const std::string err = WithCapturedStderr(dir_.path() / "stderr", [&] {
    signed_after_logout = sign("after");
    pkey->reset();  // freeing the key is the provider's other login path
  });
  EXPECT_FALSE(signed_after_logout) << "SoftHSM dropped the private key with the login";
  EXPECT_EQ(err.find("PIN"), std::string::npos) << err;
  // And OpenSSL's process default UI refuses any other prompt too.
  UI* ui = UI_new();
  ASSERT_NE(ui, nullptr);
  char buf[64] = {};
  ASSERT_GE(UI_add_input_string(ui, "PIN: ", 0, buf, 1, sizeof buf - 1), 0);
  std::string prompted = WithCapturedStderr(dir_.path() / "stderr2", [&] { EXPECT_NE(UI_process(ui), 0); });
  UI_free(ui);
  EXPECT_EQ(prompted, "");
}

TEST_F(FaultHsmTest, WildcardFailsEverythingButTeardownStillWorks) {
  control_.Set("*=CKR_DEVICE_REMOVED\n");
  EXPECT_EQ(Sign("m").status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(hsm_->token().CheckHealth().code(), StatusCode::kUnavailable);
  EXPECT_EQ(hsm_->token().ListKeys().status().code(), StatusCode::kUnavailable);
  control_.Clear();
  ExpectSignsAndVerifies("m");
  control_.Set("*=CKR_DEVICE_REMOVED\n");
  hsm_.reset();  // C_CloseSession fails, C_Finalize (exempt) still runs: no crash, no hang
}

// A daemon flips faults on and off under load: every call either signs correctly or fails as
// kUnavailable, and signing works again once the file is cleared.
TEST_F(FaultHsmTest, ConcurrentSignersFollowFaultsFlippedOnAndOff) {
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, unavailable{0}, wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; !stop.load(); ++i) {
        const std::string msg = "t" + std::to_string(t) + "-" + std::to_string(i);
        auto sig = Sign(msg);
        if (sig.ok() && Verifies(msg, *sig))
          ++ok;
        else if (!sig.ok() && sig.status().code() == StatusCode::kUnavailable)
          ++unavailable;
        else
          ++wrong;
      }
    });
  }
  for (int round = 0; round < 10; ++round) {
    control_.Set(round % 2 == 0 ? "C_Sign=CKR_DEVICE_ERROR\n" : "");
    std::this_thread::sleep_for(std::chrono::milliseconds(60));
  }
  stop = true;
  for (auto& t : threads) t.join();
  EXPECT_GT(ok.load(), 0);
  EXPECT_GT(unavailable.load(), 0);
  EXPECT_EQ(wrong.load(), 0);
  control_.Clear();
  ExpectSignsAndVerifies("after");
}

}  // namespace
}  // namespace kubehsm::testing
