// Bound-token claims: exact serialization (go-jose order, aud array) and validation refusals.
#include <gtest/gtest.h>

#include <regex>
#include <string>

#include "signer/jwt/claims.h"
#include "tests/jwt/jwt_test_util.h"

namespace kubehsm::jwt {
namespace {

using namespace kubehsm::jwt::testing;

constexpr char kJti[] = "6f1c2a9e-8c4b-4e2d-9a57-0d3f1b2c3d4e";

TEST(ClaimsTest, BuildBoundClaimsIsSortedCompactWithArrayAudience) {
  BoundTokenRequest r = PodBoundRequest();
  r.audiences = {"vault"};  // a single audience is still an array
  auto claims = BuildBoundClaims(r, kNow, kJti);
  ASSERT_TRUE(claims.ok()) << claims.status().message();
  EXPECT_EQ(*claims,
            R"({"aud":["vault"],"exp":1767229200,"iat":1767225600,"iss":"https://kubernetes.default.svc.cluster.local",)"
            R"("jti":"6f1c2a9e-8c4b-4e2d-9a57-0d3f1b2c3d4e","kubernetes.io":{"namespace":"default",)"
            R"("node":{"name":"worker-1","uid":"3d4e5f60-0000-4000-8000-333333333333"},)"
            R"("pod":{"name":"builder-7d9f","uid":"2c3d4e5f-0000-4000-8000-222222222222"},)"
            R"("serviceaccount":{"name":"builder","uid":"0b1f5b6e-2f60-4a3c-9d0e-111111111111"}},)"
            R"("nbf":1767225600,"sub":"system:serviceaccount:default:builder"})");
}

TEST(ClaimsTest, BuildBoundClaimsDefaultsAudienceToIssuer) {
  BoundTokenRequest r = PodBoundRequest();
  r.audiences.clear();
  auto claims = BuildBoundClaims(r, kNow, kJti);
  ASSERT_TRUE(claims.ok());
  EXPECT_NE(claims->find(R"("aud":["https://kubernetes.default.svc.cluster.local"])"), std::string::npos);
}

TEST(ClaimsTest, BuildBoundClaimsFailsWithExpirationBelowMinimum) {
  BoundTokenRequest r = PodBoundRequest();
  r.expiration_seconds = 599;
  EXPECT_EQ(BuildBoundClaims(r, kNow, kJti).status().code(), StatusCode::kInvalidArgument);
  r.expiration_seconds = 600;
  EXPECT_TRUE(BuildBoundClaims(r, kNow, kJti).ok());
}

TEST(ClaimsTest, BuildBoundClaimsFailsWithExpirationOf2To32) {
  BoundTokenRequest r = PodBoundRequest();
  r.expiration_seconds = int64_t{1} << 32;
  EXPECT_EQ(BuildBoundClaims(r, kNow, kJti).status().code(), StatusCode::kInvalidArgument);
  r.expiration_seconds = (int64_t{1} << 32) - 1;
  EXPECT_TRUE(BuildBoundClaims(r, kNow, kJti).ok());
}

TEST(ClaimsTest, BuildBoundClaimsFailsWithPodAndSecret) {
  BoundTokenRequest r = PodBoundRequest();
  r.secret = ObjectRef{"s", "uid"};
  auto c = BuildBoundClaims(r, kNow, kJti);
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find("at most one"), std::string::npos);
}

TEST(ClaimsTest, BuildBoundClaimsFailsWithInvalidNamespace) {
  BoundTokenRequest r = PodBoundRequest();
  r.namespace_name = "Default:evil";
  auto c = BuildBoundClaims(r, kNow, kJti);
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find("namespace"), std::string::npos);
}

TEST(ClaimsTest, BuildBoundClaimsFailsWithoutServiceAccountUid) {
  BoundTokenRequest r = PodBoundRequest();
  r.service_account_uid.clear();
  EXPECT_EQ(BuildBoundClaims(r, kNow, kJti).status().code(), StatusCode::kInvalidArgument);
}

TEST(ClaimsTest, BuildBoundClaimsFailsWithNodeBoundTokenWithoutNodeUid) {
  BoundTokenRequest r = PodBoundRequest();
  r.pod.reset();
  r.node->uid.clear();
  EXPECT_EQ(BuildBoundClaims(r, kNow, kJti).status().code(), StatusCode::kInvalidArgument);
}

TEST(ClaimsTest, NamesFollowDns1123) {
  EXPECT_TRUE(IsDns1123Label("kube-system"));
  EXPECT_FALSE(IsDns1123Label("-a"));
  EXPECT_FALSE(IsDns1123Label(std::string(64, 'a')));
  EXPECT_TRUE(IsDns1123Subdomain("a.b-c.d"));
  EXPECT_FALSE(IsDns1123Subdomain("a..b"));
  EXPECT_FALSE(IsDns1123Subdomain("A"));
}

TEST(ClaimsTest, NewJtiIsUuidV4) {
  auto a = NewJti();
  auto b = NewJti();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_TRUE(std::regex_match(*a, std::regex("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"))) << *a;
  EXPECT_NE(*a, *b);
}

constexpr char kDoc[] =
    R"({"iss":"https://issuer.example","sub":"system:serviceaccount:ns1:sa1","aud":"api","exp":1767229200,)"
    R"("kubernetes.io":{"namespace":"ns1","serviceaccount":{"name":"sa1","uid":"u1"},"secret":{"name":"s","uid":"u2"}},)"
    R"("custom":{"z":1,"a":2}})";

TEST(ClaimsTest, NormalizeClaimsDocumentSortsFillsAndMakesAudienceAnArray) {
  auto c = NormalizeClaimsDocument(kDoc, kNow, kJti);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(*c,
            R"({"aud":["api"],"custom":{"a":2,"z":1},"exp":1767229200,"iat":1767225600,"iss":"https://issuer.example",)"
            R"("jti":"6f1c2a9e-8c4b-4e2d-9a57-0d3f1b2c3d4e","kubernetes.io":{"namespace":"ns1",)"
            R"("secret":{"name":"s","uid":"u2"},"serviceaccount":{"name":"sa1","uid":"u1"}},)"
            R"("nbf":1767225600,"sub":"system:serviceaccount:ns1:sa1"})");
}

TEST(ClaimsTest, NormalizeClaimsDocumentFailsWhenOversized) {
  std::string doc = kDoc;
  doc.insert(doc.size() - 1, ",\"pad\":\"" + std::string(kMaxClaimsBytes, 'x') + "\"");
  auto c = NormalizeClaimsDocument(doc, kNow, kJti);
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find("larger than the 65536-byte limit"), std::string::npos) << c.status().message();
}

// Found by fuzz/claims_fuzzer's size invariant: a document just within the limit grew past it
// once iat, nbf and jti were added.
TEST(ClaimsTest, NormalizeClaimsDocumentFailsWhenNormalizedFormIsOversized) {
  std::string doc = kDoc;
  doc.insert(doc.size() - 1, ",\"pad\":\"\"");
  doc.insert(doc.size() - 2, std::string(kMaxClaimsBytes - doc.size(), 'x'));
  ASSERT_EQ(doc.size(), kMaxClaimsBytes);
  auto c = NormalizeClaimsDocument(doc, kNow, kJti);
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find("once normalized, larger than the 65536-byte limit"), std::string::npos)
      << c.status().message();
}

// Found by fuzz/claims_fuzzer (UBSan): exp - iat overflowed int64 for far-apart times.
TEST(ClaimsTest, NormalizeClaimsDocumentFailsWithExtremeLifetimeWithoutOverflow) {
  std::string doc = kDoc;
  doc.replace(doc.find("1767229200"), 10, "9223372036854775807,\"iat\":-9223372036854775807");
  auto c = NormalizeClaimsDocument(doc, kNow, kJti);
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find("lifetime (exp - iat)"), std::string::npos) << c.status().message();
}

TEST(ClaimsTest, NormalizeClaimsDocumentFailsWithMalformedJson) {
  auto c = NormalizeClaimsDocument(R"({"iss":"a",})", kNow, kJti);
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find("invalid JSON"), std::string::npos);
  EXPECT_EQ(NormalizeClaimsDocument("[1]", kNow, kJti).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(NormalizeClaimsDocument(std::string(kDoc) + "x", kNow, kJti).status().code(), StatusCode::kInvalidArgument);
}

TEST(ClaimsTest, NormalizeClaimsDocumentFailsWithDuplicateClaim) {
  std::string doc = kDoc;
  doc.insert(1, R"("iss":"https://other.example",)");
  auto c = NormalizeClaimsDocument(doc, kNow, kJti);
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find("duplicate member \"iss\""), std::string::npos) << c.status().message();
}

TEST(ClaimsTest, NormalizeClaimsDocumentFailsWithoutExp) {
  auto c = NormalizeClaimsDocument(
      R"({"iss":"i","sub":"system:serviceaccount:a:b","aud":["x"],"kubernetes.io":{"namespace":"a","serviceaccount":{"name":"b","uid":"u"}}})",
      kNow, kJti);
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find("\"exp\""), std::string::npos);
}

TEST(ClaimsTest, NormalizeClaimsDocumentFailsWhenSubjectDisagreesWithKubernetesClaims) {
  std::string doc = kDoc;
  doc.replace(doc.find("ns1:sa1"), 7, "ns1:sa2");
  auto c = NormalizeClaimsDocument(doc, kNow, kJti);
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find("serviceaccount.name"), std::string::npos);
}

TEST(ClaimsTest, NormalizeClaimsDocumentFailsWithNonIntegerExp) {
  std::string doc = kDoc;
  doc.replace(doc.find("1767229200"), 10, "\"soon\"");
  EXPECT_EQ(NormalizeClaimsDocument(doc, kNow, kJti).status().code(), StatusCode::kInvalidArgument);
}

TEST(ClaimsTest, NormalizeClaimsDocumentFailsWithDeepNesting) {
  std::string doc = kDoc;
  doc.insert(doc.size() - 1, ",\"deep\":" + std::string(100, '[') + std::string(100, ']'));
  auto c = NormalizeClaimsDocument(doc, kNow, kJti);
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find("nested too deeply"), std::string::npos);
}

}  // namespace
}  // namespace kubehsm::jwt
