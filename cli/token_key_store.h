// The composition of hsm/ and signer/: a KeyStore whose keys live in a PKCS#11 token and sign
// through pkcs11-provider. Only cli/ (the composition root) knows both sides.
#pragma once

#include <iosfwd>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cli/command.h"
#include "hsm/hsm.h"
#include "signer/key_store.h"

namespace kubehsm::cli {

class TokenKeyStore final : public signer::KeyStore {
 public:
  explicit TokenKeyStore(hsm::Hsm& hsm) : hsm_(hsm) {}

  Result<signer::SigningKey> Find(std::string_view label) override;
  Result<signer::SigningKey> Create(std::string_view label, KeyType type) override;
  Status CheckCanCreate(KeyType type) override;
  Status ImportPublicKey(std::string_view label, std::string_view spki_der) override;
  Result<std::vector<signer::StoredKeyInfo>> List() override;
  Status Relabel(std::string_view from, std::string_view to) override;
  Status Remove(std::string_view label) override;

 private:
  hsm::Hsm& hsm_;
};

// An open, logged-in token and its KeyStore, for one command run.
class TokenSession final {
 public:
  // Opens the module and token named by `globals` and logs in; `failed_step` as in hsm::Hsm::Open.
  // With globals.verbose, first writes ReportTokenSelection's lines and, once the token is found
  // (before login), its slot to `err`.
  static Result<std::unique_ptr<TokenSession>> Open(const GlobalOptions& globals, std::ostream& err,
                                                    hsm::OpenStep* failed_step = nullptr);
  // The hsm options `globals` select (module, token, PIN source, init args, CKA_LOCAL policy).
  static hsm::HsmOptions HsmOptionsFor(const GlobalOptions& globals);

  hsm::Hsm& hsm() { return *hsm_; }
  signer::KeyStore& store() { return store_; }

  explicit TokenSession(std::unique_ptr<hsm::Hsm> hsm) : hsm_(std::move(hsm)), store_(*hsm_) {}
  TokenSession(const TokenSession&) = delete;  // owns the token login
  TokenSession& operator=(const TokenSession&) = delete;

 private:
  std::unique_ptr<hsm::Hsm> hsm_;
  TokenKeyStore store_;
};

// With globals.verbose (-v), writes to `err` which config file and module a command uses (never a
// PIN), one "kubehsm: ..." line each; nothing otherwise. For commands that load the module only.
void ReportModuleSelection(const GlobalOptions& globals, std::ostream& err);
// ReportModuleSelection plus the token URI and the PIN source (its kind and file or variable name,
// never its contents), for commands that open a token.
void ReportTokenSelection(const GlobalOptions& globals, std::ostream& err);
// "slot 5: token 'kubehsm' (SoftHSM project SoftHSM v2, serial 1b67...)", escaped for a terminal.
std::string DescribeToken(const hsm::TokenInfo& info);

}  // namespace kubehsm::cli
