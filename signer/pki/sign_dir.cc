#include "signer/pki/sign_dir.h"

#include <algorithm>
#include <map>
#include <optional>
#include <string_view>
#include <system_error>
#include <utility>

#include "common/file_util.h"
#include "signer/pki/csr.h"
#include "signer/pki/init_internal.h"
#include "signer/pki/kubeconfig.h"
#include "signer/pki/pem.h"
#include "signer/pki/pki_files.h"
#include "signer/pki/profiles.h"

namespace kubehsm::signer::pki {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kOperation = "sign-dir";

// One CSR of the layout and what to do with it.
struct Item {
  std::string name;  // "etcd/server" or "admin.conf"
  const LeafProfile* leaf = nullptr;
  const KubeconfigProfile* kubeconfig = nullptr;
  SigningProfile profile;
  fs::path csr_path;
  fs::path out_path;  // <leaf>.crt or the kubeconfig file
  ParsedCsr csr;
  std::string conf_text;          // kubeconfig only
  std::string existing_cert_pem;  // kubeconfig only: a still-valid client certificate
  bool keep = false;              // a valid certificate from an earlier run is already in place
};

struct Problems {
  std::function<std::string(const fs::path&)> name;  // how a file is named (SignDirOptions::display_name)
  std::vector<std::pair<std::string, std::string>> list;
  void Add(const fs::path& file, std::string reason) { list.emplace_back(name(file), std::move(reason)); }
};

// Refuses a config whose node name or advertise address were filled in from this host: sign-dir
// runs on the signing box, whose hostname and address are not the node's.
Status RequireNodeIdentity(const ClusterConfig& config) {
  const bool join = config.node_role != NodeRole::kInit;
  const std::string doc = join ? "JoinConfiguration" : "InitConfiguration";
  if (config.node_name_from_host) {
    return InvalidArgument("the kubeadm config sets no " + doc +
                           ".nodeRegistration.name, so the node name would be this signing box's hostname '" +
                           config.node_name +
                           "': set nodeRegistration.name to the name of the node that made the "
                           "CSRs (the name it ran 'kubeadm certs generate-csr' with; kubeadm's default is that "
                           "node's hostname)");
  }
  if (config.advertise_address_from_host) {
    const std::string field = join ? "JoinConfiguration.controlPlane.localAPIEndpoint.advertiseAddress"
                                   : "InitConfiguration.localAPIEndpoint.advertiseAddress";
    return InvalidArgument("the kubeadm config sets no " + field +
                           ", so the address would be this signing box's own (" + config.advertise_address +
                           "): set it to the IP address of the node that made the CSRs");
  }
  return OkStatus();
}

std::string Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

bool IsSymlink(const fs::path& p) {
  std::error_code ec;
  return fs::is_symlink(fs::symlink_status(p, ec));
}

// Reads an input file, refusing symlinks, FIFOs and devices (the layout is plain files; a FIFO
// would block the run forever).
Result<std::string> ReadInput(const fs::path& p, std::size_t max) {
  if (IsSymlink(p)) return PermissionDenied("is a symbolic link; refusing to follow it");
  return ReadRegularFileBounded(p, max);
}

bool SamePublicKey(const EVP_PKEY* a, const EVP_PKEY* b) {
  return a != nullptr && b != nullptr && EVP_PKEY_eq(a, b) == 1;
}

// The key checks every CSR of the layout gets beyond its profile: kubeadm generates every key with
// the cluster's encryptionAlgorithm.
void CheckKeyMatchesConfig(const Item& item, const ClusterConfig& config, Problems& problems) {
  if (!item.csr.public_key || CheckKey(item.csr.public_key.get(), KeyPolicy{})) return;  // reported already
  Result<KeyType> type = KeyTypeOf(item.csr.public_key.get());
  if (!type.ok() || *type != config.encryption_algorithm) {
    problems.Add(item.csr_path, "unsupported key: " + item.csr.key_name +
                                    " does not match the cluster config's encryptionAlgorithm " +
                                    std::string(KeyTypeName(config.encryption_algorithm)));
  }
}

// Is `cert` a valid certificate for `item` under `ca` at `now`?
Status CheckExisting(const X509* cert, const Item& item, const X509* ca_cert, Clock::time_point now) {
  KH_RETURN_IF_ERROR(internal::CheckLeaf(cert, item.csr.public_key.get(), ca_cert, SpecForCsr(item.csr, item.profile)));
  KH_ASSIGN_OR_RETURN(Validity v, CertificateValidity(cert));
  if (v.not_after <= now) return FailedPrecondition("it has expired");
  return OkStatus();
}

// Is the kubeconfig part of the node set?
bool InNodeSet(const KubeconfigProfile& kc, NodeSet set) { return set == NodeSet::kInit || !kc.init_only; }

// The apiserver certificate must name everything the config says clients use to reach this node:
// a CSR lacking e.g. the controlPlaneEndpoint would yield a certificate clients behind the load
// balancer refuse. Adds one problem listing every missing SAN.
void CheckApiserverSansComplete(const Item& item, const ClusterConfig& config, Problems& problems) {
  Result<SanSet> want = ComputeSans(item.leaf->sans, config, nullptr);
  if (!want.ok()) {
    problems.Add(item.csr_path, want.status().message());
    return;
  }
  std::vector<std::string> have_ips;
  for (const std::string& ip : item.csr.sans.ips) have_ips.push_back(FormatIp(ParseIp(ip)));
  std::string missing;
  for (const std::string& dns : want->dns) {
    if (std::find(item.csr.sans.dns.begin(), item.csr.sans.dns.end(), dns) == item.csr.sans.dns.end()) {
      missing += (missing.empty() ? "" : ", ") + ("DNS:" + dns);
    }
  }
  for (const std::string& ip : want->ips) {
    if (std::find(have_ips.begin(), have_ips.end(), FormatIp(ParseIp(ip))) == have_ips.end()) {
      missing += (missing.empty() ? "" : ", ") + ("IP:" + ip);
    }
  }
  if (!missing.empty()) {
    problems.Add(item.csr_path, "lacks SANs the cluster config requires: " + missing +
                                    " (make the CSR with the same config: node name, advertise address, "
                                    "controlPlaneEndpoint and apiServer.certSANs)");
  }
}

}  // namespace

std::optional<NodeSet> ParseNodeSet(std::string_view name) {
  if (name == "init") return NodeSet::kInit;
  if (name == "control-plane-join") return NodeSet::kControlPlaneJoin;
  return std::nullopt;
}

std::vector<std::string> GenerateCsrInputNames() {
  std::vector<std::string> names;
  for (const auto& l : LeafProfiles()) {
    names.push_back("pki/" + std::string(l.file_base) + ".csr");
    names.push_back("pki/" + std::string(l.file_base) + ".key");
  }
  for (const auto& k : KubeconfigProfiles()) {
    names.emplace_back(k.file_name);
    names.push_back(std::string(k.file_name) + ".csr");
  }
  return names;
}

std::vector<std::string> SignDirOutputNames() {
  std::vector<std::string> names;
  for (const auto& ca : CaProfiles()) names.push_back("pki/" + std::string(ca.file_base) + ".crt");
  names.emplace_back("pki/sa.pub");
  for (const auto& l : LeafProfiles()) names.push_back("pki/" + std::string(l.file_base) + ".crt");
  for (const auto& k : KubeconfigProfiles()) {
    names.emplace_back(k.file_name);
    names.push_back(std::string(k.file_name) + ".crt");
  }
  return names;
}

Result<SignDirSummary> SignGenerateCsrDir(KeyStore& store, const SignDirOptions& options) {
  auto say = [&](const std::string& line) {
    if (options.progress) options.progress(line);
  };
  const ClusterConfig& config = options.config;
  KH_RETURN_IF_ERROR(RequireControlPlaneNode(config));
  KH_RETURN_IF_ERROR(RequireNodeIdentity(config));
  auto shown = [&](const fs::path& file, bool output = false) {
    return options.display_name ? options.display_name(file, output) : file.string();
  };
  Problems problems;
  problems.name = [&](const fs::path& file) { return shown(file); };
  CsrCheckContext ctx;
  ctx.config = &config;

  // ---- 1. Read and check everything; sign nothing yet. ----
  say("[sign-dir] Checking the CSRs in \"" + shown(options.cert_dir) + "\" and \"" + shown(options.kubeconfig_dir) +
      "\"");
  std::vector<Item> items;
  auto read_csr = [&](Item& item) -> bool {
    Result<std::string> pem = ReadInput(item.csr_path, kMaxCsrBytes);
    if (!pem.ok()) {
      problems.Add(item.csr_path, pem.status().code() == StatusCode::kNotFound
                                      ? "missing (kubeadm certs generate-csr writes it)"
                                      : pem.status().message());
      return false;
    }
    Result<ParsedCsr> csr = ParseCsrPem(*pem);
    if (!csr.ok()) {
      problems.Add(item.csr_path, csr.status().message());
      return false;
    }
    item.csr = std::move(csr).value();
    for (const auto& p : CheckCsr(item.csr, item.profile, ctx)) problems.Add(item.csr_path, p);
    CheckKeyMatchesConfig(item, config, problems);
    return true;
  };

  for (const LeafProfile& leaf : LeafProfiles()) {
    Item item;
    item.name = std::string(leaf.file_base);
    item.leaf = &leaf;
    item.profile = FindSigningProfile(leaf.name, nullptr).value();
    item.csr_path = options.cert_dir / (item.name + ".csr");
    item.out_path = CertPath(options.cert_dir, leaf.file_base);
    if (leaf.etcd && config.external_etcd && !PathExists(item.csr_path)) continue;
    if (options.renew && !PathExists(item.csr_path) && !IsSymlink(item.csr_path)) continue;
    if (read_csr(item) && leaf.name == "apiserver") CheckApiserverSansComplete(item, config, problems);
    if (item.csr.public_key) {
      const fs::path key_path = KeyPath(options.cert_dir, leaf.file_base);
      if (PathExists(key_path)) {  // the leaf keys may stay on the node; when present they must match
        Result<std::string> key_pem = ReadInput(key_path, kMaxPemFileBytes);
        Result<EvpPkeyPtr> key = key_pem.ok() ? ParsePrivateKeyPem(*key_pem) : Result<EvpPkeyPtr>(key_pem.status());
        if (!key.ok()) {
          problems.Add(key_path, key.status().message());
        } else if (!SamePublicKey(key->get(), item.csr.public_key.get())) {
          problems.Add(key_path, "does not hold the private key of " + item.csr_path.filename().string());
        }
      }
    }
    items.push_back(std::move(item));
  }
  for (const KubeconfigProfile& kc : KubeconfigProfiles()) {
    if (!InNodeSet(kc, options.node_set)) continue;  // its CSR, if any, is refused below
    Item item;
    item.name = std::string(kc.file_name);
    item.kubeconfig = &kc;
    item.profile = FindSigningProfile(kc.file_name, nullptr).value();
    item.out_path = options.kubeconfig_dir / kc.file_name;
    item.csr_path = options.kubeconfig_dir / (item.name + ".csr");
    if (options.renew && !PathExists(item.csr_path) && !IsSymlink(item.csr_path)) continue;
    if (options.renew && !PathExists(item.out_path) && !IsSymlink(item.out_path)) {
      // Renewal layout: the kubeconfig (with its key) stays on the node; only the certificate returns.
      item.out_path = options.kubeconfig_dir / (item.name + ".crt");
      read_csr(item);
      items.push_back(std::move(item));
      continue;
    }
    if (read_csr(item)) {
      Result<std::string> text = ReadInput(item.out_path, kMaxPemFileBytes);
      if (!text.ok()) {
        problems.Add(item.out_path, text.status().code() == StatusCode::kNotFound
                                        ? "missing (kubeadm certs generate-csr writes it with the client key)"
                                        : text.status().message());
      } else {
        item.conf_text = *text;
        Result<KubeconfigCredentials> creds = ReadKubeconfig(item.conf_text);
        Result<EvpPkeyPtr> key = !creds.ok() ? Result<EvpPkeyPtr>(creds.status())
                                 : creds->client_key_pem.empty()
                                     ? Result<EvpPkeyPtr>(InvalidArgument("has no client-key-data"))
                                     : ParsePrivateKeyPem(creds->client_key_pem);
        if (!key.ok()) {
          problems.Add(item.out_path, key.status().message());
        } else if (!SamePublicKey(key->get(), item.csr.public_key.get())) {
          problems.Add(item.out_path, "its client-key-data is not the key of " + item.csr_path.filename().string());
        } else {
          Result<std::string> url = KubeconfigServerUrl(kc, config);
          const std::string want_server = url.ok() ? *url : "";
          if (creds->server != want_server) {
            say("[sign-dir] WARNING: " + shown(item.out_path) + " uses server " + creds->server +
                ", the config gives " + want_server);
          }
          item.existing_cert_pem = creds->client_cert_pem;
        }
      }
    }
    items.push_back(std::move(item));
  }

  if (options.renew && items.empty()) {
    problems.Add(options.cert_dir, "no renewal CSR here or in " + shown(options.kubeconfig_dir) +
                                       " (kubehsm certs renewal-csrs writes them)");
  }

  // Unknown CSR files would silently stay unsigned: refuse them.
  std::error_code ec;
  const bool same_dirs = fs::equivalent(options.cert_dir, options.kubeconfig_dir, ec);
  for (auto it = fs::recursive_directory_iterator(options.cert_dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const fs::path& p = it->path();
    if (p.extension() != ".csr") continue;
    const std::string rel = fs::relative(p, options.cert_dir).replace_extension().generic_string();
    if (same_dirs && FindKubeconfigProfile(rel) != nullptr) continue;  // checked with the kubeconfig dir
    const LeafProfile* leaf = FindLeafProfile(rel);
    if (leaf == nullptr || leaf->file_base != rel) {
      problems.Add(p, "unknown CSR file: no kubeadm certificate is named '" + rel + "'");
    }
  }
  for (auto it = fs::directory_iterator(options.kubeconfig_dir, ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!name.ends_with(".conf.csr")) continue;
    const KubeconfigProfile* kc = FindKubeconfigProfile(name.substr(0, name.size() - 4));
    if (kc == nullptr) {
      problems.Add(it->path(),
                   "unknown CSR file: no kubeadm kubeconfig is named '" + name.substr(0, name.size() - 4) + "'");
    } else if (!InNodeSet(*kc, options.node_set)) {
      problems.Add(it->path(), "not part of the control-plane-join set: a joining control-plane node gets no " +
                                   std::string(kc->file_name) +
                                   " (kubeadm writes super-admin.conf on init only; join's kubelet TLS bootstrap "
                                   "writes kubelet.conf); remove it and its kubeconfig from the node's output");
    }
  }

  // From an archive, every kubeconfig goes back into the signed archive: one this run does not sign
  // would travel back unsigned, client key included, looking like a result.
  if (options.from_archive) {
    for (const KubeconfigProfile& kc : KubeconfigProfiles()) {
      const fs::path conf = options.kubeconfig_dir / kc.file_name;
      if (!PathExists(conf) && !IsSymlink(conf)) continue;
      const bool signed_here =
          std::any_of(items.begin(), items.end(), [&](const Item& i) { return i.kubeconfig == &kc; });
      if (signed_here) continue;
      problems.Add(conf, !InNodeSet(kc, options.node_set)
                             ? "not part of the control-plane-join set: a joining control-plane node gets no " +
                                   std::string(kc.file_name) + "; remove it from the archive"
                             : "has no " + std::string(kc.file_name) +
                                   ".csr beside it, so it would go back unsigned with its client key; add its CSR "
                                   "or remove it from the archive");
    }
  }

  // The CAs: certificates from the CA dir, keys from the store; none of their keys in the output.
  std::map<CaId, CsrSigningCa> cas;
  std::map<CaId, std::string> ca_file_bytes;
  const bool same_ca_dir = fs::equivalent(options.ca_dir, options.cert_dir, ec);
  for (const CaProfile& ca : CaProfiles()) {
    const bool needed = std::any_of(items.begin(), items.end(), [&](const Item& i) { return i.profile.ca == ca.id; });
    if (!needed) continue;
    Result<CsrSigningCa> loaded = LoadSigningCa(store, options.ca_dir, ca.id);
    if (!loaded.ok()) {
      problems.Add(CertPath(options.ca_dir, ca.file_base), loaded.status().message());
      continue;
    }
    Result<std::string> bytes = ReadInput(CertPath(options.ca_dir, ca.file_base), kMaxPemFileBytes);
    if (!bytes.ok()) {
      problems.Add(CertPath(options.ca_dir, ca.file_base), bytes.status().message());
      continue;
    }
    const fs::path key_in_output = KeyPath(options.cert_dir, ca.file_base);
    if (PathExists(key_in_output)) {
      problems.Add(key_in_output,
                   "a CA private key must not be in the cert dir: kubeadm enters external-CA mode "
                   "only when it is absent");
    }
    const fs::path dst = CertPath(options.cert_dir, ca.file_base);
    if (!same_ca_dir && PathExists(dst)) {
      Result<std::string> have = ReadInput(dst, kMaxPemFileBytes);
      if (!have.ok() || *have != *bytes) {
        problems.Add(dst, "exists and differs from " + CertPath(options.ca_dir, ca.file_base).string() +
                              " (a certificate of another cluster?)");
      }
    }
    ca_file_bytes[ca.id] = std::move(bytes).value();
    cas.emplace(ca.id, std::move(loaded).value());
  }

  // sa.pub: the token's service-account public key, copied like `certs issue` does, when the CA dir
  // has it (kubehsm serve signs with the token key; kubeadm itself only generates sa.* when sa.key
  // is absent and then replaces sa.pub too).
  std::optional<std::string> sa_pub;
  if (PathExists(SaPubPath(options.ca_dir)) && !same_ca_dir) {
    Result<std::string> bytes = ReadInput(SaPubPath(options.ca_dir), kMaxPemFileBytes);
    if (!bytes.ok() || !ParsePublicKeyPem(*bytes).ok()) {
      problems.Add(SaPubPath(options.ca_dir), bytes.ok() ? "not a PUBLIC KEY PEM" : bytes.status().message());
    } else {
      Result<std::string> have = PathExists(SaPubPath(options.cert_dir))
                                     ? ReadInput(SaPubPath(options.cert_dir), kMaxPemFileBytes)
                                     : Result<std::string>(NotFound(""));
      if (have.ok() && *have != *bytes) {
        problems.Add(SaPubPath(options.cert_dir), "exists and differs from " + SaPubPath(options.ca_dir).string());
      }
      sa_pub = std::move(bytes).value();
    }
  }

  // Certificates from an earlier (possibly interrupted) run: keep the valid ones (renewal replaces them).
  for (Item& item : items) {
    if (options.renew || !item.csr.public_key || !cas.contains(item.profile.ca)) continue;
    const X509* ca_cert = cas.at(item.profile.ca).cert.get();
    if (item.leaf != nullptr && PathExists(item.out_path)) {
      Result<std::string> pem = ReadInput(item.out_path, kMaxPemFileBytes);
      Result<X509Ptr> cert = pem.ok() ? ParseCertificatePem(*pem) : Result<X509Ptr>(pem.status());
      Status s = cert.ok() ? CheckExisting(cert->get(), item, ca_cert, options.now) : cert.status();
      if (s.ok()) {
        item.keep = true;
      } else {
        problems.Add(item.out_path, "exists but is not a valid certificate for " + item.csr_path.filename().string() +
                                        " (" + s.message() + "); remove it to have it signed again");
      }
    } else if (item.kubeconfig != nullptr && !item.existing_cert_pem.empty()) {
      Result<X509Ptr> cert = ParseCertificatePem(item.existing_cert_pem);
      Status s = cert.ok() ? CheckExisting(cert->get(), item, ca_cert, options.now) : cert.status();
      if (s.ok()) {
        item.keep = true;
      } else {
        problems.Add(item.out_path, "already holds a client certificate that is not valid for " +
                                        item.csr_path.filename().string() + " (" + s.message() + ")");
      }
    }
  }

  if (!problems.list.empty()) {
    std::string joined;
    for (const auto& [file, reason] : problems.list) {
      say("[sign-dir] REFUSED " + file + ": " + reason);
      if (options.refused) options.refused(file, reason);
      joined += (joined.empty() ? "" : "; ") + file + ": " + reason;
    }
    return PermissionDenied("refusing to sign anything: " + std::to_string(problems.list.size()) +
                            " problem(s): " + joined);
  }

  // ---- 2. Sign, record, write. ----
  SignDirSummary summary;
  for (const auto& [id, bytes] : ca_file_bytes) {
    const CaProfile& ca = GetCaProfile(id);
    const fs::path dst = CertPath(options.cert_dir, ca.file_base);
    if (same_ca_dir || PathExists(dst)) continue;  // identical (checked above)
    KH_RETURN_IF_ERROR(EnsureDirectory(dst.parent_path(), kDirMode));
    KH_RETURN_IF_ERROR(WriteFileAtomic(dst, bytes, kCertMode));
    say("[sign-dir] Placed \"" + std::string(ca.file_base) + "\" CA certificate (no key)");
    ++summary.ca_written;
  }
  if (sa_pub && !PathExists(SaPubPath(options.cert_dir))) {
    KH_RETURN_IF_ERROR(WriteFileAtomic(SaPubPath(options.cert_dir), *sa_pub, kSaPubMode));
    say("[sign-dir] Placed \"sa.pub\" (the token's service-account public key)");
  }
  for (Item& item : items) {
    const CsrSigningCa& ca = cas.at(item.profile.ca);
    std::string cert_pem = item.existing_cert_pem;
    if (item.keep && item.leaf != nullptr) {
      say("[sign-dir] Using existing " + shown(item.out_path, true));
      ++summary.kept;
      continue;
    }
    if (!item.keep) {
      KH_ASSIGN_OR_RETURN(X509Ptr cert,
                          SignCsr(ca, item.csr, item.profile, ctx, options.now, options.record, kOperation));
      KH_ASSIGN_OR_RETURN(cert_pem, CertificateToPem(cert.get()));
      ++summary.signed_certs;
    }
    if (item.leaf != nullptr || item.conf_text.empty()) {  // a leaf, or a renewed kubeconfig's <conf>.crt
      KH_RETURN_IF_ERROR(EnsureDirectory(item.out_path.parent_path(), kDirMode));
      KH_RETURN_IF_ERROR(WriteFileAtomic(item.out_path, cert_pem, kCertMode));
      say("[sign-dir] Signed \"" + item.name + "\" -> " + shown(item.out_path, true));
      continue;
    }
    KH_ASSIGN_OR_RETURN(std::string ca_pem, CertificateToPem(ca.cert.get()));
    Result<KubeconfigCredentials> creds = ReadKubeconfig(item.conf_text);
    if (item.keep && creds.ok() && Trim(creds->ca_pem) == Trim(ca_pem)) {
      say("[sign-dir] Using existing " + shown(item.out_path, true));
      ++summary.kept;
      continue;
    }
    if (item.keep) ++summary.kept;
    KH_ASSIGN_OR_RETURN(std::string updated,
                        UpdateKubeconfigCredentials(item.conf_text, cert_pem, std::nullopt, ca_pem));
    KH_RETURN_IF_ERROR(WriteFileAtomic(item.out_path, updated, kKubeconfigMode));
    say("[sign-dir] Signed \"" + item.name + "\" -> " + shown(item.out_path, true));
  }
  say("[sign-dir] Done: " + std::to_string(summary.signed_certs) + " certificate(s) signed, " +
      std::to_string(summary.kept) + " kept from an earlier run, " + std::to_string(summary.ca_written) +
      " CA certificate(s) placed");
  return summary;
}

}  // namespace kubehsm::signer::pki
