// Translation of PKCS#11 return values (CK_RV) into kubehsm Status with context.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"
#include "hsm/pkcs11.h"

namespace kubehsm::hsm {

// The CKR_* name of `rv` ("CKR_PIN_INCORRECT"), or "CKR_0x<hex>" for unknown values.
std::string RvName(CK_RV rv);

// Returns OK for CKR_OK, otherwise a Status "<operation>: <CKR name> (<plain words>)" whose code
// reflects the kind of failure: wrong PIN -> kUnauthenticated; PIN locked, key of the wrong kind
// -> kFailedPrecondition; device or session loss -> kUnavailable; sensitive attribute ->
// kPermissionDenied; everything else kInternal. `operation` names the call and its target, e.g.
// "C_Login on token 'kubehsm'". Never includes PIN material.
Status RvStatus(CK_RV rv, std::string_view operation);

// True when `rv` means the token, its login state or the session went away (a retry after
// re-opening may work): CKR_DEVICE_ERROR, CKR_DEVICE_REMOVED, CKR_TOKEN_NOT_PRESENT,
// CKR_SESSION_HANDLE_INVALID, CKR_SESSION_CLOSED, CKR_USER_NOT_LOGGED_IN, CKR_OBJECT_HANDLE_INVALID,
// CKR_KEY_HANDLE_INVALID, CKR_CRYPTOKI_NOT_INITIALIZED.
bool IsTransientRv(CK_RV rv);

}  // namespace kubehsm::hsm
