// Service-account signing keys and their rotation, kept entirely in a signer::KeyStore so every
// process using the same token (CLI, signer daemon, other control-plane nodes) sees one state.
//
// State lives in the key label, changed only with KeyStore::Relabel:
//
//     kubehsm-sa:<state>:<since>:<kid>
//
//   state  next     published in the JWKS, not signing yet
//          active   signing (exactly one in steady state) and published
//          retired  published for verification only (also every imported public key)
//   since  Unix seconds when the key entered that state (decimal, no sign)
//   kid    the derived kid (kid.h) of the key; checked against the key itself on every read
//
// A fourth form, `kubehsm-sa:new:<uuid>`, names a key being created (it is relabelled to its
// final name as soon as its kid is known); one left behind by a crash is listed as "incomplete",
// never published or used, and can be removed. "Removed" keys are destroyed, so have no label.
//
// Transitions and their guards (all refusals are kFailedPrecondition unless noted):
//   rotate        → creates a next key; refused while another next key exists.
//   activate K    next/retired K with a private half → active; every other active → retired.
//                 A next key must have been published for at least min_published_seconds
//                 (spec §4/§6.6: one cache/refresh period) unless forced. K is relabelled first, so
//                 an interruption leaves two active keys (both published: safe), never none;
//                 FindActiveSaKey then signs with the newest and `activate` again repairs it.
//   retire K      active/next → retired; refused for the only active key unless forced.
//   remove K      destroys K; refused for an active key, and for a key retired less than
//                 min_retired_seconds ago (its tokens may still be live) unless forced.
//   import-public → a public-only key, retired, under its derived kid (migration, spec §3.2).
// Keys are named by full kid, a unique kid prefix of at least 4 characters, or full label.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/key_type.h"
#include "common/status.h"
#include "signer/jwt/jwks.h"
#include "signer/key_store.h"
#include "signer/signing_key.h"

namespace kubehsm::jwt {

inline constexpr std::string_view kSaLabelPrefix = "kubehsm-sa:";
// Default guards used by the CLI.
inline constexpr int64_t kDefaultMinPublishedSeconds = 3600;  // kube-apiserver's JWKS max-age
inline constexpr int64_t kDefaultMinRetiredSeconds = 86400;

enum class SaKeyState { kNext, kActive, kRetired, kIncomplete };

// "next", "active", "retired", "incomplete".
std::string_view SaKeyStateName(SaKeyState state);

// The parts of a service-account key label.
struct SaKeyLabel {
  SaKeyState state = SaKeyState::kIncomplete;
  int64_t since = 0;
  std::string kid;  // for kIncomplete: the temporary id
};

// Formats a label as documented above.
std::string FormatSaKeyLabel(const SaKeyLabel& label);

// Parses a label; nullopt when it is not a kubehsm-sa label or is malformed.
std::optional<SaKeyLabel> ParseSaKeyLabel(std::string_view label);

// One service-account key as stored.
struct SaKeyInfo {
  std::string label;
  SaKeyState state = SaKeyState::kIncomplete;
  int64_t since = 0;
  std::string kid;
  KeyType type = KeyType::kRsa2048;
  bool has_private = false;
  std::string spki_der;
};

// Lists the service-account keys (labels with kSaLabelPrefix; other keys are ignored), ordered
// active, next, retired, incomplete, newest first within a state. kFailedPrecondition when a label
// is malformed or its kid differs from the key's derived kid (a tampered or foreign label);
// store errors as they are.
Result<std::vector<SaKeyInfo>> ListSaKeys(signer::KeyStore& store);

// The keys to publish (JWKS, FetchKeys): next, active and retired, in ListSaKeys order.
Result<std::vector<PublishedKey>> PublishedSaKeys(signer::KeyStore& store);

// The key new tokens are signed with.
struct ActiveSaKey {
  signer::SigningKey key;
  std::string kid;
};

// Returns the active key (the most recently activated one if an activation was interrupted).
// kFailedPrecondition when there is no active key.
Result<ActiveSaKey> FindActiveSaKey(signer::KeyStore& store);

// `sa rotate`: creates a new key of `type` in state next at `now`. kFailedPrecondition while a
// next key already exists.
Result<SaKeyInfo> CreateNextSaKey(signer::KeyStore& store, KeyType type, int64_t now);

struct ActivateOptions {
  int64_t now = 0;
  int64_t min_published_seconds = kDefaultMinPublishedSeconds;
  bool force = false;
};

// `sa activate [KEY]`: makes KEY (default: the only next key) active and retires the previous
// active key(s). Returns the activated key. kNotFound / kInvalidArgument (ambiguous) for KEY,
// kFailedPrecondition per the guards above.
Result<SaKeyInfo> ActivateSaKey(signer::KeyStore& store, std::string_view key, const ActivateOptions& options);

// `sa retire KEY`: see the guards above. Returns the retired key.
Result<SaKeyInfo> RetireSaKey(signer::KeyStore& store, std::string_view key, int64_t now, bool force);

struct RemoveOptions {
  int64_t now = 0;
  int64_t min_retired_seconds = kDefaultMinRetiredSeconds;
  bool force = false;
};

// `sa remove KEY`: destroys KEY. Returns the removed key's info.
Result<SaKeyInfo> RemoveSaKey(signer::KeyStore& store, std::string_view key, const RemoveOptions& options);

// `sa import-public`: stores a public key (PKIX DER) as retired under its derived kid.
// kAlreadyExists when a key with that kid is already present; kInvalidArgument for a bad key
// (including one signer::CheckPublicKey refuses: RSA e < 65537 or even, explicit EC parameters).
Result<SaKeyInfo> ImportSaPublicKey(signer::KeyStore& store, std::string_view spki_der, int64_t now);

// For `kubehsm init` / `init phase sa`: returns the active service-account key, creating one of
// `type` in state active when there is none. Idempotent: an existing active key is returned as it
// is, even if its type differs from `type` (changing the key silently would invalidate every
// token). The caller writes sa.pub from the result's spki_der().
Result<signer::SigningKey> EnsureActiveSaKey(signer::KeyStore& store, KeyType type);
// Same, with an explicit clock (for tests).
Result<signer::SigningKey> EnsureActiveSaKey(signer::KeyStore& store, KeyType type, int64_t now);

}  // namespace kubehsm::jwt
