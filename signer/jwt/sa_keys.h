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
// An imported public key (`sa import-public`, a key generated outside the token) has its own form,
// carrying the marker and the time after which it is no longer published:
//
//     kubehsm-sa:imported:<since>:<until>:<kid>
//
// It is in state retired (verify only) and published while now < until (SaKeyPublishable). A
// public-only key with a plain `retired` label (imported before the marker existed) is listed
// as imported without expiry.
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
//   import-public → a public-only key, retired and marked imported, under its derived kid
//                 (migration, spec §3.2), published until its expiry.
// Keys are named by full kid, a unique kid prefix of at least 4 characters, or full label.
#pragma once

#include <cstdint>
#include <functional>
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
  bool imported = false;  // the `imported` form (state is then kRetired)
  int64_t until = 0;      // imported: published while now < until
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
  // The key was generated outside the token and only its public half imported (`imported`
  // label, or a public-only key with a plain label). `until`: end of publication (0: none, for
  // a key imported before expiries were required).
  bool imported = false;
  int64_t until = 0;
};

// "token" for a key generated in the token, "imported" for an imported public key: the key
// source the audit trail and `sa list` name.
std::string_view SaKeySource(const SaKeyInfo& key);

// Whether `key` may be published (JWKS, FetchKeys) at Unix time `now`: never an incomplete key;
// an imported key only while now < until (when it has an expiry); every other key always. The
// one rule every publisher applies (`sa jwks`, `sa discovery`, the daemon's published set).
bool SaKeyPublishable(const SaKeyInfo& key, int64_t now);

// Lists the service-account keys (labels with kSaLabelPrefix; other keys are ignored), ordered
// active, next, retired, incomplete, newest first within a state. kFailedPrecondition when a label
// is malformed or its kid differs from the key's derived kid (a tampered or foreign label);
// store errors as they are.
Result<std::vector<SaKeyInfo>> ListSaKeys(signer::KeyStore& store);

// The keys to publish (JWKS, FetchKeys) at `now`: ListSaKeys filtered by SaKeyPublishable, in
// ListSaKeys order. The daemon lists with this (not ListSaKeys), so an imported key's expiry
// also changes its label fingerprint and is noticed by the next poll.
Result<std::vector<SaKeyInfo>> ListPublishedSaKeys(signer::KeyStore& store, int64_t now);
// Same at the current time.
Result<std::vector<SaKeyInfo>> ListPublishedSaKeys(signer::KeyStore& store);

// ListPublishedSaKeys as kid + SPKI pairs.
Result<std::vector<PublishedKey>> PublishedSaKeys(signer::KeyStore& store, int64_t now);
// Same at the current time.
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
  // Optional: called with the resolved key after the state guards, before anything changes; an
  // error refuses the activation as it is (`force` does not waive it). The CLI checks here that
  // the other nodes' published sets hold the key.
  std::function<Status(const SaKeyInfo& target)> check;
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

// `sa import-public`: stores a public key (PKIX DER) under its derived kid, marked imported and
// published until `until` (Unix seconds). kAlreadyExists when a key with that kid is already
// present; kInvalidArgument for a bad key (including one signer::CheckPublicKey refuses: RSA
// e < 65537 or even, explicit EC parameters) or until <= now.
Result<SaKeyInfo> ImportSaPublicKey(signer::KeyStore& store, std::string_view spki_der, int64_t now, int64_t until);

// For `kubehsm init` / `init phase sa`: returns the active service-account key, creating one of
// `type` in state active when there is none. Idempotent: an existing active key is returned as it
// is, even if its type differs from `type` (changing the key silently would invalidate every
// token). The caller writes sa.pub from the result's spki_der().
Result<signer::SigningKey> EnsureActiveSaKey(signer::KeyStore& store, KeyType type);
// Same, with an explicit clock (for tests).
Result<signer::SigningKey> EnsureActiveSaKey(signer::KeyStore& store, KeyType type, int64_t now);

}  // namespace kubehsm::jwt
