// What a deployment can choose, read from CDK context (`cdk.json`, or
// `-c name=value` on the command line) and checked before anything is built:
// a wrong value stops `cdk synth` with a message naming the setting and what it
// should hold, rather than failing half-way through a deployment.

/** Where the compacted tables go. */
export type Mode = 's3tables' | 'plain';

/** How OTLP clients prove who they are to the API. */
export type Auth = 'iam' | 'token';

/**
 * Where the three functions' code comes from: zips built by `cargo lambda`
 * (CDK uploads them as assets), or an S3 bucket and keys given as
 * CloudFormation parameters (the committed template, for users without CDK).
 */
export type CodeSource = { kind: 'assets'; lambdaDir: string } | { kind: 'parameters' };

export interface Settings {
  mode: Mode;
  auth: Auth;
  /** Iceberg namespace (S3 Tables) or top-level prefix (plain mode). */
  namespace: string;
  code: CodeSource;
  /** Where alarms are sent; none: alarms only show in CloudWatch. */
  alarmEmail?: string;
  /** API Gateway's steady-state requests per second and burst, for the whole API. */
  throttleRateLimit: number;
  throttleBurstLimit: number;
  /**
   * How long the compactor's event source gathers raw-file messages before
   * an invocation (at most 300 s, SQS's limit): longer makes fewer, larger
   * compacted files and fewer commits, at the cost of freshness.
   */
  compactionWindowSecs: number;
  /** The committer commits a table once this many compactions are staged... */
  commitBatchCompactions: number;
  /** ...or once the oldest staged one has waited this long. */
  commitMaxWaitSecs: number;
  logRetentionDays: number;
}

/** SQS keeps a message at most 14 days, in a queue and in a dead-letter queue alike. */
export const MAX_RETENTION_DAYS = 14;

/** The tables the pipeline writes (`Table::ALL` in shared/core). */
export const TABLES = [
  'logs',
  'traces',
  'metrics_gauge',
  'metrics_sum',
  'metrics_histogram',
  'metrics_exponential_histogram',
  'metrics_summary',
] as const;

export class SettingsError extends Error {}

/** Reads the settings through `get` (a CDK node's `tryGetContext`). */
export function readSettings(get: (name: string) => unknown): Settings {
  const mode = oneOf(get, 'mode', ['s3tables', 'plain'], 's3tables');
  const auth = oneOf(get, 'auth', ['iam', 'token'], 'iam');
  const namespace = text(get, 'namespace', 'otel');
  if (!/^[a-z0-9_]{1,255}$/.test(namespace)) {
    throw new SettingsError(
      `context "namespace": "${namespace}" is not an S3 Tables namespace name; use lower-case letters, digits and underscores`,
    );
  }
  const code = get('codeSource') === 'parameters'
    ? { kind: 'parameters' as const }
    : { kind: 'assets' as const, lambdaDir: text(get, 'lambdaDir', 'build/arm64') };
  const alarmEmail = get('alarmEmail');
  if (alarmEmail !== undefined && (typeof alarmEmail !== 'string' || !/^[^@\s]+@[^@\s]+$/.test(alarmEmail))) {
    throw new SettingsError(`context "alarmEmail": "${String(alarmEmail)}" is not an e-mail address`);
  }
  return {
    mode,
    auth,
    namespace,
    code,
    alarmEmail: alarmEmail as string | undefined,
    throttleRateLimit: whole(get, 'throttleRateLimit', 100, 1, 10_000),
    throttleBurstLimit: whole(get, 'throttleBurstLimit', 200, 1, 5_000),
    commitBatchCompactions: whole(get, 'commitBatchCompactions', 100, 1, 10_000),
    compactionWindowSecs: whole(get, 'compactionWindowSecs', 300, 0, 300),
    commitMaxWaitSecs: whole(get, 'commitMaxWaitSecs', 300, 1, 3_600),
    logRetentionDays: retention(get),
  };
}

function oneOf<T extends string>(get: (name: string) => unknown, name: string, allowed: readonly T[], fallback: T): T {
  const value = get(name) ?? fallback;
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    throw new SettingsError(`context "${name}": "${String(value)}" is not one of ${allowed.join(', ')}`);
  }
  return value as T;
}

function text(get: (name: string) => unknown, name: string, fallback: string): string {
  const value = get(name) ?? fallback;
  if (typeof value !== 'string' || value === '') {
    throw new SettingsError(`context "${name}": expected a non-empty string`);
  }
  return value;
}

function whole(get: (name: string) => unknown, name: string, fallback: number, min: number, max: number): number {
  const raw = get(name) ?? fallback;
  // `-c name=10` arrives as the string "10".
  const value = typeof raw === 'string' ? Number(raw) : raw;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new SettingsError(`context "${name}": "${String(raw)}" is not a whole number from ${min} to ${max}`);
  }
  return value;
}

/** The retention periods CloudWatch Logs accepts, in days. */
export const LOG_RETENTION_DAYS = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
];

function retention(get: (name: string) => unknown): number {
  const days = whole(get, 'logRetentionDays', 30, 1, 3_653);
  if (!LOG_RETENTION_DAYS.includes(days)) {
    throw new SettingsError(`context "logRetentionDays": ${days} is not a period CloudWatch Logs offers (${LOG_RETENTION_DAYS.join(', ')})`);
  }
  return days;
}
