kubehsm_test(cli_keys_e2e_test LABEL e2e SOURCES cli/keys_cli_test.cc)
