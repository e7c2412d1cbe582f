// What every kubehsm command receives: the global options, lazy access to the token, and output
// streams. Commands parse their own options (Boost.Program_options), call the modules and print.
#pragma once

#include <filesystem>
#include <functional>
#include <initializer_list>
#include <iosfwd>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <boost/program_options.hpp>

#include "common/status.h"
#include "ledger/audit_log.h"
#include "ledger/ledger.h"
#include "signer/key_store.h"

namespace kubehsm::cli {

// Exit codes shared by all commands (Botan's convention: usage 1, everything else 2).
inline constexpr int kExitOk = 0;
inline constexpr int kExitUsage = 1;
inline constexpr int kExitFailure = 2;

struct GlobalOptions {
  std::string module;       // PKCS#11 module path
  std::string token_uri;    // RFC 7512 URI selecting the token ("pkcs11:token=kubehsm")
  std::string pin_source;   // env:VAR | file:PATH | fd:N | prompt
  std::vector<std::string> module_env;  // "NAME=VALUE" set before the module loads (config file only)
  std::string module_init_args;  // C_Initialize pReserved string (e.g. NSS softokn's configdir=...)
  // Config file only: accept token keys whose CKA_LOCAL is false (weaker provenance, e.g. NSS).
  bool allow_keys_without_cka_local = false;
  std::string config_file;  // the kubehsm config file actually read ("" if none)
  std::string state_dir;    // where ledger.db and audit.log live (default: the config file's directory,
                            // else /var/lib/kubehsm)
  bool verbose = false;
};

class TokenSession;  // defined in cli/token_key_store.h

class Context final {
 public:
  Context(GlobalOptions globals, std::ostream& out, std::ostream& err);
  Context(const Context&) = delete;  // owns the token session
  Context& operator=(const Context&) = delete;
  ~Context();

  const GlobalOptions& globals() const { return globals_; }
  // For ParseArgs: global options given after the command word override earlier ones.
  GlobalOptions& mutable_globals() { return globals_; }
  std::ostream& out() { return out_; }
  std::ostream& err() { return err_; }

  // Opens the module, the token and logs in (PIN from the pin source) on first use; later calls
  // return the same store. The store lives until the command returns.
  Result<signer::KeyStore*> KeyStore();

  // The open token session (after KeyStore() succeeded), for hsm-level commands.
  TokenSession* token_session() { return session_.get(); }

  // The issuance ledger and the audit trail in globals().state_dir (created 0700 on first use).
  // The directory and its files are checked first (ledger::CheckStateDirectory/CheckStateFile:
  // owner root or us, not writable by others, no symlinks); kPermissionDenied otherwise.
  Result<ledger::Ledger*> Ledger();
  ledger::AuditLog& Audit();
  // <state_dir>/work, after the state directory checks of Ledger(): where a command keeps files that
  // must not outlive it (see common/private_work_dir.h). kPermissionDenied as Ledger().
  Result<std::filesystem::path> WorkRoot();
  // Checks the state directory and audit.log (as Ledger()) and that the log takes an append.
  Status CheckAudit();
  // Appends a security event to the audit trail after the same checks. For events that hand
  // something out (certificates, tokens) or change keys: a failure must stop the command.
  Status AppendAudit(const std::string& event, const std::map<std::string, std::string>& fields);
  // AppendAudit for events that only report (refusals, login failures): a failure to write is a
  // warning on stderr, since the command fails anyway.
  void AuditEvent(const std::string& event, const std::map<std::string, std::string>& fields);

  // Prints "kubehsm: error: <message>" on stderr and returns the exit code for the status
  // (kExitUsage for kInvalidArgument raised by option parsing, else kExitFailure).
  int Fail(const Status& status);
  // Prints a usage error and returns kExitUsage.
  int UsageError(const std::string& message);

 private:
  GlobalOptions globals_;
  std::ostream& out_;
  std::ostream& err_;
  std::unique_ptr<TokenSession> session_;
  std::unique_ptr<ledger::Ledger> ledger_;
  std::unique_ptr<ledger::AuditLog> audit_;
};

using Args = std::vector<std::string>;

// Parses `args` against `desc` (+ positional), handling --help: returns nullopt-like false and
// sets `exit_code` when the command should stop (help printed or usage error).
// Usage: `int code; if (!ParseArgs(ctx, "kubehsm keys generate", desc, {}, args, vm, code)) return code;`
bool ParseArgs(Context& ctx, const std::string& usage, const boost::program_options::options_description& desc,
               const boost::program_options::positional_options_description* positional, const Args& args,
               boost::program_options::variables_map& vm, int& exit_code);

// A subcommand: its name, entry point and one-line summary for the group's help.
struct Subcommand {
  const char* name;
  int (*run)(Context&, const Args&);
  const char* summary;
};

// Runs the subcommand named by args[0] with the remaining arguments. `--help`/`-h`/`help` prints
// the group's usage (`description`, the subcommands with summaries, `epilogue`) on stdout, exit 0;
// no arguments prints it on stderr, exit 1; an unknown name is a usage error.
int DispatchSubcommand(Context& ctx, const Args& args, const char* group, std::initializer_list<Subcommand> subs,
                       const char* description = "", const char* epilogue = "");

// Command entry points. Each receives the arguments after its command word.
int RunKeys(Context& ctx, const Args& args);    // cli/cmd_keys.cc
int RunToken(Context& ctx, const Args& args);   // cli/cmd_keys.cc: token init / info
int RunTokenCheck(Context& ctx, const Args& args);  // cli/cmd_token_check.cc: `token check`
int RunInit(Context& ctx, const Args& args);    // cli/cmd_init.cc
int RunCerts(Context& ctx, const Args& args);   // cli/cmd_certs.cc
int RunPki(Context& ctx, const Args& args);     // cli/cmd_pki.cc
int RunSa(Context& ctx, const Args& args);      // cli/cmd_sa.cc
int RunServe(Context& ctx, const Args& args);   // cli/cmd_serve.cc
int RunKubeadm(Context& ctx, const Args& args);  // cli/cmd_kubeadm.cc: `kubeadm patches`
int RunLedger(Context& ctx, const Args& args);  // cli/cmd_ledger.cc
int RunAudit(Context& ctx, const Args& args);   // cli/cmd_ledger.cc
int RunBackup(Context& ctx, const Args& args);  // cli/cmd_backup.cc

}  // namespace kubehsm::cli
