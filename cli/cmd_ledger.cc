// kubehsm ledger list|show|export and kubehsm audit verify|show.
#include <ctime>
#include <fstream>
#include <iomanip>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "common/file_util.h"
#include "common/terminal_text.h"

namespace kubehsm::cli {
namespace po = boost::program_options;
namespace {

std::string UtcTime(int64_t t) {
  std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

nlohmann::ordered_json ToJson(const ledger::IssuanceRecord& r, bool with_pem) {
  nlohmann::ordered_json j;
  j["serial"] = r.serial_hex;
  j["issuer"] = r.issuer_ca;
  j["subject"] = r.subject;
  j["sans"] = r.sans;
  j["profile"] = r.profile;
  j["operation"] = r.operation;
  j["notBefore"] = UtcTime(r.not_before);
  j["notAfter"] = UtcTime(r.not_after);
  j["sha256"] = r.sha256_fingerprint;
  j["requester"] = r.requester;
  j["host"] = r.host;
  j["issuedAt"] = UtcTime(r.issued_at);
  if (with_pem) j["certificate"] = r.cert_pem;
  return j;
}

int LedgerList(Context& ctx, const Args& args) {
  po::options_description d("kubehsm ledger list");
  d.add_options()("output,o", po::value<std::string>()->default_value("table"), "table | json")(
      "ca", po::value<std::string>(), "only certificates issued by this CA (ca, etcd-ca, front-proxy-ca)")(
      "profile", po::value<std::string>(), "only this profile");
  po::variables_map vm;
  int code = 0;
  if (!ParseArgs(ctx, "kubehsm ledger list [-o table|json] [--ca NAME] [--profile NAME]", d, nullptr, args, vm,
                 code)) {
    return code;
  }
  const std::string fmt = vm["output"].as<std::string>();
  if (fmt != "table" && fmt != "json") return ctx.UsageError("--output must be table or json");
  auto l = ctx.Ledger();
  if (!l.ok()) return ctx.Fail(l.status());
  ledger::ListFilter f;
  if (vm.count("ca") != 0) f.issuer_ca = vm["ca"].as<std::string>();
  if (vm.count("profile") != 0) f.profile = vm["profile"].as<std::string>();
  auto rows = (*l)->List(f);
  if (!rows.ok()) return ctx.Fail(rows.status());
  if (fmt == "json") {
    nlohmann::ordered_json arr = nlohmann::ordered_json::array();
    for (const auto& r : *rows) arr.push_back(ToJson(r, false));
    ctx.out() << arr.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    return kExitOk;
  }
  ctx.out() << std::left << std::setw(18) << "SERIAL" << std::setw(16) << "ISSUER" << std::setw(26) << "PROFILE"
            << std::setw(11) << "OPERATION" << std::setw(22) << "NOT AFTER" << "SUBJECT\n";
  // Every column comes from the ledger, i.e. from requests: escaped (a subject may carry ESC).
  for (const auto& r : *rows) {
    ctx.out() << std::left << std::setw(18) << EscapeForTerminal(r.serial_hex) << std::setw(16)
              << EscapeForTerminal(r.issuer_ca) << std::setw(26) << EscapeForTerminal(r.profile) << std::setw(11)
              << EscapeForTerminal(r.operation) << std::setw(22) << UtcTime(r.not_after) << EscapeForTerminal(r.subject)
              << "\n";
  }
  return kExitOk;
}

int LedgerShow(Context& ctx, const Args& args) {
  po::options_description d("kubehsm ledger show");
  d.add_options()("serial", po::value<std::string>()->required(), "serial in hex (as openssl prints it)")(
      "output,o", po::value<std::string>()->default_value("json"), "json | pem");
  po::positional_options_description pos;
  pos.add("serial", 1);
  po::variables_map vm;
  int code = 0;
  if (!ParseArgs(ctx, "kubehsm ledger show SERIAL [-o json|pem]", d, &pos, args, vm, code)) return code;
  const std::string fmt = vm["output"].as<std::string>();
  if (fmt != "json" && fmt != "pem") return ctx.UsageError("--output must be json or pem");
  auto l = ctx.Ledger();
  if (!l.ok()) return ctx.Fail(l.status());
  auto r = (*l)->Get(vm["serial"].as<std::string>());
  if (!r.ok()) return ctx.Fail(r.status());
  if (fmt == "pem") {
    ctx.out() << r->cert_pem;
  } else {
    ctx.out() << ToJson(*r, true).dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  }
  return kExitOk;
}

int LedgerExport(Context& ctx, const Args& args) {
  po::options_description d("kubehsm ledger export");
  d.add_options()("output,o", po::value<std::string>()->default_value("json"),
                  "json (every record with its certificate) | pem (a bundle of every certificate)")(
      "out", po::value<std::string>(), "write to this file (atomically, mode 0600) instead of stdout");
  po::variables_map vm;
  int code = 0;
  if (!ParseArgs(ctx, "kubehsm ledger export [-o json|pem] [--out FILE]", d, nullptr, args, vm, code)) return code;
  const std::string fmt = vm["output"].as<std::string>();
  if (fmt != "json" && fmt != "pem") return ctx.UsageError("--output must be json or pem");
  auto l = ctx.Ledger();
  if (!l.ok()) return ctx.Fail(l.status());
  auto rows = (*l)->List();
  if (!rows.ok()) return ctx.Fail(rows.status());
  std::string text;
  if (fmt == "pem") {
    for (const auto& r : *rows) text += r.cert_pem;
  } else {
    nlohmann::ordered_json arr = nlohmann::ordered_json::array();
    for (const auto& r : *rows) arr.push_back(ToJson(r, true));
    text = arr.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  }
  if (vm.count("out") != 0) {
    Status s = WriteFileAtomic(vm["out"].as<std::string>(), text, 0600);
    if (!s.ok()) return ctx.Fail(s);
    ctx.out() << "exported " << rows->size() << " certificate(s) to " << vm["out"].as<std::string>() << "\n";
    return kExitOk;
  }
  ctx.out() << text;
  return kExitOk;
}

int AuditVerify(Context& ctx, const Args& args) {
  po::options_description d("kubehsm audit verify");
  d.add_options()("log", po::value<std::string>(), "audit log to verify (default: <state-dir>/audit.log)");
  po::variables_map vm;
  int code = 0;
  if (!ParseArgs(ctx, "kubehsm audit verify [--log FILE]", d, nullptr, args, vm, code)) return code;
  ledger::AuditLog log = vm.count("log") != 0 ? ledger::AuditLog(vm["log"].as<std::string>()) : ctx.Audit();
  auto v = log.Verify();
  if (!v.ok()) return ctx.Fail(v.status());
  // Every certificate in the ledger must have its audit record (the default log only: --log may
  // name another state's log).
  if (vm.count("log") == 0) {
    auto l = ctx.Ledger();
    if (!l.ok()) return ctx.Fail(l.status());
    if (Status s = ledger::CheckLedgerAudited(**l, v->certificate_serials); !s.ok()) return ctx.Fail(s);
  }
  ctx.out() << "audit log " << log.path().string() << ": " << v->records << " record(s), chain intact, head "
            << v->head_hash << "\n";
  if (v->beyond_head > 0) {
    ctx.out() << "note: the last record (" << v->records << ") is beyond the head file's record ("
              << v->records - v->beyond_head << "): a writer died between its two writes, or it was appended "
              << "without updating the head; the next record re-anchors the head\n";
  }
  return kExitOk;
}

int AuditShow(Context& ctx, const Args& args) {
  po::options_description d("kubehsm audit show");
  d.add_options()("tail,n", po::value<int>()->default_value(20), "how many of the last records to print (0 = all)");
  po::variables_map vm;
  int code = 0;
  if (!ParseArgs(ctx, "kubehsm audit show [-n N]", d, nullptr, args, vm, code)) return code;
  auto text = ReadFileBounded(ctx.Audit().path(), 1ull << 30);
  if (!text.ok()) return ctx.Fail(text.status());
  std::vector<std::string> lines;
  std::istringstream in(*text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  const int n = vm["tail"].as<int>();
  std::size_t start = n <= 0 || static_cast<std::size_t>(n) >= lines.size() ? 0 : lines.size() - static_cast<std::size_t>(n);
  for (std::size_t i = start; i < lines.size(); ++i) ctx.out() << lines[i] << "\n";
  return kExitOk;
}

}  // namespace

int RunLedger(Context& ctx, const Args& args) {
  return DispatchSubcommand(ctx, args, "ledger",
                            {{"list", LedgerList, "list issued certificates (table or JSON)"},
                             {"show", LedgerShow, "show one certificate's record by serial"},
                             {"export", LedgerExport, "export every record (JSON) or certificate (PEM bundle)"}});
}

int RunAudit(Context& ctx, const Args& args) {
  return DispatchSubcommand(ctx, args, "audit",
                            {{"verify", AuditVerify, "verify the hash chain and head of the audit log"},
                             {"show", AuditShow, "print the last audit records"}});
}

}  // namespace kubehsm::cli
