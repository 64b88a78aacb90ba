// The showdown's identity-provider key set, made fresh at every run with Node's own crypto (no
// packages): seven keys as a JWKS (RSA-2048 under four kids, as providers rotate, then P-256, P-384
// and Ed25519), and one token per algorithm (RS256, ES256, EdDSA) with a copy whose signature has one
// character changed. Prints one JSON object: {"jwks": {...}, "tokens": {"RS256": {"valid", "invalid"}, ...}}.
//
//   node bench/jwks.js [ttl-seconds]
"use strict";

const crypto = require("node:crypto");

const ttl = Number(process.argv[2] || 86400);
const b64u = (buf) => Buffer.from(buf).toString("base64url");

const keys = [];
for (let i = 1; i <= 4; i++) {
  keys.push({ kid: `rsa-${i}`, alg: "RS256", pair: crypto.generateKeyPairSync("rsa", { modulusLength: 2048 }) });
}
keys.push({ kid: "p256", alg: "ES256", pair: crypto.generateKeyPairSync("ec", { namedCurve: "P-256" }) });
keys.push({ kid: "p384", alg: "ES384", pair: crypto.generateKeyPairSync("ec", { namedCurve: "P-384" }) });
keys.push({ kid: "ed25519", alg: "EdDSA", pair: crypto.generateKeyPairSync("ed25519") });

const jwks = {
  keys: keys.map(({ kid, alg, pair }) => ({ ...pair.publicKey.export({ format: "jwk" }), kid, alg, use: "sig" })),
};

function sign(alg, kid, key) {
  const now = Math.floor(Date.now() / 1000);
  const header = b64u(JSON.stringify({ alg, typ: "JWT", kid }));
  const payload = b64u(JSON.stringify({ sub: "bench", iat: now, exp: now + ttl }));
  const input = Buffer.from(`${header}.${payload}`);
  let sig;
  if (alg === "RS256") sig = crypto.sign("sha256", input, key);
  else if (alg === "ES256") sig = crypto.sign("sha256", input, { key, dsaEncoding: "ieee-p1363" });
  else sig = crypto.sign(null, input, key);
  const s = b64u(sig);
  // one middle character changed, as for the HS256 token: still canonical base64url
  const mid = Math.floor(s.length / 2);
  const bad = s.slice(0, mid) + (s[mid] === "A" ? "B" : "A") + s.slice(mid + 1);
  return { valid: `${header}.${payload}.${s}`, invalid: `${header}.${payload}.${bad}` };
}

// The RSA token uses the last of the four RSA kids, so a validator that tries keys in order pays for it.
const tokens = {
  RS256: sign("RS256", "rsa-4", keys[3].pair.privateKey),
  ES256: sign("ES256", "p256", keys[4].pair.privateKey),
  EdDSA: sign("EdDSA", "ed25519", keys[6].pair.privateKey),
};
process.stdout.write(JSON.stringify({ jwks, tokens }) + "\n");
