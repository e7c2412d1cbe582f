// VerifyServiceAccountToken: one named test per refusal, plus identity extraction.
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <openssl/evp.h>

#include "common/base64.h"
#include "signer/jwt/claims.h"
#include "signer/jwt/jws.h"
#include "signer/jwt/kid.h"
#include "signer/jwt/verify.h"
#include "tests/jwt/jwt_test_util.h"

namespace kubehsm::jwt {
namespace {

using namespace kubehsm::jwt::testing;

constexpr char kJti[] = "6f1c2a9e-8c4b-4e2d-9a57-0d3f1b2c3d4e";

class VerifyTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    rsa_.emplace(signer::SigningKey::GenerateSoftware(KeyType::kRsa2048).value());
    ec_.emplace(signer::SigningKey::GenerateSoftware(KeyType::kEcP256).value());
  }
  static void TearDownTestSuite() {
    rsa_.reset();
    ec_.reset();
  }

  static std::string Kid(const signer::SigningKey& k) { return KidFromSpki(k.spki_der()).value(); }

  static std::vector<VerificationKey> Keys() {
    std::vector<VerificationKey> keys;
    keys.push_back(VerificationKeyFromSpki(rsa_->spki_der()).value());
    keys.push_back(VerificationKeyFromSpki(ec_->spki_der()).value());
    return keys;
  }

  static VerifyOptions Options(int64_t now = kNow) {
    VerifyOptions o;
    o.issuers = {"https://other.example", kIssuer};
    o.audiences = {"vault"};
    o.now = now;
    return o;
  }

  static std::string Mint(const signer::SigningKey& key, const BoundTokenRequest& r = PodBoundRequest(),
                          int64_t iat = kNow) {
    return SignCompact(key, Kid(key), BuildBoundClaims(r, iat, kJti).value()).value();
  }

  static std::string Header(const std::string& alg, const std::string& kid) {
    return R"({"alg":")" + alg + R"(","kid":")" + kid + R"(","typ":"JWT"})";
  }

  static std::string Payload() { return BuildBoundClaims(PodBoundRequest(), kNow, kJti).value(); }

  static VerifyResult Verify(const std::string& token, int64_t now = kNow) {
    return VerifyServiceAccountToken(token, Keys(), Options(now));
  }

  // Generated once per suite (RSA generation is slow).
  static std::optional<signer::SigningKey> rsa_;
  static std::optional<signer::SigningKey> ec_;
};

std::optional<signer::SigningKey> VerifyTest::rsa_;
std::optional<signer::SigningKey> VerifyTest::ec_;

TEST_F(VerifyTest, AcceptsValidTokenAndReturnsIdentity) {
  for (const signer::SigningKey* key : {&*rsa_, &*ec_}) {
    const VerifyResult r = Verify(Mint(*key));
    ASSERT_TRUE(r.ok()) << r.message;
    const ServiceAccountIdentity& id = r.identity;
    EXPECT_EQ(id.username, "system:serviceaccount:default:builder");
    EXPECT_EQ(id.uid, "0b1f5b6e-2f60-4a3c-9d0e-111111111111");
    EXPECT_EQ(id.groups, (std::vector<std::string>{"system:serviceaccounts", "system:serviceaccounts:default",
                                                   "system:authenticated"}));
    EXPECT_EQ(id.extra.at("authentication.kubernetes.io/pod-name"), std::vector<std::string>{"builder-7d9f"});
    EXPECT_EQ(id.extra.at("authentication.kubernetes.io/pod-uid"),
              std::vector<std::string>{"2c3d4e5f-0000-4000-8000-222222222222"});
    EXPECT_EQ(id.extra.at("authentication.kubernetes.io/node-name"), std::vector<std::string>{"worker-1"});
    EXPECT_EQ(id.extra.at("authentication.kubernetes.io/node-uid"),
              std::vector<std::string>{"3d4e5f60-0000-4000-8000-333333333333"});
    EXPECT_EQ(id.extra.at("authentication.kubernetes.io/credential-id"), std::vector<std::string>{"JTI=" + std::string(kJti)});
    EXPECT_EQ(id.audiences, std::vector<std::string>{"vault"});
    EXPECT_EQ(id.kid, Kid(*key));
    EXPECT_EQ(id.expires_at, kNow + 3600);
  }
}

TEST_F(VerifyTest, SecretBoundTokenHasNoPodExtras) {
  BoundTokenRequest r = PodBoundRequest();
  r.pod.reset();
  r.node.reset();
  r.secret = ObjectRef{"builder-token", "uid-s"};
  const VerifyResult v = Verify(Mint(*ec_, r));
  ASSERT_TRUE(v.ok()) << v.message;
  EXPECT_EQ(v.identity.extra.count("authentication.kubernetes.io/pod-name"), 0u);
  EXPECT_EQ(v.identity.extra.size(), 1u);  // credential-id only
}

TEST_F(VerifyTest, FailsWhenExpiredBeyondLeeway) {
  const VerifyResult r = Verify(Mint(*rsa_), kNow + 3600 + 61);
  EXPECT_EQ(r.error, TokenError::kExpired) << r.message;
}

TEST_F(VerifyTest, AcceptsExpiredWithinLeeway) {
  const VerifyResult r = Verify(Mint(*rsa_), kNow + 3600 + 60);
  EXPECT_TRUE(r.ok()) << r.message;
}

TEST_F(VerifyTest, FailsWhenNotYetValid) {
  // nbf = iat = kNow + 120; checked before iat, as go-jose does.
  const VerifyResult r = Verify(Mint(*rsa_, PodBoundRequest(), kNow + 120), kNow);
  EXPECT_EQ(r.error, TokenError::kNotYetValid) << r.message;
}

TEST_F(VerifyTest, FailsWhenIssuedInFuture) {
  std::string payload = Payload();
  payload.replace(payload.find("\"iat\":1767225600"), 16, "\"iat\":1767225900");
  const VerifyResult r = Verify(CraftToken(Header("RS256", Kid(*rsa_)), payload, *rsa_));
  EXPECT_EQ(r.error, TokenError::kIssuedInFuture) << r.message;
}

TEST_F(VerifyTest, FailsWithWrongIssuer) {
  BoundTokenRequest req = PodBoundRequest();
  req.issuer = "https://attacker.example";
  const VerifyResult r = Verify(Mint(*rsa_, req));
  EXPECT_EQ(r.error, TokenError::kWrongIssuer) << r.message;
}

TEST_F(VerifyTest, WrongIssuerIsReportedBeforeBadSignature) {
  BoundTokenRequest req = PodBoundRequest();
  req.issuer = "https://attacker.example";
  const std::string token = Mint(*rsa_, req);
  const VerifyResult r = Verify(ChangeCharAt(token, token.size() - 10));
  EXPECT_EQ(r.error, TokenError::kWrongIssuer) << r.message;
}

TEST_F(VerifyTest, FailsWithWrongAudience) {
  VerifyOptions o = Options();
  o.audiences = {"https://elsewhere.example"};
  const VerifyResult r = VerifyServiceAccountToken(Mint(*rsa_), Keys(), o);
  EXPECT_EQ(r.error, TokenError::kWrongAudience) << r.message;
}

TEST_F(VerifyTest, AcceptsStringAudience) {
  std::string payload = Payload();
  const std::size_t a = payload.find("\"aud\":[");
  const std::size_t b = payload.find(']', a);
  payload.replace(a, b - a + 1, "\"aud\":\"vault\"");
  const VerifyResult r = Verify(CraftToken(Header("ES256", Kid(*ec_)), payload, *ec_));
  EXPECT_TRUE(r.ok()) << r.message;
}

TEST_F(VerifyTest, FailsWithUnknownKid) {
  auto other = signer::SigningKey::GenerateSoftware(KeyType::kEcP256);
  ASSERT_TRUE(other.ok());
  const VerifyResult r = Verify(Mint(*other));
  EXPECT_EQ(r.error, TokenError::kUnknownKid) << r.message;
}

TEST_F(VerifyTest, FailsWithKnownKidButOtherKeysSignature) {
  auto other = signer::SigningKey::GenerateSoftware(KeyType::kEcP256);
  ASSERT_TRUE(other.ok());
  const VerifyResult r = Verify(CraftToken(Header("ES256", Kid(*ec_)), Payload(), *other));
  EXPECT_EQ(r.error, TokenError::kInvalidSignature) << r.message;
}

TEST_F(VerifyTest, TriesEveryKeyWithoutKid) {
  const VerifyResult r = Verify(CraftToken(R"({"alg":"ES256"})", Payload(), *ec_));
  ASSERT_TRUE(r.ok()) << r.message;
  EXPECT_EQ(r.identity.kid, Kid(*ec_));
}

TEST_F(VerifyTest, FailsWithAlgNone) {
  const std::string token = Base64UrlEncode(R"({"alg":"none","kid":")" + Kid(*rsa_) + R"("})") + "." +
                            Base64UrlEncode(Payload()) + ".";
  EXPECT_EQ(Verify(token).error, TokenError::kMalformed);  // empty signature part
  const VerifyResult r = Verify(token + "AAAA");
  EXPECT_EQ(r.error, TokenError::kDisallowedAlgorithm) << r.message;
}

TEST_F(VerifyTest, FailsWithHs256UsingPublicKeyAsHmacSecret) {
  for (const std::string& secret : {rsa_->spki_der(), SpkiToPem(rsa_->spki_der())}) {
    const std::string input = Base64UrlEncode(Header("HS256", Kid(*rsa_))) + "." + Base64UrlEncode(Payload());
    unsigned char mac[EVP_MAX_MD_SIZE];
    std::size_t mac_len = 0;
    ASSERT_NE(EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, secret.data(), secret.size(),
                        reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, sizeof(mac), &mac_len),
              nullptr);
    const std::string token =
        input + "." + Base64UrlEncode(std::string_view(reinterpret_cast<const char*>(mac), mac_len));
    const VerifyResult r = Verify(token);
    EXPECT_EQ(r.error, TokenError::kDisallowedAlgorithm) << r.message;
  }
}

TEST_F(VerifyTest, FailsWithPs256) {
  const VerifyResult r = Verify(CraftToken(Header("PS256", Kid(*rsa_)), Payload(), *rsa_));
  EXPECT_EQ(r.error, TokenError::kDisallowedAlgorithm) << r.message;
}

TEST_F(VerifyTest, FailsWithAlgKeyMismatch) {
  // ES256 claimed for the RSA key's kid (signature made with the EC key).
  const VerifyResult r = Verify(CraftToken(Header("ES256", Kid(*rsa_)), Payload(), *ec_));
  EXPECT_EQ(r.error, TokenError::kAlgorithmKeyMismatch) << r.message;
  // RS256 claimed for the EC key's kid.
  const VerifyResult r2 = Verify(CraftToken(Header("RS256", Kid(*ec_)), Payload(), *rsa_));
  EXPECT_EQ(r2.error, TokenError::kAlgorithmKeyMismatch) << r2.message;
}

TEST_F(VerifyTest, FailsWithTruncatedToken) {
  const std::string token = Mint(*rsa_);
  EXPECT_EQ(Verify(token.substr(0, token.rfind('.'))).error, TokenError::kMalformed);
  // Dropping signature characters leaves either a non-canonical encoding or a short signature.
  const TokenError short_sig = Verify(token.substr(0, token.size() - 4)).error;
  EXPECT_TRUE(short_sig == TokenError::kMalformed || short_sig == TokenError::kInvalidSignature);
  EXPECT_EQ(Verify(token.substr(0, token.find('.') + 5)).error, TokenError::kMalformed);
  EXPECT_EQ(Verify("").error, TokenError::kMalformed);
}

TEST_F(VerifyTest, FailsWithPaddedBase64) {
  BoundTokenRequest r = PodBoundRequest();
  // Find a payload whose unpadded length is not a multiple of 4, so padding is meaningful.
  std::string token;
  for (int i = 0; i < 4; ++i) {
    r.service_account_uid += "x";
    token = Mint(*ec_, r);
    const std::size_t d1 = token.find('.'), d2 = token.rfind('.');
    if ((d2 - d1 - 1) % 4 != 0) {
      const std::string padded = token.substr(0, d2) + std::string(4 - (d2 - d1 - 1) % 4, '=') + token.substr(d2);
      ASSERT_TRUE(Verify(token).ok());
      const VerifyResult v = Verify(padded);
      EXPECT_EQ(v.error, TokenError::kMalformed) << v.message;
      return;
    }
  }
  FAIL() << "no payload length needing padding found";
}

TEST_F(VerifyTest, FailsWithDerEcdsaSignature) {
  const std::string input = Base64UrlEncode(Header("ES256", Kid(*ec_))) + "." + Base64UrlEncode(Payload());
  const std::string der = ec_->Sign(input).value();
  const VerifyResult r = Verify(input + "." + Base64UrlEncode(der));
  EXPECT_EQ(r.error, TokenError::kInvalidSignature) << r.message;
}

TEST_F(VerifyTest, FailsWithChangedPayload) {
  const std::string token = Mint(*rsa_);
  const std::size_t d1 = token.find('.'), d2 = token.rfind('.');
  const VerifyResult r = Verify(ChangeCharAt(token, d1 + (d2 - d1) / 2));
  EXPECT_NE(r.error, TokenError::kNone);
}

TEST_F(VerifyTest, FailsWithDuplicateClaim) {
  std::string payload = Payload();
  payload.insert(1, R"("iss":"https://attacker.example",)");
  const VerifyResult r = Verify(CraftToken(Header("RS256", Kid(*rsa_)), payload, *rsa_));
  EXPECT_EQ(r.error, TokenError::kMalformed) << r.message;
}

TEST_F(VerifyTest, FailsWithoutKubernetesClaims) {
  const VerifyResult r = Verify(CraftToken(
      Header("RS256", Kid(*rsa_)),
      R"({"aud":["vault"],"exp":1767229200,"iat":1767225600,"iss":"https://kubernetes.default.svc.cluster.local","sub":"system:serviceaccount:a:b"})",
      *rsa_));
  EXPECT_EQ(r.error, TokenError::kMalformed) << r.message;
}

TEST_F(VerifyTest, VerificationKeyFromPemDerivesKid) {
  auto k = VerificationKeyFromPem(SpkiToPem(ec_->spki_der()));
  ASSERT_TRUE(k.ok()) << k.status().message();
  EXPECT_EQ(k->kid, Kid(*ec_));
  EXPECT_EQ(k->type, KeyType::kEcP256);
  EXPECT_EQ(VerificationKeyFromPem("not a key").status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kubehsm::jwt
