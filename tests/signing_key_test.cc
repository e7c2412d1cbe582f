#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <utility>

#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "common/ssl_ptr.h"
#include "signer/signing_key.h"

namespace kubehsm::signer {
namespace {

// "rsa_2048", "ecdsa_p256", ...: the test-name suffix for a KeyType parameter.
std::string KeyTypeTestName(const ::testing::TestParamInfo<KeyType>& info) {
  std::string n(KeyTypeName(info.param));
  for (auto& c : n)
    if (c == '-') c = '_';
  return n;
}

class SoftwareSigningKeyTest : public ::testing::TestWithParam<KeyType> {};

TEST_P(SoftwareSigningKeyTest, SignsAndVerifiesAndRejectsChangedMessage) {
  auto key = SigningKey::GenerateSoftware(GetParam());
  ASSERT_TRUE(key.ok()) << key.status().message();
  EXPECT_EQ(key->type(), GetParam());
  auto sig = key->Sign("hello");
  ASSERT_TRUE(sig.ok()) << sig.status().message();
  EXPECT_TRUE(VerifySignature(key->public_key(), key->type(), "hello", *sig).ok());
  EXPECT_EQ(VerifySignature(key->public_key(), key->type(), "hellp", *sig).code(), StatusCode::kPermissionDenied);
  auto reparsed = ParseSpkiDer(key->spki_der());
  ASSERT_TRUE(reparsed.ok());
  EXPECT_EQ(KeyTypeOf(reparsed->get()).value(), GetParam());
}

INSTANTIATE_TEST_SUITE_P(AllTypes, SoftwareSigningKeyTest,
                         ::testing::Values(KeyType::kRsa2048, KeyType::kEcP256, KeyType::kEcP384, KeyType::kEcP521),
                         KeyTypeTestName);

// A software stand-in for a token's raw mechanisms (CKM_RSA_PKCS over DigestInfo, CKM_ECDSA giving
// r||s), built on an independent OpenSSL key. With `omit_digest_info`, RSA signs the bare digest:
// what pkcs11-provider 1.0 does on a token without CKM_SHA256_RSA_PKCS (pkcs11-provider#592).
DigestSigner SoftwareRawSigner(EVP_PKEY* key, KeyType type, bool omit_digest_info) {
  return [key, type, omit_digest_info](std::string_view digest_name, std::string_view digest) -> Result<std::string> {
    EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new(key, nullptr));
    if (!ctx || EVP_PKEY_sign_init(ctx.get()) != 1) return Internal("sign init");
    if (IsRsa(type)) {
      if (EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING) != 1) return Internal("padding");
      if (!omit_digest_info &&
          EVP_PKEY_CTX_set_signature_md(ctx.get(), EVP_get_digestbyname(std::string(digest_name).c_str())) != 1) {
        return Internal("md");
      }
    }
    size_t len = 0;
    const auto* in = reinterpret_cast<const unsigned char*>(digest.data());
    if (EVP_PKEY_sign(ctx.get(), nullptr, &len, in, digest.size()) != 1) return Internal("sign size");
    std::string sig(len, '\0');
    if (EVP_PKEY_sign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, in, digest.size()) != 1) {
      return Internal("sign");
    }
    sig.resize(len);
    if (IsRsa(type)) return sig;
    return EcdsaDerToRaw(sig, type);  // the token form
  };
}

class DigestSignerTest : public ::testing::TestWithParam<KeyType> {};

// The raw-mechanism path: hash in software, sign the digest "in the token", convert r||s to DER.
TEST_P(DigestSignerTest, RawMechanismPathSignsVerifiably) {
  auto soft = SigningKey::GenerateSoftware(GetParam());
  ASSERT_TRUE(soft.ok());
  EVP_PKEY_up_ref(soft->pkey());
  EvpPkeyPtr pkey(soft->pkey());
  SigningKey::Options options;
  options.digest_signer = SoftwareRawSigner(soft->pkey(), GetParam(), false);
  options.origin = "key 'raw' in token 'test' (CKM_RSA_PKCS)";
  auto key = SigningKey::Create(std::move(pkey), nullptr, std::move(options));
  ASSERT_TRUE(key.ok()) << key.status().message();
  auto sig = key->Sign("the message");
  ASSERT_TRUE(sig.ok()) << sig.status().message();
  // An independent verifier (plain EVP_DigestVerify on the software public key) accepts it, and
  // rejects it for a changed message.
  EXPECT_TRUE(VerifySignature(soft->public_key(), GetParam(), "the message", *sig).ok());
  EXPECT_FALSE(VerifySignature(soft->public_key(), GetParam(), "the messagE", *sig).ok());
}

INSTANTIATE_TEST_SUITE_P(AllTypes, DigestSignerTest,
                         ::testing::Values(KeyType::kRsa2048, KeyType::kEcP256, KeyType::kEcP384, KeyType::kEcP521),
                         KeyTypeTestName);

// pkcs11-provider#592: a PKCS#1 v1.5 signature over the bare digest (no DigestInfo) is a valid RSA
// operation but not a valid signature. Sign must refuse to return it, naming the key.
TEST(SigningKeyTest, SignatureWithoutDigestInfoIsRefused) {
  auto soft = SigningKey::GenerateSoftware(KeyType::kRsa2048);
  ASSERT_TRUE(soft.ok());
  EVP_PKEY_up_ref(soft->pkey());
  EvpPkeyPtr pkey(soft->pkey());
  SigningKey::Options options;
  options.digest_signer = SoftwareRawSigner(soft->pkey(), KeyType::kRsa2048, /*omit_digest_info=*/true);
  options.origin = "key 'kubehsm-ca' in token 'ock' (CKM_RSA_PKCS)";
  auto key = SigningKey::Create(std::move(pkey), nullptr, std::move(options));
  ASSERT_TRUE(key.ok());
  auto sig = key->Sign("tbs");
  ASSERT_FALSE(sig.ok());
  EXPECT_EQ(sig.status().code(), StatusCode::kInternal);
  EXPECT_NE(sig.status().message().find("key 'kubehsm-ca' in token 'ock' (CKM_RSA_PKCS)"), std::string::npos)
      << sig.status().message();
  EXPECT_NE(sig.status().message().find("does not verify"), std::string::npos) << sig.status().message();
}

// A raw EC signature of the wrong size (a token returning DER, or a truncated r||s) is an error,
// not a signature.
TEST(SigningKeyTest, RawEcdsaOfWrongSizeIsRefused) {
  auto soft = SigningKey::GenerateSoftware(KeyType::kEcP256);
  ASSERT_TRUE(soft.ok());
  EVP_PKEY_up_ref(soft->pkey());
  EvpPkeyPtr pkey(soft->pkey());
  SigningKey::Options options;
  options.digest_signer = [](std::string_view, std::string_view) -> Result<std::string> {
    return std::string(63, '\x01');
  };
  auto key = SigningKey::Create(std::move(pkey), nullptr, std::move(options));
  ASSERT_TRUE(key.ok());
  EXPECT_FALSE(key->Sign("x").ok());
}

TEST(SigningKeyTest, ParseSpkiDerRejectsGarbage) {
  EXPECT_EQ(ParseSpkiDer("not der").status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kubehsm::signer
