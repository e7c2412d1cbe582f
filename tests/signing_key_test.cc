#include <gtest/gtest.h>
#include <string>

#include "signer/signing_key.h"

namespace kubehsm::signer {
namespace {

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
                         [](const auto& p) {
                           std::string n(KeyTypeName(p.param));
                           for (auto& c : n)
                             if (c == '-') c = '_';
                           return n;
                         });

TEST(SigningKeyTest, ParseSpkiDerRejectsGarbage) {
  EXPECT_EQ(ParseSpkiDer("not der").status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kubehsm::signer
