#!/usr/bin/python3
"""Independent JOSE check for kubehsm's tests: verifies a token with PyJWT against a JWKS.

usage: pyjwt_verify.py TOKEN_FILE JWKS_FILE ISSUER AUDIENCE
Exit 0 and prints the claims as JSON when the token verifies; exit 1 with the reason otherwise.
"""
import json
import sys

import jwt


def main():
    token = open(sys.argv[1]).read().strip()
    jwks = jwt.PyJWKSet.from_json(open(sys.argv[2]).read())
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as e:
        print("%s: %s" % (type(e).__name__, e))
        return 1
    if set(header) != {"alg", "kid", "typ"} or header["typ"] != "JWT":
        print("unexpected header %r" % header)
        return 1
    keys = [k for k in jwks.keys if k.key_id == header["kid"]]
    if len(keys) != 1:
        print("kid %s not in JWKS" % header["kid"])
        return 1
    try:
        claims = jwt.decode(token, key=keys[0].key, algorithms=[header["alg"]],
                            issuer=sys.argv[3], audience=sys.argv[4],
                            options={"require": ["exp", "iat", "nbf", "iss", "aud", "sub"]})
    except jwt.PyJWTError as e:
        print("%s: %s" % (type(e).__name__, e))
        return 1
    print(json.dumps(claims, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
