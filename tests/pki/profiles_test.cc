// Unit tests of the kubeadm profile table and SAN computation (spec kubeadm-pki.md §1.1-1.3, §2, §4).
#include <gtest/gtest.h>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "signer/pki/certificate.h"
#include "signer/pki/profiles.h"

namespace kubehsm::signer::pki {
namespace {

ClusterConfig TestConfig() {
  ClusterConfig c;
  c.node_name = "cp1";
  c.advertise_address = "10.0.0.10";
  return c;
}

TEST(ProfileTableTest, ListsEveryKubeadmLeafInOrder) {
  std::vector<std::string> names;
  for (const auto& l : LeafProfiles()) names.emplace_back(l.name);
  EXPECT_EQ(names, (std::vector<std::string>{"apiserver", "apiserver-kubelet-client", "front-proxy-client",
                                             "etcd-server", "etcd-peer", "etcd-healthcheck-client",
                                             "apiserver-etcd-client"}));
  EXPECT_EQ(FindLeafProfile("etcd/server"), FindLeafProfile("etcd-server"));
  EXPECT_EQ(FindLeafProfile("nope"), nullptr);
  ASSERT_EQ(CaProfiles().size(), 3u);
  EXPECT_EQ(GetCaProfile(CaId::kEtcdCa).file_base, "etcd/ca");
  EXPECT_EQ(GetCaProfile(CaId::kCa).common_name, "kubernetes");
  EXPECT_EQ(KubeconfigProfiles().size(), 5u);
}

TEST(SanTest, ApiServerDefaultsMatchKubeadm) {
  auto sans = ComputeSans(SanRule::kApiServer, TestConfig(), nullptr);
  ASSERT_TRUE(sans.ok()) << sans.status().message();
  // DNS sorted ascending (sets.List), IPs in first-seen order.
  EXPECT_EQ(sans->dns, (std::vector<std::string>{"cp1", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                                                 "kubernetes.default.svc.cluster.local"}));
  EXPECT_EQ(sans->ips, (std::vector<std::string>{"10.96.0.1", "10.0.0.10"}));
}

TEST(SanTest, ApiServerAddsEndpointAndClassifiesCertSans) {
  ClusterConfig c = TestConfig();
  c.control_plane_endpoint = "lb.example.com:6443";
  c.dns_domain = "corp.local";
  c.apiserver_cert_sans = {"10.0.0.10", "zz.example.com", "*.apps.example.com", "2001:db8::1", "bad_name!",
                           "a.example.com", "kubernetes", "192.168.1.1"};
  std::vector<std::string> warnings;
  auto sans = ComputeSans(SanRule::kApiServer, c, &warnings);
  ASSERT_TRUE(sans.ok());
  EXPECT_EQ(sans->dns, (std::vector<std::string>{"*.apps.example.com", "a.example.com", "cp1", "kubernetes",
                                                 "kubernetes.default", "kubernetes.default.svc",
                                                 "kubernetes.default.svc.corp.local", "lb.example.com",
                                                 "zz.example.com"}));
  EXPECT_EQ(sans->ips, (std::vector<std::string>{"10.96.0.1", "10.0.0.10", "2001:db8::1", "192.168.1.1"}));
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("bad_name!"), std::string::npos);
}

TEST(SanTest, ApiServerIpEndpointIsAnIpSan) {
  ClusterConfig c = TestConfig();
  c.control_plane_endpoint = "10.0.0.100";
  auto sans = ComputeSans(SanRule::kApiServer, c, nullptr);
  ASSERT_TRUE(sans.ok());
  EXPECT_EQ(sans->ips, (std::vector<std::string>{"10.96.0.1", "10.0.0.10", "10.0.0.100"}));
  EXPECT_EQ(sans->dns.size(), 5u);
}

TEST(SanTest, EtcdServerAndPeerUseTheirOwnExtras) {
  ClusterConfig c = TestConfig();
  c.etcd_server_cert_sans = {"etcd.example.com", "127.0.0.1"};
  c.etcd_peer_cert_sans = {"10.0.0.11"};
  auto server = ComputeSans(SanRule::kEtcdServer, c, nullptr);
  auto peer = ComputeSans(SanRule::kEtcdPeer, c, nullptr);
  ASSERT_TRUE(server.ok() && peer.ok());
  EXPECT_EQ(server->dns, (std::vector<std::string>{"cp1", "etcd.example.com", "localhost"}));
  EXPECT_EQ(server->ips, (std::vector<std::string>{"10.0.0.10", "127.0.0.1", "::1"}));
  EXPECT_EQ(peer->dns, (std::vector<std::string>{"cp1", "localhost"}));
  EXPECT_EQ(peer->ips, (std::vector<std::string>{"10.0.0.10", "127.0.0.1", "::1", "10.0.0.11"}));
}

TEST(SanTest, FirstServiceIp) {
  struct Case {
    const char* subnet;
    const char* want;
  } cases[] = {{"10.96.0.0/12", "10.96.0.1"},
               {"10.96.5.7/12", "10.96.0.1"},
               {"10.100.0.0/16,fd00::/108", "10.100.0.1"},
               {"fd00:10:96::/108,10.96.0.0/12", "fd00:10:96::1"},
               {"192.168.0.255/32", "192.168.1.0"}};  // /32: network address + 1 carries
  for (const auto& c : cases) {
    auto ip = FirstServiceIp(c.subnet);
    ASSERT_TRUE(ip.ok()) << c.subnet;
    EXPECT_EQ(*ip, c.want) << c.subnet;
  }
  EXPECT_EQ(FirstServiceIp("10.96.0.0").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(FirstServiceIp("10.96.0.0/33").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(FirstServiceIp("nope/12").status().code(), StatusCode::kInvalidArgument);
}

TEST(SanTest, RejectsInvalidAdvertiseAddress) {
  ClusterConfig c = TestConfig();
  c.advertise_address = "not-an-ip";
  EXPECT_EQ(ComputeSans(SanRule::kApiServer, c, nullptr).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ComputeSans(SanRule::kEtcdPeer, c, nullptr).status().code(), StatusCode::kInvalidArgument);
}

TEST(SanTest, DnsSubdomainRules) {
  EXPECT_TRUE(IsDnsSubdomain("a.b-c.d"));
  EXPECT_TRUE(IsDnsSubdomain("*.example.com"));
  EXPECT_FALSE(IsDnsSubdomain("Upper.example.com"));
  EXPECT_FALSE(IsDnsSubdomain("-a.example.com"));
  EXPECT_FALSE(IsDnsSubdomain("a..b"));
  EXPECT_FALSE(IsDnsSubdomain("a_b"));
  EXPECT_FALSE(IsDnsSubdomain(""));
}

TEST(EndpointTest, UrlsFollowKubeadm) {
  ClusterConfig c = TestConfig();
  EXPECT_EQ(ControlPlaneUrl(c).value(), "https://10.0.0.10:6443");
  c.control_plane_endpoint = "lb.example.com";
  EXPECT_EQ(ControlPlaneUrl(c).value(), "https://lb.example.com:6443");
  c.control_plane_endpoint = "lb.example.com:8443";
  EXPECT_EQ(ControlPlaneUrl(c).value(), "https://lb.example.com:8443");
  c.control_plane_endpoint = "[2001:db8::5]:7443";
  EXPECT_EQ(ControlPlaneUrl(c).value(), "https://[2001:db8::5]:7443");
  c.advertise_address = "2001:db8::10";
  c.bind_port = 7000;
  EXPECT_EQ(LocalApiUrl(c), "https://[2001:db8::10]:7000");
}

TEST(SpecTest, KubeconfigClientSubjects) {
  ClusterConfig c = TestConfig();
  std::map<std::string, std::pair<std::string, std::vector<std::string>>> want = {
      {"admin.conf", {"kubernetes-admin", {"kubeadm:cluster-admins"}}},
      {"super-admin.conf", {"kubernetes-super-admin", {"system:masters"}}},
      {"kubelet.conf", {"system:node:cp1", {"system:nodes"}}},
      {"controller-manager.conf", {"system:kube-controller-manager", {}}},
      {"scheduler.conf", {"system:kube-scheduler", {}}},
  };
  for (const auto& kc : KubeconfigProfiles()) {
    CertSpec spec = KubeconfigClientSpec(kc, c);
    const auto& w = want.at(std::string(kc.file_name));
    EXPECT_EQ(spec.common_name, w.first);
    EXPECT_EQ(spec.organizations, w.second);
    EXPECT_EQ(spec.ext_key_usages, std::vector<ExtKeyUsage>{ExtKeyUsage::kClientAuth});
    EXPECT_TRUE(spec.sans.dns.empty() && spec.sans.ips.empty());
  }
}

TEST(NameTest, PrintableStringFollowsGo) {
  EXPECT_TRUE(IsPrintableString("system:node:cp1"));
  EXPECT_TRUE(IsPrintableString("kubeadm:cluster-admins"));
  EXPECT_TRUE(IsPrintableString("a'()+,-./:=? Z9"));
  EXPECT_FALSE(IsPrintableString("node_1"));
  EXPECT_FALSE(IsPrintableString("*.example.com"));
  EXPECT_FALSE(IsPrintableString("a&b"));
  EXPECT_FALSE(IsPrintableString("caf\xc3\xa9"));
}

}  // namespace
}  // namespace kubehsm::signer::pki
