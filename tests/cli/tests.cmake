kubehsm_test(cli_keys_e2e_test LABEL e2e SOURCES cli/keys_cli_test.cc)
# Security regressions (issue 14): renew, SA key audit/import, audit-before-issue, state dir,
# config file and module trust. Real binary, SoftHSM, openssl; chown to uid 65534 (root only).
kubehsm_test(cli_security_e2e_test LABEL e2e SOURCES cli/security_cli_test.cc)
# Operator-facing messages and their audit records: wrong PIN wording, PIN-source errors, init's
# announcement and terminal-only progress display, sa rotate's wait rule. Real binary, SoftHSM,
# setsid and script(1) for "no terminal" and "a terminal".
kubehsm_test(cli_operator_messages_e2e_test LABEL e2e SOURCES cli/operator_messages_cli_test.cc)
# token list over a module with no token uses the fault-injecting shim (defined in fault_pkcs11/).
if(TARGET cli_keys_e2e_test)
  target_compile_definitions(cli_keys_e2e_test PRIVATE KUBEHSM_FAULT_PKCS11_PATH="$<TARGET_FILE:kubehsm_fault_pkcs11>")
  add_dependencies(cli_keys_e2e_test kubehsm_fault_pkcs11)
endif()
# -v on each command family that opens a token: config file, module, slot and token on stderr.
kubehsm_test(cli_verbose_e2e_test LABEL e2e SOURCES cli/verbose_cli_test.cc)
