// kubehsm kubeadm patches: writes the kubeadm patch files that make kubeadm's manifests run with
// `kubehsm serve` (signer/pki/kubeadm_patches.h makes them; this file parses, writes and prints).
#include <sys/stat.h>

#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "cli/command.h"
#include "common/file_util.h"
#include "signer/pki/cluster_config.h"
#include "signer/pki/kubeadm_patches.h"
#include "signer/pki/versions.h"

namespace kubehsm::cli {
namespace po = boost::program_options;
namespace fs = std::filesystem;
namespace {

constexpr std::size_t kMaxConfigBytes = 1 << 20;

// Reads certificatesDir and kubernetesVersion from a kubeadm config. The patches need neither the
// node name nor the advertise address, so the host is not probed for them: fixed stand-ins only
// satisfy the config's validation (a value the file gives is still validated as always).
Result<signer::pki::ClusterConfig> LoadConfigForPatches(const std::string& path) {
  KH_ASSIGN_OR_RETURN(std::string yaml, ReadRegularFileBounded(path, kMaxConfigBytes));
  signer::pki::HostDefaults host;
  host.node_name = []() -> Result<std::string> { return std::string("node"); };
  host.advertise_address = []() -> Result<std::string> { return std::string("192.0.2.1"); };
  return signer::pki::ParseKubeadmConfig(yaml, host);
}

int KubeadmPatches(Context& ctx, const Args& args) {
  po::options_description d("kubehsm kubeadm patches options");
  d.add_options()("out", po::value<std::string>(), "directory for the patch files (created 0755 if missing)")(
      "socket", po::value<std::string>(),
      "the Unix socket kubehsm serve listens on (--socket of serve), e.g. /run/kubehsm/signer.sock")(
      "config", po::value<std::string>(),
      "kubeadm configuration file: certificatesDir and kubernetesVersion are read from it")(
      "kubernetes-version", po::value<std::string>(),
      ("the cluster's Kubernetes version (supported " + signer::pki::SupportedVersionRange() +
       "; default: the config's kubernetesVersion, else " +
       signer::pki::VersionName(signer::pki::DefaultKubernetesVersion()) +
       "); 1.32 and 1.33 also get --feature-gates=ExternalServiceAccountTokenSigner=true")
          .c_str())("cert-dir", po::value<std::string>(),
                    "kubeadm's certificatesDir (default: the config's, else /etc/kubernetes/pki); the removed "
                    "flags name sa.pub and sa.key in it")(
      "force", po::bool_switch(), "replace existing patch files whose content differs");
  po::variables_map vm;
  int code = 0;
  if (!ParseArgs(ctx,
                 "kubehsm kubeadm patches [--config kubeadm.yaml | --kubernetes-version V --cert-dir DIR] "
                 "--out DIR --socket PATH [--force]\n\n"
                 "Writes kubeadm patch files that make kubeadm's kube-apiserver and kube-controller-manager\n"
                 "manifests work with `kubehsm serve` as the external service-account token signer:\n"
                 "kube-apiserver loses --service-account-key-file and --service-account-signing-key-file and\n"
                 "gets --service-account-signing-endpoint (plus the feature gate on 1.32/1.33) and a read-only\n"
                 "hostPath mount of the socket's directory; kube-controller-manager loses\n"
                 "--service-account-private-key-file (its legacy token controller then stays off). The patches\n"
                 "do not depend on flag positions. Use them with `kubeadm init|join|upgrade ... --patches DIR`.",
                 d, nullptr, args, vm, code)) {
    return code;
  }
  if (vm.count("out") == 0) return ctx.UsageError("--out DIR is required (see 'kubehsm kubeadm patches --help')");
  if (vm.count("socket") == 0) {
    return ctx.UsageError("--socket PATH is required: the socket kubehsm serve listens on, e.g. "
                          "/run/kubehsm/signer.sock (see 'kubehsm kubeadm patches --help')");
  }

  signer::pki::KubeadmPatchOptions options;
  options.socket_path = vm["socket"].as<std::string>();
  if (Status s = signer::pki::CheckSignerSocketPath(options.socket_path); !s.ok()) return ctx.UsageError(s.message());
  const std::string config_file = vm.count("config") != 0 ? vm["config"].as<std::string>() : "";
  std::string kubeadm_command = "init";  // the kubeadm command that reads this config
  if (!config_file.empty()) {
    auto config = LoadConfigForPatches(config_file);
    if (!config.ok()) return ctx.Fail(config.status().WithContext("--config " + config_file));
    options.cert_dir = config->cert_dir;
    options.kubernetes_version = config->kubernetes_version;
    if (config->node_role != signer::pki::NodeRole::kInit) kubeadm_command = "join";
    // A JoinConfiguration alone (or a ClusterConfiguration without kubernetesVersion) names no
    // version, and the default (the newest minor) gets no feature gate: a 1.32/1.33 cluster would
    // then start kube-apiserver without it. Say so, unless the version is given as a flag.
    auto text = ReadRegularFileBounded(config_file, kMaxConfigBytes);
    if (vm.count("kubernetes-version") == 0 && text.ok() && text->find("kubernetesVersion:") == std::string::npos) {
      ctx.err() << "kubehsm: warning: " << config_file << " names no kubernetesVersion; assuming "
                << signer::pki::VersionName(options.kubernetes_version)
                << " (no feature gate): for a 1.32 or 1.33 cluster pass --kubernetes-version\n";
    }
  }
  if (vm.count("kubernetes-version") != 0) {
    auto v = signer::pki::ParseKubernetesVersion(vm["kubernetes-version"].as<std::string>(), "--kubernetes-version");
    if (!v.ok()) return ctx.UsageError(v.status().message());
    options.kubernetes_version = *v;
  }
  if (vm.count("cert-dir") != 0) options.cert_dir = vm["cert-dir"].as<std::string>();
  auto files = signer::pki::KubeadmPatches(options);
  if (!files.ok()) return ctx.Fail(files.status());

  // Check every file before writing any, so a refusal leaves the directory as it was.
  const fs::path out = fs::absolute(vm["out"].as<std::string>()).lexically_normal();
  const bool force = vm["force"].as<bool>();
  std::vector<bool> unchanged;
  for (const auto& f : *files) {
    const fs::path path = out / f.name;
    std::error_code ec;
    const auto st = fs::symlink_status(path, ec);
    if (ec || !fs::exists(st)) {
      unchanged.push_back(false);
      continue;
    }
    if (!fs::is_regular_file(st)) {
      return ctx.Fail(FailedPrecondition(path.string() + " exists and is not a regular file; refusing to replace it"));
    }
    auto existing = ReadRegularFileBounded(path, kMaxConfigBytes);
    const bool same = existing.ok() && *existing == f.content;
    if (!same && !force) {
      return ctx.Fail(AlreadyExists(path.string() +
                                    " exists with different content; nothing was written (compare it, then "
                                    "pass --force to replace it)"));
    }
    unchanged.push_back(same);
  }
  std::error_code ec;
  if (!fs::is_directory(out, ec)) {
    if (Status s = EnsureDirectory(out, 0755); !s.ok()) return ctx.Fail(s);
    if (::chmod(out.c_str(), 0755) != 0) {
      return ctx.Fail(PermissionDenied("cannot set mode 0755 on " + out.string() + ": " + ErrnoText(errno)));
    }
  }
  for (std::size_t i = 0; i < files->size(); ++i) {
    const auto& f = (*files)[i];
    if (unchanged[i]) {
      ctx.out() << "[kubeadm-patches] unchanged " << (out / f.name).string() << "\n";
      continue;
    }
    if (Status s = WriteFileAtomic(out / f.name, f.content, 0644); !s.ok()) return ctx.Fail(s);
    ctx.out() << "[kubeadm-patches] wrote " << (out / f.name).string() << ": " << f.summary << "\n";
  }
  const std::string config_arg = config_file.empty() ? "kubeadm.yaml" : config_file;
  ctx.out() << "\nkubeadm applies them to the manifests it writes (Kubernetes "
            << signer::pki::VersionName(options.kubernetes_version) << ", certificatesDir " << options.cert_dir
            << "):\n"
            << "  kubeadm " << kubeadm_command << " --config " << config_arg << " --patches " << out.string() << "\n"
            << "  (or patches.directory: " << out.string()
            << " in InitConfiguration/JoinConfiguration; pass --patches again to kubeadm join and kubeadm upgrade)\n"
            << "Start `kubehsm serve --socket " << options.socket_path
            << "` before the kubelet starts kube-apiserver: its directory must exist (hostPath type Directory).\n";
  return kExitOk;
}

}  // namespace

int RunKubeadm(Context& ctx, const Args& args) {
  return DispatchSubcommand(
      ctx, args, "kubeadm",
      {{"patches", KubeadmPatches,
        "write kubeadm patch files that make kube-apiserver and kube-controller-manager use kubehsm serve"}},
      "Helpers for running a kubeadm cluster with kubehsm.");
}

}  // namespace kubehsm::cli
