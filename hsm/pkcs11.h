// The one include of the PKCS#11 2.40 header (p11-kit's self-contained copy) for the hsm layer.
// Nothing outside hsm/ includes this file.
#pragma once

#include <p11-kit/pkcs11.h>
