#include "hsm/token.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "common/openssl_error.h"
#include "common/ssl_ptr.h"
#include "hsm/rv.h"

namespace kubehsm::hsm {
namespace {

// DER OIDs for CKA_EC_PARAMS (namedCurve).
const std::string kP256Oid("\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07", 10);
const std::string kP384Oid("\x06\x05\x2b\x81\x04\x00\x22", 7);
const std::string kP521Oid("\x06\x05\x2b\x81\x04\x00\x23", 7);

const std::string& CurveOid(KeyType t) {
  switch (t) {
    case KeyType::kEcP384:
      return kP384Oid;
    case KeyType::kEcP521:
      return kP521Oid;
    default:
      return kP256Oid;
  }
}

std::optional<KeyType> CurveFromOid(const std::string& der) {
  if (der == kP256Oid) return KeyType::kEcP256;
  if (der == kP384Oid) return KeyType::kEcP384;
  if (der == kP521Oid) return KeyType::kEcP521;
  return std::nullopt;
}

// CKA_EC_POINT is a DER OCTET STRING wrapping the uncompressed point (PKCS#11 2.40); some tokens
// return the bare point. Returns the bare point.
std::string UnwrapEcPoint(const std::string& v) {
  if (v.size() >= 2 && static_cast<unsigned char>(v[0]) == 0x04) {
    // Could be a bare uncompressed point (0x04 || X || Y) or an OCTET STRING (tag 0x04).
    std::size_t len = 0, hdr = 0;
    const auto b1 = static_cast<unsigned char>(v[1]);
    if (b1 < 0x80) {
      len = b1;
      hdr = 2;
    } else if (b1 == 0x81 && v.size() > 2) {
      len = static_cast<unsigned char>(v[2]);
      hdr = 3;
    } else if (b1 == 0x82 && v.size() > 3) {
      len = (static_cast<std::size_t>(static_cast<unsigned char>(v[2])) << 8) | static_cast<unsigned char>(v[3]);
      hdr = 4;
    }
    if (hdr != 0 && hdr + len == v.size()) return v.substr(hdr);
  }
  return v;
}

std::string WrapOctetString(const std::string& point) {
  std::string out(1, '\x04');
  if (point.size() < 0x80) {
    out.push_back(static_cast<char>(point.size()));
  } else if (point.size() < 0x100) {
    out.push_back('\x81');
    out.push_back(static_cast<char>(point.size()));
  } else {
    out.push_back('\x82');
    out.push_back(static_cast<char>(point.size() >> 8));
    out.push_back(static_cast<char>(point.size() & 0xff));
  }
  return out + point;
}

std::string Hex(const std::string& bytes) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (unsigned char c : bytes) {
    s.push_back(d[c >> 4]);
    s.push_back(d[c & 15]);
  }
  return s;
}

// DigestInfo prefixes (RFC 8017 §9.2 note 1).
std::string DigestInfoPrefix(std::string_view digest_name) {
  if (digest_name == "SHA256")
    return std::string("\x30\x31\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01\x05\x00\x04\x20", 19);
  if (digest_name == "SHA384")
    return std::string("\x30\x41\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x02\x05\x00\x04\x30", 19);
  if (digest_name == "SHA512")
    return std::string("\x30\x51\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x03\x05\x00\x04\x40", 19);
  return "";
}

// Well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, at most U+10FFFF).
bool IsUtf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3, cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;  // truncated sequence
    for (std::size_t k = 1; k <= n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    static constexpr std::uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n + 1;
  }
  return true;
}

// Reads the token's mechanism list and each mechanism's info. A mechanism whose info cannot be read
// is left out (it is then treated as absent).
Result<std::map<CK_MECHANISM_TYPE, CK_MECHANISM_INFO>> ReadMechanisms(CK_FUNCTION_LIST* f, CK_SLOT_ID slot) {
  CK_ULONG n = 0;
  CK_RV rv = f->C_GetMechanismList(slot, nullptr, &n);
  if (rv != CKR_OK) return RvStatus(rv, "C_GetMechanismList");
  std::vector<CK_MECHANISM_TYPE> list(n);
  if (n > 0) {
    rv = f->C_GetMechanismList(slot, list.data(), &n);
    if (rv != CKR_OK) return RvStatus(rv, "C_GetMechanismList");
    list.resize(n);
  }
  std::map<CK_MECHANISM_TYPE, CK_MECHANISM_INFO> out;
  for (CK_MECHANISM_TYPE m : list) {
    CK_MECHANISM_INFO info{};
    if (f->C_GetMechanismInfo(slot, m, &info) == CKR_OK) out.emplace(m, info);
  }
  return out;
}

// The combined hash-and-sign mechanism kubehsm pairs with a key type (DefaultDigestName).
CK_MECHANISM_TYPE CombinedMechanism(KeyType t) {
  switch (t) {
    case KeyType::kEcP256:
      return CKM_ECDSA_SHA256;
    case KeyType::kEcP384:
      return CKM_ECDSA_SHA384;
    case KeyType::kEcP521:
      return CKM_ECDSA_SHA512;
    default:
      return CKM_SHA256_RSA_PKCS;
  }
}

// EC field size in bits, as CK_MECHANISM_INFO states EC key sizes.
CK_ULONG EcBits(KeyType t) { return t == KeyType::kEcP384 ? 384 : t == KeyType::kEcP521 ? 521 : 256; }

CK_BBOOL kTrue = CK_TRUE;
CK_BBOOL kFalse = CK_FALSE;

CK_ATTRIBUTE Attr(CK_ATTRIBUTE_TYPE t, void* p, CK_ULONG n) { return CK_ATTRIBUTE{t, p, n}; }
CK_ATTRIBUTE Bool(CK_ATTRIBUTE_TYPE t, bool v) { return CK_ATTRIBUTE{t, v ? &kTrue : &kFalse, sizeof(CK_BBOOL)}; }

}  // namespace

std::string MechanismName(CK_MECHANISM_TYPE mechanism) {
  switch (mechanism) {
    case CKM_RSA_PKCS_KEY_PAIR_GEN:
      return "CKM_RSA_PKCS_KEY_PAIR_GEN";
    case CKM_RSA_PKCS:
      return "CKM_RSA_PKCS";
    case CKM_SHA256_RSA_PKCS:
      return "CKM_SHA256_RSA_PKCS";
    case CKM_EC_KEY_PAIR_GEN:
      return "CKM_EC_KEY_PAIR_GEN";
    case CKM_ECDSA:
      return "CKM_ECDSA";
    case CKM_ECDSA_SHA256:
      return "CKM_ECDSA_SHA256";
    case CKM_ECDSA_SHA384:
      return "CKM_ECDSA_SHA384";
    case CKM_ECDSA_SHA512:
      return "CKM_ECDSA_SHA512";
    default: {
      char buf[32];
      std::snprintf(buf, sizeof(buf), "mechanism 0x%08lx", static_cast<unsigned long>(mechanism));
      return buf;
    }
  }
}

Result<SignCapability> Token::SignCapabilityFor(KeyType type) const {
  auto can_sign = [&](CK_MECHANISM_TYPE m) {
    auto it = mechanisms_.find(m);
    return it != mechanisms_.end() && (it->second.flags & CKF_SIGN) != 0;
  };
  const CK_MECHANISM_TYPE combined = CombinedMechanism(type);
  if (can_sign(combined)) return SignCapability{true, combined, MechanismName(combined)};
  const CK_MECHANISM_TYPE raw = IsRsa(type) ? CKM_RSA_PKCS : CKM_ECDSA;
  if (can_sign(raw)) return SignCapability{false, raw, MechanismName(raw)};
  return FailedPrecondition("token '" + info_.label + "' cannot sign with " + std::string(KeyTypeName(type)) +
                            " keys: it has neither " + MechanismName(combined) + " nor " + MechanismName(raw));
}

Status Token::CheckCanGenerate(KeyType type) const {
  const CK_MECHANISM_TYPE gen = IsRsa(type) ? CKM_RSA_PKCS_KEY_PAIR_GEN : CKM_EC_KEY_PAIR_GEN;
  const std::string what = "token '" + info_.label + "' cannot make " + std::string(KeyTypeName(type)) + " keys: ";
  auto it = mechanisms_.find(gen);
  if (it == mechanisms_.end() || (it->second.flags & CKF_GENERATE_KEY_PAIR) == 0) {
    return FailedPrecondition(what + "it has no " + MechanismName(gen));
  }
  const CK_ULONG bits = IsRsa(type) ? static_cast<CK_ULONG>(RsaBits(type)) : EcBits(type);
  const CK_MECHANISM_INFO& mi = it->second;
  // Sizes of 0 mean "not stated"; some tokens state EC sizes in bytes, so only RSA bounds are
  // enforced for EC when they look like bits.
  const bool in_range = (mi.ulMinKeySize == 0 || bits >= mi.ulMinKeySize) &&
                        (mi.ulMaxKeySize == 0 || bits <= mi.ulMaxKeySize || (!IsRsa(type) && mi.ulMaxKeySize < 128));
  if (!in_range) {
    return FailedPrecondition(what + MechanismName(gen) + " supports key sizes " + std::to_string(mi.ulMinKeySize) +
                              ".." + std::to_string(mi.ulMaxKeySize) + " bits, not " + std::to_string(bits));
  }
  auto sign = SignCapabilityFor(type);
  if (!sign.ok()) return sign.status();
  return OkStatus();
}

Result<std::unique_ptr<Token>> Token::Open(Module& module, const TokenInfo& info, const Pin& pin,
                                           const Options& options) {
  if (info.pin_locked()) {
    return FailedPrecondition("the user PIN of token '" + info.label +
                              "' is locked after too many wrong attempts; the security officer must reset it");
  }
  CK_FUNCTION_LIST* f = module.fn();
  CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
  CK_RV rv = f->C_OpenSession(info.slot_id, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &s);
  if (rv != CKR_OK) return RvStatus(rv, "C_OpenSession on token '" + info.label + "'");
  rv = f->C_Login(s, CKU_USER, const_cast<CK_UTF8CHAR*>(pin.data()), pin.size());
  if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
    f->C_CloseSession(s);
    Status st = RvStatus(rv, "C_Login on token '" + info.label + "'");
    if (rv == CKR_PIN_INCORRECT) {
      // Re-read the flags and say only what the token reports (PKCS#11 v2.40 §5.5, CK_TOKEN_INFO):
      // CKF_USER_PIN_COUNT_LOW means only "an incorrect user login PIN has been entered at least
      // once since the last successful authentication", not that a lockout is near (SoftHSM sets
      // it and never locks); CKF_USER_PIN_FINAL_TRY means the next wrong PIN locks it.
      CK_TOKEN_INFO ti{};
      std::string hint;
      if (f->C_GetTokenInfo(info.slot_id, &ti) == CKR_OK) {
        if (ti.flags & CKF_USER_PIN_LOCKED)
          hint = "; the token reports the PIN is now locked";
        else if (ti.flags & CKF_USER_PIN_FINAL_TRY)
          hint = "; the token reports that one more wrong PIN locks it";
        else if (ti.flags & CKF_USER_PIN_COUNT_LOW)
          hint =
              "; the token reports a wrong PIN since the last successful login (CKF_USER_PIN_COUNT_LOW; it "
              "does not say how many attempts remain)";
      }
      return Unauthenticated("wrong PIN for token '" + info.label + "' (C_Login: CKR_PIN_INCORRECT)" + hint);
    }
    return st;
  }
  auto mechanisms = ReadMechanisms(f, info.slot_id);
  if (!mechanisms.ok()) {
    f->C_CloseSession(s);
    return mechanisms.status().WithContext("token '" + info.label + "'");
  }
  return std::make_unique<Token>(Private{}, module, info, s, options, std::move(*mechanisms));
}

Token::~Token() {
  CK_FUNCTION_LIST* f = module_.fn();
  std::lock_guard lock(pool_mu_);
  for (CK_SESSION_HANDLE s : idle_) f->C_CloseSession(s);
  idle_.clear();
  if (login_session_ != CK_INVALID_HANDLE) f->C_CloseSession(login_session_);
}

Result<PooledSession> Token::Acquire() {
  {
    std::lock_guard lock(pool_mu_);
    if (!idle_.empty()) {
      CK_SESSION_HANDLE s = idle_.back();
      idle_.pop_back();
      return PooledSession(this, s);
    }
  }
  CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
  CK_RV rv = module_.fn()->C_OpenSession(info_.slot_id, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &s);
  if (rv != CKR_OK) return RvStatus(rv, "C_OpenSession on token '" + info_.label + "'");
  return PooledSession(this, s);
}

void Token::Release(CK_SESSION_HANDLE s, bool healthy) {
  {
    std::lock_guard lock(pool_mu_);
    if (healthy && idle_.size() < options_.max_idle_sessions) {
      idle_.push_back(s);
      return;
    }
  }
  module_.fn()->C_CloseSession(s);
}

Result<std::vector<CK_OBJECT_HANDLE>> Token::FindObjects(CK_SESSION_HANDLE s, const std::vector<CK_ATTRIBUTE>& tmpl) {
  CK_FUNCTION_LIST* f = module_.fn();
  CK_RV rv = f->C_FindObjectsInit(s, const_cast<CK_ATTRIBUTE*>(tmpl.data()), tmpl.size());
  if (rv != CKR_OK) return RvStatus(rv, "C_FindObjectsInit on token '" + info_.label + "'");
  std::vector<CK_OBJECT_HANDLE> out;
  CK_OBJECT_HANDLE buf[64];
  CK_ULONG n = 0;
  do {
    rv = f->C_FindObjects(s, buf, 64, &n);
    if (rv != CKR_OK) {
      f->C_FindObjectsFinal(s);
      return RvStatus(rv, "C_FindObjects on token '" + info_.label + "'");
    }
    out.insert(out.end(), buf, buf + n);
  } while (n == 64);
  f->C_FindObjectsFinal(s);
  return out;
}

Result<std::string> Token::GetAttribute(CK_OBJECT_HANDLE object, CK_ATTRIBUTE_TYPE type) {
  KH_ASSIGN_OR_RETURN(PooledSession s, Acquire());
  CK_FUNCTION_LIST* f = module_.fn();
  CK_ATTRIBUTE a{type, nullptr, 0};
  CK_RV rv = f->C_GetAttributeValue(s.get(), object, &a, 1);
  if (rv == CKR_OK && a.ulValueLen == CK_UNAVAILABLE_INFORMATION) rv = CKR_ATTRIBUTE_SENSITIVE;
  if (rv != CKR_OK) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "C_GetAttributeValue(0x%lx)", static_cast<unsigned long>(type));
    return RvStatus(rv, std::string(buf) + " on token '" + info_.label + "'");
  }
  std::string v(a.ulValueLen, '\0');
  a.pValue = v.data();
  rv = f->C_GetAttributeValue(s.get(), object, &a, 1);
  if (rv != CKR_OK) return RvStatus(rv, "C_GetAttributeValue on token '" + info_.label + "'");
  v.resize(a.ulValueLen);
  return v;
}

Result<KeyInfo> Token::Describe(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE priv, CK_OBJECT_HANDLE pub,
                                std::string* unsupported) {
  CK_FUNCTION_LIST* f = module_.fn();
  const CK_OBJECT_HANDLE any = priv != CK_INVALID_HANDLE ? priv : pub;
  auto get = [&](CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE t) -> Result<std::string> {
    CK_ATTRIBUTE a{t, nullptr, 0};
    CK_RV rv = f->C_GetAttributeValue(s, h, &a, 1);
    if (rv != CKR_OK || a.ulValueLen == CK_UNAVAILABLE_INFORMATION)
      return RvStatus(rv == CKR_OK ? CKR_ATTRIBUTE_SENSITIVE : rv, "C_GetAttributeValue on token '" + info_.label + "'");
    std::string v(a.ulValueLen, '\0');
    a.pValue = v.data();
    rv = f->C_GetAttributeValue(s, h, &a, 1);
    if (rv != CKR_OK) return RvStatus(rv, "C_GetAttributeValue on token '" + info_.label + "'");
    v.resize(a.ulValueLen);
    return v;
  };
  // A device error here must not read as "false" (a listing would then show a wrong attribute).
  auto get_bool = [&](CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE t) -> Result<bool> {
    CK_BBOOL b = CK_FALSE;
    CK_ATTRIBUTE a{t, &b, sizeof(b)};
    const CK_RV rv = f->C_GetAttributeValue(s, h, &a, 1);
    if (rv != CKR_OK) return RvStatus(rv, "C_GetAttributeValue on token '" + info_.label + "'");
    return b == CK_TRUE;
  };
  // A key kubehsm cannot use: reported through `unsupported` so a listing can skip it.
  auto not_supported = [&](std::string reason) -> Status {
    if (unsupported != nullptr) *unsupported = reason;
    return InvalidArgument(std::move(reason));
  };
  KeyInfo k;
  k.private_handle = priv;
  k.public_handle = pub;
  KH_ASSIGN_OR_RETURN(k.label, get(any, CKA_LABEL));
  KH_ASSIGN_OR_RETURN(k.id, get(any, CKA_ID));
  CK_KEY_TYPE kt = 0;
  CK_ATTRIBUTE kta{CKA_KEY_TYPE, &kt, sizeof(kt)};
  CK_RV rv = f->C_GetAttributeValue(s, any, &kta, 1);
  if (rv != CKR_OK) return RvStatus(rv, "reading the key type of '" + k.label + "'");
  if (kt == CKK_RSA) {
    KH_ASSIGN_OR_RETURN(std::string n, get(any, CKA_MODULUS));
    std::size_t bits = n.size() * 8;
    for (unsigned char c : n) {  // strip leading zero bytes/bits
      if (c == 0) {
        bits -= 8;
        continue;
      }
      break;
    }
    auto t = RsaKeyTypeFromBits(bits);
    if (!t) return not_supported("key '" + k.label + "' is RSA-" + std::to_string(bits) + ", which kubehsm does not use");
    k.type = *t;
  } else if (kt == CKK_EC) {
    KH_ASSIGN_OR_RETURN(std::string params, get(any, CKA_EC_PARAMS));
    auto t = CurveFromOid(params);
    if (!t) return not_supported("key '" + k.label + "' is on a curve kubehsm does not use");
    k.type = *t;
  } else {
    return not_supported("key '" + k.label + "' is neither RSA nor EC");
  }
  if (priv != CK_INVALID_HANDLE) {
    KH_ASSIGN_OR_RETURN(k.sensitive, get_bool(priv, CKA_SENSITIVE));
    KH_ASSIGN_OR_RETURN(k.always_sensitive, get_bool(priv, CKA_ALWAYS_SENSITIVE));
    KH_ASSIGN_OR_RETURN(k.extractable, get_bool(priv, CKA_EXTRACTABLE));
    KH_ASSIGN_OR_RETURN(k.never_extractable, get_bool(priv, CKA_NEVER_EXTRACTABLE));
    KH_ASSIGN_OR_RETURN(k.local, get_bool(priv, CKA_LOCAL));
    KH_ASSIGN_OR_RETURN(k.can_sign, get_bool(priv, CKA_SIGN));
  }
  return k;
}

// Every error of the token fails the listing: a key that is missing from the result because a
// read failed would look like a key that is not there (a shorter JWKS, an empty `keys list`).
// Only keys kubehsm does not support (another key type, size or curve) are skipped.
Result<std::vector<KeyInfo>> Token::ListKeysLocked(CK_SESSION_HANDLE s) {
  CK_OBJECT_CLASS priv_class = CKO_PRIVATE_KEY, pub_class = CKO_PUBLIC_KEY;
  KH_ASSIGN_OR_RETURN(auto privs,
                      FindObjects(s, {Attr(CKA_CLASS, &priv_class, sizeof(priv_class)), Bool(CKA_TOKEN, true)}));
  KH_ASSIGN_OR_RETURN(auto pubs,
                      FindObjects(s, {Attr(CKA_CLASS, &pub_class, sizeof(pub_class)), Bool(CKA_TOKEN, true)}));
  CK_FUNCTION_LIST* f = module_.fn();
  auto read_id_label = [&](CK_OBJECT_HANDLE h) -> Result<std::pair<std::string, std::string>> {
    std::pair<std::string, std::string> out;
    CK_ATTRIBUTE a[2] = {{CKA_ID, nullptr, 0}, {CKA_LABEL, nullptr, 0}};
    CK_RV rv = f->C_GetAttributeValue(s, h, a, 2);
    if (rv != CKR_OK) return RvStatus(rv, "C_GetAttributeValue (id, label) on token '" + info_.label + "'");
    out.first.resize(a[0].ulValueLen == CK_UNAVAILABLE_INFORMATION ? 0 : a[0].ulValueLen);
    out.second.resize(a[1].ulValueLen == CK_UNAVAILABLE_INFORMATION ? 0 : a[1].ulValueLen);
    a[0].pValue = out.first.data();
    a[1].pValue = out.second.data();
    a[0].ulValueLen = out.first.size();
    a[1].ulValueLen = out.second.size();
    rv = f->C_GetAttributeValue(s, h, a, 2);
    if (rv != CKR_OK) return RvStatus(rv, "C_GetAttributeValue (id, label) on token '" + info_.label + "'");
    return out;
  };
  auto describe = [&](CK_OBJECT_HANDLE priv, CK_OBJECT_HANDLE pub, std::vector<KeyInfo>& out) -> Status {
    std::string unsupported;
    auto info = Describe(s, priv, pub, &unsupported);
    if (info.ok()) {
      out.push_back(std::move(*info));
      return OkStatus();
    }
    return unsupported.empty() ? info.status() : OkStatus();
  };
  // Pair halves by (CKA_ID, CKA_LABEL).
  std::map<std::pair<std::string, std::string>, CK_OBJECT_HANDLE> pub_by_key;
  for (CK_OBJECT_HANDLE h : pubs) {
    KH_ASSIGN_OR_RETURN(auto key, read_id_label(h));
    pub_by_key.emplace(std::move(key), h);
  }
  std::vector<KeyInfo> out;
  for (CK_OBJECT_HANDLE h : privs) {
    KH_ASSIGN_OR_RETURN(auto key, read_id_label(h));
    CK_OBJECT_HANDLE pub = CK_INVALID_HANDLE;
    if (auto it = pub_by_key.find(key); it != pub_by_key.end()) {
      pub = it->second;
      pub_by_key.erase(it);
    }
    KH_RETURN_IF_ERROR(describe(h, pub, out));
  }
  for (const auto& [key, h] : pub_by_key) KH_RETURN_IF_ERROR(describe(CK_INVALID_HANDLE, h, out));
  std::sort(out.begin(), out.end(), [](const KeyInfo& a, const KeyInfo& b) { return a.label < b.label; });
  return out;
}

Result<std::vector<KeyInfo>> Token::ListKeys() {
  std::lock_guard lock(objects_mu_);
  KH_ASSIGN_OR_RETURN(PooledSession s, Acquire());
  return ListKeysLocked(s.get());
}

Result<KeyInfo> Token::FindKey(const Pkcs11Uri& uri) {
  if (!uri.object && !uri.id) return InvalidArgument("the key URI names neither object= (label) nor id=");
  KH_ASSIGN_OR_RETURN(std::vector<KeyInfo> keys, ListKeys());
  std::vector<KeyInfo> matches;
  for (auto& k : keys) {
    if (uri.object && *uri.object != k.label) continue;
    if (uri.id && *uri.id != k.id) continue;
    if (uri.type == "private" && !k.has_private()) continue;
    if (uri.type && *uri.type != "private" && *uri.type != "public") continue;
    matches.push_back(std::move(k));
  }
  const std::string what = uri.object ? "labelled '" + *uri.object + "'" : "with id " + Hex(*uri.id);
  if (matches.empty()) return NotFound("no key " + what + " in token '" + info_.label + "'");
  if (matches.size() > 1) return InvalidArgument("several keys " + what + " in token '" + info_.label + "'");
  return matches.front();
}

Result<KeyInfo> Token::FindKeyByLabel(const std::string& label) {
  Pkcs11Uri u;
  u.object = label;
  return FindKey(u);
}

Status Token::CheckLabelFreeLocked(CK_SESSION_HANDLE s, const std::string& label) {
  if (label.empty() || label.size() > 128) return InvalidArgument("key label must be 1 to 128 characters");
  // PKCS#11 2.40 §4.4 Table 21: CKA_LABEL is an "RFC2279 string" (UTF-8). Other bytes would also
  // break every JSON consumer of the label (keys list -o json, logs).
  if (!IsUtf8(label)) return InvalidArgument("key label must be valid UTF-8");
  std::string l = label;
  KH_ASSIGN_OR_RETURN(auto found, FindObjects(s, {Attr(CKA_LABEL, l.data(), l.size()), Bool(CKA_TOKEN, true)}));
  if (!found.empty()) {
    return AlreadyExists("token '" + info_.label + "' already has an object labelled '" + label + "'");
  }
  return OkStatus();
}

Result<KeyInfo> Token::GenerateKeyPair(const std::string& label, KeyType type) {
  KH_RETURN_IF_ERROR(CheckCanGenerate(type));
  std::lock_guard lock(objects_mu_);
  KH_ASSIGN_OR_RETURN(PooledSession s, Acquire());
  KH_RETURN_IF_ERROR(CheckLabelFreeLocked(s.get(), label));

  unsigned char id[16];
  if (RAND_bytes(id, sizeof(id)) != 1) return OpenSslError("generating a key id");
  std::string lbl = label;
  CK_ULONG bits = static_cast<CK_ULONG>(RsaBits(type));
  unsigned char exponent[] = {0x01, 0x00, 0x01};
  std::string ec_params = CurveOid(type);

  // No CKA_VERIFY/CKA_ENCRYPT: tpm2-pkcs11 maps SIGN+ENCRYPT and DECRYPT+VERIFY onto the TPM
  // key's two usage bits, so a public template with VERIFY=true and the private DECRYPT=false
  // cannot hold there ("attr mismatch"). The public half is public; kubehsm verifies in software.
  std::vector<CK_ATTRIBUTE> pub = {
      Bool(CKA_TOKEN, true),
      Bool(CKA_PRIVATE, false),
      Bool(CKA_WRAP, false),
      Attr(CKA_LABEL, lbl.data(), lbl.size()),
      Attr(CKA_ID, id, sizeof(id)),
  };
  std::vector<CK_ATTRIBUTE> priv = {
      Bool(CKA_TOKEN, true),        Bool(CKA_PRIVATE, true),
      Bool(CKA_SENSITIVE, true),    Bool(CKA_EXTRACTABLE, false),
      Bool(CKA_SIGN, true),         Bool(CKA_DECRYPT, false),
      Bool(CKA_UNWRAP, false),      Bool(CKA_DERIVE, false),
      Bool(CKA_MODIFIABLE, true),   Attr(CKA_LABEL, lbl.data(), lbl.size()),
      Attr(CKA_ID, id, sizeof(id)),
  };
  CK_MECHANISM mech{CKM_RSA_PKCS_KEY_PAIR_GEN, nullptr, 0};
  if (IsRsa(type)) {
    pub.push_back(Attr(CKA_MODULUS_BITS, &bits, sizeof(bits)));
    pub.push_back(Attr(CKA_PUBLIC_EXPONENT, exponent, sizeof(exponent)));
  } else {
    mech.mechanism = CKM_EC_KEY_PAIR_GEN;
    pub.push_back(Attr(CKA_EC_PARAMS, ec_params.data(), ec_params.size()));
  }
  CK_OBJECT_HANDLE pub_h = CK_INVALID_HANDLE, priv_h = CK_INVALID_HANDLE;
  CK_RV rv = module_.fn()->C_GenerateKeyPair(s.get(), &mech, pub.data(), pub.size(), priv.data(), priv.size(), &pub_h,
                                             &priv_h);
  if (rv != CKR_OK) {
    return RvStatus(
        rv, "C_GenerateKeyPair " + std::string(KeyTypeName(type)) + " '" + label + "' on token '" + info_.label + "'");
  }
  auto info = Describe(s.get(), priv_h, pub_h);
  if (!info.ok() || !info->non_exportable(options_.require_cka_local) || !info->can_sign) {
    module_.fn()->C_DestroyObject(s.get(), priv_h);
    module_.fn()->C_DestroyObject(s.get(), pub_h);
    if (!info.ok()) return info.status();
    return FailedPrecondition("token '" + info_.label +
                              "' did not honour the non-extractable key template (sensitive/never-extractable/local); "
                              "key destroyed");
  }
  return info;
}

Result<std::string> Token::PublicKeyDer(const KeyInfo& key) {
  const CK_OBJECT_HANDLE h = key.public_handle != CK_INVALID_HANDLE ? key.public_handle : key.private_handle;
  OsslParamBldPtr bld(OSSL_PARAM_BLD_new());
  if (!bld) return OpenSslError("OSSL_PARAM_BLD_new");
  // The builder keeps pointers to these until OSSL_PARAM_BLD_to_param copies them: they must live
  // at function scope.
  BigNumPtr n, e;
  std::string point;
  std::string group;
  const char* alg = "RSA";
  if (IsRsa(key.type)) {
    KH_ASSIGN_OR_RETURN(std::string mod, GetAttribute(h, CKA_MODULUS));
    KH_ASSIGN_OR_RETURN(std::string exp, GetAttribute(h, CKA_PUBLIC_EXPONENT));
    n.reset(BN_bin2bn(reinterpret_cast<const unsigned char*>(mod.data()), static_cast<int>(mod.size()), nullptr));
    e.reset(BN_bin2bn(reinterpret_cast<const unsigned char*>(exp.data()), static_cast<int>(exp.size()), nullptr));
    if (!n || !e || OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, n.get()) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, e.get()) != 1) {
      return OpenSslError("building the RSA public key of '" + key.label + "'");
    }
  } else {
    if (key.public_handle == CK_INVALID_HANDLE) {
      return NotFound("EC key '" + key.label + "' has no public key object in the token");
    }
    alg = "EC";
    KH_ASSIGN_OR_RETURN(std::string raw, GetAttribute(key.public_handle, CKA_EC_POINT));
    point = UnwrapEcPoint(raw);
    group = std::string(EcGroupName(key.type));
    if (OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, group.c_str(), 0) != 1 ||
        OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size()) != 1) {
      return OpenSslError("building the EC public key of '" + key.label + "'");
    }
  }
  OsslParamPtr params(OSSL_PARAM_BLD_to_param(bld.get()));
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, alg, "provider=default"));
  EVP_PKEY* raw_key = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &raw_key, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    return OpenSslError("building the public key of '" + key.label + "'");
  }
  EvpPkeyPtr pkey(raw_key);
  unsigned char* der = nullptr;
  int len = i2d_PUBKEY(pkey.get(), &der);
  if (len <= 0) return OpenSslError("encoding the public key of '" + key.label + "'");
  std::string out(reinterpret_cast<char*>(der), static_cast<std::size_t>(len));
  OPENSSL_free(der);
  return out;
}

Result<KeyInfo> Token::ImportPublicKey(const std::string& label, const std::string& spki_der) {
  if (label.empty() || label.size() > 128) return InvalidArgument("key label must be 1 to 128 characters");
  const auto* p = reinterpret_cast<const unsigned char*>(spki_der.data());
  EvpPkeyPtr pkey(d2i_PUBKEY_ex(nullptr, &p, static_cast<long>(spki_der.size()), nullptr, "provider=default"));
  if (!pkey) return OpenSslError(StatusCode::kInvalidArgument, "parsing the public key to import");

  std::lock_guard lock(objects_mu_);
  KH_ASSIGN_OR_RETURN(PooledSession s, Acquire());
  KH_RETURN_IF_ERROR(CheckLabelFreeLocked(s.get(), label));
  unsigned char id[16];
  if (RAND_bytes(id, sizeof(id)) != 1) return OpenSslError("generating a key id");
  std::string lbl = label;
  CK_OBJECT_CLASS cls = CKO_PUBLIC_KEY;
  CK_KEY_TYPE kt = CKK_RSA;
  std::vector<CK_ATTRIBUTE> tmpl = {
      Attr(CKA_CLASS, &cls, sizeof(cls)),
      Attr(CKA_KEY_TYPE, &kt, sizeof(kt)),
      Bool(CKA_TOKEN, true),
      Bool(CKA_PRIVATE, false),
      Bool(CKA_VERIFY, true),
      Attr(CKA_LABEL, lbl.data(), lbl.size()),
      Attr(CKA_ID, id, sizeof(id)),
  };
  std::string n_bytes, e_bytes, params, wrapped;
  if (EVP_PKEY_is_a(pkey.get(), "RSA")) {
    BIGNUM* n = nullptr;
    BIGNUM* e = nullptr;
    if (EVP_PKEY_get_bn_param(pkey.get(), OSSL_PKEY_PARAM_RSA_N, &n) != 1 ||
        EVP_PKEY_get_bn_param(pkey.get(), OSSL_PKEY_PARAM_RSA_E, &e) != 1) {
      BN_free(n);
      BN_free(e);
      return OpenSslError("reading the RSA public key");
    }
    BigNumPtr nn(n), ee(e);
    if (!RsaKeyTypeFromBits(static_cast<std::size_t>(BN_num_bits(n)))) {
      return InvalidArgument("RSA-" + std::to_string(BN_num_bits(n)) + " keys are not supported (2048, 3072, 4096)");
    }
    n_bytes.resize(static_cast<std::size_t>(BN_num_bytes(n)));
    e_bytes.resize(static_cast<std::size_t>(BN_num_bytes(e)));
    BN_bn2bin(n, reinterpret_cast<unsigned char*>(n_bytes.data()));
    BN_bn2bin(e, reinterpret_cast<unsigned char*>(e_bytes.data()));
    tmpl.push_back(Attr(CKA_MODULUS, n_bytes.data(), n_bytes.size()));
    tmpl.push_back(Attr(CKA_PUBLIC_EXPONENT, e_bytes.data(), e_bytes.size()));
  } else if (EVP_PKEY_is_a(pkey.get(), "EC")) {
    kt = CKK_EC;
    char group[64] = {};
    size_t glen = 0;
    if (EVP_PKEY_get_utf8_string_param(pkey.get(), OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), &glen) != 1) {
      return OpenSslError("reading the EC curve");
    }
    const std::string g(group, glen);
    const auto curve = EcKeyTypeFromGroupName(g);
    if (!curve) return InvalidArgument("EC curve " + g + " is not supported (P-256, P-384, P-521)");
    params = CurveOid(*curve);
    unsigned char pt[200];
    size_t ptlen = 0;
    if (EVP_PKEY_get_octet_string_param(pkey.get(), OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt), &ptlen) != 1) {
      return OpenSslError("reading the EC point");
    }
    wrapped = WrapOctetString(std::string(reinterpret_cast<char*>(pt), ptlen));
    tmpl.push_back(Attr(CKA_EC_PARAMS, params.data(), params.size()));
    tmpl.push_back(Attr(CKA_EC_POINT, wrapped.data(), wrapped.size()));
  } else {
    return InvalidArgument("only RSA and EC public keys can be imported");
  }
  CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
  CK_RV rv = module_.fn()->C_CreateObject(s.get(), tmpl.data(), tmpl.size(), &h);
  if (rv != CKR_OK) return RvStatus(rv, "C_CreateObject public key '" + label + "' on token '" + info_.label + "'");
  return Describe(s.get(), CK_INVALID_HANDLE, h);
}

Status Token::SetLabel(const KeyInfo& key, const std::string& new_label) {
  std::lock_guard lock(objects_mu_);
  KH_ASSIGN_OR_RETURN(PooledSession s, Acquire());
  KH_RETURN_IF_ERROR(CheckLabelFreeLocked(s.get(), new_label));
  std::string l = new_label;
  CK_ATTRIBUTE a{CKA_LABEL, l.data(), l.size()};
  for (CK_OBJECT_HANDLE h : {key.private_handle, key.public_handle}) {
    if (h == CK_INVALID_HANDLE) continue;
    CK_RV rv = module_.fn()->C_SetAttributeValue(s.get(), h, &a, 1);
    if (rv != CKR_OK) return RvStatus(rv, "relabelling '" + key.label + "' to '" + new_label + "'");
  }
  return OkStatus();
}

Status Token::DestroyKey(const KeyInfo& key) {
  std::lock_guard lock(objects_mu_);
  KH_ASSIGN_OR_RETURN(PooledSession s, Acquire());
  for (CK_OBJECT_HANDLE h : {key.private_handle, key.public_handle}) {
    if (h == CK_INVALID_HANDLE) continue;
    CK_RV rv = module_.fn()->C_DestroyObject(s.get(), h);
    if (rv != CKR_OK) return RvStatus(rv, "destroying key '" + key.label + "'");
  }
  return OkStatus();
}

Result<std::string> Token::SignDigest(const KeyInfo& key, std::string_view digest_name, std::string_view digest) {
  if (!key.has_private()) return FailedPrecondition("key '" + key.label + "' has no private half in the token");
  std::string input;
  CK_MECHANISM mech{CKM_ECDSA, nullptr, 0};
  if (IsRsa(key.type)) {
    const std::string prefix = DigestInfoPrefix(digest_name);
    if (prefix.empty()) return InvalidArgument("unsupported digest " + std::string(digest_name));
    input = prefix + std::string(digest);
    mech.mechanism = CKM_RSA_PKCS;
  } else {
    input = std::string(digest);
  }
  KH_ASSIGN_OR_RETURN(PooledSession s, Acquire());
  CK_FUNCTION_LIST* f = module_.fn();
  CK_RV rv = f->C_SignInit(s.get(), &mech, key.private_handle);
  if (rv != CKR_OK) {
    if (IsTransientRv(rv)) s.MarkBroken();
    return RvStatus(rv, "C_SignInit with '" + key.label + "'");
  }
  // Maximum signature sizes: RSA-4096 = 512 bytes, P-521 raw r||s = 132 bytes.
  std::string sig(512, '\0');
  CK_ULONG len = sig.size();
  rv = f->C_Sign(s.get(), reinterpret_cast<CK_BYTE*>(input.data()), input.size(),
                 reinterpret_cast<CK_BYTE*>(sig.data()), &len);
  if (rv != CKR_OK) {
    if (IsTransientRv(rv)) s.MarkBroken();
    return RvStatus(rv, "C_Sign with '" + key.label + "'");
  }
  sig.resize(len);
  return sig;
}

Status Token::CheckHealth() {
  CK_FUNCTION_LIST* f = module_.fn();
  CK_TOKEN_INFO ti{};
  CK_RV rv = f->C_GetTokenInfo(info_.slot_id, &ti);
  if (rv != CKR_OK)
    return RvStatus(IsTransientRv(rv) ? rv : CKR_DEVICE_ERROR, "C_GetTokenInfo of token '" + info_.label + "'");
  CK_SESSION_INFO si{};
  rv = f->C_GetSessionInfo(login_session_, &si);
  if (rv != CKR_OK)
    return RvStatus(IsTransientRv(rv) ? rv : CKR_DEVICE_ERROR, "C_GetSessionInfo on token '" + info_.label + "'");
  if (si.state != CKS_RW_USER_FUNCTIONS && si.state != CKS_RO_USER_FUNCTIONS) {
    return Unauthenticated("token '" + info_.label + "' is no longer logged in");
  }
  return OkStatus();
}

std::string Token::KeyUri(const KeyInfo& key) const {
  Pkcs11Uri u;
  u.model = info_.model;
  u.manufacturer = info_.manufacturer;
  u.serial = info_.serial;
  u.token = info_.label;
  u.object = key.label;
  u.id = key.id;
  u.type = key.has_private() ? "private" : "public";
  return u.ToString();
}

}  // namespace kubehsm::hsm
