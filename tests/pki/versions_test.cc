// Unit tests of the Kubernetes version table (signer/pki/versions.h), written from
// /work/shared/spec/kubeadm-versions.md: one row per supported minor for every difference.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "signer/pki/cluster_config.h"
#include "signer/pki/profiles.h"
#include "signer/pki/versions.h"

namespace kubehsm::signer::pki {
namespace {

const std::vector<int> kMinors = {32, 33, 34, 35, 36};

ClusterConfig ConfigAt(int minor) {
  ClusterConfig c;
  c.node_name = "cp1";
  c.advertise_address = "10.0.0.10";
  c.control_plane_endpoint = "lb.example.com:6443";
  c.kubernetes_version = KubernetesVersion{minor};
  return c;
}

HostDefaults NoHost() { return HostDefaults{}; }

std::string V4Config(const std::string& cluster_extra) {
  return "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nnodeRegistration:\n  name: cp1\n"
         "localAPIEndpoint:\n  advertiseAddress: 10.0.0.10\n---\n"
         "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n" +
         cluster_extra;
}

TEST(KubernetesVersionTest, ParsesKubeadmSpellings) {
  struct Case {
    const char* text;
    int minor;
  };
  for (const Case& c : {Case{"v1.36.0", 36}, Case{"1.33.2", 33}, Case{"v1.34", 34}, Case{"1.32.0-rc.1", 32},
                        Case{"v1.35.1+build.7", 35}, Case{"v1.32.6", 32}}) {
    SCOPED_TRACE(c.text);
    Result<KubernetesVersion> v = ParseKubernetesVersion(c.text, "--kubernetes-version");
    ASSERT_TRUE(v.ok()) << v.status().message();
    EXPECT_EQ(v->minor, c.minor);
  }
}

TEST(KubernetesVersionTest, RefusesVersionsOutsideTheRangeNamingIt) {
  for (const char* text : {"v1.31.9", "1.37.0", "v1.28.0", "2.34.0", "v0.36.0"}) {
    SCOPED_TRACE(text);
    Result<KubernetesVersion> v = ParseKubernetesVersion(text, "--kubernetes-version");
    ASSERT_FALSE(v.ok());
    EXPECT_EQ(v.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(v.status().message().find("--kubernetes-version"), std::string::npos) << v.status().message();
    EXPECT_NE(v.status().message().find("supported: 1.32..1.36"), std::string::npos) << v.status().message();
  }
}

TEST(KubernetesVersionTest, RefusesLabelsAndMalformedStrings) {
  for (const char* text : {"stable-1.34", "latest", "stable", "", "v", "1", "v1.", "1.34.", "1.34.x", "1.34.0.1",
                           " 1.34.0", "v1.34.0 ", "1..34", "v-1.34"}) {
    SCOPED_TRACE(text);
    Result<KubernetesVersion> v = ParseKubernetesVersion(text, "--kubernetes-version");
    ASSERT_FALSE(v.ok());
    EXPECT_EQ(v.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(v.status().message().find("is not a Kubernetes version"), std::string::npos) << v.status().message();
  }
}

TEST(KubernetesVersionTest, DefaultIsTheNewestSupportedMinor) {
  EXPECT_EQ(DefaultKubernetesVersion(), KubernetesVersion{36});
  EXPECT_EQ(ClusterConfig{}.kubernetes_version, KubernetesVersion{36});
  Result<ClusterConfig> c = ParseKubeadmConfig(V4Config(""), NoHost());
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->kubernetes_version, KubernetesVersion{36});
  EXPECT_EQ(SupportedVersionRange(), "1.32..1.36");
}

TEST(KubernetesVersionTest, ConfigKubernetesVersionSelectsTheMinor) {
  for (int minor : kMinors) {
    const std::string v = "v1." + std::to_string(minor) + ".3";
    SCOPED_TRACE(v);
    Result<ClusterConfig> c = ParseKubeadmConfig(V4Config("kubernetesVersion: " + v + "\n"), NoHost());
    ASSERT_TRUE(c.ok()) << c.status().message();
    EXPECT_EQ(c->kubernetes_version, KubernetesVersion{minor});
  }
}

TEST(KubernetesVersionTest, ConfigOutsideTheRangeOrWithALabelIsRefusedNamingTheField) {
  for (const char* v : {"v1.31.0", "v1.37.0", "stable-1.34"}) {
    SCOPED_TRACE(v);
    Result<ClusterConfig> c = ParseKubeadmConfig(V4Config(std::string("kubernetesVersion: ") + v + "\n"), NoHost());
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(c.status().message().find("ClusterConfiguration.kubernetesVersion"), std::string::npos)
        << c.status().message();
    EXPECT_NE(c.status().message().find("1.32..1.36"), std::string::npos) << c.status().message();
  }
}

TEST(VersionTableTest, ApiserverKubeletClientSubjectPerMinor) {
  const LeafProfile* leaf = FindLeafProfile("apiserver-kubelet-client");
  ASSERT_NE(leaf, nullptr);
  for (int minor : kMinors) {
    SCOPED_TRACE(minor);
    Result<CertSpec> spec = LeafSpec(*leaf, ConfigAt(minor), nullptr);
    ASSERT_TRUE(spec.ok()) << spec.status().message();
    EXPECT_EQ(spec->common_name, "kube-apiserver-kubelet-client");
    const std::vector<std::string> want_o =
        minor <= 35 ? std::vector<std::string>{"kubeadm:cluster-admins"} : std::vector<std::string>{};
    EXPECT_EQ(spec->organizations, want_o);
    EXPECT_EQ(spec->ext_key_usages, (std::vector<ExtKeyUsage>{ExtKeyUsage::kClientAuth}));
  }
}

TEST(VersionTableTest, OtherSubjectsDoNotChangeBetweenMinors) {
  // kubeadm-versions.md "Unchanged 1.32 -> 1.36".
  for (int minor : kMinors) {
    SCOPED_TRACE(minor);
    for (const LeafProfile& leaf : LeafProfiles()) {
      if (leaf.name == "apiserver-kubelet-client") continue;
      Result<CertSpec> at = LeafSpec(leaf, ConfigAt(minor), nullptr);
      Result<CertSpec> at32 = LeafSpec(leaf, ConfigAt(32), nullptr);
      ASSERT_TRUE(at.ok() && at32.ok());
      EXPECT_EQ(at->common_name, at32->common_name) << leaf.name;
      EXPECT_EQ(at->organizations, at32->organizations) << leaf.name;
      EXPECT_EQ(at->sans, at32->sans) << leaf.name;
    }
    const CertSpec admin = KubeconfigClientSpec(*FindKubeconfigProfile("admin.conf"), ConfigAt(minor));
    EXPECT_EQ(admin.organizations, (std::vector<std::string>{"kubeadm:cluster-admins"}));
    const CertSpec super = KubeconfigClientSpec(*FindKubeconfigProfile("super-admin.conf"), ConfigAt(minor));
    EXPECT_EQ(super.organizations, (std::vector<std::string>{"system:masters"}));
  }
}

TEST(VersionTableTest, KubeconfigServerPerMinor) {
  for (int minor : kMinors) {
    SCOPED_TRACE(minor);
    const ClusterConfig c = ConfigAt(minor);
    for (const KubeconfigProfile& kc : KubeconfigProfiles()) {
      std::string want = "https://lb.example.com:6443";
      if (kc.file_name == "controller-manager.conf" || kc.file_name == "scheduler.conf")
        want = "https://10.0.0.10:6443";
      if (kc.file_name == "kubelet.conf" && minor >= 33) want = "https://10.0.0.10:6443";
      Result<std::string> url = KubeconfigServerUrl(kc, c);
      ASSERT_TRUE(url.ok()) << url.status().message();
      EXPECT_EQ(*url, want) << kc.file_name;
    }
  }
}

TEST(VersionTableTest, EcdsaP384RefusedBelow134) {
  for (int minor : kMinors) {
    SCOPED_TRACE(minor);
    ClusterConfig c = ConfigAt(minor);
    c.encryption_algorithm = KeyType::kEcP384;
    Status s = ValidateClusterConfig(c);
    Result<ClusterConfig> parsed = ParseKubeadmConfig(
        V4Config("kubernetesVersion: v1." + std::to_string(minor) + ".0\nencryptionAlgorithm: ECDSA-P384\n"), NoHost());
    if (minor >= 34) {
      EXPECT_TRUE(s.ok()) << s.message();
      ASSERT_TRUE(parsed.ok()) << parsed.status().message();
      EXPECT_EQ(parsed->encryption_algorithm, KeyType::kEcP384);
    } else {
      EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
      EXPECT_NE(s.message().find("ECDSA-P384 needs Kubernetes 1.34 or newer"), std::string::npos) << s.message();
      ASSERT_FALSE(parsed.ok());
      EXPECT_NE(parsed.status().message().find("ClusterConfiguration.encryptionAlgorithm"), std::string::npos)
          << parsed.status().message();
    }
    // The other algorithms are accepted at every supported minor.
    for (KeyType t : {KeyType::kRsa2048, KeyType::kRsa3072, KeyType::kRsa4096, KeyType::kEcP256}) {
      c.encryption_algorithm = t;
      EXPECT_TRUE(ValidateClusterConfig(c).ok());
    }
  }
}

TEST(VersionTableTest, EmptyNodeNameAndDnsDomainSansPerMinor) {
  for (int minor : kMinors) {
    SCOPED_TRACE(minor);
    ClusterConfig c = ConfigAt(minor);
    c.control_plane_endpoint.clear();
    c.node_name.clear();
    c.dns_domain.clear();
    Result<SanSet> api = ComputeSans(SanRule::kApiServer, c, nullptr);
    Result<SanSet> server = ComputeSans(SanRule::kEtcdServer, c, nullptr);
    Result<SanSet> peer = ComputeSans(SanRule::kEtcdPeer, c, nullptr);
    ASSERT_TRUE(api.ok() && server.ok() && peer.ok());
    if (minor >= 34) {
      EXPECT_EQ(api->dns, (std::vector<std::string>{"kubernetes", "kubernetes.default", "kubernetes.default.svc"}));
      EXPECT_EQ(server->dns, (std::vector<std::string>{"localhost"}));
      EXPECT_EQ(peer->dns, (std::vector<std::string>{"localhost"}));
    } else {
      // Up to 1.33 kubeadm adds them even when empty.
      EXPECT_EQ(api->dns, (std::vector<std::string>{"", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                                                    "kubernetes.default.svc."}));
      EXPECT_EQ(server->dns, (std::vector<std::string>{"", "localhost"}));
      EXPECT_EQ(peer->dns, (std::vector<std::string>{"", "localhost"}));
    }
    EXPECT_EQ(api->ips, (std::vector<std::string>{"10.96.0.1", "10.0.0.10"}));
    // Non-empty names are added at every minor.
    Result<SanSet> full = ComputeSans(SanRule::kApiServer, ConfigAt(minor), nullptr);
    ASSERT_TRUE(full.ok());
    EXPECT_EQ(full->dns, (std::vector<std::string>{"cp1", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                                                   "kubernetes.default.svc.cluster.local", "lb.example.com"}));
  }
}

TEST(VersionTableTest, CaDnsSanFromCnOnlyWhenNonEmptyFrom134) {
  const CaProfile empty_cn{CaId::kCa, "ca", "ca", "", "ca", "test CA with an empty CN"};
  for (int minor : kMinors) {
    SCOPED_TRACE(minor);
    const CertSpec named = CaSpec(GetCaProfile(CaId::kCa), KubernetesVersion{minor});
    EXPECT_EQ(named.sans.dns, (std::vector<std::string>{"kubernetes"}));
    const CertSpec unnamed = CaSpec(empty_cn, KubernetesVersion{minor});
    EXPECT_EQ(unnamed.sans.dns, minor >= 34 ? std::vector<std::string>{} : std::vector<std::string>{""});
  }
}

TEST(VersionTableTest, TableListsEachChangeWithItsVersion) {
  EXPECT_EQ(ChangedIn(VersionChange::kKubeletConfLocalEndpoint), KubernetesVersion{33});
  EXPECT_EQ(ChangedIn(VersionChange::kEcdsaP384), KubernetesVersion{34});
  EXPECT_EQ(ChangedIn(VersionChange::kOmitEmptySanNames), KubernetesVersion{34});
  EXPECT_EQ(ChangedIn(VersionChange::kCaDnsSanOnlyFromNonEmptyCn), KubernetesVersion{34});
  EXPECT_EQ(ChangedIn(VersionChange::kApiserverKubeletClientWithoutOrganization), KubernetesVersion{36});
  EXPECT_EQ(VersionChanges().size(), 5u);
}

}  // namespace
}  // namespace kubehsm::signer::pki
