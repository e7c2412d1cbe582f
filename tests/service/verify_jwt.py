#!/usr/bin/python3
"""Independent JOSE check for the `kubehsm serve` tests (PyJWT + python-cryptography only).

usage: verify_jwt.py TOKENS_FILE KEYS_JSON ISSUER AUDIENCE
KEYS_JSON is {"keys": [{"kid", "der" (standard base64 PKIX DER), "exclude"}]} as FetchKeys
returned them. A JWKS is built from the DER keys that are not excluded (what kube-apiserver would
publish), and every token (one per line) must verify against it with the header's alg and kid;
then, for each token, a one-character change in the middle of each of its three segments must make
verification fail. Exit 0 and "ok N" on success, 1 with the reason otherwise.
"""
import base64
import json
import sys

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwks_from_der(keys):
    out = []
    for k in keys:
        if k["exclude"]:
            continue
        pub = load_der_public_key(base64.b64decode(k["der"]))
        if isinstance(pub, rsa.RSAPublicKey):
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(pub))
            jwk["alg"] = "RS256"
        elif isinstance(pub, ec.EllipticCurvePublicKey):
            # RFC 7518 §6.2.1.2: coordinates padded to the curve size (PyJWT 2.6's to_jwk does not
            # pad P-521's 66 bytes, which its own from_jwk then rejects).
            crv, alg, size = {"secp256r1": ("P-256", "ES256", 32), "secp384r1": ("P-384", "ES384", 48),
                              "secp521r1": ("P-521", "ES512", 66)}[pub.curve.name]
            nums = pub.public_numbers()
            jwk = {"kty": "EC", "crv": crv, "alg": alg,
                   "x": b64url(nums.x.to_bytes(size, "big")), "y": b64url(nums.y.to_bytes(size, "big"))}
        else:
            raise ValueError("unsupported key type for kid %s" % k["kid"])
        jwk["kid"] = k["kid"]
        jwk["use"] = "sig"
        out.append(jwk)
    return jwt.PyJWKSet.from_dict({"keys": out})


def verify(token, jwks, issuer, audience):
    header = jwt.get_unverified_header(token)
    if set(header) != {"alg", "kid", "typ"} or header["typ"] != "JWT":
        raise ValueError("unexpected header %r" % header)
    keys = [k for k in jwks.keys if k.key_id == header["kid"]]
    if len(keys) != 1:
        raise ValueError("kid %s not in the JWKS" % header["kid"])
    if keys[0]._jwk_data["alg"] != header["alg"]:
        raise ValueError("alg %s does not match the key" % header["alg"])
    return jwt.decode(token, key=keys[0].key, algorithms=[header["alg"]], issuer=issuer, audience=audience,
                      leeway=60)


def tamper(token, segment):
    parts = token.split(".")
    s = parts[segment]
    i = len(s) // 2
    parts[segment] = s[:i] + ("B" if s[i] == "A" else "A") + s[i + 1:]
    return ".".join(parts)


def main():
    tokens = [t for t in open(sys.argv[1]).read().split("\n") if t]
    keys = json.load(open(sys.argv[2]))["keys"]
    issuer, audience = sys.argv[3], sys.argv[4]
    jwks = jwks_from_der(keys)
    for n, token in enumerate(tokens):
        try:
            claims = verify(token, jwks, issuer, audience)
        except Exception as e:  # noqa: BLE001 - report any failure
            print("token %d does not verify: %s: %s" % (n, type(e).__name__, e))
            return 1
        if claims.get("sub") != "system:serviceaccount:default:default":
            print("token %d: unexpected sub %r" % (n, claims.get("sub")))
            return 1
        for segment in range(3):
            try:
                verify(tamper(token, segment), jwks, issuer, audience)
            except Exception:  # noqa: BLE001 - expected
                continue
            print("token %d still verifies with segment %d changed" % (n, segment))
            return 1
    print("ok %d" % len(tokens))
    return 0


if __name__ == "__main__":
    sys.exit(main())
