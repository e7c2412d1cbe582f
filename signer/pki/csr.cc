#include "signer/pki/csr.h"

#include <openssl/ec.h>
#include <openssl/objects.h>
#include <openssl/pem.h>

#include <re2/re2.h>

#include <algorithm>
#include <memory>
#include <set>
#include <utility>

#include "common/file_util.h"
#include "common/openssl_error.h"
#include "signer/pki/pki_files.h"
#include "signer/pki/yaml_util.h"
#include "signer/public_key_check.h"

namespace kubehsm::signer::pki {
namespace {

using enum ExtKeyUsage;

constexpr std::string_view kNodePrefix = "system:node:";
constexpr std::string_view kNodesGroup = "system:nodes";
// RFC 5280 upper bounds: ub-common-name and ub-organization-name are 64.
constexpr std::size_t kMaxNameLength = 64;

std::string Utf8(const ASN1_STRING* s) {
  unsigned char* out = nullptr;
  const int len = ASN1_STRING_to_UTF8(&out, s);
  if (len < 0) {
    DrainOpenSslErrors();
    return std::string();
  }
  std::string value(reinterpret_cast<char*>(out), static_cast<std::size_t>(len));
  OPENSSL_free(out);
  return value;
}

std::string ObjectText(const ASN1_OBJECT* obj) {
  char buf[128] = {};
  OBJ_obj2txt(buf, sizeof(buf), obj, 0);
  return buf;
}

// Extensions kubehsm understands in a request (their values are either used after checks or
// ignored in favour of the profile).
bool KnownExtension(int nid) {
  return nid == NID_subject_alt_name || nid == NID_key_usage || nid == NID_ext_key_usage ||
         nid == NID_basic_constraints || nid == NID_subject_key_identifier;
}

// RFC 5280 §4.2.1.6 GeneralName, by type: only DNS names (IA5String) and IP addresses (4 or 16
// octets) are read as values; every other type is named and refused without touching its value,
// whose C type differs per choice (OTHERNAME, X509_NAME, EDIPARTYNAME, ASN1_OBJECT, ...).
void ReadGeneralName(const GENERAL_NAME* gn, ParsedCsr& csr) {
  auto octets = [](const ASN1_STRING* v) {
    return v == nullptr ? std::string()
                        : std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(v)),
                                      static_cast<std::size_t>(ASN1_STRING_length(v)));
  };
  auto refuse = [&](const char* type) {
    csr.problems.push_back(std::string("disallowed SAN: ") + type + " names are not supported (only DNS and IP)");
  };
  switch (gn->type) {
    case GEN_DNS:
      csr.sans.dns.push_back(octets(gn->d.dNSName));
      return;
    case GEN_IPADD: {
      const std::string bytes = octets(gn->d.iPAddress);
      if (bytes.size() == 4 || bytes.size() == 16) {
        csr.sans.ips.push_back(FormatIp(bytes));
      } else {
        csr.problems.push_back("malformed SAN: an IP address of " + std::to_string(bytes.size()) +
                               " bytes (4 or 16 expected)");
      }
      return;
    }
    case GEN_OTHERNAME:
      return refuse("otherName");
    case GEN_EMAIL:
      return refuse("email (rfc822Name)");
    case GEN_X400:
      return refuse("x400Address");
    case GEN_DIRNAME:
      return refuse("directoryName");
    case GEN_EDIPARTY:
      return refuse("ediPartyName");
    case GEN_URI:
      return refuse("URI");
    case GEN_RID:
      return refuse("registeredID");
    default:
      return refuse("unknown GeneralName type");
  }
}

void ReadExtensions(X509_REQ* req, ParsedCsr& csr) {
  const int ext_attrs = [&] {
    int n = 0;
    for (int nid : {NID_ext_req, NID_ms_ext_req}) {
      for (int i = -1; (i = X509_REQ_get_attr_by_NID(req, nid, i)) >= 0;) ++n;
    }
    return n;
  }();
  if (ext_attrs == 0) return;
  if (ext_attrs > 1) {
    csr.problems.push_back("duplicate extensions: the request has " + std::to_string(ext_attrs) +
                           " extensionRequest attributes");
    return;
  }
  X509ExtensionStackPtr exts(X509_REQ_get_extensions(req));
  if (!exts) {
    DrainOpenSslErrors();
    csr.problems.push_back("malformed extensionRequest attribute");
    return;
  }
  std::set<std::string> seen;
  for (int i = 0; i < sk_X509_EXTENSION_num(exts.get()); ++i) {
    X509_EXTENSION* ext = sk_X509_EXTENSION_value(exts.get(), i);
    const ASN1_OBJECT* obj = X509_EXTENSION_get_object(ext);
    const int nid = OBJ_obj2nid(obj);
    const std::string name = nid != NID_undef ? OBJ_nid2ln(nid) : ObjectText(obj);
    if (!seen.insert(ObjectText(obj)).second) {
      csr.problems.push_back("duplicate extensions: " + name + " is requested more than once");
      continue;
    }
    if (!KnownExtension(nid)) {
      if (X509_EXTENSION_get_critical(ext) == 1) {
        csr.problems.push_back("unknown critical extension " + name +
                               (nid != NID_undef ? " (" + ObjectText(obj) + ")" : std::string()) + " in the request");
      }
      continue;
    }
    if (nid == NID_basic_constraints) {
      BasicConstraintsPtr bc(static_cast<BASIC_CONSTRAINTS*>(X509V3_EXT_d2i(ext)));
      if (!bc) {
        DrainOpenSslErrors();
        csr.problems.push_back("malformed basicConstraints extension in the request");
      } else if (bc->ca != 0) {
        csr.problems.push_back(
            "the request asks for CA:TRUE (basicConstraints); kubehsm never issues a CA "
            "certificate from a CSR");
      }
    } else if (nid == NID_subject_alt_name) {
      GeneralNamesPtr names(static_cast<GENERAL_NAMES*>(X509V3_EXT_d2i(ext)));
      if (!names) {
        DrainOpenSslErrors();
        csr.problems.push_back("malformed subjectAltName extension in the request");
        continue;
      }
      for (int k = 0; k < sk_GENERAL_NAME_num(names.get()); ++k) {
        ReadGeneralName(sk_GENERAL_NAME_value(names.get(), k), csr);
      }
    }
    // keyUsage, extKeyUsage, subjectKeyIdentifier: ignored, the profile decides.
  }
}

void ReadSubject(X509_REQ* req, ParsedCsr& csr) {
  const X509_NAME* subject = X509_REQ_get_subject_name(req);
  int cns = 0;
  for (int i = 0; i < X509_NAME_entry_count(subject); ++i) {
    const X509_NAME_ENTRY* e = X509_NAME_get_entry(subject, i);
    const int nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(e));
    const std::string value = Utf8(X509_NAME_ENTRY_get_data(e));
    if (nid == NID_commonName) {
      ++cns;
      csr.common_name = value;
    } else if (nid == NID_organizationName) {
      csr.organizations.push_back(value);
    } else {
      const char* sn = nid != NID_undef ? OBJ_nid2sn(nid) : nullptr;
      csr.problems.push_back("disallowed subject attribute " +
                             (sn != nullptr ? std::string(sn) : ObjectText(X509_NAME_ENTRY_get_object(e))) +
                             " (only CN and O)");
    }
  }
  if (cns > 1) csr.problems.push_back("disallowed subject: more than one CN");
}

std::string FormatDuration(std::chrono::seconds d) {
  const auto s = d.count();
  if (s % 3600 == 0) return std::to_string(s / 3600) + "h";
  if (s % 60 == 0) return std::to_string(s / 60) + "m";
  return std::to_string(s) + "s";
}

std::string Join(const std::vector<std::string>& v, std::string_view sep) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : std::string(sep)) + s;
  return out;
}

bool Contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

// Whole-value match. RE2 runs in time linear in the value; callers still check lengths first.
bool FullMatch(const NamePattern& p, const std::string& value) {
  return p.regex != nullptr && RE2::FullMatch(value, *p.regex);
}

bool InRange(const IpRange& range, const std::string& ip_text) {
  const std::string ip = ParseIp(ip_text);
  if (ip.size() != range.network.size()) return false;
  int bits = range.prefix;
  for (std::size_t i = 0; i < ip.size() && bits > 0; ++i, bits -= 8) {
    const unsigned mask = bits >= 8 ? 0xFFu : (0xFFu << (8 - bits)) & 0xFFu;
    if ((static_cast<unsigned char>(ip[i]) & mask) != (static_cast<unsigned char>(range.network[i]) & mask)) {
      return false;
    }
  }
  return true;
}

// 'value' for messages; overlong values (hostile input) are cut so the error stays one short line.
std::string Quote(const std::string& s) {
  constexpr std::size_t kMaxShown = 80;
  if (s.size() <= kMaxShown) return "'" + s + "'";
  return "'" + s.substr(0, kMaxShown) + "...' (" + std::to_string(s.size()) + " characters)";
}

// Subject and SAN checks against an exact expected spec (kubeadm profiles): CN and the O set
// equal; every requested SAN among the allowed ones.
void CheckExact(const ParsedCsr& csr, const CertSpec& want, const std::string& profile,
                std::vector<std::string>& problems) {
  if (csr.common_name != want.common_name) {
    problems.push_back("disallowed CN " + Quote(csr.common_name) + ": profile '" + profile + "' requires " +
                       Quote(want.common_name));
  }
  auto have_o = csr.organizations;
  auto want_o = want.organizations;
  std::sort(have_o.begin(), have_o.end());
  std::sort(want_o.begin(), want_o.end());
  if (have_o != want_o) {
    problems.push_back("disallowed O [" + Join(csr.organizations, ", ") + "]: profile '" + profile + "' requires [" +
                       Join(want.organizations, ", ") + "]");
  }
  for (const auto& d : csr.sans.dns) {
    if (!Contains(want.sans.dns, d)) {
      problems.push_back("disallowed SAN DNS:" + d + ": not among the names the cluster config gives '" + profile +
                         "'");
    }
  }
  for (const auto& ip : csr.sans.ips) {
    if (!Contains(want.sans.ips, ip)) {
      problems.push_back("disallowed SAN IP:" + ip + ": not among the addresses the cluster config gives '" + profile +
                         "'");
    }
  }
}

// The node name of a kubelet subject, checked; empty when the subject is not a node's.
std::string CheckNodeSubject(const ParsedCsr& csr, const std::string& profile, std::vector<std::string>& problems) {
  std::string node;
  if (!csr.common_name.starts_with(kNodePrefix) || !IsDnsSubdomain(node = csr.common_name.substr(kNodePrefix.size())) ||
      node.starts_with("*.")) {
    problems.push_back("disallowed CN " + Quote(csr.common_name) + ": profile '" + profile +
                       "' requires 'system:node:<node name>'");
    node.clear();
  }
  if (csr.organizations != std::vector<std::string>{std::string(kNodesGroup)}) {
    problems.push_back("disallowed O [" + Join(csr.organizations, ", ") + "]: profile '" + profile +
                       "' requires [system:nodes]");
  }
  return node;
}

// A name a kubelet must never get a serving certificate for, or nullopt: Kubernetes' own service
// names (the API server's in-cluster names and any <svc>.<ns>.svc[.<domain>]), localhost, and
// names a TLS client may treat as an IP address (the last label all digits, e.g. "10" or
// "10.0.0.1").
std::optional<std::string> ForbiddenKubeletName(const std::string& name) {
  std::vector<std::string_view> labels;
  for (std::size_t start = 0;;) {
    const std::size_t dot = name.find('.', start);
    labels.push_back(std::string_view(name).substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  const std::string_view last = labels.back();
  if (!last.empty() && std::all_of(last.begin(), last.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return "an IP-like name (its last label is all digits)";
  }
  if (labels.front() == "kubernetes" || std::find(labels.begin(), labels.end(), "svc") != labels.end()) {
    return "a Kubernetes service name";
  }
  if (labels.back() == "localhost") return "a localhost name";
  return std::nullopt;
}

// Is `node` allowed a kubelet-serving certificate by the operator?
bool KubeletNodeAllowed(const std::string& node, const CsrCheckContext& ctx) {
  if (ctx.config != nullptr && ctx.config->node_name == node) return true;
  if (ctx.kubelet_serving == nullptr) return false;
  const auto& k = *ctx.kubelet_serving;
  return std::find(k.nodes.begin(), k.nodes.end(), node) != k.nodes.end() ||
         std::any_of(k.node_patterns.begin(), k.node_patterns.end(),
                     [&](const NamePattern& p) { return FullMatch(p, node); });
}

void CheckKubeletServing(const ParsedCsr& csr, const std::string& profile, const CsrCheckContext& ctx,
                         std::vector<std::string>& problems) {
  const std::string node = CheckNodeSubject(csr, profile, problems);
  if (csr.sans.dns.empty() && csr.sans.ips.empty()) {
    problems.push_back("profile '" + profile + "' needs at least one DNS or IP SAN");
  }
  const KubeletServingPolicy none;
  const KubeletServingPolicy& allowed = ctx.kubelet_serving != nullptr ? *ctx.kubelet_serving : none;
  if (!node.empty()) {
    if (auto why = ForbiddenKubeletName(node)) {
      problems.push_back("disallowed node name " + Quote(node) + " for profile '" + profile + "': " + *why);
    } else if (ctx.config == nullptr && allowed.nodes.empty() && allowed.node_patterns.empty()) {
      problems.push_back("profile '" + profile +
                         "' needs the allowed nodes: add a kubeletServing section (nodes, nodePatterns, domains) "
                         "to --policy, or give the node's kubeadm config with --config");
    } else if (!KubeletNodeAllowed(node, ctx)) {
      problems.push_back("disallowed node " + Quote(node) + ": profile '" + profile +
                         "' allows only the nodes of --policy's kubeletServing" +
                         (ctx.config != nullptr ? " and --config's node '" + ctx.config->node_name + "'" : ""));
    }
  }
  for (const auto& d : csr.sans.dns) {
    const bool own = !node.empty() && IsDnsSubdomain(d) && !d.starts_with("*.") &&
                     (d == node || std::any_of(allowed.domains.begin(), allowed.domains.end(),
                                               [&](const std::string& domain) { return d == node + "." + domain; }));
    std::optional<std::string> why = own ? ForbiddenKubeletName(d) : std::nullopt;
    if (!own) {
      problems.push_back("disallowed SAN DNS:" + d + ": profile '" + profile + "' allows only the node's own name" +
                         (node.empty() ? "" : " (" + node + ")") +
                         (allowed.domains.empty()
                              ? std::string(" (no kubeletServing.domains in --policy)")
                              : " or <node>.<domain> for kubeletServing.domains " + Join(allowed.domains, ", ")));
    } else if (why) {
      problems.push_back("disallowed SAN DNS:" + d + ": " + *why);
    }
  }
  for (const auto& ip : csr.sans.ips) {
    if (!Contains(ctx.node_ips, ip)) {
      problems.push_back("disallowed SAN IP:" + ip + ": not one of the node's addresses (--node-ip" +
                         (ctx.node_ips.empty() ? " not given" : ": " + Join(ctx.node_ips, ", ")) + ")");
    }
  }
}

// Patterns are RE2 (linear time in the input, bounded memory, no back-references). Longer
// patterns than this are refused as a matter of hygiene: a name policy needs far less.
constexpr std::size_t kMaxPatternLength = 512;

Result<NamePattern> CompilePattern(const std::string& text, const std::string& where) {
  if (text.size() > kMaxPatternLength) {
    return InvalidArgument(where + ": regular expression longer than " + std::to_string(kMaxPatternLength) +
                           " characters");
  }
  RE2::Options options;
  options.set_log_errors(false);
  options.set_max_mem(8 << 20);
  auto re = std::make_shared<const RE2>(text, options);
  if (!re->ok()) {
    return InvalidArgument(where + ": invalid regular expression " + Quote(text) + ": " + re->error() +
                           " (RE2 syntax: no back-references or look-around)");
  }
  return NamePattern{text, std::move(re)};
}

Result<std::vector<NamePattern>> ParsePatterns(const YAML::Node& node, const std::string& path) {
  std::vector<NamePattern> out;
  if (!node) return out;
  if (!node.IsSequence()) return InvalidArgument(path + ": must be a list of regular expressions");
  for (std::size_t i = 0; i < node.size(); ++i) {
    const std::string where = path + "[" + std::to_string(i) + "]";
    if (!node[i].IsScalar()) return InvalidArgument(where + ": must be a string");
    KH_ASSIGN_OR_RETURN(NamePattern p, CompilePattern(node[i].Scalar(), where));
    out.push_back(std::move(p));
  }
  return out;
}

Result<IpRange> ParseRange(const std::string& text, const std::string& where) {
  const auto slash = text.find('/');
  IpRange r;
  r.source = text;
  r.network = ParseIp(text.substr(0, slash));
  if (r.network.empty()) return InvalidArgument(where + ": " + Quote(text) + " is not an IP address or CIDR");
  const int max = static_cast<int>(r.network.size() * 8);
  r.prefix = max;
  if (slash != std::string::npos) {
    const std::string p = text.substr(slash + 1);
    if (p.empty() || p.size() > 3 || !std::all_of(p.begin(), p.end(), ::isdigit) || std::stoi(p) > max) {
      return InvalidArgument(where + ": " + Quote(text) + " has an invalid prefix length");
    }
    r.prefix = std::stoi(p);
  }
  return r;
}

Status CheckKeys(const YAML::Node& node, const std::set<std::string>& allowed, const std::string& path) {
  if (!node.IsMap()) return InvalidArgument(path + ": must be a mapping");
  for (const auto& kv : node) {
    const std::string key = kv.first.Scalar();
    if (!allowed.contains(key)) return InvalidArgument(path + "." + key + ": unknown field");
  }
  return OkStatus();
}

Result<SigningProfile> ParseProfile(const YAML::Node& n, const std::string& path) {
  KH_RETURN_IF_ERROR(CheckKeys(n, {"name", "ca", "subject", "sans", "extKeyUsages", "maxValidity", "keys"}, path));
  SigningProfile p;
  p.kind = SigningProfileKind::kCustom;
  if (!n["name"] || !n["name"].IsScalar() || n["name"].Scalar().empty()) {
    return InvalidArgument(path + ".name: required");
  }
  p.name = n["name"].Scalar();
  const std::string where = path + " (" + p.name + ")";
  if (!n["ca"] || !n["ca"].IsScalar()) return InvalidArgument(where + ".ca: required (ca, etcd-ca, front-proxy-ca)");
  const auto cas = CaProfiles();
  auto ca = std::find_if(cas.begin(), cas.end(), [&](const CaProfile& c) { return c.name == n["ca"].Scalar(); });
  if (ca == cas.end()) {
    return InvalidArgument(where + ".ca: " + Quote(n["ca"].Scalar()) + " is not one of ca, etcd-ca, front-proxy-ca");
  }
  p.ca = ca->id;
  const YAML::Node subject = n["subject"];
  if (!subject) return InvalidArgument(where + ".subject: required");
  KH_RETURN_IF_ERROR(CheckKeys(subject, {"commonName", "organizations"}, where + ".subject"));
  if (!subject["commonName"] || !subject["commonName"].IsScalar()) {
    return InvalidArgument(where + ".subject.commonName: required (a regular expression)");
  }
  YAML::Node cn_list(YAML::NodeType::Sequence);
  cn_list.push_back(subject["commonName"]);
  KH_ASSIGN_OR_RETURN(auto cn, ParsePatterns(cn_list, where + ".subject.commonName"));
  p.common_name = cn.front();
  KH_ASSIGN_OR_RETURN(p.organizations, ParsePatterns(subject["organizations"], where + ".subject.organizations"));
  if (const YAML::Node sans = n["sans"]) {
    KH_RETURN_IF_ERROR(CheckKeys(sans, {"dns", "ip"}, where + ".sans"));
    KH_ASSIGN_OR_RETURN(p.dns_names, ParsePatterns(sans["dns"], where + ".sans.dns"));
    if (const YAML::Node ips = sans["ip"]) {
      if (!ips.IsSequence()) return InvalidArgument(where + ".sans.ip: must be a list of CIDRs");
      for (std::size_t i = 0; i < ips.size(); ++i) {
        const std::string w = where + ".sans.ip[" + std::to_string(i) + "]";
        if (!ips[i].IsScalar()) return InvalidArgument(w + ": must be a string");
        KH_ASSIGN_OR_RETURN(IpRange r, ParseRange(ips[i].Scalar(), w));
        p.ip_ranges.push_back(std::move(r));
      }
    }
  }
  const YAML::Node ekus = n["extKeyUsages"];
  if (!ekus || !ekus.IsSequence() || ekus.size() == 0) {
    return InvalidArgument(where + ".extKeyUsages: required (a non-empty list of serverAuth, clientAuth)");
  }
  for (std::size_t i = 0; i < ekus.size(); ++i) {
    const std::string v = ekus[i].IsScalar() ? ekus[i].Scalar() : "";
    const ExtKeyUsage u = v == "serverAuth" ? kServerAuth : kClientAuth;
    if (v != "serverAuth" && v != "clientAuth") {
      return InvalidArgument(where + ".extKeyUsages[" + std::to_string(i) + "]: " + Quote(v) +
                             " is not serverAuth or clientAuth");
    }
    if (std::find(p.ext_key_usages.begin(), p.ext_key_usages.end(), u) != p.ext_key_usages.end()) {
      return InvalidArgument(where + ".extKeyUsages: " + v + " listed twice");
    }
    p.ext_key_usages.push_back(u);
  }
  const YAML::Node maxv = n["maxValidity"];
  const std::optional<std::int64_t> ns = maxv && maxv.IsScalar() ? ParseGoDuration(maxv.Scalar()) : std::nullopt;
  if (!ns || *ns < 1'000'000'000) {
    return InvalidArgument(where + ".maxValidity: required (a duration of at least 1s, e.g. 720h)");
  }
  p.max_validity = std::chrono::seconds(*ns / 1'000'000'000);
  if (const YAML::Node keys = n["keys"]) {
    KH_RETURN_IF_ERROR(CheckKeys(keys, {"rsaMinBits", "ecdsaCurves"}, where + ".keys"));
    if (const YAML::Node bits = keys["rsaMinBits"]) {
      int v = -1;
      try {
        v = bits.as<int>();
      } catch (const YAML::Exception&) {
      }
      if (v != 0 && (v < 2048 || v > 8192)) {
        return InvalidArgument(where + ".keys.rsaMinBits: must be 0 (no RSA) or 2048..8192");
      }
      p.keys.min_rsa_bits = v;
    }
    if (const YAML::Node curves = keys["ecdsaCurves"]) {
      if (!curves.IsSequence()) return InvalidArgument(where + ".keys.ecdsaCurves: must be a list");
      p.keys.ec_curves.clear();
      for (std::size_t i = 0; i < curves.size(); ++i) {
        const std::string c = curves[i].IsScalar() ? curves[i].Scalar() : "";
        if (c != "P-256" && c != "P-384") {
          return InvalidArgument(where + ".keys.ecdsaCurves[" + std::to_string(i) + "]: " + Quote(c) +
                                 " is not P-256 or P-384");
        }
        p.keys.ec_curves.push_back(c);
      }
    }
  }
  if (p.keys.min_rsa_bits == 0 && p.keys.ec_curves.empty()) {
    return InvalidArgument(where + ".keys: allows no key type at all");
  }
  return p;
}

// The `kubeletServing` section: nodes (exact names), nodePatterns (RE2) and domains.
Result<KubeletServingPolicy> ParseKubeletServing(const YAML::Node& n) {
  const std::string path = "kubeletServing";
  KH_RETURN_IF_ERROR(CheckKeys(n, {"nodes", "nodePatterns", "domains"}, path));
  KubeletServingPolicy k;
  auto names = [&](const char* field, std::vector<std::string>& out) -> Status {
    const YAML::Node list = n[field];
    if (!list) return OkStatus();
    const std::string where = path + "." + field;
    if (!list.IsSequence()) return InvalidArgument(where + ": must be a list of DNS names");
    for (std::size_t i = 0; i < list.size(); ++i) {
      const std::string w = where + "[" + std::to_string(i) + "]";
      const std::string v = list[i].IsScalar() ? list[i].Scalar() : "";
      if (!IsDnsSubdomain(v) || v.starts_with("*.")) {
        return InvalidArgument(w + ": " + Quote(v) + " is not a lower-case DNS name (no wildcards)");
      }
      if (auto why = ForbiddenKubeletName(v)) return InvalidArgument(w + ": " + Quote(v) + " is " + *why);
      out.push_back(v);
    }
    return OkStatus();
  };
  KH_RETURN_IF_ERROR(names("nodes", k.nodes));
  KH_RETURN_IF_ERROR(names("domains", k.domains));
  KH_ASSIGN_OR_RETURN(k.node_patterns, ParsePatterns(n["nodePatterns"], path + ".nodePatterns"));
  if (k.nodes.empty() && k.node_patterns.empty()) {
    return InvalidArgument(path + ": needs nodes or nodePatterns (which nodes may get a kubelet-serving certificate)");
  }
  return k;
}

}  // namespace

std::string JoinProblems(const std::vector<std::string>& problems) { return Join(problems, "; "); }

std::string DescribeKey(const EVP_PKEY* key) {
  if (EVP_PKEY_is_a(key, "RSA")) return "RSA-" + std::to_string(EVP_PKEY_get_bits(key));
  if (EVP_PKEY_is_a(key, "EC")) {
    char group[80] = {};
    size_t len = 0;
    if (EVP_PKEY_get_group_name(key, group, sizeof(group), &len) != 1) {
      DrainOpenSslErrors();
      return "ECDSA-(explicit curve parameters)";
    }
    const int nid = OBJ_txt2nid(group);
    const char* nist = nid != NID_undef ? EC_curve_nid2nist(nid) : nullptr;
    if (nist == nullptr) return "ECDSA-" + std::string(group);  // "ECDSA-secp256k1"
    std::string name = nist;                                    // "P-256" -> "ECDSA-P256", kubeadm's spelling
    name.erase(std::remove(name.begin(), name.end(), '-'), name.end());
    return "ECDSA-" + name;
  }
  const char* type = EVP_PKEY_get0_type_name(key);
  return type != nullptr ? type : "unknown";
}

std::optional<std::string> CheckKey(const EVP_PKEY* key, const KeyPolicy& policy) {
  const std::string name = DescribeKey(key);
  if (EVP_PKEY_is_a(key, "RSA")) {
    const int bits = EVP_PKEY_get_bits(key);
    if (policy.min_rsa_bits == 0) return "unsupported key " + name + ": the profile allows no RSA keys";
    if (bits < policy.min_rsa_bits) {
      return "weak key: " + name + " is below the minimum of " + std::to_string(policy.min_rsa_bits) + " bits";
    }
    if (bits > policy.max_rsa_bits) {
      return "unsupported key: " + name + " is above the maximum of " + std::to_string(policy.max_rsa_bits) + " bits";
    }
    return std::nullopt;
  }
  if (EVP_PKEY_is_a(key, "EC")) {
    const std::string curve = name.substr(6);  // after "ECDSA-": "P256" or an OpenSSL name
    for (const auto& allowed : policy.ec_curves) {
      std::string compact = allowed;
      compact.erase(std::remove(compact.begin(), compact.end(), '-'), compact.end());
      if (compact == curve) return std::nullopt;
    }
    return "unsupported key: " + name +
           " (allowed curves: " + (policy.ec_curves.empty() ? std::string("none") : Join(policy.ec_curves, ", ")) + ")";
  }
  return "unsupported key type " + name + " (only RSA and ECDSA keys)";
}

Result<ParsedCsr> ParseCsrPem(std::string_view pem) {
  std::size_t blocks = 0;
  for (std::size_t p = 0; (p = pem.find("-----BEGIN ", p)) != std::string_view::npos; p += 11) ++blocks;
  if (blocks != 1) {
    return InvalidArgument(blocks == 0 ? "not a PEM certificate request"
                                       : "expected exactly one PEM block (a CERTIFICATE REQUEST), found " +
                                             std::to_string(blocks));
  }
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return OpenSslError("BIO_new_mem_buf");
  ParsedCsr csr;
  csr.req.reset(PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr));
  if (!csr.req) return OpenSslError(StatusCode::kInvalidArgument, "not a valid PEM CERTIFICATE REQUEST");
  csr.public_key.reset(X509_REQ_get_pubkey(csr.req.get()));
  if (!csr.public_key) {
    DrainOpenSslErrors();
    csr.key_name = "unreadable";
    csr.problems.push_back("unsupported key: the request's public key cannot be read");
  } else {
    csr.key_name = DescribeKey(csr.public_key.get());
    // RSA e < 65537 or even (e = 1 makes the self-signature below meaningless), explicit EC
    // parameters (RFC 5480): refused whatever the profile.
    if (auto weak = signer::PublicKeyProblem(csr.public_key.get())) csr.problems.push_back("weak key: " + *weak);
    // RFC 2986 §3: the request is signed with the subject's own private key.
    if (X509_REQ_verify_ex(csr.req.get(), csr.public_key.get(), nullptr, nullptr) != 1) {
      DrainOpenSslErrors();
      csr.problems.push_back("bad CSR signature: the request is not signed by the key it carries");
    }
  }
  ReadSubject(csr.req.get(), csr);
  ReadExtensions(csr.req.get(), csr);
  return csr;
}

std::vector<std::string> BuiltinSigningProfileNames() {
  std::vector<std::string> names;
  for (const auto& l : LeafProfiles()) names.emplace_back(l.name);
  for (const auto& k : KubeconfigProfiles()) names.emplace_back(k.file_name);
  names.emplace_back("kubelet-client");
  names.emplace_back("kubelet-serving");
  return names;
}

Result<SigningProfile> FindSigningProfile(std::string_view name, const SigningPolicy* policy) {
  SigningProfile p;
  if (const LeafProfile* leaf = FindLeafProfile(name)) {
    p.name = std::string(leaf->name);
    p.kind = SigningProfileKind::kKubeadmLeaf;
    p.ca = leaf->ca;
    p.ext_key_usages = leaf->ext_key_usages;
    p.leaf = leaf;
    return p;
  }
  if (const KubeconfigProfile* kc = FindKubeconfigProfile(name)) {
    p.name = std::string(kc->file_name);
    p.kind = SigningProfileKind::kKubeconfig;
    p.ca = CaId::kCa;
    p.ext_key_usages = {kClientAuth};
    p.kubeconfig = kc;
    return p;
  }
  if (name == "kubelet-client" || name == "kubelet-serving") {
    p.name = std::string(name);
    p.kind = name == "kubelet-client" ? SigningProfileKind::kKubeletClient : SigningProfileKind::kKubeletServing;
    p.ca = CaId::kCa;
    p.ext_key_usages = {name == "kubelet-client" ? kClientAuth : kServerAuth};
    return p;
  }
  if (policy != nullptr) {
    for (const auto& custom : policy->profiles) {
      if (custom.name == name) return custom;
    }
  }
  std::vector<std::string> known = BuiltinSigningProfileNames();
  if (policy != nullptr) {
    for (const auto& custom : policy->profiles) known.push_back(custom.name);
  }
  return NotFound("unknown profile '" + std::string(name) + "' (known: " + Join(known, ", ") + ")");
}

Result<SigningPolicy> ParseSigningPolicy(std::string_view yaml) {
  KH_ASSIGN_OR_RETURN(std::vector<YAML::Node> docs, yaml_internal::LoadYamlDocuments(yaml, "signing policy"));
  if (docs.size() != 1) return InvalidArgument("signing policy: expected exactly one YAML document");
  const YAML::Node& root = docs[0];
  KH_RETURN_IF_ERROR(CheckKeys(root, {"apiVersion", "kind", "profiles", "kubeletServing"}, "signing policy"));
  if (!root["apiVersion"] || root["apiVersion"].Scalar() != "kubehsm.io/v1alpha1" || !root["kind"] ||
      root["kind"].Scalar() != "SigningPolicy") {
    return InvalidArgument("signing policy: apiVersion must be kubehsm.io/v1alpha1 and kind SigningPolicy");
  }
  const YAML::Node profiles = root["profiles"];
  const YAML::Node kubelet = root["kubeletServing"];
  if (!kubelet && (!profiles || !profiles.IsSequence())) {
    return InvalidArgument("signing policy: profiles: required (a list) unless kubeletServing is given");
  }
  if (profiles && !profiles.IsSequence()) return InvalidArgument("signing policy: profiles: must be a list");
  SigningPolicy policy;
  const auto builtins = BuiltinSigningProfileNames();
  if (kubelet) {
    KH_ASSIGN_OR_RETURN(policy.kubelet_serving, ParseKubeletServing(kubelet));
  }
  for (std::size_t i = 0; profiles && i < profiles.size(); ++i) {
    KH_ASSIGN_OR_RETURN(SigningProfile p, ParseProfile(profiles[i], "profiles[" + std::to_string(i) + "]"));
    if (Contains(builtins, p.name) || FindLeafProfile(p.name) != nullptr) {
      return InvalidArgument("profiles[" + std::to_string(i) + "].name: '" + p.name +
                             "' is a built-in profile and cannot be redefined");
    }
    for (const auto& other : policy.profiles) {
      if (other.name == p.name) {
        return InvalidArgument("profiles[" + std::to_string(i) + "].name: '" + p.name + "' is defined twice");
      }
    }
    policy.profiles.push_back(std::move(p));
  }
  return policy;
}

Result<SigningPolicy> LoadSigningPolicy(const std::filesystem::path& file) {
  KH_ASSIGN_OR_RETURN(std::string text, ReadFileBounded(file, yaml_internal::kMaxYamlBytes));
  Result<SigningPolicy> p = ParseSigningPolicy(text);
  if (!p.ok()) return p.status().WithContext(file.string());
  return p;
}

std::chrono::seconds EffectiveValidity(const SigningProfile& profile, const CsrCheckContext& ctx) {
  if (ctx.validity) return *ctx.validity;
  if (profile.max_validity.count() > 0) return profile.max_validity;
  return ctx.config != nullptr ? ctx.config->cert_validity : std::chrono::hours(8760);
}

namespace {

// The config to check kubeadm profiles against: ctx.config, or the defaults at ctx.version.
ClusterConfig ConfigOrVersion(const CsrCheckContext& ctx) {
  if (ctx.config != nullptr) return *ctx.config;
  ClusterConfig config;
  if (ctx.version) config.kubernetes_version = *ctx.version;
  return config;
}

}  // namespace

std::vector<std::string> CheckCsr(const ParsedCsr& csr, const SigningProfile& profile, const CsrCheckContext& ctx) {
  std::vector<std::string> problems = csr.problems;
  if (csr.public_key) {
    if (auto p = CheckKey(csr.public_key.get(), profile.keys)) problems.push_back(*p);
  }
  if (csr.common_name.size() > kMaxNameLength) {
    problems.push_back("disallowed CN: longer than " + std::to_string(kMaxNameLength) + " characters");
  }
  for (const auto& o : csr.organizations) {
    if (o.size() > kMaxNameLength) {
      problems.push_back("disallowed O: longer than " + std::to_string(kMaxNameLength) + " characters");
    }
  }
  const std::string& name = profile.name;
  switch (profile.kind) {
    case SigningProfileKind::kKubeadmLeaf: {
      const bool needs_config = profile.leaf->sans != SanRule::kNone || profile.leaf->common_name.empty();
      if (ctx.config == nullptr && needs_config) {
        problems.push_back("profile '" + name +
                           "' needs the cluster configuration (--config) for the node name "
                           "and SANs");
        break;
      }
      const ClusterConfig config = ConfigOrVersion(ctx);
      std::vector<std::string> warnings;
      Result<CertSpec> want = LeafSpec(*profile.leaf, config, &warnings);
      if (!want.ok()) {
        problems.push_back("profile '" + name + "': " + want.status().message());
        break;
      }
      CheckExact(csr, *want, name, problems);
      break;
    }
    case SigningProfileKind::kKubeconfig: {
      const bool needs_config = profile.kubeconfig->common_name == kNodePrefix;
      if (ctx.config == nullptr && needs_config) {
        problems.push_back("profile '" + name + "' needs the cluster configuration (--config) for the node name");
        break;
      }
      const ClusterConfig config = ConfigOrVersion(ctx);
      CheckExact(csr, KubeconfigClientSpec(*profile.kubeconfig, config), name, problems);
      break;
    }
    case SigningProfileKind::kKubeletClient: {
      CheckNodeSubject(csr, name, problems);
      for (const auto& d : csr.sans.dns)
        problems.push_back("disallowed SAN DNS:" + d + ": profile '" + name + "' allows no SANs");
      for (const auto& ip : csr.sans.ips)
        problems.push_back("disallowed SAN IP:" + ip + ": profile '" + name + "' allows no SANs");
      break;
    }
    case SigningProfileKind::kKubeletServing:
      CheckKubeletServing(csr, name, ctx, problems);
      break;
    case SigningProfileKind::kCustom: {
      // Lengths first (reported above): no pattern ever sees an overlong value.
      if (csr.common_name.empty()) {
        problems.push_back("disallowed CN: the request has none and profile '" + name + "' requires one matching " +
                           Quote(profile.common_name->source));
      } else if (csr.common_name.size() <= kMaxNameLength && !FullMatch(*profile.common_name, csr.common_name)) {
        problems.push_back("disallowed CN " + Quote(csr.common_name) + ": does not match " +
                           Quote(profile.common_name->source) + " of profile '" + name + "'");
      }
      for (const auto& o : csr.organizations) {
        if (o.size() <= kMaxNameLength && std::none_of(profile.organizations.begin(), profile.organizations.end(),
                                                       [&](const NamePattern& p) { return FullMatch(p, o); })) {
          problems.push_back("disallowed O " + Quote(o) + ": not allowed by profile '" + name + "'");
        }
      }
      for (const auto& d : csr.sans.dns) {
        if (!IsDnsSubdomain(d) || std::none_of(profile.dns_names.begin(), profile.dns_names.end(),
                                               [&](const NamePattern& p) { return FullMatch(p, d); })) {
          problems.push_back("disallowed SAN DNS:" + d + ": not allowed by profile '" + name + "'");
        }
      }
      for (const auto& ip : csr.sans.ips) {
        if (std::none_of(profile.ip_ranges.begin(), profile.ip_ranges.end(),
                         [&](const IpRange& r) { return InRange(r, ip); })) {
          problems.push_back("disallowed SAN IP:" + ip + ": not allowed by profile '" + name + "'");
        }
      }
      break;
    }
  }
  const auto max =
      profile.max_validity.count() > 0
          ? profile.max_validity
          : (ctx.config != nullptr ? ctx.config->cert_validity : std::chrono::seconds(std::chrono::hours(8760)));
  if (ctx.validity) {
    if (ctx.validity->count() <= 0) {
      problems.push_back("invalid validity: must be positive");
    } else if (*ctx.validity > max) {
      problems.push_back("validity over the maximum: " + FormatDuration(*ctx.validity) + " requested, profile '" +
                         name + "' allows at most " + FormatDuration(max));
    }
  }
  return problems;
}

CertSpec SpecForCsr(const ParsedCsr& csr, const SigningProfile& profile) {
  CertSpec spec;
  spec.common_name = csr.common_name;
  spec.organizations = csr.organizations;
  spec.ext_key_usages = profile.ext_key_usages;
  spec.sans = csr.sans;
  Normalize(spec.sans);
  return spec;
}

Result<CsrSigningCa> LoadSigningCa(KeyStore& store, const std::filesystem::path& ca_dir, CaId id) {
  const CaProfile& ca = GetCaProfile(id);
  const auto path = CertPath(ca_dir, ca.file_base);
  Result<X509Ptr> cert = LoadCertificateFile(path);
  if (!cert.ok()) {
    if (cert.status().code() == StatusCode::kNotFound) {
      return FailedPrecondition("the " + std::string(ca.name) + " CA certificate " + path.string() +
                                " is missing (--ca-dir / --cert-dir must name the signing box's own pki directory)");
    }
    return cert.status();
  }
  Result<SigningKey> key = store.Find(ca.key_label);
  if (!key.ok()) {
    return key.status().WithContext("the " + std::string(ca.name) + " CA's key (token label '" +
                                    std::string(ca.key_label) + "')");
  }
  if (!CertificateHasKey(cert->get(), key->public_key())) {
    return FailedPrecondition(path.string() + " does not match the token key '" + std::string(ca.key_label) + "'");
  }
  return CsrSigningCa{std::move(cert).value(), std::move(key).value()};
}

Result<X509Ptr> SignCsr(const CsrSigningCa& ca, const ParsedCsr& csr, const SigningProfile& profile,
                        const CsrCheckContext& ctx, Clock::time_point now, const RecordFn& record,
                        std::string_view operation) {
  const std::vector<std::string> problems = CheckCsr(csr, profile, ctx);
  if (!problems.empty()) return PermissionDenied("CSR refused: " + JoinProblems(problems));
  const CertSpec spec = SpecForCsr(csr, profile);
  Validity validity{now - kBackdate, now + EffectiveValidity(profile, ctx)};
  if (profile.kind == SigningProfileKind::kKubeconfig) {
    // kubeadm's kubeconfig client certificates start at the CA's NotBefore (spec §4).
    KH_ASSIGN_OR_RETURN(Validity ca_validity, CertificateValidity(ca.cert.get()));
    validity.not_before = ca_validity.not_before;
  }
  return SignAndRecord([&] { return IssueLeaf(ca.key, ca.cert.get(), csr.public_key.get(), spec, validity); }, record,
                       {nullptr, GetCaProfile(profile.ca).name, profile.name, operation});
}

}  // namespace kubehsm::signer::pki
