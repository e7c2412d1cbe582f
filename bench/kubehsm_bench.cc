// kubehsm_bench: the in-process measurements behind bench/run. Each subcommand prints one JSON
// object per line on stdout: finished figures ({"name", ...}, see harness.h) or raw samples
// ({"sample": ...}) that bench/run pairs with its own process-level measurements.
//
//   sign      --token-uri U --pin-source S [--module M] --types T,.. --threads 1,2,4 --rounds R --seconds S
//             kubehsm's JWS signing (jwt::SignCompact over the provider key) vs a raw Token::SignDigest loop
//   verify    --types T,.. --rounds R --seconds S
//             jwt::VerifyServiceAccountToken vs a raw EVP_DigestVerify loop on the same key and token
//   ledger    --dir D --sizes 1000,100000,1000000 --rounds R --ops K
//             ledger::Ledger::Record of a realistic record at each ledger size (the smallest is the baseline)
//   crypto    --token-uri U --pin-source S [--module M] --type T --token-keys 4 --soft-keys 12 --signs 15 --files 23 --dir D
//             one sample of the bare cryptography (and file writes) of `kubehsm init`, each part timed alone
//   inproc    --token-uri U --pin-source S [--module M] --threads N --seconds S
//             one sample: jwt::SignEncodedClaims with the token's active service-account key (serve's work, in process)
//   serve     --socket P --clients N --seconds S
//             one sample: v1 ExternalJWTSigner/Sign through `kubehsm serve` from N concurrent clients
//
// Every loop is bounded by its --seconds / --ops; the program talks only to the local token and the
// given Unix socket.
#include <openssl/evp.h>
#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "bench/harness.h"
#include "cli/token_key_store.h"
#include "common/base64.h"
#include "common/file_util.h"
#include "common/key_type.h"
#include "common/openssl_error.h"
#include "common/ssl_ptr.h"
#include "hsm/hsm.h"
#include "hsm/pkcs11.h"
#include "ledger/ledger.h"
#include "proto/externaljwt_v1.grpc.pb.h"
#include "signer/jwt/claims.h"
#include "signer/jwt/jws.h"
#include "signer/jwt/kid.h"
#include "signer/jwt/sa_keys.h"
#include "signer/jwt/verify.h"
#include "signer/signing_key.h"

namespace kubehsm::bench {
namespace {

using Args = std::map<std::string, std::string>;

Result<Args> ParseFlags(int argc, char** argv, int first) {
  Args a;
  for (int i = first; i < argc; ++i) {
    std::string k = argv[i];
    if (!k.starts_with("--") || i + 1 >= argc) return InvalidArgument("expected --flag value, got '" + k + "'");
    a[k.substr(2)] = argv[++i];
  }
  return a;
}

std::string Get(const Args& a, const std::string& k, const std::string& def = "") {
  auto it = a.find(k);
  return it == a.end() ? def : it->second;
}
double GetD(const Args& a, const std::string& k, double def) {
  auto it = a.find(k);
  return it == a.end() ? def : std::stod(it->second);
}
int GetI(const Args& a, const std::string& k, int def) { return static_cast<int>(GetD(a, k, def)); }

std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

Result<KeyType> TypeFlag(const std::string& name) {
  auto t = ParseKeyType(name);
  if (!t) return InvalidArgument("unknown key type '" + name + "'");
  return *t;
}

// "rsa2048" / "p256": the short form used in figure names.
std::string ShortType(KeyType t) {
  switch (t) {
    case KeyType::kRsa2048: return "rsa2048";
    case KeyType::kEcP256: return "p256";
    default: return std::string(KeyTypeName(t));
  }
}

int64_t NowUnix() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// A typical bound service-account token request: a pod-bound token for a workload, as kubelet asks.
jwt::BoundTokenRequest TypicalRequest() {
  jwt::BoundTokenRequest r;
  r.issuer = "https://kubernetes.default.svc.cluster.local";
  r.audiences = {"https://kubernetes.default.svc.cluster.local"};
  r.namespace_name = "payments";
  r.service_account_name = "checkout-api";
  r.service_account_uid = "6a1f7c1e-2b3d-4e5f-8a9b-0c1d2e3f4a5b";
  r.pod = jwt::ObjectRef{"checkout-api-7d9f8b6c5-x2x9q", "0b6f5a2e-1d1c-4f0e-9a57-3c2d1e0f9a8b"};
  r.node = jwt::ObjectRef{"worker-03", "c3d2e1f0-aaaa-4bbb-8ccc-123456789abc"};
  r.expiration_seconds = 3607;
  return r;
}

Result<std::unique_ptr<hsm::Hsm>> OpenToken(const Args& a) {
  hsm::HsmOptions o;
  o.module_path = Get(a, "module", KUBEHSM_DEFAULT_MODULE);
  o.token_uri = Get(a, "token-uri");
  o.pin_source = Get(a, "pin-source");
  o.sessions = 16;
  return hsm::Hsm::Open(o);
}

Result<hsm::KeyInfo> FindOrCreate(hsm::Hsm& h, const std::string& label, KeyType type) {
  Result<hsm::KeyInfo> k = h.token().FindKeyByLabel(label);
  if (k.ok() || k.status().code() != StatusCode::kNotFound) return k;
  return h.token().GenerateKeyPair(label, type);
}

std::string Sha256(std::string_view data) {
  unsigned char md[32];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<char*>(md), len);
}

// ---- (1) token signing ---------------------------------------------------------------------

Status RunSign(const Args& a) {
  KH_ASSIGN_OR_RETURN(std::unique_ptr<hsm::Hsm> h, OpenToken(a));
  const int rounds = GetI(a, "rounds", 5);
  const double seconds = GetD(a, "seconds", 2);
  for (const std::string& tname : Split(Get(a, "types", "rsa-2048,ecdsa-p256"))) {
    KH_ASSIGN_OR_RETURN(KeyType type, TypeFlag(tname));
    KH_ASSIGN_OR_RETURN(hsm::KeyInfo info, FindOrCreate(*h, "bench-sign-" + ShortType(type), type));
    KH_ASSIGN_OR_RETURN(EvpPkeyPtr pkey, h->LoadPrivateKey(info));
    KH_ASSIGN_OR_RETURN(signer::SigningKey key, signer::SigningKey::Create(std::move(pkey), h->bridge().libctx()));
    KH_ASSIGN_OR_RETURN(std::string kid, jwt::KidFromSpki(key.spki_der()));
    KH_ASSIGN_OR_RETURN(std::string claims, jwt::BuildBoundClaims(TypicalRequest(), NowUnix(), "bench-jti"));

    // Both paths are checked once by an independent software verification before timing.
    KH_ASSIGN_OR_RETURN(std::string token, jwt::SignCompact(key, kid, claims));
    KH_ASSIGN_OR_RETURN(jwt::VerificationKey vk, jwt::VerificationKeyFromSpki(key.spki_der()));
    std::vector<jwt::VerificationKey> keys;
    keys.push_back(std::move(vk));
    jwt::VerifyOptions vo;
    vo.issuers = {TypicalRequest().issuer};
    vo.now = NowUnix();
    if (auto v = jwt::VerifyServiceAccountToken(token, keys, vo); !v.ok()) {
      return Internal("the JWS made for the benchmark does not verify: " + v.message);
    }
    const std::string signing_input = token.substr(0, token.rfind('.'));
    KH_ASSIGN_OR_RETURN(std::string raw_sig, h->token().SignDigest(info, "SHA256", Sha256(signing_input)));
    KH_RETURN_IF_ERROR(jwt::VerifyJwsSignature(jwt::JwsAlgorithmFor(type), key.public_key(), type, signing_input,
                                               raw_sig)
                           .WithContext("the raw C_Sign signature"));

    hsm::Token& token_ref = h->token();
    auto raw = [&]() -> Status { return token_ref.SignDigest(info, "SHA256", Sha256(signing_input)).status(); };
    auto jws = [&]() -> Status { return jwt::SignCompact(key, kid, claims).status(); };
    KH_RETURN_IF_ERROR(Throughput(1, 0.2, raw).status());  // warm the session pools and key caches
    KH_RETURN_IF_ERROR(Throughput(1, 0.2, jws).status());
    for (const std::string& ts : Split(Get(a, "threads", "1,2,4"))) {
      const int threads = std::stoi(ts);
      KH_ASSIGN_OR_RETURN(Paired p, Interleave(
                                        rounds, [&] { return Throughput(threads, seconds, raw); },
                                        [&] { return Throughput(threads, seconds, jws); }));
      Figure f;
      f.name = "sign.jws." + ShortType(type) + ".t" + ts;
      f.value = Median(p.subject);
      f.unit = "sig/s";
      f.baseline = Median(p.baseline);
      f.ratio = p.MedianRatio();
      f.target = 0.95;
      f.detail = {{"threads", threads},
                  {"sessions", threads},
                  {"baseline_path", "Token::SignDigest (SHA-256 in software + one C_Sign, pooled session)"},
                  {"subject_path", "jwt::SignCompact over the pkcs11-provider EVP_PKEY"},
                  {"rounds_baseline", p.baseline},
                  {"rounds_subject", p.subject}};
      Emit(f);
    }
    // What the software check of every token signature (SigningKey::Sign) costs: one in-process
    // JWS (sign in the token + verify) against the verification alone, paired rounds, one thread.
    KH_ASSIGN_OR_RETURN(std::string der_sig, key.Sign(signing_input));
    EVP_PKEY* pub = key.public_key();
    auto verify_only = [&]() -> Status { return signer::VerifySignature(pub, type, signing_input, der_sig); };
    KH_RETURN_IF_ERROR(Throughput(1, 0.2, verify_only).status());
    KH_ASSIGN_OR_RETURN(Paired vp, Interleave(
                                       rounds, [&] { return Throughput(1, seconds, verify_only); },
                                       [&] { return Throughput(1, seconds, jws); }));
    Figure vf;
    vf.name = "sign.verify_share." + ShortType(type);
    vf.value = Median(vp.subject);
    vf.unit = "sig/s";
    vf.baseline = Median(vp.baseline);
    vf.ratio = vp.MedianRatio();  // jws rate / verify rate = share of a JWS call spent verifying
    vf.better = "lower";
    vf.detail = {{"baseline_path", "signer::VerifySignature alone (software, default provider)"},
                 {"subject_path", "jwt::SignCompact, whose SigningKey::Sign verifies every token signature"},
                 {"rounds_baseline", vp.baseline},
                 {"rounds_subject", vp.subject}};
    Emit(vf);
  }
  return OkStatus();
}

// ---- (3) verification ----------------------------------------------------------------------

Status RunVerify(const Args& a) {
  const int rounds = GetI(a, "rounds", 5);
  const double seconds = GetD(a, "seconds", 2);
  for (const std::string& tname : Split(Get(a, "types", "rsa-2048,ecdsa-p256"))) {
    KH_ASSIGN_OR_RETURN(KeyType type, TypeFlag(tname));
    KH_ASSIGN_OR_RETURN(signer::SigningKey key, signer::SigningKey::GenerateSoftware(type));
    KH_ASSIGN_OR_RETURN(std::string kid, jwt::KidFromSpki(key.spki_der()));
    const int64_t now = NowUnix();
    KH_ASSIGN_OR_RETURN(std::string claims, jwt::BuildBoundClaims(TypicalRequest(), now, "bench-jti"));
    KH_ASSIGN_OR_RETURN(std::string token, jwt::SignCompact(key, kid, claims));
    KH_ASSIGN_OR_RETURN(jwt::VerificationKey vk, jwt::VerificationKeyFromSpki(key.spki_der()));
    std::vector<jwt::VerificationKey> keys;
    keys.push_back(std::move(vk));
    jwt::VerifyOptions vo;
    vo.issuers = {TypicalRequest().issuer};
    vo.now = now;

    // The raw loop gets the signature in the form OpenSSL takes (DER for ECDSA), decoded once.
    const std::string signing_input = token.substr(0, token.rfind('.'));
    KH_ASSIGN_OR_RETURN(std::string sig, Base64UrlDecode(token.substr(token.rfind('.') + 1)));
    if (!IsRsa(type)) {
      KH_ASSIGN_OR_RETURN(sig, jwt::EcdsaRawToDer(sig, type));
    }
    EVP_PKEY* pub = key.public_key();
    auto raw = [&]() -> Status {
      EvpMdCtxPtr ctx(EVP_MD_CTX_new());
      if (!ctx || EVP_DigestVerifyInit_ex(ctx.get(), nullptr, "SHA256", nullptr, nullptr, pub, nullptr) != 1) {
        return OpenSslError("EVP_DigestVerifyInit_ex");
      }
      if (EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                           reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size()) != 1) {
        return Internal("raw EVP_DigestVerify failed");
      }
      return OkStatus();
    };
    auto subject = [&]() -> Status {
      jwt::VerifyResult r = jwt::VerifyServiceAccountToken(token, keys, vo);
      return r.ok() ? OkStatus() : Internal("VerifyServiceAccountToken: " + r.message);
    };
    KH_RETURN_IF_ERROR(raw());
    KH_RETURN_IF_ERROR(subject());
    KH_ASSIGN_OR_RETURN(Paired p, Interleave(
                                      rounds, [&] { return Throughput(1, seconds, raw); },
                                      [&] { return Throughput(1, seconds, subject); }));
    Figure f;
    f.name = "verify.sa." + ShortType(type);
    f.value = Median(p.subject);
    f.unit = "verif/s";
    f.baseline = Median(p.baseline);
    f.ratio = p.MedianRatio();
    f.target = 0.9;
    f.detail = {{"threads", 1},
                {"token_bytes", token.size()},
                {"baseline_path", "EVP_DigestVerifyInit_ex + EVP_DigestVerify on the signing input"},
                {"subject_path", "jwt::VerifyServiceAccountToken (parse, kid, alg, signature, aud, time, claims)"},
                {"rounds_baseline", p.baseline},
                {"rounds_subject", p.subject}};
    Emit(f);
  }
  return OkStatus();
}

// ---- (5) ledger scaling --------------------------------------------------------------------

// A realistic certificate row: an apiserver serving certificate of a kubeadm cluster.
ledger::IssuanceRecord RealisticRecord(std::mt19937_64& rng) {
  auto hex = [&](int bytes) {
    static const char* d = "0123456789ABCDEF";
    std::string s;
    for (int i = 0; i < bytes; ++i) {
      const auto b = static_cast<unsigned>(rng() & 0xff);
      s += d[b >> 4];
      s += d[b & 15];
    }
    return s;
  };
  ledger::IssuanceRecord r;
  r.serial_hex = "5" + hex(15);
  r.issuer_ca = "ca";
  r.subject = "CN=kube-apiserver";
  r.sans = {"DNS:control-plane-1", "DNS:kubernetes", "DNS:kubernetes.default", "DNS:kubernetes.default.svc",
            "DNS:kubernetes.default.svc.cluster.local", "IP:10.96.0.1", "IP:10.0.0.10"};
  r.profile = "apiserver";
  r.operation = "issue";
  r.not_before = 1764000000;
  r.not_after = r.not_before + 365 * 86400;
  std::string fp = hex(32);
  for (char& c : fp) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  r.sha256_fingerprint = fp;
  r.requester = "root";
  r.host = "control-plane-1";
  r.issued_at = r.not_before;
  // A PEM of typical size (an RSA-2048 apiserver certificate is about 1.3 kB of PEM).
  std::string body;
  for (int i = 0; i < 20; ++i) body += Base64Encode(hex(24)).substr(0, 64) + "\n";
  r.cert_pem = "-----BEGIN CERTIFICATE-----\n" + body + "-----END CERTIFICATE-----\n";
  return r;
}

// Fills a fresh ledger at `path` with `rows` realistic rows in one transaction, through SQLite
// directly (the Ledger API commits every row durably, which would take hours for 10^6).
Status FillLedger(const std::filesystem::path& path, long rows, std::mt19937_64& rng) {
  { KH_RETURN_IF_ERROR(ledger::Ledger::Open(path).status()); }  // creates the schema
  sqlite3* db = nullptr;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) return Internal("sqlite3_open " + path.string());
  std::unique_ptr<sqlite3, int (*)(sqlite3*)> closer(db, sqlite3_close);
  sqlite3_exec(db, "PRAGMA synchronous=OFF; PRAGMA cache_size=-262144; BEGIN", nullptr, nullptr, nullptr);
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db,
                         "INSERT INTO certificates (serial, issuer_ca, subject, sans, profile, operation, not_before, "
                         "not_after, sha256, requester, host, issued_at, cert_pem) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                         -1, &st, nullptr) != SQLITE_OK) {
    return Internal(std::string("prepare: ") + sqlite3_errmsg(db));
  }
  std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> fin(st, sqlite3_finalize);
  ledger::IssuanceRecord r = RealisticRecord(rng);
  const std::string sans = "DNS:control-plane-1,DNS:kubernetes,IP:10.96.0.1";
  char serial[40];
  char fp[80];
  const unsigned long long salt = rng();
  static const char* kCas[] = {"ca", "etcd-ca", "front-proxy-ca"};
  for (long i = 0; i < rows; ++i) {
    // Random-looking serials and fingerprints, as real ones are (they land all over the indexes).
    const unsigned long long x = (static_cast<unsigned long long>(i) + 1) * 0x9E3779B97F4A7C15ULL ^ salt;
    std::snprintf(serial, sizeof serial, "3%016llX%08lX", x, static_cast<unsigned long>(i));
    std::snprintf(fp, sizeof fp, "%016llx%016llx%016llx%016lx", x, ~x, x * 31, static_cast<unsigned long>(i));
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, kCas[i % 3], -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, r.subject.c_str(), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, sans.c_str(), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, r.profile.c_str(), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, r.operation.c_str(), -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, r.not_before);
    sqlite3_bind_int64(st, 8, r.not_after);
    sqlite3_bind_text(st, 9, fp, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 10, r.requester.c_str(), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 11, r.host.c_str(), -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 12, r.issued_at + i);
    sqlite3_bind_text(st, 13, r.cert_pem.c_str(), -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) return Internal(std::string("fill insert: ") + sqlite3_errmsg(db));
  }
  if (sqlite3_exec(db, "COMMIT; PRAGMA wal_checkpoint(TRUNCATE)", nullptr, nullptr, nullptr) != SQLITE_OK) {
    return Internal(std::string("fill commit: ") + sqlite3_errmsg(db));
  }
  return OkStatus();
}

Status RunLedger(const Args& a) {
  const std::filesystem::path dir = Get(a, "dir");
  if (dir.empty()) return InvalidArgument("--dir is required");
  const int rounds = GetI(a, "rounds", 5);
  const int ops = GetI(a, "ops", 30);
  std::vector<long> sizes;
  for (const auto& s : Split(Get(a, "sizes", "1000,100000,1000000"))) sizes.push_back(std::stol(s));
  std::vector<std::string> labels = Split(Get(a, "labels", "1e3,1e5,1e6"));
  if (labels.size() != sizes.size()) return InvalidArgument("--labels must match --sizes");
  std::mt19937_64 rng{std::random_device{}()};
  std::vector<std::unique_ptr<ledger::Ledger>> ledgers;
  std::vector<double> fill_seconds;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    const auto path = dir / ("ledger-" + labels[i] + ".db");
    std::filesystem::remove(path);
    const auto t0 = Clock::now();
    KH_RETURN_IF_ERROR(FillLedger(path, sizes[i], rng));
    fill_seconds.push_back(SecondsSince(t0));
    KH_ASSIGN_OR_RETURN(std::unique_ptr<ledger::Ledger> l, ledger::Ledger::Open(path));
    ledgers.push_back(std::move(l));
  }
  // One batch = `ops` durable Records into one ledger; a batch's cost is the median op time.
  auto batch = [&](std::size_t i) -> Result<double> {
    std::vector<double> t;
    for (int k = 0; k < ops; ++k) {
      const ledger::IssuanceRecord r = RealisticRecord(rng);
      const auto t0 = Clock::now();
      KH_RETURN_IF_ERROR(ledgers[i]->Record(r));
      t.push_back(SecondsSince(t0) * 1000);
    }
    return Median(t);
  };
  KH_RETURN_IF_ERROR(batch(0).status());  // warm-up
  std::vector<std::vector<double>> per(sizes.size());
  for (int r = 0; r < rounds; ++r) {  // A B C A B C ...
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      KH_ASSIGN_OR_RETURN(double ms, batch(i));
      per[i].push_back(ms);
    }
  }
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    Paired p{per[0], per[i]};
    Figure f;
    f.name = "ledger.record." + labels[i];
    f.value = Median(per[i]);
    f.unit = "ms/issue";
    f.baseline = Median(per[0]);
    f.ratio = p.MedianRatio();
    f.better = "lower";
    if (i > 0) f.target = 1.2;
    f.detail = {{"rows", sizes[i]},
                {"baseline_rows", sizes[0]},
                {"ops_per_round", ops},
                {"fill_seconds", fill_seconds[i]},
                {"db_bytes", std::filesystem::file_size(dir / ("ledger-" + labels[i] + ".db"))},
                {"path", "Ledger::Record (one durable autocommit INSERT, WAL, synchronous=FULL)"},
                {"rounds_baseline", per[0]},
                {"rounds_subject", per[i]}};
    Emit(f);
  }
  return OkStatus();
}

// ---- (4) the bare cryptography of `kubehsm init` -------------------------------------------

CK_ATTRIBUTE Attr(CK_ATTRIBUTE_TYPE t, void* v, CK_ULONG n) { return CK_ATTRIBUTE{t, v, n}; }

Status RunCrypto(const Args& a) {
  KH_ASSIGN_OR_RETURN(std::unique_ptr<hsm::Hsm> h, OpenToken(a));
  KH_ASSIGN_OR_RETURN(KeyType type, TypeFlag(Get(a, "type", "rsa-2048")));
  const int token_keys = GetI(a, "token-keys", 4);
  const int soft_keys = GetI(a, "soft-keys", 12);
  const int signs = GetI(a, "signs", 15);
  const int files = GetI(a, "files", 23);
  const std::filesystem::path dir = Get(a, "dir");
  if (dir.empty()) return InvalidArgument("--dir is required");

  CK_FUNCTION_LIST* f = h->module().fn();
  CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
  if (f->C_OpenSession(h->token().info().slot_id, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &s) !=
      CKR_OK) {
    return Internal("C_OpenSession");
  }
  // Raw C_GenerateKeyPair with the same security attributes kubehsm asks for; nothing else.
  CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
  CK_ULONG bits = static_cast<CK_ULONG>(RsaBits(type));
  CK_BYTE exponent[] = {1, 0, 1};
  CK_BYTE p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
  std::vector<CK_ATTRIBUTE> pub = {Attr(CKA_TOKEN, &yes, 1), Attr(CKA_VERIFY, &yes, 1)};
  std::vector<CK_ATTRIBUTE> priv = {Attr(CKA_TOKEN, &yes, 1),      Attr(CKA_PRIVATE, &yes, 1),
                                    Attr(CKA_SENSITIVE, &yes, 1),  Attr(CKA_EXTRACTABLE, &no, 1),
                                    Attr(CKA_SIGN, &yes, 1),       Attr(CKA_DECRYPT, &no, 1)};
  CK_MECHANISM gen{CKM_EC_KEY_PAIR_GEN, nullptr, 0};
  if (IsRsa(type)) {
    gen.mechanism = CKM_RSA_PKCS_KEY_PAIR_GEN;
    pub.push_back(Attr(CKA_MODULUS_BITS, &bits, sizeof(bits)));
    pub.push_back(Attr(CKA_PUBLIC_EXPONENT, exponent, sizeof(exponent)));
  } else if (type == KeyType::kEcP256) {
    pub.push_back(Attr(CKA_EC_PARAMS, p256, sizeof(p256)));
  } else {
    return InvalidArgument("crypto: rsa-2048 or ecdsa-p256");
  }
  std::vector<std::pair<CK_OBJECT_HANDLE, CK_OBJECT_HANDLE>> made;
  auto t0 = Clock::now();
  for (int i = 0; i < token_keys; ++i) {
    CK_OBJECT_HANDLE hp = 0, hk = 0;
    CK_RV rv = f->C_GenerateKeyPair(s, &gen, pub.data(), pub.size(), priv.data(), priv.size(), &hp, &hk);
    if (rv != CKR_OK) return Internal("C_GenerateKeyPair rv=" + std::to_string(rv));
    made.emplace_back(hp, hk);
  }
  const double token_keygen = SecondsSince(t0);

  // Token signatures over a certificate-sized TBS: SHA-256 + one C_Sign each (CKM_RSA_PKCS over
  // DigestInfo, or CKM_ECDSA).
  const std::string tbs(1100, 'x');
  static const unsigned char kDigestInfo[] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                              0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};
  t0 = Clock::now();
  for (int i = 0; i < signs; ++i) {
    std::string in = Sha256(tbs + std::to_string(i));
    CK_MECHANISM m{CKM_ECDSA, nullptr, 0};
    if (IsRsa(type)) {
      in = std::string(reinterpret_cast<const char*>(kDigestInfo), sizeof(kDigestInfo)) + in;
      m.mechanism = CKM_RSA_PKCS;
    }
    unsigned char sig[512];
    CK_ULONG len = sizeof(sig);
    if (f->C_SignInit(s, &m, made[static_cast<std::size_t>(i) % made.size()].second) != CKR_OK ||
        f->C_Sign(s, reinterpret_cast<CK_BYTE*>(in.data()), in.size(), sig, &len) != CKR_OK) {
      return Internal("raw C_Sign failed");
    }
  }
  const double token_sign = SecondsSince(t0);
  for (auto [hp, hk] : made) {
    f->C_DestroyObject(s, hk);
    f->C_DestroyObject(s, hp);
  }
  f->C_CloseSession(s);

  t0 = Clock::now();
  for (int i = 0; i < soft_keys; ++i) {
    KH_RETURN_IF_ERROR(signer::SigningKey::GenerateSoftware(type).status());
  }
  const double soft_keygen = SecondsSince(t0);

  // The files init writes: atomically (temp + fsync + rename + directory fsync), typical sizes.
  std::filesystem::create_directories(dir);
  const std::string body(IsRsa(type) ? 1500 : 800, 'k');
  t0 = Clock::now();
  for (int i = 0; i < files; ++i) {
    KH_RETURN_IF_ERROR(WriteFileAtomic(dir / ("file" + std::to_string(i)), body, 0600));
  }
  const double file_write = SecondsSince(t0);

  nlohmann::json j = {{"sample", "crypto"},
                      {"type", std::string(KeyTypeName(type))},
                      {"token_keygen_s", token_keygen},
                      {"token_sign_s", token_sign},
                      {"soft_keygen_s", soft_keygen},
                      {"file_write_s", file_write},
                      {"bare_crypto_s", token_keygen + token_sign + soft_keygen},
                      {"counts", {{"token_keys", token_keys}, {"signs", signs}, {"soft_keys", soft_keys}, {"files", files}}}};
  std::cout << j.dump() << "\n";
  return OkStatus();
}

// ---- (2) serve: in-process baseline and socket clients -------------------------------------

std::string ClaimsB64(int64_t now) {
  Result<std::string> c = jwt::BuildBoundClaims(TypicalRequest(), now, "bench-jti");
  return c.ok() ? Base64UrlEncode(*c) : std::string();
}

Status RunInproc(const Args& a) {
  KH_ASSIGN_OR_RETURN(std::unique_ptr<hsm::Hsm> h, OpenToken(a));
  cli::TokenKeyStore store(*h);
  KH_ASSIGN_OR_RETURN(jwt::ActiveSaKey active, jwt::FindActiveSaKey(store));
  const std::string claims = ClaimsB64(NowUnix());
  const int threads = GetI(a, "threads", 1);
  auto op = [&]() -> Status { return jwt::SignEncodedClaims(active.key, active.kid, claims).status(); };
  KH_RETURN_IF_ERROR(Throughput(threads, 0.2, op).status());
  KH_ASSIGN_OR_RETURN(double rate, Throughput(threads, GetD(a, "seconds", 2), op));
  std::cout << nlohmann::json({{"sample", "inproc"}, {"threads", threads}, {"rate", rate}}).dump() << "\n";
  return OkStatus();
}

Status RunServeLoad(const Args& a) {
  const std::string socket = Get(a, "socket");
  const int clients = GetI(a, "clients", 1);
  const double seconds = GetD(a, "seconds", 2);
  const std::string claims = ClaimsB64(NowUnix());
  std::vector<std::unique_ptr<v1::ExternalJWTSigner::Stub>> stubs;
  for (int i = 0; i < clients; ++i) {
    grpc::ChannelArguments args;
    args.SetString(GRPC_ARG_DEFAULT_AUTHORITY, "localhost");
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // one connection per client, as separate apiservers
    stubs.push_back(v1::ExternalJWTSigner::NewStub(
        grpc::CreateCustomChannel("unix:" + socket, grpc::InsecureChannelCredentials(), args)));
  }
  std::atomic<bool> stop{false}, measuring{false};
  std::mutex mu;
  std::vector<double> latencies_ms;
  long errors = 0;
  std::string first_error;
  std::vector<std::jthread> threads;
  for (int i = 0; i < clients; ++i) {
    threads.emplace_back([&, i] {
      std::vector<double> mine;
      long errs = 0;
      std::string err;
      while (!stop) {
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
        v1::SignJWTRequest req;
        req.set_claims(claims);
        v1::SignJWTResponse resp;
        const auto t0 = Clock::now();
        grpc::Status s = stubs[static_cast<std::size_t>(i)]->Sign(&ctx, req, &resp);
        const double ms = SecondsSince(t0) * 1000;
        if (!measuring) continue;  // warm-up: connect, first calls
        if (!s.ok() || resp.signature().empty()) {
          ++errs;
          if (err.empty()) err = s.error_message();
        } else {
          mine.push_back(ms);
        }
      }
      std::lock_guard lock(mu);
      latencies_ms.insert(latencies_ms.end(), mine.begin(), mine.end());
      errors += errs;
      if (first_error.empty()) first_error = err;
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  measuring = true;
  const auto t0 = Clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  measuring = false;
  const double elapsed = SecondsSince(t0);
  stop = true;
  threads.clear();
  nlohmann::json j = {{"sample", "serve"},
                      {"clients", clients},
                      {"rate", static_cast<double>(latencies_ms.size()) / elapsed},
                      {"p50_ms", Percentile(latencies_ms, 50)},
                      {"p99_ms", Percentile(latencies_ms, 99)},
                      {"calls", latencies_ms.size()},
                      {"errors", errors},
                      {"first_error", first_error}};
  std::cout << j.dump() << "\n";
  if (errors > 0) return Internal("serve: " + std::to_string(errors) + " failed calls: " + first_error);
  return OkStatus();
}

int Main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: kubehsm_bench sign|verify|ledger|crypto|inproc|serve --flag value ...\n";
    return 1;
  }
  const std::string cmd = argv[1];
  Result<Args> args = ParseFlags(argc, argv, 2);
  if (!args.ok()) {
    std::cerr << "kubehsm_bench: " << args.status().message() << "\n";
    return 1;
  }
  Status s;
  if (cmd == "sign") {
    s = RunSign(*args);
  } else if (cmd == "verify") {
    s = RunVerify(*args);
  } else if (cmd == "ledger") {
    s = RunLedger(*args);
  } else if (cmd == "crypto") {
    s = RunCrypto(*args);
  } else if (cmd == "inproc") {
    s = RunInproc(*args);
  } else if (cmd == "serve") {
    s = RunServeLoad(*args);
  } else {
    std::cerr << "kubehsm_bench: unknown subcommand " << cmd << "\n";
    return 1;
  }
  if (!s.ok()) {
    std::cerr << "kubehsm_bench " << cmd << ": error: " << s.message() << "\n";
    return 2;
  }
  return 0;
}

}  // namespace
}  // namespace kubehsm::bench

int main(int argc, char** argv) { return kubehsm::bench::Main(argc, argv); }
