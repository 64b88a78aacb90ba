// The showdown's DPoP row (bench/showdown/dpop.py), with Node's own crypto (no packages): an issuer
// key (P-256), a client key (P-256), and
//   - an ES256 bearer token and an ES256 DPoP-bound token (cnf.jkt = the client key's RFC 7638
//     thumbprint), both by the issuer key;
//   - N proofs (RFC 9449 §4.2) by the client key for one protected request (htm, htu), each with its
//     own jti (a proof is single-use: the validator refuses a replay), iat now, ath of the bound token,
//     written one a line to PROOFS_FILE.
// Prints one JSON object: {"jwks": {...}, "tokens": {"es256", "dpop"}, "jkt"}.
//
//   node bench/dpop.js STATE_FILE PROOFS_FILE N METHOD URL
//
// STATE_FILE keeps the client key and the tokens between calls (made on the first call): an ECDSA
// signature differs at every signing, and the proofs of later calls (fresh iat for each load run) must
// hash (ath) the very token the load sends.
"use strict";

const crypto = require("node:crypto");
const fs = require("node:fs");

const [stateFile, proofsFile, count, htm, htu] = process.argv.slice(2);
const n = Number(count);
if (!stateFile || !proofsFile || !Number.isInteger(n) || n < 0 || !htm || !htu) {
  console.error("usage: node bench/dpop.js STATE_FILE PROOFS_FILE N METHOD URL");
  process.exit(2);
}
const b64u = (buf) => Buffer.from(buf).toString("base64url");

function jws(header, payload, key) {
  const input = `${b64u(JSON.stringify(header))}.${b64u(JSON.stringify(payload))}`;
  const sig = crypto.sign("sha256", Buffer.from(input), { key, dsaEncoding: "ieee-p1363" });
  return `${input}.${b64u(sig)}`;
}

function state() {
  if (fs.existsSync(stateFile)) {
    const saved = JSON.parse(fs.readFileSync(stateFile, "utf8"));
    return { ...saved, client: crypto.createPrivateKey({ key: saved.client, format: "jwk" }) };
  }
  const issuer = crypto.generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey;
  const client = crypto.generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey;
  const issuerJwk = { ...crypto.createPublicKey(issuer).export({ format: "jwk" }), kid: "dpop-bench", alg: "ES256", use: "sig" };
  const { kty, crv, x, y } = crypto.createPublicKey(client).export({ format: "jwk" });
  // RFC 7638: the required members in lexicographic order, no whitespace.
  const jkt = b64u(crypto.createHash("sha256").update(JSON.stringify({ crv, kty, x, y })).digest());
  const now = Math.floor(Date.now() / 1000);
  const claims = { sub: "bench", iat: now, exp: now + 86400 };
  const header = { alg: "ES256", typ: "JWT", kid: "dpop-bench" };
  const saved = {
    client: client.export({ format: "jwk" }),
    clientJwk: { kty, crv, x, y },
    jwks: { keys: [issuerJwk] },
    tokens: { es256: jws(header, claims, issuer), dpop: jws(header, { ...claims, cnf: { jkt } }, issuer) },
    jkt,
  };
  fs.writeFileSync(stateFile, JSON.stringify(saved));
  return { ...saved, client };
}

const { client, clientJwk, jwks, tokens, jkt } = state();
const ath = b64u(crypto.createHash("sha256").update(tokens.dpop).digest());
const now = Math.floor(Date.now() / 1000);
const proofHeader = { typ: "dpop+jwt", alg: "ES256", jwk: clientJwk };
const out = fs.openSync(proofsFile, "w");
const lines = [];
for (let i = 0; i < n; i++) {
  lines.push(jws(proofHeader, { jti: crypto.randomUUID(), htm, htu, iat: now, ath }, client));
  if (lines.length === 4096) {
    fs.writeSync(out, lines.join("\n") + "\n");
    lines.length = 0;
  }
}
if (lines.length) fs.writeSync(out, lines.join("\n") + "\n");
fs.closeSync(out);

console.log(JSON.stringify({ jwks, tokens, jkt }));
