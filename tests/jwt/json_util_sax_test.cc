// internal::ParseJsonObject (signer/jwt/json_util.h): the exact refusals of the SAX DOM builder,
// including which problem wins when a document has several (the first one in document order, as
// the former callback parser reported), and that accepted documents are built faithfully.
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "signer/jwt/json_util.h"

namespace kubehsm::jwt {
namespace {

using internal::ParseJsonObject;
using nlohmann::json;

std::string Error(const std::string& text) {
  auto r = ParseJsonObject(text, "claims");
  EXPECT_FALSE(r.ok()) << text;
  if (r.ok()) return "";
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  return r.status().message();
}

// A member "x" holding `depth` nested arrays: the outermost object is depth 0, so the innermost
// array is at depth `depth`.
std::string Nested(int depth) {
  return "{\"x\":" + std::string(depth, '[') + std::string(depth, ']') + "}";
}

TEST(JsonUtilSaxTest, BuildsTheSameDomAsNlohmann) {
  const std::string text =
      R"({"b":[1,-2,18446744073709551615,-9223372036854775808,1.5,true,false,null,"s",[],{}],)"
      R"("a":{"k":{"n":"\u00e9\ud83d\ude00"}},"":"","e":[[{"x":[{"y":1}]}]]})";
  auto r = ParseJsonObject(text, "claims");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(*r, json::parse(text));
  EXPECT_EQ(r->dump(), json::parse(text).dump());
  EXPECT_TRUE((*r)["b"][2].is_number_unsigned());
  EXPECT_TRUE((*r)["b"][3].is_number_integer());
  EXPECT_TRUE((*r)["b"][4].is_number_float());
}

TEST(JsonUtilSaxTest, EmptyObjectIsAccepted) {
  auto r = ParseJsonObject(" { } ", "claims");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(r->is_object());
  EXPECT_TRUE(r->empty());
}

TEST(JsonUtilSaxTest, DuplicateMembersAtAnyLevelAreRefused) {
  EXPECT_EQ(Error(R"({"a":1,"a":2})"), "claims: duplicate member \"a\"");
  EXPECT_EQ(Error(R"({"a":{"b":[{"c":1,"c":1}]}})"), "claims: duplicate member \"c\"");
  EXPECT_EQ(Error(R"({"":1,"":2})"), "claims: duplicate member \"\"");
  EXPECT_EQ(Error(std::string(R"({"a\u0000":1,"a\u0000":2})")), std::string("claims: duplicate member \"a\0\"", 29));
  // Equal names in different objects are not duplicates.
  auto r = ParseJsonObject(R"({"a":{"a":1},"b":[{"a":1},{"a":2}]})", "claims");
  EXPECT_TRUE(r.ok()) << r.status().message();
  // Names differing only after an escaped NUL are distinct.
  r = ParseJsonObject(R"({"a\u0000b":1,"a\u0000c":2})", "claims");
  EXPECT_TRUE(r.ok()) << r.status().message();
}

TEST(JsonUtilSaxTest, DuplicateIsReportedAtItsNameBeforeTheValueIsRead) {
  EXPECT_EQ(Error(R"({"a":1,"a":})"), "claims: duplicate member \"a\"");
  EXPECT_EQ(Error(R"({"a":1,"a":)" + std::string(40, '[') + "}"), "claims: duplicate member \"a\"");
}

TEST(JsonUtilSaxTest, DepthLimitIs32Levels) {
  EXPECT_TRUE(ParseJsonObject(Nested(31), "claims").ok());
  EXPECT_EQ(Error(Nested(32)), "claims: nested too deeply");
  EXPECT_EQ(Error(Nested(100)), "claims: nested too deeply");
  std::string objects;
  for (int i = 0; i < 32; ++i) objects += "{\"k\":";
  EXPECT_TRUE(ParseJsonObject(objects + "1" + std::string(32, '}'), "claims").ok());
  objects += "{\"k\":";
  EXPECT_EQ(Error(objects + "1" + std::string(33, '}')), "claims: nested too deeply");
  // Arrays at the top level count too, and the depth is reported before the syntax error.
  EXPECT_EQ(Error(std::string(33, '[')), "claims: nested too deeply");
  EXPECT_EQ(Error("{\"x\":" + std::string(40, '[') + "1,\"x\":1"), "claims: nested too deeply");
}

// What nlohmann::json::parse says about `input`, without its "[json.exception.parse_error.N] " id.
std::string NlohmannMessageWithoutId(const std::string& input) {
  try {
    (void)nlohmann::json::parse(input);
  } catch (const nlohmann::json::parse_error& e) {
    const std::string what = e.what();
    const auto end = what.find("] ");
    return end == std::string::npos ? what : what.substr(end + 2);
  }
  return "(parsed)";
}

TEST(JsonUtilSaxTest, SyntaxErrorsKeepNlohmannsMessageWithoutTheExceptionId) {
  EXPECT_EQ(Error(R"({"a":1}x)"),
            "claims: invalid JSON: parse error at line 1, column 8: syntax error while parsing value - invalid "
            "literal; last read: '1}x'; expected end of input");
  // nlohmann's wording for an empty input differs between 3.11.2 (Debian 12) and 3.11.3 (Debian 13):
  // the oracle is nlohmann itself, with the exception id removed.
  EXPECT_EQ(Error(""), "claims: invalid JSON: " + NlohmannMessageWithoutId(""));
  EXPECT_EQ(Error("{\"a\":\"\xff\"}"),
            "claims: invalid JSON: parse error at line 1, column 7: syntax error while parsing value - invalid string: "
            "ill-formed UTF-8 byte; last read: '\"\xff'");
  EXPECT_EQ(Error(R"({"a":1e999})"), "claims: invalid JSON: number overflow parsing '1e999'");
  EXPECT_NE(Error(R"({"a":1 /* comment */})").find("claims: invalid JSON: parse error"), std::string::npos);
  EXPECT_NE(Error(R"({"a":1,})").find("claims: invalid JSON: parse error"), std::string::npos);
}

TEST(JsonUtilSaxTest, NonObjectsAreRefusedAfterParsing) {
  EXPECT_EQ(Error("[1]"), "claims: not a JSON object");
  EXPECT_EQ(Error("1"), "claims: not a JSON object");
  EXPECT_EQ(Error("\"s\""), "claims: not a JSON object");
  EXPECT_EQ(Error("null"), "claims: not a JSON object");
  // A syntax error in a non-object is still a syntax error.
  EXPECT_NE(Error("[1,]").find("claims: invalid JSON: parse error"), std::string::npos);
}

TEST(JsonUtilSaxTest, WhatPrefixesEveryMessage) {
  auto r = ParseJsonObject(R"({"a":1,"a":2})", "header");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "header: duplicate member \"a\"");
}

}  // namespace
}  // namespace kubehsm::jwt
