#include "signer/pki/pki_files.h"

#include <string>
#include <system_error>

#include "common/file_util.h"
#include "signer/pki/pem.h"

namespace kubehsm::signer::pki {

std::filesystem::path CertPath(const std::filesystem::path& cert_dir, std::string_view base) {
  return cert_dir / (std::string(base) + ".crt");
}

std::filesystem::path KeyPath(const std::filesystem::path& cert_dir, std::string_view base) {
  return cert_dir / (std::string(base) + ".key");
}

std::filesystem::path SaPubPath(const std::filesystem::path& cert_dir) { return cert_dir / "sa.pub"; }

Result<X509Ptr> LoadCertificateFile(const std::filesystem::path& path) {
  KH_ASSIGN_OR_RETURN(std::string pem, ReadFileBounded(path, kMaxPemFileBytes));
  Result<X509Ptr> cert = ParseCertificatePem(pem);
  if (!cert.ok()) return cert.status().WithContext(path.string());
  return cert;
}

Result<EvpPkeyPtr> LoadPrivateKeyFile(const std::filesystem::path& path) {
  KH_ASSIGN_OR_RETURN(std::string pem, ReadFileBounded(path, kMaxPemFileBytes));
  Result<EvpPkeyPtr> key = ParsePrivateKeyPem(pem);
  if (!key.ok()) return key.status().WithContext(path.string());
  return key;
}

bool PathExists(const std::filesystem::path& path) {
  std::error_code ec;
  const auto type = std::filesystem::symlink_status(path, ec).type();
  return type != std::filesystem::file_type::not_found && type != std::filesystem::file_type::none;
}

}  // namespace kubehsm::signer::pki
