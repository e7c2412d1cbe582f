# signer/jwt: service-account tokens (unit tier: software keys, MemoryKeyStore, PyJWT as the
# independent verifier).
kubehsm_test(jwt_unit_test LABEL unit
  SOURCES
    jwt/jwt_test_util.cc
    jwt/jws_test.cc
    jwt/claims_test.cc
    jwt/verify_test.cc
    jwt/jwks_test.cc
    jwt/sa_keys_test.cc
    jwt/sa_bundle_test.cc
    jwt/json_util_sax_test.cc
  LIBS kubehsm::jwt)

# `kubehsm sa` end to end: the real binary against a fresh SoftHSM token per test.
kubehsm_test(jwt_sa_cli_e2e_test LABEL e2e
  SOURCES
    jwt/jwt_test_util.cc
    jwt/sa_cli_e2e_test.cc
  LIBS kubehsm::jwt)
