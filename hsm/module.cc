#include "hsm/module.h"

#include <dlfcn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <utility>

#include "common/file_util.h"
#include "hsm/rv.h"

namespace kubehsm::hsm {
namespace {

std::string Trim(const unsigned char* p, std::size_t n) {
  std::string s(reinterpret_cast<const char*>(p), n);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.pop_back();
  return s;
}

// Fills a blank-padded PKCS#11 text field.
void Pad(unsigned char* dst, std::size_t n, const std::string& s) {
  std::memset(dst, ' ', n);
  std::memcpy(dst, s.data(), std::min(n, s.size()));
}

}  // namespace

Status CheckModuleFileTrusted(const std::string& path) {
  namespace fs = std::filesystem;
  // The directory of the name as given (it holds the name, or the symlink), then the file the name
  // resolves to and its directory: whoever can write any of them decides what gets loaded.
  std::vector<std::pair<fs::path, std::string>> checks;
  const fs::path given = fs::absolute(path);
  checks.push_back({given.parent_path(), "directory of PKCS#11 module "});
  char resolved[PATH_MAX];
  if (::realpath(path.c_str(), resolved) == nullptr) return NotFound("PKCS#11 module " + path + " does not exist");
  checks.push_back({fs::path(resolved), "PKCS#11 module "});
  checks.push_back({fs::path(resolved).parent_path(), "directory of PKCS#11 module "});
  for (const auto& [p, what] : checks) {
    struct stat st {};
    if (::stat(p.c_str(), &st) != 0) return NotFound("PKCS#11 module " + path + ": cannot stat " + p.string());
    const std::string reason = UntrustedWriterReason(st);
    if (!reason.empty()) {
      return PermissionDenied("refusing to load PKCS#11 module " + path + ": " +
                              (what.starts_with("directory") ? "its directory " + p.string() + " " : p.string() + " ") +
                              reason + " (anyone who can write it runs code as this user)");
    }
  }
  return OkStatus();
}

std::string TokenInfo::Uri() const {
  Pkcs11Uri u;
  u.model = model;
  u.manufacturer = manufacturer;
  u.serial = serial;
  u.token = label;
  return u.ToString();
}

Status CheckModuleInitArgs(const std::string& init_args) {
  if (init_args.size() > 1024) return InvalidArgument("module-init-args is longer than 1024 bytes");
  std::string lower;
  for (char c : init_args) {
    if (c < 0x20 || c > 0x7e) return InvalidArgument("module-init-args must be printable ASCII on one line");
    lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  for (const char* secret : {"pin", "password", "passwd", "passphrase", "secret"}) {
    if (lower.find(secret) != std::string::npos) {
      return InvalidArgument(std::string("module-init-args looks like it carries a secret ('") + secret +
                             "'); PINs come only from a PIN source (--pin-source), never from module arguments");
    }
  }
  return OkStatus();
}

Result<std::unique_ptr<Module>> Module::Load(const std::string& path, const std::string& init_args) {
  struct stat st {};
  if (path.empty()) return InvalidArgument("no PKCS#11 module given (--module PATH)");
  KH_RETURN_IF_ERROR(CheckModuleInitArgs(init_args));
  if (::stat(path.c_str(), &st) != 0) return NotFound("PKCS#11 module " + path + " does not exist");
  KH_RETURN_IF_ERROR(CheckModuleFileTrusted(path));
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* e = ::dlerror();
    return InvalidArgument("cannot load PKCS#11 module " + path + ": " + (e != nullptr ? e : "dlopen failed"));
  }
  auto get_list = reinterpret_cast<CK_C_GetFunctionList>(::dlsym(handle, "C_GetFunctionList"));
  if (get_list == nullptr) {
    ::dlclose(handle);
    return InvalidArgument(path + " is not a PKCS#11 module (no C_GetFunctionList)");
  }
  CK_FUNCTION_LIST* fn = nullptr;
  CK_RV rv = get_list(&fn);
  if (rv != CKR_OK || fn == nullptr) {
    ::dlclose(handle);
    return RvStatus(rv == CKR_OK ? CKR_GENERAL_ERROR : rv, "C_GetFunctionList of " + path);
  }
  CK_C_INITIALIZE_ARGS args{};
  args.flags = CKF_OS_LOCKING_OK;
  // PKCS#11 3.0 §5.4 reserves pReserved; NSS softokn reads its configuration string from it.
  std::string args_copy = init_args;
  if (!args_copy.empty()) args.pReserved = args_copy.data();
  rv = fn->C_Initialize(&args);
  bool finalize = true;
  if (rv == CKR_CRYPTOKI_ALREADY_INITIALIZED) {
    finalize = false;  // someone else in this process owns the initialization
  } else if (rv != CKR_OK) {
    ::dlclose(handle);
    return RvStatus(rv, "C_Initialize of " + path +
                            (init_args.empty() && rv == CKR_ARGUMENTS_BAD
                                 ? " (this module may need initialization arguments: module-init-args)"
                                 : ""));
  }
  return std::make_unique<Module>(Private{}, path, init_args, handle, fn, finalize);
}

Module::~Module() {
  if (finalize_ && fn_ != nullptr) fn_->C_Finalize(nullptr);
  if (handle_ != nullptr) ::dlclose(handle_);
}

Result<ModuleInfo> Module::Info() const {
  CK_INFO ci{};
  const CK_RV rv = fn_->C_GetInfo(&ci);
  if (rv != CKR_OK) return RvStatus(rv, "C_GetInfo of " + path_);
  ModuleInfo info;
  info.manufacturer = Trim(ci.manufacturerID, sizeof(ci.manufacturerID));
  info.description = Trim(ci.libraryDescription, sizeof(ci.libraryDescription));
  info.cryptoki_version = std::to_string(ci.cryptokiVersion.major) + "." + std::to_string(ci.cryptokiVersion.minor);
  info.library_version = std::to_string(ci.libraryVersion.major) + "." + std::to_string(ci.libraryVersion.minor);
  return info;
}

Result<std::vector<TokenInfo>> Module::ListTokens() const {
  CK_ULONG n = 0;
  CK_RV rv = fn_->C_GetSlotList(CK_TRUE, nullptr, &n);
  if (rv != CKR_OK) return RvStatus(rv, "C_GetSlotList");
  std::vector<CK_SLOT_ID> slots(n);
  if (n > 0) {
    rv = fn_->C_GetSlotList(CK_TRUE, slots.data(), &n);
    if (rv != CKR_OK) return RvStatus(rv, "C_GetSlotList");
    slots.resize(n);
  }
  std::vector<TokenInfo> out;
  for (CK_SLOT_ID slot : slots) {
    CK_TOKEN_INFO ti{};
    rv = fn_->C_GetTokenInfo(slot, &ti);
    if (rv == CKR_TOKEN_NOT_PRESENT || rv == CKR_TOKEN_NOT_RECOGNIZED) continue;
    if (rv != CKR_OK) return RvStatus(rv, "C_GetTokenInfo of slot " + std::to_string(slot));
    TokenInfo info;
    info.slot_id = slot;
    info.label = Trim(ti.label, sizeof(ti.label));
    info.manufacturer = Trim(ti.manufacturerID, sizeof(ti.manufacturerID));
    info.model = Trim(ti.model, sizeof(ti.model));
    info.serial = Trim(ti.serialNumber, sizeof(ti.serialNumber));
    info.flags = ti.flags;
    info.min_pin_len = ti.ulMinPinLen;
    info.max_pin_len = ti.ulMaxPinLen;
    out.push_back(std::move(info));
  }
  return out;
}

Result<TokenInfo> Module::FindToken(const Pkcs11Uri& uri) const {
  KH_ASSIGN_OR_RETURN(std::vector<TokenInfo> tokens, ListTokens());
  std::vector<TokenInfo> matches;
  std::string available;
  for (const TokenInfo& t : tokens) {
    if (!t.initialized()) continue;
    if (!available.empty()) available += ", ";
    available += "'" + t.label + "' (serial " + t.serial + ")";
    if (uri.token && *uri.token != t.label) continue;
    if (uri.serial && *uri.serial != t.serial) continue;
    if (uri.manufacturer && *uri.manufacturer != t.manufacturer) continue;
    if (uri.model && *uri.model != t.model) continue;
    if (uri.slot_id && *uri.slot_id != t.slot_id) continue;
    matches.push_back(t);
  }
  if (available.empty()) available = "none";
  std::string wanted = uri.SelectsToken() ? uri.ToString() : "any token";
  if (matches.empty()) {
    return NotFound("no token matches " + wanted + " in module " + path_ + " (initialized tokens: " + available + ")");
  }
  if (matches.size() > 1) {
    return InvalidArgument("more than one token matches " + wanted + " (" + available +
                           "); select one with --token pkcs11:token=<label> or serial=");
  }
  return matches.front();
}

Result<TokenInfo> Module::InitToken(const std::string& label, const Pin& so_pin, const Pin& user_pin,
                                    const Pin* factory_so_pin) {
  if (label.empty() || label.size() > 32) return InvalidArgument("token label must be 1 to 32 characters");
  KH_ASSIGN_OR_RETURN(std::vector<TokenInfo> tokens, ListTokens());
  const TokenInfo* free_slot = nullptr;
  for (const TokenInfo& t : tokens) {
    if (t.initialized() && t.label == label) return AlreadyExists("a token labelled '" + label + "' already exists");
    if (!t.initialized() && free_slot == nullptr) free_slot = &t;
  }
  if (free_slot == nullptr) return NotFound("module " + path_ + " has no free (uninitialized) token slot");
  const TokenInfo slot_info = *free_slot;
  // Check the PIN lengths the token states (CK_TOKEN_INFO ulMinPinLen/ulMaxPinLen) before changing anything.
  auto check_len = [&](const Pin& pin, const char* which) -> Status {
    const CK_ULONG n = pin.size();
    if ((slot_info.min_pin_len != 0 && n < slot_info.min_pin_len) ||
        (slot_info.max_pin_len != 0 && n > slot_info.max_pin_len)) {
      return InvalidArgument(std::string("the ") + which + " PIN has " + std::to_string(n) +
                             " characters; this token accepts " + std::to_string(slot_info.min_pin_len) + " to " +
                             std::to_string(slot_info.max_pin_len));
    }
    return OkStatus();
  };
  // An empty SO PIN: a token without one (NSS softokn, whose SO logs in with an empty PIN).
  if (!so_pin.empty()) KH_RETURN_IF_ERROR(check_len(so_pin, "security officer"));
  KH_RETURN_IF_ERROR(check_len(user_pin, "user"));
  const Pin& init_pin = factory_so_pin != nullptr ? *factory_so_pin : so_pin;
  CK_UTF8CHAR lbl[32];
  Pad(lbl, sizeof(lbl), label);
  CK_RV rv = fn_->C_InitToken(slot_info.slot_id, const_cast<CK_UTF8CHAR*>(init_pin.data()), init_pin.size(), lbl);
  if (rv != CKR_OK) {
    std::string hint;
    if (rv == CKR_PIN_INCORRECT && factory_so_pin == nullptr) {
      hint = " (this token checks its current SO PIN at C_InitToken: give the factory default with "
             "--factory-so-pin-source, e.g. openCryptoki's 87654321)";
    }
    return RvStatus(rv, "C_InitToken '" + label + "'" + hint);
  }
  // SoftHSM moves an initialized token to a new slot: look it up again by label. NSS softokn keeps
  // its own label and counts as initialized only once a user PIN exists: fall back to the slot.
  Pkcs11Uri by_label;
  by_label.token = label;
  Result<TokenInfo> found = FindToken(by_label);
  CK_SLOT_ID slot = slot_info.slot_id;
  if (found.ok()) slot = found->slot_id;
  CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
  rv = fn_->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &s);
  if (rv != CKR_OK) return RvStatus(rv, "C_OpenSession on new token '" + label + "'");
  rv = fn_->C_Login(s, CKU_SO, const_cast<CK_UTF8CHAR*>(init_pin.data()), init_pin.size());
  if (rv == CKR_OK) {
    if (factory_so_pin != nullptr) {
      rv = fn_->C_SetPIN(s, const_cast<CK_UTF8CHAR*>(init_pin.data()), init_pin.size(),
                         const_cast<CK_UTF8CHAR*>(so_pin.data()), so_pin.size());
    }
    if (rv == CKR_OK) rv = fn_->C_InitPIN(s, const_cast<CK_UTF8CHAR*>(user_pin.data()), user_pin.size());
    CK_RV lrv = fn_->C_Logout(s);
    if (rv == CKR_OK) rv = lrv;
  }
  fn_->C_CloseSession(s);
  if (rv != CKR_OK) return RvStatus(rv, "setting the PINs of token '" + label + "'");
  Result<TokenInfo> again = FindToken(by_label);
  if (again.ok()) return again;
  // The token kept a label of its own: report it by slot.
  KH_ASSIGN_OR_RETURN(std::vector<TokenInfo> after, ListTokens());
  for (const TokenInfo& t : after) {
    if (t.slot_id == slot) return t;
  }
  return again.status();
}

}  // namespace kubehsm::hsm
