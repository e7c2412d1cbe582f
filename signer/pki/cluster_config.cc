#include "signer/pki/cluster_config.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <utility>

#include <yaml-cpp/yaml.h>

#include "common/file_util.h"
#include "signer/pki/yaml_util.h"

namespace kubehsm::signer::pki {
namespace {

using yaml_internal::NodePosition;

// ------------------------------------------------------------------------------------------------
// Value checks shared by parsing and ValidateClusterConfig.

std::string Quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

std::optional<in6_addr> ParseIp(std::string_view s, bool* is_v4) {
  const std::string str(s);
  in6_addr a6{};
  in_addr a4{};
  if (inet_pton(AF_INET, str.c_str(), &a4) == 1) {
    if (is_v4 != nullptr) *is_v4 = true;
    return a6;  // value unused for v4
  }
  if (inet_pton(AF_INET6, str.c_str(), &a6) == 1) {
    if (is_v4 != nullptr) *is_v4 = false;
    return a6;
  }
  return std::nullopt;
}

bool IsIp(std::string_view s) { return !s.empty() && ParseIp(s, nullptr).has_value(); }

// Kubernetes' IsDNS1123Subdomain: lower-case RFC 1123 labels joined by dots, at most 253 chars.
bool IsDns1123Subdomain(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = s.find('.', start);
    const std::string_view label = s.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (label.empty()) return false;
    for (std::size_t i = 0; i < label.size(); ++i) {
      const char c = label[i];
      const bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
      if (!alnum && !(c == '-' && i != 0 && i != label.size() - 1)) return false;
    }
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

bool IsWildcardDns1123Subdomain(std::string_view s) {
  return s.size() > 2 && s.substr(0, 2) == "*." && IsDns1123Subdomain(s.substr(2));
}

// Parses a decimal port "1".."65535".
std::optional<int> ParsePort(std::string_view s) {
  if (s.empty() || s.size() > 5) return std::nullopt;
  int v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  if (v < 1 || v > 65535) return std::nullopt;
  return v;
}

// kubeadm's ParseHostPort: "host", "host:port" or "[v6]:port"; host is an IP or a DNS subdomain.
Status CheckHostPort(std::string_view value, std::string_view field) {
  std::string_view host = value;
  std::optional<std::string_view> port;
  if (!value.empty() && value.front() == '[') {
    const std::size_t close = value.find(']');
    if (close == std::string_view::npos || close + 1 >= value.size() || value[close + 1] != ':') {
      return InvalidArgument("field " + Quoted(field) + ": " + Quoted(value) + " is not host[:port]");
    }
    host = value.substr(1, close - 1);
    port = value.substr(close + 2);
    bool v4 = false;
    if (!ParseIp(host, &v4) || v4) {
      return InvalidArgument("field " + Quoted(field) + ": " + Quoted(host) + " in brackets is not an IPv6 address");
    }
  } else if (std::count(value.begin(), value.end(), ':') == 1) {
    const std::size_t colon = value.find(':');
    host = value.substr(0, colon);
    port = value.substr(colon + 1);
  }
  if (port && !ParsePort(*port)) {
    return InvalidArgument("field " + Quoted(field) + ": port " + Quoted(*port) + " is not in 1..65535");
  }
  if (!IsIp(host) && !IsDns1123Subdomain(host)) {
    return InvalidArgument("field " + Quoted(field) + ": " + Quoted(host) +
                           " is neither an IP address nor a DNS-1123 subdomain");
  }
  return OkStatus();
}

// One CIDR "ip/prefix" as Go's net.ParseCIDR accepts it (host bits may be set).
Status CheckCidr(std::string_view cidr, std::string_view field, bool* is_v4, int* prefix) {
  const std::size_t slash = cidr.find('/');
  if (slash == std::string_view::npos) {
    return InvalidArgument("field " + Quoted(field) + ": " + Quoted(cidr) + " is not a CIDR (missing /prefix)");
  }
  if (!ParseIp(cidr.substr(0, slash), is_v4)) {
    return InvalidArgument("field " + Quoted(field) + ": " + Quoted(cidr) + " has an invalid IP address");
  }
  const std::string_view bits = cidr.substr(slash + 1);
  const int max_bits = *is_v4 ? 32 : 128;
  int v = 0;
  bool ok = !bits.empty() && bits.size() <= 3 && !(bits.size() > 1 && bits[0] == '0');
  for (char c : bits) {
    if (!ok) break;  // a long digit string would overflow v
    if (c < '0' || c > '9') ok = false;
    else v = v * 10 + (c - '0');
  }
  if (!ok || v > max_bits) {
    return InvalidArgument("field " + Quoted(field) + ": " + Quoted(cidr) + " has an invalid prefix length");
  }
  *prefix = v;
  return OkStatus();
}

// kubeadm: one CIDR or a dual-stack pair (one IPv4, one IPv6), each at most 2^20 addresses
// (ValidateServiceSubnetSize, "the mask must be >= 12" for IPv4, >= 108 for IPv6).
Status CheckServiceSubnet(std::string_view value, std::string_view field) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  while (true) {
    const std::size_t comma = value.find(',', start);
    parts.push_back(value.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  if (parts.size() > 2) {
    return InvalidArgument("field " + Quoted(field) + ": at most two CIDRs (one IPv4, one IPv6) are allowed");
  }
  int families = 0;
  for (std::string_view part : parts) {
    bool v4 = false;
    int prefix = 0;
    KH_RETURN_IF_ERROR(CheckCidr(part, field, &v4, &prefix));
    const int host_bits = (v4 ? 32 : 128) - prefix;
    if (host_bits > 20) {
      return InvalidArgument("field " + Quoted(field) + ": " + Quoted(part) + " is too large; the mask must be >= " +
                             std::to_string(v4 ? 12 : 108));
    }
    families |= v4 ? 1 : 2;
  }
  if (parts.size() == 2 && families != 3) {
    return InvalidArgument("field " + Quoted(field) + ": a dual-stack subnet needs one IPv4 and one IPv6 CIDR");
  }
  return OkStatus();
}

// At most this many entries per certSANs list. kubeadm sets no limit, but every SAN goes into one
// certificate that a TLS server sends in its handshake, and Go's crypto/tls refuses handshake
// messages over 65536 bytes: a config with thousands of SANs would yield a certificate
// kube-apiserver cannot serve (10 000 names make ~280 KB), so it is refused up front.
constexpr std::size_t kMaxCertSans = 256;

// Multi-label public suffixes (https://publicsuffix.org) common enough to list here: a wildcard
// directly under one of them ("*.co.uk") covers every registrant's names, like "*.com" does. Not
// the whole list: any wildcard over a single label is refused anyway, and these are the usual
// second-level registries.
constexpr std::string_view kMultiLabelPublicSuffixes[] = {
    "co.uk",           "org.uk",      "ac.uk",           "gov.uk",
    "me.uk",           "net.uk",      "ltd.uk",          "plc.uk",
    "co.jp",           "ne.jp",       "or.jp",           "ac.jp",
    "go.jp",           "com.au",      "net.au",          "org.au",
    "edu.au",          "gov.au",      "co.nz",           "org.nz",
    "net.nz",          "com.br",      "net.br",          "org.br",
    "com.cn",          "net.cn",      "org.cn",          "gov.cn",
    "com.mx",          "co.in",       "net.in",          "org.in",
    "co.za",           "com.tr",      "com.sg",          "co.kr",
    "or.kr",           "com.tw",      "com.hk",          "co.il",
    "com.ar",          "co.id",       "com.my",          "com.ph",
    "com.vn",          "com.ua",      "co.th",           "in.th",
    "com.pl",          "eu.org",      "github.io",       "gitlab.io",
    "herokuapp.com",   "appspot.com", "cloudfront.net",  "azurewebsites.net",
    "blogspot.com",    "pages.dev",   "vercel.app",      "netlify.app",
    "firebaseapp.com", "web.app",     "s3.amazonaws.com"};

// Why wildcard `entry` ("*.rest") covers a public suffix, or nullopt.
std::optional<std::string> PublicSuffixWildcard(std::string_view entry) {
  if (!entry.starts_with("*.")) return std::nullopt;
  const std::string_view rest = entry.substr(2);
  if (rest.find('.') == std::string_view::npos)
    return "covers every name under the top-level domain \"" + std::string(rest) + "\"";
  for (std::string_view suffix : kMultiLabelPublicSuffixes) {
    if (rest == suffix) return "covers every name under the public suffix \"" + std::string(rest) + "\"";
  }
  return std::nullopt;
}

Status CheckSans(const std::vector<std::string>& sans, std::string_view field, bool allow_public_suffix_wildcards) {
  if (sans.size() > kMaxCertSans) {
    return InvalidArgument("field " + Quoted(std::string(field)) + ": " + std::to_string(sans.size()) +
                           " entries exceed the limit of " + std::to_string(kMaxCertSans) +
                           " (the certificate must fit in a TLS handshake message)");
  }
  for (std::size_t i = 0; i < sans.size(); ++i) {
    const std::string& s = sans[i];
    if (!IsIp(s) && !IsDns1123Subdomain(s) && !IsWildcardDns1123Subdomain(s)) {
      return InvalidArgument("field " + Quoted(std::string(field) + "[" + std::to_string(i) + "]") + ": " + Quoted(s) +
                             " is not a valid IP address, DNS-1123 subdomain or wildcard subdomain");
    }
    if (auto why = PublicSuffixWildcard(s); why && !allow_public_suffix_wildcards) {
      return InvalidArgument("field " + Quoted(std::string(field) + "[" + std::to_string(i) + "]") + ": wildcard " +
                             Quoted(s) + " " + *why + "; refused unless --allow-public-suffix-wildcards is given");
    }
  }
  return OkStatus();
}

// kubeadm's encryptionAlgorithm spellings, exactly (the field is case-sensitive in kubeadm).
std::optional<KeyType> ParseEncryptionAlgorithm(std::string_view s) {
  if (s.empty() || s == "RSA-2048") return KeyType::kRsa2048;
  if (s == "RSA-3072") return KeyType::kRsa3072;
  if (s == "RSA-4096") return KeyType::kRsa4096;
  if (s == "ECDSA-P256") return KeyType::kEcP256;
  if (s == "ECDSA-P384") return KeyType::kEcP384;
  return std::nullopt;
}

// ------------------------------------------------------------------------------------------------
// The kubeadm v1beta3/v1beta4 schema of InitConfiguration, JoinConfiguration and
// ClusterConfiguration (cmd/kubeadm/app/apis/kubeadm/v1beta{3,4}/types.go). Every field is type-checked; the PKI reads
// a few of them afterwards.

enum class Type { kString, kBool, kInt, kDuration, kStringList, kStringMap, kBoolMap, kStruct, kStructList, kAny };
enum Versions : unsigned { kV3 = 1, kV4 = 2, kBoth = 3 };

struct Field {
  std::string_view name;
  Type type;
  unsigned versions = kBoth;
  std::vector<Field> fields;  // kStruct / kStructList
};

Field S(std::string_view n, unsigned v = kBoth) { return {n, Type::kString, v, {}}; }
Field B(std::string_view n, unsigned v = kBoth) { return {n, Type::kBool, v, {}}; }
Field I(std::string_view n, unsigned v = kBoth) { return {n, Type::kInt, v, {}}; }
Field D(std::string_view n, unsigned v = kBoth) { return {n, Type::kDuration, v, {}}; }
Field SL(std::string_view n, unsigned v = kBoth) { return {n, Type::kStringList, v, {}}; }
Field Struct(std::string_view n, std::vector<Field> f, unsigned v = kBoth) { return {n, Type::kStruct, v, std::move(f)}; }
Field List(std::string_view n, std::vector<Field> f, unsigned v = kBoth) { return {n, Type::kStructList, v, std::move(f)}; }

// v1beta3: map[string]string; v1beta4: []Arg{name, value} (duplicates allowed).
std::vector<Field> ExtraArgs(std::string_view name) {
  return {{name, Type::kStringMap, kV3, {}}, List(name, {S("name"), S("value")}, kV4)};
}

// corev1.EnvVar (v1beta4 extraEnvs); valueFrom is a nested core/v1 source, accepted as is.
Field ExtraEnvs() { return List("extraEnvs", {S("name"), S("value"), {"valueFrom", Type::kAny, kBoth, {}}}, kV4); }

Field ExtraVolumes() {
  return List("extraVolumes", {S("name"), S("hostPath"), S("mountPath"), B("readOnly"), S("pathType")});
}

std::vector<Field> ControlPlaneComponent(std::vector<Field> extra = {}) {
  std::vector<Field> f = ExtraArgs("extraArgs");
  f.push_back(ExtraVolumes());
  f.push_back(ExtraEnvs());
  for (auto& e : extra) f.push_back(std::move(e));
  return f;
}

std::vector<Field> TypeMeta() { return {S("apiVersion"), S("kind")}; }

std::vector<Field> NodeRegistration() {
  std::vector<Field> f = {S("name"), S("criSocket"),
                          List("taints", {S("key"), S("value"), S("effect"), S("timeAdded")}),
                          SL("ignorePreflightErrors"), S("imagePullPolicy"), B("imagePullSerial", kV4)};
  for (auto& e : ExtraArgs("kubeletExtraArgs")) f.push_back(std::move(e));
  return f;
}

// v1beta4 Timeouts (InitConfiguration and JoinConfiguration).
Field Timeouts() {
  return Struct("timeouts",
                {D("controlPlaneComponentHealthCheck"), D("kubeletHealthCheck"), D("kubernetesAPICall"),
                 D("etcdAPICall"), D("tlsBootstrap"), D("discovery"), D("upgradeManifests")},
                kV4);
}

Field LocalApiEndpoint() { return Struct("localAPIEndpoint", {S("advertiseAddress"), I("bindPort")}); }

std::vector<Field> InitConfigurationSchema() {
  std::vector<Field> f = TypeMeta();
  f.push_back(List("bootstrapTokens",
                   {S("token"), S("description"), D("ttl"), S("expires"), SL("usages"), SL("groups")}));
  f.push_back(B("dryRun", kV4));
  f.push_back(Struct("nodeRegistration", NodeRegistration()));
  f.push_back(LocalApiEndpoint());
  f.push_back(S("certificateKey"));
  f.push_back(SL("skipPhases"));
  f.push_back(Struct("patches", {S("directory")}));
  f.push_back(Timeouts());
  return f;
}

// JoinConfiguration: v1beta4 moved discovery.timeout to timeouts.discovery and added dryRun.
std::vector<Field> JoinConfigurationSchema() {
  std::vector<Field> f = TypeMeta();
  f.push_back(B("dryRun", kV4));
  f.push_back(Struct("nodeRegistration", NodeRegistration()));
  f.push_back(S("caCertPath"));
  f.push_back(Struct("discovery", {Struct("bootstrapToken", {S("token"), S("apiServerEndpoint"), SL("caCertHashes"),
                                                             B("unsafeSkipCAVerification")}),
                                   Struct("file", {S("kubeConfigPath")}), S("tlsBootstrapToken"),
                                   D("timeout", kV3)}));
  f.push_back(Struct("controlPlane", {LocalApiEndpoint(), S("certificateKey")}));
  f.push_back(SL("skipPhases"));
  f.push_back(Struct("patches", {S("directory")}));
  f.push_back(Timeouts());
  return f;
}

std::vector<Field> ClusterConfigurationSchema() {
  std::vector<Field> local = {S("imageRepository"), S("imageTag"), S("dataDir"), ExtraEnvs(), SL("serverCertSANs"),
                              SL("peerCertSANs")};
  for (auto& e : ExtraArgs("extraArgs")) local.push_back(std::move(e));
  std::vector<Field> f = TypeMeta();
  f.push_back(Struct("etcd", {Struct("local", std::move(local)),
                              Struct("external", {SL("endpoints"), SL("httpEndpoints", kV4), S("caFile"),
                                                  S("certFile"), S("keyFile")})}));
  f.push_back(Struct("networking", {S("serviceSubnet"), S("podSubnet"), S("dnsDomain")}));
  f.push_back(S("kubernetesVersion"));
  f.push_back(S("controlPlaneEndpoint"));
  f.push_back(Struct("apiServer", ControlPlaneComponent({SL("certSANs"), D("timeoutForControlPlane", kV3)})));
  f.push_back(Struct("controllerManager", ControlPlaneComponent()));
  f.push_back(Struct("scheduler", ControlPlaneComponent()));
  f.push_back(Struct("dns", {S("imageRepository"), S("imageTag"), B("disabled", kV4)}));
  f.push_back(Struct("proxy", {B("disabled")}, kV4));
  f.push_back(S("certificatesDir"));
  f.push_back(S("imageRepository"));
  f.push_back({"featureGates", Type::kBoolMap, kBoth, {}});
  f.push_back(S("clusterName"));
  f.push_back(S("encryptionAlgorithm", kV4));
  f.push_back(D("certificateValidityPeriod", kV4));
  f.push_back(D("caCertificateValidityPeriod", kV4));
  return f;
}

const char* VersionName(unsigned v) { return v == kV3 ? "kubeadm.k8s.io/v1beta3" : "kubeadm.k8s.io/v1beta4"; }

std::string At(const YAML::Node& node) {
  const std::string pos = NodePosition(node);
  return pos.empty() ? "" : " (" + pos + ")";
}

Status TypeError(std::string_view path, std::string_view expected, const YAML::Node& node) {
  std::string got;
  if (node.IsScalar()) got = Quoted(node.Scalar());
  else if (node.IsMap()) got = "a mapping";
  else if (node.IsSequence()) got = "a sequence";
  else got = "nothing";
  return InvalidArgument("field " + Quoted(path) + ": expected " + std::string(expected) + ", got " + got + At(node));
}

// YAML 1.1 booleans as go-yaml v2 resolves them (plain scalars only).
std::optional<bool> ParseBool(const YAML::Node& node) {
  if (!node.IsScalar() || node.Tag() != "?") return std::nullopt;
  static const std::array<std::string_view, 11> kTrue = {"y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"};
  static const std::array<std::string_view, 11> kFalse = {"n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"};
  const std::string& v = node.Scalar();
  if (std::find(kTrue.begin(), kTrue.end(), v) != kTrue.end()) return true;
  if (std::find(kFalse.begin(), kFalse.end(), v) != kFalse.end()) return false;
  return std::nullopt;
}

// An int32 written as a plain decimal scalar.
std::optional<std::int64_t> ParseInt32(const YAML::Node& node) {
  if (!node.IsScalar() || node.Tag() != "?") return std::nullopt;
  const std::string& v = node.Scalar();
  std::size_t i = (!v.empty() && (v[0] == '-' || v[0] == '+')) ? 1 : 0;
  if (i >= v.size() || v.size() - i > 10) return std::nullopt;
  std::int64_t n = 0;
  for (; i < v.size(); ++i) {
    if (v[i] < '0' || v[i] > '9') return std::nullopt;
    n = n * 10 + (v[i] - '0');
  }
  if (v[0] == '-') n = -n;
  if (n < std::numeric_limits<std::int32_t>::min() || n > std::numeric_limits<std::int32_t>::max()) return std::nullopt;
  return n;
}

Status CheckStruct(const YAML::Node& node, const std::vector<Field>& fields, const std::string& path, unsigned version);

Status CheckValue(const YAML::Node& node, const Field& field, const std::string& path, unsigned version) {
  if (node.IsNull()) return OkStatus();  // an explicit null is the zero value, as in Go
  switch (field.type) {
    case Type::kAny:
      return OkStatus();
    case Type::kString:
      if (!node.IsScalar()) return TypeError(path, "a string", node);
      return OkStatus();
    case Type::kBool:
      if (!ParseBool(node)) return TypeError(path, "a boolean", node);
      return OkStatus();
    case Type::kInt:
      if (!ParseInt32(node)) return TypeError(path, "a 32-bit integer", node);
      return OkStatus();
    case Type::kDuration:
      if (!node.IsScalar() || !ParseGoDuration(node.Scalar())) {
        return TypeError(path, "a duration such as \"8760h\" or \"1h30m\"", node);
      }
      return OkStatus();
    case Type::kStringList:
      if (!node.IsSequence()) return TypeError(path, "a list of strings", node);
      for (std::size_t i = 0; i < node.size(); ++i) {
        if (!node[i].IsScalar() && !node[i].IsNull()) {
          return TypeError(path + "[" + std::to_string(i) + "]", "a string", node[i]);
        }
      }
      return OkStatus();
    case Type::kStringMap:
    case Type::kBoolMap: {
      if (!node.IsMap()) return TypeError(path, field.type == Type::kBoolMap ? "a map of booleans" : "a map of strings", node);
      std::set<std::string> seen;
      for (const auto& kv : node) {
        const std::string sub = path + "." + kv.first.Scalar();
        if (!seen.insert(kv.first.Scalar()).second) {
          return InvalidArgument("duplicate field " + Quoted(sub) + At(kv.first));
        }
        if (field.type == Type::kBoolMap) {
          if (!ParseBool(kv.second)) return TypeError(sub, "a boolean", kv.second);
        } else if (!kv.second.IsScalar() && !kv.second.IsNull()) {
          return TypeError(sub, "a string", kv.second);
        }
      }
      return OkStatus();
    }
    case Type::kStruct:
      return CheckStruct(node, field.fields, path, version);
    case Type::kStructList:
      if (!node.IsSequence()) return TypeError(path, "a list", node);
      for (std::size_t i = 0; i < node.size(); ++i) {
        KH_RETURN_IF_ERROR(CheckStruct(node[i], field.fields, path + "[" + std::to_string(i) + "]", version));
      }
      return OkStatus();
  }
  return Internal("unhandled schema type");
}

Status CheckStruct(const YAML::Node& node, const std::vector<Field>& fields, const std::string& path, unsigned version) {
  if (node.IsNull()) return OkStatus();
  if (!node.IsMap()) return TypeError(path, "a mapping", node);
  std::set<std::string> seen;
  for (const auto& kv : node) {
    const std::string& key = kv.first.Scalar();
    const std::string sub = path + "." + key;
    if (!seen.insert(key).second) return InvalidArgument("duplicate field " + Quoted(sub) + At(kv.first));
    const Field* match = nullptr;
    const Field* other_version = nullptr;
    for (const Field& f : fields) {
      if (f.name != key) continue;
      if ((f.versions & version) != 0) match = &f;
      else other_version = &f;
    }
    if (match == nullptr && other_version != nullptr) {
      const char* where = other_version->versions == kV4 ? "only in kubeadm.k8s.io/v1beta4" : "not in kubeadm.k8s.io/v1beta4";
      return InvalidArgument("field " + Quoted(sub) + " is " + where + ", but this document is " + VersionName(version) +
                             At(kv.first));
    }
    if (match == nullptr) return InvalidArgument("unknown field " + Quoted(sub) + At(kv.first));
    KH_RETURN_IF_ERROR(CheckValue(kv.second, *match, sub, version));
  }
  return OkStatus();
}

// ------------------------------------------------------------------------------------------------
// Reading values once the schema check has passed (types are known to be right).

// The value of `key` in a map, or an undefined node. Never inserts (unlike Node::operator[]).
YAML::Node Find(const YAML::Node& map, std::string_view key) {
  if (!map.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
  for (const auto& kv : map) {
    if (kv.first.IsScalar() && kv.first.Scalar() == key) return kv.second;
  }
  return YAML::Node(YAML::NodeType::Undefined);
}

YAML::Node FindPath(const YAML::Node& root, std::initializer_list<std::string_view> keys) {
  // Node::operator= writes through to the referenced node; reset() rebinds the handle.
  YAML::Node n;
  n.reset(root);
  for (std::string_view k : keys) {
    n.reset(Find(n, k));
    if (!n.IsDefined()) break;
  }
  return n;
}

bool IsSet(const YAML::Node& n) { return n.IsDefined() && !n.IsNull(); }

// A set string value; "" (Go's zero value, meaning "use the default") when absent or null.
std::string GetString(const YAML::Node& root, std::initializer_list<std::string_view> keys) {
  YAML::Node n = FindPath(root, keys);
  return IsSet(n) ? n.Scalar() : std::string();
}

std::vector<std::string> GetStringList(const YAML::Node& root, std::initializer_list<std::string_view> keys) {
  std::vector<std::string> out;
  YAML::Node n = FindPath(root, keys);
  if (!IsSet(n)) return out;
  for (const auto& item : n) out.push_back(item.IsScalar() ? item.Scalar() : std::string());
  return out;
}

Result<std::optional<std::chrono::seconds>> GetValidity(const YAML::Node& root, std::string_view key,
                                                        const std::string& path) {
  YAML::Node n = Find(root, key);
  if (!IsSet(n)) return std::optional<std::chrono::seconds>();
  const std::optional<std::int64_t> ns = ParseGoDuration(n.Scalar());
  if (!ns || *ns < 1'000'000'000) {
    return InvalidArgument("field " + Quoted(path) + ": validity " + Quoted(n.Scalar()) + " must be at least 1s" + At(n));
  }
  return std::optional<std::chrono::seconds>(std::chrono::seconds(*ns / 1'000'000'000));
}

struct Document {
  YAML::Node node;
  unsigned version = 0;  // kV3 / kV4 for kubeadm kinds
};

struct Parsed {
  std::optional<Document> init;
  std::optional<Document> join;
  std::optional<Document> cluster;
};

Result<Parsed> ClassifyDocuments(const std::vector<YAML::Node>& docs) {
  Parsed parsed;
  std::set<std::string> seen;
  for (std::size_t i = 0; i < docs.size(); ++i) {
    const YAML::Node& doc = docs[i];
    if (doc.IsNull() || !doc.IsDefined()) continue;  // empty document, e.g. a trailing "---"
    const std::string name = "document " + std::to_string(i + 1);
    if (!doc.IsMap()) return InvalidArgument(name + ": expected a mapping with apiVersion and kind" + At(doc));
    const YAML::Node api = Find(doc, "apiVersion");
    const YAML::Node kind_node = Find(doc, "kind");
    if (!IsSet(api) || !api.IsScalar() || !IsSet(kind_node) || !kind_node.IsScalar()) {
      return InvalidArgument(name + ": apiVersion and kind are required" + At(doc));
    }
    const std::string& api_version = api.Scalar();
    const std::string& kind = kind_node.Scalar();
    const std::string group = api_version.substr(0, api_version.find('/'));
    if (!seen.insert(group + "/" + kind).second) {
      return InvalidArgument(name + ": " + kind + " is given more than once" + At(doc));
    }
    if (group == "kubelet.config.k8s.io" && kind == "KubeletConfiguration") continue;
    if (group == "kubeproxy.config.k8s.io" && kind == "KubeProxyConfiguration") continue;
    if (group != "kubeadm.k8s.io") {
      return InvalidArgument(name + ": unsupported apiVersion " + Quoted(api_version) + " with kind " + Quoted(kind) + At(api));
    }
    unsigned version = 0;
    if (api_version == "kubeadm.k8s.io/v1beta3") version = kV3;
    else if (api_version == "kubeadm.k8s.io/v1beta4") version = kV4;
    else {
      return InvalidArgument(name + ": unsupported apiVersion " + Quoted(api_version) +
                             " (use kubeadm.k8s.io/v1beta3 or v1beta4; `kubeadm config migrate` converts older files)" +
                             At(api));
    }
    if (kind == "InitConfiguration") {
      KH_RETURN_IF_ERROR(CheckStruct(doc, InitConfigurationSchema(), "InitConfiguration", version));
      parsed.init.emplace(Document{doc, version});
    } else if (kind == "ClusterConfiguration") {
      KH_RETURN_IF_ERROR(CheckStruct(doc, ClusterConfigurationSchema(), "ClusterConfiguration", version));
      parsed.cluster.emplace(Document{doc, version});
    } else if (kind == "JoinConfiguration") {
      KH_RETURN_IF_ERROR(CheckStruct(doc, JoinConfigurationSchema(), "JoinConfiguration", version));
      parsed.join.emplace(Document{doc, version});
    } else if (version == kV4 && (kind == "ResetConfiguration" || kind == "UpgradeConfiguration")) {
      continue;  // other kubeadm commands' settings (a mapping, checked above): nothing for the PKI
    } else {
      return InvalidArgument(name + ": unknown kind " + Quoted(kind) + " for " + api_version + At(kind_node));
    }
    if (parsed.init && parsed.join) {
      // kubeadm accepts the mix with a warning because each of its commands reads only its own
      // kind; kubehsm issues for either node from the same --config, so it cannot tell which is meant.
      return InvalidArgument(name + ": a file with both InitConfiguration and JoinConfiguration is refused: they "
                             "describe two different nodes (kubeadm init reads the first, kubeadm join the "
                             "second) and kubehsm would have to guess whose certificates to make; use one file "
                             "per node" + At(kind_node));
    }
  }
  if (parsed.join && !parsed.cluster && IsSet(Find(parsed.join->node, "controlPlane"))) {
    return InvalidArgument(
        "JoinConfiguration: a control-plane join file must also hold the cluster's ClusterConfiguration "
        "document (copy it from the first node's kubeadm config): the join document has no controlPlaneEndpoint, "
        "certSANs, networking or encryptionAlgorithm, and the certificates need them" +
        At(parsed.join->node));
  }
  return parsed;
}

Status ApplyInit(const YAML::Node& doc, ClusterConfig& config) {
  config.node_name = GetString(doc, {"nodeRegistration", "name"});
  config.advertise_address = GetString(doc, {"localAPIEndpoint", "advertiseAddress"});
  const YAML::Node port = FindPath(doc, {"localAPIEndpoint", "bindPort"});
  if (IsSet(port)) {
    const std::int64_t p = *ParseInt32(port);
    if (p < 0 || p > 65535) {
      return InvalidArgument("field \"InitConfiguration.localAPIEndpoint.bindPort\": " + std::to_string(p) +
                             " is not in 1..65535" + At(port));
    }
    if (p != 0) config.bind_port = static_cast<int>(p);  // 0 is Go's "unset": default 6443
  }
  return OkStatus();
}

// The node's own fields of a JoinConfiguration: nodeRegistration.name and, for a control-plane
// join, controlPlane.localAPIEndpoint, used exactly as InitConfiguration's are.
Status ApplyJoin(const YAML::Node& doc, ClusterConfig& config) {
  config.node_name = GetString(doc, {"nodeRegistration", "name"});
  if (!IsSet(Find(doc, "controlPlane"))) {
    config.node_role = NodeRole::kJoinWorker;
    return OkStatus();
  }
  config.node_role = NodeRole::kJoinControlPlane;
  config.advertise_address = GetString(doc, {"controlPlane", "localAPIEndpoint", "advertiseAddress"});
  const YAML::Node port = FindPath(doc, {"controlPlane", "localAPIEndpoint", "bindPort"});
  if (IsSet(port)) {
    const std::int64_t p = *ParseInt32(port);
    if (p < 0 || p > 65535) {
      return InvalidArgument("field \"JoinConfiguration.controlPlane.localAPIEndpoint.bindPort\": " + std::to_string(p) +
                             " is not in 1..65535" + At(port));
    }
    if (p != 0) config.bind_port = static_cast<int>(p);  // 0 is Go's "unset": default 6443
  }
  return OkStatus();
}

Status ApplyCluster(const YAML::Node& doc, ClusterConfig& config, std::optional<bool>& public_keys_ecdsa) {
  config.control_plane_endpoint = GetString(doc, {"controlPlaneEndpoint"});
  if (std::string v = GetString(doc, {"networking", "serviceSubnet"}); !v.empty()) config.service_subnet = v;
  if (std::string v = GetString(doc, {"networking", "dnsDomain"}); !v.empty()) config.dns_domain = v;
  if (std::string v = GetString(doc, {"clusterName"}); !v.empty()) config.cluster_name = v;
  if (std::string v = GetString(doc, {"certificatesDir"}); !v.empty()) config.cert_dir = v;
  config.apiserver_cert_sans = GetStringList(doc, {"apiServer", "certSANs"});
  config.etcd_server_cert_sans = GetStringList(doc, {"etcd", "local", "serverCertSANs"});
  config.etcd_peer_cert_sans = GetStringList(doc, {"etcd", "local", "peerCertSANs"});
  const YAML::Node local = FindPath(doc, {"etcd", "local"});
  const YAML::Node external = FindPath(doc, {"etcd", "external"});
  config.external_etcd = IsSet(external);
  if (IsSet(local) && IsSet(external)) {
    return InvalidArgument("field \"ClusterConfiguration.etcd\": local and external are mutually exclusive" + At(external));
  }

  const YAML::Node version = Find(doc, "kubernetesVersion");
  if (IsSet(version) && !version.Scalar().empty()) {
    Result<KubernetesVersion> v =
        ParseKubernetesVersion(version.Scalar(), "field \"ClusterConfiguration.kubernetesVersion\"");
    if (!v.ok()) return Status(v.status().code(), v.status().message() + At(version));
    config.kubernetes_version = *v;
  }

  const YAML::Node algo = Find(doc, "encryptionAlgorithm");
  if (IsSet(algo)) {
    const std::optional<KeyType> type = ParseEncryptionAlgorithm(algo.Scalar());
    if (!type) {
      return InvalidArgument("field \"ClusterConfiguration.encryptionAlgorithm\": unknown algorithm " +
                             Quoted(algo.Scalar()) + " (use RSA-2048, RSA-3072, RSA-4096, ECDSA-P256 or ECDSA-P384)" +
                             At(algo));
    }
    config.encryption_algorithm = *type;
  }
  KH_ASSIGN_OR_RETURN(auto cert_validity,
                      GetValidity(doc, "certificateValidityPeriod", "ClusterConfiguration.certificateValidityPeriod"));
  if (cert_validity) config.cert_validity = *cert_validity;
  KH_ASSIGN_OR_RETURN(auto ca_validity,
                      GetValidity(doc, "caCertificateValidityPeriod", "ClusterConfiguration.caCertificateValidityPeriod"));
  if (ca_validity) config.ca_validity = *ca_validity;

  const YAML::Node gate = FindPath(doc, {"featureGates", "PublicKeysECDSA"});
  if (IsSet(gate)) public_keys_ecdsa = ParseBool(gate);
  return OkStatus();
}

// Reads the whole of a small /proc file (st_size is 0 there, so no size-based read).
std::string ReadProcFile(const char* path) {
  std::ifstream in(path);
  if (!in) return {};
  std::ostringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  if (s.size() > yaml_internal::kMaxYamlBytes) s.resize(yaml_internal::kMaxYamlBytes);
  return s;
}

struct IfAddrsDeleter {
  void operator()(ifaddrs* p) const { freeifaddrs(p); }
};

bool IsUsableIpv4(const ifaddrs* ifa) {
  if (ifa->ifa_addr == nullptr || ifa->ifa_addr->sa_family != AF_INET) return false;
  if ((ifa->ifa_flags & IFF_UP) == 0 || (ifa->ifa_flags & IFF_LOOPBACK) != 0) return false;
  const auto* sin = reinterpret_cast<const sockaddr_in*>(ifa->ifa_addr);
  const std::uint32_t a = ntohl(sin->sin_addr.s_addr);
  if ((a >> 24) == 127 || (a >> 16) == 0xA9FE || a == 0) return false;  // loopback, link-local, unspecified
  return true;
}

std::string Ipv4Text(const ifaddrs* ifa) {
  const auto* sin = reinterpret_cast<const sockaddr_in*>(ifa->ifa_addr);
  std::array<char, INET_ADDRSTRLEN> buf{};
  if (inet_ntop(AF_INET, &sin->sin_addr, buf.data(), buf.size()) == nullptr) return {};
  return buf.data();
}

}  // namespace

// ------------------------------------------------------------------------------------------------

std::optional<std::int64_t> ParseGoDuration(std::string_view s) {
  // Go's time.ParseDuration: [-+]?([0-9]*(\.[0-9]*)?[a-z]+)+, or a bare "0".
  bool negative = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    negative = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s == "0") return 0;
  if (s.empty()) return std::nullopt;
  constexpr std::uint64_t kMax = std::uint64_t{1} << 63;  // |min int64|
  std::uint64_t total = 0;
  while (!s.empty()) {
    std::uint64_t whole = 0;
    bool any_digits = false;
    bool overflow = false;
    std::size_t i = 0;
    for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i) {
      any_digits = true;
      if (whole > (kMax - 9) / 10) overflow = true;
      else whole = whole * 10 + static_cast<std::uint64_t>(s[i] - '0');
    }
    if (overflow) return std::nullopt;
    std::uint64_t frac = 0;
    double scale = 1;
    if (i < s.size() && s[i] == '.') {
      ++i;
      for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i) {
        any_digits = true;
        if (frac <= (std::numeric_limits<std::uint64_t>::max() - 9) / 10 && scale < 1e18) {
          frac = frac * 10 + static_cast<std::uint64_t>(s[i] - '0');
          scale *= 10;
        }
      }
    }
    if (!any_digits) return std::nullopt;
    std::size_t u = i;
    while (u < s.size() && s[u] != '.' && !(s[u] >= '0' && s[u] <= '9')) ++u;
    const std::string_view unit = s.substr(i, u - i);
    std::uint64_t mult = 0;
    if (unit == "ns") mult = 1;
    else if (unit == "us" || unit == "\xC2\xB5s" || unit == "\xCE\xBCs") mult = 1000;
    else if (unit == "ms") mult = 1000000;
    else if (unit == "s") mult = 1000000000;
    else if (unit == "m") mult = 60ull * 1000000000;
    else if (unit == "h") mult = 3600ull * 1000000000;
    else return std::nullopt;
    if (whole > kMax / mult) return std::nullopt;
    std::uint64_t v = whole * mult;
    v += static_cast<std::uint64_t>(static_cast<double>(frac) * (static_cast<double>(mult) / scale));
    if (v > kMax || total > kMax - v) return std::nullopt;
    total += v;
    s.remove_prefix(u);
  }
  if (!negative && total > kMax - 1) return std::nullopt;
  return negative ? -static_cast<std::int64_t>(total - 1) - 1 : static_cast<std::int64_t>(total);
}

std::string DefaultRouteInterface(std::string_view text) {
  std::istringstream in{std::string(text)};
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string iface, dest, gateway, flags_hex, refcnt, use, metric, mask;
    if (!(fields >> iface >> dest >> gateway >> flags_hex >> refcnt >> use >> metric >> mask)) continue;
    unsigned long flags = 0;
    try {
      flags = std::stoul(flags_hex, nullptr, 16);
    } catch (const std::exception&) {
      continue;
    }
    if (dest == "00000000" && mask == "00000000" && (flags & 0x1) != 0) return iface;  // RTF_UP
  }
  return {};
}

Result<std::string> DetectNodeName() {
  std::array<char, 256> buf{};
  if (gethostname(buf.data(), buf.size() - 1) != 0) {
    return FailedPrecondition("cannot read the hostname: " + ErrnoText(errno));
  }
  std::string name(buf.data());
  while (!name.empty() && std::isspace(static_cast<unsigned char>(name.back()))) name.pop_back();
  std::size_t first = 0;
  while (first < name.size() && std::isspace(static_cast<unsigned char>(name[first]))) ++first;
  name.erase(0, first);
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
  if (name.empty()) {
    return FailedPrecondition("the hostname is empty; set InitConfiguration.nodeRegistration.name");
  }
  return name;
}

Result<std::string> DetectAdvertiseAddress() {
  const std::string route_iface = DefaultRouteInterface(ReadProcFile("/proc/net/route"));
  ifaddrs* raw = nullptr;
  if (getifaddrs(&raw) != 0) return FailedPrecondition("getifaddrs: " + ErrnoText(errno));
  const std::unique_ptr<ifaddrs, IfAddrsDeleter> list(raw);
  if (!route_iface.empty()) {
    for (const ifaddrs* ifa = list.get(); ifa != nullptr; ifa = ifa->ifa_next) {
      if (ifa->ifa_name != nullptr && route_iface == ifa->ifa_name && IsUsableIpv4(ifa)) return Ipv4Text(ifa);
    }
  }
  for (const ifaddrs* ifa = list.get(); ifa != nullptr; ifa = ifa->ifa_next) {
    if (IsUsableIpv4(ifa)) return Ipv4Text(ifa);
  }
  return FailedPrecondition(
      "cannot choose an advertise address: no up, non-loopback IPv4 address on this host; set "
      "InitConfiguration.localAPIEndpoint.advertiseAddress");
}

HostDefaults SystemHostDefaults() { return HostDefaults{DetectNodeName, DetectAdvertiseAddress}; }

Result<ClusterConfig> DefaultClusterConfig() { return ParseKubeadmConfig("", SystemHostDefaults()); }

Result<ClusterConfig> ParseKubeadmConfig(std::string_view yaml) { return ParseKubeadmConfig(yaml, SystemHostDefaults()); }

Result<ClusterConfig> ParseKubeadmConfig(std::string_view yaml, const HostDefaults& host) {
  return ParseKubeadmConfig(yaml, host, false);
}

Result<ClusterConfig> ParseKubeadmConfig(std::string_view yaml, const HostDefaults& host,
                                         bool allow_public_suffix_wildcards) {
  KH_ASSIGN_OR_RETURN(std::vector<YAML::Node> docs, yaml_internal::LoadYamlDocuments(yaml, "kubeadm config",
                                                                                     yaml_internal::DuplicateKeys::kCallerChecks));
  ClusterConfig config;
  config.allow_public_suffix_wildcards = allow_public_suffix_wildcards;
  std::optional<bool> public_keys_ecdsa;
  try {
    KH_ASSIGN_OR_RETURN(Parsed parsed, ClassifyDocuments(docs));
    if (parsed.init) KH_RETURN_IF_ERROR(ApplyInit(parsed.init->node, config));
    if (parsed.join) KH_RETURN_IF_ERROR(ApplyJoin(parsed.join->node, config));
    if (parsed.cluster) KH_RETURN_IF_ERROR(ApplyCluster(parsed.cluster->node, config, public_keys_ecdsa));
    if (config.node_role == NodeRole::kJoinControlPlane && config.control_plane_endpoint.empty()) {
      return InvalidArgument(
          "field \"ClusterConfiguration.controlPlaneEndpoint\": must be set for a control-plane join (kubeadm adds "
          "no control-plane node to a cluster without a stable controlPlaneEndpoint, and every apiserver "
          "certificate must carry it)" +
          At(parsed.cluster->node));
    }
  } catch (const std::exception& e) {
    // yaml-cpp throws on misuse (e.g. a conversion the schema check should have excluded).
    return InvalidArgument(std::string("kubeadm config: ") + e.what());
  }
  if (public_keys_ecdsa) config.encryption_algorithm = *public_keys_ecdsa ? KeyType::kEcP256 : KeyType::kRsa2048;

  if (config.node_name.empty()) {
    if (!host.node_name) return FailedPrecondition("no node name given and no way to detect one");
    KH_ASSIGN_OR_RETURN(config.node_name, host.node_name());
    config.node_name_from_host = true;
  }
  bool v4 = false;
  const bool unspecified = config.advertise_address == "0.0.0.0" || config.advertise_address == "::";
  // A worker runs no API server: it has no advertise address to default.
  const bool needs_address = config.node_role != NodeRole::kJoinWorker;
  if (needs_address && (config.advertise_address.empty() || (unspecified && ParseIp(config.advertise_address, &v4)))) {
    if (!host.advertise_address) return FailedPrecondition("no advertise address given and no way to detect one");
    KH_ASSIGN_OR_RETURN(config.advertise_address, host.advertise_address());
    config.advertise_address_from_host = true;
  }
  KH_RETURN_IF_ERROR(ValidateClusterConfig(config));
  return config;
}

Result<ClusterConfig> LoadKubeadmConfig(const std::filesystem::path& file) { return LoadKubeadmConfig(file, false); }

Result<ClusterConfig> LoadKubeadmConfig(const std::filesystem::path& file, bool allow_public_suffix_wildcards) {
  auto text = ReadFileBounded(file, yaml_internal::kMaxYamlBytes);
  if (!text.ok()) return text.status().WithContext(file.string());
  auto config = ParseKubeadmConfig(*text, SystemHostDefaults(), allow_public_suffix_wildcards);
  if (!config.ok()) return config.status().WithContext(file.string());
  return config;
}

Status RequireControlPlaneNode(const ClusterConfig& config) {
  if (config.node_role != NodeRole::kJoinWorker) return OkStatus();
  return InvalidArgument("the kubeadm config's JoinConfiguration has no controlPlane section: it describes a worker "
                         "node, which gets no control-plane certificates (add controlPlane.localAPIEndpoint for "
                         "'kubeadm join --control-plane')");
}

Status ValidateClusterConfig(const ClusterConfig& c) {
  const bool join = c.node_role != NodeRole::kInit;
  const std::string node_doc = join ? "JoinConfiguration" : "InitConfiguration";
  const std::string endpoint = join ? "JoinConfiguration.controlPlane.localAPIEndpoint" : "InitConfiguration.localAPIEndpoint";
  if (!IsDns1123Subdomain(c.node_name)) {
    return InvalidArgument("field \"" + node_doc + ".nodeRegistration.name\": " + Quoted(c.node_name) +
                           " is not a lower-case DNS-1123 subdomain");
  }
  if (!IsIp(c.advertise_address) && !(c.node_role == NodeRole::kJoinWorker && c.advertise_address.empty())) {
    return InvalidArgument("field \"" + endpoint + ".advertiseAddress\": " + Quoted(c.advertise_address) +
                           " is not an IP address");
  }
  if (c.bind_port < 1 || c.bind_port > 65535) {
    return InvalidArgument("field \"" + endpoint + ".bindPort\": " + std::to_string(c.bind_port) +
                           " is not in 1..65535");
  }
  if (!c.control_plane_endpoint.empty()) {
    KH_RETURN_IF_ERROR(CheckHostPort(c.control_plane_endpoint, "ClusterConfiguration.controlPlaneEndpoint"));
  }
  KH_RETURN_IF_ERROR(CheckServiceSubnet(c.service_subnet, "ClusterConfiguration.networking.serviceSubnet"));
  if (!IsDns1123Subdomain(c.dns_domain)) {
    return InvalidArgument("field \"ClusterConfiguration.networking.dnsDomain\": " + Quoted(c.dns_domain) +
                           " is not a DNS-1123 subdomain");
  }
  if (c.cluster_name.empty()) return InvalidArgument("field \"ClusterConfiguration.clusterName\": must not be empty");
  KH_RETURN_IF_ERROR(
      CheckSans(c.apiserver_cert_sans, "ClusterConfiguration.apiServer.certSANs", c.allow_public_suffix_wildcards));
  KH_RETURN_IF_ERROR(CheckSans(c.etcd_server_cert_sans, "ClusterConfiguration.etcd.local.serverCertSANs",
                               c.allow_public_suffix_wildcards));
  KH_RETURN_IF_ERROR(CheckSans(c.etcd_peer_cert_sans, "ClusterConfiguration.etcd.local.peerCertSANs",
                               c.allow_public_suffix_wildcards));
  if (c.cert_validity.count() <= 0) {
    return InvalidArgument("field \"ClusterConfiguration.certificateValidityPeriod\": must be positive");
  }
  if (c.ca_validity.count() <= 0) {
    return InvalidArgument("field \"ClusterConfiguration.caCertificateValidityPeriod\": must be positive");
  }
  if (c.encryption_algorithm == KeyType::kEcP521) {
    return InvalidArgument("field \"ClusterConfiguration.encryptionAlgorithm\": ECDSA-P521 is not a kubeadm algorithm");
  }
  if (c.kubernetes_version < kOldestKubernetesVersion || c.kubernetes_version > kNewestKubernetesVersion) {
    return InvalidArgument("field \"ClusterConfiguration.kubernetesVersion\": Kubernetes " +
                           VersionName(c.kubernetes_version) +
                           " is not supported (supported: " + SupportedVersionRange() + ")");
  }
  if (Status s = CheckEncryptionAlgorithm(c.encryption_algorithm, c.kubernetes_version); !s.ok()) {
    return s.WithContext("field \"ClusterConfiguration.encryptionAlgorithm\"");
  }
  if (c.cert_dir.empty() || c.cert_dir.front() != '/') {
    return InvalidArgument("field \"ClusterConfiguration.certificatesDir\": " + Quoted(c.cert_dir) +
                           " is not an absolute path");
  }
  return OkStatus();
}

}  // namespace kubehsm::signer::pki
