// kubehsm backup: a consistent copy of a signing box's state (ledger, audit trail, CA certificates,
// config; the PIN file only when asked). The token's keys are not in it: they never leave the
// token, and only the token's own backup or cloning can copy them (README "Backup and recovery").
#include <openssl/evp.h>

#include <ctime>
#include <filesystem>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "cli/command.h"
#include "common/file_util.h"

namespace kubehsm::cli {
namespace po = boost::program_options;
namespace fs = std::filesystem;
namespace {

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

constexpr const char* kBackupHelp =
    "kubehsm backup --out DIR [--cert-dir DIR] [--include-pin-file]\n\n"
    "Writes a consistent copy of this signing box's state into DIR (a new or empty directory, "
    "created 0700): ledger.db (SQLite's online backup: safe while other kubehsm processes issue), "
    "audit.log and audit.log.head (copied under the log's lock), the CA certificates and sa.pub "
    "from --cert-dir (under pki/), the kubehsm config file, and MANIFEST (the box id and the "
    "SHA-256 of every file). The PIN file only with --include-pin-file. The token's keys are NOT "
    "in it: back up the token with its own tools (SoftHSM: its token directory; hardware: the "
    "vendor's backup or cloning); see README 'Backup and recovery'";

}  // namespace

int RunBackup(Context& ctx, const Args& args) {
  po::options_description d("kubehsm backup");
  d.add_options()("out", po::value<std::string>()->required(), "new or empty directory to write the backup into")(
      "cert-dir", po::value<std::string>()->default_value("/etc/kubernetes/pki"),
      "where ca.crt, front-proxy-ca.crt, etcd/ca.crt and sa.pub are")(
      "include-pin-file", po::bool_switch(),
      "also copy the user PIN file (pin-source file:PATH); only onto media protected like the token");
  po::variables_map vm;
  int code = 0;
  if (!ParseArgs(ctx, kBackupHelp, d, nullptr, args, vm, code)) return code;
  const fs::path out = vm["out"].as<std::string>();
  const fs::path cert_dir = vm["cert-dir"].as<std::string>();
  const bool with_pin = vm["include-pin-file"].as<bool>();
  const std::string& pin_source = ctx.globals().pin_source;
  if (with_pin && !pin_source.starts_with("file:")) {
    return ctx.UsageError("--include-pin-file needs a pin source file:PATH (this one is '" +
                          pin_source.substr(0, pin_source.find(':')) + "')");
  }
  std::error_code ec;
  if (!fs::is_directory(cert_dir, ec)) {
    return ctx.Fail(NotFound("backup: certificate directory " + cert_dir.string() + " does not exist (--cert-dir)"));
  }
  if (fs::exists(fs::symlink_status(out, ec))) {
    if (fs::is_symlink(fs::symlink_status(out, ec)) || !fs::is_directory(out, ec) || !fs::is_empty(out, ec)) {
      return ctx.Fail(AlreadyExists("backup: " + out.string() + " exists and is not an empty directory"));
    }
  }
  if (Status s = EnsureDirectory(out, 0700); !s.ok()) return ctx.Fail(s);
  fs::permissions(out, fs::perms::owner_all, ec);

  auto l = ctx.Ledger();
  if (!l.ok()) return ctx.Fail(l.status());
  std::vector<std::pair<std::string, std::string>> manifest;  // relative path, sha256
  const auto add = [&](const fs::path& rel) -> Status {
    KH_ASSIGN_OR_RETURN(std::string data, ReadRegularFileBounded(out / rel, std::size_t{1} << 30));
    manifest.emplace_back(rel.string(), Sha256Hex(data));
    ctx.out() << "  " << rel.string() << "\n";
    return OkStatus();
  };
  ctx.out() << "backing up to " << out.string() << ":\n";
  if (Status s = (*l)->BackupTo(out / "ledger.db"); !s.ok()) return ctx.Fail(s);
  if (Status s = add("ledger.db"); !s.ok()) return ctx.Fail(s);
  int64_t records = 0;
  if (fs::exists(ctx.Audit().path(), ec)) {
    auto copied = ctx.Audit().CopyTo(out);
    if (!copied.ok()) return ctx.Fail(copied.status());
    records = *copied;
    for (const char* f : {"audit.log", "audit.log.head"}) {
      if (Status s = add(f); !s.ok()) return ctx.Fail(s);
    }
  }
  for (const char* f : {"ca.crt", "front-proxy-ca.crt", "etcd/ca.crt", "sa.pub"}) {
    if (!fs::exists(cert_dir / f, ec)) {
      ctx.out() << "  (no " << (cert_dir / f).string() << ")\n";
      continue;
    }
    auto data = ReadRegularFileBounded(cert_dir / f, 1 << 20);
    if (!data.ok()) return ctx.Fail(data.status());
    const fs::path rel = fs::path("pki") / f;
    if (Status s = EnsureDirectory((out / rel).parent_path(), 0700); !s.ok()) return ctx.Fail(s);
    if (Status s = WriteFileAtomic(out / rel, *data, 0600); !s.ok()) return ctx.Fail(s);
    if (Status s = add(rel); !s.ok()) return ctx.Fail(s);
  }
  const std::string& config = ctx.globals().config_file;
  if (!config.empty() && config != "/dev/null") {
    auto data = ReadRegularFileBounded(config, 1 << 20);
    if (!data.ok()) return ctx.Fail(data.status());
    if (Status s = WriteFileAtomic(out / "kubehsm.conf", *data, 0600); !s.ok()) return ctx.Fail(s);
    if (Status s = add("kubehsm.conf"); !s.ok()) return ctx.Fail(s);
  }
  if (with_pin) {
    const fs::path pin_file = pin_source.substr(5);
    auto data = ReadRegularFileBounded(pin_file, 4096);
    if (!data.ok()) return ctx.Fail(data.status());
    if (Status s = WriteFileAtomic(out / "user.pin", *data, 0600); !s.ok()) return ctx.Fail(s);
    if (Status s = add("user.pin"); !s.ok()) return ctx.Fail(s);
  }
  std::string text = "kubehsm backup\nbox-id " + (*l)->box_id() + "\ncreated " +
                     std::to_string(static_cast<int64_t>(std::time(nullptr))) + "\naudit-records " +
                     std::to_string(records) + "\n";
  for (const auto& [rel, hash] : manifest) text += hash + "  " + rel + "\n";
  if (Status s = WriteFileAtomic(out / "MANIFEST", text, 0600); !s.ok()) return ctx.Fail(s);
  ctx.AuditEvent("backup", {{"out", out.string()},
                            {"box", (*l)->box_id()},
                            {"files", std::to_string(manifest.size())},
                            {"pinFile", with_pin ? "included" : "not included"}});
  ctx.out() << "  MANIFEST\n"
            << "not in this backup: the token's keys (back up the token with its own tools: SoftHSM's token "
               "directory, a hardware HSM's backup or cloning)"
            << (with_pin ? "" : "; the PIN file (--include-pin-file)") << "\n";
  return kExitOk;
}

}  // namespace kubehsm::cli
