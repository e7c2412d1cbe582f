// The issuance hook: how signer/pki hands every certificate it signs to a recorder (the issuance
// ledger, wired in by cli/) before the certificate is written anywhere. signer/pki does not depend
// on the ledger; it only knows this callback.
//
// Contract, for every certificate kubehsm signs (CA self-signatures, leaves, kubeconfig client
// certificates, renewals, signed CSRs):
//  1. the certificate is signed in memory;
//  2. the recorder is called with it. OK means "durably recorded": only then is the certificate
//     written to a file or returned to the caller;
//  3. kAlreadyExists means "this serial is taken": the certificate is discarded and signed again
//     with a fresh random serial (at most kMaxIssueAttempts times);
//  4. any other error aborts the operation; the certificate is discarded and no file is written.
#pragma once

#include <functional>
#include <string_view>

#include <openssl/x509.h>

#include "common/ssl_ptr.h"
#include "common/status.h"

namespace kubehsm::signer::pki {

// One freshly signed certificate, as the recorder sees it. Everything is borrowed for the
// duration of the call only.
struct IssuedCertificate {
  const X509* cert = nullptr;  // the signed certificate (serial, subject, SANs, validity, DER)
  std::string_view issuer_ca;  // CA name: "ca", "etcd-ca", "front-proxy-ca"
  std::string_view profile;    // "apiserver", "admin.conf", "kubelet-client", a policy profile, "ca"
  std::string_view operation;  // "init", "issue", "renew", "sign-csr", "sign-dir"
};

// Records a certificate durably (see the contract above). An empty function records nothing.
using RecordFn = std::function<Status(const IssuedCertificate&)>;

// How often a certificate is re-signed after kAlreadyExists before giving up.
inline constexpr int kMaxIssueAttempts = 5;

// Runs `sign` (which must draw a fresh serial on every call) and hands the result to `record`
// with the metadata of `meta` (its `cert` is ignored), re-signing on kAlreadyExists. Returns the
// recorded certificate; fails with `sign`'s error, `record`'s error (other than kAlreadyExists),
// or kInternal after kMaxIssueAttempts serial collisions. With an empty `record` this is `sign()`.
Result<X509Ptr> SignAndRecord(const std::function<Result<X509Ptr>()>& sign, const RecordFn& record,
                              const IssuedCertificate& meta);

}  // namespace kubehsm::signer::pki
