// `kubehsm kubeadm patches` end to end: the real binary writes the patch files, and every file is
// applied to real kubeadm output (tests/testdata/kubeadm-*-manifests) in kubeadm's order (the
// lexical order of the names, each file's patch type from its name) with `kubectl patch --local`,
// which runs the apimachinery strategic-merge and RFC 6902 code kubeadm uses. The patched
// commands are then checked flag by flag against the original ones.
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <regex>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/test_env.h"

namespace kubehsm {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::KubehsmBinary;
using testing::ProcessResult;
using testing::ReadTestFile;
using testing::RunProcess;
using testing::SourceDir;
using testing::TempDir;
using testing::WriteTestFile;

constexpr const char* kSocket = "/run/kubehsm/signer.sock";
constexpr const char* kGate = "--feature-gates=ExternalServiceAccountTokenSigner=true";

fs::path Manifests(const std::string& version) { return SourceDir() / "tests/testdata" / ("kubeadm-" + version + "-manifests"); }

class KubeadmPatchesTest : public ::testing::Test {
 protected:
  // Runs `kubehsm kubeadm patches ARGS` (no kubehsm config: the command needs no token).
  ProcessResult Patches(std::vector<std::string> args) {
    args.insert(args.begin(), {KubehsmBinary().string(), "kubeadm", "patches"});
    return RunProcess(args, {{"KUBEHSM_CONFIG", "/dev/null"}});
  }

  // The manifest as JSON, through kubectl (an empty merge patch), so that original and patched
  // pods are compared in the same form.
  json Load(const fs::path& manifest) {
    ProcessResult r = RunProcess({"kubectl", "patch", "--local", "-f", manifest.string(), "--type", "merge", "-p", "{}",
                                  "-o", "json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  }

  // Applies the files of `patch_dir` for `target` as kubeadm does: file names
  // TARGET[suffix][+PATCHTYPE].(json|yaml), in lexical order, strategic when no type is given.
  // kubectl's client minor version (20 on Debian 12, 32 on Debian 13).
  static int KubectlMinor() {
    static const int minor = [] {
      ProcessResult r = RunProcess({"kubectl", "version", "--client", "-o", "json"});
      EXPECT_EQ(r.exit_code, 0) << r.err;
      json v = json::parse(r.out, nullptr, /*allow_exceptions=*/false);
      std::string m = v.is_object() ? v["clientVersion"].value("minor", "") : "";
      while (!m.empty() && !std::isdigit(static_cast<unsigned char>(m.back()))) m.pop_back();  // "32+"
      EXPECT_FALSE(m.empty()) << r.out;
      return m.empty() ? 0 : std::stoi(m);
    }();
    return minor;
  }

  json ApplyAll(const fs::path& patch_dir, const std::string& target, const fs::path& manifest) {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(patch_dir)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    // kubeadm's own pattern (cmd/kubeadm/app/util/patches), restricted to this target.
    const std::regex pattern("^(" + target + ")([^.+\\n]*)?(\\+)?(json|merge|strategic)?\\.(json|yaml)$");
    fs::path current = manifest;
    int step = 0;
    for (const auto& name : names) {
      std::smatch m;
      if (!std::regex_match(name, m, pattern)) continue;
      // "kube-apiserver" must not take the kube-controller-manager files and vice versa.
      const std::string type = m[4].matched ? m[4].str() : "strategic";
      const fs::path next = tmp_.path() / (target + "-step" + std::to_string(++step) + ".json");
      std::string patch = ReadTestFile(patch_dir / name);
      // kubeadm 1.32+ applies `$deleteFromPrimitiveList/command` with the strategic-merge code of
      // its own release, as kubectl 1.32+ does (Debian 13, development machines). Debian 12's
      // kubectl 1.20 is older than any kubeadm kubehsm supports and ignores the directive on a
      // list without a merge strategy, so there it cannot stand in for kubeadm: the directive's
      // values are then taken out of the patch, the rest is applied by kubectl, and the listed
      // flags are removed here by exact value (the flag-by-flag checks below still hold).
      std::map<std::string, std::vector<std::string>> deleted_by_container;
      if (type == "strategic" && KubectlMinor() < 32) {
        json p = json::parse(patch);
        for (auto& c : p["spec"]["containers"]) {
          if (c.contains("$deleteFromPrimitiveList/command")) {
            deleted_by_container[c["name"].get<std::string>()] =
                c["$deleteFromPrimitiveList/command"].get<std::vector<std::string>>();
            c.erase("$deleteFromPrimitiveList/command");
          }
        }
        patch = p.dump();
      }
      ProcessResult r =
          RunProcess({"kubectl", "patch", "--local", "-f", current.string(), "--type", type, "-p", patch, "-o", "json"});
      EXPECT_EQ(r.exit_code, 0) << name << ": " << r.err;
      if (!deleted_by_container.empty()) {
        json pod = json::parse(r.out);
        for (auto& c : pod["spec"]["containers"]) {
          auto cmd = c["command"].get<std::vector<std::string>>();
          for (const auto& d : deleted_by_container[c["name"].get<std::string>()]) {
            cmd.erase(std::remove(cmd.begin(), cmd.end(), d), cmd.end());
          }
          c["command"] = cmd;
        }
        r.out = pod.dump();
      }
      WriteTestFile(next, r.out);
      applied_.push_back(name);
      current = next;
    }
    return json::parse(ReadTestFile(current), nullptr, /*allow_exceptions=*/false);
  }

  static std::vector<std::string> Command(const json& pod) {
    return pod["spec"]["containers"][0]["command"].get<std::vector<std::string>>();
  }
  static std::vector<std::string> Without(std::vector<std::string> v, const std::vector<std::string>& drop) {
    for (const auto& d : drop) {
      auto it = std::find(v.begin(), v.end(), d);
      EXPECT_NE(it, v.end()) << d << " is not in the original manifest";
      if (it != v.end()) v.erase(it);
    }
    return v;
  }
  // Volumes and mounts as a set (strategic merge may place a new list element first or last;
  // their order has no meaning to the kubelet).
  static json ByName(json list) {
    std::sort(list.begin(), list.end(), [](const json& a, const json& b) { return a.dump() < b.dump(); });
    return list;
  }
  static bool HasFlag(const std::vector<std::string>& cmd, const std::string& flag) {
    return std::any_of(cmd.begin(), cmd.end(), [&](const std::string& a) { return a.rfind(flag + "=", 0) == 0 || a == flag; });
  }

  // Generates the patches into a fresh directory and checks both patched manifests of `manifests`
  // (whose flags name `cert_dir`): the key flags gone (not blanked), the endpoint once at the end,
  // the gate exactly when `expect_gate`, every other flag unchanged and in order, the socket's
  // directory mounted read-only from a hostPath of type Directory, every other volume unchanged.
  void ExpectPatched(const std::vector<std::string>& args, const fs::path& apiserver_yaml, const fs::path& kcm_yaml,
                     const std::string& cert_dir, bool expect_gate) {
    const fs::path out = tmp_.path() / "patches";
    std::vector<std::string> full = args;
    full.insert(full.end(), {"--out", out.string(), "--socket", kSocket});
    ProcessResult gen = Patches(full);
    ASSERT_EQ(gen.exit_code, 0) << gen.err;
    EXPECT_TRUE(gen.err.empty()) << gen.err;
    EXPECT_NE(gen.out.find("--patches " + out.string()), std::string::npos) << gen.out;
    EXPECT_EQ(fs::status(out).permissions(), static_cast<fs::perms>(0755));
    for (const auto& e : fs::directory_iterator(out)) {
      EXPECT_EQ(fs::status(e.path()).permissions(), static_cast<fs::perms>(0644)) << e.path();
    }

    const json api_before = Load(apiserver_yaml);
    const json api = ApplyAll(out, "kube-apiserver", apiserver_yaml);
    ASSERT_TRUE(api.is_object());
    const auto cmd = Command(api);
    EXPECT_FALSE(HasFlag(cmd, "--service-account-key-file"));
    EXPECT_FALSE(HasFlag(cmd, "--service-account-signing-key-file"));
    EXPECT_EQ(std::count(cmd.begin(), cmd.end(), std::string("--service-account-signing-endpoint=") + kSocket), 1);
    EXPECT_EQ(std::count(cmd.begin(), cmd.end(), std::string(kGate)), expect_gate ? 1 : 0);
    EXPECT_EQ(std::count_if(cmd.begin(), cmd.end(), [](const std::string& a) { return a.rfind("--feature-gates", 0) == 0; }),
              expect_gate ? 1 : 0);
    std::vector<std::string> expected =
        Without(Command(api_before), {"--service-account-key-file=" + cert_dir + "/sa.pub",
                                      "--service-account-signing-key-file=" + cert_dir + "/sa.key"});
    expected.push_back(std::string("--service-account-signing-endpoint=") + kSocket);
    if (expect_gate) expected.push_back(kGate);
    EXPECT_EQ(cmd, expected);
    EXPECT_TRUE(HasFlag(cmd, "--service-account-issuer"));

    json volumes = api_before["spec"]["volumes"];
    volumes.push_back({{"name", "kubehsm-signer"}, {"hostPath", {{"path", "/run/kubehsm"}, {"type", "Directory"}}}});
    EXPECT_EQ(ByName(api["spec"]["volumes"]), ByName(volumes));
    json mounts = api_before["spec"]["containers"][0]["volumeMounts"];
    mounts.push_back({{"name", "kubehsm-signer"}, {"mountPath", "/run/kubehsm"}, {"readOnly", true}});
    EXPECT_EQ(ByName(api["spec"]["containers"][0]["volumeMounts"]), ByName(mounts));
    // Nothing else in the pod changed.
    json rest = api, rest_before = api_before;
    for (json* j : {&rest, &rest_before}) {
      (*j)["spec"]["containers"][0].erase("command");
      (*j)["spec"]["containers"][0].erase("volumeMounts");
      (*j)["spec"].erase("volumes");
    }
    EXPECT_EQ(rest, rest_before);

    const json kcm_before = Load(kcm_yaml);
    const json kcm = ApplyAll(out, "kube-controller-manager", kcm_yaml);
    ASSERT_TRUE(kcm.is_object());
    EXPECT_FALSE(HasFlag(Command(kcm), "--service-account-private-key-file"));
    EXPECT_EQ(Command(kcm), Without(Command(kcm_before), {"--service-account-private-key-file=" + cert_dir + "/sa.key"}));
    json kcm_rest = kcm, kcm_rest_before = kcm_before;
    kcm_rest["spec"]["containers"][0].erase("command");
    kcm_rest_before["spec"]["containers"][0].erase("command");
    EXPECT_EQ(kcm_rest, kcm_rest_before);

    EXPECT_EQ(applied_, (std::vector<std::string>{"kube-apiserver-kubehsm-1+strategic.json",
                                                  "kube-apiserver-kubehsm-2+json.json",
                                                  "kube-controller-manager-kubehsm+strategic.json"}));
  }

  TempDir tmp_;
  std::vector<std::string> applied_;
};

TEST_F(KubeadmPatchesTest, Kubeadm132ManifestsGetEndpointGateAndMountWithoutKeyFlags) {
  const fs::path m = Manifests("1.32.6");
  ExpectPatched({"--config", (m / "kubeadm-config.yaml").string()}, m / "kube-apiserver.yaml",
                m / "kube-controller-manager.yaml", "/etc/kubernetes/pki", /*expect_gate=*/true);
}

TEST_F(KubeadmPatchesTest, Kubeadm136ManifestsGetEndpointAndMountButNoFeatureGate) {
  const fs::path m = Manifests("1.36.2");
  ExpectPatched({"--config", (m / "kubeadm-config.yaml").string()}, m / "kube-apiserver.yaml",
                m / "kube-controller-manager.yaml", "/etc/kubernetes/pki", /*expect_gate=*/false);
}

TEST_F(KubeadmPatchesTest, KubernetesVersionFlagSelectsTheGateWithoutAConfig) {
  const fs::path m = Manifests("1.32.6");
  ExpectPatched({"--kubernetes-version", "v1.33.4"}, m / "kube-apiserver.yaml", m / "kube-controller-manager.yaml",
                "/etc/kubernetes/pki", /*expect_gate=*/true);
}

// kubeadm writes the key flags under certificatesDir, cleaned by Go's filepath.Join: the patches
// must name exactly that, or the delete directives match nothing.
TEST_F(KubeadmPatchesTest, NonDefaultCertificatesDirFromTheConfigIsUsed) {
  const fs::path m = Manifests("1.32.6");
  std::string config = ReadTestFile(m / "kubeadm-config.yaml");
  const std::string from = "certificatesDir: /etc/kubernetes/pki";
  ASSERT_NE(config.find(from), std::string::npos);
  config.replace(config.find(from), from.size(), "certificatesDir: /srv/k8s//pki/");
  WriteTestFile(tmp_.path() / "kubeadm.yaml", config);
  // The manifests kubeadm writes for that config: every /etc/kubernetes/pki becomes /srv/k8s/pki.
  for (const char* name : {"kube-apiserver.yaml", "kube-controller-manager.yaml"}) {
    std::string text = ReadTestFile(m / name);
    for (auto pos = text.find("/etc/kubernetes/pki"); pos != std::string::npos; pos = text.find("/etc/kubernetes/pki")) {
      text.replace(pos, 19, "/srv/k8s/pki");
    }
    WriteTestFile(tmp_.path() / name, text);
  }
  ExpectPatched({"--config", (tmp_.path() / "kubeadm.yaml").string()}, tmp_.path() / "kube-apiserver.yaml",
                tmp_.path() / "kube-controller-manager.yaml", "/srv/k8s/pki", /*expect_gate=*/true);

  // --cert-dir overrides the config; the default directory's patches leave these flags alone
  // (which is why the directory must be right).
  const fs::path other = tmp_.path() / "default-dir";
  ProcessResult gen = Patches({"--config", (tmp_.path() / "kubeadm.yaml").string(), "--cert-dir", "/etc/kubernetes/pki",
                               "--out", other.string(), "--socket", kSocket});
  ASSERT_EQ(gen.exit_code, 0) << gen.err;
  const auto cmd = Command(ApplyAll(other, "kube-apiserver", tmp_.path() / "kube-apiserver.yaml"));
  EXPECT_TRUE(HasFlag(cmd, "--service-account-key-file"));
}

TEST_F(KubeadmPatchesTest, SocketDirectoryMountWorksReadOnly) {
  // The patches mount the socket's directory read-only: connecting to a Unix socket needs write
  // permission on the socket file, which a read-only bind mount (what the container runtime makes
  // of readOnly: true) does not take away. Shown with a real listener and client, in a private
  // mount namespace.
  const fs::path host = tmp_.path() / "host", pod = tmp_.path() / "pod";
  fs::create_directories(host);
  fs::create_directories(pod);
  const std::string script =
      "import socket, subprocess, sys\n"
      "s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1] + '/signer.sock'); s.listen(1)\n"
      "subprocess.run(['mount', '--bind', sys.argv[1], sys.argv[2]], check=True)\n"
      "subprocess.run(['mount', '-o', 'remount,ro,bind', sys.argv[2]], check=True)\n"
      "try:\n"
      "  open(sys.argv[2] + '/probe', 'w')\n"
      "  sys.exit('the mount is writable')\n"
      "except OSError:\n"
      "  pass\n"
      "c = socket.socket(socket.AF_UNIX); c.connect(sys.argv[2] + '/signer.sock')\n"
      "a, _ = s.accept(); c.sendall(b'ok'); print(a.recv(2).decode())\n"
      "subprocess.run(['umount', sys.argv[2]], check=True)\n";
  // A mount namespace only (the suite runs as root): a user namespace (-r) is refused inside a
  // chroot. There / is no mount point and its propagation cannot be changed, so it stays as it is,
  // which is safe only while no mount is shared (the rule of tests/tokens/make-token).
  std::string propagation = "private";
  if (RunProcess({"mountpoint", "-q", "/"}).exit_code != 0) {
    std::ifstream mountinfo("/proc/self/mountinfo");
    const std::string mounts((std::istreambuf_iterator<char>(mountinfo)), std::istreambuf_iterator<char>());
    ASSERT_EQ(mounts.find(" shared:"), std::string::npos)
        << "/ is not a mount point (chroot?) and shared mounts exist: no private namespace can be made safely";
    propagation = "unchanged";
  }
  ProcessResult r = RunProcess({"unshare", "-m", "--propagation", propagation, "python3", "-c", script, host.string(),
                                pod.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "ok\n");
}

TEST_F(KubeadmPatchesTest, RefusesUnknownVersionMissingOrRelativeSocketAndNothingIsWritten) {
  const fs::path out = tmp_.path() / "out";
  struct Case {
    std::vector<std::string> args;
    int exit_code;
    std::string message;
  };
  WriteTestFile(tmp_.path() / "old.yaml",
                "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.31.2\n");
  const std::vector<Case> cases = {
      {{"--kubernetes-version", "1.31", "--socket", kSocket}, 1, "Kubernetes 1.31 is not supported (supported: 1.32..1.36)"},
      {{"--kubernetes-version", "stable-1.34", "--socket", kSocket}, 1, "stable-1.34"},
      {{"--config", (tmp_.path() / "old.yaml").string(), "--socket", kSocket}, 2, "1.31"},
      {{"--config", (tmp_.path() / "missing.yaml").string(), "--socket", kSocket}, 2, "missing.yaml"},
      {{}, 1, "--socket PATH is required"},
      {{"--socket", "run/kubehsm/signer.sock"}, 1, "must be absolute"},
      {{"--socket", "unix:///run/kubehsm/signer.sock"}, 1, "without a unix:// prefix"},
      {{"--socket", "@kubehsm"}, 1, "abstract sockets are refused"},
      {{"--socket", "/signer.sock"}, 1, "mounting the host's / is refused"},
      {{"--socket", "/run/kubehsm/../signer.sock"}, 1, "plain form"},
      {{"--socket", kSocket, "--cert-dir", "pki"}, 2, "must be an absolute path"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args = c.args;
    args.insert(args.end(), {"--out", out.string()});
    ProcessResult r = Patches(args);
    EXPECT_EQ(r.exit_code, c.exit_code) << ::testing::PrintToString(c.args) << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_FALSE(fs::exists(out)) << ::testing::PrintToString(c.args);
  }
  ProcessResult no_out = Patches({"--socket", kSocket});
  EXPECT_EQ(no_out.exit_code, 1);
  EXPECT_NE(no_out.err.find("--out DIR is required"), std::string::npos) << no_out.err;
}

TEST_F(KubeadmPatchesTest, ExistingDifferentFileIsKeptUnlessForce) {
  const fs::path out = tmp_.path() / "out";
  const std::vector<std::string> args = {"--kubernetes-version", "1.36", "--out", out.string(), "--socket", kSocket};
  ASSERT_EQ(Patches(args).exit_code, 0);
  // Identical files: a re-run changes nothing and says so.
  ProcessResult again = Patches(args);
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(again.out.find("wrote"), std::string::npos) << again.out;
  EXPECT_NE(again.out.find("unchanged"), std::string::npos) << again.out;

  // An operator's edit of one file and a missing other one: refused, nothing written or changed.
  const fs::path edited = out / "kube-apiserver-kubehsm-2+json.json";
  WriteTestFile(edited, "[]\n", 0644);
  fs::remove(out / "kube-controller-manager-kubehsm+strategic.json");
  const std::vector<std::string> gated = {"--kubernetes-version", "1.32", "--out", out.string(), "--socket", kSocket};
  ProcessResult refused = Patches(gated);
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_NE(refused.err.find(edited.string() + " exists with different content"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("--force"), std::string::npos) << refused.err;
  EXPECT_EQ(ReadTestFile(edited), "[]\n");
  EXPECT_FALSE(fs::exists(out / "kube-controller-manager-kubehsm+strategic.json"));

  std::vector<std::string> forced = gated;
  forced.push_back("--force");
  ProcessResult r = Patches(forced);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(ReadTestFile(edited).find(kGate), std::string::npos);
  EXPECT_TRUE(fs::exists(out / "kube-controller-manager-kubehsm+strategic.json"));
  for (const auto& e : fs::directory_iterator(out)) {
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
  }
}

// deploy/: the unit reads the config create-token --dir /var/lib/kubehsm writes, may write the token
// directory that config's softhsm2.conf names (SoftHSM refuses to work on a read-only store), and
// listens where the static-pod example (the same changes the patches make) connects.
TEST_F(KubeadmPatchesTest, DeployFilesMatchCreateTokenLayoutAndThePatches) {
  // The unit's ExecStart (continuation lines joined) and ReadWritePaths.
  std::string unit = ReadTestFile(SourceDir() / "deploy/kubehsm-signer.service");
  for (auto pos = unit.find("\\\n"); pos != std::string::npos; pos = unit.find("\\\n")) unit.replace(pos, 2, " ");
  auto value_after = [&unit](const std::string& key) {
    const auto pos = unit.find(key);
    if (pos == std::string::npos) return std::string();
    const auto start = pos + key.size();
    return unit.substr(start, unit.find_first_of(" \n", start) - start);
  };
  const std::string config = value_after("--hsm-config ");
  const std::string socket = value_after("--socket ");
  const std::string rw = value_after("\nReadWritePaths=");
  ASSERT_FALSE(config.empty());
  ASSERT_FALSE(socket.empty());
  ASSERT_FALSE(rw.empty());
  EXPECT_NE(unit.find("\nRuntimeDirectory=" + fs::path(socket).parent_path().filename().string() + "\n"),
            std::string::npos);
  EXPECT_NE(unit.find("\nRuntimeDirectoryPreserve=yes\n"), std::string::npos);

  // create-token --dir /var/lib/kubehsm, relocated under a temporary root.
  const fs::path root = tmp_.path() / "root";
  const fs::path dir = root / "var/lib/kubehsm";
  ProcessResult made = RunProcess({(SourceDir() / "softhsm-config/create-token").string(), "--dir", dir.string()},
                                  {{"KUBEHSM_BIN", KubehsmBinary().string()}});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  EXPECT_EQ(config, "/var/lib/kubehsm/kubehsm.conf");
  EXPECT_TRUE(fs::is_regular_file(root.string() + config)) << config;
  const std::string softhsm_conf = ReadTestFile(dir / "softhsm2.conf");
  const std::string key = "directories.tokendir = ";
  const auto pos = softhsm_conf.find(key);
  ASSERT_NE(pos, std::string::npos) << softhsm_conf;
  const std::string tokendir = softhsm_conf.substr(pos + key.size(), softhsm_conf.find('\n', pos) - pos - key.size());
  EXPECT_EQ(root.string() + rw, tokendir);

  // The static-pod example connects to that socket through a read-only mount of its directory,
  // as the patches make it, and has no service-account key flags.
  const json pod = Load(SourceDir() / "deploy/kube-apiserver-static-pod.yaml");
  ASSERT_TRUE(pod.is_object());
  const auto cmd = Command(pod);
  EXPECT_EQ(std::count(cmd.begin(), cmd.end(), "--service-account-signing-endpoint=" + socket), 1);
  EXPECT_FALSE(HasFlag(cmd, "--service-account-key-file"));
  EXPECT_FALSE(HasFlag(cmd, "--service-account-signing-key-file"));
  const std::string socket_dir = fs::path(socket).parent_path().string();
  const json volume = {{"name", "kubehsm-signer"}, {"hostPath", {{"path", socket_dir}, {"type", "Directory"}}}};
  const json mount = {{"name", "kubehsm-signer"}, {"mountPath", socket_dir}, {"readOnly", true}};
  const auto& volumes = pod["spec"]["volumes"];
  const auto& mounts = pod["spec"]["containers"][0]["volumeMounts"];
  EXPECT_NE(std::find(volumes.begin(), volumes.end(), volume), volumes.end()) << volumes.dump();
  EXPECT_NE(std::find(mounts.begin(), mounts.end(), mount), mounts.end()) << mounts.dump();
}

// A JoinConfiguration alone names no Kubernetes version: the default (newest) applies, without the
// gate, and the command says so, since a 1.32/1.33 cluster needs --kubernetes-version then.
TEST_F(KubeadmPatchesTest, ConfigWithoutKubernetesVersionWarnsAndFlagWins) {
  WriteTestFile(tmp_.path() / "join.yaml",
                "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\nnodeRegistration:\n  name: cp2\n"
                "discovery:\n  bootstrapToken:\n    apiServerEndpoint: cp.example.test:6443\n    token: abcdef.0123456789abcdef\n"
                "    unsafeSkipCAVerification: true\n");
  const fs::path out = tmp_.path() / "out";
  ProcessResult r = Patches({"--config", (tmp_.path() / "join.yaml").string(), "--out", out.string(), "--socket", kSocket});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("names no kubernetesVersion; assuming 1.36"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("kubeadm join --config"), std::string::npos) << r.out;  // a join file is for kubeadm join
  EXPECT_EQ(ReadTestFile(out / "kube-apiserver-kubehsm-2+json.json").find(kGate), std::string::npos);

  ProcessResult flagged = Patches({"--config", (tmp_.path() / "join.yaml").string(), "--kubernetes-version", "1.32",
                                   "--out", out.string(), "--socket", kSocket, "--force"});
  ASSERT_EQ(flagged.exit_code, 0) << flagged.err;
  EXPECT_TRUE(flagged.err.empty()) << flagged.err;
  EXPECT_NE(ReadTestFile(out / "kube-apiserver-kubehsm-2+json.json").find(kGate), std::string::npos);
}

// The README's join file for a further control-plane node (patches.directory, skipPhases, and the
// cluster's ClusterConfiguration in the same file) is accepted, and its version decides the gate.
TEST_F(KubeadmPatchesTest, ReadmeControlPlaneJoinFileIsAcceptedAndFollowsItsVersion) {
  WriteTestFile(tmp_.path() / "join-cp2.yaml",
                "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\nnodeRegistration:\n  name: cp2\n"
                "discovery:\n  bootstrapToken:\n    apiServerEndpoint: k8s-api.example.com:6443\n"
                "    token: abcdef.0123456789abcdef\n    unsafeSkipCAVerification: true\n"
                "controlPlane:\n  localAPIEndpoint:\n    advertiseAddress: 192.0.2.3\n"
                "patches:\n  directory: /etc/kubernetes/kubehsm-patches\n"
                "skipPhases:\n- preflight\n- control-plane-prepare/certs\n"
                "---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.32.6\n"
                "controlPlaneEndpoint: k8s-api.example.com:6443\napiServer:\n  certSANs: [api.example.com]\n");
  const fs::path out = tmp_.path() / "out";
  ProcessResult r =
      Patches({"--config", (tmp_.path() / "join-cp2.yaml").string(), "--out", out.string(), "--socket", kSocket});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(r.err.empty()) << r.err;
  EXPECT_NE(r.out.find("kubeadm join --config"), std::string::npos) << r.out;
  EXPECT_NE(ReadTestFile(out / "kube-apiserver-kubehsm-2+json.json").find(kGate), std::string::npos);  // 1.32
}

TEST_F(KubeadmPatchesTest, HelpNamesTheCommand) {
  ProcessResult r = Patches({"--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("--socket"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--patches DIR"), std::string::npos) << r.out;
  ProcessResult group = RunProcess({KubehsmBinary().string(), "kubeadm", "--help"}, {{"KUBEHSM_CONFIG", "/dev/null"}});
  EXPECT_EQ(group.exit_code, 0);
  EXPECT_NE(group.out.find("patches"), std::string::npos) << group.out;
}

}  // namespace
}  // namespace kubehsm
