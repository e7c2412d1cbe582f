// kubehsm keys generate|list|pubkey and kubehsm token list|init.
#include <algorithm>
#include <iomanip>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/token_key_store.h"
#include "common/file_util.h"
#include "common/openssl_error.h"
#include "common/ssl_ptr.h"
#include "hsm/hsm.h"

namespace kubehsm::cli {
namespace po = boost::program_options;
namespace {

std::string Hex(const std::string& bytes) {
  std::ostringstream o;
  for (unsigned char c : bytes) o << std::hex << std::setw(2) << std::setfill('0') << static_cast<int>(c);
  return o.str();
}

Result<std::string> SpkiToPem(const std::string& der) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  EvpPkeyPtr key(d2i_PUBKEY(nullptr, &p, static_cast<long>(der.size())));
  if (!key) return OpenSslError("parsing the public key");
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PUBKEY(bio.get(), key.get()) != 1) return OpenSslError("PEM-encoding the public key");
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(len));
}

Result<hsm::Hsm*> OpenHsm(Context& ctx) {
  KH_RETURN_IF_ERROR(ctx.KeyStore().status());
  return &ctx.token_session()->hsm();
}

int KeysGenerate(Context& ctx, const Args& args) {
  po::options_description d("kubehsm keys generate");
  d.add_options()("label", po::value<std::string>()->required(), "CKA_LABEL of the new key pair")(
      "type", po::value<std::string>()->default_value("rsa-2048"),
      "rsa-2048 | rsa-3072 | rsa-4096 | ecdsa-p256 | ecdsa-p384 | ecdsa-p521");
  po::variables_map vm;
  int code = 0;
  if (!ParseArgs(ctx, "kubehsm keys generate --label NAME [--type TYPE]", d, nullptr, args, vm, code)) return code;
  auto type = ParseKeyType(vm["type"].as<std::string>());
  if (!type) {
    return ctx.UsageError("unknown key type '" + vm["type"].as<std::string>() + "' (valid: " + KeyTypeNames() + ")");
  }
  auto h = OpenHsm(ctx);
  if (!h.ok()) return ctx.Fail(h.status());
  auto key = (*h)->token().GenerateKeyPair(vm["label"].as<std::string>(), *type);
  if (!key.ok()) return ctx.Fail(key.status());
  ctx.AuditEvent("key-generate", {{"label", key->label},
                                  {"type", std::string(KeyTypeName(key->type))},
                                  {"uri", (*h)->token().KeyUri(*key)}});
  ctx.out() << "generated " << KeyTypeName(key->type) << " key '" << key->label << "' (id " << Hex(key->id)
            << ", sensitive, never extractable)\n"
            << (*h)->token().KeyUri(*key) << "\n";
  return kExitOk;
}

int KeysList(Context& ctx, const Args& args) {
  po::options_description d("kubehsm keys list");
  d.add_options()("output,o", po::value<std::string>()->default_value("text"), "text | json");
  po::variables_map vm;
  int code = 0;
  if (!ParseArgs(ctx, "kubehsm keys list [-o text|json]", d, nullptr, args, vm, code)) return code;
  const std::string fmt = vm["output"].as<std::string>();
  if (fmt != "text" && fmt != "json") return ctx.UsageError("--output must be text or json");
  auto h = OpenHsm(ctx);
  if (!h.ok()) return ctx.Fail(h.status());
  auto keys = (*h)->token().ListKeys();
  if (!keys.ok()) return ctx.Fail(keys.status());
  if (fmt == "json") {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& k : *keys) {
      arr.push_back({{"label", k.label},
                     {"id", Hex(k.id)},
                     {"type", KeyTypeName(k.type)},
                     {"private", k.has_private()},
                     {"sensitive", k.sensitive},
                     {"always_sensitive", k.always_sensitive},
                     {"extractable", k.extractable},
                     {"never_extractable", k.never_extractable},
                     {"local", k.local},
                     {"uri", (*h)->token().KeyUri(k)}});
    }
    ctx.out() << arr.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    return kExitOk;
  }
  auto yes = [](bool b) { return b ? "yes" : "no"; };
  std::size_t label_width = 6;
  for (const auto& k : *keys) label_width = std::max(label_width, k.label.size() + 2);
  const int lw = static_cast<int>(label_width);
  ctx.out() << std::left << std::setw(lw) << "LABEL" << std::setw(12) << "TYPE" << std::setw(9) << "PRIVATE"
            << std::setw(11) << "SENSITIVE" << std::setw(18) << "ALWAYS-SENSITIVE" << std::setw(13) << "EXTRACTABLE"
            << std::setw(19) << "NEVER-EXTRACTABLE" << std::setw(7) << "LOCAL" << "ID\n";
  for (const auto& k : *keys) {
    ctx.out() << std::left << std::setw(lw) << k.label << std::setw(12) << KeyTypeName(k.type) << std::setw(9)
              << yes(k.has_private()) << std::setw(11) << yes(k.sensitive) << std::setw(18) << yes(k.always_sensitive)
              << std::setw(13) << yes(k.extractable) << std::setw(19) << yes(k.never_extractable) << std::setw(7)
              << yes(k.local) << Hex(k.id) << "\n";
  }
  return kExitOk;
}

int KeysPubkey(Context& ctx, const Args& args) {
  po::options_description d("kubehsm keys pubkey");
  d.add_options()("label", po::value<std::string>()->required(), "CKA_LABEL of the key")(
      "out", po::value<std::string>(), "write the PEM here (mode 0644) instead of stdout");
  po::variables_map vm;
  int code = 0;
  if (!ParseArgs(ctx, "kubehsm keys pubkey --label NAME [--out FILE]", d, nullptr, args, vm, code)) return code;
  auto h = OpenHsm(ctx);
  if (!h.ok()) return ctx.Fail(h.status());
  auto key = (*h)->token().FindKeyByLabel(vm["label"].as<std::string>());
  if (!key.ok()) return ctx.Fail(key.status());
  auto der = (*h)->token().PublicKeyDer(*key);
  if (!der.ok()) return ctx.Fail(der.status());
  auto pem = SpkiToPem(*der);
  if (!pem.ok()) return ctx.Fail(pem.status());
  if (vm.count("out") != 0) {
    Status s = WriteFileAtomic(vm["out"].as<std::string>(), *pem, 0644);
    if (!s.ok()) return ctx.Fail(s);
    return kExitOk;
  }
  ctx.out() << *pem;
  return kExitOk;
}

int TokenList(Context& ctx, const Args& args) {
  po::options_description d("kubehsm token list");
  po::variables_map vm;
  int code = 0;
  if (!ParseArgs(ctx, "kubehsm token list", d, nullptr, args, vm, code)) return code;
  ReportModuleSelection(ctx.globals(), ctx.err());
  auto module = hsm::Module::Load(ctx.globals().module, ctx.globals().module_init_args);
  if (!module.ok()) return ctx.Fail(module.status());
  auto tokens = (*module)->ListTokens();
  if (!tokens.ok()) return ctx.Fail(tokens.status());
  if (tokens->empty()) {
    ctx.out() << "no slots with a token in module " << ctx.globals().module
              << " (for SoftHSM: is SOFTHSM2_CONF's directories.tokendir the one you initialised? create one "
                 "with softhsm-config/create-token or 'kubehsm token init')\n";
    return kExitOk;
  }
  for (const auto& t : *tokens) {
    if (!t.initialized()) {
      ctx.out() << "slot " << t.slot_id << ": free (uninitialized)\n";
      continue;
    }
    ctx.out() << "slot " << t.slot_id << ": " << t.Uri() << (t.pin_locked() ? " [PIN LOCKED]" : "")
              << (t.pin_final_try() ? " [final PIN try]" : "") << "\n";
  }
  return kExitOk;
}

int TokenInit(Context& ctx, const Args& args) {
  po::options_description d("kubehsm token init");
  d.add_options()("label", po::value<std::string>()->required(), "label of the new token")(
      "so-pin-source", po::value<std::string>(),
      "where the security officer PIN comes from: env:VAR, file:PATH, fd:N or prompt")(
      "no-so-pin", po::bool_switch(),
      "the token has no security officer PIN (NSS softokn): the SO logs in with an empty PIN to set the user PIN")(
      "factory-so-pin-source", po::value<std::string>(),
      "the SO PIN the token has now, for tokens whose C_InitToken checks it (openCryptoki: its default "
      "87654321); the SO PIN is then changed to the new one");
  po::variables_map vm;
  int code = 0;
  if (!ParseArgs(ctx, "kubehsm token init --label NAME (--so-pin-source SRC | --no-so-pin) --pin-source SRC", d, nullptr, args, vm,
                 code)) {
    return code;
  }
  if (ctx.globals().pin_source.empty()) return ctx.UsageError("token init needs --pin-source for the new user PIN");
  const bool no_so_pin = vm["no-so-pin"].as<bool>();
  if (no_so_pin == (vm.count("so-pin-source") != 0)) {
    return ctx.UsageError("token init needs exactly one of --so-pin-source and --no-so-pin");
  }
  if (no_so_pin && vm.count("factory-so-pin-source") != 0) {
    return ctx.UsageError("--no-so-pin and --factory-so-pin-source exclude each other");
  }
  auto user_src = hsm::PinSource::Parse(ctx.globals().pin_source);
  if (!user_src.ok()) return ctx.Fail(user_src.status());
  ReportModuleSelection(ctx.globals(), ctx.err());
  auto module = hsm::Module::Load(ctx.globals().module, ctx.globals().module_init_args);
  if (!module.ok()) return ctx.Fail(module.status());
  hsm::Pin so_pin;  // empty with --no-so-pin
  if (!no_so_pin) {
    auto so_src = hsm::PinSource::Parse(vm["so-pin-source"].as<std::string>());
    if (!so_src.ok()) return ctx.Fail(so_src.status());
    auto read = hsm::ReadPin(*so_src, "new security officer PIN: ");
    if (!read.ok()) return ctx.Fail(read.status());
    so_pin = std::move(*read);
  }
  auto user_pin = hsm::ReadPin(*user_src, "new user PIN: ");
  if (!user_pin.ok()) return ctx.Fail(user_pin.status());
  std::optional<hsm::Pin> factory_pin;
  if (vm.count("factory-so-pin-source") != 0) {
    auto src = hsm::PinSource::Parse(vm["factory-so-pin-source"].as<std::string>());
    if (!src.ok()) return ctx.Fail(src.status());
    auto pin = hsm::ReadPin(*src, "current (factory) security officer PIN: ");
    if (!pin.ok()) return ctx.Fail(pin.status());
    factory_pin.emplace(std::move(*pin));
  }
  auto info = (*module)->InitToken(vm["label"].as<std::string>(), so_pin, *user_pin,
                                   factory_pin ? &*factory_pin : nullptr);
  if (!info.ok()) return ctx.Fail(info.status());
  if (ctx.globals().verbose) ctx.err() << "kubehsm: initialized " << DescribeToken(*info) << "\n";
  ctx.out() << "initialized token " << info->Uri() << "\n";
  return kExitOk;
}

}  // namespace

int RunKeys(Context& ctx, const Args& args) {
  return DispatchSubcommand(ctx, args, "keys",
                            {{"generate", KeysGenerate, "generate a non-extractable key pair in the token"},
                             {"list", KeysList, "list the token's keys with their security attributes"},
                             {"pubkey", KeysPubkey, "export a key's public half as PKIX PEM"}});
}

int RunToken(Context& ctx, const Args& args) {
  return DispatchSubcommand(ctx, args, "token",
                            {{"list", TokenList, "list the module's slots and tokens (no login)"},
                             {"init", TokenInit, "initialize a free slot's token with SO and user PINs"},
                             {"check", RunTokenCheck,
                              "probe a token: mechanisms, PIN limits, and which key types and features work"}});
}

}  // namespace kubehsm::cli
