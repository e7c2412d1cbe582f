// Builds X.509 certificates exactly as Go's crypto/x509 writes kubeadm's certificates (spec
// kubeadm-pki.md §1, §2, §8): v3, random positive serial of at most 8 bytes, subject O-then-CN with
// all O values in one multi-valued RDN and PrintableString/UTF8String chosen like Go, issuer copied
// byte-for-byte from the CA's subject, extensions built explicitly (never through OpenSSL's X509V3
// config machinery, which would add a SubjectKeyIdentifier to leaves) in Go's order, signed with
// the CA key's default digest (sha256WithRSAEncryption, ecdsa-with-SHA256/-SHA384).
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include <openssl/x509.h>

#include "common/ssl_ptr.h"
#include "common/status.h"
#include "signer/pki/profiles.h"
#include "signer/signing_key.h"

namespace kubehsm::signer::pki {

using Clock = std::chrono::system_clock;

// kubeadm's CertificateBackdate (1.31+): NotBefore = T - 5 minutes.
inline constexpr std::chrono::minutes kBackdate{5};

struct Validity {
  Clock::time_point not_before;
  Clock::time_point not_after;
};

// True when Go would encode `value` as a PrintableString: only letters, digits, space and
// '()+,-./:=? (Go's isPrintable with '*' and '&' not allowed). Otherwise Go uses UTF8String.
bool IsPrintableString(std::string_view value);

// Builds the Name O=...(one multi-valued RDN),CN=... with Go's string types. Empty O list: CN only.
Result<X509NamePtr> BuildSubjectName(const CertSpec& spec);

// A uniform random serial in [1, 2^63 - 2], as Go's rand.Int(MaxInt64 - 1) + 1 in kubeadm.
Result<Asn1IntegerPtr> RandomSerial();

// The SubjectKeyIdentifier kubehsm writes on CAs: SHA-1 of the subjectPublicKey BIT STRING
// contents (RFC 5280 §4.2.1.2 method 1), as Go 1.15-1.24 computes it. kubehsm follows Go <= 1.24
// because Kubernetes up to 1.34 is built with Go 1.24; Go >= 1.25 switched to truncated SHA-256.
Result<std::string> ComputeSubjectKeyId(const EVP_PKEY* public_key);

// Self-signs a CA certificate for `spec` with `key` (token or software). Extensions: keyUsage
// (critical, digitalSignature+keyEncipherment+keyCertSign), basicConstraints (critical, CA:TRUE,
// no pathLen), subjectKeyIdentifier, subjectAltName. No AKI (Go omits it when issuer == subject).
Result<X509Ptr> SelfSignCa(const SigningKey& key, const CertSpec& spec, const Validity& validity);

// Issues a leaf for `subject_public_key` signed by `ca_key` under `ca_cert`. Extensions: keyUsage
// (critical, digitalSignature+keyEncipherment), extKeyUsage (if any), basicConstraints (critical,
// CA:FALSE), authorityKeyIdentifier (keyIdentifier = the CA's SKI; omitted if the CA has none),
// subjectAltName (if any). No SKI. Fails when ca_key does not match ca_cert.
Result<X509Ptr> IssueLeaf(const SigningKey& ca_key, const X509* ca_cert, const EVP_PKEY* subject_public_key,
                          const CertSpec& spec, const Validity& validity);

// Reads back what a certificate says (subject CN/O, EKUs, SANs, CA flag) as a CertSpec, for renew
// and verification. Unknown EKUs and URI/e-mail SANs are ignored (kubeadm drops them on renew).
Result<CertSpec> SpecFromCertificate(const X509* cert);

// NotBefore / NotAfter of a certificate as time points.
Result<Validity> CertificateValidity(const X509* cert);

// DER encodings.
Result<std::string> CertificateDer(const X509* cert);
Result<std::string> SubjectDer(const X509* cert);
Result<std::string> IssuerDer(const X509* cert);
// The DER value (extnValue contents) of the extension `nid`; kNotFound when absent.
Result<std::string> ExtensionDer(const X509* cert, int nid, bool* critical = nullptr);

// True when `cert` carries `public_key` (compares SubjectPublicKeyInfo).
bool CertificateHasKey(const X509* cert, const EVP_PKEY* public_key);

// A PEM CERTIFICATE REQUEST for `spec`'s subject (O, CN) and SANs (nothing else is requested:
// usages come from the signer's profile), carrying and signed by the software private key `key`
// (SHA-256; SHA-384/512 for P-384/P-521). Fails when `key` is not a supported key type.
Result<std::string> MakeCsrPem(const CertSpec& spec, const EVP_PKEY* key);

// Verifies that `cert` was signed by `issuer` (issuer name bytes equal the CA subject and the
// signature verifies with the CA's public key, in software). kPermissionDenied otherwise.
Status VerifyIssuedBy(const X509* cert, const X509* issuer);

}  // namespace kubehsm::signer::pki
