// Internal to signer/pki: the state of one init/issue/renew run, shared by init.cc and
// kubeconfig_phase.cc. Not part of the library's API.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/ssl_ptr.h"
#include "common/status.h"
#include "signer/key_store.h"
#include "signer/pki/certificate.h"
#include "signer/pki/init.h"
#include "signer/pki/profiles.h"

namespace kubehsm::signer::pki::internal {

// Software leaf keys generated ahead of use on worker threads (defined in init.cc).
class LeafKeyPool;

// A CA whose certificate (from disk) and key (from the store) were checked to pair up.
struct LoadedCa {
  const CaProfile* profile;
  X509Ptr cert;
  SigningKey key;
};

struct KeyAndCert {
  std::string key_pem;
  std::string cert_pem;
};

struct Runner {
  KeyStore& store;
  const PkiOptions& options;
  RunSummary summary;
  std::string_view operation = "init";  // what IssuedCertificate::operation says
  // Set by RunInit: the run's fresh leaf keys, generated in parallel ahead of use. Null: each key is
  // generated when needed, on the calling thread.
  std::shared_ptr<LeafKeyPool> leaf_keys = nullptr;

  void Say(const std::string& line) const;
  // Says `line` before a step that can take seconds, then marks the step running (options.long_step)
  // until the returned guard is destroyed.
  struct LongStep {
    explicit LongStep(const PkiOptions* o) : options(o) {}
    const PkiOptions* options;
    LongStep(const LongStep&) = delete;  // ends the step once
    LongStep& operator=(const LongStep&) = delete;
    ~LongStep() {
      if (options->long_step) options->long_step(false);
    }
  };
  [[nodiscard]] LongStep BeginLongStep(const std::string& line) const;
  // EnsureDirectory(parent, 0755) + WriteFileAtomic; counts the write.
  Status Write(const std::filesystem::path& path, std::string_view data, mode_t mode);
  Validity LeafValidity() const;
  Validity CaValidity() const;
  // Loads <cert_dir>/<ca>.crt and the store key, checking they pair up.
  Result<LoadedCa> LoadCa(const CaProfile& ca, const std::filesystem::path& cert_dir);
  // A fresh software key of config.encryption_algorithm (or `existing_key`) and its certificate,
  // as PEM. The certificate is recorded (options.record, as `profile`) before this returns.
  Result<KeyAndCert> IssueWithNewKey(const LoadedCa& ca, const CertSpec& spec, const Validity& validity,
                                     std::string_view profile, std::optional<SigningKey> existing_key = std::nullopt);
  // Writes <base>.key (0600) then <base>.crt (0644); removes the new key if the cert write fails.
  Status WriteKeyAndCert(std::string_view base, const KeyAndCert& kc);
};

// Checks an existing leaf against its profile: key matches, chains to `ca_cert`, same subject and
// EKUs, and every wanted SAN present.
Status CheckLeaf(const X509* cert, const EVP_PKEY* key, const X509* ca_cert, const CertSpec& want);

// Issues (or keeps) every leaf under options.cert_dir, with CAs loaded from `ca_dir`.
Status IssueLeafSet(Runner& r, const std::filesystem::path& ca_dir);

// The kubeconfig phase. `node_set_only`: only the files a joining control-plane node gets
// (admin, controller-manager, scheduler), as `certs issue` writes them.
Status WriteKubeconfigs(Runner& r, bool node_set_only);

// True when both paths exist and name the same directory.
bool SameDirectory(const std::filesystem::path& a, const std::filesystem::path& b);

}  // namespace kubehsm::signer::pki::internal
