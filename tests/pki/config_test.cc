// Tests for signer/pki/cluster_config: kubeadm v1beta3/v1beta4 configuration parsing.
#include "signer/pki/cluster_config.h"

#include <arpa/inet.h>

#include <chrono>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/support/test_env.h"

namespace kubehsm::signer::pki {
namespace {

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;

// Host defaults that never touch the real host.
HostDefaults FakeHost() {
  return HostDefaults{[]() -> Result<std::string> { return std::string("fake-node"); },
                      []() -> Result<std::string> { return std::string("192.0.2.10"); }};
}

// Host defaults that fail if consulted.
HostDefaults NoHost() {
  return HostDefaults{[]() -> Result<std::string> { return FailedPrecondition("no hostname here"); },
                      []() -> Result<std::string> { return FailedPrecondition("no IPv4 address here"); }};
}

Result<ClusterConfig> Parse(const std::string& yaml) { return ParseKubeadmConfig(yaml, FakeHost()); }

// Expects an kInvalidArgument whose message contains every fragment.
void ExpectInvalid(const std::string& yaml, const std::vector<std::string>& fragments) {
  auto r = Parse(yaml);
  ASSERT_FALSE(r.ok()) << "parsed unexpectedly:\n" << yaml;
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().message();
  for (const auto& f : fragments) EXPECT_NE(r.status().message().find(f), std::string::npos)
      << "message \"" << r.status().message() << "\" lacks \"" << f << "\"";
}

// The full v1beta4 example of kubeadm's configuration reference (kubeadm-config.v1beta4), with
// the validity periods `kubeadm config print init-defaults` prints.
constexpr char kFullV1beta4[] = R"(apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
bootstrapTokens:
  - token: "9a08jv.c0izixklcxtmnze7"
    description: "kubeadm bootstrap token"
    ttl: "24h"
  - token: "783bde.3f89s0fje9f38fhf"
    description: "another bootstrap token"
    usages:
      - authentication
      - signing
    groups:
      - system:bootstrappers:kubeadm:default-node-token
nodeRegistration:
  name: "ec2-10-100-0-1"
  criSocket: "unix:///var/run/containerd/containerd.sock"
  taints:
    - key: "kubeadmNode"
      value: "someValue"
      effect: "NoSchedule"
  kubeletExtraArgs:
    - name: v
      value: "5"
  ignorePreflightErrors:
    - IsPrivilegedUser
  imagePullPolicy: "IfNotPresent"
  imagePullSerial: true
localAPIEndpoint:
  advertiseAddress: "10.100.0.1"
  bindPort: 6443
certificateKey: "e6a2eb8581237ab72a4f494f30285ec12a9694d750b9785706a83bfcbbbd2204"
skipPhases:
  - preflight
dryRun: false
patches:
  directory: /etc/kubernetes/patches
timeouts:
  controlPlaneComponentHealthCheck: "60s"
  kubeletHealthCheck: 4m0s
  kubernetesAPICall: "40s"
  etcdAPICall: 2m0s
  tlsBootstrap: 5m0s
  discovery: 5m0s
  upgradeManifests: 5m0s
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
etcd:
  # one of local or external
  local:
    imageRepository: "registry.k8s.io"
    imageTag: "3.2.24"
    dataDir: "/var/lib/etcd"
    extraArgs:
      - name: listen-client-urls
        value: http://10.100.0.1:2379
    extraEnvs:
      - name: SOME_VAR
        value: SOME_VALUE
    serverCertSANs:
      -  "ec2-10-100-0-1.compute-1.amazonaws.com"
    peerCertSANs:
      - "10.100.0.1"
  # external:
    # endpoints:
    # - "10.100.0.1:2379"
networking:
  serviceSubnet: "10.96.0.0/16"
  podSubnet: "10.244.0.0/24"
  dnsDomain: "cluster.example"
kubernetesVersion: "v1.34.0"
controlPlaneEndpoint: "10.100.0.1:6443"
apiServer:
  extraArgs:
    - name: authorization-mode
      value: Node,RBAC
  extraEnvs:
    - name: SOME_VAR
      value: SOME_VALUE
    - name: POD_IP
      valueFrom:
        fieldRef:
          fieldPath: status.podIP
  extraVolumes:
    - name: "some-volume"
      hostPath: "/etc/some-path"
      mountPath: "/etc/some-pod-path"
      readOnly: false
      pathType: File
  certSANs:
    - "10.100.1.1"
    - "ec2-10-100-0-1.compute-1.amazonaws.com"
controllerManager:
  extraArgs:
    - name: node-cidr-mask-size
      value: "20"
  extraVolumes:
    - name: "some-volume"
      hostPath: "/etc/some-path"
      mountPath: "/etc/some-pod-path"
      readOnly: false
      pathType: File
scheduler:
  extraArgs:
    - name: address
      value: 10.100.0.1
  extraVolumes:
    - name: "some-volume"
      hostPath: "/etc/some-path"
      mountPath: "/etc/some-pod-path"
      readOnly: false
      pathType: File
certificatesDir: "/etc/kubernetes/pki-test"
imageRepository: "registry.k8s.io"
clusterName: "example-cluster"
encryptionAlgorithm: ECDSA-P384
certificateValidityPeriod: 8760h0m0s
caCertificateValidityPeriod: 87600h0m0s
featureGates:
  ControlPlaneKubeletLocalMode: true
dns:
  disabled: true  # disable CoreDNS
proxy:
  disabled: true   # disable kube-proxy
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
authentication:
  x509:
    clientCAFile: /etc/kubernetes/pki/ca.crt
---
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: ipvs
)";

// The v1beta3 reference example (maps for extra args, timeoutForControlPlane).
constexpr char kFullV1beta3[] = R"(apiVersion: kubeadm.k8s.io/v1beta3
kind: InitConfiguration
bootstrapTokens:
- token: "9a08jv.c0izixklcxtmnze7"
  description: "kubeadm bootstrap token"
  ttl: "24h"
nodeRegistration:
  name: "cp-1"
  criSocket: "/var/run/dockershim.sock"
  taints:
  - key: "kubeadmNode"
    value: "master"
    effect: "NoSchedule"
  kubeletExtraArgs:
    v: "4"
    cgroup-driver: systemd
  ignorePreflightErrors:
  - IsPrivilegedUser
  imagePullPolicy: "IfNotPresent"
localAPIEndpoint:
  advertiseAddress: "fd00::10"
  bindPort: 8443
certificateKey: "e6a2eb8581237ab72a4f494f30285ec12a9694d750b9785706a83bfcbbbd2204"
skipPhases:
- addon/kube-proxy
patches:
  directory: /tmp/patches
---
apiVersion: kubeadm.k8s.io/v1beta3
kind: ClusterConfiguration
etcd:
  external:
    endpoints:
    - "10.100.0.1:2379"
    - "10.100.0.2:2379"
    caFile: "/etcd/kubernetes/pki/etcd/etcd-ca.crt"
    certFile: "/etcd/kubernetes/pki/etcd/etcd.crt"
    keyFile: "/etcd/kubernetes/pki/etcd/etcd.key"
networking:
  serviceSubnet: "fd00:10:96::/112,10.96.0.0/12"
  podSubnet: "10.244.0.0/16"
  dnsDomain: "cluster.local"
kubernetesVersion: "v1.32.0"
controlPlaneEndpoint: "k8s-api.example.com"
apiServer:
  extraArgs:
    authorization-mode: "Node,RBAC"
  extraVolumes:
  - name: "some-volume"
    hostPath: "/etc/some-path"
    mountPath: "/etc/some-pod-path"
    readOnly: false
    pathType: File
  certSANs:
  - "10.100.1.1"
  - "*.apps.example.com"
  timeoutForControlPlane: 4m0s
controllerManager:
  extraArgs:
    "node-cidr-mask-size": "20"
scheduler:
  extraArgs:
    bind-address: 10.100.0.1
dns:
  imageRepository: registry.k8s.io/coredns
  imageTag: v1.10.1
certificatesDir: "/etc/kubernetes/pki"
imageRepository: "registry.k8s.io"
clusterName: "example-cluster"
featureGates:
  PublicKeysECDSA: true
)";

// `kubeadm config print init-defaults` of kubeadm 1.31 (v1beta4).
constexpr char kPrintInitDefaults[] = R"(apiVersion: kubeadm.k8s.io/v1beta4
bootstrapTokens:
- groups:
  - system:bootstrappers:kubeadm:default-node-token
  token: abcdef.0123456789abcdef
  ttl: 24h0m0s
  usages:
  - signing
  - authentication
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: 1.2.3.4
  bindPort: 6443
nodeRegistration:
  criSocket: unix:///var/run/containerd/containerd.sock
  imagePullPolicy: IfNotPresent
  imagePullSerial: true
  name: node
  taints: null
timeouts:
  controlPlaneComponentHealthCheck: 4m0s
  discovery: 5m0s
  etcdAPICall: 2m0s
  kubeletHealthCheck: 4m0s
  kubernetesAPICall: 1m0s
  tlsBootstrap: 5m0s
  upgradeManifests: 5m0s
---
apiServer: {}
apiVersion: kubeadm.k8s.io/v1beta4
caCertificateValidityPeriod: 87600h0m0s
certificateValidityPeriod: 8760h0m0s
certificatesDir: /etc/kubernetes/pki
clusterName: kubernetes
controllerManager: {}
dns: {}
encryptionAlgorithm: RSA-2048
etcd:
  local:
    dataDir: /var/lib/etcd
imageRepository: registry.k8s.io
kind: ClusterConfiguration
kubernetesVersion: 1.32.0
networking:
  dnsDomain: cluster.local
  serviceSubnet: 10.96.0.0/12
proxy: {}
scheduler: {}
)";

TEST(ConfigTest, ParsesFullV1beta4Config) {
  auto r = ParseKubeadmConfig(kFullV1beta4, NoHost());
  ASSERT_TRUE(r.ok()) << r.status().message();
  const ClusterConfig& c = *r;
  EXPECT_EQ(c.node_name, "ec2-10-100-0-1");
  EXPECT_EQ(c.advertise_address, "10.100.0.1");
  EXPECT_EQ(c.bind_port, 6443);
  EXPECT_EQ(c.control_plane_endpoint, "10.100.0.1:6443");
  EXPECT_EQ(c.service_subnet, "10.96.0.0/16");
  EXPECT_EQ(c.dns_domain, "cluster.example");
  EXPECT_EQ(c.cluster_name, "example-cluster");
  EXPECT_EQ(c.apiserver_cert_sans, (std::vector<std::string>{"10.100.1.1", "ec2-10-100-0-1.compute-1.amazonaws.com"}));
  EXPECT_EQ(c.etcd_server_cert_sans, (std::vector<std::string>{"ec2-10-100-0-1.compute-1.amazonaws.com"}));
  EXPECT_EQ(c.etcd_peer_cert_sans, (std::vector<std::string>{"10.100.0.1"}));
  EXPECT_FALSE(c.external_etcd);
  EXPECT_EQ(c.cert_validity, hours(8760));
  EXPECT_EQ(c.ca_validity, hours(87600));
  EXPECT_EQ(c.encryption_algorithm, KeyType::kEcP384);
  EXPECT_EQ(c.cert_dir, "/etc/kubernetes/pki-test");
  EXPECT_EQ(c.kubernetes_version, KubernetesVersion{34});
}

TEST(ConfigTest, ParsesFullV1beta3Config) {
  auto r = ParseKubeadmConfig(kFullV1beta3, NoHost());
  ASSERT_TRUE(r.ok()) << r.status().message();
  const ClusterConfig& c = *r;
  EXPECT_EQ(c.node_name, "cp-1");
  EXPECT_EQ(c.advertise_address, "fd00::10");
  EXPECT_EQ(c.bind_port, 8443);
  EXPECT_EQ(c.control_plane_endpoint, "k8s-api.example.com");
  EXPECT_EQ(c.service_subnet, "fd00:10:96::/112,10.96.0.0/12");
  EXPECT_EQ(c.dns_domain, "cluster.local");
  EXPECT_EQ(c.cluster_name, "example-cluster");
  EXPECT_EQ(c.apiserver_cert_sans, (std::vector<std::string>{"10.100.1.1", "*.apps.example.com"}));
  EXPECT_TRUE(c.etcd_server_cert_sans.empty());
  EXPECT_TRUE(c.external_etcd);
  EXPECT_EQ(c.cert_validity, hours(8760));   // v1beta3 has no field: kubeadm's default
  EXPECT_EQ(c.ca_validity, hours(87600));
  EXPECT_EQ(c.encryption_algorithm, KeyType::kEcP256);  // PublicKeysECDSA: true
  EXPECT_EQ(c.cert_dir, "/etc/kubernetes/pki");
}

TEST(ConfigTest, ParsesPrintInitDefaults) {
  auto r = ParseKubeadmConfig(kPrintInitDefaults, NoHost());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->node_name, "node");
  EXPECT_EQ(r->advertise_address, "1.2.3.4");
  EXPECT_EQ(r->service_subnet, "10.96.0.0/12");
  EXPECT_EQ(r->encryption_algorithm, KeyType::kRsa2048);
  EXPECT_EQ(r->cert_validity, hours(8760));
}

TEST(ConfigTest, EmptyInputGivesKubeadmDefaults) {
  auto r = Parse("");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->node_name, "fake-node");
  EXPECT_EQ(r->advertise_address, "192.0.2.10");
  EXPECT_EQ(r->bind_port, 6443);
  EXPECT_EQ(r->control_plane_endpoint, "");
  EXPECT_EQ(r->service_subnet, "10.96.0.0/12");
  EXPECT_EQ(r->dns_domain, "cluster.local");
  EXPECT_EQ(r->cluster_name, "kubernetes");
  EXPECT_EQ(r->cert_validity, hours(8760));
  EXPECT_EQ(r->ca_validity, hours(87600));
  EXPECT_EQ(r->encryption_algorithm, KeyType::kRsa2048);
  EXPECT_EQ(r->cert_dir, "/etc/kubernetes/pki");
  EXPECT_FALSE(r->external_etcd);
}

TEST(ConfigTest, HostDefaultsFillOnlyMissingFields) {
  auto r = Parse("apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nnodeRegistration:\n  name: cp1\n");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->node_name, "cp1");
  EXPECT_EQ(r->advertise_address, "192.0.2.10");
  // An unspecified address means "detect", as in kubeadm.
  r = Parse("apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nlocalAPIEndpoint:\n  advertiseAddress: 0.0.0.0\n");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->advertise_address, "192.0.2.10");
}

TEST(ConfigTest, DoesNotProbeHostWhenConfigSetsBoth) {
  auto r = ParseKubeadmConfig(
      "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nnodeRegistration: {name: cp1}\n"
      "localAPIEndpoint: {advertiseAddress: 10.0.0.1}\n",
      NoHost());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->advertise_address, "10.0.0.1");
}

TEST(ConfigTest, ParseFailsWhenAdvertiseAddressUndetectable) {
  auto r = ParseKubeadmConfig("apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nnodeRegistration: {name: cp1}\n",
                              NoHost());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("no IPv4 address"), std::string::npos);
}

TEST(ConfigTest, BindPortZeroMeansDefault) {
  auto r = Parse("apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nlocalAPIEndpoint: {bindPort: 0}\n");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->bind_port, 6443);
}

struct AlgorithmCase {
  const char* value;
  KeyType expected;
};

TEST(ConfigTest, MapsEveryEncryptionAlgorithm) {
  const AlgorithmCase cases[] = {{"RSA-2048", KeyType::kRsa2048}, {"RSA-3072", KeyType::kRsa3072},
                                 {"RSA-4096", KeyType::kRsa4096}, {"ECDSA-P256", KeyType::kEcP256},
                                 {"ECDSA-P384", KeyType::kEcP384}, {"\"\"", KeyType::kRsa2048}};
  for (const auto& c : cases) {
    auto r = Parse(std::string("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nencryptionAlgorithm: ") +
                   c.value + "\n");
    ASSERT_TRUE(r.ok()) << c.value << ": " << r.status().message();
    EXPECT_EQ(r->encryption_algorithm, c.expected) << c.value;
  }
}

TEST(ConfigTest, PublicKeysEcdsaGateOverridesAlgorithm) {
  const std::string base = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n";
  auto on = Parse(base + "encryptionAlgorithm: RSA-4096\nfeatureGates:\n  PublicKeysECDSA: true\n");
  ASSERT_TRUE(on.ok()) << on.status().message();
  EXPECT_EQ(on->encryption_algorithm, KeyType::kEcP256);
  auto off = Parse(base + "encryptionAlgorithm: ECDSA-P384\nfeatureGates:\n  PublicKeysECDSA: false\n");
  ASSERT_TRUE(off.ok()) << off.status().message();
  EXPECT_EQ(off->encryption_algorithm, KeyType::kRsa2048);
  auto unset = Parse(base + "encryptionAlgorithm: ECDSA-P384\nfeatureGates:\n  SomethingElse: true\n");
  ASSERT_TRUE(unset.ok()) << unset.status().message();
  EXPECT_EQ(unset->encryption_algorithm, KeyType::kEcP384);
}

struct DurationCase {
  const char* text;
  std::optional<std::int64_t> nanos;
};

TEST(ConfigTest, ParsesGoDurations) {
  constexpr std::int64_t kS = 1'000'000'000;
  const DurationCase cases[] = {
      {"8760h", 8760 * 3600 * kS}, {"8760h0m0s", 8760 * 3600 * kS}, {"90m", 90 * 60 * kS},
      {"1h30m", 90 * 60 * kS},     {"1.5h", 90 * 60 * kS},          {"300ms", 300'000'000},
      {"1s500ms", 1'500'000'000},  {"2us", 2000},                   {"2\xC2\xB5s", 2000},
      {"0", 0},                    {"-1h", -3600 * kS},             {"+5s", 5 * kS},
      {".5s", kS / 2},             {"2562047h47m16.854775807s", INT64_MAX},
      {"", std::nullopt},          {"h", std::nullopt},             {"10", std::nullopt},
      {"10d", std::nullopt},       {"1h 30m", std::nullopt},        {"2562048h", std::nullopt},
      {"1.h", 3600 * kS},          {".", std::nullopt},             {"-", std::nullopt},
  };
  for (const auto& c : cases) EXPECT_EQ(ParseGoDuration(c.text), c.nanos) << "\"" << c.text << "\"";
}

TEST(ConfigTest, ValidityPeriodsAcceptGoDurationSpellings) {
  auto r = Parse(
      "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\ncertificateValidityPeriod: 90m\n"
      "caCertificateValidityPeriod: 1h30m\n");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->cert_validity, minutes(90));
  EXPECT_EQ(r->ca_validity, minutes(90));
}

TEST(ConfigTest, IgnoresOtherComponentDocuments) {
  auto r = Parse(
      "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nanything: [goes]\n---\n"
      "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: ipvs\n---\n"
      "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ResetConfiguration\nforce: true\n---\n"
      "apiVersion: kubeadm.k8s.io/v1beta4\nkind: UpgradeConfiguration\napply: {forceUpgrade: true}\n---\n");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->cluster_name, "kubernetes");
}

TEST(ConfigTest, ExplicitNullsAreUnset) {
  auto r = Parse("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nclusterName:\nnetworking: null\n"
                 "apiServer:\n  certSANs: ~\n");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->cluster_name, "kubernetes");
}

// ---- error paths ---------------------------------------------------------------------------

const std::string kCluster4 = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n";
const std::string kCluster3 = "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\n";
const std::string kInit4 = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n";

// ---- JoinConfiguration -----------------------------------------------------------------------

// A control-plane join file as the README describes it: the node's JoinConfiguration beside the
// cluster's ClusterConfiguration (every JoinConfiguration field of v1beta4 set).
constexpr char kJoinV1beta4[] = R"(apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
dryRun: false
nodeRegistration:
  name: cp2
  criSocket: unix:///run/containerd/containerd.sock
  taints: []
  kubeletExtraArgs:
  - name: node-ip
    value: 192.0.2.3
  ignorePreflightErrors: [IsPrivilegedUser]
  imagePullPolicy: IfNotPresent
  imagePullSerial: true
caCertPath: /etc/kubernetes/pki/ca.crt
discovery:
  bootstrapToken:
    token: abcdef.0123456789abcdef
    apiServerEndpoint: k8s-api.example.com:6443
    caCertHashes: ["sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"]
    unsafeSkipCAVerification: false
  tlsBootstrapToken: abcdef.0123456789abcdef
controlPlane:
  localAPIEndpoint:
    advertiseAddress: 192.0.2.3
    bindPort: 7443
  certificateKey: e6a2eb8581237ab72a4f494f30285ec12a9694d750b9785706a83bfcbbbd2204
skipPhases: [preflight]
patches:
  directory: /etc/kubernetes/patches
timeouts:
  discovery: 5m0s
  tlsBootstrap: 5m0s
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
controlPlaneEndpoint: k8s-api.example.com:6443
apiServer:
  certSANs: [10.100.1.1, api.example.com]
)";

// The same in v1beta3 (discovery.timeout instead of timeouts, no dryRun, map extra args).
constexpr char kJoinV1beta3[] = R"(apiVersion: kubeadm.k8s.io/v1beta3
kind: JoinConfiguration
nodeRegistration:
  name: cp3
  kubeletExtraArgs:
    node-ip: 192.0.2.4
caCertPath: /etc/kubernetes/pki/ca.crt
discovery:
  file:
    kubeConfigPath: /etc/kubernetes/discovery.conf
  tlsBootstrapToken: abcdef.0123456789abcdef
  timeout: 5m0s
controlPlane:
  localAPIEndpoint:
    advertiseAddress: 192.0.2.4
  certificateKey: e6a2eb8581237ab72a4f494f30285ec12a9694d750b9785706a83bfcbbbd2204
skipPhases: [preflight]
patches:
  directory: /etc/kubernetes/patches
---
apiVersion: kubeadm.k8s.io/v1beta3
kind: ClusterConfiguration
controlPlaneEndpoint: k8s-api.example.com
)";

TEST(ConfigTest, ParsesV1beta4ControlPlaneJoinConfiguration) {
  auto r = ParseKubeadmConfig(kJoinV1beta4, NoHost());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->node_role, NodeRole::kJoinControlPlane);
  EXPECT_EQ(r->node_name, "cp2");
  EXPECT_EQ(r->advertise_address, "192.0.2.3");
  EXPECT_EQ(r->bind_port, 7443);
  EXPECT_EQ(r->control_plane_endpoint, "k8s-api.example.com:6443");
  EXPECT_EQ(r->apiserver_cert_sans, (std::vector<std::string>{"10.100.1.1", "api.example.com"}));
  EXPECT_TRUE(RequireControlPlaneNode(*r).ok());
}

TEST(ConfigTest, ParsesV1beta3ControlPlaneJoinConfiguration) {
  auto r = ParseKubeadmConfig(kJoinV1beta3, NoHost());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->node_role, NodeRole::kJoinControlPlane);
  EXPECT_EQ(r->node_name, "cp3");
  EXPECT_EQ(r->advertise_address, "192.0.2.4");
  EXPECT_EQ(r->bind_port, 6443);
  EXPECT_EQ(r->control_plane_endpoint, "k8s-api.example.com");
}

TEST(ConfigTest, JoinWithoutAdvertiseAddressUsesTheHostDefaultLikeInit) {
  auto r = Parse("apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ncontrolPlane: {}\n---\n" + std::string(
                 "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\ncontrolPlaneEndpoint: lb.example\n"));
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->node_role, NodeRole::kJoinControlPlane);
  EXPECT_EQ(r->node_name, "fake-node");
  EXPECT_EQ(r->advertise_address, "192.0.2.10");
}

TEST(ConfigTest, JoinConfigurationUnknownFieldsAreRefusedWithLineAndColumn) {
  const std::string join4 = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\n";
  ExpectInvalid(join4 + "bogusField: 1\n", {"unknown field \"JoinConfiguration.bogusField\"", "line 3", "column 1"});
  ExpectInvalid(join4 + "controlPlane:\n  localAPIEndpoint:\n    advertiseAdress: 192.0.2.3\n",
                {"unknown field \"JoinConfiguration.controlPlane.localAPIEndpoint.advertiseAdress\"", "line 5",
                 "column 5"});
  ExpectInvalid(join4 + "discovery:\n  bootstrapToken:\n    tokn: x\n",
                {"unknown field \"JoinConfiguration.discovery.bootstrapToken.tokn\"", "line 5"});
  // Fields of the other schema version.
  ExpectInvalid(join4 + "discovery:\n  timeout: 5m\n",
                {"\"JoinConfiguration.discovery.timeout\"", "not in kubeadm.k8s.io/v1beta4", "line 4"});
  ExpectInvalid("apiVersion: kubeadm.k8s.io/v1beta3\nkind: JoinConfiguration\ndryRun: true\n",
                {"\"JoinConfiguration.dryRun\"", "only in kubeadm.k8s.io/v1beta4", "line 3"});
  ExpectInvalid("apiVersion: kubeadm.k8s.io/v1beta3\nkind: JoinConfiguration\ntimeouts: {discovery: 5m}\n",
                {"\"JoinConfiguration.timeouts\"", "only in kubeadm.k8s.io/v1beta4"});
  // Types and values.
  ExpectInvalid(join4 + "controlPlane:\n  localAPIEndpoint:\n    bindPort: many\n",
                {"\"JoinConfiguration.controlPlane.localAPIEndpoint.bindPort\"", "32-bit integer", "line 5"});
  ExpectInvalid(join4 + "controlPlane:\n  localAPIEndpoint:\n    bindPort: 70000\n---\n" + kCluster4 +
                    "controlPlaneEndpoint: lb.example\n",
                {"\"JoinConfiguration.controlPlane.localAPIEndpoint.bindPort\"", "1..65535", "line 5"});
  ExpectInvalid(join4 + "controlPlane:\n  localAPIEndpoint:\n    advertiseAddress: cp2.example\n---\n" + kCluster4 +
                    "controlPlaneEndpoint: lb.example\n",
                {"\"JoinConfiguration.controlPlane.localAPIEndpoint.advertiseAddress\"", "not an IP address"});
  ExpectInvalid(join4 + "nodeRegistration: {name: CP2}\n", {"\"JoinConfiguration.nodeRegistration.name\""});
}

TEST(ConfigTest, InitAndJoinConfigurationTogetherAreRefused) {
  for (const char* version : {"v1beta3", "v1beta4"}) {
    const std::string api = std::string("apiVersion: kubeadm.k8s.io/") + version + "\n";
    ExpectInvalid(api + "kind: InitConfiguration\n---\n" + api + "kind: JoinConfiguration\ncontrolPlane: {}\n---\n" +
                      api + "kind: ClusterConfiguration\ncontrolPlaneEndpoint: lb.example\n",
                  {"document 2", "both InitConfiguration and JoinConfiguration", "one file per node", "line 5"});
    // Either order.
    ExpectInvalid(api + "kind: JoinConfiguration\n---\n" + api + "kind: InitConfiguration\n",
                  {"document 2", "both InitConfiguration and JoinConfiguration"});
  }
}

TEST(ConfigTest, ControlPlaneJoinNeedsClusterConfigurationWithControlPlaneEndpoint) {
  const std::string join = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\n"
                           "nodeRegistration: {name: cp2}\ncontrolPlane: {localAPIEndpoint: {advertiseAddress: 192.0.2.3}}\n";
  ExpectInvalid(join, {"must also hold the cluster's ClusterConfiguration", "line 1"});
  ExpectInvalid(join + "---\n" + kCluster4 + "apiServer: {certSANs: [api.example.com]}\n",
                {"\"ClusterConfiguration.controlPlaneEndpoint\"", "must be set for a control-plane join"});
}

TEST(ConfigTest, WorkerJoinParsesButIsRefusedForControlPlaneCertificates) {
  auto r = ParseKubeadmConfig(
      "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\nnodeRegistration: {name: w1}\n"
      "discovery: {bootstrapToken: {token: abcdef.0123456789abcdef, apiServerEndpoint: 'lb.example:6443'}}\n",
      NoHost());  // a worker has no advertise address to detect
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->node_role, NodeRole::kJoinWorker);
  EXPECT_EQ(r->node_name, "w1");
  EXPECT_EQ(r->advertise_address, "");
  const Status s = RequireControlPlaneNode(*r);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("no controlPlane section: it describes a worker node"), std::string::npos) << s.message();
  // `controlPlane: null` is Go's nil pointer: a worker too.
  auto null_cp = Parse("apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ncontrolPlane: null\n");
  ASSERT_TRUE(null_cp.ok()) << null_cp.status().message();
  EXPECT_EQ(null_cp->node_role, NodeRole::kJoinWorker);
}

TEST(ConfigTest, ResetAndUpgradeConfigurationAreIgnoredOnlyWhenWellFormed) {
  for (const std::string kind : {"ResetConfiguration", "UpgradeConfiguration"}) {
    const std::string doc = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: " + kind + "\n";
    EXPECT_TRUE(Parse(doc + "anything: {goes: here}\n").ok()) << kind;
    ExpectInvalid(kCluster4 + "---\n" + doc + "force: [true\n", {"line"});
    ExpectInvalid("apiVersion: kubeadm.k8s.io/v1beta3\nkind: " + kind + "\n", {"unknown kind \"" + kind + "\""});
  }
}


TEST(ConfigTest, ParseFailsOnUnknownNestedField) {
  ExpectInvalid(kCluster4 + "networking:\n  dnsDomian: cluster.local\n",
                {"unknown field \"ClusterConfiguration.networking.dnsDomian\"", "line 4"});
}

TEST(ConfigTest, ParseFailsOnUnknownTopLevelField) {
  ExpectInvalid(kInit4 + "nodeRegistraton:\n  name: x\n", {"unknown field \"InitConfiguration.nodeRegistraton\""});
}

TEST(ConfigTest, ParseFailsOnUnknownFieldInListItem) {
  ExpectInvalid(kCluster4 + "apiServer:\n  extraArgs:\n  - name: a\n    vaule: b\n",
                {"unknown field \"ClusterConfiguration.apiServer.extraArgs[0].vaule\""});
}

TEST(ConfigTest, ParseFailsOnFieldAtWrongNestingLevel) {
  // certSANs belongs under apiServer, not at the top.
  ExpectInvalid(kCluster4 + "certSANs: [a.example]\n", {"unknown field \"ClusterConfiguration.certSANs\""});
  // serverCertSANs belongs under etcd.local.
  ExpectInvalid(kCluster4 + "etcd:\n  serverCertSANs: [a]\n", {"unknown field \"ClusterConfiguration.etcd.serverCertSANs\""});
}

TEST(ConfigTest, ParseFailsOnV1beta4FieldInV1beta3) {
  for (const char* field : {"encryptionAlgorithm: RSA-2048", "certificateValidityPeriod: 8760h",
                            "caCertificateValidityPeriod: 87600h"}) {
    const std::string name = std::string(field).substr(0, std::string(field).find(':'));
    ExpectInvalid(kCluster3 + field + "\n",
                  {"\"ClusterConfiguration." + name + "\"", "only in kubeadm.k8s.io/v1beta4", "v1beta3"});
  }
  ExpectInvalid(kCluster3 + "apiServer:\n  extraEnvs: []\n", {"ClusterConfiguration.apiServer.extraEnvs", "v1beta4"});
  ExpectInvalid("apiVersion: kubeadm.k8s.io/v1beta3\nkind: InitConfiguration\ntimeouts: {}\n",
                {"InitConfiguration.timeouts", "v1beta4"});
}

TEST(ConfigTest, ParseFailsOnV1beta3FieldInV1beta4) {
  ExpectInvalid(kCluster4 + "apiServer:\n  timeoutForControlPlane: 4m0s\n",
                {"ClusterConfiguration.apiServer.timeoutForControlPlane", "not in kubeadm.k8s.io/v1beta4"});
}

TEST(ConfigTest, ParseFailsOnV1beta3ExtraArgsMapInV1beta4) {
  ExpectInvalid(kCluster4 + "apiServer:\n  extraArgs:\n    authorization-mode: Node,RBAC\n",
                {"ClusterConfiguration.apiServer.extraArgs", "expected a list"});
}

TEST(ConfigTest, ParseFailsOnBadDuration) {
  ExpectInvalid(kCluster4 + "certificateValidityPeriod: 365d\n",
                {"ClusterConfiguration.certificateValidityPeriod", "duration", "365d"});
  ExpectInvalid(kInit4 + "timeouts:\n  kubeletHealthCheck: soon\n", {"InitConfiguration.timeouts.kubeletHealthCheck"});
}

TEST(ConfigTest, ParseFailsOnNonPositiveValidity) {
  ExpectInvalid(kCluster4 + "certificateValidityPeriod: 0s\n", {"ClusterConfiguration.certificateValidityPeriod"});
  ExpectInvalid(kCluster4 + "caCertificateValidityPeriod: -1h\n", {"ClusterConfiguration.caCertificateValidityPeriod"});
  ExpectInvalid(kCluster4 + "certificateValidityPeriod: 500ms\n", {"ClusterConfiguration.certificateValidityPeriod"});
}

TEST(ConfigTest, ParseFailsOnUnknownAlgorithm) {
  ExpectInvalid(kCluster4 + "encryptionAlgorithm: ECDSA-P521\n", {"ClusterConfiguration.encryptionAlgorithm", "ECDSA-P521"});
  ExpectInvalid(kCluster4 + "encryptionAlgorithm: rsa-2048\n", {"ClusterConfiguration.encryptionAlgorithm"});
}

TEST(ConfigTest, ParseFailsOnBadAdvertiseAddress) {
  ExpectInvalid(kInit4 + "localAPIEndpoint:\n  advertiseAddress: 10.0.0.300\n",
                {"InitConfiguration.localAPIEndpoint.advertiseAddress", "10.0.0.300"});
}

TEST(ConfigTest, ParseFailsOnPortOutOfRange) {
  ExpectInvalid(kInit4 + "localAPIEndpoint:\n  bindPort: 70000\n", {"InitConfiguration.localAPIEndpoint.bindPort"});
  ExpectInvalid(kInit4 + "localAPIEndpoint:\n  bindPort: -1\n", {"InitConfiguration.localAPIEndpoint.bindPort"});
  ExpectInvalid(kCluster4 + "controlPlaneEndpoint: lb.example.com:0\n", {"ClusterConfiguration.controlPlaneEndpoint", "port"});
}

TEST(ConfigTest, ParseFailsOnBadControlPlaneEndpoint) {
  ExpectInvalid(kCluster4 + "controlPlaneEndpoint: https://lb.example.com\n", {"ClusterConfiguration.controlPlaneEndpoint"});
  ExpectInvalid(kCluster4 + "controlPlaneEndpoint: \"[10.0.0.1]:6443\"\n", {"ClusterConfiguration.controlPlaneEndpoint"});
}

TEST(ConfigTest, AcceptsControlPlaneEndpointForms) {
  for (const char* ep : {"lb.example.com", "lb.example.com:443", "10.0.0.1", "10.0.0.1:6443", "\"[fd00::1]:6443\"",
                         "\"fd00::1\""}) {
    auto r = Parse(kCluster4 + "controlPlaneEndpoint: " + ep + "\n");
    EXPECT_TRUE(r.ok()) << ep << ": " << r.status().message();
  }
}

TEST(ConfigTest, ParseFailsOnBadServiceSubnet) {
  ExpectInvalid(kCluster4 + "networking:\n  serviceSubnet: 10.96.0.0\n", {"ClusterConfiguration.networking.serviceSubnet"});
  ExpectInvalid(kCluster4 + "networking:\n  serviceSubnet: 10.96.0.0/33\n", {"ClusterConfiguration.networking.serviceSubnet"});
  ExpectInvalid(kCluster4 + "networking:\n  serviceSubnet: 10.96.0.0/16,10.97.0.0/16\n",
                {"ClusterConfiguration.networking.serviceSubnet", "dual-stack"});
}

// Found by fuzz/kubeadm_config_fuzzer (UBSan): a long prefix length overflowed int while parsed.
TEST(ConfigTest, ParseFailsOnOverlongPrefixLengthWithoutOverflow) {
  ExpectInvalid(kCluster4 + "networking:\n  serviceSubnet: 10.96.0.0/16038487609\n", {"invalid prefix length"});
}

TEST(ConfigTest, ParseFailsOnTooLargeServiceSubnet) {
  ExpectInvalid(kCluster4 + "networking:\n  serviceSubnet: 10.0.0.0/8\n", {"ClusterConfiguration.networking.serviceSubnet", ">= 12"});
}

TEST(ConfigTest, ParseFailsOnBadDnsDomain) {
  ExpectInvalid(kCluster4 + "networking:\n  dnsDomain: Cluster_Local\n", {"ClusterConfiguration.networking.dnsDomain"});
}

TEST(ConfigTest, ParseFailsOnInvalidCertSan) {
  ExpectInvalid(kCluster4 + "apiServer:\n  certSANs: [ok.example, \"bad name\"]\n",
                {"ClusterConfiguration.apiServer.certSANs[1]", "bad name"});
  ExpectInvalid(kCluster4 + "etcd:\n  local:\n    peerCertSANs: [\"-x-\"]\n", {"ClusterConfiguration.etcd.local.peerCertSANs[0]"});
}

TEST(ConfigTest, ParseFailsOnUpperCaseNodeName) {
  ExpectInvalid(kInit4 + "nodeRegistration:\n  name: CP-1\n", {"InitConfiguration.nodeRegistration.name", "CP-1"});
}

TEST(ConfigTest, ParseFailsOnRelativeCertificatesDir) {
  ExpectInvalid(kCluster4 + "certificatesDir: pki\n", {"ClusterConfiguration.certificatesDir", "absolute"});
}

TEST(ConfigTest, ParseFailsOnLocalAndExternalEtcd) {
  ExpectInvalid(kCluster4 + "etcd:\n  local: {dataDir: /var/lib/etcd}\n  external: {endpoints: [\"https://e:2379\"]}\n",
                {"ClusterConfiguration.etcd", "mutually exclusive"});
}

TEST(ConfigTest, ParseFailsOnWrongYamlType) {
  ExpectInvalid(kInit4 + "localAPIEndpoint:\n  bindPort: abc\n", {"InitConfiguration.localAPIEndpoint.bindPort", "integer"});
  ExpectInvalid(kInit4 + "localAPIEndpoint:\n  bindPort: \"6443\"\n", {"InitConfiguration.localAPIEndpoint.bindPort"});
  ExpectInvalid(kCluster4 + "apiServer:\n  certSANs: a.example\n", {"ClusterConfiguration.apiServer.certSANs", "list"});
  ExpectInvalid(kCluster4 + "networking: [a]\n", {"ClusterConfiguration.networking", "mapping"});
  ExpectInvalid(kCluster4 + "clusterName: {a: b}\n", {"ClusterConfiguration.clusterName", "string"});
  ExpectInvalid(kCluster4 + "featureGates:\n  PublicKeysECDSA: maybe\n", {"ClusterConfiguration.featureGates.PublicKeysECDSA", "boolean"});
  ExpectInvalid(kInit4 + "dryRun: 1\n", {"InitConfiguration.dryRun", "boolean"});
}

TEST(ConfigTest, ParseFailsOnDuplicateKey) {
  ExpectInvalid(kCluster4 + "clusterName: a\nclusterName: b\n", {"duplicate field \"ClusterConfiguration.clusterName\""});
  ExpectInvalid(kCluster4 + "kind: InitConfiguration\n", {"duplicate"});
  ExpectInvalid(kCluster4 + "networking:\n  serviceSubnet: 10.96.0.0/12\n  serviceSubnet: 10.0.0.0/8\n",
                {"duplicate field \"ClusterConfiguration.networking.serviceSubnet\""});
}

TEST(ConfigTest, ParseFailsOnUnknownKind) {
  ExpectInvalid("apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfig\n", {"unknown kind \"InitConfig\""});
  ExpectInvalid("apiVersion: v1\nkind: ConfigMap\n", {"unsupported apiVersion \"v1\""});
}

TEST(ConfigTest, ParseFailsOnUnsupportedApiVersion) {
  ExpectInvalid("apiVersion: kubeadm.k8s.io/v1beta2\nkind: ClusterConfiguration\n", {"kubeadm.k8s.io/v1beta2", "migrate"});
}

TEST(ConfigTest, ParseFailsOnMissingKind) {
  ExpectInvalid("apiVersion: kubeadm.k8s.io/v1beta4\nclusterName: x\n", {"document 1", "apiVersion and kind"});
  ExpectInvalid("- just\n- a list\n", {"document 1", "mapping"});
}

TEST(ConfigTest, ParseFailsOnDuplicateKind) {
  ExpectInvalid(kCluster4 + "---\n" + kCluster3, {"document 2", "ClusterConfiguration", "more than once"});
}

TEST(ConfigTest, ParseFailsOnSyntaxErrorWithLineAndColumn) {
  ExpectInvalid(kCluster4 + "apiServer:\n  certSANs: [a, b\n", {"invalid YAML", "line "});
  ExpectInvalid("a: b\n c: d\n", {"invalid YAML", "line 2"});
}

TEST(ConfigTest, ParseFailsOnOversizedInput) {
  std::string big = kCluster4 + "# " + std::string(1 << 20, 'x') + "\n";
  ExpectInvalid(big, {"exceeds the limit"});
}

TEST(ConfigTest, ParseFailsOnDeepNesting) {
  std::string deep = kCluster4 + "featureGates: " + std::string(100, '[') + std::string(100, ']') + "\n";
  ExpectInvalid(deep, {"nesting deeper than 64"});
  // Beyond yaml-cpp's own recursion guard, still a clean error.
  std::string deeper = std::string(5000, '[') + std::string(5000, ']');
  ExpectInvalid(deeper, {"nesting deeper than 64"});
  // Block-style nesting, one space per level.
  std::string block;
  for (int i = 0; i < 1000; ++i) block += std::string(static_cast<std::size_t>(i), ' ') + "a:\n";
  ExpectInvalid(block, {"nesting deeper than 64"});
}

TEST(ConfigTest, ParseFailsOnAliasBomb) {
  std::string bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  for (char c = 'b'; c <= 'k'; ++c) {
    std::string prev(1, static_cast<char>(c - 1));
    bomb += std::string(1, c) + ": &" + std::string(1, c) + " [*" + prev + ", *" + prev + ", *" + prev + ", *" + prev +
            ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + "]\n";
  }
  ExpectInvalid(bomb, {"kubeadm config"});
}

TEST(ConfigTest, ParseFailsOnCyclicAlias) { ExpectInvalid("&a [*a]\n", {"kubeadm config"}); }

// Found by fuzz/kubeadm_config_fuzzer: yaml-cpp 0.7's LoadAll loops forever, allocating, on a
// stray flow indicator at the start of a document (jbeder/yaml-cpp#1040).
TEST(ConfigTest, ParseFailsOnStrayFlowEntryInsteadOfLooping) {
  ExpectInvalid(",", {"invalid YAML", "line 1, column 1"});
  ExpectInvalid(kCluster4 + "---\n,\n", {"invalid YAML", "unexpected character"});
}

TEST(ConfigTest, ParseNeverCrashesOnMutatedInput) {
  std::mt19937 rng(12345);
  const std::string seeds[] = {kFullV1beta4, kFullV1beta3, kPrintInitDefaults};
  const std::string alphabet = ":-[]{}&*!|>'\"%@`#,?\n \t0a.";
  int accepted = 0;
  for (int i = 0; i < 1500; ++i) {
    std::string s = seeds[i % 3];
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      const std::size_t pos = rng() % s.size();
      switch (rng() % 3) {
        case 0: s[pos] = alphabet[rng() % alphabet.size()]; break;
        case 1: s.erase(pos, 1 + rng() % 8); break;
        default: s.insert(pos, 1, alphabet[rng() % alphabet.size()]); break;
      }
    }
    auto r = Parse(s);  // must return, OK or not, without throwing or crashing
    if (r.ok()) ++accepted;
    else EXPECT_FALSE(r.status().message().empty());
  }
  EXPECT_LT(accepted, 1500);  // mutations do break most documents
}

TEST(ConfigTest, LoadKubeadmConfigReadsFileAndNamesItOnError) {
  testing::TempDir dir;
  testing::WriteTestFile(dir.path() / "ok.yaml", kPrintInitDefaults);
  auto ok = LoadKubeadmConfig(dir.path() / "ok.yaml");
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  EXPECT_EQ(ok->node_name, "node");
  testing::WriteTestFile(dir.path() / "bad.yaml", kCluster4 + "bogus: 1\n");
  auto bad = LoadKubeadmConfig(dir.path() / "bad.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("bad.yaml"), std::string::npos);
  EXPECT_NE(bad.status().message().find("ClusterConfiguration.bogus"), std::string::npos);
  auto missing = LoadKubeadmConfig(dir.path() / "none.yaml");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
}

// ---- host detection and ValidateClusterConfig ------------------------------------------------

TEST(ConfigTest, DefaultRouteInterfaceParsesProcNetRoute) {
  const std::string table =
      "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
      "docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n"
      "wlan0\t00000000\t0101A8C0\t0002\t0\t0\t600\t00000000\t0\t0\t0\n"  // not RTF_UP
      "eth1\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"
      "eth2\t00000000\t010300C0\t0003\t0\t0\t200\t00000000\t0\t0\t0\n";
  EXPECT_EQ(DefaultRouteInterface(table), "eth1");
  EXPECT_EQ(DefaultRouteInterface("Iface\tDestination\n"), "");
  EXPECT_EQ(DefaultRouteInterface(""), "");
}

TEST(ConfigTest, DetectsHostDefaultsOnThisMachine) {
  auto name = DetectNodeName();
  ASSERT_TRUE(name.ok()) << name.status().message();
  for (char c : *name) EXPECT_FALSE(c >= 'A' && c <= 'Z') << *name;
  auto addr = DetectAdvertiseAddress();
  if (addr.ok()) {
    in_addr a{};
    EXPECT_EQ(inet_pton(AF_INET, addr->c_str(), &a), 1) << *addr;
    EXPECT_NE(addr->rfind("127.", 0), 0u) << *addr;
  } else {
    EXPECT_EQ(addr.status().code(), StatusCode::kFailedPrecondition);
    EXPECT_NE(addr.status().message().find("advertiseAddress"), std::string::npos);
  }
}

TEST(ConfigTest, ValidateClusterConfigChecksStructFields) {
  ClusterConfig c;
  c.node_name = "cp1";
  c.advertise_address = "10.0.0.1";
  EXPECT_TRUE(ValidateClusterConfig(c).ok());
  ClusterConfig bad = c;
  bad.cert_validity = seconds(0);
  EXPECT_NE(ValidateClusterConfig(bad).message().find("certificateValidityPeriod"), std::string::npos);
  bad = c;
  bad.bind_port = 0;
  EXPECT_NE(ValidateClusterConfig(bad).message().find("bindPort"), std::string::npos);
  bad = c;
  bad.advertise_address = "";
  EXPECT_EQ(ValidateClusterConfig(bad).code(), StatusCode::kInvalidArgument);
  bad = c;
  bad.encryption_algorithm = KeyType::kEcP521;
  EXPECT_NE(ValidateClusterConfig(bad).message().find("encryptionAlgorithm"), std::string::npos);
}

}  // namespace
}  // namespace kubehsm::signer::pki
