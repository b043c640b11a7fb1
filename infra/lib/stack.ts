// The whole pipeline as one stack:
//
//   OTLP/HTTP ─▶ HTTP API (IAM or bearer token) ─▶ ingest ─▶ state bucket (raw Parquet)
//                                                   │ compaction queue (standard)
//                                                   ▼
//                                               compactor ─▶ table bucket (compacted files)
//                                                   │ commit queue (FIFO, a group per table)
//                                                   ▼
//                                               committer (reserved concurrency 1) ─▶ S3 Tables
//
// Every queue has a dead-letter queue and an alarm on it. Each function is
// granted only the calls it makes (see the README's table of records for the
// prefixes), so IAM here is a map of what the code does.

import * as fs from 'node:fs';
import * as path from 'node:path';
import * as cdk from 'aws-cdk-lib';
import { Construct } from 'constructs';
import * as apigw from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpIamAuthorizer, HttpLambdaAuthorizer, HttpLambdaResponseType } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as events from 'aws-cdk-lib/aws-events';
import * as eventTargets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as s3tables from 'aws-cdk-lib/aws-s3tables';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as snsSubscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { MAX_RETENTION_DAYS, Settings, TABLES } from './settings';

/** How long the functions may run. API Gateway gives up on an integration after 30 s. */
export const TIMEOUTS = { ingest: 29, compactor: 600, committer: 300 } as const;

/**
 * AWS: a queue's visibility timeout should be at least six times its
 * consumer's timeout, so that a batch retried after throttling is not
 * redelivered while the first invocation may still run.
 */
export const VISIBILITY_FACTOR = 6;

/** Receives before SQS moves a message to its dead-letter queue. */
export const MAX_RECEIVE_COUNT = 5;

/**
 * The stages assume SQS's 256 KiB and pass larger bodies by reference through
 * the state bucket (`messages/`); the queues say so explicitly.
 */
export const MAX_MESSAGE_BYTES = 256 * 1024;

/**
 * How long anything a message may point to must outlive it. A message lives at
 * most 14 days in its queue; a FIFO queue's dead-letter queue restarts the
 * clock (a standard one does not), and `otlp2parquet dlq replay` sends a fresh
 * message: so a message, its trip to the dead-letter queue, one replay and a
 * second trip is 4 × 14 days. Records, raw files and unreferenced compacted
 * files are kept at least that long.
 */
export const MESSAGE_LIFETIME_DAYS = 4 * MAX_RETENTION_DAYS;

/** State records (claims, plans, commit records, message bodies) are removed after this. */
export const STATE_RETENTION_DAYS = 90;

/**
 * S3 Tables' unreferenced-file removal: a file in a table's location that no
 * snapshot references is marked after `unreferencedDays` and deleted
 * `noncurrentDays` later. A compacted file waits unreferenced from the moment
 * the compactor writes it until the committer commits it — possibly after a
 * dead-letter queue and a replay — so it must not be marked before every
 * message naming it is gone.
 */
export const UNREFERENCED_DAYS = MESSAGE_LIFETIME_DAYS + 4;
export const NONCURRENT_DAYS = 10;

export class Otlp2ParquetStack extends cdk.Stack {
  constructor(scope: Construct, id: string, settings: Settings, props?: cdk.StackProps) {
    super(scope, id, props);
    const { namespace } = settings;

    // ---- Storage ------------------------------------------------------------
    // The state bucket holds what must be listed, deleted or created only once
    // (a table bucket can do none of these): raw files, claims, plans, commit
    // records, message bodies too large for SQS. In plain mode the compacted
    // files live here too, under `<namespace>/<table>/data/`.
    const stateBucket = new s3.Bucket(this, 'StateBucket', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      versioned: false,
      removalPolicy: cdk.RemovalPolicy.RETAIN,
      lifecycleRules: stateLifecycleRules(settings),
    });

    let tableBucket: s3tables.CfnTableBucket | undefined;
    let stateUri: string;
    if (settings.mode === 's3tables') {
      tableBucket = new s3tables.CfnTableBucket(this, 'TableBucket', {
        tableBucketName: cdk.Fn.join('-', ['otlp2parquet', cdk.Aws.ACCOUNT_ID, cdk.Aws.REGION]),
        unreferencedFileRemoval: {
          status: 'Enabled',
          unreferencedDays: UNREFERENCED_DAYS,
          noncurrentDays: NONCURRENT_DAYS,
        },
      });
      tableBucket.applyRemovalPolicy(cdk.RemovalPolicy.RETAIN);
      const ns = new s3tables.CfnNamespace(this, 'TableNamespace', {
        tableBucketArn: tableBucket.attrTableBucketArn,
        namespace,
      });
      ns.applyRemovalPolicy(cdk.RemovalPolicy.RETAIN);
      stateUri = `s3://${stateBucket.bucketName}`;
    } else {
      stateUri = `s3://${stateBucket.bucketName}`;
    }

    // ---- Queues -------------------------------------------------------------
    const compaction = queueWithDeadLetters(this, 'Compaction', {
      fifo: false,
      visibilityTimeout: cdk.Duration.seconds(VISIBILITY_FACTOR * TIMEOUTS.compactor),
    });
    const commit = settings.mode === 's3tables'
      ? queueWithDeadLetters(this, 'Commit', {
        fifo: true,
        visibilityTimeout: cdk.Duration.seconds(VISIBILITY_FACTOR * TIMEOUTS.committer),
      })
      : undefined;

    // ---- Functions ----------------------------------------------------------
    const code = functionCode(this, settings);
    const common = {
      runtime: lambda.Runtime.PROVIDED_AL2023,
      architecture: lambda.Architecture.ARM_64,
      handler: 'bootstrap',
      loggingFormat: lambda.LoggingFormat.JSON,
      applicationLogLevelV2: lambda.ApplicationLogLevel.INFO,
      systemLogLevelV2: lambda.SystemLogLevel.WARN,
    };
    const catalog = settings.mode === 's3tables' ? 's3tables' : 'none';
    const shared: Record<string, string> = {
      OTLP2PARQUET_CATALOG: catalog,
      OTLP2PARQUET_ICEBERG_NAMESPACE: namespace,
      OTLP2PARQUET_COMPACTION_QUEUE_URL: compaction.queue.queueUrl,
    };
    if (settings.mode === 's3tables') {
      shared.OTLP2PARQUET_STATE_URI = stateUri;
      shared.OTLP2PARQUET_ICEBERG_WAREHOUSE = tableBucket!.attrTableBucketArn;
      shared.OTLP2PARQUET_COMMIT_QUEUE_URL = commit!.queue.queueUrl;
    } else {
      shared.OTLP2PARQUET_S3_BUCKET = stateBucket.bucketName;
    }

    const ingest = new lambda.Function(this, 'Ingest', {
      ...common,
      description: 'otlp2parquet ingest: OTLP/HTTP to raw Parquet and a compaction message',
      code: code('otlp2parquet-ingest'),
      memorySize: 1024,
      timeout: cdk.Duration.seconds(TIMEOUTS.ingest),
      environment: {
        OTLP2PARQUET_CATALOG: shared.OTLP2PARQUET_CATALOG,
        OTLP2PARQUET_ICEBERG_NAMESPACE: namespace,
        OTLP2PARQUET_COMPACTION_QUEUE_URL: compaction.queue.queueUrl,
        ...(settings.mode === 's3tables'
          ? { OTLP2PARQUET_STATE_URI: stateUri }
          : { OTLP2PARQUET_S3_BUCKET: stateBucket.bucketName }),
      },
      logGroup: logGroup(this, 'IngestLogs', settings),
    });

    const compactor = new lambda.Function(this, 'Compactor', {
      ...common,
      description: 'otlp2parquet compactor: merges and sorts raw Parquet files with DataFusion',
      code: code('otlp2parquet-compactor'),
      // Memory buys CPU on Lambda, and DataFusion sorts in half of it.
      memorySize: 3008,
      ephemeralStorageSize: cdk.Size.mebibytes(2048),
      timeout: cdk.Duration.seconds(TIMEOUTS.compactor),
      environment: { ...shared },
      logGroup: logGroup(this, 'CompactorLogs', settings),
    });
    compactor.addEventSource(new SqsEventSource(compaction.queue, {
      // Many raw-file messages per invocation (a few hundred bytes each, far
      // under Lambda's 6 MB event): fewer, larger compacted files and fewer
      // commits. One bad message fails alone.
      batchSize: 500,
      maxBatchingWindow: cdk.Duration.seconds(settings.compactionWindowSecs),
      reportBatchItemFailures: true,
    }));

    let committer: lambda.Function | undefined;
    if (commit) {
      committer = new lambda.Function(this, 'Committer', {
        ...common,
        description: 'otlp2parquet committer: the single writer of every Iceberg table',
        code: code('otlp2parquet-committer'),
        memorySize: 1024,
        timeout: cdk.Duration.seconds(TIMEOUTS.committer),
        // One writer per table, always: commits are serialized here, not raced.
        reservedConcurrentExecutions: 1,
        environment: {
          ...shared,
          OTLP2PARQUET_COMMIT_BATCH_COMPACTIONS: String(settings.commitBatchCompactions),
          OTLP2PARQUET_COMMIT_MAX_WAIT_SECS: String(settings.commitMaxWaitSecs),
        },
        logGroup: logGroup(this, 'CommitterLogs', settings),
      });
      committer.addEventSource(new SqsEventSource(commit.queue, {
        batchSize: 10,
        reportBatchItemFailures: true,
      }));
      // Staged compactions of a quiet table are committed by the schedule:
      // any event that is not an SQS batch makes the committer commit what is due.
      new events.Rule(this, 'CommitSchedule', {
        description: 'otlp2parquet: commit staged compactions that have waited long enough',
        schedule: events.Schedule.rate(cdk.Duration.minutes(1)),
        targets: [new eventTargets.LambdaFunction(committer, {
          event: events.RuleTargetInput.fromObject({ source: 'otlp2parquet.schedule' }),
          retryAttempts: 2,
          maxEventAge: cdk.Duration.minutes(5),
        })],
      });
    }

    // ---- Permissions: what each function's code calls, on what --------------
    const tablePrefixes = [`${namespace}/*`];
    const bucketObjects = (prefixes: string[]) => prefixes.map((p) => stateBucket.arnForObjects(p));
    // ingest: create raw files (create-only: If-None-Match) and large message bodies.
    ingest.addToRolePolicy(new iam.PolicyStatement({
      sid: 'WriteRawFiles',
      actions: ['s3:PutObject', 's3:GetObject'],
      resources: bucketObjects([`${namespace}/*/data/raw/*`, 'messages/*']),
    }));
    ingest.addToRolePolicy(new iam.PolicyStatement({
      sid: 'QueueRawFiles',
      actions: ['sqs:SendMessage'],
      resources: [compaction.queue.queueArn],
    }));
    for (const fn of committer ? [compactor, committer] : [compactor]) {
      fn.addToRolePolicy(new iam.PolicyStatement({
        sid: 'StateRecords',
        actions: ['s3:GetObject', 's3:PutObject', 's3:DeleteObject', 's3:AbortMultipartUpload'],
        resources: bucketObjects([...tablePrefixes, 'messages/*']),
      }));
      fn.addToRolePolicy(new iam.PolicyStatement({
        sid: 'ListStateRecords',
        actions: ['s3:ListBucket'],
        resources: [stateBucket.bucketArn],
        conditions: { StringLike: { 's3:prefix': tablePrefixes } },
      }));
    }
    grantConsume(compactor, compaction);
    if (commit && committer && tableBucket) {
      compactor.addToRolePolicy(new iam.PolicyStatement({
        sid: 'AnnounceDataFiles',
        actions: ['sqs:SendMessage'],
        resources: [commit.queue.queueArn],
      }));
      grantConsume(committer, commit);
      const bucketArn = tableBucket.attrTableBucketArn;
      const tablesArn = cdk.Fn.join('', [bucketArn, '/table/*']);
      // Both create the namespace and tables on first use (whichever runs
      // first), read table metadata and write files into table locations; the
      // compactor writes compacted files, the committer manifests and metadata.
      for (const fn of [compactor, committer]) {
        fn.addToRolePolicy(new iam.PolicyStatement({
          sid: 'TablesOnFirstUse',
          actions: ['s3tables:GetNamespace', 's3tables:CreateNamespace', 's3tables:CreateTable'],
          resources: [bucketArn],
        }));
        fn.addToRolePolicy(new iam.PolicyStatement({
          sid: 'TableData',
          actions: [
            's3tables:GetTableMetadataLocation',
            's3tables:UpdateTableMetadataLocation',
            's3tables:GetTableData',
            's3tables:PutTableData',
          ],
          resources: [tablesArn],
        }));
      }
    }

    // ---- The API --------------------------------------------------------------
    const api = new apigw.HttpApi(this, 'Api', {
      apiName: `${this.stackName}-otlp`,
      description: 'OTLP/HTTP receiver of otlp2parquet',
      createDefaultStage: false,
    });
    const accessLogs = logGroup(this, 'ApiAccessLogs', settings);
    const stage = new apigw.HttpStage(this, 'ApiStage', {
      httpApi: api,
      stageName: '$default',
      autoDeploy: true,
      throttle: { rateLimit: settings.throttleRateLimit, burstLimit: settings.throttleBurstLimit },
    });
    (stage.node.defaultChild as apigw.CfnStage).accessLogSettings = {
      destinationArn: accessLogs.logGroupArn,
      format: JSON.stringify({
        requestId: '$context.requestId',
        ip: '$context.identity.sourceIp',
        caller: '$context.identity.caller',
        time: '$context.requestTime',
        method: '$context.httpMethod',
        path: '$context.path',
        status: '$context.status',
        length: '$context.responseLength',
        latencyMs: '$context.responseLatency',
        integrationError: '$context.integrationErrorMessage',
        authorizerError: '$context.authorizer.error',
      }),
    };

    let tokenSecret: secretsmanager.Secret | undefined;
    let authorizer: apigw.IHttpRouteAuthorizer;
    if (settings.auth === 'iam') {
      authorizer = new HttpIamAuthorizer();
    } else {
      tokenSecret = new secretsmanager.Secret(this, 'IngestToken', {
        description: 'otlp2parquet: the bearer token OTLP clients send (Authorization: Bearer <token>)',
        generateSecretString: { passwordLength: 48, excludePunctuation: true },
      });
      const authorizerFunction = new lambda.Function(this, 'TokenAuthorizer', {
        runtime: lambda.Runtime.NODEJS_22_X,
        architecture: lambda.Architecture.ARM_64,
        handler: 'index.handler',
        code: lambda.Code.fromInline(fs.readFileSync(path.join(__dirname, '..', '..', 'authorizer', 'index.js'), 'utf8')),
        description: 'otlp2parquet: checks the bearer token of OTLP requests',
        memorySize: 256,
        timeout: cdk.Duration.seconds(5),
        environment: { TOKEN_SECRET_ARN: tokenSecret.secretArn },
        loggingFormat: lambda.LoggingFormat.JSON,
        logGroup: logGroup(this, 'TokenAuthorizerLogs', settings),
      });
      tokenSecret.grantRead(authorizerFunction);
      authorizer = new HttpLambdaAuthorizer('BearerToken', authorizerFunction, {
        responseTypes: [HttpLambdaResponseType.SIMPLE],
        identitySource: ['$request.header.Authorization'],
        resultsCacheTtl: cdk.Duration.minutes(5),
      });
    }
    const integration = new HttpLambdaIntegration('Ingest', ingest, {
      payloadFormatVersion: apigw.PayloadFormatVersion.VERSION_2_0,
    });
    for (const signal of ['logs', 'traces', 'metrics']) {
      api.addRoutes({
        path: `/v1/${signal}`,
        methods: [apigw.HttpMethod.POST],
        integration,
        authorizer,
      });
    }

    // Who may send OTLP with IAM auth: attach this policy to the Collector's role or user.
    let senderPolicy: iam.ManagedPolicy | undefined;
    if (settings.auth === 'iam') {
      senderPolicy = new iam.ManagedPolicy(this, 'OtlpSenderPolicy', {
        description: 'otlp2parquet: send OTLP/HTTP to this stack\'s API (SigV4, service execute-api)',
        statements: [new iam.PolicyStatement({
          actions: ['execute-api:Invoke'],
          resources: ['logs', 'traces', 'metrics'].map((signal) => this.formatArn({
            service: 'execute-api',
            resource: api.apiId,
            resourceName: `*/POST/v1/${signal}`,
          })),
        })],
      });
    }

    // ---- Alarms and dashboard ------------------------------------------------
    const topic = new sns.Topic(this, 'Alarms', {
      displayName: 'otlp2parquet alarms',
      enforceSSL: true,
    });
    if (settings.alarmEmail) {
      topic.addSubscription(new snsSubscriptions.EmailSubscription(settings.alarmEmail));
    }
    const notify = new cwActions.SnsAction(topic);
    const alarm = (id: string, metric: cloudwatch.IMetric, threshold: number, description: string) => {
      const a = new cloudwatch.Alarm(this, id, {
        metric,
        threshold,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        alarmDescription: description,
      });
      a.addAlarmAction(notify);
      return a;
    };
    const queues = commit ? [compaction, commit] : [compaction];
    for (const q of queues) {
      alarm(`${q.name}DeadLettersAlarm`, q.deadLetters.metricApproximateNumberOfMessagesVisible({
        period: cdk.Duration.minutes(1), statistic: 'Maximum',
      }), 1, `Messages in the ${q.name.toLowerCase()} dead-letter queue: see "otlp2parquet dlq inspect" and "dlq replay" in the README`);
      alarm(`${q.name}OldestMessageAlarm`, q.queue.metricApproximateAgeOfOldestMessage({
        period: cdk.Duration.minutes(5), statistic: 'Maximum',
      }), 30 * 60, `The oldest message of the ${q.name.toLowerCase()} queue is over 30 minutes old: its consumer is failing or too slow`);
    }
    const functions: [string, lambda.Function][] = [['Ingest', ingest], ['Compactor', compactor]];
    if (committer) functions.push(['Committer', committer]);
    for (const [name, fn] of functions) {
      alarm(`${name}ErrorsAlarm`, fn.metricErrors({ period: cdk.Duration.minutes(5) }), 1,
        `The ${name.toLowerCase()} function failed invocations: see its log group`);
      // The committer runs alone (reserved concurrency 1): the schedule's
      // invocation meeting a running batch is throttled and retried by
      // Lambda, so only many throttles mean trouble there.
      alarm(`${name}ThrottlesAlarm`, fn.metricThrottles({ period: cdk.Duration.minutes(5) }),
        name === 'Committer' ? 10 : 1,
        `The ${name.toLowerCase()} function is throttled: raise the account's concurrency or lower the API's throttling`);
    }

    const dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      dashboardName: `${this.stackName}-otlp2parquet`,
    });
    dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'API requests and errors',
        left: [api.metricCount(), api.metricClientError(), api.metricServerError()],
      }),
      new cloudwatch.GraphWidget({
        title: 'Function errors',
        left: functions.map(([, fn]) => fn.metricErrors()),
      }),
      new cloudwatch.GraphWidget({
        title: 'Function duration (p99)',
        left: functions.map(([, fn]) => fn.metricDuration({ statistic: 'p99' })),
      }),
    );
    dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Queue depth',
        left: queues.map((q) => q.queue.metricApproximateNumberOfMessagesVisible()),
      }),
      new cloudwatch.GraphWidget({
        title: 'Oldest message (s)',
        left: queues.map((q) => q.queue.metricApproximateAgeOfOldestMessage()),
      }),
      new cloudwatch.GraphWidget({
        title: 'Dead letters',
        left: queues.map((q) => q.deadLetters.metricApproximateNumberOfMessagesVisible()),
      }),
    );

    // ---- Outputs --------------------------------------------------------------
    const endpoint = api.apiEndpoint;
    new cdk.CfnOutput(this, 'OtlpEndpoint', {
      description: 'OTLP/HTTP endpoint: the exporter appends /v1/logs, /v1/traces, /v1/metrics',
      value: endpoint,
    });
    new cdk.CfnOutput(this, 'StateBucketName', { value: stateBucket.bucketName });
    if (tableBucket) {
      new cdk.CfnOutput(this, 'TableBucketArn', { value: tableBucket.attrTableBucketArn });
    }
    new cdk.CfnOutput(this, 'Namespace', { value: namespace });
    for (const q of queues) {
      new cdk.CfnOutput(this, `${q.name}QueueUrl`, { value: q.queue.queueUrl });
      new cdk.CfnOutput(this, `${q.name}DeadLetterQueueUrl`, { value: q.deadLetters.queueUrl });
    }
    if (senderPolicy) {
      new cdk.CfnOutput(this, 'OtlpSenderPolicyArn', {
        description: 'Attach to the role or user that sends OTLP (execute-api:Invoke on the three routes)',
        value: senderPolicy.managedPolicyArn,
      });
    }
    if (tokenSecret) {
      new cdk.CfnOutput(this, 'TokenSecretArn', {
        description: 'The bearer token: aws secretsmanager get-secret-value --secret-id <this> --query SecretString',
        value: tokenSecret.secretArn,
      });
    }
    const auth = settings.auth === 'iam'
      ? '--aws-sigv4 "aws:amz:${AWS::Region}:execute-api" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" -H "x-amz-security-token: $AWS_SESSION_TOKEN"'
      : '-H "Authorization: Bearer $OTLP2PARQUET_TOKEN"';
    new cdk.CfnOutput(this, 'SendTestSpanCommand', {
      description: 'Sends one span (AWS credentials in the environment; with auth=token, OTLP2PARQUET_TOKEN)',
      value: cdk.Fn.sub(
        `curl -sS ${auth} -H "Content-Type: application/json" --data '{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"smoke"}}]},"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"hello","kind":1,"startTimeUnixNano":"$(date +%s)000000000","endTimeUnixNano":"$(date +%s)000000001"}]}]}]}' \${Endpoint}/v1/traces`,
        { Endpoint: endpoint },
      ),
    });
    if (tableBucket) {
      new cdk.CfnOutput(this, 'QueryCommand', {
        description: 'Counts the spans with DuckDB through the S3 Tables Iceberg endpoint (credentials from the environment)',
        value: cdk.Fn.sub(
          `duckdb -c "INSTALL aws; INSTALL httpfs; INSTALL iceberg; LOAD aws; LOAD httpfs; LOAD iceberg; CREATE SECRET (TYPE s3, PROVIDER credential_chain); ATTACH '\${Warehouse}' AS tables (TYPE iceberg, ENDPOINT_TYPE s3_tables); SELECT count(*) FROM tables.${namespace}.traces;"`,
          { Warehouse: tableBucket.attrTableBucketArn },
        ),
      });
    }
  }
}

interface QueuePair {
  name: string;
  queue: sqs.Queue;
  deadLetters: sqs.Queue;
}

function queueWithDeadLetters(
  scope: Construct,
  name: string,
  options: { fifo: boolean; visibilityTimeout: cdk.Duration },
): QueuePair {
  const common = {
    encryption: sqs.QueueEncryption.SQS_MANAGED,
    enforceSSL: true,
    maxMessageSizeBytes: MAX_MESSAGE_BYTES,
    retentionPeriod: cdk.Duration.days(MAX_RETENTION_DAYS),
    ...(options.fifo ? { fifo: true } : {}),
  };
  const deadLetters = new sqs.Queue(scope, `${name}DeadLetterQueue`, common);
  const queue = new sqs.Queue(scope, `${name}Queue`, {
    ...common,
    // The stages set their own deduplication ids (derived from what a message
    // names): a content hash would differ for the same compaction announced twice.
    ...(options.fifo ? { contentBasedDeduplication: false } : {}),
    visibilityTimeout: options.visibilityTimeout,
    deadLetterQueue: { queue: deadLetters, maxReceiveCount: MAX_RECEIVE_COUNT },
  });
  return { name, queue, deadLetters };
}

/**
 * What a queue's consumer needs: what the event source mapping calls for it,
 * and what the stage calls itself to move a poison message to the
 * dead-letter queue its redrive policy names (GetQueueAttributes, GetQueueUrl,
 * SendMessage).
 */
function grantConsume(fn: lambda.Function, pair: QueuePair) {
  fn.addToRolePolicy(new iam.PolicyStatement({
    sid: `Consume${pair.name}`,
    actions: [
      'sqs:ReceiveMessage',
      'sqs:DeleteMessage',
      'sqs:ChangeMessageVisibility',
      'sqs:GetQueueAttributes',
    ],
    resources: [pair.queue.queueArn],
  }));
  fn.addToRolePolicy(new iam.PolicyStatement({
    sid: `DeadLetter${pair.name}`,
    actions: ['sqs:SendMessage', 'sqs:GetQueueUrl', 'sqs:GetQueueAttributes'],
    resources: [pair.deadLetters.queueArn],
  }));
}

function logGroup(scope: Construct, id: string, settings: Settings): logs.LogGroup {
  return new logs.LogGroup(scope, id, {
    retention: settings.logRetentionDays as logs.RetentionDays,
    removalPolicy: cdk.RemovalPolicy.DESTROY,
  });
}

/**
 * Lifecycle rules matching what the pipeline keeps (README, "Exactly once, and
 * what records it"): every record under `<namespace>/<table>/` except compacted
 * files, and message bodies under `messages/`, are removed after
 * STATE_RETENTION_DAYS. In plain mode the compacted files share the bucket
 * (`<namespace>/<table>/data/<day>/`), so the rules name the record prefixes
 * one by one and leave `data/` but `data/raw/` alone.
 */
function stateLifecycleRules(settings: Settings): s3.LifecycleRule[] {
  const expire = (id: string, prefix: string): s3.LifecycleRule => ({
    id,
    prefix,
    expiration: cdk.Duration.days(STATE_RETENTION_DAYS),
    abortIncompleteMultipartUploadAfter: cdk.Duration.days(1),
  });
  const rules: s3.LifecycleRule[] = [expire('MessageBodies', 'messages/')];
  if (settings.mode === 's3tables') {
    rules.push(expire('Records', `${settings.namespace}/`));
  } else {
    for (const table of TABLES) {
      const id = table.split('_').map((w) => w[0].toUpperCase() + w.slice(1)).join('');
      rules.push(expire(`${id}RawFiles`, `${settings.namespace}/${table}/data/raw/`));
      rules.push(expire(`${id}Compaction`, `${settings.namespace}/${table}/compaction/`));
    }
  }
  return rules;
}

/**
 * The code of a function, by binary name: the zip `cargo lambda build
 * --output-format zip --lambda-dir DIR` wrote to DIR/<binary>/bootstrap.zip,
 * or an S3 key parameter (made when first asked for, so a template has no
 * parameter it does not use).
 */
function functionCode(scope: cdk.Stack, settings: Settings): (binary: string) => lambda.Code {
  const source = settings.code;
  if (source.kind === 'assets') {
    const dir = path.resolve(source.lambdaDir);
    return (binary) => {
      const file = path.join(dir, binary, 'bootstrap.zip');
      if (!fs.existsSync(file)) {
        throw new Error(`${file} is missing: build the functions first (infra/deploy.sh does, or cargo lambda build --profile lambda --arm64 --output-format zip --lambda-dir ${dir})`);
      }
      return lambda.Code.fromAsset(file);
    };
  }
  const bucket = new cdk.CfnParameter(scope, 'CodeBucket', {
    type: 'String',
    description: 'The S3 bucket (in the stack\'s region) holding the functions\' zips',
  });
  const codeBucket = s3.Bucket.fromBucketName(scope, 'CodeBucketRef', bucket.valueAsString);
  return (binary) => {
    const id = binary.replace(/^otlp2parquet-/, '').replace(/^./, (c) => c.toUpperCase());
    const key = new cdk.CfnParameter(scope, `${id}CodeKey`, {
      type: 'String',
      default: `otlp2parquet/${binary}.zip`,
      description: `Key of ${binary}'s zip (cargo lambda build --arm64 --output-format zip)`,
    });
    return lambda.Code.fromBucket(codeBucket, key.valueAsString);
  };
}
