#include "signer/pki/kubeadm_patches.h"

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace kubehsm::signer::pki {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Go's filepath.Clean for absolute paths, as kubeadm's filepath.Join(certificatesDir, name)
// applies it: "." and ".." resolved lexically, repeated and trailing separators dropped.
std::string CleanAbsolute(const std::string& path) {
  std::string s = fs::path(path).lexically_normal().string();
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}

std::string JoinClean(const std::string& dir, const std::string& name) { return CleanAbsolute(dir + "/" + name); }

// Feature gate needed by kube-apiserver 1.32 and 1.33 (alpha, off by default). From 1.34 it is on
// by default, and in 1.36 it is GA: setting it there only warns and will fail once it is removed.
bool NeedsExternalSignerFeatureGate(KubernetesVersion v) { return v.minor <= 33; }

std::string Render(const json& j) { return j.dump(2) + "\n"; }

}  // namespace

Status CheckSignerSocketPath(const std::string& socket_path) {
  const std::string what = "--socket '" + socket_path + "'";
  if (socket_path.empty()) return InvalidArgument("--socket is required (the path kubehsm serve listens on)");
  if (socket_path.rfind("unix:", 0) == 0) {
    return InvalidArgument(what + ": give the filesystem path without a unix:// prefix (kube-apiserver's "
                                  "--service-account-signing-endpoint takes a path)");
  }
  if (socket_path[0] == '@') {
    return InvalidArgument(what + ": abstract sockets are refused (any local process can bind an abstract name "
                                  "while kubehsm serve is down); use a filesystem path such as "
                                  "/run/kubehsm/signer.sock");
  }
  if (socket_path[0] != '/') return InvalidArgument(what + ": the socket path must be absolute");
  for (char c : socket_path) {
    if (c <= ' ' || c > '~' || c == ',') {
      return InvalidArgument(what + ": the socket path may hold printable ASCII only, without spaces or commas");
    }
  }
  if (socket_path.size() > 107) {
    return InvalidArgument(what + ": a Unix socket path is at most 107 bytes (sun_path)");
  }
  if (CleanAbsolute(socket_path) != socket_path) {
    return InvalidArgument(what + ": give the path in its plain form, without '.', '..', '//' or a trailing '/' (" +
                           CleanAbsolute(socket_path) + ")");
  }
  if (fs::path(socket_path).parent_path() == "/") {
    return InvalidArgument(what + ": the socket's directory is mounted into kube-apiserver's pod, and mounting the "
                                  "host's / is refused; use a directory of its own such as /run/kubehsm");
  }
  return OkStatus();
}

Result<std::vector<KubeadmPatchFile>> KubeadmPatches(const KubeadmPatchOptions& options) {
  if (options.kubernetes_version < kOldestKubernetesVersion || options.kubernetes_version > kNewestKubernetesVersion) {
    return InvalidArgument("Kubernetes " + VersionName(options.kubernetes_version) + " is not supported (supported: " +
                           SupportedVersionRange() + ")");
  }
  if (options.cert_dir.empty() || options.cert_dir[0] != '/') {
    return InvalidArgument("certificates directory '" + options.cert_dir +
                           "' must be an absolute path (kubeadm's certificatesDir is)");
  }
  KH_RETURN_IF_ERROR(CheckSignerSocketPath(options.socket_path));
  const std::string socket_dir = fs::path(options.socket_path).parent_path().string();
  const std::string sa_pub = JoinClean(options.cert_dir, "sa.pub");
  const std::string sa_key = JoinClean(options.cert_dir, "sa.key");

  std::vector<KubeadmPatchFile> files;

  // 1. Remove the two key flags wherever they are; mount the socket's directory.
  json apiserver_strategic = {
      {"spec",
       {{"containers",
         json::array({{{"name", "kube-apiserver"},
                       {"$deleteFromPrimitiveList/command",
                        json::array({"--service-account-key-file=" + sa_pub,
                                     "--service-account-signing-key-file=" + sa_key})},
                       {"volumeMounts", json::array({{{"name", kKubehsmSocketVolume},
                                                      {"mountPath", socket_dir},
                                                      {"readOnly", true}}})}}})},
        {"volumes", json::array({{{"name", kKubehsmSocketVolume},
                                  {"hostPath", {{"path", socket_dir}, {"type", "Directory"}}}}})}}}};
  files.push_back({"kube-apiserver-kubehsm-1+strategic.json", Render(apiserver_strategic),
                   "kube-apiserver: remove --service-account-key-file and --service-account-signing-key-file; "
                   "mount " +
                       socket_dir + " (hostPath, type Directory, read-only)"});

  // 2. Append the endpoint (and the gate where needed) at the end of the command.
  json ops = json::array({{{"op", "test"}, {"path", "/spec/containers/0/name"}, {"value", "kube-apiserver"}},
                          {{"op", "add"},
                           {"path", "/spec/containers/0/command/-"},
                           {"value", "--service-account-signing-endpoint=" + options.socket_path}}});
  std::string added = "--service-account-signing-endpoint=" + options.socket_path;
  if (NeedsExternalSignerFeatureGate(options.kubernetes_version)) {
    ops.push_back({{"op", "add"},
                   {"path", "/spec/containers/0/command/-"},
                   {"value", "--feature-gates=ExternalServiceAccountTokenSigner=true"}});
    added += " and --feature-gates=ExternalServiceAccountTokenSigner=true (Kubernetes " +
             VersionName(options.kubernetes_version) + ")";
  }
  files.push_back({"kube-apiserver-kubehsm-2+json.json", Render(ops), "kube-apiserver: add " + added});

  // 3. kube-controller-manager: no sa.key exists, so its legacy token controller cannot run.
  json kcm = {{"spec",
               {{"containers", json::array({{{"name", "kube-controller-manager"},
                                             {"$deleteFromPrimitiveList/command",
                                              json::array({"--service-account-private-key-file=" + sa_key})}}})}}}};
  files.push_back({"kube-controller-manager-kubehsm+strategic.json", Render(kcm),
                   "kube-controller-manager: remove --service-account-private-key-file"});
  return files;
}

}  // namespace kubehsm::signer::pki
