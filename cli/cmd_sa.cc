// kubehsm sa: service-account tokens (sign, verify), the issuer's OIDC documents (jwks,
// discovery) and the rotation of the service-account keys kept in the token (list, rotate,
// activate, retire, remove, import-public). The logic lives in signer/jwt; this file parses
// options, reads files and prints.
#include <chrono>
#include <cstdio>
#include <ctime>
#include <iomanip>
#include <iostream>
#include <iterator>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <openssl/x509.h>

#include "cli/command.h"
#include "common/file_util.h"
#include "signer/jwt/claims.h"
#include "signer/jwt/jwks.h"
#include "signer/jwt/jws.h"
#include "signer/jwt/sa_bundle.h"
#include "signer/jwt/sa_keys.h"
#include "signer/jwt/verify.h"

namespace kubehsm::cli {
namespace po = boost::program_options;
namespace {

// `sa verify` exit codes beyond the shared 0/1/2, one per class of refusal.
constexpr int kExitTokenMalformed = 10;   // not a well-formed service-account JWT
constexpr int kExitTokenSignature = 11;   // bad signature, unknown kid, disallowed alg, alg/key mismatch
constexpr int kExitTokenTime = 12;        // expired, not yet valid, issued in the future
constexpr int kExitTokenIssuer = 13;      // iss not accepted
constexpr int kExitTokenAudience = 14;    // no accepted audience

constexpr std::size_t kMaxTokenBytes = 1024 * 1024;
constexpr std::size_t kMaxKeyFileBytes = 1024 * 1024;

constexpr const char* kVerifyExitCodes =
    "Exit codes:\n"
    "  0   the token is valid; the identity is printed\n"
    "  1   usage error\n"
    "  2   other failure (files, token access)\n"
    "  10  malformed token (not three base64url parts, bad JSON or claim types, no kubernetes.io claim)\n"
    "  11  signature refused: invalid signature, unknown kid, disallowed alg (none, HS*, PS*, ...),\n"
    "      or alg not matching the key\n"
    "  12  expired, not yet valid, or issued in the future (60 s leeway)\n"
    "  13  issuer not accepted\n"
    "  14  audience not accepted\n";

int64_t Now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string Rfc3339(int64_t t) {
  const std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  if (gmtime_r(&tt, &tm) == nullptr) return std::to_string(t);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// Parses "90", "90s", "15m", "1h", "7d" into seconds.
std::optional<int64_t> ParseDuration(const std::string& text) {
  if (text.empty()) return std::nullopt;
  int64_t unit = 1;
  std::string digits = text;
  switch (text.back()) {
    case 's': unit = 1; digits.pop_back(); break;
    case 'm': unit = 60; digits.pop_back(); break;
    case 'h': unit = 3600; digits.pop_back(); break;
    case 'd': unit = 86400; digits.pop_back(); break;
    default: break;
  }
  if (digits.empty() || digits.size() > 12 || digits.find_first_not_of("0123456789") != std::string::npos) {
    return std::nullopt;
  }
  return std::stoll(digits) * unit;
}

std::string Strip(std::string s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return "";
  const auto last = s.find_last_not_of(" \t\r\n");
  return s.substr(first, last - first + 1);
}

Result<std::string> ReadStdinBounded(std::size_t max) {
  std::string data;
  char buf[8192];
  while (std::cin.read(buf, sizeof(buf)) || std::cin.gcount() > 0) {
    data.append(buf, static_cast<std::size_t>(std::cin.gcount()));
    if (data.size() > max) return InvalidArgument("standard input is larger than " + std::to_string(max) + " bytes");
  }
  return data;
}

std::vector<std::string> Strings(const po::variables_map& vm, const char* name) {
  return vm.count(name) != 0 ? vm[name].as<std::vector<std::string>>() : std::vector<std::string>{};
}

std::string Opt(const po::variables_map& vm, const char* name) {
  return vm.count(name) != 0 ? vm[name].as<std::string>() : std::string();
}

Result<signer::KeyStore*> Store(Context& ctx) { return ctx.KeyStore(); }

// The audit record of a service-account key change: kid, key source, state, type and label
// (the record itself carries the time and the uid), plus `extra`.
Status AuditSaKey(Context& ctx, const std::string& event, const jwt::SaKeyInfo& key,
                  std::map<std::string, std::string> extra = {}) {
  extra["kid"] = key.kid.empty() ? key.label : key.kid;
  extra["source"] = key.imported ? "imported-public-key" : "generated-in-token";
  extra["state"] = std::string(jwt::SaKeyStateName(key.state));
  extra["type"] = std::string(KeyTypeName(key.type));
  extra["label"] = key.label;
  if (key.imported) extra["until"] = key.until > 0 ? Rfc3339(key.until) : "none";
  return ctx.AppendAudit(event, extra);
}

// Fails a command whose key change happened but could not be audited.
int FailUnaudited(Context& ctx, const std::string& done, const Status& audit) {
  return ctx.Fail(Status(audit.code(), done + ", but " + audit.message()));
}

// Notes on stderr which published keys are imported public keys (and which are no longer
// published), so whoever hands a JWKS out sees keys that were generated outside the token.
void NoteImportedKeys(Context& ctx, signer::KeyStore& store, int64_t now) {
  auto keys = jwt::ListSaKeys(store);
  if (!keys.ok()) return;
  for (const auto& k : *keys) {
    if (!k.imported) continue;
    const bool published = jwt::SaKeyPublishable(k, now);
    ctx.err() << "kubehsm: note: " << k.kid << " is an imported public key (generated outside the token), "
              << (published ? (k.until > 0 ? "published until " + Rfc3339(k.until)
                                           : std::string("published without expiry (imported before expiries "
                                                         "were required; remove it when its tokens have expired)"))
                            : "not published: its publication ended " + Rfc3339(k.until))
              << "\n";
  }
}

// ---------------------------------------------------------------------------------------------
// sa sign

int SaSign(Context& ctx, const Args& args) {
  po::options_description d("kubehsm sa sign");
  d.add_options()
      ("issuer", po::value<std::string>(), "iss: the cluster's --service-account-issuer (required without --claims)")
      ("audience", po::value<std::vector<std::string>>(), "aud entry, repeatable (default: the issuer)")
      ("namespace", po::value<std::string>(), "the service account's namespace")
      ("service-account", po::value<std::string>(), "the service account's name")
      ("uid", po::value<std::string>(), "the service account's uid")
      ("pod-name", po::value<std::string>(), "bind to a pod (with --pod-uid)")
      ("pod-uid", po::value<std::string>(), "the pod's uid")
      ("secret-name", po::value<std::string>(), "bind to a secret (with --secret-uid)")
      ("secret-uid", po::value<std::string>(), "the secret's uid")
      ("node-name", po::value<std::string>(), "bind to a node (with --node-uid); with --pod-name: the pod's node")
      ("node-uid", po::value<std::string>(), "the node's uid")
      ("expiration-seconds", po::value<int64_t>()->default_value(jwt::kDefaultExpirationSeconds),
       "lifetime in seconds: at least 600, less than 2^32")
      ("claims", po::value<std::string>(),
       "sign this JSON claims file instead (at most 64 KiB; needs iss, sub, aud, exp and kubernetes.io; "
       "iat/nbf default to now, jti to a random UUID)");
  po::variables_map vm;
  int code = 0;
  if (!ParseArgs(ctx,
                 "kubehsm sa sign [--issuer URL --namespace NS --service-account NAME --uid UID] [--audience AUD]...\n"
                 "                [--pod-name N --pod-uid U | --secret-name N --secret-uid U] [--node-name N [--node-uid U]]\n"
                 "                [--expiration-seconds N]\n"
                 "       kubehsm sa sign --claims FILE\n\n"
                 "Mints a service-account token with the active key in the token and prints it on stdout.",
                 d, nullptr, args, vm, code)) {
    return code;
  }
  const int64_t now = Now();
  auto jti = jwt::NewJti();
  if (!jti.ok()) return ctx.Fail(jti.status());

  std::string claims;
  if (vm.count("claims") != 0) {
    for (const char* flag : {"issuer", "audience", "namespace", "service-account", "uid", "pod-name", "pod-uid",
                             "secret-name", "secret-uid", "node-name", "node-uid"}) {
      if (vm.count(flag) != 0) return ctx.UsageError(std::string("--claims cannot be combined with --") + flag);
    }
    if (!vm["expiration-seconds"].defaulted()) return ctx.UsageError("--claims cannot be combined with --expiration-seconds");
    const std::string path = vm["claims"].as<std::string>();
    auto text = ReadFileBounded(path, jwt::kMaxClaimsBytes);
    if (!text.ok()) return ctx.Fail(text.status().WithContext("claims file " + path));
    auto normalized = jwt::NormalizeClaimsDocument(*text, now, *jti);
    if (!normalized.ok()) return ctx.Fail(normalized.status().WithContext(path));
    claims = std::move(*normalized);
  } else {
    for (const char* flag : {"issuer", "namespace", "service-account", "uid"}) {
      if (vm.count(flag) == 0) return ctx.UsageError(std::string("--") + flag + " is required (or use --claims FILE)");
    }
    jwt::BoundTokenRequest r;
    r.issuer = Opt(vm, "issuer");
    r.audiences = Strings(vm, "audience");
    r.namespace_name = Opt(vm, "namespace");
    r.service_account_name = Opt(vm, "service-account");
    r.service_account_uid = Opt(vm, "uid");
    r.expiration_seconds = vm["expiration-seconds"].as<int64_t>();
    for (const char* kind : {"pod", "secret", "node"}) {
      const std::string name_flag = std::string(kind) + "-name", uid_flag = std::string(kind) + "-uid";
      const bool has_name = vm.count(name_flag) != 0, has_uid = vm.count(uid_flag) != 0;
      if (has_uid && !has_name) return ctx.UsageError("--" + uid_flag + " needs --" + name_flag);
      if (!has_name) continue;
      const bool uid_optional = std::string(kind) == "node" && vm.count("pod-name") != 0;
      if (!has_uid && !uid_optional) return ctx.UsageError("--" + name_flag + " needs --" + uid_flag);
      jwt::ObjectRef ref{Opt(vm, name_flag.c_str()), Opt(vm, uid_flag.c_str())};
      if (std::string(kind) == "pod") r.pod = ref;
      if (std::string(kind) == "secret") r.secret = ref;
      if (std::string(kind) == "node") r.node = ref;
    }
    auto built = jwt::BuildBoundClaims(r, now, *jti);
    if (!built.ok()) return ctx.UsageError(built.status().message());
    claims = std::move(*built);
  }

  auto store = Store(ctx);
  if (!store.ok()) return ctx.Fail(store.status());
  auto active = jwt::FindActiveSaKey(**store);
  if (!active.ok()) return ctx.Fail(active.status());
  // The token is handed out only once its audit record is durable.
  if (Status s = ctx.CheckAudit(); !s.ok()) return ctx.Fail(s);
  auto token = jwt::SignCompact(active->key, active->kid, claims);
  if (!token.ok()) return ctx.Fail(token.status().WithContext("signing the token"));
  std::map<std::string, std::string> fields = {{"kid", active->kid}, {"source", "generated-in-token"}};
  const auto parsed = nlohmann::json::parse(claims, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_object()) {
    for (const char* name : {"iss", "sub", "jti"}) {
      if (parsed.contains(name) && parsed[name].is_string()) fields[name] = parsed[name].get<std::string>();
    }
    if (parsed.contains("aud")) fields["aud"] = parsed["aud"].dump();
    if (parsed.contains("exp") && parsed["exp"].is_number_integer()) {
      fields["exp"] = std::to_string(parsed["exp"].get<int64_t>());
    }
  }
  if (Status s = ctx.AppendAudit("sa-token-sign", fields); !s.ok()) {
    return ctx.Fail(s.WithContext("token not issued"));
  }
  ctx.out() << *token << "\n";
  return kExitOk;
}

// ---------------------------------------------------------------------------------------------
// sa verify

int ExitCodeFor(jwt::TokenError e) {
  switch (e) {
    case jwt::TokenError::kNone: return kExitOk;
    case jwt::TokenError::kMalformed: return kExitTokenMalformed;
    case jwt::TokenError::kDisallowedAlgorithm:
    case jwt::TokenError::kUnknownKid:
    case jwt::TokenError::kAlgorithmKeyMismatch:
    case jwt::TokenError::kInvalidSignature: return kExitTokenSignature;
    case jwt::TokenError::kExpired:
    case jwt::TokenError::kNotYetValid:
    case jwt::TokenError::kIssuedInFuture: return kExitTokenTime;
    case jwt::TokenError::kWrongIssuer: return kExitTokenIssuer;
    case jwt::TokenError::kWrongAudience: return kExitTokenAudience;
  }
  return kExitFailure;
}

Result<std::vector<jwt::VerificationKey>> VerifyKeys(Context& ctx, const po::variables_map& vm) {
  std::vector<jwt::VerificationKey> keys;
  if (vm.count("jwks") != 0) {
    const std::string path = vm["jwks"].as<std::string>();
    KH_ASSIGN_OR_RETURN(std::string text, ReadFileBounded(path, kMaxKeyFileBytes));
    auto parsed = jwt::ParseJwks(text);
    if (!parsed.ok()) return parsed.status().WithContext(path);
    return std::move(*parsed);
  }
  if (vm.count("public-key") != 0) {
    for (const auto& path : vm["public-key"].as<std::vector<std::string>>()) {
      KH_ASSIGN_OR_RETURN(std::string pem, ReadFileBounded(path, kMaxKeyFileBytes));
      auto key = jwt::VerificationKeyFromPem(pem);
      if (!key.ok()) return key.status().WithContext(path);
      keys.push_back(std::move(*key));
    }
    return keys;
  }
  KH_ASSIGN_OR_RETURN(signer::KeyStore * store, Store(ctx));
  KH_ASSIGN_OR_RETURN(std::vector<jwt::PublishedKey> published, jwt::PublishedSaKeys(*store));
  for (const auto& p : published) {
    KH_ASSIGN_OR_RETURN(jwt::VerificationKey k, jwt::VerificationKeyFromSpki(p.spki_der, p.kid));
    keys.push_back(std::move(k));
  }
  if (keys.empty()) return FailedPrecondition("the token holds no service-account keys");
  return keys;
}

void PrintIdentityText(std::ostream& out, const jwt::ServiceAccountIdentity& id) {
  out << "user: " << id.username << "\n"
      << "uid: " << id.uid << "\n"
      << "groups:";
  for (const auto& g : id.groups) out << " " << g;
  out << "\n";
  for (const auto& [k, values] : id.extra) {
    for (const auto& v : values) out << "extra: " << k << "=" << v << "\n";
  }
  out << "audiences:";
  for (const auto& a : id.audiences) out << " " << a;
  out << "\n"
      << "issuer: " << id.issuer << "\n"
      << "kid: " << id.kid << " (" << jwt::JwsAlgorithmName(id.algorithm) << ")\n";
  if (id.issued_at) out << "issued: " << Rfc3339(*id.issued_at) << "\n";
  out << "expires: " << (id.expires_at ? Rfc3339(*id.expires_at) : std::string("never")) << "\n";
}

nlohmann::json IdentityJson(const jwt::ServiceAccountIdentity& id) {
  nlohmann::json extra = nlohmann::json::object();
  for (const auto& [k, values] : id.extra) extra[k] = values;
  nlohmann::json j = {
      {"authenticated", true},
      {"user", {{"username", id.username}, {"uid", id.uid}, {"groups", id.groups}, {"extra", extra}}},
      {"audiences", id.audiences},
      {"issuer", id.issuer},
      {"kid", id.kid},
      {"alg", std::string(jwt::JwsAlgorithmName(id.algorithm))},
  };
  if (id.expires_at) j["exp"] = *id.expires_at;
  if (id.issued_at) j["iat"] = *id.issued_at;
  if (id.not_before) j["nbf"] = *id.not_before;
  return j;
}

int SaVerify(Context& ctx, const Args& args) {
  po::options_description d("kubehsm sa verify");
  d.add_options()
      ("issuer", po::value<std::vector<std::string>>(), "accepted iss, repeatable (required)")
      ("audience", po::value<std::vector<std::string>>(), "accepted audience, repeatable (default: the issuers, "
       "like kube-apiserver's --api-audiences)")
      ("token-file", po::value<std::string>(), "file holding the token, also positional (default: standard input; "
       "'-' too). Not --token: that global option names the PKCS#11 token")
      ("jwks", po::value<std::string>(), "verify with the keys of this JWKS file instead of the token's keys")
      ("public-key", po::value<std::vector<std::string>>(), "verify with this PEM public key (sa.pub), repeatable; "
       "kid derived as kube-apiserver does")
      ("output,o", po::value<std::string>()->default_value("text"), "text | json");
  po::variables_map vm;
  int code = 0;
  const std::string usage = std::string(
                                "kubehsm sa verify [TOKEN_FILE] --issuer URL... [--audience AUD]... "
                                "[--jwks FILE | --public-key sa.pub...] [-o text|json]\n\n"
                                "Verifies a service-account token as kube-apiserver does (issuer, kid, alg allowlist,\n"
                                "signature, audience, exp/nbf/iat with 60 s leeway) and prints the identity it would\n"
                                "authenticate. Live object checks (service account, pod, secret, node UIDs) need the\n"
                                "API server: use a TokenReview for those.\n\n") +
                            kVerifyExitCodes;
  po::positional_options_description pos;
  pos.add("token-file", 1);
  if (!ParseArgs(ctx, usage, d, &pos, args, vm, code)) return code;
  const std::string fmt = vm["output"].as<std::string>();
  if (fmt != "text" && fmt != "json") return ctx.UsageError("--output must be text or json");
  jwt::VerifyOptions options;
  options.issuers = Strings(vm, "issuer");
  if (options.issuers.empty()) return ctx.UsageError("--issuer is required (see 'kubehsm sa verify --help')");
  options.audiences = Strings(vm, "audience");
  options.now = Now();
  if (vm.count("jwks") != 0 && vm.count("public-key") != 0) {
    return ctx.UsageError("--jwks and --public-key are mutually exclusive");
  }

  const std::string token_path = Opt(vm, "token-file");
  auto token = token_path.empty() || token_path == "-" ? ReadStdinBounded(kMaxTokenBytes)
                                                       : ReadFileBounded(token_path, kMaxTokenBytes);
  if (!token.ok()) return ctx.Fail(token.status().WithContext("reading the token"));
  auto keys = VerifyKeys(ctx, vm);
  if (!keys.ok()) return ctx.Fail(keys.status().WithContext("loading verification keys"));

  const jwt::VerifyResult result = jwt::VerifyServiceAccountToken(Strip(*token), *keys, options);
  if (!result.ok()) {
    if (fmt == "json") {
      ctx.out() << nlohmann::json{{"authenticated", false},
                                  {"error", std::string(jwt::TokenErrorName(result.error))},
                                  {"message", result.message}}
                       .dump(2)
                << "\n";
    }
    ctx.err() << "kubehsm: error: token refused (" << jwt::TokenErrorName(result.error) << "): " << result.message
              << "\n";
    return ExitCodeFor(result.error);
  }
  if (fmt == "json") {
    ctx.out() << IdentityJson(result.identity).dump(2) << "\n";
  } else {
    PrintIdentityText(ctx.out(), result.identity);
  }
  return kExitOk;
}

// ---------------------------------------------------------------------------------------------
// sa jwks / sa discovery

int SaJwks(Context& ctx, const Args& args) {
  po::options_description d("kubehsm sa jwks");
  po::variables_map vm;
  int code = 0;
  if (!ParseArgs(ctx,
                 "kubehsm sa jwks [global options]\n\nPrints the JWKS of the published service-account keys (next, active, retired;\n"
                 "imported keys until their expiry) exactly as kube-apiserver serves /openid/v1/jwks. Imported\n"
                 "public keys are named on stderr.",
                 d, nullptr, args, vm, code)) {
    return code;
  }
  auto store = Store(ctx);
  if (!store.ok()) return ctx.Fail(store.status());
  const int64_t now = Now();
  auto keys = jwt::PublishedSaKeys(**store, now);
  if (!keys.ok()) return ctx.Fail(keys.status());
  auto jwks = jwt::RenderJwks(*keys);
  if (!jwks.ok()) return ctx.Fail(jwks.status());
  NoteImportedKeys(ctx, **store, now);
  ctx.out() << *jwks << "\n";
  return kExitOk;
}

int SaDiscovery(Context& ctx, const Args& args) {
  po::options_description d("kubehsm sa discovery");
  d.add_options()("issuer", po::value<std::string>()->required(), "the first --service-account-issuer (https)")(
      "jwks-uri", po::value<std::string>(), "where relying parties fetch the JWKS (https; default <issuer>/openid/v1/jwks)");
  po::variables_map vm;
  int code = 0;
  if (!ParseArgs(ctx,
                 "kubehsm sa discovery [--jwks-uri URL] --issuer URL\n\nPrints the OIDC discovery document "
                 "as kube-apiserver serves /.well-known/openid-configuration.",
                 d, nullptr, args, vm, code)) {
    return code;
  }
  const std::string issuer = vm["issuer"].as<std::string>();
  const std::string jwks_uri = vm.count("jwks-uri") != 0 ? vm["jwks-uri"].as<std::string>() : jwt::DefaultJwksUri(issuer);
  if (Status s = jwt::ValidateDiscoveryIssuer(issuer); !s.ok()) return ctx.UsageError(s.message());
  auto store = Store(ctx);
  if (!store.ok()) return ctx.Fail(store.status());
  auto keys = jwt::PublishedSaKeys(**store);
  if (!keys.ok()) return ctx.Fail(keys.status());
  auto doc = jwt::RenderDiscovery(issuer, jwks_uri, *keys);
  if (!doc.ok()) {
    return doc.status().code() == StatusCode::kInvalidArgument ? ctx.UsageError(doc.status().message())
                                                               : ctx.Fail(doc.status());
  }
  ctx.out() << *doc << "\n";
  return kExitOk;
}

// ---------------------------------------------------------------------------------------------
// rotation: list, rotate, activate, retire, remove, import-public

int SaList(Context& ctx, const Args& args) {
  po::options_description d("kubehsm sa list");
  d.add_options()("output,o", po::value<std::string>()->default_value("text"), "text | json");
  po::variables_map vm;
  int code = 0;
  if (!ParseArgs(ctx, "kubehsm sa list [-o text|json]\n\nLists the service-account keys in the token and their states.",
                 d, nullptr, args, vm, code)) {
    return code;
  }
  const std::string fmt = vm["output"].as<std::string>();
  if (fmt != "text" && fmt != "json") return ctx.UsageError("--output must be text or json");
  auto store = Store(ctx);
  if (!store.ok()) return ctx.Fail(store.status());
  auto keys = jwt::ListSaKeys(**store);
  if (!keys.ok()) return ctx.Fail(keys.status());
  const int64_t now = Now();
  if (fmt == "json") {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& k : *keys) {
      nlohmann::json j = {{"state", std::string(jwt::SaKeyStateName(k.state))},
                          {"label", k.label},
                          {"type", std::string(KeyTypeName(k.type))},
                          {"private", k.has_private},
                          {"source", std::string(jwt::SaKeySource(k))},
                          {"published", jwt::SaKeyPublishable(k, now)}};
      if (k.imported && k.until > 0) j["until"] = k.until;
      if (k.state != jwt::SaKeyState::kIncomplete) {
        j["kid"] = k.kid;
        j["since"] = k.since;
        j["alg"] = std::string(jwt::JwsAlgorithmName(jwt::JwsAlgorithmFor(k.type)));
      }
      arr.push_back(std::move(j));
    }
    ctx.out() << arr.dump(2) << "\n";
    return kExitOk;
  }
  ctx.out() << std::left << std::setw(11) << "STATE" << std::setw(22) << "SINCE" << std::setw(12) << "TYPE"
            << std::setw(9) << "PRIVATE" << std::setw(10) << "SOURCE" << std::setw(22) << "PUBLISHED UNTIL" << "KID\n";
  for (const auto& k : *keys) {
    const bool incomplete = k.state == jwt::SaKeyState::kIncomplete;
    std::string until = "-";
    if (k.imported) until = k.until == 0 ? "no expiry" : Rfc3339(k.until) + (jwt::SaKeyPublishable(k, now) ? "" : "!");
    ctx.out() << std::left << std::setw(11) << jwt::SaKeyStateName(k.state) << std::setw(22)
              << (incomplete ? "-" : Rfc3339(k.since)) << std::setw(12) << KeyTypeName(k.type) << std::setw(9)
              << (k.has_private ? "yes" : "no") << std::setw(10) << jwt::SaKeySource(k) << std::setw(22) << until
              << (incomplete ? k.label : k.kid) << "\n";
  }
  return kExitOk;
}

// What `sa rotate` tells the operator to wait for before `sa activate`, and why.
constexpr const char* kRotateWaitNote =
    "it is published now, not signing yet. Before activating it, every verifier must hold it:\n"
    "  - each kube-apiserver re-fetches the keys from its `kubehsm serve` once per refresh interval\n"
    "    (the --refresh-hint-seconds serve advertises, 60 s by default; serve itself re-reads the token\n"
    "    every --key-poll-seconds): wait one such interval after the key reached every node's token\n"
    "    (with one token per node: after `sa export-public` here and `sa import-public --bundle` there);\n"
    "  - relying parties that fetch the issuer's JWKS over OIDC cache it for up to an hour.\n"
    "`sa activate` refuses a next key published for less than --min-published (1h by default).\n";

int SaRotate(Context& ctx, const Args& args) {
  po::options_description d("kubehsm sa rotate");
  d.add_options()("type", po::value<std::string>()->default_value("rsa-2048"),
                  "rsa-2048 (RS256) | rsa-3072 | rsa-4096 | ecdsa-p256 (ES256) | ecdsa-p384 (ES384) | ecdsa-p521 (ES512)");
  po::variables_map vm;
  int code = 0;
  if (!ParseArgs(ctx,
                 "kubehsm sa rotate [--type TYPE]\n\nCreates the next service-account key: published in the JWKS "
                 "at once, signing only after 'kubehsm sa activate'.",
                 d, nullptr, args, vm, code)) {
    return code;
  }
  auto type = ParseKeyType(vm["type"].as<std::string>());
  if (!type) {
    return ctx.UsageError("unknown key type '" + vm["type"].as<std::string>() + "' (valid: " + KeyTypeNames() + ")");
  }
  auto store = Store(ctx);
  if (!store.ok()) return ctx.Fail(store.status());
  if (Status s = ctx.CheckAudit(); !s.ok()) return ctx.Fail(s);
  auto key = jwt::CreateNextSaKey(**store, *type, Now());
  if (!key.ok()) return ctx.Fail(key.status());
  if (Status s = AuditSaKey(ctx, "sa-key-rotate", *key); !s.ok()) {
    return FailUnaudited(ctx, "created next key " + key->kid, s);
  }
  ctx.out() << "created next key " << key->kid << " (" << KeyTypeName(key->type) << ", "
            << jwt::JwsAlgorithmName(jwt::JwsAlgorithmFor(key->type)) << ")\n"
            << kRotateWaitNote << "then run: kubehsm sa activate --key=" << key->kid << "\n";
  return kExitOk;
}

int SaActivate(Context& ctx, const Args& args) {
  po::options_description d("kubehsm sa activate");
  d.add_options()("key", po::value<std::string>(),
                  "kid, unique kid prefix (4+ characters) or label; default: the next key")(
      "min-published", po::value<std::string>()->default_value("1h"),
      "refuse keys published for less than this (90s, 15m, 1h, 2d)")("force", po::bool_switch(),
                                                                     "activate even if published too recently")(
      "published-on", po::value<std::vector<std::string>>(),
      "refuse unless this JWKS file (another node's `kubehsm sa jwks` output) publishes the key; repeatable, one "
      "per other node (one token per node). Not waived by --force");
  po::positional_options_description pos;
  pos.add("key", 1);
  po::variables_map vm;
  int code = 0;
  if (!ParseArgs(ctx,
                 "kubehsm sa activate [KEY] [--min-published DURATION] [--force] [--published-on JWKS]...\n\nMakes KEY "
                 "the signing key; the previous active key becomes retired (still published). With one token\n"
                 "per control-plane node, pass every other node's `kubehsm sa jwks` output as --published-on:\n"
                 "activation is refused while a node does not publish the key yet.",
                 d, &pos, args, vm, code)) {
    return code;
  }
  auto min = ParseDuration(vm["min-published"].as<std::string>());
  if (!min) return ctx.UsageError("--min-published: not a duration (e.g. 3600, 90s, 15m, 1h, 2d)");
  const std::vector<std::string> peers = Strings(vm, "published-on");
  std::vector<std::pair<std::string, std::string>> peer_jwks;  // path, text: read before the token is opened
  for (const auto& path : peers) {
    auto text = ReadRegularFileBounded(path, kMaxKeyFileBytes);
    if (!text.ok()) return ctx.Fail(text.status().WithContext("--published-on"));
    peer_jwks.emplace_back(path, std::move(*text));
  }
  auto store = Store(ctx);
  if (!store.ok()) return ctx.Fail(store.status());
  if (Status s = ctx.CheckAudit(); !s.ok()) return ctx.Fail(s);
  jwt::ActivateOptions options{Now(), *min, vm["force"].as<bool>()};
  options.check = [&peer_jwks](const jwt::SaKeyInfo& target) -> Status {
    for (const auto& [path, text] : peer_jwks) {
      auto published = jwt::JwksPublishesKey(text, target.kid, target.spki_der);
      if (!published.ok()) return published.status().WithContext(path);
      if (!*published) {
        return FailedPrecondition(
            "refusing to activate " + target.kid + ": " + path +
            " does not publish it, so that node's kube-apiserver would refuse the tokens it signs (export it with "
            "`kubehsm sa export-public`, import it there with `kubehsm sa import-public --bundle`, wait one refresh "
            "interval, then save that node's `kubehsm sa jwks` again)");
      }
    }
    return OkStatus();
  };
  auto key = jwt::ActivateSaKey(**store, Opt(vm, "key"), options);
  if (!key.ok()) return ctx.Fail(key.status());
  std::map<std::string, std::string> extra = {{"force", vm["force"].as<bool>() ? "true" : "false"}};
  if (!peers.empty()) {
    std::string joined;
    for (const auto& p : peers) joined += (joined.empty() ? "" : ",") + p;
    extra["published_on"] = joined;
  }
  if (Status s = AuditSaKey(ctx, "sa-key-activate", *key, extra); !s.ok()) {
    return FailUnaudited(ctx, "activated " + key->kid, s);
  }
  ctx.out() << "activated " << key->kid << ": new tokens are signed with it\n";
  return kExitOk;
}

int SaRetire(Context& ctx, const Args& args) {
  po::options_description d("kubehsm sa retire");
  d.add_options()("key", po::value<std::string>()->required(), "kid, unique kid prefix or label")(
      "force", po::bool_switch(), "retire even the only active key");
  po::positional_options_description pos;
  pos.add("key", 1);
  po::variables_map vm;
  int code = 0;
  if (!ParseArgs(ctx,
                 "kubehsm sa retire [--force] KEY\n\nStops KEY signing (or a next key from ever signing); it stays "
                 "published for verification.",
                 d, &pos, args, vm, code)) {
    return code;
  }
  auto store = Store(ctx);
  if (!store.ok()) return ctx.Fail(store.status());
  if (Status s = ctx.CheckAudit(); !s.ok()) return ctx.Fail(s);
  auto key = jwt::RetireSaKey(**store, vm["key"].as<std::string>(), Now(), vm["force"].as<bool>());
  if (!key.ok()) return ctx.Fail(key.status());
  if (Status s = AuditSaKey(ctx, "sa-key-retire", *key, {{"force", vm["force"].as<bool>() ? "true" : "false"}});
      !s.ok()) {
    return FailUnaudited(ctx, "retired " + key->kid, s);
  }
  ctx.out() << "retired " << key->kid << ": still published for verification\n";
  return kExitOk;
}

int SaRemove(Context& ctx, const Args& args) {
  po::options_description d("kubehsm sa remove");
  d.add_options()("key", po::value<std::string>()->required(), "kid, unique kid prefix or label")(
      "min-retired", po::value<std::string>()->default_value("1d"),
      "refuse keys retired for less than this; set it to your longest token lifetime")(
      "force", po::bool_switch(), "remove anyway (tokens signed with the key stop verifying)");
  po::positional_options_description pos;
  pos.add("key", 1);
  po::variables_map vm;
  int code = 0;
  if (!ParseArgs(ctx,
                 "kubehsm sa remove [--min-retired DURATION] [--force] KEY\n\nDestroys KEY in the token and stops "
                 "publishing it. The active key cannot be removed.",
                 d, &pos, args, vm, code)) {
    return code;
  }
  auto min = ParseDuration(vm["min-retired"].as<std::string>());
  if (!min) return ctx.UsageError("--min-retired: not a duration (e.g. 86400, 12h, 30d)");
  auto store = Store(ctx);
  if (!store.ok()) return ctx.Fail(store.status());
  if (Status s = ctx.CheckAudit(); !s.ok()) return ctx.Fail(s);
  auto key = jwt::RemoveSaKey(**store, vm["key"].as<std::string>(), {Now(), *min, vm["force"].as<bool>()});
  if (!key.ok()) return ctx.Fail(key.status());
  if (Status s = AuditSaKey(ctx, "sa-key-remove", *key, {{"force", vm["force"].as<bool>() ? "true" : "false"}});
      !s.ok()) {
    return FailUnaudited(ctx, "removed " + (key->kid.empty() ? key->label : key->kid), s);
  }
  ctx.out() << "removed " << (key->kid.empty() ? key->label : key->kid) << "\n";
  return kExitOk;
}

// The longest publication `sa import-public` accepts: a year of the longest-lived tokens
// (extended kube-api-access tokens) plus slack. Longer needs a new, audited import.
constexpr int64_t kMaxImportSeconds = 400 * 86400;

// `sa import-public --bundle`: every key of another node's bundle, checked as a whole before the
// first one is imported, each change audited on its own.
int ImportBundle(Context& ctx, const std::string& path, int64_t expires_in) {
  // A bundle travels between nodes: only a regular file is read (a FIFO never blocks the open).
  auto text = ReadRegularFileBounded(path, jwt::kMaxSaBundleBytes);
  if (!text.ok()) return ctx.Fail(text.status().WithContext("bundle"));
  auto bundle = jwt::ParseSaKeyBundle(*text);
  if (!bundle.ok()) return ctx.Fail(bundle.status().WithContext(path));
  auto store = Store(ctx);
  if (!store.ok()) return ctx.Fail(store.status());
  auto keys = jwt::ListSaKeys(**store);
  if (!keys.ok()) return ctx.Fail(keys.status());
  const int64_t now = Now();
  const int64_t until = now + expires_in;
  auto steps = jwt::PlanSaBundleImport(*keys, *bundle, until);
  if (!steps.ok()) return ctx.Fail(steps.status().WithContext(path));
  if (Status s = ctx.CheckAudit(); !s.ok()) return ctx.Fail(s);
  int changed = 0;
  for (const auto& step : *steps) {
    auto done = jwt::ApplySaBundleStep(**store, step, now, until);
    if (!done.ok()) {
      return ctx.Fail(done.status().WithContext("importing " + step.key.kid + " (" + std::to_string(changed) +
                                                " key(s) of the bundle changed before it)"));
    }
    const std::string action(jwt::SaBundleActionName(step.action));
    const std::string bundle_state(jwt::SaKeyStateName(step.key.state));
    if (step.action == jwt::SaBundleAction::kImport || step.action == jwt::SaBundleAction::kExtend) {
      ++changed;
      if (Status s = AuditSaKey(ctx, "sa-key-import-public", *done,
                                {{"bundle", path}, {"bundle_state", bundle_state}, {"action", action}});
          !s.ok()) {
        return FailUnaudited(ctx, (step.action == jwt::SaBundleAction::kImport ? "imported " : "extended ") + done->kid,
                             s);
      }
    }
    switch (step.action) {
      case jwt::SaBundleAction::kImport:
        ctx.out() << "imported " << done->kid << " (" << KeyTypeName(done->type) << ", " << bundle_state
                  << " on the exporting node): published for verification only, until " << Rfc3339(done->until) << "\n";
        break;
      case jwt::SaBundleAction::kExtend:
        ctx.out() << "extended " << done->kid << " (" << bundle_state << " on the exporting node): published until "
                  << Rfc3339(done->until) << "\n";
        break;
      case jwt::SaBundleAction::kUnchanged:
        ctx.out() << "unchanged " << done->kid << ": already imported, published "
                  << (done->until > 0 ? "until " + Rfc3339(done->until) : std::string("without expiry")) << "\n";
        break;
      case jwt::SaBundleAction::kOwnKey:
        ctx.out() << "unchanged " << done->kid << ": this token's own " << jwt::SaKeyStateName(done->state) << " key\n";
        break;
    }
  }
  ctx.out() << changed << " key(s) imported or extended, " << steps->size() - static_cast<std::size_t>(changed)
            << " already published\n";
  return kExitOk;
}

int SaImportPublic(Context& ctx, const Args& args) {
  po::options_description d("kubehsm sa import-public");
  d.add_options()("public-key", po::value<std::string>(), "PEM PUBLIC KEY file (e.g. the old sa.pub)")(
      "bundle", po::value<std::string>(),
      "instead of --public-key: another node's `kubehsm sa export-public` file (its active and next keys)")(
      "expires-in", po::value<std::string>(),
      "required: stop publishing the key after this long (90s, 15m, 12h, 30d; at most 400d): the longest "
      "remaining lifetime of the tokens it signed; with --bundle, re-import before then (an already imported "
      "key's publication is extended, never shortened)")(
      "confirm-key-outside-token", po::bool_switch(),
      "required: acknowledge that the private key is outside this token (generated elsewhere, or in another "
      "node's token), so whoever holds it can mint tokens that verify until the key stops being published");
  po::positional_options_description pos;
  pos.add("public-key", 1);
  po::variables_map vm;
  int code = 0;
  if (!ParseArgs(ctx,
                 "kubehsm sa import-public [--public-key] FILE --expires-in DURATION --confirm-key-outside-token\n"
                 "       kubehsm sa import-public --bundle FILE --expires-in DURATION --confirm-key-outside-token\n\n"
                 "Publishes an existing public key (retired, verify only, marked imported) under its derived kid\n"
                 "until DURATION from now, so tokens signed before the migration keep verifying. Its private key\n"
                 "is outside the token: whoever holds it can mint tokens that verify while it is published.\n\n"
                 "With --bundle, publishes every key of another control-plane node's bundle the same way (one token\n"
                 "per node). The bundle is checked as a whole first (public keys only, each kid derived from its\n"
                 "key, no kid naming another key): a refused bundle imports nothing. Keys already imported are\n"
                 "extended to the new end of publication or left as they are; this token's own keys are skipped.",
                 d, &pos, args, vm, code)) {
    return code;
  }
  const bool has_bundle = vm.count("bundle") != 0;
  if (has_bundle == (vm.count("public-key") != 0)) {
    return ctx.UsageError("sa import-public needs exactly one of --public-key FILE and --bundle FILE");
  }
  if (!vm["confirm-key-outside-token"].as<bool>()) {
    return ctx.UsageError("sa import-public publishes a key whose private half is outside the token (whoever holds "
                          "it can mint tokens): pass --confirm-key-outside-token to confirm");
  }
  if (vm.count("expires-in") == 0) {
    return ctx.UsageError("sa import-public needs --expires-in DURATION (when to stop publishing the key, e.g. 30d)");
  }
  const auto expires_in = ParseDuration(vm["expires-in"].as<std::string>());
  if (!expires_in || *expires_in <= 0 || *expires_in > kMaxImportSeconds) {
    return ctx.UsageError("--expires-in: not a duration between 1s and 400d (e.g. 90s, 12h, 30d)");
  }
  if (has_bundle) return ImportBundle(ctx, vm["bundle"].as<std::string>(), *expires_in);
  const std::string path = vm["public-key"].as<std::string>();
  auto pem = ReadFileBounded(path, kMaxKeyFileBytes);
  if (!pem.ok()) return ctx.Fail(pem.status());
  auto key = jwt::VerificationKeyFromPem(*pem);
  if (!key.ok()) return ctx.Fail(key.status().WithContext(path));
  // Re-encode as SubjectPublicKeyInfo DER for the store.
  const int len = i2d_PUBKEY(key->public_key.get(), nullptr);
  std::string spki(static_cast<std::size_t>(len > 0 ? len : 0), '\0');
  auto* p = reinterpret_cast<unsigned char*>(spki.data());
  if (len <= 0 || i2d_PUBKEY(key->public_key.get(), &p) != len) return ctx.Fail(Internal("encoding the public key"));
  auto store = Store(ctx);
  if (!store.ok()) return ctx.Fail(store.status());
  if (Status s = ctx.CheckAudit(); !s.ok()) return ctx.Fail(s);
  const int64_t now = Now();
  auto imported = jwt::ImportSaPublicKey(**store, spki, now, now + *expires_in);
  if (!imported.ok()) return ctx.Fail(imported.status());
  if (Status s = AuditSaKey(ctx, "sa-key-import-public", *imported, {{"file", path}}); !s.ok()) {
    return FailUnaudited(ctx, "imported " + imported->kid, s);
  }
  ctx.out() << "imported " << imported->kid << " (" << KeyTypeName(imported->type) << ") as retired: published for "
            << "verification only, until " << Rfc3339(imported->until) << "\n";
  return kExitOk;
}

int SaExportPublic(Context& ctx, const Args& args) {
  po::options_description d("kubehsm sa export-public");
  d.add_options()("out", po::value<std::string>(),
                  "write the bundle to this file (atomically, mode 0644); "
                  "default: standard output");
  po::variables_map vm;
  int code = 0;
  if (!ParseArgs(ctx,
                 "kubehsm sa export-public [--out FILE]\n\n"
                 "Writes the public keys of this token's active and next service-account keys, with their kids and\n"
                 "states, as a JWKS-shaped bundle for `kubehsm sa import-public --bundle` on the other control-plane\n"
                 "nodes (one token per node). Public keys only; imported keys are not re-exported.",
                 d, nullptr, args, vm, code)) {
    return code;
  }
  auto store = Store(ctx);
  if (!store.ok()) return ctx.Fail(store.status());
  auto keys = jwt::ListSaKeys(**store);
  if (!keys.ok()) return ctx.Fail(keys.status());
  const std::vector<jwt::SaKeyInfo> exported = jwt::ExportableSaKeys(*keys);
  auto bundle = jwt::RenderSaKeyBundle(exported, Now());
  if (!bundle.ok()) return ctx.Fail(bundle.status());
  const std::string out = Opt(vm, "out");
  if (out.empty() || out == "-") {
    ctx.out() << *bundle << "\n";
  } else {
    if (Status s = WriteFileAtomic(out, *bundle + "\n", 0644); !s.ok()) return ctx.Fail(s.WithContext(out));
  }
  for (const auto& k : exported) {
    ctx.err() << "kubehsm: exported " << jwt::SaKeyStateName(k.state) << " key " << k.kid << "\n";
  }
  return kExitOk;
}

constexpr const char* kSaEpilogue =
    "Key states, stored in the token's key labels (kubehsm-sa:<state>:<since>:<kid>):\n"
    "  next     published, not signing      (sa rotate)\n"
    "  active   signing and published       (sa activate; exactly one)\n"
    "  retired  published for verification  (sa retire, sa import-public)\n"
    "  imported a retired public key generated outside the token, published until its expiry\n"
    "           (kubehsm-sa:imported:<since>:<until>:<kid>)\n"
    "  removed  destroyed                   (sa remove)\n"
    "'sa verify --help' lists its exit codes.\n";

}  // namespace

int RunSa(Context& ctx, const Args& args) {
  return DispatchSubcommand(
      ctx, args, "sa",
      {{"sign", SaSign, "mint a service-account token with the active key"},
       {"verify", SaVerify, "verify a token like kube-apiserver and print its identity"},
       {"jwks", SaJwks, "print the JWKS of the published keys (/openid/v1/jwks)"},
       {"discovery", SaDiscovery, "print the OIDC discovery document (/.well-known/openid-configuration)"},
       {"list", SaList, "list the service-account keys and their states"},
       {"rotate", SaRotate, "create the next key (published, not signing yet)"},
       {"activate", SaActivate, "make a published key the signing key; retire the previous one"},
       {"retire", SaRetire, "stop a key signing; keep it published"},
       {"remove", SaRemove, "destroy a retired or next key"},
       {"import-public", SaImportPublic,
        "publish an existing public key (e.g. the old sa.pub) or another node's bundle for verification"},
       {"export-public", SaExportPublic, "write this token's active and next public keys as a bundle for other nodes"}},
      "Service-account tokens and signing-key rotation.", kSaEpilogue);
}

}  // namespace kubehsm::cli
