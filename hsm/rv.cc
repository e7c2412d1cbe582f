#include "hsm/rv.h"

#include <cstdio>
#include <utility>

namespace kubehsm::hsm {
namespace {

struct RvEntry {
  CK_RV rv;
  const char* name;
  const char* words;
};

#define KH_RV(x, words) \
  { x, #x, words }
constexpr RvEntry kRvTable[] = {
    KH_RV(CKR_OK, "success"),
    KH_RV(CKR_CANCEL, "cancelled"),
    KH_RV(CKR_HOST_MEMORY, "the module ran out of memory"),
    KH_RV(CKR_SLOT_ID_INVALID, "no such slot"),
    KH_RV(CKR_GENERAL_ERROR, "the module reported a general error"),
    KH_RV(CKR_FUNCTION_FAILED, "the function failed"),
    KH_RV(CKR_ARGUMENTS_BAD, "bad arguments"),
    KH_RV(CKR_CANT_LOCK, "the module cannot use OS locking"),
    KH_RV(CKR_ATTRIBUTE_READ_ONLY, "the attribute is read-only"),
    KH_RV(CKR_ATTRIBUTE_SENSITIVE, "the token refuses to reveal a sensitive attribute"),
    KH_RV(CKR_ATTRIBUTE_TYPE_INVALID, "attribute not supported for this object"),
    KH_RV(CKR_ATTRIBUTE_VALUE_INVALID, "invalid attribute value"),
    KH_RV(CKR_DATA_INVALID, "invalid input data"),
    KH_RV(CKR_DATA_LEN_RANGE, "input data has the wrong length"),
    KH_RV(CKR_DEVICE_ERROR, "the device reported an error"),
    KH_RV(CKR_DEVICE_MEMORY, "the token is out of memory"),
    KH_RV(CKR_DEVICE_REMOVED, "the token was removed"),
    KH_RV(CKR_FUNCTION_CANCELED, "cancelled"),
    KH_RV(CKR_FUNCTION_NOT_SUPPORTED, "not supported by this module"),
    KH_RV(CKR_KEY_HANDLE_INVALID, "the key handle is no longer valid"),
    KH_RV(CKR_KEY_SIZE_RANGE, "key size not supported by the token"),
    KH_RV(CKR_KEY_TYPE_INCONSISTENT, "the key type does not fit the mechanism"),
    KH_RV(CKR_KEY_FUNCTION_NOT_PERMITTED, "the key does not allow this operation"),
    KH_RV(CKR_MECHANISM_INVALID, "mechanism not supported by the token"),
    KH_RV(CKR_MECHANISM_PARAM_INVALID, "invalid mechanism parameters"),
    KH_RV(CKR_OBJECT_HANDLE_INVALID, "the object handle is no longer valid"),
    KH_RV(CKR_OPERATION_ACTIVE, "another operation is active on this session"),
    KH_RV(CKR_OPERATION_NOT_INITIALIZED, "operation not initialized"),
    KH_RV(CKR_PIN_INCORRECT, "wrong PIN"),
    KH_RV(CKR_PIN_INVALID, "the PIN has invalid characters"),
    KH_RV(CKR_PIN_LEN_RANGE, "the PIN length is out of range for this token"),
    KH_RV(CKR_PIN_EXPIRED, "the PIN has expired"),
    KH_RV(CKR_PIN_LOCKED, "the PIN is locked after too many wrong attempts"),
    KH_RV(CKR_SESSION_CLOSED, "the session was closed"),
    KH_RV(CKR_SESSION_COUNT, "too many sessions open on the token"),
    KH_RV(CKR_SESSION_HANDLE_INVALID, "the session is no longer valid"),
    KH_RV(CKR_SESSION_READ_ONLY, "the session is read-only"),
    KH_RV(CKR_SESSION_EXISTS, "a session already exists"),
    KH_RV(CKR_SESSION_READ_ONLY_EXISTS, "a read-only session exists"),
    KH_RV(CKR_SESSION_READ_WRITE_SO_EXISTS, "an SO session exists"),
    KH_RV(CKR_SIGNATURE_INVALID, "invalid signature"),
    KH_RV(CKR_SIGNATURE_LEN_RANGE, "signature has the wrong length"),
    KH_RV(CKR_TEMPLATE_INCOMPLETE, "the key template is incomplete"),
    KH_RV(CKR_TEMPLATE_INCONSISTENT, "the key template is inconsistent"),
    KH_RV(CKR_TOKEN_NOT_PRESENT, "no token in the slot"),
    KH_RV(CKR_TOKEN_NOT_RECOGNIZED, "token not recognized"),
    KH_RV(CKR_TOKEN_WRITE_PROTECTED, "the token is write-protected"),
    KH_RV(CKR_USER_ALREADY_LOGGED_IN, "already logged in"),
    KH_RV(CKR_USER_NOT_LOGGED_IN, "not logged in"),
    KH_RV(CKR_USER_PIN_NOT_INITIALIZED, "the user PIN is not initialized"),
    KH_RV(CKR_USER_TYPE_INVALID, "invalid user type"),
    KH_RV(CKR_USER_ANOTHER_ALREADY_LOGGED_IN, "another user is logged in"),
    KH_RV(CKR_USER_TOO_MANY_TYPES, "too many user types logged in"),
    KH_RV(CKR_DOMAIN_PARAMS_INVALID, "invalid domain parameters (curve not supported?)"),
    KH_RV(CKR_CURVE_NOT_SUPPORTED, "curve not supported by the token"),
    KH_RV(CKR_BUFFER_TOO_SMALL, "buffer too small"),
    KH_RV(CKR_RANDOM_NO_RNG, "the token has no random number generator"),
    KH_RV(CKR_CRYPTOKI_NOT_INITIALIZED, "the module is not initialized"),
    KH_RV(CKR_CRYPTOKI_ALREADY_INITIALIZED, "the module is already initialized"),
};
#undef KH_RV

const RvEntry* Lookup(CK_RV rv) {
  for (const auto& e : kRvTable) {
    if (e.rv == rv) return &e;
  }
  return nullptr;
}

}  // namespace

std::string RvName(CK_RV rv) {
  if (const RvEntry* e = Lookup(rv)) return e->name;
  char buf[32];
  std::snprintf(buf, sizeof(buf), "CKR_0x%08lX", static_cast<unsigned long>(rv));
  return buf;
}

bool IsTransientRv(CK_RV rv) {
  switch (rv) {
    case CKR_DEVICE_ERROR:
    case CKR_DEVICE_REMOVED:
    case CKR_TOKEN_NOT_PRESENT:
    case CKR_SESSION_HANDLE_INVALID:
    case CKR_SESSION_CLOSED:
    case CKR_USER_NOT_LOGGED_IN:
    case CKR_OBJECT_HANDLE_INVALID:
    case CKR_KEY_HANDLE_INVALID:
    case CKR_CRYPTOKI_NOT_INITIALIZED:
      return true;
    default:
      return false;
  }
}

Status RvStatus(CK_RV rv, std::string_view operation) {
  if (rv == CKR_OK) return OkStatus();
  const RvEntry* e = Lookup(rv);
  std::string text = std::string(operation) + ": " + RvName(rv);
  if (e != nullptr) text += std::string(" (") + e->words + ")";
  StatusCode code = StatusCode::kInternal;
  switch (rv) {
    case CKR_PIN_INCORRECT:
    case CKR_PIN_INVALID:
    case CKR_PIN_LEN_RANGE:
    case CKR_USER_NOT_LOGGED_IN:
      code = StatusCode::kUnauthenticated;
      break;
    case CKR_PIN_LOCKED:
    case CKR_PIN_EXPIRED:
    case CKR_USER_PIN_NOT_INITIALIZED:
    case CKR_KEY_TYPE_INCONSISTENT:
    case CKR_KEY_FUNCTION_NOT_PERMITTED:
    case CKR_MECHANISM_INVALID:
    case CKR_KEY_SIZE_RANGE:
    case CKR_CURVE_NOT_SUPPORTED:
    case CKR_DOMAIN_PARAMS_INVALID:
    case CKR_TOKEN_WRITE_PROTECTED:
      code = StatusCode::kFailedPrecondition;
      break;
    case CKR_ATTRIBUTE_SENSITIVE:
    case CKR_ATTRIBUTE_READ_ONLY:
      code = StatusCode::kPermissionDenied;
      break;
    case CKR_SLOT_ID_INVALID:
    case CKR_TOKEN_NOT_RECOGNIZED:
      code = StatusCode::kNotFound;
      break;
    default:
      if (IsTransientRv(rv) || rv == CKR_SESSION_COUNT) code = StatusCode::kUnavailable;
  }
  return Status(code, std::move(text));
}

}  // namespace kubehsm::hsm
