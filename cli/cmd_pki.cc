// kubehsm pki verify|tree (signer/pki/maintenance.h does the work; this file parses and prints).
#include <algorithm>
#include <iostream>
#include <optional>
#include <string>

#include "cli/command.h"
#include "signer/pki/maintenance.h"
#include "signer/pki/versions.h"

namespace kubehsm::cli {
namespace po = boost::program_options;
namespace {

po::options_description DirFlags(const std::string& title) {
  po::options_description d(title);
  d.add_options()("cert-dir", po::value<std::string>()->default_value("/etc/kubernetes/pki"), "certificate directory")(
      "kubeconfig-dir", po::value<std::string>()->default_value("/etc/kubernetes"), "kubeconfig directory");
  return d;
}

int PkiVerify(Context& ctx, const Args& args) {
  po::options_description d = DirFlags("kubehsm pki verify options");
  d.add_options()("config", po::value<std::string>(),
                  "kubeadm configuration file: also check node name and every configured SAN")(
      "check-token", po::bool_switch(), "also check each CA certificate against its key in the token")(
      "kubernetes-version", po::value<std::string>(),
      ("the cluster's Kubernetes version (e.g. v1.36.0; supported " + signer::pki::SupportedVersionRange() +
       "): check the subjects of that version's kubeadm profiles; default: --config's kubernetesVersion, "
       "else the subject of any supported version is accepted")
          .c_str());
  po::variables_map vm;
  int code = 0;
  if (!ParseArgs(ctx,
                 "kubehsm pki verify [--cert-dir DIR] [--kubeconfig-dir DIR] [--config FILE] [--kubernetes-version V] "
                 "[--check-token]",
                 d, nullptr, args, vm, code)) {
    return code;
  }
  std::optional<signer::pki::KubernetesVersion> version;
  if (vm.count("kubernetes-version") != 0) {
    auto v = signer::pki::ParseKubernetesVersion(vm["kubernetes-version"].as<std::string>(), "--kubernetes-version");
    if (!v.ok()) return ctx.UsageError(v.status().message());
    version = *v;
  }
  std::optional<signer::pki::ClusterConfig> config;
  if (vm.count("config") != 0) {
    auto c = signer::pki::LoadKubeadmConfig(vm["config"].as<std::string>());
    if (!c.ok()) return ctx.Fail(c.status().WithContext("--config"));
    if (Status s = signer::pki::RequireControlPlaneNode(*c); !s.ok()) return ctx.Fail(s.WithContext("--config"));
    config = *c;
    if (version) config->kubernetes_version = *version;
  }
  signer::KeyStore* store = nullptr;
  if (vm["check-token"].as<bool>()) {
    auto s = ctx.KeyStore();
    if (!s.ok()) return ctx.Fail(s.status());
    store = *s;
  }
  const auto items = signer::pki::VerifyPki(vm["cert-dir"].as<std::string>(), vm["kubeconfig-dir"].as<std::string>(),
                                            config ? &*config : nullptr, signer::pki::Clock::now(), store, version);
  ctx.out() << signer::pki::FormatVerifyReport(items);
  const auto failed = std::count_if(items.begin(), items.end(), [](const auto& i) { return !i.ok; });
  if (failed != 0) {
    ctx.err() << "kubehsm: error: " << failed << " of " << items.size() << " item(s) failed verification\n";
    return kExitFailure;
  }
  return kExitOk;
}

int PkiTree(Context& ctx, const Args& args) {
  po::options_description d = DirFlags("kubehsm pki tree options");
  d.add_options()("dot", po::bool_switch(), "print a Graphviz digraph instead of text");
  po::variables_map vm;
  int code = 0;
  if (!ParseArgs(ctx, "kubehsm pki tree [--cert-dir DIR] [--kubeconfig-dir DIR] [--dot]", d, nullptr, args, vm, code)) {
    return code;
  }
  auto tree = signer::pki::RenderPkiTree(vm["cert-dir"].as<std::string>(), vm["kubeconfig-dir"].as<std::string>(),
                                         vm["dot"].as<bool>());
  if (!tree.ok()) return ctx.Fail(tree.status());
  ctx.out() << *tree;
  return kExitOk;
}

}  // namespace

int RunPki(Context& ctx, const Args& args) {
  return DispatchSubcommand(
      ctx, args, "pki",
      {{"verify", PkiVerify,
        "check every certificate, key and kubeconfig against its CA, key, profile, validity and mode"},
       {"tree", PkiTree, "print the chain of trust (--dot for Graphviz)"}});
}

}  // namespace kubehsm::cli
