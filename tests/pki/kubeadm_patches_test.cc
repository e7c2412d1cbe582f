// signer/pki/kubeadm_patches: the generator alone, for every supported minor (the feature gate),
// the certificates directory as kubeadm cleans it, and the socket paths it refuses. The files are
// applied to real kubeadm manifests in kubeadm_patches_e2e_test.cc.
#include "signer/pki/kubeadm_patches.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace kubehsm::signer::pki {
namespace {

using nlohmann::json;

KubeadmPatchOptions Options(int minor, const std::string& cert_dir = "/etc/kubernetes/pki") {
  KubeadmPatchOptions o;
  o.kubernetes_version = KubernetesVersion{minor};
  o.cert_dir = cert_dir;
  o.socket_path = "/run/kubehsm/signer.sock";
  return o;
}

// The values the JSON patch appends, in order.
std::vector<std::string> Added(const std::vector<KubeadmPatchFile>& files) {
  std::vector<std::string> added;
  for (const auto& op : json::parse(files.at(1).content)) {
    if (op["op"] == "add") added.push_back(op["value"].get<std::string>());
  }
  return added;
}

TEST(KubeadmPatchesUnitTest, FeatureGateOnlyFor132And133) {
  for (int minor = kOldestKubernetesVersion.minor; minor <= kNewestKubernetesVersion.minor; ++minor) {
    auto files = KubeadmPatches(Options(minor));
    ASSERT_TRUE(files.ok()) << files.status().message();
    std::vector<std::string> want = {"--service-account-signing-endpoint=/run/kubehsm/signer.sock"};
    if (minor <= 33) want.push_back("--feature-gates=ExternalServiceAccountTokenSigner=true");
    EXPECT_EQ(Added(*files), want) << "1." << minor;
  }
}

TEST(KubeadmPatchesUnitTest, FilesAreInKubeadmsOrderAndTestTheContainerFirst) {
  auto files = KubeadmPatches(Options(36));
  ASSERT_TRUE(files.ok());
  ASSERT_EQ(files->size(), 3u);
  for (std::size_t i = 1; i < files->size(); ++i) EXPECT_LT((*files)[i - 1].name, (*files)[i].name);
  const json ops = json::parse((*files)[1].content);
  EXPECT_EQ(ops[0], (json{{"op", "test"}, {"path", "/spec/containers/0/name"}, {"value", "kube-apiserver"}}));
  for (const auto& f : *files) EXPECT_EQ(f.content.back(), '\n') << f.name;
}

TEST(KubeadmPatchesUnitTest, CertificatesDirIsCleanedAsKubeadmJoinsIt) {
  for (const std::string& dir : std::vector<std::string>{"/srv/k8s/pki", "/srv/k8s/pki/", "/srv//k8s/./pki", "/srv/k8s/x/../pki"}) {
    auto files = KubeadmPatches(Options(32, dir));
    ASSERT_TRUE(files.ok()) << dir;
    const json api = json::parse((*files)[0].content)["spec"]["containers"][0]["$deleteFromPrimitiveList/command"];
    EXPECT_EQ(api, (json{"--service-account-key-file=/srv/k8s/pki/sa.pub",
                         "--service-account-signing-key-file=/srv/k8s/pki/sa.key"}))
        << dir;
    const json kcm = json::parse((*files)[2].content)["spec"]["containers"][0]["$deleteFromPrimitiveList/command"];
    EXPECT_EQ(kcm, (json{"--service-account-private-key-file=/srv/k8s/pki/sa.key"})) << dir;
  }
  EXPECT_EQ(KubeadmPatches(Options(32, "pki")).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(KubeadmPatches(Options(32, "")).status().code(), StatusCode::kInvalidArgument);
}

TEST(KubeadmPatchesUnitTest, SocketPathsThatCannotServeAStaticPodAreRefused) {
  const std::vector<std::string> refused = {"", "run/kubehsm/signer.sock", "unix:///run/kubehsm/signer.sock", "@kubehsm",
                                "/signer.sock", "/run/kubehsm/../signer.sock", "/run//kubehsm/signer.sock",
                                "/run/kubehsm/signer.sock/", "/run/kube hsm/signer.sock", "/run/kubehsm/a,b.sock",
                                "/run/kubehsm/\x1b[31m.sock", "/" + std::string(120, 'a') + "/s.sock"};
  for (const std::string& bad : refused) {
    EXPECT_EQ(CheckSignerSocketPath(bad).code(), StatusCode::kInvalidArgument) << bad;
    KubeadmPatchOptions o = Options(36);
    o.socket_path = bad;
    EXPECT_FALSE(KubeadmPatches(o).ok()) << bad;
  }
  EXPECT_TRUE(CheckSignerSocketPath("/run/kubehsm/signer.sock").ok());
  EXPECT_TRUE(CheckSignerSocketPath("/var/run/kubehsm-signer/api.sock").ok());
}

TEST(KubeadmPatchesUnitTest, VersionsOutsideTheRangeAreRefused) {
  EXPECT_EQ(KubeadmPatches(Options(31)).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(KubeadmPatches(Options(37)).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kubehsm::signer::pki
