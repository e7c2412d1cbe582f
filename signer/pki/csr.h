// Signing PKCS#10 certificate requests (RFC 2986) under a profile: kubeadm's leaf and kubeconfig
// profiles (spec kubeadm-pki.md §1, §4), the kubelet client and serving profiles (the signers
// kube-controller-manager does not run in external-CA mode, §6), and custom profiles from a
// signing-policy file.
//
// What a certificate says is decided here, never by the request alone: the subject (CN and O) and
// SANs are copied from the request only after the profile allowed every one of them; key usage
// (digitalSignature + keyEncipherment), basic constraints (CA:FALSE), extended key usages and
// validity always come from the profile. Every other requested extension is ignored, except that
// a request is refused outright for a bad self-signature, a requested CA:TRUE, a duplicate
// extension, an unknown critical extension, SAN types other than DNS/IP, subject attributes other
// than CN/O, or a weak or unsupported key.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <openssl/x509.h>

#include "common/ssl_ptr.h"
#include "common/status.h"
#include "signer/key_store.h"
#include "signer/pki/certificate.h"
#include "signer/pki/cluster_config.h"
#include "signer/pki/issuance.h"
#include "signer/pki/profiles.h"

namespace re2 {
class RE2;
}

namespace kubehsm::signer::pki {

// Largest CSR file kubehsm reads.
inline constexpr std::size_t kMaxCsrBytes = 64 * 1024;

// A PKCS#10 request as kubehsm reads it. `problems` lists every structural reason to refuse it
// (bad signature, CA:TRUE, duplicate or unknown critical extensions, unsupported SAN types or
// subject attributes); profile checks come on top (CheckCsr).
struct ParsedCsr {
  X509ReqPtr req;
  EvpPkeyPtr public_key;  // the requested subject public key (software, default context)
  std::string common_name;
  std::vector<std::string> organizations;
  SanSet sans;           // requested DNS names and IPs, in request order (not normalised)
  std::string key_name;  // "RSA-2048", "ECDSA-P256", "ED25519", ... for messages
  std::vector<std::string> problems;
};

// Parses a PEM `CERTIFICATE REQUEST` (exactly one block). Fails (kInvalidArgument) only when it
// cannot be read at all; every other reason to refuse it lands in `problems`.
Result<ParsedCsr> ParseCsrPem(std::string_view pem);

// Which keys a profile accepts.
struct KeyPolicy {
  int min_rsa_bits = 2048;  // 0: RSA not allowed
  int max_rsa_bits = 8192;
  std::vector<std::string> ec_curves = {"P-256", "P-384"};  // NIST names; empty: ECDSA not allowed
};

// The problem with `key` under `policy` ("weak key: RSA-1024 is below the minimum of 2048 bits",
// "unsupported key: ...") or nullopt when it is acceptable. Only RSA and ECDSA keys are ever
// accepted (kubeadm reads no other type).
std::optional<std::string> CheckKey(const EVP_PKEY* key, const KeyPolicy& policy);

// "RSA-2048", "ECDSA-P256", "ECDSA-secp256k1", "ED25519", ...
std::string DescribeKey(const EVP_PKEY* key);

enum class SigningProfileKind { kKubeadmLeaf, kKubeconfig, kKubeletClient, kKubeletServing, kCustom };

// A pattern and the text it was compiled from (for messages).
struct NamePattern {
  std::string source;
  // RE2 syntax, matched against the whole value in linear time; shared because a compiled RE2 is
  // immutable and not copyable (profiles are copied).
  std::shared_ptr<const re2::RE2> regex;
};

// An IP range (CIDR) that IP SANs of a custom profile may fall into.
struct IpRange {
  std::string source;   // "10.0.0.0/8", "2001:db8::/32", "192.0.2.7" (= /32)
  std::string network;  // 4 or 16 bytes
  int prefix = 0;
};

// A profile a CSR is signed under.
struct SigningProfile {
  std::string name;
  SigningProfileKind kind = SigningProfileKind::kCustom;
  CaId ca = CaId::kCa;
  std::vector<ExtKeyUsage> ext_key_usages;
  // Longest validity a certificate of this profile may get; 0 = the cluster's
  // certificateValidityPeriod (kubeadm and kubelet profiles).
  std::chrono::seconds max_validity{0};
  KeyPolicy keys;
  const LeafProfile* leaf = nullptr;              // kKubeadmLeaf
  const KubeconfigProfile* kubeconfig = nullptr;  // kKubeconfig
  // kCustom: CN must match `common_name`; each O one of `organizations` (none given: no O
  // allowed); each DNS SAN one of `dns_names`; each IP SAN inside one of `ip_ranges`.
  std::optional<NamePattern> common_name;
  std::vector<NamePattern> organizations;
  std::vector<NamePattern> dns_names;
  std::vector<IpRange> ip_ranges;
};

// Which nodes may get a kubelet-serving certificate, and under which domains (the `kubeletServing`
// section of a signing policy). The node name comes from the requester's own CN, so without an
// allow-list nothing is accepted (see CheckCsr).
struct KubeletServingPolicy {
  std::vector<std::string> nodes;          // exact node names
  std::vector<NamePattern> node_patterns;  // RE2, whole node name
  std::vector<std::string> domains;        // a DNS SAN may be <node>.<domain> for one of these
};

// A custom signing policy: profiles by name and the kubelet-serving allow-list, from a YAML file
// (schema in README.md, "The air-gapped CSR workflow").
struct SigningPolicy {
  std::vector<SigningProfile> profiles;
  KubeletServingPolicy kubelet_serving;
};

// Parses a signing policy (`profiles` and/or `kubeletServing`). kInvalidArgument naming the field
// ("profiles[2].sans.dns[0]: invalid regular expression ...") for unknown fields, missing required
// fields, patterns RE2 cannot compile (back-references, look-around, repetitions over 1000) or
// over 512 characters, bad CIDRs/durations/EKUs/key settings, duplicate profile names, a name of a
// built-in profile, or kubeletServing nodes/domains that are not DNS names or are service/IP-like.
Result<SigningPolicy> ParseSigningPolicy(std::string_view yaml);
Result<SigningPolicy> LoadSigningPolicy(const std::filesystem::path& file);

// The names of the built-in profiles: every kubeadm leaf (internal name, e.g. "etcd-server"),
// every kubeconfig ("admin.conf", ...), "kubelet-client", "kubelet-serving".
std::vector<std::string> BuiltinSigningProfileNames();

// Looks `name` up among the built-ins (leaf file bases like "etcd/server" work too) and then in
// `policy` (may be null). kNotFound "unknown profile 'x' (known: ...)".
Result<SigningProfile> FindSigningProfile(std::string_view name, const SigningPolicy* policy);

// What a profile check needs beyond the request.
struct CsrCheckContext {
  // The cluster configuration; kubeadm profiles whose names depend on the node (apiserver, etcd
  // server/peer, kubelet.conf) need it, the others use only its certificateValidityPeriod.
  const ClusterConfig* config = nullptr;
  // IP addresses a kubelet-serving certificate may name (the node's addresses).
  std::vector<std::string> node_ips;
  // kubelet-serving: the nodes the operator allows (--policy's kubeletServing; may be null). The
  // config's node name (`config`) is allowed too. With neither, kubelet-serving is refused.
  const KubeletServingPolicy* kubelet_serving = nullptr;
  // Requested validity; nullopt = the profile's maximum.
  std::optional<std::chrono::seconds> validity;
  // Without `config`: the Kubernetes version whose kubeadm profiles apply (--kubernetes-version);
  // nullopt = the newest supported. Ignored when `config` is set (its kubernetesVersion applies).
  std::optional<KubernetesVersion> version;
};

// The validity a certificate under `profile` gets (requested or maximum).
std::chrono::seconds EffectiveValidity(const SigningProfile& profile, const CsrCheckContext& ctx);

// Every reason to refuse `csr` under `profile` (its structural problems first), each a complete
// sentence naming the offending value. Empty: the request may be signed. Lengths are checked
// before any pattern runs (CN and O at most 64 characters, RFC 5280 upper bounds).
// kubelet-serving accepts a node only when it is allowed (ctx.kubelet_serving's nodes or
// patterns, or ctx.config's node name), never a Kubernetes service name ("kubernetes",
// "kubernetes.*", any name with an "svc" label), "localhost" or an IP-like name (all-digit last
// label); DNS SANs only the node name itself or <node>.<domain> for the allowed domains.
std::vector<std::string> CheckCsr(const ParsedCsr& csr, const SigningProfile& profile, const CsrCheckContext& ctx);

// What the certificate for an accepted `csr` says: the request's CN and O, its SANs normalised
// like kubeadm's (DNS sorted and de-duplicated, IPs de-duplicated), the profile's EKUs.
CertSpec SpecForCsr(const ParsedCsr& csr, const SigningProfile& profile);

// A CA certificate from a directory and its key from the store, checked to pair up.
struct CsrSigningCa {
  X509Ptr cert;
  SigningKey key;
};

// Loads `<ca_dir>/<ca file base>.crt` and the CA's key from `store`. kFailedPrecondition when the
// certificate is missing or does not match the key; the store's error when the key is absent.
Result<CsrSigningCa> LoadSigningCa(KeyStore& store, const std::filesystem::path& ca_dir, CaId ca);

// Signs an accepted `csr` under `profile` with `ca`, records it (`record`, as `operation`) and
// returns it. Validity: NotBefore = now - 5 min (kubeconfig profiles: the CA's NotBefore, as
// kubeadm does), NotAfter = now + EffectiveValidity. Refuses (kPermissionDenied, listing every
// problem) when CheckCsr finds any; nothing is signed then.
Result<X509Ptr> SignCsr(const CsrSigningCa& ca, const ParsedCsr& csr, const SigningProfile& profile,
                        const CsrCheckContext& ctx, Clock::time_point now, const RecordFn& record,
                        std::string_view operation);

// Joins problems as "a; b; c".
std::string JoinProblems(const std::vector<std::string>& problems);

}  // namespace kubehsm::signer::pki
