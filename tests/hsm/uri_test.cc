#include <gtest/gtest.h>
#include <string>

#include "hsm/uri.h"

namespace kubehsm::hsm {
namespace {

TEST(Pkcs11UriTest, ParsesPathAndQueryAttributes) {
  auto u = Pkcs11Uri::Parse(
      "pkcs11:token=My%20Token;manufacturer=SoftHSM%20project;serial=abc;model=SoftHSM%20v2;object=ca;id=%01%ff;"
      "type=private;slot-id=7?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin");
  ASSERT_TRUE(u.ok()) << u.status().message();
  EXPECT_EQ(u->token, "My Token");
  EXPECT_EQ(u->manufacturer, "SoftHSM project");
  EXPECT_EQ(u->serial, "abc");
  EXPECT_EQ(u->model, "SoftHSM v2");
  EXPECT_EQ(u->object, "ca");
  EXPECT_EQ(u->id, std::string("\x01\xff", 2));
  EXPECT_EQ(u->type, "private");
  EXPECT_EQ(u->slot_id, 7u);
  EXPECT_EQ(u->module_path, "/usr/lib/softhsm/libsofthsm2.so");
  EXPECT_EQ(u->pin_source, "file:/run/pin");
  EXPECT_TRUE(u->SelectsToken());
}

TEST(Pkcs11UriTest, RoundTripsThroughToString) {
  Pkcs11Uri u;
  u.token = "a;b c";
  u.object = "etcd-ca";
  u.id = std::string("\x00\x10", 2);
  u.type = "private";
  auto back = Pkcs11Uri::Parse(u.ToString());
  ASSERT_TRUE(back.ok()) << u.ToString();
  EXPECT_EQ(back->token, "a;b c");
  EXPECT_EQ(back->object, "etcd-ca");
  EXPECT_EQ(back->id, u.id);
  EXPECT_EQ(u.ToString(), "pkcs11:token=a%3bb%20c;object=etcd-ca;id=%00%10;type=private");
}

// Found by fuzz/pkcs11_uri_fuzzer: '&' was written unescaped into query values, where it splits
// the attribute ("module-path=/opt/a&b" re-parsed as "module-path=/opt/a" and an attribute "b").
TEST(Pkcs11UriTest, RoundTripsAmpersandInQueryValue) {
  auto u = Pkcs11Uri::Parse("pkcs11:object=a%26b?module-path=/opt/a%26b&pin-source=file:/run/p%26q");
  ASSERT_TRUE(u.ok()) << u.status().message();
  EXPECT_EQ(u->ToString(), "pkcs11:object=a&b?module-path=%2fopt%2fa%26b&pin-source=file:%2frun%2fp%26q");
  auto back = Pkcs11Uri::Parse(u->ToString());
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->object, "a&b");
  EXPECT_EQ(back->module_path, "/opt/a&b");
  EXPECT_EQ(back->pin_source, "file:/run/p&q");
}

TEST(Pkcs11UriTest, EmptyUriSelectsNothing) {
  auto u = Pkcs11Uri::Parse("pkcs11:");
  ASSERT_TRUE(u.ok());
  EXPECT_FALSE(u->SelectsToken());
}

TEST(Pkcs11UriTest, IgnoresVendorAttributes) {
  auto u = Pkcs11Uri::Parse("pkcs11:token=t;x-vendor=1?x-foo=bar");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->token, "t");
}

struct BadUri {
  const char* name;
  const char* uri;
  const char* message_part;
};

class Pkcs11UriRejectsTest : public ::testing::TestWithParam<BadUri> {};

TEST_P(Pkcs11UriRejectsTest, FailsWithClearMessage) {
  auto u = Pkcs11Uri::Parse(GetParam().uri);
  ASSERT_FALSE(u.ok());
  EXPECT_EQ(u.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(u.status().message().find(GetParam().message_part), std::string::npos) << u.status().message();
}

INSTANTIATE_TEST_SUITE_P(
    Malformed, Pkcs11UriRejectsTest,
    ::testing::Values(BadUri{"NoScheme", "token=foo", "must start with \"pkcs11:\""},
                      BadUri{"WrongScheme", "pkcs12:token=foo", "must start with"},
                      BadUri{"BadEscape", "pkcs11:token=a%zz", "bad %-escape"},
                      BadUri{"TruncatedEscape", "pkcs11:token=a%2", "truncated %-escape"},
                      BadUri{"UnknownAttribute", "pkcs11:tokn=a", "unknown PKCS#11 URI path attribute 'tokn'"},
                      BadUri{"UnknownQuery", "pkcs11:token=a?module=x", "unknown PKCS#11 URI query attribute"},
                      BadUri{"Repeated", "pkcs11:token=a;token=b", "repeated"},
                      BadUri{"BadType", "pkcs11:type=secret", "'type' must be"},
                      BadUri{"BadSlotId", "pkcs11:slot-id=x1", "slot-id"},
                      BadUri{"NoEquals", "pkcs11:token", "has no '='"},
                      BadUri{"PinValue", "pkcs11:token=a?pin-value=1234", "pin-value"}),
    [](const auto& p) { return std::string(p.param.name); });

TEST(Pkcs11UriTest, PinValueErrorDoesNotEchoThePin) {
  auto u = Pkcs11Uri::Parse("pkcs11:token=a?pin-value=S3cr3tPin");
  ASSERT_FALSE(u.ok());
  EXPECT_EQ(u.status().message().find("S3cr3tPin"), std::string::npos);
}

}  // namespace
}  // namespace kubehsm::hsm
