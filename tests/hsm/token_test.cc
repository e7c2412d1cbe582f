// The hsm layer against a real SoftHSM token, created fresh for every test process.
#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "common/ssl_ptr.h"
#include "hsm/hsm.h"
#include "signer/signing_key.h"
#include "tests/support/test_env.h"

namespace kubehsm::hsm {
namespace {

using testing::ReadTestFile;
using testing::RunProcess;
using testing::SoftHsmToken;
using testing::TempDir;
using testing::WriteTestFile;

class TokenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    token_ = std::make_unique<SoftHsmToken>("hsm-test");
    auto h = Hsm::Open(Options());
    ASSERT_TRUE(h.ok()) << h.status().message();
    hsm_ = std::move(*h);
  }
  void TearDown() override {
    hsm_.reset();
    token_.reset();
  }
  HsmOptions Options() const {
    HsmOptions o;
    o.module_path = token_->module_path();
    o.token_uri = token_->token_uri();
    o.pin_source = "file:" + token_->user_pin_file().string();
    return o;
  }
  std::string PublicPem(const KeyInfo& key) {
    auto der = hsm_->token().PublicKeyDer(key);
    EXPECT_TRUE(der.ok()) << der.status().message();
    auto pub = signer::ParseSpkiDer(*der);
    BioPtr bio(BIO_new(BIO_s_mem()));
    PEM_write_bio_PUBKEY(bio.get(), pub->get());
    char* p = nullptr;
    long n = BIO_get_mem_data(bio.get(), &p);
    return std::string(p, static_cast<size_t>(n));
  }

  std::unique_ptr<SoftHsmToken> token_;
  std::unique_ptr<Hsm> hsm_;
};

class KeyTypeTokenTest : public TokenTest, public ::testing::WithParamInterface<KeyType> {};

// Generate in the token, sign through pkcs11-provider (OpenSSL EVP), verify with the openssl
// command line from the exported public key; a changed message must fail.
TEST_P(KeyTypeTokenTest, GeneratedKeySignsThroughOpenSslAndVerifiesWithOpenSslCli) {
  const KeyType type = GetParam();
  auto key = hsm_->token().GenerateKeyPair("k1", type);
  ASSERT_TRUE(key.ok()) << key.status().message();
  EXPECT_EQ(key->type, type);
  EXPECT_TRUE(key->non_exportable());

  auto pkey = hsm_->LoadPrivateKey(*key);
  ASSERT_TRUE(pkey.ok()) << pkey.status().message();
  auto signing = signer::SigningKey::Create(std::move(*pkey), hsm_->bridge().libctx());
  ASSERT_TRUE(signing.ok()) << signing.status().message();
  EXPECT_EQ(signing->type(), type);
  const std::string message = "kubehsm signs inside the token";
  auto sig = signing->Sign(message);
  ASSERT_TRUE(sig.ok()) << sig.status().message();

  TempDir dir;
  WriteTestFile(dir.path() / "pub.pem", PublicPem(*key));
  WriteTestFile(dir.path() / "msg", message);
  WriteTestFile(dir.path() / "bad", message + "!");
  WriteTestFile(dir.path() / "sig", *sig);
  const std::string md = "-" + std::string(DefaultDigestName(type) == "SHA256"   ? "sha256"
                                           : DefaultDigestName(type) == "SHA384" ? "sha384"
                                                                                 : "sha512");
  auto ok = RunProcess({"openssl", "dgst", md, "-verify", (dir.path() / "pub.pem").string(), "-signature",
                        (dir.path() / "sig").string(), (dir.path() / "msg").string()});
  EXPECT_EQ(ok.exit_code, 0) << ok.out << ok.err;
  EXPECT_NE(ok.out.find("Verified OK"), std::string::npos);
  auto bad = RunProcess({"openssl", "dgst", md, "-verify", (dir.path() / "pub.pem").string(), "-signature",
                         (dir.path() / "sig").string(), (dir.path() / "bad").string()});
  EXPECT_NE(bad.exit_code, 0);
}

// The raw C_Sign path (used for the baseline and the signing daemon) gives the same verifiable
// signatures: PKCS#1 v1.5 for RSA, raw r||s for ECDSA.
TEST_P(KeyTypeTokenTest, RawSignDigestVerifiesInSoftware) {
  const KeyType type = GetParam();
  auto key = hsm_->token().GenerateKeyPair("raw", type);
  ASSERT_TRUE(key.ok()) << key.status().message();
  const std::string md_name(DefaultDigestName(type));
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int dlen = 0;
  ASSERT_EQ(EVP_Digest("abc", 3, digest, &dlen, EVP_get_digestbyname(md_name.c_str()), nullptr), 1);
  auto sig = hsm_->token().SignDigest(*key, md_name, std::string(reinterpret_cast<char*>(digest), dlen));
  ASSERT_TRUE(sig.ok()) << sig.status().message();
  std::string der_sig = *sig;
  if (!IsRsa(type)) {
    // Raw r||s of fixed length: convert to DER for OpenSSL's verifier.
    const size_t half = sig->size() / 2;
    EXPECT_EQ(sig->size(), type == KeyType::kEcP256 ? 64u : type == KeyType::kEcP384 ? 96u : 132u);
    EcdsaSigPtr es(ECDSA_SIG_new());
    ECDSA_SIG_set0(
        es.get(), BN_bin2bn(reinterpret_cast<const unsigned char*>(sig->data()), static_cast<int>(half), nullptr),
        BN_bin2bn(reinterpret_cast<const unsigned char*>(sig->data()) + half, static_cast<int>(half), nullptr));
    unsigned char* der = nullptr;
    int len = i2d_ECDSA_SIG(es.get(), &der);
    der_sig.assign(reinterpret_cast<char*>(der), static_cast<size_t>(len));
    OPENSSL_free(der);
  }
  auto spki = hsm_->token().PublicKeyDer(*key);
  auto pub = signer::ParseSpkiDer(*spki);
  ASSERT_TRUE(pub.ok());
  EXPECT_TRUE(signer::VerifySignature(pub->get(), type, "abc", der_sig).ok());
  EXPECT_FALSE(signer::VerifySignature(pub->get(), type, "abd", der_sig).ok());
}

// The private value never leaves the token: reading it is refused, and the attributes prove the
// key was generated inside and can never be extracted.
TEST_P(KeyTypeTokenTest, PrivateValueReadIsRefusedAndAttributesProveNonExtractable) {
  auto key = hsm_->token().GenerateKeyPair("secret", GetParam());
  ASSERT_TRUE(key.ok()) << key.status().message();
  const CK_ATTRIBUTE_TYPE secret_attr = IsRsa(GetParam()) ? CKA_PRIVATE_EXPONENT : CKA_VALUE;
  auto value = hsm_->token().GetAttribute(key->private_handle, secret_attr);
  ASSERT_FALSE(value.ok());
  EXPECT_EQ(value.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(value.status().message().find("CKR_ATTRIBUTE_SENSITIVE"), std::string::npos);
  if (IsRsa(GetParam())) {
    EXPECT_FALSE(hsm_->token().GetAttribute(key->private_handle, CKA_PRIME_1).ok());
  }
  auto bool_attr = [&](CK_ATTRIBUTE_TYPE t) {
    auto v = hsm_->token().GetAttribute(key->private_handle, t);
    EXPECT_TRUE(v.ok()) << v.status().message();
    return v.ok() && v->size() == 1 && (*v)[0] == 1;
  };
  EXPECT_TRUE(bool_attr(CKA_NEVER_EXTRACTABLE));
  EXPECT_TRUE(bool_attr(CKA_ALWAYS_SENSITIVE));
  EXPECT_TRUE(bool_attr(CKA_SENSITIVE));
  EXPECT_TRUE(bool_attr(CKA_LOCAL));
  EXPECT_FALSE(bool_attr(CKA_EXTRACTABLE));
  EXPECT_FALSE(bool_attr(CKA_DECRYPT));

  // OpenSSL cannot export it either: the provider key has no private data to encode.
  auto pkey = hsm_->LoadPrivateKey(*key);
  ASSERT_TRUE(pkey.ok()) << pkey.status().message();
  unsigned char* der = nullptr;
  int len = i2d_PrivateKey(pkey->get(), &der);
  EXPECT_LE(len, 0);
  OPENSSL_free(der);
  BioPtr bio(BIO_new(BIO_s_mem()));
  EXPECT_NE(PEM_write_bio_PrivateKey(bio.get(), pkey->get(), nullptr, nullptr, 0, nullptr, nullptr), 1);
}

INSTANTIATE_TEST_SUITE_P(AllTypes, KeyTypeTokenTest,
                         ::testing::Values(KeyType::kRsa2048, KeyType::kRsa3072, KeyType::kRsa4096, KeyType::kEcP256,
                                           KeyType::kEcP384, KeyType::kEcP521),
                         [](const auto& p) {
                           std::string n(KeyTypeName(p.param));
                           for (auto& c : n)
                             if (c == '-') c = '_';
                           return n;
                         });

TEST_F(TokenTest, SecondKeyWithSameLabelIsRefused) {
  ASSERT_TRUE(hsm_->token().GenerateKeyPair("ca", KeyType::kEcP256).ok());
  auto again = hsm_->token().GenerateKeyPair("ca", KeyType::kRsa2048);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), StatusCode::kAlreadyExists);
  auto keys = hsm_->token().ListKeys();
  ASSERT_TRUE(keys.ok());
  ASSERT_EQ(keys->size(), 1u);
  EXPECT_EQ((*keys)[0].type, KeyType::kEcP256);
}

TEST_F(TokenTest, ListsKeysWithAttributesAndFindsByUri) {
  ASSERT_TRUE(hsm_->token().GenerateKeyPair("b-key", KeyType::kRsa2048).ok());
  ASSERT_TRUE(hsm_->token().GenerateKeyPair("a-key", KeyType::kEcP384).ok());
  auto keys = hsm_->token().ListKeys();
  ASSERT_TRUE(keys.ok());
  ASSERT_EQ(keys->size(), 2u);
  EXPECT_EQ((*keys)[0].label, "a-key");
  EXPECT_EQ((*keys)[1].label, "b-key");
  for (const auto& k : *keys) {
    EXPECT_TRUE(k.has_private());
    EXPECT_NE(k.public_handle, CK_INVALID_HANDLE);
    EXPECT_EQ(k.id.size(), 16u);
    auto by_uri = hsm_->token().FindKey(*Pkcs11Uri::Parse(hsm_->token().KeyUri(k)));
    ASSERT_TRUE(by_uri.ok()) << by_uri.status().message();
    EXPECT_EQ(by_uri->private_handle, k.private_handle);
  }
}

TEST_F(TokenTest, UnknownKeyUriIsNotFound) {
  auto k = hsm_->token().FindKey(*Pkcs11Uri::Parse("pkcs11:object=nope;type=private"));
  ASSERT_FALSE(k.ok());
  EXPECT_EQ(k.status().code(), StatusCode::kNotFound);
  EXPECT_NE(k.status().message().find("no key labelled 'nope'"), std::string::npos) << k.status().message();
}

TEST_F(TokenTest, ImportsPublicKeyRelabelsAndDestroys) {
  auto soft = signer::SigningKey::GenerateSoftware(KeyType::kEcP256);
  ASSERT_TRUE(soft.ok());
  auto imported = hsm_->token().ImportPublicKey("old-sa", soft->spki_der());
  ASSERT_TRUE(imported.ok()) << imported.status().message();
  EXPECT_FALSE(imported->has_private());
  EXPECT_EQ(hsm_->token().PublicKeyDer(*imported).value(), soft->spki_der());
  ASSERT_TRUE(hsm_->token().SetLabel(*imported, "renamed").ok());
  auto found = hsm_->token().FindKeyByLabel("renamed");
  ASSERT_TRUE(found.ok());
  ASSERT_TRUE(hsm_->token().DestroyKey(*found).ok());
  EXPECT_EQ(hsm_->token().FindKeyByLabel("renamed").status().code(), StatusCode::kNotFound);
}

// Eight threads sign with one token key at once; every signature verifies.
TEST_F(TokenTest, ConcurrentSigningFromEightThreadsGivesOnlyValidSignatures) {
  auto key = hsm_->token().GenerateKeyPair("shared", KeyType::kEcP256);
  ASSERT_TRUE(key.ok());
  auto pkey = hsm_->LoadPrivateKey(*key);
  ASSERT_TRUE(pkey.ok());
  auto signing = signer::SigningKey::Create(std::move(*pkey), hsm_->bridge().libctx());
  ASSERT_TRUE(signing.ok());
  std::atomic<int> good{0}, bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        const std::string msg = "thread " + std::to_string(t) + " message " + std::to_string(i);
        // Alternate the provider path and the raw C_Sign path.
        auto sig = signing->Sign(msg);
        if (sig.ok() && signer::VerifySignature(signing->public_key(), KeyType::kEcP256, msg, *sig).ok()) {
          ++good;
        } else {
          ++bad;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(good.load(), 400);
}

TEST_F(TokenTest, ConcurrentRawSigningFromEightThreadsGivesOnlyValidSignatures) {
  auto key = hsm_->token().GenerateKeyPair("raw-shared", KeyType::kRsa2048);
  ASSERT_TRUE(key.ok());
  auto pub = signer::ParseSpkiDer(*hsm_->token().PublicKeyDer(*key));
  std::atomic<int> good{0}, bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        const std::string msg = std::to_string(t) + "/" + std::to_string(i);
        unsigned char d[32];
        EVP_Digest(msg.data(), msg.size(), d, nullptr, EVP_sha256(), nullptr);
        auto sig = hsm_->token().SignDigest(*key, "SHA256", std::string(reinterpret_cast<char*>(d), 32));
        if (sig.ok() && signer::VerifySignature(pub->get(), KeyType::kRsa2048, msg, *sig).ok())
          ++good;
        else
          ++bad;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(good.load(), 200);
}

// The token's mechanisms are read at open; SoftHSM has the combined mechanisms, so signing goes
// through pkcs11-provider in one step.
TEST_F(TokenTest, ReadsMechanismsAndPrefersCombinedHashAndSign) {
  const auto& mechs = hsm_->token().mechanisms();
  ASSERT_TRUE(mechs.count(CKM_SHA256_RSA_PKCS) == 1);
  EXPECT_NE(mechs.at(CKM_SHA256_RSA_PKCS).flags & CKF_SIGN, 0u);
  auto rsa = hsm_->token().SignCapabilityFor(KeyType::kRsa2048);
  ASSERT_TRUE(rsa.ok()) << rsa.status().message();
  EXPECT_TRUE(rsa->combined);
  EXPECT_EQ(rsa->mechanism_name, "CKM_SHA256_RSA_PKCS");
  // SoftHSM 2.6.1 lists CKM_ECDSA but no CKM_ECDSA_SHA384: EC keys sign over the raw mechanism.
  auto ec = hsm_->token().SignCapabilityFor(KeyType::kEcP384);
  ASSERT_TRUE(ec.ok()) << ec.status().message();
  if (mechs.count(CKM_ECDSA_SHA384) == 1 && (mechs.at(CKM_ECDSA_SHA384).flags & CKF_SIGN) != 0) {
    EXPECT_EQ(ec->mechanism_name, "CKM_ECDSA_SHA384");
  } else {
    EXPECT_FALSE(ec->combined);
    EXPECT_EQ(ec->mechanism_name, "CKM_ECDSA");
  }
  EXPECT_TRUE(hsm_->token().CheckCanGenerate(KeyType::kRsa4096).ok());
}

// The raw-mechanism path on a real token: kubehsm hashes, the token signs the digest (CKM_RSA_PKCS
// over DigestInfo / CKM_ECDSA), SigningKey checks the result and returns DER for EC. An
// independent verifier (openssl dgst) accepts it.
TEST_P(KeyTypeTokenTest, SigningKeyOverTheRawMechanismVerifiesWithOpenSslCli) {
  const KeyType type = GetParam();
  auto key = hsm_->token().GenerateKeyPair("raw-path", type);
  ASSERT_TRUE(key.ok()) << key.status().message();
  auto pkey = hsm_->LoadPrivateKey(*key);
  ASSERT_TRUE(pkey.ok()) << pkey.status().message();
  signer::SigningKey::Options options;
  Token& token = hsm_->token();
  const KeyInfo info = *key;
  options.digest_signer = [&token, info](std::string_view md, std::string_view digest) {
    return token.SignDigest(info, md, digest);
  };
  auto signing = signer::SigningKey::Create(std::move(*pkey), hsm_->bridge().libctx(), std::move(options));
  ASSERT_TRUE(signing.ok()) << signing.status().message();
  const std::string message = "signed over the raw mechanism";
  auto sig = signing->Sign(message);
  ASSERT_TRUE(sig.ok()) << sig.status().message();
  TempDir dir;
  WriteTestFile(dir.path() / "pub.pem", PublicPem(*key));
  WriteTestFile(dir.path() / "msg", message);
  WriteTestFile(dir.path() / "sig", *sig);
  const std::string md = DefaultDigestName(type) == "SHA256"   ? "-sha256"
                         : DefaultDigestName(type) == "SHA384" ? "-sha384"
                                                               : "-sha512";
  auto ok = RunProcess({"openssl", "dgst", md, "-verify", (dir.path() / "pub.pem").string(), "-signature",
                        (dir.path() / "sig").string(), (dir.path() / "msg").string()});
  EXPECT_EQ(ok.exit_code, 0) << ok.out << ok.err;
}

// The public half is created without usage flags of its own (a TPM refuses CKA_VERIFY=true beside a
// private half with CKA_DECRYPT=false); the private half keeps every strict attribute.
TEST_F(TokenTest, PublicTemplateCarriesNoUsageFlagsPrivateStaysStrict) {
  auto key = hsm_->token().GenerateKeyPair("tmpl", KeyType::kEcP256);
  ASSERT_TRUE(key.ok()) << key.status().message();
  EXPECT_TRUE(key->non_exportable());
  EXPECT_TRUE(key->can_sign);
  auto decrypt = hsm_->token().GetAttribute(key->private_handle, CKA_DECRYPT);
  ASSERT_TRUE(decrypt.ok());
  EXPECT_EQ(*decrypt, std::string(1, '\0'));
  auto exportable = hsm_->token().GetAttribute(key->private_handle, CKA_VALUE);
  EXPECT_EQ(exportable.status().code(), StatusCode::kPermissionDenied);
}

// Arguments for C_Initialize that look like they carry a secret are refused before the module loads.
TEST(ModuleInitArgsTest, SecretsAreRefusedOtherValuesAccepted) {
  EXPECT_TRUE(CheckModuleInitArgs("configdir='sql:/tmp/x' certPrefix='' keyPrefix='' secmod='secmod.db' flags=").ok());
  for (const char* bad : {"pin=1234", "configdir='x' PASSWORD=abc", "passphrase=x", "x\ny", "secret=1"}) {
    Status s = CheckModuleInitArgs(bad);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << bad;
  }
  auto m = Module::Load("/usr/lib/softhsm/libsofthsm2.so", "userpin=1234");
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("PINs come only from a PIN source"), std::string::npos) << m.status().message();
}

// One wrong PIN is one clear error; the token is not locked by it (the right PIN still works).
TEST_F(TokenTest, WrongPinIsOneClearErrorAndDoesNotLockTheToken) {
  hsm_.reset();  // log out: close every session of this process
  TempDir dir;
  const std::string wrong = "999999999";
  WriteTestFile(dir.path() / "wrong.pin", wrong + "\n");
  HsmOptions o = Options();
  o.pin_source = "file:" + (dir.path() / "wrong.pin").string();
  auto h = Hsm::Open(o);
  ASSERT_FALSE(h.ok());
  EXPECT_EQ(h.status().code(), StatusCode::kUnauthenticated);
  EXPECT_NE(h.status().message().find("wrong PIN for token 'hsm-test'"), std::string::npos) << h.status().message();
  EXPECT_EQ(h.status().message().find(wrong), std::string::npos);
  EXPECT_EQ(h.status().message().find(token_->user_pin()), std::string::npos);
  auto again = Hsm::Open(Options());
  EXPECT_TRUE(again.ok()) << again.status().message();
}

TEST_F(TokenTest, MissingModuleIsNotFound) {
  HsmOptions o = Options();
  o.module_path = "/nonexistent/libpkcs11.so";
  auto h = Hsm::Open(o);
  ASSERT_FALSE(h.ok());
  EXPECT_EQ(h.status().code(), StatusCode::kNotFound);
  EXPECT_NE(h.status().message().find("PKCS#11 module /nonexistent/libpkcs11.so does not exist"), std::string::npos);
}

TEST_F(TokenTest, LibraryThatIsNotAPkcs11ModuleIsRefused) {
  HsmOptions o = Options();
  auto libz = RunProcess(
      {"sh", "-c", "ls /usr/lib/x86_64-linux-gnu/libz.so.1 /lib/x86_64-linux-gnu/libz.so.1 2>/dev/null | head -1"});
  std::string path = libz.out.substr(0, libz.out.find('\n'));
  ASSERT_FALSE(path.empty());
  o.module_path = path;
  auto h = Hsm::Open(o);
  ASSERT_FALSE(h.ok());
  EXPECT_EQ(h.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(h.status().message().find("is not a PKCS#11 module"), std::string::npos) << h.status().message();
}

TEST_F(TokenTest, MissingTokenIsNotFoundAndListsWhatExists) {
  HsmOptions o = Options();
  o.token_uri = "pkcs11:token=no-such-token";
  auto h = Hsm::Open(o);
  ASSERT_FALSE(h.ok());
  EXPECT_EQ(h.status().code(), StatusCode::kNotFound);
  EXPECT_NE(h.status().message().find("no token matches pkcs11:token=no-such-token"), std::string::npos);
  EXPECT_NE(h.status().message().find("'hsm-test'"), std::string::npos) << h.status().message();
}

TEST_F(TokenTest, MalformedTokenUriIsInvalidArgument) {
  HsmOptions o = Options();
  o.token_uri = "pkcs11:tokn=x";
  auto h = Hsm::Open(o);
  ASSERT_FALSE(h.ok());
  EXPECT_EQ(h.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kubehsm::hsm
