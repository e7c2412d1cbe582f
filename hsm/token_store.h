// Where a software token keeps its objects, and whether this process can write there. SoftHSM v2
// writes its token files at C_Login and for key operations; on a read-only store it reports success
// at login, then fails later calls with CKR_GENERAL_ERROR (C_GetTokenInfo, C_GenerateKeyPair) or
// leaves pkcs11-provider unable to find the token, which says nothing about the cause.
#pragma once

#include <string>

#include "hsm/module.h"

namespace kubehsm::hsm {

// For a SoftHSM v2 module (C_GetInfo manufacturer "SoftHSM"): reads the token directory
// (`directories.tokendir`) from $SOFTHSM2_CONF, else /etc/softhsm/softhsm2.conf, and checks that
// this process may write that directory, its token subdirectories and their files
// (faccessat W_OK with the effective ids: a read-only mount, including a read-only bind mount or
// systemd's ProtectSystem=, and missing permissions both count). Returns a sentence naming the
// directory, the first path that is not writable and why, e.g. "SoftHSM's token store
// /var/lib/kubehsm/tokens is read-only for this process (/var/lib/kubehsm/tokens/1f..: Read-only
// file system)". Returns "" for other modules, when the configuration cannot be read, and when
// everything is writable. Never fails. (Callers report it as kUnavailable: the token cannot work
// until the store is writable again.)
std::string ReadOnlyTokenStoreReason(const Module& module);

}  // namespace kubehsm::hsm
