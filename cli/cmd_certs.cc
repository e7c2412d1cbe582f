// kubehsm certs issue|check-expiration|renew (signer/pki does the work; this file parses and
// prints). `certs sign-csr` / `certs sign-dir` belong here too (a later issue).
#include <iostream>

#include "cli/command.h"
#include "signer/pki/init.h"
#include "signer/pki/maintenance.h"
#include "signer/pki/pki_files.h"

namespace kubehsm::cli {
namespace po = boost::program_options;

// Defined in cmd_init.cc (the flag table and its translation are shared with `kubehsm init`).
po::options_description ClusterConfigFlags(const std::string& title);
Result<signer::pki::PkiOptions> PkiOptionsFromFlags(Context& ctx, const po::variables_map& vm);

namespace {

int CertsIssue(Context& ctx, const Args& args) {
  po::options_description d = ClusterConfigFlags("kubehsm certs issue options");
  d.add_options()("ca-dir", po::value<std::string>()->default_value("/etc/kubernetes/pki"),
                  "directory holding ca.crt, etcd/ca.crt, front-proxy-ca.crt (and sa.pub) of the cluster");
  po::variables_map vm;
  int code = 0;
  if (!ParseArgs(ctx,
                 "kubehsm certs issue --cert-dir DIR --kubeconfig-dir DIR [--node-name N] [--advertise-address IP] "
                 "[--config FILE] [--ca-dir DIR]\n\nIssues the per-node set (apiserver, etcd server/peer, client "
                 "certificates with fresh keys, admin/controller-manager/scheduler kubeconfigs) for another "
                 "control-plane node from the cluster's CAs in the token.",
                 d, nullptr, args, vm, code)) {
    return code;
  }
  auto options = PkiOptionsFromFlags(ctx, vm);
  if (!options.ok()) return ctx.Fail(options.status());
  auto store = ctx.KeyStore();
  if (!store.ok()) return ctx.Fail(store.status());
  auto r = signer::pki::IssueNodeSet(**store, vm["ca-dir"].as<std::string>(), *options);
  if (!r.ok()) return ctx.Fail(r.status());
  ctx.out() << "[certs] Node set for \"" << options->config.node_name << "\" ready: " << r->written
            << " file(s) written, " << r->kept << " kept\n";
  return kExitOk;
}

// --config for the commands that only need the cluster facts, not the host's.
Result<signer::pki::ClusterConfig> OptionalConfig(const po::variables_map& vm) {
  signer::pki::ClusterConfig config;
  if (vm.count("config") == 0) return config;
  Result<signer::pki::ClusterConfig> c = signer::pki::LoadKubeadmConfig(vm["config"].as<std::string>());
  if (!c.ok()) return c.status().WithContext("--config");
  return c;
}

int CertsCheckExpiration(Context& ctx, const Args& args) {
  po::options_description d("kubehsm certs check-expiration options");
  d.add_options()("cert-dir", po::value<std::string>()->default_value("/etc/kubernetes/pki"), "certificate directory")(
      "kubeconfig-dir", po::value<std::string>()->default_value("/etc/kubernetes"), "kubeconfig directory")(
      "config", po::value<std::string>(), "kubeadm configuration file (for external etcd)")(
      "output,o", po::value<std::string>()->default_value("text"), "text | json | yaml");
  po::variables_map vm;
  int code = 0;
  if (!ParseArgs(ctx, "kubehsm certs check-expiration [--cert-dir DIR] [--kubeconfig-dir DIR] [-o text|json|yaml]",
                 d, nullptr, args, vm, code)) {
    return code;
  }
  const std::string output = vm["output"].as<std::string>();
  if (output != "text" && output != "json" && output != "yaml") {
    return ctx.UsageError("--output must be text, json or yaml");
  }
  auto config = OptionalConfig(vm);
  if (!config.ok()) return ctx.Fail(config.status());
  auto report = signer::pki::CheckExpiration(vm["cert-dir"].as<std::string>(), vm["kubeconfig-dir"].as<std::string>(),
                                             *config, signer::pki::Clock::now(), nullptr);
  if (!report.ok()) return ctx.Fail(report.status());
  if (output == "json") {
    ctx.out() << signer::pki::FormatExpirationJson(*report);
  } else if (output == "yaml") {
    ctx.out() << signer::pki::FormatExpirationYaml(*report);
  } else {
    ctx.out() << signer::pki::FormatExpirationText(*report);
  }
  return kExitOk;
}

int CertsRenew(Context& ctx, const Args& args) {
  po::options_description d("kubehsm certs renew options");
  d.add_options()("cert-dir", po::value<std::string>()->default_value("/etc/kubernetes/pki"), "certificate directory")(
      "kubeconfig-dir", po::value<std::string>()->default_value("/etc/kubernetes"), "kubeconfig directory")(
      "config", po::value<std::string>(), "kubeadm configuration file (validity period, key algorithm)")(
      "name", po::value<std::vector<std::string>>(), "all | certificate name (positional)");
  po::positional_options_description pos;
  pos.add("name", -1);
  po::variables_map vm;
  int code = 0;
  std::string names_help;
  for (const auto& n : signer::pki::RenewableNames()) names_help += "\n  " + n;
  if (!ParseArgs(ctx, "kubehsm certs renew all|NAME... [--cert-dir DIR] [--kubeconfig-dir DIR]\n\nNames: all" +
                          names_help,
                 d, &pos, args, vm, code)) {
    return code;
  }
  if (vm.count("name") == 0) return ctx.UsageError("'kubehsm certs renew' needs 'all' or a certificate name");
  auto config = OptionalConfig(vm);
  if (!config.ok()) return ctx.Fail(config.status());
  signer::pki::PkiOptions options;
  options.config = *config;
  options.cert_dir = vm["cert-dir"].as<std::string>();
  options.kubeconfig_dir = vm["kubeconfig-dir"].as<std::string>();
  options.progress = [&ctx](const std::string& line) { ctx.out() << line << "\n" << std::flush; };
  if (vm.count("config") == 0) {
    // Without a config, new keys follow the cluster's algorithm as ca.crt's key shows it.
    auto ca = signer::pki::LoadCertificateFile(signer::pki::CertPath(options.cert_dir, "ca"));
    if (ca.ok()) {
      auto type = signer::KeyTypeOf(X509_get0_pubkey(ca->get()));
      if (type.ok()) options.config.encryption_algorithm = *type;
    }
  }
  const auto names = vm["name"].as<std::vector<std::string>>();
  const auto valid = signer::pki::RenewableNames();
  for (const auto& n : names) {
    if (n != "all" && std::find(valid.begin(), valid.end(), n) == valid.end()) {
      return ctx.UsageError("unknown certificate '" + n + "' (see 'kubehsm certs renew --help')");
    }
  }
  auto store = ctx.KeyStore();
  if (!store.ok()) return ctx.Fail(store.status());
  auto r = signer::pki::RenewCertificates(**store, names, options);
  if (!r.ok()) return ctx.Fail(r.status());
  return kExitOk;
}

}  // namespace

int RunCerts(Context& ctx, const Args& args) {
  static constexpr const char* kHelp =
      "Usage: kubehsm certs COMMAND [options]\n\n"
      "  issue             issue the per-node certificate set for another control-plane node\n"
      "  check-expiration  show when each certificate expires (kubeadm's table, or -o json|yaml)\n"
      "  renew             renew certificates and kubeconfig credentials (all | NAME)\n";
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    ctx.out() << kHelp;
    return args.empty() ? kExitUsage : kExitOk;
  }
  const Args rest(args.begin() + 1, args.end());
  if (args[0] == "issue") return CertsIssue(ctx, rest);
  if (args[0] == "check-expiration") return CertsCheckExpiration(ctx, rest);
  if (args[0] == "renew") return CertsRenew(ctx, rest);
  return ctx.UsageError("unknown subcommand 'certs " + args[0] + "'");
}

}  // namespace kubehsm::cli
