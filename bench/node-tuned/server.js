// The showdown's tuned Node peer: what a Node engineer would write today for the same POST /validate
// contract as jwt-validator. Fastify (schema-less JSON body parsing, no logger) and jsonwebtoken with
// the secret turned into a KeyObject once at start: handed a string, jsonwebtoken tries
// crypto.createPublicKey(secret) on every call first, most of the Express baseline's CPU per request.
// jose 6 was measured too (bench/README.md): its async jwtVerify cost about twice as much per token here.
// Configuration: JWT_SECRET (required), PORT (default 3000), HOST (default 127.0.0.1).
'use strict';

const crypto = require('node:crypto');
const fastify = require('fastify');
const jwt = require('jsonwebtoken');

if (!process.env.JWT_SECRET) {
  console.error('node-tuned: JWT_SECRET is required');
  process.exit(2);
}
const KEY = crypto.createSecretKey(Buffer.from(process.env.JWT_SECRET));
const PORT = Number(process.env.PORT || 3000);
const HOST = process.env.HOST || '127.0.0.1';
// Same algorithm list as the validator's HS256 configuration: never let the token choose.
const OPTIONS = { algorithms: ['HS256'] };

const app = fastify({ logger: false });

app.post('/validate', (req, reply) => {
  const token = req.body && req.body.token;
  if (!token || typeof token !== 'string') {
    return reply.code(400).send({ valid: false, error: 'No token provided' });
  }
  try {
    return reply.send({ valid: true, user: jwt.verify(token, KEY, OPTIONS) });
  } catch (err) {
    return reply.code(401).send({ valid: false, error: err.message });
  }
});

app.listen({ port: PORT, host: HOST }).then(
  (address) => console.log(`node-tuned listening on ${address}`),
  (err) => {
    console.error(`node-tuned: ${err.message}`);
    process.exit(1);
  },
);

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => app.close().then(() => process.exit(0)));
}
