// Where the signer layer's long-lived keys live (the CA keys and the service-account keys): an
// interface, so the PKI and token code works the same over a PKCS#11 token (cli/ wires the hsm
// layer in) and over an in-memory software store (tests). Keys are named by label.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/key_type.h"
#include "common/status.h"
#include "signer/signing_key.h"

namespace kubehsm::signer {

struct StoredKeyInfo {
  std::string label;
  KeyType type;
  bool has_private = false;  // false for imported public keys (e.g. an old sa.pub)
  std::string spki_der;      // PKIX SubjectPublicKeyInfo of the public key
};

class KeyStore {
 public:
  virtual ~KeyStore() = default;

  // Returns the private key `label` ready to sign. kNotFound when there is none.
  virtual Result<SigningKey> Find(std::string_view label) = 0;

  // Creates a new key pair `label` of `type`, non-extractable where the store supports it.
  // kAlreadyExists when any key (private or public) already has this label.
  virtual Result<SigningKey> Create(std::string_view label, KeyType type) = 0;

  // OK when Create(…, type) can work in this store; otherwise kFailedPrecondition saying what the
  // store lacks. Creates nothing, so a multi-key operation can refuse before it starts.
  virtual Status CheckCanCreate(KeyType type) = 0;

  // Stores a public key only (no private half) under `label`, for verification of tokens signed
  // before the store existed. kAlreadyExists when the label is taken.
  virtual Status ImportPublicKey(std::string_view label, std::string_view spki_der) = 0;

  // Lists every key pair and public-only key, ordered by label.
  virtual Result<std::vector<StoredKeyInfo>> List() = 0;

  // Renames key `from` (both halves) to `to`. kNotFound / kAlreadyExists as expected.
  virtual Status Relabel(std::string_view from, std::string_view to) = 0;

  // Destroys key `label` (both halves). kNotFound when absent.
  virtual Status Remove(std::string_view label) = 0;
};

}  // namespace kubehsm::signer
