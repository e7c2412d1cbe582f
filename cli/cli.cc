#include "cli/cli.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "cli/command.h"
#include "cli/token_key_store.h"
#include "common/file_util.h"
#include "common/terminal_text.h"

namespace kubehsm::cli {
namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace {

constexpr const char* kDefaultTokenUri = "pkcs11:token=kubehsm";

po::options_description GlobalOptionsDescription() {
  po::options_description d("Global options (before or after the command)");
  d.add_options()("hsm-config", po::value<std::string>(),
                  "kubehsm config file (default: $KUBEHSM_CONFIG, "
                  "$XDG_CONFIG_HOME/kubehsm/kubehsm.conf, /etc/kubehsm/kubehsm.conf)")(
      "module", po::value<std::string>(), "PKCS#11 module path (default " KUBEHSM_DEFAULT_MODULE ")")(
      "token", po::value<std::string>(), "RFC 7512 URI of the token (default pkcs11:token=kubehsm)")(
      "pin-source", po::value<std::string>(), "where the user PIN comes from: env:VAR, file:PATH, fd:N or prompt")(
      "module-init-args", po::value<std::string>(),
      "string passed to the module's C_Initialize (pReserved), e.g. NSS softokn's \"configdir='sql:DIR' ...\"")(
      "state-dir", po::value<std::string>(),
      "directory of the issuance ledger and audit log (default: the config file's directory, else "
      "/var/lib/kubehsm)")("verbose,v", po::bool_switch(), "more detail on stderr (never PINs)");
  return d;
}

// Applies the global options present in `vm` on top of `g`.
void ApplyGlobals(const po::variables_map& vm, GlobalOptions& g) {
  if (vm.count("module") != 0) g.module = vm["module"].as<std::string>();
  if (vm.count("token") != 0) g.token_uri = vm["token"].as<std::string>();
  if (vm.count("pin-source") != 0) g.pin_source = vm["pin-source"].as<std::string>();
  if (vm.count("module-init-args") != 0) g.module_init_args = vm["module-init-args"].as<std::string>();
  if (vm.count("state-dir") != 0) g.state_dir = vm["state-dir"].as<std::string>();
  if (vm.count("verbose") != 0 && vm["verbose"].as<bool>()) g.verbose = true;
}

// The config file search order: --hsm-config, $KUBEHSM_CONFIG, $XDG_CONFIG_HOME (or ~/.config)
// /kubehsm/kubehsm.conf, /etc/kubehsm/kubehsm.conf. An explicitly named file must exist.
Result<std::string> FindConfigFile(const std::string& explicit_path) {
  if (!explicit_path.empty()) {
    if (!fs::exists(explicit_path)) return NotFound("config file " + explicit_path + " does not exist");
    return explicit_path;
  }
  if (const char* env = std::getenv("KUBEHSM_CONFIG"); env != nullptr && *env != '\0') {
    if (!fs::exists(env)) return NotFound("config file " + std::string(env) + " (from KUBEHSM_CONFIG) does not exist");
    return std::string(env);
  }
  std::vector<fs::path> candidates;
  if (const char* xdg = std::getenv("XDG_CONFIG_HOME"); xdg != nullptr && *xdg != '\0') {
    candidates.push_back(fs::path(xdg) / "kubehsm/kubehsm.conf");
  } else if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
    candidates.push_back(fs::path(home) / ".config/kubehsm/kubehsm.conf");
  }
  candidates.push_back("/etc/kubehsm/kubehsm.conf");
  for (const auto& c : candidates) {
    std::error_code ec;
    if (fs::exists(c, ec)) return c.string();
  }
  return std::string();
}

// The config file names the module kubehsm dlopens, so whoever can write it runs code as us: it
// must be owned by root or the running user and not writable by others, and so must its
// directory unless that is sticky (/tmp-like: others cannot replace our file there). /dev/null
// (an empty config) is accepted.
Status CheckConfigFileTrusted(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return PermissionDenied("cannot stat config file " + path);
  if (S_ISCHR(st.st_mode) && st.st_uid == 0 && st.st_rdev == makedev(1, 3)) return OkStatus();  // /dev/null
  if (!S_ISREG(st.st_mode)) return PermissionDenied("config file " + path + " is not a regular file");
  if (std::string why = UntrustedWriterReason(st); !why.empty()) {
    return PermissionDenied("refusing config file " + path + ": it " + why +
                            " (it names the PKCS#11 module to load; chown/chmod go-w it)");
  }
  const fs::path dir = fs::absolute(path).parent_path();
  struct stat dst {};
  if (::stat(dir.c_str(), &dst) != 0) return PermissionDenied("cannot stat the directory of config file " + path);
  if ((dst.st_mode & S_ISVTX) == 0) {
    if (std::string why = UntrustedWriterReason(dst); !why.empty()) {
      return PermissionDenied("refusing config file " + path + ": its directory " + dir.string() + " " + why);
    }
  }
  return OkStatus();
}

// Reads `module`, `token`, `pin-source`, `state-dir` and `module-env` from a kubehsm config file
// (INI "key = value"; `module-env` may repeat) after CheckConfigFileTrusted.
Status ReadConfigFile(const std::string& path, GlobalOptions& g) {
  KH_RETURN_IF_ERROR(CheckConfigFileTrusted(path));
  std::ifstream in(path);
  if (!in) return PermissionDenied("cannot read config file " + path);
  po::options_description d;
  d.add_options()("module", po::value<std::string>())("token", po::value<std::string>())(
      "pin-source", po::value<std::string>())("state-dir", po::value<std::string>())(
      "module-env", po::value<std::vector<std::string>>()->composing())(
      "module-init-args", po::value<std::string>())("allow-keys-without-cka-local", po::value<std::string>());
  try {
    po::variables_map vm;
    po::store(po::parse_config_file(in, d, /*allow_unregistered=*/false), vm);
    po::notify(vm);
    ApplyGlobals(vm, g);
    if (vm.count("allow-keys-without-cka-local") != 0) {
      const std::string v = vm["allow-keys-without-cka-local"].as<std::string>();
      if (v != "true" && v != "false") {
        return InvalidArgument("config file " + path + ": allow-keys-without-cka-local must be true or false, got '" +
                               v + "'");
      }
      g.allow_keys_without_cka_local = v == "true";
    }
    if (vm.count("module-env") != 0) {
      for (const auto& kv : vm["module-env"].as<std::vector<std::string>>()) {
        const auto eq = kv.find('=');
        if (eq == 0 || eq == std::string::npos) {
          return InvalidArgument("config file " + path + ": module-env must be NAME=VALUE, got '" + kv + "'");
        }
        g.module_env.push_back(kv);
      }
    }
  } catch (const po::error& e) {
    return InvalidArgument("config file " + path + ": " + e.what());
  }
  g.config_file = path;
  if (g.state_dir.empty() && path != "/dev/null") g.state_dir = fs::absolute(path).parent_path().string();
  return OkStatus();
}

struct CommandEntry {
  const char* name;
  int (*run)(Context&, const Args&);
  const char* summary;
};

constexpr CommandEntry kCommands[] = {
    {"init", RunInit, "create the CAs and SA key in the token and the whole kubeadm PKI (phases: init phase ...)"},
    {"certs", RunCerts, "issue, renew and check kubeadm certificates; sign CSRs"},
    {"pki", RunPki, "verify a pki directory; print the chain of trust"},
    {"sa", RunSa, "service-account tokens: sign, verify, jwks, discovery, rotation"},
    {"serve", RunServe, "serve kube-apiserver's ExternalJWTSigner gRPC API on a Unix socket"},
    {"kubeadm", RunKubeadm, "kubeadm patch files that make kubeadm's manifests use kubehsm serve"},
    {"ledger", RunLedger, "the issuance ledger: list, show, export, import"},
    {"audit", RunAudit, "the audit trail: verify, show"},
    {"backup", RunBackup, "a consistent copy of the ledger, audit trail, CA certificates and config"},
    {"keys", RunKeys, "keys in the token: generate, list, pubkey"},
    {"token", RunToken, "tokens of the module: list, init, check"},
};

void PrintUsage(std::ostream& out) {
  out << "Usage: kubehsm [global options] COMMAND [command options]\n\n"
         "kubehsm keeps a Kubernetes cluster's CA and service-account keys in a PKCS#11 token\n"
         "and does the cluster's PKI signing through it.\n\nCommands:\n";
  for (const auto& c : kCommands) {
    out << "  " << c.name << std::string(10 - std::string(c.name).size(), ' ') << c.summary << "\n";
  }
  out << "  version   print the version\n\n"
      << GlobalOptionsDescription() << "\nRun 'kubehsm COMMAND --help' for a command's options.\n";
}

}  // namespace

Context::Context(GlobalOptions globals, std::ostream& out, std::ostream& err)
    : globals_(std::move(globals)), out_(out), err_(err) {}

Context::~Context() = default;

Result<signer::KeyStore*> Context::KeyStore() {
  if (!session_) {
    hsm::OpenStep failed_step = hsm::OpenStep::kNone;
    auto opened = TokenSession::Open(globals_, err_, &failed_step);
    if (!opened.ok()) {
      const Status& s = opened.status();
      if (failed_step == hsm::OpenStep::kPinSource) {
        // The PIN could not be read (no terminal, a missing file, ...): no C_Login happened, so
        // this is no login failure and costs the token no attempt.
        AuditEvent("pin-source-error", {{"token", globals_.token_uri}, {"reason", s.message()}});
      } else if (s.code() == StatusCode::kUnauthenticated || s.code() == StatusCode::kFailedPrecondition) {
        AuditEvent("login-failure", {{"token", globals_.token_uri}, {"reason", s.message()}});
      }
      return s;
    }
    session_ = std::move(*opened);
    if (globals_.allow_keys_without_cka_local) {
      // Weaker provenance, chosen in the config file: say so on every run and in the audit trail.
      err_ << "kubehsm: warning: allow-keys-without-cka-local = true (" << globals_.config_file
           << "): keys the token does not mark as generated inside it (CKA_LOCAL) are accepted\n";
      AuditEvent("cka-local-not-required", {{"config", globals_.config_file}, {"token", globals_.token_uri}});
    }
  }
  return &session_->store();
}

namespace {

// Creates the state directory if needed and checks it and the audit log's files.
Status PrepareStateDir(const std::string& dir) {
  KH_RETURN_IF_ERROR(EnsureDirectory(dir, 0700));
  KH_RETURN_IF_ERROR(ledger::CheckStateDirectory(dir));
  for (const char* name : {"audit.log", "audit.log.head"}) {
    KH_RETURN_IF_ERROR(ledger::CheckStateFile(fs::path(dir) / name));
  }
  return OkStatus();
}

}  // namespace

Result<ledger::Ledger*> Context::Ledger() {
  if (!ledger_) {
    KH_RETURN_IF_ERROR(PrepareStateDir(globals_.state_dir));
    KH_ASSIGN_OR_RETURN(ledger_, ledger::Ledger::Open(fs::path(globals_.state_dir) / "ledger.db"));
  }
  return ledger_.get();
}

Result<fs::path> Context::WorkRoot() {
  KH_RETURN_IF_ERROR(PrepareStateDir(globals_.state_dir));
  return fs::path(globals_.state_dir) / "work";
}

Status Context::CheckAudit() {
  KH_RETURN_IF_ERROR(PrepareStateDir(globals_.state_dir));
  return Audit().CheckAppendable();
}

Status Context::AppendAudit(const std::string& event, const std::map<std::string, std::string>& fields) {
  KH_RETURN_IF_ERROR(PrepareStateDir(globals_.state_dir));
  return Audit().Append(event, fields).WithContext("audit record '" + event + "' not written");
}

ledger::AuditLog& Context::Audit() {
  if (!audit_) audit_ = std::make_unique<ledger::AuditLog>(fs::path(globals_.state_dir) / "audit.log");
  return *audit_;
}

void Context::AuditEvent(const std::string& event, const std::map<std::string, std::string>& fields) {
  Status s = PrepareStateDir(globals_.state_dir);
  if (s.ok()) s = Audit().Append(event, fields);
  if (!s.ok()) {
    err_ << "kubehsm: warning: audit record '" << event << "' not written: " << EscapeForTerminal(s.message()) << "\n";
  }
}

int Context::Fail(const Status& status) {
  // Messages quote input (CSR names, archive members, file contents): escaped, and one line.
  err_ << "kubehsm: error: " << EscapeForTerminal(status.message()) << "\n";
  return kExitFailure;
}

int Context::UsageError(const std::string& message) {
  err_ << "kubehsm: " << EscapeForTerminal(message) << "\n";
  return kExitUsage;
}

bool ParseArgs(Context& ctx, const std::string& usage, const po::options_description& desc,
               const po::positional_options_description* positional, const Args& args, po::variables_map& vm,
               int& exit_code) {
  po::options_description all;
  all.add(desc);
  po::options_description help_opts;
  help_opts.add_options()("help,h", "show this help");
  all.add(help_opts);
  all.add(GlobalOptionsDescription());
  try {
    po::command_line_parser parser(args);
    parser.options(all);
    if (positional != nullptr) parser.positional(*positional);
    po::store(parser.run(), vm);
    if (vm.count("help") != 0) {
      ctx.out() << "Usage: " << usage << "\n\n" << desc << "\n" << GlobalOptionsDescription();
      exit_code = kExitOk;
      return false;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    exit_code = ctx.UsageError(std::string(e.what()) + " (see '" +
                               usage.substr(0, std::min(usage.find(" ["), usage.find('\n'))) + " --help')");
    return false;
  }
  ApplyGlobals(vm, ctx.mutable_globals());
  return true;
}

int DispatchSubcommand(Context& ctx, const Args& args, const char* group, std::initializer_list<Subcommand> subs,
                       const char* description, const char* epilogue) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::ostream& o = args.empty() ? ctx.err() : ctx.out();
    o << "Usage: kubehsm " << group << " SUBCOMMAND [options]\n\n";
    if (*description != '\0') o << description << "\n\n";
    o << "Subcommands:\n";
    std::size_t width = 0;
    for (const auto& sub : subs) width = std::max(width, std::string_view(sub.name).size());
    for (const auto& sub : subs) {
      o << "  " << sub.name << std::string(width + 2 - std::string_view(sub.name).size(), ' ') << sub.summary << "\n";
    }
    if (*epilogue != '\0') o << "\n" << epilogue;
    o << "\nRun 'kubehsm " << group << " SUBCOMMAND --help' for its options.\n";
    return args.empty() ? kExitUsage : kExitOk;
  }
  for (const auto& sub : subs) {
    if (args[0] == sub.name) return sub.run(ctx, Args(args.begin() + 1, args.end()));
  }
  return ctx.UsageError("unknown subcommand '" + std::string(group) + " " + args[0] + "' (see 'kubehsm " + group +
                        " --help')");
}

int Main(int argc, char** argv) {
  Args args(argv + 1, argv + argc);
  // Split "[global options] COMMAND [rest]".
  static const std::map<std::string, bool> kGlobalTakesValue = {{"--hsm-config", true}, {"--module", true},
                                                                {"--token", true},      {"--pin-source", true}, {"--state-dir", true}, {"--module-init-args", true},
                                                                {"--verbose", false},   {"-v", false}};
  Args global_args;
  std::size_t i = 0;
  for (; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.empty() || a[0] != '-') break;
    if (a == "--help" || a == "-h") {
      PrintUsage(std::cout);
      return kExitOk;
    }
    if (a == "--version") {
      std::cout << "kubehsm " << KUBEHSM_VERSION << "\n";
      return kExitOk;
    }
    global_args.push_back(a);
    const std::string name = a.substr(0, a.find('='));
    auto it = kGlobalTakesValue.find(name);
    if (it == kGlobalTakesValue.end()) {
      std::cerr << "kubehsm: unknown global option " << name << " (see 'kubehsm --help')\n";
      return kExitUsage;
    }
    if (it->second && a.find('=') == std::string::npos) {
      if (i + 1 >= args.size()) {
        std::cerr << "kubehsm: option " << a << " needs a value\n";
        return kExitUsage;
      }
      global_args.push_back(args[++i]);
    }
  }
  if (i >= args.size()) {
    PrintUsage(std::cerr);
    return kExitUsage;
  }
  const std::string command = args[i];
  Args rest(args.begin() + static_cast<std::ptrdiff_t>(i) + 1, args.end());

  po::variables_map gvm;
  try {
    po::store(po::command_line_parser(global_args).options(GlobalOptionsDescription()).run(), gvm);
    po::notify(gvm);
  } catch (const po::error& e) {
    std::cerr << "kubehsm: " << e.what() << "\n";
    return kExitUsage;
  }
  GlobalOptions globals;
  globals.module = KUBEHSM_DEFAULT_MODULE;
  globals.token_uri = kDefaultTokenUri;
  // Config file first, then the command line on top. --hsm-config may also follow the command.
  std::string explicit_config = gvm.count("hsm-config") != 0 ? gvm["hsm-config"].as<std::string>() : "";
  for (std::size_t k = 0; k < rest.size(); ++k) {
    if (rest[k] == "--hsm-config" && k + 1 < rest.size()) explicit_config = rest[k + 1];
    if (rest[k].rfind("--hsm-config=", 0) == 0) explicit_config = rest[k].substr(13);
  }
  auto config_path = FindConfigFile(explicit_config);
  if (!config_path.ok()) {
    std::cerr << "kubehsm: error: " << config_path.status().message() << "\n";
    return kExitFailure;
  }
  if (!config_path->empty()) {
    Status s = ReadConfigFile(*config_path, globals);
    if (!s.ok()) {
      std::cerr << "kubehsm: error: " << s.message() << "\n";
      return kExitFailure;
    }
  }
  ApplyGlobals(gvm, globals);
  if (globals.state_dir.empty()) globals.state_dir = "/var/lib/kubehsm";
  // Module environment (e.g. SOFTHSM2_CONF) from the config file, set once before any module is
  // loaded and before any thread starts. A variable already set in the environment wins.
  for (const auto& kv : globals.module_env) {
    const auto eq = kv.find('=');
    ::setenv(kv.substr(0, eq).c_str(), kv.substr(eq + 1).c_str(), /*overwrite=*/0);
  }

  if (command == "version") {
    std::cout << "kubehsm " << KUBEHSM_VERSION << "\n";
    return kExitOk;
  }
  if (command == "help") {
    PrintUsage(std::cout);
    return kExitOk;
  }
  for (const auto& c : kCommands) {
    if (command == c.name) {
      Context ctx(globals, std::cout, std::cerr);
      return c.run(ctx, rest);
    }
  }
  std::cerr << "kubehsm: unknown command '" << command << "' (see 'kubehsm --help')\n";
  return kExitUsage;
}

}  // namespace kubehsm::cli
