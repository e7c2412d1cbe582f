// kubehsm ledger list|show|export|import and kubehsm audit verify|show.
#include <openssl/evp.h>

#include <ctime>
#include <fstream>
#include <iomanip>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/issuance_recorder.h"
#include "common/file_util.h"
#include "common/terminal_text.h"
#include "signer/pki/pem.h"

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
  j["boxId"] = r.box_id;
  if (with_pem) j["certificate"] = r.cert_pem;
  return j;
}

// The export file: every column of every row, and the exporting box's id, so that another box's
// `ledger import` can merge it. `count` lets import tell a truncated array from a complete one.
constexpr const char* kExportKind = "KubehsmLedgerExport";
constexpr int kExportVersion = 1;
// Rows per import: the audit record names every added serial, and one audit record stays well
// under the 1 MiB the audit log reads back for its tail.
constexpr std::size_t kMaxImportRows = 20000;

// Inverse of UtcTime; false unless `s` is exactly "YYYY-MM-DDTHH:MM:SSZ".
bool ParseUtcTime(const std::string& s, int64_t& out) {
  std::tm tm{};
  const char* end = strptime(s.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm);
  if (end == nullptr || *end != '\0' || s.size() != 20) return false;
  out = static_cast<int64_t>(timegm(&tm));
  return UtcTime(out) == s;
}

bool IsLowerHex(const std::string& s, std::size_t len) {
  return s.size() == len && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

std::string Sha256Hex(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kDigits[md[i] >> 4]);
    out.push_back(kDigits[md[i] & 15]);
  }
  return out;
}

// One row of an export file, checked: every field present with its type, the certificate parses
// and its serial, subject, SANs, validity, SHA-256 and PEM are the recorded ones.
Result<ledger::IssuanceRecord> ImportRow(const nlohmann::json& j, std::size_t index) {
  const std::string where = "certificate #" + std::to_string(index + 1);
  if (!j.is_object()) return InvalidArgument(where + " is not an object");
  ledger::IssuanceRecord r;
  const auto text = [&](const char* key, std::string& into) -> Status {
    if (!j.contains(key) || !j[key].is_string()) {
      return InvalidArgument(where + ": '" + key + "' missing or not a string");
    }
    into = j[key].get<std::string>();
    return OkStatus();
  };
  const auto time = [&](const char* key, int64_t& into) -> Status {
    std::string t;
    KH_RETURN_IF_ERROR(text(key, t));
    if (!ParseUtcTime(t, into)) return InvalidArgument(where + ": '" + key + "' is not a YYYY-MM-DDTHH:MM:SSZ time");
    return OkStatus();
  };
  KH_RETURN_IF_ERROR(text("serial", r.serial_hex));
  KH_RETURN_IF_ERROR(text("issuer", r.issuer_ca));
  KH_RETURN_IF_ERROR(text("subject", r.subject));
  if (!j.contains("sans") || !j["sans"].is_array()) return InvalidArgument(where + ": 'sans' missing or not an array");
  for (const auto& san : j["sans"]) {
    if (!san.is_string()) return InvalidArgument(where + ": 'sans' holds a non-string");
    r.sans.push_back(san.get<std::string>());
  }
  KH_RETURN_IF_ERROR(text("profile", r.profile));
  KH_RETURN_IF_ERROR(text("operation", r.operation));
  KH_RETURN_IF_ERROR(time("notBefore", r.not_before));
  KH_RETURN_IF_ERROR(time("notAfter", r.not_after));
  KH_RETURN_IF_ERROR(text("sha256", r.sha256_fingerprint));
  KH_RETURN_IF_ERROR(text("requester", r.requester));
  KH_RETURN_IF_ERROR(text("host", r.host));
  KH_RETURN_IF_ERROR(time("issuedAt", r.issued_at));
  KH_RETURN_IF_ERROR(text("boxId", r.box_id));
  KH_RETURN_IF_ERROR(text("certificate", r.cert_pem));
  if (!IsLowerHex(r.box_id, 32)) return InvalidArgument(where + ": 'boxId' is not 32 lower-case hex digits");
  if (r.issuer_ca.empty() || r.profile.empty() || r.operation.empty()) {
    return InvalidArgument(where + ": empty issuer, profile or operation");
  }
  Result<X509Ptr> cert = signer::pki::ParseCertificatePem(r.cert_pem);
  if (!cert.ok()) return InvalidArgument(where + ": the certificate does not parse: " + cert.status().message());
  KH_ASSIGN_OR_RETURN(ledger::IssuanceRecord actual,
                      MakeIssuanceRecord({cert->get(), r.issuer_ca, r.profile, r.operation}));
  const auto differs = [&](const char* what, const std::string& recorded, const std::string& real) {
    return InvalidArgument(where + " (serial " + r.serial_hex + "): the recorded " + what + " '" + recorded +
                           "' is not the certificate's '" + real + "'");
  };
  if (ledger::NormalizeSerialHex(r.serial_hex) != actual.serial_hex) {
    return differs("serial", r.serial_hex, actual.serial_hex);
  }
  r.serial_hex = actual.serial_hex;
  if (r.subject != actual.subject) return differs("subject", r.subject, actual.subject);
  if (r.sans != actual.sans) {
    std::string a, b;
    for (const auto& x : r.sans) a += (a.empty() ? "" : ",") + x;
    for (const auto& x : actual.sans) b += (b.empty() ? "" : ",") + x;
    return differs("SANs", a, b);
  }
  if (r.not_before != actual.not_before) return differs("notBefore", UtcTime(r.not_before), UtcTime(actual.not_before));
  if (r.not_after != actual.not_after) return differs("notAfter", UtcTime(r.not_after), UtcTime(actual.not_after));
  if (r.sha256_fingerprint != actual.sha256_fingerprint) {
    return differs("sha256", r.sha256_fingerprint, actual.sha256_fingerprint);
  }
  if (r.cert_pem != actual.cert_pem) {
    return InvalidArgument(where + ": 'certificate' holds more than the one certificate");
  }
  return r;
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
                  "json (every column of every record, its certificate and the box id: what 'ledger import' reads) | "
                  "pem (a bundle of every certificate)")(
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
    nlohmann::ordered_json doc;
    doc["kind"] = kExportKind;
    doc["version"] = kExportVersion;
    doc["boxId"] = (*l)->box_id();
    doc["exportedAt"] = UtcTime(static_cast<int64_t>(std::time(nullptr)));
    doc["count"] = rows->size();
    nlohmann::ordered_json arr = nlohmann::ordered_json::array();
    for (const auto& r : *rows) arr.push_back(ToJson(r, true));
    doc["certificates"] = std::move(arr);
    text = doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
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

int LedgerImport(Context& ctx, const Args& args) {
  po::options_description d("kubehsm ledger import");
  d.add_options()("file", po::value<std::string>()->required(),
                  "a JSON file written by 'kubehsm ledger export' on another signing box");
  po::positional_options_description pos;
  pos.add("file", 1);
  po::variables_map vm;
  int code = 0;
  if (!ParseArgs(ctx,
                 "kubehsm ledger import FILE\n\nMerges another signing box's 'ledger export -o json' into this ledger "
                 "in one transaction: identical rows are skipped, a serial this ledger holds with other content "
                 "refuses the whole file, every row must match its certificate; audited as ledger-import",
                 d, &pos, args, vm, code)) {
    return code;
  }
  const std::string file = vm["file"].as<std::string>();
  auto data = ReadRegularFileBounded(file, std::size_t{256} << 20);
  if (!data.ok()) return ctx.Fail(data.status());
  const auto bad = [&](const std::string& why) {
    return ctx.Fail(InvalidArgument("ledger import: " + file + ": " + why + "; nothing imported"));
  };
  auto doc = nlohmann::json::parse(*data, nullptr, false);
  if (doc.is_discarded()) return bad("not JSON (truncated or not a 'kubehsm ledger export' file)");
  if (!doc.is_object() || !doc.contains("kind") || doc["kind"] != kExportKind) {
    return bad("not a 'kubehsm ledger export -o json' file (no \"kind\": \"" + std::string(kExportKind) + "\")");
  }
  if (!doc.contains("version") || doc["version"] != kExportVersion) return bad("unsupported export version");
  if (!doc.contains("boxId") || !doc["boxId"].is_string() || !IsLowerHex(doc["boxId"].get<std::string>(), 32)) {
    return bad("'boxId' missing or not 32 lower-case hex digits");
  }
  if (!doc.contains("certificates") || !doc["certificates"].is_array() || !doc.contains("count") ||
      !doc["count"].is_number_unsigned()) {
    return bad("'certificates' or 'count' missing");
  }
  const auto& certs = doc["certificates"];
  if (doc["count"].get<std::size_t>() != certs.size()) {
    return bad("'count' says " + std::to_string(doc["count"].get<std::size_t>()) + " certificate(s), the file holds " +
               std::to_string(certs.size()) + " (truncated or edited)");
  }
  if (certs.size() > kMaxImportRows) {
    return bad("more than " + std::to_string(kMaxImportRows) + " certificates in one file");
  }
  const std::string source_box = doc["boxId"].get<std::string>();
  std::vector<ledger::IssuanceRecord> rows;
  for (std::size_t i = 0; i < certs.size(); ++i) {
    auto row = ImportRow(certs[i], i);
    if (!row.ok()) return bad(row.status().message());
    rows.push_back(std::move(*row));
  }
  auto l = ctx.Ledger();
  if (!l.ok()) return ctx.Fail(l.status());
  if (Status s = ctx.CheckAudit(); !s.ok()) return ctx.Fail(s);
  auto counts = (*l)->Import(rows, [&](const ledger::ImportCounts& c) {
    std::string serials;
    for (const auto& s : c.added_serials) serials += (serials.empty() ? "" : ",") + s;
    return ctx.AppendAudit("ledger-import", {{"file", file},
                                             {"fileSha256", Sha256Hex(*data)},
                                             {"sourceBox", source_box},
                                             {"box", (*l)->box_id()},
                                             {"requester", RequesterName()},
                                             {"rows", std::to_string(rows.size())},
                                             {"added", std::to_string(c.added)},
                                             {"identical", std::to_string(c.identical)},
                                             {"serials", serials}});
  });
  if (!counts.ok()) {
    ctx.AuditEvent("ledger-import-refused",
                   {{"file", file}, {"sourceBox", source_box}, {"reason", counts.status().message()}});
    return ctx.Fail(counts.status());
  }
  ctx.out() << "imported " << counts->added << " certificate(s) from box " << source_box << " (" << counts->identical
            << " already present and identical) into " << (*l)->path().string() << "\n";
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
                             {"export", LedgerExport, "export every record (JSON) or certificate (PEM bundle)"},
                             {"import", LedgerImport, "merge another signing box's JSON export into this ledger"}});
}

int RunAudit(Context& ctx, const Args& args) {
  return DispatchSubcommand(ctx, args, "audit",
                            {{"verify", AuditVerify, "verify the hash chain and head of the audit log"},
                             {"show", AuditShow, "print the last audit records"}});
}

}  // namespace kubehsm::cli
