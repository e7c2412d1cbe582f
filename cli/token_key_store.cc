#include "cli/token_key_store.h"

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kubehsm::cli {

Result<signer::SigningKey> TokenKeyStore::Find(std::string_view label) {
  KH_ASSIGN_OR_RETURN(hsm::KeyInfo info, hsm_.token().FindKeyByLabel(std::string(label)));
  if (!info.has_private()) return NotFound("key '" + std::string(label) + "' has only a public half in the token");
  if (!info.non_exportable()) {
    return FailedPrecondition("key '" + info.label +
                              "' in the token is extractable or was not generated in the token; kubehsm refuses it");
  }
  KH_ASSIGN_OR_RETURN(EvpPkeyPtr pkey, hsm_.LoadPrivateKey(info));
  return signer::SigningKey::Create(std::move(pkey), hsm_.bridge().libctx());
}

Result<signer::SigningKey> TokenKeyStore::Create(std::string_view label, KeyType type) {
  KH_RETURN_IF_ERROR(hsm_.token().GenerateKeyPair(std::string(label), type).status());
  return Find(label);
}

Status TokenKeyStore::ImportPublicKey(std::string_view label, std::string_view spki_der) {
  return hsm_.token().ImportPublicKey(std::string(label), std::string(spki_der)).status();
}

Result<std::vector<signer::StoredKeyInfo>> TokenKeyStore::List() {
  KH_ASSIGN_OR_RETURN(std::vector<hsm::KeyInfo> keys, hsm_.token().ListKeys());
  std::vector<signer::StoredKeyInfo> out;
  for (const auto& k : keys) {
    KH_ASSIGN_OR_RETURN(std::string spki, hsm_.token().PublicKeyDer(k));
    out.push_back(signer::StoredKeyInfo{k.label, k.type, k.has_private(), std::move(spki)});
  }
  return out;
}

Status TokenKeyStore::Relabel(std::string_view from, std::string_view to) {
  KH_ASSIGN_OR_RETURN(hsm::KeyInfo info, hsm_.token().FindKeyByLabel(std::string(from)));
  return hsm_.token().SetLabel(info, std::string(to));
}

Status TokenKeyStore::Remove(std::string_view label) {
  KH_ASSIGN_OR_RETURN(hsm::KeyInfo info, hsm_.token().FindKeyByLabel(std::string(label)));
  return hsm_.token().DestroyKey(info);
}

Result<std::unique_ptr<TokenSession>> TokenSession::Open(const GlobalOptions& globals) {
  hsm::HsmOptions o;
  o.module_path = globals.module;
  o.token_uri = globals.token_uri;
  o.pin_source = globals.pin_source;
  KH_ASSIGN_OR_RETURN(std::unique_ptr<hsm::Hsm> h, hsm::Hsm::Open(o));
  return std::make_unique<TokenSession>(std::move(h));
}

}  // namespace kubehsm::cli
