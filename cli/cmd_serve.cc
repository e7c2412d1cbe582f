// `kubehsm serve`: the composition of the signer daemon (service/) with the PKCS#11 token
// (hsm/ through cli/token_key_store.h). Parses the flags, checks the PIN source is
// non-interactive, and runs service::Serve until SIGTERM.
#include <grp.h>
#include <pwd.h>

#include <cstdint>
#include <memory>
#include <iostream>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "cli/command.h"
#include "cli/token_key_store.h"
#include "hsm/pin.h"
#include "hsm/uri.h"
#include "service/server.h"

namespace kubehsm::cli {
namespace po = boost::program_options;

namespace {

// The token behind the signer: an open, logged-in hsm::Hsm and its KeyStore.
class TokenBackend final : public service::SignerBackend {
 public:
  explicit TokenBackend(std::unique_ptr<TokenSession> session) : session_(std::move(session)) {}
  signer::KeyStore& store() override { return session_->store(); }
  Status CheckHealth() override { return session_->hsm().token().CheckHealth(); }

 private:
  std::unique_ptr<TokenSession> session_;
};

// serve re-opens the token by itself after a failure, so the PIN must be available again without
// anyone at a terminal: file: (re-read at every re-open) or env: (read once at start, when ReadPin
// also removes it from the environment, and kept in a wiped-on-exit Pin); a prompt has no one to
// answer, and an fd is consumed. Returns the parsed source.
Result<hsm::PinSource> CheckPinSourceForServe(const GlobalOptions& g) {
  std::string text = g.pin_source;
  if (text.empty()) {
    KH_ASSIGN_OR_RETURN(hsm::Pkcs11Uri uri, hsm::Pkcs11Uri::Parse(g.token_uri.empty() ? "pkcs11:" : g.token_uri));
    if (uri.pin_source) text = *uri.pin_source;
  }
  if (text.empty()) text = "prompt";
  KH_ASSIGN_OR_RETURN(hsm::PinSource source, hsm::PinSource::Parse(text));
  if (source.kind == hsm::PinSource::Kind::kPrompt) {
    return InvalidArgument("serve needs a non-interactive PIN source (--pin-source env:VAR or file:PATH, or "
                           "pin-source in the config file); 'prompt' is refused");
  }
  if (source.kind == hsm::PinSource::Kind::kFd) {
    return InvalidArgument("serve re-reads the PIN when it re-opens the token after a failure, which an fd: "
                           "source cannot do; use env:VAR or file:PATH");
  }
  return source;
}

Result<uid_t> ParseUid(const std::string& text) {
  if (!text.empty() && text.find_first_not_of("0123456789") == std::string::npos && text.size() <= 10) {
    return static_cast<uid_t>(std::stoul(text));
  }
  if (const passwd* pw = ::getpwnam(text.c_str()); pw != nullptr) return pw->pw_uid;
  return InvalidArgument("unknown user '" + text + "'");
}

Result<gid_t> ParseGid(const std::string& text) {
  if (!text.empty() && text.find_first_not_of("0123456789") == std::string::npos && text.size() <= 10) {
    return static_cast<gid_t>(std::stoul(text));
  }
  if (const group* gr = ::getgrnam(text.c_str()); gr != nullptr) return gr->gr_gid;
  return InvalidArgument("unknown group '" + text + "'");
}

std::vector<std::string> Strings(const po::variables_map& vm, const char* name) {
  return vm.count(name) != 0 ? vm[name].as<std::vector<std::string>>() : std::vector<std::string>{};
}

}  // namespace

int RunServe(Context& ctx, const Args& args) {
  service::ServeOptions o;
  po::options_description d("kubehsm serve");
  d.add_options()
      ("socket", po::value<std::string>(&o.socket),
       "Unix socket to serve on: an absolute path (e.g. /run/kubehsm/signer.sock) in a directory owned by this "
       "user or root and writable by no one else. Same value as kube-apiserver's "
       "--service-account-signing-endpoint. @name (abstract) only with --allow-abstract-socket-insecure")
      ("allow-abstract-socket-insecure", po::bool_switch(&o.allow_abstract_socket_insecure),
       "accept an abstract socket (@name). INSECURE: an abstract name has no owner, so any local process can "
       "bind it while kubehsm is not running and impersonate the signer; also needs --allow-uid/--allow-gid")
      ("socket-group", po::value<std::string>(), "make the socket 0660 with this group (name or gid); default 0600")
      ("allow-uid", po::value<std::vector<std::string>>(), "peer uid (or user name) allowed to connect, repeatable; "
       "checked with SO_PEERCRED; a refused peer's connection is closed at once")
      ("max-connections", po::value<std::size_t>(&o.max_connections)->default_value(256),
       "connections held open at once by all peers; more are closed at once (the open-file limit must allow "
       "this plus 128)")
      ("max-connections-per-uid", po::value<std::size_t>(&o.max_connections_per_uid)->default_value(32),
       "connections held open at once by one peer uid; more are closed at once")
      ("allow-gid", po::value<std::vector<std::string>>(), "peer gid (or group name) allowed, primary or "
       "supplementary, repeatable")
      ("max-token-expiration-seconds", po::value<int64_t>(&o.max_token_expiration_seconds)->default_value(86400),
       "Metadata: the longest token lifetime the signer accepts (>= 600)")
      ("refresh-hint-seconds", po::value<int64_t>(&o.refresh_hint_seconds)->default_value(60),
       "FetchKeys: seconds until kube-apiserver fetches the keys again")
      ("key-poll-seconds", po::value<int64_t>(&o.key_poll_seconds)->default_value(10),
       "re-read the service-account key labels from the token this often (picks up `kubehsm sa rotate`/"
       "`activate` run elsewhere; SIGHUP reloads at once)")
      ("exclude-from-oidc", po::value<std::vector<std::string>>(), "kid published as verify-only "
       "(exclude_from_oidc_discovery), repeatable; e.g. an imported legacy key")
      ("sessions", po::value<std::size_t>(&o.sessions)->default_value(8),
       "token sessions, i.e. signatures in parallel")
      ("metrics-socket", po::value<std::string>(&o.metrics_socket), "serve Prometheus metrics (GET /metrics) on this "
       "Unix socket")
      ("metrics-port", po::value<int>(&o.metrics_port)->default_value(0), "or on 127.0.0.1:PORT (opt-in; 0 = off)")
      ("shutdown-grace-seconds", po::value<int64_t>(&o.shutdown_grace_seconds)->default_value(10),
       "on SIGTERM, how long in-flight calls may take to finish")
      ("debug", po::bool_switch(&o.debug), "debug log lines, including token claims");
  po::variables_map vm;
  int code = 0;
  if (!ParseArgs(ctx, "kubehsm serve --socket PATH|@name [options]", d, nullptr, args, vm, code)) return code;

  if (vm.count("socket-group") != 0) {
    auto gid = ParseGid(vm["socket-group"].as<std::string>());
    if (!gid.ok()) return ctx.UsageError("--socket-group: " + gid.status().message());
    o.socket_group = *gid;
  }
  for (const auto& u : Strings(vm, "allow-uid")) {
    auto uid = ParseUid(u);
    if (!uid.ok()) return ctx.UsageError("--allow-uid: " + uid.status().message());
    o.allow_uids.push_back(*uid);
  }
  for (const auto& g : Strings(vm, "allow-gid")) {
    auto gid = ParseGid(g);
    if (!gid.ok()) return ctx.UsageError("--allow-gid: " + gid.status().message());
    o.allow_gids.push_back(*gid);
  }
  for (const auto& kid : Strings(vm, "exclude-from-oidc")) o.exclude_from_oidc.insert(kid);

  if (Status s = service::ValidateServeOptions(o); !s.ok()) return ctx.UsageError(s.message());
  auto pin_source = CheckPinSourceForServe(ctx.globals());
  if (!pin_source.ok()) return ctx.UsageError(pin_source.status().message());

  // A long-running holder of a token login (and, with env:, of the PIN): no core file, no ptrace
  // or /proc/PID/mem by other processes of this user.
  if (Status s = hsm::ProtectProcessMemory(); !s.ok()) return ctx.Fail(s);
  std::shared_ptr<const hsm::Pin> kept_pin;
  if (pin_source->kind == hsm::PinSource::Kind::kEnv) {
    auto pin = hsm::ReadPin(*pin_source);  // removes the variable from the environment
    if (!pin.ok()) return ctx.Fail(pin.status());
    kept_pin = std::make_shared<const hsm::Pin>(std::move(*pin));
  }

  const GlobalOptions globals = ctx.globals();
  const std::size_t sessions = o.sessions;
  ReportTokenSelection(globals, ctx.err());
  std::ostream& err = ctx.err();  // outlives Serve, hence every call of the factory
  service::BackendFactory factory = [globals, sessions, kept_pin,
                                     &err]() -> Result<std::unique_ptr<service::SignerBackend>> {
    hsm::HsmOptions h = TokenSession::HsmOptionsFor(globals);
    h.pin = kept_pin.get();
    if (globals.verbose) {
      h.on_token_selected = [&err](const hsm::TokenInfo& info) {
        err << "kubehsm: using " << DescribeToken(info) << "\n" << std::flush;
      };
    }
    // The token's session pool and pkcs11-provider's cache both sized for the signing threads.
    h.sessions = sessions;
    KH_ASSIGN_OR_RETURN(std::unique_ptr<hsm::Hsm> opened, hsm::Hsm::Open(h));
    return std::unique_ptr<service::SignerBackend>(
        std::make_unique<TokenBackend>(std::make_unique<TokenSession>(std::move(opened))));
  };
  service::Logger logger(ctx.err(), o.debug);
  Status s = service::Serve(o, std::move(factory), logger);
  if (!s.ok()) return ctx.Fail(s);
  return kExitOk;
}

}  // namespace kubehsm::cli
