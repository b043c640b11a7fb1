// What the README says the stack creates, checked on the synthesised
// template for each mode and kind of auth.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Template } from 'aws-cdk-lib/assertions';
import { buildApp } from '../lib/app';
import { SettingsError } from '../lib/settings';

type Resources = Record<string, { Type: string; Properties?: any; Metadata?: any }>;

function synth(context: Record<string, unknown> = {}): { template: Template; resources: Resources } {
  const { stack } = buildApp({ codeSource: 'parameters', ...context });
  const template = Template.fromStack(stack);
  return { template, resources: template.toJSON().Resources as Resources };
}

function ofType(resources: Resources, type: string): [string, any][] {
  return Object.entries(resources).filter(([, r]) => r.Type === type).map(([id, r]) => [id, r.Properties ?? {}]);
}

/** The logical id a `{ Ref }` or `{ Fn::GetAtt }` points at. */
function target(ref: any): string {
  if (ref?.Ref) return ref.Ref;
  if (ref?.['Fn::GetAtt']) return ref['Fn::GetAtt'][0];
  throw new Error(`not a reference: ${JSON.stringify(ref)}`);
}

const MODES = [
  { mode: 's3tables', auth: 'iam' },
  { mode: 's3tables', auth: 'token' },
  { mode: 'plain', auth: 'iam' },
];

for (const context of MODES) {
  const name = `${context.mode}/${context.auth}`;

  test(`${name}: every function is arm64 on provided.al2023 or Node.js, with a log group that expires`, () => {
    const { resources } = synth(context);
    const functions = ofType(resources, 'AWS::Lambda::Function');
    assert.ok(functions.length >= 2);
    for (const [id, fn] of functions) {
      assert.deepEqual(fn.Architectures, ['arm64'], id);
      assert.ok(fn.Runtime === 'provided.al2023' || /^nodejs/.test(fn.Runtime), `${id}: ${fn.Runtime}`);
      assert.equal(fn.LoggingConfig?.LogFormat, 'JSON', id);
      const group = resources[target(fn.LoggingConfig.LogGroup)];
      assert.ok(group.Properties.RetentionInDays > 0, `${id}: log group without retention`);
    }
  });

  test(`${name}: every queue has a dead-letter queue with 14 days, SSE, an explicit size and an alarm`, () => {
    const { resources } = synth(context);
    const queues = ofType(resources, 'AWS::SQS::Queue');
    const deadLetterIds = new Set<string>();
    for (const [id, q] of queues) {
      assert.equal(q.SqsManagedSseEnabled, true, `${id}: not encrypted`);
      assert.equal(q.MaximumMessageSize, 262144, `${id}: MaximumMessageSize`);
      if (q.RedrivePolicy) {
        deadLetterIds.add(target(q.RedrivePolicy.deadLetterTargetArn));
        assert.ok(q.RedrivePolicy.maxReceiveCount >= 5, `${id}: maxReceiveCount`);
      }
    }
    const mainQueues = queues.filter(([id]) => !deadLetterIds.has(id));
    assert.equal(mainQueues.length + deadLetterIds.size, queues.length);
    for (const [id, q] of mainQueues) {
      assert.ok(q.RedrivePolicy, `${id} has no dead-letter queue`);
    }
    const alarms = ofType(resources, 'AWS::CloudWatch::Alarm');
    for (const dlq of deadLetterIds) {
      assert.equal(resources[dlq].Properties.MessageRetentionPeriod, 14 * 86400, `${dlq}: retention`);
      const alarm = alarms.find(([, a]) => a.MetricName === 'ApproximateNumberOfMessagesVisible'
        && a.Dimensions.some((d: any) => d.Name === 'QueueName' && target(d.Value) === dlq));
      assert.ok(alarm, `no alarm on ${dlq}'s depth`);
      assert.equal(alarm[1].Threshold, 1);
      assert.equal(alarm[1].ComparisonOperator, 'GreaterThanOrEqualToThreshold');
    }
    for (const [id] of mainQueues) {
      assert.ok(alarms.some(([, a]) => a.MetricName === 'ApproximateAgeOfOldestMessage'
        && a.Dimensions.some((d: any) => target(d.Value) === id)), `no alarm on ${id}'s oldest message`);
    }
  });

  test(`${name}: event sources report failed items, and visibility is at least 6 x the consumer's timeout`, () => {
    const { resources } = synth(context);
    const mappings = ofType(resources, 'AWS::Lambda::EventSourceMapping');
    assert.ok(mappings.length >= 1);
    for (const [id, m] of mappings) {
      assert.deepEqual(m.FunctionResponseTypes, ['ReportBatchItemFailures'], id);
      const fn = resources[target(m.FunctionName)].Properties;
      const queue = resources[target(m.EventSourceArn)].Properties;
      assert.ok(queue.VisibilityTimeout >= 6 * fn.Timeout, `${id}: ${queue.VisibilityTimeout} < 6 x ${fn.Timeout}`);
      if (queue.FifoQueue) {
        assert.ok(m.BatchSize <= 10, `${id}: a FIFO batch holds at most 10`);
      }
    }
  });

  test(`${name}: no IAM statement has a wildcard action`, () => {
    const { resources } = synth(context);
    const statements: any[] = [];
    for (const [, p] of ofType(resources, 'AWS::IAM::Policy')) statements.push(...p.PolicyDocument.Statement);
    for (const [, p] of ofType(resources, 'AWS::IAM::ManagedPolicy')) statements.push(...p.PolicyDocument.Statement);
    for (const [, r] of ofType(resources, 'AWS::IAM::Role')) {
      for (const policy of r.Policies ?? []) statements.push(...policy.PolicyDocument.Statement);
    }
    assert.ok(statements.length > 5);
    for (const statement of statements) {
      const actions = [statement.Action].flat();
      for (const action of actions) {
        assert.ok(typeof action === 'string' && !action.includes('*'), `wildcard action ${action} in ${JSON.stringify(statement)}`);
      }
      assert.equal(statement.Effect, 'Allow');
    }
  });

  test(`${name}: every API route requires auth`, () => {
    const { resources } = synth(context);
    const routes = ofType(resources, 'AWS::ApiGatewayV2::Route');
    assert.deepEqual(routes.map(([, r]) => r.RouteKey).sort(), ['POST /v1/logs', 'POST /v1/metrics', 'POST /v1/traces']);
    for (const [id, r] of routes) {
      assert.equal(r.AuthorizationType, context.auth === 'iam' ? 'AWS_IAM' : 'CUSTOM', id);
      if (context.auth === 'token') assert.ok(r.AuthorizerId, id);
    }
    const [[, stage]] = ofType(resources, 'AWS::ApiGatewayV2::Stage');
    assert.ok(stage.AccessLogSettings?.DestinationArn, 'no access logs');
    assert.ok(stage.DefaultRouteSettings.ThrottlingRateLimit > 0, 'no throttling');
  });

  test(`${name}: buckets block public access and refuse plain HTTP`, () => {
    const { resources } = synth(context);
    const buckets = ofType(resources, 'AWS::S3::Bucket');
    assert.ok(buckets.length >= 1);
    const policies = ofType(resources, 'AWS::S3::BucketPolicy');
    for (const [id, b] of buckets) {
      assert.deepEqual(b.PublicAccessBlockConfiguration, {
        BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true,
      }, id);
      assert.ok(b.BucketEncryption, `${id}: not encrypted`);
      const policy = policies.find(([, p]) => target(p.Bucket) === id);
      assert.ok(policy, `${id} has no bucket policy`);
      assert.ok(policy[1].PolicyDocument.Statement.some((s: any) => s.Effect === 'Deny'
        && s.Condition?.Bool?.['aws:SecureTransport'] === 'false'), `${id} does not refuse plain HTTP`);
    }
  });
}

test('s3tables: the committer is the single writer of a FIFO queue, run by a schedule too', () => {
  const { resources } = synth();
  const functions = ofType(resources, 'AWS::Lambda::Function');
  const committer = functions.find(([id]) => id.startsWith('Committer'));
  assert.ok(committer);
  assert.equal(committer[1].ReservedConcurrentExecutions, 1);
  const mapping = ofType(resources, 'AWS::Lambda::EventSourceMapping').find(([, m]) => target(m.FunctionName) === committer[0]);
  assert.ok(mapping);
  assert.equal(resources[target(mapping[1].EventSourceArn)].Properties.FifoQueue, true);
  const env = committer[1].Environment.Variables;
  assert.equal(env.OTLP2PARQUET_COMMIT_BATCH_COMPACTIONS, '100');
  assert.equal(env.OTLP2PARQUET_CATALOG, 's3tables');
  const rule = ofType(resources, 'AWS::Events::Rule')[0][1];
  assert.equal(rule.ScheduleExpression, 'rate(1 minute)');
  assert.equal(target(rule.Targets[0].Arn), committer[0]);
  // No function has more than it reads: ingest takes no catalog variable.
  const ingest = functions.find(([id]) => id.startsWith('Ingest'))![1].Environment.Variables;
  assert.equal(ingest.OTLP2PARQUET_ICEBERG_WAREHOUSE, undefined);
  assert.ok(ingest.OTLP2PARQUET_STATE_URI);
});

test('s3tables: unreferenced-file removal waits longer than any message naming a file can live', () => {
  const { resources } = synth();
  const [[, bucket]] = ofType(resources, 'AWS::S3Tables::TableBucket');
  const removal = bucket.UnreferencedFileRemoval;
  assert.equal(removal.Status, 'Enabled');
  const queues = ofType(resources, 'AWS::SQS::Queue');
  const longest = Math.max(...queues.map(([, q]) => q.MessageRetentionPeriod / 86400));
  // A FIFO message's clock restarts in its dead-letter queue: a queue's
  // retention plus its dead-letter queue's, at the least.
  assert.ok(removal.UnreferencedDays >= 2 * longest, `${removal.UnreferencedDays} days < ${2 * longest}`);
  const [[, ns]] = ofType(resources, 'AWS::S3Tables::Namespace');
  assert.equal(ns.Namespace, 'otel');
  // State records outlive the files and messages they judge.
  const [[, state]] = ofType(resources, 'AWS::S3::Bucket');
  for (const rule of state.LifecycleConfiguration.Rules) {
    assert.ok(rule.ExpirationInDays >= removal.UnreferencedDays, `${rule.Id}: ${rule.ExpirationInDays}`);
  }
});

test('plain mode: no table bucket, no committer, compacted files are never expired', () => {
  const { resources } = synth({ mode: 'plain' });
  assert.equal(ofType(resources, 'AWS::S3Tables::TableBucket').length, 0);
  assert.equal(ofType(resources, 'AWS::Lambda::Function').length, 2);
  const [[, bucket]] = ofType(resources, 'AWS::S3::Bucket');
  for (const rule of bucket.LifecycleConfiguration.Rules) {
    assert.ok(rule.Prefix === 'messages/' || /\/(data\/raw|compaction)\/$/.test(rule.Prefix), rule.Prefix);
  }
});

test('token auth: a Lambda authorizer reads the token from Secrets Manager', () => {
  const { resources } = synth({ auth: 'token' });
  assert.equal(ofType(resources, 'AWS::SecretsManager::Secret').length, 1);
  const [[, authorizer]] = ofType(resources, 'AWS::ApiGatewayV2::Authorizer');
  assert.equal(authorizer.AuthorizerType, 'REQUEST');
  assert.deepEqual(authorizer.IdentitySource, ['$request.header.Authorization']);
  assert.equal(authorizer.EnableSimpleResponses, true);
});

test('outputs: the endpoint, the tables, the queues and the commands to try them', () => {
  const { template } = synth();
  const outputs = Object.keys(template.toJSON().Outputs);
  for (const name of ['OtlpEndpoint', 'TableBucketArn', 'Namespace', 'CompactionQueueUrl', 'CompactionDeadLetterQueueUrl',
    'CommitQueueUrl', 'CommitDeadLetterQueueUrl', 'SendTestSpanCommand', 'QueryCommand', 'OtlpSenderPolicyArn']) {
    assert.ok(outputs.includes(name), `missing output ${name}`);
  }
});

test('assets mode takes the zips cargo lambda wrote, and says how to build them when they are missing', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'otlp2parquet-infra-'));
  assert.throws(() => buildApp({ lambdaDir: dir }, path.join(dir, 'out')), /cargo lambda build/);
  for (const binary of ['otlp2parquet-ingest', 'otlp2parquet-compactor', 'otlp2parquet-committer']) {
    fs.mkdirSync(path.join(dir, binary));
    fs.writeFileSync(path.join(dir, binary, 'bootstrap.zip'), 'not really a zip');
  }
  const { stack } = buildApp({ lambdaDir: dir }, path.join(dir, 'out'));
  const functions = ofType(Template.fromStack(stack).toJSON().Resources, 'AWS::Lambda::Function');
  for (const [id, fn] of functions) {
    assert.ok(fn.Code.S3Key, `${id}: code is not an asset`);
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

test('a wrong setting names itself and what it should hold', () => {
  assert.throws(() => buildApp({ mode: 'glue' }), (err: Error) => err instanceof SettingsError && /"mode".*s3tables, plain/.test(err.message));
  assert.throws(() => buildApp({ commitBatchCompactions: '0' }), /"commitBatchCompactions".*1 to 10000/);
  assert.throws(() => buildApp({ logRetentionDays: 10 }), /CloudWatch Logs/);
  assert.throws(() => buildApp({ namespace: 'Otel-Data' }), /namespace/);
});
