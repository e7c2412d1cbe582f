#include "signer/pki/issuance.h"

#include <string>

namespace kubehsm::signer::pki {

Result<X509Ptr> SignAndRecord(const std::function<Result<X509Ptr>()>& sign, const RecordFn& record,
                              const IssuedCertificate& meta) {
  for (int attempt = 0; attempt < kMaxIssueAttempts; ++attempt) {
    KH_ASSIGN_OR_RETURN(X509Ptr cert, sign());
    if (!record) return cert;
    IssuedCertificate issued = meta;
    issued.cert = cert.get();
    Status s = record(issued);
    if (s.ok()) return cert;
    if (s.code() != StatusCode::kAlreadyExists) {
      return s.WithContext("recording the " + std::string(meta.profile) + " certificate");
    }
    // The serial is taken (by this CA or another of the token's CAs): discard and re-sign.
  }
  return Internal("recording the " + std::string(meta.profile) + " certificate: " + std::to_string(kMaxIssueAttempts) +
                  " serial collisions in a row; refusing to continue");
}

}  // namespace kubehsm::signer::pki
