#include "signer/jwt/sa_bundle.h"

#include <set>
#include <utility>

#include <openssl/x509.h>
#include <nlohmann/json.hpp>

#include "common/ssl_ptr.h"
#include "signer/jwt/json_util.h"
#include "signer/jwt/jwks.h"
#include "signer/jwt/jws.h"
#include "signer/jwt/kid.h"
#include "signer/jwt/verify.h"
#include "signer/signing_key.h"

namespace kubehsm::jwt {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;

// RFC 7518 §6.2.2 / §6.3.2 / §6.4: the members that carry private or symmetric key material.
constexpr const char* kPrivateMembers[] = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"};
// Every other member a bundle key may have.
const std::set<std::string>& AllowedMembers() {
  static const std::set<std::string> kAllowed = {"use", "kty", "kid", "crv",   "alg",  "n",
                                                 "e",   "x",   "y",   "state", "since"};
  return kAllowed;
}

Result<std::string> SpkiOf(const EVP_PKEY* key) {
  const int len = i2d_PUBKEY(key, nullptr);
  if (len <= 0) return Internal("encoding the bundle key as SubjectPublicKeyInfo");
  std::string der(static_cast<std::size_t>(len), '\0');
  auto* p = reinterpret_cast<unsigned char*>(der.data());
  if (i2d_PUBKEY(key, &p) != len) return Internal("encoding the bundle key as SubjectPublicKeyInfo");
  return der;
}

Result<SaBundleKey> ParseBundleKey(const json& jwk, const std::string& where) {
  if (!jwk.is_object()) return InvalidArgument(where + ": not an object");
  for (const char* m : kPrivateMembers) {
    if (jwk.contains(m)) {
      return InvalidArgument(where + " carries the private key member \"" + m +
                             "\": a bundle holds public keys only (treat that private key as exposed)");
    }
  }
  for (const auto& [name, value] : jwk.items()) {
    if (AllowedMembers().count(name) == 0) return InvalidArgument(where + ": unknown member \"" + name + "\"");
  }
  if (!jwk.contains("kid") || !jwk["kid"].is_string() || jwk["kid"].get<std::string>().empty()) {
    return InvalidArgument(where + ": \"kid\" missing or not a string");
  }
  if (!jwk.contains("use") || !jwk["use"].is_string() || jwk["use"].get<std::string>() != "sig") {
    return InvalidArgument(where + ": \"use\" must be \"sig\"");
  }
  if (!jwk.contains("kty") || !jwk["kty"].is_string() ||
      (jwk["kty"].get<std::string>() != "RSA" && jwk["kty"].get<std::string>() != "EC")) {
    return InvalidArgument(where + ": \"kty\" must be \"RSA\" or \"EC\"");
  }
  SaBundleKey out;
  out.kid = jwk["kid"].get<std::string>();
  if (!jwk.contains("state") || !jwk["state"].is_string()) return InvalidArgument(where + ": \"state\" missing");
  const std::string state = jwk["state"].get<std::string>();
  if (state == "active") {
    out.state = SaKeyState::kActive;
  } else if (state == "next") {
    out.state = SaKeyState::kNext;
  } else {
    return InvalidArgument(where + ": \"state\" must be \"active\" or \"next\", not \"" + state + "\"");
  }
  if (!jwk.contains("since") || !jwk["since"].is_number_integer() || jwk["since"].get<int64_t>() < 0) {
    return InvalidArgument(where + ": \"since\" must be a non-negative integer");
  }
  out.since = jwk["since"].get<int64_t>();
  // The key itself, through the JWKS parser every verifier here uses (coordinates, curve, RSA e).
  json one = json::object();
  one["keys"] = json::array({jwk});
  auto parsed = ParseJwks(one.dump());
  if (!parsed.ok()) return parsed.status().WithContext(where);
  if (parsed->size() != 1) return InvalidArgument(where + ": not a usable signing key");
  out.type = (*parsed)[0].type;
  KH_ASSIGN_OR_RETURN(out.spki_der, SpkiOf((*parsed)[0].public_key.get()));
  if (jwk.contains("alg")) {
    const std::string want(JwsAlgorithmName(JwsAlgorithmFor(out.type)));
    if (!jwk["alg"].is_string() || jwk["alg"].get<std::string>() != want) {
      return InvalidArgument(where + ": \"alg\" does not match the key (" + want + ")");
    }
  }
  return out;
}

}  // namespace

std::vector<SaKeyInfo> ExportableSaKeys(const std::vector<SaKeyInfo>& keys) {
  std::vector<SaKeyInfo> out;
  for (const auto& k : keys) {
    if (k.imported || !k.has_private) continue;
    if (k.state == SaKeyState::kActive || k.state == SaKeyState::kNext) out.push_back(k);
  }
  return out;
}

Result<std::string> RenderSaKeyBundle(const std::vector<SaKeyInfo>& keys, int64_t now) {
  if (keys.empty()) return FailedPrecondition("the token holds no active or next service-account key to export");
  std::vector<PublishedKey> published;
  for (const auto& k : keys) published.push_back({k.kid, k.spki_der});
  KH_ASSIGN_OR_RETURN(std::string jwks, RenderJwks(published));
  ordered_json rendered = ordered_json::parse(jwks, nullptr, /*allow_exceptions=*/false);
  if (!rendered.is_object() || !rendered.contains("keys") || rendered["keys"].size() != keys.size()) {
    return Internal("rendering the bundle's JWKS");
  }
  ordered_json doc;
  doc["format"] = std::string(kSaBundleFormat);
  doc["exported"] = now;
  doc["keys"] = ordered_json::array();
  for (std::size_t i = 0; i < keys.size(); ++i) {
    ordered_json jwk = rendered["keys"][i];
    jwk["state"] = std::string(SaKeyStateName(keys[i].state));
    jwk["since"] = keys[i].since;
    doc["keys"].push_back(std::move(jwk));
  }
  return doc.dump(2);
}

Result<std::vector<SaBundleKey>> ParseSaKeyBundle(std::string_view text) {
  KH_ASSIGN_OR_RETURN(json doc, internal::ParseJsonObject(text, "bundle"));
  for (const auto& [name, value] : doc.items()) {
    if (name != "format" && name != "exported" && name != "keys") {
      return InvalidArgument("bundle: unknown member \"" + name + "\"");
    }
  }
  if (!doc.contains("format") || !doc["format"].is_string() || doc["format"].get<std::string>() != kSaBundleFormat) {
    return InvalidArgument("bundle: \"format\" must be \"" + std::string(kSaBundleFormat) +
                           "\" (a file written by `kubehsm sa export-public`)");
  }
  if (!doc.contains("keys") || !doc["keys"].is_array() || doc["keys"].empty()) {
    return InvalidArgument("bundle: \"keys\" must be a non-empty array");
  }
  std::vector<SaBundleKey> out;
  std::size_t index = 0;
  for (const auto& jwk : doc["keys"]) {
    std::string where = "bundle key " + std::to_string(index++);
    if (jwk.is_object() && jwk.contains("kid") && jwk["kid"].is_string()) {
      where += " (kid " + jwk["kid"].get<std::string>() + ")";
    }
    KH_ASSIGN_OR_RETURN(SaBundleKey key, ParseBundleKey(jwk, where));
    out.push_back(std::move(key));
  }
  return out;
}

std::string_view SaBundleActionName(SaBundleAction action) {
  switch (action) {
    case SaBundleAction::kImport:
      return "import";
    case SaBundleAction::kExtend:
      return "extend";
    case SaBundleAction::kUnchanged:
      return "unchanged";
    case SaBundleAction::kOwnKey:
      return "own-key";
  }
  return "unknown";
}

Result<std::vector<SaBundleStep>> PlanSaBundleImport(const std::vector<SaKeyInfo>& token_keys,
                                                     const std::vector<SaBundleKey>& bundle, int64_t until) {
  std::vector<SaBundleStep> steps;
  std::size_t index = 0;
  for (const auto& key : bundle) {
    const std::string where = "bundle key " + std::to_string(index++) + " (kid " + key.kid + ")";
    KH_ASSIGN_OR_RETURN(std::string derived, KidFromSpki(key.spki_der));
    if (derived != key.kid) {
      for (const auto& t : token_keys) {
        if (t.kid == key.kid) {
          return InvalidArgument(where + " collides with a different key the token already holds under that kid (" +
                                 t.label + "): refusing the bundle");
        }
      }
      return InvalidArgument(where + ": kid mismatch, the key's derived kid is " + derived +
                             " (kube-apiserver derives it from the key): refusing the bundle");
    }
    bool duplicate = false;
    for (const auto& s : steps) {
      if (s.key.kid != key.kid) continue;
      if (s.key.spki_der != key.spki_der) return InvalidArgument(where + " names two different keys");
      duplicate = true;
    }
    if (duplicate) continue;
    SaBundleStep step{key, SaBundleAction::kImport, {}};
    for (const auto& t : token_keys) {
      if (t.kid != key.kid) continue;
      if (t.spki_der != key.spki_der) {
        return InvalidArgument(where + " collides with a different key the token already holds under that kid (" +
                               t.label + "): refusing the bundle");
      }
      step.existing = t;
      if (t.has_private) {
        step.action = SaBundleAction::kOwnKey;
      } else if (t.until == 0 || t.until >= until) {
        step.action = SaBundleAction::kUnchanged;
      } else {
        step.action = SaBundleAction::kExtend;
      }
    }
    steps.push_back(std::move(step));
  }
  return steps;
}

Result<SaKeyInfo> ApplySaBundleStep(signer::KeyStore& store, const SaBundleStep& step, int64_t now, int64_t until) {
  if (until <= now) return InvalidArgument("the publication of an imported key must end in the future");
  switch (step.action) {
    case SaBundleAction::kImport:
      return ImportSaPublicKey(store, step.key.spki_der, now, until);
    case SaBundleAction::kExtend: {
      SaKeyInfo k = step.existing;
      const std::string label = FormatSaKeyLabel({SaKeyState::kRetired, k.since, k.kid, true, until});
      KH_RETURN_IF_ERROR(store.Relabel(k.label, label).WithContext("relabelling " + k.label));
      k.label = label;
      k.until = until;
      k.state = SaKeyState::kRetired;
      k.imported = true;
      return k;
    }
    case SaBundleAction::kUnchanged:
    case SaBundleAction::kOwnKey:
      return step.existing;
  }
  return Internal("unknown bundle action");
}

Result<bool> JwksPublishesKey(std::string_view jwks_text, std::string_view kid, std::string_view spki_der) {
  KH_ASSIGN_OR_RETURN(std::vector<VerificationKey> keys, ParseJwks(jwks_text));
  for (const auto& k : keys) {
    if (k.kid != kid) continue;
    KH_ASSIGN_OR_RETURN(std::string der, SpkiOf(k.public_key.get()));
    if (der == spki_der) return true;
  }
  return false;
}

}  // namespace kubehsm::jwt
