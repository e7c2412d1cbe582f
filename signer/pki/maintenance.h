// Day-2 operations on a kubeadm PKI directory: `certs check-expiration` (spec kubeadm-pki.md §7),
// `certs renew` (§7), `pki verify` and `pki tree`.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "signer/key_store.h"
#include "signer/pki/certificate.h"
#include "signer/pki/cluster_config.h"
#include "signer/pki/init.h"

namespace kubehsm::signer::pki {

// ---- check-expiration ------------------------------------------------------------------------

struct ExpirationItem {
  std::string name;               // "apiserver", "admin.conf", "etcd-ca", ...
  Clock::time_point expires{};    // NotAfter (unset when missing)
  std::string ca_name;            // signing CA's name; empty for CAs
  bool externally_managed = false;
  bool missing = false;
};

struct ExpirationReport {
  Clock::time_point now;
  std::vector<ExpirationItem> certificates;    // sorted by name (kubeadm's order)
  std::vector<ExpirationItem> authorities;     // ca, etcd-ca, front-proxy-ca
};

// Reads every certificate and kubeconfig client certificate (kubelet.conf excluded; etcd rows
// absent with external etcd). "Externally managed" has kubeadm's meaning — kubehsm cannot renew
// under that CA — and is true when `store` is given and holds no key for the CA. With no store,
// every row reports "no" (kubehsm keeps every CA key in the token). Unreadable files are errors;
// absent ones are `missing` rows.
Result<ExpirationReport> CheckExpiration(const std::filesystem::path& cert_dir,
                                         const std::filesystem::path& kubeconfig_dir, const ClusterConfig& config,
                                         Clock::time_point now, KeyStore* store);

// kubeadm's duration.ShortHumanDuration: "59s", "42m", "47h", "364d", "9y", "<invalid>".
std::string ShortHumanDuration(std::chrono::seconds d);

// kubeadm's text table (tabwriter minwidth 10, tabwidth 4, padding 3, space padding).
std::string FormatExpirationText(const ExpirationReport& report);
// kind CertificateExpirationInfo, apiVersion output.kubeadm.k8s.io/v1alpha3.
std::string FormatExpirationJson(const ExpirationReport& report);
std::string FormatExpirationYaml(const ExpirationReport& report);

// ---- renew -----------------------------------------------------------------------------------

// The names `certs renew` accepts: every leaf's internal name and the four renewable kubeconfigs.
std::vector<std::string> RenewableNames();

// Renews `names` ("all" = every renewable name). Each certificate keeps subject CN and O, DNS
// (re-sorted) and IP SANs and EKUs of the existing one, with a new software key, serial and
// validity (T-5min .. T + certificateValidityPeriod), signed by the CA key in `store`. Kubeconfigs
// get new client-certificate-data/client-key-data (and certificate-authority-data from ca.crt);
// everything else in them is kept. A missing file prints "MISSING! <long name>" (an error for a
// single name); a CA without its token key prints "Detected external <ca>, <long name> can't be
// renewed". kInvalidArgument for an unknown name.
Result<RunSummary> RenewCertificates(KeyStore& store, const std::vector<std::string>& names,
                                     const PkiOptions& options);

// ---- verify ----------------------------------------------------------------------------------

struct VerifyItem {
  std::string name;  // "ca", "apiserver", "admin.conf", "sa.pub"
  std::string path;
  bool ok = true;
  std::vector<std::string> problems;
  std::string note;  // e.g. "absent (written by init only)"
};

// Checks a PKI + kubeconfig directory: each certificate chains to the right CA, matches its key,
// matches its kubeadm profile (subject, KeyUsage, BasicConstraints, EKUs, SKI/AKI, required SANs
// when `config` is given), is within validity at `now`, and files have kubeadm's modes. CAs must
// have no private key on disk; with `store`, they must match the token key. One item per file.
std::vector<VerifyItem> VerifyPki(const std::filesystem::path& cert_dir, const std::filesystem::path& kubeconfig_dir,
                                  const ClusterConfig* config, Clock::time_point now, KeyStore* store);

// One line per item: "OK      <name>  <path>" or "FAIL    <name>  <path>: <problem>; <problem>".
std::string FormatVerifyReport(const std::vector<VerifyItem>& items);

// ---- tree ------------------------------------------------------------------------------------

// The chain of trust: the three CAs (token keys), what each signs, and which component uses which
// file, like the kubeadm documentation's diagrams. `dot`: a Graphviz digraph instead of text.
std::string RenderPkiTree(const std::filesystem::path& cert_dir, const std::filesystem::path& kubeconfig_dir,
                          bool dot);

}  // namespace kubehsm::signer::pki
