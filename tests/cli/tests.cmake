kubehsm_test(cli_keys_e2e_test LABEL e2e SOURCES cli/keys_cli_test.cc)
# Security regressions (issue 14): renew, SA key audit/import, audit-before-issue, state dir,
# config file and module trust. Real binary, SoftHSM, openssl; chown to uid 65534 (root only).
kubehsm_test(cli_security_e2e_test LABEL e2e SOURCES cli/security_cli_test.cc)
# token list over a module with no token uses the fault-injecting shim (defined in fault_pkcs11/).
if(TARGET cli_keys_e2e_test)
  target_compile_definitions(cli_keys_e2e_test PRIVATE KUBEHSM_FAULT_PKCS11_PATH="$<TARGET_FILE:kubehsm_fault_pkcs11>")
  add_dependencies(cli_keys_e2e_test kubehsm_fault_pkcs11)
endif()
