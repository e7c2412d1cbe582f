// Signing the output of `kubeadm certs generate-csr` (spec kubeadm-pki.md §6) so that `kubeadm
// init` finds an external-CA layout:
//
//   input (node)                              output (added by SignGenerateCsrDir)
//   <cert-dir>/<leaf>.csr [+ <leaf>.key]       <cert-dir>/<leaf>.crt                  (0644)
//     leaf = apiserver, apiserver-kubelet-client, front-proxy-client, apiserver-etcd-client,
//            etcd/server, etcd/peer, etcd/healthcheck-client
//   <kubeconfig-dir>/<conf> (client-key-data)  same file with client-certificate-data and
//   <kubeconfig-dir>/<conf>.csr                certificate-authority-data filled      (0600)
//     conf = admin.conf, super-admin.conf, kubelet.conf, controller-manager.conf, scheduler.conf
//                                              <cert-dir>/ca.crt, etcd/ca.crt, front-proxy-ca.crt
//                                              copied from the CA dir, without keys   (0644)
//                                              <cert-dir>/sa.pub from the CA dir, if there (0600)
//
// With NodeSet::kControlPlaneJoin the kubeconfigs marked init_only are not part of the layout.
// In every set the apiserver CSR must request every SAN the config yields for the node (node name,
// advertise address, controlPlaneEndpoint, apiServer.certSANs, the service names and IP), so the
// certificate never lacks the load balancer's name.
//
// All or nothing per run: every CSR is parsed and checked against its profile (inferred from the
// file name) and the cluster config first (CN, O, SANs the config allows, key type and size equal
// to the config's encryptionAlgorithm, .key/kubeconfig key matching the CSR); any problem refuses
// the whole run, listing all problems, before anything is signed. Then each certificate is signed,
// recorded (RecordFn) and written atomically. Re-running after an interruption keeps every
// certificate already written that is still valid for its CSR, and signs the rest.
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "signer/key_store.h"
#include "signer/pki/cluster_config.h"
#include "signer/pki/init.h"
#include "signer/pki/issuance.h"

namespace kubehsm::signer::pki {

// Which certificate set a run signs.
enum class NodeSet {
  kInit,              // the first node: every leaf and all five kubeconfigs (generate-csr's full output)
  kControlPlaneJoin,  // a joining control-plane node: every leaf, admin.conf, controller-manager.conf and
                      // scheduler.conf; super-admin.conf (init only) and kubelet.conf (join's TLS bootstrap
                      // writes it) are neither required nor signed: their CSRs are refused
};

// "init" / "control-plane-join"; nullopt otherwise.
std::optional<NodeSet> ParseNodeSet(std::string_view name);

struct SignDirOptions {
  NodeSet node_set = NodeSet::kInit;     // the set expected in the directories
  ClusterConfig config;                  // the cluster config the node ran generate-csr with
  std::filesystem::path cert_dir;        // generate-csr's --cert-dir
  std::filesystem::path kubeconfig_dir;  // generate-csr's --kubeconfig-dir
  std::filesystem::path ca_dir;          // where ca.crt, etcd/ca.crt, front-proxy-ca.crt are (keys: the store)
  Clock::time_point now = Clock::now();  // kubeadm's T for the run
  RecordFn record;                       // every certificate, before it is written (operation "sign-dir")
  ProgressFn progress;                   // may be empty
  // Called once per problem of a refused run (`file` is the CSR or file concerned), e.g. to audit.
  std::function<void(const std::string& file, const std::string& reason)> refused;
  // Renewal (`sign-dir --renew`, the layout of `certs renewal-csrs`): every CSR present is signed
  // again even where a valid certificate exists (nothing is kept); a missing CSR is skipped, not a
  // problem (at least one must be there). A kubeconfig CSR without its kubeconfig beside it gets
  // its client certificate written to <kubeconfig-dir>/<conf>.crt for `certs install-renewed`; with
  // the kubeconfig there, the certificate goes into it as on first issuance. The checks are those
  // of first issuance.
  bool renew = false;
  // How files are named in progress lines, refusals (`refused`) and errors; empty: the path. `output`
  // is true for a file the run writes. Tar mode names archive members: "csrs.tar:pki/etcd/server.csr"
  // for an input, "signed.tar:pki/etcd/server.crt" for an output, never the working directory.
  std::function<std::string(const std::filesystem::path& file, bool output)> display_name;
  // The layout was unpacked from an archive and the outputs go back into one (sign-dir --in-tar):
  // a kubeconfig there that the run does not sign (outside the node set, or without its CSR) is a
  // problem, since it would travel back unsigned, with its client key, as if it were a result.
  bool from_archive = false;
};

struct SignDirSummary {
  int signed_certs = 0;  // certificates signed by this run
  int kept = 0;          // certificates from an earlier run kept as valid
  int ca_written = 0;    // CA certificates placed
};

// Runs the whole job (see the file comment). Fails with kInvalidArgument, before reading any file,
// when the config names no node (nodeRegistration.name) or no advertise address: on a signing box
// those defaults would be the box's own hostname and address, not the node's. Fails with
// kPermissionDenied "refusing to sign anything: N problem(s): ..." when a check fails; with the
// first I/O, token or recorder error during signing (each file written so far is complete and
// recorded).
Result<SignDirSummary> SignGenerateCsrDir(KeyStore& store, const SignDirOptions& options);

// The files of a generate-csr layout relative to the directory a tar archive is packed from:
// "pki/<leaf>.csr", "pki/<leaf>.key", "<conf>", "<conf>.csr" (inputs) and "pki/<leaf>.crt",
// "pki/ca.crt", "pki/etcd/ca.crt", "pki/front-proxy-ca.crt", "<conf>", "<conf>.crt" (outputs; the
// last is the renewal form of a kubeconfig's client certificate).
std::vector<std::string> GenerateCsrInputNames();
std::vector<std::string> SignDirOutputNames();

}  // namespace kubehsm::signer::pki
