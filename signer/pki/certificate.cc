#include "signer/pki/certificate.h"

#include <openssl/asn1.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <string>
#include <string_view>
#include <vector>

#include "common/openssl_error.h"

namespace kubehsm::signer::pki {
namespace {

// Go's crypto/x509 caps serials to 20 octets; kubeadm draws below MaxInt64 - 1 and adds one.
constexpr uint64_t kSerialRange = (uint64_t{1} << 63) - 2;  // values 0 .. 2^63-3, then +1

Status AddNameEntry(X509_NAME* name, int nid, const std::string& value, int set) {
  const int type = IsPrintableString(value) ? V_ASN1_PRINTABLESTRING : V_ASN1_UTF8STRING;
  // A plain V_ASN1_* type (no MBSTRING_ flag) stores the bytes with exactly that string type.
  if (X509_NAME_add_entry_by_NID(name, nid, type, reinterpret_cast<const unsigned char*>(value.data()),
                                 static_cast<int>(value.size()), -1, set) != 1) {
    return OpenSslError("adding a name attribute");
  }
  return OkStatus();
}

Result<Asn1TimePtr> ToAsn1Time(Clock::time_point t) {
  // ASN1_TIME_set picks UTCTime for 1950-2049 and GeneralizedTime otherwise (RFC 5280 §4.1.2.5),
  // which is also Go's rule; seconds precision, 'Z' suffix.
  const time_t secs = Clock::to_time_t(std::chrono::time_point_cast<std::chrono::seconds>(t));
  Asn1TimePtr time(ASN1_TIME_set(nullptr, secs));
  if (!time) return OpenSslError("encoding a certificate time");
  return time;
}

Status AddExtension(X509* x, int nid, void* value, bool critical) {
  if (X509_add1_ext_i2d(x, nid, value, critical ? 1 : 0, X509V3_ADD_APPEND) != 1) {
    return OpenSslError("adding extension " + std::string(OBJ_nid2sn(nid)));
  }
  return OkStatus();
}

Status AddKeyUsage(X509* x, bool ca) {
  Asn1BitStringPtr ku(ASN1_BIT_STRING_new());
  if (!ku) return OpenSslError("ASN1_BIT_STRING_new");
  // Bits (RFC 5280 §4.2.1.3): 0 digitalSignature, 2 keyEncipherment, 5 keyCertSign. DER drops
  // trailing zero bits, giving 03 02 05 A0 for leaves and 03 02 02 A4 for CAs.
  bool ok = ASN1_BIT_STRING_set_bit(ku.get(), 0, 1) == 1 && ASN1_BIT_STRING_set_bit(ku.get(), 2, 1) == 1;
  if (ca) ok = ok && ASN1_BIT_STRING_set_bit(ku.get(), 5, 1) == 1;
  if (!ok) return OpenSslError("setting key usage bits");
  return AddExtension(x, NID_key_usage, ku.get(), true);
}

Status AddExtKeyUsage(X509* x, const std::vector<ExtKeyUsage>& ekus) {
  if (ekus.empty()) return OkStatus();
  ExtendedKeyUsagePtr eku(sk_ASN1_OBJECT_new_null());
  if (!eku) return OpenSslError("sk_ASN1_OBJECT_new_null");
  for (ExtKeyUsage u : ekus) {
    Asn1ObjectPtr obj(OBJ_nid2obj(u == ExtKeyUsage::kServerAuth ? NID_server_auth : NID_client_auth));
    if (!obj || sk_ASN1_OBJECT_push(eku.get(), obj.get()) == 0) return OpenSslError("building extKeyUsage");
    obj.release();  // owned by the stack
  }
  return AddExtension(x, NID_ext_key_usage, eku.get(), false);
}

Status AddBasicConstraints(X509* x, bool ca) {
  BasicConstraintsPtr bc(BASIC_CONSTRAINTS_new());
  if (!bc) return OpenSslError("BASIC_CONSTRAINTS_new");
  // cA is DEFAULT FALSE, so a leaf encodes as 30 00 and a CA as 30 03 01 01 FF; no pathLen.
  bc->ca = ca ? 0xFF : 0;
  return AddExtension(x, NID_basic_constraints, bc.get(), true);
}

// The subjectAltName value for `sans` (empty `sans`: nullptr).
Result<GeneralNamesPtr> SanNames(const SanSet& sans) {
  if (sans.dns.empty() && sans.ips.empty()) return GeneralNamesPtr();
  GeneralNamesPtr names(GENERAL_NAMES_new());
  if (!names) return OpenSslError("GENERAL_NAMES_new");
  auto push = [&](int type, const std::string& bytes) -> Status {
    Asn1StringPtr str(type == GEN_DNS ? ASN1_IA5STRING_new() : ASN1_OCTET_STRING_new());
    if (!str || ASN1_STRING_set(str.get(), bytes.data(), static_cast<int>(bytes.size())) != 1) {
      return OpenSslError("building a SAN");
    }
    GeneralNamePtr gn(GENERAL_NAME_new());
    if (!gn) return OpenSslError("GENERAL_NAME_new");
    GENERAL_NAME_set0_value(gn.get(), type, str.release());
    if (sk_GENERAL_NAME_push(names.get(), gn.get()) == 0) return OpenSslError("sk_GENERAL_NAME_push");
    gn.release();  // owned by the stack
    return OkStatus();
  };
  // Go writes every DNS name first, then every IP (4 bytes for IPv4, 16 for IPv6).
  for (const auto& d : sans.dns) KH_RETURN_IF_ERROR(push(GEN_DNS, d));
  for (const auto& ip : sans.ips) {
    const std::string bytes = ParseIp(ip);
    if (bytes.empty()) return InvalidArgument("invalid IP SAN '" + ip + "'");
    KH_RETURN_IF_ERROR(push(GEN_IPADD, bytes));
  }
  return names;
}

Status AddSubjectAltName(X509* x, const SanSet& sans) {
  KH_ASSIGN_OR_RETURN(GeneralNamesPtr names, SanNames(sans));
  if (!names) return OkStatus();
  return AddExtension(x, NID_subject_alt_name, names.get(), false);
}

Status AddKeyIdExtension(X509* x, int nid, const std::string& key_id) {
  Asn1OctetStringPtr id(ASN1_OCTET_STRING_new());
  if (!id || ASN1_OCTET_STRING_set(id.get(), reinterpret_cast<const unsigned char*>(key_id.data()),
                                   static_cast<int>(key_id.size())) != 1) {
    return OpenSslError("building a key identifier");
  }
  if (nid == NID_subject_key_identifier) return AddExtension(x, nid, id.get(), false);
  AuthorityKeyIdPtr aki(AUTHORITY_KEYID_new());
  if (!aki) return OpenSslError("AUTHORITY_KEYID_new");
  aki->keyid = id.release();  // keyIdentifier only, as Go writes it
  return AddExtension(x, NID_authority_key_identifier, aki.get(), false);
}

// Fields common to CAs and leaves: version, serial, subject, validity, public key.
Result<X509Ptr> NewCertificate(const CertSpec& spec, const EVP_PKEY* public_key, const Validity& validity) {
  X509Ptr x(X509_new());
  if (!x) return OpenSslError("X509_new");
  if (X509_set_version(x.get(), X509_VERSION_3) != 1) return OpenSslError("X509_set_version");
  KH_ASSIGN_OR_RETURN(Asn1IntegerPtr serial, RandomSerial());
  if (X509_set_serialNumber(x.get(), serial.get()) != 1) return OpenSslError("X509_set_serialNumber");
  KH_ASSIGN_OR_RETURN(X509NamePtr subject, BuildSubjectName(spec));
  if (X509_set_subject_name(x.get(), subject.get()) != 1) return OpenSslError("X509_set_subject_name");
  KH_ASSIGN_OR_RETURN(Asn1TimePtr nb, ToAsn1Time(validity.not_before));
  KH_ASSIGN_OR_RETURN(Asn1TimePtr na, ToAsn1Time(validity.not_after));
  if (X509_set1_notBefore(x.get(), nb.get()) != 1 || X509_set1_notAfter(x.get(), na.get()) != 1) {
    return OpenSslError("setting the validity");
  }
  if (X509_set_pubkey(x.get(), const_cast<EVP_PKEY*>(public_key)) != 1) return OpenSslError("X509_set_pubkey");
  return x;
}

// The signature AlgorithmIdentifier Go's crypto/x509 writes for the CA key: sha256WithRSAEncryption
// with NULL parameters (RFC 4055 §5), ecdsa-with-SHA256/384/512 without parameters (RFC 5758 §3.2).
// The digest follows the key: SHA-256 for RSA and P-256, SHA-384 for P-384, SHA-512 for P-521.
Status SetSignatureAlgorithm(X509_ALGOR* alg, KeyType type) {
  int nid = NID_sha256WithRSAEncryption;
  int param_type = V_ASN1_NULL;
  if (!IsRsa(type)) {
    param_type = V_ASN1_UNDEF;
    nid = type == KeyType::kEcP384 ? NID_ecdsa_with_SHA384
          : type == KeyType::kEcP521 ? NID_ecdsa_with_SHA512
                                     : NID_ecdsa_with_SHA256;
  }
  if (X509_ALGOR_set0(alg, OBJ_nid2obj(nid), param_type, nullptr) != 1) return OpenSslError("X509_ALGOR_set0");
  return OkStatus();
}

// Signs the TBSCertificate with key.Sign (which verifies the token's signature before returning
// it) and stores the signature. Signing the encoded TBS ourselves, rather than X509_sign_ctx on the
// provider key, lets one code path serve tokens that hash-and-sign and tokens that only sign a
// digest.
Status Sign(X509* x, const SigningKey& key) {
  const ASN1_BIT_STRING* signature = nullptr;
  const X509_ALGOR* outer_alg = nullptr;
  X509_get0_signature(&signature, &outer_alg, x);
  // X509 exposes its algorithm identifiers and signature as const; they are owned by `x`, which is
  // being built here and is not shared.
  KH_RETURN_IF_ERROR(SetSignatureAlgorithm(const_cast<X509_ALGOR*>(X509_get0_tbs_sigalg(x)), key.type()));
  KH_RETURN_IF_ERROR(SetSignatureAlgorithm(const_cast<X509_ALGOR*>(outer_alg), key.type()));
  unsigned char* tbs = nullptr;
  const int tbs_len = i2d_re_X509_tbs(x, &tbs);
  if (tbs_len <= 0) return OpenSslError("encoding the TBSCertificate");
  const OpenSslBufferPtr tbs_owner(tbs);
  KH_ASSIGN_OR_RETURN(std::string sig,
                      key.Sign(std::string_view(reinterpret_cast<const char*>(tbs), static_cast<size_t>(tbs_len))));
  auto* bits = const_cast<ASN1_BIT_STRING*>(signature);
  if (ASN1_BIT_STRING_set(bits, reinterpret_cast<unsigned char*>(sig.data()), static_cast<int>(sig.size())) != 1) {
    return OpenSslError("storing the certificate signature");
  }
  // A signature is a whole number of bytes: zero unused bits, stated explicitly (X.690 §8.6.2.2).
  bits->flags &= ~(ASN1_STRING_FLAG_BITS_LEFT | 0x07L);
  bits->flags |= ASN1_STRING_FLAG_BITS_LEFT;
  return OkStatus();
}

std::string AsnString(const ASN1_STRING* s) {
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)), static_cast<size_t>(ASN1_STRING_length(s)));
}

template <typename T, typename F>
Result<std::string> ToDer(const T* obj, F i2d, const char* what) {
  unsigned char* der = nullptr;
  const int len = i2d(obj, &der);
  if (len <= 0) return OpenSslError(std::string("encoding ") + what);
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

Clock::time_point FromAsn1Time(const ASN1_TIME* t, bool* ok) {
  struct tm tm {};
  *ok = ASN1_TIME_to_tm(t, &tm) == 1;
  return Clock::from_time_t(timegm(&tm));
}

}  // namespace

bool IsPrintableString(std::string_view value) {
  return std::all_of(value.begin(), value.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || (c >= '\'' && c <= ')') ||
           (c >= '+' && c <= '/') || c == ' ' || c == ':' || c == '=' || c == '?';
  });
}

Result<X509NamePtr> BuildSubjectName(const CertSpec& spec) {
  X509NamePtr name(X509_NAME_new());
  if (!name) return OpenSslError("X509_NAME_new");
  // Go's pkix.Name.ToRDNSequence puts all O values in ONE RDN (a SET; DER sorts its members, as
  // Go >= 1.15 and OpenSSL both do), then CN in its own RDN. set=0 opens a new RDN, set=-1 adds to
  // the previous one.
  for (size_t i = 0; i < spec.organizations.size(); ++i) {
    KH_RETURN_IF_ERROR(AddNameEntry(name.get(), NID_organizationName, spec.organizations[i], i == 0 ? 0 : -1));
  }
  if (!spec.common_name.empty()) KH_RETURN_IF_ERROR(AddNameEntry(name.get(), NID_commonName, spec.common_name, 0));
  return name;
}

Result<Asn1IntegerPtr> RandomSerial() {
  // Rejection sampling keeps the draw uniform over [0, kSerialRange).
  uint64_t v = 0;
  do {
    if (RAND_bytes(reinterpret_cast<unsigned char*>(&v), sizeof(v)) != 1) return OpenSslError("RAND_bytes");
    v &= (uint64_t{1} << 63) - 1;
  } while (v >= kSerialRange);
  Asn1IntegerPtr serial(ASN1_INTEGER_new());
  if (!serial || ASN1_INTEGER_set_uint64(serial.get(), v + 1) != 1) return OpenSslError("encoding the serial");
  return serial;
}

Result<std::string> ComputeSubjectKeyId(const EVP_PKEY* public_key) {
  X509_PUBKEY* raw = nullptr;
  if (X509_PUBKEY_set(&raw, const_cast<EVP_PKEY*>(public_key)) != 1) return OpenSslError("X509_PUBKEY_set");
  X509PubkeyPtr pub(raw);
  const unsigned char* bits = nullptr;
  int len = 0;
  if (X509_PUBKEY_get0_param(nullptr, &bits, &len, nullptr, pub.get()) != 1) {
    return OpenSslError("reading the subjectPublicKey");
  }
  unsigned char md[SHA_DIGEST_LENGTH];
  unsigned int md_len = 0;
  if (EVP_Digest(bits, static_cast<size_t>(len), md, &md_len, EVP_sha1(), nullptr) != 1) {
    return OpenSslError("SHA-1 of the subjectPublicKey");
  }
  return std::string(reinterpret_cast<char*>(md), md_len);
}

Result<X509Ptr> SelfSignCa(const SigningKey& key, const CertSpec& spec, const Validity& validity) {
  KH_ASSIGN_OR_RETURN(X509Ptr x, NewCertificate(spec, key.public_key(), validity));
  // Self-signed: the issuer is the subject just encoded.
  if (X509_set_issuer_name(x.get(), X509_get_subject_name(x.get())) != 1) return OpenSslError("X509_set_issuer_name");
  KH_RETURN_IF_ERROR(AddKeyUsage(x.get(), true));
  KH_RETURN_IF_ERROR(AddBasicConstraints(x.get(), true));
  KH_ASSIGN_OR_RETURN(std::string ski, ComputeSubjectKeyId(key.public_key()));
  KH_RETURN_IF_ERROR(AddKeyIdExtension(x.get(), NID_subject_key_identifier, ski));
  KH_RETURN_IF_ERROR(AddSubjectAltName(x.get(), spec.sans));
  KH_RETURN_IF_ERROR(Sign(x.get(), key));
  return x;
}

Result<X509Ptr> IssueLeaf(const SigningKey& ca_key, const X509* ca_cert, const EVP_PKEY* subject_public_key,
                          const CertSpec& spec, const Validity& validity) {
  if (!CertificateHasKey(ca_cert, ca_key.public_key())) {
    return FailedPrecondition("the CA key does not match the CA certificate");
  }
  KH_ASSIGN_OR_RETURN(X509Ptr x, NewCertificate(spec, subject_public_key, validity));
  // X509_set_issuer_name copies the CA's cached subject encoding, so the bytes are the CA's own.
  if (X509_set_issuer_name(x.get(), X509_get_subject_name(ca_cert)) != 1) return OpenSslError("X509_set_issuer_name");
  KH_RETURN_IF_ERROR(AddKeyUsage(x.get(), false));
  KH_RETURN_IF_ERROR(AddExtKeyUsage(x.get(), spec.ext_key_usages));
  KH_RETURN_IF_ERROR(AddBasicConstraints(x.get(), false));
  const ASN1_OCTET_STRING* ca_ski = X509_get0_subject_key_id(const_cast<X509*>(ca_cert));
  if (ca_ski != nullptr) KH_RETURN_IF_ERROR(AddKeyIdExtension(x.get(), NID_authority_key_identifier, AsnString(ca_ski)));
  KH_RETURN_IF_ERROR(AddSubjectAltName(x.get(), spec.sans));
  KH_RETURN_IF_ERROR(Sign(x.get(), ca_key));
  return x;
}

Result<CertSpec> SpecFromCertificate(const X509* cert) {
  CertSpec spec;
  const X509_NAME* subject = X509_get_subject_name(cert);
  for (int i = 0; i < X509_NAME_entry_count(subject); ++i) {
    const X509_NAME_ENTRY* e = X509_NAME_get_entry(subject, i);
    const int nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(e));
    const std::string value = AsnString(X509_NAME_ENTRY_get_data(e));
    if (nid == NID_commonName) spec.common_name = value;
    if (nid == NID_organizationName) spec.organizations.push_back(value);
  }
  spec.is_ca = (X509_get_extension_flags(const_cast<X509*>(cert)) & EXFLAG_CA) != 0;
  int crit = 0;
  ExtendedKeyUsagePtr eku(
      static_cast<EXTENDED_KEY_USAGE*>(X509_get_ext_d2i(cert, NID_ext_key_usage, &crit, nullptr)));
  if (eku) {
    for (int i = 0; i < sk_ASN1_OBJECT_num(eku.get()); ++i) {
      const int nid = OBJ_obj2nid(sk_ASN1_OBJECT_value(eku.get(), i));
      if (nid == NID_server_auth) spec.ext_key_usages.push_back(ExtKeyUsage::kServerAuth);
      if (nid == NID_client_auth) spec.ext_key_usages.push_back(ExtKeyUsage::kClientAuth);
    }
  }
  GeneralNamesPtr sans(static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, &crit, nullptr)));
  if (sans) {
    for (int i = 0; i < sk_GENERAL_NAME_num(sans.get()); ++i) {
      const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans.get(), i);
      int type = 0;
      const auto* value = static_cast<const ASN1_STRING*>(GENERAL_NAME_get0_value(gn, &type));
      if (type == GEN_DNS) spec.sans.dns.push_back(AsnString(value));
      if (type == GEN_IPADD) spec.sans.ips.push_back(FormatIp(AsnString(value)));
    }
  }
  return spec;
}

Result<Validity> CertificateValidity(const X509* cert) {
  bool ok1 = false;
  bool ok2 = false;
  Validity v{FromAsn1Time(X509_get0_notBefore(cert), &ok1), FromAsn1Time(X509_get0_notAfter(cert), &ok2)};
  if (!ok1 || !ok2) return OpenSslError(StatusCode::kInvalidArgument, "reading the certificate validity");
  return v;
}

Result<std::string> CertificateDer(const X509* cert) { return ToDer(cert, i2d_X509, "the certificate"); }
Result<std::string> SubjectDer(const X509* cert) {
  return ToDer(X509_get_subject_name(cert), i2d_X509_NAME, "the subject");
}
Result<std::string> IssuerDer(const X509* cert) {
  return ToDer(X509_get_issuer_name(cert), i2d_X509_NAME, "the issuer");
}

Result<std::string> ExtensionDer(const X509* cert, int nid, bool* critical) {
  const int idx = X509_get_ext_by_NID(cert, nid, -1);
  if (idx < 0) return NotFound(std::string("no ") + OBJ_nid2sn(nid) + " extension");
  const X509_EXTENSION* ext = X509_get_ext(cert, idx);
  if (critical != nullptr) *critical = X509_EXTENSION_get_critical(ext) == 1;
  return AsnString(X509_EXTENSION_get_data(const_cast<X509_EXTENSION*>(ext)));
}

bool CertificateHasKey(const X509* cert, const EVP_PKEY* public_key) {
  const EVP_PKEY* cert_key = X509_get0_pubkey(cert);
  const bool eq = cert_key != nullptr && EVP_PKEY_eq(cert_key, public_key) == 1;
  DrainOpenSslErrors();
  return eq;
}

Status VerifyIssuedBy(const X509* cert, const X509* issuer) {
  if (X509_NAME_cmp(X509_get_issuer_name(cert), X509_get_subject_name(issuer)) != 0) {
    return PermissionDenied("issuer name does not match the CA's subject");
  }
  EVP_PKEY* ca_key = X509_get0_pubkey(issuer);
  const int rc = ca_key == nullptr ? 0 : X509_verify(const_cast<X509*>(cert), ca_key);
  DrainOpenSslErrors();
  if (rc != 1) return PermissionDenied("signature does not verify with the CA's key");
  return OkStatus();
}

Result<std::string> MakeCsrPem(const CertSpec& spec, const EVP_PKEY* key) {
  Result<KeyType> type = KeyTypeOf(key);
  if (!type.ok()) return type.status();
  X509ReqPtr req(X509_REQ_new());
  if (!req) return OpenSslError("X509_REQ_new");
  KH_ASSIGN_OR_RETURN(X509NamePtr name, BuildSubjectName(spec));
  if (X509_REQ_set_version(req.get(), X509_REQ_VERSION_1) != 1 ||
      X509_REQ_set_subject_name(req.get(), name.get()) != 1 ||
      X509_REQ_set_pubkey(req.get(), const_cast<EVP_PKEY*>(key)) != 1) {
    return OpenSslError("building the certificate request");
  }
  KH_ASSIGN_OR_RETURN(GeneralNamesPtr sans, SanNames(spec.sans));
  if (sans) {
    X509ExtensionStackPtr exts(sk_X509_EXTENSION_new_null());
    X509ExtensionPtr ext(X509V3_EXT_i2d(NID_subject_alt_name, 0, sans.get()));
    if (!exts || !ext || sk_X509_EXTENSION_push(exts.get(), ext.get()) == 0) return OpenSslError("the SAN request");
    ext.release();  // owned by the stack
    if (X509_REQ_add_extensions(req.get(), exts.get()) != 1) return OpenSslError("X509_REQ_add_extensions");
  }
  const EVP_MD* md = *type == KeyType::kEcP384 ? EVP_sha384() : *type == KeyType::kEcP521 ? EVP_sha512() : EVP_sha256();
  // The request is signed by the (software) subject key itself: proof of possession.
  if (X509_REQ_sign(req.get(), const_cast<EVP_PKEY*>(key), md) <= 0) return OpenSslError("signing the request");
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509_REQ(bio.get(), req.get()) != 1) return OpenSslError("PEM_write_bio_X509_REQ");
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

}  // namespace kubehsm::signer::pki
