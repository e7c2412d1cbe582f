#include "signer/jwt/sa_keys.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <utility>

#include "signer/jwt/claims.h"
#include "signer/jwt/kid.h"
#include "signer/public_key_check.h"

namespace kubehsm::jwt {
namespace {

constexpr std::string_view kNewState = "new";
constexpr std::size_t kMinPrefix = 4;

int StateOrder(SaKeyState s) {
  switch (s) {
    case SaKeyState::kActive: return 0;
    case SaKeyState::kNext: return 1;
    case SaKeyState::kRetired: return 2;
    case SaKeyState::kIncomplete: return 3;
  }
  return 4;
}

std::string Describe(const SaKeyInfo& k) {
  return k.kid.empty() ? k.label : std::string(SaKeyStateName(k.state)) + " key " + k.kid;
}

std::string Duration(int64_t seconds) {
  if (seconds % 3600 == 0 && seconds > 0) return std::to_string(seconds / 3600) + "h";
  if (seconds % 60 == 0 && seconds > 0) return std::to_string(seconds / 60) + "m";
  return std::to_string(seconds) + "s";
}

// Resolves KEY (full kid, unique kid prefix ≥ 4 characters, or full label).
Result<SaKeyInfo> Resolve(const std::vector<SaKeyInfo>& keys, std::string_view key) {
  if (key.empty()) return InvalidArgument("no key named");
  for (const auto& k : keys) {
    if (k.label == key || (!k.kid.empty() && k.kid == key)) return k;
  }
  if (key.size() < kMinPrefix) {
    return InvalidArgument("key prefix \"" + std::string(key) + "\" is too short (at least 4 characters)");
  }
  std::vector<const SaKeyInfo*> matches;
  for (const auto& k : keys) {
    if (k.state != SaKeyState::kIncomplete && k.kid.compare(0, key.size(), key) == 0) matches.push_back(&k);
  }
  if (matches.empty()) return NotFound("no service-account key matches \"" + std::string(key) + "\"");
  if (matches.size() > 1) {
    std::string names;
    for (const auto* m : matches) names += " " + m->kid;
    return InvalidArgument("\"" + std::string(key) + "\" matches several keys:" + names);
  }
  return *matches[0];
}

Status Relabel(signer::KeyStore& store, const SaKeyInfo& key, SaKeyState state, int64_t now) {
  // An imported key keeps its marker and expiry (it can only ever be retired anyway).
  const bool imported_form = key.imported && key.until > 0;
  return store.Relabel(key.label, FormatSaKeyLabel({state, now, key.kid, imported_form, key.until}))
      .WithContext("relabelling " + key.label);
}

int64_t Now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Creates a key pair and gives it its final label in `state`.
Result<SaKeyInfo> CreateKey(signer::KeyStore& store, KeyType type, SaKeyState state, int64_t now) {
  KH_ASSIGN_OR_RETURN(std::string temp_id, NewJti());
  const std::string temp_label = FormatSaKeyLabel({SaKeyState::kIncomplete, 0, temp_id});
  KH_ASSIGN_OR_RETURN(signer::SigningKey key, store.Create(temp_label, type));
  auto kid = KidFromSpki(key.spki_der());
  Status st = kid.ok() ? OkStatus() : kid.status();
  SaKeyInfo info;
  if (st.ok()) {
    info = SaKeyInfo{FormatSaKeyLabel({state, now, *kid}), state, now, *kid, key.type(), true, key.spki_der()};
    st = store.Relabel(temp_label, info.label);
  }
  if (!st.ok()) {
    // Best effort: do not leave an unusable key behind. A failure here is reported by `sa list`.
    (void)store.Remove(temp_label);
    return st.WithContext("creating the service-account key");
  }
  return info;
}

}  // namespace

std::string_view SaKeyStateName(SaKeyState state) {
  switch (state) {
    case SaKeyState::kNext: return "next";
    case SaKeyState::kActive: return "active";
    case SaKeyState::kRetired: return "retired";
    case SaKeyState::kIncomplete: return "incomplete";
  }
  return "unknown";
}

std::string_view SaKeySource(const SaKeyInfo& key) { return key.imported ? "imported" : "token"; }

bool SaKeyPublishable(const SaKeyInfo& key, int64_t now) {
  if (key.state == SaKeyState::kIncomplete) return false;
  if (key.imported && key.until > 0) return now < key.until;
  return true;
}

std::string FormatSaKeyLabel(const SaKeyLabel& l) {
  if (l.imported) {
    return std::string(kSaLabelPrefix) + "imported:" + std::to_string(l.since) + ":" + std::to_string(l.until) + ":" +
           l.kid;
  }
  if (l.state == SaKeyState::kIncomplete) return std::string(kSaLabelPrefix) + std::string(kNewState) + ":" + l.kid;
  return std::string(kSaLabelPrefix) + std::string(SaKeyStateName(l.state)) + ":" + std::to_string(l.since) + ":" + l.kid;
}

std::optional<SaKeyLabel> ParseSaKeyLabel(std::string_view label) {
  if (label.substr(0, kSaLabelPrefix.size()) != kSaLabelPrefix) return std::nullopt;
  std::string_view rest = label.substr(kSaLabelPrefix.size());
  const std::size_t c1 = rest.find(':');
  if (c1 == std::string_view::npos) return std::nullopt;
  const std::string_view state = rest.substr(0, c1);
  rest = rest.substr(c1 + 1);
  if (state == kNewState) {
    if (rest.empty()) return std::nullopt;
    return SaKeyLabel{SaKeyState::kIncomplete, 0, std::string(rest)};
  }
  SaKeyLabel out;
  auto number = [](std::string_view text, int64_t& v) {
    const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    return ec == std::errc() && ptr == text.data() + text.size() && v >= 0 && !text.empty();
  };
  if (state == "imported") {
    // <since>:<until>:<kid>
    const std::size_t a = rest.find(':');
    if (a == std::string_view::npos) return std::nullopt;
    const std::size_t b = rest.find(':', a + 1);
    if (b == std::string_view::npos) return std::nullopt;
    out.state = SaKeyState::kRetired;
    out.imported = true;
    if (!number(rest.substr(0, a), out.since) || !number(rest.substr(a + 1, b - a - 1), out.until)) return std::nullopt;
    out.kid = std::string(rest.substr(b + 1));
    if (!LooksLikeDerivedKid(out.kid)) return std::nullopt;
    return out;
  }
  if (state == "next") {
    out.state = SaKeyState::kNext;
  } else if (state == "active") {
    out.state = SaKeyState::kActive;
  } else if (state == "retired") {
    out.state = SaKeyState::kRetired;
  } else {
    return std::nullopt;
  }
  const std::size_t c2 = rest.find(':');
  if (c2 == std::string_view::npos || c2 == 0) return std::nullopt;
  const std::string_view since = rest.substr(0, c2);
  const auto [ptr, ec] = std::from_chars(since.data(), since.data() + since.size(), out.since);
  if (ec != std::errc() || ptr != since.data() + since.size() || out.since < 0) return std::nullopt;
  out.kid = std::string(rest.substr(c2 + 1));
  if (!LooksLikeDerivedKid(out.kid)) return std::nullopt;
  return out;
}

Result<std::vector<SaKeyInfo>> ListSaKeys(signer::KeyStore& store) {
  KH_ASSIGN_OR_RETURN(std::vector<signer::StoredKeyInfo> all, store.List());
  std::vector<SaKeyInfo> out;
  for (const auto& k : all) {
    if (k.label.compare(0, kSaLabelPrefix.size(), kSaLabelPrefix) != 0) continue;
    const auto parsed = ParseSaKeyLabel(k.label);
    if (!parsed) return FailedPrecondition("malformed service-account key label \"" + k.label + "\"");
    SaKeyInfo info{k.label, parsed->state, parsed->since, "", k.type, k.has_private, k.spki_der};
    info.imported = parsed->imported || (parsed->state != SaKeyState::kIncomplete && !k.has_private);
    info.until = parsed->until;
    if (parsed->imported && k.has_private) {
      return FailedPrecondition("service-account key label \"" + k.label +
                                "\" marks an imported public key, but the token holds its private key");
    }
    if (parsed->state != SaKeyState::kIncomplete) {
      KH_ASSIGN_OR_RETURN(std::string kid, KidFromSpki(k.spki_der));
      if (kid != parsed->kid) {
        return FailedPrecondition("service-account key label \"" + k.label + "\" does not match its key (kid " + kid +
                                  "): refusing to use a mislabelled key");
      }
      info.kid = std::move(kid);
    }
    out.push_back(std::move(info));
  }
  std::stable_sort(out.begin(), out.end(), [](const SaKeyInfo& a, const SaKeyInfo& b) {
    if (StateOrder(a.state) != StateOrder(b.state)) return StateOrder(a.state) < StateOrder(b.state);
    if (a.since != b.since) return a.since > b.since;
    return a.kid > b.kid;
  });
  return out;
}

Result<std::vector<SaKeyInfo>> ListPublishedSaKeys(signer::KeyStore& store, int64_t now) {
  KH_ASSIGN_OR_RETURN(std::vector<SaKeyInfo> keys, ListSaKeys(store));
  std::erase_if(keys, [&](const SaKeyInfo& k) { return !SaKeyPublishable(k, now); });
  return keys;
}

Result<std::vector<SaKeyInfo>> ListPublishedSaKeys(signer::KeyStore& store) {
  return ListPublishedSaKeys(store, Now());
}

Result<std::vector<PublishedKey>> PublishedSaKeys(signer::KeyStore& store, int64_t now) {
  KH_ASSIGN_OR_RETURN(std::vector<SaKeyInfo> keys, ListPublishedSaKeys(store, now));
  std::vector<PublishedKey> out;
  for (const auto& k : keys) out.push_back({k.kid, k.spki_der});
  return out;
}

Result<std::vector<PublishedKey>> PublishedSaKeys(signer::KeyStore& store) { return PublishedSaKeys(store, Now()); }

Result<ActiveSaKey> FindActiveSaKey(signer::KeyStore& store) {
  KH_ASSIGN_OR_RETURN(std::vector<SaKeyInfo> keys, ListSaKeys(store));
  // ListSaKeys puts the newest active key first.
  for (const auto& k : keys) {
    if (k.state != SaKeyState::kActive) continue;
    if (!k.has_private) return FailedPrecondition("the active service-account key " + k.kid + " has no private key");
    KH_ASSIGN_OR_RETURN(signer::SigningKey key, store.Find(k.label));
    return ActiveSaKey{std::move(key), k.kid};
  }
  return FailedPrecondition("there is no active service-account key (run `kubehsm init phase sa` or `kubehsm sa activate`)");
}

Result<SaKeyInfo> CreateNextSaKey(signer::KeyStore& store, KeyType type, int64_t now) {
  KH_ASSIGN_OR_RETURN(std::vector<SaKeyInfo> keys, ListSaKeys(store));
  for (const auto& k : keys) {
    if (k.state == SaKeyState::kNext) {
      return FailedPrecondition("a next key already exists (" + k.kid + "): activate or remove it first");
    }
  }
  return CreateKey(store, type, SaKeyState::kNext, now);
}

Result<SaKeyInfo> ActivateSaKey(signer::KeyStore& store, std::string_view key, const ActivateOptions& options) {
  KH_ASSIGN_OR_RETURN(std::vector<SaKeyInfo> keys, ListSaKeys(store));
  SaKeyInfo target;
  if (key.empty()) {
    std::vector<const SaKeyInfo*> next;
    for (const auto& k : keys) {
      if (k.state == SaKeyState::kNext) next.push_back(&k);
    }
    if (next.empty()) return FailedPrecondition("there is no next key to activate (run `kubehsm sa rotate` first)");
    if (next.size() > 1) return InvalidArgument("several next keys exist: name the one to activate");
    target = *next[0];
  } else {
    KH_ASSIGN_OR_RETURN(target, Resolve(keys, key));
  }
  switch (target.state) {
    case SaKeyState::kActive: return FailedPrecondition(target.kid + " is already active");
    case SaKeyState::kIncomplete: return FailedPrecondition(target.label + " is an incomplete key: remove it");
    case SaKeyState::kRetired:
    case SaKeyState::kNext: break;
  }
  if (!target.has_private) {
    return FailedPrecondition(target.kid + " is a public key only (imported): it cannot sign");
  }
  if (target.state == SaKeyState::kNext && !options.force) {
    const int64_t published = options.now - target.since;
    if (published < options.min_published_seconds) {
      return FailedPrecondition("key " + target.kid + " has been published for " + Duration(std::max<int64_t>(published, 0)) +
                                ", less than the minimum " + Duration(options.min_published_seconds) +
                                ": relying parties may not have it yet (wait " +
                                Duration(options.min_published_seconds - published) + ", or use --force)");
    }
  }
  if (options.check) KH_RETURN_IF_ERROR(options.check(target));
  // Activate first, then retire the others: an interruption leaves two active keys, never none.
  KH_RETURN_IF_ERROR(Relabel(store, target, SaKeyState::kActive, options.now));
  for (const auto& k : keys) {
    if (k.state == SaKeyState::kActive && k.label != target.label) {
      KH_RETURN_IF_ERROR(Relabel(store, k, SaKeyState::kRetired, options.now)
                             .WithContext(target.kid + " is active, but retiring the previous key failed (run "
                                          "`kubehsm sa activate " + target.kid + "` again)"));
    }
  }
  target.state = SaKeyState::kActive;
  target.since = options.now;
  target.label = FormatSaKeyLabel({SaKeyState::kActive, options.now, target.kid});
  return target;
}

Result<SaKeyInfo> RetireSaKey(signer::KeyStore& store, std::string_view key, int64_t now, bool force) {
  KH_ASSIGN_OR_RETURN(std::vector<SaKeyInfo> keys, ListSaKeys(store));
  KH_ASSIGN_OR_RETURN(SaKeyInfo target, Resolve(keys, key));
  if (target.state == SaKeyState::kRetired) return FailedPrecondition(target.kid + " is already retired");
  if (target.state == SaKeyState::kIncomplete) return FailedPrecondition(target.label + " is an incomplete key: remove it");
  if (target.state == SaKeyState::kActive && !force) {
    const auto actives = std::count_if(keys.begin(), keys.end(), [](const SaKeyInfo& k) { return k.state == SaKeyState::kActive; });
    if (actives < 2) {
      return FailedPrecondition("refusing to retire the only active key " + target.kid +
                                ": nothing could sign tokens (activate another key instead, or use --force)");
    }
  }
  KH_RETURN_IF_ERROR(Relabel(store, target, SaKeyState::kRetired, now));
  target.state = SaKeyState::kRetired;
  target.since = now;
  target.label = FormatSaKeyLabel({SaKeyState::kRetired, now, target.kid});
  return target;
}

Result<SaKeyInfo> RemoveSaKey(signer::KeyStore& store, std::string_view key, const RemoveOptions& options) {
  KH_ASSIGN_OR_RETURN(std::vector<SaKeyInfo> keys, ListSaKeys(store));
  KH_ASSIGN_OR_RETURN(SaKeyInfo target, Resolve(keys, key));
  if (target.state == SaKeyState::kActive && !options.force) {
    return FailedPrecondition("refusing to remove the active key " + target.kid +
                              ": activate another key, keep this one retired until its tokens expire, then remove it");
  }
  if (target.state == SaKeyState::kRetired && !options.force) {
    const int64_t retired = options.now - target.since;
    if (retired < options.min_retired_seconds) {
      return FailedPrecondition("key " + target.kid + " was retired " + Duration(std::max<int64_t>(retired, 0)) +
                                " ago, less than the minimum " + Duration(options.min_retired_seconds) +
                                ": tokens it signed may still be valid (use --force to remove it anyway)");
    }
  }
  KH_RETURN_IF_ERROR(store.Remove(target.label).WithContext("removing " + Describe(target)));
  return target;
}

Result<SaKeyInfo> ImportSaPublicKey(signer::KeyStore& store, std::string_view spki_der, int64_t now, int64_t until) {
  if (until <= now) return InvalidArgument("the publication of an imported key must end in the future");
  KH_ASSIGN_OR_RETURN(EvpPkeyPtr pub, signer::ParseSpkiDer(spki_der));
  KH_RETURN_IF_ERROR(signer::CheckPublicKey(pub.get()));
  KH_ASSIGN_OR_RETURN(KeyType type, signer::KeyTypeOf(pub.get()));
  KH_ASSIGN_OR_RETURN(std::string kid, KidFromSpki(spki_der));
  KH_ASSIGN_OR_RETURN(std::vector<SaKeyInfo> keys, ListSaKeys(store));
  for (const auto& k : keys) {
    if (k.kid == kid) return AlreadyExists("the key " + kid + " is already present (" + k.label + ")");
  }
  SaKeyInfo info{FormatSaKeyLabel({SaKeyState::kRetired, now, kid, true, until}),
                 SaKeyState::kRetired, now, kid, type, false, std::string(spki_der), true, until};
  KH_RETURN_IF_ERROR(store.ImportPublicKey(info.label, spki_der));
  return info;
}

Result<signer::SigningKey> EnsureActiveSaKey(signer::KeyStore& store, KeyType type) {
  return EnsureActiveSaKey(store, type, Now());
}

Result<signer::SigningKey> EnsureActiveSaKey(signer::KeyStore& store, KeyType type, int64_t now) {
  auto active = FindActiveSaKey(store);
  if (active.ok()) return std::move(active->key);
  if (active.status().code() != StatusCode::kFailedPrecondition) return active.status();
  // FailedPrecondition also covers a mislabelled store and an active public-only key: re-check.
  KH_ASSIGN_OR_RETURN(std::vector<SaKeyInfo> keys, ListSaKeys(store));
  for (const auto& k : keys) {
    if (k.state == SaKeyState::kActive) return active.status();
  }
  KH_ASSIGN_OR_RETURN(SaKeyInfo created, CreateKey(store, type, SaKeyState::kActive, now));
  return store.Find(created.label);
}

}  // namespace kubehsm::jwt
