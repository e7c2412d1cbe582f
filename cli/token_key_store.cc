#include "cli/token_key_store.h"

#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/terminal_text.h"

namespace kubehsm::cli {

Result<signer::SigningKey> TokenKeyStore::Find(std::string_view label) {
  KH_ASSIGN_OR_RETURN(hsm::KeyInfo info, hsm_.token().FindKeyByLabel(std::string(label)));
  if (!info.has_private()) return NotFound("key '" + std::string(label) + "' has only a public half in the token");
  hsm::Token& token = hsm_.token();
  if (!info.non_exportable(token.options().require_cka_local)) {
    return FailedPrecondition("key '" + info.label +
                              "' in the token is extractable or was not generated in the token; kubehsm refuses it");
  }
  KH_ASSIGN_OR_RETURN(hsm::SignCapability how, token.SignCapabilityFor(info.type));
  KH_ASSIGN_OR_RETURN(EvpPkeyPtr pkey, hsm_.LoadPrivateKey(info));
  signer::SigningKey::Options options;
  options.origin = "key '" + info.label + "' in token '" + token.info().label + "' (" + how.mechanism_name + ")";
  if (!how.combined) {
    // The token lacks the hash-and-sign mechanism (e.g. openCryptoki's software token has no
    // CKM_SHA256_RSA_PKCS): hash here and sign the digest with the raw mechanism. pkcs11-provider
    // 1.0 would sign the bare digest without its DigestInfo there (pkcs11-provider#592).
    options.digest_signer = [&token, info](std::string_view digest_name, std::string_view digest) {
      return token.SignDigest(info, digest_name, digest);
    };
  }
  return signer::SigningKey::Create(std::move(pkey), hsm_.bridge().libctx(), std::move(options));
}

Status TokenKeyStore::CheckCanCreate(KeyType type) { return hsm_.token().CheckCanGenerate(type); }

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

hsm::HsmOptions TokenSession::HsmOptionsFor(const GlobalOptions& globals) {
  hsm::HsmOptions o;
  o.module_path = globals.module;
  o.token_uri = globals.token_uri;
  o.pin_source = globals.pin_source;
  o.module_init_args = globals.module_init_args;
  o.allow_keys_without_cka_local = globals.allow_keys_without_cka_local;
  return o;
}

Result<std::unique_ptr<TokenSession>> TokenSession::Open(const GlobalOptions& globals, std::ostream& err,
                                                           hsm::OpenStep* failed_step) {
  hsm::HsmOptions options = HsmOptionsFor(globals);
  if (globals.verbose) {
    ReportTokenSelection(globals, err);
    options.on_token_selected = [&err](const hsm::TokenInfo& info) {
      err << "kubehsm: using " << DescribeToken(info) << "\n" << std::flush;
    };
  }
  KH_ASSIGN_OR_RETURN(std::unique_ptr<hsm::Hsm> h, hsm::Hsm::Open(options, failed_step));
  return std::make_unique<TokenSession>(std::move(h));
}

void ReportModuleSelection(const GlobalOptions& globals, std::ostream& err) {
  if (!globals.verbose) return;
  if (globals.config_file.empty()) {
    err << "kubehsm: no config file (searched $KUBEHSM_CONFIG, $XDG_CONFIG_HOME or ~/.config/kubehsm/kubehsm.conf, "
           "/etc/kubehsm/kubehsm.conf): command-line options and built-in defaults\n";
  } else {
    err << "kubehsm: config file " << EscapeForTerminal(globals.config_file) << "\n";
  }
  err << "kubehsm: module " << EscapeForTerminal(globals.module)
      << (globals.module_init_args.empty() ? "" : " (with C_Initialize arguments)") << "\n"
      << std::flush;
}

void ReportTokenSelection(const GlobalOptions& globals, std::ostream& err) {
  if (!globals.verbose) return;
  ReportModuleSelection(globals, err);
  // A pin source names where the PIN is (env:VAR, file:PATH, fd:N, prompt), never the PIN.
  err << "kubehsm: token " << EscapeForTerminal(globals.token_uri) << ", PIN from "
      << EscapeForTerminal(globals.pin_source.empty() ? std::string("the token URI's pin-source, else prompt")
                                                      : globals.pin_source)
      << "\n"
      << std::flush;
}

std::string DescribeToken(const hsm::TokenInfo& info) {
  return "slot " + std::to_string(info.slot_id) + ": token '" + EscapeForTerminal(info.label) + "' (" +
         EscapeForTerminal(info.manufacturer) + " " + EscapeForTerminal(info.model) + ", serial " +
         EscapeForTerminal(info.serial) + ")";
}

}  // namespace kubehsm::cli
