// Service-account key rotation over a KeyStore (MemoryKeyStore): labels, guards, and that tokens
// keep verifying across a rotation.
#include <gtest/gtest.h>
#include <algorithm>
#include <string>
#include <vector>

#include "signer/jwt/claims.h"
#include "signer/jwt/jwks.h"
#include "signer/jwt/jws.h"
#include "signer/jwt/kid.h"
#include "signer/jwt/sa_keys.h"
#include "signer/jwt/verify.h"
#include "signer/memory_key_store.h"
#include "tests/jwt/jwt_test_util.h"

namespace kubehsm::jwt {
namespace {

using namespace kubehsm::jwt::testing;

std::vector<std::string> Kids(const std::vector<PublishedKey>& keys) {
  std::vector<std::string> out;
  for (const auto& k : keys) out.push_back(k.kid);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> Sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

// Mints with the store's active key at `now`; verifies with the store's published keys.
std::string MintWithStore(signer::KeyStore& store, int64_t now) {
  auto active = FindActiveSaKey(store);
  EXPECT_TRUE(active.ok()) << active.status().message();
  return SignCompact(active->key, active->kid, BuildBoundClaims(PodBoundRequest(), now, "j").value()).value();
}

VerifyResult VerifyWithStore(signer::KeyStore& store, const std::string& token, int64_t now) {
  std::vector<VerificationKey> keys;
  const auto published = PublishedSaKeys(store);
  EXPECT_TRUE(published.ok()) << published.status().message();
  for (const auto& p : *published) keys.push_back(VerificationKeyFromSpki(p.spki_der, p.kid).value());
  VerifyOptions o;
  o.issuers = {kIssuer};
  o.audiences = {"vault"};
  o.now = now;
  return VerifyServiceAccountToken(token, keys, o);
}

TEST(SaKeysTest, LabelFormatRoundTrips) {
  const std::string kid = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ";
  const std::string label = FormatSaKeyLabel({SaKeyState::kNext, 1767225600, kid});
  EXPECT_EQ(label, "kubehsm-sa:next:1767225600:" + kid);
  auto parsed = ParseSaKeyLabel(label);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->state, SaKeyState::kNext);
  EXPECT_EQ(parsed->since, 1767225600);
  EXPECT_EQ(parsed->kid, kid);
  EXPECT_FALSE(ParseSaKeyLabel("kubehsm-ca").has_value());
  EXPECT_FALSE(ParseSaKeyLabel("kubehsm-sa:bogus:1:" + kid).has_value());
  EXPECT_FALSE(ParseSaKeyLabel("kubehsm-sa:active:-1:" + kid).has_value());
  EXPECT_FALSE(ParseSaKeyLabel("kubehsm-sa:active:12:short").has_value());
  EXPECT_EQ(ParseSaKeyLabel("kubehsm-sa:new:123e4567")->state, SaKeyState::kIncomplete);
}

TEST(SaKeysTest, EnsureActiveSaKeyCreatesOnceAndIsIdempotent) {
  signer::MemoryKeyStore store;
  auto first = EnsureActiveSaKey(store, KeyType::kRsa2048, kNow);
  ASSERT_TRUE(first.ok()) << first.status().message();
  EXPECT_EQ(first->type(), KeyType::kRsa2048);
  auto second = EnsureActiveSaKey(store, KeyType::kEcP256, kNow + 10);  // existing key wins
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->spki_der(), first->spki_der());
  auto keys = ListSaKeys(store).value();
  ASSERT_EQ(keys.size(), 1u);
  EXPECT_EQ(keys[0].state, SaKeyState::kActive);
  EXPECT_EQ(keys[0].label, "kubehsm-sa:active:1767225600:" + KidFromSpki(first->spki_der()).value());
}

TEST(SaKeysTest, ListIgnoresOtherKeys) {
  signer::MemoryKeyStore store;
  ASSERT_TRUE(store.Create("kubehsm-ca", KeyType::kEcP256).ok());
  ASSERT_TRUE(EnsureActiveSaKey(store, KeyType::kEcP256, kNow).ok());
  EXPECT_EQ(ListSaKeys(store).value().size(), 1u);
}

TEST(SaKeysTest, RotationKeepsOldTokensValidAndSwitchesKid) {
  signer::MemoryKeyStore store;
  ASSERT_TRUE(EnsureActiveSaKey(store, KeyType::kRsa2048, kNow).ok());
  const std::string old_kid = FindActiveSaKey(store)->kid;
  const std::string old_token = MintWithStore(store, kNow);

  auto next = CreateNextSaKey(store, KeyType::kEcP256, kNow + 100);
  ASSERT_TRUE(next.ok()) << next.status().message();
  EXPECT_EQ(next->state, SaKeyState::kNext);
  // Published but not signing.
  EXPECT_EQ(Kids(PublishedSaKeys(store).value()), Sorted({old_kid, next->kid}));
  EXPECT_EQ(FindActiveSaKey(store)->kid, old_kid);
  // A second rotate before activation is refused.
  EXPECT_EQ(CreateNextSaKey(store, KeyType::kEcP256, kNow + 200).status().code(), StatusCode::kFailedPrecondition);

  auto activated = ActivateSaKey(store, "", {kNow + 100 + kDefaultMinPublishedSeconds, kDefaultMinPublishedSeconds, false});
  ASSERT_TRUE(activated.ok()) << activated.status().message();
  EXPECT_EQ(activated->kid, next->kid);

  const int64_t later = kNow + 100 + kDefaultMinPublishedSeconds;
  const std::string new_token = MintWithStore(store, later);
  const VerifyResult nv = VerifyWithStore(store, new_token, later);
  ASSERT_TRUE(nv.ok()) << nv.message;
  EXPECT_EQ(nv.identity.kid, next->kid);
  EXPECT_EQ(nv.identity.algorithm, JwsAlgorithm::kEs256);
  const VerifyResult ov = VerifyWithStore(store, old_token, kNow + 60);
  ASSERT_TRUE(ov.ok()) << ov.message;
  EXPECT_EQ(ov.identity.kid, old_kid);

  auto keys = ListSaKeys(store).value();
  ASSERT_EQ(keys.size(), 2u);
  EXPECT_EQ(keys[0].state, SaKeyState::kActive);
  EXPECT_EQ(keys[0].kid, next->kid);
  EXPECT_EQ(keys[1].state, SaKeyState::kRetired);
  EXPECT_EQ(keys[1].kid, old_kid);
  EXPECT_EQ(Kids(PublishedSaKeys(store).value()), Sorted({old_kid, next->kid}));

  // Removing the retired key too early is refused; later it goes, and its tokens stop verifying.
  EXPECT_EQ(RemoveSaKey(store, old_kid, {later + 10, kDefaultMinRetiredSeconds, false}).status().code(),
            StatusCode::kFailedPrecondition);
  ASSERT_TRUE(RemoveSaKey(store, old_kid.substr(0, 8), {later + kDefaultMinRetiredSeconds, kDefaultMinRetiredSeconds, false}).ok());
  EXPECT_EQ(Kids(PublishedSaKeys(store).value()), std::vector<std::string>{next->kid});
  EXPECT_EQ(VerifyWithStore(store, old_token, kNow + 60).error, TokenError::kUnknownKid);
}

TEST(SaKeysTest, ActivateFailsWhenPublishedTooRecently) {
  signer::MemoryKeyStore store;
  ASSERT_TRUE(EnsureActiveSaKey(store, KeyType::kEcP256, kNow).ok());
  auto next = CreateNextSaKey(store, KeyType::kEcP256, kNow);
  ASSERT_TRUE(next.ok());
  auto r = ActivateSaKey(store, next->kid, {kNow + 3599, 3600, false});
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("--force"), std::string::npos) << r.status().message();
  EXPECT_EQ(FindActiveSaKey(store)->kid == next->kid, false);
  EXPECT_TRUE(ActivateSaKey(store, next->kid, {kNow + 1, 3600, true}).ok());
  EXPECT_EQ(FindActiveSaKey(store)->kid, next->kid);
}

TEST(SaKeysTest, RetireFailsForTheOnlyActiveKey) {
  signer::MemoryKeyStore store;
  ASSERT_TRUE(EnsureActiveSaKey(store, KeyType::kEcP256, kNow).ok());
  const std::string kid = FindActiveSaKey(store)->kid;
  auto r = RetireSaKey(store, kid, kNow + 5, false);
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(ListSaKeys(store).value()[0].state, SaKeyState::kActive);
}

TEST(SaKeysTest, RemoveFailsForTheActiveKey) {
  signer::MemoryKeyStore store;
  ASSERT_TRUE(EnsureActiveSaKey(store, KeyType::kEcP256, kNow).ok());
  const std::string kid = FindActiveSaKey(store)->kid;
  EXPECT_EQ(RemoveSaKey(store, kid, {kNow + 999999, 0, false}).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(ListSaKeys(store).value().size(), 1u);
}

TEST(SaKeysTest, InterruptedActivationSignsWithNewestActive) {
  signer::MemoryKeyStore store;
  ASSERT_TRUE(EnsureActiveSaKey(store, KeyType::kEcP256, kNow).ok());
  const std::string old_kid = FindActiveSaKey(store)->kid;
  auto next = CreateNextSaKey(store, KeyType::kEcP256, kNow);
  ASSERT_TRUE(next.ok());
  // Simulate a crash between the two relabels of ActivateSaKey.
  ASSERT_TRUE(store.Relabel(next->label, FormatSaKeyLabel({SaKeyState::kActive, kNow + 7200, next->kid})).ok());
  EXPECT_EQ(FindActiveSaKey(store)->kid, next->kid);
  // Now retiring the older active key is allowed (another active exists), which repairs the state.
  ASSERT_TRUE(RetireSaKey(store, old_kid, kNow + 7300, false).ok());
  EXPECT_EQ(ListSaKeys(store).value()[1].state, SaKeyState::kRetired);
}

TEST(SaKeysTest, ImportPublicKeyIsRetiredUnderDerivedKid) {
  signer::MemoryKeyStore store;
  ASSERT_TRUE(EnsureActiveSaKey(store, KeyType::kEcP256, kNow).ok());
  auto legacy = signer::SigningKey::GenerateSoftware(KeyType::kRsa2048).value();
  const int64_t until = kNow + 20LL * 365 * 86400;  // VerifyWithStore publishes at the real time
  auto imported = ImportSaPublicKey(store, legacy.spki_der(), kNow, until);
  ASSERT_TRUE(imported.ok()) << imported.status().message();
  const std::string kid = KidFromSpki(legacy.spki_der()).value();
  EXPECT_EQ(imported->kid, kid);
  EXPECT_EQ(imported->label, "kubehsm-sa:imported:1767225600:" + std::to_string(until) + ":" + kid);
  EXPECT_FALSE(imported->has_private);
  EXPECT_TRUE(imported->imported);
  EXPECT_EQ(ImportSaPublicKey(store, legacy.spki_der(), kNow, until).status().code(), StatusCode::kAlreadyExists);
  // Cannot be activated: there is no private half.
  EXPECT_EQ(ActivateSaKey(store, kid, {kNow + 99999, 0, true}).status().code(), StatusCode::kFailedPrecondition);
  // Tokens signed by the legacy key (e.g. by kube-apiserver from sa.key) verify with the published set.
  const std::string token = SignCompact(legacy, kid, BuildBoundClaims(PodBoundRequest(), kNow, "j").value()).value();
  EXPECT_TRUE(VerifyWithStore(store, token, kNow).ok());
}

// An imported key is marked as such, listed with its expiry, and published only before it.
TEST(SaKeysTest, ImportedKeyIsMarkedAndNotPublishedAfterItsExpiry) {
  signer::MemoryKeyStore store;
  ASSERT_TRUE(EnsureActiveSaKey(store, KeyType::kEcP256, kNow).ok());
  auto outside = signer::SigningKey::GenerateSoftware(KeyType::kEcP256).value();
  EXPECT_EQ(ImportSaPublicKey(store, outside.spki_der(), kNow, kNow).status().code(), StatusCode::kInvalidArgument);
  auto imported = ImportSaPublicKey(store, outside.spki_der(), kNow, kNow + 3600);
  ASSERT_TRUE(imported.ok()) << imported.status().message();
  auto listed = ListSaKeys(store).value();
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(SaKeySource(listed[0]), "token");
  EXPECT_EQ(SaKeySource(listed[1]), "imported");
  EXPECT_EQ(listed[1].until, kNow + 3600);
  EXPECT_TRUE(SaKeyPublishable(listed[1], kNow + 3599));
  EXPECT_FALSE(SaKeyPublishable(listed[1], kNow + 3600));
  EXPECT_EQ(Kids(PublishedSaKeys(store, kNow + 3599).value()), Sorted({listed[0].kid, imported->kid}));
  EXPECT_EQ(Kids(PublishedSaKeys(store, kNow + 3600).value()), std::vector<std::string>{listed[0].kid});
  EXPECT_EQ(ListPublishedSaKeys(store, kNow + 3600).value().size(), 1u);
}

TEST(SaKeysTest, ListFailsWithMislabelledKey) {
  signer::MemoryKeyStore store;
  auto a = signer::SigningKey::GenerateSoftware(KeyType::kEcP256).value();
  auto b = signer::SigningKey::GenerateSoftware(KeyType::kEcP256).value();
  ASSERT_TRUE(store.ImportPublicKey(FormatSaKeyLabel({SaKeyState::kRetired, kNow, KidFromSpki(b.spki_der()).value()}),
                                    a.spki_der())
                  .ok());
  auto r = ListSaKeys(store);
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("does not match"), std::string::npos);
}

TEST(SaKeysTest, FindActiveFailsWithoutActiveKey) {
  signer::MemoryKeyStore store;
  EXPECT_EQ(FindActiveSaKey(store).status().code(), StatusCode::kFailedPrecondition);
}

TEST(SaKeysTest, ResolveFailsWithAmbiguousOrShortPrefix) {
  signer::MemoryKeyStore store;
  ASSERT_TRUE(EnsureActiveSaKey(store, KeyType::kEcP256, kNow).ok());
  EXPECT_EQ(RetireSaKey(store, "abc", kNow, true).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(RetireSaKey(store, "zzzzzzzz-not-there", kNow, true).status().code(), StatusCode::kNotFound);
}

TEST(SaKeysTest, IncompleteKeyIsListedNotPublishedAndRemovable) {
  signer::MemoryKeyStore store;
  ASSERT_TRUE(EnsureActiveSaKey(store, KeyType::kEcP256, kNow).ok());
  ASSERT_TRUE(store.Create("kubehsm-sa:new:1234-crashed", KeyType::kEcP256).ok());
  auto keys = ListSaKeys(store).value();
  ASSERT_EQ(keys.size(), 2u);
  EXPECT_EQ(keys[1].state, SaKeyState::kIncomplete);
  EXPECT_EQ(PublishedSaKeys(store).value().size(), 1u);
  EXPECT_TRUE(RemoveSaKey(store, "kubehsm-sa:new:1234-crashed", {kNow, kDefaultMinRetiredSeconds, false}).ok());
  EXPECT_EQ(ListSaKeys(store).value().size(), 1u);
}

}  // namespace
}  // namespace kubehsm::jwt
