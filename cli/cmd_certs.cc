// kubehsm certs issue|check-expiration|renew|sign-csr|sign-dir (signer/pki does the work; this
// file parses, wires the ledger and audit trail in, and prints).
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "cli/command.h"
#include "cli/issuance_recorder.h"
#include "cli/pki_flags.h"
#include "common/file_util.h"
#include "common/private_work_dir.h"
#include "common/terminal_text.h"
#include "signer/pki/csr.h"
#include "signer/pki/csr_archive.h"
#include "signer/pki/init.h"
#include "signer/pki/maintenance.h"
#include "signer/pki/pem.h"
#include "signer/pki/pki_files.h"
#include "signer/pki/renewal.h"
#include "signer/pki/sign_dir.h"
#include "signer/pki/versions.h"

namespace kubehsm::cli {
namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace {

int CertsIssue(Context& ctx, const Args& args) {
  po::options_description d = ClusterConfigFlags("kubehsm certs issue options", FlagsFor::kCertsIssue);
  d.add_options()("ca-dir", po::value<std::string>()->default_value("/etc/kubernetes/pki"),
                  "directory holding ca.crt, etcd/ca.crt, front-proxy-ca.crt (and sa.pub) of the cluster");
  po::variables_map vm;
  int code = 0;
  if (!ParseArgs(ctx,
                 "kubehsm certs issue --cert-dir DIR --kubeconfig-dir DIR [--node-name N] [--advertise-address IP] "
                 "[--config FILE] [--ca-dir DIR]\n\nIssues the per-node set (apiserver, etcd server/peer, client "
                 "certificates with fresh keys, admin/controller-manager/scheduler kubeconfigs) for another "
                 "control-plane node from the cluster's CAs in the token. --config takes the node's kubeadm "
                 "join file (JoinConfiguration with controlPlane plus the cluster's ClusterConfiguration); the "
                 "node name and address come from it. Prints which files must travel to the node: the leaf "
                 "keys are made here.",
                 d, nullptr, args, vm, code)) {
    return code;
  }
  auto options = PkiOptionsFromFlags(ctx, vm);
  if (!options.ok()) return ctx.Fail(options.status());
  auto store = ctx.KeyStore();
  if (!store.ok()) return ctx.Fail(store.status());
  auto recorder = LedgerRecorder(ctx);
  if (!recorder.ok()) return ctx.Fail(recorder.status());
  options->record = *recorder;
  auto r = signer::pki::IssueNodeSet(**store, vm["ca-dir"].as<std::string>(), *options);
  if (!r.ok()) return ctx.Fail(r.status());
  ctx.out() << "[certs] Node set for \"" << options->config.node_name << "\" ready: " << r->written
            << " file(s) written, " << r->kept << " kept\n";
  return kExitOk;
}

// --config for the commands that only need the cluster facts, not the host's.
Result<signer::pki::ClusterConfig> OptionalConfig(const po::variables_map& vm) {
  signer::pki::ClusterConfig config;
  if (vm.count("config") == 0) return config;
  Result<signer::pki::ClusterConfig> c = signer::pki::LoadKubeadmConfig(vm["config"].as<std::string>());
  if (!c.ok()) return c.status().WithContext("--config");
  return c;
}

// --kubernetes-version of the commands that check against kubeadm's profiles (where there is no
// --config; with one it overrides the config's kubernetesVersion).
std::string KubernetesVersionHelp() {
  return "the cluster's Kubernetes version (e.g. v1.36.0; supported " + signer::pki::SupportedVersionRange() +
         "): the kubeadm profiles of that version apply; default: --config's kubernetesVersion, else " +
         signer::pki::VersionName(signer::pki::DefaultKubernetesVersion());
}
Result<std::optional<signer::pki::KubernetesVersion>> VersionFlag(const po::variables_map& vm) {
  if (vm.count("kubernetes-version") == 0) return std::optional<signer::pki::KubernetesVersion>();
  KH_ASSIGN_OR_RETURN(
      signer::pki::KubernetesVersion v,
      signer::pki::ParseKubernetesVersion(vm["kubernetes-version"].as<std::string>(), "--kubernetes-version"));
  return std::optional<signer::pki::KubernetesVersion>(v);
}

int CertsCheckExpiration(Context& ctx, const Args& args) {
  po::options_description d("kubehsm certs check-expiration options");
  d.add_options()("cert-dir", po::value<std::string>()->default_value("/etc/kubernetes/pki"), "certificate directory")(
      "kubeconfig-dir", po::value<std::string>()->default_value("/etc/kubernetes"), "kubeconfig directory")(
      "config", po::value<std::string>(), "kubeadm configuration file (for external etcd)")(
      "kubernetes-version", po::value<std::string>(),
      (KubernetesVersionHelp() + " (the table is the same for every supported version)").c_str())(
      "output,o", po::value<std::string>()->default_value("text"), "text | json | yaml");
  po::variables_map vm;
  int code = 0;
  if (!ParseArgs(ctx, "kubehsm certs check-expiration [--cert-dir DIR] [--kubeconfig-dir DIR] [-o text|json|yaml]",
                 d, nullptr, args, vm, code)) {
    return code;
  }
  const std::string output = vm["output"].as<std::string>();
  if (output != "text" && output != "json" && output != "yaml") {
    return ctx.UsageError("--output must be text, json or yaml");
  }
  auto version = VersionFlag(vm);
  if (!version.ok()) return ctx.UsageError(version.status().message());
  auto config = OptionalConfig(vm);
  if (!config.ok()) return ctx.Fail(config.status());
  if (*version) config->kubernetes_version = **version;
  auto report = signer::pki::CheckExpiration(vm["cert-dir"].as<std::string>(), vm["kubeconfig-dir"].as<std::string>(),
                                             *config, signer::pki::Clock::now(), nullptr);
  if (!report.ok()) return ctx.Fail(report.status());
  if (output == "json") {
    ctx.out() << signer::pki::FormatExpirationJson(*report);
  } else if (output == "yaml") {
    ctx.out() << signer::pki::FormatExpirationYaml(*report);
  } else {
    ctx.out() << signer::pki::FormatExpirationText(*report);
  }
  return kExitOk;
}

int CertsRenew(Context& ctx, const Args& args) {
  po::options_description d("kubehsm certs renew options");
  d.add_options()("cert-dir", po::value<std::string>()->default_value("/etc/kubernetes/pki"), "certificate directory")(
      "kubeconfig-dir", po::value<std::string>()->default_value("/etc/kubernetes"), "kubeconfig directory")(
      "config", po::value<std::string>(),
      "the cluster's kubeadm configuration: each certificate's subject and SANs must equal what its profile "
      "yields for it (also validity period, key algorithm)")(
      "kubernetes-version", po::value<std::string>(),
      (KubernetesVersionHelp() + "; renewed certificates get that version's subject (an upgrade)").c_str())(
      "name", po::value<std::vector<std::string>>(), "all | certificate name (positional)");
  po::positional_options_description pos;
  pos.add("name", -1);
  po::variables_map vm;
  int code = 0;
  std::string names_help;
  for (const auto& n : signer::pki::RenewableNames()) names_help += "\n  " + n;
  if (!ParseArgs(ctx, "kubehsm certs renew all|NAME... [--cert-dir DIR] [--kubeconfig-dir DIR] [--config FILE]\n\n"
                          "Re-issues certificates this CA issued (signature checked against the CA and serial "
                          "in the ledger) from their kubeadm profile; any other certificate is refused.\n\nNames: all" +
                          names_help,
                 d, &pos, args, vm, code)) {
    return code;
  }
  if (vm.count("name") == 0) return ctx.UsageError("'kubehsm certs renew' needs 'all' or a certificate name");
  auto version = VersionFlag(vm);
  if (!version.ok()) return ctx.UsageError(version.status().message());
  auto config = OptionalConfig(vm);
  if (!config.ok()) return ctx.Fail(config.status());
  signer::pki::PkiOptions options;
  options.config = *config;
  if (*version) options.config.kubernetes_version = **version;
  options.cert_dir = vm["cert-dir"].as<std::string>();
  options.kubeconfig_dir = vm["kubeconfig-dir"].as<std::string>();
  options.progress = [&ctx](const std::string& line) { ctx.out() << line << "\n" << std::flush; };
  if (vm.count("config") == 0) {
    // Without a config, new keys follow the cluster's algorithm as ca.crt's key shows it.
    auto ca = signer::pki::LoadCertificateFile(signer::pki::CertPath(options.cert_dir, "ca"));
    if (ca.ok()) {
      auto type = signer::KeyTypeOf(X509_get0_pubkey(ca->get()));
      if (type.ok()) options.config.encryption_algorithm = *type;
    }
  }
  const auto names = vm["name"].as<std::vector<std::string>>();
  const auto valid = signer::pki::RenewableNames();
  for (const auto& n : names) {
    if (n != "all" && std::find(valid.begin(), valid.end(), n) == valid.end()) {
      return ctx.UsageError("unknown certificate '" + n + "' (see 'kubehsm certs renew --help')");
    }
  }
  auto store = ctx.KeyStore();
  if (!store.ok()) return ctx.Fail(store.status());
  auto recorder = LedgerRecorder(ctx);
  if (!recorder.ok()) return ctx.Fail(recorder.status());
  options.record = *recorder;
  auto ledger = ctx.Ledger();
  if (!ledger.ok()) return ctx.Fail(ledger.status());
  signer::pki::RenewOptions renew;
  renew.config_given = vm.count("config") != 0;
  renew.version_given = version->has_value();
  renew.issued = LedgerIssuedCheck(**ledger);
  auto r = signer::pki::RenewCertificates(**store, names, options, renew);
  if (!r.ok()) return ctx.Fail(r.status());
  return kExitOk;
}

// --validity as a Go duration ("720h", "90m").
Result<std::optional<std::chrono::seconds>> ValidityFlag(const po::variables_map& vm) {
  if (vm.count("validity") == 0) return std::optional<std::chrono::seconds>();
  const std::string text = vm["validity"].as<std::string>();
  const std::optional<std::int64_t> ns = signer::pki::ParseGoDuration(text);
  if (!ns || *ns < 1'000'000'000) {
    return InvalidArgument("--validity: '" + text + "' is not a duration of at least 1s (e.g. 720h)");
  }
  return std::optional<std::chrono::seconds>(std::chrono::seconds(*ns / 1'000'000'000));
}

int CertsSignCsr(Context& ctx, const Args& args) {
  po::options_description d("kubehsm certs sign-csr options");
  d.add_options()("csr", po::value<std::string>()->required(), "the PEM certificate request")(
      "profile", po::value<std::string>()->required(),
      "kubeadm leaf (apiserver, etcd-server, ...), kubeconfig (admin.conf, ...), kubelet-client, kubelet-serving, "
      "or a profile of --policy")("out", po::value<std::string>()->required(), "where the certificate PEM goes (0644)")(
      "policy", po::value<std::string>(), "signing-policy file with custom profiles (YAML)")(
      "config", po::value<std::string>(),
      "kubeadm configuration of the node (node name, SANs, certificateValidityPeriod)")(
      "cert-dir", po::value<std::string>()->default_value("/etc/kubernetes/pki"),
      "directory holding the CA certificates (ca.crt, etcd/ca.crt, front-proxy-ca.crt)")(
      "validity", po::value<std::string>(), "validity (Go duration, e.g. 720h); default and maximum: the profile's")(
      "node-ip", po::value<std::vector<std::string>>()->composing(),
      "kubelet-serving: an IP address of the node that its certificate may name (repeatable)")(
      "allow-public-suffix-wildcards", po::bool_switch(),
      "accept --config certSANs wildcards over a public suffix (*.com, *.co.uk); refused by default")(
      "kubernetes-version", po::value<std::string>(), KubernetesVersionHelp().c_str());
  po::variables_map vm;
  int code = 0;
  if (!ParseArgs(ctx,
                 "kubehsm certs sign-csr --csr FILE --profile NAME --out FILE [--policy FILE] [--config FILE] "
                 "[--cert-dir DIR] [--validity DURATION] [--node-ip IP]...\n\nSigns one CSR under a profile. Key "
                 "usage, basic constraints, extended key usages and validity come from the profile, never from "
                 "the request.",
                 d, nullptr, args, vm, code)) {
    return code;
  }
  const std::string csr_file = vm["csr"].as<std::string>();
  const std::string profile_name = vm["profile"].as<std::string>();
  const fs::path out = vm["out"].as<std::string>();
  auto validity = ValidityFlag(vm);
  if (!validity.ok()) return ctx.UsageError(validity.status().message());
  auto version = VersionFlag(vm);
  if (!version.ok()) return ctx.UsageError(version.status().message());
  auto refuse = [&](const Status& s) {
    AuditCsrRefused(ctx, csr_file, profile_name, s.message());
    return ctx.Fail(s);
  };
  std::optional<signer::pki::ClusterConfig> config;
  if (vm.count("config") != 0) {
    auto c =
        signer::pki::LoadKubeadmConfig(vm["config"].as<std::string>(), vm["allow-public-suffix-wildcards"].as<bool>());
    if (!c.ok()) return ctx.Fail(c.status().WithContext("--config"));
    config = *c;
    if (*version) config->kubernetes_version = **version;
  }
  std::optional<signer::pki::SigningPolicy> policy;
  if (vm.count("policy") != 0) {
    auto p = signer::pki::LoadSigningPolicy(vm["policy"].as<std::string>());
    if (!p.ok()) return ctx.Fail(p.status().WithContext("--policy"));
    policy = std::move(*p);
  }
  auto profile = signer::pki::FindSigningProfile(profile_name, policy ? &*policy : nullptr);
  if (!profile.ok()) return refuse(Status(StatusCode::kInvalidArgument, "CSR refused: " + profile.status().message()));
  const bool control_plane_profile = profile->kind == signer::pki::SigningProfileKind::kKubeadmLeaf ||
                                     profile->kind == signer::pki::SigningProfileKind::kKubeconfig;
  if (config && control_plane_profile) {
    if (Status s = signer::pki::RequireControlPlaneNode(*config); !s.ok()) {
      return refuse(Status(s.code(), "CSR refused: --config: " + s.message()));
    }
  }
  auto pem = ReadFileBounded(csr_file, signer::pki::kMaxCsrBytes);
  if (!pem.ok()) return ctx.Fail(pem.status().WithContext("--csr " + csr_file));
  auto csr = signer::pki::ParseCsrPem(*pem);
  if (!csr.ok()) return refuse(Status(csr.status().code(), "CSR refused: " + csr_file + ": " + csr.status().message()));
  signer::pki::CsrCheckContext check;
  check.config = config ? &*config : nullptr;
  check.kubelet_serving = policy ? &policy->kubelet_serving : nullptr;
  if (vm.count("node-ip") != 0) {
    for (const auto& ip : vm["node-ip"].as<std::vector<std::string>>()) {
      const std::string bytes = signer::pki::ParseIp(ip);
      if (bytes.empty()) return ctx.UsageError("--node-ip: '" + ip + "' is not an IP address");
      check.node_ips.push_back(signer::pki::FormatIp(bytes));
    }
  }
  check.validity = *validity;
  check.version = *version;
  // Every check runs before the token is opened: a refused request never needs the PIN.
  const auto problems = signer::pki::CheckCsr(*csr, *profile, check);
  if (!problems.empty()) {
    return refuse(PermissionDenied("CSR refused: " + signer::pki::JoinProblems(problems)));
  }
  auto store = ctx.KeyStore();
  if (!store.ok()) return ctx.Fail(store.status());
  auto ca = signer::pki::LoadSigningCa(**store, vm["cert-dir"].as<std::string>(), profile->ca);
  if (!ca.ok()) return ctx.Fail(ca.status());
  auto recorder = LedgerRecorder(ctx);
  if (!recorder.ok()) return ctx.Fail(recorder.status());
  auto cert = signer::pki::SignCsr(*ca, *csr, *profile, check, signer::pki::Clock::now(), *recorder, "sign-csr");
  if (!cert.ok()) return ctx.Fail(cert.status());
  auto cert_pem = signer::pki::CertificateToPem(cert->get());
  if (!cert_pem.ok()) return ctx.Fail(cert_pem.status());
  Status written = WriteFileAtomic(out, *cert_pem, signer::pki::kCertMode);
  if (!written.ok()) return ctx.Fail(written.WithContext("--out"));
  ctx.out() << "[sign-csr] Signed \"" << profile->name << "\" certificate for CN \""
            << EscapeForTerminal(csr->common_name) << "\" -> " << EscapeForTerminal(out.string()) << "\n";
  return kExitOk;
}

// A private working directory (0700) for an archive's contents, removed on scope exit.
class WorkDir final {
 public:
  static Result<std::unique_ptr<WorkDir>> Create() {
    std::error_code ec;
    std::string tmpl = (fs::temp_directory_path(ec) / "kubehsm-sign-dir-XXXXXX").string();
    if (ec || ::mkdtemp(tmpl.data()) == nullptr) return Internal("cannot create a working directory: " + ErrnoText(errno));
    return std::make_unique<WorkDir>(fs::path(tmpl));
  }
  explicit WorkDir(fs::path p) : path_(std::move(p)) {}
  WorkDir(const WorkDir&) = delete;  // owns the directory
  WorkDir& operator=(const WorkDir&) = delete;
  ~WorkDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

int CertsSignDir(Context& ctx, const Args& args) {
  po::options_description d("kubehsm certs sign-dir options");
  d.add_options()("config", po::value<std::string>()->required(),
                  "the node's kubeadm configuration: the one it ran 'kubeadm certs generate-csr' with, or its "
                  "join file (JoinConfiguration + the cluster's ClusterConfiguration); it must set "
                  "nodeRegistration.name and the advertise address (this box's own are never the node's)")(
      "cert-dir", po::value<std::string>(), "generate-csr's --cert-dir (required unless --in-tar)")(
      "kubeconfig-dir", po::value<std::string>(), "generate-csr's --kubeconfig-dir (required unless --in-tar)")(
      "ca-dir", po::value<std::string>()->default_value("/etc/kubernetes/pki"),
      "where this signing box keeps ca.crt, etcd/ca.crt, front-proxy-ca.crt (the --cert-dir of its own "
      "'kubehsm init phase ca'); the keys are in the token")(
      "in-tar", po::value<std::string>(),
      "read the generate-csr layout from this tar archive (pki/... and *.conf), unpacked under <state-dir>/work "
      "(a killed run's leftovers are removed by the next run); every kubeconfig in it must be one the run signs")(
      "out-tar", po::value<std::string>(), "write the signed results into this tar archive")(
      "node-set", po::value<std::string>(),
      "init: the first node's full set (7 leaves, 5 kubeconfigs); control-plane-join: a joining control-plane "
      "node's set (7 leaves; admin, controller-manager, scheduler kubeconfigs; a super-admin.conf or "
      "kubelet.conf CSR is refused). Default: control-plane-join for a JoinConfiguration, else init")(
      "allow-public-suffix-wildcards", po::bool_switch(),
      "accept certSANs wildcards over a public suffix (*.com, *.co.uk) in --config; refused by default")(
      "renew", po::bool_switch(),
      "renewal: sign every CSR present again even where a valid certificate exists (the layout of "
      "'kubehsm certs renewal-csrs'; kubeconfig certificates come back as <conf>.crt)");
  po::variables_map vm;
  int code = 0;
  if (!ParseArgs(ctx,
                 "kubehsm certs sign-dir --config FILE (--cert-dir DIR --kubeconfig-dir DIR | --in-tar FILE "
                 "--out-tar FILE) [--ca-dir DIR] [--node-set init|control-plane-join] [--renew]\n\nSigns the "
                 "output of 'kubeadm certs generate-csr' for kubeadm's external-CA mode, or with --renew the output "
                 "of 'kubehsm certs renewal-csrs': every CSR is checked against its kubeadm profile under --config "
                 "(and its kubernetesVersion) first and any problem refuses the whole run. A joining control-plane "
                 "node's set (--node-set control-plane-join, the default with a JoinConfiguration) leaves out "
                 "super-admin.conf and kubelet.conf.",
                 d, nullptr, args, vm, code)) {
    return code;
  }
  const bool in_tar = vm.count("in-tar") != 0;
  if (in_tar != (vm.count("out-tar") != 0)) return ctx.UsageError("--in-tar and --out-tar go together");
  if (!in_tar && (vm.count("cert-dir") == 0 || vm.count("kubeconfig-dir") == 0)) {
    return ctx.UsageError("sign-dir needs --cert-dir and --kubeconfig-dir (or --in-tar and --out-tar)");
  }
  std::optional<signer::pki::NodeSet> node_set;
  if (vm.count("node-set") != 0) {
    node_set = signer::pki::ParseNodeSet(vm["node-set"].as<std::string>());
    if (!node_set) return ctx.UsageError("--node-set must be init or control-plane-join");
  }
  auto config =
      signer::pki::LoadKubeadmConfig(vm["config"].as<std::string>(), vm["allow-public-suffix-wildcards"].as<bool>());
  if (!config.ok()) return ctx.Fail(config.status().WithContext("--config"));
  const bool join_config = config->node_role != signer::pki::NodeRole::kInit;
  if (node_set == signer::pki::NodeSet::kInit && join_config) {
    return ctx.UsageError("--node-set init is the first node's set, but --config is a JoinConfiguration (use "
                          "--node-set control-plane-join)");
  }
  signer::pki::SignDirOptions options;
  options.config = *config;
  options.node_set = node_set.value_or(join_config ? signer::pki::NodeSet::kControlPlaneJoin : signer::pki::NodeSet::kInit);
  options.ca_dir = vm["ca-dir"].as<std::string>();
  options.renew = vm["renew"].as<bool>();
  // Tar mode unpacks into a private directory under the state directory (the kubeconfigs carry
  // client keys): a killed run's directory is removed by the next run, never left in /tmp. Every
  // name shown or audited is the archive's ("csrs.tar:pki/etcd/server.csr"), never that directory.
  std::unique_ptr<PrivateWorkDir> work;
  if (vm.count("cert-dir") != 0) options.cert_dir = vm["cert-dir"].as<std::string>();
  if (vm.count("kubeconfig-dir") != 0) options.kubeconfig_dir = vm["kubeconfig-dir"].as<std::string>();
  const std::string in_archive = in_tar ? vm["in-tar"].as<std::string>() : "";
  const std::string out_archive = in_tar ? vm["out-tar"].as<std::string>() : "";
  auto unwork = [&work, &in_archive](std::string text) {
    if (!work) return text;
    const std::string prefix = work->path().string();
    for (std::size_t at = 0; (at = text.find(prefix, at)) != std::string::npos;) {
      const bool member = at + prefix.size() < text.size() && text[at + prefix.size()] == '/';
      text.replace(at, prefix.size() + (member ? 1 : 0), member ? in_archive + ":" : in_archive);
      at += in_archive.size();
    }
    return text;
  };
  auto fail = [&](const Status& s) { return ctx.Fail(Status(s.code(), unwork(s.message()))); };
  if (in_tar) {
    if (options.cert_dir.empty() || options.kubeconfig_dir.empty()) {
      auto root = ctx.WorkRoot();
      if (!root.ok()) return ctx.Fail(root.status());
      auto w = PrivateWorkDir::Create(*root, "sign-dir-");
      if (!w.ok()) return ctx.Fail(w.status());
      work = std::move(*w);
      if (work->removed_stale() > 0) {
        ctx.out() << "[sign-dir] Removed " << work->removed_stale()
                  << (work->removed_stale() == 1 ? " working directory" : " working directories")
                  << " left by an interrupted earlier run in " << EscapeForTerminal(root->string()) << "\n";
      }
      if (options.kubeconfig_dir.empty()) options.kubeconfig_dir = work->path();
      if (options.cert_dir.empty()) options.cert_dir = work->path() / "pki";
    }
    Status s = signer::pki::ExtractGenerateCsrArchive(in_archive, options.cert_dir, options.kubeconfig_dir);
    if (!s.ok()) {
      AuditCsrRefused(ctx, in_archive, "sign-dir", unwork(s.message()));
      return fail(s);
    }
    options.from_archive = true;
    options.display_name = [&work, &in_archive, &out_archive](const fs::path& file, bool output) {
      if (!work) return file.string();
      const fs::path rel = file.lexically_relative(work->path());
      if (rel.empty() || *rel.begin() == "..") return file.string();  // not unpacked (e.g. --cert-dir given)
      const std::string& archive = output ? out_archive : in_archive;
      return rel == "." ? archive : archive + ":" + rel.generic_string();
    };
  }
  // Progress lines quote file names and refusal reasons taken from the media: escaped.
  options.progress = [&ctx, &unwork](const std::string& line) {
    ctx.out() << EscapeForTerminal(unwork(line)) << "\n" << std::flush;
  };
  options.refused = [&ctx, &unwork](const std::string& file, const std::string& reason) {
    AuditCsrRefused(ctx, unwork(file), "sign-dir", unwork(reason));
  };
  auto store = ctx.KeyStore();
  if (!store.ok()) return ctx.Fail(store.status());
  auto recorder = LedgerRecorder(ctx);
  if (!recorder.ok()) return ctx.Fail(recorder.status());
  options.record = *recorder;
  auto r = signer::pki::SignGenerateCsrDir(**store, options);
  if (!r.ok()) return fail(r.status());
  if (in_tar) {
    Status s = signer::pki::WriteSignedArchive(out_archive, options.cert_dir, options.kubeconfig_dir);
    if (!s.ok()) return fail(s);
    ctx.out() << "[sign-dir] Wrote " << EscapeForTerminal(out_archive) << "\n";
  }
  return kExitOk;
}

int CertsRenewalCsrs(Context& ctx, const Args& args) {
  po::options_description d("kubehsm certs renewal-csrs options");
  d.add_options()("cert-dir", po::value<std::string>()->default_value("/etc/kubernetes/pki"),
                  "the node's certificate directory")(
      "kubeconfig-dir", po::value<std::string>()->default_value("/etc/kubernetes"), "the node's kubeconfig directory")(
      "out-dir", po::value<std::string>(), "write the CSRs here (pki/<name>.csr, <conf>.csr)")(
      "out-tar", po::value<std::string>(), "write the CSRs into this tar archive (for 'sign-dir --renew --in-tar')")(
      "reuse-keys", po::bool_switch(), "request certificates for the existing keys instead of new ones")(
      "kubernetes-version", po::value<std::string>(),
      ("renew with the subjects of this Kubernetes version's profiles (an upgrade, e.g. v1.36.0; supported " +
       signer::pki::SupportedVersionRange() + "); default: each certificate's own subject")
          .c_str());
  po::variables_map vm;
  int code = 0;
  if (!ParseArgs(ctx,
                 "kubehsm certs renewal-csrs (--out-dir DIR | --out-tar FILE) [--cert-dir DIR] [--kubeconfig-dir DIR] "
                 "[--reuse-keys] [--kubernetes-version V]\n\nOn a node: writes a renewal CSR (same subject and SANs) "
                 "for every certificate and kubeconfig client certificate there. Each gets a new key, kept on the "
                 "node as <file>.key.pending (0600) until 'kubehsm certs install-renewed' puts the signed "
                 "certificate beside it; the output holds CSRs only, never a private key. Needs no token and no "
                 "CA key.",
                 d, nullptr, args, vm, code)) {
    return code;
  }
  const bool to_tar = vm.count("out-tar") != 0;
  if (to_tar == (vm.count("out-dir") != 0)) return ctx.UsageError("renewal-csrs needs one of --out-dir or --out-tar");
  signer::pki::RenewalCsrOptions options;
  options.cert_dir = vm["cert-dir"].as<std::string>();
  options.kubeconfig_dir = vm["kubeconfig-dir"].as<std::string>();
  options.reuse_keys = vm["reuse-keys"].as<bool>();
  if (vm.count("kubernetes-version") != 0) {
    auto v = signer::pki::ParseKubernetesVersion(vm["kubernetes-version"].as<std::string>(), "--kubernetes-version");
    if (!v.ok()) return ctx.UsageError(v.status().message());
    options.version = *v;
  }
  std::unique_ptr<WorkDir> work;
  std::string shown_prefix, archive_prefix;  // tar mode: name members "<archive>:<member>", not the work dir
  if (to_tar) {
    auto w = WorkDir::Create();
    if (!w.ok()) return ctx.Fail(w.status());
    work = std::move(*w);
    options.out_dir = work->path();
    shown_prefix = work->path().string() + "/";
    archive_prefix = vm["out-tar"].as<std::string>() + ":";
  } else {
    options.out_dir = vm["out-dir"].as<std::string>();
  }
  options.progress = [&](const std::string& line) {
    std::string shown = line;
    if (const size_t at = shown.find(shown_prefix); !shown_prefix.empty() && at != std::string::npos) {
      shown.replace(at, shown_prefix.size(), archive_prefix);
    }
    ctx.out() << EscapeForTerminal(shown) << "\n" << std::flush;
  };
  auto r = signer::pki::WriteRenewalCsrs(options);
  if (!r.ok()) return ctx.Fail(r.status());
  if (to_tar) {
    const std::string archive = vm["out-tar"].as<std::string>();
    Status s =
        signer::pki::WriteLayoutArchive(archive, work->path() / "pki", work->path(), signer::pki::RenewalCsrNames());
    if (!s.ok()) return ctx.Fail(s);
    ctx.out() << "[renewal-csrs] Wrote " << EscapeForTerminal(archive) << "\n";
  }
  ctx.out() << "[renewal-csrs] " << r->csrs << " CSR(s), " << r->new_keys
            << " new key(s) pending; after 'kubehsm certs sign-dir --renew' run 'kubehsm certs install-renewed'\n";
  return kExitOk;
}

int CertsInstallRenewed(Context& ctx, const Args& args) {
  po::options_description d("kubehsm certs install-renewed options");
  d.add_options()("cert-dir", po::value<std::string>()->default_value("/etc/kubernetes/pki"),
                  "the node's certificate directory")(
      "kubeconfig-dir", po::value<std::string>()->default_value("/etc/kubernetes"), "the node's kubeconfig directory")(
      "in-dir", po::value<std::string>(), "the signed renewal layout (pki/<name>.crt, <conf>.crt)")(
      "in-tar", po::value<std::string>(), "the signed archive of 'kubehsm certs sign-dir --renew --out-tar'");
  po::variables_map vm;
  int code = 0;
  if (!ParseArgs(ctx,
                 "kubehsm certs install-renewed (--in-tar FILE | --in-dir DIR) [--cert-dir DIR] [--kubeconfig-dir "
                 "DIR]\n\nOn a node: installs renewed certificates. Every certificate must be signed by this node's "
                 "CA and carry the pending key of 'kubehsm certs renewal-csrs' (or, with --reuse-keys, the current "
                 "key); any problem refuses the whole run. Each certificate is written atomically, then its new "
                 "key replaces the old one; kubeconfigs get the certificate and key embedded.",
                 d, nullptr, args, vm, code)) {
    return code;
  }
  const bool from_tar = vm.count("in-tar") != 0;
  if (from_tar == (vm.count("in-dir") != 0)) return ctx.UsageError("install-renewed needs one of --in-tar or --in-dir");
  std::unique_ptr<WorkDir> work;
  fs::path signed_dir;
  if (from_tar) {
    auto w = WorkDir::Create();
    if (!w.ok()) return ctx.Fail(w.status());
    work = std::move(*w);
    signed_dir = work->path();
    Status s = signer::pki::ExtractLayoutArchive(vm["in-tar"].as<std::string>(), signed_dir / "pki", signed_dir,
                                                 signer::pki::RenewalSignedNames(), "a signed renewal layout");
    if (!s.ok()) return ctx.Fail(s);
  } else {
    signed_dir = vm["in-dir"].as<std::string>();
  }
  auto r = signer::pki::InstallRenewed(signed_dir, vm["cert-dir"].as<std::string>(),
                                       vm["kubeconfig-dir"].as<std::string>(), [&ctx](const std::string& line) {
                                         ctx.out() << EscapeForTerminal(line) << "\n" << std::flush;
                                       });
  if (!r.ok()) return ctx.Fail(r.status());
  ctx.out() << "Restart the kube-apiserver, kube-controller-manager, kube-scheduler and etcd so that they use the "
               "new certificates.\n";
  return kExitOk;
}

}  // namespace

int RunCerts(Context& ctx, const Args& args) {
  return DispatchSubcommand(
      ctx, args, "certs",
      {{"issue", CertsIssue, "issue the per-node certificate set for another control-plane node"},
       {"check-expiration", CertsCheckExpiration,
        "show when each certificate expires (kubeadm's table, or -o json|yaml)"},
       {"renew", CertsRenew, "renew certificates and kubeconfig credentials (all | NAME)"},
       {"sign-csr", CertsSignCsr, "sign one CSR under a kubeadm, kubelet or policy profile"},
       {"sign-dir", CertsSignDir,
        "sign the output of 'kubeadm certs generate-csr' or, with --renew, of 'renewal-csrs' (directory or tar)"},
       {"renewal-csrs", CertsRenewalCsrs,
        "on a node: renewal CSRs for its certificates, with new keys kept on the node"},
       {"install-renewed", CertsInstallRenewed, "on a node: install the certificates 'sign-dir --renew' signed"}});
}

}  // namespace kubehsm::cli
