// Wiring of signer/pki's issuance hook to the issuance ledger and the audit trail (cli/ is the
// only place that knows both): every certificate is recorded in ctx.Ledger() before signer/pki
// writes it, and an audit event is appended for it; key pairs created in the token are audited.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "cli/command.h"
#include "common/status.h"
#include "ledger/ledger.h"
#include "signer/key_store.h"
#include "signer/pki/issuance.h"
#include "signer/pki/maintenance.h"

namespace kubehsm::cli {

// The ledger row for a freshly signed certificate: serial (upper-case hex as openssl prints it),
// issuing CA, one-line subject ("O=a+O=b,CN=c"), SANs ("DNS:x", "IP:y"), profile, operation,
// validity, SHA-256 fingerprint of the DER (lower-case hex), requester (the effective user's
// name), host (gethostname), issue time and the PEM.
Result<ledger::IssuanceRecord> MakeIssuanceRecord(const signer::pki::IssuedCertificate& issued);

// The effective user's name ("uid:N" when it has none), as ledger rows and audit records name it.
std::string RequesterName();

// A RecordFn that inserts MakeIssuanceRecord(...) into ctx.Ledger() and, inside the same ledger
// transaction, appends the audit event "cert-renew" (operation "renew") or "cert-issue" with
// serial, issuer, profile, operation, subject, sha256 and notAfter. OK means both are durable;
// when the audit append fails the ledger row is rolled back and the error returned, so signer/pki
// discards the certificate (nothing is written or handed out). kAlreadyExists for a serial
// already in the ledger, so signer/pki re-signs. Creating the recorder fails when the ledger
// cannot be opened or the audit log cannot take an append (ctx.CheckAudit), before any signing.
// `ctx` must outlive the returned function.
Result<signer::pki::RecordFn> LedgerRecorder(Context& ctx);

// renew's "did this CA issue it" check over the ledger: the certificate's serial is in `ledger`
// with the same SHA-256, issuing CA and profile. kPermissionDenied saying which differs. Borrows
// `ledger`.
signer::pki::IssuedCheckFn LedgerIssuedCheck(ledger::Ledger& ledger);

// Appends a "csr-refused" audit event (csr file, profile, reason).
void AuditCsrRefused(Context& ctx, const std::string& csr, const std::string& profile, const std::string& reason);

// A KeyStore that forwards to another and appends a "key-generate" audit event (label, type,
// source "init") for every key pair it creates; a service-account key (created under a temporary
// kubehsm-sa:new: label) is audited as "sa-key-generate" with its kid when it gets its final label.
// When the audit record cannot be written the new key is undone (removed, or relabelled back to its
// temporary label for its creator to remove) and the error returned. Borrows `inner` and `ctx`.
class AuditingKeyStore final : public signer::KeyStore {
 public:
  AuditingKeyStore(signer::KeyStore& inner, Context& ctx) : inner_(inner), ctx_(ctx) {}

  Result<signer::SigningKey> Find(std::string_view label) override { return inner_.Find(label); }
  Result<signer::SigningKey> Create(std::string_view label, KeyType type) override;
  Status CheckCanCreate(KeyType type) override { return inner_.CheckCanCreate(type); }
  Status ImportPublicKey(std::string_view label, std::string_view spki_der) override {
    return inner_.ImportPublicKey(label, spki_der);
  }
  Result<std::vector<signer::StoredKeyInfo>> List() override { return inner_.List(); }
  Status Relabel(std::string_view from, std::string_view to) override;
  Status Remove(std::string_view label) override;

 private:
  signer::KeyStore& inner_;
  Context& ctx_;
  std::map<std::string, KeyType> types_;  // service-account keys created, by temporary label
};

}  // namespace kubehsm::cli
