// `kubehsm init` and `kubehsm certs issue` as library functions over a KeyStore: the CA key pairs
// and the service-account key pair live in the store (a PKCS#11 token in production, a
// MemoryKeyStore in tests); every other key is a software key written to disk, as kubeadm does.
//
// Token labels (kubehsm's choice, see CaProfile::key_label): "ca", "etcd-ca", "front-proxy-ca" for
// the three CAs; the service-account key is signer/jwt's active SA key ("kubehsm-sa:active:..."),
// created with jwt::EnsureActiveSaKey so that `kubehsm sa rotate` continues from it. `ca.key`, `etcd/ca.key`,
// `front-proxy-ca.key` and `sa.key` are never written.
//
// Re-running is safe: a file or key that exists and is valid is kept and reported ("Using existing
// ..."); a CA certificate without its token key (or the reverse, or a key that does not match the
// certificate), a leaf that no longer matches its profile or CA, or a kubeconfig for another CA is
// an error unless `overwrite` is set. Even with `overwrite`, no token key is ever destroyed or
// replaced: a missing CA key is created, and an existing one is kept and the CA certificate
// re-issued from it. Every file is written atomically (temp + fsync + rename).
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"
#include "signer/key_store.h"
#include "signer/pki/certificate.h"
#include "signer/pki/cluster_config.h"
#include "signer/pki/issuance.h"

namespace kubehsm::signer::pki {

// Receives one progress line at a time (no trailing newline), e.g.
// `[certs] Generating "apiserver" certificate and key`.
using ProgressFn = std::function<void(const std::string& line)>;

struct PkiOptions {
  ClusterConfig config;
  std::filesystem::path cert_dir = "/etc/kubernetes/pki";
  std::filesystem::path kubeconfig_dir = "/etc/kubernetes";
  // kubeadm's T: computed once per run so every certificate of the run shares its validity.
  Clock::time_point now = Clock::now();
  // Replace what does not pair up or no longer matches (see the file comment). Never deletes keys.
  bool overwrite = false;
  ProgressFn progress;  // may be empty
  // Called around each step that can take seconds with nothing to print (a key generated in the
  // token; RSA-4096 takes several): with true right after the progress line announcing it, with
  // false when it ends. The CLI draws an elapsed-time display there, on a terminal only. May be empty.
  std::function<void(bool running)> long_step;
  // Called for every certificate the run signs, after signing and before any file holding it is
  // written (see signer/pki/issuance.h for the contract: kAlreadyExists re-signs with a fresh
  // serial, any other error aborts with nothing written). May be empty (nothing recorded). The
  // operation is "init" for RunInit/RunInitPhase, "issue" for IssueNodeSet, "renew" for
  // RenewCertificates.
  RecordFn record;
};

enum class InitPhase { kCa, kSa, kCerts, kKubeconfig };

// "ca", "sa", "certs", "kubeconfig" (nullopt otherwise).
std::optional<InitPhase> ParseInitPhase(std::string_view name);

// What a run did, for "nothing changed" reporting.
struct RunSummary {
  int written = 0;      // files written
  int kept = 0;         // existing files / keys kept
  int keys_created = 0; // key pairs created in the store
};

// Runs one phase:
//  - kCa: for each CA, find or create its key pair in `store` (type config.encryption_algorithm)
//    and self-sign `<base>.crt` (0644) with the CA profile.
//  - kSa: find or create the active service-account key pair in `store` (jwt::EnsureActiveSaKey)
//    and write `sa.pub` (PUBLIC KEY PEM, 0600).
//  - kCerts: every leaf of LeafProfiles() (the etcd set unless config.external_etcd) with a fresh
//    software key (`<base>.key` 0600, `<base>.crt` 0644). Needs the CAs (phase kCa).
//  - kKubeconfig: admin, super-admin, kubelet, controller-manager and scheduler kubeconfigs (0600)
//    with embedded client certificates signed by `ca`.
// Fails with the first error; files already written stay (each one complete).
Result<RunSummary> RunInitPhase(KeyStore& store, InitPhase phase, const PkiOptions& options);

// Runs every phase in order (ca, sa, certs, kubeconfig) and prints a final line saying whether
// anything changed.
Result<RunSummary> RunInit(KeyStore& store, const PkiOptions& options);

// `kubehsm certs issue`: the per-node set for another control-plane node into options.cert_dir /
// options.kubeconfig_dir, from the CAs whose certificates are in `ca_cert_dir` (keys in `store`):
// copies ca.crt, front-proxy-ca.crt, etcd/ca.crt and sa.pub (when present), then issues every leaf
// (fresh keys) and admin.conf, controller-manager.conf and scheduler.conf. Never creates CA keys.
Result<RunSummary> IssueNodeSet(KeyStore& store, const std::filesystem::path& ca_cert_dir, const PkiOptions& options);

}  // namespace kubehsm::signer::pki
