#include "signer/memory_key_store.h"

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/openssl_error.h"

namespace kubehsm::signer {

Result<SigningKey> MemoryKeyStore::Find(std::string_view label) {
  std::lock_guard lock(mu_);
  auto it = keys_.find(label);
  if (it == keys_.end() || !it->second.private_key) return NotFound("no key labelled '" + std::string(label) + "'");
  EVP_PKEY_up_ref(it->second.private_key.get());
  return SigningKey::Create(EvpPkeyPtr(it->second.private_key.get()), nullptr);
}

Result<SigningKey> MemoryKeyStore::Create(std::string_view label, KeyType type) {
  std::lock_guard lock(mu_);
  if (keys_.count(label) != 0) return AlreadyExists("a key labelled '" + std::string(label) + "' already exists");
  KH_ASSIGN_OR_RETURN(SigningKey key, SigningKey::GenerateSoftware(type));
  EVP_PKEY_up_ref(key.pkey());
  Entry e{EvpPkeyPtr(key.pkey()), StoredKeyInfo{std::string(label), type, true, key.spki_der()}};
  keys_.emplace(std::string(label), std::move(e));
  return key;
}

Status MemoryKeyStore::ImportPublicKey(std::string_view label, std::string_view spki_der) {
  KH_ASSIGN_OR_RETURN(EvpPkeyPtr pub, ParseSpkiDer(spki_der));
  KH_ASSIGN_OR_RETURN(KeyType type, KeyTypeOf(pub.get()));
  std::lock_guard lock(mu_);
  if (keys_.count(label) != 0) return AlreadyExists("a key labelled '" + std::string(label) + "' already exists");
  keys_.emplace(std::string(label),
                Entry{nullptr, StoredKeyInfo{std::string(label), type, false, std::string(spki_der)}});
  return OkStatus();
}

Result<std::vector<StoredKeyInfo>> MemoryKeyStore::List() {
  std::lock_guard lock(mu_);
  std::vector<StoredKeyInfo> out;
  for (const auto& [label, e] : keys_) out.push_back(e.info);
  return out;
}

Status MemoryKeyStore::Relabel(std::string_view from, std::string_view to) {
  std::lock_guard lock(mu_);
  auto it = keys_.find(from);
  if (it == keys_.end()) return NotFound("no key labelled '" + std::string(from) + "'");
  if (keys_.count(to) != 0) return AlreadyExists("a key labelled '" + std::string(to) + "' already exists");
  Entry e = std::move(it->second);
  keys_.erase(it);
  e.info.label = std::string(to);
  keys_.emplace(std::string(to), std::move(e));
  return OkStatus();
}

Status MemoryKeyStore::Remove(std::string_view label) {
  std::lock_guard lock(mu_);
  auto it = keys_.find(label);
  if (it == keys_.end()) return NotFound("no key labelled '" + std::string(label) + "'");
  keys_.erase(it);
  return OkStatus();
}

}  // namespace kubehsm::signer
