// kubeconfig files as kubeadm writes them (spec §4): rendering in client-go's exact layout,
// reading the current context's credentials, and replacing credentials in place (certs renew,
// and completing the files `kubeadm certs generate-csr` leaves with only client-key-data).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace kubehsm::signer::pki {

// What one kubeadm kubeconfig holds: one cluster, one user, one context "<user>@<cluster>".
// PEM fields are the PEM bytes themselves (trailing newline included); they are base64-encoded on
// output. An empty PEM field is omitted from the file, as client-go omits empty data.
struct KubeconfigSpec {
  std::string cluster_name = "kubernetes";  // clusters[0].name (kubeadm: clusterName)
  std::string server;                        // e.g. "https://10.0.0.10:6443"
  std::string ca_pem;                        // -> certificate-authority-data
  std::string user_name;                     // users[0].name (kubeadm: the client cert's CN)
  std::string client_cert_pem;               // -> client-certificate-data
  std::string client_key_pem;                // -> client-key-data
  std::string token;                         // -> token (`kubeadm kubeconfig user --token`)
};

// Renders `spec` byte-for-byte as client-go's clientcmd.Write does for kubeadm: keys sorted,
// two-space indentation, `preferences: {}`, data fields as single-line padded standard base64,
// context and current-context "<user_name>@<cluster_name>", strings quoted as go-yaml v2 would.
// Never fails; callers validate names beforehand.
std::string RenderKubeconfig(const KubeconfigSpec& spec);

// The current context's pieces of a kubeconfig. Data fields are decoded (PEM bytes); a field that
// is absent is empty. File references (certificate-authority, client-certificate, client-key) are
// reported as given, not read.
struct KubeconfigCredentials {
  std::string current_context;
  std::string cluster_name;
  std::string server;
  std::string ca_pem;                 // certificate-authority-data, decoded
  std::string ca_file;                // certificate-authority
  std::string user_name;
  std::string client_cert_pem;        // client-certificate-data, decoded
  std::string client_key_pem;         // client-key-data, decoded
  std::string client_cert_file;       // client-certificate
  std::string client_key_file;        // client-key
  std::string token;                  // token
};

// Reads `text` (at most 1 MiB, YAML/JSON) and resolves current-context -> context -> cluster and
// user by name. Fails with kInvalidArgument, naming the missing piece, when the YAML is invalid,
// current-context is unset, the context, its cluster or its user is not listed, the cluster has
// no server, or a *-data field is not valid padded base64.
Result<KubeconfigCredentials> ReadKubeconfig(std::string_view text);

// Replaces credentials of the current context in `text` and returns the new file text:
// the user's client-certificate-data := base64(client_cert_pem); if given, its client-key-data
// := base64(*client_key_pem); if given, the cluster's certificate-authority-data := base64(*ca_pem).
// A file reference (client-certificate/client-key/certificate-authority) that would conflict with
// the new data field is removed. Everything else is preserved (other users, clusters, contexts,
// extensions, exec plugins, key order); comments are not preserved. Output is in go-yaml v2 block
// layout, so a file written by RenderKubeconfig round-trips to exactly what RenderKubeconfig
// would write with the new values. Fails like ReadKubeconfig, and with kInvalidArgument when
// client_cert_pem (or a given key/CA PEM) is empty.
Result<std::string> UpdateKubeconfigCredentials(std::string_view text, std::string_view client_cert_pem,
                                                std::optional<std::string_view> client_key_pem = std::nullopt,
                                                std::optional<std::string_view> ca_pem = std::nullopt);

}  // namespace kubehsm::signer::pki
