// PEM encodings as Go's encoding/pem and client-go write them (spec kubeadm-pki.md §3): standard
// base64 in 64-character lines, LF line endings, a trailing newline, no headers, no encryption.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "common/ssl_ptr.h"
#include "common/status.h"

namespace kubehsm::signer::pki {

// A private key in its type-specific form: `RSA PRIVATE KEY` (PKCS#1 RSAPrivateKey) or
// `EC PRIVATE KEY` (SEC1 ECPrivateKey with the named curve and the public key). Fails for keys
// that cannot be exported (token keys) or other algorithms.
Result<std::string> PrivateKeyToPem(const EVP_PKEY* key);

// `PUBLIC KEY`: the PKIX SubjectPublicKeyInfo.
Result<std::string> PublicKeyToPem(const EVP_PKEY* key);

// `CERTIFICATE`.
Result<std::string> CertificateToPem(const X509* cert);

// Parses every `CERTIFICATE` block of `pem` (other blocks are skipped). kInvalidArgument when
// there is none or one is malformed.
Result<std::vector<X509Ptr>> ParseCertificatesPem(std::string_view pem);

// Parses the first certificate of a PEM file's contents (kubeadm uses the first of a bundle).
Result<X509Ptr> ParseCertificatePem(std::string_view pem);

// Parses an unencrypted `RSA PRIVATE KEY`, `EC PRIVATE KEY` or PKCS#8 `PRIVATE KEY` (what kubeadm
// reads). kInvalidArgument otherwise.
Result<EvpPkeyPtr> ParsePrivateKeyPem(std::string_view pem);

// Parses a `PUBLIC KEY` block.
Result<EvpPkeyPtr> ParsePublicKeyPem(std::string_view pem);

}  // namespace kubehsm::signer::pki
