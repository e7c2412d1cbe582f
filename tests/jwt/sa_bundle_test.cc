// Public-key bundles for one token per control-plane node (signer/jwt/sa_bundle.h) over two
// MemoryKeyStores: export, strict parsing, the import plan (import, extend, unchanged, own key),
// refusals, and that a token signed by one store verifies with the other's published keys.
#include "signer/jwt/sa_bundle.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "signer/jwt/claims.h"
#include "signer/jwt/jwks.h"
#include "signer/jwt/jws.h"
#include "signer/jwt/kid.h"
#include "signer/jwt/verify.h"
#include "signer/memory_key_store.h"
#include "tests/jwt/jwt_test_util.h"

namespace kubehsm::jwt {
namespace {

using namespace kubehsm::jwt::testing;

constexpr int64_t kT0 = 1767225600;  // 2026-01-01T00:00:00Z
constexpr int64_t kUntil = kT0 + 30 * 86400;

// A store with an active key of `active` and, optionally, a next key of `next`.
void Populate(signer::MemoryKeyStore& store, KeyType active, std::optional<KeyType> next = std::nullopt) {
  ASSERT_TRUE(EnsureActiveSaKey(store, active, kT0).ok());
  if (next) {
    ASSERT_TRUE(CreateNextSaKey(store, *next, kT0 + 1).ok());
  }
}

std::string ExportOf(signer::MemoryKeyStore& store) {
  return RenderSaKeyBundle(ExportableSaKeys(ListSaKeys(store).value()), kT0 + 2).value();
}

Status ImportInto(signer::MemoryKeyStore& store, const std::string& bundle_text, int64_t now, int64_t until) {
  KH_ASSIGN_OR_RETURN(std::vector<SaBundleKey> bundle, ParseSaKeyBundle(bundle_text));
  KH_ASSIGN_OR_RETURN(std::vector<SaKeyInfo> keys, ListSaKeys(store));
  KH_ASSIGN_OR_RETURN(std::vector<SaBundleStep> steps, PlanSaBundleImport(keys, bundle, until));
  for (const auto& s : steps) KH_RETURN_IF_ERROR(ApplySaBundleStep(store, s, now, until).status());
  return OkStatus();
}

TEST(SaBundleTest, RoundTripPublishesThePeersKeysAndItsTokensVerify) {
  signer::MemoryKeyStore a, b;
  Populate(a, KeyType::kEcP256, KeyType::kRsa2048);
  Populate(b, KeyType::kEcP384);
  const std::string text = ExportOf(a);
  auto parsed = ParseSaKeyBundle(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  ASSERT_EQ(parsed->size(), 2u);
  EXPECT_EQ((*parsed)[0].state, SaKeyState::kActive);
  EXPECT_EQ((*parsed)[1].state, SaKeyState::kNext);
  for (const auto& k : *parsed) EXPECT_EQ(KidFromSpki(k.spki_der).value(), k.kid);

  ASSERT_TRUE(ImportInto(b, text, kT0 + 10, kUntil).ok());
  // A token signed by a's active key verifies with b's published keys.
  auto active = FindActiveSaKey(a).value();
  const std::string token =
      SignCompact(active.key, active.kid, BuildBoundClaims(PodBoundRequest(), kT0 + 10, "j").value()).value();
  std::vector<VerificationKey> keys;
  const auto published = PublishedSaKeys(b, kT0 + 20);
  ASSERT_TRUE(published.ok()) << published.status().message();
  for (const auto& p : *published) {
    keys.push_back(VerificationKeyFromSpki(p.spki_der, p.kid).value());
  }
  EXPECT_EQ(keys.size(), 3u);
  VerifyOptions o;
  o.issuers = {kIssuer};
  o.audiences = {"vault"};
  o.now = kT0 + 20;
  EXPECT_TRUE(VerifyServiceAccountToken(token, keys, o).ok());
  // Imported keys are not re-exported: b's bundle holds b's key only.
  EXPECT_EQ(ParseSaKeyBundle(ExportOf(b)).value().size(), 1u);
}

TEST(SaBundleTest, PlanIsIdempotentExtendsNeverShortensAndSkipsOwnKeys) {
  signer::MemoryKeyStore a, b;
  Populate(a, KeyType::kEcP256);
  Populate(b, KeyType::kEcP256);
  const std::string text = ExportOf(a);
  const auto bundle = ParseSaKeyBundle(text).value();
  ASSERT_TRUE(ImportInto(b, text, kT0 + 10, kUntil).ok());
  auto plan = [&](signer::MemoryKeyStore& s, int64_t until) {
    return PlanSaBundleImport(ListSaKeys(s).value(), bundle, until).value();
  };
  EXPECT_EQ(plan(b, kUntil)[0].action, SaBundleAction::kUnchanged);
  EXPECT_EQ(plan(b, kUntil - 1)[0].action, SaBundleAction::kUnchanged);  // never shortened
  const auto extend = plan(b, kUntil + 86400);
  ASSERT_EQ(extend[0].action, SaBundleAction::kExtend);
  auto extended = ApplySaBundleStep(b, extend[0], kT0 + 20, kUntil + 86400);
  ASSERT_TRUE(extended.ok()) << extended.status().message();
  EXPECT_EQ(extended->until, kUntil + 86400);
  EXPECT_EQ(extended->since, kT0 + 10);  // the import time is kept
  const auto listed = ListSaKeys(b).value();
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[1].until, kUntil + 86400);
  // A bundle of the store itself changes nothing.
  EXPECT_EQ(plan(a, kUntil)[0].action, SaBundleAction::kOwnKey);
}

TEST(SaBundleTest, RefusesPrivateMembersKidMismatchAndCollisions) {
  signer::MemoryKeyStore a, b;
  Populate(a, KeyType::kEcP256, KeyType::kEcP256);
  Populate(b, KeyType::kEcP256);
  const auto doc = nlohmann::json::parse(ExportOf(a));
  for (const char* m : {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}) {
    auto bad = doc;
    bad["keys"][0][m] = "AQAB";
    auto r = ParseSaKeyBundle(bad.dump());
    ASSERT_FALSE(r.ok()) << m;
    EXPECT_NE(r.status().message().find(std::string("private key member \"") + m + "\""), std::string::npos)
        << r.status().message();
  }
  auto mismatch = doc;
  mismatch["keys"][0]["kid"] = mismatch["keys"][1]["kid"];
  auto parsed = ParseSaKeyBundle(mismatch.dump());
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();  // kids are the plan's business
  auto planned = PlanSaBundleImport(ListSaKeys(b).value(), *parsed, kUntil);
  ASSERT_FALSE(planned.ok());
  EXPECT_NE(planned.status().message().find("kid mismatch"), std::string::npos) << planned.status().message();
  auto collision = doc;
  collision["keys"][0]["kid"] = ListSaKeys(b).value()[0].kid;
  planned = PlanSaBundleImport(ListSaKeys(b).value(), ParseSaKeyBundle(collision.dump()).value(), kUntil);
  ASSERT_FALSE(planned.ok());
  EXPECT_NE(planned.status().message().find("collides"), std::string::npos) << planned.status().message();
}

TEST(SaBundleTest, JwksPublishesKeyMatchesKidAndKey) {
  signer::MemoryKeyStore a;
  Populate(a, KeyType::kEcP256, KeyType::kRsa2048);
  const auto keys = ListSaKeys(a).value();
  const std::string jwks = RenderJwks({{keys[0].kid, keys[0].spki_der}}).value();
  EXPECT_TRUE(JwksPublishesKey(jwks, keys[0].kid, keys[0].spki_der).value());
  EXPECT_FALSE(JwksPublishesKey(jwks, keys[1].kid, keys[1].spki_der).value());
  // The right kid naming another key is not "published".
  const std::string forged = RenderJwks({{keys[1].kid, keys[0].spki_der}}).value();
  EXPECT_FALSE(JwksPublishesKey(forged, keys[1].kid, keys[1].spki_der).value());
  EXPECT_FALSE(JwksPublishesKey("{", keys[0].kid, keys[0].spki_der).ok());
}

}  // namespace
}  // namespace kubehsm::jwt
