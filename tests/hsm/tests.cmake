kubehsm_test(hsm_unit_test LABEL unit SOURCES hsm/uri_test.cc hsm/pin_test.cc LIBS kubehsm::hsm)
kubehsm_test(hsm_softhsm_test LABEL softhsm SOURCES hsm/token_test.cc LIBS kubehsm::hsm kubehsm::signer)
