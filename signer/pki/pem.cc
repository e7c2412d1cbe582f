#include "signer/pki/pem.h"

#include <utility>

#include <openssl/core_names.h>
#include <openssl/pem.h>

#include "common/openssl_error.h"

namespace kubehsm::signer::pki {
namespace {

Result<std::string> BioContents(BIO* bio) {
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio, &data);
  if (len < 0) return OpenSslError("reading a memory BIO");
  return std::string(data, static_cast<size_t>(len));
}

Result<BioPtr> ReadBio(std::string_view data) {
  BioPtr bio(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
  if (!bio) return OpenSslError("BIO_new_mem_buf");
  return bio;
}

// Never prompts: kubeadm-layout keys are unencrypted.
int NoPassword(char*, int, int, void*) { return -1; }

}  // namespace

Result<std::string> PrivateKeyToPem(const EVP_PKEY* key) {
  if (!EVP_PKEY_is_a(key, "RSA") && !EVP_PKEY_is_a(key, "EC")) {
    return InvalidArgument("only RSA and ECDSA private keys are written");
  }
  // "type-specific" selects PKCS#1 RSAPrivateKey / SEC1 ECPrivateKey (with the named curve and the
  // public key), i.e. the `RSA PRIVATE KEY` / `EC PRIVATE KEY` blocks client-go writes.
  OsslEncoderCtxPtr ctx(
      OSSL_ENCODER_CTX_new_for_pkey(key, OSSL_KEYMGMT_SELECT_ALL, "PEM", "type-specific", nullptr));
  if (!ctx || OSSL_ENCODER_CTX_get_num_encoders(ctx.get()) == 0) {
    return OpenSslError("no PEM encoder for this private key (a token key cannot be exported)");
  }
  unsigned char* out = nullptr;
  size_t len = 0;
  if (OSSL_ENCODER_to_data(ctx.get(), &out, &len) != 1) return OpenSslError("encoding the private key");
  std::string pem(reinterpret_cast<char*>(out), len);
  OPENSSL_free(out);
  return pem;
}

Result<std::string> PublicKeyToPem(const EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PUBKEY(bio.get(), key) != 1) return OpenSslError("encoding the public key");
  return BioContents(bio.get());
}

Result<std::string> CertificateToPem(const X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) return OpenSslError("encoding the certificate");
  return BioContents(bio.get());
}

Result<std::vector<X509Ptr>> ParseCertificatesPem(std::string_view pem) {
  std::vector<X509Ptr> certs;
  // Walk the blocks so that non-certificate blocks are skipped and a broken one is an error.
  size_t pos = 0;
  static constexpr std::string_view kBegin = "-----BEGIN CERTIFICATE-----";
  static constexpr std::string_view kEnd = "-----END CERTIFICATE-----";
  while ((pos = pem.find(kBegin, pos)) != std::string_view::npos) {
    const size_t end = pem.find(kEnd, pos);
    if (end == std::string_view::npos) return InvalidArgument("unterminated CERTIFICATE block");
    KH_ASSIGN_OR_RETURN(BioPtr bio, ReadBio(pem.substr(pos, end + kEnd.size() - pos)));
    X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, NoPassword, nullptr));
    if (!cert) return OpenSslError(StatusCode::kInvalidArgument, "parsing a CERTIFICATE block");
    certs.push_back(std::move(cert));
    pos = end + kEnd.size();
  }
  if (certs.empty()) return InvalidArgument("no CERTIFICATE block found");
  return certs;
}

Result<X509Ptr> ParseCertificatePem(std::string_view pem) {
  KH_ASSIGN_OR_RETURN(std::vector<X509Ptr> certs, ParseCertificatesPem(pem));
  return std::move(certs.front());
}

Result<EvpPkeyPtr> ParsePrivateKeyPem(std::string_view pem) {
  if (pem.find("ENCRYPTED") != std::string_view::npos) return InvalidArgument("encrypted private keys are not supported");
  KH_ASSIGN_OR_RETURN(BioPtr bio, ReadBio(pem));
  EvpPkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassword, nullptr));
  if (!key) return OpenSslError(StatusCode::kInvalidArgument, "parsing the private key");
  if (!EVP_PKEY_is_a(key.get(), "RSA") && !EVP_PKEY_is_a(key.get(), "EC")) {
    return InvalidArgument("only RSA and ECDSA private keys are supported");
  }
  return key;
}

Result<EvpPkeyPtr> ParsePublicKeyPem(std::string_view pem) {
  KH_ASSIGN_OR_RETURN(BioPtr bio, ReadBio(pem));
  EvpPkeyPtr key(PEM_read_bio_PUBKEY(bio.get(), nullptr, NoPassword, nullptr));
  if (!key) return OpenSslError(StatusCode::kInvalidArgument, "parsing the public key");
  return key;
}

}  // namespace kubehsm::signer::pki
