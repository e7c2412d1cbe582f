#include "signer/pki/renewal.h"

#include <map>
#include <string_view>
#include <system_error>
#include <utility>

#include "common/file_util.h"
#include "signer/pki/certificate.h"
#include "signer/pki/kubeconfig.h"
#include "signer/pki/pem.h"
#include "signer/pki/pki_files.h"
#include "signer/pki/profiles.h"
#include "signer/signing_key.h"

namespace kubehsm::signer::pki {
namespace {

namespace fs = std::filesystem;

void Say(const std::function<void(const std::string&)>& progress, const std::string& line) {
  if (progress) progress(line);
}

// Reads a node file, refusing symbolic links (the layout is plain files).
Result<std::string> ReadPlain(const fs::path& p) {
  std::error_code ec;
  if (fs::is_symlink(fs::symlink_status(p, ec))) return PermissionDenied(p.string() + " is a symbolic link");
  return ReadRegularFileBounded(p, kMaxPemFileBytes);
}

// One certificate to renew on the node.
struct CsrJob {
  std::string shown;     // "apiserver", "admin.conf"
  fs::path csr_out;      // in out_dir
  fs::path pending_key;  // where the new key goes (unused with reuse_keys)
  CertSpec spec;
  EvpPkeyPtr reused_key;  // reuse_keys only
  KeyType type = KeyType::kRsa2048;
};

}  // namespace

std::vector<std::string> RenewalCsrNames() {
  std::vector<std::string> names;
  for (const auto& l : LeafProfiles()) names.push_back("pki/" + std::string(l.file_base) + ".csr");
  for (const auto& k : KubeconfigProfiles()) names.push_back(std::string(k.file_name) + ".csr");
  return names;
}

std::vector<std::string> RenewalSignedNames() {
  std::vector<std::string> names;
  for (const auto& ca : CaProfiles()) names.push_back("pki/" + std::string(ca.file_base) + ".crt");
  names.emplace_back("pki/sa.pub");
  for (const auto& l : LeafProfiles()) names.push_back("pki/" + std::string(l.file_base) + ".crt");
  for (const auto& k : KubeconfigProfiles()) names.push_back(std::string(k.file_name) + ".crt");
  return names;
}

fs::path PendingKeyPath(const fs::path& dir, const std::string& base) { return dir / (base + ".key.pending"); }

Result<RenewalCsrSummary> WriteRenewalCsrs(const RenewalCsrOptions& options) {
  std::error_code ec;
  if (!fs::is_directory(options.cert_dir, ec)) {
    return NotFound("certificate directory " + options.cert_dir.string() + " does not exist (--cert-dir)");
  }
  RenewalCsrSummary summary;
  std::vector<CsrJob> jobs;
  std::vector<std::string> problems;
  auto fill = [&](CsrJob& job, const X509* cert, const LeafProfile* leaf) -> bool {
    Result<CertSpec> spec = SpecFromCertificate(cert);
    if (!spec.ok()) {
      problems.push_back(job.shown + ": " + spec.status().message());
      return false;
    }
    job.spec = std::move(spec).value();
    if (leaf != nullptr && options.version) job.spec.organizations = LeafOrganizations(*leaf, *options.version);
    Result<KeyType> type = KeyTypeOf(X509_get0_pubkey(cert));
    if (!type.ok()) {
      problems.push_back(job.shown + ": " + type.status().message());
      return false;
    }
    job.type = *type;
    return true;
  };
  for (const LeafProfile& leaf : LeafProfiles()) {
    const fs::path crt = CertPath(options.cert_dir, leaf.file_base);
    if (!PathExists(crt)) continue;
    CsrJob job;
    job.shown = crt.string();
    job.csr_out = options.out_dir / "pki" / (std::string(leaf.file_base) + ".csr");
    job.pending_key = PendingKeyPath(options.cert_dir, std::string(leaf.file_base));
    Result<std::string> pem = ReadPlain(crt);
    Result<X509Ptr> cert = pem.ok() ? ParseCertificatePem(*pem) : Result<X509Ptr>(pem.status());
    if (!cert.ok()) {
      problems.push_back(crt.string() + ": " + cert.status().message());
      continue;
    }
    if (!fill(job, cert->get(), &leaf)) continue;
    if (options.reuse_keys) {
      const fs::path key_path = KeyPath(options.cert_dir, leaf.file_base);
      Result<std::string> key_pem = ReadPlain(key_path);
      Result<EvpPkeyPtr> key = key_pem.ok() ? ParsePrivateKeyPem(*key_pem) : Result<EvpPkeyPtr>(key_pem.status());
      if (!key.ok()) {
        problems.push_back(key_path.string() + ": " + key.status().message() + " (--reuse-keys needs it)");
        continue;
      }
      if (!CertificateHasKey(cert->get(), key->get())) {
        problems.push_back(key_path.string() + ": not the key of " + crt.filename().string());
        continue;
      }
      job.reused_key = std::move(key).value();
    }
    jobs.push_back(std::move(job));
  }
  for (const KubeconfigProfile& kc : KubeconfigProfiles()) {
    const fs::path path = options.kubeconfig_dir / kc.file_name;
    if (!PathExists(path)) continue;
    CsrJob job;
    job.shown = path.string();
    job.csr_out = options.out_dir / (std::string(kc.file_name) + ".csr");
    job.pending_key = PendingKeyPath(options.kubeconfig_dir, std::string(kc.file_name));
    Result<std::string> text = ReadPlain(path);
    Result<KubeconfigCredentials> creds =
        text.ok() ? ReadKubeconfig(*text) : Result<KubeconfigCredentials>(text.status());
    if (!creds.ok()) {
      problems.push_back(path.string() + ": " + creds.status().message());
      continue;
    }
    if (creds->client_cert_pem.empty()) {
      // kubelet.conf after the kubelet's own rotation points at /var/lib/kubelet/pki: the kubelet renews it.
      summary.skipped.push_back(path.string() + ": no embedded client certificate" +
                                (creds->client_cert_file.empty() ? "" : " (it uses " + creds->client_cert_file + ")"));
      continue;
    }
    Result<X509Ptr> cert = ParseCertificatePem(creds->client_cert_pem);
    if (!cert.ok()) {
      problems.push_back(path.string() + ": client-certificate-data: " + cert.status().message());
      continue;
    }
    if (!fill(job, cert->get(), nullptr)) continue;
    if (options.reuse_keys) {
      Result<EvpPkeyPtr> key = creds->client_key_pem.empty() ? Result<EvpPkeyPtr>(InvalidArgument("no client-key-data"))
                                                             : ParsePrivateKeyPem(creds->client_key_pem);
      if (!key.ok() || !CertificateHasKey(cert->get(), key->get())) {
        problems.push_back(path.string() + ": " +
                           (key.ok() ? "client-key-data is not the key of its certificate" : key.status().message()) +
                           " (--reuse-keys needs it)");
        continue;
      }
      job.reused_key = std::move(key).value();
    }
    jobs.push_back(std::move(job));
  }
  if (!problems.empty()) {
    std::string joined;
    for (const auto& p : problems) joined += (joined.empty() ? "" : "; ") + p;
    return InvalidArgument("no renewal CSR written: " + joined);
  }
  if (jobs.empty()) {
    return NotFound("no certificate to renew under " + options.cert_dir.string() + " and " +
                    options.kubeconfig_dir.string() +
                    " (not a kubeadm node's directories? --cert-dir, --kubeconfig-dir)");
  }
  for (CsrJob& job : jobs) {
    EvpPkeyPtr fresh;
    const EVP_PKEY* key = job.reused_key.get();
    if (!options.reuse_keys) {
      KH_ASSIGN_OR_RETURN(SigningKey generated, SigningKey::GenerateSoftware(job.type));
      KH_ASSIGN_OR_RETURN(std::string key_pem, PrivateKeyToPem(generated.pkey()));
      // The key first: a CSR on the media always has its key on the node.
      KH_RETURN_IF_ERROR(WriteFileAtomic(job.pending_key, key_pem, kKeyMode));
      KH_ASSIGN_OR_RETURN(fresh, ParsePrivateKeyPem(key_pem));
      key = fresh.get();
      ++summary.new_keys;
    }
    KH_ASSIGN_OR_RETURN(std::string csr_pem, MakeCsrPem(job.spec, key));
    KH_RETURN_IF_ERROR(EnsureDirectory(job.csr_out.parent_path(), 0700));
    KH_RETURN_IF_ERROR(WriteFileAtomic(job.csr_out, csr_pem, 0600));
    ++summary.csrs;
    Say(options.progress, "[renewal-csrs] " + job.shown + " -> " + job.csr_out.string() +
                              (options.reuse_keys ? " (existing key)" : " (new key " + job.pending_key.string() + ")"));
  }
  for (const auto& s : summary.skipped) Say(options.progress, "[renewal-csrs] Skipped " + s);
  return summary;
}

namespace {

// One certificate to install.
struct InstallJob {
  std::string name;  // archive name
  const LeafProfile* leaf = nullptr;
  const KubeconfigProfile* kc = nullptr;
  std::string cert_pem;
  fs::path target;       // <leaf>.crt or the kubeconfig
  fs::path pending_key;  // may not exist
  bool has_pending = false;
  std::string pending_pem;
  std::string conf_text;  // kubeconfig only
};

}  // namespace

Result<InstallRenewedSummary> InstallRenewed(const fs::path& signed_dir, const fs::path& cert_dir,
                                             const fs::path& kubeconfig_dir,
                                             const std::function<void(const std::string&)>& progress) {
  std::vector<std::string> problems;
  std::map<CaId, X509Ptr> node_cas;
  std::map<CaId, std::string> node_ca_pem;
  for (const CaProfile& ca : CaProfiles()) {
    const fs::path mine = CertPath(cert_dir, ca.file_base);
    Result<std::string> pem = PathExists(mine) ? ReadPlain(mine) : Result<std::string>(NotFound(""));
    Result<X509Ptr> cert = pem.ok() ? ParseCertificatePem(*pem) : Result<X509Ptr>(pem.status());
    if (cert.ok()) {
      node_cas[ca.id] = std::move(cert).value();
      node_ca_pem[ca.id] = *pem;
    }
    const fs::path theirs = CertPath(signed_dir, std::string("pki/") + std::string(ca.file_base));
    if (!PathExists(theirs)) continue;
    Result<std::string> bytes = ReadPlain(theirs);
    Result<X509Ptr> tc = bytes.ok() ? ParseCertificatePem(*bytes) : Result<X509Ptr>(bytes.status());
    if (!tc.ok()) {
      problems.push_back("pki/" + std::string(ca.file_base) + ".crt: " + tc.status().message());
    } else if (!node_cas.contains(ca.id) || X509_cmp(tc->get(), node_cas.at(ca.id).get()) != 0) {
      problems.push_back("pki/" + std::string(ca.file_base) + ".crt: differs from this node's " + mine.string() +
                         " (signed by another cluster's CA?)");
    }
  }
  std::vector<InstallJob> jobs;
  auto check = [&](InstallJob& job, const X509* old_cert, CaId ca) {
    Result<X509Ptr> cert = ParseCertificatePem(job.cert_pem);
    if (!cert.ok()) {
      problems.push_back(job.name + ": " + cert.status().message());
      return;
    }
    auto node_ca = node_cas.find(ca);
    if (node_ca == node_cas.end()) {
      problems.push_back(job.name + ": this node has no " + std::string(GetCaProfile(ca).name) + " certificate in " +
                         cert_dir.string());
    } else if (Status s = VerifyIssuedBy(cert->get(), node_ca->second.get()); !s.ok()) {
      problems.push_back(job.name + ": not signed by this node's " + std::string(GetCaProfile(ca).name) + " CA (" +
                         s.message() + ")");
    }
    Result<CertSpec> have = SpecFromCertificate(cert->get());
    Result<CertSpec> had = SpecFromCertificate(old_cert);
    if (have.ok() && had.ok() && have->common_name != had->common_name) {
      problems.push_back(job.name + ": CN \"" + have->common_name + "\" replaces \"" + had->common_name + "\"");
    }
    if (job.has_pending) {
      Result<EvpPkeyPtr> key = ParsePrivateKeyPem(job.pending_pem);
      if (!key.ok()) {
        problems.push_back(job.pending_key.string() + ": " + key.status().message());
      } else if (!CertificateHasKey(cert->get(), key->get())) {
        problems.push_back(job.name + ": its public key does not match the pending key " + job.pending_key.string() +
                           " (signed for another request?)");
      }
    } else if (!CertificateHasKey(cert->get(), X509_get0_pubkey(old_cert))) {
      problems.push_back(job.name + ": its public key matches neither a pending key (" + job.pending_key.string() +
                         " is absent) nor the current key");
    }
  };
  for (const LeafProfile& leaf : LeafProfiles()) {
    InstallJob job;
    job.name = "pki/" + std::string(leaf.file_base) + ".crt";
    const fs::path src = signed_dir / job.name;
    if (!PathExists(src)) continue;
    job.leaf = &leaf;
    job.target = CertPath(cert_dir, leaf.file_base);
    job.pending_key = PendingKeyPath(cert_dir, std::string(leaf.file_base));
    Result<std::string> pem = ReadPlain(src);
    if (!pem.ok()) {
      problems.push_back(job.name + ": " + pem.status().message());
      continue;
    }
    job.cert_pem = *pem;
    if (PathExists(job.pending_key)) {
      Result<std::string> k = ReadPlain(job.pending_key);
      if (!k.ok()) {
        problems.push_back(job.pending_key.string() + ": " + k.status().message());
        continue;
      }
      job.has_pending = true;
      job.pending_pem = *k;
    }
    Result<std::string> old_pem = ReadPlain(job.target);
    Result<X509Ptr> old = old_pem.ok() ? ParseCertificatePem(*old_pem) : Result<X509Ptr>(old_pem.status());
    if (!old.ok()) {
      problems.push_back(job.target.string() + ": " + old.status().message() + " (the certificate to replace)");
      continue;
    }
    if (!job.has_pending) {
      // Reused key: the certificate must carry the key on disk.
      Result<EvpPkeyPtr> key = LoadPrivateKeyFile(KeyPath(cert_dir, leaf.file_base));
      if (!key.ok() || !CertificateHasKey(old->get(), key->get())) {
        problems.push_back(KeyPath(cert_dir, leaf.file_base).string() + ": not the key of " + job.target.string());
        continue;
      }
    }
    check(job, old->get(), leaf.ca);
    jobs.push_back(std::move(job));
  }
  for (const KubeconfigProfile& kc : KubeconfigProfiles()) {
    InstallJob job;
    job.name = std::string(kc.file_name) + ".crt";
    const fs::path src = signed_dir / job.name;
    if (!PathExists(src)) continue;
    job.kc = &kc;
    job.target = kubeconfig_dir / kc.file_name;
    job.pending_key = PendingKeyPath(kubeconfig_dir, std::string(kc.file_name));
    Result<std::string> pem = ReadPlain(src);
    if (!pem.ok()) {
      problems.push_back(job.name + ": " + pem.status().message());
      continue;
    }
    job.cert_pem = *pem;
    if (PathExists(job.pending_key)) {
      Result<std::string> k = ReadPlain(job.pending_key);
      if (!k.ok()) {
        problems.push_back(job.pending_key.string() + ": " + k.status().message());
        continue;
      }
      job.has_pending = true;
      job.pending_pem = *k;
    }
    Result<std::string> text = ReadPlain(job.target);
    Result<KubeconfigCredentials> creds =
        text.ok() ? ReadKubeconfig(*text) : Result<KubeconfigCredentials>(text.status());
    Result<X509Ptr> old = !creds.ok() ? Result<X509Ptr>(creds.status())
                          : creds->client_cert_pem.empty()
                              ? Result<X509Ptr>(InvalidArgument("no client-certificate-data"))
                              : ParseCertificatePem(creds->client_cert_pem);
    if (!old.ok()) {
      problems.push_back(job.target.string() + ": " + old.status().message() + " (the kubeconfig to update)");
      continue;
    }
    job.conf_text = *text;
    check(job, old->get(), CaId::kCa);
    jobs.push_back(std::move(job));
  }
  if (!problems.empty()) {
    std::string joined;
    for (const auto& p : problems) {
      Say(progress, "[install-renewed] REFUSED " + p);
      joined += (joined.empty() ? "" : "; ") + p;
    }
    return PermissionDenied("refusing to install anything: " + std::to_string(problems.size()) +
                            " problem(s): " + joined);
  }
  if (jobs.empty()) return NotFound("no renewed certificate to install in " + signed_dir.string());

  InstallRenewedSummary summary;
  for (const InstallJob& job : jobs) {
    if (job.leaf != nullptr) {
      KH_RETURN_IF_ERROR(WriteFileAtomic(job.target, job.cert_pem, kCertMode));
      if (job.has_pending) {
        // Only now, with the certificate in place, does the new key retire the old one.
        std::error_code ec;
        fs::rename(job.pending_key, KeyPath(cert_dir, job.leaf->file_base), ec);
        if (ec) return Internal("cannot move " + job.pending_key.string() + " into place: " + ec.message());
      }
    } else {
      const std::optional<std::string_view> key =
          job.has_pending ? std::optional<std::string_view>(job.pending_pem) : std::nullopt;
      KH_ASSIGN_OR_RETURN(std::string updated,
                          UpdateKubeconfigCredentials(job.conf_text, job.cert_pem, key, node_ca_pem.at(CaId::kCa)));
      KH_RETURN_IF_ERROR(WriteFileAtomic(job.target, updated, kKubeconfigMode));
      if (job.has_pending) {
        std::error_code ec;
        fs::remove(job.pending_key, ec);
        if (ec) return Internal("cannot remove " + job.pending_key.string() + ": " + ec.message());
      }
    }
    ++summary.installed;
    if (job.has_pending) ++summary.new_keys;
    Say(progress,
        "[install-renewed] Installed " + job.target.string() + (job.has_pending ? " (new key)" : " (same key)"));
  }
  Say(progress, "[install-renewed] Done: " + std::to_string(summary.installed) + " certificate(s) installed, " +
                    std::to_string(summary.new_keys) + " with a new key");
  return summary;
}

}  // namespace kubehsm::signer::pki
