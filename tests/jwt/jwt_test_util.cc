#include "tests/jwt/jwt_test_util.h"

#include <gtest/gtest.h>
#include <openssl/pem.h>

#include "common/base64.h"
#include "common/ssl_ptr.h"
#include "signer/jwt/jws.h"
#include "tests/support/test_env.h"

namespace kubehsm::jwt::testing {

BoundTokenRequest PodBoundRequest() {
  BoundTokenRequest r;
  r.issuer = kIssuer;
  r.audiences = {"https://kubernetes.default.svc.cluster.local", "vault"};
  r.namespace_name = "default";
  r.service_account_name = "builder";
  r.service_account_uid = "0b1f5b6e-2f60-4a3c-9d0e-111111111111";
  r.pod = ObjectRef{"builder-7d9f", "2c3d4e5f-0000-4000-8000-222222222222"};
  r.node = ObjectRef{"worker-1", "3d4e5f60-0000-4000-8000-333333333333"};
  return r;
}

std::string SpkiToPem(const std::string& spki_der) {
  auto key = signer::ParseSpkiDer(spki_der);
  EXPECT_TRUE(key.ok());
  BioPtr bio(BIO_new(BIO_s_mem()));
  EXPECT_EQ(PEM_write_bio_PUBKEY(bio.get(), key->get()), 1);
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(len));
}

std::string CraftToken(const std::string& header_json, const std::string& payload_json, const signer::SigningKey& key) {
  const std::string input = Base64UrlEncode(header_json) + "." + Base64UrlEncode(payload_json);
  auto sig = key.Sign(input);
  EXPECT_TRUE(sig.ok());
  std::string raw = *sig;
  if (!IsRsa(key.type())) {
    auto r = EcdsaDerToRaw(*sig, key.type());
    EXPECT_TRUE(r.ok());
    raw = *r;
  }
  return input + "." + Base64UrlEncode(raw);
}

std::string ChangeCharAt(std::string token, std::size_t pos) {
  token[pos] = token[pos] == 'A' ? 'B' : 'A';
  return token;
}

int PyJwtVerify(const std::string& token, const std::string& jwks_json, const std::string& issuer,
                const std::string& audience, std::string* output) {
  kubehsm::testing::TempDir dir;
  kubehsm::testing::WriteTestFile(dir.path() / "token", token);
  kubehsm::testing::WriteTestFile(dir.path() / "jwks.json", jwks_json);
  const auto script = kubehsm::testing::SourceDir() / "tests/jwt/pyjwt_verify.py";
  auto r = kubehsm::testing::RunProcess({"/usr/bin/python3", script.string(), (dir.path() / "token").string(),
                                         (dir.path() / "jwks.json").string(), issuer, audience});
  if (output != nullptr) *output += r.out + r.err;
  return r.exit_code;
}

}  // namespace kubehsm::jwt::testing
