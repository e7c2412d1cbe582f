kubehsm_test(cli_keys_e2e_test LABEL e2e SOURCES cli/keys_cli_test.cc)
# Security regressions (issue 14): renew, SA key audit/import, audit-before-issue, state dir,
# config file and module trust. Real binary, SoftHSM, openssl; chown to uid 65534 (root only).
kubehsm_test(cli_security_e2e_test LABEL e2e SOURCES cli/security_cli_test.cc)
# -v on each command family that opens a token: config file, module, slot and token on stderr.
kubehsm_test(cli_verbose_e2e_test LABEL e2e SOURCES cli/verbose_cli_test.cc)
