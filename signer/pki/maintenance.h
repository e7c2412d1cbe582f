// Day-2 operations on a kubeadm PKI directory: `certs check-expiration` (spec kubeadm-pki.md §7),
// `certs renew` (§7), `pki verify` and `pki tree`.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
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
// absent with external etcd). "Externally managed" is per signing CA: with no store (the CLI, as
// kubeadm), kubeadm's rule — the CA certificate is a CA and its key file is not on disk beside it
// (a kubehsm node, whose CA keys are in the token: "yes", as kubeadm shows it); with `store`, true
// when the store holds no key for the CA. Unreadable files are errors; absent ones are `missing` rows.
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

// Whether the issuance records say `cert` was issued by CA `issuer_ca` ("ca", "etcd-ca", ...) as
// `profile` ("apiserver", "admin.conf", ...): OK, or an error whose message says why not (cli/
// implements it over the ledger: serial recorded with the same SHA-256, CA and profile).
using IssuedCheckFn = std::function<Status(const X509* cert, std::string_view issuer_ca, std::string_view profile)>;

struct RenewOptions {
  // True when options.config is the cluster's kubeadm configuration (`--config`): each old
  // certificate's subject and SANs must then equal what its profile yields for it. False: the parts
  // of the profile that depend on the configuration (the node-name CN of the etcd certificates and
  // the SANs of apiserver, etcd-server and etcd-peer) are taken from the old certificate, which
  // the CA signature and `issued` prove kubehsm issued under this very profile; every fixed part
  // (CN, O, the profile's own SANs, no SANs where the profile has none) must still match.
  bool config_given = false;
  // The ledger check. Empty: not checked (library callers without a ledger; the CLI always sets it).
  IssuedCheckFn issued;
  // Without a config: true when options.config.kubernetes_version was given (--kubernetes-version).
  // The subject O of a leaf whose O changed between versions (apiserver-kubelet-client) is then
  // that version's; otherwise the O of any supported version is kept as it is.
  bool version_given = false;
};

// Renews `names` ("all" = every renewable name). Each certificate is rebuilt from its kubeadm
// profile, as init would issue it (see RenewOptions for where the configuration-dependent parts
// come from), with a new software key, serial and validity (T-5min .. T +
// certificateValidityPeriod), signed by the CA key in `store`; key usage, extended key usages and
// CA:FALSE always come from the profile. Only a certificate this CA issued is renewed: its
// signature must verify against the CA certificate, `renew.issued` must accept it, and its
// subject, SANs, EKUs and basic constraints must fit the profile. Every name is checked before
// anything is renewed: any refusal fails the whole run with kPermissionDenied listing each refused
// certificate and a diff-style reason ("CN \"attacker\", profile wants ...; SANs not in the profile:
// DNS:*.example.com"), and nothing is written. Kubeconfigs get new client-certificate-data/
// client-key-data (and certificate-authority-data from ca.crt); everything else in them is kept.
// A missing file prints "MISSING! <long name>" (an error for a single name); a CA without its token
// key prints "Detected external <ca>, <long name> can't be renewed". Fails with kNotFound when
// cert_dir (or, for kubeconfigs, kubeconfig_dir) does not exist or cert_dir holds no ca.crt, and
// for "all" when every certificate is missing. kInvalidArgument for an unknown name.
Result<RunSummary> RenewCertificates(KeyStore& store, const std::vector<std::string>& names,
                                     const PkiOptions& options, const RenewOptions& renew = {});

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
// Without `config`, `version` (--kubernetes-version) selects the profiles' version-dependent subject
// O; with neither, the O of any supported version is accepted.
std::vector<VerifyItem> VerifyPki(const std::filesystem::path& cert_dir, const std::filesystem::path& kubeconfig_dir,
                                  const ClusterConfig* config, Clock::time_point now, KeyStore* store,
                                  std::optional<KubernetesVersion> version = std::nullopt);

// One line per item: "OK      <name>  <path>" or "FAIL    <name>  <path>: <problem>; <problem>".
std::string FormatVerifyReport(const std::vector<VerifyItem>& items);

// ---- tree ------------------------------------------------------------------------------------

// The chain of trust as found in `cert_dir`: the three CAs, what each signs, and which component
// uses which file, like the kubeadm documentation's diagrams. A CA or service-account key found on
// disk is drawn as a file key (a plain kubeadm PKI), otherwise as the token key kubehsm uses;
// absent files are marked "(missing)". `dot`: a Graphviz digraph instead of text. kNotFound when
// `cert_dir` is not a directory.
Result<std::string> RenderPkiTree(const std::filesystem::path& cert_dir, const std::filesystem::path& kubeconfig_dir,
                                  bool dot);

}  // namespace kubehsm::signer::pki
