#include "cli/issuance_recorder.h"

#include <pwd.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <string_view>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/objects.h>

#include "signer/jwt/sa_keys.h"
#include "signer/pki/certificate.h"
#include "signer/pki/pem.h"

namespace kubehsm::cli {
namespace {

std::string Hex(const unsigned char* p, std::size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < n; ++i) {
    out.push_back(kDigits[p[i] >> 4]);
    out.push_back(kDigits[p[i] & 15]);
  }
  return out;
}

std::string Host() {
  char name[256] = {};
  if (::gethostname(name, sizeof(name) - 1) != 0) return "unknown";
  return name;
}

// "O=a+O=b,CN=c": attributes in encoding order, one RDN's members joined by '+'.
std::string OneLineSubject(const X509_NAME* name) {
  std::string out;
  int last_set = -1;
  for (int i = 0; i < X509_NAME_entry_count(name); ++i) {
    const X509_NAME_ENTRY* e = X509_NAME_get_entry(name, i);
    const int nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(e));
    const ASN1_STRING* v = X509_NAME_ENTRY_get_data(e);
    const int set = X509_NAME_ENTRY_set(e);
    if (i > 0) out += set == last_set ? "+" : ",";
    last_set = set;
    out += (nid != NID_undef ? OBJ_nid2sn(nid) : "?");
    out += "=";
    out.append(reinterpret_cast<const char*>(ASN1_STRING_get0_data(v)),
               static_cast<std::size_t>(ASN1_STRING_length(v)));
  }
  return out;
}

int64_t UnixSeconds(signer::pki::Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

}  // namespace

std::string RequesterName() {
  const uid_t uid = ::geteuid();
  std::string buf(16384, '\0');
  struct passwd pw {};
  struct passwd* found = nullptr;
  if (::getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) == 0 && found != nullptr) return found->pw_name;
  return "uid:" + std::to_string(uid);
}

Result<ledger::IssuanceRecord> MakeIssuanceRecord(const signer::pki::IssuedCertificate& issued) {
  namespace pki = signer::pki;
  const X509* cert = issued.cert;
  ledger::IssuanceRecord r;
  BigNumPtr serial(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr));
  if (!serial) return Internal("reading the certificate serial");
  char* hex = BN_bn2hex(serial.get());
  if (hex == nullptr) return Internal("formatting the certificate serial");
  r.serial_hex = ledger::NormalizeSerialHex(hex);
  OPENSSL_free(hex);
  r.issuer_ca = std::string(issued.issuer_ca);
  r.subject = OneLineSubject(X509_get_subject_name(cert));
  KH_ASSIGN_OR_RETURN(pki::CertSpec spec, pki::SpecFromCertificate(cert));
  for (const auto& d : spec.sans.dns) r.sans.push_back("DNS:" + d);
  for (const auto& ip : spec.sans.ips) r.sans.push_back("IP:" + ip);
  r.profile = std::string(issued.profile);
  r.operation = std::string(issued.operation);
  KH_ASSIGN_OR_RETURN(pki::Validity validity, pki::CertificateValidity(cert));
  r.not_before = UnixSeconds(validity.not_before);
  r.not_after = UnixSeconds(validity.not_after);
  KH_ASSIGN_OR_RETURN(std::string der, pki::CertificateDer(cert));
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  if (EVP_Digest(der.data(), der.size(), md, &md_len, EVP_sha256(), nullptr) != 1) {
    return Internal("SHA-256 of the certificate");
  }
  r.sha256_fingerprint = Hex(md, md_len);
  r.requester = RequesterName();
  r.host = Host();
  r.issued_at = UnixSeconds(signer::pki::Clock::now());
  KH_ASSIGN_OR_RETURN(r.cert_pem, pki::CertificateToPem(cert));
  return r;
}

Result<signer::pki::RecordFn> LedgerRecorder(Context& ctx) {
  KH_ASSIGN_OR_RETURN(ledger::Ledger * l, ctx.Ledger());
  // Fail before any signing when the audit trail cannot take a record.
  KH_RETURN_IF_ERROR(ctx.CheckAudit());
  return signer::pki::RecordFn([l, &ctx](const signer::pki::IssuedCertificate& issued) -> Status {
    KH_ASSIGN_OR_RETURN(ledger::IssuanceRecord rec, MakeIssuanceRecord(issued));
    // The ledger row commits only once its audit record is durable: a certificate is either in
    // both (and may be handed out) or in neither (and is discarded).
    return l->RecordThen(rec, [&] {
      return ctx.AppendAudit(issued.operation == "renew" ? "cert-renew" : "cert-issue",
                             {{"serial", rec.serial_hex},
                              {"issuer", rec.issuer_ca},
                              {"profile", rec.profile},
                              {"operation", rec.operation},
                              {"subject", rec.subject},
                              {"sha256", rec.sha256_fingerprint},
                              {"notAfter", std::to_string(rec.not_after)}});
    });
  });
}

signer::pki::IssuedCheckFn LedgerIssuedCheck(ledger::Ledger& ledger) {
  return [&ledger](const X509* cert, std::string_view issuer_ca, std::string_view profile) -> Status {
    KH_ASSIGN_OR_RETURN(ledger::IssuanceRecord have,
                        MakeIssuanceRecord({cert, issuer_ca, profile, ""}));
    Result<ledger::IssuanceRecord> row = ledger.Get(have.serial_hex);
    if (!row.ok()) {
      if (row.status().code() == StatusCode::kNotFound) {
        return PermissionDenied("serial " + have.serial_hex + " is not in the issuance ledger " +
                                ledger.path().string() + " (kubehsm did not issue it)");
      }
      return row.status();
    }
    if (row->sha256_fingerprint != have.sha256_fingerprint) {
      return PermissionDenied("serial " + have.serial_hex + " is in the ledger with another certificate (sha256 " +
                              row->sha256_fingerprint + ")");
    }
    if (row->issuer_ca != issuer_ca) {
      return PermissionDenied("the ledger says serial " + have.serial_hex + " was issued by " + row->issuer_ca);
    }
    if (row->profile != profile) {
      return PermissionDenied("the ledger says serial " + have.serial_hex + " was issued as '" + row->profile +
                              "', not '" + std::string(profile) + "'");
    }
    return OkStatus();
  };
}

void AuditCsrRefused(Context& ctx, const std::string& csr, const std::string& profile, const std::string& reason) {
  ctx.AuditEvent("csr-refused", {{"csr", csr}, {"profile", profile}, {"reason", reason}});
}

Result<signer::SigningKey> AuditingKeyStore::Create(std::string_view label, KeyType type) {
  Result<signer::SigningKey> key = inner_.Create(label, type);
  if (!key.ok()) return key;
  // A service-account key is created under a temporary label and audited when it gets its
  // final one (Relabel below), so the record names its kid.
  if (jwt::ParseSaKeyLabel(label).has_value()) {
    types_[std::string(label)] = type;
    return key;
  }
  Status audited = ctx_.AppendAudit(
      "key-generate", {{"label", std::string(label)}, {"type", std::string(KeyTypeName(type))}, {"source", "init"}});
  if (!audited.ok()) {
    (void)inner_.Remove(label);  // a key nobody can account for is not kept
    return audited;
  }
  return key;
}

Status AuditingKeyStore::Relabel(std::string_view from, std::string_view to) {
  KH_RETURN_IF_ERROR(inner_.Relabel(from, to));
  auto it = types_.find(std::string(from));
  if (it == types_.end()) return OkStatus();
  const std::optional<jwt::SaKeyLabel> final_label = jwt::ParseSaKeyLabel(to);
  Status audited = ctx_.AppendAudit(
      "sa-key-generate", {{"kid", final_label ? final_label->kid : std::string(to)},
                          {"label", std::string(to)},
                          {"state", final_label ? std::string(jwt::SaKeyStateName(final_label->state)) : ""},
                          {"type", std::string(KeyTypeName(it->second))},
                          {"source", "generated-in-token"},
                          {"operation", "init"}});
  types_.erase(it);
  if (!audited.ok()) {
    (void)inner_.Relabel(to, from);  // back to the temporary label: the creator removes it
    return audited;
  }
  return OkStatus();
}

Status AuditingKeyStore::Remove(std::string_view label) {
  Status s = inner_.Remove(label);
  // init removes a key it just created when the CA certificate could not be written.
  if (s.ok()) ctx_.AuditEvent("key-remove", {{"label", std::string(label)}, {"source", "init"}});
  return s;
}

}  // namespace kubehsm::cli
