// In-process cost of one jwt.verify (HS256) in the Node baseline, the way server.js calls it (the
// secret as a string), and with a KeyObject for reference. Prints one JSON line (nanoseconds per
// verification, median of the rounds). Usage: JWT_SECRET=... node verify-cost.js [rounds]
'use strict';

const crypto = require('crypto');
const jwt = require('jsonwebtoken');

const secret = process.env.JWT_SECRET;
if (!secret) {
  console.error('verify-cost: JWT_SECRET is required');
  process.exit(2);
}
const rounds = Number(process.argv[2] || 5);
const token = jwt.sign({ sub: 'bench' }, secret, { algorithm: 'HS256', expiresIn: 86400 });

function measure(key, budgetMs) {
  // calibrate the iteration count to about budgetMs per round
  let n = 1;
  for (;;) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) jwt.verify(token, key);
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (ms >= budgetMs / 4) { n = Math.max(1, Math.round((n * budgetMs) / ms)); break; }
    n *= 4;
  }
  const samples = [];
  for (let r = 0; r < rounds; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) jwt.verify(token, key);
    samples.push(Number(process.hrtime.bigint() - t0) / n);
  }
  samples.sort((a, b) => a - b);
  return { median_ns: samples[Math.floor(samples.length / 2)], samples_ns: samples, iterations: n };
}

const result = {
  string_secret: measure(secret, 300),
  keyobject_secret: measure(crypto.createSecretKey(Buffer.from(secret)), 300),
};
console.log(JSON.stringify(result));
