// An in-memory KeyStore of software keys, for tests and dry runs. Not for production keys.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "signer/key_store.h"

namespace kubehsm::signer {

class MemoryKeyStore final : public KeyStore {
 public:
  Result<SigningKey> Find(std::string_view label) override;
  Result<SigningKey> Create(std::string_view label, KeyType type) override;
  // Software keys of every KeyType can be made.
  Status CheckCanCreate(KeyType) override { return OkStatus(); }
  Status ImportPublicKey(std::string_view label, std::string_view spki_der) override;
  Result<std::vector<StoredKeyInfo>> List() override;
  Status Relabel(std::string_view from, std::string_view to) override;
  Status Remove(std::string_view label) override;

 private:
  struct Entry {
    EvpPkeyPtr private_key;  // null for public-only entries
    StoredKeyInfo info;
  };
  std::mutex mu_;
  std::map<std::string, Entry, std::less<>> keys_;
};

}  // namespace kubehsm::signer
