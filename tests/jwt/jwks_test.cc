// JWKS and discovery documents: kube-apiserver's member order and encodings; JWKS parsing.
#include <gtest/gtest.h>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/base64.h"
#include "signer/jwt/claims.h"
#include "signer/jwt/jwks.h"
#include "signer/jwt/jws.h"
#include "signer/jwt/kid.h"
#include "tests/jwt/jwt_test_util.h"

namespace kubehsm::jwt {
namespace {

using namespace kubehsm::jwt::testing;

PublishedKey Publish(const signer::SigningKey& k) { return {KidFromSpki(k.spki_der()).value(), k.spki_der()}; }

// The member names of each JWK, in document order (nlohmann::ordered_json keeps it).
std::vector<std::vector<std::string>> MemberOrder(const std::string& jwks) {
  std::vector<std::vector<std::string>> out;
  const auto doc = nlohmann::ordered_json::parse(jwks);
  for (const auto& jwk : doc["keys"]) {
    std::vector<std::string> names;
    for (const auto& item : jwk.items()) names.push_back(item.key());
    out.push_back(names);
  }
  return out;
}

TEST(JwksTest, RenderJwksUsesGoJoseMemberOrderAndPaddedCoordinates) {
  auto rsa = signer::SigningKey::GenerateSoftware(KeyType::kRsa2048).value();
  std::vector<PublishedKey> keys{Publish(rsa)};
  std::vector<KeyType> ec_types{KeyType::kEcP256, KeyType::kEcP384, KeyType::kEcP521};
  std::vector<signer::SigningKey> ec_keys;
  for (KeyType t : ec_types) {
    ec_keys.push_back(signer::SigningKey::GenerateSoftware(t).value());
    keys.push_back(Publish(ec_keys.back()));
  }
  auto jwks = RenderJwks(keys);
  ASSERT_TRUE(jwks.ok()) << jwks.status().message();
  EXPECT_EQ(jwks->find(' '), std::string::npos);  // compact
  const auto order = MemberOrder(*jwks);
  ASSERT_EQ(order.size(), 4u);
  EXPECT_EQ(order[0], (std::vector<std::string>{"use", "kty", "kid", "alg", "n", "e"}));
  for (int i = 1; i < 4; ++i) EXPECT_EQ(order[i], (std::vector<std::string>{"use", "kty", "kid", "crv", "alg", "x", "y"}));

  const auto doc = nlohmann::json::parse(*jwks);
  EXPECT_EQ(doc["keys"][0]["use"], "sig");
  EXPECT_EQ(doc["keys"][0]["alg"], "RS256");
  EXPECT_EQ(doc["keys"][0]["e"], "AQAB");
  EXPECT_EQ(Base64UrlDecode(doc["keys"][0]["n"].get<std::string>())->size(), 256u);
  EXPECT_EQ(doc["keys"][0]["kid"], keys[0].kid);
  const char* crv[] = {"P-256", "P-384", "P-521"};
  const char* alg[] = {"ES256", "ES384", "ES512"};
  const std::size_t size[] = {32, 48, 66};
  for (int i = 0; i < 3; ++i) {
    const auto& jwk = doc["keys"][i + 1];
    EXPECT_EQ(jwk["crv"], crv[i]);
    EXPECT_EQ(jwk["alg"], alg[i]);
    EXPECT_EQ(Base64UrlDecode(jwk["x"].get<std::string>())->size(), size[i]);
    EXPECT_EQ(Base64UrlDecode(jwk["y"].get<std::string>())->size(), size[i]);
  }
}

TEST(JwksTest, RenderJwksFailsWithNoKeys) {
  EXPECT_EQ(RenderJwks({}).status().code(), StatusCode::kFailedPrecondition);
}

TEST(JwksTest, ParseJwksRoundTripsAndVerifies) {
  auto ec = signer::SigningKey::GenerateSoftware(KeyType::kEcP521).value();
  auto rsa = signer::SigningKey::GenerateSoftware(KeyType::kRsa2048).value();
  auto jwks = RenderJwks({Publish(ec), Publish(rsa)});
  ASSERT_TRUE(jwks.ok());
  auto keys = ParseJwks(*jwks);
  ASSERT_TRUE(keys.ok()) << keys.status().message();
  ASSERT_EQ(keys->size(), 2u);
  EXPECT_EQ((*keys)[0].kid, Publish(ec).kid);
  // The rebuilt keys are the same keys: their derived kids match.
  EXPECT_EQ(KidOf((*keys)[0].public_key.get()).value(), Publish(ec).kid);
  EXPECT_EQ(KidOf((*keys)[1].public_key.get()).value(), Publish(rsa).kid);

  const std::string token =
      SignCompact(ec, Publish(ec).kid, BuildBoundClaims(PodBoundRequest(), kNow, "j").value()).value();
  VerifyOptions o;
  o.issuers = {kIssuer};
  o.audiences = {"vault"};
  o.now = kNow;
  EXPECT_TRUE(VerifyServiceAccountToken(token, *keys, o).ok());
}

TEST(JwksTest, ParseJwksSkipsNonSigningAndUnknownKeys) {
  auto ec = signer::SigningKey::GenerateSoftware(KeyType::kEcP256).value();
  auto doc = nlohmann::json::parse(RenderJwks({Publish(ec)}).value());
  doc["keys"].push_back({{"kty", "OKP"}, {"crv", "Ed25519"}, {"x", "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}});
  auto enc = doc["keys"][0];
  enc["use"] = "enc";
  doc["keys"].push_back(enc);
  auto keys = ParseJwks(doc.dump());
  ASSERT_TRUE(keys.ok()) << keys.status().message();
  EXPECT_EQ(keys->size(), 1u);
}

TEST(JwksTest, ParseJwksDerivesMissingKid) {
  auto ec = signer::SigningKey::GenerateSoftware(KeyType::kEcP384).value();
  auto doc = nlohmann::json::parse(RenderJwks({{"custom", ec.spki_der()}}).value());
  EXPECT_EQ(ParseJwks(doc.dump()).value()[0].kid, "custom");
  doc["keys"][0].erase("kid");
  EXPECT_EQ(ParseJwks(doc.dump()).value()[0].kid, Publish(ec).kid);
}

TEST(JwksTest, ParseJwksFailsWithShortCoordinate) {
  auto ec = signer::SigningKey::GenerateSoftware(KeyType::kEcP256).value();
  auto doc = nlohmann::json::parse(RenderJwks({Publish(ec)}).value());
  std::string x = Base64UrlDecode(doc["keys"][0]["x"].get<std::string>()).value();
  doc["keys"][0]["x"] = Base64UrlEncode(x.substr(1));
  auto keys = ParseJwks(doc.dump());
  EXPECT_EQ(keys.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(keys.status().message().find("exactly 32 bytes"), std::string::npos) << keys.status().message();
}

TEST(JwksTest, ParseJwksFailsWithPointNotOnCurve) {
  auto ec = signer::SigningKey::GenerateSoftware(KeyType::kEcP256).value();
  auto doc = nlohmann::json::parse(RenderJwks({Publish(ec)}).value());
  std::string y = Base64UrlDecode(doc["keys"][0]["y"].get<std::string>()).value();
  y[31] = static_cast<char>(y[31] ^ 1);
  doc["keys"][0]["y"] = Base64UrlEncode(y);
  EXPECT_EQ(ParseJwks(doc.dump()).status().code(), StatusCode::kInvalidArgument);
}

TEST(JwksTest, ParseJwksFailsWithoutUsableKeys) {
  EXPECT_EQ(ParseJwks(R"({"keys":[]})").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseJwks(R"({"keys":{}})").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseJwks("not json").status().code(), StatusCode::kInvalidArgument);
}

TEST(JwksTest, RenderDiscoveryMatchesKubeApiserver) {
  auto rsa = signer::SigningKey::GenerateSoftware(KeyType::kRsa2048).value();
  auto ec = signer::SigningKey::GenerateSoftware(KeyType::kEcP384).value();
  auto ec2 = signer::SigningKey::GenerateSoftware(KeyType::kEcP384).value();
  auto doc = RenderDiscovery("https://issuer.example", DefaultJwksUri("https://issuer.example/"),
                             {Publish(ec), Publish(rsa), Publish(ec2)});
  ASSERT_TRUE(doc.ok()) << doc.status().message();
  EXPECT_EQ(*doc,
            R"({"issuer":"https://issuer.example","jwks_uri":"https://issuer.example/openid/v1/jwks",)"
            R"("response_types_supported":["id_token"],"subject_types_supported":["public"],)"
            R"("id_token_signing_alg_values_supported":["ES384","RS256"]})");
}

TEST(JwksTest, RenderDiscoveryFailsWithNonHttpsIssuer) {
  auto ec = signer::SigningKey::GenerateSoftware(KeyType::kEcP256).value();
  for (const char* bad : {"http://issuer.example", "kubernetes.default.svc", "https://", "https://a/?q=1",
                          "https://a/#frag"}) {
    EXPECT_EQ(RenderDiscovery(bad, "https://a/jwks", {Publish(ec)}).status().code(), StatusCode::kInvalidArgument)
        << bad;
  }
  EXPECT_EQ(RenderDiscovery("https://a", "http://a/jwks", {Publish(ec)}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(RenderDiscovery("https://a", "https://a/jwks", {}).status().code(), StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace kubehsm::jwt
