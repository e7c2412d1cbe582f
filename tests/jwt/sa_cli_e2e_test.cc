// The kubehsm binary as a user runs it: `kubehsm sa ...` against a fresh SoftHSM token (keys
// generated in the token through the real token store), tokens cross-checked with PyJWT.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/base64.h"
#include "tests/jwt/jwt_test_util.h"
#include "tests/support/test_env.h"

namespace kubehsm::jwt {
namespace {

using kubehsm::testing::KubehsmBinary;
using kubehsm::testing::ProcessResult;
using kubehsm::testing::ReadTestFile;
using kubehsm::testing::RunProcess;
using kubehsm::testing::SoftHsmToken;
using kubehsm::testing::TempDir;
using kubehsm::testing::WriteTestFile;

constexpr char kIss[] = "https://kubernetes.default.svc.cluster.local";

class SaCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    token_ = std::make_unique<SoftHsmToken>("sa-cli-test");
    token_->WriteKubehsmConfig();
  }

  ProcessResult Kubehsm(std::vector<std::string> args, const std::string& stdin_data = "") {
    args.insert(args.begin(), KubehsmBinary().string());
    return RunProcess(args, token_->ChildEnv(), stdin_data);
  }

  // Creates a key of `type` and makes it active (forced: the test does not wait an hour).
  std::string ActiveKey(const std::string& type) {
    auto rotate = Kubehsm({"sa", "rotate", "--type", type});
    EXPECT_EQ(rotate.exit_code, 0) << rotate.err;
    auto activate = Kubehsm({"sa", "activate", "--force"});
    EXPECT_EQ(activate.exit_code, 0) << activate.err;
    return KidOfActive();
  }

  std::string KidOfActive() {
    auto list = Kubehsm({"sa", "list", "-o", "json"});
    EXPECT_EQ(list.exit_code, 0) << list.err;
    for (const auto& k : nlohmann::json::parse(list.out)) {
      if (k["state"] == "active") return k["kid"];
    }
    return "";
  }

  std::string Sign(std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"sa", "sign", "--issuer", kIss, "--namespace", "default", "--service-account",
                                  "builder", "--uid", "u-1", "--pod-name", "builder-1", "--pod-uid", "p-1",
                                  "--audience", "vault"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = Kubehsm(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::string token = r.out;
    while (!token.empty() && token.back() == '\n') token.pop_back();
    return token;
  }

  static std::string HeaderKid(const std::string& token) {
    return nlohmann::json::parse(Base64UrlDecode(token.substr(0, token.find('.'))).value())["kid"];
  }

  std::unique_ptr<SoftHsmToken> token_;
};

TEST_F(SaCliTest, TokenFromTheTokenKeyVerifiesWithPyJwtForEveryAlgorithm) {
  for (const char* type : {"rsa-2048", "ecdsa-p256", "ecdsa-p384", "ecdsa-p521"}) {
    const std::string kid = ActiveKey(type);
    const std::string token = Sign();
    EXPECT_EQ(HeaderKid(token), kid);
    auto jwks = Kubehsm({"sa", "jwks"});
    ASSERT_EQ(jwks.exit_code, 0) << jwks.err;
    std::string out;
    EXPECT_EQ(testing::PyJwtVerify(token, jwks.out, kIss, "vault", &out), 0) << type << ": " << out;
    const std::size_t d2 = token.rfind('.');
    EXPECT_NE(testing::PyJwtVerify(testing::ChangeCharAt(token, d2 + (token.size() - d2) / 2), jwks.out, kIss, "vault"), 0);
    // Retire nothing: the next loop's activation retires this key, which stays published.
  }
  auto list = Kubehsm({"sa", "list", "-o", "json"});
  EXPECT_EQ(nlohmann::json::parse(list.out).size(), 4u);
}

TEST_F(SaCliTest, VerifyPrintsIdentity) {
  ActiveKey("ecdsa-p256");
  const std::string token = Sign();
  auto text = Kubehsm({"sa", "verify", "--issuer", kIss, "--audience", "vault"}, token + "\n");
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("user: system:serviceaccount:default:builder\n"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("extra: authentication.kubernetes.io/pod-name=builder-1\n"), std::string::npos);
  auto json = Kubehsm({"sa", "verify", "--issuer", kIss, "--audience", "vault", "-o", "json"}, token);
  ASSERT_EQ(json.exit_code, 0) << json.err;
  const auto id = nlohmann::json::parse(json.out);
  EXPECT_EQ(id["user"]["groups"], nlohmann::json({"system:serviceaccounts", "system:serviceaccounts:default",
                                                  "system:authenticated"}));
  EXPECT_EQ(id["user"]["extra"]["authentication.kubernetes.io/pod-uid"], nlohmann::json({"p-1"}));
  EXPECT_EQ(id["user"]["extra"]["authentication.kubernetes.io/credential-id"][0].get<std::string>().rfind("JTI=", 0), 0u);
}

TEST_F(SaCliTest, VerifyExitCodesAreDistinct) {
  ActiveKey("rsa-2048");
  TempDir dir;
  const std::string token = Sign();
  WriteTestFile(dir.path() / "token", token + "\n");
  const std::string tf = (dir.path() / "token").string();
  EXPECT_EQ(Kubehsm({"sa", "verify", "--issuer", kIss, "--audience", "vault", "--token-file", tf}).exit_code, 0);
  EXPECT_EQ(Kubehsm({"sa", "verify", "--issuer", "https://other.example", tf}).exit_code, 13);
  EXPECT_EQ(Kubehsm({"sa", "verify", "--issuer", kIss, "--audience", "other", tf}).exit_code, 14);
  EXPECT_EQ(Kubehsm({"sa", "verify", "--issuer", kIss}, "not.a-token").exit_code, 10);
  const std::size_t d2 = token.rfind('.');
  EXPECT_EQ(Kubehsm({"sa", "verify", "--issuer", kIss, "--audience", "vault"},
                    testing::ChangeCharAt(token, d2 + (token.size() - d2) / 2))
                .exit_code,
            11);
  // Expired: mint with a claims file whose exp is long past.
  WriteTestFile(dir.path() / "claims.json",
                R"({"iss":")" + std::string(kIss) + R"(","sub":"system:serviceaccount:default:old","aud":["vault"],)"
                R"("iat":1000000000,"nbf":1000000000,"exp":1000003600,)"
                R"("kubernetes.io":{"namespace":"default","serviceaccount":{"name":"old","uid":"u"}}})");
  auto expired = Kubehsm({"sa", "sign", "--claims", (dir.path() / "claims.json").string()});
  ASSERT_EQ(expired.exit_code, 0) << expired.err;
  auto r = Kubehsm({"sa", "verify", "--issuer", kIss, "--audience", "vault"}, expired.out);
  EXPECT_EQ(r.exit_code, 12) << r.err;
  EXPECT_NE(r.err.find("expired"), std::string::npos);
  // Unknown kid: verify against some other public key.
  auto gen = RunProcess({"openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out",
                         (dir.path() / "other.key").string()});
  ASSERT_EQ(gen.exit_code, 0) << gen.err;
  ASSERT_EQ(RunProcess({"openssl", "pkey", "-in", (dir.path() / "other.key").string(), "-pubout", "-out",
                        (dir.path() / "other.pub").string()})
                .exit_code,
            0);
  EXPECT_EQ(Kubehsm({"sa", "verify", "--issuer", kIss, "--audience", "vault", "--public-key",
                     (dir.path() / "other.pub").string(), tf})
                .exit_code,
            11);
  auto help = Kubehsm({"sa", "verify", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  for (const char* code : {"  10  ", "  11  ", "  12  ", "  13  ", "  14  "}) {
    EXPECT_NE(help.out.find(code), std::string::npos) << code;
  }
}

TEST_F(SaCliTest, RotationKeepsOldTokensAndSwitchesKid) {
  const std::string old_kid = ActiveKey("rsa-2048");
  const std::string old_token = Sign();
  auto rotate = Kubehsm({"sa", "rotate", "--type", "ecdsa-p256"});
  ASSERT_EQ(rotate.exit_code, 0) << rotate.err;
  auto early = Kubehsm({"sa", "activate"});
  EXPECT_EQ(early.exit_code, 2);
  EXPECT_NE(early.err.find("--force"), std::string::npos) << early.err;
  EXPECT_EQ(KidOfActive(), old_kid);  // still signing with the old key
  auto jwks_before = nlohmann::json::parse(Kubehsm({"sa", "jwks"}).out);
  EXPECT_EQ(jwks_before["keys"].size(), 2u);  // next key already published

  ASSERT_EQ(Kubehsm({"sa", "activate", "--min-published", "0s"}).exit_code, 0);
  const std::string new_kid = KidOfActive();
  EXPECT_NE(new_kid, old_kid);
  const std::string new_token = Sign();
  EXPECT_EQ(HeaderKid(new_token), new_kid);
  for (const auto& t : {old_token, new_token}) {
    auto v = Kubehsm({"sa", "verify", "--issuer", kIss, "--audience", "vault"}, t);
    EXPECT_EQ(v.exit_code, 0) << v.err;
  }
  std::vector<std::string> kids;
  const auto jwks_after = nlohmann::json::parse(Kubehsm({"sa", "jwks"}).out);
  for (const auto& k : jwks_after["keys"]) kids.push_back(k["kid"]);
  std::sort(kids.begin(), kids.end());
  std::vector<std::string> want{old_kid, new_kid};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(kids, want);

  // Guards: the only active key cannot be retired; the fresh retiree cannot be removed yet.
  // kids are base64url and may start with '-': pass them as --key=KID, never as a bare word.
  EXPECT_EQ(Kubehsm({"sa", "retire", "--key=" + new_kid}).exit_code, 2);
  EXPECT_EQ(Kubehsm({"sa", "remove", "--key=" + old_kid}).exit_code, 2);
  ASSERT_EQ(Kubehsm({"sa", "remove", "--min-retired", "0", "--key=" + old_kid.substr(0, 10)}).exit_code, 0);
  EXPECT_EQ(nlohmann::json::parse(Kubehsm({"sa", "jwks"}).out)["keys"].size(), 1u);
  EXPECT_EQ(Kubehsm({"sa", "verify", "--issuer", kIss, "--audience", "vault"}, old_token).exit_code, 11);
}

TEST_F(SaCliTest, ImportPublicPublishesUnderOpensslDerivedKid) {
  ActiveKey("ecdsa-p256");
  TempDir dir;
  ASSERT_EQ(RunProcess({"openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out",
                        (dir.path() / "sa.key").string()})
                .exit_code,
            0);
  ASSERT_EQ(RunProcess({"openssl", "pkey", "-in", (dir.path() / "sa.key").string(), "-pubout", "-out",
                        (dir.path() / "sa.pub").string()})
                .exit_code,
            0);
  auto kid = RunProcess({"/bin/sh", "-c",
                         "openssl pkey -pubin -in \"$0\" -outform DER | openssl dgst -sha256 -binary | base64 | "
                         "tr '+/' '-_' | tr -d '='",
                         (dir.path() / "sa.pub").string()});
  ASSERT_EQ(kid.exit_code, 0);
  kid.out.erase(kid.out.find_last_not_of("\r\n") + 1);
  auto imp = Kubehsm({"sa", "import-public", "--public-key", (dir.path() / "sa.pub").string(),
                      "--confirm-key-outside-token", "--expires-in", "30d"});
  ASSERT_EQ(imp.exit_code, 0) << imp.err;
  EXPECT_NE(imp.out.find(kid.out), std::string::npos) << imp.out;
  bool found = false;
  for (const auto& k : nlohmann::json::parse(Kubehsm({"sa", "list", "-o", "json"}).out)) {
    if (k["kid"] == kid.out) {
      found = true;
      EXPECT_EQ(k["state"], "retired");
      EXPECT_EQ(k["private"], false);
    }
  }
  EXPECT_TRUE(found);
  EXPECT_NE(Kubehsm({"sa", "jwks"}).out.find("\"kid\":\"" + kid.out + "\""), std::string::npos);
  EXPECT_EQ(Kubehsm({"sa", "import-public", (dir.path() / "sa.pub").string(), "--confirm-key-outside-token",
                     "--expires-in", "30d"})
                .exit_code,
            2);  // already present
  EXPECT_EQ(Kubehsm({"sa", "activate", "--force", "--key=" + kid.out}).exit_code, 2);  // public only
}

TEST_F(SaCliTest, SignRefusesOversizedAndMalformedClaims) {
  ActiveKey("ecdsa-p256");
  TempDir dir;
  WriteTestFile(dir.path() / "big.json", "{\"pad\":\"" + std::string(70 * 1024, 'x') + "\"}");
  auto big = Kubehsm({"sa", "sign", "--claims", (dir.path() / "big.json").string()});
  EXPECT_EQ(big.exit_code, 2);
  EXPECT_EQ(big.out, "");
  EXPECT_NE(big.err.find("larger than"), std::string::npos) << big.err;
  WriteTestFile(dir.path() / "bad.json", "{\"iss\": \"x\",");
  auto bad = Kubehsm({"sa", "sign", "--claims", (dir.path() / "bad.json").string()});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("invalid JSON"), std::string::npos) << bad.err;
  EXPECT_EQ(std::count(bad.err.begin(), bad.err.end(), '\n'), 1) << bad.err;
}

TEST_F(SaCliTest, SignRefusesBadFlags) {
  ActiveKey("ecdsa-p256");
  const std::vector<std::string> base{"sa", "sign", "--issuer", kIss, "--namespace", "default", "--service-account",
                                      "builder", "--uid", "u"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> a = base;
    a.insert(a.end(), extra.begin(), extra.end());
    return Kubehsm(a);
  };
  EXPECT_EQ(with({"--pod-name", "p"}).exit_code, 1);
  EXPECT_EQ(with({"--expiration-seconds", "599"}).exit_code, 1);
  EXPECT_EQ(with({"--expiration-seconds", "4294967296"}).exit_code, 1);
  EXPECT_EQ(with({"--pod-name", "p", "--pod-uid", "1", "--secret-name", "s", "--secret-uid", "2"}).exit_code, 1);
  EXPECT_EQ(with({"--claims", "/dev/null"}).exit_code, 1);
  EXPECT_EQ(with({"--expiration-seconds", "600"}).exit_code, 0);
}

TEST_F(SaCliTest, DiscoveryDocumentFollowsKubeApiserver) {
  ActiveKey("ecdsa-p384");
  auto d = Kubehsm({"sa", "discovery", "--issuer", "https://issuer.example"});
  ASSERT_EQ(d.exit_code, 0) << d.err;
  EXPECT_EQ(d.out,
            R"({"issuer":"https://issuer.example","jwks_uri":"https://issuer.example/openid/v1/jwks",)"
            R"("response_types_supported":["id_token"],"subject_types_supported":["public"],)"
            R"("id_token_signing_alg_values_supported":["ES384"]})"
            "\n");
  EXPECT_EQ(Kubehsm({"sa", "discovery", "--issuer", "https://issuer.example?x=1"}).exit_code, 1);
}

}  // namespace
}  // namespace kubehsm::jwt
