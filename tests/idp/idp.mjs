// A real OpenID provider for the tests (crates/server/tests/idp.rs): oidc-provider, configured as a
// service-to-service identity provider would be, on 127.0.0.1 only.
//
//   IDP_PORT=PORT IDP_STATE=FILE node tests/idp/idp.mjs
//
// - Issuer http://127.0.0.1:PORT, OIDC discovery at /.well-known/openid-configuration, JWKS at /jwks.
// - One client, `svc` / `svc-secret` (client_secret_post or basic), client-credentials grant only.
// - Resource indicators (RFC 8707) produce RFC 9068 JWT access tokens: the resource
//   `https://api.test/ALG` gives a token for the audience `https://api.test` signed with ALG, one of
//   RS256, PS256, ES256, ES384, EdDSA, so a test picks the algorithm by the resource it asks for.
// - Signing keys: an RSA 2048 key (RS256 and PS256), P-256, P-384 and Ed25519, kept in IDP_STATE so a
//   restart serves the same keys (the IdP coming back after an outage).
// - POST /_test/rotate replaces every key with new ones (new kids) and answers the new kids: the
//   published set no longer holds the old keys, as after an emergency rotation.
// - DPoP (RFC 9449), on by default in oidc-provider 9: a token request with a DPoP proof gets a token
//   bound to the proof's key (`cnf.jkt`, token_type DPoP).
// - A DPoP client for the tests, in this process for brevity but speaking to the provider over HTTP
//   like any other client, its proofs made with panva's jose (oidc-provider's own dependency):
//   POST /_test/client/dpop-token {"alg": "ES256"} makes a key pair, asks /token for a bound token with
//   a proof for it, and answers {"access_token", "token_type", "client": id, "jkt"};
//   POST /_test/client/proof {"client": id, "htm", "htu", "access_token"} answers {"proof"}, a fresh
//   proof (new jti, iat now) for that request, `ath` the hash of the access token.
//
// Prints `idp listening on http://127.0.0.1:PORT` once it accepts connections.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';

import * as jose from 'jose';
import Provider, { errors } from 'oidc-provider';

const port = Number(process.env.IDP_PORT);
const state = process.env.IDP_STATE;
if (!Number.isInteger(port) || port <= 0 || !state) {
  console.error('idp: set IDP_PORT (a port on 127.0.0.1) and IDP_STATE (a file for the keys)');
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}`;
const AUDIENCE = 'https://api.test';
const ALGORITHMS = ['RS256', 'PS256', 'ES256', 'ES384', 'EdDSA'];

function generateKeys() {
  const generation = crypto.randomBytes(4).toString('hex');
  const jwk = (type, options, kid) => {
    const { privateKey } = crypto.generateKeyPairSync(type, options);
    return { ...privateKey.export({ format: 'jwk' }), kid: `${kid}-${generation}`, use: 'sig' };
  };
  return [
    jwk('rsa', { modulusLength: 2048 }, 'rsa'),
    jwk('ec', { namedCurve: 'P-256' }, 'p256'),
    jwk('ec', { namedCurve: 'P-384' }, 'p384'),
    jwk('ed25519', {}, 'ed25519'),
  ];
}

function loadKeys() {
  if (fs.existsSync(state)) return JSON.parse(fs.readFileSync(state, 'utf8'));
  const keys = generateKeys();
  fs.writeFileSync(state, JSON.stringify(keys));
  return keys;
}

function provider(keys) {
  return new Provider(issuer, {
    clients: [
      {
        client_id: 'svc',
        client_secret: 'svc-secret',
        grant_types: ['client_credentials'],
        redirect_uris: [],
        response_types: [],
        token_endpoint_auth_method: 'client_secret_post',
      },
      // Issue 26: its access tokens are bound to the client certificate it presents (RFC 8705 §3).
      {
        client_id: 'svc-mtls',
        client_secret: 'svc-mtls-secret',
        grant_types: ['client_credentials'],
        redirect_uris: [],
        response_types: [],
        token_endpoint_auth_method: 'client_secret_post',
        tls_client_certificate_bound_access_tokens: true,
      },
    ],
    jwks: { keys },
    scopes: ['read', 'write'],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      // The provider serves plain HTTP on loopback: the certificate a TLS terminator in front of it
      // would have verified comes in X-SSL-Client-Cert, URL-escaped PEM (nginx's
      // $ssl_client_escaped_cert).
      mTLS: {
        enabled: true,
        certificateBoundAccessTokens: true,
        getCertificate(ctx) {
          const escaped = ctx.get('x-ssl-client-cert');
          return escaped ? decodeURIComponent(escaped) : undefined;
        },
      },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => `${AUDIENCE}/RS256`,
        useGrantedResource: () => true,
        getResourceServerInfo(_ctx, resource) {
          const alg = resource.startsWith(`${AUDIENCE}/`) && resource.slice(AUDIENCE.length + 1);
          if (!ALGORITHMS.includes(alg)) throw new errors.InvalidTarget();
          return {
            scope: 'read write',
            audience: AUDIENCE,
            accessTokenTTL: 600,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg } },
          };
        },
      },
    },
  });
}

// Each stage of the start is said on stderr, so a start that stalls shows where.
const started = Date.now();
const keys = loadKeys();
console.error(`idp: keys ready after ${Date.now() - started} ms`);
let current = provider(keys);
console.error(`idp: provider ready after ${Date.now() - started} ms`);

// The test client's DPoP key pairs, by id.
const clients = new Map();

async function proof(client, htm, htu, accessToken) {
  const claims = { htm, htu, jti: crypto.randomUUID() };
  if (accessToken) {
    claims.ath = crypto.createHash('sha256').update(accessToken).digest('base64url');
  }
  return new jose.SignJWT(claims)
    .setProtectedHeader({ alg: client.alg, typ: 'dpop+jwt', jwk: client.jwk })
    .setIssuedAt()
    .sign(client.privateKey);
}

async function dpopToken(alg) {
  const { privateKey, publicKey } = await jose.generateKeyPair(alg, { extractable: true });
  const jwk = await jose.exportJWK(publicKey);
  const id = crypto.randomUUID();
  const client = { alg, privateKey, jwk };
  clients.set(id, client);
  const endpoint = `${issuer}/token`;
  const response = await fetch(endpoint, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      dpop: await proof(client, 'POST', endpoint),
    },
    body: new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: 'svc',
      client_secret: 'svc-secret',
      scope: 'read',
      resource: `${AUDIENCE}/ES256`,
    }),
  });
  const body = await response.json();
  if (!response.ok) throw new Error(`token endpoint: ${response.status} ${JSON.stringify(body)}`);
  return { ...body, client: id, jkt: await jose.calculateJwkThumbprint(jwk) };
}

async function readJson(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
}

async function testClient(req, res) {
  try {
    const input = await readJson(req);
    let answer;
    if (req.url === '/_test/client/dpop-token') {
      answer = await dpopToken(input.alg || 'ES256');
    } else {
      const client = clients.get(input.client);
      if (!client) throw new Error(`no client ${input.client}`);
      answer = { proof: await proof(client, input.htm, input.htu, input.access_token) };
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(answer));
  } catch (e) {
    res.writeHead(500, { 'content-type': 'text/plain' });
    res.end(String(e && e.stack ? e.stack : e));
  }
}

const server = http.createServer((req, res) => {
  if (req.method === 'POST' && req.url.startsWith('/_test/client/')) {
    testClient(req, res);
    return;
  }
  if (req.method === 'POST' && req.url === '/_test/rotate') {
    const keys = generateKeys();
    fs.writeFileSync(state, JSON.stringify(keys));
    current = provider(keys);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kids: keys.map((k) => k.kid) }));
    return;
  }
  current.callback()(req, res);
});
// A port taken meanwhile ends the process with one line (the tests start it again on another port).
server.on('error', (e) => {
  console.error(`idp: ${e.message}`);
  process.exit(1);
});
server.listen(port, '127.0.0.1', () => {
  console.log(`idp listening on ${issuer}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
