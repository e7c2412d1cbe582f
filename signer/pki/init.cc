#include "signer/pki/init.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "common/file_util.h"
#include "signer/jwt/sa_keys.h"
#include "signer/pki/init_internal.h"
#include "signer/pki/pem.h"
#include "signer/pki/pki_files.h"
#include "signer/pki/profiles.h"

namespace kubehsm::signer::pki {
namespace internal {

// Generates up to `count` software keys of one type on a small bounded pool of std::jthreads,
// ahead of use: the leaf key generations of a run are independent of each other and of the token
// work, and with RSA they dominate `kubehsm init`, so they should use every core. Keys are
// interchangeable, so handing them out in completion order changes nothing in the output.
class LeafKeyPool final {
 public:
  LeafKeyPool(KeyType type, int count, unsigned workers) : type_(type), to_start_(count) {
    for (unsigned i = 0; i < workers; ++i) workers_.emplace_back([this] { Work(); });
  }
  LeafKeyPool(const LeafKeyPool&) = delete;  // owns threads that point at it
  LeafKeyPool& operator=(const LeafKeyPool&) = delete;
  // Starts no further key; waits for the ones in progress (at most one per worker).
  ~LeafKeyPool() {
    {
      std::lock_guard lock(mu_);
      to_start_ = 0;
    }
    workers_.clear();
  }

  // The next key generated ahead (waiting for one in progress), or a fresh one generated on the
  // calling thread once the pool's `count` keys are used up.
  Result<SigningKey> Take() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return !ready_.empty() || (to_start_ == 0 && running_ == 0); });
    if (ready_.empty()) {
      lock.unlock();
      return SigningKey::GenerateSoftware(type_);
    }
    Result<SigningKey> key = std::move(ready_.front());
    ready_.pop_front();
    return key;
  }

 private:
  void Work() {
    for (;;) {
      {
        std::lock_guard lock(mu_);
        if (to_start_ == 0) return;
        --to_start_;
        ++running_;
      }
      Result<SigningKey> key = SigningKey::GenerateSoftware(type_);
      {
        std::lock_guard lock(mu_);
        --running_;
        ready_.push_back(std::move(key));
      }
      cv_.notify_all();
    }
  }

  const KeyType type_;
  std::mutex mu_;
  std::condition_variable cv_;
  int to_start_;     // keys not yet started (guarded by mu_)
  int running_ = 0;  // keys being generated (guarded by mu_)
  std::deque<Result<SigningKey>> ready_;
  std::vector<std::jthread> workers_;  // last member: joined before the state above is destroyed
};

void Runner::Say(const std::string& line) const {
  if (options.progress) options.progress(line);
}

Runner::LongStep Runner::BeginLongStep(const std::string& line) const {
  Say(line);
  if (options.long_step) options.long_step(true);
  return LongStep(&options);
}

Status Runner::Write(const std::filesystem::path& path, std::string_view data, mode_t mode) {
  KH_RETURN_IF_ERROR(EnsureDirectory(path.parent_path(), kDirMode));
  KH_RETURN_IF_ERROR(WriteFileAtomic(path, data, mode));
  ++summary.written;
  return OkStatus();
}

Validity Runner::LeafValidity() const {
  return {options.now - kBackdate, options.now + options.config.cert_validity};
}

Validity Runner::CaValidity() const { return {options.now - kBackdate, options.now + options.config.ca_validity}; }

Result<LoadedCa> Runner::LoadCa(const CaProfile& ca, const std::filesystem::path& cert_dir) {
  const auto path = CertPath(cert_dir, ca.file_base);
  Result<X509Ptr> cert = LoadCertificateFile(path);
  if (!cert.ok()) {
    if (cert.status().code() == StatusCode::kNotFound) {
      return FailedPrecondition("the " + std::string(ca.name) + " certificate authority is missing (" +
                                path.string() + "): run 'kubehsm init phase ca' first");
    }
    return cert.status();
  }
  Result<SigningKey> key = store.Find(ca.key_label);
  if (!key.ok()) {
    return key.status().WithContext("the " + std::string(ca.name) + " certificate authority's key (token label '" +
                                    std::string(ca.key_label) + "')");
  }
  if (!CertificateHasKey(cert->get(), key->public_key())) {
    return FailedPrecondition(path.string() + " does not match the token key '" + std::string(ca.key_label) + "'");
  }
  return LoadedCa{&ca, std::move(cert).value(), std::move(key).value()};
}

Status CheckLeaf(const X509* cert, const EVP_PKEY* key, const X509* ca_cert, const CertSpec& want) {
  if (!CertificateHasKey(cert, key)) return FailedPrecondition("the certificate does not match its key");
  Status chain = VerifyIssuedBy(cert, ca_cert);
  if (!chain.ok()) return FailedPrecondition("not signed by the expected CA: " + chain.message());
  KH_ASSIGN_OR_RETURN(CertSpec have, SpecFromCertificate(cert));
  if (have.common_name != want.common_name || have.organizations != want.organizations) {
    return FailedPrecondition("the subject differs from the profile (CN '" + have.common_name + "', want '" +
                              want.common_name + "')");
  }
  if (have.ext_key_usages != want.ext_key_usages) return FailedPrecondition("the extended key usages differ");
  // Extra SANs are fine (kubeadm's VerifyHostname check); every configured one must be present.
  for (const auto& d : want.sans.dns) {
    if (std::find(have.sans.dns.begin(), have.sans.dns.end(), d) == have.sans.dns.end()) {
      return FailedPrecondition("the certificate is not valid for DNS name '" + d + "'");
    }
  }
  for (const auto& ip : want.sans.ips) {
    if (std::find(have.sans.ips.begin(), have.sans.ips.end(), ip) == have.sans.ips.end()) {
      return FailedPrecondition("the certificate is not valid for IP address '" + ip + "'");
    }
  }
  return OkStatus();
}

Result<KeyAndCert> Runner::IssueWithNewKey(const LoadedCa& ca, const CertSpec& spec, const Validity& validity,
                                           std::string_view profile, std::optional<SigningKey> existing_key) {
  Result<SigningKey> next = existing_key ? Result<SigningKey>(std::move(*existing_key))
                            : leaf_keys != nullptr ? leaf_keys->Take()
                                                   : SigningKey::GenerateSoftware(options.config.encryption_algorithm);
  KH_ASSIGN_OR_RETURN(SigningKey leaf_key, std::move(next));
  KH_ASSIGN_OR_RETURN(X509Ptr cert,
                      SignAndRecord([&] { return IssueLeaf(ca.key, ca.cert.get(), leaf_key.public_key(), spec, validity); },
                                    options.record, {nullptr, ca.profile->name, profile, operation}));
  KH_ASSIGN_OR_RETURN(std::string key_pem, PrivateKeyToPem(leaf_key.pkey()));
  KH_ASSIGN_OR_RETURN(std::string cert_pem, CertificateToPem(cert.get()));
  return KeyAndCert{std::move(key_pem), std::move(cert_pem)};
}

Status Runner::WriteKeyAndCert(std::string_view base, const KeyAndCert& kc) {
  const auto key_path = KeyPath(options.cert_dir, base);
  const auto cert_path = CertPath(options.cert_dir, base);
  KH_RETURN_IF_ERROR(Write(key_path, kc.key_pem, kKeyMode));
  Status s = Write(cert_path, kc.cert_pem, kCertMode);
  if (!s.ok()) {
    // Do not leave a new key beside an old (or no) certificate.
    std::error_code ec;
    std::filesystem::remove(key_path, ec);
    --summary.written;
    return s;
  }
  return OkStatus();
}

namespace {

// "<dir>/.<name>.pending": written before a CA key is created in the token and removed once the
// CA certificate is on disk. A run killed in between leaves the marker beside the missing
// certificate, so the re-run can tell the key it finds in the token is its own and complete the
// certificate from it, instead of refusing as it must for a key it knows nothing about.
std::filesystem::path PendingMarker(const std::filesystem::path& cert_path) {
  return cert_path.parent_path() / ("." + cert_path.filename().string() + ".pending");
}

void RemovePendingMarker(const std::filesystem::path& cert_path) {
  std::error_code ec;
  std::filesystem::remove(PendingMarker(cert_path), ec);
}

std::string GoList(const std::vector<std::string>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) out += (i ? " " : "") + v[i];
  return out + "]";
}

Status CaPhase(Runner& r) {
  r.Say("[certs] Using certificateDir folder \"" + r.options.cert_dir.string() + "\"");
  for (const CaProfile& ca : CaProfiles()) {
    const auto path = CertPath(r.options.cert_dir, ca.file_base);
    const std::string label(ca.key_label);
    const bool cert_exists = PathExists(path);
    Result<SigningKey> key = r.store.Find(label);
    if (!key.ok() && key.status().code() != StatusCode::kNotFound) return key.status();
    if (cert_exists && key.ok()) {
      Result<X509Ptr> cert = LoadCertificateFile(path);
      Status problem;
      if (!cert.ok()) {
        problem = cert.status();
      } else if (!X509_check_ca(cert->get())) {
        problem = FailedPrecondition(path.string() + " is not a CA certificate");
      } else if (!CertificateHasKey(cert->get(), key->public_key())) {
        problem = FailedPrecondition(path.string() + " does not match the token key '" + label + "'");
      }
      if (problem.ok()) {
        r.Say("[certs] Using existing " + std::string(ca.file_base) + " certificate authority");
        ++r.summary.kept;
        RemovePendingMarker(path);  // killed after the certificate was written
        continue;
      }
      if (!r.options.overwrite) {
        return Status(problem.code(), problem.message() + " (use --overwrite to re-issue the certificate from the "
                                                          "token key)");
      }
    } else if (cert_exists && !key.ok()) {
      if (!r.options.overwrite) {
        return FailedPrecondition(path.string() + " exists but the token has no key '" + label +
                                  "': restore the key, remove the certificate, or use --overwrite to create a new "
                                  "key and certificate (every certificate it signed must then be re-issued)");
      }
    } else if (!cert_exists && key.ok()) {
      if (PathExists(PendingMarker(path))) {
        r.Say("[certs] Completing \"" + std::string(ca.file_base) + "\" from an interrupted run (key in the token as '" +
              label + "')");
      } else if (!r.options.overwrite) {
        return FailedPrecondition("the token already holds a key '" + label + "' but " + path.string() +
                                  " is missing: restore the certificate, or use --overwrite to issue a new CA "
                                  "certificate from the existing key");
      }
    }
    // Make sure the certificate can be written before a key is created in the token.
    KH_RETURN_IF_ERROR(EnsureDirectory(path.parent_path(), kDirMode));
    const bool creating = !key.ok();
    if (creating) {
      KH_RETURN_IF_ERROR(WriteFileAtomic(PendingMarker(path), label + "\n", kKeyMode));
      {
        const auto step =
            r.BeginLongStep("[certs] Creating the \"" + std::string(ca.file_base) + "\" key in the token (" +
                            std::string(KeyTypeName(r.options.config.encryption_algorithm)) + ")");
        key = r.store.Create(label, r.options.config.encryption_algorithm);
      }
      if (!key.ok()) return key.status().WithContext("creating the " + std::string(ca.name) + " key in the token");
      ++r.summary.keys_created;
      r.Say("[certs] Generating \"" + std::string(ca.file_base) + "\" certificate and key (key in the token as '" +
            label + "')");
    } else {
      r.Say("[certs] Generating \"" + std::string(ca.file_base) + "\" certificate from the existing token key '" +
            label + "'");
    }
    Result<X509Ptr> cert =
        SignAndRecord([&] { return SelfSignCa(*key, CaSpec(ca, r.options.config.kubernetes_version), r.CaValidity()); },
                      r.options.record, {nullptr, ca.name, ca.name, r.operation});
    Result<std::string> pem = cert.ok() ? CertificateToPem(cert->get()) : Result<std::string>(cert.status());
    Status written = pem.ok() ? r.Write(path, *pem, kCertMode) : pem.status();
    if (!written.ok()) {
      // A key this run just created and no certificate for it: remove it again so that a re-run
      // starts clean (a key that existed before is never touched).
      if (creating && r.store.Remove(label).ok()) {
        --r.summary.keys_created;
        RemovePendingMarker(path);
      }
      return written;
    }
    RemovePendingMarker(path);
  }
  return OkStatus();
}

Status SaPhase(Runner& r) {
  // The service-account key is the active key of signer/jwt's rotation scheme (label
  // "kubehsm-sa:active:<since>:<kid>"), so `kubehsm sa rotate` and init agree on it.
  const auto pub_path = SaPubPath(r.options.cert_dir);
  const bool pub_exists = PathExists(pub_path);
  Result<jwt::ActiveSaKey> active = jwt::FindActiveSaKey(r.store);
  if (!active.ok() && active.status().code() != StatusCode::kFailedPrecondition) return active.status();
  if (!active.ok() && pub_exists && !r.options.overwrite) {
    return FailedPrecondition(pub_path.string() +
                              " exists but the token has no active service-account key: restore the key, remove "
                              "sa.pub, or use --overwrite to create a new key");
  }
  Result<SigningKey> key = InvalidArgument("unset");
  if (active.ok()) {
    key = std::move(active->key);
  } else {
    const auto step = r.BeginLongStep("[certs] Creating the \"sa\" key in the token (" +
                                      std::string(KeyTypeName(r.options.config.encryption_algorithm)) + ")");
    key = jwt::EnsureActiveSaKey(r.store, r.options.config.encryption_algorithm);
  }
  if (!key.ok()) return key.status().WithContext("creating the service-account key in the token");
  if (active.ok()) {
    r.Say("[certs] Using the existing \"sa\" key");
  } else {
    ++r.summary.keys_created;
    r.Say("[certs] Generating \"sa\" key and public key (key in the token)");
  }
  KH_ASSIGN_OR_RETURN(std::string pem, PublicKeyToPem(key->public_key()));
  if (pub_exists) {
    Result<std::string> have = ReadFileBounded(pub_path, kMaxPemFileBytes);
    if (have.ok() && *have == pem) {
      ++r.summary.kept;
      return OkStatus();
    }
    if (!r.options.overwrite) {
      return FailedPrecondition(pub_path.string() +
                                " does not hold the public half of the token's active service-account key (use "
                                "--overwrite to rewrite it)");
    }
  }
  return r.Write(pub_path, pem, kSaPubMode);
}

}  // namespace

Status IssueLeafSet(Runner& r, const std::filesystem::path& ca_dir) {
  std::vector<LoadedCa> cas;
  for (const LeafProfile& leaf : LeafProfiles()) {
    if (leaf.etcd && r.options.config.external_etcd) continue;
    const CaProfile& ca_profile = GetCaProfile(leaf.ca);
    auto it = std::find_if(cas.begin(), cas.end(), [&](const LoadedCa& c) { return c.profile->id == leaf.ca; });
    if (it == cas.end()) {
      KH_ASSIGN_OR_RETURN(LoadedCa loaded, r.LoadCa(ca_profile, ca_dir));
      cas.push_back(std::move(loaded));
      it = cas.end() - 1;
    }
    std::vector<std::string> warnings;
    KH_ASSIGN_OR_RETURN(CertSpec spec, LeafSpec(leaf, r.options.config, &warnings));
    for (const auto& w : warnings) r.Say(w);
    const auto key_path = KeyPath(r.options.cert_dir, leaf.file_base);
    const auto cert_path = CertPath(r.options.cert_dir, leaf.file_base);
    const bool key_exists = PathExists(key_path);
    const bool cert_exists = PathExists(cert_path);
    // A key without its certificate is what a run killed between the two writes leaves (the key is
    // written first): complete the pair with that key when it is a regular file holding a key of
    // the cluster's algorithm. Anything else is refused below as before.
    std::optional<SigningKey> lone_key;
    if (key_exists && !cert_exists && !std::filesystem::is_symlink(key_path)) {
      Result<EvpPkeyPtr> pkey = LoadPrivateKeyFile(key_path);
      Result<KeyType> type = pkey.ok() ? KeyTypeOf(pkey->get()) : Result<KeyType>(pkey.status());
      if (type.ok() && *type == r.options.config.encryption_algorithm) {
        Result<SigningKey> k = SigningKey::Create(std::move(*pkey), nullptr);
        if (k.ok()) lone_key = std::move(*k);
      }
    }
    if ((key_exists || cert_exists) && !lone_key) {
      Status problem;
      if (!key_exists || !cert_exists) {
        problem = FailedPrecondition((key_exists ? cert_path : key_path).string() + " is missing");
      } else {
        Result<X509Ptr> cert = LoadCertificateFile(cert_path);
        Result<EvpPkeyPtr> key = LoadPrivateKeyFile(key_path);
        if (!cert.ok()) {
          problem = cert.status();
        } else if (!key.ok()) {
          problem = key.status();
        } else {
          problem = CheckLeaf(cert->get(), key->get(), it->cert.get(), spec);
        }
      }
      if (problem.ok()) {
        r.Say("[certs] Using existing " + std::string(leaf.file_base) + " certificate and key on disk");
        r.summary.kept += 2;
        continue;
      }
      if (!r.options.overwrite) {
        return Status(problem.code(), "existing " + std::string(leaf.file_base) + " certificate cannot be used: " +
                                          problem.message() + " (remove it or use --overwrite to regenerate it)");
      }
    }
    r.Say("[certs] Generating \"" + std::string(leaf.file_base) + "\" certificate and key" +
          (lone_key ? " (certificate for the key left on disk by an interrupted run)" : ""));
    KH_ASSIGN_OR_RETURN(KeyAndCert kc, r.IssueWithNewKey(*it, spec, r.LeafValidity(), leaf.name, std::move(lone_key)));
    KH_RETURN_IF_ERROR(r.WriteKeyAndCert(leaf.file_base, kc));
    if (leaf.sans == SanRule::kApiServer || leaf.sans == SanRule::kEtcdServer || leaf.sans == SanRule::kEtcdPeer) {
      r.Say("[certs] " + std::string(leaf.file_base) + " serving cert is signed for DNS names " +
            GoList(spec.sans.dns) + " and IPs " + GoList(spec.sans.ips));
    }
  }
  return OkStatus();
}

void WarnValidity(Runner& r) {
  using std::chrono::hours;
  const auto& c = r.options.config;
  if (c.cert_validity > hours(8760)) {
    r.Say("[certs] WARNING: certificateValidityPeriod exceeds the recommended 8760h (1 year)");
  }
  if (c.ca_validity > hours(87600)) {
    r.Say("[certs] WARNING: caCertificateValidityPeriod exceeds the recommended 87600h (10 years)");
  }
  if (c.cert_validity > c.ca_validity) {
    r.Say("[certs] WARNING: certificateValidityPeriod is longer than caCertificateValidityPeriod");
  }
}

bool SameDirectory(const std::filesystem::path& a, const std::filesystem::path& b) {
  std::error_code ec;
  return std::filesystem::equivalent(a, b, ec) && !ec;
}

Status RunPhase(Runner& r, InitPhase phase) {
  switch (phase) {
    case InitPhase::kCa:
      WarnValidity(r);
      return CaPhase(r);
    case InitPhase::kSa:
      return SaPhase(r);
    case InitPhase::kCerts:
      r.Say("[certs] Using certificateDir folder \"" + r.options.cert_dir.string() + "\"");
      return IssueLeafSet(r, r.options.cert_dir);
    case InitPhase::kKubeconfig:
      return WriteKubeconfigs(r, /*node_set_only=*/false);
  }
  return Internal("unknown phase");
}

}  // namespace internal

std::optional<InitPhase> ParseInitPhase(std::string_view name) {
  if (name == "ca") return InitPhase::kCa;
  if (name == "sa") return InitPhase::kSa;
  if (name == "certs") return InitPhase::kCerts;
  if (name == "kubeconfig") return InitPhase::kKubeconfig;
  return std::nullopt;
}

namespace {

// `init` builds the first node's PKI (CAs, super-admin.conf, kubelet.conf); a JoinConfiguration
// describes another node, whose set is `certs issue` / `sign-dir --node-set control-plane-join`.
Status RequireInitNode(const ClusterConfig& config) {
  if (config.node_role == NodeRole::kInit) return OkStatus();
  return InvalidArgument(
      "the kubeadm config is a JoinConfiguration: 'init' builds the first control-plane node's PKI; for a joining "
      "control-plane node use 'kubehsm certs issue --config FILE' or 'kubehsm certs sign-dir --node-set "
      "control-plane-join'");
}

}  // namespace

Result<RunSummary> RunInitPhase(KeyStore& store, InitPhase phase, const PkiOptions& options) {
  KH_RETURN_IF_ERROR(RequireInitNode(options.config));
  internal::Runner r{store, options, {}};
  KH_RETURN_IF_ERROR(internal::RunPhase(r, phase));
  return r.summary;
}

namespace {

// The fresh leaf keys a full run will need: one per leaf whose key and certificate are both absent
// and one per absent kubeconfig. (Existing files that must be regenerated get their key on demand.)
int FreshLeafKeysNeeded(const PkiOptions& options) {
  int n = 0;
  for (const LeafProfile& leaf : LeafProfiles()) {
    if (leaf.etcd && options.config.external_etcd) continue;
    if (!PathExists(KeyPath(options.cert_dir, leaf.file_base)) && !PathExists(CertPath(options.cert_dir, leaf.file_base))) {
      ++n;
    }
  }
  for (const KubeconfigProfile& kc : KubeconfigProfiles()) {
    if (!PathExists(options.kubeconfig_dir / kc.file_name)) ++n;
  }
  return n;
}

}  // namespace

Result<RunSummary> RunInit(KeyStore& store, const PkiOptions& options) {
  KH_RETURN_IF_ERROR(RequireInitNode(options.config));
  internal::Runner r{store, options, {}};
  // Leaf keys are generated in the background from the start, overlapping the token's CA and SA
  // key generation; bounded to the cores there are (at most 4 threads).
  if (const int needed = FreshLeafKeysNeeded(options); needed > 0) {
    const unsigned workers = std::clamp(std::thread::hardware_concurrency(), 1u, 4u);
    r.leaf_keys = std::make_shared<internal::LeafKeyPool>(options.config.encryption_algorithm, needed,
                                                          std::min(workers, static_cast<unsigned>(needed)));
  }
  for (InitPhase p : {InitPhase::kCa, InitPhase::kSa, InitPhase::kCerts, InitPhase::kKubeconfig}) {
    KH_RETURN_IF_ERROR(internal::RunPhase(r, p));
  }
  if (r.summary.written == 0 && r.summary.keys_created == 0) {
    r.Say("[init] Nothing changed: every certificate, key and kubeconfig file already exists and is valid");
  } else {
    r.Say("[init] Done: " + std::to_string(r.summary.written) + " file(s) written, " +
          std::to_string(r.summary.keys_created) + " key pair(s) created in the token, " +
          std::to_string(r.summary.kept) + " existing item(s) kept");
  }
  return r.summary;
}

Result<RunSummary> IssueNodeSet(KeyStore& store, const std::filesystem::path& ca_cert_dir, const PkiOptions& options) {
  KH_RETURN_IF_ERROR(RequireControlPlaneNode(options.config));
  internal::Runner r{store, options, {}, "issue"};
  r.Say("[certs] Using certificateDir folder \"" + options.cert_dir.string() + "\"");
  // The shared files: CA certificates (and sa.pub) copied byte-for-byte.
  for (const CaProfile& ca : CaProfiles()) {
    if (ca.id == CaId::kEtcdCa && options.config.external_etcd) continue;
    const auto src = CertPath(ca_cert_dir, ca.file_base);
    const auto dst = CertPath(options.cert_dir, ca.file_base);
    KH_RETURN_IF_ERROR(r.LoadCa(ca, ca_cert_dir).status());
    KH_ASSIGN_OR_RETURN(std::string bytes, ReadFileBounded(src, kMaxPemFileBytes));
    if (internal::SameDirectory(ca_cert_dir, options.cert_dir) || (PathExists(dst) && [&] {
          Result<std::string> have = ReadFileBounded(dst, kMaxPemFileBytes);
          return have.ok() && *have == bytes;
        }())) {
      r.Say("[certs] Using existing " + std::string(ca.file_base) + " certificate authority");
      ++r.summary.kept;
      continue;
    }
    if (PathExists(dst) && !options.overwrite) {
      return FailedPrecondition(dst.string() + " differs from " + src.string() + " (use --overwrite to replace it)");
    }
    r.Say("[certs] Copying \"" + std::string(ca.file_base) + "\" certificate from " + src.string());
    KH_RETURN_IF_ERROR(r.Write(dst, bytes, kCertMode));
  }
  const auto sa_src = SaPubPath(ca_cert_dir);
  const auto sa_dst = SaPubPath(options.cert_dir);
  if (PathExists(sa_src) && !internal::SameDirectory(ca_cert_dir, options.cert_dir)) {
    KH_ASSIGN_OR_RETURN(std::string bytes, ReadFileBounded(sa_src, kMaxPemFileBytes));
    Result<std::string> have = ReadFileBounded(sa_dst, kMaxPemFileBytes);
    if (have.ok() && *have == bytes) {
      ++r.summary.kept;
    } else {
      if (have.ok() && !options.overwrite) {
        return FailedPrecondition(sa_dst.string() + " differs from " + sa_src.string() +
                                  " (use --overwrite to replace it)");
      }
      KH_RETURN_IF_ERROR(r.Write(sa_dst, bytes, kSaPubMode));
    }
  }
  KH_RETURN_IF_ERROR(internal::IssueLeafSet(r, ca_cert_dir));
  KH_RETURN_IF_ERROR(internal::WriteKubeconfigs(r, /*node_set_only=*/true));

  // What travels to the node, and what does not exist to travel.
  std::string certs;
  std::string keys;
  auto add = [](std::string& list, const std::filesystem::path& p) { list += (list.empty() ? "" : ", ") + p.string(); };
  for (const CaProfile& ca : CaProfiles()) {
    if (ca.id == CaId::kEtcdCa && options.config.external_etcd) continue;
    add(certs, CertPath(options.cert_dir, ca.file_base));
  }
  if (PathExists(SaPubPath(options.cert_dir))) add(certs, SaPubPath(options.cert_dir));
  for (const LeafProfile& leaf : LeafProfiles()) {
    if (leaf.etcd && options.config.external_etcd) continue;
    add(certs, CertPath(options.cert_dir, leaf.file_base));
    add(keys, KeyPath(options.cert_dir, leaf.file_base));
  }
  for (const KubeconfigProfile& kc : KubeconfigProfiles()) {
    if (!kc.init_only) add(keys, options.kubeconfig_dir / kc.file_name);
  }
  r.Say("[certs] Copy to node \"" + options.config.node_name + "\" (into its " + options.config.cert_dir +
        " and /etc/kubernetes, keeping this layout): " + certs);
  r.Say("[certs] Also copy, over a trusted channel, then delete here: " + keys +
        " (the leaf private keys were generated on this signing box; the kubeconfigs hold their client keys)");
  r.Say("[certs] Not copied: no CA private key exists on disk (ca, etcd/ca and front-proxy-ca keys stay in the "
        "token, so kubeadm join runs in external-CA mode); super-admin.conf and kubelet.conf are not issued (kubeadm "
        "creates super-admin.conf on init only, and join's kubelet TLS bootstrap writes kubelet.conf)");
  return r.summary;
}

}  // namespace kubehsm::signer::pki
