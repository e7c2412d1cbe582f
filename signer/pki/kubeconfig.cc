#include "signer/pki/kubeconfig.h"

#include <exception>
#include <string>
#include <utility>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "common/base64.h"
#include "signer/pki/yaml_util.h"

namespace kubehsm::signer::pki {
namespace {

using yaml_internal::QuoteYamlString;

std::string Q(std::string_view s) { return QuoteYamlString(s); }

// One "key: value" line at `indent`.
void Line(std::string& out, int indent, std::string_view key, std::string_view value) {
  out.append(static_cast<std::size_t>(indent), ' ');
  out += key;
  out += ": ";
  out += value;
  out += '\n';
}

std::string Quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

bool IsSet(const YAML::Node& n) { return n.IsDefined() && !n.IsNull(); }

// The value of `key` in a map, or an undefined node; never inserts.
YAML::Node Find(const YAML::Node& map, std::string_view key) {
  if (!map.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
  for (const auto& kv : map) {
    if (kv.first.IsScalar() && kv.first.Scalar() == key) return kv.second;
  }
  return YAML::Node(YAML::NodeType::Undefined);
}

// A string field; "" when absent. Fails when present but not a scalar.
Result<std::string> GetString(const YAML::Node& map, std::string_view key, std::string_view path) {
  YAML::Node n = Find(map, key);
  if (!IsSet(n)) return std::string();
  if (!n.IsScalar()) return InvalidArgument("kubeconfig: " + std::string(path) + "." + std::string(key) + " is not a string");
  return n.Scalar();
}

// A base64 *-data field, decoded. Like Go's encoding/json, line breaks inside are ignored.
Result<std::string> GetData(const YAML::Node& map, std::string_view key, std::string_view path) {
  KH_ASSIGN_OR_RETURN(std::string text, GetString(map, key, path));
  std::string compact;
  for (char c : text) {
    if (c != '\n' && c != '\r') compact += c;
  }
  auto decoded = Base64Decode(compact);
  if (!decoded.ok()) return decoded.status().WithContext("kubeconfig: " + std::string(path) + "." + std::string(key));
  return std::move(decoded).value();
}

// The entry of list `list_key` (clusters/contexts/users) whose name is `name`, and its index.
struct Entry {
  YAML::Node node;  // the list element {name, <payload_key>}
  std::size_t index = 0;
};

Result<Entry> FindNamed(const YAML::Node& root, std::string_view list_key, std::string_view name,
                        std::string_view what) {
  YAML::Node list = Find(root, list_key);
  if (IsSet(list) && !list.IsSequence()) return InvalidArgument("kubeconfig: " + std::string(list_key) + " is not a list");
  if (IsSet(list)) {
    for (std::size_t i = 0; i < list.size(); ++i) {
      YAML::Node item = list[i];
      YAML::Node n = Find(item, "name");
      if (IsSet(n) && n.IsScalar() && n.Scalar() == name) return Entry{item, i};
    }
  }
  return InvalidArgument("kubeconfig: " + std::string(what) + " " + Quoted(name) + " is not listed in " +
                         std::string(list_key));
}

struct Resolved {
  std::string current_context;
  Entry context, cluster, user;
  std::string cluster_name, user_name;
};

Result<YAML::Node> LoadSingleDocument(std::string_view text) {
  KH_ASSIGN_OR_RETURN(std::vector<YAML::Node> docs, yaml_internal::LoadYamlDocuments(text, "kubeconfig"));
  std::vector<YAML::Node> real;
  for (const auto& d : docs) {
    if (IsSet(d)) real.push_back(d);
  }
  if (real.size() != 1) return InvalidArgument("kubeconfig: expected exactly one YAML document, found " + std::to_string(real.size()));
  if (!real[0].IsMap()) return InvalidArgument("kubeconfig: the document is not a mapping");
  return real[0];
}

Result<Resolved> Resolve(const YAML::Node& root) {
  Resolved r;
  KH_ASSIGN_OR_RETURN(r.current_context, GetString(root, "current-context", "kubeconfig"));
  if (r.current_context.empty()) return InvalidArgument("kubeconfig: current-context is not set");
  KH_ASSIGN_OR_RETURN(r.context, FindNamed(root, "contexts", r.current_context, "context"));
  const YAML::Node ctx = Find(r.context.node, "context");
  if (!IsSet(ctx) || !ctx.IsMap()) {
    return InvalidArgument("kubeconfig: context " + Quoted(r.current_context) + " has no context section");
  }
  const std::string ctx_path = "contexts[" + std::to_string(r.context.index) + "].context";
  KH_ASSIGN_OR_RETURN(r.cluster_name, GetString(ctx, "cluster", ctx_path));
  KH_ASSIGN_OR_RETURN(r.user_name, GetString(ctx, "user", ctx_path));
  if (r.cluster_name.empty()) return InvalidArgument("kubeconfig: context " + Quoted(r.current_context) + " names no cluster");
  if (r.user_name.empty()) return InvalidArgument("kubeconfig: context " + Quoted(r.current_context) + " names no user");
  KH_ASSIGN_OR_RETURN(r.cluster, FindNamed(root, "clusters", r.cluster_name, "cluster"));
  KH_ASSIGN_OR_RETURN(r.user, FindNamed(root, "users", r.user_name, "user"));
  return r;
}

bool KeysSorted(const YAML::Node& map) {
  std::string prev;
  bool first = true;
  for (const auto& kv : map) {
    if (!kv.first.IsScalar()) return false;
    if (!first && kv.first.Scalar() < prev) return false;
    prev = kv.first.Scalar();
    first = false;
  }
  return true;
}

YAML::Node StringNode(std::string_view v) {
  YAML::Node n{std::string(v)};
  n.SetTag("!");  // a string, whatever it looks like
  return n;
}

// Sets map[key] = value. A new key goes to its sorted position when the map's keys are sorted
// (client-go's order), else to the end.
void SetKey(YAML::Node map, const std::string& key, const YAML::Node& value) {
  if (Find(map, key).IsDefined() || !KeysSorted(map)) {
    map[key] = value;
    return;
  }
  YAML::Node rebuilt(YAML::NodeType::Map);
  bool inserted = false;
  for (const auto& kv : map) {
    if (!inserted && key < kv.first.Scalar()) {
      rebuilt[key] = value;
      inserted = true;
    }
    rebuilt[kv.first.Scalar()] = kv.second;
  }
  if (!inserted) rebuilt[key] = value;
  map = rebuilt;
}

// The payload map (`user:` or `cluster:`) of a list entry, created when absent or null.
Result<YAML::Node> PayloadMap(YAML::Node entry, const std::string& key, std::string_view what) {
  YAML::Node payload = Find(entry, key);
  if (!IsSet(payload)) {
    SetKey(entry, key, YAML::Node(YAML::NodeType::Map));
    payload.reset(Find(entry, key));  // rebind; operator= would write through
  }
  if (!payload.IsMap()) return InvalidArgument("kubeconfig: " + std::string(what) + " is not a mapping");
  return payload;
}

}  // namespace

std::string RenderKubeconfig(const KubeconfigSpec& spec) {
  const std::string context = spec.user_name + "@" + spec.cluster_name;
  std::string out;
  out += "apiVersion: v1\n";
  out += "clusters:\n";
  out += "- cluster:\n";
  if (!spec.ca_pem.empty()) Line(out, 4, "certificate-authority-data", Base64Encode(spec.ca_pem));
  Line(out, 4, "server", Q(spec.server));
  Line(out, 2, "name", Q(spec.cluster_name));
  out += "contexts:\n";
  out += "- context:\n";
  Line(out, 4, "cluster", Q(spec.cluster_name));
  Line(out, 4, "user", Q(spec.user_name));
  Line(out, 2, "name", Q(context));
  Line(out, 0, "current-context", Q(context));
  out += "kind: Config\n";
  out += "preferences: {}\n";
  out += "users:\n";
  Line(out, 0, "- name", Q(spec.user_name));
  if (spec.client_cert_pem.empty() && spec.client_key_pem.empty() && spec.token.empty()) {
    Line(out, 2, "user", "{}");
  } else {
    out += "  user:\n";
    if (!spec.client_cert_pem.empty()) Line(out, 4, "client-certificate-data", Base64Encode(spec.client_cert_pem));
    if (!spec.client_key_pem.empty()) Line(out, 4, "client-key-data", Base64Encode(spec.client_key_pem));
    if (!spec.token.empty()) Line(out, 4, "token", Q(spec.token));
  }
  return out;
}

Result<KubeconfigCredentials> ReadKubeconfig(std::string_view text) {
  try {
    KH_ASSIGN_OR_RETURN(YAML::Node root, LoadSingleDocument(text));
    KH_ASSIGN_OR_RETURN(Resolved r, Resolve(root));
    KubeconfigCredentials c;
    c.current_context = r.current_context;
    c.cluster_name = r.cluster_name;
    c.user_name = r.user_name;

    const YAML::Node cluster = Find(r.cluster.node, "cluster");
    const std::string cpath = "clusters[" + std::to_string(r.cluster.index) + "].cluster";
    if (!IsSet(cluster) || !cluster.IsMap()) {
      return InvalidArgument("kubeconfig: cluster " + Quoted(r.cluster_name) + " has no cluster section");
    }
    KH_ASSIGN_OR_RETURN(c.server, GetString(cluster, "server", cpath));
    if (c.server.empty()) return InvalidArgument("kubeconfig: cluster " + Quoted(r.cluster_name) + " has no server");
    KH_ASSIGN_OR_RETURN(c.ca_pem, GetData(cluster, "certificate-authority-data", cpath));
    KH_ASSIGN_OR_RETURN(c.ca_file, GetString(cluster, "certificate-authority", cpath));

    const YAML::Node user = Find(r.user.node, "user");
    const std::string upath = "users[" + std::to_string(r.user.index) + "].user";
    if (IsSet(user)) {
      if (!user.IsMap()) return InvalidArgument("kubeconfig: " + upath + " is not a mapping");
      KH_ASSIGN_OR_RETURN(c.client_cert_pem, GetData(user, "client-certificate-data", upath));
      KH_ASSIGN_OR_RETURN(c.client_key_pem, GetData(user, "client-key-data", upath));
      KH_ASSIGN_OR_RETURN(c.client_cert_file, GetString(user, "client-certificate", upath));
      KH_ASSIGN_OR_RETURN(c.client_key_file, GetString(user, "client-key", upath));
      KH_ASSIGN_OR_RETURN(c.token, GetString(user, "token", upath));
    }
    return c;
  } catch (const std::exception& e) {
    return InvalidArgument(std::string("kubeconfig: ") + e.what());
  }
}

Result<std::string> UpdateKubeconfigCredentials(std::string_view text, std::string_view client_cert_pem,
                                                std::optional<std::string_view> client_key_pem,
                                                std::optional<std::string_view> ca_pem) {
  if (client_cert_pem.empty()) return InvalidArgument("kubeconfig update: the client certificate PEM is empty");
  if (client_key_pem && client_key_pem->empty()) return InvalidArgument("kubeconfig update: the client key PEM is empty");
  if (ca_pem && ca_pem->empty()) return InvalidArgument("kubeconfig update: the CA PEM is empty");
  // Check the whole file (including its data fields) reads before changing it.
  KH_RETURN_IF_ERROR(ReadKubeconfig(text).status());
  std::string out;
  try {
    KH_ASSIGN_OR_RETURN(YAML::Node root, LoadSingleDocument(text));
    KH_ASSIGN_OR_RETURN(Resolved r, Resolve(root));

    KH_ASSIGN_OR_RETURN(YAML::Node user, PayloadMap(r.user.node, "user", "user " + Quoted(r.user_name)));
    SetKey(user, "client-certificate-data", StringNode(Base64Encode(client_cert_pem)));
    user.remove("client-certificate");
    if (client_key_pem) {
      SetKey(user, "client-key-data", StringNode(Base64Encode(*client_key_pem)));
      user.remove("client-key");
    }
    if (ca_pem) {
      KH_ASSIGN_OR_RETURN(YAML::Node cluster,
                          PayloadMap(r.cluster.node, "cluster", "cluster " + Quoted(r.cluster_name)));
      SetKey(cluster, "certificate-authority-data", StringNode(Base64Encode(*ca_pem)));
      cluster.remove("certificate-authority");
    }
    KH_ASSIGN_OR_RETURN(out, yaml_internal::EmitGoYaml(root));
  } catch (const std::exception& e) {
    return InvalidArgument(std::string("kubeconfig update: ") + e.what());
  }
  // The result must read back with the new credentials; anything else is a bug here.
  auto check = ReadKubeconfig(out);
  if (!check.ok()) return Internal("kubeconfig update produced an unreadable file: " + check.status().message());
  if (check->client_cert_pem != client_cert_pem) return Internal("kubeconfig update lost the client certificate");
  return out;
}

}  // namespace kubehsm::signer::pki
