#include "cli/pki_flags.h"

#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "cli/progress.h"
#include "signer/pki/config_overrides.h"
#include "signer/pki/versions.h"

namespace kubehsm::cli {
namespace po = boost::program_options;

po::options_description ClusterConfigFlags(const std::string& title, FlagsFor command) {
  po::options_description d(title);
  d.add_options()
      ("config", po::value<std::string>(), "kubeadm configuration file (InitConfiguration + ClusterConfiguration)")
      // No default_value: Boost would print it beside the text's own, and the default depends on --config.
      ("cert-dir", po::value<std::string>(),
       "where certificates and keys are written; default: the config's certificatesDir with --config, "
       "else /etc/kubernetes/pki")
      ("kubeconfig-dir", po::value<std::string>()->default_value("/etc/kubernetes"), "where kubeconfig files go")
      ("node-name", po::value<std::string>(), "node name (default: lower-cased hostname)")
      ("advertise-address", po::value<std::string>(), "API server advertise address (alias: --apiserver-advertise-address)")
      ("apiserver-advertise-address", po::value<std::string>(), "same as --advertise-address")
      ("apiserver-bind-port", po::value<int>(), "API server port (default 6443)")
      ("control-plane-endpoint", po::value<std::string>(), "stable host[:port] for the control plane")
      ("service-cidr", po::value<std::string>(), "service subnet (default 10.96.0.0/12)")
      ("service-dns-domain", po::value<std::string>(), "cluster DNS domain (default cluster.local)")
      ("apiserver-cert-extra-sans", po::value<std::vector<std::string>>()->composing(),
       "extra apiserver SANs, comma-separated, repeatable")
      ("encryption-algorithm", po::value<std::string>(), "RSA-2048 (default) | RSA-3072 | RSA-4096 | ECDSA-P256 | ECDSA-P384")
      ("kubernetes-version", po::value<std::string>(),
       ("the cluster's Kubernetes version (e.g. v1.36.0; supported " + signer::pki::SupportedVersionRange() +
        "; default: the config's kubernetesVersion, else " + signer::pki::VersionName(signer::pki::DefaultKubernetesVersion()) +
        "); selects kubeadm's profile differences between versions").c_str())
      ("overwrite", po::bool_switch(),
       command == FlagsFor::kInit
           ? "repair what does not pair up: create a missing CA key, re-issue a CA certificate from the token key, "
             "regenerate leaves and kubeconfigs that no longer match (never deletes a token key)"
           // certs issue only copies the CA certificates: it never creates or re-issues a CA.
           : "replace CA certificates and sa.pub in --cert-dir that differ from --ca-dir's, and regenerate leaves "
             "and kubeconfigs that no longer match (never creates, re-issues or deletes a CA or a token key)");
  return d;
}

Result<signer::pki::PkiOptions> PkiOptionsFromFlags(Context& ctx, const po::variables_map& vm) {
  signer::pki::ConfigOverrides o;
  auto opt = [&](const char* name, std::optional<std::string>& dst) {
    if (vm.count(name) != 0) dst = vm[name].as<std::string>();
  };
  opt("node-name", o.node_name);
  opt("apiserver-advertise-address", o.advertise_address);
  opt("advertise-address", o.advertise_address);
  opt("control-plane-endpoint", o.control_plane_endpoint);
  opt("service-cidr", o.service_cidr);
  opt("service-dns-domain", o.dns_domain);
  opt("encryption-algorithm", o.encryption_algorithm);
  opt("kubernetes-version", o.kubernetes_version);
  if (vm.count("apiserver-bind-port") != 0) o.bind_port = vm["apiserver-bind-port"].as<int>();
  if (vm.count("apiserver-cert-extra-sans") != 0) {
    for (const auto& v : vm["apiserver-cert-extra-sans"].as<std::vector<std::string>>()) {
      size_t start = 0;
      while (start <= v.size()) {
        const size_t comma = v.find(',', start);
        std::string s = v.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        if (!s.empty()) o.apiserver_extra_sans.push_back(s);
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
    }
  }
  const std::string config_file = vm.count("config") != 0 ? vm["config"].as<std::string>() : "";
  KH_ASSIGN_OR_RETURN(signer::pki::ClusterConfig config, signer::pki::ResolveClusterConfig(config_file, o));
  signer::pki::PkiOptions options;
  // config.cert_dir is the config's certificatesDir, or /etc/kubernetes/pki without --config.
  options.cert_dir = vm.count("cert-dir") != 0 ? vm["cert-dir"].as<std::string>() : config.cert_dir;
  options.kubeconfig_dir = vm["kubeconfig-dir"].as<std::string>();
  options.config = std::move(config);
  options.overwrite = vm.count("overwrite") != 0 && vm["overwrite"].as<bool>();
  options.progress = [&ctx](const std::string& line) { ctx.out() << line << "\n" << std::flush; };
  // An elapsed-time display while a key is generated in the token, on a terminal only.
  auto display = std::make_shared<ElapsedDisplay>(ctx.out(), ElapsedDisplay::IsTerminal(ctx.out()));
  options.long_step = [display](bool running) {
    if (running) {
      display->Start();
    } else {
      display->Stop();
    }
  };
  return options;
}

}  // namespace kubehsm::cli
