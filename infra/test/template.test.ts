// The committed template is what users without CDK launch: it must be what the
// CDK app synthesises today.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { committedTemplate, TEMPLATE_FILE } from '../lib/app';

test('the committed CloudFormation template is the CDK app\'s (npm run template rewrites it)', () => {
  const file = path.join(__dirname, '..', '..', TEMPLATE_FILE);
  const committed = JSON.parse(fs.readFileSync(file, 'utf8'));
  assert.deepEqual(committed, committedTemplate(), `${TEMPLATE_FILE} is out of date: run "npm run template" in infra/`);
});

test('the committed template takes the code location as parameters and needs no CDK bootstrap', () => {
  const file = path.join(__dirname, '..', '..', TEMPLATE_FILE);
  const template = JSON.parse(fs.readFileSync(file, 'utf8'));
  assert.ok(template.Parameters.CodeBucket);
  assert.equal(template.Parameters.BootstrapVersion, undefined);
  assert.equal(template.Rules, undefined);
});
