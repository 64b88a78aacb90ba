// The showdown's Node baseline: an Express + jsonwebtoken service answering the same POST /validate
// contract as jwt-validator, written the way the original one was (the secret handed to jwt.verify
// as a string). Configuration: JWT_SECRET (required), PORT (default 3000), HOST (default 127.0.0.1).
'use strict';

const express = require('express');
const jwt = require('jsonwebtoken');

const JWT_SECRET = process.env.JWT_SECRET;
if (!JWT_SECRET) {
  console.error('node-baseline: JWT_SECRET is required');
  process.exit(2);
}
const PORT = Number(process.env.PORT || 3000);
const HOST = process.env.HOST || '127.0.0.1';

const app = express();
app.use(express.json());

app.post('/validate', (req, res) => {
  const token = req.body && req.body.token;
  if (!token) {
    return res.status(400).json({ valid: false, error: 'No token provided' });
  }
  try {
    const decoded = jwt.verify(token, JWT_SECRET);
    return res.json({ valid: true, user: decoded });
  } catch (err) {
    return res.status(401).json({ valid: false, error: err.message });
  }
});

const server = app.listen(PORT, HOST, () => {
  console.log(`node-baseline listening on http://${HOST}:${server.address().port}`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
