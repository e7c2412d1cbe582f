/* Test-only LD_PRELOAD shim for the sanitizer pass of scripts/test.
 *
 * pkcs11-provider dlopen()s the PKCS#11 module with RTLD_DEEPBIND, which AddressSanitizer refuses
 * ("incompatible with sanitizer runtime", google/sanitizers#611): every test that signs through the
 * provider would abort under ASan. This shim forwards dlopen() with RTLD_DEEPBIND cleared, so the
 * sanitized suite can exercise the real signing path. Never used outside that test pass. */
#define _GNU_SOURCE
#include <dlfcn.h>

void* dlopen(const char* file, int flags) {
  typedef void* (*dlopen_fn)(const char*, int);
  static dlopen_fn next = 0; /* resolved once; a benign race writes the same value */
  if (next == 0) next = (dlopen_fn)dlsym(RTLD_NEXT, "dlopen");
  return next(file, flags & ~RTLD_DEEPBIND);
}
