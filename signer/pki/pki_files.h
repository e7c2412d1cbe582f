// The kubeadm file layout (spec kubeadm-pki.md §5): paths, modes and loaders for certificate and
// key files, shared by init, issue, renew, check-expiration and verify.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string_view>

#include "common/ssl_ptr.h"
#include "common/status.h"

namespace kubehsm::signer::pki {

// Modes on creation (spec §5): certificates 0644; private keys, sa.pub and kubeconfigs 0600;
// directories 0755.
inline constexpr mode_t kCertMode = 0644;
inline constexpr mode_t kKeyMode = 0600;
inline constexpr mode_t kSaPubMode = 0600;
inline constexpr mode_t kKubeconfigMode = 0600;
inline constexpr mode_t kDirMode = 0755;

// Largest PEM / kubeconfig file kubehsm reads (bundles included).
inline constexpr std::size_t kMaxPemFileBytes = 1 << 20;

// "<cert_dir>/<base>.crt" and "<cert_dir>/<base>.key" ("etcd/server" -> etcd/server.crt).
std::filesystem::path CertPath(const std::filesystem::path& cert_dir, std::string_view base);
std::filesystem::path KeyPath(const std::filesystem::path& cert_dir, std::string_view base);
// "<cert_dir>/sa.pub".
std::filesystem::path SaPubPath(const std::filesystem::path& cert_dir);

// Loads the first certificate of a PEM file. kNotFound when the file is absent; kInvalidArgument
// naming the file when it does not parse.
Result<X509Ptr> LoadCertificateFile(const std::filesystem::path& path);

// Loads an unencrypted RSA/EC private key PEM file (kNotFound / kInvalidArgument as above).
Result<EvpPkeyPtr> LoadPrivateKeyFile(const std::filesystem::path& path);

// True when `path` exists (as anything, symlinks not followed).
bool PathExists(const std::filesystem::path& path);

}  // namespace kubehsm::signer::pki
