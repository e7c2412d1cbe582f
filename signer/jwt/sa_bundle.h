// Public-key bundles for service-account keys across several tokens (one token per control-plane
// node): `sa export-public` writes the token's active and next public keys as a JWKS-shaped
// document, and `sa import-public --bundle` publishes another node's bundle in this token as
// verify-only imported keys (sa_keys.h), so every node's signer publishes every node's keys.
//
// The document (format "kubehsm-sa-public-bundle/v1"):
//
//     {"format":"kubehsm-sa-public-bundle/v1","exported":<unix seconds>,
//      "keys":[{<JWK exactly as `sa jwks` renders it>,"state":"active"|"next","since":<unix seconds>}]}
//
// It carries public keys only: a bundle holding any private JWK member (d, p, q, dp, dq, qi, oth,
// k) is refused as a whole, never partly imported.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/key_type.h"
#include "common/status.h"
#include "signer/jwt/sa_keys.h"
#include "signer/key_store.h"

namespace kubehsm::jwt {

inline constexpr std::string_view kSaBundleFormat = "kubehsm-sa-public-bundle/v1";
// The largest bundle read: far above any real key set (a JWK is at most ~1.5 KiB).
inline constexpr std::size_t kMaxSaBundleBytes = 256 * 1024;

// One key of a bundle as written in it.
struct SaBundleKey {
  std::string kid;                       // the "kid" member, as written (checked against the key by PlanSaBundleImport)
  SaKeyState state = SaKeyState::kNext;  // kActive or kNext on the exporting token
  int64_t since = 0;                     // when it entered that state on the exporting token
  KeyType type = KeyType::kRsa2048;
  std::string spki_der;  // the public key, PKIX SubjectPublicKeyInfo DER
};

// The keys `sa export-public` exports from `keys` (ListSaKeys order kept): the token's own active
// and next keys. Imported keys are never re-exported, so a key travels only from the node whose
// token holds its private half.
std::vector<SaKeyInfo> ExportableSaKeys(const std::vector<SaKeyInfo>& keys);

// Renders the bundle document for `keys` (from ExportableSaKeys) at `now`. kFailedPrecondition
// when `keys` is empty; kInvalidArgument for a key that cannot be rendered as a JWK.
Result<std::string> RenderSaKeyBundle(const std::vector<SaKeyInfo>& keys, int64_t now);

// Parses a bundle strictly. kInvalidArgument, naming the key index and member, for: invalid JSON
// or duplicate members, another "format", a missing or empty "keys", a private member in any key,
// an unknown member, a key that is not an RSA/EC signing key ("use" other than "sig", other kty, an
// "alg" not matching the key), a missing "kid", a "state" other than active/next, a key
// signer::CheckPublicKey refuses. Kids are not checked here (PlanSaBundleImport does).
Result<std::vector<SaBundleKey>> ParseSaKeyBundle(std::string_view text);

// What importing one bundle key does to the token.
enum class SaBundleAction {
  kImport,     // not in the token: imported (verify only, published until `until`)
  kExtend,     // already imported with an earlier end of publication: the end moves to `until`
  kUnchanged,  // already imported, published at least until `until` (or without expiry)
  kOwnKey,     // the token holds this key's private half (a bundle of this very token)
};

// "import", "extend", "unchanged", "own-key".
std::string_view SaBundleActionName(SaBundleAction action);

struct SaBundleStep {
  SaBundleKey key;
  SaBundleAction action = SaBundleAction::kImport;
  SaKeyInfo existing;  // the token's key with this kid, for every action but kImport
};

// Checks a whole bundle against the token's keys (ListSaKeys) before anything is changed, and
// returns one step per distinct key, in bundle order. kInvalidArgument when a key's "kid" is not
// the kid derived from its key: "collides" when the token already holds a different key under that
// kid, "kid mismatch" otherwise; or when one kid names two different keys in the bundle.
Result<std::vector<SaBundleStep>> PlanSaBundleImport(const std::vector<SaKeyInfo>& token_keys,
                                                     const std::vector<SaBundleKey>& bundle, int64_t until);

// Carries out one planned step at `now` (ImportSaPublicKey for kImport, a relabel keeping the
// import time for kExtend, nothing otherwise) and returns the key as it now is. Store errors as
// they are; kInvalidArgument when until <= now.
Result<SaKeyInfo> ApplySaBundleStep(signer::KeyStore& store, const SaBundleStep& step, int64_t now, int64_t until);

// Whether a JWKS document (e.g. another node's `kubehsm sa jwks`) publishes the key `kid` with
// exactly the public key `spki_der`. kInvalidArgument for a JWKS ParseJwks refuses.
Result<bool> JwksPublishesKey(std::string_view jwks_text, std::string_view kid, std::string_view spki_der);

}  // namespace kubehsm::jwt
