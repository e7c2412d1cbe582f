// kubehsm token check: what an operator runs first against a new HSM. Reports the module, the
// token and its PIN limits and mechanisms, then probes each key type kubeadm can ask for through
// the same code paths the other commands use (generate a temporary key in the token, sign, verify
// in software, destroy it), and gives a verdict per kubehsm feature.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iterator>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <openssl/rand.h>

#include "cli/command.h"
#include "cli/token_key_store.h"
#include "common/key_type.h"
#include "hsm/hsm.h"

namespace kubehsm::cli {
namespace po = boost::program_options;
namespace {

// The key types kubeadm's encryptionAlgorithm can name (and so init, certs and sa may need).
constexpr KeyType kProbeTypes[] = {KeyType::kRsa2048, KeyType::kRsa3072, KeyType::kRsa4096, KeyType::kEcP256,
                                   KeyType::kEcP384};

// The mechanisms kubehsm may use, in the order they are reported.
constexpr CK_MECHANISM_TYPE kRelevantMechanisms[] = {CKM_RSA_PKCS_KEY_PAIR_GEN, CKM_SHA256_RSA_PKCS, CKM_RSA_PKCS,
                                                     CKM_EC_KEY_PAIR_GEN,       CKM_ECDSA_SHA256,    CKM_ECDSA_SHA384,
                                                     CKM_ECDSA_SHA512,          CKM_ECDSA};

struct Probe {
  KeyType type;
  bool ok = false;
  std::string detail;  // the signing mechanism on success, the reason otherwise
  double seconds = 0;
};

std::string FlagsText(CK_FLAGS f) {
  std::string s;
  auto add = [&](CK_FLAGS bit, const char* name) {
    if ((f & bit) == 0) return;
    if (!s.empty()) s += ",";
    s += name;
  };
  add(CKF_GENERATE_KEY_PAIR, "generate");
  add(CKF_SIGN, "sign");
  add(CKF_VERIFY, "verify");
  add(CKF_HW, "hw");
  return s.empty() ? "-" : s;
}

// Generates a temporary key of `type` through the KeyStore (the read-back proof included), signs
// and verifies with it (SigningKey::Sign checks the token's signature), and destroys it.
Probe RunProbe(signer::KeyStore& store, hsm::Token& token, KeyType type) {
  Probe p{type};
  const auto start = std::chrono::steady_clock::now();
  auto finish = [&](bool ok, std::string detail) {
    p.ok = ok;
    p.detail = std::move(detail);
    p.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return p;
  };
  if (Status s = store.CheckCanCreate(type); !s.ok()) return finish(false, s.message());
  unsigned char rnd[8];
  if (RAND_bytes(rnd, sizeof(rnd)) != 1) return finish(false, "no randomness for the probe label");
  std::string label = "kubehsm-check:";
  for (unsigned char c : rnd) label += "0123456789abcdef"[c >> 4], label += "0123456789abcdef"[c & 15];
  Result<signer::SigningKey> key = store.Create(label, type);
  if (!key.ok()) {
    // A half-made key (e.g. refused by the read-back proof) is destroyed by the token layer.
    return finish(false, key.status().message());
  }
  Result<std::string> sig = key->Sign("kubehsm token check probe");
  auto how = token.SignCapabilityFor(type);
  Status removed = store.Remove(label);
  if (!sig.ok()) return finish(false, sig.status().message());
  if (!removed.ok()) return finish(false, "probe key '" + label + "' could not be destroyed: " + removed.message());
  return finish(true, how.ok() ? how->mechanism_name : "signed");
}

int TokenCheck(Context& ctx, const Args& args) {
  po::options_description d("kubehsm token check");
  d.add_options()("encryption-algorithm", po::value<std::string>()->default_value("RSA-2048"),
                  "the key type the cluster uses (kubeadm's encryptionAlgorithm): the exit status says whether "
                  "init and serve can run with it")(
      "type", po::value<std::vector<std::string>>()->composing(),
      "probe only this key type (repeatable; default: RSA-2048, RSA-3072, RSA-4096, ECDSA-P256, ECDSA-P384)")(
      "output,o", po::value<std::string>()->default_value("text"), "text | json");
  po::variables_map vm;
  int code = 0;
  if (!ParseArgs(ctx, "kubehsm token check [--encryption-algorithm ALG] [--type TYPE]... [-o text|json]", d, nullptr,
                 args, vm, code)) {
    return code;
  }
  const std::string fmt = vm["output"].as<std::string>();
  if (fmt != "text" && fmt != "json") return ctx.UsageError("--output must be text or json");
  const auto wanted = ParseKeyType(vm["encryption-algorithm"].as<std::string>());
  if (!wanted) return ctx.UsageError("unknown --encryption-algorithm '" + vm["encryption-algorithm"].as<std::string>() + "'");
  std::vector<KeyType> types;
  if (vm.count("type") != 0) {
    for (const auto& t : vm["type"].as<std::vector<std::string>>()) {
      auto k = ParseKeyType(t);
      if (!k) return ctx.UsageError("unknown key type '" + t + "' (RSA-2048, RSA-3072, RSA-4096, ECDSA-P256, ECDSA-P384)");
      types.push_back(*k);
    }
  } else {
    types.assign(std::begin(kProbeTypes), std::end(kProbeTypes));
  }
  if (std::find(types.begin(), types.end(), *wanted) == types.end()) types.push_back(*wanted);

  auto store = ctx.KeyStore();
  if (!store.ok()) return ctx.Fail(store.status());
  hsm::Hsm& h = ctx.token_session()->hsm();
  auto module_info = h.module().Info();
  if (!module_info.ok()) return ctx.Fail(module_info.status());
  const hsm::TokenInfo& ti = h.token().info();

  std::vector<Probe> probes;
  for (KeyType t : types) {
    if (fmt == "text") ctx.err() << "token check: probing " << KeyTypeName(t) << " ...\n";
    probes.push_back(RunProbe(**store, h.token(), t));
  }
  ctx.AuditEvent("token-check", {{"token", ti.Uri()}, {"module", h.module().path()}});
  const Probe* chosen = nullptr;
  for (const auto& p : probes) {
    if (p.type == *wanted) chosen = &p;
  }
  const bool init_ok = chosen != nullptr && chosen->ok;
  const std::string reason = chosen == nullptr ? "not probed" : chosen->detail;

  if (fmt == "json") {
    nlohmann::ordered_json j;
    j["module"] = {{"path", h.module().path()},
                   {"manufacturer", module_info->manufacturer},
                   {"description", module_info->description},
                   {"cryptoki_version", module_info->cryptoki_version},
                   {"library_version", module_info->library_version}};
    j["token"] = {{"uri", ti.Uri()},
                  {"slot", ti.slot_id},
                  {"min_pin_len", ti.min_pin_len},
                  {"max_pin_len", ti.max_pin_len},
                  {"cka_local_required", h.token().options().require_cka_local}};
    nlohmann::ordered_json mechs = nlohmann::ordered_json::array();
    for (CK_MECHANISM_TYPE m : kRelevantMechanisms) {
      auto it = h.token().mechanisms().find(m);
      if (it == h.token().mechanisms().end()) continue;
      mechs.push_back({{"name", hsm::MechanismName(m)},
                       {"flags", FlagsText(it->second.flags)},
                       {"min_key_size", it->second.ulMinKeySize},
                       {"max_key_size", it->second.ulMaxKeySize}});
    }
    j["mechanisms"] = mechs;
    nlohmann::ordered_json pj = nlohmann::ordered_json::array();
    for (const auto& p : probes) {
      pj.push_back({{"type", KeyTypeName(p.type)},
                    {"supported", p.ok},
                    {p.ok ? "mechanism" : "reason", p.detail},
                    {"seconds", p.seconds}});
    }
    j["probes"] = pj;
    j["encryption_algorithm"] = KeyTypeName(*wanted);
    j["init"] = {{"supported", init_ok}, {"reason", init_ok ? "" : reason}};
    j["serve"] = {{"supported", init_ok}, {"reason", init_ok ? "" : reason}};
    ctx.out() << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    return init_ok ? kExitOk : kExitFailure;
  }

  auto& o = ctx.out();
  o << "module:     " << h.module().path() << " (" << module_info->manufacturer << ", " << module_info->description
    << " " << module_info->library_version << ", Cryptoki " << module_info->cryptoki_version << ")\n";
  o << "token:      " << ti.Uri() << " (slot " << ti.slot_id << ")\n";
  o << "PIN length: " << ti.min_pin_len << ".." << ti.max_pin_len << "\n";
  o << "CKA_LOCAL:  " << (h.token().options().require_cka_local ? "required" : "NOT required (allow-keys-without-cka-local)")
    << "\n";
  o << "mechanisms:\n";
  for (CK_MECHANISM_TYPE m : kRelevantMechanisms) {
    auto it = h.token().mechanisms().find(m);
    o << "  " << hsm::MechanismName(m) << std::string(28 - hsm::MechanismName(m).size(), ' ');
    if (it == h.token().mechanisms().end()) {
      o << "absent\n";
      continue;
    }
    o << FlagsText(it->second.flags) << "  sizes " << it->second.ulMinKeySize << ".." << it->second.ulMaxKeySize
      << "\n";
  }
  o << "probes (generate in the token, sign, verify in software, destroy):\n";
  for (const auto& p : probes) {
    char secs[32];
    std::snprintf(secs, sizeof(secs), "%.2f s", p.seconds);
    o << "  " << KeyTypeName(p.type) << std::string(12 - KeyTypeName(p.type).size(), ' ')
      << (p.ok ? "supported     via " : "NOT SUPPORTED ") << p.detail << " (" << secs << ")\n";
  }
  o << "features with --encryption-algorithm " << KeyTypeName(*wanted) << ":\n";
  o << "  init, certs, sign-csr:  " << (init_ok ? "supported" : "NOT SUPPORTED: " + reason) << "\n";
  o << "  sa keys and serve:      " << (init_ok ? "supported" : "NOT SUPPORTED: " + reason) << "\n";
  return init_ok ? kExitOk : kExitFailure;
}

}  // namespace

int RunTokenCheck(Context& ctx, const Args& args) { return TokenCheck(ctx, args); }

}  // namespace kubehsm::cli
