# kubehsm on four PKCS#11 modules Debian packages (issue #13; label e2e): SoftHSM2, tpm2-pkcs11 on
# swtpm + tpm2-abrmd, openCryptoki's software token, NSS softokn. Each ctest entry makes its own
# throwaway token with tests/tokens/make-token (daemons private to the run, stopped at the end) and
# runs one case of tests/tokens/module_e2e. Included from tests/CMakeLists.txt.

# One-shot gRPC client checking a running `kubehsm serve` (Metadata, FetchKeys, Sign, both API
# versions, OpenSSL + PyJWT verification).
add_executable(kubehsm_serve_probe ${CMAKE_CURRENT_LIST_DIR}/serve_probe.cc)
target_link_libraries(kubehsm_serve_probe PRIVATE kubehsm::settings kubehsm_serve_test_util)

set(_kubehsm_module_cases
  softhsm:refusals softhsm:pki-rsa2048 softhsm:pki-ecdsa-p256 softhsm:sa-serve softhsm:interop
  tpm2:refusals tpm2:pki-rsa2048 tpm2:pki-ecdsa-p256 tpm2:sa-serve tpm2:interop
  opencryptoki:refusals opencryptoki:pki-rsa2048 opencryptoki:pki-ecdsa-p256 opencryptoki:sa-serve opencryptoki:interop
  nss:refusals nss:pki-rsa2048 nss:pki-ecdsa-p256 nss:sa-serve nss:interop)
foreach(_case IN LISTS _kubehsm_module_cases)
  string(REPLACE ":" ";" _parts ${_case})
  list(GET _parts 0 _module)
  list(GET _parts 1 _what)
  add_test(NAME module_e2e.${_module}.${_what}
           COMMAND ${CMAKE_CURRENT_LIST_DIR}/module_e2e ${_module} ${_what})
  set_tests_properties(module_e2e.${_module}.${_what} PROPERTIES
    LABELS e2e TIMEOUT 300
    ENVIRONMENT "KUBEHSM_BIN=$<TARGET_FILE:kubehsm>;KUBEHSM_SERVE_PROBE=$<TARGET_FILE:kubehsm_serve_probe>")
endforeach()
