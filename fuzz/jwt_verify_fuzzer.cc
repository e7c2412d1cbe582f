// signer/jwt/verify.h VerifyServiceAccountToken: tokens from the network (`sa verify`).
// Two input shapes:
//  - a compact token (anything not starting with '{'): verified against the fixed RSA and EC keys.
//    Acceptance must be backed by an independent OpenSSL check of the signature over the exact
//    signing input, so a random or mutated token is never OK.
//  - a claims document ('{...}'): signed here with the fixed EC key (a genuine signature, so the
//    checks after the signature stage are reached), then verified. The outcome must not be a
//    signature-stage refusal; an OK result must satisfy every claim rule; and the same token with
//    one signature or payload character changed must not verify.
// In every OK result: the issuer and audiences are accepted ones, the time claims hold with the
// leeway, and the username is system:serviceaccount:<namespace>:<name>.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>

#include "common/base64.h"
#include "fuzz/fuzz_util.h"
#include "signer/jwt/jws.h"
#include "signer/jwt/kid.h"
#include "signer/jwt/verify.h"

namespace {

using kubehsm::jwt::TokenError;
using kubehsm::jwt::VerificationKey;
using kubehsm::jwt::VerifyOptions;
using kubehsm::jwt::VerifyResult;

constexpr int64_t kNow = 1767225600;  // 2026-01-01T00:00:00Z; seed tokens are valid then
constexpr char kIssuer[] = "https://kubernetes.default.svc.cluster.local";

struct Fixture {
  kubehsm::signer::SigningKey ec = kubehsm::fuzz::LoadFixedKey(kubehsm::fuzz::kEcP256KeyPem);
  kubehsm::signer::SigningKey rsa = kubehsm::fuzz::LoadFixedKey(kubehsm::fuzz::kRsa2048KeyPem);
  std::string ec_kid = kubehsm::jwt::KidFromSpki(ec.spki_der()).value();
  std::vector<VerificationKey> keys;
  VerifyOptions options;

  Fixture() {
    keys.push_back(kubehsm::jwt::VerificationKeyFromSpki(rsa.spki_der()).value());
    keys.push_back(kubehsm::jwt::VerificationKeyFromSpki(ec.spki_der()).value());
    options.issuers = {kIssuer, "https://other.example"};
    options.audiences = {"vault", kIssuer};
    options.now = kNow;
  }
};

Fixture& F() {
  static Fixture* f = new Fixture;  // lives for the process
  return *f;
}

// The signature check done with plain OpenSSL, independent of signer/ and jwt/: true when the
// token's third segment is a valid `alg` signature over its first two by one of the fixed keys.
bool IndependentlyVerifies(std::string_view token, kubehsm::jwt::JwsAlgorithm alg) {
  const std::size_t dot2 = token.rfind('.');
  const std::string_view input = token.substr(0, dot2);
  auto sig = kubehsm::Base64UrlDecode(token.substr(dot2 + 1));
  if (!sig.ok()) return false;
  const bool ec = alg == kubehsm::jwt::JwsAlgorithm::kEs256;
  if (!ec && alg != kubehsm::jwt::JwsAlgorithm::kRs256) return false;  // no fixed key for ES384/ES512
  std::string der = *sig;
  if (ec) {
    if (sig->size() != 64) return false;
    const auto* raw = reinterpret_cast<const unsigned char*>(sig->data());
    kubehsm::EcdsaSigPtr s(ECDSA_SIG_new());
    BIGNUM* r = BN_bin2bn(raw, 32, nullptr);
    BIGNUM* ss = BN_bin2bn(raw + 32, 32, nullptr);
    if (!s || !r || !ss || ECDSA_SIG_set0(s.get(), r, ss) != 1) return false;
    unsigned char* out = nullptr;
    const int n = i2d_ECDSA_SIG(s.get(), &out);
    if (n <= 0) return false;
    der.assign(reinterpret_cast<const char*>(out), static_cast<std::size_t>(n));
    OPENSSL_free(out);
  }
  EVP_PKEY* pub = ec ? F().ec.public_key() : F().rsa.public_key();
  kubehsm::EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  return ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, pub) == 1 &&
         EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(der.data()), der.size(),
                          reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
}

bool Contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

void CheckAccepted(const VerifyResult& r) {
  const auto& id = r.identity;
  const auto& o = F().options;
  KH_FUZZ_CHECK(Contains(o.issuers, id.issuer), "accepted issuer " + id.issuer);
  KH_FUZZ_CHECK(!id.audiences.empty(), "accepted without an audience");
  for (const auto& a : id.audiences) KH_FUZZ_CHECK(Contains(o.audiences, a), "accepted audience " + a);
  KH_FUZZ_CHECK(!id.namespace_name.empty() && !id.service_account_name.empty(), "accepted without a subject");
  KH_FUZZ_CHECK(id.username == "system:serviceaccount:" + id.namespace_name + ":" + id.service_account_name,
                "username " + id.username);
  if (id.expires_at) KH_FUZZ_CHECK(o.now - o.leeway_seconds <= *id.expires_at, "accepted an expired token");
  if (id.not_before) KH_FUZZ_CHECK(o.now + o.leeway_seconds >= *id.not_before, "accepted a token before nbf");
  if (id.issued_at) KH_FUZZ_CHECK(o.now + o.leeway_seconds >= *id.issued_at, "accepted a token issued in the future");
}

// Replaces the character at `pos` by another base64url character.
std::string ChangeAt(std::string s, std::size_t pos) {
  s[pos] = s[pos] == 'A' ? 'B' : 'A';
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text = kubehsm::fuzz::AsText(data, size);
  Fixture& f = F();

  if (text.empty() || text.front() != '{') {
    const VerifyResult r = VerifyServiceAccountToken(text, f.keys, f.options);
    if (r.ok()) {
      KH_FUZZ_CHECK(IndependentlyVerifies(text, r.identity.algorithm), "accepted a token OpenSSL does not verify");
      CheckAccepted(r);
    } else {
      KH_FUZZ_CHECK(!r.message.empty(), "refusal without a message");
    }
    return 0;
  }

  auto token = kubehsm::jwt::SignCompact(f.ec, f.ec_kid, text);
  if (!token.ok()) return 0;  // not a JSON object: SignCompact refuses, covered by the claims target
  const VerifyResult r = VerifyServiceAccountToken(*token, f.keys, f.options);
  KH_FUZZ_CHECK(r.error != TokenError::kInvalidSignature && r.error != TokenError::kUnknownKid &&
                    r.error != TokenError::kAlgorithmKeyMismatch && r.error != TokenError::kDisallowedAlgorithm,
                "a genuine ES256 token was refused at the signature stage: " + r.message);
  if (!r.ok()) return 0;
  CheckAccepted(r);
  KH_FUZZ_CHECK(r.identity.kid == f.ec_kid, "verified by the wrong key");
  const std::size_t dot1 = token->find('.'), dot2 = token->rfind('.');
  for (std::size_t pos : {dot2 + 1, dot1 + 1, dot2 - 1}) {
    const VerifyResult t = VerifyServiceAccountToken(ChangeAt(*token, pos), f.keys, f.options);
    KH_FUZZ_CHECK(!t.ok(), "a tampered token verifies (position " + std::to_string(pos) + ")");
  }
  return 0;
}
