// kubehsm init [phase ca|sa|certs|kubeconfig]: the cluster PKI with the CA and service-account keys
// in the token (signer/pki/init.h does the work; this file parses, wires and prints).
#include <iostream>
#include <optional>
#include <string>

#include "cli/command.h"
#include "cli/issuance_recorder.h"
#include "cli/pki_flags.h"
#include "signer/pki/init.h"

namespace kubehsm::cli {
namespace po = boost::program_options;

int RunInit(Context& ctx, const Args& args) {
  std::optional<signer::pki::InitPhase> phase;
  Args rest = args;
  std::string usage = "kubehsm init [options]";
  if (!rest.empty() && rest[0] == "phase") {
    if (rest.size() < 2 || rest[1].starts_with("-")) {
      if (rest.size() >= 2 && (rest[1] == "--help" || rest[1] == "-h")) {
        ctx.out() << "Usage: kubehsm init phase ca|sa|certs|kubeconfig [options]\n\n"
                     "  ca          create the ca, etcd-ca and front-proxy-ca key pairs in the token and\n"
                     "              self-sign ca.crt, etcd/ca.crt, front-proxy-ca.crt\n"
                     "  sa          create the service-account key pair in the token and write sa.pub\n"
                     "  certs       issue every leaf certificate (software keys) from the token CAs\n"
                     "  kubeconfig  write admin, super-admin, kubelet, controller-manager, scheduler .conf\n";
        return kExitOk;
      }
      return ctx.UsageError("'kubehsm init phase' needs one of ca, sa, certs, kubeconfig");
    }
    phase = signer::pki::ParseInitPhase(rest[1]);
    if (!phase) return ctx.UsageError("unknown phase '" + rest[1] + "' (ca, sa, certs, kubeconfig)");
    usage = "kubehsm init phase " + rest[1] + " [options]";
    rest.erase(rest.begin(), rest.begin() + 2);
  }
  po::options_description d =
      ClusterConfigFlags(phase ? "kubehsm init phase options" : "kubehsm init options", FlagsFor::kInit);
  po::variables_map vm;
  int code = 0;
  if (!ParseArgs(ctx, usage, d, nullptr, rest, vm, code)) return code;
  auto options = PkiOptionsFromFlags(ctx, vm);
  if (!options.ok()) return ctx.Fail(options.status());
  auto store = ctx.KeyStore();
  if (!store.ok()) return ctx.Fail(store.status());
  // Every certificate goes into the ledger before it is written; key pairs created are audited.
  auto recorder = LedgerRecorder(ctx);
  if (!recorder.ok()) return ctx.Fail(recorder.status());
  options->record = *recorder;
  AuditingKeyStore audited(**store, ctx);
  auto result = phase ? signer::pki::RunInitPhase(audited, *phase, *options) : signer::pki::RunInit(audited, *options);
  if (!result.ok()) return ctx.Fail(result.status());
  if (phase && result->written == 0 && result->keys_created == 0) {
    ctx.out() << "[init] Nothing changed\n";
  }
  return kExitOk;
}

}  // namespace kubehsm::cli
