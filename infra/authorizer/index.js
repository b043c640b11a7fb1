// API Gateway HTTP API Lambda authorizer (payload 2.0, simple responses) for
// `auth=token`: a request is allowed when its `Authorization: Bearer <token>`
// header holds the token stored in Secrets Manager (TOKEN_SECRET_ARN). The
// stack inlines this file, so it stays small and uses only the AWS SDK that
// the Node.js runtime ships.
'use strict';
const crypto = require('node:crypto');

// The secret is read once per environment and again after five minutes, so
// a rotated token is honoured without a call per request.
const SECRET_TTL_MS = 5 * 60 * 1000;

function makeHandler(readSecret, now = Date.now) {
  let cached = null;
  async function token() {
    if (cached === null || now() - cached.at > SECRET_TTL_MS) {
      cached = { value: await readSecret(), at: now() };
    }
    return cached.value;
  }
  return async function handler(event) {
    const header = (event.headers && (event.headers.authorization || event.headers.Authorization)) || '';
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match) {
      return { isAuthorized: false };
    }
    const expected = Buffer.from(await token(), 'utf8');
    const given = Buffer.from(match[1], 'utf8');
    // Constant time: how much of a guess matched must not show in the timing.
    const equal = given.length === expected.length && crypto.timingSafeEqual(given, expected);
    return { isAuthorized: equal };
  };
}

async function readSecretFromSecretsManager() {
  const { SecretsManagerClient, GetSecretValueCommand } = require('@aws-sdk/client-secrets-manager');
  const client = new SecretsManagerClient({});
  const answer = await client.send(new GetSecretValueCommand({ SecretId: process.env.TOKEN_SECRET_ARN }));
  return answer.SecretString;
}

exports.makeHandler = makeHandler;
exports.handler = makeHandler(readSecretFromSecretsManager);
