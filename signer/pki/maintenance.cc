#include "signer/pki/maintenance.h"

#include <sys/stat.h>

#include <openssl/x509.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <map>
#include <sstream>
#include <string_view>
#include <system_error>
#include <utility>

#include "common/file_util.h"
#include "signer/jwt/sa_keys.h"
#include "signer/pki/init_internal.h"
#include "signer/pki/kubeconfig.h"
#include "signer/pki/pem.h"
#include "signer/pki/pki_files.h"
#include "signer/pki/profiles.h"

namespace kubehsm::signer::pki {
namespace {

namespace fs = std::filesystem;

struct tm UtcTime(Clock::time_point t) {
  const time_t secs = Clock::to_time_t(t);
  struct tm tm {};
  gmtime_r(&secs, &tm);
  return tm;
}

// Go's "Jan 02, 2006 15:04 MST" in UTC.
std::string GoExpiryTime(Clock::time_point t) {
  const struct tm tm = UtcTime(t);
  char buf[64];
  return std::string(buf, strftime(buf, sizeof(buf), "%b %d, %Y %H:%M UTC", &tm));
}
std::string Rfc3339(Clock::time_point t) {
  const struct tm tm = UtcTime(t);
  char buf[64];
  return std::string(buf, strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm));
}

// Loads the client certificate embedded in a kubeconfig.
Result<X509Ptr> LoadKubeconfigCert(const fs::path& path) {
  KH_ASSIGN_OR_RETURN(std::string text, ReadFileBounded(path, kMaxPemFileBytes));
  Result<KubeconfigCredentials> creds = ReadKubeconfig(text);
  if (!creds.ok()) return creds.status().WithContext(path.string());
  if (creds->client_cert_pem.empty()) return InvalidArgument(path.string() + ": no client-certificate-data");
  Result<X509Ptr> cert = ParseCertificatePem(creds->client_cert_pem);
  if (!cert.ok()) return cert.status().WithContext(path.string());
  return cert;
}

// With a store: kubehsm cannot sign under the CA (no token key). Without one, kubeadm's rule
// (UsingExternalCA, UsingExternalFrontProxyCA, UsingExternalEtcdCA): the CA certificate loads and
// is a CA, and the CA key file does not exist beside it.
bool CaExternallyManaged(KeyStore* store, const CaProfile& ca, const fs::path& cert_dir) {
  if (store != nullptr) return !store->Find(ca.key_label).ok();
  Result<X509Ptr> cert = LoadCertificateFile(CertPath(cert_dir, ca.file_base));
  return cert.ok() && X509_check_ca(cert->get()) != 0 && !PathExists(KeyPath(cert_dir, ca.file_base));
}

// Go's text/tabwriter with minwidth 10, tabwidth 4, padding 3, padchar ' ', no flags, for a block
// of lines that all have the same number of cells: every cell but the last is padded to its
// column's width max(minwidth, widest cell + padding).
void TabWrite(std::string& out, const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& row : rows) {
    for (size_t c = 0; c + 1 < row.size(); ++c) {
      if (width.size() <= c) width.push_back(10);
      width[c] = std::max(width[c], row[c].size() + 3);
    }
  }
  for (const auto& row : rows) {
    for (size_t c = 0; c < row.size(); ++c) {
      out += row[c];
      if (c + 1 < row.size()) out.append(width[c] - row[c].size(), ' ');
    }
    out += '\n';
  }
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

int64_t Residual(const ExpirationReport& r, const ExpirationItem& item) {
  return std::chrono::duration_cast<std::chrono::seconds>(item.expires - r.now).count();
}

int FileMode(const fs::path& p) {
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) return -1;
  return static_cast<int>(st.st_mode & 07777);
}

std::string Octal(int mode) {
  char buf[8];
  snprintf(buf, sizeof(buf), "%04o", mode);
  return buf;
}

}  // namespace

// ---- check-expiration ------------------------------------------------------------------------

Result<ExpirationReport> CheckExpiration(const fs::path& cert_dir, const fs::path& kubeconfig_dir,
                                         const ClusterConfig& config, Clock::time_point now, KeyStore* store) {
  ExpirationReport report;
  report.now = now;
  auto add = [&](std::vector<ExpirationItem>& list, std::string name, std::string ca_name, bool external,
                 Result<X509Ptr> cert) -> Status {
    ExpirationItem item{std::move(name), {}, std::move(ca_name), external, false};
    if (!cert.ok()) {
      if (cert.status().code() != StatusCode::kNotFound) return cert.status();
      item.missing = true;
    } else {
      KH_ASSIGN_OR_RETURN(Validity v, CertificateValidity(cert->get()));
      item.expires = v.not_after;
    }
    list.push_back(std::move(item));
    return OkStatus();
  };
  for (const LeafProfile& leaf : LeafProfiles()) {
    if (leaf.etcd && config.external_etcd) continue;
    const CaProfile& ca = GetCaProfile(leaf.ca);
    KH_RETURN_IF_ERROR(add(report.certificates, std::string(leaf.name), std::string(ca.name),
                           CaExternallyManaged(store, ca, cert_dir),
                           LoadCertificateFile(CertPath(cert_dir, leaf.file_base))));
  }
  const CaProfile& root = GetCaProfile(CaId::kCa);
  for (const KubeconfigProfile& kc : KubeconfigProfiles()) {
    if (!kc.renewable) continue;
    KH_RETURN_IF_ERROR(add(report.certificates, std::string(kc.file_name), std::string(root.name),
                           CaExternallyManaged(store, root, cert_dir),
                           LoadKubeconfigCert(kubeconfig_dir / kc.file_name)));
  }
  std::sort(report.certificates.begin(), report.certificates.end(),
            [](const auto& a, const auto& b) { return a.name < b.name; });
  for (const CaProfile& ca : CaProfiles()) {
    if (ca.id == CaId::kEtcdCa && config.external_etcd) continue;
    KH_RETURN_IF_ERROR(add(report.authorities, std::string(ca.name), "", CaExternallyManaged(store, ca, cert_dir),
                           LoadCertificateFile(CertPath(cert_dir, ca.file_base))));
  }
  std::sort(report.authorities.begin(), report.authorities.end(),
            [](const auto& a, const auto& b) { return a.name < b.name; });
  return report;
}

std::string ShortHumanDuration(std::chrono::seconds d) {
  const int64_t s = d.count();
  if (s < -1) return "<invalid>";
  if (s < 0) return "0s";
  if (s < 60) return std::to_string(s) + "s";
  if (s / 60 < 60) return std::to_string(s / 60) + "m";
  const int64_t hours = s / 3600;
  if (hours < 24) return std::to_string(hours) + "h";
  if (hours < 24 * 365) return std::to_string(hours / 24) + "d";
  return std::to_string(hours / 24 / 365) + "y";
}

std::string FormatExpirationText(const ExpirationReport& report) {
  auto yes_no = [](bool b) {
    std::string s = b ? "yes" : "no";
    s.resize(8, ' ');  // Go's %-8v
    return s;
  };
  std::string out;
  std::vector<std::vector<std::string>> rows = {
      {"CERTIFICATE", "EXPIRES", "RESIDUAL TIME", "CERTIFICATE AUTHORITY", "EXTERNALLY MANAGED"}};
  for (const auto& c : report.certificates) {
    if (c.missing) {
      rows.push_back({"!MISSING! " + c.name, "", "", "", ""});
    } else {
      rows.push_back({c.name, GoExpiryTime(c.expires), ShortHumanDuration(std::chrono::seconds(Residual(report, c))),
                      c.ca_name, yes_no(c.externally_managed)});
    }
  }
  TabWrite(out, rows);
  out += '\n';
  rows = {{"CERTIFICATE AUTHORITY", "EXPIRES", "RESIDUAL TIME", "EXTERNALLY MANAGED"}};
  for (const auto& c : report.authorities) {
    if (c.missing) {
      rows.push_back({"!MISSING! " + c.name, "", "", ""});
    } else {
      rows.push_back({c.name, GoExpiryTime(c.expires), ShortHumanDuration(std::chrono::seconds(Residual(report, c))),
                      yes_no(c.externally_managed)});
    }
  }
  TabWrite(out, rows);
  return out;
}

std::string FormatExpirationJson(const ExpirationReport& report) {
  // cli-runtime's JSON printer: json.MarshalIndent with four spaces, struct field order.
  std::string out = "{\n    \"kind\": \"CertificateExpirationInfo\",\n"
                    "    \"apiVersion\": \"output.kubeadm.k8s.io/v1alpha3\",\n";
  auto list = [&](const char* key, const std::vector<ExpirationItem>& items, bool last) {
    out += std::string("    ") + JsonString(key) + ": [";
    for (size_t i = 0; i < items.size(); ++i) {
      const auto& c = items[i];
      out += i == 0 ? "\n" : ",\n";
      out += "        {\n";
      out += "            \"name\": " + JsonString(c.name) + ",\n";
      out += "            \"expirationDate\": " + (c.missing ? std::string("null") : JsonString(Rfc3339(c.expires))) +
             ",\n";
      out += "            \"residualTime\": " + std::to_string(c.missing ? 0 : Residual(report, c)) + ",\n";
      if (!c.ca_name.empty()) out += "            \"caName\": " + JsonString(c.ca_name) + ",\n";
      out += std::string("            \"externallyManaged\": ") + (c.externally_managed ? "true" : "false") + ",\n";
      out += std::string("            \"missing\": ") + (c.missing ? "true" : "false") + "\n";
      out += "        }";
    }
    out += items.empty() ? "]" : "\n    ]";
    out += last ? "\n" : ",\n";
  };
  list("certificates", report.certificates, false);
  list("certificateAuthorities", report.authorities, true);
  return out + "}\n";
}

std::string FormatExpirationYaml(const ExpirationReport& report) {
  // sigs.k8s.io/yaml: keys sorted alphabetically.
  std::string out = "apiVersion: output.kubeadm.k8s.io/v1alpha3\n";
  auto list = [&](const char* key, const std::vector<ExpirationItem>& items) {
    out += std::string(key) + ":" + (items.empty() ? " []\n" : "\n");
    for (const auto& c : items) {
      bool first = true;
      auto field = [&](const std::string& k, const std::string& v) {
        out += (first ? "- " : "  ") + k + ": " + v + "\n";
        first = false;
      };
      if (!c.ca_name.empty()) field("caName", c.ca_name);
      field("expirationDate", c.missing ? "null" : "\"" + Rfc3339(c.expires) + "\"");
      field("externallyManaged", c.externally_managed ? "true" : "false");
      field("missing", c.missing ? "true" : "false");
      field("name", c.name);
      field("residualTime", std::to_string(c.missing ? 0 : Residual(report, c)));
    }
  };
  list("certificateAuthorities", report.authorities);
  list("certificates", report.certificates);
  return out + "kind: CertificateExpirationInfo\n";
}

// ---- renew -----------------------------------------------------------------------------------

std::vector<std::string> RenewableNames() {
  std::vector<std::string> names;
  for (const auto& l : LeafProfiles()) names.emplace_back(l.name);
  for (const auto& k : KubeconfigProfiles()) {
    if (k.renewable) names.emplace_back(k.file_name);
  }
  return names;
}

namespace {

std::string EkuName(ExtKeyUsage e) { return e == ExtKeyUsage::kServerAuth ? "serverAuth" : "clientAuth"; }

std::string EkuList(const std::vector<ExtKeyUsage>& v) {
  std::string out;
  for (auto e : v) out += (out.empty() ? "" : ",") + EkuName(e);
  return out.empty() ? "none" : out;
}

std::string NameList(const std::vector<std::string>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) out += (i ? " " : "") + v[i];
  return out + "]";
}

std::vector<std::string> SanStrings(const SanSet& s) {
  std::vector<std::string> out;
  for (const auto& d : s.dns) out.push_back("DNS:" + d);
  for (const auto& ip : s.ips) out.push_back("IP:" + ip);
  return out;
}

std::string JoinComma(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& x : v) out += (out.empty() ? "" : ", ") + x;
  return out;
}

// One certificate renew will replace, checked and with the spec it is re-issued with.
struct RenewItem {
  std::string name;
  std::string long_name;
  const LeafProfile* leaf = nullptr;
  const KubeconfigProfile* kc = nullptr;
  CaId ca_id = CaId::kCa;
  fs::path path;
  std::string kubeconfig_text;
  CertSpec spec;
};

// Without a config the cluster's Kubernetes version is unknown: the subject O the leaf's profile has
// in any supported version is accepted and kept (kubeadm's `certs renew` keeps the subject too);
// anything else is answered with the newest version's O, so the difference is reported.
std::vector<std::string> OrganizationsWithoutConfig(const LeafProfile& leaf, const std::vector<std::string>& have) {
  for (int minor = kOldestKubernetesVersion.minor; minor <= kNewestKubernetesVersion.minor; ++minor) {
    if (LeafOrganizations(leaf, KubernetesVersion{minor}) == have) return have;
  }
  return LeafOrganizations(leaf, DefaultKubernetesVersion());
}

// The O of `leaf` per supported version, grouped: "[kubeadm:cluster-admins] (1.32..1.35) or [] (1.36)";
// "" when it is the same in every supported version.
std::string OrganizationsByVersion(const LeafProfile& leaf) {
  std::string out;
  int first = kOldestKubernetesVersion.minor;
  for (int minor = first; minor <= kNewestKubernetesVersion.minor; ++minor) {
    const auto o = LeafOrganizations(leaf, KubernetesVersion{minor});
    if (minor < kNewestKubernetesVersion.minor && LeafOrganizations(leaf, KubernetesVersion{minor + 1}) == o) continue;
    if (first == kOldestKubernetesVersion.minor && minor == kNewestKubernetesVersion.minor) return "";
    out += (out.empty() ? "" : " or ") + NameList(o) + " (" + VersionName(KubernetesVersion{first}) +
           (first == minor ? "" : ".." + VersionName(KubernetesVersion{minor})) + ")";
    first = minor + 1;
  }
  return out;
}

// What the certificate must say: the profile under the config, or (without a config) the
// profile's fixed parts with the configuration-dependent ones taken from `have`.
Result<CertSpec> WantedSpec(const RenewItem& item, const CertSpec& have, const ClusterConfig& config,
                            const RenewOptions& renew, std::vector<std::string>& problems) {
  if (item.kc != nullptr) return KubeconfigClientSpec(*item.kc, config);
  const LeafProfile& leaf = *item.leaf;
  if (renew.config_given) return LeafSpec(leaf, config, nullptr);
  CertSpec want;
  want.common_name = leaf.common_name.empty() ? have.common_name : std::string(leaf.common_name);
  want.organizations = renew.version_given ? LeafOrganizations(leaf, config.kubernetes_version)
                                           : OrganizationsWithoutConfig(leaf, have.organizations);
  want.ext_key_usages = leaf.ext_key_usages;
  if (leaf.sans == SanRule::kNone) return want;
  want.sans = have.sans;
  std::vector<std::string> required;
  if (leaf.sans == SanRule::kApiServer) {
    required = {"DNS:kubernetes", "DNS:kubernetes.default", "DNS:kubernetes.default.svc"};
  } else {
    required = {"DNS:" + have.common_name, "DNS:localhost", "IP:127.0.0.1"};
  }
  const std::vector<std::string> sans = SanStrings(have.sans);
  std::vector<std::string> missing;
  for (const auto& r : required) {
    if (std::find(sans.begin(), sans.end(), r) == sans.end()) missing.push_back(r);
  }
  if (!missing.empty()) problems.push_back("SANs the profile requires are missing: " + JoinComma(missing));
  return want;
}

// The differences between `have` and `want`, one phrase each.
void DiffSpecs(const CertSpec& have, const CertSpec& want, std::vector<std::string>& problems) {
  if (have.common_name != want.common_name) {
    problems.push_back("CN \"" + have.common_name + "\", profile wants \"" + want.common_name + "\"");
  }
  if (have.organizations != want.organizations) {
    problems.push_back("O " + NameList(have.organizations) + ", profile wants " + NameList(want.organizations));
  }
  const std::vector<std::string> h = SanStrings(have.sans), w = SanStrings(want.sans);
  std::vector<std::string> extra, missing;
  for (const auto& x : h) {
    if (std::find(w.begin(), w.end(), x) == w.end()) extra.push_back(x);
  }
  for (const auto& x : w) {
    if (std::find(h.begin(), h.end(), x) == h.end()) missing.push_back(x);
  }
  if (!extra.empty()) problems.push_back("SANs not in the profile: " + JoinComma(extra));
  if (!missing.empty()) problems.push_back("SANs of the profile missing: " + JoinComma(missing));
  if (have.ext_key_usages != want.ext_key_usages) {
    problems.push_back("extended key usages " + EkuList(have.ext_key_usages) + ", profile wants " +
                       EkuList(want.ext_key_usages));
  }
  if (have.is_ca) problems.push_back("CA:TRUE, profile wants CA:FALSE");
}

// Every reason not to renew `old` as `item` (empty: renewable). Fills item.spec.
std::vector<std::string> CheckRenewable(RenewItem& item, const X509* old, const internal::LoadedCa& ca,
                                        const PkiOptions& options, const RenewOptions& renew) {
  std::vector<std::string> problems;
  Status chain = VerifyIssuedBy(old, ca.cert.get());
  if (!chain.ok()) {
    problems.push_back("not issued by the " + std::string(ca.profile->name) + " CA (" +
                       CertPath(options.cert_dir, ca.profile->file_base).string() + "): " + chain.message());
  } else if (renew.issued) {
    Status issued = renew.issued(old, ca.profile->name, item.name);
    if (!issued.ok()) problems.push_back(issued.message());
  }
  Result<CertSpec> have = SpecFromCertificate(old);
  if (!have.ok()) {
    problems.push_back(have.status().message());
    return problems;
  }
  Normalize(have->sans);
  Result<CertSpec> want = WantedSpec(item, *have, options.config, renew, problems);
  if (!want.ok()) {
    problems.push_back("the profile under this configuration: " + want.status().message());
    return problems;
  }
  want->is_ca = false;
  Normalize(want->sans);
  // An O that the leaf's profile has in another supported Kubernetes version (a 1.35
  // apiserver-kubelet-client renewed under a 1.36 config) is a version change of the profile, not a
  // deviation: the certificate is re-issued with the O of the config's version.
  CertSpec compared = *have;
  if (item.leaf != nullptr && OrganizationsWithoutConfig(*item.leaf, have->organizations) == have->organizations) {
    compared.organizations = want->organizations;
  } else if (item.leaf != nullptr && !renew.config_given && !OrganizationsByVersion(*item.leaf).empty()) {
    // Without a config the version is unknown: name what each version's profile wants.
    problems.push_back("O " + NameList(have->organizations) + ", profile wants " + OrganizationsByVersion(*item.leaf));
    compared.organizations = want->organizations;
  }
  DiffSpecs(compared, *want, problems);
  item.spec = std::move(*want);
  return problems;
}

}  // namespace

Result<RunSummary> RenewCertificates(KeyStore& store, const std::vector<std::string>& names,
                                     const PkiOptions& options, const RenewOptions& renew) {
  internal::Runner r{store, options, {}, "renew"};
  std::vector<std::string> todo;
  const bool all = names.size() == 1 && names[0] == "all";
  const auto valid = RenewableNames();
  if (all) {
    for (const auto& n : valid) {
      const LeafProfile* leaf = FindLeafProfile(n);
      if (leaf != nullptr && leaf->etcd && options.config.external_etcd) continue;
      todo.push_back(n);
    }
  } else {
    for (const auto& n : names) {
      if (std::find(valid.begin(), valid.end(), n) == valid.end()) {
        return InvalidArgument("unknown certificate '" + n + "' (one of: all, " + JoinComma(valid) + ")");
      }
      todo.push_back(n);
    }
  }
  // A wrong directory is an error, not a list of MISSING lines.
  std::error_code ec;
  if (!fs::is_directory(options.cert_dir, ec)) {
    return NotFound("certificate directory " + options.cert_dir.string() + " does not exist (--cert-dir)");
  }
  const fs::path ca_path = CertPath(options.cert_dir, GetCaProfile(CaId::kCa).file_base);
  if (!PathExists(ca_path)) {
    return NotFound(options.cert_dir.string() + " holds no ca.crt: not a kubeadm certificate directory (--cert-dir)");
  }
  const bool any_kubeconfig = std::any_of(todo.begin(), todo.end(), [](const std::string& n) {
    return FindKubeconfigProfile(n) != nullptr;
  });
  if (any_kubeconfig && !fs::is_directory(options.kubeconfig_dir, ec)) {
    return NotFound("kubeconfig directory " + options.kubeconfig_dir.string() + " does not exist (--kubeconfig-dir)");
  }
  std::map<CaId, Result<internal::LoadedCa>> cas;
  auto ca_for = [&](CaId id) -> Result<internal::LoadedCa>& {
    auto it = cas.find(id);
    if (it == cas.end()) it = cas.emplace(id, r.LoadCa(GetCaProfile(id), options.cert_dir)).first;
    return it->second;
  };
  // Check every certificate before renewing any.
  std::vector<RenewItem> plan;
  std::vector<std::string> refused;
  int missing = 0;
  for (const auto& name : todo) {
    RenewItem item;
    item.name = name;
    item.leaf = FindLeafProfile(name);
    item.kc = FindKubeconfigProfile(name);
    item.long_name = std::string(item.leaf != nullptr ? item.leaf->long_name : item.kc->long_name);
    item.ca_id = item.leaf != nullptr ? item.leaf->ca : CaId::kCa;
    item.path = item.leaf != nullptr ? CertPath(options.cert_dir, item.leaf->file_base) : options.kubeconfig_dir / name;
    Result<X509Ptr> old = NotFound("");
    if (item.leaf != nullptr) {
      old = LoadCertificateFile(item.path);
    } else if (PathExists(item.path)) {
      KH_ASSIGN_OR_RETURN(item.kubeconfig_text, ReadFileBounded(item.path, kMaxPemFileBytes));
      old = LoadKubeconfigCert(item.path);
    }
    if (!old.ok()) {
      if (old.status().code() != StatusCode::kNotFound) return old.status();
      r.Say("MISSING! " + item.long_name);
      if (!all) return NotFound(item.path.string() + " does not exist");
      ++missing;
      continue;
    }
    Result<internal::LoadedCa>& ca = ca_for(item.ca_id);
    if (!ca.ok()) {
      if (ca.status().code() == StatusCode::kNotFound) {
        r.Say("Detected external " + std::string(GetCaProfile(item.ca_id).name) + ", " + item.long_name +
              " can't be renewed");
        if (!all) return ca.status();
        continue;
      }
      return ca.status();
    }
    const std::vector<std::string> problems = CheckRenewable(item, old->get(), *ca, options, renew);
    if (!problems.empty()) {
      std::string reason;
      for (const auto& p : problems) reason += (reason.empty() ? "" : "; ") + p;
      refused.push_back(item.name + " (" + item.path.string() + "): " + reason);
      continue;
    }
    plan.push_back(std::move(item));
  }
  if (!refused.empty()) {
    std::string all_reasons;
    for (const auto& x : refused) all_reasons += (all_reasons.empty() ? "" : " | ") + x;
    return PermissionDenied("refusing to renew, nothing was renewed: " + all_reasons);
  }
  if (all && missing == static_cast<int>(todo.size())) {
    return NotFound("no certificate to renew under " + options.cert_dir.string() + " and " +
                    options.kubeconfig_dir.string() + " (every one is missing)");
  }
  for (const RenewItem& item : plan) {
    const internal::LoadedCa& ca = *ca_for(item.ca_id);
    KH_ASSIGN_OR_RETURN(internal::KeyAndCert kc_pair, r.IssueWithNewKey(ca, item.spec, r.LeafValidity(), item.name));
    if (item.leaf != nullptr) {
      KH_RETURN_IF_ERROR(r.WriteKeyAndCert(item.leaf->file_base, kc_pair));
    } else {
      KH_ASSIGN_OR_RETURN(std::string ca_pem, CertificateToPem(ca.cert.get()));
      KH_ASSIGN_OR_RETURN(std::string updated, UpdateKubeconfigCredentials(item.kubeconfig_text, kc_pair.cert_pem,
                                                                           kc_pair.key_pem, ca_pem));
      KH_RETURN_IF_ERROR(r.Write(item.path, updated, kKubeconfigMode));
    }
    r.Say(item.long_name + " renewed");
  }
  if (all) {
    r.Say("");
    r.Say("Done renewing certificates. You must restart the kube-apiserver, kube-controller-manager, kube-scheduler "
          "and etcd, so that they can use the new certificates.");
  }
  return r.summary;
}

// ---- verify ----------------------------------------------------------------------------------

namespace {

void CheckMode(VerifyItem& item, const fs::path& p, int want) {
  const int mode = FileMode(p);
  if (mode >= 0 && (mode & ~want) != 0) {
    item.problems.push_back(p.filename().string() + " has mode " + Octal(mode) + ", want " + Octal(want));
  }
}

void CheckValidity(VerifyItem& item, const X509* cert, Clock::time_point now) {
  Result<Validity> v = CertificateValidity(cert);
  if (!v.ok()) {
    item.problems.push_back(v.status().message());
  } else if (now < v->not_before) {
    item.problems.push_back("not valid before " + Rfc3339(v->not_before));
  } else if (now > v->not_after) {
    item.problems.push_back("expired at " + Rfc3339(v->not_after));
  }
}

// The profile checks shared by leaves and kubeconfig client certificates.
void CheckLeafProfile(VerifyItem& item, const X509* cert, const X509* ca, const CertSpec& want, bool check_cn,
                      bool check_sans) {
  Status chain = VerifyIssuedBy(cert, ca);
  if (!chain.ok()) item.problems.push_back("does not chain to its CA: " + chain.message());
  Result<CertSpec> have = SpecFromCertificate(cert);
  if (!have.ok()) {
    item.problems.push_back(have.status().message());
    return;
  }
  if (check_cn && have->common_name != want.common_name) {
    item.problems.push_back("CN is '" + have->common_name + "', profile wants '" + want.common_name + "'");
  }
  if (!check_cn && have->common_name.empty()) item.problems.push_back("empty CN");
  if (have->organizations != want.organizations) item.problems.push_back("subject O differs from the profile");
  if (have->is_ca) item.problems.push_back("is a CA certificate");
  if (have->ext_key_usages != want.ext_key_usages) item.problems.push_back("ExtKeyUsage differs from the profile");
  bool critical = false;
  Result<std::string> ku = ExtensionDer(cert, NID_key_usage, &critical);
  if (!ku.ok() || *ku != std::string("\x03\x02\x05\xA0", 4) || !critical) {
    item.problems.push_back("KeyUsage is not critical digitalSignature+keyEncipherment");
  }
  Result<std::string> bc = ExtensionDer(cert, NID_basic_constraints, &critical);
  if (!bc.ok() || *bc != std::string("\x30\x00", 2) || !critical) {
    item.problems.push_back("BasicConstraints is not critical CA:FALSE");
  }
  if (ExtensionDer(cert, NID_subject_key_identifier).ok()) item.problems.push_back("has a SubjectKeyIdentifier");
  const ASN1_OCTET_STRING* ca_ski = X509_get0_subject_key_id(const_cast<X509*>(ca));
  const ASN1_OCTET_STRING* aki = X509_get0_authority_key_id(const_cast<X509*>(cert));
  if (ca_ski != nullptr && (aki == nullptr || ASN1_OCTET_STRING_cmp(aki, ca_ski) != 0)) {
    item.problems.push_back("AuthorityKeyIdentifier is not the CA's SubjectKeyIdentifier");
  }
  if (check_sans) {
    for (const auto& d : want.sans.dns) {
      if (std::find(have->sans.dns.begin(), have->sans.dns.end(), d) == have->sans.dns.end()) {
        item.problems.push_back("missing DNS SAN " + d);
      }
    }
    for (const auto& ip : want.sans.ips) {
      if (std::find(have->sans.ips.begin(), have->sans.ips.end(), ip) == have->sans.ips.end()) {
        item.problems.push_back("missing IP SAN " + ip);
      }
    }
  }
}

// Why sa.pub does not belong to a service-account signing key of the token ("" when it does):
// some kubehsm-sa key with its private part in the token has the same public key.
std::string SaPubTokenProblem(const EVP_PKEY* sa_pub, KeyStore& store) {
  unsigned char* der = nullptr;
  const int len = i2d_PUBKEY(const_cast<EVP_PKEY*>(sa_pub), &der);
  if (len <= 0) return "cannot encode its public key";
  const std::string spki(reinterpret_cast<const char*>(der), static_cast<std::size_t>(len));
  OPENSSL_free(der);
  Result<std::vector<StoredKeyInfo>> keys = store.List();
  if (!keys.ok()) return "cannot list the token's keys: " + keys.status().message();
  std::string public_only;
  for (const auto& k : *keys) {
    if (!k.label.starts_with(jwt::kSaLabelPrefix) || k.spki_der != spki) continue;
    if (k.has_private) return "";
    public_only = k.label;
  }
  if (!public_only.empty()) {
    return "the token holds only the public key of sa.pub ('" + public_only +
           "', imported): nothing signs with it (rewrite sa.pub from the active key: 'kubehsm init phase sa "
           "--overwrite')";
  }
  return "the token holds no service-account key for sa.pub (removed, or sa.pub comes from another token): "
         "tokens kubehsm signs will not verify against it (restore the key, or rewrite sa.pub from the active "
         "key: 'kubehsm init phase sa --overwrite')";
}

}  // namespace

std::vector<VerifyItem> VerifyPki(const fs::path& cert_dir, const fs::path& kubeconfig_dir,
                                  const ClusterConfig* config, Clock::time_point now, KeyStore* store,
                                  std::optional<KubernetesVersion> version) {
  std::vector<VerifyItem> items;
  std::map<CaId, X509Ptr> cas;
  const bool external_etcd = config != nullptr && config->external_etcd;
  for (const CaProfile& ca : CaProfiles()) {
    if (ca.id == CaId::kEtcdCa && external_etcd) continue;
    VerifyItem item{std::string(ca.name), CertPath(cert_dir, ca.file_base).string()};
    Result<X509Ptr> cert = LoadCertificateFile(item.path);
    if (!cert.ok()) {
      item.problems.push_back(cert.status().message());
    } else {
      if (!X509_check_ca(cert->get())) item.problems.push_back("not a CA certificate");
      if (!VerifyIssuedBy(cert->get(), cert->get()).ok()) item.problems.push_back("not self-signed");
      Result<CertSpec> spec = SpecFromCertificate(cert->get());
      if (spec.ok() && spec->common_name != ca.common_name) {
        item.problems.push_back("CN is '" + spec->common_name + "', profile wants '" + std::string(ca.common_name) + "'");
      }
      bool critical = false;
      Result<std::string> ku = ExtensionDer(cert->get(), NID_key_usage, &critical);
      if (!ku.ok() || *ku != std::string("\x03\x02\x02\xA4", 4) || !critical) {
        item.problems.push_back("KeyUsage is not critical digitalSignature+keyEncipherment+keyCertSign");
      }
      if (!ExtensionDer(cert->get(), NID_subject_key_identifier).ok()) item.problems.push_back("no SubjectKeyIdentifier");
      CheckValidity(item, cert->get(), now);
      if (store != nullptr) {
        Result<SigningKey> key = store->Find(ca.key_label);
        if (!key.ok()) {
          item.problems.push_back("no token key '" + std::string(ca.key_label) + "'");
        } else if (!CertificateHasKey(cert->get(), key->public_key())) {
          item.problems.push_back("does not match the token key '" + std::string(ca.key_label) + "'");
        }
      }
      cas[ca.id] = std::move(cert).value();
    }
    CheckMode(item, item.path, kCertMode);
    if (PathExists(KeyPath(cert_dir, ca.file_base))) {
      item.problems.push_back("a CA private key is on disk (" + KeyPath(cert_dir, ca.file_base).string() +
                              "); kubehsm keeps it in the token");
    }
    items.push_back(std::move(item));
  }
  {
    VerifyItem item{"sa", SaPubPath(cert_dir).string()};
    Result<std::string> pem = ReadFileBounded(item.path, kMaxPemFileBytes);
    if (!pem.ok()) {
      item.problems.push_back(pem.status().message());
    } else {
      Result<EvpPkeyPtr> pub = ParsePublicKeyPem(*pem);
      if (!pub.ok()) {
        item.problems.push_back("not a PUBLIC KEY PEM");
      } else if (store != nullptr) {
        if (std::string why = SaPubTokenProblem(pub->get(), *store); !why.empty()) item.problems.push_back(why);
      }
    }
    CheckMode(item, item.path, kSaPubMode);
    if (PathExists(cert_dir / "sa.key")) item.problems.push_back("sa.key is on disk; kubehsm keeps it in the token");
    items.push_back(std::move(item));
  }
  for (const LeafProfile& leaf : LeafProfiles()) {
    if (leaf.etcd && external_etcd) continue;
    VerifyItem item{std::string(leaf.name), CertPath(cert_dir, leaf.file_base).string()};
    Result<X509Ptr> cert = LoadCertificateFile(item.path);
    Result<EvpPkeyPtr> key = LoadPrivateKeyFile(KeyPath(cert_dir, leaf.file_base));
    if (!cert.ok()) item.problems.push_back(cert.status().message());
    if (!key.ok()) item.problems.push_back(key.status().message());
    auto ca = cas.find(leaf.ca);
    if (cert.ok()) {
      if (key.ok() && !CertificateHasKey(cert->get(), key->get())) item.problems.push_back("key does not match");
      CertSpec want;
      bool check_cn = !leaf.common_name.empty();
      if (config != nullptr) {
        Result<CertSpec> w = LeafSpec(leaf, *config, nullptr);
        if (w.ok()) want = *w;
        check_cn = true;
      } else {
        want.common_name = leaf.common_name;
        Result<CertSpec> have = SpecFromCertificate(cert->get());
        want.organizations =
            version ? LeafOrganizations(leaf, *version)
                    : OrganizationsWithoutConfig(leaf, have.ok() ? have->organizations : std::vector<std::string>{});
        want.ext_key_usages = leaf.ext_key_usages;
        if (leaf.sans == SanRule::kApiServer) {
          want.sans.dns = {"kubernetes", "kubernetes.default", "kubernetes.default.svc"};
        } else if (leaf.sans != SanRule::kNone) {
          want.sans.dns = {"localhost"};
          want.sans.ips = {"127.0.0.1"};
        }
      }
      if (ca != cas.end()) {
        CheckLeafProfile(item, cert->get(), ca->second.get(), want, check_cn, true);
      } else {
        item.problems.push_back("its CA " + std::string(GetCaProfile(leaf.ca).name) + " is not usable");
      }
      CheckValidity(item, cert->get(), now);
    }
    CheckMode(item, item.path, kCertMode);
    CheckMode(item, KeyPath(cert_dir, leaf.file_base), kKeyMode);
    items.push_back(std::move(item));
  }
  auto root = cas.find(CaId::kCa);
  for (const KubeconfigProfile& kc : KubeconfigProfiles()) {
    const fs::path path = kubeconfig_dir / kc.file_name;
    VerifyItem item{std::string(kc.file_name), path.string()};
    if (!PathExists(path) && kc.init_only) {
      item.note = "absent (written by init only)";
      items.push_back(std::move(item));
      continue;
    }
    Result<std::string> text = ReadFileBounded(path, kMaxPemFileBytes);
    Result<KubeconfigCredentials> creds =
        text.ok() ? ReadKubeconfig(*text) : Result<KubeconfigCredentials>(text.status());
    if (!creds.ok()) {
      item.problems.push_back(creds.status().message());
    } else if (creds->client_cert_pem.empty() && !creds->client_cert_file.empty()) {
      item.note = "client certificate in " + creds->client_cert_file + " (not checked)";
    } else {
      Result<X509Ptr> cert = ParseCertificatePem(creds->client_cert_pem);
      Result<EvpPkeyPtr> key = ParsePrivateKeyPem(creds->client_key_pem);
      if (!cert.ok()) item.problems.push_back("client certificate: " + cert.status().message());
      if (!key.ok()) item.problems.push_back("client key: " + key.status().message());
      if (root != cas.end()) {
        Result<std::string> ca_pem = CertificateToPem(root->second.get());
        if (ca_pem.ok() && creds->ca_pem != *ca_pem) {
          item.problems.push_back("certificate-authority-data is not ca.crt");
        }
      }
      if (cert.ok()) {
        if (key.ok() && !CertificateHasKey(cert->get(), key->get())) item.problems.push_back("key does not match");
        ClusterConfig defaults;
        if (version) defaults.kubernetes_version = *version;
        if (config != nullptr) defaults = *config;
        const CertSpec want = KubeconfigClientSpec(kc, defaults);
        const bool is_kubelet = kc.common_name == "system:node:";
        if (root != cas.end()) {
          CheckLeafProfile(item, cert->get(), root->second.get(), want, !is_kubelet || config != nullptr, false);
        }
        Result<CertSpec> have = SpecFromCertificate(cert->get());
        if (is_kubelet && have.ok() && !have->common_name.starts_with("system:node:")) {
          item.problems.push_back("CN is not system:node:<name>");
        }
        CheckValidity(item, cert->get(), now);
      }
    }
    CheckMode(item, path, kKubeconfigMode);
    items.push_back(std::move(item));
  }
  for (auto& item : items) item.ok = item.problems.empty();
  return items;
}

std::string FormatVerifyReport(const std::vector<VerifyItem>& items) {
  size_t name_width = 0;
  for (const auto& i : items) name_width = std::max(name_width, i.name.size());
  std::string out;
  for (const auto& i : items) {
    std::string line = i.ok ? (i.note.empty() ? "OK      " : "SKIP    ") : "FAIL    ";
    line += i.name + std::string(name_width - i.name.size() + 2, ' ') + i.path;
    if (!i.ok) {
      line += ": ";
      for (size_t k = 0; k < i.problems.size(); ++k) line += (k ? "; " : "") + i.problems[k];
    } else if (!i.note.empty()) {
      line += ": " + i.note;
    }
    out += line + "\n";
  }
  return out;
}

// ---- tree ------------------------------------------------------------------------------------

namespace {

struct TreeLeaf {
  std::string name;
  std::string files;
  std::string users;
};

std::string Consumers(std::string_view name) {
  static const std::map<std::string_view, std::string_view> kUsers = {
      {"apiserver", "kube-apiserver --tls-cert-file/--tls-private-key-file"},
      {"apiserver-kubelet-client", "kube-apiserver --kubelet-client-certificate/--kubelet-client-key"},
      {"front-proxy-client", "kube-apiserver --proxy-client-cert-file/--proxy-client-key-file"},
      {"etcd-server", "etcd --cert-file/--key-file"},
      {"etcd-peer", "etcd --peer-cert-file/--peer-key-file"},
      {"etcd-healthcheck-client", "etcd liveness probe, kubeadm's and etcdctl's etcd client"},
      {"apiserver-etcd-client", "kube-apiserver --etcd-certfile/--etcd-keyfile"},
      {"admin.conf", "kubectl (group kubeadm:cluster-admins)"},
      {"super-admin.conf", "break-glass kubectl (group system:masters)"},
      {"kubelet.conf", "kubelet --kubeconfig (group system:nodes)"},
      {"controller-manager.conf", "kube-controller-manager --kubeconfig"},
      {"scheduler.conf", "kube-scheduler --kubeconfig"},
      {"ca", "kube-apiserver --client-ca-file, kube-controller-manager --root-ca-file, kubelet clientCAFile"},
      {"front-proxy-ca", "kube-apiserver --requestheader-client-ca-file"},
      {"etcd-ca", "etcd --trusted-ca-file/--peer-trusted-ca-file, kube-apiserver --etcd-cafile"},
  };
  auto it = kUsers.find(name);
  return it == kUsers.end() ? "" : std::string(it->second);
}

}  // namespace

Result<std::string> RenderPkiTree(const fs::path& cert_dir, const fs::path& kubeconfig_dir, bool dot) {
  std::error_code ec;
  if (!fs::is_directory(cert_dir, ec)) {
    return NotFound("pki tree: " + cert_dir.string() + " is not a directory (wrong --cert-dir?)");
  }
  // What is there: a file that is absent is marked, a CA or SA key on disk is drawn as a file key.
  const auto missing = [](const fs::path& p) { return PathExists(p) ? std::string() : std::string(" (missing)"); };
  struct Node {
    const CaProfile* ca;
    std::string key;  // "token key 'kubehsm-ca'" or "file key /etc/kubernetes/pki/ca.key"
    std::vector<TreeLeaf> leaves;
  };
  std::vector<Node> nodes;
  int file_keys = 0;
  for (const CaProfile& ca : CaProfiles()) {
    Node n{&ca, {}, {}};
    const fs::path key_file = KeyPath(cert_dir, ca.file_base);
    if (PathExists(key_file)) {
      n.key = "file key " + key_file.string();
      ++file_keys;
    } else {
      n.key = "token key '" + std::string(ca.key_label) + "'";
    }
    for (const LeafProfile& l : LeafProfiles()) {
      if (l.ca != ca.id) continue;
      n.leaves.push_back(
          {std::string(l.name),
           CertPath(cert_dir, l.file_base).string() + " + .key" + missing(CertPath(cert_dir, l.file_base)),
           Consumers(l.name)});
    }
    if (ca.id == CaId::kCa) {
      for (const KubeconfigProfile& k : KubeconfigProfiles()) {
        n.leaves.push_back({std::string(k.file_name),
                            (kubeconfig_dir / k.file_name).string() + missing(kubeconfig_dir / k.file_name),
                            Consumers(k.file_name)});
      }
    }
    nodes.push_back(std::move(n));
  }
  const fs::path sa_key = cert_dir / "sa.key";
  const bool sa_on_disk = PathExists(sa_key);
  if (sa_on_disk) ++file_keys;
  const std::string sa_pub = SaPubPath(cert_dir).string() + missing(SaPubPath(cert_dir));
  const std::string sa_keytext = sa_on_disk ? "file key " + sa_key.string() : "token key 'kubehsm-sa:active:...'";
  // sa.pub's readers differ: with sa.key on disk (plain kubeadm) kube-apiserver signs with it; with
  // the key in the token, kube-apiserver reads sa.pub only when `kubehsm serve` is not its signer.
  const std::string sa_users =
      sa_on_disk ? "kube-apiserver --service-account-key-file (verifying) and --service-account-signing-key-file "
                   "(signing), kube-controller-manager --service-account-private-key-file"
                 : "kube-apiserver --service-account-key-file only without 'kubehsm serve' (with serve, "
                   "--service-account-signing-endpoint replaces that flag and the keys come from FetchKeys); "
                   "signing: kubehsm, through the token";
  std::string out;
  if (dot) {
    out += "digraph kubehsm_pki {\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n";
    out += "  token [label=\"PKCS#11 token\", shape=cylinder];\n";
    for (const auto& n : nodes) {
      const std::string id = "\"" + std::string(n.ca->name) + "\"";
      out += "  " + id + " [label=\"" + std::string(n.ca->name) + "\\nCN=" + std::string(n.ca->common_name) + "\\n" +
             CertPath(cert_dir, n.ca->file_base).string() + missing(CertPath(cert_dir, n.ca->file_base)) +
             "\", style=bold];\n";
      if (n.key.starts_with("file key ")) {
        const std::string key_id = "\"" + std::string(n.ca->name) + " key\"";
        out += "  " + key_id + " [label=\"" + n.key + "\", shape=note];\n  " + key_id + " -> " + id + ";\n";
      } else {
        out += "  token -> " + id + " [label=\"key '" + std::string(n.ca->key_label) + "'\"];\n";
      }
      for (const auto& l : n.leaves) {
        out += "  \"" + l.name + "\" [label=\"" + l.name + "\\n" + l.files + "\\n" + l.users + "\"];\n";
        out += "  " + id + " -> \"" + l.name + "\";\n";
      }
    }
    out += "  sa [label=\"sa (service-account key)\\n" + sa_pub + "\\n" + sa_users + "\"];\n";
    if (sa_on_disk) {
      out += "  sa_key [label=\"" + sa_keytext + "\", shape=note];\n  sa_key -> sa;\n";
    } else {
      out += "  token -> sa [label=\"key 'kubehsm-sa:active:...'\"];\n";
    }
    return out + "}\n";
  }
  const int all_keys = static_cast<int>(nodes.size()) + 1;
  if (file_keys == 0) {
    out += "PKCS#11 token (private keys never leave it)\n";
  } else if (file_keys == all_keys) {
    out += "kubeadm PKI in " + cert_dir.string() + " (every CA and service-account key is a file on disk)\n";
  } else {
    out += "PKI in " + cert_dir.string() + " (" + std::to_string(file_keys) + " of " + std::to_string(all_keys) +
           " CA/service-account keys are files on disk, the others are expected in the PKCS#11 token)\n";
  }
  for (size_t i = 0; i < nodes.size(); ++i) {
    const auto& n = nodes[i];
    out += "├── " + std::string(n.ca->name) + "  [" + n.key + ", CN=" + std::string(n.ca->common_name) + "]  " +
           CertPath(cert_dir, n.ca->file_base).string() + missing(CertPath(cert_dir, n.ca->file_base)) + "\n";
    out += "│   │   used by: " + Consumers(n.ca->name) + "\n";
    for (size_t j = 0; j < n.leaves.size(); ++j) {
      const bool last = j + 1 == n.leaves.size();
      const auto& l = n.leaves[j];
      out += std::string("│   ") + (last ? "└── " : "├── ") + l.name + "  " + l.files + "\n";
      out += std::string("│   ") + (last ? "    " : "│   ") + "    used by: " + l.users + "\n";
    }
  }
  out += "└── sa  [" + sa_keytext + "]  " + sa_pub + "\n";
  out += "        used by: " + sa_users + "\n";
  return out;
}

}  // namespace kubehsm::signer::pki
