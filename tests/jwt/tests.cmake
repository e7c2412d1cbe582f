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
  LIBS kubehsm::jwt)
