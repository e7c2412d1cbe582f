// JWS signing: every algorithm checked by an independent JOSE implementation (PyJWT), tamper
// tests, raw r‖s conversion, header shape and kid derivation against the openssl command line.
#include <gtest/gtest.h>
#include <optional>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "common/base64.h"
#include "signer/jwt/jwks.h"
#include "signer/jwt/jws.h"
#include "signer/jwt/kid.h"
#include "tests/jwt/jwt_test_util.h"
#include "tests/support/test_env.h"

namespace kubehsm::jwt {
namespace {

using namespace kubehsm::jwt::testing;

std::string TypeName(const ::testing::TestParamInfo<KeyType>& p) {
  std::string n(KeyTypeName(p.param));
  for (auto& c : n) {
    if (c == '-') c = '_';
  }
  return n;
}

class JwsPerAlgorithmTest : public ::testing::TestWithParam<KeyType> {
 protected:
  void SetUp() override {
    auto key = signer::SigningKey::GenerateSoftware(GetParam());
    ASSERT_TRUE(key.ok()) << key.status().message();
    key_.emplace(std::move(*key));
    auto kid = KidFromSpki(key_->spki_der());
    ASSERT_TRUE(kid.ok());
    kid_ = *kid;
    auto jwks = RenderJwks({{kid_, key_->spki_der()}});
    ASSERT_TRUE(jwks.ok()) << jwks.status().message();
    jwks_ = *jwks;
  }

  std::string MintNow() {
    const int64_t now = std::time(nullptr);
    auto claims = BuildBoundClaims(PodBoundRequest(), now, "6f1c2a9e-8c4b-4e2d-9a57-0d3f1b2c3d4e");
    EXPECT_TRUE(claims.ok()) << claims.status().message();
    auto token = SignCompact(*key_, kid_, *claims);
    EXPECT_TRUE(token.ok()) << token.status().message();
    return *token;
  }

  std::optional<signer::SigningKey> key_;
  std::string kid_;
  std::string jwks_;
};

TEST_P(JwsPerAlgorithmTest, TokenVerifiesWithPyJwt) {
  const std::string token = MintNow();
  std::string out;
  ASSERT_EQ(PyJwtVerify(token, jwks_, kIssuer, "vault", &out), 0) << out;
  auto claims = nlohmann::json::parse(out);
  EXPECT_EQ(claims["sub"], "system:serviceaccount:default:builder");
  EXPECT_EQ(claims["kubernetes.io"]["pod"]["name"], "builder-7d9f");
}

TEST_P(JwsPerAlgorithmTest, HeaderIsExactlyAlgKidTyp) {
  const std::string token = MintNow();
  auto header = Base64UrlDecode(token.substr(0, token.find('.')));
  ASSERT_TRUE(header.ok());
  EXPECT_EQ(*header, std::string("{\"alg\":\"") + std::string(JwsAlgorithmName(JwsAlgorithmFor(GetParam()))) +
                         "\",\"kid\":\"" + kid_ + "\",\"typ\":\"JWT\"}");
}

TEST_P(JwsPerAlgorithmTest, SignatureHasRawLength) {
  const std::string token = MintNow();
  auto sig = Base64UrlDecode(token.substr(token.rfind('.') + 1));
  ASSERT_TRUE(sig.ok());
  const std::size_t want = IsRsa(GetParam()) ? static_cast<std::size_t>(RsaBits(GetParam()) / 8)
                                             : EcdsaRawSignatureSize(GetParam());
  EXPECT_EQ(sig->size(), want);
}

TEST_P(JwsPerAlgorithmTest, PyJwtRejectsChangedHeaderPayloadAndSignature) {
  const std::string token = MintNow();
  const std::size_t d1 = token.find('.'), d2 = token.rfind('.');
  for (std::size_t pos : {d1 / 2, d1 + 1 + (d2 - d1 - 1) / 2, d2 + 1 + (token.size() - d2 - 1) / 2}) {
    std::string out;
    EXPECT_NE(PyJwtVerify(ChangeCharAt(token, pos), jwks_, kIssuer, "vault", &out), 0)
        << "change at " << pos << " accepted: " << out;
  }
}

TEST_P(JwsPerAlgorithmTest, KidMatchesOpensslCommandLine) {
  kubehsm::testing::TempDir dir;
  kubehsm::testing::WriteTestFile(dir.path() / "sa.pub", SpkiToPem(key_->spki_der()));
  auto r = kubehsm::testing::RunProcess(
      {"/bin/sh", "-c",
       "openssl pkey -pubin -in \"$0\" -outform DER | openssl dgst -sha256 -binary | base64 | tr '+/' '-_' | tr -d '='",
       (dir.path() / "sa.pub").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  while (!r.out.empty() && (r.out.back() == '\n' || r.out.back() == '\r')) r.out.pop_back();
  EXPECT_EQ(kid_, r.out);
  EXPECT_EQ(kid_.size(), 43u);
  EXPECT_TRUE(LooksLikeDerivedKid(kid_));
  auto via_pkey = KidOf(key_->public_key());
  ASSERT_TRUE(via_pkey.ok());
  EXPECT_EQ(*via_pkey, kid_);
}

TEST_P(JwsPerAlgorithmTest, SignEncodedClaimsUsesClaimsVerbatim) {
  const std::string claims_b64 = Base64UrlEncode(R"({"iss":"x"})");
  auto parts = SignEncodedClaims(*key_, kid_, claims_b64);
  ASSERT_TRUE(parts.ok()) << parts.status().message();
  auto sig = Base64UrlDecode(parts->signature);
  ASSERT_TRUE(sig.ok());
  auto pub = signer::ParseSpkiDer(key_->spki_der());
  ASSERT_TRUE(pub.ok());
  EXPECT_TRUE(VerifyJwsSignature(JwsAlgorithmFor(GetParam()), pub->get(), GetParam(),
                                 parts->header + "." + claims_b64, *sig)
                  .ok());
  EXPECT_EQ(VerifyJwsSignature(JwsAlgorithmFor(GetParam()), pub->get(), GetParam(),
                               parts->header + "." + Base64UrlEncode(R"({"iss":"y"})"), *sig)
                .code(),
            StatusCode::kPermissionDenied);
}

INSTANTIATE_TEST_SUITE_P(AllTypes, JwsPerAlgorithmTest,
                         ::testing::Values(KeyType::kRsa2048, KeyType::kRsa3072, KeyType::kEcP256, KeyType::kEcP384,
                                           KeyType::kEcP521),
                         TypeName);

TEST(JwsTest, AlgorithmFollowsKeyType) {
  EXPECT_EQ(JwsAlgorithmFor(KeyType::kRsa2048), JwsAlgorithm::kRs256);
  EXPECT_EQ(JwsAlgorithmFor(KeyType::kRsa4096), JwsAlgorithm::kRs256);
  EXPECT_EQ(JwsAlgorithmFor(KeyType::kEcP256), JwsAlgorithm::kEs256);
  EXPECT_EQ(JwsAlgorithmFor(KeyType::kEcP384), JwsAlgorithm::kEs384);
  EXPECT_EQ(JwsAlgorithmFor(KeyType::kEcP521), JwsAlgorithm::kEs512);
  EXPECT_FALSE(JwsAlgorithmMatches(JwsAlgorithm::kEs256, KeyType::kEcP384));
}

TEST(JwsTest, ParseAlgorithmAcceptsOnlyTheAllowlist) {
  EXPECT_EQ(ParseJwsAlgorithm("ES512"), JwsAlgorithm::kEs512);
  for (const char* bad : {"none", "None", "HS256", "PS256", "RS384", "RS512", "EdDSA", "rs256", ""}) {
    EXPECT_FALSE(ParseJwsAlgorithm(bad).has_value()) << bad;
  }
}

TEST(JwsTest, EcdsaDerToRawPadsAndRoundTrips) {
  auto key = signer::SigningKey::GenerateSoftware(KeyType::kEcP521);
  ASSERT_TRUE(key.ok());
  for (int i = 0; i < 20; ++i) {  // some signatures have short r or s
    auto der = key->Sign("message " + std::to_string(i));
    ASSERT_TRUE(der.ok());
    auto raw = EcdsaDerToRaw(*der, KeyType::kEcP521);
    ASSERT_TRUE(raw.ok()) << raw.status().message();
    EXPECT_EQ(raw->size(), 132u);
    auto back = EcdsaRawToDer(*raw, KeyType::kEcP521);
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, *der);
  }
}

TEST(JwsTest, EcdsaRawToDerFailsWithWrongLength) {
  EXPECT_EQ(EcdsaRawToDer(std::string(63, '\x01'), KeyType::kEcP256).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(EcdsaRawToDer(std::string(64, '\x01'), KeyType::kRsa2048).status().code(), StatusCode::kInvalidArgument);
}

TEST(JwsTest, EcdsaDerToRawFailsWithTrailingBytes) {
  auto key = signer::SigningKey::GenerateSoftware(KeyType::kEcP256);
  ASSERT_TRUE(key.ok());
  auto der = key->Sign("m");
  ASSERT_TRUE(der.ok());
  EXPECT_EQ(EcdsaDerToRaw(*der + "x", KeyType::kEcP256).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(EcdsaDerToRaw("garbage", KeyType::kEcP256).status().code(), StatusCode::kInvalidArgument);
}

TEST(JwsTest, SignEncodedClaimsFailsWithDoubleEncodedClaims) {
  auto key = signer::SigningKey::GenerateSoftware(KeyType::kEcP256);
  ASSERT_TRUE(key.ok());
  const std::string once = Base64UrlEncode(R"({"iss":"x"})");
  auto r = SignEncodedClaims(*key, "kid", Base64UrlEncode(once));
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("encoded twice"), std::string::npos);
}

TEST(JwsTest, SignEncodedClaimsFailsWithPaddedClaims) {
  auto key = signer::SigningKey::GenerateSoftware(KeyType::kEcP256);
  ASSERT_TRUE(key.ok());
  EXPECT_EQ(SignEncodedClaims(*key, "kid", "eyJhIjoxfQ==").status().code(), StatusCode::kInvalidArgument);
}

TEST(JwsTest, SignEncodedClaimsFailsWithBadKid) {
  auto key = signer::SigningKey::GenerateSoftware(KeyType::kEcP256);
  ASSERT_TRUE(key.ok());
  const std::string claims = Base64UrlEncode("{}");
  EXPECT_EQ(SignEncodedClaims(*key, "", claims).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(SignEncodedClaims(*key, std::string(1025, 'k'), claims).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(SignEncodedClaims(*key, "\xff\xfe", claims).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kubehsm::jwt
