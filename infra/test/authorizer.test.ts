// The bearer-token authorizer (authorizer/index.js), with the secret read
// through a stand-in instead of Secrets Manager.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as path from 'node:path';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { makeHandler } = require(path.join(__dirname, '..', '..', 'authorizer', 'index.js'));

const event = (authorization?: string) => ({ headers: authorization === undefined ? {} : { authorization } });

test('the right token is allowed, anything else is not', async () => {
  const handler = makeHandler(async () => 's3cret-token');
  assert.deepEqual(await handler(event('Bearer s3cret-token')), { isAuthorized: true });
  assert.deepEqual(await handler(event('bearer s3cret-token')), { isAuthorized: true });
  for (const header of [undefined, '', 'Bearer', 'Bearer s3cret', 'Bearer s3cret-token2', 'Basic s3cret-token', 's3cret-token']) {
    assert.deepEqual(await handler(event(header)), { isAuthorized: false }, String(header));
  }
});

test('the secret is read once per five minutes, so a rotated token is honoured', async () => {
  let reads = 0;
  let secret = 'first';
  let clock = 0;
  const handler = makeHandler(async () => { reads += 1; return secret; }, () => clock);
  assert.deepEqual(await handler(event('Bearer first')), { isAuthorized: true });
  secret = 'second';
  clock += 60_000;
  assert.deepEqual(await handler(event('Bearer first')), { isAuthorized: true });
  assert.equal(reads, 1);
  clock += 5 * 60_000;
  assert.deepEqual(await handler(event('Bearer first')), { isAuthorized: false });
  assert.deepEqual(await handler(event('Bearer second')), { isAuthorized: true });
  assert.equal(reads, 2);
});
