// Air-gapped renewal of a kubeadm node's certificates, the node's two halves (the signing box's
// half is SignGenerateCsrDir with SignDirOptions::renew):
//
//   node: WriteRenewalCsrs      <cert-dir>/<leaf>.crt, <kubeconfig-dir>/<conf>  ->  renewal CSRs
//                               (out layout: pki/<leaf>.csr, <conf>.csr; no private key in it)
//                               + a new key per certificate, kept on the node beside the file it
//                               replaces: <cert-dir>/<leaf>.key.pending, <kubeconfig-dir>/<conf>.key.pending
//   box:  sign-dir --renew      -> pki/<leaf>.crt, <conf>.crt (+ pki/ca.crt, ... unchanged CAs)
//   node: InstallRenewed        each certificate next to its pending key, then the key replaces the
//                               old one; kubeconfigs get the certificate and key embedded.
//
// Neither node half needs a token or a CA key.
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "signer/pki/versions.h"

namespace kubehsm::signer::pki {

// The archive names of the renewal CSR layout ("pki/<leaf>.csr", "<conf>.csr") and of the signed
// renewal layout install accepts ("pki/<leaf>.crt", "<conf>.crt", the CA certificates, "pki/sa.pub").
std::vector<std::string> RenewalCsrNames();
std::vector<std::string> RenewalSignedNames();

// Where a pending (not yet installed) key lives: "<file>.key.pending" beside the certificate or
// kubeconfig it belongs to (leaf: <cert-dir>/<leaf>.key.pending; kubeconfig:
// <kubeconfig-dir>/<conf>.key.pending), mode 0600.
std::filesystem::path PendingKeyPath(const std::filesystem::path& dir, const std::string& base);

struct RenewalCsrOptions {
  std::filesystem::path cert_dir;        // the node's kubeadm certificate directory
  std::filesystem::path kubeconfig_dir;  // the node's kubeconfig directory
  std::filesystem::path out_dir;         // where the CSR layout is written (pki/... and <conf>.csr)
  // false: a new key of the same type as the certificate's, written as the pending key.
  // true: the request carries the existing key (<leaf>.key, the kubeconfig's client-key-data).
  bool reuse_keys = false;
  // When set, the subject O of a leaf whose O changed between Kubernetes versions
  // (apiserver-kubelet-client) is that version's (an upgrade renews with the new profile);
  // otherwise every subject is the certificate's own.
  std::optional<KubernetesVersion> version;
  std::function<void(const std::string&)> progress;  // may be empty
};

struct RenewalCsrSummary {
  int csrs = 0;                      // CSRs written
  int new_keys = 0;                  // pending keys written
  std::vector<std::string> skipped;  // "kubelet.conf: ...": present but not renewable this way
};

// For every existing leaf certificate (<cert-dir>/<leaf>.crt) and kubeconfig with an embedded
// client certificate, writes a CSR with the same subject (see `version`) and SANs into out_dir, and
// (unless reuse_keys) a new pending key. The CA certificates and keys are never read. Everything is
// read and checked first (each certificate parses; with reuse_keys each key matches its
// certificate); nothing is written when one fails (kInvalidArgument naming the file). kNotFound
// when cert_dir does not exist or holds none of the leaf certificates and kubeconfig_dir none of
// the kubeconfigs.
Result<RenewalCsrSummary> WriteRenewalCsrs(const RenewalCsrOptions& options);

struct InstallRenewedSummary {
  int installed = 0;  // certificates installed
  int new_keys = 0;   // of these, with a pending key that replaced the old key
};

// Installs the signed renewal layout in `signed_dir` (pki/<leaf>.crt, <conf>.crt, CA
// certificates) into cert_dir and kubeconfig_dir. Checked first, all or nothing: every certificate
// must be signed by the node's own CA certificate (<cert-dir>/ca.crt, ...), keep the CN of the
// certificate it replaces, and carry the pending key (or, without one, the current key); a CA
// certificate in the layout must equal the node's. Any problem fails the whole run with
// kPermissionDenied listing each, and nothing is written. Then, per certificate, the certificate
// is written atomically and only then the pending key replaces the old key (rename); a kubeconfig
// gets client-certificate-data, client-key-data and certificate-authority-data (the node's
// ca.crt) embedded and is rewritten atomically. kNotFound when the layout holds no certificate.
Result<InstallRenewedSummary> InstallRenewed(const std::filesystem::path& signed_dir,
                                             const std::filesystem::path& cert_dir,
                                             const std::filesystem::path& kubeconfig_dir,
                                             const std::function<void(const std::string&)>& progress);

}  // namespace kubehsm::signer::pki
