// The kubeconfig phase of init (and the kubeconfig part of `certs issue`), spec kubeadm-pki.md §4.
#include <algorithm>
#include <filesystem>
#include <string>
#include <string_view>

#include "common/file_util.h"
#include "signer/pki/init_internal.h"
#include "signer/pki/kubeconfig.h"
#include "signer/pki/pem.h"
#include "signer/pki/pki_files.h"

namespace kubehsm::signer::pki::internal {
namespace {

std::string Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

// kubeadm reuses a kubeconfig whose CA data equals ca.crt; kubehsm also checks that the embedded
// client certificate is still a valid credential of the profile (chain, key, subject, EKU).
Status CheckExistingKubeconfig(const std::string& text, const LoadedCa& ca, const std::string& ca_pem,
                               const CertSpec& want, const std::string& server, Runner& r,
                               const std::filesystem::path& path) {
  KH_ASSIGN_OR_RETURN(KubeconfigCredentials creds, ReadKubeconfig(text));
  if (Trim(creds.ca_pem) != Trim(ca_pem)) {
    return FailedPrecondition("its certificate-authority-data is not the current " +
                              CertPath(r.options.cert_dir, "ca").string());
  }
  if (creds.client_cert_pem.empty() || creds.client_key_pem.empty()) {
    return FailedPrecondition("it has no embedded client certificate and key");
  }
  KH_ASSIGN_OR_RETURN(X509Ptr cert, ParseCertificatePem(creds.client_cert_pem));
  KH_ASSIGN_OR_RETURN(EvpPkeyPtr key, ParsePrivateKeyPem(creds.client_key_pem));
  KH_RETURN_IF_ERROR(CheckLeaf(cert.get(), key.get(), ca.cert.get(), want));
  if (creds.server != server) {
    r.Say("[kubeconfig] WARNING: " + path.string() + " uses server " + creds.server + ", expected " + server);
  }
  return OkStatus();
}

}  // namespace

Status WriteKubeconfigs(Runner& r, bool node_set_only) {
  const auto& opts = r.options;
  r.Say("[kubeconfig] Using kubeconfig folder \"" + opts.kubeconfig_dir.string() + "\"");
  KH_ASSIGN_OR_RETURN(LoadedCa ca, r.LoadCa(GetCaProfile(CaId::kCa), opts.cert_dir));
  // kubeadm embeds the first certificate of ca.crt, re-encoded.
  KH_ASSIGN_OR_RETURN(std::string ca_pem, CertificateToPem(ca.cert.get()));
  KH_ASSIGN_OR_RETURN(Validity ca_validity, CertificateValidity(ca.cert.get()));
  KH_RETURN_IF_ERROR(ControlPlaneUrl(opts.config).status());
  for (const KubeconfigProfile& kc : KubeconfigProfiles()) {
    if (node_set_only && kc.init_only) continue;
    const auto path = opts.kubeconfig_dir / kc.file_name;
    KH_ASSIGN_OR_RETURN(const std::string server, KubeconfigServerUrl(kc, opts.config));
    const CertSpec spec = KubeconfigClientSpec(kc, opts.config);
    if (PathExists(path)) {
      KH_ASSIGN_OR_RETURN(std::string text, ReadFileBounded(path, kMaxPemFileBytes));
      Status problem = CheckExistingKubeconfig(text, ca, ca_pem, spec, server, r, path);
      if (problem.ok()) {
        r.Say("[kubeconfig] Using existing kubeconfig file: \"" + path.string() + "\"");
        ++r.summary.kept;
        continue;
      }
      if (!opts.overwrite) {
        return Status(problem.code(), "existing kubeconfig file " + path.string() + " cannot be used: " +
                                          problem.message() + " (remove it or use --overwrite to regenerate it)");
      }
    }
    r.Say("[kubeconfig] Writing \"" + std::string(kc.file_name) + "\" kubeconfig file");
    // 1.31+: NotAfter = T + certificateValidityPeriod, NotBefore left at the helper default, which is
    // the CA certificate's NotBefore (spec §4, confirmed on kubeadm 1.32.6 output).
    const Validity validity{ca_validity.not_before, opts.now + opts.config.cert_validity};
    KH_ASSIGN_OR_RETURN(KeyAndCert client, r.IssueWithNewKey(ca, spec, validity, kc.file_name));
    KubeconfigSpec kspec;
    kspec.cluster_name = opts.config.cluster_name;
    kspec.server = server;
    kspec.ca_pem = ca_pem;
    kspec.user_name = spec.common_name;
    kspec.client_cert_pem = client.cert_pem;
    kspec.client_key_pem = client.key_pem;
    KH_RETURN_IF_ERROR(r.Write(path, RenderKubeconfig(kspec), kKubeconfigMode));
  }
  return OkStatus();
}

}  // namespace kubehsm::signer::pki::internal
