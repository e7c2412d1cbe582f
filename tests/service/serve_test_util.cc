#include "tests/service/serve_test_util.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <random>
#include <thread>
#include <utility>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "common/base64.h"
#include "proto/externaljwt_v1.grpc.pb.h"
#include "proto/externaljwt_v1alpha1.grpc.pb.h"
#include "proto/grpc/health/v1/health.grpc.pb.h"
#include "tests/support/test_env.h"

extern char** environ;

namespace kubehsm::testing {
namespace fs = std::filesystem;

ChildProcess::ChildProcess(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                           fs::path log_file)
    : log_file_(std::move(log_file)) {
  SpawnArgs spawn(argv, env);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, log_file_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  const int rc = posix_spawnp(&pid_, spawn.argv()[0], &fa, nullptr, spawn.argv(), spawn.envp());
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    pid_ = -1;
    ADD_FAILURE() << "cannot start " << argv[0] << ": " << rc;
  }
}

ChildProcess::~ChildProcess() {
  if (Running()) Stop(SIGKILL, std::chrono::seconds(10));
}

bool ChildProcess::Running() {
  if (pid_ < 0) return false;
  int status = 0;
  const pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == 0) return true;
  if (r == pid_) exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  pid_ = -1;
  return false;
}

int ChildProcess::WaitExit(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (Running()) {
    if (std::chrono::steady_clock::now() >= deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return exit_code_;
}

void ChildProcess::Signal(int sig) {
  if (pid_ > 0) ::kill(pid_, sig);
}

int ChildProcess::Stop(int sig, std::chrono::milliseconds timeout) {
  if (!Running()) return exit_code_;
  ::kill(pid_, sig);
  if (WaitExit(timeout) >= 0) return exit_code_;
  ADD_FAILURE() << "child " << pid_ << " did not exit within " << timeout.count() << " ms; killing it";
  ::kill(pid_, SIGKILL);
  WaitExit(std::chrono::seconds(10));
  return exit_code_;
}

std::string ChildProcess::Log() const { return ReadTestFile(log_file_); }

bool ChildProcess::WaitForLog(const std::string& text, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (Log().find(text) != std::string::npos) return true;
    if (!Running()) return Log().find(text) != std::string::npos;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

std::string GrpcTarget(const std::string& socket) {
  if (!socket.empty() && socket[0] == '@') return "unix-abstract:" + socket.substr(1);
  return "unix:" + socket;
}

SignerClient::SignerClient(const std::string& socket, const std::string& api) : api_(api) {
  grpc::ChannelArguments args;
  args.SetString(GRPC_ARG_DEFAULT_AUTHORITY, "localhost");
  channel_ = grpc::CreateCustomChannel(GrpcTarget(socket), grpc::InsecureChannelCredentials(), args);
}

namespace {

template <typename Stub, typename Req, typename Resp>
CallResult DoSign(Stub& stub, const std::string& claims, std::chrono::milliseconds timeout) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + timeout);
  Req req;
  req.set_claims(claims);
  Resp resp;
  grpc::Status s = stub.Sign(&ctx, req, &resp);
  CallResult r;
  r.code = s.error_code();
  r.message = s.error_message();
  r.header = resp.header();
  r.signature = resp.signature();
  return r;
}

template <typename Stub, typename Req, typename Resp>
CallResult DoFetch(Stub& stub, std::chrono::milliseconds timeout) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + timeout);
  Req req;
  Resp resp;
  grpc::Status s = stub.FetchKeys(&ctx, req, &resp);
  CallResult r;
  r.code = s.error_code();
  r.message = s.error_message();
  for (const auto& k : resp.keys()) r.keys.push_back({k.key_id(), k.key(), k.exclude_from_oidc_discovery()});
  r.data_timestamp_seconds = resp.data_timestamp().seconds();
  r.data_timestamp_nanos = resp.data_timestamp().nanos();
  r.refresh_hint_seconds = resp.refresh_hint_seconds();
  return r;
}

template <typename Stub, typename Req, typename Resp>
CallResult DoMetadata(Stub& stub, std::chrono::milliseconds timeout) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + timeout);
  Req req;
  Resp resp;
  grpc::Status s = stub.Metadata(&ctx, req, &resp);
  CallResult r;
  r.code = s.error_code();
  r.message = s.error_message();
  r.max_token_expiration_seconds = resp.max_token_expiration_seconds();
  return r;
}

}  // namespace

CallResult SignerClient::Sign(const std::string& claims, std::chrono::milliseconds timeout) {
  if (api_ == "v1") {
    auto stub = ::v1::ExternalJWTSigner::NewStub(channel_);
    return DoSign<::v1::ExternalJWTSigner::Stub, ::v1::SignJWTRequest, ::v1::SignJWTResponse>(*stub, claims, timeout);
  }
  auto stub = ::v1alpha1::ExternalJWTSigner::NewStub(channel_);
  return DoSign<::v1alpha1::ExternalJWTSigner::Stub, ::v1alpha1::SignJWTRequest, ::v1alpha1::SignJWTResponse>(
      *stub, claims, timeout);
}

CallResult SignerClient::FetchKeys(std::chrono::milliseconds timeout) {
  if (api_ == "v1") {
    auto stub = ::v1::ExternalJWTSigner::NewStub(channel_);
    return DoFetch<::v1::ExternalJWTSigner::Stub, ::v1::FetchKeysRequest, ::v1::FetchKeysResponse>(*stub, timeout);
  }
  auto stub = ::v1alpha1::ExternalJWTSigner::NewStub(channel_);
  return DoFetch<::v1alpha1::ExternalJWTSigner::Stub, ::v1alpha1::FetchKeysRequest, ::v1alpha1::FetchKeysResponse>(
      *stub, timeout);
}

CallResult SignerClient::Metadata(std::chrono::milliseconds timeout) {
  if (api_ == "v1") {
    auto stub = ::v1::ExternalJWTSigner::NewStub(channel_);
    return DoMetadata<::v1::ExternalJWTSigner::Stub, ::v1::MetadataRequest, ::v1::MetadataResponse>(*stub, timeout);
  }
  auto stub = ::v1alpha1::ExternalJWTSigner::NewStub(channel_);
  return DoMetadata<::v1alpha1::ExternalJWTSigner::Stub, ::v1alpha1::MetadataRequest, ::v1alpha1::MetadataResponse>(
      *stub, timeout);
}

int SignerClient::HealthCheck(const std::string& service) {
  auto stub = ::grpc::health::v1::Health::NewStub(channel_);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  ::grpc::health::v1::HealthCheckRequest req;
  req.set_service(service);
  ::grpc::health::v1::HealthCheckResponse resp;
  if (!stub->Check(&ctx, req, &resp).ok()) return -1;
  return static_cast<int>(resp.status());
}

std::string MakeClaims(const std::string& issuer, const std::string& audience, int64_t lifetime_seconds) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch()).count();
  char jti[40];
  std::snprintf(jti, sizeof jti, "%08llx-%04llx-4%03llx-8%03llx-%012llx",
                static_cast<unsigned long long>(rng() & 0xffffffff), static_cast<unsigned long long>(rng() & 0xffff),
                static_cast<unsigned long long>(rng() & 0xfff), static_cast<unsigned long long>(rng() & 0xfff),
                static_cast<unsigned long long>(rng() & 0xffffffffffff));
  // Keys sorted as go-jose writes them; aud always an array (spec §3.3).
  nlohmann::ordered_json j;
  j["aud"] = nlohmann::json::array({audience});
  j["exp"] = now + lifetime_seconds;
  j["iat"] = now;
  j["iss"] = issuer;
  j["jti"] = jti;
  j["kubernetes.io"] = {{"namespace", "default"},
                        {"pod", {{"name", "web-0"}, {"uid", "0b6f5a2e-1d1c-4f0e-9a57-3c2d1e0f9a8b"}}},
                        {"serviceaccount", {{"name", "default"}, {"uid", "6a1f7c1e-2b3d-4e5f-8a9b-0c1d2e3f4a5b"}}}};
  j["nbf"] = now;
  j["sub"] = "system:serviceaccount:default:default";
  return Base64UrlEncode(j.dump());
}

namespace {

std::vector<std::string> Split(const std::string& token) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  for (;;) {
    const auto dot = token.find('.', start);
    parts.push_back(token.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return parts;
}

struct PkeyDeleter {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};
struct SigDeleter {
  void operator()(ECDSA_SIG* p) const { ECDSA_SIG_free(p); }
};

}  // namespace

std::string VerifyWithOpenSsl(const std::string& token, const std::vector<CallResult::Key>& keys) {
  const auto parts = Split(token);
  if (parts.size() != 3) return "not three segments";
  for (const auto& p : parts) {
    if (p.find('=') != std::string::npos) return "padded segment";
  }
  auto header_json = Base64UrlDecode(parts[0]);
  if (!header_json.ok()) return "header is not base64url";
  const auto header = nlohmann::json::parse(*header_json, nullptr, false);
  if (header.is_discarded() || !header.is_object() || header.size() != 3 || !header.contains("alg") ||
      !header.contains("kid") || header.value("typ", "") != "JWT") {
    return "header is not exactly {alg, kid, typ:JWT}: " + *header_json;
  }
  const std::string alg = header["alg"].get<std::string>();
  const std::string kid = header["kid"].get<std::string>();
  const CallResult::Key* key = nullptr;
  for (const auto& k : keys) {
    if (k.kid == kid) key = &k;
  }
  if (key == nullptr) return "kid " + kid + " not listed by FetchKeys";
  if (key->exclude) return "kid " + kid + " is excluded from OIDC discovery";
  const unsigned char* p = reinterpret_cast<const unsigned char*>(key->der.data());
  std::unique_ptr<EVP_PKEY, PkeyDeleter> pkey(d2i_PUBKEY(nullptr, &p, static_cast<long>(key->der.size())));
  if (!pkey) return "FetchKeys key is not PKIX DER";
  auto sig = Base64UrlDecode(parts[2]);
  if (!sig.ok()) return "signature is not base64url";
  std::string der_sig = *sig;
  const EVP_MD* md = nullptr;
  const int id = EVP_PKEY_get_base_id(pkey.get());
  if (alg == "RS256" && id == EVP_PKEY_RSA) {
    md = EVP_sha256();
  } else if (id == EVP_PKEY_EC) {
    std::size_t half = 0;
    const int bits = EVP_PKEY_get_bits(pkey.get());
    if (alg == "ES256" && bits == 256) md = EVP_sha256(), half = 32;
    if (alg == "ES384" && bits == 384) md = EVP_sha384(), half = 48;
    if (alg == "ES512" && bits == 521) md = EVP_sha512(), half = 66;
    if (md == nullptr) return "alg " + alg + " does not match the EC key";
    if (sig->size() != 2 * half) return "ECDSA signature is " + std::to_string(sig->size()) + " bytes, not raw r||s";
    std::unique_ptr<ECDSA_SIG, SigDeleter> es(ECDSA_SIG_new());
    BIGNUM* r = BN_bin2bn(reinterpret_cast<const unsigned char*>(sig->data()), static_cast<int>(half), nullptr);
    BIGNUM* s = BN_bin2bn(reinterpret_cast<const unsigned char*>(sig->data()) + half, static_cast<int>(half), nullptr);
    ECDSA_SIG_set0(es.get(), r, s);
    unsigned char* out = nullptr;
    const int len = i2d_ECDSA_SIG(es.get(), &out);
    if (len <= 0) return "cannot encode ECDSA signature";
    der_sig.assign(reinterpret_cast<char*>(out), static_cast<std::size_t>(len));
    OPENSSL_free(out);
  } else {
    return "alg " + alg + " does not match the key type";
  }
  const std::string input = parts[0] + "." + parts[1];
  std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> ctx(EVP_MD_CTX_new());
  if (EVP_DigestVerifyInit(ctx.get(), nullptr, md, nullptr, pkey.get()) != 1) return "DigestVerifyInit failed";
  if (EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(der_sig.data()), der_sig.size(),
                       reinterpret_cast<const unsigned char*>(input.data()), input.size()) != 1) {
    return "signature does not verify";
  }
  return "";
}

std::string VerifyWithPyJwt(const std::vector<std::string>& tokens, const std::vector<CallResult::Key>& keys,
                            const std::string& issuer, const std::string& audience, const fs::path& work_dir) {
  nlohmann::json k = nlohmann::json::object();
  nlohmann::json list = nlohmann::json::array();
  for (const auto& key : keys) {
    list.push_back({{"kid", key.kid}, {"der", Base64Encode(key.der)}, {"exclude", key.exclude}});
  }
  k["keys"] = list;
  std::string token_lines;
  for (const auto& t : tokens) token_lines += t + "\n";
  WriteTestFile(work_dir / "pyjwt_keys.json", k.dump());
  WriteTestFile(work_dir / "pyjwt_tokens.txt", token_lines);
  const fs::path script = SourceDir() / "tests/service/verify_jwt.py";
  ProcessResult r = RunProcess({"/usr/bin/python3", script.string(), (work_dir / "pyjwt_tokens.txt").string(),
                                (work_dir / "pyjwt_keys.json").string(), issuer, audience});
  if (r.exit_code != 0) return "exit " + std::to_string(r.exit_code) + ": " + r.out + r.err;
  return "";
}

std::string CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::INTERNAL: return "INTERNAL";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    default: return "CODE_" + std::to_string(static_cast<int>(code));
  }
}

}  // namespace kubehsm::testing
