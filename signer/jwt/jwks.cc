#include "signer/jwt/jwks.h"

#include <set>
#include <utility>

#include <nlohmann/json.hpp>
#include <openssl/core_names.h>
#include <openssl/x509.h>

#include "common/openssl_error.h"
#include "common/ssl_ptr.h"
#include "common/base64.h"
#include "signer/jwt/json_util.h"
#include "signer/signing_key.h"

namespace kubehsm::jwt {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;

std::string_view JwkCurve(KeyType t) {
  switch (t) {
    case KeyType::kEcP256: return "P-256";
    case KeyType::kEcP384: return "P-384";
    case KeyType::kEcP521: return "P-521";
    default: return "";
  }
}

int CoordinateSize(KeyType t) { return static_cast<int>(EcdsaRawSignatureSize(t) / 2); }

Result<std::string> BnParam(const EVP_PKEY* key, const char* name, int pad_to) {
  BIGNUM* raw = nullptr;
  if (EVP_PKEY_get_bn_param(key, name, &raw) != 1) return OpenSslError(std::string("reading key parameter ") + name);
  BigNumPtr bn(raw);
  const int len = pad_to > 0 ? pad_to : BN_num_bytes(bn.get());
  std::string out(static_cast<std::size_t>(len), '\0');
  if (BN_bn2binpad(bn.get(), reinterpret_cast<unsigned char*>(out.data()), len) != len) {
    return OpenSslError(std::string("encoding key parameter ") + name);
  }
  return out;
}

Result<ordered_json> Jwk(const PublishedKey& pk) {
  KH_ASSIGN_OR_RETURN(EvpPkeyPtr key, signer::ParseSpkiDer(pk.spki_der));
  KH_ASSIGN_OR_RETURN(KeyType type, signer::KeyTypeOf(key.get()));
  ordered_json j;
  j["use"] = "sig";
  j["kty"] = IsRsa(type) ? "RSA" : "EC";
  j["kid"] = pk.kid;
  if (!IsRsa(type)) j["crv"] = std::string(JwkCurve(type));
  j["alg"] = std::string(JwsAlgorithmName(JwsAlgorithmFor(type)));
  if (IsRsa(type)) {
    KH_ASSIGN_OR_RETURN(std::string n, BnParam(key.get(), OSSL_PKEY_PARAM_RSA_N, 0));
    KH_ASSIGN_OR_RETURN(std::string e, BnParam(key.get(), OSSL_PKEY_PARAM_RSA_E, 0));
    j["n"] = Base64UrlEncode(n);
    j["e"] = Base64UrlEncode(e);
  } else {
    KH_ASSIGN_OR_RETURN(std::string x, BnParam(key.get(), OSSL_PKEY_PARAM_EC_PUB_X, CoordinateSize(type)));
    KH_ASSIGN_OR_RETURN(std::string y, BnParam(key.get(), OSSL_PKEY_PARAM_EC_PUB_Y, CoordinateSize(type)));
    j["x"] = Base64UrlEncode(x);
    j["y"] = Base64UrlEncode(y);
  }
  return j;
}

Result<std::string> Dump(const ordered_json& j) {
  try {
    return j.dump(-1, ' ', false, ordered_json::error_handler_t::strict);
  } catch (const ordered_json::exception&) {
    return InvalidArgument("a string is not valid UTF-8");
  }
}

Status ValidateHttpsUrl(std::string_view what, std::string_view url) {
  constexpr std::string_view kScheme = "https://";
  if (url.substr(0, kScheme.size()) != kScheme) return InvalidArgument(std::string(what) + " must be an https:// URL");
  const std::string_view rest = url.substr(kScheme.size());
  const std::size_t host_end = rest.find('/');
  if (rest.empty() || host_end == 0) return InvalidArgument(std::string(what) + " has no host");
  if (url.find('?') != std::string_view::npos) return InvalidArgument(std::string(what) + " must not have a query");
  if (url.find('#') != std::string_view::npos) return InvalidArgument(std::string(what) + " must not have a fragment");
  for (unsigned char c : url) {
    if (c <= 0x20 || c == 0x7f) return InvalidArgument(std::string(what) + " contains whitespace or control characters");
  }
  return OkStatus();
}

// Decodes a base64url JWK member.
Result<std::string> Member(const json& jwk, const char* name) {
  if (!jwk.contains(name) || !jwk[name].is_string()) {
    return InvalidArgument(std::string("JWK member \"") + name + "\" missing or not a string");
  }
  auto v = Base64UrlDecode(jwk[name].get<std::string>());
  if (!v.ok()) return v.status().WithContext(std::string("JWK member \"") + name + "\"");
  if (v->empty()) return InvalidArgument(std::string("JWK member \"") + name + "\" is empty");
  return v;
}

// Builds an EVP_PKEY from parameters and returns its SPKI DER.
Result<std::string> SpkiFromParams(const char* keytype, OSSL_PARAM* params) {
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, keytype, "provider=default"));
  if (!ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1) return OpenSslError("EVP_PKEY_fromdata_init");
  EVP_PKEY* raw = nullptr;
  if (EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params) != 1) {
    return OpenSslError(StatusCode::kInvalidArgument, "building a public key from the JWK");
  }
  EvpPkeyPtr key(raw);
  const int len = i2d_PUBKEY(key.get(), nullptr);
  if (len <= 0) return OpenSslError(StatusCode::kInvalidArgument, "encoding the JWK's public key");
  std::string der(static_cast<std::size_t>(len), '\0');
  auto* p = reinterpret_cast<unsigned char*>(der.data());
  if (i2d_PUBKEY(key.get(), &p) != len) return OpenSslError("encoding the JWK's public key");
  return der;
}

Result<std::string> RsaSpki(const json& jwk) {
  KH_ASSIGN_OR_RETURN(std::string n, Member(jwk, "n"));
  KH_ASSIGN_OR_RETURN(std::string e, Member(jwk, "e"));
  if (e.size() > 8) return InvalidArgument("RSA exponent too large");
  BigNumPtr bn_n(BN_bin2bn(reinterpret_cast<const unsigned char*>(n.data()), static_cast<int>(n.size()), nullptr));
  BigNumPtr bn_e(BN_bin2bn(reinterpret_cast<const unsigned char*>(e.data()), static_cast<int>(e.size()), nullptr));
  OsslParamBldPtr bld(OSSL_PARAM_BLD_new());
  if (!bn_n || !bn_e || !bld) return OpenSslError("allocating RSA parameters");
  if (OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get()) != 1) {
    return OpenSslError("building RSA parameters");
  }
  OsslParamPtr params(OSSL_PARAM_BLD_to_param(bld.get()));
  if (!params) return OpenSslError("building RSA parameters");
  return SpkiFromParams("RSA", params.get());
}

Result<std::string> EcSpki(const json& jwk) {
  if (!jwk.contains("crv") || !jwk["crv"].is_string()) return InvalidArgument("EC JWK without \"crv\"");
  const std::string crv = jwk["crv"].get<std::string>();
  KeyType type;
  if (crv == "P-256") {
    type = KeyType::kEcP256;
  } else if (crv == "P-384") {
    type = KeyType::kEcP384;
  } else if (crv == "P-521") {
    type = KeyType::kEcP521;
  } else {
    return InvalidArgument("unsupported EC curve \"" + crv + "\"");
  }
  KH_ASSIGN_OR_RETURN(std::string x, Member(jwk, "x"));
  KH_ASSIGN_OR_RETURN(std::string y, Member(jwk, "y"));
  const auto size = static_cast<std::size_t>(CoordinateSize(type));
  if (x.size() != size || y.size() != size) {
    return InvalidArgument("EC JWK coordinates must be exactly " + std::to_string(size) + " bytes for " + crv);
  }
  std::string point = "\x04" + x + y;  // SEC 1 uncompressed point
  const std::string group(EcGroupName(type));
  OsslParamBldPtr bld(OSSL_PARAM_BLD_new());
  if (!bld) return OpenSslError("allocating EC parameters");
  if (OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, group.c_str(), 0) != 1 ||
      OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size()) != 1) {
    return OpenSslError("building EC parameters");
  }
  OsslParamPtr params(OSSL_PARAM_BLD_to_param(bld.get()));
  if (!params) return OpenSslError("building EC parameters");
  return SpkiFromParams("EC", params.get());
}

}  // namespace

Result<std::string> RenderJwks(const std::vector<PublishedKey>& keys) {
  if (keys.empty()) return FailedPrecondition("no keys to publish");
  ordered_json doc;
  doc["keys"] = ordered_json::array();
  for (const auto& k : keys) {
    auto jwk = Jwk(k);
    if (!jwk.ok()) return jwk.status().WithContext("key " + k.kid);
    doc["keys"].push_back(std::move(*jwk));
  }
  return Dump(doc);
}

Status ValidateDiscoveryIssuer(std::string_view issuer) { return ValidateHttpsUrl("issuer", issuer); }

std::string DefaultJwksUri(std::string_view issuer) {
  std::string base(issuer);
  while (!base.empty() && base.back() == '/') base.pop_back();
  return base + "/openid/v1/jwks";
}

Result<std::string> RenderDiscovery(std::string_view issuer, std::string_view jwks_uri,
                                    const std::vector<PublishedKey>& keys) {
  KH_RETURN_IF_ERROR(ValidateDiscoveryIssuer(issuer));
  KH_RETURN_IF_ERROR(ValidateHttpsUrl("jwks_uri", jwks_uri));
  if (keys.empty()) return FailedPrecondition("no keys to publish");
  std::set<std::string> algs;
  for (const auto& k : keys) {
    KH_ASSIGN_OR_RETURN(EvpPkeyPtr key, signer::ParseSpkiDer(k.spki_der));
    KH_ASSIGN_OR_RETURN(KeyType type, signer::KeyTypeOf(key.get()));
    algs.insert(std::string(JwsAlgorithmName(JwsAlgorithmFor(type))));
  }
  ordered_json doc;
  doc["issuer"] = std::string(issuer);
  doc["jwks_uri"] = std::string(jwks_uri);
  doc["response_types_supported"] = {"id_token"};
  doc["subject_types_supported"] = {"public"};
  doc["id_token_signing_alg_values_supported"] = ordered_json::array();
  for (const auto& a : algs) doc["id_token_signing_alg_values_supported"].push_back(a);
  return Dump(doc);
}

Result<std::vector<VerificationKey>> ParseJwks(std::string_view json_text) {
  KH_ASSIGN_OR_RETURN(json doc, internal::ParseJsonObject(json_text, "JWKS"));
  if (!doc.contains("keys") || !doc["keys"].is_array()) return InvalidArgument("JWKS: \"keys\" must be an array");
  std::vector<VerificationKey> out;
  std::size_t index = 0;
  for (const auto& jwk : doc["keys"]) {
    const std::string where = "JWKS key " + std::to_string(index++);
    if (!jwk.is_object()) return InvalidArgument(where + ": not an object");
    if (jwk.contains("use") && (!jwk["use"].is_string() || jwk["use"].get<std::string>() != "sig")) continue;
    if (!jwk.contains("kty") || !jwk["kty"].is_string()) return InvalidArgument(where + ": no \"kty\"");
    const std::string kty = jwk["kty"].get<std::string>();
    Result<std::string> spki = InvalidArgument("unset");
    if (kty == "RSA") {
      spki = RsaSpki(jwk);
    } else if (kty == "EC") {
      spki = EcSpki(jwk);
    } else {
      continue;  // OKP, oct, ...: not usable for service-account tokens
    }
    if (!spki.ok()) return spki.status().WithContext(where);
    std::string kid;
    if (jwk.contains("kid")) {
      if (!jwk["kid"].is_string()) return InvalidArgument(where + ": \"kid\" must be a string");
      kid = jwk["kid"].get<std::string>();
    }
    auto key = VerificationKeyFromSpki(*spki, kid);
    if (!key.ok()) return key.status().WithContext(where);
    out.push_back(std::move(*key));
  }
  if (out.empty()) return InvalidArgument("JWKS has no usable RSA or EC signing key");
  return out;
}

}  // namespace kubehsm::jwt
